/* kv_ops.c: KV-cache row copies and reordering (see kv_ops.h).
 *
 * A cache keeps each layer's keys by position (model.h): position p of row b
 * sits in row p % rows[l] of the layer, so caches whose layers keep the same
 * rows agree on where every position lies, and rings keep only the last
 * rows[l] positions to move. */
#include "kv_ops.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Row b's keys (or values, base v) in layer l: [rows[l]][kv_dim]. */
static inline float *row_ptr(float *base, const rosa_kv_cache *kv, int l, int b) {
    return base + kv->off[l] + (size_t)b * (size_t)kv->rows[l] * (size_t)kv->kv_dim;
}

/* The positions of [from, n) that a layer of `rows` rows still holds. */
static inline int held_from(int from, int n, int rows) { return n - rows > from ? n - rows : from; }

/* Copies the entries of positions [p0, p1) from src to dst, of K floats each;
 * in a buffer of `ring` rows position p is row p % ring, in a packed one
 * (ring 0) row p - p0. */
static void copy_positions(float *dst, int dst_ring, const float *src, int src_ring, int p0, int p1, int K) {
    for (int p = p0; p < p1; p++)
        memcpy(dst + (size_t)(dst_ring ? p % dst_ring : p - p0) * K, src + (size_t)(src_ring ? p % src_ring : p - p0) * K,
               sizeof(float) * (size_t)K);
}

int rosa_kv_cache_copy_seq(rosa_kv_cache *dst, int dst_b, const rosa_kv_cache *src, int src_b) {
    if (dst->L != src->L || dst->kv_dim != src->kv_dim)
        return rosa_fail("kv cache copy: the caches have different shapes");
    if (dst_b < 0 || dst_b >= dst->B || src_b < 0 || src_b >= src->B)
        return rosa_fail("kv cache copy: row out of range");
    if (src->len > dst->cap)
        return rosa_fail("kv cache copy: %d slots do not fit a cache of %d", src->len, dst->cap);
    if (dst == src && dst_b == src_b) return 0;
    int n = src->n_real[src_b];
    for (int l = 0; l < dst->L; l++) {
        /* A layer's rows are min(window, cap): where the caches differ, the
         * smaller still holds what a window needs. */
        int dr = dst->rows[l], sr = src->rows[l], p0 = held_from(0, n, dr < sr ? dr : sr);
        copy_positions(row_ptr(dst->k, dst, l, dst_b), dr, row_ptr(src->k, src, l, src_b), sr, p0, n, dst->kv_dim);
        copy_positions(row_ptr(dst->v, dst, l, dst_b), dr, row_ptr(src->v, src, l, src_b), sr, p0, n, dst->kv_dim);
    }
    if (dst->len < src->len) dst->len = src->len; /* the other rows' new slots are padding */
    dst->n_real[dst_b] = n;
    return 0;
}

/* A row's positions [from, n_real) saved aside (to break a cycle of moves):
 * per layer l the ones it holds, packed, at k + at[l]. */
typedef struct {
    float *k, *v;
    size_t *at; /* [L] */
    int n_real;
} saved_row;

/* Floats one layer of a saved row takes. */
static size_t saved_floats(const rosa_kv_cache *kv, int l, int from, int n) {
    int p0 = held_from(from, n, kv->rows[l]);
    return p0 < n ? (size_t)(n - p0) * (size_t)kv->kv_dim : 0;
}

static void row_save(const rosa_kv_cache *kv, int s, int from, saved_row *t) {
    int n = kv->n_real[s];
    size_t at = 0;
    for (int l = 0; l < kv->L; l++) {
        int p0 = held_from(from, n, kv->rows[l]);
        t->at[l] = at;
        copy_positions(t->k + at, 0, row_ptr(kv->k, kv, l, s), kv->rows[l], p0, n, kv->kv_dim);
        copy_positions(t->v + at, 0, row_ptr(kv->v, kv, l, s), kv->rows[l], p0, n, kv->kv_dim);
        at += saved_floats(kv, l, from, n);
    }
    t->n_real = n;
}

/* Row d's positions [from, n_real) become row s's, or the saved copy t's
 * when not NULL. */
static void row_copy(rosa_kv_cache *kv, int d, int s, const saved_row *t, int from) {
    int n = t ? t->n_real : kv->n_real[s];
    for (int l = 0; l < kv->L; l++) {
        int r = kv->rows[l], p0 = held_from(from, n, r);
        copy_positions(row_ptr(kv->k, kv, l, d), r, t ? t->k + t->at[l] : row_ptr(kv->k, kv, l, s), t ? 0 : r, p0, n,
                       kv->kv_dim);
        copy_positions(row_ptr(kv->v, kv, l, d), r, t ? t->v + t->at[l] : row_ptr(kv->v, kv, l, s), t ? 0 : r, p0, n,
                       kv->kv_dim);
    }
    kv->n_real[d] = n;
}

int rosa_kv_cache_reorder_from(rosa_kv_cache *kv, const int *src_rows, int from) {
    int B = kv->B;
    if (from < 0) from = 0;
    for (int r = 0; r < B; r++)
        if (src_rows[r] < 0 || src_rows[r] >= B) return rosa_fail("kv cache reorder: row %d out of range", src_rows[r]);
    /* Rows are written in an order that never overwrites a row still to be
     * read (beams are mostly chains: row 3 <- 2 <- 1 <- 0); only a cycle
     * (e.g. two beams swapping) needs a row saved aside. */
    int *src = rosa_malloc(sizeof(int) * (size_t)B * 3, "kv cache reorder");
    if (!src) return -1;
    int *need = src + B, *saved_at = src + 2 * B;
    memcpy(src, src_rows, sizeof(int) * (size_t)B);
    int pending = 0;
    for (int r = 0; r < B; r++) {
        need[r] = 0;
        saved_at[r] = -1;
    }
    for (int r = 0; r < B; r++)
        if (src[r] != r) {
            need[src[r]]++;
            pending++;
        }
    saved_row *saves = NULL;
    int n_saves = 0, rc = 0;
    while (pending > 0 && rc == 0) {
        int progress = 0;
        for (int r = 0; r < B; r++) {
            if (src[r] == r || need[r] > 0) continue;
            int s = src[r];
            row_copy(kv, r, s, saved_at[s] >= 0 ? &saves[saved_at[s]] : NULL, from);
            need[s]--;
            src[r] = r;
            pending--;
            progress = 1;
        }
        if (progress) continue;
        /* a cycle: save one of its rows, whose readers then read the copy */
        int c = -1;
        for (int r = 0; r < B && c < 0; r++)
            if (src[r] != r && need[r] > 0 && saved_at[r] < 0) c = r;
        saved_row *ns = rosa_realloc(saves, sizeof(saved_row) * (size_t)(n_saves + 1), "kv cache reorder");
        if (!ns || c < 0) {
            rc = c < 0 ? rosa_fail("kv cache reorder: internal error") : -1;
            break;
        }
        saves = ns;
        saved_row *t = &saves[n_saves++];
        size_t w = 0;
        for (int l = 0; l < kv->L; l++) w += saved_floats(kv, l, from, kv->n_real[c]);
        t->k = rosa_malloc(sizeof(float) * (w ? w : 1), "kv cache reorder");
        t->v = t->k ? rosa_malloc(sizeof(float) * (w ? w : 1), "kv cache reorder") : NULL;
        t->at = t->v ? rosa_malloc(sizeof(size_t) * (size_t)kv->L, "kv cache reorder") : NULL;
        if (!t->at) {
            rc = -1;
            break;
        }
        row_save(kv, c, from, t);
        saved_at[c] = n_saves - 1;
        need[c] = 0; /* its readers now read the saved copy */
    }
    for (int i = 0; i < n_saves; i++) {
        free(saves[i].k);
        free(saves[i].v);
        free(saves[i].at);
    }
    free(saves);
    free(src);
    return rc;
}

int rosa_kv_cache_reorder(rosa_kv_cache *kv, const int *src_rows) { return rosa_kv_cache_reorder_from(kv, src_rows, 0); }
