/* natter-verify-dialog.c: compare safety numbers with a contact
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-app-util.h"
#include "natter-identity.h"
#include "natter-verify-dialog.h"

struct _NatterVerifyDialog
{
  AdwWindow parent_instance;

  NatterMessagingService *service;
  char *peer_id;

  GtkImage *status_icon;
  GtkLabel *explanation_label;
  GtkLabel *number_label;
  GtkButton *verify_button;
};

G_DEFINE_FINAL_TYPE (NatterVerifyDialog, natter_verify_dialog, ADW_TYPE_WINDOW)

static gboolean
is_verified (NatterVerifyDialog *self)
{
  g_autoptr(NatterContact) contact = natter_app_find_contact (self->service, self->peer_id);

  return contact != NULL && natter_contact_get_verified (contact);
}

static void
update (NatterVerifyDialog *self)
{
  g_autofree char *name = natter_app_dup_peer_name (self->service, self->peer_id);
  g_autofree char *explanation = NULL;
  gboolean verified = is_verified (self);

  if (verified)
    explanation = g_strdup_printf (_("You have verified %s. Compare the numbers again if you are in doubt."), name);
  else
    explanation = g_strdup_printf (_("Compare these numbers with %s, in person or on a call. "
                                     "If they match, nobody stands between you."), name);
  gtk_label_set_label (self->explanation_label, explanation);
  gtk_button_set_label (self->verify_button, verified ? _("_Remove Verification") : _("_Mark as Verified"));
  if (verified)
    {
      gtk_widget_remove_css_class (GTK_WIDGET (self->verify_button), "suggested-action");
      gtk_widget_add_css_class (GTK_WIDGET (self->status_icon), "verified-badge");
      gtk_widget_remove_css_class (GTK_WIDGET (self->status_icon), "dim-label");
    }
  else
    {
      gtk_widget_add_css_class (GTK_WIDGET (self->verify_button), "suggested-action");
      gtk_widget_remove_css_class (GTK_WIDGET (self->status_icon), "verified-badge");
      gtk_widget_add_css_class (GTK_WIDGET (self->status_icon), "dim-label");
    }
}

/* Twelve groups of five digits, set as three lines of four. */
static char *
format_safety_number (const char *number)
{
  g_auto(GStrv) groups = g_strsplit (number, " ", -1);
  GString *out = g_string_new (NULL);

  for (guint i = 0; groups[i] != NULL; i++)
    {
      if (i > 0)
        g_string_append_c (out, i % 4 == 0 ? '\n' : ' ');
      g_string_append (out, groups[i]);
    }
  return g_string_free (out, FALSE);
}

static void
on_verified_set (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(NatterVerifyDialog) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_set_contact_verified_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    gtk_label_set_label (self->explanation_label, error->message);
  gtk_widget_set_sensitive (GTK_WIDGET (self->verify_button), TRUE);
}

static void
toggle_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  NatterVerifyDialog *self = NATTER_VERIFY_DIALOG (widget);

  gtk_widget_set_sensitive (GTK_WIDGET (self->verify_button), FALSE);
  natter_messaging_service_set_contact_verified_async (self->service, self->peer_id,
                                                       !is_verified (self), NULL,
                                                       on_verified_set, g_object_ref (self));
}

static void
natter_verify_dialog_dispose (GObject *object)
{
  NatterVerifyDialog *self = NATTER_VERIFY_DIALOG (object);

  g_clear_object (&self->service);
  g_clear_pointer (&self->peer_id, g_free);

  G_OBJECT_CLASS (natter_verify_dialog_parent_class)->dispose (object);
}

static void
natter_verify_dialog_class_init (NatterVerifyDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_verify_dialog_dispose;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-verify-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterVerifyDialog, status_icon);
  gtk_widget_class_bind_template_child (widget_class, NatterVerifyDialog, explanation_label);
  gtk_widget_class_bind_template_child (widget_class, NatterVerifyDialog, number_label);
  gtk_widget_class_bind_template_child (widget_class, NatterVerifyDialog, verify_button);
  gtk_widget_class_install_action (widget_class, "verify.toggle", NULL, toggle_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
natter_verify_dialog_init (NatterVerifyDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

NatterVerifyDialog *
natter_verify_dialog_new (NatterMessagingService *service,
                          const char             *peer_id)
{
  NatterVerifyDialog *self = g_object_new (NATTER_TYPE_VERIFY_DIALOG, NULL);
  NatterIdentity *identity = natter_profile_get_identity (natter_messaging_service_get_profile (service));
  guint8 key[NATTER_PUBLIC_KEY_LEN];

  self->service = g_object_ref (service);
  self->peer_id = g_strdup (peer_id);

  /* The number is computed here from the two public keys: it is what the
   * two people compare, so it must not depend on anything the network says. */
  if (natter_peer_id_parse (peer_id, key, NULL))
    {
      g_autofree char *number = natter_safety_number (natter_identity_get_public_key (identity), key);
      g_autofree char *formatted = format_safety_number (number);

      gtk_label_set_label (self->number_label, formatted);
    }
  g_signal_connect_object (natter_messaging_service_get_contacts (service), "items-changed",
                           G_CALLBACK (update), self, G_CONNECT_SWAPPED);
  update (self);
  return self;
}
