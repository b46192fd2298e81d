/* fuzz-message.c: libFuzzer target for the message decoder
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Feeds arbitrary bytes to natter_message_decode_data() and, for whatever
 * it accepts, exercises everything a receiver does next: signature check,
 * canonical bytes, copy, re-encoding.  Besides memory errors (ASan, UBSan)
 * it aborts when an invariant breaks: an accepted message must encode,
 * decode again, and encode to the same bytes; a rejection must come with
 * an error of the message domain.
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/natter-message.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  if (sodium_init () < 0)
    abort ();
  /* A critical from GLib or json-glib means the decoder passed something
   * it had not checked: make the fuzzer see it. */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(NatterMessage) msg = NULL;
  g_autoptr(NatterMessage) again = NULL;
  g_autoptr(NatterMessage) copy = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) canonical = NULL;
  g_autoptr(GBytes) encoded = NULL;
  g_autoptr(GBytes) reencoded = NULL;

  msg = natter_message_decode_data (data, size, NATTER_MESSAGE_DECODE_NONE, &error);
  if (msg == NULL)
    {
      if (error == NULL || error->domain != NATTER_MESSAGE_ERROR || error->message == NULL)
        abort ();
      return 0;
    }

  canonical = natter_message_canonical_bytes (msg);
  if (g_bytes_get_size (canonical) == 0)
    abort ();

  g_clear_error (&error);
  if (!natter_message_verify (msg, &error) &&
      (error == NULL || error->domain != NATTER_MESSAGE_ERROR))
    abort ();
  g_clear_error (&error);

  copy = natter_message_copy (msg);
  encoded = natter_message_encode (copy, &error);
  if (encoded == NULL)
    abort ();

  again = natter_message_decode (encoded, NATTER_MESSAGE_DECODE_NONE, &error);
  if (again == NULL)
    abort ();
  reencoded = natter_message_encode (again, &error);
  if (reencoded == NULL || !g_bytes_equal (encoded, reencoded))
    abort ();

  return 0;
}
