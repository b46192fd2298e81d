/* natter-profile.h: a user profile: its folder, lock, identity and settings
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <gio/gio.h>

#include "natter-identity.h"

G_BEGIN_DECLS

#define NATTER_PROFILE_ERROR (natter_profile_error_quark ())

typedef enum
{
  NATTER_PROFILE_ERROR_INVALID_NAME,  /* not a safe profile name */
  NATTER_PROFILE_ERROR_LOCKED,        /* another process holds the profile */
  NATTER_PROFILE_ERROR_UNSAFE,        /* folder readable by others, not a folder, … */
  NATTER_PROFILE_ERROR_NO_SCHEMA,     /* the GSettings schema is not installed */
} NatterProfileError;

GQuark natter_profile_error_quark (void);

#define NATTER_TYPE_PROFILE (natter_profile_get_type ())
G_DECLARE_FINAL_TYPE (NatterProfile, natter_profile, NATTER, PROFILE, GObject)

/* Resolves @name_or_path to a folder: a value containing a slash is the
 * folder itself; otherwise $XDG_DATA_HOME/natter/NAME.  NULL means
 * "default".  Returns a newly allocated path, or NULL with @error set when
 * the name is unsafe (empty, ".", "..", control characters, too long). */
char          *natter_profile_resolve_directory (const char           *name_or_path,
                                                 GError              **error);

/* Opens the profile: creates the folder (mode 0700) when needed, takes the
 * lock (a second process gets NATTER_PROFILE_ERROR_LOCKED naming the PID
 * that holds it), and loads or creates the identity.  Blocking: call from a
 * worker, or use the _async variant on the main context. */
NatterProfile *natter_profile_open              (const char           *name_or_path,
                                                 GCancellable         *cancellable,
                                                 GError              **error);
void           natter_profile_open_async        (const char           *name_or_path,
                                                 GCancellable         *cancellable,
                                                 GAsyncReadyCallback   callback,
                                                 gpointer              user_data);
NatterProfile *natter_profile_open_finish       (GAsyncResult         *result,
                                                 GError              **error);

const char     *natter_profile_get_name          (NatterProfile *self);
const char     *natter_profile_get_directory     (NatterProfile *self);
/* $dir/natter.db */
const char     *natter_profile_get_database_path (NatterProfile *self);
NatterIdentity *natter_profile_get_identity      (NatterProfile *self);
/* TRUE when this open created a new identity. */
gboolean        natter_profile_is_new            (NatterProfile *self);
/* Settings of schema org.natter.Natter.Profile, kept in $dir/settings.ini. */
GSettings      *natter_profile_get_settings      (NatterProfile *self);
/* The display-name setting, or the user's real name when it is empty. */
char           *natter_profile_dup_display_name  (NatterProfile *self);

G_END_DECLS
