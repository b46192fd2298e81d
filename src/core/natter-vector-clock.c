/* natter-vector-clock.c: vector clocks keyed by peer ID
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "config.h"

#include <string.h>

#include "natter-vector-clock.h"

/* Entries are kept in one array sorted by peer ID.  Clocks are small (one
 * entry per group member) and are read far more often than written, so a
 * sorted array beats a hash table: lookups are a binary search, and merge,
 * compare and equal are a single linear walk over both clocks. */
typedef struct
{
  char *peer_id;
  guint64 value;
} Entry;

struct _NatterVectorClock
{
  GArray *entries;  /* of Entry, sorted by strcmp (peer_id), values > 0 */
};

G_DEFINE_BOXED_TYPE (NatterVectorClock, natter_vector_clock,
                     natter_vector_clock_copy, natter_vector_clock_free)

static void
entry_clear (gpointer data)
{
  Entry *entry = data;

  g_clear_pointer (&entry->peer_id, g_free);
}

static NatterVectorClock *
vector_clock_new_sized (guint reserve)
{
  NatterVectorClock *self = g_new0 (NatterVectorClock, 1);

  self->entries = g_array_sized_new (FALSE, FALSE, sizeof (Entry), reserve);
  g_array_set_clear_func (self->entries, entry_clear);
  return self;
}

/**
 * natter_vector_clock_new:
 *
 * Creates an empty clock, in which every peer's counter is 0.
 *
 * Returns: (transfer full): a new clock
 */
NatterVectorClock *
natter_vector_clock_new (void)
{
  return vector_clock_new_sized (0);
}

/**
 * natter_vector_clock_copy:
 * @self: a clock
 *
 * Returns: (transfer full): an independent copy of @self
 */
NatterVectorClock *
natter_vector_clock_copy (const NatterVectorClock *self)
{
  NatterVectorClock *copy;

  g_return_val_if_fail (self != NULL, NULL);

  copy = vector_clock_new_sized (self->entries->len);
  for (guint i = 0; i < self->entries->len; i++)
    {
      const Entry *src = &g_array_index (self->entries, Entry, i);
      Entry entry = { g_strdup (src->peer_id), src->value };

      g_array_append_val (copy->entries, entry);
    }
  return copy;
}

/**
 * natter_vector_clock_free:
 * @self: (nullable): a clock
 *
 * Frees @self.
 */
void
natter_vector_clock_free (NatterVectorClock *self)
{
  if (self == NULL)
    return;
  g_array_unref (self->entries);
  g_free (self);
}

/* Binary search: returns TRUE and the position of @peer_id, or FALSE and
 * the position where it would be inserted. */
static gboolean
vector_clock_find (const NatterVectorClock *self,
                   const char              *peer_id,
                   guint                   *out_pos)
{
  guint lo = 0;
  guint hi = self->entries->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      int cmp = strcmp (g_array_index (self->entries, Entry, mid).peer_id, peer_id);

      if (cmp == 0)
        {
          *out_pos = mid;
          return TRUE;
        }
      if (cmp < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  *out_pos = lo;
  return FALSE;
}

/**
 * natter_vector_clock_get:
 * @self: a clock
 * @peer_id: a peer ID
 *
 * Returns: the counter of @peer_id, 0 when it has none
 */
guint64
natter_vector_clock_get (const NatterVectorClock *self,
                         const char              *peer_id)
{
  guint pos;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (peer_id != NULL, 0);

  if (vector_clock_find (self, peer_id, &pos))
    return g_array_index (self->entries, Entry, pos).value;
  return 0;
}

/**
 * natter_vector_clock_set:
 * @self: a clock
 * @peer_id: a peer ID
 * @value: the new counter; 0 removes the entry
 *
 * Sets the counter of @peer_id to @value, which may be lower than before
 * (the codec builds clocks with this; causal order is not checked here).
 */
void
natter_vector_clock_set (NatterVectorClock *self,
                         const char        *peer_id,
                         guint64            value)
{
  guint pos;

  g_return_if_fail (self != NULL);
  g_return_if_fail (peer_id != NULL);

  if (vector_clock_find (self, peer_id, &pos))
    {
      if (value == 0)
        g_array_remove_index (self->entries, pos);
      else
        g_array_index (self->entries, Entry, pos).value = value;
    }
  else if (value != 0)
    {
      Entry entry = { g_strdup (peer_id), value };

      g_array_insert_val (self->entries, pos, entry);
    }
}

/**
 * natter_vector_clock_increment:
 * @self: a clock
 * @peer_id: a peer ID
 *
 * Adds one to the counter of @peer_id, as a peer does to its own entry
 * before it sends a message.
 *
 * Returns: the new counter
 */
guint64
natter_vector_clock_increment (NatterVectorClock *self,
                               const char        *peer_id)
{
  guint pos;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (peer_id != NULL, 0);

  if (vector_clock_find (self, peer_id, &pos))
    {
      Entry *entry = &g_array_index (self->entries, Entry, pos);

      /* Wrapping around would silently make the clock go back in time. */
      g_return_val_if_fail (entry->value < G_MAXUINT64, entry->value);
      return ++entry->value;
    }
  else
    {
      Entry entry = { g_strdup (peer_id), 1 };

      g_array_insert_val (self->entries, pos, entry);
      return 1;
    }
}

/**
 * natter_vector_clock_merge:
 * @self: a clock
 * @other: another clock
 *
 * Sets every counter of @self to the larger of its own and @other's
 * (pointwise maximum), as a peer does when it learns of @other's events.
 */
void
natter_vector_clock_merge (NatterVectorClock       *self,
                           const NatterVectorClock *other)
{
  g_autoptr(GArray) merged = NULL;
  GArray *a;
  GArray *b;
  guint i = 0;
  guint j = 0;

  g_return_if_fail (self != NULL);
  g_return_if_fail (other != NULL);

  if (self == other)
    return;

  a = self->entries;
  b = other->entries;

  /* One walk over both sorted arrays into a new array: inserting other's
   * missing peers one by one would be quadratic. */
  merged = g_array_sized_new (FALSE, FALSE, sizeof (Entry), a->len + b->len);
  g_array_set_clear_func (merged, entry_clear);
  while (i < a->len || j < b->len)
    {
      Entry *ea = i < a->len ? &g_array_index (a, Entry, i) : NULL;
      const Entry *eb = j < b->len ? &g_array_index (b, Entry, j) : NULL;
      int cmp = ea == NULL ? 1 : eb == NULL ? -1 : strcmp (ea->peer_id, eb->peer_id);
      Entry entry;

      if (cmp < 0)
        {
          entry = (Entry) { g_steal_pointer (&ea->peer_id), ea->value };
          i++;
        }
      else if (cmp > 0)
        {
          entry = (Entry) { g_strdup (eb->peer_id), eb->value };
          j++;
        }
      else
        {
          entry = (Entry) { g_steal_pointer (&ea->peer_id), MAX (ea->value, eb->value) };
          i++;
          j++;
        }
      g_array_append_val (merged, entry);
    }

  /* The peer IDs left in @a were all stolen; swap the arrays so the old
   * one is freed by the autoptr. */
  self->entries = g_steal_pointer (&merged);
  merged = a;
}

/**
 * natter_vector_clock_compare:
 * @a: a clock
 * @b: another clock
 *
 * Compares two clocks in the happened-before order.  Unlike a total order,
 * two different clocks may be neither before nor after each other: they
 * are then %NATTER_VECTOR_CLOCK_CONCURRENT, which is never the same as
 * %NATTER_VECTOR_CLOCK_EQUAL.
 *
 * Returns: how @a relates to @b
 */
NatterVectorClockOrder
natter_vector_clock_compare (const NatterVectorClock *a,
                             const NatterVectorClock *b)
{
  gboolean a_less = FALSE;     /* some counter of a is below b's */
  gboolean a_greater = FALSE;  /* some counter of a is above b's */
  guint i = 0;
  guint j = 0;

  g_return_val_if_fail (a != NULL, NATTER_VECTOR_CLOCK_CONCURRENT);
  g_return_val_if_fail (b != NULL, NATTER_VECTOR_CLOCK_CONCURRENT);

  while ((i < a->entries->len || j < b->entries->len) && !(a_less && a_greater))
    {
      const Entry *ea = i < a->entries->len ? &g_array_index (a->entries, Entry, i) : NULL;
      const Entry *eb = j < b->entries->len ? &g_array_index (b->entries, Entry, j) : NULL;
      int cmp = ea == NULL ? 1 : eb == NULL ? -1 : strcmp (ea->peer_id, eb->peer_id);

      /* Stored values are never 0, so a peer only one side has is a
       * strictly larger counter on that side. */
      if (cmp < 0)
        {
          a_greater = TRUE;
          i++;
        }
      else if (cmp > 0)
        {
          a_less = TRUE;
          j++;
        }
      else
        {
          if (ea->value < eb->value)
            a_less = TRUE;
          else if (ea->value > eb->value)
            a_greater = TRUE;
          i++;
          j++;
        }
    }

  if (a_less && a_greater)
    return NATTER_VECTOR_CLOCK_CONCURRENT;
  if (a_less)
    return NATTER_VECTOR_CLOCK_BEFORE;
  if (a_greater)
    return NATTER_VECTOR_CLOCK_AFTER;
  return NATTER_VECTOR_CLOCK_EQUAL;
}

/**
 * natter_vector_clock_equal:
 * @a: a clock
 * @b: another clock
 *
 * Returns: %TRUE when every peer has the same counter in @a and @b
 */
gboolean
natter_vector_clock_equal (const NatterVectorClock *a,
                           const NatterVectorClock *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);

  if (a->entries->len != b->entries->len)
    return FALSE;
  for (guint i = 0; i < a->entries->len; i++)
    {
      const Entry *ea = &g_array_index (a->entries, Entry, i);
      const Entry *eb = &g_array_index (b->entries, Entry, i);

      if (ea->value != eb->value || strcmp (ea->peer_id, eb->peer_id) != 0)
        return FALSE;
    }
  return TRUE;
}

/**
 * natter_vector_clock_get_size:
 * @self: a clock
 *
 * Returns: the number of peers with a non-zero counter
 */
guint
natter_vector_clock_get_size (const NatterVectorClock *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->entries->len;
}

/**
 * natter_vector_clock_to_string:
 * @self: a clock
 *
 * Formats @self for logs and test failures, as `{peer: n, …}` in peer
 * order.  Not a wire format.
 *
 * Returns: (transfer full): a new string
 */
char *
natter_vector_clock_to_string (const NatterVectorClock *self)
{
  GString *str;

  g_return_val_if_fail (self != NULL, NULL);

  str = g_string_new ("{");
  for (guint i = 0; i < self->entries->len; i++)
    {
      const Entry *entry = &g_array_index (self->entries, Entry, i);

      g_string_append_printf (str, "%s%s: %" G_GUINT64_FORMAT,
                              i > 0 ? ", " : "", entry->peer_id, entry->value);
    }
  g_string_append_c (str, '}');
  return g_string_free (str, FALSE);
}

/**
 * natter_vector_clock_iter_init:
 * @iter: an uninitialised iterator
 * @clock: the clock to walk
 *
 * Prepares @iter to walk the non-zero entries of @clock in strcmp() order
 * of their peer IDs.
 */
void
natter_vector_clock_iter_init (NatterVectorClockIter   *iter,
                               const NatterVectorClock *clock)
{
  g_return_if_fail (iter != NULL);
  g_return_if_fail (clock != NULL);

  iter->clock = clock;
  iter->index = 0;
}

/**
 * natter_vector_clock_iter_next:
 * @iter: an iterator
 * @peer_id: (out) (optional) (transfer none): the next peer ID
 * @value: (out) (optional): its counter, never 0
 *
 * Returns: %FALSE when there are no more entries
 */
gboolean
natter_vector_clock_iter_next (NatterVectorClockIter  *iter,
                               const char            **peer_id,
                               guint64                *value)
{
  const Entry *entry;

  g_return_val_if_fail (iter != NULL, FALSE);

  if (iter->index >= iter->clock->entries->len)
    return FALSE;

  entry = &g_array_index (iter->clock->entries, Entry, iter->index++);
  if (peer_id != NULL)
    *peer_id = entry->peer_id;
  if (value != NULL)
    *value = entry->value;
  return TRUE;
}
