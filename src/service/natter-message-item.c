/* natter-message-item.c: one message of a conversation, for models and signals
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-message-item.h"

struct _NatterMessageItem
{
  GObject                  parent_instance;

  gint64                   row_id;
  char                    *msg_id;
  gint64                   conversation_id;
  char                    *peer_id;
  char                    *sender;
  gboolean                 outgoing;
  char                    *kind;
  char                    *text;
  gint64                   timestamp;
  gint64                   sequence;
  NatterStoreMessageState  state;
  char                    *relay_via;
};

G_DEFINE_FINAL_TYPE (NatterMessageItem, natter_message_item, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_MSG_ID,
  PROP_TEXT,
  PROP_OUTGOING,
  PROP_TIMESTAMP,
  PROP_STATE,
  PROP_RELAY_VIA,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
natter_message_item_finalize (GObject *object)
{
  NatterMessageItem *self = NATTER_MESSAGE_ITEM (object);

  g_free (self->msg_id);
  g_free (self->peer_id);
  g_free (self->sender);
  g_free (self->kind);
  g_free (self->text);
  g_free (self->relay_via);

  G_OBJECT_CLASS (natter_message_item_parent_class)->finalize (object);
}

static void
natter_message_item_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  NatterMessageItem *self = NATTER_MESSAGE_ITEM (object);

  switch (prop_id)
    {
    case PROP_MSG_ID:
      g_value_set_string (value, self->msg_id);
      break;
    case PROP_TEXT:
      g_value_set_string (value, self->text);
      break;
    case PROP_OUTGOING:
      g_value_set_boolean (value, self->outgoing);
      break;
    case PROP_TIMESTAMP:
      g_value_set_int64 (value, self->timestamp);
      break;
    case PROP_STATE:
      g_value_set_string (value, natter_store_message_state_to_string (self->state));
      break;
    case PROP_RELAY_VIA:
      g_value_set_string (value, self->relay_via);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_message_item_class_init (NatterMessageItemClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = natter_message_item_finalize;
  object_class->get_property = natter_message_item_get_property;

  properties[PROP_MSG_ID] =
    g_param_spec_string ("msg-id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_TEXT] =
    g_param_spec_string ("text", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_OUTGOING] =
    g_param_spec_boolean ("outgoing", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_TIMESTAMP] =
    g_param_spec_int64 ("timestamp", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /* The store's name of the state ("queued", "sent", …). */
  properties[PROP_STATE] =
    g_param_spec_string ("state", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_RELAY_VIA] =
    g_param_spec_string ("relay-via", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
natter_message_item_init (NatterMessageItem *self)
{
}

/**
 * natter_message_item_new:
 * @message: a stored message
 * @peer_id: the other side of its conversation
 *
 * Returns: (transfer full): a new item
 */
NatterMessageItem *
natter_message_item_new (const NatterStoreMessage *message,
                         const char               *peer_id)
{
  NatterMessageItem *self;

  g_return_val_if_fail (message != NULL, NULL);

  self = g_object_new (NATTER_TYPE_MESSAGE_ITEM, NULL);
  self->row_id = message->id;
  self->msg_id = g_strdup (message->msg_id);
  self->conversation_id = message->conversation_id;
  self->peer_id = g_strdup (peer_id);
  self->sender = g_strdup (message->sender);
  self->outgoing = message->direction == NATTER_STORE_DIRECTION_OUT;
  self->kind = g_strdup (message->type);
  self->text = g_strdup (message->body);
  self->timestamp = message->timestamp;
  self->sequence = message->sequence;
  self->state = message->state;
  self->relay_via = g_strdup (message->relay_via);
  return self;
}

gint64
natter_message_item_get_row_id (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), 0);
  return self->row_id;
}

const char *
natter_message_item_get_msg_id (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NULL);
  return self->msg_id;
}

gint64
natter_message_item_get_conversation_id (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), 0);
  return self->conversation_id;
}

const char *
natter_message_item_get_peer_id (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NULL);
  return self->peer_id;
}

const char *
natter_message_item_get_sender (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NULL);
  return self->sender;
}

gboolean
natter_message_item_is_outgoing (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), FALSE);
  return self->outgoing;
}

const char *
natter_message_item_get_kind (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NULL);
  return self->kind;
}

const char *
natter_message_item_get_text (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NULL);
  return self->text;
}

gint64
natter_message_item_get_timestamp (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), 0);
  return self->timestamp;
}

gint64
natter_message_item_get_sequence (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), 0);
  return self->sequence;
}

NatterStoreMessageState
natter_message_item_get_state (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NATTER_STORE_MESSAGE_QUEUED);
  return self->state;
}

const char *
natter_message_item_get_relay_via (NatterMessageItem *self)
{
  g_return_val_if_fail (NATTER_IS_MESSAGE_ITEM (self), NULL);
  return self->relay_via;
}

void
natter_message_item_set_state (NatterMessageItem       *self,
                               NatterStoreMessageState  state,
                               const char              *relay_via)
{
  g_return_if_fail (NATTER_IS_MESSAGE_ITEM (self));

  if (natter_store_message_state_can_advance (self->state, state))
    {
      self->state = state;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
    }
  if (relay_via != NULL && g_strcmp0 (relay_via, self->relay_via) != 0)
    {
      g_free (self->relay_via);
      self->relay_via = g_strdup (relay_via);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RELAY_VIA]);
    }
}
