/* natter-store.c: the asynchronous message store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include "natter-store.h"

/*
 * One worker thread owns the NatterDb (and so the sqlite3 connection).
 * Every operation is a GTask pushed onto a GAsyncQueue; the worker pops
 * them in FIFO order, runs them, and completes them with g_task_return_*,
 * which delivers the result on the GMainContext that was the thread-default
 * when the operation was started.  No SQLite call ever runs on the main
 * context.
 *
 * Tasks keep the store alive, so the store is disposed only when nothing is
 * pending, unless g_object_run_dispose() forces it: then the worker fails
 * what is still queued with NATTER_STORE_ERROR_CLOSED instead of running
 * it.  Either way dispose waits for at most the one operation in progress.
 *
 * Cancellation is checked when an operation reaches the front of the
 * queue.  Once it has started it runs to completion and reports what
 * really happened (check-cancellable is off): a message whose insert was
 * committed must be reported stored, so that it can be acknowledged.
 *
 * Between operations the worker also indexes new messages for search (see
 * natter-db-schema.c): while some are pending it waits on the queue only
 * until natter_db_get_index_deadline(), so a message becomes searchable
 * by its batch within NATTER_DB_INDEX_DELAY_MS even when the store is
 * otherwise idle, and at once for searches, which flush first.
 */

typedef struct _Worker Worker;
typedef struct _StoreOp StoreOp;

typedef void (*StoreWorkFunc) (Worker  *worker,
                               GTask   *task,
                               StoreOp *op);

/* Arguments of an operation, copied on the caller's thread so that the
 * worker shares nothing with it. */
struct _StoreOp
{
  StoreWorkFunc       func;
  gboolean            needs_db;
  gint64              i1;
  gint64              i2;
  guint               limit;
  int                 e;
  char               *s1;
  char               *s2;
  char               *s3;
  gpointer            p;
  GDestroyNotify      p_free;
  NatterStoreRunFunc  run_func;
  GDestroyNotify      result_free;
};

struct _Worker
{
  GAsyncQueue *queue;
  char        *path;
  NatterDb    *db;
  int          closing;   /* atomic */
};

struct _NatterStore
{
  GObject  parent_instance;

  char    *path;
  Worker  *worker;
  GThread *thread;
};

G_DEFINE_FINAL_TYPE (NatterStore, natter_store, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_PATH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* Pushed by dispose to end the worker loop. */
static int quit_marker;
#define QUIT_MARKER ((gpointer) &quit_marker)

static void
store_op_free (StoreOp *op)
{
  g_free (op->s1);
  g_free (op->s2);
  g_free (op->s3);
  if (op->p_free != NULL && op->p != NULL)
    op->p_free (op->p);
  g_free (op);
}

static void
worker_free (Worker *worker)
{
  g_async_queue_unref (worker->queue);
  g_free (worker->path);
  /* The worker closes the connection before it exits; this is a guard. */
  g_clear_pointer (&worker->db, natter_db_close);
}

static gboolean
release_task (gpointer data)
{
  g_object_unref (data);
  return G_SOURCE_REMOVE;
}

/* Returns the next operation, or %NULL once the pending index batch is
 * due (which this then runs). */
static GTask *
worker_next (Worker *worker)
{
  g_autoptr(GError) error = NULL;
  gint64 deadline;
  gint64 now;
  GTask *task;

  deadline = worker->db != NULL ? natter_db_get_index_deadline (worker->db) : 0;
  if (deadline == 0)
    return g_async_queue_pop (worker->queue);

  now = g_get_monotonic_time ();
  if (deadline > now)
    {
      task = g_async_queue_timeout_pop (worker->queue, (guint64) (deadline - now));
      if (task != NULL)
        return task;
    }

  /* The messages are committed and safe; a failed batch is retried after
   * the delay, and searches report the error instead of missing them. */
  if (!natter_db_flush_index (worker->db, &error))
    g_warning ("Could not index new messages for search: %s", error->message);
  return NULL;
}

static gpointer
worker_main (gpointer data)
{
  Worker *worker = data;

  for (;;)
    {
      GTask *task = worker_next (worker);
      StoreOp *op;
      GSource *source;

      if (task == NULL)
        continue;
      if ((gpointer) task == QUIT_MARKER)
        break;

      op = g_task_get_task_data (task);
      if (g_atomic_int_get (&worker->closing))
        g_task_return_new_error (task, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CLOSED,
                                 "The message store is closing");
      else if (g_task_return_error_if_cancelled (task))
        ;
      else if (op->needs_db && worker->db == NULL)
        g_task_return_new_error (task, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CLOSED,
                                 "The message store is not open");
      else
        op->func (worker, task, op);

      /* Our reference is dropped on the task's context, after its
       * completion (same priority, attached later).  Dropping it here
       * could release the last reference to the store on this thread,
       * which would then dispose the store and wait for itself. */
      source = g_idle_source_new ();
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, release_task, task, NULL);
      g_source_set_static_name (source, "[natter-store] release task");
      g_source_attach (source, g_task_get_context (task));
      g_source_unref (source);
    }

  g_clear_pointer (&worker->db, natter_db_close);
  g_atomic_rc_box_release_full (worker, (GDestroyNotify) worker_free);
  return NULL;
}

static void
natter_store_constructed (GObject *object)
{
  NatterStore *self = NATTER_STORE (object);

  G_OBJECT_CLASS (natter_store_parent_class)->constructed (object);

  self->worker = g_atomic_rc_box_new0 (Worker);
  self->worker->queue = g_async_queue_new ();
  self->worker->path = g_strdup (self->path);
  self->thread = g_thread_new ("natter-store",
                               worker_main,
                               g_atomic_rc_box_acquire (self->worker));
}

static void
natter_store_dispose (GObject *object)
{
  NatterStore *self = NATTER_STORE (object);

  if (self->thread != NULL)
    {
      g_atomic_int_set (&self->worker->closing, TRUE);
      g_async_queue_push (self->worker->queue, QUIT_MARKER);

      /* The worker never drops a task reference itself (see
       * worker_main()), so this does not run on the worker; the check
       * only turns a future mistake into a leak instead of a deadlock. */
      if (g_thread_self () == self->thread)
        g_thread_unref (g_steal_pointer (&self->thread));
      else
        g_thread_join (g_steal_pointer (&self->thread));

      g_atomic_rc_box_release_full (g_steal_pointer (&self->worker),
                                    (GDestroyNotify) worker_free);
    }

  G_OBJECT_CLASS (natter_store_parent_class)->dispose (object);
}

static void
natter_store_finalize (GObject *object)
{
  NatterStore *self = NATTER_STORE (object);

  g_clear_pointer (&self->path, g_free);

  G_OBJECT_CLASS (natter_store_parent_class)->finalize (object);
}

static void
natter_store_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  NatterStore *self = NATTER_STORE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_store_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  NatterStore *self = NATTER_STORE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      self->path = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
natter_store_class_init (NatterStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = natter_store_constructed;
  object_class->dispose = natter_store_dispose;
  object_class->finalize = natter_store_finalize;
  object_class->get_property = natter_store_get_property;
  object_class->set_property = natter_store_set_property;

  /**
   * NatterStore:path:
   *
   * The database file.
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
natter_store_init (NatterStore *self)
{
}

/**
 * natter_store_new:
 * @path: the database file, created if missing
 *
 * Creates a store and its worker thread.  Nothing touches the disk until
 * natter_store_open_async().
 *
 * Returns: (transfer full): a new store
 */
NatterStore *
natter_store_new (const char *path)
{
  g_return_val_if_fail (path != NULL, NULL);

  return g_object_new (NATTER_TYPE_STORE, "path", path, NULL);
}

const char *
natter_store_get_path (NatterStore *self)
{
  g_return_val_if_fail (NATTER_IS_STORE (self), NULL);
  return self->path;
}

/* Plumbing */

static StoreOp *
store_op_new (StoreWorkFunc func)
{
  StoreOp *op = g_new0 (StoreOp, 1);

  op->func = func;
  op->needs_db = TRUE;
  return op;
}

static void
store_queue (NatterStore         *self,
             StoreOp             *op,
             gpointer             source_tag,
             GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, op, (GDestroyNotify) store_op_free);

  if (self->worker == NULL)
    {
      g_task_return_new_error (task, NATTER_STORE_ERROR, NATTER_STORE_ERROR_CLOSED,
                               "The message store is closed");
      return;
    }
  g_async_queue_push (self->worker->queue, g_steal_pointer (&task));
}

static gboolean
check_result (NatterStore  *self,
              GAsyncResult *result,
              gpointer      source_tag)
{
  g_return_val_if_fail (NATTER_IS_STORE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);
  return TRUE;
}

/* Returns @array (or its error) through @task. */
static void
return_array (GTask     *task,
              GPtrArray *array,
              GError    *error)
{
  if (array == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, array, (GDestroyNotify) g_ptr_array_unref);
}

static void
return_boolean (GTask    *task,
                gboolean  ok,
                GError   *error)
{
  if (!ok)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* gssize is too small for gint64 on 32-bit systems, so 64-bit results
 * travel boxed. */
static void
return_int64 (GTask  *task,
              gint64  value,
              GError *error)
{
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, g_memdup2 (&value, sizeof value), g_free);
}

static gint64
propagate_int64 (GAsyncResult  *result,
                 gint64         on_error,
                 GError       **error)
{
  g_autofree gint64 *value = g_task_propagate_pointer (G_TASK (result), error);

  return value ? *value : on_error;
}

static GListModel *
array_to_model (GPtrArray *array,
                GType      item_type)
{
  GListStore *model = g_list_store_new (item_type);

  g_list_store_splice (model, 0, 0, array->pdata, array->len);
  return G_LIST_MODEL (model);
}

/* Open and close */

static void
do_open (Worker  *worker,
         GTask   *task,
         StoreOp *op)
{
  GError *error = NULL;

  if (worker->db != NULL)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  worker->db = natter_db_open (worker->path, &error);
  return_boolean (task, worker->db != NULL, error);
}

/**
 * natter_store_open_async:
 * @self: a store
 * @cancellable: (nullable): a #GCancellable
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 *
 * Opens the database and upgrades its schema.  Opening an open store
 * succeeds at once.
 */
void
natter_store_open_async (NatterStore         *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_open);
  op->needs_db = FALSE;
  store_queue (self, op, natter_store_open_async, cancellable, callback, user_data);
}

/**
 * natter_store_open_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError (%NATTER_STORE_ERROR_TOO_NEW,
 *   %NATTER_STORE_ERROR_CORRUPT, %NATTER_STORE_ERROR_IO, ...)
 *
 * Returns: %TRUE if the store is open
 */
gboolean
natter_store_open_finish (NatterStore   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_open_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
do_close (Worker  *worker,
          GTask   *task,
          StoreOp *op)
{
  g_clear_pointer (&worker->db, natter_db_close);
  g_task_return_boolean (task, TRUE);
}

/**
 * natter_store_close_async:
 * @self: a store
 * @cancellable: (nullable): a #GCancellable
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 *
 * Closes the database after the operations queued before this one.
 * Operations queued after it fail with %NATTER_STORE_ERROR_CLOSED until
 * the store is opened again.
 */
void
natter_store_close_async (NatterStore         *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_close);
  op->needs_db = FALSE;
  store_queue (self, op, natter_store_close_async, cancellable, callback, user_data);
}

gboolean
natter_store_close_finish (NatterStore   *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_close_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Any work */

static void
do_run (Worker  *worker,
        GTask   *task,
        StoreOp *op)
{
  GError *error = NULL;
  gpointer result = op->run_func (worker->db, op->p, &error);

  if (result == NULL)
    {
      if (error == NULL)
        error = g_error_new_literal (NATTER_STORE_ERROR, NATTER_STORE_ERROR_FAILED,
                                     "A store operation failed without saying why");
      g_task_return_error (task, error);
    }
  else
    g_task_return_pointer (task, result, op->result_free);
}

/**
 * natter_store_run_async:
 * @self: a store
 * @func: the work, run on the worker thread with the connection
 * @func_data: data for @func
 * @func_data_free: (nullable): frees @func_data once the task is done
 * @result_free: (nullable): frees @func's result if nobody claims it
 * @cancellable: (nullable): a #GCancellable
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 *
 * Runs any #NatterDb work in order with the other operations, for the
 * calls without a dedicated wrapper (groups, file transfers) or several
 * calls that belong together.
 */
void
natter_store_run_async (NatterStore         *self,
                        NatterStoreRunFunc   func,
                        gpointer             func_data,
                        GDestroyNotify       func_data_free,
                        GDestroyNotify       result_free,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (func != NULL);

  op = store_op_new (do_run);
  op->run_func = func;
  op->p = func_data;
  op->p_free = func_data_free;
  op->result_free = result_free;
  store_queue (self, op, natter_store_run_async, cancellable, callback, user_data);
}

/**
 * natter_store_run_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (nullable): what the #NatterStoreRunFunc
 *   returned, or %NULL on error
 */
gpointer
natter_store_run_finish (NatterStore   *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_run_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Contacts */

static void
do_list_contacts (Worker  *worker,
                  GTask   *task,
                  StoreOp *op)
{
  GError *error = NULL;
  g_autoptr(GPtrArray) contacts = natter_db_list_contacts (worker->db, &error);

  if (contacts == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, array_to_model (contacts, NATTER_TYPE_CONTACT), g_object_unref);
}

void
natter_store_list_contacts_async (NatterStore         *self,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_return_if_fail (NATTER_IS_STORE (self));

  store_queue (self, store_op_new (do_list_contacts), natter_store_list_contacts_async,
               cancellable, callback, user_data);
}

/**
 * natter_store_list_contacts_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full): a list of #NatterContact sorted by name
 */
GListModel *
natter_store_list_contacts_finish (NatterStore   *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_list_contacts_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
do_upsert_contact (Worker  *worker,
                   GTask   *task,
                   StoreOp *op)
{
  GError *error = NULL;
  gboolean ok = natter_db_upsert_contact (worker->db, op->p, &error);

  return_boolean (task, ok, error);
}

/**
 * natter_store_upsert_contact_async:
 * @self: a store
 * @contact: the contact (its values are copied now)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 */
void
natter_store_upsert_contact_async (NatterStore         *self,
                                   NatterContact       *contact,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (NATTER_IS_CONTACT (contact));

  /* A private copy: the UI may change its object while the worker reads. */
  op = store_op_new (do_upsert_contact);
  op->p = natter_contact_new (natter_contact_get_peer_id (contact),
                              natter_contact_get_display_name (contact),
                              natter_contact_get_state (contact),
                              natter_contact_get_verified (contact),
                              natter_contact_get_added_at (contact));
  op->p_free = g_object_unref;
  store_queue (self, op, natter_store_upsert_contact_async, cancellable, callback, user_data);
}

gboolean
natter_store_upsert_contact_finish (NatterStore   *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_upsert_contact_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
do_set_contact_state (Worker  *worker,
                      GTask   *task,
                      StoreOp *op)
{
  GError *error = NULL;
  gboolean ok = natter_db_set_contact_state (worker->db, op->s1, op->e, &error);

  return_boolean (task, ok, error);
}

void
natter_store_set_contact_state_async (NatterStore         *self,
                                      const char          *peer_id,
                                      NatterContactState   state,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (peer_id != NULL);

  op = store_op_new (do_set_contact_state);
  op->s1 = g_strdup (peer_id);
  op->e = state;
  store_queue (self, op, natter_store_set_contact_state_async, cancellable, callback, user_data);
}

gboolean
natter_store_set_contact_state_finish (NatterStore   *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_set_contact_state_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Conversations */

static void
do_list_conversations (Worker  *worker,
                       GTask   *task,
                       StoreOp *op)
{
  GError *error = NULL;
  g_autoptr(GPtrArray) conversations = natter_db_list_conversations (worker->db, &error);

  if (conversations == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, array_to_model (conversations, NATTER_TYPE_CONVERSATION),
                           g_object_unref);
}

void
natter_store_list_conversations_async (NatterStore         *self,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_return_if_fail (NATTER_IS_STORE (self));

  store_queue (self, store_op_new (do_list_conversations),
               natter_store_list_conversations_async, cancellable, callback, user_data);
}

/**
 * natter_store_list_conversations_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full): a list of #NatterConversation, most recently
 *   active first
 */
GListModel *
natter_store_list_conversations_finish (NatterStore   *self,
                                        GAsyncResult  *result,
                                        GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_list_conversations_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
do_ensure_conversation (Worker  *worker,
                        GTask   *task,
                        StoreOp *op)
{
  GError *error = NULL;
  gint64 id = natter_db_ensure_conversation (worker->db, op->e, op->s1, op->s2, &error);

  return_int64 (task, id, error);
}

void
natter_store_ensure_conversation_async (NatterStore            *self,
                                        NatterConversationKind  kind,
                                        const char             *peer_or_group_id,
                                        const char             *title,
                                        GCancellable           *cancellable,
                                        GAsyncReadyCallback     callback,
                                        gpointer                user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (peer_or_group_id != NULL);

  op = store_op_new (do_ensure_conversation);
  op->e = kind;
  op->s1 = g_strdup (peer_or_group_id);
  op->s2 = g_strdup (title);
  store_queue (self, op, natter_store_ensure_conversation_async, cancellable, callback, user_data);
}

/**
 * natter_store_ensure_conversation_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: the conversation id, or 0 on error
 */
gint64
natter_store_ensure_conversation_finish (NatterStore   *self,
                                         GAsyncResult  *result,
                                         GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_ensure_conversation_async), 0);
  return propagate_int64 (result, 0, error);
}

static void
do_mark_conversation_read (Worker  *worker,
                           GTask   *task,
                           StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *msg_ids = natter_db_mark_conversation_read (worker->db, op->i1, &error);

  return_array (task, msg_ids, error);
}

void
natter_store_mark_conversation_read_async (NatterStore         *self,
                                           gint64               conversation_id,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_mark_conversation_read);
  op->i1 = conversation_id;
  store_queue (self, op, natter_store_mark_conversation_read_async, cancellable, callback, user_data);
}

/**
 * natter_store_mark_conversation_read_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type utf8): the msg_ids that became read
 */
GPtrArray *
natter_store_mark_conversation_read_finish (NatterStore   *self,
                                            GAsyncResult  *result,
                                            GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_mark_conversation_read_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Messages */

typedef struct
{
  gint64   id;
  gboolean flag;
} IdAndFlag;

static void
do_insert_message (Worker  *worker,
                   GTask   *task,
                   StoreOp *op)
{
  GError *error = NULL;
  IdAndFlag result = { 0, FALSE };
  NatterStoreMessage *message = op->p;

  if (!natter_db_insert_message (worker->db, message, &result.flag, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  result.id = message->id;
  g_task_return_pointer (task, g_memdup2 (&result, sizeof result), g_free);
}

/**
 * natter_store_insert_message_async:
 * @self: a store
 * @message: the message (copied now)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 *
 * Stores a message, idempotently by msg_id (see natter_db_insert_message()).
 */
void
natter_store_insert_message_async (NatterStore              *self,
                                   const NatterStoreMessage *message,
                                   GCancellable             *cancellable,
                                   GAsyncReadyCallback       callback,
                                   gpointer                  user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (message != NULL);

  op = store_op_new (do_insert_message);
  op->p = natter_store_message_copy (message);
  op->p_free = (GDestroyNotify) natter_store_message_free;
  store_queue (self, op, natter_store_insert_message_async, cancellable, callback, user_data);
}

/**
 * natter_store_insert_message_finish:
 * @self: a store
 * @result: the result
 * @was_new: (out) (optional): %FALSE if the msg_id was already stored
 * @error: return location for a #GError
 *
 * When this succeeds the message is committed to disk.
 *
 * Returns: the message's row id, or 0 on error
 */
gint64
natter_store_insert_message_finish (NatterStore   *self,
                                    GAsyncResult  *result,
                                    gboolean      *was_new,
                                    GError       **error)
{
  g_autofree IdAndFlag *value = NULL;

  g_return_val_if_fail (check_result (self, result, natter_store_insert_message_async), 0);

  value = g_task_propagate_pointer (G_TASK (result), error);
  if (value == NULL)
    return 0;
  if (was_new != NULL)
    *was_new = value->flag;
  return value->id;
}

static void
do_update_message_state (Worker  *worker,
                         GTask   *task,
                         StoreOp *op)
{
  GError *error = NULL;
  gboolean changed = FALSE;

  if (!natter_db_update_message_state (worker->db, op->s1, op->e, &changed, &error))
    g_task_return_error (task, error);
  else
    g_task_return_int (task, changed);
}

void
natter_store_update_message_state_async (NatterStore             *self,
                                         const char              *msg_id,
                                         NatterStoreMessageState  state,
                                         GCancellable            *cancellable,
                                         GAsyncReadyCallback      callback,
                                         gpointer                 user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (msg_id != NULL);

  op = store_op_new (do_update_message_state);
  op->s1 = g_strdup (msg_id);
  op->e = state;
  store_queue (self, op, natter_store_update_message_state_async, cancellable, callback, user_data);
}

/**
 * natter_store_update_message_state_finish:
 * @self: a store
 * @result: the result
 * @changed: (out) (optional): %FALSE if the state was not a step forward
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success
 */
gboolean
natter_store_update_message_state_finish (NatterStore   *self,
                                          GAsyncResult  *result,
                                          gboolean      *changed,
                                          GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  gssize value;

  g_return_val_if_fail (check_result (self, result, natter_store_update_message_state_async), FALSE);

  value = g_task_propagate_int (G_TASK (result), &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (changed != NULL)
    *changed = value != 0;
  return TRUE;
}

static void
do_get_message (Worker  *worker,
                GTask   *task,
                StoreOp *op)
{
  GError *error = NULL;
  NatterStoreMessage *message = natter_db_get_message (worker->db, op->s1, &error);

  if (message == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, message, (GDestroyNotify) natter_store_message_free);
}

void
natter_store_get_message_async (NatterStore         *self,
                                const char          *msg_id,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (msg_id != NULL);

  op = store_op_new (do_get_message);
  op->s1 = g_strdup (msg_id);
  store_queue (self, op, natter_store_get_message_async, cancellable, callback, user_data);
}

/**
 * natter_store_get_message_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the message with its wire bytes
 */
NatterStoreMessage *
natter_store_get_message_finish (NatterStore   *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_get_message_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
do_load_page (Worker  *worker,
              GTask   *task,
              StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *page = natter_db_load_page (worker->db, op->i1, op->i2, op->limit, &error);

  return_array (task, page, error);
}

/**
 * natter_store_load_page_async:
 * @self: a store
 * @conversation_id: a conversation id
 * @before_id: the row id of the oldest message already shown, or 0
 * @limit: the page size
 * @cancellable: (nullable): a #GCancellable
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 *
 * Loads a page of history, newest first (see natter_db_load_page()).
 */
void
natter_store_load_page_async (NatterStore         *self,
                              gint64               conversation_id,
                              gint64               before_id,
                              guint                limit,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_load_page);
  op->i1 = conversation_id;
  op->i2 = before_id;
  op->limit = limit;
  store_queue (self, op, natter_store_load_page_async, cancellable, callback, user_data);
}

/**
 * natter_store_load_page_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreMessage): the page
 */
GPtrArray *
natter_store_load_page_finish (NatterStore   *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_load_page_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
do_count_messages (Worker  *worker,
                   GTask   *task,
                   StoreOp *op)
{
  GError *error = NULL;
  gint64 count = natter_db_count_messages (worker->db, op->i1, &error);

  return_int64 (task, count, error);
}

void
natter_store_count_messages_async (NatterStore         *self,
                                   gint64               conversation_id,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_count_messages);
  op->i1 = conversation_id;
  store_queue (self, op, natter_store_count_messages_async, cancellable, callback, user_data);
}

/* Returns: the number of messages, or -1 on error */
gint64
natter_store_count_messages_finish (NatterStore   *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_count_messages_async), -1);
  return propagate_int64 (result, -1, error);
}

static void
do_search (Worker  *worker,
           GTask   *task,
           StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *hits = natter_db_search (worker->db, op->s1, op->i1, op->limit, &error);

  return_array (task, hits, error);
}

/**
 * natter_store_search_async:
 * @self: a store
 * @query: what the user typed
 * @conversation_id: a conversation, or 0 for all
 * @limit: the most results
 * @cancellable: (nullable): a #GCancellable; search-as-you-type should
 *   cancel the previous search
 * @callback: called on the current thread-default main context
 * @user_data: data for @callback
 */
void
natter_store_search_async (NatterStore         *self,
                           const char          *query,
                           gint64               conversation_id,
                           guint                limit,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (query != NULL);

  op = store_op_new (do_search);
  op->s1 = g_strdup (query);
  op->i1 = conversation_id;
  op->limit = limit;
  store_queue (self, op, natter_store_search_async, cancellable, callback, user_data);
}

/**
 * natter_store_search_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreMessage): the matches,
 *   newest first
 */
GPtrArray *
natter_store_search_finish (NatterStore   *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_search_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Outbox */

static NatterStoreOutboxEntry *
outbox_entry_copy (const NatterStoreOutboxEntry *entry)
{
  NatterStoreOutboxEntry *copy = natter_store_outbox_entry_new ();

  copy->msg_id = g_strdup (entry->msg_id);
  copy->recipient = g_strdup (entry->recipient);
  copy->wire = entry->wire ? g_bytes_ref (entry->wire) : NULL;
  copy->next_attempt = entry->next_attempt;
  copy->attempts = entry->attempts;
  copy->expires_at = entry->expires_at;
  return copy;
}

static void
do_outbox_add (Worker  *worker,
               GTask   *task,
               StoreOp *op)
{
  GError *error = NULL;
  gboolean ok = natter_db_outbox_add (worker->db, op->p, &error);

  return_boolean (task, ok, error);
}

void
natter_store_outbox_add_async (NatterStore                  *self,
                               const NatterStoreOutboxEntry *entry,
                               GCancellable                 *cancellable,
                               GAsyncReadyCallback           callback,
                               gpointer                      user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (entry != NULL);

  op = store_op_new (do_outbox_add);
  op->p = outbox_entry_copy (entry);
  op->p_free = (GDestroyNotify) natter_store_outbox_entry_free;
  store_queue (self, op, natter_store_outbox_add_async, cancellable, callback, user_data);
}

gboolean
natter_store_outbox_add_finish (NatterStore   *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_outbox_add_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
do_outbox_remove (Worker  *worker,
                  GTask   *task,
                  StoreOp *op)
{
  GError *error = NULL;
  gboolean ok = natter_db_outbox_remove (worker->db, op->s1, op->s2, &error);

  return_boolean (task, ok, error);
}

void
natter_store_outbox_remove_async (NatterStore         *self,
                                  const char          *msg_id,
                                  const char          *recipient,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (msg_id != NULL);

  op = store_op_new (do_outbox_remove);
  op->s1 = g_strdup (msg_id);
  op->s2 = g_strdup (recipient);
  store_queue (self, op, natter_store_outbox_remove_async, cancellable, callback, user_data);
}

gboolean
natter_store_outbox_remove_finish (NatterStore   *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_outbox_remove_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
do_outbox_reschedule (Worker  *worker,
                      GTask   *task,
                      StoreOp *op)
{
  GError *error = NULL;
  gboolean ok = natter_db_outbox_reschedule (worker->db, op->s1, op->s2, op->i1, &error);

  return_boolean (task, ok, error);
}

void
natter_store_outbox_reschedule_async (NatterStore         *self,
                                      const char          *msg_id,
                                      const char          *recipient,
                                      gint64               next_attempt,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (msg_id != NULL && recipient != NULL);

  op = store_op_new (do_outbox_reschedule);
  op->s1 = g_strdup (msg_id);
  op->s2 = g_strdup (recipient);
  op->i1 = next_attempt;
  store_queue (self, op, natter_store_outbox_reschedule_async, cancellable, callback, user_data);
}

gboolean
natter_store_outbox_reschedule_finish (NatterStore   *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_outbox_reschedule_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
do_outbox_due (Worker  *worker,
               GTask   *task,
               StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *due = natter_db_outbox_due (worker->db, op->i1, op->limit, &error);

  return_array (task, due, error);
}

void
natter_store_outbox_due_async (NatterStore         *self,
                               gint64               now,
                               guint                limit,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_outbox_due);
  op->i1 = now;
  op->limit = limit;
  store_queue (self, op, natter_store_outbox_due_async, cancellable, callback, user_data);
}

/**
 * natter_store_outbox_due_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreOutboxEntry): due entries
 */
GPtrArray *
natter_store_outbox_due_finish (NatterStore   *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_outbox_due_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
do_outbox_take_expired (Worker  *worker,
                        GTask   *task,
                        StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *expired = natter_db_outbox_take_expired (worker->db, op->i1, &error);

  return_array (task, expired, error);
}

void
natter_store_outbox_take_expired_async (NatterStore         *self,
                                        gint64               now,
                                        GCancellable        *cancellable,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_outbox_take_expired);
  op->i1 = now;
  store_queue (self, op, natter_store_outbox_take_expired_async, cancellable, callback, user_data);
}

/**
 * natter_store_outbox_take_expired_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreOutboxEntry): the
 *   expired entries, now removed
 */
GPtrArray *
natter_store_outbox_take_expired_finish (NatterStore   *self,
                                         GAsyncResult  *result,
                                         GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_outbox_take_expired_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Relay store */

static NatterStoreRelayEntry *
relay_entry_copy (const NatterStoreRelayEntry *entry)
{
  NatterStoreRelayEntry *copy = natter_store_relay_entry_new ();

  copy->msg_id = g_strdup (entry->msg_id);
  copy->recipient = g_strdup (entry->recipient);
  copy->sender = g_strdup (entry->sender);
  copy->wire = entry->wire ? g_bytes_ref (entry->wire) : NULL;
  copy->received_at = entry->received_at;
  copy->expires_at = entry->expires_at;
  copy->size = entry->size;
  return copy;
}

static void
do_relay_add (Worker  *worker,
              GTask   *task,
              StoreOp *op)
{
  GError *error = NULL;
  gboolean was_new = FALSE;

  if (!natter_db_relay_add (worker->db, op->p, &was_new, &error))
    g_task_return_error (task, error);
  else
    g_task_return_int (task, was_new);
}

void
natter_store_relay_add_async (NatterStore                 *self,
                              const NatterStoreRelayEntry *entry,
                              GCancellable                *cancellable,
                              GAsyncReadyCallback          callback,
                              gpointer                     user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (entry != NULL);

  op = store_op_new (do_relay_add);
  op->p = relay_entry_copy (entry);
  op->p_free = (GDestroyNotify) natter_store_relay_entry_free;
  store_queue (self, op, natter_store_relay_add_async, cancellable, callback, user_data);
}

gboolean
natter_store_relay_add_finish (NatterStore   *self,
                               GAsyncResult  *result,
                               gboolean      *was_new,
                               GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  gssize value;

  g_return_val_if_fail (check_result (self, result, natter_store_relay_add_async), FALSE);

  value = g_task_propagate_int (G_TASK (result), &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (was_new != NULL)
    *was_new = value != 0;
  return TRUE;
}

static void
do_relay_take (Worker  *worker,
               GTask   *task,
               StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *entries = natter_db_relay_take_for_recipient (worker->db, op->s1, op->i1,
                                                           op->limit, &error);

  return_array (task, entries, error);
}

void
natter_store_relay_take_for_recipient_async (NatterStore         *self,
                                             const char          *recipient,
                                             gint64               now,
                                             guint                limit,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (recipient != NULL);

  op = store_op_new (do_relay_take);
  op->s1 = g_strdup (recipient);
  op->i1 = now;
  op->limit = limit;
  store_queue (self, op, natter_store_relay_take_for_recipient_async,
               cancellable, callback, user_data);
}

/**
 * natter_store_relay_take_for_recipient_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreRelayEntry): the
 *   entries, now removed from the store, oldest first
 */
GPtrArray *
natter_store_relay_take_for_recipient_finish (NatterStore   *self,
                                              GAsyncResult  *result,
                                              GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_relay_take_for_recipient_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
do_relay_bytes (Worker  *worker,
                GTask   *task,
                StoreOp *op)
{
  GError *error = NULL;
  gint64 bytes = natter_db_relay_bytes_for_recipient (worker->db, op->s1, &error);

  return_int64 (task, bytes, error);
}

void
natter_store_relay_bytes_for_recipient_async (NatterStore         *self,
                                              const char          *recipient,
                                              GCancellable        *cancellable,
                                              GAsyncReadyCallback  callback,
                                              gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (recipient != NULL);

  op = store_op_new (do_relay_bytes);
  op->s1 = g_strdup (recipient);
  store_queue (self, op, natter_store_relay_bytes_for_recipient_async,
               cancellable, callback, user_data);
}

/* Returns: the bytes held for the recipient, or -1 on error */
gint64
natter_store_relay_bytes_for_recipient_finish (NatterStore   *self,
                                               GAsyncResult  *result,
                                               GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_relay_bytes_for_recipient_async), -1);
  return propagate_int64 (result, -1, error);
}

static void
do_relay_delete_expired (Worker  *worker,
                         GTask   *task,
                         StoreOp *op)
{
  GError *error = NULL;
  gint64 deleted = natter_db_relay_delete_expired (worker->db, op->i1, &error);

  return_int64 (task, deleted, error);
}

void
natter_store_relay_delete_expired_async (NatterStore         *self,
                                         gint64               now,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));

  op = store_op_new (do_relay_delete_expired);
  op->i1 = now;
  store_queue (self, op, natter_store_relay_delete_expired_async, cancellable, callback, user_data);
}

/* Returns: the number of entries deleted, or -1 on error */
gint64
natter_store_relay_delete_expired_finish (NatterStore   *self,
                                          GAsyncResult  *result,
                                          GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_relay_delete_expired_async), -1);
  return propagate_int64 (result, -1, error);
}

/* Receipts */

static void
do_receipt_add (Worker  *worker,
                GTask   *task,
                StoreOp *op)
{
  GError *error = NULL;
  gboolean ok = natter_db_receipt_add (worker->db, op->s1, op->s2, op->e, op->i1, &error);

  return_boolean (task, ok, error);
}

void
natter_store_receipt_add_async (NatterStore            *self,
                                const char             *msg_id,
                                const char             *peer_id,
                                NatterStoreReceiptKind  kind,
                                gint64                  at,
                                GCancellable           *cancellable,
                                GAsyncReadyCallback     callback,
                                gpointer                user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (msg_id != NULL && peer_id != NULL);

  op = store_op_new (do_receipt_add);
  op->s1 = g_strdup (msg_id);
  op->s2 = g_strdup (peer_id);
  op->e = kind;
  op->i1 = at;
  store_queue (self, op, natter_store_receipt_add_async, cancellable, callback, user_data);
}

gboolean
natter_store_receipt_add_finish (NatterStore   *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_receipt_add_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
do_list_receipts (Worker  *worker,
                  GTask   *task,
                  StoreOp *op)
{
  GError *error = NULL;
  GPtrArray *receipts = natter_db_list_receipts (worker->db, op->s1, &error);

  return_array (task, receipts, error);
}

void
natter_store_list_receipts_async (NatterStore         *self,
                                  const char          *msg_id,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  StoreOp *op;

  g_return_if_fail (NATTER_IS_STORE (self));
  g_return_if_fail (msg_id != NULL);

  op = store_op_new (do_list_receipts);
  op->s1 = g_strdup (msg_id);
  store_queue (self, op, natter_store_list_receipts_async, cancellable, callback, user_data);
}

/**
 * natter_store_list_receipts_finish:
 * @self: a store
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (element-type NatterStoreReceipt): the receipts
 */
GPtrArray *
natter_store_list_receipts_finish (NatterStore   *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  g_return_val_if_fail (check_result (self, result, natter_store_list_receipts_async), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
