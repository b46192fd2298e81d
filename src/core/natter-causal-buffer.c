/* natter-causal-buffer.c: causal delivery of messages in a group
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "natter-causal-buffer.h"

/* How it stays O(1) amortised per message
 *
 * A held message is parked on exactly one dependency it still lacks: the
 * key (k, n) meaning "local[k] must reach n" (n = VC[k] for k != sender,
 * n = VC[sender] - 1 for the sender).  Parked messages live in wait lists
 * per key.  The local clock only ever grows by one step at a time, so when
 * local[k] becomes n, the list of (k, n) is the only one that can have
 * changed: it is taken out and each of its messages either becomes ready or
 * parks on its next missing dependency.  Nothing else is ever looked at.
 *
 * The same key (k, n) also names message n of member k, so one cell holds
 * both the held message (k, n), if any, for duplicate checks, and the list
 * of messages waiting for it.  Delivering (k, n) costs a single lookup,
 * which both releases the message and wakes its waiters.
 *
 * A satisfied dependency stays satisfied, so each message keeps a cursor
 * into its clock and resumes the scan there: over its whole life a message
 * costs O(vector length) plus one cell lookup per park, never a scan of
 * the buffer.  Messages that can be delivered on arrival are handed to the
 * callback straight from the caller's array and allocate nothing.
 *
 * Where cells live.  Every live key (k, n) has n > local[k], and the keys
 * of one member crowd just above local[k].  So each member has a ring of
 * cells indexed by n modulo its size, covering (local[k], local[k] + size]:
 * no hashing, dense memory, and a burst of deliveries from one member walks
 * it in order.  A ring only grows while it stays dense (at most
 * RING_SPARSENESS cells per live key), so a clock naming a far-future
 * counter cannot make us allocate for the whole gap; such keys go to an
 * overflow hash table instead, which is empty in normal operation.
 *
 * Held messages come from a small slab allocator: blocks of one size (room
 * for a clock as long as the member list can be) carved from 64 KiB
 * chunks, reused through per-chunk free lists, and a chunk is returned to
 * malloc as soon as it is empty.  When most messages arrive out of order,
 * malloc's per-block bookkeeping otherwise costs more than the buffer. */

typedef struct _Msg Msg;
typedef struct _Chunk Chunk;

typedef struct
{
  Msg *held;     /* the held message (k, n), if any */
  Msg *waiters;  /* held messages waiting for local[k] >= n */
} Cell;

static inline gboolean
cell_is_empty (const Cell *cell)
{
  return cell->held == NULL && cell->waiters == NULL;
}

#define RING_MIN_CELLS 64
#define RING_KEEP_CELLS 4096
#define RING_SPARSENESS 8

typedef struct
{
  Cell *cells;
  guint64 size;  /* 0 or a power of two */
  guint64 live;  /* keys of this member, in the ring or in the overflow */
} Ring;

/* The overflow: open addressing with linear probing, keyed by (member,
 * counter).  GHashTable would need a heap-allocated 64-bit key per entry;
 * this keeps the key inline. */
typedef struct
{
  guint64 counter;
  guint32 member;
  guint32 used;
  Cell cell;
} Slot;

typedef struct
{
  Slot *slots;
  gsize mask;    /* capacity - 1; capacity is a power of two */
  gsize count;
  guint64 seed;  /* per buffer, so peers cannot pick colliding clocks */
} KeyTable;

#define KEY_TABLE_MIN_CAPACITY 64

struct _Msg
{
  Msg *next;          /* in its wait list, or in the ready stack */
  gpointer item;
  Chunk *chunk;       /* the chunk it was carved from */
  guint sender;
  guint cursor;       /* dependencies before this position are met (see find_unmet) */
  guint len;
  guint64 clock[];
};

#define CHUNK_BYTES (64 * 1024)
#define CHUNK_MIN_BLOCKS 16

struct _Chunk
{
  Chunk *prev;        /* in the buffer's list of chunks with room */
  Chunk *next;
  Msg *free_blocks;   /* released blocks, reused first */
  guint8 *bump;       /* start of the never-used space */
  guint8 *end;
  gsize block_size;
  guint live;         /* blocks in use */
  gboolean listed;    /* in the list of chunks with room */
  gboolean retired;   /* blocks too small for the current member count */
};

struct _NatterCausalBuffer
{
  NatterCausalDeliverFunc deliver;
  gpointer user_data;
  GDestroyNotify item_free;

  GPtrArray *members;         /* index -> owned peer ID */
  GHashTable *member_index;   /* peer ID (owned by members) -> index */
  guint64 *local;             /* [n_members]: delivered per member */
  guint64 *max_needed;        /* [n_members]: highest local[k] any held message needs */
  Ring *rings;                /* [n_members] */
  guint n_members;
  guint members_capacity;

  KeyTable overflow;          /* keys too far ahead for their member's ring */
  guint64 n_keys;             /* live keys, all members */
  guint n_held;               /* messages held, parked or ready */
  Msg *ready;                 /* stack of held messages ready to deliver */
  gboolean delivering;

  Chunk *room;                /* chunks with room for another block */
  gsize block_size;           /* bytes per message block, from members_capacity */

  guint64 *scratch;           /* dense clock built by the convenience adders */
  gsize scratch_len;
};

static inline guint64
key_hash (const KeyTable *table,
          guint32         member,
          guint64         counter)
{
  /* The splitmix64 finaliser: counters are small consecutive integers, so
   * they need real mixing before masking. */
  guint64 h = (counter ^ table->seed) + (guint64) member * G_GUINT64_CONSTANT (0x9e3779b97f4a7c15);

  h = (h ^ (h >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  h = (h ^ (h >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return h ^ (h >> 31);
}

static void
key_table_init (KeyTable *table)
{
  table->slots = NULL;
  table->mask = 0;
  table->count = 0;
  table->seed = ((guint64) g_random_int () << 32) | g_random_int ();
}

static void
key_table_resize (KeyTable *table,
                  gsize     capacity)
{
  Slot *old = table->slots;
  gsize old_capacity = old != NULL ? table->mask + 1 : 0;

  table->slots = g_new0 (Slot, capacity);
  table->mask = capacity - 1;
  for (gsize i = 0; i < old_capacity; i++)
    {
      gsize pos;

      if (!old[i].used)
        continue;
      pos = key_hash (table, old[i].member, old[i].counter) & table->mask;
      while (table->slots[pos].used)
        pos = (pos + 1) & table->mask;
      table->slots[pos] = old[i];
    }
  g_free (old);
}

static inline Slot *
key_table_lookup (const KeyTable *table,
                  guint32         member,
                  guint64         counter)
{
  gsize pos;

  if (table->count == 0)
    return NULL;

  pos = key_hash (table, member, counter) & table->mask;
  for (;;)
    {
      Slot *slot = &table->slots[pos];

      if (!slot->used)
        return NULL;
      if (slot->counter == counter && slot->member == member)
        return slot;
      pos = (pos + 1) & table->mask;
    }
}

/* Adds a key that is not in the table yet, with an empty cell. */
static Slot *
key_table_add (KeyTable *table,
               guint32   member,
               guint64   counter)
{
  gsize pos;

  /* Load factor at most 1/2 keeps linear probe runs short. */
  if (table->slots == NULL)
    key_table_resize (table, KEY_TABLE_MIN_CAPACITY);
  else if ((table->count + 1) * 2 > table->mask + 1)
    key_table_resize (table, (table->mask + 1) * 2);

  pos = key_hash (table, member, counter) & table->mask;
  while (table->slots[pos].used)
    pos = (pos + 1) & table->mask;

  table->slots[pos].used = TRUE;
  table->slots[pos].member = member;
  table->slots[pos].counter = counter;
  table->slots[pos].cell = (Cell) { NULL, NULL };
  table->count++;
  return &table->slots[pos];
}

/* Backward-shift deletion: no tombstones, so lookups never slow down after
 * many inserts and removals, however long the buffer runs. */
static void
key_table_remove (KeyTable *table,
                  Slot     *slot)
{
  gsize hole = slot - table->slots;
  gsize pos = hole;

  for (;;)
    {
      gsize home;

      pos = (pos + 1) & table->mask;
      if (!table->slots[pos].used)
        break;
      home = key_hash (table, table->slots[pos].member, table->slots[pos].counter) & table->mask;
      /* The entry at pos may fill the hole only if the hole lies on its
       * probe path, i.e. between its home slot and pos. */
      if (((pos - home) & table->mask) >= ((pos - hole) & table->mask))
        {
          table->slots[hole] = table->slots[pos];
          hole = pos;
        }
    }
  table->slots[hole].used = FALSE;
  table->slots[hole].cell = (Cell) { NULL, NULL };
  table->count--;

  /* Give memory back after a burst, with hysteresis against thrashing. */
  if (table->mask + 1 > KEY_TABLE_MIN_CAPACITY && table->count * 8 < table->mask + 1)
    key_table_resize (table, (table->mask + 1) / 2);
}

static void
key_table_clear (KeyTable *table)
{
  g_clear_pointer (&table->slots, g_free);
  table->mask = 0;
  table->count = 0;
}

/* Grows member k's ring to cover counters up to local[k] + distance, if it
 * would stay dense enough. */
static gboolean
ring_grow (NatterCausalBuffer *self,
           guint               k,
           guint64             distance)
{
  Ring *ring = &self->rings[k];
  guint64 size = MAX (ring->size, RING_MIN_CELLS);
  guint64 base = self->local[k] + 1;
  Cell *cells;

  if (distance > RING_SPARSENESS * (ring->live + 1) && distance > RING_MIN_CELLS)
    return FALSE;
  while (size < distance)
    size *= 2;

  /* Live keys lie in (local, local + old size], one per residue, so each
   * cell's counter is known from its index. */
  cells = g_new0 (Cell, size);
  for (guint64 i = 0; i < ring->size; i++)
    {
      guint64 n;

      if (cell_is_empty (&ring->cells[i]))
        continue;
      n = base + ((i - base) & (ring->size - 1));
      cells[n & (size - 1)] = ring->cells[i];
    }
  g_free (ring->cells);
  ring->cells = cells;
  ring->size = size;
  return TRUE;
}

/* The cell of key (k, n), or NULL when the key has none.  n > local[k]. */
static inline Cell *
cell_lookup (NatterCausalBuffer *self,
             guint               k,
             guint64             n)
{
  Ring *ring = &self->rings[k];
  guint64 distance = n - self->local[k];

  /* In the ring when 1 <= distance <= size; wraps to huge when 0. */
  if (distance - 1 < ring->size)
    {
      Cell *cell = &ring->cells[n & (ring->size - 1)];

      if (!cell_is_empty (cell))
        return cell;
    }
  if (self->overflow.count > 0)
    {
      Slot *slot = key_table_lookup (&self->overflow, k, n);

      if (slot != NULL)
        return &slot->cell;
    }
  return NULL;
}

/* The cell of key (k, n), created empty if needed; the caller fills it at
 * once.  n > local[k]. */
static inline Cell *
cell_insert (NatterCausalBuffer *self,
             guint               k,
             guint64             n)
{
  Ring *ring = &self->rings[k];
  guint64 distance = n - self->local[k];
  Cell *cell;

  /* A key put in the overflow while it was out of the ring's range stays
   * there; never create it twice. */
  if (self->overflow.count > 0)
    {
      Slot *slot = key_table_lookup (&self->overflow, k, n);

      if (slot != NULL)
        return &slot->cell;
    }

  if (distance > ring->size && !ring_grow (self, k, distance))
    {
      ring->live++;
      self->n_keys++;
      return &key_table_add (&self->overflow, k, n)->cell;
    }

  cell = &ring->cells[n & (ring->size - 1)];
  if (cell_is_empty (cell))
    {
      ring->live++;
      self->n_keys++;
    }
  return cell;
}

/* Takes key (k, n) out, with whatever it held, and returns its waiters.
 * Called just before local[k] becomes n. */
static inline Msg *
cell_release (NatterCausalBuffer *self,
              guint               k,
              guint64             n)
{
  Ring *ring = &self->rings[k];
  Cell *cell;
  Msg *waiters;

  if (self->n_keys == 0)
    return NULL;

  cell = cell_lookup (self, k, n);
  if (cell == NULL)
    return NULL;

  waiters = cell->waiters;
  ring->live--;
  self->n_keys--;

  if (ring->size > 0 && cell == &ring->cells[n & (ring->size - 1)])
    {
      *cell = (Cell) { NULL, NULL };
      /* After a burst, give a large ring back once it is idle. */
      if (ring->live == 0 && ring->size > RING_KEEP_CELLS)
        {
          g_clear_pointer (&ring->cells, g_free);
          ring->size = 0;
        }
    }
  else
    {
      key_table_remove (&self->overflow, (Slot *) ((char *) cell - G_STRUCT_OFFSET (Slot, cell)));
    }
  return waiters;
}

/**
 * natter_causal_buffer_new:
 * @deliver: called for each message in causal order
 * @user_data: passed to @deliver
 * @item_free: (nullable): frees items that are dropped as duplicates or
 *   still held when the buffer is freed
 *
 * Creates an empty buffer with no members.
 *
 * Returns: (transfer full): a new buffer
 */
NatterCausalBuffer *
natter_causal_buffer_new (NatterCausalDeliverFunc deliver,
                          gpointer                user_data,
                          GDestroyNotify          item_free)
{
  NatterCausalBuffer *self;

  g_return_val_if_fail (deliver != NULL, NULL);

  self = g_new0 (NatterCausalBuffer, 1);
  self->deliver = deliver;
  self->user_data = user_data;
  self->item_free = item_free;
  self->members = g_ptr_array_new_with_free_func (g_free);
  self->member_index = g_hash_table_new (g_str_hash, g_str_equal);
  key_table_init (&self->overflow);
  return self;
}

static void
chunk_list (NatterCausalBuffer *self,
            Chunk              *chunk)
{
  chunk->prev = NULL;
  chunk->next = self->room;
  if (self->room != NULL)
    self->room->prev = chunk;
  self->room = chunk;
  chunk->listed = TRUE;
}

static void
chunk_unlist (NatterCausalBuffer *self,
              Chunk              *chunk)
{
  if (chunk->prev != NULL)
    chunk->prev->next = chunk->next;
  else
    self->room = chunk->next;
  if (chunk->next != NULL)
    chunk->next->prev = chunk->prev;
  chunk->prev = chunk->next = NULL;
  chunk->listed = FALSE;
}

static inline Msg *
msg_alloc (NatterCausalBuffer *self)
{
  Chunk *chunk = self->room;
  Msg *msg;

  if (chunk == NULL)
    {
      gsize n_blocks = MAX (CHUNK_MIN_BLOCKS, CHUNK_BYTES / self->block_size);

      chunk = g_malloc (sizeof (Chunk) + n_blocks * self->block_size);
      *chunk = (Chunk) { 0, };
      /* Chunk is made of pointers and sizes, so the blocks that follow it
       * are aligned for Msg. */
      chunk->bump = (guint8 *) (chunk + 1);
      chunk->end = chunk->bump + n_blocks * self->block_size;
      chunk->block_size = self->block_size;
      chunk_list (self, chunk);
    }

  if (chunk->free_blocks != NULL)
    {
      msg = chunk->free_blocks;
      chunk->free_blocks = msg->next;
    }
  else
    {
      msg = (Msg *) chunk->bump;
      chunk->bump += chunk->block_size;
    }
  chunk->live++;
  if (chunk->free_blocks == NULL && chunk->bump + chunk->block_size > chunk->end)
    chunk_unlist (self, chunk);

  msg->chunk = chunk;
  return msg;
}

static inline void
msg_release (NatterCausalBuffer *self,
             Msg                *msg)
{
  Chunk *chunk = msg->chunk;

  chunk->live--;
  if (chunk->retired || chunk->block_size != self->block_size)
    {
      if (chunk->live == 0)
        g_free (chunk);
      return;
    }

  msg->next = chunk->free_blocks;
  chunk->free_blocks = msg;
  if (!chunk->listed)
    chunk_list (self, chunk);
  /* Keep one spare chunk so a buffer that keeps emptying and refilling
   * does not go to malloc each time. */
  if (chunk->live == 0 && (chunk->prev != NULL || chunk->next != NULL))
    {
      chunk_unlist (self, chunk);
      g_free (chunk);
    }
}

/* The member list outgrew the blocks: new messages need bigger blocks.
 * Chunks of the old size get no new messages and go as they empty. */
static void
chunks_retire (NatterCausalBuffer *self)
{
  while (self->room != NULL)
    {
      Chunk *chunk = self->room;

      chunk_unlist (self, chunk);
      if (chunk->live == 0)
        g_free (chunk);
      else
        chunk->retired = TRUE;
    }
}

static void
msg_free_held (NatterCausalBuffer *self,
               Msg                *msg)
{
  if (msg == NULL)
    return;
  if (self->item_free != NULL)
    self->item_free (msg->item);
  msg_release (self, msg);
}

/**
 * natter_causal_buffer_free:
 * @self: (nullable): a buffer
 *
 * Frees @self and the items of the messages it still holds.  Must not be
 * called from the deliver callback.
 */
void
natter_causal_buffer_free (NatterCausalBuffer *self)
{
  if (self == NULL)
    return;

  g_return_if_fail (!self->delivering);

  /* Every held message is the held message of exactly one cell, whether
   * parked or ready, so that is the one place to free them from. */
  for (guint k = 0; k < self->n_members; k++)
    {
      Ring *ring = &self->rings[k];

      for (guint64 i = 0; i < ring->size; i++)
        msg_free_held (self, ring->cells[i].held);
      g_free (ring->cells);
    }
  for (gsize i = 0; self->overflow.slots != NULL && i <= self->overflow.mask; i++)
    if (self->overflow.slots[i].used)
      msg_free_held (self, self->overflow.slots[i].cell.held);
  key_table_clear (&self->overflow);
  /* Now every chunk is empty; the spare one is all that is left. */
  while (self->room != NULL)
    {
      Chunk *chunk = self->room;

      chunk_unlist (self, chunk);
      g_free (chunk);
    }
  g_hash_table_unref (self->member_index);
  g_ptr_array_unref (self->members);
  g_free (self->local);
  g_free (self->max_needed);
  g_free (self->rings);
  g_free (self->scratch);
  g_free (self);
}

/**
 * natter_causal_buffer_add_member:
 * @self: a buffer
 * @peer_id: a member's peer ID
 *
 * Interns @peer_id.  A new member starts with nothing delivered (local
 * counter 0); members can be added at any time, also from the deliver
 * callback.  Adding a member twice returns its existing index.
 *
 * Returns: the member's index, stable for the life of the buffer
 */
guint
natter_causal_buffer_add_member (NatterCausalBuffer *self,
                                 const char         *peer_id)
{
  gpointer value;
  guint index;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (peer_id != NULL, 0);

  if (g_hash_table_lookup_extended (self->member_index, peer_id, NULL, &value))
    return GPOINTER_TO_UINT (value);

  /* Member indices are stored as 32 bits in the overflow table. */
  g_return_val_if_fail (self->n_members < G_MAXUINT32, 0);

  if (self->n_members == self->members_capacity)
    {
      guint capacity = MAX (8, self->members_capacity * 2);

      self->local = g_renew (guint64, self->local, capacity);
      self->max_needed = g_renew (guint64, self->max_needed, capacity);
      self->rings = g_renew (Ring, self->rings, capacity);
      self->members_capacity = capacity;
      /* Full chunks are not in the room list; they are retired lazily by
       * msg_release() noticing the size change. */
      chunks_retire (self);
      self->block_size = sizeof (Msg) + capacity * sizeof (guint64);
    }

  index = self->n_members++;
  self->local[index] = 0;
  self->max_needed[index] = 0;
  self->rings[index] = (Ring) { NULL, 0, 0 };
  g_ptr_array_add (self->members, g_strdup (peer_id));
  g_hash_table_insert (self->member_index, g_ptr_array_index (self->members, index),
                       GUINT_TO_POINTER (index));
  return index;
}

/**
 * natter_causal_buffer_lookup_member:
 * @self: a buffer
 * @peer_id: a peer ID
 * @out_index: (out) (optional): its index
 *
 * Returns: %TRUE when @peer_id is a member
 */
gboolean
natter_causal_buffer_lookup_member (NatterCausalBuffer *self,
                                    const char         *peer_id,
                                    guint              *out_index)
{
  gpointer value;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (peer_id != NULL, FALSE);

  if (!g_hash_table_lookup_extended (self->member_index, peer_id, NULL, &value))
    return FALSE;
  if (out_index != NULL)
    *out_index = GPOINTER_TO_UINT (value);
  return TRUE;
}

/**
 * natter_causal_buffer_get_member:
 * @self: a buffer
 * @index: a member index
 *
 * Returns: (transfer none): the peer ID of member @index
 */
const char *
natter_causal_buffer_get_member (NatterCausalBuffer *self,
                                 guint               index)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (index < self->n_members, NULL);

  return g_ptr_array_index (self->members, index);
}

/**
 * natter_causal_buffer_get_n_members:
 * @self: a buffer
 *
 * Returns: the number of members, which is also the length of the local
 *   clock
 */
guint
natter_causal_buffer_get_n_members (NatterCausalBuffer *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->n_members;
}

/* Finds the first dependency at or after *cursor that the local clock does
 * not meet yet.  For the sender the requirement is VC[j] - 1, for everyone
 * else VC[k]; the caller has already checked VC[sender] > local[sender],
 * so the subtraction cannot wrap. */
static inline gboolean
find_unmet (const guint64 *local,
            guint          sender,
            const guint64 *clock,
            gsize          len,
            guint         *cursor,
            guint         *out_member,
            guint64       *out_needed)
{
  /* The sender's own previous message is checked first: once it is
   * delivered, so is everything it depended on, which is most of this
   * message's clock.  Parking there first saves most re-parks.  The
   * cursor counts positions in the order sender, 0, 1, … (skipping the
   * sender). */
  for (gsize p = *cursor; p < len; p++)
    {
      gsize i = p == 0 ? sender : p - 1 + (p - 1 >= sender);
      guint64 needed = clock[i] - (i == sender);

      if (G_UNLIKELY (local[i] < needed))
        {
          *cursor = p;
          *out_member = i;
          *out_needed = needed;
          return TRUE;
        }
    }
  *cursor = len;
  return FALSE;
}

static inline void
park (NatterCausalBuffer *self,
      Msg                *msg,
      guint               member,
      guint64             needed)
{
  Cell *cell = cell_insert (self, member, needed);

  msg->next = cell->waiters;
  cell->waiters = msg;
}

/* Re-examines messages whose parked dependency has just been met: each
 * becomes ready or parks on its next missing one. */
static inline void
wake (NatterCausalBuffer *self,
      Msg                *list)
{
  while (list != NULL)
    {
      Msg *msg = list;
      guint member;
      guint64 needed;

      list = msg->next;
      if (find_unmet (self->local, msg->sender, msg->clock, msg->len, &msg->cursor, &member, &needed))
        {
          park (self, msg, member, needed);
        }
      else
        {
          msg->next = self->ready;
          self->ready = msg;
        }
    }
}

/* Delivers message @counter of @sender; @msg is its held copy, or NULL
 * when it is delivered straight from the caller.  The key is released
 * before the callback, so anything the callback adds finds a consistent
 * buffer, and its waiters are woken after. */
static inline void
deliver_one (NatterCausalBuffer *self,
             guint               sender,
             guint64             counter,
             const guint64      *clock,
             gsize               clock_len,
             gpointer            item,
             Msg                *msg)
{
  Msg *waiters = cell_release (self, sender, counter);

  self->local[sender] = counter;
  if (msg != NULL)
    self->n_held--;
  self->deliver (self, sender, clock, clock_len, item, self->user_data);
  if (msg != NULL)
    msg_release (self, msg);
  wake (self, waiters);
}

/* Delivers every ready message, and what each one unblocks.  Messages
 * ready at the same time are concurrent (were one before the other, the
 * later one could not be ready), so the stack's order is a causal one. */
static void
drain (NatterCausalBuffer *self)
{
  while (self->ready != NULL)
    {
      Msg *msg = self->ready;

      self->ready = msg->next;
      deliver_one (self, msg->sender, msg->clock[msg->sender], msg->clock, msg->len, msg->item, msg);
    }
}

/**
 * natter_causal_buffer_add:
 * @self: a buffer
 * @sender: the sending member's index
 * @clock: (array length=clock_len) (nullable): the message's vector clock,
 *   aligned with member indices
 * @clock_len: entries in @clock, at most the number of members; missing
 *   entries are 0
 * @item: (transfer full): the message, opaque to the buffer
 *
 * Adds a received message.  If it can be delivered, the deliver callback
 * runs for it and then for every held message it unblocks, in causal
 * order, before this returns.  Otherwise it is held (the buffer copies
 * @clock).  A message with @clock[@sender] at or below what was already
 * delivered from @sender, or whose (@sender, @clock[@sender]) is already
 * held, is a duplicate: @item is freed with the item_free function.  In
 * particular a clock without an entry for its sender is a duplicate.
 *
 * Returns: what happened to the message
 */
NatterCausalResult
natter_causal_buffer_add (NatterCausalBuffer *self,
                          guint               sender,
                          const guint64      *clock,
                          gsize               clock_len,
                          gpointer            item)
{
  guint64 counter;
  guint64 needed = 0;
  guint cursor = 0;
  guint member = 0;
  gboolean unmet;
  Msg *msg;
  Cell *cell;

  g_return_val_if_fail (self != NULL, NATTER_CAUSAL_DUPLICATE);
  g_return_val_if_fail (sender < self->n_members, NATTER_CAUSAL_DUPLICATE);
  g_return_val_if_fail (clock_len <= self->n_members, NATTER_CAUSAL_DUPLICATE);
  g_return_val_if_fail (clock != NULL || clock_len == 0, NATTER_CAUSAL_DUPLICATE);

  counter = sender < clock_len ? clock[sender] : 0;
  if (counter <= self->local[sender] ||
      (self->n_held > 0 && (cell = cell_lookup (self, sender, counter)) != NULL &&
       cell->held != NULL))
    {
      if (self->item_free != NULL)
        self->item_free (item);
      return NATTER_CAUSAL_DUPLICATE;
    }

  unmet = find_unmet (self->local, sender, clock, clock_len, &cursor, &member, &needed);

  if (!unmet && !self->delivering)
    {
      /* The common case in a healthy network: deliver from the caller's
       * array with no allocation. */
      self->delivering = TRUE;
      deliver_one (self, sender, counter, clock, clock_len, item, NULL);
      drain (self);
      self->delivering = FALSE;
      return NATTER_CAUSAL_DELIVERED;
    }

  msg = msg_alloc (self);
  msg->next = NULL;
  msg->item = item;
  msg->sender = sender;
  msg->cursor = cursor;
  msg->len = (guint) clock_len;
  memcpy (msg->clock, clock, clock_len * sizeof (guint64));

  /* The cell may exist already, holding messages that wait for this one. */
  cell = cell_insert (self, sender, counter);
  cell->held = msg;
  self->n_held++;

  if (!unmet)
    {
      /* Added from inside the deliver callback: the outer drain() will
       * deliver it as soon as the callback returns, keeping callbacks
       * from nesting. */
      msg->next = self->ready;
      self->ready = msg;
      return NATTER_CAUSAL_DELIVERED;
    }

  /* Remember, per member, the highest counter anything held waits for, so
   * that get_missing() can answer without scanning the buffer.  Needs that
   * are already met cannot raise it above local, so they do no harm. */
  for (gsize i = 0; i < clock_len; i++)
    {
      guint64 n = clock[i] - (i == sender);

      if (n > self->max_needed[i])
        self->max_needed[i] = n;
    }

  park (self, msg, member, needed);
  return NATTER_CAUSAL_BUFFERED;
}

/* A zeroed array of @len entries for building a dense clock.  Inside the
 * deliver callback the shared scratch array may be the very clock the
 * callback was handed, so a fresh one is used there. */
static guint64 *
get_scratch (NatterCausalBuffer  *self,
             gsize                len,
             guint64            **out_temporary)
{
  guint64 *array;

  if (self->delivering)
    {
      array = g_new0 (guint64, MAX (len, 1));
      *out_temporary = array;
      return array;
    }

  if (self->scratch_len < len)
    {
      g_free (self->scratch);
      self->scratch_len = MAX (len, self->scratch_len * 2);
      self->scratch = g_new (guint64, self->scratch_len);
    }
  memset (self->scratch, 0, len * sizeof (guint64));
  *out_temporary = NULL;
  return self->scratch;
}

/**
 * natter_causal_buffer_add_clock:
 * @self: a buffer
 * @sender: the sender's peer ID
 * @clock: the message's vector clock
 * @item: (transfer full): the message
 *
 * Like natter_causal_buffer_add(), with peer IDs instead of indices.  The
 * sender and every peer named in @clock become members if they are not
 * yet: check them against the group's membership before calling this, as
 * each member costs a clock entry for the life of the buffer.
 *
 * Returns: what happened to the message
 */
NatterCausalResult
natter_causal_buffer_add_clock (NatterCausalBuffer      *self,
                                const char              *sender,
                                const NatterVectorClock *clock,
                                gpointer                 item)
{
  g_autofree guint64 *temporary = NULL;
  NatterVectorClockIter iter;
  const char *peer_id;
  guint64 value;
  guint64 *dense;
  gsize len;
  guint sender_index;

  g_return_val_if_fail (self != NULL, NATTER_CAUSAL_DUPLICATE);
  g_return_val_if_fail (sender != NULL, NATTER_CAUSAL_DUPLICATE);
  g_return_val_if_fail (clock != NULL, NATTER_CAUSAL_DUPLICATE);

  /* Intern first so the dense array is sized once. */
  sender_index = natter_causal_buffer_add_member (self, sender);
  len = sender_index + 1;
  natter_vector_clock_iter_init (&iter, clock);
  while (natter_vector_clock_iter_next (&iter, &peer_id, NULL))
    len = MAX (len, (gsize) natter_causal_buffer_add_member (self, peer_id) + 1);

  dense = get_scratch (self, len, &temporary);
  natter_vector_clock_iter_init (&iter, clock);
  while (natter_vector_clock_iter_next (&iter, &peer_id, &value))
    {
      guint index;

      natter_causal_buffer_lookup_member (self, peer_id, &index);
      dense[index] = value;
    }

  return natter_causal_buffer_add (self, sender_index, dense, len, item);
}

/**
 * natter_causal_buffer_add_sequence:
 * @self: a buffer
 * @sender: the sending member's index
 * @sequence: the sender's sequence number, starting at 1
 * @item: (transfer full): the message
 *
 * Per-sender ordering, for direct chats: the message depends only on the
 * same sender's earlier messages, so each sender's messages are delivered
 * in sequence order without gaps, independently of other senders.  Same as
 * natter_causal_buffer_add() with a clock that is 0 except for @sequence
 * at @sender.
 *
 * Returns: what happened to the message
 */
NatterCausalResult
natter_causal_buffer_add_sequence (NatterCausalBuffer *self,
                                   guint               sender,
                                   guint64             sequence,
                                   gpointer            item)
{
  g_autofree guint64 *temporary = NULL;
  guint64 *dense;

  g_return_val_if_fail (self != NULL, NATTER_CAUSAL_DUPLICATE);
  g_return_val_if_fail (sender < self->n_members, NATTER_CAUSAL_DUPLICATE);

  if (sender == 0)
    return natter_causal_buffer_add (self, 0, &sequence, 1, item);

  dense = get_scratch (self, sender + 1, &temporary);
  dense[sender] = sequence;
  return natter_causal_buffer_add (self, sender, dense, sender + 1, item);
}

/**
 * natter_causal_buffer_get_local:
 * @self: a buffer
 * @out_len: (out) (optional): the number of entries, one per member
 *
 * The local clock: entry k is how many messages of member k have been
 * delivered (the highest delivered counter of k).
 *
 * Returns: (transfer none) (array length=out_len): the local clock, valid
 *   until the next member is added
 */
const guint64 *
natter_causal_buffer_get_local (NatterCausalBuffer *self,
                                gsize              *out_len)
{
  g_return_val_if_fail (self != NULL, NULL);

  if (out_len != NULL)
    *out_len = self->n_members;
  return self->local;
}

/**
 * natter_causal_buffer_dup_local_clock:
 * @self: a buffer
 *
 * The local clock keyed by peer ID, for clock summaries sent to peers.
 *
 * Returns: (transfer full): a new clock
 */
NatterVectorClock *
natter_causal_buffer_dup_local_clock (NatterCausalBuffer *self)
{
  NatterVectorClock *clock;

  g_return_val_if_fail (self != NULL, NULL);

  clock = natter_vector_clock_new ();
  for (guint i = 0; i < self->n_members; i++)
    natter_vector_clock_set (clock, g_ptr_array_index (self->members, i), self->local[i]);
  return clock;
}

/**
 * natter_causal_buffer_set_local:
 * @self: a buffer
 * @member: a member index
 * @value: how many of @member's messages count as delivered
 *
 * Restores the local clock, for example from the store after a restart or
 * when joining a group whose history is already known.  Only allowed while
 * no message is held, since held messages would need re-examining.
 */
void
natter_causal_buffer_set_local (NatterCausalBuffer *self,
                                guint               member,
                                guint64             value)
{
  g_return_if_fail (self != NULL);
  g_return_if_fail (member < self->n_members);
  g_return_if_fail (self->n_held == 0);
  g_return_if_fail (!self->delivering);

  self->local[member] = value;
  /* With nothing held, nothing is needed; old maxima could otherwise exceed
   * a lowered counter and report phantom gaps. */
  memset (self->max_needed, 0, self->n_members * sizeof (guint64));
}

/**
 * natter_causal_buffer_get_n_waiting:
 * @self: a buffer
 *
 * Returns: the number of messages held, waiting for their dependencies
 */
guint
natter_causal_buffer_get_n_waiting (NatterCausalBuffer *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->n_held;
}

/**
 * natter_causal_buffer_get_missing:
 * @self: a buffer
 * @member: a member index
 * @out_needed_up_to: (out) (optional): the highest counter of @member that
 *   a held message needs; set only when something is missing
 *
 * What to ask peers for during anti-entropy: the lowest counter of
 * @member's messages that some held message needs (directly or through
 * another held message of @member) and that the buffer does not have.
 * Counters between the result and @out_needed_up_to may be held already.
 * Cheap unless many consecutive messages of @member are held; meant for
 * sync, not for every message.
 *
 * Returns: the lowest missing counter of @member, or 0 when nothing held
 *   is blocked on @member
 */
guint64
natter_causal_buffer_get_missing (NatterCausalBuffer *self,
                                  guint               member,
                                  guint64            *out_needed_up_to)
{
  guint64 max;
  guint64 counter;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (member < self->n_members, 0);

  /* max_needed only grows, but a message that needed it is delivered only
   * once local has caught up, so max > local means a held message really
   * waits for it. */
  max = self->max_needed[member];
  if (max <= self->local[member])
    return 0;

  counter = self->local[member] + 1;
  for (; counter <= max; counter++)
    {
      Cell *cell = cell_lookup (self, member, counter);

      if (cell == NULL || cell->held == NULL)
        break;
    }
  if (counter > max)
    return 0;

  if (out_needed_up_to != NULL)
    *out_needed_up_to = max;
  return counter;
}
