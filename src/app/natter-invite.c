/* natter-invite.c: natter: invite links
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "natter-identity.h"
#include "natter-invite.h"

G_DEFINE_QUARK (natter-invite-error-quark, natter_invite_error)

/**
 * natter_invite_parse:
 * @text: an invite link or a peer ID, as pasted
 * @peer_id: (out): the normalized peer ID
 * @name: (out) (optional) (nullable): the name in the link, if any
 * @error: return location for a #GError
 *
 * Returns: %TRUE if @text names a valid peer ID (its checksum is checked)
 */
gboolean
natter_invite_parse (const char  *text,
                     char       **peer_id,
                     char       **name,
                     GError     **error)
{
  g_autofree char *copy = NULL;
  g_autofree char *found_name = NULL;
  guint8 key[NATTER_PUBLIC_KEY_LEN];
  char *query;
  char *id;

  g_return_val_if_fail (text != NULL, FALSE);
  g_return_val_if_fail (peer_id != NULL, FALSE);

  copy = g_strstrip (g_strdup (text));
  id = copy;
  if (g_ascii_strncasecmp (id, "natter:", 7) == 0)
    {
      id += 7;
      /* natter://ID is what some people will type. */
      while (*id == '/')
        id++;
    }

  query = strchr (id, '?');
  if (query != NULL)
    {
      g_auto(GStrv) pairs = g_strsplit (query + 1, "&", -1);

      *query = '\0';
      for (guint i = 0; pairs[i] != NULL; i++)
        if (g_str_has_prefix (pairs[i], "name="))
          {
            g_free (found_name);
            found_name = g_uri_unescape_string (pairs[i] + 5, NULL);
          }
      if (found_name != NULL &&
          (!g_utf8_validate (found_name, -1, NULL) || g_utf8_strlen (found_name, -1) > 128))
        g_clear_pointer (&found_name, g_free);
    }

  if (!natter_peer_id_parse (id, key, NULL))
    {
      g_set_error (error, NATTER_INVITE_ERROR, NATTER_INVITE_ERROR_INVALID,
                   _("“%s” is not a valid peer ID or invite link"), text);
      return FALSE;
    }

  *peer_id = natter_peer_id_from_public_key (key);
  if (name != NULL)
    *name = g_steal_pointer (&found_name);
  return TRUE;
}

/**
 * natter_invite_build:
 * @peer_id: a peer ID
 * @name: (nullable): the display name to put in the link
 *
 * Returns: (transfer full): the invite link
 */
char *
natter_invite_build (const char *peer_id,
                     const char *name)
{
  g_autofree char *escaped = NULL;

  g_return_val_if_fail (peer_id != NULL, NULL);

  if (name == NULL || name[0] == '\0')
    return g_strconcat ("natter:", peer_id, NULL);
  escaped = g_uri_escape_string (name, NULL, FALSE);
  return g_strconcat ("natter:", peer_id, "?name=", escaped, NULL);
}
