/* natter-store-private.h: internals shared by the files of src/store
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <sqlite3.h>

#include "natter-db.h"

G_BEGIN_DECLS

/* Sets @error from an SQLite result code, with @what saying what was being
 * done.  Always returns FALSE so that callers can "return set_error (...)". */
gboolean natter_db_set_sqlite_error (GError     **error,
                                     sqlite3     *db,
                                     int          rc,
                                     const char  *what);

/* Runs SQL with no results (DDL, pragmas). */
gboolean natter_db_exec             (sqlite3     *db,
                                     const char  *sql,
                                     const char  *what,
                                     GError     **error);

/* Brings the schema of @db up to NATTER_DB_SCHEMA_VERSION, one transaction
 * per version step.  Refuses a database newer than this code. */
gboolean natter_db_schema_migrate   (sqlite3     *db,
                                     int         *out_version,
                                     GError     **error);

G_END_DECLS
