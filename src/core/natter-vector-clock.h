/* natter-vector-clock.h: vector clocks keyed by peer ID
 *
 * Copyright 2026 The Natter developers
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* A vector clock maps peer IDs to counters.  A peer that is not in the
 * clock has the counter 0, and a counter set to 0 is removed, so two clocks
 * that mean the same thing always hold the same entries: equality, the
 * iteration order (peer IDs sorted with strcmp()) and any encoding built
 * from the iteration are canonical. */
typedef struct _NatterVectorClock NatterVectorClock;

/* How clock A relates to clock B (happened-before on the events they
 * stand for). */
typedef enum
{
  NATTER_VECTOR_CLOCK_EQUAL,       /* every counter equal */
  NATTER_VECTOR_CLOCK_BEFORE,      /* A <= B everywhere and A != B */
  NATTER_VECTOR_CLOCK_AFTER,       /* A >= B everywhere and A != B */
  NATTER_VECTOR_CLOCK_CONCURRENT,  /* A < B somewhere and A > B somewhere */
} NatterVectorClockOrder;

/* Iterates over the non-zero entries in strcmp() order.  Do not modify the
 * clock while iterating. */
typedef struct
{
  /*< private >*/
  const NatterVectorClock *clock;
  guint index;
} NatterVectorClockIter;

#define NATTER_TYPE_VECTOR_CLOCK (natter_vector_clock_get_type ())

GType                  natter_vector_clock_get_type   (void) G_GNUC_CONST;

NatterVectorClock     *natter_vector_clock_new        (void);
NatterVectorClock     *natter_vector_clock_copy       (const NatterVectorClock *self);
void                   natter_vector_clock_free       (NatterVectorClock       *self);

guint64                natter_vector_clock_get        (const NatterVectorClock *self,
                                                       const char              *peer_id);
void                   natter_vector_clock_set        (NatterVectorClock       *self,
                                                       const char              *peer_id,
                                                       guint64                  value);
guint64                natter_vector_clock_increment  (NatterVectorClock       *self,
                                                       const char              *peer_id);
void                   natter_vector_clock_merge      (NatterVectorClock       *self,
                                                       const NatterVectorClock *other);
NatterVectorClockOrder natter_vector_clock_compare    (const NatterVectorClock *a,
                                                       const NatterVectorClock *b);
gboolean               natter_vector_clock_equal      (const NatterVectorClock *a,
                                                       const NatterVectorClock *b);
guint                  natter_vector_clock_get_size   (const NatterVectorClock *self);
char                  *natter_vector_clock_to_string  (const NatterVectorClock *self);

void                   natter_vector_clock_iter_init  (NatterVectorClockIter   *iter,
                                                       const NatterVectorClock *clock);
gboolean               natter_vector_clock_iter_next  (NatterVectorClockIter   *iter,
                                                       const char             **peer_id,
                                                       guint64                 *value);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NatterVectorClock, natter_vector_clock_free)

G_END_DECLS
