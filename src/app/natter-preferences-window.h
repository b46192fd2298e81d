/* natter-preferences-window.h: the profile's preferences
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-profile.h"

G_BEGIN_DECLS

#define NATTER_TYPE_PREFERENCES_WINDOW (natter_preferences_window_get_type ())
G_DECLARE_FINAL_TYPE (NatterPreferencesWindow, natter_preferences_window, NATTER, PREFERENCES_WINDOW, AdwPreferencesWindow)

NatterPreferencesWindow *natter_preferences_window_new (NatterProfile *profile);

G_END_DECLS
