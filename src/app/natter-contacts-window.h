/* natter-contacts-window.h: contacts, requests and blocked peers
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <adwaita.h>

#include "natter-messaging-service.h"

G_BEGIN_DECLS

#define NATTER_TYPE_CONTACTS_WINDOW (natter_contacts_window_get_type ())
G_DECLARE_FINAL_TYPE (NatterContactsWindow, natter_contacts_window, NATTER, CONTACTS_WINDOW, AdwWindow)

NatterContactsWindow *natter_contacts_window_new (NatterMessagingService *service);

G_END_DECLS
