/* natter-window.h: the main window
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-profile.h"

G_BEGIN_DECLS

#define NATTER_TYPE_WINDOW (natter_window_get_type ())
G_DECLARE_FINAL_TYPE (NatterWindow, natter_window, NATTER, WINDOW, AdwApplicationWindow)

/* @conversations is a GListModel of NatterConversation, kept up to date by
 * its owner; the window only shows it. */
NatterWindow *natter_window_new               (AdwApplication *application,
                                               NatterProfile  *profile,
                                               GListModel     *conversations);
NatterProfile *natter_window_get_profile      (NatterWindow   *self);

G_END_DECLS
