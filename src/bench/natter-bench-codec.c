/* natter-bench-codec.c: natter-bench codec
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

#include "natter-bench.h"
#include "natter-identity.h"
#include "natter-message.h"

/* Decoding a signed 1 KiB direct message: the strict decoder alone, and
 * with signature verification, against json-glib parsing the same bytes
 * with no checks at all (the baseline). */
int
natter_bench_codec (int       argc,
                    char    **argv,
                    gboolean  json)
{
  g_autoptr(NatterBenchReport) report = natter_bench_report_new ("codec");
  g_autoptr(NatterIdentity) alice = natter_identity_new_random ();
  g_autoptr(NatterIdentity) bob = natter_identity_new_random ();
  g_autoptr(NatterMessage) msg = natter_message_new (NATTER_MESSAGE_TYPE_DIRECT_MESSAGE);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_strnfill (700, 'x');
  const char *to[] = { natter_identity_get_peer_id (bob), NULL };
  const guint rounds = 20000;
  double t0, decode_us, verify_us, baseline_us, sign_us;
  gsize size;
  const char *data;

  msg->from = g_strdup (natter_identity_get_peer_id (alice));
  g_strfreev (msg->to);
  msg->to = g_strdupv ((char **) to);
  msg->timestamp = g_get_real_time () / 1000;
  msg->sequence = 1;
  msg->requires_ack = TRUE;
  msg->ttl = 3600000;
  json_object_set_string_member (msg->content, "text", text);
  if (!natter_message_sign (msg, alice, &error) ||
      (bytes = natter_message_encode (msg, &error)) == NULL)
    {
      fprintf (stderr, "natter-bench codec: %s\n", error->message);
      return 1;
    }
  data = g_bytes_get_data (bytes, &size);

  t0 = natter_bench_now ();
  for (guint i = 0; i < rounds; i++)
    {
      g_autoptr(JsonParser) parser = json_parser_new_immutable ();

      if (!json_parser_load_from_data (parser, data, size, NULL))
        return 1;
    }
  baseline_us = (natter_bench_now () - t0) / rounds * 1e6;

  t0 = natter_bench_now ();
  for (guint i = 0; i < rounds; i++)
    {
      g_autoptr(NatterMessage) decoded = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_NONE, NULL);

      if (decoded == NULL)
        return 1;
    }
  decode_us = (natter_bench_now () - t0) / rounds * 1e6;

  t0 = natter_bench_now ();
  for (guint i = 0; i < rounds; i++)
    {
      g_autoptr(NatterMessage) decoded = natter_message_decode (bytes, NATTER_MESSAGE_DECODE_VERIFY, NULL);

      if (decoded == NULL)
        return 1;
    }
  verify_us = (natter_bench_now () - t0) / rounds * 1e6;

  /* What a sender does per message: validate, sign, encode. */
  t0 = natter_bench_now ();
  for (guint i = 0; i < rounds; i++)
    {
      g_autoptr(GBytes) wire = NULL;

      msg->has_signature = FALSE;
      wire = natter_message_sign_encode (msg, alice, NULL);
      if (wire == NULL)
        return 1;
    }
  sign_us = (natter_bench_now () - t0) / rounds * 1e6;

  natter_bench_report_add (report, "message_bytes", size, "Message size (bytes)");
  natter_bench_report_add (report, "sign_encode_us", sign_us, "Validate, sign and encode, per message (us)");
  natter_bench_report_add (report, "decode_us", decode_us, "Strict decode, per message (us)");
  natter_bench_report_add (report, "decode_verify_us", verify_us, "Strict decode + signature check (us)");
  natter_bench_report_add (report, "baseline_json_parse_us", baseline_us, "Baseline: json-glib parse, no checks (us)");
  natter_bench_report_add (report, "decode_vs_baseline_ratio", decode_us / baseline_us, "Decode / baseline");
  natter_bench_report_print (report, json);
  return 0;
}
