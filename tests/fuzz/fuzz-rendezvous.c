/* fuzz-rendezvous.c: libFuzzer target for the rendezvous message parser
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Feeds arbitrary bytes to natter_rendezvous_message_parse(), as a client's
 * text frame would.  Besides memory errors (ASan, UBSan) it aborts when an
 * invariant breaks: a rejection must come with an error of the rendezvous
 * domain, and an accepted message must hold what its type promises.
 */

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rendezvous/natter-rendezvous-protocol.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(NatterRendezvousMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  message = natter_rendezvous_message_parse (data, size, &error);
  if (message == NULL)
    {
      if (error == NULL || error->domain != NATTER_RENDEZVOUS_ERROR)
        abort ();
      return 0;
    }

  switch (message->type)
    {
    case NATTER_RENDEZVOUS_MESSAGE_REGISTER:
      if (!natter_peer_id_is_valid (message->peer))
        abort ();
      break;
    case NATTER_RENDEZVOUS_MESSAGE_CONTACTS:
      if (message->peers->len > NATTER_RENDEZVOUS_MAX_CONTACTS)
        abort ();
      break;
    case NATTER_RENDEZVOUS_MESSAGE_SIGNAL:
      if (!natter_peer_id_is_valid (message->to) ||
          g_bytes_get_size (message->blob) > NATTER_RENDEZVOUS_MAX_BLOB)
        abort ();
      break;
    case NATTER_RENDEZVOUS_MESSAGE_PING:
      break;
    default:
      abort ();
    }

  return 0;
}
