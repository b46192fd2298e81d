/* natter-groups-private.h: how NatterGroups and the messaging service meet
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-groups.h"
#include "natter-identity.h"
#include "natter-message.h"
#include "natter-messaging-service.h"
#include "natter-store.h"

G_BEGIN_DECLS

/* Called by the service. */
NatterGroups *natter_groups_new            (NatterMessagingService *service,
                                            NatterIdentity         *identity,
                                            NatterStore            *store);
/* On the store's worker thread: the stored groups
 * (NatterStoreGroupRecord), each checked (every frame of its log verified);
 * a damaged group is left out with a warning.  NULL if the store cannot be
 * read. */
GPtrArray    *natter_groups_load_saved     (NatterDb               *db,
                                            GError                **error);
/* On the main context, before any peer connects: takes the groups back. */
void          natter_groups_restore        (NatterGroups           *self,
                                            GPtrArray              *records);
void          natter_groups_shutdown       (NatterGroups           *self);
void          natter_groups_peer_connected (NatterGroups           *self,
                                            const char             *peer_id);
void          natter_groups_peer_lost      (NatterGroups           *self,
                                            const char             *peer_id);
/* A decoded (not yet verified) frame with a "group" member that came from
 * the connected neighbour @from_peer.  TRUE when it was a group frame
 * (handled or refused here), FALSE when the service should handle it. */
gboolean      natter_groups_receive        (NatterGroups           *self,
                                            const char             *from_peer,
                                            NatterMessage          *message,
                                            GBytes                 *bytes);

/* Provided by the service (natter-messaging-service.c). */
gboolean natter_messaging_service_group_send_frame (NatterMessagingService *self,
                                                    const char             *peer_id,
                                                    GBytes                 *wire);
gboolean natter_messaging_service_peer_is_connected (NatterMessagingService *self,
                                                     const char             *peer_id);
gboolean natter_messaging_service_peer_is_contact  (NatterMessagingService *self,
                                                    const char             *peer_id);
/* Group members are connected to like contacts (unless blocked). */
void     natter_messaging_service_add_group_peers  (NatterMessagingService *self,
                                                    const char * const     *peer_ids);

G_END_DECLS
