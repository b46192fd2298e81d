/* main.c: the natter desktop application
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "natter-application.h"

int
main (int    argc,
      char **argv)
{
  g_autoptr(NatterApplication) app = NULL;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  app = natter_application_new ();
  status = g_application_run (G_APPLICATION (app), argc, argv);
  if (status == 0 && natter_application_get_startup_failed (app))
    status = 1;
  return status;
}
