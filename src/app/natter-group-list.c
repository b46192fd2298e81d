/* natter-group-list.c: the groups, as conversations for the sidebar
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-group-list.h"

struct _NatterGroupList
{
  GObject parent_instance;

  NatterMessagingService *service;
  NatterGroups *groups;
  GListStore *store;     /* NatterConversation, kind group */
};

G_DEFINE_FINAL_TYPE (NatterGroupList, natter_group_list, G_TYPE_OBJECT)

/* "Name: text" for a text, the sentence for a membership event. */
static char *
dup_preview (NatterGroupList          *self,
             const NatterGroupMessage *message)
{
  g_autofree char *name = NULL;

  if (g_strcmp0 (message->kind, "event") == 0)
    return natter_app_dup_group_event (self->service, message->sender, message->text);
  if (message->text == NULL)
    return NULL;
  name = natter_app_dup_member_name (self->service, message->sender);
  /* Translators: a group message in the sidebar, "sender: text" */
  return g_strdup_printf (_("%s: %s"), name, message->text);
}

static void
apply_message (NatterGroupList          *self,
               NatterConversation       *conversation,
               const NatterGroupMessage *message)
{
  g_autofree char *preview = dup_preview (self, message);

  if (preview == NULL)
    return;
  natter_conversation_set_preview (conversation, preview);
  if (message->timestamp > natter_conversation_get_last_activity (conversation))
    natter_conversation_set_last_activity (conversation, message->timestamp);
}

/* The store holds the item: the reference taken here is dropped on
 * return, and the pointer stays valid while the group is listed. */
NatterConversation *
natter_group_list_lookup (NatterGroupList *self,
                          const char      *group_id)
{
  guint n;

  g_return_val_if_fail (NATTER_IS_GROUP_LIST (self), NULL);

  n = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterConversation) conversation = g_list_model_get_item (G_LIST_MODEL (self->store), i);

      if (g_strcmp0 (natter_conversation_get_group_id (conversation), group_id) == 0)
        return conversation;
    }
  return NULL;
}

/* A group we joined or created appears with its newest message, or at the
 * time we learnt of it. */
static void
update_group (NatterGroupList *self,
              const char      *group_id)
{
  g_autoptr(NatterGroupInfo) info = natter_groups_get_info (self->groups, group_id);
  NatterConversation *conversation;

  if (info == NULL)
    return;
  conversation = natter_group_list_lookup (self, group_id);
  if (conversation == NULL)
    {
      g_autoptr(NatterConversation) added = NULL;
      g_autoptr(GPtrArray) history = natter_groups_get_history (self->groups, group_id);

      added = natter_conversation_new (0, NATTER_CONVERSATION_GROUP, group_id, info->name, 0, 0);
      for (guint i = history->len; i > 0 && natter_conversation_get_preview (added) == NULL; i--)
        apply_message (self, added, g_ptr_array_index (history, i - 1));
      if (natter_conversation_get_last_activity (added) == 0)
        natter_conversation_set_last_activity (added, g_get_real_time () / 1000);
      g_list_store_append (self->store, added);
      natter_ui_trace ("group-list group=%s name=%s", group_id, info->name);
      return;
    }
  natter_conversation_set_title (conversation, info->name);
}

static void
on_group_changed (NatterGroupList *self,
                  const char      *group_id,
                  NatterGroups    *groups)
{
  update_group (self, group_id);
}

static void
on_group_message (NatterGroupList    *self,
                  NatterGroupMessage *message,
                  NatterGroups       *groups)
{
  NatterConversation *conversation = natter_group_list_lookup (self, message->group_id);

  if (conversation == NULL)
    {
      update_group (self, message->group_id);
      return;
    }
  apply_message (self, conversation, message);
  if (g_strcmp0 (message->kind, "text") == 0)
    natter_conversation_set_unread_count (conversation,
                                          natter_conversation_get_unread_count (conversation) + 1);
}

void
natter_group_list_mark_read (NatterGroupList *self,
                             const char      *group_id)
{
  NatterConversation *conversation;
  g_autoptr(GError) error = NULL;

  g_return_if_fail (NATTER_IS_GROUP_LIST (self));

  if (self->groups == NULL)
    return;
  if (!natter_groups_mark_read (self->groups, group_id, &error))
    g_debug ("Marking group %s read: %s", group_id, error->message);
  conversation = natter_group_list_lookup (self, group_id);
  if (conversation != NULL)
    natter_conversation_set_unread_count (conversation, 0);
}

void
natter_group_list_note_sent (NatterGroupList *self,
                             const char      *group_id,
                             const char      *text)
{
  NatterConversation *conversation;
  NatterGroupMessage message = {
    .group_id = (char *) group_id,
    .sender = (char *) natter_messaging_service_get_peer_id (self->service),
    .kind = (char *) "text",
    .text = (char *) text,
    .timestamp = g_get_real_time () / 1000,
    .outgoing = TRUE,
  };

  g_return_if_fail (NATTER_IS_GROUP_LIST (self));

  conversation = natter_group_list_lookup (self, group_id);
  if (conversation != NULL)
    apply_message (self, conversation, &message);
}

GListModel *
natter_group_list_get_model (NatterGroupList *self)
{
  g_return_val_if_fail (NATTER_IS_GROUP_LIST (self), NULL);
  return G_LIST_MODEL (self->store);
}

static void
natter_group_list_dispose (GObject *object)
{
  NatterGroupList *self = NATTER_GROUP_LIST (object);

  g_clear_object (&self->store);
  g_clear_object (&self->groups);
  g_clear_object (&self->service);

  G_OBJECT_CLASS (natter_group_list_parent_class)->dispose (object);
}

static void
natter_group_list_class_init (NatterGroupListClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = natter_group_list_dispose;
}

static void
natter_group_list_init (NatterGroupList *self)
{
  self->store = g_list_store_new (NATTER_TYPE_CONVERSATION);
}

/**
 * natter_group_list_new:
 * @service: a started messaging service
 *
 * Returns: (transfer full): the list of @service's groups
 */
NatterGroupList *
natter_group_list_new (NatterMessagingService *service)
{
  NatterGroupList *self = g_object_new (NATTER_TYPE_GROUP_LIST, NULL);
  g_autoptr(GPtrArray) groups = NULL;

  self->service = g_object_ref (service);
  if (natter_messaging_service_get_groups (service) == NULL)
    return self;
  self->groups = g_object_ref (natter_messaging_service_get_groups (service));
  g_signal_connect_object (self->groups, "group-changed", G_CALLBACK (on_group_changed), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (self->groups, "message-received", G_CALLBACK (on_group_message), self,
                           G_CONNECT_SWAPPED);
  groups = natter_groups_list (self->groups);
  for (guint i = 0; i < groups->len; i++)
    update_group (self, ((NatterGroupInfo *) g_ptr_array_index (groups, i))->id);
  return self;
}
