/* natter-contact.h: a stored contact, as a list item
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef enum
{
  NATTER_CONTACT_PENDING,
  NATTER_CONTACT_ACCEPTED,
  NATTER_CONTACT_BLOCKED,
} NatterContactState;

#define NATTER_TYPE_CONTACT_STATE (natter_contact_state_get_type ())
GType natter_contact_state_get_type (void);

/* The strings are the values stored in the database. */
const char *natter_contact_state_to_string   (NatterContactState  state);
gboolean    natter_contact_state_from_string (const char         *str,
                                              NatterContactState *out);

#define NATTER_TYPE_CONTACT (natter_contact_get_type ())
G_DECLARE_FINAL_TYPE (NatterContact, natter_contact, NATTER, CONTACT, GObject)

NatterContact      *natter_contact_new              (const char         *peer_id,
                                                     const char         *display_name,
                                                     NatterContactState  state,
                                                     gboolean            verified,
                                                     gint64              added_at);
const char         *natter_contact_get_peer_id      (NatterContact      *self);
const char         *natter_contact_get_display_name (NatterContact      *self);
void                natter_contact_set_display_name (NatterContact      *self,
                                                     const char         *display_name);
NatterContactState  natter_contact_get_state        (NatterContact      *self);
void                natter_contact_set_state        (NatterContact      *self,
                                                     NatterContactState  state);
gboolean            natter_contact_get_verified     (NatterContact      *self);
void                natter_contact_set_verified     (NatterContact      *self,
                                                     gboolean            verified);
gint64              natter_contact_get_added_at     (NatterContact      *self);

G_END_DECLS
