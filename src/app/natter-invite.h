/* natter-invite.h: natter: invite links
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* An invite link is "natter:" followed by a peer ID and, optionally,
 * "?name=" and the percent-encoded display name of its owner:
 *
 *   natter:nb7q…?name=Ada%20Lovelace
 *
 * A bare peer ID is accepted wherever a link is. */

#define NATTER_INVITE_ERROR (natter_invite_error_quark ())

typedef enum
{
  NATTER_INVITE_ERROR_INVALID,
} NatterInviteError;

GQuark    natter_invite_error_quark (void);

gboolean  natter_invite_parse       (const char  *text,
                                     char       **peer_id,
                                     char       **name,
                                     GError     **error);
char     *natter_invite_build       (const char  *peer_id,
                                     const char  *name);

G_END_DECLS
