/* natter-transfer-row.h: one file transfer in a conversation
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_TRANSFER_ROW (natter_transfer_row_get_type ())
G_DECLARE_FINAL_TYPE (NatterTransferRow, natter_transfer_row, NATTER, TRANSFER_ROW, GtkListBoxRow)

/* The row's buttons activate "chat.accept-file", "chat.decline-file" and
 * "chat.cancel-file" with the transfer ID; it opens and shows a finished
 * file itself. */
NatterTransferRow *natter_transfer_row_new          (const NatterStoreTransfer *transfer);
const char        *natter_transfer_row_get_id       (NatterTransferRow         *self);
void               natter_transfer_row_set_state    (NatterTransferRow         *self,
                                                     const char                *state,
                                                     const char                *detail);
void               natter_transfer_row_set_progress (NatterTransferRow         *self,
                                                     gint64                     bytes_done,
                                                     gint64                     size,
                                                     double                     bytes_per_second);

G_END_DECLS
