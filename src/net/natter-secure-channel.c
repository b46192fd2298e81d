/* natter-secure-channel.c: the interface of a per-peer secure datagram channel
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-secure-channel.h"

typedef struct
{
  NatterSecureChannelState state;
} NatterSecureChannelPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (NatterSecureChannel, natter_secure_channel, G_TYPE_OBJECT)

G_DEFINE_ENUM_TYPE (NatterSecureChannelState, natter_secure_channel_state,
  G_DEFINE_ENUM_VALUE (NATTER_SECURE_CHANNEL_STATE_NEW, "new"),
  G_DEFINE_ENUM_VALUE (NATTER_SECURE_CHANNEL_STATE_HANDSHAKING, "handshaking"),
  G_DEFINE_ENUM_VALUE (NATTER_SECURE_CHANNEL_STATE_ESTABLISHED, "established"),
  G_DEFINE_ENUM_VALUE (NATTER_SECURE_CHANNEL_STATE_FAILED, "failed"))

enum {
  PROP_0,
  PROP_STATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
natter_secure_channel_get_property (GObject    *object,
                                    guint       prop_id,
                                    GValue     *value,
                                    GParamSpec *pspec)
{
  NatterSecureChannel *self = NATTER_SECURE_CHANNEL (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, natter_secure_channel_get_state (self));
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_secure_channel_class_init (NatterSecureChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = natter_secure_channel_get_property;

  /**
   * NatterSecureChannel:state:
   *
   * Where the channel is in its life; FAILED is final.
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       NATTER_TYPE_SECURE_CHANNEL_STATE,
                       NATTER_SECURE_CHANNEL_STATE_NEW,
                       (G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
natter_secure_channel_init (NatterSecureChannel *self)
{
}

gboolean
natter_secure_channel_start (NatterSecureChannel  *self,
                             gint64                now_us,
                             GError              **error)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->start (self, now_us, error);
}

gboolean
natter_secure_channel_handle_datagram (NatterSecureChannel  *self,
                                       const guint8         *data,
                                       gsize                 len,
                                       gint64                now_us,
                                       GBytes              **plaintext_out,
                                       GError              **error)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (plaintext_out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  *plaintext_out = NULL;
  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->handle_datagram (self, data, len, now_us,
                                                                  plaintext_out, error);
}

GBytes *
natter_secure_channel_encrypt (NatterSecureChannel  *self,
                               const guint8         *plaintext,
                               gsize                 len,
                               gint64                now_us,
                               GError              **error)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), NULL);
  g_return_val_if_fail (plaintext != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->encrypt (self, plaintext, len, now_us, error);
}

GBytes *
natter_secure_channel_pop_outgoing (NatterSecureChannel *self)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), NULL);

  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->pop_outgoing (self);
}

gint64
natter_secure_channel_get_timeout (NatterSecureChannel *self)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), -1);

  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->get_timeout (self);
}

void
natter_secure_channel_handle_timeout (NatterSecureChannel *self,
                                      gint64               now_us)
{
  g_return_if_fail (NATTER_IS_SECURE_CHANNEL (self));

  NATTER_SECURE_CHANNEL_GET_CLASS (self)->handle_timeout (self, now_us);
}

NatterSecureChannelState
natter_secure_channel_get_state (NatterSecureChannel *self)
{
  NatterSecureChannelPrivate *priv = natter_secure_channel_get_instance_private (self);

  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), NATTER_SECURE_CHANNEL_STATE_FAILED);

  return priv->state;
}

gboolean
natter_secure_channel_is_established (NatterSecureChannel *self)
{
  return natter_secure_channel_get_state (self) == NATTER_SECURE_CHANNEL_STATE_ESTABLISHED;
}

GBytes *
natter_secure_channel_get_remote_static_key (NatterSecureChannel *self)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), NULL);

  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->get_remote_static_key (self);
}

GBytes *
natter_secure_channel_get_channel_binding (NatterSecureChannel *self)
{
  g_return_val_if_fail (NATTER_IS_SECURE_CHANNEL (self), NULL);

  return NATTER_SECURE_CHANNEL_GET_CLASS (self)->get_channel_binding (self);
}

void
natter_secure_channel_get_stats (NatterSecureChannel      *self,
                                 NatterSecureChannelStats *stats)
{
  g_return_if_fail (NATTER_IS_SECURE_CHANNEL (self));
  g_return_if_fail (stats != NULL);

  NATTER_SECURE_CHANNEL_GET_CLASS (self)->get_stats (self, stats);
}

void
natter_secure_channel_set_state (NatterSecureChannel      *self,
                                 NatterSecureChannelState  state)
{
  NatterSecureChannelPrivate *priv = natter_secure_channel_get_instance_private (self);

  g_return_if_fail (NATTER_IS_SECURE_CHANNEL (self));

  if (priv->state == state)
    return;
  priv->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}
