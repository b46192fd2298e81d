/* natter-cli.c: the messaging service without a window
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>

#include "natter-history-model.h"
#include "natter-identity.h"
#include "natter-json-scan.h"
#include "natter-lan-discovery.h"
#include "natter-message.h"
#include "natter-messaging-service.h"
#include "natter-messaging-service-private.h"
#include "natter-profile.h"

/* natter-cli runs NatterMessagingService headless, on the same profiles as
 * the window.  Every command runs on a GMainLoop and uses the service's
 * asynchronous API only.  The commands, options, exit codes and the JSON
 * lines of "run" and "serve" are documented in docs/cli.md: keep the two in
 * step. */

/* Exit codes (docs/cli.md). */
enum
{
  CLI_EXIT_OK = 0,
  CLI_EXIT_ERROR = 1,            /* anything else that went wrong */
  CLI_EXIT_USAGE = 2,            /* bad command, option or argument */
  CLI_EXIT_TIMEOUT = 3,          /* send --wait: the state was not reached in time */
  CLI_EXIT_FAILED = 4,           /* send --wait: the message failed (TTL ran out) */
  CLI_EXIT_LOCKED = 5,           /* another process has the profile open */
  CLI_EXIT_INVALID_MESSAGE = 6,  /* inspect-message: the message is invalid */
};

/* The longest command line "run" accepts on stdin, newline excluded. */
#define CLI_LINE_MAX            (256 * 1024)
#define CLI_READ_CHUNK          (64 * 1024)
/* Commands are flat objects; a little nesting is allowed for "id". */
#define CLI_COMMAND_MAX_DEPTH   8
#define CLI_DEFAULT_TIMEOUT_S   60.0
#define CLI_DEFAULT_LIMIT       50
#define CLI_MAX_LIMIT           100000

typedef enum
{
  COMMAND_ID,
  COMMAND_ADD_CONTACT,
  COMMAND_CONTACTS,
  COMMAND_SEND,
  COMMAND_HISTORY,
  COMMAND_RUN,
  COMMAND_SERVE,
  COMMAND_INSPECT_MESSAGE,
  COMMAND_SEND_FILE,
} Command;

static const struct
{
  const char *name;
  Command     command;
  guint       n_args;
  const char *usage;
} commands[] = {
  { "id", COMMAND_ID, 0, "id" },
  { "add-contact", COMMAND_ADD_CONTACT, 1, "add-contact PEER_ID [--name NAME]" },
  { "contacts", COMMAND_CONTACTS, 0, "contacts" },
  { "send", COMMAND_SEND, 2, "send PEER_ID TEXT [--wait sent|delivered|read] [--timeout S]" },
  { "history", COMMAND_HISTORY, 1, "history PEER_ID [--limit N]" },
  { "run", COMMAND_RUN, 0, "run" },
  { "serve", COMMAND_SERVE, 0, "serve" },
  { "inspect-message", COMMAND_INSPECT_MESSAGE, 1, "inspect-message FILE" },
  { "send-file", COMMAND_SEND_FILE, 2, "send-file PEER_ID PATH [--timeout S]" },
};

typedef enum
{
  PHASE_IDLE,      /* no service, nothing pending */
  PHASE_OPENING,   /* the profile is being opened */
  PHASE_STARTING,  /* the service is starting */
  PHASE_STARTED,
  PHASE_STOPPING,
  PHASE_DONE,
} Phase;

typedef struct
{
  /* Options */
  char *profile_name;
  char **rendezvous;
  char *stun;
  char **turn;
  gboolean lan;            /* -1: the service's default */
  char *interfaces;
  gboolean json;
  gboolean no_relay;
  double ttl;              /* seconds; < 0: the service's default */
  char *relay_quota_text;
  gint64 relay_quota;      /* bytes; < 0: the service's default */
  char *name;
  char *wait;
  double timeout;          /* < 0: not given */
  int limit;               /* < 0: not given */
  gboolean version;
  gboolean auto_accept;
  gboolean discoverable;
  char *download_folder;
  char *max_file_size_text;
  gint64 max_file_size;    /* bytes; < 0: the service's default */
  char **args;

  Command command;
  char *peer;              /* the command's peer, canonical */
  char *text;              /* send */
  char *path;              /* send-file */
  char *transfer_id;       /* send-file */

  GMainLoop *loop;
  GCancellable *cancellable;
  NatterProfile *profile;
  NatterMessagingService *service;
  Phase phase;
  int exit_code;
  gboolean exit_code_set;

  /* send */
  NatterStoreMessageState wait_state;
  char *msg_id;
  GHashTable *states;      /* msg ID -> GINT_TO_POINTER (furthest state + 1) */
  char *last_via;
  guint timeout_id;
  guint sigint_id;
  guint sigterm_id;

  /* run */
  GInputStream *input;
  GCancellable *input_cancellable;
  gboolean reading;
  GByteArray *line;
  gboolean discarding;
  guint pending;           /* commands whose reply has not been printed */
  gboolean quit_requested;
  gboolean output_broken;
} Cli;

static void cli_finish      (Cli *cli,
                             int  code);
static void cli_request_quit (Cli *cli);
static void print_send_result (Cli                     *cli,
                               NatterStoreMessageState  state);
static NatterStoreMessageState current_send_state (Cli *cli);

/* Output */

static void
write_line (Cli        *cli,
            const char *line)
{
  if (cli->output_broken)
    return;

  if (fputs (line, stdout) == EOF || fputc ('\n', stdout) == EOF || fflush (stdout) == EOF)
    {
      /* Nobody reads our events any more: stop cleanly. */
      cli->output_broken = TRUE;
      g_printerr ("natter-cli: cannot write to standard output: %s\n", g_strerror (errno));
      if (cli->command == COMMAND_RUN || cli->command == COMMAND_SERVE)
        cli_request_quit (cli);
    }
}

static void
print_json_node (Cli      *cli,
                 JsonNode *node,
                 gboolean  pretty)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, pretty);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  write_line (cli, text);
}

static void
add_string_or_null (JsonBuilder *builder,
                    const char  *name,
                    const char  *value)
{
  json_builder_set_member_name (builder, name);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

static void
add_string (JsonBuilder *builder,
            const char  *name,
            const char  *value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_string_value (builder, value);
}

static void
add_int (JsonBuilder *builder,
         const char  *name,
         gint64       value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_int_value (builder, value);
}

static void
add_boolean (JsonBuilder *builder,
             const char  *name,
             gboolean     value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_boolean_value (builder, value);
}

static JsonBuilder *
event_begin (const char *event)
{
  JsonBuilder *builder = json_builder_new ();

  json_builder_begin_object (builder);
  add_string (builder, "event", event);
  return builder;
}

static void
event_end (Cli         *cli,
           JsonBuilder *builder)
{
  g_autoptr(JsonNode) root = NULL;

  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  print_json_node (cli, root, FALSE);
  g_object_unref (builder);
}

/* The text of a message on one terminal line. */
static char *
escape_text (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text != NULL ? text : ""; *p != '\0'; p++)
    {
      if (*p == '\n')
        g_string_append (out, "\\n");
      else if (*p == '\\')
        g_string_append (out, "\\\\");
      else if ((guchar) *p < 0x20 || *p == 0x7f)
        g_string_append_printf (out, "\\x%02x", (guchar) *p);
      else
        g_string_append_c (out, *p);
    }
  return g_string_free (out, FALSE);
}

static char *
format_time (gint64 ms)
{
  g_autoptr(GDateTime) time = g_date_time_new_from_unix_local (ms / 1000);

  if (time == NULL)
    return g_strdup_printf ("@%" G_GINT64_FORMAT, ms);
  return g_date_time_format (time, "%Y-%m-%d %H:%M:%S");
}

static char *
format_time_utc (gint64 ms)
{
  g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc (ms / 1000);

  if (time == NULL)
    return g_strdup ("out of range");
  return g_date_time_format (time, "%Y-%m-%dT%H:%M:%SZ");
}

static void
build_item (JsonBuilder       *builder,
            NatterMessageItem *item)
{
  add_string (builder, "msgId", natter_message_item_get_msg_id (item));
  add_string (builder, "peer", natter_message_item_get_peer_id (item));
  add_string (builder, "sender", natter_message_item_get_sender (item));
  add_boolean (builder, "outgoing", natter_message_item_is_outgoing (item));
  add_string_or_null (builder, "kind", natter_message_item_get_kind (item));
  add_string_or_null (builder, "text", natter_message_item_get_text (item));
  add_int (builder, "timestamp", natter_message_item_get_timestamp (item));
  add_int (builder, "sequence", natter_message_item_get_sequence (item));
  add_string (builder, "state",
              natter_store_message_state_to_string (natter_message_item_get_state (item)));
  add_string_or_null (builder, "via", natter_message_item_get_relay_via (item));
}

static void
build_contact (JsonBuilder            *builder,
               NatterMessagingService *service,
               NatterContact          *contact,
               gboolean                live)
{
  const char *peer_id = natter_contact_get_peer_id (contact);

  add_string (builder, "peer", peer_id);
  add_string_or_null (builder, "name", natter_contact_get_display_name (contact));
  add_string (builder, "state", natter_contact_state_to_string (natter_contact_get_state (contact)));
  add_boolean (builder, "verified", natter_contact_get_verified (contact));
  if (live)
    {
      g_autofree char *via = NULL;
      NatterPeerState state = natter_messaging_service_get_peer_state (service, peer_id, &via);

      add_string (builder, "presence",
                  natter_presence_to_string (natter_messaging_service_get_peer_presence (service, peer_id)));
      add_string (builder, "peerState", natter_peer_state_to_string (state));
      add_string_or_null (builder, "via", via);
    }
}

static const char *
error_code_name (const GError *error)
{
  static const char * const messaging_codes[] = {
    "invalid", "not-started", "unknown-peer", "blocked", "too-large", "store",
  };

  if (error->domain == NATTER_MESSAGING_ERROR &&
      error->code >= 0 && (gsize) error->code < G_N_ELEMENTS (messaging_codes))
    return messaging_codes[error->code];
  if (error->domain == NATTER_IDENTITY_ERROR)
    return "invalid-peer-id";
  if (g_error_matches (error, NATTER_LAN_DISCOVERY_ERROR, NATTER_LAN_DISCOVERY_ERROR_UNKNOWN_PEER))
    return "unknown-nearby";
  if (error->domain == NATTER_STORE_ERROR)
    return "store";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return "cancelled";
  /* Groups (natter-groups.h) report G_IO_ERROR codes. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    return "not-found";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED))
    return "not-allowed";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT))
    return "invalid";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_EXISTS))
    return "exists";
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BUSY))
    return "busy";
  return "failed";
}

/* The exit code of a one-shot command the service refused. */
static int
exit_code_for_error (const GError *error)
{
  if (g_error_matches (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_INVALID) ||
      g_error_matches (error, NATTER_MESSAGING_ERROR, NATTER_MESSAGING_ERROR_TOO_LARGE) ||
      g_error_matches (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_INVALID_NAME) ||
      error->domain == NATTER_IDENTITY_ERROR)
    return CLI_EXIT_USAGE;
  if (g_error_matches (error, NATTER_PROFILE_ERROR, NATTER_PROFILE_ERROR_LOCKED))
    return CLI_EXIT_LOCKED;
  return CLI_EXIT_ERROR;
}

static void
fail (Cli          *cli,
      const GError *error)
{
  g_printerr ("natter-cli: %s\n", error->message);
  cli_finish (cli, exit_code_for_error (error));
}

/* Events of "run" and "serve" */

static gboolean
events_wanted (Cli *cli)
{
  return (cli->command == COMMAND_RUN || cli->command == COMMAND_SERVE) &&
         cli->phase != PHASE_DONE;
}

static void
on_message_received (NatterMessagingService *service,
                     NatterMessageItem      *item,
                     Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("message-received");
  build_item (builder, item);
  event_end (cli, builder);
}

static void check_send_done (Cli *cli);

static void
on_message_state_changed (NatterMessagingService *service,
                          const char             *msg_id,
                          const char             *peer_id,
                          const char             *state,
                          const char             *via,
                          Cli                    *cli)
{
  if (cli->command == COMMAND_SEND)
    {
      NatterStoreMessageState value;
      gpointer old;

      if (msg_id == NULL || state == NULL ||
          !natter_store_message_state_from_string (state, &value))
        return;
      /* Remembered even before send_text_finish() names our message. */
      old = g_hash_table_lookup (cli->states, msg_id);
      if (old == NULL || GPOINTER_TO_INT (old) - 1 < (int) value)
        g_hash_table_insert (cli->states, g_strdup (msg_id), GINT_TO_POINTER ((int) value + 1));
      if (g_strcmp0 (msg_id, cli->msg_id) == 0)
        {
          g_free (cli->last_via);
          cli->last_via = g_strdup (via);
        }
      check_send_done (cli);
      return;
    }

  if (events_wanted (cli))
    {
      JsonBuilder *builder = event_begin ("message-state-changed");

      add_string_or_null (builder, "msgId", msg_id);
      add_string_or_null (builder, "peer", peer_id);
      add_string_or_null (builder, "state", state);
      add_string_or_null (builder, "via", via);
      event_end (cli, builder);
    }
}

static void
on_typing_changed (NatterMessagingService *service,
                   const char             *peer_id,
                   gboolean                typing,
                   Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("typing-changed");
  add_string_or_null (builder, "peer", peer_id);
  add_boolean (builder, "typing", typing);
  event_end (cli, builder);
}

static void
on_presence_changed (NatterMessagingService *service,
                     const char             *peer_id,
                     NatterPresence          presence,
                     Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("presence-changed");
  add_string_or_null (builder, "peer", peer_id);
  add_string_or_null (builder, "presence", natter_presence_to_string (presence));
  event_end (cli, builder);
}

static void
on_peer_state_changed (NatterMessagingService *service,
                       const char             *peer_id,
                       NatterPeerState         state,
                       const char             *via,
                       Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("peer-state-changed");
  add_string_or_null (builder, "peer", peer_id);
  add_string_or_null (builder, "state", natter_peer_state_to_string (state));
  add_string_or_null (builder, "via", via);
  event_end (cli, builder);
}

static void
on_contact_added (NatterMessagingService *service,
                  NatterContact          *contact,
                  Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli) || contact == NULL)
    return;
  builder = event_begin ("contact-added");
  build_contact (builder, service, contact, FALSE);
  event_end (cli, builder);
}

static void
on_contact_request (NatterMessagingService *service,
                    NatterContact          *contact,
                    Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli) || contact == NULL)
    return;
  builder = event_begin ("contact-request");
  build_contact (builder, service, contact, FALSE);
  event_end (cli, builder);
}

static void
on_nearby_changed (NatterMessagingService *service,
                   const char             *handle,
                   gboolean                present,
                   Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("nearby-changed");
  add_string (builder, "handle", handle);
  add_boolean (builder, "present", present);
  event_end (cli, builder);
}

static void
on_relay_event (NatterMessagingService *service,
                const char             *event,
                const char             *msg_id,
                const char             *from,
                const char             *to,
                const char             *detail,
                Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("relay-event");
  add_string_or_null (builder, "kind", event);
  add_string_or_null (builder, "msgId", msg_id);
  add_string_or_null (builder, "from", from);
  add_string_or_null (builder, "to", to);
  add_string_or_null (builder, "detail", detail);
  event_end (cli, builder);
}

static void
on_transfer_offered (NatterMessagingService *service,
                     const char             *transfer_id,
                     const char             *peer_id,
                     const char             *name,
                     gint64                  size,
                     const char             *media_type,
                     Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("transfer-offered");
  add_string (builder, "transferId", transfer_id);
  add_string (builder, "peer", peer_id);
  add_string (builder, "name", name);
  add_int (builder, "size", size);
  add_string_or_null (builder, "mediaType", media_type);
  event_end (cli, builder);
}

static void check_send_file_done (Cli *cli, const char *state, const char *detail);

static void
on_transfer_state_changed (NatterMessagingService *service,
                           const char             *transfer_id,
                           const char             *state,
                           const char             *detail,
                           Cli                    *cli)
{
  JsonBuilder *builder;

  if (cli->command == COMMAND_SEND_FILE && g_strcmp0 (transfer_id, cli->transfer_id) == 0)
    check_send_file_done (cli, state, detail);
  if (!events_wanted (cli))
    return;
  builder = event_begin ("transfer-state-changed");
  add_string (builder, "transferId", transfer_id);
  add_string (builder, "state", state);
  add_string_or_null (builder, "detail", detail);
  event_end (cli, builder);
}

static void
on_transfer_progress (NatterMessagingService *service,
                      const char             *transfer_id,
                      gint64                  bytes_done,
                      gint64                  size,
                      double                  rate,
                      Cli                    *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("transfer-progress");
  add_string (builder, "transferId", transfer_id);
  add_int (builder, "bytes", bytes_done);
  add_int (builder, "size", size);
  add_int (builder, "bytesPerSecond", (gint64) rate);
  event_end (cli, builder);
}

static void
emit_error (Cli        *cli,
            JsonNode   *id,
            const char *code,
            const char *message)
{
  JsonBuilder *builder = event_begin ("error");

  json_builder_set_member_name (builder, "id");
  if (id != NULL)
    json_builder_add_value (builder, json_node_copy (id));
  else
    json_builder_add_null_value (builder);
  add_string (builder, "code", code);
  add_string (builder, "message", message);
  event_end (cli, builder);
}

static void
emit_ready (Cli *cli)
{
  g_autofree char *display_name = natter_profile_dup_display_name (cli->profile);
  JsonBuilder *builder = event_begin ("ready");

  add_string (builder, "peerId", natter_messaging_service_get_peer_id (cli->service));
  add_string_or_null (builder, "displayName", display_name);
  add_string (builder, "profile", natter_profile_get_directory (cli->profile));
  event_end (cli, builder);
}

/* The life cycle: profile, service, command, stop */

static void
on_stopped (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_stop_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    {
      g_printerr ("natter-cli: could not stop cleanly: %s\n", error->message);
      if (cli->exit_code == CLI_EXIT_OK)
        cli->exit_code = CLI_EXIT_ERROR;
    }
  if (cli->command == COMMAND_RUN || cli->command == COMMAND_SERVE)
    {
      JsonBuilder *builder = event_begin ("stopped");

      add_int (builder, "exitCode", cli->exit_code);
      event_end (cli, builder);
    }
  cli->phase = PHASE_DONE;
  g_main_loop_quit (cli->loop);
}

/* Ends the command with @code (the first code given wins), stopping the
 * service first when it runs. */
static void
cli_finish (Cli *cli,
            int  code)
{
  if (!cli->exit_code_set)
    {
      cli->exit_code = code;
      cli->exit_code_set = TRUE;
    }

  g_clear_handle_id (&cli->timeout_id, g_source_remove);
  if (cli->input_cancellable != NULL)
    g_cancellable_cancel (cli->input_cancellable);

  switch (cli->phase)
    {
    case PHASE_OPENING:
    case PHASE_STARTING:
      /* Their callbacks see the cancellation and come back here. */
      g_cancellable_cancel (cli->cancellable);
      break;
    case PHASE_STARTED:
      cli->phase = PHASE_STOPPING;
      g_cancellable_cancel (cli->cancellable);
      natter_messaging_service_stop_async (cli->service, NULL, on_stopped, cli);
      break;
    case PHASE_IDLE:
      cli->phase = PHASE_DONE;
      g_main_loop_quit (cli->loop);
      break;
    case PHASE_STOPPING:
    case PHASE_DONE:
    default:
      break;
    }
}

/* "run": stop once every command in flight has replied. */
static void
maybe_quit (Cli *cli)
{
  if (cli->quit_requested && cli->pending == 0)
    cli_finish (cli, CLI_EXIT_OK);
}

static void
cli_request_quit (Cli *cli)
{
  cli->quit_requested = TRUE;
  if (cli->input_cancellable != NULL)
    g_cancellable_cancel (cli->input_cancellable);
  maybe_quit (cli);
}

static gboolean
on_unix_signal (gpointer user_data)
{
  Cli *cli = user_data;

  if (cli->phase == PHASE_STOPPING)
    {
      /* A second signal: the user does not want to wait. */
      g_printerr ("natter-cli: interrupted again, not waiting for the service to stop\n");
      cli->exit_code = CLI_EXIT_ERROR;
      cli->phase = PHASE_DONE;
      g_main_loop_quit (cli->loop);
      return G_SOURCE_CONTINUE;
    }

  if (cli->command == COMMAND_RUN || cli->command == COMMAND_SERVE)
    {
      if (cli->phase == PHASE_STARTED)
        cli_request_quit (cli);
      else
        cli_finish (cli, CLI_EXIT_OK);
    }
  else
    {
      /* A message that is queued stays in the outbox: say which. */
      if (cli->command == COMMAND_SEND && cli->msg_id != NULL && !cli->exit_code_set)
        print_send_result (cli, current_send_state (cli));
      g_printerr ("natter-cli: interrupted\n");
      cli_finish (cli, CLI_EXIT_ERROR);
    }
  return G_SOURCE_CONTINUE;
}

static void command_started (Cli *cli);

static void
on_service_started (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_start_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    {
      cli->phase = PHASE_IDLE;
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && cli->exit_code_set)
        cli_finish (cli, CLI_EXIT_ERROR);
      else
        {
          g_printerr ("natter-cli: could not start the messaging service: %s\n", error->message);
          cli_finish (cli, exit_code_for_error (error));
        }
      return;
    }

  cli->phase = PHASE_STARTED;
  if (cli->exit_code_set)
    {
      /* Interrupted while starting. */
      cli_finish (cli, cli->exit_code);
      return;
    }
  command_started (cli);
}

static gboolean
command_is_online (Command command)
{
  return command == COMMAND_SEND || command == COMMAND_RUN || command == COMMAND_SERVE ||
         command == COMMAND_SEND_FILE;
}

static void
start_service (Cli *cli)
{
  NatterMessagingService *service = natter_messaging_service_new (cli->profile);

  cli->service = service;

  /* Local commands only read and write the store: no network. */
  if (command_is_online (cli->command))
    {
      if (cli->rendezvous != NULL)
        g_object_set (service, "rendezvous-urls", cli->rendezvous, NULL);
      if (cli->stun != NULL)
        g_object_set (service, "stun-server", cli->stun, NULL);
      if (cli->turn != NULL)
        g_object_set (service, "turn-servers", cli->turn, NULL);
      if (cli->lan != -1)
        g_object_set (service, "lan-discovery", cli->lan, NULL);
      if (cli->no_relay)
        g_object_set (service, "relay", FALSE, NULL);
      else if (cli->command == COMMAND_SERVE)
        g_object_set (service, "relay", TRUE, NULL);
      if (cli->ttl >= 0)
        g_object_set (service, "default-ttl", (gint64) (cli->ttl * 1000.0), NULL);
      if (cli->relay_quota >= 0)
        g_object_set (service, "relay-quota", cli->relay_quota, NULL);
      if (cli->auto_accept)
        g_object_set (service, "auto-accept", TRUE, NULL);
      if (cli->discoverable)
        g_object_set (service, "discoverable", TRUE, NULL);
      if (cli->download_folder != NULL)
        g_object_set (service, "download-folder", cli->download_folder, NULL);
      if (cli->max_file_size >= 0)
        g_object_set (service, "max-file-size", cli->max_file_size, NULL);
    }
  else
    {
      g_object_set (service,
                    "lan-discovery", FALSE,
                    "relay", FALSE,
                    NULL);
    }

  if (cli->interfaces != NULL)
    {
      g_auto(GStrv) names = g_strsplit (cli->interfaces, ",", -1);

      g_object_set (service, "interfaces", names, NULL);
    }

  g_signal_connect (service, "message-state-changed", G_CALLBACK (on_message_state_changed), cli);
  g_signal_connect (service, "transfer-state-changed", G_CALLBACK (on_transfer_state_changed), cli);
  if (cli->command == COMMAND_RUN || cli->command == COMMAND_SERVE)
    {
      g_signal_connect (service, "message-received", G_CALLBACK (on_message_received), cli);
      g_signal_connect (service, "typing-changed", G_CALLBACK (on_typing_changed), cli);
      g_signal_connect (service, "presence-changed", G_CALLBACK (on_presence_changed), cli);
      g_signal_connect (service, "peer-state-changed", G_CALLBACK (on_peer_state_changed), cli);
      g_signal_connect (service, "contact-added", G_CALLBACK (on_contact_added), cli);
      g_signal_connect (service, "relay-event", G_CALLBACK (on_relay_event), cli);
      g_signal_connect (service, "nearby-changed", G_CALLBACK (on_nearby_changed), cli);
      g_signal_connect (service, "contact-request", G_CALLBACK (on_contact_request), cli);
      g_signal_connect (service, "transfer-offered", G_CALLBACK (on_transfer_offered), cli);
      g_signal_connect (service, "transfer-progress", G_CALLBACK (on_transfer_progress), cli);
    }

  cli->phase = PHASE_STARTING;
  natter_messaging_service_start_async (service, cli->cancellable, on_service_started, cli);
}

static void
print_identity (Cli *cli)
{
  NatterIdentity *identity = natter_profile_get_identity (cli->profile);
  const char *peer_id = natter_identity_get_peer_id (identity);
  g_autofree char *display_name = natter_profile_dup_display_name (cli->profile);

  if (cli->json)
    {
      JsonBuilder *builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (builder);
      add_string (builder, "peerId", peer_id);
      add_string_or_null (builder, "displayName", display_name);
      add_string (builder, "profile", natter_profile_get_directory (cli->profile));
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json_node (cli, root, FALSE);
      g_object_unref (builder);
    }
  else
    {
      write_line (cli, peer_id);
    }
}

static void
on_profile_opened (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;

  cli->profile = natter_profile_open_finish (result, &error);
  if (cli->profile == NULL)
    {
      cli->phase = PHASE_IDLE;
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && cli->exit_code_set)
        cli_finish (cli, CLI_EXIT_ERROR);
      else
        fail (cli, error);
      return;
    }

  cli->phase = PHASE_IDLE;
  if (cli->exit_code_set)
    {
      cli_finish (cli, cli->exit_code);
      return;
    }

  if (cli->command == COMMAND_ID)
    {
      print_identity (cli);
      cli_finish (cli, CLI_EXIT_OK);
      return;
    }

  start_service (cli);
}

/* add-contact */

static void
on_contact_added_once (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterContact) contact = NULL;

  contact = natter_messaging_service_add_contact_finish (NATTER_MESSAGING_SERVICE (source),
                                                         result, &error);
  if (contact == NULL)
    {
      fail (cli, error);
      return;
    }

  if (cli->json)
    {
      JsonBuilder *builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (builder);
      build_contact (builder, cli->service, contact, FALSE);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json_node (cli, root, FALSE);
      g_object_unref (builder);
    }
  else
    {
      const char *name = natter_contact_get_display_name (contact);
      g_autofree char *line = g_strdup_printf ("%s\t%s\t%s",
                                               natter_contact_get_peer_id (contact),
                                               natter_contact_state_to_string (natter_contact_get_state (contact)),
                                               name != NULL ? name : "");

      write_line (cli, line);
    }
  cli_finish (cli, CLI_EXIT_OK);
}

/* contacts */

static void
print_contacts (Cli *cli)
{
  GListModel *contacts = natter_messaging_service_get_contacts (cli->service);
  guint n = contacts != NULL ? g_list_model_get_n_items (contacts) : 0;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (contacts, i);

      if (cli->json)
        {
          JsonBuilder *builder = json_builder_new ();
          g_autoptr(JsonNode) root = NULL;

          json_builder_begin_object (builder);
          build_contact (builder, cli->service, contact, FALSE);
          json_builder_end_object (builder);
          root = json_builder_get_root (builder);
          print_json_node (cli, root, FALSE);
          g_object_unref (builder);
        }
      else
        {
          const char *name = natter_contact_get_display_name (contact);
          g_autofree char *safe_name = escape_text (name);
          g_autofree char *line = g_strdup_printf ("%s\t%s\t%s",
                                                   natter_contact_get_peer_id (contact),
                                                   natter_contact_state_to_string (natter_contact_get_state (contact)),
                                                   safe_name);

          write_line (cli, line);
        }
    }
  cli_finish (cli, CLI_EXIT_OK);
}

/* send */

static void
print_send_result (Cli                     *cli,
                   NatterStoreMessageState  state)
{
  if (cli->json)
    {
      JsonBuilder *builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (builder);
      add_string (builder, "msgId", cli->msg_id);
      add_string (builder, "peer", cli->peer);
      add_string (builder, "state", natter_store_message_state_to_string (state));
      add_string_or_null (builder, "via", cli->last_via);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json_node (cli, root, FALSE);
      g_object_unref (builder);
    }
  else
    {
      write_line (cli, cli->msg_id);
    }
}

static NatterStoreMessageState
current_send_state (Cli *cli)
{
  gpointer value = g_hash_table_lookup (cli->states, cli->msg_id);

  /* Committed is queued at least. */
  return value != NULL ? (NatterStoreMessageState) (GPOINTER_TO_INT (value) - 1)
                       : NATTER_STORE_MESSAGE_QUEUED;
}

static void
check_send_done (Cli *cli)
{
  NatterStoreMessageState state;

  if (cli->msg_id == NULL || cli->phase != PHASE_STARTED || cli->exit_code_set)
    return;

  state = current_send_state (cli);
  if (state == NATTER_STORE_MESSAGE_FAILED && cli->wait_state != NATTER_STORE_MESSAGE_QUEUED)
    {
      print_send_result (cli, state);
      g_printerr ("natter-cli: message %s failed: it was not delivered within its time to live\n",
                  cli->msg_id);
      cli_finish (cli, CLI_EXIT_FAILED);
    }
  else if (state >= cli->wait_state)
    {
      print_send_result (cli, state);
      cli_finish (cli, CLI_EXIT_OK);
    }
}

static gboolean
on_send_timeout (gpointer user_data)
{
  Cli *cli = user_data;
  NatterStoreMessageState state = current_send_state (cli);

  cli->timeout_id = 0;
  print_send_result (cli, state);
  g_printerr ("natter-cli: timed out waiting for message %s to be %s (it is %s; "
              "it stays in the outbox)\n",
              cli->msg_id, natter_store_message_state_to_string (cli->wait_state),
              natter_store_message_state_to_string (state));
  cli_finish (cli, CLI_EXIT_TIMEOUT);
  return G_SOURCE_REMOVE;
}

static void
on_sent_once (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;

  cli->msg_id = natter_messaging_service_send_text_finish (NATTER_MESSAGING_SERVICE (source),
                                                           result, &error);
  if (cli->msg_id == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || !cli->exit_code_set)
        fail (cli, error);
      return;
    }

  if (cli->wait_state != NATTER_STORE_MESSAGE_QUEUED && cli->timeout > 0)
    cli->timeout_id = g_timeout_add ((guint) MIN (cli->timeout * 1000.0, (double) G_MAXUINT),
                                     on_send_timeout, cli);
  check_send_done (cli);
}

/* send-file */

static void
check_send_file_done (Cli        *cli,
                      const char *state,
                      const char *detail)
{
  if (cli->phase != PHASE_STARTED || cli->exit_code_set)
    return;
  if (g_str_equal (state, "complete"))
    {
      if (cli->json)
        {
          g_autofree char *line = g_strdup_printf ("{\"transferId\":\"%s\",\"state\":\"complete\"}",
                                                   cli->transfer_id);

          write_line (cli, line);
        }
      else
        write_line (cli, cli->transfer_id);
      cli_finish (cli, CLI_EXIT_OK);
    }
  else if (g_str_equal (state, "failed") || g_str_equal (state, "cancelled") ||
           g_str_equal (state, "rejected"))
    {
      write_line (cli, cli->transfer_id);
      g_printerr ("natter-cli: transfer %s %s%s%s\n", cli->transfer_id, state,
                  detail != NULL ? ": " : "", detail != NULL ? detail : "");
      cli_finish (cli, CLI_EXIT_FAILED);
    }
}

static gboolean
on_send_file_timeout (gpointer user_data)
{
  Cli *cli = user_data;

  cli->timeout_id = 0;
  write_line (cli, cli->transfer_id);
  g_printerr ("natter-cli: timed out waiting for transfer %s to complete (it resumes "
              "with the next run or serve on this profile)\n", cli->transfer_id);
  cli_finish (cli, CLI_EXIT_TIMEOUT);
  return G_SOURCE_REMOVE;
}

static void
on_file_sent_once (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;

  cli->transfer_id = natter_messaging_service_send_file_finish (NATTER_MESSAGING_SERVICE (source),
                                                                result, &error);
  if (cli->transfer_id == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || !cli->exit_code_set)
        fail (cli, error);
      return;
    }
  if (cli->timeout > 0)
    cli->timeout_id = g_timeout_add ((guint) MIN (cli->timeout * 1000.0, (double) G_MAXUINT),
                                     on_send_file_timeout, cli);
}

/* history */

static void
print_history (Cli                *cli,
               NatterHistoryModel *history,
               guint               limit)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (history));
  guint first = n > limit ? n - limit : 0;

  for (guint i = first; i < n; i++)
    {
      g_autoptr(NatterMessageItem) item = g_list_model_get_item (G_LIST_MODEL (history), i);

      if (cli->json)
        {
          JsonBuilder *builder = json_builder_new ();
          g_autoptr(JsonNode) root = NULL;

          json_builder_begin_object (builder);
          build_item (builder, item);
          json_builder_end_object (builder);
          root = json_builder_get_root (builder);
          print_json_node (cli, root, FALSE);
          g_object_unref (builder);
        }
      else
        {
          g_autofree char *time = format_time (natter_message_item_get_timestamp (item));
          g_autofree char *text = escape_text (natter_message_item_get_text (item));
          g_autofree char *line = NULL;

          line = g_strdup_printf ("%s\t%s\t%s\t%s", time,
                                  natter_message_item_is_outgoing (item) ? "out" : "in",
                                  natter_store_message_state_to_string (natter_message_item_get_state (item)),
                                  text);
          write_line (cli, line);
        }
    }
}

/* Loads older pages until @limit messages are there or the history is
 * complete; shared by "history" and the "history" command of "run". */
typedef void (*HistoryReady) (gpointer            data,
                              NatterHistoryModel *history,
                              guint               limit,
                              const GError       *error);

typedef struct
{
  NatterHistoryModel *history;
  guint limit;
  HistoryReady ready;
  gpointer data;
  GCancellable *cancellable;
} HistoryLoad;

static void
history_load_free (HistoryLoad *load)
{
  g_clear_object (&load->history);
  g_clear_object (&load->cancellable);
  g_free (load);
}

static void history_load_next (HistoryLoad *load);

static void
on_history_loaded (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  HistoryLoad *load = user_data;
  g_autoptr(GError) error = NULL;
  guint n_loaded = 0;

  if (!natter_history_model_load_older_finish (NATTER_HISTORY_MODEL (source), result,
                                               &n_loaded, &error))
    {
      load->ready (load->data, NULL, load->limit, error);
      history_load_free (load);
      return;
    }
  if (n_loaded == 0)
    {
      /* Nothing older: done, whatever "complete" says. */
      load->ready (load->data, load->history, load->limit, NULL);
      history_load_free (load);
      return;
    }
  history_load_next (load);
}

static void
history_load_next (HistoryLoad *load)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (load->history));

  if (n >= load->limit || natter_history_model_get_complete (load->history))
    {
      load->ready (load->data, load->history, load->limit, NULL);
      history_load_free (load);
      return;
    }
  natter_history_model_load_older_async (load->history, MIN (load->limit - n, NATTER_HISTORY_PAGE_SIZE * 20),
                                         load->cancellable, on_history_loaded, load);
}

static void
on_history_opened (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  HistoryLoad *load = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GListModel) model = NULL;

  model = natter_messaging_service_open_history_finish (NATTER_MESSAGING_SERVICE (source),
                                                        result, &error);
  if (model == NULL)
    {
      load->ready (load->data, NULL, load->limit, error);
      history_load_free (load);
      return;
    }
  if (!NATTER_IS_HISTORY_MODEL (model))
    {
      g_autoptr(GError) wrong = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                                             "The service returned a history that is not a NatterHistoryModel");

      load->ready (load->data, NULL, load->limit, wrong);
      history_load_free (load);
      return;
    }
  load->history = NATTER_HISTORY_MODEL (g_steal_pointer (&model));
  history_load_next (load);
}

static void
history_load (NatterMessagingService *service,
              const char             *peer_id,
              guint                   limit,
              GCancellable           *cancellable,
              HistoryReady            ready,
              gpointer                data)
{
  HistoryLoad *load = g_new0 (HistoryLoad, 1);

  load->limit = limit;
  load->ready = ready;
  load->data = data;
  load->cancellable = cancellable != NULL ? g_object_ref (cancellable) : NULL;
  natter_messaging_service_open_history_async (service, peer_id, cancellable,
                                               on_history_opened, load);
}

static void
on_history_ready_once (gpointer            data,
                       NatterHistoryModel *history,
                       guint               limit,
                       const GError       *error)
{
  Cli *cli = data;

  if (history == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || !cli->exit_code_set)
        fail (cli, error);
      return;
    }
  print_history (cli, history, limit);
  cli_finish (cli, CLI_EXIT_OK);
}

/* run: commands on stdin */

typedef struct
{
  Cli *cli;
  JsonNode *id;
  char *command;
} Request;

static Request *
request_new (Cli        *cli,
             JsonNode   *id,
             const char *command)
{
  Request *request = g_new0 (Request, 1);

  request->cli = cli;
  request->id = id != NULL ? json_node_copy (id) : NULL;
  request->command = g_strdup (command);
  cli->pending++;
  return request;
}

static void
request_free (Request *request)
{
  Cli *cli = request->cli;

  g_clear_pointer (&request->id, json_node_unref);
  g_free (request->command);
  g_free (request);
  cli->pending--;
  maybe_quit (cli);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Request, request_free)

static JsonBuilder *
reply_begin (Request *request)
{
  JsonBuilder *builder = event_begin ("reply");

  json_builder_set_member_name (builder, "id");
  if (request->id != NULL)
    json_builder_add_value (builder, json_node_copy (request->id));
  else
    json_builder_add_null_value (builder);
  add_string (builder, "cmd", request->command);
  add_boolean (builder, "ok", TRUE);
  return builder;
}

static void
reply_error (Request      *request,
             const GError *error)
{
  emit_error (request->cli, request->id, error_code_name (error), error->message);
}

static void
reply_ok (Request *request)
{
  event_end (request->cli, reply_begin (request));
}

static void
on_run_sent (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *msg_id = NULL;
  JsonBuilder *builder;

  msg_id = natter_messaging_service_send_text_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (msg_id == NULL)
    {
      reply_error (request, error);
      return;
    }
  builder = reply_begin (request);
  add_string (builder, "msgId", msg_id);
  event_end (request->cli, builder);
}

static void
on_run_contact_added (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(NatterContact) contact = NULL;
  JsonBuilder *builder;

  contact = natter_messaging_service_add_contact_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (contact == NULL)
    {
      reply_error (request, error);
      return;
    }
  builder = reply_begin (request);
  json_builder_set_member_name (builder, "contact");
  json_builder_begin_object (builder);
  build_contact (builder, NATTER_MESSAGING_SERVICE (source), contact, TRUE);
  json_builder_end_object (builder);
  event_end (request->cli, builder);
}

static void
on_run_contact_state_set (GObject      *source,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_set_contact_state_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    reply_error (request, error);
  else
    reply_ok (request);
}

static void
on_run_marked_read (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  g_autoptr(GError) error = NULL;

  if (!natter_messaging_service_mark_read_finish (NATTER_MESSAGING_SERVICE (source), result, &error))
    reply_error (request, error);
  else
    reply_ok (request);
}

static void
on_run_history_ready (gpointer            data,
                      NatterHistoryModel *history,
                      guint               limit,
                      const GError       *error)
{
  g_autoptr(Request) request = data;
  JsonBuilder *builder;
  guint n, first;

  if (history == NULL)
    {
      reply_error (request, error);
      return;
    }

  n = g_list_model_get_n_items (G_LIST_MODEL (history));
  first = n > limit ? n - limit : 0;

  builder = reply_begin (request);
  json_builder_set_member_name (builder, "messages");
  json_builder_begin_array (builder);
  for (guint i = first; i < n; i++)
    {
      g_autoptr(NatterMessageItem) item = g_list_model_get_item (G_LIST_MODEL (history), i);

      json_builder_begin_object (builder);
      build_item (builder, item);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  add_boolean (builder, "complete", natter_history_model_get_complete (history));
  event_end (request->cli, builder);
}

static void
reply_contacts (Request *request)
{
  Cli *cli = request->cli;
  GListModel *contacts = natter_messaging_service_get_contacts (cli->service);
  guint n = contacts != NULL ? g_list_model_get_n_items (contacts) : 0;
  JsonBuilder *builder = reply_begin (request);

  json_builder_set_member_name (builder, "contacts");
  json_builder_begin_array (builder);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(NatterContact) contact = g_list_model_get_item (contacts, i);

      json_builder_begin_object (builder);
      build_contact (builder, cli->service, contact, TRUE);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  event_end (cli, builder);
}

static void
reply_nearby (Request *request)
{
  Cli *cli = request->cli;
  g_auto(GStrv) handles = natter_messaging_service_list_nearby (cli->service);
  g_autofree char *own = natter_messaging_service_dup_nearby_handle (cli->service);
  JsonBuilder *builder = reply_begin (request);

  add_string_or_null (builder, "handle", own);
  json_builder_set_member_name (builder, "nearby");
  json_builder_begin_array (builder);
  for (guint i = 0; handles[i] != NULL; i++)
    {
      json_builder_begin_object (builder);
      add_string (builder, "handle", handles[i]);
      add_boolean (builder, "introduced",
                   natter_messaging_service_get_introduced (cli->service, handles[i]));
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  event_end (cli, builder);
}

static void
reply_stats (Request *request)
{
  NatterMessagingStats stats = { 0 };
  JsonBuilder *builder = reply_begin (request);

  natter_messaging_service_get_stats (request->cli->service, &stats);
  json_builder_set_member_name (builder, "stats");
  json_builder_begin_object (builder);
  add_int (builder, "messagesSent", (gint64) stats.messages_sent);
  add_int (builder, "messagesReceived", (gint64) stats.messages_received);
  add_int (builder, "duplicatesDropped", (gint64) stats.duplicates_dropped);
  add_int (builder, "rejected", (gint64) stats.rejected);
  add_int (builder, "relayed", (gint64) stats.relayed);
  add_int (builder, "relayStored", (gint64) stats.relay_stored);
  add_int (builder, "relayRefused", (gint64) stats.relay_refused);
  add_int (builder, "relayHandedOver", (gint64) stats.relay_handed_over);
  add_int (builder, "outboxLength", stats.outbox_length);
  add_int (builder, "connections", stats.connections);
  json_builder_end_object (builder);
  event_end (request->cli, builder);
}

static void
on_run_file_sent (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *transfer_id = NULL;
  JsonBuilder *builder;

  transfer_id = natter_messaging_service_send_file_finish (NATTER_MESSAGING_SERVICE (source), result, &error);
  if (transfer_id == NULL)
    {
      reply_error (request, error);
      return;
    }
  builder = reply_begin (request);
  add_string (builder, "transferId", transfer_id);
  event_end (request->cli, builder);
}

static void
reply_transfers (Request *request)
{
  NatterMessagingService *service = request->cli->service;
  g_autoptr(GPtrArray) list = natter_messaging_service_list_transfers (service);
  JsonBuilder *builder = reply_begin (request);

  json_builder_set_member_name (builder, "transfers");
  json_builder_begin_array (builder);
  for (guint i = 0; i < list->len; i++)
    {
      NatterStoreTransfer *t = g_ptr_array_index (list, i);
      guint64 sent = 0, received = 0, duplicates = 0, resumed = 0;
      guint starts = 0;

      natter_messaging_service_get_transfer_counters (service, t->id, &sent, &received,
                                                      &duplicates, &resumed, &starts);
      json_builder_begin_object (builder);
      add_string (builder, "transferId", t->id);
      add_string (builder, "peer", t->peer_id);
      add_string (builder, "direction", natter_store_direction_to_string (t->direction));
      add_string (builder, "name", t->name);
      add_int (builder, "size", t->size);
      add_int (builder, "bytes", t->offset);
      add_string (builder, "state", natter_store_transfer_state_to_string (t->state));
      add_string_or_null (builder, "path", t->path);
      add_int (builder, "bytesSent", (gint64) sent);
      add_int (builder, "bytesReceived", (gint64) received);
      add_int (builder, "duplicateBytes", (gint64) duplicates);
      add_int (builder, "resumedFrom", (gint64) resumed);
      add_int (builder, "starts", starts);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  {
    static const char * const reasons[] = {
      "unknown", "notAccepted", "beyondSize", "outOfOrder", "malformed"
    };

    json_builder_set_member_name (builder, "rejectedFrames");
    json_builder_begin_object (builder);
    for (guint i = 0; i < G_N_ELEMENTS (reasons); i++)
      add_int (builder, reasons[i], (gint64) natter_messaging_service_get_rejected_file_frames (service, i));
    json_builder_end_object (builder);
  }
  event_end (request->cli, builder);
}

static void
reply_peer (Request    *request,
            const char *peer_id)
{
  NatterMessagingService *service = request->cli->service;
  g_autofree char *via = NULL;
  NatterPeerState state = natter_messaging_service_get_peer_state (service, peer_id, &via);
  JsonBuilder *builder = reply_begin (request);

  add_string (builder, "peer", peer_id);
  add_string (builder, "presence",
              natter_presence_to_string (natter_messaging_service_get_peer_presence (service, peer_id)));
  add_string (builder, "peerState", natter_peer_state_to_string (state));
  add_string_or_null (builder, "via", via);
  event_end (request->cli, builder);
}

static void
reply_id (Request *request)
{
  Cli *cli = request->cli;
  g_autofree char *display_name = natter_profile_dup_display_name (cli->profile);
  JsonBuilder *builder = reply_begin (request);

  add_string (builder, "peerId", natter_messaging_service_get_peer_id (cli->service));
  add_string_or_null (builder, "displayName", display_name);
  add_string (builder, "presence",
              natter_presence_to_string (natter_messaging_service_get_presence (cli->service)));
  event_end (cli, builder);
}

/* Request parsing */

#define BAD_REQUEST (g_quark_from_static_string ("natter-cli-bad-request"))

static gboolean
check_members (JsonObject         *object,
               const char * const *allowed,
               GError            **error)
{
  g_autoptr(GList) members = json_object_get_members (object);

  for (GList *l = members; l != NULL; l = l->next)
    {
      const char *name = l->data;

      if (g_strcmp0 (name, "cmd") == 0 || g_strcmp0 (name, "id") == 0)
        continue;
      if (allowed == NULL || !g_strv_contains (allowed, name))
        {
          g_set_error (error, BAD_REQUEST, 0, "unknown member “%s” for this command", name);
          return FALSE;
        }
    }
  return TRUE;
}

/* Returns FALSE with @error when the member is missing (and required) or
 * not a string. */
static gboolean
get_string_member (JsonObject  *object,
                   const char  *name,
                   gboolean     required,
                   const char **out,
                   GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *out = NULL;
  if (node == NULL || (!required && JSON_NODE_HOLDS_NULL (node)))
    {
      if (required)
        g_set_error (error, BAD_REQUEST, 0, "member “%s” is missing", name);
      return !required;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, BAD_REQUEST, 0, "member “%s” must be a string", name);
      return FALSE;
    }
  *out = json_node_get_string (node);
  return TRUE;
}

static gboolean
get_peer_member (JsonObject  *object,
                 char       **out,
                 GError     **error)
{
  const char *text;

  *out = NULL;
  if (!get_string_member (object, "peer", TRUE, &text, error))
    return FALSE;
  *out = natter_peer_id_normalize (text, error);
  return *out != NULL;
}

static gboolean
get_boolean_member (JsonObject *object,
                    const char *name,
                    gboolean    default_value,
                    gboolean   *out,
                    GError    **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *out = default_value;
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      g_set_error (error, BAD_REQUEST, 0, "member “%s” must be true or false", name);
      return FALSE;
    }
  *out = json_node_get_boolean (node);
  return TRUE;
}

static gboolean
get_limit_member (JsonObject *object,
                  guint      *out,
                  GError    **error)
{
  JsonNode *node = json_object_get_member (object, "limit");
  gint64 value;

  *out = CLI_DEFAULT_LIMIT;
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      g_set_error (error, BAD_REQUEST, 0, "member “limit” must be an integer");
      return FALSE;
    }
  value = json_node_get_int (node);
  if (value < 1 || value > CLI_MAX_LIMIT)
    {
      g_set_error (error, BAD_REQUEST, 0, "member “limit” must be between 1 and %d", CLI_MAX_LIMIT);
      return FALSE;
    }
  *out = (guint) value;
  return TRUE;
}

/* Groups: commands and events (docs/cli.md, "Groups") */

static void
build_group_message (JsonBuilder              *builder,
                     const NatterGroupMessage *message)
{
  add_string (builder, "msgId", message->msg_id);
  add_string (builder, "group", message->group_id);
  add_string (builder, "sender", message->sender);
  add_boolean (builder, "outgoing", message->outgoing);
  add_string (builder, "kind", message->kind);
  add_string_or_null (builder, "text", message->text);
  add_int (builder, "timestamp", message->timestamp);
  add_int (builder, "counter", (gint64) message->counter);
}

static void
add_strv (JsonBuilder        *builder,
          const char         *name,
          const char * const *values)
{
  json_builder_set_member_name (builder, name);
  json_builder_begin_array (builder);
  for (guint i = 0; values != NULL && values[i] != NULL; i++)
    json_builder_add_string_value (builder, values[i]);
  json_builder_end_array (builder);
}

static void
build_group_info (JsonBuilder           *builder,
                  const NatterGroupInfo *info)
{
  json_builder_begin_object (builder);
  add_string (builder, "group", info->id);
  add_string (builder, "name", info->name);
  add_string (builder, "admin", info->admin);
  add_strv (builder, "members", (const char * const *) info->members);
  add_int (builder, "fanout", info->fanout);
  add_string_or_null (builder, "keyId", info->key_id);
  add_boolean (builder, "syncing", info->syncing);
  add_boolean (builder, "removed", info->removed);
  add_int (builder, "messages", info->n_messages);
  json_builder_end_object (builder);
}

static void
on_group_changed (NatterGroups *groups,
                  const char   *group_id,
                  Cli          *cli)
{
  g_autoptr(NatterGroupInfo) info = natter_groups_get_info (groups, group_id);
  JsonBuilder *builder;

  if (!events_wanted (cli) || info == NULL)
    return;
  builder = event_begin ("group-changed");
  json_builder_set_member_name (builder, "info");
  build_group_info (builder, info);
  event_end (cli, builder);
}

static void
on_group_message (NatterGroups       *groups,
                  NatterGroupMessage *message,
                  Cli                *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("group-message-received");
  build_group_message (builder, message);
  event_end (cli, builder);
}

static void
on_group_receipts (NatterGroups *groups,
                   const char   *group_id,
                   const char   *msg_id,
                   guint         delivered,
                   guint         read,
                   guint         total,
                   Cli          *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("group-receipts-changed");
  add_string (builder, "group", group_id);
  add_string (builder, "msgId", msg_id);
  add_int (builder, "delivered", delivered);
  add_int (builder, "read", read);
  add_int (builder, "total", total);
  event_end (cli, builder);
}

static void
on_group_typing (NatterGroups *groups,
                 const char   *group_id,
                 const char   *peer_id,
                 gboolean      typing,
                 Cli          *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("group-typing-changed");
  add_string (builder, "group", group_id);
  add_string (builder, "peer", peer_id);
  add_boolean (builder, "typing", typing);
  event_end (cli, builder);
}

static void
on_group_sync (NatterGroups *groups,
               const char   *group_id,
               gboolean      syncing,
               Cli          *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("group-sync-changed");
  add_string (builder, "group", group_id);
  add_boolean (builder, "syncing", syncing);
  event_end (cli, builder);
}

static void
on_group_rejected (NatterGroups *groups,
                   const char   *group_id,
                   const char   *author,
                   const char   *reason,
                   Cli          *cli)
{
  JsonBuilder *builder;

  if (!events_wanted (cli))
    return;
  builder = event_begin ("group-operation-rejected");
  add_string (builder, "group", group_id);
  add_string (builder, "author", author);
  add_string (builder, "reason", reason);
  event_end (cli, builder);
}

static void
connect_group_events (Cli *cli)
{
  NatterGroups *groups = natter_messaging_service_get_groups (cli->service);

  if (groups == NULL)
    return;
  g_signal_connect (groups, "group-changed", G_CALLBACK (on_group_changed), cli);
  g_signal_connect (groups, "message-received", G_CALLBACK (on_group_message), cli);
  g_signal_connect (groups, "receipts-changed", G_CALLBACK (on_group_receipts), cli);
  g_signal_connect (groups, "typing-changed", G_CALLBACK (on_group_typing), cli);
  g_signal_connect (groups, "sync-changed", G_CALLBACK (on_group_sync), cli);
  g_signal_connect (groups, "operation-rejected", G_CALLBACK (on_group_rejected), cli);
}

static gboolean
get_group_member (JsonObject  *object,
                  const char **out,
                  GError     **error)
{
  if (!get_string_member (object, "group", TRUE, out, error))
    return FALSE;
  if (!natter_message_id_is_valid (*out))
    {
      g_set_error (error, BAD_REQUEST, 0, "member “group” is not a group ID");
      return FALSE;
    }
  return TRUE;
}

/* FALSE with @error for a malformed request; the service's own refusals
 * are replied as errors here. */
static gboolean
handle_group_command (Cli         *cli,
                      const char  *cmd,
                      JsonObject  *object,
                      JsonNode    *id,
                      GError     **error)
{
  static const char * const create_members[] = { "name", "members", "fanout", NULL };
  static const char * const group_peer[] = { "group", "peer", NULL };
  static const char * const group_only[] = { "group", NULL };
  static const char * const group_text[] = { "group", "text", NULL };
  static const char * const group_typing[] = { "group", "typing", NULL };
  static const char * const group_limit[] = { "group", "limit", NULL };
  static const char * const group_msg[] = { "group", "msgId", NULL };
  NatterGroups *groups = natter_messaging_service_get_groups (cli->service);
  g_autoptr(Request) request = NULL;
  g_autoptr(GError) refusal = NULL;
  g_autofree char *peer = NULL;
  const char *group = NULL;

  if (g_str_equal (cmd, "group-create"))
    {
      g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *group_id = NULL;
      JsonNode *node;
      const char *name;
      gint64 fanout = 0;

      if (!check_members (object, create_members, error) ||
          !get_string_member (object, "name", TRUE, &name, error))
        return FALSE;
      node = json_object_get_member (object, "members");
      if (node != NULL && !JSON_NODE_HOLDS_ARRAY (node))
        {
          g_set_error (error, BAD_REQUEST, 0, "member “members” must be an array of peer IDs");
          return FALSE;
        }
      for (guint i = 0; node != NULL && i < json_array_get_length (json_node_get_array (node)); i++)
        {
          JsonNode *element = json_array_get_element (json_node_get_array (node), i);
          char *normal;

          if (!JSON_NODE_HOLDS_VALUE (element) || json_node_get_value_type (element) != G_TYPE_STRING)
            {
              g_set_error (error, BAD_REQUEST, 0, "member “members” must be an array of peer IDs");
              return FALSE;
            }
          normal = natter_peer_id_normalize (json_node_get_string (element), error);
          if (normal == NULL)
            return FALSE;
          g_ptr_array_add (members, normal);
        }
      g_ptr_array_add (members, NULL);
      node = json_object_get_member (object, "fanout");
      if (node != NULL)
        {
          if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64 ||
              json_node_get_int (node) < 1 || json_node_get_int (node) > NATTER_GROUPS_MAX_FANOUT)
            {
              g_set_error (error, BAD_REQUEST, 0, "member “fanout” must be an integer from 1 to %d",
                           NATTER_GROUPS_MAX_FANOUT);
              return FALSE;
            }
          fanout = json_node_get_int (node);
        }
      request = request_new (cli, id, cmd);
      group_id = natter_messaging_service_group_create (cli->service, name,
                                                        (const char * const *) members->pdata,
                                                        (guint) fanout, &refusal);
      if (group_id == NULL)
        reply_error (request, refusal);
      else
        {
          JsonBuilder *builder = reply_begin (request);

          add_string (builder, "group", group_id);
          event_end (cli, builder);
        }
      return TRUE;
    }

  if (g_str_equal (cmd, "groups"))
    {
      g_autoptr(GPtrArray) list = NULL;
      JsonBuilder *builder;

      if (!check_members (object, NULL, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      list = natter_groups_list (groups);
      builder = reply_begin (request);
      json_builder_set_member_name (builder, "groups");
      json_builder_begin_array (builder);
      for (guint i = 0; i < list->len; i++)
        build_group_info (builder, g_ptr_array_index (list, i));
      json_builder_end_array (builder);
      event_end (cli, builder);
      return TRUE;
    }

  if (g_str_equal (cmd, "group-invite") || g_str_equal (cmd, "group-remove") ||
      g_str_equal (cmd, "group-admin"))
    {
      gboolean ok;

      if (!check_members (object, group_peer, error) || !get_group_member (object, &group, error) ||
          !get_peer_member (object, &peer, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      if (g_str_equal (cmd, "group-invite"))
        ok = natter_messaging_service_group_invite (cli->service, group, peer, &refusal);
      else if (g_str_equal (cmd, "group-remove"))
        ok = natter_messaging_service_group_remove (cli->service, group, peer, &refusal);
      else
        ok = natter_groups_set_admin (groups, group, peer, &refusal);
      if (ok)
        reply_ok (request);
      else
        reply_error (request, refusal);
      return TRUE;
    }

  if (g_str_equal (cmd, "group-leave") || g_str_equal (cmd, "group-read") ||
      g_str_equal (cmd, "group-info"))
    {
      if (!check_members (object, group_only, error) || !get_group_member (object, &group, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      if (g_str_equal (cmd, "group-info"))
        {
          g_autoptr(NatterGroupInfo) info = natter_groups_get_info (groups, group);
          JsonBuilder *builder;

          if (info == NULL)
            {
              g_set_error (&refusal, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "No group %s", group);
              reply_error (request, refusal);
              return TRUE;
            }
          builder = reply_begin (request);
          json_builder_set_member_name (builder, "info");
          build_group_info (builder, info);
          event_end (cli, builder);
          return TRUE;
        }
      if (g_str_equal (cmd, "group-leave") ? natter_messaging_service_group_leave (cli->service, group, &refusal)
                                           : natter_groups_mark_read (groups, group, &refusal))
        reply_ok (request);
      else
        reply_error (request, refusal);
      return TRUE;
    }

  if (g_str_equal (cmd, "group-send"))
    {
      g_autofree char *msg_id = NULL;
      const char *text;

      if (!check_members (object, group_text, error) || !get_group_member (object, &group, error) ||
          !get_string_member (object, "text", TRUE, &text, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      msg_id = natter_messaging_service_group_send_text (cli->service, group, text, &refusal);
      if (msg_id == NULL)
        reply_error (request, refusal);
      else
        {
          JsonBuilder *builder = reply_begin (request);

          add_string (builder, "msgId", msg_id);
          event_end (cli, builder);
        }
      return TRUE;
    }

  if (g_str_equal (cmd, "group-typing"))
    {
      gboolean typing;

      if (!check_members (object, group_typing, error) || !get_group_member (object, &group, error) ||
          !get_boolean_member (object, "typing", TRUE, &typing, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      if (natter_groups_set_typing (groups, group, typing, &refusal))
        reply_ok (request);
      else
        reply_error (request, refusal);
      return TRUE;
    }

  if (g_str_equal (cmd, "group-history"))
    {
      g_autoptr(GPtrArray) history = NULL;
      JsonBuilder *builder;
      guint limit;

      if (!check_members (object, group_limit, error) || !get_group_member (object, &group, error) ||
          !get_limit_member (object, &limit, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      history = natter_messaging_service_group_get_history (cli->service, group);
      builder = reply_begin (request);
      json_builder_set_member_name (builder, "messages");
      json_builder_begin_array (builder);
      for (guint i = history->len > limit ? history->len - limit : 0; i < history->len; i++)
        {
          json_builder_begin_object (builder);
          build_group_message (builder, g_ptr_array_index (history, i));
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      add_boolean (builder, "complete", history->len <= limit);
      event_end (cli, builder);
      return TRUE;
    }

  if (g_str_equal (cmd, "group-receipts"))
    {
      g_auto(GStrv) delivered = NULL;
      g_auto(GStrv) read = NULL;
      const char *msg_id;
      JsonBuilder *builder;
      guint total = 0;

      if (!check_members (object, group_msg, error) || !get_group_member (object, &group, error) ||
          !get_string_member (object, "msgId", TRUE, &msg_id, error))
        return FALSE;
      request = request_new (cli, id, cmd);
      if (!natter_groups_get_receipts (groups, group, msg_id, &delivered, &read, &total))
        {
          g_set_error (&refusal, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "No message %s in %s", msg_id, group);
          reply_error (request, refusal);
          return TRUE;
        }
      builder = reply_begin (request);
      add_strv (builder, "deliveredTo", (const char * const *) delivered);
      add_strv (builder, "readBy", (const char * const *) read);
      add_int (builder, "total", total);
      event_end (cli, builder);
      return TRUE;
    }

  {
    g_autofree char *message = g_strdup_printf ("unknown command “%s”", cmd);

    emit_error (cli, id, "unknown-command", message);
  }
  return TRUE;
}

static void
handle_command (Cli        *cli,
                JsonObject *object,
                JsonNode   *id)
{
  static const char * const peer_only[] = { "peer", NULL };
  static const char * const send_members[] = { "peer", "text", NULL };
  static const char * const contact_members[] = { "peer", "name", NULL };
  static const char * const state_members[] = { "peer", "state", NULL };
  static const char * const typing_members[] = { "peer", "typing", NULL };
  static const char * const presence_members[] = { "presence", NULL };
  static const char * const history_members[] = { "peer", "limit", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *peer = NULL;
  const char *cmd = NULL;
  JsonNode *cmd_node = json_object_get_member (object, "cmd");

  if (cmd_node == NULL)
    {
      emit_error (cli, id, "bad-request", "member “cmd” is missing");
      return;
    }
  if (!JSON_NODE_HOLDS_VALUE (cmd_node) || json_node_get_value_type (cmd_node) != G_TYPE_STRING)
    {
      emit_error (cli, id, "bad-request", "member “cmd” must be a string");
      return;
    }
  cmd = json_node_get_string (cmd_node);

  if (cli->quit_requested)
    {
      emit_error (cli, id, "stopping", "natter-cli is stopping");
      return;
    }

#define CHECK(expr) G_STMT_START { if (!(expr)) goto bad; } G_STMT_END

  if (g_str_equal (cmd, "send"))
    {
      const char *text;

      CHECK (check_members (object, send_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_string_member (object, "text", TRUE, &text, &error));
      natter_messaging_service_send_text_async (cli->service, peer, text, NULL, on_run_sent,
                                                request_new (cli, id, cmd));
    }
  else if (g_str_equal (cmd, "add-contact"))
    {
      const char *name;

      CHECK (check_members (object, contact_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_string_member (object, "name", FALSE, &name, &error));
      natter_messaging_service_add_contact_async (cli->service, peer, name, NULL,
                                                  on_run_contact_added, request_new (cli, id, cmd));
    }
  else if (g_str_equal (cmd, "set-contact-state"))
    {
      const char *state_name;
      NatterContactState state;

      CHECK (check_members (object, state_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_string_member (object, "state", TRUE, &state_name, &error));
      if (!natter_contact_state_from_string (state_name, &state))
        {
          g_set_error (&error, BAD_REQUEST, 0,
                       "member “state” must be \"pending\", \"accepted\" or \"blocked\"");
          goto bad;
        }
      natter_messaging_service_set_contact_state_async (cli->service, peer, state, NULL,
                                                        on_run_contact_state_set,
                                                        request_new (cli, id, cmd));
    }
  else if (g_str_equal (cmd, "mark-read"))
    {
      CHECK (check_members (object, peer_only, &error));
      CHECK (get_peer_member (object, &peer, &error));
      natter_messaging_service_mark_read_async (cli->service, peer, NULL, on_run_marked_read,
                                                request_new (cli, id, cmd));
    }
  else if (g_str_equal (cmd, "typing"))
    {
      g_autoptr(Request) request = NULL;
      gboolean typing;

      CHECK (check_members (object, typing_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_boolean_member (object, "typing", TRUE, &typing, &error));
      request = request_new (cli, id, cmd);
      if (!natter_messaging_service_set_typing (cli->service, peer, typing, &error))
        reply_error (request, error);
      else
        reply_ok (request);
    }
  else if (g_str_equal (cmd, "presence"))
    {
      g_autoptr(Request) request = NULL;
      const char *presence_name;
      NatterPresence presence;

      CHECK (check_members (object, presence_members, &error));
      CHECK (get_string_member (object, "presence", TRUE, &presence_name, &error));
      if (!natter_presence_from_string (presence_name, &presence))
        {
          g_set_error (&error, BAD_REQUEST, 0,
                       "member “presence” must be \"online\", \"away\" or \"offline\"");
          goto bad;
        }
      request = request_new (cli, id, cmd);
      natter_messaging_service_set_presence (cli->service, presence);
      reply_ok (request);
    }
  else if (g_str_equal (cmd, "contacts"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, NULL, &error));
      request = request_new (cli, id, cmd);
      reply_contacts (request);
    }
  else if (g_str_equal (cmd, "nearby"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, NULL, &error));
      request = request_new (cli, id, cmd);
      reply_nearby (request);
    }
  else if (g_str_equal (cmd, "reveal"))
    {
      static const char * const reveal_members[] = { "handle", NULL };
      g_autoptr(Request) request = NULL;
      const char *handle;

      CHECK (check_members (object, reveal_members, &error));
      CHECK (get_string_member (object, "handle", TRUE, &handle, &error));
      request = request_new (cli, id, cmd);
      if (!natter_messaging_service_reveal_to_nearby (cli->service, handle, &error))
        reply_error (request, error);
      else
        reply_ok (request);
    }
  else if (g_str_equal (cmd, "peer"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, peer_only, &error));
      CHECK (get_peer_member (object, &peer, &error));
      request = request_new (cli, id, cmd);
      reply_peer (request, peer);
    }
  else if (g_str_equal (cmd, "history"))
    {
      guint limit;

      CHECK (check_members (object, history_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_limit_member (object, &limit, &error));
      history_load (cli->service, peer, limit, NULL, on_run_history_ready,
                    request_new (cli, id, cmd));
    }
  else if (g_str_equal (cmd, "stats"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, NULL, &error));
      request = request_new (cli, id, cmd);
      reply_stats (request);
    }
  else if (g_str_equal (cmd, "id"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, NULL, &error));
      request = request_new (cli, id, cmd);
      reply_id (request);
    }
  else if (g_str_equal (cmd, "send-file"))
    {
      static const char * const file_members[] = { "peer", "path", NULL };
      static const char * const hook_members[] = { "peer", "path", "name", "hash", NULL };
      gboolean hooks = g_strcmp0 (g_getenv ("NATTER_TEST_HOOKS"), "1") == 0;
      g_autoptr(GFile) file = NULL;
      g_autofree guint8 *hash = NULL;
      const char *path, *name = NULL, *hash_text = NULL;

      CHECK (check_members (object, hooks ? hook_members : file_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_string_member (object, "path", TRUE, &path, &error));
      if (hooks)
        {
          /* Test hooks: the offered name and a wrong hash. */
          CHECK (get_string_member (object, "name", FALSE, &name, &error));
          CHECK (get_string_member (object, "hash", FALSE, &hash_text, &error));
          if (hash_text != NULL)
            {
              gsize len = 0;

              hash = g_base64_decode (hash_text, &len);
              if (len != 32)
                {
                  g_set_error (&error, BAD_REQUEST, 0, "member “hash” must be base64 of 32 bytes");
                  goto bad;
                }
            }
        }
      file = g_file_new_for_commandline_arg (path);
      natter_messaging_service_send_file_full_async (cli->service, peer, file, name, hash, NULL,
                                                     on_run_file_sent, request_new (cli, id, cmd));
    }
  else if (g_str_equal (cmd, "accept-file") || g_str_equal (cmd, "decline-file") ||
           g_str_equal (cmd, "cancel-file"))
    {
      static const char * const accept_members[] = { "transferId", "folder", NULL };
      static const char * const transfer_members[] = { "transferId", NULL };
      g_autoptr(Request) request = NULL;
      const char *transfer_id, *folder = NULL;
      gboolean done;

      CHECK (check_members (object, g_str_equal (cmd, "accept-file") ? accept_members : transfer_members,
                            &error));
      CHECK (get_string_member (object, "transferId", TRUE, &transfer_id, &error));
      if (g_str_equal (cmd, "accept-file"))
        CHECK (get_string_member (object, "folder", FALSE, &folder, &error));
      request = request_new (cli, id, cmd);
      if (g_str_equal (cmd, "accept-file"))
        {
          g_autoptr(GFile) dir = folder != NULL ? g_file_new_for_commandline_arg (folder) : NULL;

          done = natter_messaging_service_accept_file (cli->service, transfer_id, dir, &error);
        }
      else if (g_str_equal (cmd, "decline-file"))
        done = natter_messaging_service_decline_file (cli->service, transfer_id, &error);
      else
        done = natter_messaging_service_cancel_file (cli->service, transfer_id, &error);
      if (!done)
        reply_error (request, error);
      else
        reply_ok (request);
    }
  else if (g_str_equal (cmd, "transfers"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, NULL, &error));
      request = request_new (cli, id, cmd);
      reply_transfers (request);
    }
  else if (g_str_equal (cmd, "send-raw-bulk") && g_strcmp0 (g_getenv ("NATTER_TEST_HOOKS"), "1") == 0)
    {
      /* Test hook: puts "data" (base64) on bulk stream "stream" of the
       * connection to "peer", unchanged: forged file data frames. */
      static const char * const bulk_members[] = { "peer", "stream", "data", NULL };
      g_autoptr(Request) request = NULL;
      g_autoptr(GBytes) frame = NULL;
      JsonNode *stream_node = json_object_get_member (object, "stream");
      const char *text;
      guchar *raw;
      gsize len = 0;

      CHECK (check_members (object, bulk_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_string_member (object, "data", TRUE, &text, &error));
      if (stream_node == NULL || !JSON_NODE_HOLDS_VALUE (stream_node) ||
          json_node_get_value_type (stream_node) != G_TYPE_INT64)
        {
          g_set_error (&error, BAD_REQUEST, 0, "member “stream” must be an integer");
          goto bad;
        }
      raw = g_base64_decode (text, &len);
      frame = g_bytes_new_take (raw, len);
      request = request_new (cli, id, cmd);
      if (!natter_messaging_service_send_raw_bulk (cli->service, peer,
                                                   (guint) CLAMP (json_node_get_int (stream_node), 0, 65535),
                                                   frame, &error))
        reply_error (request, error);
      else
        reply_ok (request);
    }
  else if (g_str_equal (cmd, "send-raw") && g_strcmp0 (g_getenv ("NATTER_TEST_HOOKS"), "1") == 0)
    {
      /* Test hook (docs/cli.md, "Test hooks"): puts "wire" on the
       * connection to "peer" as one frame, unchanged, so that tests can
       * offer forged or tampered messages to a relay.  Without
       * NATTER_TEST_HOOKS=1 it is an unknown command. */
      static const char * const raw_members[] = { "peer", "wire", NULL };
      g_autoptr(Request) request = NULL;
      g_autoptr(GBytes) wire = NULL;
      const char *text;

      CHECK (check_members (object, raw_members, &error));
      CHECK (get_peer_member (object, &peer, &error));
      CHECK (get_string_member (object, "wire", TRUE, &text, &error));
      request = request_new (cli, id, cmd);
      wire = g_bytes_new (text, strlen (text));
      if (!natter_messaging_service_send_raw_frame (cli->service, peer, wire, &error))
        reply_error (request, error);
      else
        reply_ok (request);
    }
  else if (g_str_has_prefix (cmd, "group"))
    {
      if (!handle_group_command (cli, cmd, object, id, &error))
        goto bad;
    }
  else if (g_str_equal (cmd, "quit"))
    {
      g_autoptr(Request) request = NULL;

      CHECK (check_members (object, NULL, &error));
      request = request_new (cli, id, cmd);
      reply_ok (request);
      cli->quit_requested = TRUE;
      if (cli->input_cancellable != NULL)
        g_cancellable_cancel (cli->input_cancellable);
      /* request_free() stops once nothing else is pending. */
    }
  else
    {
      g_autofree char *message = g_strdup_printf ("unknown command “%s”", cmd);

      emit_error (cli, id, "unknown-command", message);
    }
  return;

#undef CHECK

bad:
  emit_error (cli, id, error->domain == BAD_REQUEST ? "bad-request" : error_code_name (error),
              error->message);
}

static void
handle_line (Cli          *cli,
             const guint8 *data,
             gsize         len)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) error = NULL;
  const char *problem = NULL;
  guint root_members = 0;
  JsonObject *object;
  gsize start = 0;

  if (len > 0 && data[len - 1] == '\r')
    len--;
  while (start < len && g_ascii_isspace (data[start]))
    start++;
  if (start == len)
    return;   /* blank lines are ignored */

  if (!g_utf8_validate_len ((const char *) data, len, NULL))
    {
      emit_error (cli, NULL, "bad-json", "the line is not valid UTF-8");
      return;
    }
  /* json-glib recurses without bound and keeps the last of two members of
   * one name: scan first. */
  if (!natter_json_scan_object (data, len, CLI_COMMAND_MAX_DEPTH, &root_members, &problem))
    {
      g_autofree char *message = g_strdup_printf ("not a JSON object: %s", problem);

      emit_error (cli, NULL, "bad-json", message);
      return;
    }

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, (const char *) data, (gssize) len, &error))
    {
      emit_error (cli, NULL, "bad-json", error->message);
      return;
    }
  if (json_parser_get_root (parser) == NULL || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      emit_error (cli, NULL, "bad-json", "the line is not a JSON object");
      return;
    }
  object = json_node_get_object (json_parser_get_root (parser));
  if (json_object_get_size (object) != root_members)
    {
      emit_error (cli, NULL, "bad-json", "the object has two members of one name");
      return;
    }

  handle_command (cli, object, json_object_get_member (object, "id"));
}

static void
feed_input (Cli          *cli,
            const guint8 *data,
            gsize         len)
{
  while (len > 0 && !cli->quit_requested)
    {
      const guint8 *newline = memchr (data, '\n', len);
      gsize chunk = newline != NULL ? (gsize) (newline - data) : len;

      if (!cli->discarding)
        {
          if (cli->line->len + chunk > CLI_LINE_MAX)
            {
              g_autofree char *message =
                g_strdup_printf ("a command line is longer than %d bytes; it was ignored", CLI_LINE_MAX);

              cli->discarding = TRUE;
              g_byte_array_set_size (cli->line, 0);
              emit_error (cli, NULL, "line-too-long", message);
            }
          else
            {
              g_byte_array_append (cli->line, data, (guint) chunk);
            }
        }

      if (newline == NULL)
        break;

      if (!cli->discarding)
        handle_line (cli, cli->line->data, cli->line->len);
      cli->discarding = FALSE;
      g_byte_array_set_size (cli->line, 0);
      data += chunk + 1;
      len -= chunk + 1;
    }
}

static void read_input (Cli *cli);

static void
on_input_read (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  gsize len;
  const guint8 *data;

  cli->reading = FALSE;
  bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result, &error);
  if (bytes == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          emit_error (cli, NULL, "failed", error->message);
          cli_request_quit (cli);
        }
      return;
    }

  data = g_bytes_get_data (bytes, &len);
  if (len == 0)
    {
      /* End of input: a last line without a newline still counts. */
      if (cli->line->len > 0 && !cli->discarding && !cli->quit_requested)
        handle_line (cli, cli->line->data, cli->line->len);
      g_byte_array_set_size (cli->line, 0);
      cli_request_quit (cli);
      return;
    }

  feed_input (cli, data, len);
  if (!cli->quit_requested && cli->phase == PHASE_STARTED)
    read_input (cli);
}

static void
read_input (Cli *cli)
{
  cli->reading = TRUE;
  g_input_stream_read_bytes_async (cli->input, CLI_READ_CHUNK, G_PRIORITY_DEFAULT,
                                   cli->input_cancellable, on_input_read, cli);
}

/* The service runs: do the command. */
static void
command_started (Cli *cli)
{
  switch (cli->command)
    {
    case COMMAND_ADD_CONTACT:
      natter_messaging_service_add_contact_async (cli->service, cli->peer, cli->name,
                                                  cli->cancellable, on_contact_added_once, cli);
      break;
    case COMMAND_CONTACTS:
      print_contacts (cli);
      break;
    case COMMAND_SEND:
      natter_messaging_service_send_text_async (cli->service, cli->peer, cli->text,
                                                cli->cancellable, on_sent_once, cli);
      break;
    case COMMAND_HISTORY:
      history_load (cli->service, cli->peer, (guint) cli->limit, cli->cancellable,
                    on_history_ready_once, cli);
      break;
    case COMMAND_SEND_FILE:
      {
        g_autoptr(GFile) file = g_file_new_for_commandline_arg (cli->path);

        natter_messaging_service_send_file_async (cli->service, cli->peer, file, cli->cancellable,
                                                  on_file_sent_once, cli);
      }
      break;
    case COMMAND_RUN:
      connect_group_events (cli);
      emit_ready (cli);
      cli->input = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      cli->input_cancellable = g_cancellable_new ();
      cli->line = g_byte_array_new ();
      read_input (cli);
      break;
    case COMMAND_SERVE:
      connect_group_events (cli);
      emit_ready (cli);
      break;
    case COMMAND_ID:
    case COMMAND_INSPECT_MESSAGE:
    default:
      g_assert_not_reached ();
    }
}

/* inspect-message */

static char *
join_or_none (GStrv values)
{
  if (values == NULL || values[0] == NULL)
    return g_strdup ("(none)");
  return g_strjoinv (", ", values);
}

static int
inspect_message (Cli        *cli,
                 const char *path)
{
  g_autofree guint8 *data = g_malloc (NATTER_MESSAGE_MAX_SIZE + 1);
  g_autoptr(NatterMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) encoded = NULL;
  gboolean from_stdin = g_str_equal (path, "-");
  FILE *file;
  gsize len = 0;

  file = from_stdin ? stdin : fopen (path, "rb");
  if (file == NULL)
    {
      int saved_errno = errno;

      g_printerr ("natter-cli: %s: %s\n", path, g_strerror (saved_errno));
      return CLI_EXIT_ERROR;
    }
  /* One byte over the limit is enough for the decoder to say TOO_LARGE. */
  while (len < NATTER_MESSAGE_MAX_SIZE + 1)
    {
      size_t n = fread (data + len, 1, NATTER_MESSAGE_MAX_SIZE + 1 - len, file);

      if (n == 0)
        break;
      len += n;
    }
  if (ferror (file))
    {
      int saved_errno = errno;

      g_printerr ("natter-cli: %s: %s\n", path, g_strerror (saved_errno));
      if (!from_stdin)
        fclose (file);
      return CLI_EXIT_ERROR;
    }
  if (!from_stdin)
    fclose (file);

  message = natter_message_decode_data (data, len, NATTER_MESSAGE_DECODE_VERIFY, &error);
  if (message == NULL)
    {
      const char *code = error->domain == NATTER_MESSAGE_ERROR
                         ? natter_message_error_code_to_string (error->code) : NULL;

      if (code == NULL)
        code = "ERROR";
      g_printerr ("error: %s: %s\n", code, error->message);
      if (cli->json)
        {
          JsonBuilder *builder = json_builder_new ();
          g_autoptr(JsonNode) root = NULL;

          json_builder_begin_object (builder);
          add_boolean (builder, "valid", FALSE);
          add_string (builder, "code", code);
          add_string (builder, "message", error->message);
          json_builder_end_object (builder);
          root = json_builder_get_root (builder);
          print_json_node (cli, root, FALSE);
          g_object_unref (builder);
        }
      return CLI_EXIT_INVALID_MESSAGE;
    }

  /* What we print is the message as Natter encodes it again. */
  encoded = natter_message_encode (message, &error);
  if (encoded == NULL)
    {
      g_printerr ("natter-cli: the message decoded but does not encode again: %s\n",
                  error->message);
      return CLI_EXIT_ERROR;
    }

  if (cli->json)
    {
      g_autofree char *text = g_strndup (g_bytes_get_data (encoded, NULL), g_bytes_get_size (encoded));

      write_line (cli, text);
    }
  else
    {
      g_autoptr(JsonParser) parser = json_parser_new_immutable ();
      g_autofree char *to = join_or_none (message->to);
      g_autofree char *route = join_or_none (message->route);
      g_autofree char *time = format_time_utc (message->timestamp);
      g_autofree char *summary = NULL;

      summary = g_strdup_printf ("valid %s, signature verified\n"
                                 "id:        %s\n"
                                 "from:      %s\n"
                                 "to:        %s\n"
                                 "group:     %s\n"
                                 "route:     %s (hops %u)\n"
                                 "timestamp: %" G_GINT64_FORMAT " (%s)\n"
                                 "sequence:  %" G_GUINT64_FORMAT "\n"
                                 "ttl:       %" G_GINT64_FORMAT " ms\n"
                                 "encrypted: %s\n",
                                 natter_message_type_to_string (message->type),
                                 message->id, message->from, to,
                                 message->group != NULL ? message->group : "(none)",
                                 route, message->hops,
                                 message->timestamp, time,
                                 message->sequence,
                                 message->ttl,
                                 message->encrypted ? "yes" : "no");
      write_line (cli, summary);

      if (json_parser_load_from_data (parser, g_bytes_get_data (encoded, NULL),
                                      (gssize) g_bytes_get_size (encoded), NULL))
        print_json_node (cli, json_parser_get_root (parser), TRUE);
    }
  return cli->output_broken ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

/* Options */

static gboolean
valid_host_port (const char *text)
{
  const char *colon = text != NULL ? strrchr (text, ':') : NULL;
  guint64 port;
  char *end = NULL;

  if (colon == NULL || colon == text || colon[1] == '\0')
    return FALSE;
  port = g_ascii_strtoull (colon + 1, &end, 10);
  return *end == '\0' && port >= 1 && port <= 65535;
}

static gboolean
check_options (Cli     *cli,
               GError **error)
{
#define USAGE(...) G_STMT_START { g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, __VA_ARGS__); return FALSE; } G_STMT_END

  if (cli->name != NULL && cli->command != COMMAND_ADD_CONTACT)
    USAGE ("--name is only for add-contact");
  if (cli->wait != NULL && cli->command != COMMAND_SEND)
    USAGE ("--wait is only for send");
  if (cli->timeout >= 0 && cli->command != COMMAND_SEND && cli->command != COMMAND_SEND_FILE)
    USAGE ("--timeout is only for send and send-file");
  if (cli->limit >= 0 && cli->command != COMMAND_HISTORY)
    USAGE ("--limit is only for history");
  /* The connection options are checked for every command, so that a
   * script can pass the same ones to all, but only send, run and serve use
   * them; inspect-message ignores --profile too. */
  for (guint i = 0; cli->rendezvous != NULL && cli->rendezvous[i] != NULL; i++)
    {
      g_autoptr(GUri) uri = g_uri_parse (cli->rendezvous[i], G_URI_FLAGS_NONE, NULL);

      if (uri == NULL ||
          (g_strcmp0 (g_uri_get_scheme (uri), "ws") != 0 &&
           g_strcmp0 (g_uri_get_scheme (uri), "wss") != 0) ||
          g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
        USAGE ("--rendezvous: “%s” is not a ws:// or wss:// URL", cli->rendezvous[i]);
    }
  if (cli->stun != NULL && !valid_host_port (cli->stun))
    USAGE ("--stun: “%s” is not HOST:PORT", cli->stun);
  for (guint i = 0; cli->turn != NULL && cli->turn[i] != NULL; i++)
    {
      const char *at = strrchr (cli->turn[i], '@');

      if (at == NULL || at == cli->turn[i] || strchr (cli->turn[i], ':') >= at ||
          !valid_host_port (at + 1))
        USAGE ("--turn: “%s” is not USER:PASSWORD@HOST:PORT", cli->turn[i]);
    }
  if (cli->interfaces != NULL)
    {
      g_auto(GStrv) names = g_strsplit (cli->interfaces, ",", -1);

      if (names[0] == NULL)
        USAGE ("--interfaces: name at least one interface");
      for (guint i = 0; names[i] != NULL; i++)
        if (names[i][0] == '\0' || strlen (names[i]) > 15 || strchr (names[i], '/') != NULL)
          USAGE ("--interfaces: “%s” is not an interface name", names[i]);
    }
  if (cli->relay_quota_text != NULL)
    {
      guint64 quota;

      if (!g_ascii_string_to_unsigned (cli->relay_quota_text, 10, 0, G_MAXINT64, &quota, NULL))
        USAGE ("--relay-quota: “%s” is not a number of bytes", cli->relay_quota_text);
      cli->relay_quota = (gint64) quota;
    }
  if (cli->max_file_size_text != NULL)
    {
      guint64 size;

      if (!g_ascii_string_to_unsigned (cli->max_file_size_text, 10, 0, G_MAXINT64, &size, NULL))
        USAGE ("--max-file-size: “%s” is not a number of bytes", cli->max_file_size_text);
      cli->max_file_size = (gint64) size;
    }
  if (cli->download_folder != NULL && !g_path_is_absolute (cli->download_folder))
    {
      g_autofree char *cwd = g_get_current_dir ();
      char *absolute = g_build_filename (cwd, cli->download_folder, NULL);

      g_free (cli->download_folder);
      cli->download_folder = absolute;
    }
  if (cli->command == COMMAND_SEND_FILE && cli->timeout == 0)
    USAGE ("--timeout must be more than 0 seconds");
  if (cli->ttl >= 0 && (cli->ttl < 1 || cli->ttl * 1000.0 > (double) NATTER_MESSAGE_MAX_TTL))
    USAGE ("--ttl must be between 1 and %" G_GINT64_FORMAT " seconds",
           NATTER_MESSAGE_MAX_TTL / 1000);

  if (cli->command == COMMAND_SEND)
    {
      if (cli->wait == NULL || g_str_equal (cli->wait, "queued"))
        cli->wait_state = NATTER_STORE_MESSAGE_QUEUED;
      else if (g_str_equal (cli->wait, "sent"))
        cli->wait_state = NATTER_STORE_MESSAGE_SENT;
      else if (g_str_equal (cli->wait, "delivered"))
        cli->wait_state = NATTER_STORE_MESSAGE_DELIVERED;
      else if (g_str_equal (cli->wait, "read"))
        cli->wait_state = NATTER_STORE_MESSAGE_READ;
      else
        USAGE ("--wait must be queued, sent, delivered or read");
      if (cli->timeout == 0)
        USAGE ("--timeout must be more than 0 seconds");
      if (cli->timeout < 0)
        cli->timeout = CLI_DEFAULT_TIMEOUT_S;
      if (cli->timeout > 30 * 24 * 3600.0)
        USAGE ("--timeout is at most 30 days");
    }
  if (cli->command == COMMAND_HISTORY)
    {
      if (cli->limit < 0)
        cli->limit = CLI_DEFAULT_LIMIT;
      else if (cli->limit < 1 || cli->limit > CLI_MAX_LIMIT)
        USAGE ("--limit must be between 1 and %d", CLI_MAX_LIMIT);
    }

  for (guint i = 1; cli->args[i] != NULL; i++)
    if (cli->command != COMMAND_INSPECT_MESSAGE && !g_utf8_validate (cli->args[i], -1, NULL))
      USAGE ("argument %u is not valid UTF-8", i);
  if (cli->name != NULL && !g_utf8_validate (cli->name, -1, NULL))
    USAGE ("--name is not valid UTF-8");

  if (cli->command == COMMAND_ADD_CONTACT || cli->command == COMMAND_SEND ||
      cli->command == COMMAND_HISTORY || cli->command == COMMAND_SEND_FILE)
    {
      g_autoptr(GError) local_error = NULL;

      cli->peer = natter_peer_id_normalize (cli->args[1], &local_error);
      if (cli->peer == NULL)
        USAGE ("“%s” is not a peer ID: %s", cli->args[1], local_error->message);
    }
  if (cli->command == COMMAND_SEND)
    cli->text = g_strdup (cli->args[2]);
  if (cli->command == COMMAND_SEND_FILE)
    cli->path = g_strdup (cli->args[2]);

  if (cli->profile_name != NULL)
    {
      g_autoptr(GError) local_error = NULL;
      g_autofree char *directory = natter_profile_resolve_directory (cli->profile_name, &local_error);

      if (directory == NULL)
        USAGE ("--profile: %s", local_error->message);
    }

#undef USAGE
  return TRUE;
}

static void
cli_clear (Cli *cli)
{
  if (cli->service != NULL)
    g_signal_handlers_disconnect_by_data (cli->service, cli);
  g_clear_handle_id (&cli->timeout_id, g_source_remove);
  g_clear_handle_id (&cli->sigint_id, g_source_remove);
  g_clear_handle_id (&cli->sigterm_id, g_source_remove);
  g_clear_object (&cli->service);
  g_clear_object (&cli->profile);
  g_clear_object (&cli->input);
  g_clear_object (&cli->input_cancellable);
  g_clear_object (&cli->cancellable);
  g_clear_pointer (&cli->line, g_byte_array_unref);
  g_clear_pointer (&cli->states, g_hash_table_unref);
  g_clear_pointer (&cli->loop, g_main_loop_unref);
  g_free (cli->msg_id);
  g_free (cli->last_via);
  g_free (cli->peer);
  g_free (cli->text);
  g_free (cli->path);
  g_free (cli->transfer_id);
  g_free (cli->download_folder);
  g_free (cli->max_file_size_text);
  g_free (cli->profile_name);
  g_strfreev (cli->rendezvous);
  g_free (cli->stun);
  g_strfreev (cli->turn);
  g_free (cli->interfaces);
  g_free (cli->relay_quota_text);
  g_free (cli->name);
  g_free (cli->wait);
  g_strfreev (cli->args);
}

int
main (int   argc,
      char *argv[])
{
  Cli cli = {
    .lan = -1,
    .ttl = -1,
    .relay_quota = -1,
    .timeout = -1,
    .limit = -1,
    .max_file_size = -1,
  };
  const GOptionEntry entries[] = {
    { "profile", 'p', 0, G_OPTION_ARG_STRING, &cli.profile_name,
      "Use the profile NAME, or the folder PATH when it contains a slash", "NAME|PATH" },
    { "rendezvous", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cli.rendezvous,
      "Signal through this natter-rendezvous server (repeatable)", "ws://HOST:PORT/v1" },
    { "stun", 0, 0, G_OPTION_ARG_STRING, &cli.stun,
      "STUN server", "HOST:PORT" },
    { "turn", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cli.turn,
      "TURN server (repeatable)", "USER:PASS@HOST:PORT" },
    { "lan", 0, 0, G_OPTION_ARG_NONE, &cli.lan,
      "Find contacts on the local network (the default)", NULL },
    { "no-lan", 0, G_OPTION_FLAG_REVERSE, G_OPTION_ARG_NONE, &cli.lan,
      "Do not use LAN discovery", NULL },
    { "interfaces", 0, 0, G_OPTION_ARG_STRING, &cli.interfaces,
      "Use only these network interfaces (comma separated)", "IF1,IF2" },
    { "no-relay", 0, 0, G_OPTION_ARG_NONE, &cli.no_relay,
      "Do not relay or store messages for contacts", NULL },
    { "ttl", 0, 0, G_OPTION_ARG_DOUBLE, &cli.ttl,
      "Seconds a message sent now may take to be delivered (default 7 days)", "S" },
    { "relay-quota", 0, 0, G_OPTION_ARG_STRING, &cli.relay_quota_text,
      "Bytes held for each offline contact when relaying (default 8 MiB)", "BYTES" },
    { "discoverable", 0, 0, G_OPTION_ARG_NONE, &cli.discoverable,
      "Let strangers on the local network list us as someone nearby (never our ID)", NULL },
    { "auto-accept", 0, 0, G_OPTION_ARG_NONE, &cli.auto_accept,
      "Accept every file offered by a contact", NULL },
    { "download-folder", 0, 0, G_OPTION_ARG_FILENAME, &cli.download_folder,
      "Where received files go (default: the XDG download folder)", "DIR" },
    { "max-file-size", 0, 0, G_OPTION_ARG_STRING, &cli.max_file_size_text,
      "Decline offered files larger than this (default: no limit)", "BYTES" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &cli.json,
      "Print JSON (id, add-contact, contacts, send, history, inspect-message)", NULL },
    { "name", 0, 0, G_OPTION_ARG_STRING, &cli.name,
      "add-contact: the contact's display name", "NAME" },
    { "wait", 0, 0, G_OPTION_ARG_STRING, &cli.wait,
      "send: wait until the message is sent, delivered or read", "STATE" },
    { "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &cli.timeout,
      "send: seconds to wait for that state (default 60)", "S" },
    { "limit", 0, 0, G_OPTION_ARG_INT, &cli.limit,
      "history: the newest N messages (default 50)", "N" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &cli.version,
      "Print the version and exit", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &cli.args, NULL, NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) summary = NULL;
  gboolean found = FALSE;
  guint n_args;
  int exit_code;

  setlocale (LC_ALL, "");
  g_set_prgname ("natter-cli");
  /* A reader that goes away is an error to handle, not a fatal signal. */
  signal (SIGPIPE, SIG_IGN);

  summary = g_string_new ("Natter's messaging service without a window.\n\nCommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (summary, "  %s\n", commands[i].usage);
  g_string_append (summary,
                   "\n"
                   "run takes JSON commands on stdin and prints every event of the\n"
                   "service as a JSON line; serve relays and stores for contacts until\n"
                   "SIGINT or SIGTERM.  See docs/cli.md.");

  context = g_option_context_new ("COMMAND [ARGUMENT…]");
  g_option_context_set_summary (context, summary->str);
  g_option_context_set_description (context,
    "Exit status: 0 success, 1 error, 2 usage, 3 timed out waiting (send),\n"
    "4 message failed (send), 5 profile locked, 6 invalid message (inspect-message).");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("natter-cli: %s\n", error->message);
      cli_clear (&cli);
      return CLI_EXIT_USAGE;
    }
  if (cli.version)
    {
      g_print ("natter-cli %s\n", PACKAGE_VERSION);
      cli_clear (&cli);
      return CLI_EXIT_OK;
    }
  if (cli.args == NULL || cli.args[0] == NULL)
    {
      g_printerr ("natter-cli: no command given; see natter-cli --help\n");
      cli_clear (&cli);
      return CLI_EXIT_USAGE;
    }

  n_args = g_strv_length (cli.args) - 1;
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      if (g_str_equal (cli.args[0], commands[i].name))
        {
          found = TRUE;
          cli.command = commands[i].command;
          if (n_args != commands[i].n_args)
            {
              g_printerr ("natter-cli: usage: natter-cli [OPTION…] %s\n", commands[i].usage);
              cli_clear (&cli);
              return CLI_EXIT_USAGE;
            }
        }
    }
  if (!found)
    {
      g_printerr ("natter-cli: unknown command “%s”; see natter-cli --help\n", cli.args[0]);
      cli_clear (&cli);
      return CLI_EXIT_USAGE;
    }
  if (!check_options (&cli, &error))
    {
      g_printerr ("natter-cli: %s\n", error->message);
      cli_clear (&cli);
      return CLI_EXIT_USAGE;
    }

  /* Standard output carries only results and events. */
  g_log_writer_default_set_use_stderr (TRUE);

  if (cli.command == COMMAND_INSPECT_MESSAGE)
    {
      exit_code = inspect_message (&cli, cli.args[1]);
      cli_clear (&cli);
      return exit_code;
    }

  cli.loop = g_main_loop_new (NULL, FALSE);
  cli.cancellable = g_cancellable_new ();
  cli.states = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  cli.sigint_id = g_unix_signal_add (SIGINT, on_unix_signal, &cli);
  cli.sigterm_id = g_unix_signal_add (SIGTERM, on_unix_signal, &cli);

  cli.phase = PHASE_OPENING;
  natter_profile_open_async (cli.profile_name, cli.cancellable, on_profile_opened, &cli);
  g_main_loop_run (cli.loop);

  /* Let a cancelled read of stdin finish before its stream goes. */
  while (cli.reading)
    g_main_context_iteration (NULL, TRUE);

  exit_code = cli.exit_code;
  if (cli.output_broken && exit_code == CLI_EXIT_OK)
    exit_code = CLI_EXIT_ERROR;
  cli_clear (&cli);
  return exit_code;
}
