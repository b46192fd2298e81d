/* natter-message-private.h: codec internals shared by the message files
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include "natter-message.h"

G_BEGIN_DECLS

#define NATTER_MESSAGE_SIGNING_PREFIX "natter-message-v1\n"

/* Size, UTF-8, strict JSON syntax and depth (at most @max_depth) checks
 * on untrusted bytes, then json-glib; returns the root object.  @what
 * names the document in errors ("message", "content"). */
JsonObject *natter_message_parse_object      (const guint8       *data,
                                              gsize               len,
                                              guint               max_depth,
                                              const char         *what,
                                              GError            **error);

/* The message as a JSON object.  With @for_signing, the routing fields and
 * the signature are left out. */
JsonObject *natter_message_to_json_object    (NatterMessage      *self,
                                              gboolean            for_signing);

/* Validates @object as a whole message and stores its fields in @self,
 * which must be freshly allocated. */
gboolean    natter_message_fill_from_object  (NatterMessage      *self,
                                              JsonObject         *object,
                                              GError            **error);

/* The per-type schema of plaintext content. */
gboolean    natter_message_validate_content  (NatterMessageType   type,
                                              JsonObject         *content,
                                              GError            **error);

/* Canonical JSON (docs/protocol.md) of @node, appended to @out. */
void        natter_json_write_canonical      (GString            *out,
                                              JsonNode           *node);

NatterMessage *natter_message_alloc          (void);

G_END_DECLS
