/* natter-conversation.c: a stored conversation, as a list item
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "natter-conversation.h"

struct _NatterConversation
{
  GObject                 parent_instance;

  gint64                  id;
  NatterConversationKind  kind;
  /* The peer ID of a direct conversation, or the group ID of a group. */
  char                   *target_id;
  char                   *title;
  gint64                  last_activity;
  guint                   unread_count;
  /* The start of the newest message, on one line. */
  char                   *preview;
};

G_DEFINE_FINAL_TYPE (NatterConversation, natter_conversation, G_TYPE_OBJECT)

G_DEFINE_ENUM_TYPE (NatterConversationKind, natter_conversation_kind,
                    G_DEFINE_ENUM_VALUE (NATTER_CONVERSATION_DIRECT, "direct"),
                    G_DEFINE_ENUM_VALUE (NATTER_CONVERSATION_GROUP, "group"))

enum {
  PROP_0,
  PROP_ID,
  PROP_KIND,
  PROP_TARGET_ID,
  PROP_TITLE,
  PROP_LAST_ACTIVITY,
  PROP_UNREAD_COUNT,
  PROP_PREVIEW,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static const char * const kind_names[] = { "direct", "group" };

/**
 * natter_conversation_kind_to_string:
 * @kind: a kind
 *
 * Returns: the name stored in the database for @kind
 */
const char *
natter_conversation_kind_to_string (NatterConversationKind kind)
{
  g_return_val_if_fail ((guint) kind < G_N_ELEMENTS (kind_names), NULL);
  return kind_names[kind];
}

/**
 * natter_conversation_kind_from_string:
 * @str: (nullable): a stored name
 * @out: (out): the kind
 *
 * Returns: %FALSE when @str names no known kind
 */
gboolean
natter_conversation_kind_from_string (const char             *str,
                                      NatterConversationKind *out)
{
  if (str == NULL)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (kind_names); i++)
    if (g_str_equal (str, kind_names[i]))
      {
        *out = (NatterConversationKind) i;
        return TRUE;
      }
  return FALSE;
}

static void
natter_conversation_finalize (GObject *object)
{
  NatterConversation *self = NATTER_CONVERSATION (object);

  g_clear_pointer (&self->target_id, g_free);
  g_clear_pointer (&self->title, g_free);
  g_clear_pointer (&self->preview, g_free);

  G_OBJECT_CLASS (natter_conversation_parent_class)->finalize (object);
}

static void
natter_conversation_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  NatterConversation *self = NATTER_CONVERSATION (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_int64 (value, self->id);
      break;
    case PROP_KIND:
      g_value_set_enum (value, self->kind);
      break;
    case PROP_TARGET_ID:
      g_value_set_string (value, self->target_id);
      break;
    case PROP_TITLE:
      g_value_set_string (value, self->title);
      break;
    case PROP_LAST_ACTIVITY:
      g_value_set_int64 (value, self->last_activity);
      break;
    case PROP_UNREAD_COUNT:
      g_value_set_uint (value, self->unread_count);
      break;
    case PROP_PREVIEW:
      g_value_set_string (value, self->preview);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_conversation_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  NatterConversation *self = NATTER_CONVERSATION (object);

  switch (prop_id)
    {
    case PROP_ID:
      self->id = g_value_get_int64 (value);
      break;
    case PROP_KIND:
      self->kind = g_value_get_enum (value);
      break;
    case PROP_TARGET_ID:
      self->target_id = g_value_dup_string (value);
      break;
    case PROP_TITLE:
      natter_conversation_set_title (self, g_value_get_string (value));
      break;
    case PROP_LAST_ACTIVITY:
      natter_conversation_set_last_activity (self, g_value_get_int64 (value));
      break;
    case PROP_UNREAD_COUNT:
      natter_conversation_set_unread_count (self, g_value_get_uint (value));
      break;
    case PROP_PREVIEW:
      natter_conversation_set_preview (self, g_value_get_string (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_conversation_class_init (NatterConversationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = natter_conversation_finalize;
  object_class->get_property = natter_conversation_get_property;
  object_class->set_property = natter_conversation_set_property;

  properties[PROP_ID] =
    g_param_spec_int64 ("id", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_KIND] =
    g_param_spec_enum ("kind", NULL, NULL,
                       NATTER_TYPE_CONVERSATION_KIND, NATTER_CONVERSATION_DIRECT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /* The peer ID (direct) or group ID (group) the conversation is with. */
  properties[PROP_TARGET_ID] =
    g_param_spec_string ("target-id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_TITLE] =
    g_param_spec_string ("title", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LAST_ACTIVITY] =
    g_param_spec_int64 ("last-activity", NULL, NULL, G_MININT64, G_MAXINT64, 0,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_UNREAD_COUNT] =
    g_param_spec_uint ("unread-count", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /* The start of the newest message's text, at most
   * NATTER_CONVERSATION_PREVIEW_LENGTH characters on one line, ending
   * with an ellipsis when cut; %NULL when there is none. */
  properties[PROP_PREVIEW] =
    g_param_spec_string ("preview", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
natter_conversation_init (NatterConversation *self)
{
}

/**
 * natter_conversation_new:
 * @id: the conversation's row id
 * @kind: direct or group
 * @peer_or_group_id: the peer ID (direct) or the group ID (group)
 * @title: (nullable): the title to show
 * @last_activity: time of the newest message (ms)
 * @unread_count: incoming messages not read yet
 *
 * Returns: (transfer full): a new conversation item
 */
NatterConversation *
natter_conversation_new (gint64                  id,
                         NatterConversationKind  kind,
                         const char             *peer_or_group_id,
                         const char             *title,
                         gint64                  last_activity,
                         guint                   unread_count)
{
  g_return_val_if_fail (peer_or_group_id != NULL, NULL);

  return g_object_new (NATTER_TYPE_CONVERSATION,
                       "id", id,
                       "kind", kind,
                       "target-id", peer_or_group_id,
                       "title", title,
                       "last-activity", last_activity,
                       "unread-count", unread_count,
                       NULL);
}

gint64
natter_conversation_get_id (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), 0);
  return self->id;
}

NatterConversationKind
natter_conversation_get_kind (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), NATTER_CONVERSATION_DIRECT);
  return self->kind;
}

/* Returns: (nullable): the peer ID, or %NULL for a group */
const char *
natter_conversation_get_peer_id (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), NULL);
  return self->kind == NATTER_CONVERSATION_DIRECT ? self->target_id : NULL;
}

/* Returns: (nullable): the group ID, or %NULL for a direct conversation */
const char *
natter_conversation_get_group_id (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), NULL);
  return self->kind == NATTER_CONVERSATION_GROUP ? self->target_id : NULL;
}

const char *
natter_conversation_get_title (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), NULL);
  return self->title;
}

void
natter_conversation_set_title (NatterConversation *self,
                               const char         *title)
{
  g_return_if_fail (NATTER_IS_CONVERSATION (self));

  if (g_strcmp0 (self->title, title) == 0)
    return;
  g_free (self->title);
  self->title = g_strdup (title);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TITLE]);
}

gint64
natter_conversation_get_last_activity (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), 0);
  return self->last_activity;
}

void
natter_conversation_set_last_activity (NatterConversation *self,
                                       gint64              last_activity)
{
  g_return_if_fail (NATTER_IS_CONVERSATION (self));

  if (self->last_activity == last_activity)
    return;
  self->last_activity = last_activity;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_ACTIVITY]);
}

guint
natter_conversation_get_unread_count (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), 0);
  return self->unread_count;
}

void
natter_conversation_set_unread_count (NatterConversation *self,
                                      guint               unread_count)
{
  g_return_if_fail (NATTER_IS_CONVERSATION (self));

  if (self->unread_count == unread_count)
    return;
  self->unread_count = unread_count;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_UNREAD_COUNT]);
}

/* Returns: (nullable): the start of the newest message's text */
const char *
natter_conversation_get_preview (NatterConversation *self)
{
  g_return_val_if_fail (NATTER_IS_CONVERSATION (self), NULL);
  return self->preview;
}

/**
 * natter_conversation_set_preview:
 * @self: a conversation
 * @text: (nullable): the newest message's text, or its start
 *
 * Keeps the first %NATTER_CONVERSATION_PREVIEW_LENGTH characters of @text
 * (which must be UTF-8), adding an ellipsis when it is longer, with line
 * breaks and tabs turned into spaces.
 */
void
natter_conversation_set_preview (NatterConversation *self,
                                 const char         *text)
{
  g_autofree char *preview = NULL;

  g_return_if_fail (NATTER_IS_CONVERSATION (self));

  if (text != NULL)
    {
      static const char ellipsis[] = "…";
      const char *end = text;
      guint n_chars = 0;
      gsize len;

      /* One pass over at most the kept characters, whatever the length of
       * @text: a byte that is not a continuation byte starts one. */
      for (; *end != '\0'; end++)
        if (((guchar) *end & 0xc0) != 0x80 && n_chars++ == NATTER_CONVERSATION_PREVIEW_LENGTH)
          break;
      len = end - text;
      preview = g_malloc (len + sizeof ellipsis);
      for (gsize i = 0; i < len; i++)
        preview[i] = text[i] == '\n' || text[i] == '\r' || text[i] == '\t' ? ' ' : text[i];
      if (*end != '\0')
        memcpy (preview + len, ellipsis, sizeof ellipsis);
      else
        preview[len] = '\0';
    }

  if (g_strcmp0 (self->preview, preview) == 0)
    return;
  g_free (self->preview);
  self->preview = g_steal_pointer (&preview);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PREVIEW]);
}
