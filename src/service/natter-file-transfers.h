/* natter-file-transfers.h: offers, resumable verified file transfers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "natter-message.h"
#include "natter-messaging-service.h"
#include "natter-peer-connection.h"
#include "natter-store.h"

G_BEGIN_DECLS

/* NatterFileTransfers is the file half of NatterMessagingService, owned by
 * it and living on its main context (docs/architecture.md, "Files").
 *
 * Control messages (file_offer, file_accept, file_complete) are signed,
 * end-to-end encrypted wire messages that the service carries on the CHAT
 * stream, the offer through the outbox.  File data travels as binary
 * frames on a bulk stream per transfer:
 *
 *   DATA  kind 1 | 7 zero bytes | transfer tag (8) | offset (8, BE) | bytes
 *   ACK   kind 2 | 7 zero bytes | transfer tag (8) | offset (8, BE)
 *
 * the tag being the first 8 bytes of BLAKE2b-128 of the file ID.  File I/O
 * and hashing run on a worker thread of their own. */

#define NATTER_FILE_FRAME_HEADER   24
#define NATTER_FILE_CHUNK_SIZE     (NATTER_PEER_MAX_MESSAGE_SIZE - NATTER_FILE_FRAME_HEADER)
#define NATTER_FILE_FRAME_DATA     1
#define NATTER_FILE_FRAME_ACK      2
/* The sender keeps at most this many bytes beyond the receiver's last
 * acknowledgement; a restarted sender repeats at most this much. */
#define NATTER_FILE_ACK_WINDOW     (16 * 1024 * 1024)
/* The receiver acknowledges every this many bytes written. */
#define NATTER_FILE_ACK_EVERY      (1024 * 1024)
/* ... and makes its offset durable (fdatasync, store) every this many. */
#define NATTER_FILE_CHECKPOINT     (32 * 1024 * 1024)
/* Longest name (in bytes) a received file gets, before " (n)". */
#define NATTER_FILE_NAME_MAX       200

#define NATTER_TYPE_FILE_TRANSFERS (natter_file_transfers_get_type ())
G_DECLARE_FINAL_TYPE (NatterFileTransfers, natter_file_transfers, NATTER, FILE_TRANSFERS, GObject)

/* Per-transfer counters for tests and diagnostics. */
typedef struct
{
  guint64 bytes_sent;         /* data bytes handed to the connection (this run) */
  guint64 bytes_received;     /* data bytes that arrived, repeats included */
  guint64 duplicate_bytes;    /* of those, bytes we had already */
  guint64 resumed_from;       /* the offset the last (re)start began at */
  guint   starts;             /* how often sending (re)started (sender) */
} NatterFileTransferCounters;

/* Why a data frame was refused. */
typedef enum
{
  NATTER_FILE_REJECT_UNKNOWN,        /* no such transfer with this peer */
  NATTER_FILE_REJECT_NOT_ACCEPTED,   /* offered but not accepted, declined, over */
  NATTER_FILE_REJECT_BEYOND_SIZE,    /* past the offered size, or empty */
  NATTER_FILE_REJECT_OUT_OF_ORDER,   /* a gap, or an acknowledgement out of range */
  NATTER_FILE_REJECT_MALFORMED,      /* short frame, unknown kind */
  NATTER_FILE_REJECT_N
} NatterFileReject;

NatterFileTransfers *natter_file_transfers_new (NatterMessagingService *service,
                                                NatterStore            *store);

/* After the service has loaded: reads unfinished transfers from the store
 * and resumes them. */
void     natter_file_transfers_start            (NatterFileTransfers  *self);
/* Before the store closes: saves the state of running transfers. */
void     natter_file_transfers_stop             (NatterFileTransfers  *self);

void     natter_file_transfers_peer_connected   (NatterFileTransfers  *self,
                                                 const char           *peer_id,
                                                 NatterPeerConnection *pc);
void     natter_file_transfers_peer_lost        (NatterFileTransfers  *self,
                                                 const char           *peer_id);
/* The connection to @peer_id has room again. */
void     natter_file_transfers_pump             (NatterFileTransfers  *self,
                                                 const char           *peer_id);
/* The most file data the connection to a peer holds (bytes buffered). */
gsize    natter_file_transfers_get_send_window  (NatterFileTransfers  *self);
/* A frame on a bulk stream. */
void     natter_file_transfers_handle_frame     (NatterFileTransfers  *self,
                                                 const char           *peer_id,
                                                 guint                 stream,
                                                 GBytes               *frame);
/* A decrypted file_offer, file_accept or file_complete from @peer_id. */
void     natter_file_transfers_handle_message   (NatterFileTransfers  *self,
                                                 const char           *peer_id,
                                                 NatterMessageType     type,
                                                 JsonObject           *content);

void     natter_file_transfers_send_async       (NatterFileTransfers  *self,
                                                 const char           *peer_id,
                                                 GFile                *file,
                                                 const char           *name,
                                                 const guint8         *fake_hash,
                                                 GTask                *task);
gboolean natter_file_transfers_accept           (NatterFileTransfers  *self,
                                                 const char           *transfer_id,
                                                 GFile                *folder,
                                                 GError              **error);
gboolean natter_file_transfers_decline          (NatterFileTransfers  *self,
                                                 const char           *transfer_id,
                                                 GError              **error);
gboolean natter_file_transfers_cancel           (NatterFileTransfers  *self,
                                                 const char           *transfer_id,
                                                 GError              **error);
GPtrArray *natter_file_transfers_list           (NatterFileTransfers  *self);
gboolean natter_file_transfers_get_counters     (NatterFileTransfers  *self,
                                                 const char           *transfer_id,
                                                 NatterFileTransferCounters *counters);
guint64  natter_file_transfers_get_rejected_frames (NatterFileTransfers *self,
                                                    NatterFileReject     reason);

/* A safe file name for @name from the network: the last path component,
 * no control or bidi characters, no leading dots, no reserved device
 * names, at most NATTER_FILE_NAME_MAX bytes; never empty. */
char    *natter_file_name_sanitize              (const char           *name);
/* "name (n).ext" for @name and @n ≥ 1. */
char    *natter_file_name_numbered              (const char           *name,
                                                 guint                 n);

/* Implemented by the service for this object. */
/* Sends a file_* message with @content to @peer_id, encrypted and signed:
 * through the outbox when @queued (then @commit_task, if not NULL, returns
 * @transfer_id once it is committed), else straight (FALSE when not
 * connected). */
gboolean natter_messaging_service_send_file_control (NatterMessagingService *self,
                                                     const char             *peer_id,
                                                     NatterMessageType       type,
                                                     JsonObject             *content,
                                                     gboolean                queued,
                                                     GTask                  *commit_task,
                                                     const char             *transfer_id);
/* Stores a copy of @transfer in the next group commit. */
void     natter_messaging_service_save_transfer     (NatterMessagingService *self,
                                                     const NatterStoreTransfer *transfer);
gboolean natter_messaging_service_is_contact        (NatterMessagingService *self,
                                                     const char             *peer_id);

G_END_DECLS
