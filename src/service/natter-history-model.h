/* natter-history-model.h: a conversation's messages, paged from the store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-message-item.h"
#include "natter-store.h"

G_BEGIN_DECLS

/* A GListModel of NatterMessageItem, oldest first.  It starts empty; each
 * load_older() reads one page of older messages from the store (on its
 * worker) and inserts it at the front.  New messages of the conversation
 * are appended by the service as they are committed, so a window shows
 * only what it has scrolled to, however long the history is. */

#define NATTER_HISTORY_PAGE_SIZE 30

#define NATTER_TYPE_HISTORY_MODEL (natter_history_model_get_type ())
G_DECLARE_FINAL_TYPE (NatterHistoryModel, natter_history_model, NATTER, HISTORY_MODEL, GObject)

NatterHistoryModel *natter_history_model_new (NatterStore *store,
                                              gint64       conversation_id,
                                              const char  *peer_id);

gint64      natter_history_model_get_conversation_id (NatterHistoryModel *self);
const char *natter_history_model_get_peer_id         (NatterHistoryModel *self);
/* TRUE once the oldest message is loaded. */
gboolean    natter_history_model_get_complete        (NatterHistoryModel *self);

/* Loads up to @count (0: a page) older messages. */
void        natter_history_model_load_older_async    (NatterHistoryModel  *self,
                                                      guint                count,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
gboolean    natter_history_model_load_older_finish   (NatterHistoryModel  *self,
                                                      GAsyncResult        *result,
                                                      guint               *n_loaded,
                                                      GError             **error);

/* Full-text search in this conversation (FTS5 in the store): a GListModel
 * of NatterMessageItem, newest first.  Messages already loaded are the
 * model's own items, so their delivery state stays live. */
void        natter_history_model_search_async        (NatterHistoryModel  *self,
                                                      const char          *query,
                                                      guint                limit,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
GListModel *natter_history_model_search_finish       (NatterHistoryModel  *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);

/* Used by the service. */
void               natter_history_model_append   (NatterHistoryModel *self,
                                                  NatterMessageItem  *item);
NatterMessageItem *natter_history_model_lookup   (NatterHistoryModel *self,
                                                  const char         *msg_id);

G_END_DECLS
