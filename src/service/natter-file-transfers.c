/* natter-file-transfers.c: offers, resumable verified file transfers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sodium.h>

#include "natter-file-transfers.h"

/* How a transfer runs (docs/architecture.md, "Files"):
 *
 *   sender                                   receiver
 *   file_offer (outbox) ───────────────────▶ offered
 *                                            accept_file(): temp file opened
 *          ◀─────────────────── file_accept {offset} (outbox, and again
 *                                            straight after every reconnect)
 *   DATA frames from offset ───────────────▶ written in order, hashed
 *          ◀────────────────── ACK every MiB (flow control, progress)
 *                                            every 32 MiB: fdatasync, offset
 *                                            stored
 *                                            last byte: hash checked, fsync,
 *                                            renamed to a free name
 *          ◀─────────────────── file_complete {hash, status}
 *
 * The main context never touches a file: a worker thread opens, reads,
 * writes, hashes and renames, in the order jobs were queued, and hands the
 * results back in batches.  Checkpoint fsyncs run in a GTask thread on a
 * duplicate descriptor so that writing goes on meanwhile. */

#define SEND_WINDOW_DEFAULT   (2 * 1024 * 1024)
#define PREFETCH_CHUNKS       32
#define PROGRESS_INTERVAL_US  250000
#define MAX_UNFINISHED_PER_PEER 256
#define STREAM_SLOTS          (1024 - NATTER_PEER_STREAM_FIRST_BULK)

/* {{{ Worker */

typedef enum
{
  JOB_OPEN_READ,
  JOB_READ,
  JOB_OPEN_WRITE,
  JOB_RESUME,
  JOB_WRITE,
  JOB_FINISH,
  JOB_DISCARD,
  JOB_CLOSE,
  JOB_HASH_FILE,
  JOB_QUIT,
} JobKind;

/* The worker's side of a transfer: touched only by the worker thread
 * (after creation), so it needs no lock. */
typedef struct
{
  gatomicrefcount  ref;
  int              fd;
  char            *path;          /* source (out) or temporary file (in) */
  char            *folder;        /* in: where the file goes */
  char            *name;          /* in: sanitised name */
  guint64          size;
  guint8           expected[crypto_generichash_BYTES];
  crypto_generichash_state *hash;
  guint64          written;       /* in: bytes in the file, in order, hashed */
  gboolean         failed;        /* in: a write failed; later writes skip */
} Io;

typedef struct _Transfer Transfer;

typedef struct
{
  JobKind   kind;
  Io       *io;
  char     *transfer_id;
  guint     epoch;
  guint64   offset;
  gsize     len;
  GBytes   *data;                 /* write: the bytes; read: the whole frame */
  guint8    tag[8];
  /* Results. */
  int       err;
  char     *message;              /* a failure, for people */
  char     *path;                 /* finish: the final path */
  gboolean  mismatch;
  guint64   written;
  guint8    digest[crypto_generichash_BYTES];
  char     *media_type;
  GTask    *task;                 /* hash-file */
} Job;

typedef struct
{
  gatomicrefcount  ref;
  GMainContext    *context;
  GAsyncQueue     *jobs;
  GMutex           lock;
  GQueue           done;
  NatterFileTransfers *owner;     /* main context only; NULL once disposed */
} Worker;

static Io *
io_new (void)
{
  Io *io = g_new0 (Io, 1);

  g_atomic_ref_count_init (&io->ref);
  io->fd = -1;
  return io;
}

static Io *
io_ref (Io *io)
{
  g_atomic_ref_count_inc (&io->ref);
  return io;
}

static void io_unref (Io *io);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Io, io_unref)

static void
io_close (Io *io)
{
  if (io->fd >= 0)
    close (io->fd);
  io->fd = -1;
}

static void
io_unref (Io *io)
{
  if (io == NULL || !g_atomic_ref_count_dec (&io->ref))
    return;
  io_close (io);
  g_free (io->path);
  g_free (io->folder);
  g_free (io->name);
  if (io->hash != NULL)
    sodium_free (io->hash);
  g_free (io);
}

static void
job_free (Job *job)
{
  g_clear_pointer (&job->io, io_unref);
  g_free (job->transfer_id);
  g_clear_pointer (&job->data, g_bytes_unref);
  g_free (job->message);
  g_free (job->path);
  g_free (job->media_type);
  g_clear_object (&job->task);
  g_free (job);
}

static Job *
job_new (JobKind     kind,
         Io         *io,
         const char *transfer_id)
{
  Job *job = g_new0 (Job, 1);

  job->kind = kind;
  job->io = io != NULL ? io_ref (io) : NULL;
  job->transfer_id = g_strdup (transfer_id);
  return job;
}

static void
put_be64 (guint8  *out,
          guint64  value)
{
  for (int i = 7; i >= 0; i--)
    {
      out[i] = value & 0xff;
      value >>= 8;
    }
}

static guint64
get_be64 (const guint8 *in)
{
  guint64 value = 0;

  for (int i = 0; i < 8; i++)
    value = (value << 8) | in[i];
  return value;
}

static void
job_fail (Job        *job,
          int         err,
          const char *what)
{
  job->err = err != 0 ? err : EIO;
  g_free (job->message);
  job->message = g_strdup_printf ("%s: %s", what, g_strerror (job->err));
}

static gboolean
io_hash_reset (Io *io)
{
  if (io->hash == NULL)
    io->hash = sodium_malloc (crypto_generichash_statebytes ());
  if (io->hash == NULL)
    return FALSE;
  crypto_generichash_init (io->hash, NULL, 0, crypto_generichash_BYTES);
  return TRUE;
}

/* Reads [0, @end) of @fd into the hash. */
static gboolean
io_hash_prefix (Io      *io,
                guint64  end,
                int     *err)
{
  g_autofree guint8 *buffer = g_malloc (1024 * 1024);
  guint64 done = 0;

  while (done < end)
    {
      ssize_t n = pread (io->fd, buffer, MIN (end - done, 1024 * 1024), (off_t) done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          *err = n < 0 ? errno : EIO;
          return FALSE;
        }
      crypto_generichash_update (io->hash, buffer, (gsize) n);
      done += (guint64) n;
    }
  return TRUE;
}

static gboolean
write_all (int           fd,
           const guint8 *data,
           gsize         len,
           guint64       offset,
           gsize        *done,
           int          *err)
{
  *done = 0;
  while (*done < len)
    {
      ssize_t n = pwrite (fd, data + *done, len - *done, (off_t) (offset + *done));

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          *err = n < 0 ? errno : ENOSPC;
          return FALSE;
        }
      *done += (gsize) n;
    }
  return TRUE;
}

/* Moves @from to a free name in @folder without ever replacing a file:
 * "name", then "name (1)", "name (2)"… */
static char *
rename_to_free_name (const char  *from,
                     const char  *folder,
                     const char  *name,
                     int         *err)
{
  for (guint n = 0; n < 10000; n++)
    {
      g_autofree char *candidate_name = n == 0 ? g_strdup (name) : natter_file_name_numbered (name, n);
      g_autofree char *candidate = g_build_filename (folder, candidate_name, NULL);

      if (renameat2 (AT_FDCWD, from, AT_FDCWD, candidate, RENAME_NOREPLACE) == 0)
        return g_steal_pointer (&candidate);
      if (errno == EEXIST)
        continue;
      if (errno == EINVAL || errno == ENOSYS)
        {
          /* No RENAME_NOREPLACE here: link() never replaces either. */
          if (link (from, candidate) == 0)
            {
              unlink (from);
              return g_steal_pointer (&candidate);
            }
          if (errno == EEXIST)
            continue;
        }
      *err = errno;
      return NULL;
    }
  *err = EEXIST;
  return NULL;
}

static void
fsync_folder (const char *folder)
{
  int fd = open (folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd >= 0)
    {
      fsync (fd);
      close (fd);
    }
}

static void
job_run (Job *job)
{
  Io *io = job->io;

  switch (job->kind)
    {
    case JOB_OPEN_READ:
      {
        struct stat st;

        if (io->fd >= 0)
          break;
        io->fd = open (io->path, O_RDONLY | O_CLOEXEC);
        if (io->fd < 0)
          {
            job_fail (job, errno, "Cannot open the file");
            break;
          }
        if (fstat (io->fd, &st) != 0 || !S_ISREG (st.st_mode) || (guint64) st.st_size != io->size)
          {
            job->err = EIO;
            job->message = g_strdup ("The file changed since it was offered");
            io_close (io);
          }
      }
      break;

    case JOB_READ:
      {
        guint8 *buffer;
        gsize done = 0;

        if (io->fd < 0)
          {
            job->err = EBADF;
            job->message = g_strdup ("The file is not open");
            break;
          }
        buffer = g_malloc (NATTER_FILE_FRAME_HEADER + job->len);
        memset (buffer, 0, NATTER_FILE_FRAME_HEADER);
        buffer[0] = NATTER_FILE_FRAME_DATA;
        memcpy (buffer + 8, job->tag, 8);
        put_be64 (buffer + 16, job->offset);
        while (done < job->len)
          {
            ssize_t n = pread (io->fd, buffer + NATTER_FILE_FRAME_HEADER + done,
                               job->len - done, (off_t) (job->offset + done));

            if (n < 0 && errno == EINTR)
              continue;
            if (n <= 0)
              break;
            done += (gsize) n;
          }
        if (done != job->len)
          {
            g_free (buffer);
            job_fail (job, done == 0 && errno != 0 ? errno : EIO, "Cannot read the file");
            break;
          }
        job->data = g_bytes_new_take (buffer, NATTER_FILE_FRAME_HEADER + job->len);
      }
      break;

    case JOB_OPEN_WRITE:
      {
        struct stat st;
        guint64 resume = job->offset;

        if (g_mkdir_with_parents (io->folder, 0700) != 0)
          {
            job_fail (job, errno, "Cannot create the download folder");
            break;
          }
        if (io->fd < 0)
          io->fd = open (io->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (io->fd < 0)
          {
            job_fail (job, errno, "Cannot create the file");
            break;
          }
        if (fstat (io->fd, &st) != 0)
          {
            job_fail (job, errno, "Cannot read the partial file");
            break;
          }
        /* The stored offset was fsynced; anything after it is redone. */
        if ((guint64) st.st_size < resume)
          resume = 0;
        if (!io_hash_reset (io))
          {
            job_fail (job, ENOMEM, "Cannot hash");
            break;
          }
        if (resume > 0 && !io_hash_prefix (io, resume, &job->err))
          {
            job_fail (job, job->err, "Cannot read the partial file");
            break;
          }
        if (ftruncate (io->fd, (off_t) resume) != 0)
          {
            job_fail (job, errno, "Cannot truncate the partial file");
            break;
          }
        io->written = resume;
        io->failed = FALSE;
        job->written = resume;
      }
      break;

    case JOB_RESUME:
      io->failed = FALSE;
      job->written = io->written;
      break;

    case JOB_WRITE:
      {
        gsize len, done = 0;
        const guint8 *data = g_bytes_get_data (job->data, &len);

        if (io->failed || io->fd < 0 || job->offset != io->written)
          {
            job->err = ECANCELED;
            job->written = io->written;
            break;
          }
        if (!write_all (io->fd, data, len, job->offset, &done, &job->err))
          {
            io->failed = TRUE;
            job_fail (job, job->err, "Cannot write the file");
          }
        crypto_generichash_update (io->hash, data, done);
        io->written += done;
        job->written = io->written;
      }
      break;

    case JOB_FINISH:
      {
        guint8 digest[crypto_generichash_BYTES];
        crypto_generichash_state final;

        if (io->fd < 0 || io->hash == NULL)
          {
            job->err = EBADF;
            job->message = g_strdup ("The file is not open");
            break;
          }
        /* On a copy: after a failure below (fdatasync, rename), the
         * transfer is held and a later accept finishes again, and
         * libsodium does not finalize a state twice. */
        final = *io->hash;
        crypto_generichash_final (&final, digest, sizeof digest);
        if (sodium_memcmp (digest, io->expected, sizeof digest) != 0)
          {
            job->mismatch = TRUE;
            io_close (io);
            unlink (io->path);
            break;
          }
        if (fdatasync (io->fd) != 0)
          {
            job_fail (job, errno, "Cannot write the file to disk");
            break;
          }
        /* Still open while renaming: after a failure the transfer is held
         * with the file as it is, and a later accept finishes again. */
        job->path = rename_to_free_name (io->path, io->folder, io->name, &job->err);
        if (job->path == NULL)
          {
            job_fail (job, job->err, "Cannot give the file its name");
            break;
          }
        io_close (io);
        fsync_folder (io->folder);
      }
      break;

    case JOB_DISCARD:
      io_close (io);
      if (io->path != NULL)
        unlink (io->path);
      break;

    case JOB_CLOSE:
      io_close (io);
      break;

    case JOB_HASH_FILE:
      {
        crypto_generichash_state *state = sodium_malloc (crypto_generichash_statebytes ());
        g_autofree guint8 *buffer = g_malloc (1024 * 1024);
        struct stat st;
        gboolean uncertain;
        g_autofree char *content_type = NULL;
        ssize_t first = -1;
        int fd = open (io->path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fstat (fd, &st) != 0)
          {
            job_fail (job, errno, "Cannot open the file");
            if (fd >= 0)
              close (fd);
            sodium_free (state);
            break;
          }
        if (!S_ISREG (st.st_mode))
          {
            job->err = EINVAL;
            job->message = g_strdup ("Not a regular file");
            close (fd);
            sodium_free (state);
            break;
          }
        crypto_generichash_init (state, NULL, 0, crypto_generichash_BYTES);
        job->offset = 0;
        for (;;)
          {
            ssize_t n = read (fd, buffer, 1024 * 1024);

            if (n < 0 && errno == EINTR)
              continue;
            if (n < 0)
              {
                job_fail (job, errno, "Cannot read the file");
                break;
              }
            if (n == 0)
              break;
            if (first < 0)
              {
                first = n;
                content_type = g_content_type_guess (io->name, buffer, MIN ((gsize) n, 4096), &uncertain);
              }
            crypto_generichash_update (state, buffer, (gsize) n);
            job->offset += (guint64) n;
          }
        close (fd);
        crypto_generichash_final (state, job->digest, sizeof job->digest);
        sodium_free (state);
        if (content_type == NULL)
          content_type = g_content_type_guess (io->name, NULL, 0, &uncertain);
        job->media_type = g_content_type_get_mime_type (content_type);
        if (job->media_type == NULL)
          job->media_type = g_strdup ("application/octet-stream");
      }
      break;

    case JOB_QUIT:
    default:
      break;
    }
}

static Worker *
worker_ref (Worker *worker)
{
  g_atomic_ref_count_inc (&worker->ref);
  return worker;
}

static void
worker_unref (Worker *worker)
{
  if (!g_atomic_ref_count_dec (&worker->ref))
    return;
  g_queue_clear_full (&worker->done, (GDestroyNotify) job_free);
  g_async_queue_unref (worker->jobs);
  g_main_context_unref (worker->context);
  g_mutex_clear (&worker->lock);
  g_free (worker);
}

static void files_job_done (NatterFileTransfers *self, Job *job);

static gboolean
worker_drain (gpointer user_data)
{
  Worker *worker = user_data;
  GQueue batch = G_QUEUE_INIT;
  Job *job;

  g_mutex_lock (&worker->lock);
  batch = worker->done;
  g_queue_init (&worker->done);
  g_mutex_unlock (&worker->lock);

  while ((job = g_queue_pop_head (&batch)) != NULL)
    {
      if (worker->owner != NULL)
        files_job_done (worker->owner, job);
      job_free (job);
    }
  return G_SOURCE_REMOVE;
}

static gpointer
worker_thread (gpointer data)
{
  Worker *worker = data;

  for (;;)
    {
      Job *job = g_async_queue_pop (worker->jobs);
      gboolean quit = job->kind == JOB_QUIT;
      gboolean wake;

      if (quit)
        {
          job_free (job);
          break;
        }
      job_run (job);
      g_mutex_lock (&worker->lock);
      wake = g_queue_is_empty (&worker->done);
      g_queue_push_tail (&worker->done, job);
      g_mutex_unlock (&worker->lock);
      if (wake)
        g_main_context_invoke_full (worker->context, G_PRIORITY_DEFAULT, worker_drain,
                                    worker_ref (worker), (GDestroyNotify) worker_unref);
    }
  worker_unref (worker);
  return NULL;
}

/* }}} */
/* {{{ Types */

typedef struct
{
  char                 *peer_id;
  NatterPeerConnection *pc;
  guint64               generation;
  guint                 rr;
} Peer;

struct _Transfer
{
  NatterStoreTransfer *row;          /* id, peer, direction, name, size, state, path, offset */
  char                *media_type;
  guint8               hash[crypto_generichash_BYTES];
  guint8               tag[8];
  guint64              tag64;
  Io                  *io;
  gboolean             io_open;
  gboolean             io_opening;
  gboolean             this_run_final;
  gboolean             held;          /* in: paused by a local failure (disk full) */
  char                *detail;

  /* Sender. */
  gboolean             sending;
  guint64              generation;
  guint                epoch;
  guint16              stream;
  guint64              next_read;
  guint64              next_send;
  guint64              acked;
  guint64              saved;
  GQueue               ready;         /* Job with frames, in offset order */
  guint                reads_in_flight;

  /* Receiver. */
  guint64              expected;      /* end of what was queued for writing */
  guint64              written;
  guint64              durable;
  guint64              last_ack;
  guint16              rx_stream;
  gboolean             syncing;
  gboolean             finishing;

  NatterFileTransferCounters counters;

  gint64               progress_us;
  guint64              progress_bytes;
  double               rate;
};

struct _NatterFileTransfers
{
  GObject                 parent_instance;

  NatterMessagingService *service;   /* owns us */
  NatterStore            *store;
  Worker                 *worker;
  GThread                *thread;

  GHashTable             *transfers;  /* id -> Transfer */
  GHashTable             *by_tag;     /* guint64 tag -> Transfer */
  GPtrArray              *order;      /* Transfer, oldest first */
  GHashTable             *peers;      /* peer ID -> Peer */
  gboolean                loaded;
  gboolean                stopping;
  gsize                   send_window;
  guint64                 rejected[NATTER_FILE_REJECT_N];
};

G_DEFINE_FINAL_TYPE (NatterFileTransfers, natter_file_transfers, G_TYPE_OBJECT)

static void transfer_pump_reads (NatterFileTransfers *self, Transfer *t);
static void files_pump_peer (NatterFileTransfers *self, Peer *peer);

static void
ready_clear (Transfer *t)
{
  g_queue_clear_full (&t->ready, (GDestroyNotify) job_free);
  g_queue_init (&t->ready);
}

static void
transfer_free (Transfer *t)
{
  natter_store_transfer_free (t->row);
  g_free (t->media_type);
  g_clear_pointer (&t->io, io_unref);
  g_free (t->detail);
  ready_clear (t);
  g_free (t);
}

static void
peer_free (Peer *peer)
{
  g_free (peer->peer_id);
  g_clear_object (&peer->pc);
  g_free (peer);
}

static gint64
now_ms (void)
{
  return g_get_real_time () / 1000;
}

static void
compute_tag (const char *id,
             guint8      tag[8])
{
  guint8 digest[16];

  crypto_generichash (digest, sizeof digest, (const guint8 *) id, strlen (id), NULL, 0);
  memcpy (tag, digest, 8);
}

static Transfer *
transfer_new (NatterFileTransfers *self,
              NatterStoreTransfer *row)
{
  Transfer *t = g_new0 (Transfer, 1);
  g_autofree guint8 *raw = NULL;
  gsize raw_len = 0;

  t->row = row;
  compute_tag (row->id, t->tag);
  t->tag64 = get_be64 (t->tag);
  g_queue_init (&t->ready);
  raw = g_base64_decode (row->hash, &raw_len);
  if (raw_len == sizeof t->hash)
    memcpy (t->hash, raw, sizeof t->hash);
  t->io = io_new ();
  t->io->size = (guint64) row->size;
  memcpy (t->io->expected, t->hash, sizeof t->hash);
  g_hash_table_insert (self->transfers, row->id, t);
  g_hash_table_insert (self->by_tag, &t->tag64, t);
  g_ptr_array_add (self->order, t);
  return t;
}

static void
files_queue_job (NatterFileTransfers *self,
                 Job                 *job)
{
  g_async_queue_push (self->worker->jobs, job);
}

static gboolean
state_is_final (NatterStoreTransferState state)
{
  return state == NATTER_STORE_TRANSFER_COMPLETE || state == NATTER_STORE_TRANSFER_FAILED ||
         state == NATTER_STORE_TRANSFER_CANCELLED || state == NATTER_STORE_TRANSFER_REJECTED;
}

static void
transfer_save (NatterFileTransfers *self,
               Transfer            *t)
{
  t->row->updated_at = now_ms ();
  natter_messaging_service_save_transfer (self->service, t->row);
}

/* Sets the state, saves it, and tells the user. */
static void
transfer_set_state (NatterFileTransfers      *self,
                    Transfer                 *t,
                    NatterStoreTransferState  state,
                    const char               *detail)
{
  gboolean changed = t->row->state != state || g_strcmp0 (detail, t->detail) != 0;

  t->row->state = state;
  g_free (t->detail);
  t->detail = g_strdup (detail);
  if (state_is_final (state))
    t->this_run_final = TRUE;
  transfer_save (self, t);
  if (changed)
    g_signal_emit_by_name (self->service, "transfer-state-changed", t->row->id,
                           natter_store_transfer_state_to_string (state), detail);
}

static void
transfer_progress (NatterFileTransfers *self,
                   Transfer            *t,
                   guint64              done,
                   gboolean             force)
{
  gint64 now = g_get_monotonic_time ();
  double elapsed;

  if (t->progress_us == 0)
    {
      t->progress_us = now;
      t->progress_bytes = done;
      if (!force)
        return;
    }
  elapsed = (now - t->progress_us) / 1e6;
  if (!force && elapsed * 1e6 < PROGRESS_INTERVAL_US)
    return;
  if (elapsed > 0 && done >= t->progress_bytes)
    {
      double instant = (done - t->progress_bytes) / elapsed;

      t->rate = t->rate == 0 ? instant : 0.5 * t->rate + 0.5 * instant;
    }
  t->progress_us = now;
  t->progress_bytes = done;
  g_signal_emit_by_name (self->service, "transfer-progress", t->row->id, (gint64) done,
                         t->row->size, t->rate);
}

static JsonObject *
control_content (Transfer   *t,
                 guint64     offset,
                 const char *status)
{
  JsonObject *content = json_object_new ();

  json_object_set_string_member (content, "fileId", t->row->id);
  json_object_set_int_member (content, "offset", (gint64) offset);
  if (status != NULL)
    json_object_set_string_member (content, "status", status);
  return content;
}

static void
send_accept (NatterFileTransfers *self,
             Transfer            *t,
             guint64              offset,
             const char          *status,
             gboolean             queued)
{
  g_autoptr(JsonObject) content = control_content (t, offset, status);

  natter_messaging_service_send_file_control (self->service, t->row->peer_id,
                                              NATTER_MESSAGE_TYPE_FILE_ACCEPT, content,
                                              queued, NULL, NULL);
}

static void
send_complete (NatterFileTransfers *self,
               Transfer            *t,
               const char          *status)
{
  g_autoptr(JsonObject) content = json_object_new ();
  g_autofree char *hash = g_base64_encode (t->hash, sizeof t->hash);

  json_object_set_string_member (content, "fileId", t->row->id);
  json_object_set_string_member (content, "hash", hash);
  if (status != NULL)
    json_object_set_string_member (content, "status", status);
  natter_messaging_service_send_file_control (self->service, t->row->peer_id,
                                              NATTER_MESSAGE_TYPE_FILE_COMPLETE, content,
                                              TRUE, NULL, NULL);
}

/* }}} */
/* {{{ Names */

static gboolean
unichar_is_unsafe (gunichar c)
{
  return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) ||
         c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
         (c >= 0x2066 && c <= 0x2069) || c == 0xfeff ||
         c == ':' || c == '*' || c == '?' || c == '"' || c == '<' || c == '>' || c == '|';
}

static gboolean
is_reserved_stem (const char *name)
{
  static const char * const reserved[] = {
    "CON", "PRN", "AUX", "NUL", "CLOCK$",
    "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
    "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", NULL
  };
  const char *dot = strchr (name, '.');
  g_autofree char *stem = g_ascii_strup (name, dot != NULL ? dot - name : -1);

  g_strchomp (stem);
  return g_strv_contains (reserved, stem);
}

char *
natter_file_name_sanitize (const char *name)
{
  g_autoptr(GString) out = g_string_new (NULL);
  const char *start = NULL, *end = NULL;
  char *result;

  if (name == NULL || !g_utf8_validate (name, -1, NULL))
    return g_strdup ("file");

  /* The last non-empty path component, for either separator. */
  for (const char *p = name; *p != '\0';)
    {
      const char *q = p;

      while (*q != '\0' && *q != '/' && *q != '\\')
        q++;
      if (q > p)
        {
          start = p;
          end = q;
        }
      p = *q != '\0' ? q + 1 : q;
    }
  for (const char *p = start; p != NULL && p < end; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (unichar_is_unsafe (c))
        g_string_append_c (out, '_');
      else
        g_string_append_unichar (out, c);
    }

  /* No hidden files, no "." or "..", no trailing dots or spaces. */
  while (out->len > 0 && (out->str[0] == '.' || out->str[0] == ' '))
    g_string_erase (out, 0, 1);
  while (out->len > 0 && (out->str[out->len - 1] == '.' || out->str[out->len - 1] == ' '))
    g_string_truncate (out, out->len - 1);
  if (out->len == 0)
    g_string_assign (out, "file");
  if (is_reserved_stem (out->str))
    g_string_prepend_c (out, '_');

  if (out->len > NATTER_FILE_NAME_MAX)
    {
      const char *dot = strrchr (out->str, '.');
      gsize ext_len = dot != NULL && dot != out->str && strlen (dot) <= 16 ? strlen (dot) : 0;
      g_autofree char *ext = g_strdup (out->str + out->len - ext_len);
      gsize keep = NATTER_FILE_NAME_MAX - ext_len;
      const char *cut = out->str + keep;

      /* Back to the start of a character. */
      while (cut > out->str && (*cut & 0xc0) == 0x80)
        cut--;
      g_string_truncate (out, cut - out->str);
      g_string_append (out, ext);
    }
  result = g_string_free (g_steal_pointer (&out), FALSE);
  return result;
}

char *
natter_file_name_numbered (const char *name,
                           guint       n)
{
  const char *dot = strrchr (name, '.');

  if (dot == NULL || dot == name)
    return g_strdup_printf ("%s (%u)", name, n);
  return g_strdup_printf ("%.*s (%u)%s", (int) (dot - name), name, n, dot);
}

/* }}} */
/* {{{ Sending */

static Peer *
files_get_peer (NatterFileTransfers *self,
                const char          *peer_id)
{
  return g_hash_table_lookup (self->peers, peer_id);
}

static guint16
peer_alloc_stream (NatterFileTransfers *self,
                   const char          *peer_id)
{
  g_autofree gboolean *used = g_new0 (gboolean, STREAM_SLOTS);

  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);

      if (t->sending && strcmp (t->row->peer_id, peer_id) == 0 &&
          t->stream >= NATTER_PEER_STREAM_FIRST_BULK)
        used[t->stream - NATTER_PEER_STREAM_FIRST_BULK] = TRUE;
    }
  for (guint i = 0; i < STREAM_SLOTS; i++)
    if (!used[i])
      return (guint16) (NATTER_PEER_STREAM_FIRST_BULK + i);
  return NATTER_PEER_STREAM_FIRST_BULK;
}

static void
transfer_stop_sending (Transfer *t)
{
  t->sending = FALSE;
  t->epoch++;
  ready_clear (t);
}

static void
transfer_start_sending (NatterFileTransfers *self,
                        Transfer            *t,
                        Peer                *peer,
                        guint64              offset)
{
  transfer_stop_sending (t);
  t->sending = TRUE;
  t->generation = peer->generation;
  t->stream = peer_alloc_stream (self, t->row->peer_id);
  t->next_read = t->next_send = t->acked = offset;
  t->counters.resumed_from = offset;
  t->counters.starts++;
  t->progress_us = 0;
  if (!t->io_open)
    {
      t->io_opening = TRUE;
      files_queue_job (self, job_new (JOB_OPEN_READ, t->io, t->row->id));
      t->io_open = TRUE;   /* reads queue behind the open */
    }
  t->row->offset = (gint64) offset;
  transfer_set_state (self, t, NATTER_STORE_TRANSFER_ACTIVE, NULL);
  transfer_pump_reads (self, t);
}

static void
transfer_pump_reads (NatterFileTransfers *self,
                     Transfer            *t)
{
  guint64 size = (guint64) t->row->size;

  while (t->sending && t->next_read < size &&
         t->ready.length + t->reads_in_flight < PREFETCH_CHUNKS &&
         t->next_read < t->acked + NATTER_FILE_ACK_WINDOW + (guint64) PREFETCH_CHUNKS * NATTER_FILE_CHUNK_SIZE)
    {
      /* Chunks end on multiples of the chunk size, so that frames of two
       * runs line up. */
      guint64 end = MIN (size, (t->next_read / NATTER_FILE_CHUNK_SIZE + 1) * NATTER_FILE_CHUNK_SIZE);
      Job *job = job_new (JOB_READ, t->io, t->row->id);

      job->offset = t->next_read;
      job->len = (gsize) (end - t->next_read);
      job->epoch = t->epoch;
      memcpy (job->tag, t->tag, 8);
      t->next_read = end;
      t->reads_in_flight++;
      files_queue_job (self, job);
    }
}

static void
files_pump_peer (NatterFileTransfers *self,
                 Peer                *peer)
{
  g_autoptr(GPtrArray) senders = g_ptr_array_new ();
  gboolean progress = TRUE;

  if (peer == NULL || peer->pc == NULL)
    return;
  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);

      if (t->sending && t->generation == peer->generation &&
          strcmp (t->row->peer_id, peer->peer_id) == 0)
        g_ptr_array_add (senders, t);
    }
  if (senders->len == 0)
    return;

  /* Round robin, one chunk per transfer per turn, while the connection
   * has room: several transfers share it, and chat frames queue behind
   * at most the window. */
  while (progress && natter_peer_connection_get_buffered_amount (peer->pc) < self->send_window)
    {
      progress = FALSE;
      for (guint i = 0; i < senders->len; i++)
        {
          Transfer *t = g_ptr_array_index (senders, (peer->rr + i) % senders->len);
          Job *job = g_queue_peek_head (&t->ready);
          g_autoptr(GError) error = NULL;

          if (job == NULL || job->offset + job->len > t->acked + NATTER_FILE_ACK_WINDOW)
            continue;
          g_queue_pop_head (&t->ready);
          if (!natter_peer_connection_send (peer->pc, t->stream, job->data, &error))
            {
              g_debug ("File data to %s not sent: %s", peer->peer_id, error->message);
              job_free (job);
              return;
            }
          t->next_send = job->offset + job->len;
          t->counters.bytes_sent += job->len;
          job_free (job);
          progress = TRUE;
          if (natter_peer_connection_get_buffered_amount (peer->pc) >= self->send_window)
            break;
        }
      peer->rr++;
    }
  for (guint i = 0; i < senders->len; i++)
    transfer_pump_reads (self, g_ptr_array_index (senders, i));
}

gsize
natter_file_transfers_get_send_window (NatterFileTransfers *self)
{
  g_return_val_if_fail (NATTER_IS_FILE_TRANSFERS (self), 0);

  return self->send_window;
}

void
natter_file_transfers_pump (NatterFileTransfers *self,
                            const char          *peer_id)
{
  files_pump_peer (self, files_get_peer (self, peer_id));
}

/* }}} */
/* {{{ Receiving data */

static void
transfer_fail (NatterFileTransfers *self,
               Transfer            *t,
               const char          *reason)
{
  transfer_stop_sending (t);
  transfer_set_state (self, t, NATTER_STORE_TRANSFER_FAILED, reason);
}

static void
send_ack_frame (NatterFileTransfers *self,
                Transfer            *t)
{
  Peer *peer = files_get_peer (self, t->row->peer_id);
  guint8 frame[NATTER_FILE_FRAME_HEADER] = { 0 };
  g_autoptr(GBytes) bytes = NULL;

  if (peer == NULL || peer->pc == NULL || t->rx_stream < NATTER_PEER_STREAM_FIRST_BULK)
    return;
  frame[0] = NATTER_FILE_FRAME_ACK;
  memcpy (frame + 8, t->tag, 8);
  put_be64 (frame + 16, t->written);
  bytes = g_bytes_new (frame, sizeof frame);
  if (natter_peer_connection_send (peer->pc, t->rx_stream, bytes, NULL))
    t->last_ack = t->written;
}

typedef struct
{
  NatterFileTransfers *self;
  char                *id;
  int                  fd;
  guint64              offset;
} SyncData;

static void
sync_data_free (SyncData *data)
{
  g_clear_object (&data->self);
  g_free (data->id);
  if (data->fd >= 0)
    close (data->fd);
  g_free (data);
}

static void
sync_thread (GTask        *task,
             gpointer      source,
             gpointer      task_data,
             GCancellable *cancellable)
{
  SyncData *data = task_data;

  g_task_return_boolean (task, fdatasync (data->fd) == 0);
}

static void
on_synced (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  SyncData *data = g_task_get_task_data (G_TASK (result));
  NatterFileTransfers *self = data->self;
  Transfer *t = g_hash_table_lookup (self->transfers, data->id);

  if (t == NULL)
    return;
  t->syncing = FALSE;
  if (!g_task_propagate_boolean (G_TASK (result), NULL) || state_is_final (t->row->state))
    return;
  t->durable = MAX (t->durable, data->offset);
  t->row->offset = (gint64) t->durable;
  transfer_save (self, t);
}

static void
transfer_checkpoint (NatterFileTransfers *self,
                     Transfer            *t)
{
  g_autoptr(GTask) task = NULL;
  SyncData *data;
  int fd;

  if (t->syncing || t->finishing || t->io->fd < 0)
    return;
  /* The worker owns the descriptor, and closes it only in jobs queued
   * from here, later than this: a duplicate is safe to take now. */
  fd = dup (t->io->fd);
  if (fd < 0)
    return;
  data = g_new0 (SyncData, 1);
  data->self = g_object_ref (self);
  data->id = g_strdup (t->row->id);
  data->fd = fd;
  data->offset = t->written;
  t->syncing = TRUE;
  task = g_task_new (NULL, NULL, on_synced, NULL);
  g_task_set_task_data (task, data, (GDestroyNotify) sync_data_free);
  g_task_run_in_thread (task, sync_thread);
}

static void
transfer_finish (NatterFileTransfers *self,
                 Transfer            *t)
{
  if (t->finishing)
    return;
  t->finishing = TRUE;
  files_queue_job (self, job_new (JOB_FINISH, t->io, t->row->id));
}

static void
handle_data (NatterFileTransfers *self,
             Transfer            *t,
             guint                stream,
             GBytes              *frame,
             guint64              offset)
{
  gsize len = g_bytes_get_size (frame) - NATTER_FILE_FRAME_HEADER;
  guint64 end = offset + len;
  guint64 skip;
  Job *job;

  if (t->row->direction != NATTER_STORE_DIRECTION_IN || !t->io_open || t->held ||
      t->finishing ||
      (t->row->state != NATTER_STORE_TRANSFER_ACCEPTED &&
       t->row->state != NATTER_STORE_TRANSFER_ACTIVE &&
       t->row->state != NATTER_STORE_TRANSFER_PAUSED))
    {
      /* Never accepted (or declined, cancelled, done): ignored. */
      self->rejected[NATTER_FILE_REJECT_NOT_ACCEPTED]++;
      return;
    }
  if (len == 0 || end < offset || end > (guint64) t->row->size)
    {
      self->rejected[NATTER_FILE_REJECT_BEYOND_SIZE]++;
      return;
    }
  if (offset > t->expected)
    {
      self->rejected[NATTER_FILE_REJECT_OUT_OF_ORDER]++;
      return;
    }
  t->counters.bytes_received += len;
  if (end <= t->expected)
    {
      t->counters.duplicate_bytes += len;
      return;
    }
  skip = t->expected - offset;
  t->counters.duplicate_bytes += skip;
  t->rx_stream = (guint16) stream;

  job = job_new (JOB_WRITE, t->io, t->row->id);
  job->offset = t->expected;
  job->data = g_bytes_new_from_bytes (frame, NATTER_FILE_FRAME_HEADER + skip, len - skip);
  t->expected = end;
  files_queue_job (self, job);

  if (t->row->state != NATTER_STORE_TRANSFER_ACTIVE)
    transfer_set_state (self, t, NATTER_STORE_TRANSFER_ACTIVE, NULL);
}

static void
handle_ack (NatterFileTransfers *self,
            Transfer            *t,
            guint64              offset)
{
  Peer *peer;

  if (t->row->direction != NATTER_STORE_DIRECTION_OUT || !t->sending ||
      offset > t->next_send || offset < t->acked)
    {
      self->rejected[NATTER_FILE_REJECT_OUT_OF_ORDER]++;
      return;
    }
  t->acked = offset;
  t->row->offset = (gint64) offset;
  if (offset - t->saved >= NATTER_FILE_CHECKPOINT)
    {
      t->saved = offset;
      transfer_save (self, t);
    }
  transfer_progress (self, t, offset, offset == (guint64) t->row->size);
  peer = files_get_peer (self, t->row->peer_id);
  files_pump_peer (self, peer);
}

void
natter_file_transfers_handle_frame (NatterFileTransfers *self,
                                    const char          *peer_id,
                                    guint                stream,
                                    GBytes              *frame)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (frame, &len);
  guint64 tag, offset;
  Transfer *t;

  if (len < NATTER_FILE_FRAME_HEADER || self->stopping)
    {
      self->rejected[NATTER_FILE_REJECT_MALFORMED]++;
      return;
    }
  tag = get_be64 (data + 8);
  offset = get_be64 (data + 16);
  t = g_hash_table_lookup (self->by_tag, &tag);
  if (t == NULL || strcmp (t->row->peer_id, peer_id) != 0)
    {
      self->rejected[NATTER_FILE_REJECT_UNKNOWN]++;
      return;
    }
  switch (data[0])
    {
    case NATTER_FILE_FRAME_DATA:
      handle_data (self, t, stream, frame, offset);
      break;
    case NATTER_FILE_FRAME_ACK:
      if (len != NATTER_FILE_FRAME_HEADER)
        self->rejected[NATTER_FILE_REJECT_MALFORMED]++;
      else
        handle_ack (self, t, offset);
      break;
    default:
      self->rejected[NATTER_FILE_REJECT_MALFORMED]++;
      break;
    }
}

/* }}} */
/* {{{ Worker results */

static void
transfer_hold (NatterFileTransfers *self,
               Transfer            *t,
               const char          *reason)
{
  g_autofree char *detail = NULL;

  /* A local failure of the receiver (a full disk): the partial file stays,
   * the sender stops, and accept_file() resumes. */
  t->held = TRUE;
  t->expected = t->written;
  t->row->offset = (gint64) t->durable;
  detail = g_strdup_printf ("%s; %" G_GUINT64_FORMAT " bytes kept in %s for a resume",
                            reason, t->written, t->row->path);
  transfer_set_state (self, t, NATTER_STORE_TRANSFER_PAUSED, detail);
  send_accept (self, t, t->written, "paused", TRUE);
}

static void
on_offer_hashed (NatterFileTransfers *self,
                 Job                 *job);

static void
files_job_done (NatterFileTransfers *self,
                Job                 *job)
{
  Transfer *t;

  if (job->kind == JOB_HASH_FILE)
    {
      on_offer_hashed (self, job);
      return;
    }
  t = g_hash_table_lookup (self->transfers, job->transfer_id);
  if (t == NULL || t->io != job->io)
    return;

  switch (job->kind)
    {
    case JOB_OPEN_READ:
      t->io_opening = FALSE;
      if (job->err != 0)
        {
          t->io_open = FALSE;
          if (!state_is_final (t->row->state))
            {
              transfer_fail (self, t, job->message);
              send_accept (self, t, 0, "cancelled", TRUE);
            }
        }
      break;

    case JOB_READ:
      t->reads_in_flight--;
      if (job->epoch != t->epoch || !t->sending)
        break;
      if (job->err != 0)
        {
          transfer_fail (self, t, job->message);
          send_accept (self, t, 0, "cancelled", TRUE);
          break;
        }
      /* Reads complete in order: the worker is one FIFO thread. */
      {
        Job *frame = job_new (JOB_READ, NULL, NULL);

        frame->offset = job->offset;
        frame->len = job->len;
        frame->data = g_steal_pointer (&job->data);
        g_queue_push_tail (&t->ready, frame);
      }
      files_pump_peer (self, files_get_peer (self, t->row->peer_id));
      break;

    case JOB_OPEN_WRITE:
    case JOB_RESUME:
      t->io_opening = FALSE;
      if (state_is_final (t->row->state))
        break;
      if (job->err != 0)
        {
          transfer_fail (self, t, job->message);
          send_accept (self, t, 0, "cancelled", TRUE);
          break;
        }
      t->io_open = TRUE;
      t->held = FALSE;
      t->written = t->expected = t->last_ack = job->written;
      if (job->kind == JOB_OPEN_WRITE)
        t->durable = t->written;
      t->row->offset = (gint64) t->durable;
      {
        gboolean first = t->row->state == NATTER_STORE_TRANSFER_OFFERED;
        gboolean connected = files_get_peer (self, t->row->peer_id) != NULL;

        transfer_set_state (self, t,
                            first || connected ? NATTER_STORE_TRANSFER_ACCEPTED
                                               : NATTER_STORE_TRANSFER_PAUSED, NULL);
        /* The first accept waits in the outbox for an absent sender; a
         * resume goes straight to a connected one (and again at every
         * connection). */
        if (first)
          send_accept (self, t, t->written, NULL, TRUE);
        else if (connected)
          send_accept (self, t, t->written, NULL, FALSE);
      }
      if (t->written == (guint64) t->row->size)
        transfer_finish (self, t);
      break;

    case JOB_WRITE:
      if (job->err == ECANCELED)
        break;
      t->written = job->written;
      if (job->err != 0)
        {
          if (!t->held && !state_is_final (t->row->state))
            transfer_hold (self, t, job->message);
          break;
        }
      if (t->written - t->last_ack >= NATTER_FILE_ACK_EVERY || t->written == (guint64) t->row->size)
        send_ack_frame (self, t);
      if (t->written - t->durable >= NATTER_FILE_CHECKPOINT)
        transfer_checkpoint (self, t);
      transfer_progress (self, t, t->written, t->written == (guint64) t->row->size);
      if (t->written == (guint64) t->row->size)
        transfer_finish (self, t);
      break;

    case JOB_FINISH:
      t->finishing = FALSE;
      if (state_is_final (t->row->state))
        break;
      if (job->mismatch)
        {
          transfer_set_state (self, t, NATTER_STORE_TRANSFER_FAILED,
                              "The file's hash does not match the offer; it was not kept");
          send_complete (self, t, "hash-mismatch");
          break;
        }
      if (job->err != 0)
        {
          transfer_hold (self, t, job->message);
          break;
        }
      g_free (t->row->path);
      t->row->path = g_strdup (job->path);
      t->row->offset = t->row->size;
      transfer_set_state (self, t, NATTER_STORE_TRANSFER_COMPLETE, job->path);
      send_complete (self, t, NULL);
      break;

    case JOB_DISCARD:
    case JOB_CLOSE:
    default:
      break;
    }
}

/* }}} */
/* {{{ Control messages */

static const char *
content_string (JsonObject *content,
                const char *name)
{
  JsonNode *node = json_object_get_member (content, name);

  return node != NULL && JSON_NODE_HOLDS_VALUE (node) &&
         json_node_get_value_type (node) == G_TYPE_STRING ? json_node_get_string (node) : NULL;
}

static gint64
content_int (JsonObject *content,
             const char *name)
{
  JsonNode *node = json_object_get_member (content, name);

  return node != NULL && JSON_NODE_HOLDS_VALUE (node) &&
         json_node_get_value_type (node) == G_TYPE_INT64 ? json_node_get_int (node) : -1;
}

static guint
unfinished_from (NatterFileTransfers *self,
                 const char          *peer_id)
{
  guint n = 0;

  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);

      if (t->row->direction == NATTER_STORE_DIRECTION_IN && !state_is_final (t->row->state) &&
          strcmp (t->row->peer_id, peer_id) == 0)
        n++;
    }
  return n;
}

static void
handle_offer (NatterFileTransfers *self,
              const char          *peer_id,
              JsonObject          *content)
{
  const char *id = content_string (content, "fileId");
  const char *name = content_string (content, "name");
  const char *media_type = content_string (content, "mediaType");
  const char *hash = content_string (content, "hash");
  gint64 size = content_int (content, "size");
  gint64 max_size = 0;
  gboolean auto_accept = FALSE;
  NatterStoreTransfer *row;
  Transfer *t;

  if (id == NULL || name == NULL || hash == NULL || size < 0)
    return;
  if (g_hash_table_contains (self->transfers, id))
    return;   /* a repeat (or someone else's ID): the first one stands */
  if (unfinished_from (self, peer_id) >= MAX_UNFINISHED_PER_PEER)
    {
      g_debug ("Offer %s from %s ignored: too many unfinished transfers", id, peer_id);
      return;
    }

  row = natter_store_transfer_new ();
  row->id = g_strdup (id);
  row->peer_id = g_strdup (peer_id);
  row->direction = NATTER_STORE_DIRECTION_IN;
  row->name = g_strdup (name);
  row->size = size;
  row->hash = g_strdup (hash);
  row->state = NATTER_STORE_TRANSFER_OFFERED;
  row->created_at = row->updated_at = now_ms ();
  t = transfer_new (self, row);
  t->media_type = g_strdup (media_type != NULL ? media_type : "application/octet-stream");

  g_object_get (self->service, "max-file-size", &max_size, "auto-accept", &auto_accept, NULL);
  transfer_save (self, t);
  g_signal_emit_by_name (self->service, "transfer-offered", id, peer_id, name, size, t->media_type);
  if (max_size > 0 && size > max_size)
    {
      g_autofree char *detail = g_strdup_printf ("The file is larger than the limit of %" G_GINT64_FORMAT " bytes",
                                                 max_size);

      transfer_set_state (self, t, NATTER_STORE_TRANSFER_REJECTED, detail);
      send_accept (self, t, 0, "declined", TRUE);
      return;
    }
  if (auto_accept)
    {
      g_autoptr(GError) error = NULL;

      if (!natter_file_transfers_accept (self, id, NULL, &error))
        g_warning ("Could not accept %s: %s", id, error->message);
    }
}

static void
handle_accept (NatterFileTransfers *self,
               Transfer            *t,
               JsonObject          *content)
{
  const char *status = content_string (content, "status");
  gint64 offset = content_int (content, "offset");
  Peer *peer;

  if (status == NULL)
    status = "accepted";

  if (g_str_equal (status, "cancelled"))
    {
      if (state_is_final (t->row->state))
        return;
      transfer_stop_sending (t);
      if (t->row->direction == NATTER_STORE_DIRECTION_IN)
        {
          files_queue_job (self, job_new (JOB_DISCARD, t->io, t->row->id));
          t->io_open = FALSE;
        }
      else
        files_queue_job (self, job_new (JOB_CLOSE, t->io, t->row->id));
      transfer_set_state (self, t, NATTER_STORE_TRANSFER_CANCELLED, "Cancelled by the peer");
      return;
    }

  /* The rest is the receiver talking to the sender. */
  if (t->row->direction != NATTER_STORE_DIRECTION_OUT)
    return;

  if (g_str_equal (status, "declined"))
    {
      if (state_is_final (t->row->state))
        return;
      transfer_stop_sending (t);
      transfer_set_state (self, t, NATTER_STORE_TRANSFER_REJECTED, "Declined by the peer");
      return;
    }
  if (g_str_equal (status, "paused"))
    {
      if (state_is_final (t->row->state))
        return;
      transfer_stop_sending (t);
      transfer_set_state (self, t, NATTER_STORE_TRANSFER_PAUSED, "Paused by the receiver");
      return;
    }

  /* "accepted": start, or resume, from the receiver's offset. */
  if (t->row->state == NATTER_STORE_TRANSFER_CANCELLED)
    {
      send_accept (self, t, 0, "cancelled", TRUE);
      return;
    }
  if (state_is_final (t->row->state) || offset < 0 || offset > t->row->size)
    return;
  peer = files_get_peer (self, t->row->peer_id);
  if (peer == NULL)
    {
      /* Came through a relay: data needs our own connection, and the
       * receiver asks again when there is one. */
      if (t->row->state == NATTER_STORE_TRANSFER_OFFERED)
        transfer_set_state (self, t, NATTER_STORE_TRANSFER_ACCEPTED, NULL);
      return;
    }
  if (t->sending && t->generation == peer->generation)
    return;   /* already going on this connection */
  transfer_start_sending (self, t, peer, (guint64) offset);
  files_pump_peer (self, peer);
}

static void
handle_complete (NatterFileTransfers *self,
                 Transfer            *t,
                 JsonObject          *content)
{
  const char *status = content_string (content, "status");

  if (t->row->direction != NATTER_STORE_DIRECTION_OUT || state_is_final (t->row->state))
    return;
  transfer_stop_sending (t);
  files_queue_job (self, job_new (JOB_CLOSE, t->io, t->row->id));
  t->io_open = FALSE;
  if (status != NULL && g_str_equal (status, "hash-mismatch"))
    {
      transfer_set_state (self, t, NATTER_STORE_TRANSFER_FAILED,
                          "The receiver found that the file does not match its hash");
      return;
    }
  t->acked = (guint64) t->row->size;
  t->row->offset = t->row->size;
  transfer_progress (self, t, t->acked, TRUE);
  transfer_set_state (self, t, NATTER_STORE_TRANSFER_COMPLETE, t->row->path);
}

void
natter_file_transfers_handle_message (NatterFileTransfers *self,
                                      const char          *peer_id,
                                      NatterMessageType    type,
                                      JsonObject          *content)
{
  const char *id;
  Transfer *t;

  if (!self->loaded || self->stopping || content == NULL)
    return;
  if (type == NATTER_MESSAGE_TYPE_FILE_OFFER)
    {
      handle_offer (self, peer_id, content);
      return;
    }
  id = content_string (content, "fileId");
  t = id != NULL ? g_hash_table_lookup (self->transfers, id) : NULL;
  if (t == NULL || strcmp (t->row->peer_id, peer_id) != 0)
    return;
  if (type == NATTER_MESSAGE_TYPE_FILE_ACCEPT)
    handle_accept (self, t, content);
  else if (type == NATTER_MESSAGE_TYPE_FILE_COMPLETE)
    handle_complete (self, t, content);
}

/* }}} */
/* {{{ Connections */

static void
resume_incoming (NatterFileTransfers *self,
                 const char          *peer_id)
{
  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);

      if (t->row->direction != NATTER_STORE_DIRECTION_IN || strcmp (t->row->peer_id, peer_id) != 0 ||
          !t->io_open || t->io_opening || t->held || t->finishing)
        continue;
      if (t->row->state != NATTER_STORE_TRANSFER_ACCEPTED &&
          t->row->state != NATTER_STORE_TRANSFER_ACTIVE &&
          t->row->state != NATTER_STORE_TRANSFER_PAUSED)
        continue;
      /* Everything queued for writing will be written: ask for the rest. */
      send_accept (self, t, t->expected, NULL, FALSE);
    }
}

void
natter_file_transfers_peer_connected (NatterFileTransfers  *self,
                                      const char           *peer_id,
                                      NatterPeerConnection *pc)
{
  Peer *peer = files_get_peer (self, peer_id);

  if (peer == NULL)
    {
      peer = g_new0 (Peer, 1);
      peer->peer_id = g_strdup (peer_id);
      g_hash_table_insert (self->peers, peer->peer_id, peer);
    }
  g_set_object (&peer->pc, pc);
  peer->generation++;
  if (self->loaded)
    resume_incoming (self, peer_id);
}

void
natter_file_transfers_peer_lost (NatterFileTransfers *self,
                                 const char          *peer_id)
{
  if (!g_hash_table_remove (self->peers, peer_id))
    return;
  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);

      if (strcmp (t->row->peer_id, peer_id) != 0 || state_is_final (t->row->state))
        continue;
      if (t->row->direction == NATTER_STORE_DIRECTION_OUT && t->sending)
        {
          transfer_stop_sending (t);
          transfer_set_state (self, t, NATTER_STORE_TRANSFER_PAUSED, "Waiting for the peer");
        }
      else if (t->row->direction == NATTER_STORE_DIRECTION_IN && !t->held &&
               (t->row->state == NATTER_STORE_TRANSFER_ACTIVE ||
                t->row->state == NATTER_STORE_TRANSFER_ACCEPTED))
        transfer_set_state (self, t, NATTER_STORE_TRANSFER_PAUSED, "Waiting for the peer");
    }
}

/* }}} */
/* {{{ Start, stop */

static void
on_unfinished_loaded (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr(NatterFileTransfers) self = user_data;
  g_autoptr(GError) error = NULL;
  GPtrArray *rows = natter_store_run_finish (NATTER_STORE (source), result, &error);
  GHashTableIter iter;
  Peer *peer;

  if (self->stopping || self->worker->owner == NULL)
    {
      g_clear_pointer (&rows, g_ptr_array_unref);
      return;
    }
  self->loaded = TRUE;
  if (rows == NULL)
    {
      g_warning ("Could not load file transfers: %s", error->message);
      return;
    }
  for (guint i = 0; i < rows->len; i++)
    {
      NatterStoreTransfer *row = g_ptr_array_steal_index (rows, i--);
      Transfer *t;

      if (g_hash_table_contains (self->transfers, row->id))
        {
          natter_store_transfer_free (row);
          continue;
        }
      t = transfer_new (self, row);
      t->media_type = g_strdup ("application/octet-stream");
      if (row->direction == NATTER_STORE_DIRECTION_OUT)
        {
          g_free (t->io->path);
          t->io->path = g_strdup (row->path);
          t->acked = (guint64) row->offset;
          if (row->state != NATTER_STORE_TRANSFER_OFFERED)
            row->state = NATTER_STORE_TRANSFER_PAUSED;
          continue;
        }
      if (row->state == NATTER_STORE_TRANSFER_OFFERED)
        {
          gboolean auto_accept = FALSE;

          g_signal_emit_by_name (self->service, "transfer-offered", row->id, row->peer_id,
                                 row->name, row->size, t->media_type);
          g_object_get (self->service, "auto-accept", &auto_accept, NULL);
          if (auto_accept)
            natter_file_transfers_accept (self, row->id, NULL, NULL);
          continue;
        }
      if (row->path == NULL)
        {
          transfer_fail (self, t, "The partial file is unknown");
          continue;
        }
      /* Resume from the stored (fsynced) offset. */
      t->io->path = g_strdup (row->path);
      t->io->folder = g_path_get_dirname (row->path);
      t->io->name = natter_file_name_sanitize (row->name);
      t->durable = (guint64) row->offset;
      t->io_opening = TRUE;
      row->state = NATTER_STORE_TRANSFER_PAUSED;
      {
        Job *job = job_new (JOB_OPEN_WRITE, t->io, row->id);

        job->offset = (guint64) row->offset;
        files_queue_job (self, job);
      }
    }
  g_ptr_array_unref (rows);

  /* Connections that came first. */
  g_hash_table_iter_init (&iter, self->peers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &peer))
    resume_incoming (self, peer->peer_id);
}

static gpointer
load_unfinished (NatterDb  *db,
                 gpointer   user_data,
                 GError   **error)
{
  return natter_db_transfer_list_unfinished (db, error);
}

void
natter_file_transfers_start (NatterFileTransfers *self)
{
  natter_store_run_async (self->store, load_unfinished, NULL, NULL,
                          (GDestroyNotify) g_ptr_array_unref, NULL,
                          on_unfinished_loaded, g_object_ref (self));
}

void
natter_file_transfers_stop (NatterFileTransfers *self)
{
  if (self->stopping)
    return;
  self->stopping = TRUE;
  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);

      if (state_is_final (t->row->state))
        continue;
      transfer_stop_sending (t);
      if (t->row->direction == NATTER_STORE_DIRECTION_IN)
        t->row->offset = (gint64) t->durable;
      else
        t->row->offset = (gint64) t->acked;
      transfer_save (self, t);
    }
  g_hash_table_remove_all (self->peers);
}

/* }}} */
/* {{{ Public operations */

typedef struct
{
  char   *peer_id;
  char   *path;
  char   *name;
  gboolean fake;
  guint8  fake_hash[crypto_generichash_BYTES];
} OfferData;

static void
offer_data_free (OfferData *data)
{
  g_free (data->peer_id);
  g_free (data->path);
  g_free (data->name);
  g_free (data);
}

void
natter_file_transfers_send_async (NatterFileTransfers *self,
                                  const char          *peer_id,
                                  GFile               *file,
                                  const char          *name,
                                  const guint8        *fake_hash,
                                  GTask               *task)
{
  OfferData *data = g_new0 (OfferData, 1);
  g_autoptr(Io) io = NULL;
  Job *job;

  data->peer_id = g_strdup (peer_id);
  data->path = g_file_get_path (file);
  if (data->path == NULL)
    {
      offer_data_free (data);
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                               "Only local files can be sent");
      g_object_unref (task);
      return;
    }
  if (name != NULL)
    data->name = g_strdup (name);
  else
    {
      g_autofree char *display = g_filename_display_basename (data->path);

      /* At most 255 characters on the wire. */
      if (g_utf8_strlen (display, -1) > 255)
        data->name = g_utf8_substring (display, g_utf8_strlen (display, -1) - 255, g_utf8_strlen (display, -1));
      else
        data->name = g_steal_pointer (&display);
    }
  if (fake_hash != NULL)
    {
      data->fake = TRUE;
      memcpy (data->fake_hash, fake_hash, sizeof data->fake_hash);
    }
  g_task_set_task_data (task, data, (GDestroyNotify) offer_data_free);

  io = io_new ();
  io->path = g_strdup (data->path);
  io->name = g_strdup (data->name);
  job = job_new (JOB_HASH_FILE, io, NULL);
  job->task = task;
  files_queue_job (self, job);
}

static void
on_offer_hashed (NatterFileTransfers *self,
                 Job                 *job)
{
  GTask *task = job->task;
  OfferData *data = g_task_get_task_data (task);
  g_autoptr(JsonObject) content = NULL;
  g_autofree char *hash = NULL;
  g_autofree char *random_hex = NULL;
  NatterStoreTransfer *row;
  guint8 random[8];
  Transfer *t;

  if (job->err != 0)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                               "%s", job->message);
      return;
    }
  if (self->stopping)
    {
      g_task_return_new_error (task, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_NOT_STARTED,
                               "The messaging service is not running");
      return;
    }

  randombytes_buf (random, sizeof random);
  random_hex = g_malloc (sizeof random * 2 + 1);
  sodium_bin2hex (random_hex, sizeof random * 2 + 1, random, sizeof random);
  hash = g_base64_encode (data->fake ? data->fake_hash : job->digest, crypto_generichash_BYTES);

  row = natter_store_transfer_new ();
  row->id = g_strdup_printf ("file_%" G_GINT64_FORMAT "_%s", now_ms (), random_hex);
  row->peer_id = g_strdup (data->peer_id);
  row->direction = NATTER_STORE_DIRECTION_OUT;
  row->name = g_strdup (data->name);
  row->size = (gint64) job->offset;
  row->hash = g_strdup (hash);
  row->state = NATTER_STORE_TRANSFER_OFFERED;
  row->path = g_strdup (data->path);
  row->created_at = row->updated_at = now_ms ();
  t = transfer_new (self, row);
  t->media_type = g_strdup (job->media_type);
  t->io->path = g_strdup (data->path);
  transfer_save (self, t);

  content = json_object_new ();
  json_object_set_string_member (content, "fileId", row->id);
  json_object_set_string_member (content, "name", row->name);
  json_object_set_int_member (content, "size", row->size);
  json_object_set_string_member (content, "mediaType", t->media_type);
  json_object_set_string_member (content, "hash", hash);
  natter_messaging_service_send_file_control (self->service, row->peer_id,
                                              NATTER_MESSAGE_TYPE_FILE_OFFER, content, TRUE,
                                              task, row->id);
  g_signal_emit_by_name (self->service, "transfer-state-changed", row->id, "offered", NULL);
  job->task = NULL;
  g_object_unref (task);
}

static Transfer *
lookup (NatterFileTransfers  *self,
        const char           *transfer_id,
        GError              **error)
{
  Transfer *t = transfer_id != NULL ? g_hash_table_lookup (self->transfers, transfer_id) : NULL;

  if (t == NULL)
    g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                 "There is no file transfer “%s”", transfer_id != NULL ? transfer_id : "");
  return t;
}

gboolean
natter_file_transfers_accept (NatterFileTransfers  *self,
                              const char           *transfer_id,
                              GFile                *folder,
                              GError              **error)
{
  Transfer *t = lookup (self, transfer_id, error);
  Job *job;

  if (t == NULL)
    return FALSE;
  if (t->row->direction != NATTER_STORE_DIRECTION_IN)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "%s is a file we send", transfer_id);
      return FALSE;
    }
  if (t->held && t->row->state == NATTER_STORE_TRANSFER_PAUSED)
    {
      /* After a local failure: resume where the file ends. */
      t->io_opening = TRUE;
      files_queue_job (self, job_new (JOB_RESUME, t->io, t->row->id));
      return TRUE;
    }
  if (t->row->state != NATTER_STORE_TRANSFER_OFFERED || t->io_opening)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "%s is %s, not offered", transfer_id,
                   natter_store_transfer_state_to_string (t->row->state));
      return FALSE;
    }
  if (folder != NULL)
    t->io->folder = g_file_get_path (folder);
  else
    {
      g_autofree char *download = NULL;

      g_object_get (self->service, "download-folder", &download, NULL);
      t->io->folder = g_steal_pointer (&download);
    }
  if (t->io->folder == NULL)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "There is no download folder");
      return FALSE;
    }
  t->io->name = natter_file_name_sanitize (t->row->name);
  {
    g_autofree char *part = g_strdup_printf (".natter-%s.part", t->row->id);

    t->io->path = g_build_filename (t->io->folder, part, NULL);
  }
  g_free (t->row->path);
  t->row->path = g_strdup (t->io->path);
  t->io_opening = TRUE;
  job = job_new (JOB_OPEN_WRITE, t->io, t->row->id);
  job->offset = 0;
  files_queue_job (self, job);
  return TRUE;
}

gboolean
natter_file_transfers_decline (NatterFileTransfers  *self,
                               const char           *transfer_id,
                               GError              **error)
{
  Transfer *t = lookup (self, transfer_id, error);

  if (t == NULL)
    return FALSE;
  if (t->row->direction != NATTER_STORE_DIRECTION_IN || t->row->state != NATTER_STORE_TRANSFER_OFFERED)
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "%s is not an offer to us", transfer_id);
      return FALSE;
    }
  transfer_set_state (self, t, NATTER_STORE_TRANSFER_REJECTED, "Declined");
  send_accept (self, t, 0, "declined", TRUE);
  return TRUE;
}

gboolean
natter_file_transfers_cancel (NatterFileTransfers  *self,
                              const char           *transfer_id,
                              GError              **error)
{
  Transfer *t = lookup (self, transfer_id, error);

  if (t == NULL)
    return FALSE;
  if (state_is_final (t->row->state))
    {
      g_set_error (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID,
                   "%s is %s already", transfer_id,
                   natter_store_transfer_state_to_string (t->row->state));
      return FALSE;
    }
  transfer_stop_sending (t);
  if (t->row->direction == NATTER_STORE_DIRECTION_IN)
    files_queue_job (self, job_new (JOB_DISCARD, t->io, t->row->id));
  else
    files_queue_job (self, job_new (JOB_CLOSE, t->io, t->row->id));
  t->io_open = FALSE;
  transfer_set_state (self, t, NATTER_STORE_TRANSFER_CANCELLED, "Cancelled");
  send_accept (self, t, 0, "cancelled", TRUE);
  return TRUE;
}

GPtrArray *
natter_file_transfers_list (NatterFileTransfers *self)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) natter_store_transfer_free);

  for (guint i = 0; i < self->order->len; i++)
    {
      Transfer *t = g_ptr_array_index (self->order, i);
      NatterStoreTransfer *copy = natter_store_transfer_new ();

      copy->id = g_strdup (t->row->id);
      copy->conversation_id = t->row->conversation_id;
      copy->msg_id = g_strdup (t->row->msg_id);
      copy->peer_id = g_strdup (t->row->peer_id);
      copy->direction = t->row->direction;
      copy->name = g_strdup (t->row->name);
      copy->size = t->row->size;
      copy->hash = g_strdup (t->row->hash);
      /* Bytes done now: the receiver's written, the sender's acknowledged. */
      copy->offset = t->row->direction == NATTER_STORE_DIRECTION_IN
                     ? (state_is_final (t->row->state) ? t->row->offset : (gint64) t->written)
                     : (state_is_final (t->row->state) ? t->row->offset : (gint64) t->acked);
      copy->state = t->row->state;
      copy->path = g_strdup (t->row->path);
      copy->created_at = t->row->created_at;
      copy->updated_at = t->row->updated_at;
      g_ptr_array_add (list, copy);
    }
  return list;
}

gboolean
natter_file_transfers_get_counters (NatterFileTransfers        *self,
                                    const char                 *transfer_id,
                                    NatterFileTransferCounters *counters)
{
  Transfer *t = transfer_id != NULL ? g_hash_table_lookup (self->transfers, transfer_id) : NULL;

  if (t == NULL)
    return FALSE;
  *counters = t->counters;
  return TRUE;
}

guint64
natter_file_transfers_get_rejected_frames (NatterFileTransfers *self,
                                           NatterFileReject     reason)
{
  g_return_val_if_fail (reason < NATTER_FILE_REJECT_N, 0);
  return self->rejected[reason];
}

/* }}} */
/* {{{ GObject */

static void
natter_file_transfers_dispose (GObject *object)
{
  NatterFileTransfers *self = NATTER_FILE_TRANSFERS (object);

  if (self->thread != NULL)
    {
      g_async_queue_push (self->worker->jobs, job_new (JOB_QUIT, NULL, NULL));
      g_thread_join (g_steal_pointer (&self->thread));
      self->worker->owner = NULL;
      /* Results not delivered yet are dropped with the worker. */
    }
  g_hash_table_remove_all (self->peers);
  G_OBJECT_CLASS (natter_file_transfers_parent_class)->dispose (object);
}

static void
natter_file_transfers_finalize (GObject *object)
{
  NatterFileTransfers *self = NATTER_FILE_TRANSFERS (object);

  worker_unref (self->worker);
  g_clear_object (&self->store);
  g_hash_table_unref (self->by_tag);
  g_hash_table_unref (self->transfers);
  g_ptr_array_unref (self->order);
  g_hash_table_unref (self->peers);
  G_OBJECT_CLASS (natter_file_transfers_parent_class)->finalize (object);
}

static void
natter_file_transfers_class_init (NatterFileTransfersClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = natter_file_transfers_dispose;
  object_class->finalize = natter_file_transfers_finalize;
}

static void
natter_file_transfers_init (NatterFileTransfers *self)
{
  const char *window = g_getenv ("NATTER_FILE_SEND_WINDOW");

  self->transfers = g_hash_table_new (g_str_hash, g_str_equal);
  self->by_tag = g_hash_table_new (g_int64_hash, g_int64_equal);
  self->order = g_ptr_array_new_with_free_func ((GDestroyNotify) transfer_free);
  self->peers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) peer_free);
  self->send_window = SEND_WINDOW_DEFAULT;
  if (window != NULL && g_ascii_strtoull (window, NULL, 10) >= 65536)
    self->send_window = (gsize) g_ascii_strtoull (window, NULL, 10);
}

NatterFileTransfers *
natter_file_transfers_new (NatterMessagingService *service,
                           NatterStore            *store)
{
  NatterFileTransfers *self = g_object_new (NATTER_TYPE_FILE_TRANSFERS, NULL);

  self->service = service;
  self->store = g_object_ref (store);
  self->worker = g_new0 (Worker, 1);
  g_atomic_ref_count_init (&self->worker->ref);
  self->worker->context = g_main_context_ref_thread_default ();
  self->worker->jobs = g_async_queue_new ();
  g_mutex_init (&self->worker->lock);
  g_queue_init (&self->worker->done);
  self->worker->owner = self;
  self->thread = g_thread_new ("natter-files", worker_thread, worker_ref (self->worker));
  return self;
}

/* }}} */
