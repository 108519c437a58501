/* kv_ops.c: KV-cache row copies and reordering (see kv_ops.h). */
#include "kv_ops.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Start of row b's slots in layer l (k or v). */
static inline float *row_ptr(float *base, const rosa_kv_cache *kv, int l, int b) {
    return base + (((size_t)l * (size_t)kv->B + (size_t)b) * (size_t)kv->cap) * (size_t)kv->kv_dim;
}

/* Extends the used length of every row to n slots, the new ones padding. */
static void grow_length(rosa_kv_cache *kv, int n) {
    for (int b = 0; b < kv->B && kv->len < n; b++) {
        memset(kv->valid + (size_t)b * kv->cap + kv->len, 0, (size_t)(n - kv->len));
        memset(kv->pos + (size_t)b * kv->cap + kv->len, 0, sizeof(int) * (size_t)(n - kv->len));
    }
    if (n > kv->len) kv->len = n;
}

int rosa_kv_cache_copy_seq(rosa_kv_cache *dst, int dst_b, const rosa_kv_cache *src, int src_b) {
    if (dst->L != src->L || dst->kv_dim != src->kv_dim)
        return rosa_fail("kv cache copy: the caches have different shapes");
    if (dst_b < 0 || dst_b >= dst->B || src_b < 0 || src_b >= src->B)
        return rosa_fail("kv cache copy: row out of range");
    int n = src->len;
    if (n > dst->cap) return rosa_fail("kv cache copy: %d slots do not fit a cache of %d", n, dst->cap);
    if (dst == src && dst_b == src_b) return 0;
    int n_real = src->n_real[src_b];
    if (dst->len < n) grow_length(dst, n); /* before the copy: it marks the new slots padding */
    size_t bytes = sizeof(float) * (size_t)n * (size_t)dst->kv_dim;
    for (int l = 0; l < dst->L; l++) {
        memmove(row_ptr(dst->k, dst, l, dst_b), row_ptr(src->k, src, l, src_b), bytes);
        memmove(row_ptr(dst->v, dst, l, dst_b), row_ptr(src->v, src, l, src_b), bytes);
    }
    memmove(dst->valid + (size_t)dst_b * dst->cap, src->valid + (size_t)src_b * src->cap, (size_t)n);
    memmove(dst->pos + (size_t)dst_b * dst->cap, src->pos + (size_t)src_b * src->cap, sizeof(int) * (size_t)n);
    if (dst->len > n) {
        memset(dst->valid + (size_t)dst_b * dst->cap + n, 0, (size_t)(dst->len - n));
        memset(dst->pos + (size_t)dst_b * dst->cap + n, 0, sizeof(int) * (size_t)(dst->len - n));
    }
    dst->n_real[dst_b] = n_real;
    return 0;
}

/* A row's slots [from, len) saved aside (to break a cycle of moves). */
typedef struct {
    float *k, *v; /* [L][n][kv_dim] */
    uint8_t *valid;
    int *pos;
    int n_real;
} saved_row;

static void row_save(const rosa_kv_cache *kv, int s, int from, saved_row *t) {
    size_t n = (size_t)(kv->len - from), w = n * (size_t)kv->kv_dim;
    for (int l = 0; l < kv->L; l++) {
        memcpy(t->k + (size_t)l * w, row_ptr(kv->k, kv, l, s) + (size_t)from * kv->kv_dim, sizeof(float) * w);
        memcpy(t->v + (size_t)l * w, row_ptr(kv->v, kv, l, s) + (size_t)from * kv->kv_dim, sizeof(float) * w);
    }
    memcpy(t->valid, kv->valid + (size_t)s * kv->cap + from, n);
    memcpy(t->pos, kv->pos + (size_t)s * kv->cap + from, sizeof(int) * n);
    t->n_real = kv->n_real[s];
}

/* Row d's slots [from, len) become row s's, or the saved copy t when not NULL. */
static void row_copy(rosa_kv_cache *kv, int d, int s, const saved_row *t, int from) {
    size_t n = (size_t)(kv->len - from), w = n * (size_t)kv->kv_dim, off = (size_t)from * kv->kv_dim;
    for (int l = 0; l < kv->L; l++) {
        memcpy(row_ptr(kv->k, kv, l, d) + off, t ? t->k + (size_t)l * w : row_ptr(kv->k, kv, l, s) + off,
               sizeof(float) * w);
        memcpy(row_ptr(kv->v, kv, l, d) + off, t ? t->v + (size_t)l * w : row_ptr(kv->v, kv, l, s) + off,
               sizeof(float) * w);
    }
    memcpy(kv->valid + (size_t)d * kv->cap + from, t ? t->valid : kv->valid + (size_t)s * kv->cap + from, n);
    memcpy(kv->pos + (size_t)d * kv->cap + from, t ? t->pos : kv->pos + (size_t)s * kv->cap + from, sizeof(int) * n);
    kv->n_real[d] = t ? t->n_real : kv->n_real[s];
}

int rosa_kv_cache_reorder_from(rosa_kv_cache *kv, const int *src_rows, int from) {
    int B = kv->B;
    if (from < 0) from = 0;
    for (int r = 0; r < B; r++)
        if (src_rows[r] < 0 || src_rows[r] >= B) return rosa_fail("kv cache reorder: row %d out of range", src_rows[r]);
    if (from >= kv->len) { /* no slots to move; the real-token counts still follow */
        int *old = rosa_malloc(sizeof(int) * (size_t)B, "kv cache reorder");
        if (!old) return -1;
        memcpy(old, kv->n_real, sizeof(int) * (size_t)B);
        for (int r = 0; r < B; r++) kv->n_real[r] = old[src_rows[r]];
        free(old);
        return 0;
    }
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
    size_t w = (size_t)(kv->len - from) * (size_t)kv->kv_dim * (size_t)kv->L;
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
        saved_row *t = &saves[n_saves];
        t->k = rosa_malloc(sizeof(float) * w, "kv cache reorder");
        t->v = t->k ? rosa_malloc(sizeof(float) * w, "kv cache reorder") : NULL;
        t->valid = t->v ? rosa_malloc((size_t)(kv->len - from), "kv cache reorder") : NULL;
        t->pos = t->valid ? rosa_malloc(sizeof(int) * (size_t)(kv->len - from), "kv cache reorder") : NULL;
        n_saves++;
        if (!t->pos) {
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
        free(saves[i].valid);
        free(saves[i].pos);
    }
    free(saves);
    free(src);
    return rc;
}

int rosa_kv_cache_reorder(rosa_kv_cache *kv, const int *src_rows) { return rosa_kv_cache_reorder_from(kv, src_rows, 0); }
