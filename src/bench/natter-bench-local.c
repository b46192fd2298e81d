/* natter-bench-local.c: services and processes shared by natter-bench subcommands
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <signal.h>
#include <sys/prctl.h>

#include <glib/gstdio.h>

#include "natter-bench-local.h"

void
natter_bench_die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean
set_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

gboolean
natter_bench_iterate_until (gboolean *flag,
                            double    seconds)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add ((guint) (seconds * 1000), set_flag, &timed_out);

  while (!*flag && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return *flag;
}

void
natter_bench_remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        natter_bench_remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

char *
natter_bench_find_rendezvous (const char *self_exe)
{
  const char *env = g_getenv ("NATTER_RENDEZVOUS");
  g_autofree char *dir = g_path_get_dirname (self_exe);
  g_autofree char *candidate = g_build_filename (dir, "..", "rendezvous", "natter-rendezvous", NULL);

  if (env != NULL)
    return g_strdup (env);
  if (g_file_test (candidate, G_FILE_TEST_IS_EXECUTABLE))
    return g_steal_pointer (&candidate);
  g_free (candidate);
  candidate = g_build_filename (dir, "natter-rendezvous", NULL);
  if (g_file_test (candidate, G_FILE_TEST_IS_EXECUTABLE))
    return g_steal_pointer (&candidate);
  return g_find_program_in_path ("natter-rendezvous");
}

static void
on_started (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  NatterBenchLocal *local = user_data;

  natter_messaging_service_start_finish (local->service, result, &local->error);
  local->done = TRUE;
}

void
natter_bench_local_on_contact (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  NatterBenchLocal *local = user_data;
  g_autoptr(NatterContact) contact =
    natter_messaging_service_add_contact_finish (local->service, result, &local->error);

  local->done = TRUE;
}

gboolean
natter_bench_local_start (NatterBenchLocal  *local,
                          const char        *dir,
                          const char        *url,
                          const char        *contact,
                          const char        *downloads,
                          GError           **error)
{
  const char *urls[] = { url, NULL };
  const char *lo[] = { "lo", NULL };

  local->profile = natter_profile_open (dir, NULL, error);
  if (local->profile == NULL)
    return FALSE;
  local->service = natter_messaging_service_new (local->profile);
  g_object_set (local->service, "rendezvous-urls", urls, "lan-discovery", FALSE,
                "interfaces", lo, NULL);
  if (downloads != NULL)
    g_object_set (local->service, "download-folder", downloads, "auto-accept", TRUE, NULL);
  local->done = FALSE;
  natter_messaging_service_start_async (local->service, NULL, on_started, local);
  natter_bench_iterate_until (&local->done, 30);
  if (local->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local->error));
      return FALSE;
    }
  if (contact != NULL)
    {
      local->done = FALSE;
      natter_messaging_service_add_contact_async (local->service, contact, NULL, NULL,
                                                  natter_bench_local_on_contact, local);
      natter_bench_iterate_until (&local->done, 30);
      if (local->error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local->error));
          return FALSE;
        }
    }
  return TRUE;
}
