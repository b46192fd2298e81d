/* natter-contact.c: a stored contact, as a list item
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-contact.h"

struct _NatterContact
{
  GObject             parent_instance;

  char               *peer_id;
  char               *display_name;
  NatterContactState  state;
  gboolean            verified;
  gint64              added_at;
};

G_DEFINE_FINAL_TYPE (NatterContact, natter_contact, G_TYPE_OBJECT)

G_DEFINE_ENUM_TYPE (NatterContactState, natter_contact_state,
                    G_DEFINE_ENUM_VALUE (NATTER_CONTACT_PENDING, "pending"),
                    G_DEFINE_ENUM_VALUE (NATTER_CONTACT_ACCEPTED, "accepted"),
                    G_DEFINE_ENUM_VALUE (NATTER_CONTACT_BLOCKED, "blocked"))

enum {
  PROP_0,
  PROP_PEER_ID,
  PROP_DISPLAY_NAME,
  PROP_STATE,
  PROP_VERIFIED,
  PROP_ADDED_AT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static const char * const state_names[] = { "pending", "accepted", "blocked" };

/* g_set_str() needs GLib 2.76. */
static gboolean
set_str (char       **ptr,
         const char  *value)
{
  if (g_strcmp0 (*ptr, value) == 0)
    return FALSE;
  g_free (*ptr);
  *ptr = g_strdup (value);
  return TRUE;
}

/**
 * natter_contact_state_to_string:
 * @state: a state
 *
 * Returns: the name stored in the database for @state
 */
const char *
natter_contact_state_to_string (NatterContactState state)
{
  g_return_val_if_fail ((guint) state < G_N_ELEMENTS (state_names), NULL);
  return state_names[state];
}

/**
 * natter_contact_state_from_string:
 * @str: (nullable): a stored name
 * @out: (out): the state
 *
 * Returns: %FALSE when @str names no known state
 */
gboolean
natter_contact_state_from_string (const char         *str,
                                  NatterContactState *out)
{
  if (str == NULL)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (state_names); i++)
    if (g_str_equal (str, state_names[i]))
      {
        *out = (NatterContactState) i;
        return TRUE;
      }
  return FALSE;
}

static void
natter_contact_finalize (GObject *object)
{
  NatterContact *self = NATTER_CONTACT (object);

  g_clear_pointer (&self->peer_id, g_free);
  g_clear_pointer (&self->display_name, g_free);

  G_OBJECT_CLASS (natter_contact_parent_class)->finalize (object);
}

static void
natter_contact_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  NatterContact *self = NATTER_CONTACT (object);

  switch (prop_id)
    {
    case PROP_PEER_ID:
      g_value_set_string (value, self->peer_id);
      break;
    case PROP_DISPLAY_NAME:
      g_value_set_string (value, self->display_name);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_VERIFIED:
      g_value_set_boolean (value, self->verified);
      break;
    case PROP_ADDED_AT:
      g_value_set_int64 (value, self->added_at);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_contact_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  NatterContact *self = NATTER_CONTACT (object);

  switch (prop_id)
    {
    case PROP_PEER_ID:
      self->peer_id = g_value_dup_string (value);
      break;
    case PROP_DISPLAY_NAME:
      natter_contact_set_display_name (self, g_value_get_string (value));
      break;
    case PROP_STATE:
      natter_contact_set_state (self, g_value_get_enum (value));
      break;
    case PROP_VERIFIED:
      natter_contact_set_verified (self, g_value_get_boolean (value));
      break;
    case PROP_ADDED_AT:
      self->added_at = g_value_get_int64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_contact_class_init (NatterContactClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = natter_contact_finalize;
  object_class->get_property = natter_contact_get_property;
  object_class->set_property = natter_contact_set_property;

  properties[PROP_PEER_ID] =
    g_param_spec_string ("peer-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_DISPLAY_NAME] =
    g_param_spec_string ("display-name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       NATTER_TYPE_CONTACT_STATE, NATTER_CONTACT_PENDING,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_VERIFIED] =
    g_param_spec_boolean ("verified", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_ADDED_AT] =
    g_param_spec_int64 ("added-at", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
natter_contact_init (NatterContact *self)
{
}

/**
 * natter_contact_new:
 * @peer_id: the contact's peer ID
 * @display_name: (nullable): the name to show
 * @state: whether the contact request is pending, accepted or blocked
 * @verified: whether the safety number was compared
 * @added_at: when the contact was added (ms)
 *
 * Returns: (transfer full): a new contact
 */
NatterContact *
natter_contact_new (const char         *peer_id,
                    const char         *display_name,
                    NatterContactState  state,
                    gboolean            verified,
                    gint64              added_at)
{
  g_return_val_if_fail (peer_id != NULL, NULL);

  return g_object_new (NATTER_TYPE_CONTACT,
                       "peer-id", peer_id,
                       "display-name", display_name,
                       "state", state,
                       "verified", verified,
                       "added-at", added_at,
                       NULL);
}

const char *
natter_contact_get_peer_id (NatterContact *self)
{
  g_return_val_if_fail (NATTER_IS_CONTACT (self), NULL);
  return self->peer_id;
}

const char *
natter_contact_get_display_name (NatterContact *self)
{
  g_return_val_if_fail (NATTER_IS_CONTACT (self), NULL);
  return self->display_name;
}

void
natter_contact_set_display_name (NatterContact *self,
                                 const char    *display_name)
{
  g_return_if_fail (NATTER_IS_CONTACT (self));

  if (set_str (&self->display_name, display_name))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DISPLAY_NAME]);
}

NatterContactState
natter_contact_get_state (NatterContact *self)
{
  g_return_val_if_fail (NATTER_IS_CONTACT (self), NATTER_CONTACT_PENDING);
  return self->state;
}

void
natter_contact_set_state (NatterContact      *self,
                          NatterContactState  state)
{
  g_return_if_fail (NATTER_IS_CONTACT (self));

  if (self->state == state)
    return;
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

gboolean
natter_contact_get_verified (NatterContact *self)
{
  g_return_val_if_fail (NATTER_IS_CONTACT (self), FALSE);
  return self->verified;
}

void
natter_contact_set_verified (NatterContact *self,
                             gboolean       verified)
{
  g_return_if_fail (NATTER_IS_CONTACT (self));

  verified = !!verified;
  if (self->verified == verified)
    return;
  self->verified = verified;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_VERIFIED]);
}

gint64
natter_contact_get_added_at (NatterContact *self)
{
  g_return_val_if_fail (NATTER_IS_CONTACT (self), 0);
  return self->added_at;
}
