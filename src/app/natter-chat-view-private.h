/* natter-chat-view-private.h: the chat view's parts, for its own files
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-chat-view.h"

G_BEGIN_DECLS

struct _NatterChatView
{
  GtkWidget parent_instance;

  NatterMessagingService *service;
  char *peer_id;
  GListModel *history;
  GCancellable *cancellable;
  GCancellable *search_cancellable;
  char *jump_to;
  gboolean folded;
  gboolean loading;
  gboolean first_page_pending;
  gboolean stick_to_bottom;
  GHashTable *transfer_rows;        /* transfer ID → NatterTransferRow (borrowed) */
  GtkFileChooserNative *chooser;

  /* Template widgets */
  GtkLabel *title_label;
  GtkLabel *subtitle_label;
  GtkImage *verified_icon;
  GtkSearchBar *search_bar;
  GtkSearchEntry *search_entry;
  GtkStack *history_stack;
  GtkOverlay *history_overlay;
  GtkScrolledWindow *scroller;
  GtkListView *message_list;
  AdwStatusPage *empty_page;
  GtkListView *results_list;
  GtkRevealer *typing_revealer;
  GtkLabel *typing_label;
  GtkTextView *composer;
  GtkButton *send_button;
  GtkWidget *transfer_scroller;
  GtkListBox *transfer_list;
  GtkWidget *drop_overlay;
  AdwStatusPage *drop_page;
};

G_END_DECLS
