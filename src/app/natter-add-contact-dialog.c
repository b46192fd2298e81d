/* natter-add-contact-dialog.c: add a contact by peer ID or invite link
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "natter-add-contact-dialog.h"
#include "natter-invite.h"
#include "natter-window.h"

struct _NatterAddContactDialog
{
  AdwWindow parent_instance;

  NatterMessagingService *service;
  GCancellable *cancellable;

  AdwEntryRow *peer_row;
  AdwEntryRow *name_row;
  GtkLabel *hint_label;
};

G_DEFINE_FINAL_TYPE (NatterAddContactDialog, natter_add_contact_dialog, ADW_TYPE_WINDOW)

static gboolean
parse (NatterAddContactDialog  *self,
       char                   **peer_id,
       char                   **name,
       GError                 **error)
{
  return natter_invite_parse (gtk_editable_get_text (GTK_EDITABLE (self->peer_row)),
                              peer_id, name, error);
}

static void
on_peer_changed (NatterAddContactDialog *self)
{
  g_autofree char *peer_id = NULL;
  g_autofree char *name = NULL;
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->peer_row));
  gboolean valid = parse (self, &peer_id, &name, NULL);

  if (valid || text[0] == '\0')
    gtk_widget_remove_css_class (GTK_WIDGET (self->peer_row), "error");
  else
    gtk_widget_add_css_class (GTK_WIDGET (self->peer_row), "error");
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "contact.add", valid);

  /* A link carries its owner's name: offer it unless one was typed. */
  if (name != NULL && gtk_editable_get_text (GTK_EDITABLE (self->name_row))[0] == '\0')
    gtk_editable_set_text (GTK_EDITABLE (self->name_row), name);
}

static void
on_contact_added (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(NatterAddContactDialog) self = user_data;
  g_autoptr(NatterContact) contact = NULL;
  g_autoptr(GError) error = NULL;
  GtkWindow *parent;

  contact = natter_messaging_service_add_contact_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (contact == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      gtk_widget_set_sensitive (GTK_WIDGET (self), TRUE);
      gtk_label_set_label (self->hint_label, error->message);
      gtk_widget_add_css_class (GTK_WIDGET (self->hint_label), "error");
      return;
    }

  parent = gtk_window_get_transient_for (GTK_WINDOW (self));
  if (NATTER_IS_WINDOW (parent))
    natter_window_open_conversation (NATTER_WINDOW (parent), natter_contact_get_peer_id (contact));
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
add_action (GtkWidget  *widget,
            const char *action_name,
            GVariant   *parameter)
{
  NatterAddContactDialog *self = NATTER_ADD_CONTACT_DIALOG (widget);
  g_autofree char *peer_id = NULL;
  g_autofree char *link_name = NULL;
  g_autofree char *name = NULL;
  g_autoptr(GError) error = NULL;

  if (!parse (self, &peer_id, &link_name, &error))
    {
      gtk_label_set_label (self->hint_label, error->message);
      gtk_widget_add_css_class (GTK_WIDGET (self->hint_label), "error");
      return;
    }
  name = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->name_row))));
  gtk_widget_set_sensitive (GTK_WIDGET (self), FALSE);
  natter_messaging_service_add_contact_async (self->service, peer_id,
                                              name[0] != '\0' ? name : link_name,
                                              self->cancellable, on_contact_added,
                                              g_object_ref (self));
}

static void
on_entry_activated (NatterAddContactDialog *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "contact.add", NULL);
}

static void
natter_add_contact_dialog_dispose (GObject *object)
{
  NatterAddContactDialog *self = NATTER_ADD_CONTACT_DIALOG (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->service);

  G_OBJECT_CLASS (natter_add_contact_dialog_parent_class)->dispose (object);
}

static void
natter_add_contact_dialog_class_init (NatterAddContactDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = natter_add_contact_dialog_dispose;

  gtk_widget_class_set_template_from_resource (widget_class, "/org/natter/Natter/natter-add-contact-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, NatterAddContactDialog, peer_row);
  gtk_widget_class_bind_template_child (widget_class, NatterAddContactDialog, name_row);
  gtk_widget_class_bind_template_child (widget_class, NatterAddContactDialog, hint_label);
  gtk_widget_class_bind_template_callback (widget_class, on_peer_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_entry_activated);
  gtk_widget_class_install_action (widget_class, "contact.add", NULL, add_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
natter_add_contact_dialog_init (NatterAddContactDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->cancellable = g_cancellable_new ();
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "contact.add", FALSE);
}

/**
 * natter_add_contact_dialog_new:
 * @service: the messaging service
 * @peer_id: (nullable): a peer ID to fill in, from an invite link
 * @name: (nullable): a name to fill in
 *
 * Returns: (transfer full): a new dialog
 */
NatterAddContactDialog *
natter_add_contact_dialog_new (NatterMessagingService *service,
                               const char             *peer_id,
                               const char             *name)
{
  NatterAddContactDialog *self = g_object_new (NATTER_TYPE_ADD_CONTACT_DIALOG, NULL);

  self->service = g_object_ref (service);
  if (name != NULL)
    gtk_editable_set_text (GTK_EDITABLE (self->name_row), name);
  if (peer_id != NULL)
    gtk_editable_set_text (GTK_EDITABLE (self->peer_row), peer_id);
  return self;
}
