/* kv_ops.h: copying and reordering KV-cache rows between sequences (beam
 * search: the prompt is computed once and copied into each beam's row, and
 * rows are reordered as beams are selected). */
#ifndef ROSA_KV_OPS_H
#define ROSA_KV_OPS_H

#include "model.h"

/* Row dst_b of dst becomes a copy of row src_b of src (its keys and values
 * and its real-token count; the caches keep keys by position, so the row
 * lands at the same positions).  The two caches must belong to the same
 * model; src may be dst.  dst's slot count grows to src's when shorter (the
 * other rows' new slots are padding).  Returns 0, or -1 (shape mismatch,
 * capacity, row out of range). */
int rosa_kv_cache_copy_seq(rosa_kv_cache *dst, int dst_b, const rosa_kv_cache *src, int src_b);

/* Reorders rows in place: new row r = old row src_rows[r] for every r in
 * [0, B) (a row may be the source of several rows, e.g. beams that share a
 * parent).  Returns 0 or -1. */
int rosa_kv_cache_reorder(rosa_kv_cache *kv, const int *src_rows);
/* The same, moving only positions [from, n_real) of each moved row (those
 * a ring still holds): for rows whose earlier positions are already equal
 * (beams of one prompt share the prompt's).  Rows are copied in an order
 * that needs no scratch except for cycles. */
int rosa_kv_cache_reorder_from(rosa_kv_cache *kv, const int *src_rows, int from);

#endif
