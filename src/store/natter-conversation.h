/* natter-conversation.h: a stored conversation, as a list item
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef enum
{
  NATTER_CONVERSATION_DIRECT,
  NATTER_CONVERSATION_GROUP,
} NatterConversationKind;

#define NATTER_TYPE_CONVERSATION_KIND (natter_conversation_kind_get_type ())
GType natter_conversation_kind_get_type (void);

/* The strings are the values stored in the database. */
const char *natter_conversation_kind_to_string   (NatterConversationKind  kind);
gboolean    natter_conversation_kind_from_string (const char             *str,
                                                  NatterConversationKind *out);

/* The most characters a preview keeps of the newest message. */
#define NATTER_CONVERSATION_PREVIEW_LENGTH 120

#define NATTER_TYPE_CONVERSATION (natter_conversation_get_type ())
G_DECLARE_FINAL_TYPE (NatterConversation, natter_conversation, NATTER, CONVERSATION, GObject)

NatterConversation     *natter_conversation_new               (gint64                  id,
                                                               NatterConversationKind  kind,
                                                               const char             *peer_or_group_id,
                                                               const char             *title,
                                                               gint64                  last_activity,
                                                               guint                   unread_count);
gint64                  natter_conversation_get_id            (NatterConversation     *self);
NatterConversationKind  natter_conversation_get_kind          (NatterConversation     *self);
const char             *natter_conversation_get_peer_id       (NatterConversation     *self);
const char             *natter_conversation_get_group_id      (NatterConversation     *self);
const char             *natter_conversation_get_title         (NatterConversation     *self);
void                    natter_conversation_set_title         (NatterConversation     *self,
                                                               const char             *title);
gint64                  natter_conversation_get_last_activity (NatterConversation     *self);
void                    natter_conversation_set_last_activity (NatterConversation     *self,
                                                               gint64                  last_activity);
guint                   natter_conversation_get_unread_count  (NatterConversation     *self);
void                    natter_conversation_set_unread_count  (NatterConversation     *self,
                                                               guint                   unread_count);
const char             *natter_conversation_get_preview       (NatterConversation     *self);
void                    natter_conversation_set_preview       (NatterConversation     *self,
                                                               const char             *text);

G_END_DECLS
