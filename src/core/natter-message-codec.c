/* natter-message-codec.c: JSON encoding and strict decoding of messages
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>
#include <sodium.h>

#include "natter-message-private.h"

/* {{{ Errors naming a field */

static gboolean G_GNUC_PRINTF (5, 6)
field_error (GError             **error,
             NatterMessageError   code,
             const char          *prefix,
             const char          *field,
             const char          *format,
             ...)
{
  g_autofree char *detail = NULL;
  va_list args;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, NATTER_MESSAGE_ERROR, code, "%s%s: %s",
               prefix ? prefix : "", field, detail);
  return FALSE;
}

/* }}} */
/* {{{ Strict syntax scan
 *
 * json-glib 1.6 is lenient (comments, single quotes, hex numbers, silent
 * integer wrap-around, \u0000 truncating strings) and recurses without a
 * limit.  Untrusted bytes are therefore checked against strict RFC 8259
 * here first, with a depth limit, before json-glib builds a tree. */

typedef struct
{
  const guint8 *start;
  const guint8 *p;
  const guint8 *end;
  guint         depth;
  guint         max_depth;
  gsize         n_members;
  const char   *what;
  GError      **error;
} Scanner;

static gboolean
scan_fail (Scanner            *s,
           NatterMessageError  code,
           const char         *detail)
{
  g_set_error (s->error, NATTER_MESSAGE_ERROR, code, "%s: %s at byte %" G_GSIZE_FORMAT,
               s->what, detail, (gsize) (s->p - s->start));
  return FALSE;
}

static inline void
scan_ws (Scanner *s)
{
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int
scan_hex4 (Scanner *s)
{
  int v = 0;

  if (s->end - s->p < 4)
    return -1;
  for (int i = 0; i < 4; i++)
    {
      int c = s->p[i];
      int d;

      if (c >= '0' && c <= '9')
        d = c - '0';
      else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
      else
        return -1;
      v = (v << 4) | d;
    }
  s->p += 4;
  return v;
}

static gboolean
scan_string (Scanner *s)
{
  s->p++;  /* opening quote */

  while (s->p < s->end)
    {
      guint8 c = *s->p;

      if (c == '"')
        {
          s->p++;
          return TRUE;
        }
      if (c < 0x20)
        return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON,
                          "unescaped control character in string");
      if (c != '\\')
        {
          s->p++;
          continue;
        }

      s->p++;
      if (s->p >= s->end)
        break;
      c = *s->p++;
      if (c == 'u')
        {
          int unit = scan_hex4 (s);

          if (unit < 0)
            return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "bad \\u escape");
          /* json-glib would cut the string at a NUL, so the signed
           * text and the shown text could differ. */
          if (unit == 0)
            return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "\\u0000 in string");
          if (unit >= 0xDC00 && unit <= 0xDFFF)
            return scan_fail (s, NATTER_MESSAGE_ERROR_INVALID_UTF8, "lone low surrogate");
          if (unit >= 0xD800 && unit <= 0xDBFF)
            {
              int low;

              if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                return scan_fail (s, NATTER_MESSAGE_ERROR_INVALID_UTF8, "lone high surrogate");
              s->p += 2;
              low = scan_hex4 (s);
              if (low < 0xDC00 || low > 0xDFFF)
                return scan_fail (s, NATTER_MESSAGE_ERROR_INVALID_UTF8, "lone high surrogate");
            }
        }
      else if (strchr ("\"\\/bfnrt", c) == NULL || c == '\0')
        {
          return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "bad escape in string");
        }
    }

  return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "unterminated string");
}

static gboolean
scan_number (Scanner *s)
{
  const guint8 *digits;
  gboolean is_integer = TRUE;
  gsize n_digits;

  if (*s->p == '-')
    s->p++;
  digits = s->p;
  if (s->p >= s->end || !g_ascii_isdigit (*s->p))
    return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "bad number");
  if (*s->p == '0')
    s->p++;
  else
    while (s->p < s->end && g_ascii_isdigit (*s->p))
      s->p++;
  n_digits = s->p - digits;

  if (s->p < s->end && *s->p == '.')
    {
      is_integer = FALSE;
      s->p++;
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "bad number");
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        s->p++;
    }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
    {
      is_integer = FALSE;
      s->p++;
      if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
        s->p++;
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "bad number");
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        s->p++;
    }

  /* json-glib wraps integers beyond 64 bits around silently; no field
   * accepts more than 2^53, so longer literals are refused here. */
  if (is_integer)
    {
      guint64 v = 0;

      if (n_digits > 16)
        return scan_fail (s, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, "integer beyond 2^53");
      for (gsize i = 0; i < n_digits; i++)
        v = v * 10 + (digits[i] - '0');
      if (v > (guint64) NATTER_MESSAGE_MAX_INTEGER)
        return scan_fail (s, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, "integer beyond 2^53");
    }

  return TRUE;
}

static gboolean
scan_literal (Scanner    *s,
              const char *word)
{
  gsize len = strlen (word);

  if ((gsize) (s->end - s->p) < len || memcmp (s->p, word, len) != 0)
    return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "unexpected character");
  s->p += len;
  return TRUE;
}

static gboolean scan_value (Scanner *s);

static gboolean
scan_container (Scanner *s)
{
  gboolean is_object = (*s->p == '{');
  guint8 close = is_object ? '}' : ']';

  if (++s->depth > s->max_depth)
    return scan_fail (s, NATTER_MESSAGE_ERROR_TOO_DEEP, "nested too deeply");
  s->p++;

  scan_ws (s);
  if (s->p < s->end && *s->p == close)
    {
      s->p++;
      s->depth--;
      return TRUE;
    }

  for (;;)
    {
      if (is_object)
        {
          scan_ws (s);
          if (s->p >= s->end || *s->p != '"')
            return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "expected a member name");
          if (!scan_string (s))
            return FALSE;
          scan_ws (s);
          if (s->p >= s->end || *s->p != ':')
            return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "expected ':'");
          s->p++;
          s->n_members++;
        }
      if (!scan_value (s))
        return FALSE;
      scan_ws (s);
      if (s->p >= s->end)
        break;
      if (*s->p == ',')
        {
          s->p++;
          continue;
        }
      if (*s->p == close)
        {
          s->p++;
          s->depth--;
          return TRUE;
        }
      return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "expected ',' or a closing bracket");
    }

  return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "unexpected end of input");
}

static gboolean
scan_value (Scanner *s)
{
  scan_ws (s);
  if (s->p >= s->end)
    return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "unexpected end of input");

  switch (*s->p)
    {
    case '{':
    case '[':
      return scan_container (s);
    case '"':
      return scan_string (s);
    case 't':
      return scan_literal (s, "true");
    case 'f':
      return scan_literal (s, "false");
    case 'n':
      return scan_literal (s, "null");
    default:
      if (*s->p == '-' || g_ascii_isdigit (*s->p))
        return scan_number (s);
      return scan_fail (s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "unexpected character");
    }
}

static gsize
count_members (JsonNode *node)
{
  gsize n = 0;

  if (JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObjectIter iter;
      JsonNode *child;

      json_object_iter_init (&iter, json_node_get_object (node));
      while (json_object_iter_next (&iter, NULL, &child))
        n += 1 + count_members (child);
    }
  else if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);
      guint len = json_array_get_length (array);

      for (guint i = 0; i < len; i++)
        n += count_members (json_array_get_element (array, i));
    }

  return n;
}

JsonObject *
natter_message_parse_object (const guint8  *data,
                             gsize          len,
                             guint          max_depth,
                             const char    *what,
                             GError       **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local_error = NULL;
  Scanner s = { data, data, data + len, 0, max_depth, 0, what, error };
  JsonNode *root;

  if (len > NATTER_MESSAGE_MAX_SIZE)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_TOO_LARGE,
                   "%s: %" G_GSIZE_FORMAT " bytes, more than the %d allowed",
                   what, len, NATTER_MESSAGE_MAX_SIZE);
      return NULL;
    }
  if (len > 0 && !g_utf8_validate_len ((const char *) data, len, NULL))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_INVALID_UTF8,
                   "%s: not valid UTF-8", what);
      return NULL;
    }

  if (!scan_value (&s))
    return NULL;
  scan_ws (&s);
  if (s.p != s.end)
    {
      scan_fail (&s, NATTER_MESSAGE_ERROR_MALFORMED_JSON, "trailing data");
      return NULL;
    }

  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const char *) data, len, &local_error))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_MALFORMED_JSON,
                   "%s: %s", what, local_error->message);
      return NULL;
    }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_NOT_AN_OBJECT,
                   "%s: the root is not a JSON object", what);
      return NULL;
    }

  /* json-glib keeps the last of two members with one name; another
   * implementation might keep the first, so refuse such documents. */
  if (count_members (root) != s.n_members)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_MALFORMED_JSON,
                   "%s: an object has two members with the same name", what);
      return NULL;
    }

  return json_object_ref (json_node_get_object (root));
}

/* }}} */
/* {{{ Typed member access */

static JsonNode *
get_member (JsonObject  *object,
            const char  *prefix,
            const char  *name,
            gboolean     required,
            gboolean    *ok,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *ok = TRUE;
  if (node == NULL && required)
    *ok = field_error (error, NATTER_MESSAGE_ERROR_MISSING_FIELD, prefix, name,
                       "required field is missing");
  return node;
}

static gboolean
node_is_value_of (JsonNode *node,
                  GType     type)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

static gboolean
check_string_node (JsonNode    *node,
                   const char  *prefix,
                   const char  *name,
                   const char **out,
                   GError     **error)
{
  const char *str;

  if (!node_is_value_of (node, G_TYPE_STRING))
    return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, name,
                        "expected a string");
  str = json_node_get_string (node);
  /* Input is checked as a whole; this catches messages built in memory. */
  if (!g_utf8_validate (str, -1, NULL))
    return field_error (error, NATTER_MESSAGE_ERROR_INVALID_UTF8, prefix, name,
                        "not valid UTF-8");
  *out = str;
  return TRUE;
}

static gboolean
get_string (JsonObject  *object,
            const char  *prefix,
            const char  *name,
            gboolean     required,
            const char **out,
            GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, prefix, name, required, &ok, error);

  *out = NULL;
  if (node == NULL)
    return ok;
  return check_string_node (node, prefix, name, out, error);
}

static gboolean
check_int_node (JsonNode    *node,
                const char  *prefix,
                const char  *name,
                gint64       min,
                gint64       max,
                gint64      *out,
                GError     **error)
{
  gint64 v;

  if (!node_is_value_of (node, G_TYPE_INT64))
    return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, name,
                        "expected an integer");
  v = json_node_get_int (node);
  if (v < min || v > max)
    return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, name,
                        "%" G_GINT64_FORMAT " is not within %" G_GINT64_FORMAT
                        "..%" G_GINT64_FORMAT, v, min, max);
  *out = v;
  return TRUE;
}

static gboolean
get_int (JsonObject  *object,
         const char  *prefix,
         const char  *name,
         gboolean     required,
         gint64       min,
         gint64       max,
         gint64      *out,
         GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, prefix, name, required, &ok, error);

  if (node == NULL)
    return ok;
  return check_int_node (node, prefix, name, min, max, out, error);
}

static gboolean
get_bool (JsonObject  *object,
          const char  *prefix,
          const char  *name,
          gboolean     required,
          gboolean    *out,
          GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, prefix, name, required, &ok, error);

  if (node == NULL)
    return ok;
  if (!node_is_value_of (node, G_TYPE_BOOLEAN))
    return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, name,
                        "expected true or false");
  *out = json_node_get_boolean (node);
  return TRUE;
}

static gboolean
get_array (JsonObject  *object,
           const char  *prefix,
           const char  *name,
           gboolean     required,
           JsonArray  **out,
           GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, prefix, name, required, &ok, error);

  *out = NULL;
  if (node == NULL)
    return ok;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, name,
                        "expected an array");
  *out = json_node_get_array (node);
  return TRUE;
}

static gboolean
get_object (JsonObject  *object,
            const char  *prefix,
            const char  *name,
            gboolean     required,
            JsonObject **out,
            GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, prefix, name, required, &ok, error);

  *out = NULL;
  if (node == NULL)
    return ok;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, name,
                        "expected an object");
  *out = json_node_get_object (node);
  return TRUE;
}

/* Parsing a peer ID checks that it holds a valid Ed25519 point, which
 * costs tens of microseconds; a message names up to five peers in the
 * usual case, nearly always the same few contacts.  Valid IDs are
 * remembered, process-wide and bounded, so that decoding stays cheap.
 * Only successes are cached: a flood of bad IDs cannot evict good ones
 * faster than valid IDs could. */
#define PEER_ID_CACHE_MAX 4096

G_LOCK_DEFINE_STATIC (peer_id_cache);
static GHashTable *peer_id_cache;

static gboolean
peer_id_is_canonical_shape (const char *text)
{
  gsize len = 0;

  if (text[0] != 'n')
    return FALSE;
  for (const char *p = text + 1; *p != '\0'; p++, len++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7')))
      return FALSE;
  return len + 1 == NATTER_PEER_ID_LEN;
}

/* Peer IDs on the wire must be in canonical form: the signature covers
 * the text, and two spellings of one peer must not look like two peers. */
static gboolean
check_peer_id (const char  *text,
               const char  *prefix,
               const char  *name,
               GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  guint8 public_key[NATTER_PUBLIC_KEY_LEN];
  gboolean known;

  G_LOCK (peer_id_cache);
  known = peer_id_cache != NULL && g_hash_table_contains (peer_id_cache, text);
  G_UNLOCK (peer_id_cache);
  if (known)
    return TRUE;

  if (!natter_peer_id_parse (text, public_key, &local_error))
    return field_error (error, NATTER_MESSAGE_ERROR_INVALID_PEER_ID, prefix, name,
                        "%s", local_error->message);
  /* The parser accepts spaces, dashes and capitals; with those excluded,
   * the padding and checksum checks make the spelling unique. */
  if (!peer_id_is_canonical_shape (text))
    return field_error (error, NATTER_MESSAGE_ERROR_INVALID_PEER_ID, prefix, name,
                        "peer ID is not in canonical form");

  G_LOCK (peer_id_cache);
  if (peer_id_cache == NULL)
    peer_id_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (g_hash_table_size (peer_id_cache) >= PEER_ID_CACHE_MAX)
    g_hash_table_remove_all (peer_id_cache);
  g_hash_table_add (peer_id_cache, g_strdup (text));
  G_UNLOCK (peer_id_cache);

  return TRUE;
}

static gboolean
check_id (const char  *text,
          const char  *prefix,
          const char  *name,
          GError     **error)
{
  if (!natter_message_id_is_valid (text))
    return field_error (error, NATTER_MESSAGE_ERROR_INVALID_ID, prefix, name,
                        "not 8 to 128 characters of A-Z, a-z, 0-9, '_' and '-'");
  return TRUE;
}

/* Decodes standard, padded base64 into @out (may be NULL) and checks that
 * the decoded length is within @min..@max. */
static gboolean
check_base64 (const char  *text,
              const char  *prefix,
              const char  *name,
              gsize        min,
              gsize        max,
              GBytes     **out,
              GError     **error)
{
  gsize text_len = strlen (text);
  gsize cap = text_len / 4 * 3 + 3;
  g_autofree guint8 *bin = g_malloc (cap);
  size_t bin_len = 0;

  if (sodium_base642bin (bin, cap, text, text_len, NULL, &bin_len, NULL,
                         sodium_base64_VARIANT_ORIGINAL) != 0)
    return field_error (error, NATTER_MESSAGE_ERROR_INVALID_BASE64, prefix, name,
                        "not valid base64");
  if (bin_len < min || bin_len > max)
    {
      if (min == max)
        return field_error (error, NATTER_MESSAGE_ERROR_INVALID_BASE64, prefix, name,
                            "decodes to %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT,
                            (gsize) bin_len, min);
      return field_error (error, NATTER_MESSAGE_ERROR_INVALID_BASE64, prefix, name,
                          "decodes to %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT
                          " to %" G_GSIZE_FORMAT, (gsize) bin_len, min, max);
    }
  if (out != NULL)
    *out = g_bytes_new_take (g_steal_pointer (&bin), bin_len);
  return TRUE;
}

/* Free-form JSON (content.metadata) may hold anything but floats, which
 * have no canonical form.  Depth is bounded by the syntax scan. */
static gboolean
check_free_json (JsonNode    *node,
                 const char  *prefix,
                 const char  *name,
                 GError     **error)
{
  if (JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObjectIter iter;
      const char *key;
      JsonNode *child;

      json_object_iter_init (&iter, json_node_get_object (node));
      while (json_object_iter_next (&iter, &key, &child))
        {
          g_autofree char *child_name = g_strdup_printf ("%s.%s", name, key);

          if (!g_utf8_validate (key, -1, NULL))
            return field_error (error, NATTER_MESSAGE_ERROR_INVALID_UTF8, prefix, name,
                                "member name is not valid UTF-8");
          if (!check_free_json (child, prefix, child_name, error))
            return FALSE;
        }
    }
  else if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);
      guint len = json_array_get_length (array);

      for (guint i = 0; i < len; i++)
        {
          g_autofree char *child_name = g_strdup_printf ("%s[%u]", name, i);

          if (!check_free_json (json_array_get_element (array, i), prefix, child_name, error))
            return FALSE;
        }
    }
  else if (JSON_NODE_HOLDS_VALUE (node))
    {
      GType type = json_node_get_value_type (node);

      if (type == G_TYPE_DOUBLE)
        return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, name,
                            "floating-point numbers are not allowed");
      if (type == G_TYPE_INT64 &&
          (json_node_get_int (node) > NATTER_MESSAGE_MAX_INTEGER ||
           json_node_get_int (node) < -NATTER_MESSAGE_MAX_INTEGER))
        return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, name,
                            "integer beyond 2^53");
      if (type == G_TYPE_STRING && !g_utf8_validate (json_node_get_string (node), -1, NULL))
        return field_error (error, NATTER_MESSAGE_ERROR_INVALID_UTF8, prefix, name,
                            "not valid UTF-8");
    }

  return TRUE;
}

/* }}} */
/* {{{ Schemas of small objects (content, attachments, envelope) */

typedef enum
{
  FIELD_STRING,       /* min..max Unicode characters */
  FIELD_ID,           /* natter_message_id_is_valid() */
  FIELD_PEER_ID,
  FIELD_INT,          /* min..max */
  FIELD_BOOL,
  FIELD_BASE64,       /* min..max decoded bytes */
  FIELD_FREE_OBJECT,  /* any JSON object without floats */
  FIELD_ATTACHMENTS,  /* array of attachment objects, at most max */
  FIELD_STATUS,       /* "online", "away" or "offline" */
  FIELD_ACK_STATUS,   /* a hop acknowledgement's outcome (ack_statuses) */
  FIELD_FILE_STATUS,  /* what a file_accept says (file_accept_statuses) */
  FIELD_FILE_RESULT,  /* what a file_complete says (file_complete_statuses) */
  FIELD_ID_LIST,      /* array of min..max IDs */
} FieldKind;

typedef struct
{
  const char *name;
  FieldKind   kind;
  gboolean    required;
  gint64      min;
  gint64      max;
} FieldSpec;

#define MAX_INT     NATTER_MESSAGE_MAX_INTEGER
#define MAX_BLOB    (64 * 1024)
#define MAX_TEXT    NATTER_MESSAGE_MAX_SIZE
#define MAX_ATTACHMENTS 32

static const FieldSpec chat_schema[] = {
  { "text", FIELD_STRING, TRUE, 0, MAX_TEXT },
  { "attachments", FIELD_ATTACHMENTS, FALSE, 0, MAX_ATTACHMENTS },
  { "metadata", FIELD_FREE_OBJECT, FALSE, 0, 0 },
  { NULL }
};

/* A receipt names one message, and may name more: a receiver that
 * commits many messages from one sender at once signs one receipt. */
#define MAX_RECEIPT_IDS 256

static const FieldSpec receipt_schema[] = {
  { "messageId", FIELD_ID, TRUE, 0, 0 },
  { "messageIds", FIELD_ID_LIST, FALSE, 1, MAX_RECEIPT_IDS },
  { NULL }
};

/* message_ack is the hop-by-hop acknowledgement: the next hop says what it
 * did with a message.  The end-to-end ones are message_delivered/_read. */
static const FieldSpec ack_schema[] = {
  { "messageId", FIELD_ID, TRUE, 0, 0 },
  { "status", FIELD_ACK_STATUS, FALSE, 0, 0 },
  { NULL }
};

static const char * const ack_statuses[] = {
  "received", "forwarded", "stored", "quota", "expired", "not-contact",
  "no-route", "invalid", "disabled", NULL
};

static const FieldSpec typing_schema[] = {
  { "typing", FIELD_BOOL, TRUE, 0, 0 },
  { NULL }
};

static const FieldSpec presence_schema[] = {
  { "status", FIELD_STATUS, TRUE, 0, 0 },
  { NULL }
};

static const FieldSpec status_schema[] = {
  { "text", FIELD_STRING, TRUE, 0, 256 },
  { NULL }
};

static const FieldSpec file_offer_schema[] = {
  { "fileId", FIELD_ID, TRUE, 0, 0 },
  { "name", FIELD_STRING, TRUE, 1, 255 },
  { "size", FIELD_INT, TRUE, 0, MAX_INT },
  { "mediaType", FIELD_STRING, TRUE, 1, 255 },
  { "hash", FIELD_BASE64, TRUE, 32, 32 },
  { NULL }
};

/* file_accept is the control message of a transfer in either direction:
 * the receiver accepts (or resumes from) an offset, declines, or pauses;
 * either side cancels.  Without "status" it is "accepted". */
static const FieldSpec file_accept_schema[] = {
  { "fileId", FIELD_ID, TRUE, 0, 0 },
  { "offset", FIELD_INT, TRUE, 0, MAX_INT },
  { "status", FIELD_FILE_STATUS, FALSE, 0, 0 },
  { NULL }
};

static const char * const file_accept_statuses[] = {
  "accepted", "declined", "cancelled", "paused", NULL
};

static const FieldSpec file_chunk_schema[] = {
  { "fileId", FIELD_ID, TRUE, 0, 0 },
  { "offset", FIELD_INT, TRUE, 0, MAX_INT },
  { "data", FIELD_BASE64, TRUE, 1, MAX_BLOB },
  { NULL }
};

/* The receiver's verdict on the whole file; without "status" it is "ok". */
static const FieldSpec file_complete_schema[] = {
  { "fileId", FIELD_ID, TRUE, 0, 0 },
  { "hash", FIELD_BASE64, TRUE, 32, 32 },
  { "status", FIELD_FILE_RESULT, FALSE, 0, 0 },
  { NULL }
};

static const char * const file_complete_statuses[] = {
  "ok", "hash-mismatch", NULL
};

static const FieldSpec introduction_schema[] = {
  { "peer", FIELD_PEER_ID, TRUE, 0, 0 },
  { "blob", FIELD_BASE64, TRUE, 1, MAX_BLOB },
  { NULL }
};

static const FieldSpec connection_schema[] = {
  { "target", FIELD_PEER_ID, TRUE, 0, 0 },
  { "blob", FIELD_BASE64, TRUE, 1, MAX_BLOB },
  { NULL }
};

static const FieldSpec heartbeat_schema[] = {
  { "sentAt", FIELD_INT, FALSE, 0, MAX_INT },
  { NULL }
};

static const FieldSpec attachment_schema[] = {
  { "fileId", FIELD_ID, TRUE, 0, 0 },
  { "name", FIELD_STRING, TRUE, 1, 255 },
  { "size", FIELD_INT, TRUE, 0, MAX_INT },
  { "mediaType", FIELD_STRING, FALSE, 1, 255 },
  { "hash", FIELD_BASE64, FALSE, 32, 32 },
  { NULL }
};

static const FieldSpec envelope_schema[] = {
  { "nonce", FIELD_BASE64, TRUE, NATTER_MESSAGE_NONCE_LEN, NATTER_MESSAGE_NONCE_LEN },
  { "ciphertext", FIELD_BASE64, TRUE, 16, NATTER_MESSAGE_MAX_SIZE },
  { "keyId", FIELD_ID, FALSE, 0, 0 },
  { NULL }
};

static const FieldSpec *content_schemas[NATTER_MESSAGE_N_TYPES] = {
  [NATTER_MESSAGE_TYPE_DIRECT_MESSAGE] = chat_schema,
  [NATTER_MESSAGE_TYPE_GROUP_MESSAGE] = chat_schema,
  [NATTER_MESSAGE_TYPE_PRIVATE_MESSAGE] = chat_schema,
  [NATTER_MESSAGE_TYPE_MESSAGE_ACK] = ack_schema,
  [NATTER_MESSAGE_TYPE_MESSAGE_DELIVERED] = receipt_schema,
  [NATTER_MESSAGE_TYPE_MESSAGE_READ] = receipt_schema,
  [NATTER_MESSAGE_TYPE_TYPING_INDICATOR] = typing_schema,
  [NATTER_MESSAGE_TYPE_PRESENCE_UPDATE] = presence_schema,
  [NATTER_MESSAGE_TYPE_STATUS_UPDATE] = status_schema,
  [NATTER_MESSAGE_TYPE_FILE_OFFER] = file_offer_schema,
  [NATTER_MESSAGE_TYPE_FILE_ACCEPT] = file_accept_schema,
  [NATTER_MESSAGE_TYPE_FILE_CHUNK] = file_chunk_schema,
  [NATTER_MESSAGE_TYPE_FILE_COMPLETE] = file_complete_schema,
  [NATTER_MESSAGE_TYPE_PEER_INTRODUCTION] = introduction_schema,
  [NATTER_MESSAGE_TYPE_CONNECTION_REQUEST] = connection_schema,
  [NATTER_MESSAGE_TYPE_HEARTBEAT] = heartbeat_schema,
};

static gboolean check_schema (JsonObject      *object,
                              const FieldSpec *schema,
                              const char      *prefix,
                              GError         **error);

static gboolean
check_field (JsonNode        *node,
             const FieldSpec *spec,
             const char      *prefix,
             GError         **error)
{
  const char *str = NULL;
  gint64 v;

  switch (spec->kind)
    {
    case FIELD_STRING:
      {
        glong n_chars;

        if (!check_string_node (node, prefix, spec->name, &str, error))
          return FALSE;
        n_chars = g_utf8_strlen (str, -1);
        if (n_chars < spec->min || n_chars > spec->max)
          return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                              "%ld characters, expected %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                              n_chars, spec->min, spec->max);
        return TRUE;
      }

    case FIELD_ID:
      return check_string_node (node, prefix, spec->name, &str, error) &&
             check_id (str, prefix, spec->name, error);

    case FIELD_PEER_ID:
      return check_string_node (node, prefix, spec->name, &str, error) &&
             check_peer_id (str, prefix, spec->name, error);

    case FIELD_INT:
      return check_int_node (node, prefix, spec->name, spec->min, spec->max, &v, error);

    case FIELD_BOOL:
      if (!node_is_value_of (node, G_TYPE_BOOLEAN))
        return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, spec->name,
                            "expected true or false");
      return TRUE;

    case FIELD_BASE64:
      return check_string_node (node, prefix, spec->name, &str, error) &&
             check_base64 (str, prefix, spec->name, spec->min, spec->max, NULL, error);

    case FIELD_FREE_OBJECT:
      if (!JSON_NODE_HOLDS_OBJECT (node))
        return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, spec->name,
                            "expected an object");
      return check_free_json (node, prefix, spec->name, error);

    case FIELD_ID_LIST:
      {
        JsonArray *array;
        guint len;

        if (!JSON_NODE_HOLDS_ARRAY (node))
          return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, spec->name,
                              "expected an array");
        array = json_node_get_array (node);
        len = json_array_get_length (array);
        if (len < spec->min || len > spec->max)
          return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                              "%u entries, expected %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                              len, spec->min, spec->max);
        for (guint i = 0; i < len; i++)
          {
            g_autofree char *element = g_strdup_printf ("%s[%u]", spec->name, i);

            if (!check_string_node (json_array_get_element (array, i), prefix, element, &str, error) ||
                !check_id (str, prefix, element, error))
              return FALSE;
          }
        return TRUE;
      }

    case FIELD_ATTACHMENTS:
      {
        JsonArray *array;
        guint len;

        if (!JSON_NODE_HOLDS_ARRAY (node))
          return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, spec->name,
                              "expected an array");
        array = json_node_get_array (node);
        len = json_array_get_length (array);
        if (len > spec->max)
          return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                              "%u entries, at most %" G_GINT64_FORMAT " allowed", len, spec->max);
        for (guint i = 0; i < len; i++)
          {
            JsonNode *element = json_array_get_element (array, i);
            g_autofree char *element_prefix = g_strdup_printf ("%s%s[%u].", prefix, spec->name, i);

            if (!JSON_NODE_HOLDS_OBJECT (element))
              return field_error (error, NATTER_MESSAGE_ERROR_WRONG_TYPE, prefix, spec->name,
                                  "entry %u is not an object", i);
            if (!check_schema (json_node_get_object (element), attachment_schema,
                               element_prefix, error))
              return FALSE;
          }
        return TRUE;
      }

    case FIELD_STATUS:
      if (!check_string_node (node, prefix, spec->name, &str, error))
        return FALSE;
      if (strcmp (str, "online") != 0 && strcmp (str, "away") != 0 && strcmp (str, "offline") != 0)
        return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                            "expected \"online\", \"away\" or \"offline\"");
      return TRUE;

    case FIELD_ACK_STATUS:
      if (!check_string_node (node, prefix, spec->name, &str, error))
        return FALSE;
      if (!g_strv_contains (ack_statuses, str))
        return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                            "not a known acknowledgement status");
      return TRUE;

    case FIELD_FILE_STATUS:
      if (!check_string_node (node, prefix, spec->name, &str, error))
        return FALSE;
      if (!g_strv_contains (file_accept_statuses, str))
        return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                            "not a known file transfer status");
      return TRUE;

    case FIELD_FILE_RESULT:
      if (!check_string_node (node, prefix, spec->name, &str, error))
        return FALSE;
      if (!g_strv_contains (file_complete_statuses, str))
        return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, prefix, spec->name,
                            "not a known file transfer result");
      return TRUE;

    default:
      g_assert_not_reached ();
    }
}

static gboolean
check_schema (JsonObject      *object,
              const FieldSpec *schema,
              const char      *prefix,
              GError         **error)
{
  JsonObjectIter iter;
  const char *key;

  for (const FieldSpec *spec = schema; spec->name != NULL; spec++)
    {
      gboolean ok;
      JsonNode *node = get_member (object, prefix, spec->name, spec->required, &ok, error);

      if (!ok)
        return FALSE;
      if (node != NULL && !check_field (node, spec, prefix, error))
        return FALSE;
    }

  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &key, NULL))
    {
      const FieldSpec *spec;

      for (spec = schema; spec->name != NULL; spec++)
        if (strcmp (spec->name, key) == 0)
          break;
      if (spec->name == NULL)
        return field_error (error, NATTER_MESSAGE_ERROR_UNKNOWN_FIELD, prefix, key,
                            "unknown field");
    }

  return TRUE;
}

gboolean
natter_message_validate_content (NatterMessageType   type,
                                 JsonObject         *content,
                                 GError            **error)
{
  if ((guint) type >= NATTER_MESSAGE_N_TYPES)
    return field_error (error, NATTER_MESSAGE_ERROR_UNKNOWN_TYPE, NULL, "type",
                        "unknown message type %d", (int) type);
  return check_schema (content, content_schemas[type], "content.", error);
}

/* }}} */
/* {{{ Object -> message */

static const char * const top_level_fields[] = {
  "id", "type", "version", "from", "to", "route", "hops", "group", "content",
  "timestamp", "sequence", "vectorClock", "requiresAck", "ttl", "retryCount",
  "signature", "encrypted", "tree", NULL
};

static gboolean
get_peer_list (JsonObject  *object,
               const char  *name,
               gboolean     required,
               guint        min,
               guint        max,
               gboolean     unique,
               GStrv       *out,
               GError     **error)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  JsonArray *array;
  guint len;

  if (!get_array (object, NULL, name, required, &array, error))
    return FALSE;
  len = array ? json_array_get_length (array) : 0;
  if (len < min || len > max)
    return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, NULL, name,
                        "%u entries, expected %u to %u", len, min, max);

  for (guint i = 0; i < len; i++)
    {
      g_autofree char *element_name = g_strdup_printf ("%s[%u]", name, i);
      const char *peer;

      if (!check_string_node (json_array_get_element (array, i), NULL, element_name, &peer, error) ||
          !check_peer_id (peer, NULL, element_name, error))
        return FALSE;

      /* Quadratic, but over at most 256 short strings and only once. */
      if (unique)
        for (guint j = 0; j < i; j++)
          if (strcmp (peer, json_array_get_string_element (array, j)) == 0)
            return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, NULL, element_name,
                                "duplicate recipient");

      g_strv_builder_add (builder, peer);
    }

  *out = g_strv_builder_end (builder);
  return TRUE;
}

static gboolean
fill_vector_clock (NatterMessage  *self,
                   JsonObject     *object,
                   GError        **error)
{
  JsonObject *clock;
  JsonObjectIter iter;
  const char *peer;
  JsonNode *node;
  guint size;

  if (!get_object (object, NULL, "vectorClock", FALSE, &clock, error))
    return FALSE;
  if (clock == NULL)
    return TRUE;

  size = json_object_get_size (clock);
  if (size > NATTER_MESSAGE_MAX_CLOCK_ENTRIES)
    return field_error (error, NATTER_MESSAGE_ERROR_OUT_OF_RANGE, NULL, "vectorClock",
                        "%u entries, at most %d allowed", size, NATTER_MESSAGE_MAX_CLOCK_ENTRIES);

  json_object_iter_init (&iter, clock);
  while (json_object_iter_next (&iter, &peer, &node))
    {
      g_autofree char *name = g_strdup_printf ("vectorClock.%s", peer);
      gint64 v;

      if (!check_peer_id (peer, NULL, "vectorClock", error) ||
          !check_int_node (node, NULL, name, 0, NATTER_MESSAGE_MAX_INTEGER, &v, error))
        return FALSE;
      natter_message_set_clock (self, peer, (guint64) v);
    }

  return TRUE;
}

static gboolean
fill_envelope (NatterMessage  *self,
               JsonObject     *envelope,
               GError        **error)
{
  g_autoptr(GBytes) nonce = NULL;
  g_autoptr(GBytes) ciphertext = NULL;
  const char *str;

  if (!check_schema (envelope, envelope_schema, "content.", error))
    return FALSE;

  /* Both decode: check_schema() just accepted them. */
  check_base64 (json_object_get_string_member (envelope, "nonce"), "content.", "nonce",
                NATTER_MESSAGE_NONCE_LEN, NATTER_MESSAGE_NONCE_LEN, &nonce, NULL);
  check_base64 (json_object_get_string_member (envelope, "ciphertext"), "content.", "ciphertext",
                16, NATTER_MESSAGE_MAX_SIZE, &ciphertext, NULL);

  memcpy (self->nonce, g_bytes_get_data (nonce, NULL), NATTER_MESSAGE_NONCE_LEN);
  self->ciphertext = g_steal_pointer (&ciphertext);
  if (json_object_has_member (envelope, "keyId"))
    {
      str = json_object_get_string_member (envelope, "keyId");
      self->key_id = g_strdup (str);
    }

  return TRUE;
}

gboolean
natter_message_fill_from_object (NatterMessage  *self,
                                 JsonObject     *object,
                                 GError        **error)
{
  JsonObjectIter iter;
  JsonObject *content;
  const char *str;
  const char *key;
  gint64 v;

  /* The version comes first, so that a future format gets a clear
   * "unsupported version" rather than a confusing field error. */
  if (!get_string (object, NULL, "version", TRUE, &str, error))
    return FALSE;
  if (strcmp (str, NATTER_MESSAGE_VERSION) != 0)
    {
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_UNSUPPORTED_VERSION,
                   "version: unsupported protocol version “%s” (this is %s)",
                   str, NATTER_MESSAGE_VERSION);
      return FALSE;
    }
  self->version = g_strdup (str);

  if (!get_string (object, NULL, "type", TRUE, &str, error))
    return FALSE;
  if (!natter_message_type_from_string (str, &self->type))
    return field_error (error, NATTER_MESSAGE_ERROR_UNKNOWN_TYPE, NULL, "type",
                        "unknown message type “%s”", str);

  if (!get_string (object, NULL, "id", TRUE, &str, error) ||
      !check_id (str, NULL, "id", error))
    return FALSE;
  self->id = g_strdup (str);

  if (!get_string (object, NULL, "from", TRUE, &str, error) ||
      !check_peer_id (str, NULL, "from", error))
    return FALSE;
  self->from = g_strdup (str);

  g_clear_pointer (&self->to, g_strfreev);
  if (!get_peer_list (object, "to", TRUE, 1, NATTER_MESSAGE_MAX_RECIPIENTS, TRUE, &self->to, error))
    return FALSE;

  g_clear_pointer (&self->route, g_strfreev);
  if (!get_peer_list (object, "route", FALSE, 0, NATTER_MESSAGE_MAX_ROUTE, FALSE, &self->route, error))
    return FALSE;

  v = 0;
  if (!get_int (object, NULL, "hops", FALSE, 0, NATTER_MESSAGE_MAX_HOPS, &v, error))
    return FALSE;
  self->hops = (guint) v;

  if (!get_string (object, NULL, "group", self->type == NATTER_MESSAGE_TYPE_GROUP_MESSAGE,
                   &str, error))
    return FALSE;
  if (str != NULL)
    {
      if (!check_id (str, NULL, "group", error))
        return FALSE;
      self->group = g_strdup (str);
    }

  if (!get_int (object, NULL, "timestamp", TRUE, 0, NATTER_MESSAGE_MAX_INTEGER, &self->timestamp, error))
    return FALSE;

  if (!get_int (object, NULL, "sequence", TRUE, 0, NATTER_MESSAGE_MAX_INTEGER, &v, error))
    return FALSE;
  self->sequence = (guint64) v;

  if (!fill_vector_clock (self, object, error))
    return FALSE;

  if (!get_bool (object, NULL, "requiresAck", TRUE, &self->requires_ack, error))
    return FALSE;

  if (!get_int (object, NULL, "ttl", TRUE, 0, NATTER_MESSAGE_MAX_TTL, &self->ttl, error))
    return FALSE;

  v = 0;
  if (!get_int (object, NULL, "retryCount", FALSE, 0, NATTER_MESSAGE_MAX_RETRY_COUNT, &v, error))
    return FALSE;
  self->retry_count = (guint) v;

  if (!get_bool (object, NULL, "encrypted", TRUE, &self->encrypted, error))
    return FALSE;

  if (!get_object (object, NULL, "content", TRUE, &content, error))
    return FALSE;
  if (self->encrypted)
    {
      if (!fill_envelope (self, content, error))
        return FALSE;
    }
  else
    {
      if (!natter_message_validate_content (self->type, content, error))
        return FALSE;
      g_clear_pointer (&self->content, json_object_unref);
      self->content = json_object_ref (content);
    }

  /* A group stream message's distribution tree (natter-groups.c checks
   * what the bytes mean against the group). */
  if (!get_string (object, NULL, "tree", FALSE, &str, error))
    return FALSE;
  if (str != NULL)
    {
      if (self->type != NATTER_MESSAGE_TYPE_GROUP_MESSAGE)
        return field_error (error, NATTER_MESSAGE_ERROR_UNKNOWN_FIELD, NULL, "tree",
                            "only in a group_message");
      g_clear_pointer (&self->tree, g_bytes_unref);
      if (!check_base64 (str, NULL, "tree", NATTER_MESSAGE_TREE_MIN, NATTER_MESSAGE_TREE_MAX,
                         &self->tree, error))
        return FALSE;
    }

  if (!get_string (object, NULL, "signature", FALSE, &str, error))
    return FALSE;
  if (str != NULL)
    {
      g_autoptr(GBytes) signature = NULL;

      if (!check_base64 (str, NULL, "signature", NATTER_SIGNATURE_LEN, NATTER_SIGNATURE_LEN,
                         &signature, error))
        return FALSE;
      memcpy (self->signature, g_bytes_get_data (signature, NULL), NATTER_SIGNATURE_LEN);
      self->has_signature = TRUE;
    }

  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &key, NULL))
    if (!g_strv_contains (top_level_fields, key))
      return field_error (error, NATTER_MESSAGE_ERROR_UNKNOWN_FIELD, NULL, key, "unknown field");

  return TRUE;
}

/* }}} */
/* {{{ Message -> object */

static int
compare_member_names (gconstpointer a,
                      gconstpointer b)
{
  /* strcmp() compares unsigned bytes: UTF-8 byte order. */
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static JsonNode *
strv_to_array_node (const char * const *strv)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (gsize i = 0; strv != NULL && strv[i] != NULL; i++)
    json_array_add_string_element (array, strv[i]);
  json_node_take_array (node, array);
  return node;
}

static char *
base64_encode (const guint8 *data,
               gsize         len)
{
  gsize b64_len = sodium_base64_ENCODED_LEN (len, sodium_base64_VARIANT_ORIGINAL);
  char *b64 = g_malloc (b64_len);

  sodium_bin2base64 (b64, b64_len, data, len, sodium_base64_VARIANT_ORIGINAL);
  return b64;
}

JsonObject *
natter_message_to_json_object (NatterMessage *self,
                               gboolean       for_signing)
{
  JsonObject *object = json_object_new ();
  const char *type = natter_message_type_to_string (self->type);

  /* Members that are NULL in memory are left out, so that validation
   * reports them as missing rather than crashing. */
  if (self->id != NULL)
    json_object_set_string_member (object, "id", self->id);
  if (type != NULL)
    json_object_set_string_member (object, "type", type);
  if (self->version != NULL)
    json_object_set_string_member (object, "version", self->version);
  if (self->from != NULL)
    json_object_set_string_member (object, "from", self->from);
  json_object_set_member (object, "to", strv_to_array_node ((const char * const *) self->to));
  if (!for_signing)
    {
      json_object_set_member (object, "route", strv_to_array_node ((const char * const *) self->route));
      json_object_set_int_member (object, "hops", self->hops);
    }
  if (self->group != NULL)
    json_object_set_string_member (object, "group", self->group);

  if (self->encrypted)
    {
      JsonObject *envelope = json_object_new ();
      g_autofree char *nonce = base64_encode (self->nonce, sizeof self->nonce);

      json_object_set_string_member (envelope, "nonce", nonce);
      if (self->ciphertext != NULL)
        {
          gsize len;
          const guint8 *data = g_bytes_get_data (self->ciphertext, &len);
          g_autofree char *ciphertext = base64_encode (data, len);

          json_object_set_string_member (envelope, "ciphertext", ciphertext);
        }
      if (self->key_id != NULL)
        json_object_set_string_member (envelope, "keyId", self->key_id);
      json_object_set_object_member (object, "content", envelope);
    }
  else if (self->content != NULL)
    {
      json_object_set_object_member (object, "content", json_object_ref (self->content));
    }

  json_object_set_int_member (object, "timestamp", self->timestamp);
  json_object_set_int_member (object, "sequence", (gint64) self->sequence);

  {
    JsonObject *clock = json_object_new ();
    g_autofree const char **peers = NULL;
    guint n_peers = 0;

    /* Sorted, so that encoding one message twice gives the same bytes. */
    if (self->vector_clock != NULL)
      {
        peers = (const char **) g_hash_table_get_keys_as_array (self->vector_clock, &n_peers);
        qsort (peers, n_peers, sizeof (char *), compare_member_names);
      }
    for (guint i = 0; i < n_peers; i++)
      json_object_set_int_member (clock, peers[i],
                                  (gint64) natter_message_get_clock (self, peers[i]));
    json_object_set_object_member (object, "vectorClock", clock);
  }

  json_object_set_boolean_member (object, "requiresAck", self->requires_ack);
  json_object_set_int_member (object, "ttl", self->ttl);
  if (!for_signing)
    {
      json_object_set_int_member (object, "retryCount", self->retry_count);
      if (self->has_signature)
        {
          g_autofree char *signature = base64_encode (self->signature, sizeof self->signature);

          json_object_set_string_member (object, "signature", signature);
        }
    }
  json_object_set_boolean_member (object, "encrypted", self->encrypted);
  if (self->tree != NULL)
    {
      gsize len;
      const guint8 *data = g_bytes_get_data (self->tree, &len);
      g_autofree char *tree = base64_encode (data, len);

      json_object_set_string_member (object, "tree", tree);
    }

  return object;
}

/* }}} */
/* {{{ Canonical JSON */

static void
write_canonical_string (GString    *out,
                        const char *str)
{
  static const char hex[] = "0123456789abcdef";

  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *) str; *p != '\0'; p++)
    {
      switch (*p)
        {
        case '"':  g_string_append (out, "\\\""); break;
        case '\\': g_string_append (out, "\\\\"); break;
        case '\b': g_string_append (out, "\\b"); break;
        case '\f': g_string_append (out, "\\f"); break;
        case '\n': g_string_append (out, "\\n"); break;
        case '\r': g_string_append (out, "\\r"); break;
        case '\t': g_string_append (out, "\\t"); break;
        default:
          if (*p < 0x20)
            {
              g_string_append (out, "\\u00");
              g_string_append_c (out, hex[*p >> 4]);
              g_string_append_c (out, hex[*p & 0xf]);
            }
          else
            {
              g_string_append_c (out, (char) *p);
            }
        }
    }
  g_string_append_c (out, '"');
}

void
natter_json_write_canonical (GString  *out,
                             JsonNode *node)
{
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_OBJECT:
      {
        JsonObject *object = json_node_get_object (node);
        guint n = json_object_get_size (object);
        g_autofree const char **names = g_new (const char *, n + 1);
        JsonObjectIter iter;
        const char *name;
        guint i = 0;

        json_object_iter_init (&iter, object);
        while (json_object_iter_next (&iter, &name, NULL) && i < n)
          names[i++] = name;
        qsort (names, i, sizeof (char *), compare_member_names);

        g_string_append_c (out, '{');
        for (guint j = 0; j < i; j++)
          {
            if (j > 0)
              g_string_append_c (out, ',');
            write_canonical_string (out, names[j]);
            g_string_append_c (out, ':');
            natter_json_write_canonical (out, json_object_get_member (object, names[j]));
          }
        g_string_append_c (out, '}');
        break;
      }

    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint len = json_array_get_length (array);

        g_string_append_c (out, '[');
        for (guint i = 0; i < len; i++)
          {
            if (i > 0)
              g_string_append_c (out, ',');
            natter_json_write_canonical (out, json_array_get_element (array, i));
          }
        g_string_append_c (out, ']');
        break;
      }

    case JSON_NODE_VALUE:
      {
        GType type = json_node_get_value_type (node);

        if (type == G_TYPE_INT64)
          g_string_append_printf (out, "%" G_GINT64_FORMAT, json_node_get_int (node));
        else if (type == G_TYPE_BOOLEAN)
          g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
        else if (type == G_TYPE_STRING)
          write_canonical_string (out, json_node_get_string (node));
        else
          {
            /* Valid messages hold no floats; this only keeps the output
             * deterministic for one built by hand, which sign() refuses. */
            char buf[G_ASCII_DTOSTR_BUF_SIZE];

            g_string_append (out, g_ascii_dtostr (buf, sizeof buf, json_node_get_double (node)));
          }
        break;
      }

    case JSON_NODE_NULL:
    default:
      g_string_append (out, "null");
      break;
    }
}

/* }}} */
/* {{{ Public codec */

GBytes *
natter_message_encode (NatterMessage  *self,
                       GError        **error)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(NatterMessage) check = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonGenerator) generator = NULL;
  char *text;
  gsize len;

  g_return_val_if_fail (self != NULL, NULL);

  object = natter_message_to_json_object (self, FALSE);
  check = natter_message_alloc ();
  if (!natter_message_fill_from_object (check, object, error))
    return NULL;

  root = json_node_init_object (json_node_alloc (), object);
  generator = json_generator_new ();
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &len);

  if (len > NATTER_MESSAGE_MAX_SIZE)
    {
      g_free (text);
      g_set_error (error, NATTER_MESSAGE_ERROR, NATTER_MESSAGE_ERROR_TOO_LARGE,
                   "message: %" G_GSIZE_FORMAT " bytes, more than the %d allowed",
                   len, NATTER_MESSAGE_MAX_SIZE);
      return NULL;
    }

  return g_bytes_new_take (text, len);
}

NatterMessage *
natter_message_decode_data (const guint8              *data,
                            gsize                      len,
                            NatterMessageDecodeFlags   flags,
                            GError                   **error)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(NatterMessage) message = NULL;

  g_return_val_if_fail (data != NULL || len == 0, NULL);

  object = natter_message_parse_object (data, len, NATTER_MESSAGE_MAX_DEPTH, "message", error);
  if (object == NULL)
    return NULL;

  message = natter_message_alloc ();
  if (!natter_message_fill_from_object (message, object, error))
    return NULL;

  if ((flags & NATTER_MESSAGE_DECODE_VERIFY) != 0 &&
      !natter_message_verify (message, error))
    return NULL;

  return g_steal_pointer (&message);
}

NatterMessage *
natter_message_decode (GBytes                    *bytes,
                       NatterMessageDecodeFlags   flags,
                       GError                   **error)
{
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (bytes != NULL, NULL);

  data = g_bytes_get_data (bytes, &len);
  return natter_message_decode_data (data, len, flags, error);
}

/* }}} */
