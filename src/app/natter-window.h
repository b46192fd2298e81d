/* natter-window.h: the main window
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"
#include "natter-profile.h"

G_BEGIN_DECLS

#define NATTER_TYPE_WINDOW (natter_window_get_type ())
G_DECLARE_FINAL_TYPE (NatterWindow, natter_window, NATTER, WINDOW, AdwApplicationWindow)

/* The window shows what @service knows (its models and signals) and asks it
 * to act; it does no networking or SQL of its own. */
NatterWindow  *natter_window_new                (AdwApplication         *application,
                                                 NatterProfile          *profile,
                                                 NatterMessagingService *service);
NatterProfile *natter_window_get_profile        (NatterWindow           *self);
void           natter_window_open_conversation  (NatterWindow           *self,
                                                 const char             *peer_id);
void           natter_window_open_invite        (NatterWindow           *self,
                                                 const char             *peer_id,
                                                 const char             *name);
void           natter_window_show_toast         (NatterWindow           *self,
                                                 const char             *message);
gboolean       natter_window_send_files         (NatterWindow           *self,
                                                 GdkFileList            *files);

G_END_DECLS
