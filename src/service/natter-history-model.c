/* natter-history-model.c: a conversation's messages, paged from the store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-history-model.h"

struct _NatterHistoryModel
{
  GObject      parent_instance;

  NatterStore *store;
  gint64       conversation_id;
  char        *peer_id;
  /* Oldest first. */
  GPtrArray   *items;
  GHashTable  *by_msg_id;      /* msg_id -> item (borrowed) */
  /* Row id of the oldest loaded message (0: none loaded yet). */
  gint64       oldest_row_id;
  gboolean     complete;
  gboolean     loading;
};

static void natter_history_model_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (NatterHistoryModel, natter_history_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      natter_history_model_list_model_init))

static GType
history_get_item_type (GListModel *model)
{
  return NATTER_TYPE_MESSAGE_ITEM;
}

static guint
history_get_n_items (GListModel *model)
{
  return NATTER_HISTORY_MODEL (model)->items->len;
}

static gpointer
history_get_item (GListModel *model,
                  guint       position)
{
  NatterHistoryModel *self = NATTER_HISTORY_MODEL (model);

  if (position >= self->items->len)
    return NULL;
  return g_object_ref (g_ptr_array_index (self->items, position));
}

static void
natter_history_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = history_get_item_type;
  iface->get_n_items = history_get_n_items;
  iface->get_item = history_get_item;
}

static void
natter_history_model_finalize (GObject *object)
{
  NatterHistoryModel *self = NATTER_HISTORY_MODEL (object);

  g_clear_object (&self->store);
  g_free (self->peer_id);
  g_hash_table_unref (self->by_msg_id);
  g_ptr_array_unref (self->items);

  G_OBJECT_CLASS (natter_history_model_parent_class)->finalize (object);
}

static void
natter_history_model_class_init (NatterHistoryModelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = natter_history_model_finalize;
}

static void
natter_history_model_init (NatterHistoryModel *self)
{
  self->items = g_ptr_array_new_with_free_func (g_object_unref);
  self->by_msg_id = g_hash_table_new (g_str_hash, g_str_equal);
}

/**
 * natter_history_model_new:
 * @store: an open store
 * @conversation_id: the conversation
 * @peer_id: the other side
 *
 * Returns: (transfer full): an empty model; call load_older() to fill it
 */
NatterHistoryModel *
natter_history_model_new (NatterStore *store,
                          gint64       conversation_id,
                          const char  *peer_id)
{
  NatterHistoryModel *self;

  g_return_val_if_fail (NATTER_IS_STORE (store), NULL);

  self = g_object_new (NATTER_TYPE_HISTORY_MODEL, NULL);
  self->store = g_object_ref (store);
  self->conversation_id = conversation_id;
  self->peer_id = g_strdup (peer_id);
  return self;
}

gint64
natter_history_model_get_conversation_id (NatterHistoryModel *self)
{
  g_return_val_if_fail (NATTER_IS_HISTORY_MODEL (self), 0);
  return self->conversation_id;
}

const char *
natter_history_model_get_peer_id (NatterHistoryModel *self)
{
  g_return_val_if_fail (NATTER_IS_HISTORY_MODEL (self), NULL);
  return self->peer_id;
}

gboolean
natter_history_model_get_complete (NatterHistoryModel *self)
{
  g_return_val_if_fail (NATTER_IS_HISTORY_MODEL (self), TRUE);
  return self->complete;
}

static void
on_page_loaded (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  NatterHistoryModel *self = g_task_get_source_object (task);
  guint limit = GPOINTER_TO_UINT (g_task_get_task_data (task));
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(GPtrArray) fresh = NULL;
  GError *error = NULL;

  self->loading = FALSE;
  page = natter_store_load_page_finish (NATTER_STORE (source), result, &error);
  if (page == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  /* The page is newest first; the model is oldest first.  A message that
   * was appended live while the page loaded is already here. */
  fresh = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = page->len; i > 0; i--)
    {
      NatterStoreMessage *message = g_ptr_array_index (page, i - 1);

      if (g_hash_table_contains (self->by_msg_id, message->msg_id))
        continue;
      g_ptr_array_add (fresh, natter_message_item_new (message, self->peer_id));
    }
  if (page->len > 0)
    {
      NatterStoreMessage *oldest = g_ptr_array_index (page, page->len - 1);

      self->oldest_row_id = oldest->id;
    }
  if (page->len < limit)
    self->complete = TRUE;

  if (fresh->len > 0)
    {
      for (guint i = 0; i < fresh->len; i++)
        {
          NatterMessageItem *item = g_ptr_array_index (fresh, i);

          g_hash_table_insert (self->by_msg_id, (gpointer) natter_message_item_get_msg_id (item), item);
        }
      {
        GPtrArray *items = g_ptr_array_new_full (fresh->len + self->items->len, g_object_unref);

        for (guint i = 0; i < fresh->len; i++)
          g_ptr_array_add (items, g_object_ref (g_ptr_array_index (fresh, i)));
        for (guint i = 0; i < self->items->len; i++)
          g_ptr_array_add (items, g_object_ref (g_ptr_array_index (self->items, i)));
        g_ptr_array_unref (self->items);
        self->items = items;
      }
      g_list_model_items_changed (G_LIST_MODEL (self), 0, 0, fresh->len);
    }

  g_task_return_int (task, fresh->len);
}

/**
 * natter_history_model_load_older_async:
 * @self: a model
 * @count: how many older messages to load, 0 for a page
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the page is in the model
 * @user_data: data for @callback
 */
void
natter_history_model_load_older_async (NatterHistoryModel  *self,
                                       guint                count,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (NATTER_IS_HISTORY_MODEL (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_history_model_load_older_async);
  if (count == 0)
    count = NATTER_HISTORY_PAGE_SIZE;
  count = MIN (count, 10000);
  g_task_set_task_data (task, GUINT_TO_POINTER (count), NULL);

  if (self->complete)
    {
      g_task_return_int (task, 0);
      return;
    }
  if (self->loading)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_PENDING,
                               "Older messages are already being loaded");
      return;
    }

  self->loading = TRUE;
  natter_store_load_page_async (self->store, self->conversation_id, self->oldest_row_id,
                                count, cancellable, on_page_loaded, g_steal_pointer (&task));
}

gboolean
natter_history_model_load_older_finish (NatterHistoryModel  *self,
                                        GAsyncResult        *result,
                                        guint               *n_loaded,
                                        GError             **error)
{
  gssize n;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  n = g_task_propagate_int (G_TASK (result), error);
  if (n < 0)
    return FALSE;
  if (n_loaded != NULL)
    *n_loaded = (guint) n;
  return TRUE;
}

static void
on_search_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  NatterHistoryModel *self = g_task_get_source_object (task);
  g_autoptr(GPtrArray) found = NULL;
  g_autoptr(GListStore) items = NULL;
  GError *error = NULL;

  found = natter_store_search_finish (NATTER_STORE (source), result, &error);
  if (found == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  items = g_list_store_new (NATTER_TYPE_MESSAGE_ITEM);
  for (guint i = 0; i < found->len; i++)
    {
      NatterStoreMessage *message = g_ptr_array_index (found, i);
      NatterMessageItem *loaded = g_hash_table_lookup (self->by_msg_id, message->msg_id);

      if (loaded != NULL)
        g_list_store_append (items, loaded);
      else
        {
          g_autoptr(NatterMessageItem) item = natter_message_item_new (message, self->peer_id);

          g_list_store_append (items, item);
        }
    }
  g_task_return_pointer (task, g_steal_pointer (&items), g_object_unref);
}

/**
 * natter_history_model_search_async:
 * @self: a model
 * @query: the words to look for, as the user typed them
 * @limit: the most results to return
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the results
 * @user_data: data for @callback
 *
 * Searches the whole stored history of the conversation, not only the
 * pages loaded so far.
 */
void
natter_history_model_search_async (NatterHistoryModel  *self,
                                   const char          *query,
                                   guint                limit,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (NATTER_IS_HISTORY_MODEL (self));
  g_return_if_fail (query != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, natter_history_model_search_async);
  natter_store_search_async (self->store, query, self->conversation_id, limit,
                             cancellable, on_search_done, task);
}

/**
 * natter_history_model_search_finish:
 * @self: a model
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): a #GListModel of #NatterMessageItem, newest first
 */
GListModel *
natter_history_model_search_finish (NatterHistoryModel  *self,
                                    GAsyncResult        *result,
                                    GError             **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
natter_history_model_append (NatterHistoryModel *self,
                             NatterMessageItem  *item)
{
  g_return_if_fail (NATTER_IS_HISTORY_MODEL (self));
  g_return_if_fail (NATTER_IS_MESSAGE_ITEM (item));

  if (g_hash_table_contains (self->by_msg_id, natter_message_item_get_msg_id (item)))
    return;
  g_ptr_array_add (self->items, g_object_ref (item));
  g_hash_table_insert (self->by_msg_id, (gpointer) natter_message_item_get_msg_id (item), item);
  /* Nothing older loaded yet: remember where pages must start. */
  if (self->oldest_row_id == 0 && self->items->len == 1)
    self->oldest_row_id = natter_message_item_get_row_id (item);
  g_list_model_items_changed (G_LIST_MODEL (self), self->items->len - 1, 0, 1);
}

NatterMessageItem *
natter_history_model_lookup (NatterHistoryModel *self,
                             const char         *msg_id)
{
  g_return_val_if_fail (NATTER_IS_HISTORY_MODEL (self), NULL);
  return g_hash_table_lookup (self->by_msg_id, msg_id);
}
