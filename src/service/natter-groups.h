/* natter-groups.h: group conversations of the messaging service
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* NatterGroups is owned by NatterMessagingService (one per service, on its
 * main context) and does everything group-shaped: signed membership
 * operations, the group key and its rotation, causal delivery with one
 * deterministic order, spanning-tree distribution with repair, and
 * anti-entropy sync.  The design is in docs/architecture.md ("Groups"), the
 * frames in docs/protocol.md.  Get it with
 * natter_messaging_service_get_groups(); the service also wraps the main
 * calls. */

#define NATTER_GROUPS_DEFAULT_FANOUT   4
#define NATTER_GROUPS_MAX_FANOUT       16
#define NATTER_GROUPS_MAX_MEMBERS      256
#define NATTER_GROUPS_MAX_NAME         128

/* One entry of a group's history, in the order every member shows it. */
typedef struct
{
  char    *msg_id;
  char    *group_id;
  char    *sender;
  char    *kind;        /* "text", or "event" for a membership operation */
  char    *text;        /* the text, or the event ("invite nX…") */
  gint64   timestamp;
  guint64  counter;     /* the sender's counter in the group's vector clock */
  gboolean outgoing;
} NatterGroupMessage;

#define NATTER_TYPE_GROUP_MESSAGE (natter_group_message_get_type ())
GType               natter_group_message_get_type (void) G_GNUC_CONST;
NatterGroupMessage *natter_group_message_copy     (const NatterGroupMessage *message);
void                natter_group_message_free     (NatterGroupMessage       *message);

typedef struct
{
  char    *id;
  char    *name;
  char    *admin;
  GStrv    members;     /* sorted, ourselves included while we are a member */
  guint    fanout;
  char    *key_id;      /* the current group key's ID */
  gboolean syncing;     /* somebody has messages we lack, or some wait */
  gboolean removed;     /* we were removed, or left */
  guint    n_messages;
} NatterGroupInfo;

NatterGroupInfo *natter_group_info_copy (const NatterGroupInfo *info);
void             natter_group_info_free (NatterGroupInfo       *info);

/* Counters for tests, the benchmark and diagnostics. */
typedef struct
{
  guint64 sent;               /* own stream messages (texts and operations) */
  guint64 own_copies;         /* frames of own stream messages handed to connections */
  guint64 own_bytes;          /* their bytes */
  guint64 forwarded;          /* frames of others' messages sent down the tree */
  guint64 forwarded_bytes;
  guint64 delivered;          /* stream messages delivered in causal order */
  guint64 duplicates;
  guint64 rejected;           /* bad signature, not a member, unknown group… */
  guint64 ops_rejected;       /* valid frames whose operation is not allowed */
  guint64 repairs;            /* subtrees taken over from a missing forwarder */
  guint64 pulls_sent;
  guint64 pulled;             /* messages received through sync */
  guint64 served;             /* messages sent to a member that pulled them */
  guint64 control_sent;       /* acks, summaries, pulls, keys, pings… */
  guint64 control_bytes;
  guint64 dropped_by_faults;  /* test fault injection */
} NatterGroupsStats;

#define NATTER_TYPE_GROUPS (natter_groups_get_type ())
G_DECLARE_FINAL_TYPE (NatterGroups, natter_groups, NATTER, GROUPS, GObject)

/* Creates a group with us as admin and @members (peer IDs, accepted
 * contacts, ourselves excluded) invited.  @fanout 0 is the default.
 * Returns the group ID. */
char      *natter_groups_create        (NatterGroups        *self,
                                        const char          *name,
                                        const char * const  *members,
                                        guint                fanout,
                                        GError             **error);
/* Admin only. */
gboolean   natter_groups_invite        (NatterGroups        *self,
                                        const char          *group_id,
                                        const char          *peer_id,
                                        GError             **error);
/* Admin only; rotates the group key. */
gboolean   natter_groups_remove        (NatterGroups        *self,
                                        const char          *group_id,
                                        const char          *peer_id,
                                        GError             **error);
gboolean   natter_groups_set_admin     (NatterGroups        *self,
                                        const char          *group_id,
                                        const char          *peer_id,
                                        GError             **error);
/* Any member but the admin (who hands over first). */
gboolean   natter_groups_leave         (NatterGroups        *self,
                                        const char          *group_id,
                                        GError             **error);
/* Returns the message ID; the message is in the history at once. */
char      *natter_groups_send_text     (NatterGroups        *self,
                                        const char          *group_id,
                                        const char          *text,
                                        GError             **error);
gboolean   natter_groups_mark_read     (NatterGroups        *self,
                                        const char          *group_id,
                                        GError             **error);
gboolean   natter_groups_set_typing    (NatterGroups        *self,
                                        const char          *group_id,
                                        gboolean             typing,
                                        GError             **error);

/* NatterGroupInfo, by group ID. */
GPtrArray       *natter_groups_list        (NatterGroups *self);
NatterGroupInfo *natter_groups_get_info    (NatterGroups *self,
                                            const char   *group_id);
/* NatterGroupMessage copies in display order (causal; concurrent messages
 * by the sum of their vector clock, then timestamp, then sender ID). */
GPtrArray       *natter_groups_get_history (NatterGroups *self,
                                            const char   *group_id);
/* Who has one of our messages ("delivered to N of M") and who read it;
 * @total is M, the other members.  FALSE for an unknown message. */
gboolean         natter_groups_get_receipts (NatterGroups  *self,
                                             const char    *group_id,
                                             const char    *msg_id,
                                             GStrv         *delivered_to,
                                             GStrv         *read_by,
                                             guint         *total);
/* Who is typing in the group now. */
GStrv            natter_groups_get_typing  (NatterGroups *self,
                                            const char   *group_id);
void             natter_groups_get_stats   (NatterGroups      *self,
                                            NatterGroupsStats *stats);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterGroupMessage, natter_group_message_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterGroupInfo, natter_group_info_free)

/* Signals (main context):
 * "group-changed" (const char *group_id)
 *     joined, created, membership, admin or key changed, or we were removed.
 * "message-received" (NatterGroupMessage *message)
 *     a message of another member was delivered (causal order).
 * "receipts-changed" (const char *group_id, const char *msg_id,
 *                     guint delivered, guint read, guint total)
 * "typing-changed" (const char *group_id, const char *peer_id, gboolean typing)
 * "sync-changed" (const char *group_id, gboolean syncing)
 * "operation-rejected" (const char *group_id, const char *author,
 *                       const char *reason)
 */

/* Test hooks (also natter-cli's test commands). */
/* Every group frame we send is dropped with @drop_rate (0..1) and delayed
 * by a random time between @delay_min_ms and @delay_max_ms. */
void       natter_groups_set_faults    (NatterGroups *self,
                                        double        drop_rate,
                                        guint         delay_min_ms,
                                        guint         delay_max_ms);
/* Drops every group frame to and from @peer_id while @blocked: a partition. */
void       natter_groups_set_blocked   (NatterGroups *self,
                                        const char   *peer_id,
                                        gboolean      blocked);
/* Builds, signs and sends a membership operation as if we were admin,
 * without checking: for tests that forge one.  @op is "invite", "remove",
 * "admin" or "rotate". */
char      *natter_groups_forge_op      (NatterGroups *self,
                                        const char   *group_id,
                                        const char   *op,
                                        const char   *peer_id,
                                        GError      **error);
/* The signed wire form of a message we hold, and a key we hold. */
GBytes    *natter_groups_dup_wire      (NatterGroups *self,
                                        const char   *group_id,
                                        const char   *msg_id);
GBytes    *natter_groups_dup_key       (NatterGroups *self,
                                        const char   *group_id,
                                        const char   *key_id);
/* The other members in the tree order of a stream message we hold, as
 * this member reads its `tree`; NULL when it cannot. */
GStrv      natter_groups_dup_tree      (NatterGroups *self,
                                        const char   *group_id,
                                        const char   *msg_id);

G_END_DECLS
