/* natter-store.h: the asynchronous message store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-db.h"

G_BEGIN_DECLS

#define NATTER_TYPE_STORE (natter_store_get_type ())
G_DECLARE_FINAL_TYPE (NatterStore, natter_store, NATTER, STORE, GObject)

/**
 * NatterStoreRunFunc:
 * @db: the connection, owned by the worker thread
 * @user_data: the data given to natter_store_run_async()
 * @error: return location for a #GError
 *
 * Work run on the store's worker thread.  It must not keep @db.
 *
 * Returns: (nullable): a result for natter_store_run_finish(); %NULL means
 *   failure and must set @error
 */
typedef gpointer (*NatterStoreRunFunc) (NatterDb  *db,
                                        gpointer   user_data,
                                        GError   **error);

NatterStore *natter_store_new                    (const char           *path);
const char  *natter_store_get_path               (NatterStore          *self);

void         natter_store_open_async             (NatterStore          *self,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_open_finish            (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_close_async            (NatterStore          *self,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_close_finish           (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

void         natter_store_run_async              (NatterStore          *self,
                                                  NatterStoreRunFunc    func,
                                                  gpointer              func_data,
                                                  GDestroyNotify        func_data_free,
                                                  GDestroyNotify        result_free,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gpointer     natter_store_run_finish             (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* Contacts */
void         natter_store_list_contacts_async    (NatterStore          *self,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GListModel  *natter_store_list_contacts_finish   (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_upsert_contact_async   (NatterStore          *self,
                                                  NatterContact        *contact,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_upsert_contact_finish  (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_set_contact_state_async (NatterStore         *self,
                                                  const char           *peer_id,
                                                  NatterContactState    state,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_set_contact_state_finish (NatterStore        *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* Conversations */
void         natter_store_list_conversations_async  (NatterStore       *self,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GListModel  *natter_store_list_conversations_finish (NatterStore       *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_ensure_conversation_async (NatterStore       *self,
                                                  NatterConversationKind kind,
                                                  const char           *peer_or_group_id,
                                                  const char           *title,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gint64       natter_store_ensure_conversation_finish (NatterStore      *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_mark_conversation_read_async (NatterStore    *self,
                                                  gint64                conversation_id,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_mark_conversation_read_finish (NatterStore   *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* Messages */
void         natter_store_insert_message_async   (NatterStore          *self,
                                                  const NatterStoreMessage *message,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gint64       natter_store_insert_message_finish  (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  gboolean             *was_new,
                                                  GError              **error);
void         natter_store_update_message_state_async (NatterStore      *self,
                                                  const char           *msg_id,
                                                  NatterStoreMessageState state,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_update_message_state_finish (NatterStore     *self,
                                                  GAsyncResult         *result,
                                                  gboolean             *changed,
                                                  GError              **error);
void         natter_store_get_message_async      (NatterStore          *self,
                                                  const char           *msg_id,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
NatterStoreMessage *natter_store_get_message_finish (NatterStore       *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_load_page_async        (NatterStore          *self,
                                                  gint64                conversation_id,
                                                  gint64                before_id,
                                                  guint                 limit,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_load_page_finish       (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_count_messages_async   (NatterStore          *self,
                                                  gint64                conversation_id,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gint64       natter_store_count_messages_finish  (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_search_async           (NatterStore          *self,
                                                  const char           *query,
                                                  gint64                conversation_id,
                                                  guint                 limit,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_search_finish          (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* Outbox */
void         natter_store_outbox_add_async       (NatterStore          *self,
                                                  const NatterStoreOutboxEntry *entry,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_outbox_add_finish      (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_outbox_remove_async    (NatterStore          *self,
                                                  const char           *msg_id,
                                                  const char           *recipient,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_outbox_remove_finish   (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_outbox_reschedule_async (NatterStore         *self,
                                                  const char           *msg_id,
                                                  const char           *recipient,
                                                  gint64                next_attempt,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_outbox_reschedule_finish (NatterStore        *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_outbox_due_async       (NatterStore          *self,
                                                  gint64                now,
                                                  guint                 limit,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_outbox_due_finish      (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_outbox_take_expired_async (NatterStore       *self,
                                                  gint64                now,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_outbox_take_expired_finish (NatterStore      *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* Relay store */
void         natter_store_relay_add_async        (NatterStore          *self,
                                                  const NatterStoreRelayEntry *entry,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_relay_add_finish       (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  gboolean             *was_new,
                                                  GError              **error);
void         natter_store_relay_take_for_recipient_async (NatterStore  *self,
                                                  const char           *recipient,
                                                  gint64                now,
                                                  guint                 limit,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_relay_take_for_recipient_finish (NatterStore *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_relay_bytes_for_recipient_async (NatterStore *self,
                                                  const char           *recipient,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gint64       natter_store_relay_bytes_for_recipient_finish (NatterStore *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_relay_delete_expired_async (NatterStore      *self,
                                                  gint64                now,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gint64       natter_store_relay_delete_expired_finish (NatterStore     *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* Receipts */
void         natter_store_receipt_add_async      (NatterStore          *self,
                                                  const char           *msg_id,
                                                  const char           *peer_id,
                                                  NatterStoreReceiptKind kind,
                                                  gint64                at,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
gboolean     natter_store_receipt_add_finish     (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);
void         natter_store_list_receipts_async    (NatterStore          *self,
                                                  const char           *msg_id,
                                                  GCancellable         *cancellable,
                                                  GAsyncReadyCallback   callback,
                                                  gpointer              user_data);
GPtrArray   *natter_store_list_receipts_finish   (NatterStore          *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

G_END_DECLS
