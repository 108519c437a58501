/* bpe.c: the BPE model: a word's characters (or bytes, for byte-level) become
 * symbols, with byte fallback and unk handling as HF's BPE::merge_word, then
 * the pair of lowest merge rank (leftmost on ties) is merged until none is
 * left.  Short words use a linear scan, long ones a heap over a linked list
 * (HF's Word::merge_all); both give the same result.  Results of short words
 * are cached. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

int tok_bpe_heap_min = 48;
int tok_bpe_no_cache = 0;

int tok_enc_push(tok_enc *e, int32_t id) {
    if (e->n_ids == e->cap_ids) {
        size_t cap = e->cap_ids ? e->cap_ids * 2 : 256;
        int32_t *p = rosa_realloc(e->ids, cap * sizeof *p, "token ids");
        if (!p) return -1;
        e->ids = p;
        e->cap_ids = cap;
    }
    e->ids[e->n_ids++] = id;
    return 0;
}

/* ------------------------------------------------------------------ cache */

static int try_lock(tok_cache_shard *c) {
    return !atomic_flag_test_and_set_explicit(&c->busy, memory_order_acquire);
}

static void unlock(tok_cache_shard *c) { atomic_flag_clear_explicit(&c->busy, memory_order_release); }

void tok_cache_init(rosa_tokenizer *tok) {
    for (int i = 0; i < TOK_CACHE_SHARDS; i++) {
        memset(&tok->cache[i], 0, sizeof tok->cache[i]);
        atomic_flag_clear(&tok->cache[i].busy);
    }
}

void tok_cache_free(rosa_tokenizer *tok) {
    for (int i = 0; i < TOK_CACHE_SHARDS; i++) {
        tok_cache_shard *c = &tok->cache[i];
        free(c->slots);
        rosa_buf_free(&c->keys);
        free(c->ids);
    }
}

/* Appends the cached ids of w to e; returns 1 on a hit, 0 on a miss. */
static int cache_get(tok_enc *e, const char *w, size_t n, uint64_t h) {
    tok_cache_shard *c = (tok_cache_shard *)&e->tok->cache[h >> 60];
    if (!try_lock(c)) return 0;
    int hit = 0;
    if (c->slots) {
        for (uint32_t i = (uint32_t)h & (TOK_CACHE_SLOTS - 1);; i = (i + 1) & (TOK_CACHE_SLOTS - 1)) {
            const tok_cslot *s = &c->slots[i];
            if (s->klen == 0) break;
            if (s->h == h && s->klen == n && memcmp(c->keys.data + s->koff, w, n) == 0) {
                hit = 1;
                for (uint16_t j = 0; j < s->nids; j++)
                    if (tok_enc_push(e, c->ids[s->ioff + j]) < 0) {
                        hit = -1;
                        break;
                    }
                break;
            }
        }
    }
    unlock(c);
    return hit;
}

static void cache_put(tok_enc *e, const char *w, size_t n, uint64_t h, const int32_t *ids,
                      size_t n_ids) {
    tok_cache_shard *c = (tok_cache_shard *)&e->tok->cache[h >> 60];
    if (n_ids > 0xFFFF || !try_lock(c)) return;
    if (!c->slots) c->slots = calloc(TOK_CACHE_SLOTS, sizeof *c->slots);
    if (!c->slots || c->n >= TOK_CACHE_MAX_ENTRIES) goto out;
    uint32_t i = (uint32_t)h & (TOK_CACHE_SLOTS - 1);
    for (;; i = (i + 1) & (TOK_CACHE_SLOTS - 1)) {
        const tok_cslot *s = &c->slots[i];
        if (s->klen == 0) break;
        if (s->h == h && s->klen == n && memcmp(c->keys.data + s->koff, w, n) == 0) goto out;
    }
    if (c->n_ids + n_ids > c->cap_ids) {
        size_t cap = c->cap_ids ? c->cap_ids * 2 : 4096;
        while (cap < c->n_ids + n_ids) cap *= 2;
        int32_t *p = realloc(c->ids, cap * sizeof *p);
        if (!p) goto out;
        c->ids = p;
        c->cap_ids = cap;
    }
    size_t koff = c->keys.len;
    if (rosa_buf_append(&c->keys, w, n) < 0) goto out;
    if (n_ids) memcpy(c->ids + c->n_ids, ids, n_ids * sizeof *ids); /* a word of no ids: c->ids may be NULL */
    c->slots[i] = (tok_cslot){h, (uint32_t)koff, (uint32_t)c->n_ids, (uint16_t)n, (uint16_t)n_ids};
    c->n_ids += n_ids;
    c->n++;
out:
    unlock(c);
}

/* ---------------------------------------------------------------- symbols */

static int sym_reserve(tok_enc *e, size_t n) {
    if (n <= e->sym_cap) return 0;
    size_t cap = e->sym_cap ? e->sym_cap : 64;
    while (cap < n) cap *= 2;
    int32_t **arrs[] = {&e->sym_id, &e->sym_prev, &e->sym_next, &e->pair_rank, &e->pair_new};
    for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++) {
        int32_t *p = rosa_realloc(*arrs[i], cap * sizeof *p, "BPE symbols");
        if (!p) return -1;
        *arrs[i] = p;
    }
    e->sym_cap = cap;
    return 0;
}

typedef struct {
    tok_enc *e;
    size_t n;
    int32_t unk_id;
    int unk_pending;
} sym_builder;

static int sb_add(sym_builder *b, int32_t id) {
    if (sym_reserve(b->e, b->n + 1) < 0) return -1;
    b->e->sym_id[b->n++] = id;
    return 0;
}

/* One character (its bytes c[0..cn)) of the word, as HF's merge_word. */
static int sb_char(sym_builder *b, const char *c, size_t cn, int32_t id) {
    const rosa_tokenizer *tok = b->e->tok;
    if (id < 0) id = cn == 1 && !((unsigned char)c[0] & 0x80) ? tok->ascii_id[(unsigned char)c[0]]
                                                              : tok_strmap_get(&tok->vocab, c, cn);
    if (id >= 0) {
        if (b->unk_pending) {
            if (sb_add(b, b->unk_id) < 0) return -1;
            b->unk_pending = 0;
        }
        return sb_add(b, id);
    }
    if (tok->byte_fallback) {
        size_t k = 0;
        while (k < cn && tok->byte_tok[(unsigned char)c[k]] >= 0) k++;
        if (k == cn) { /* all bytes known; a pending unk stays pending, as in HF */
            for (k = 0; k < cn; k++)
                if (sb_add(b, tok->byte_tok[(unsigned char)c[k]]) < 0) return -1;
            return 0;
        }
    }
    if (tok->unk_token) {
        if (tok->unk_id < 0)
            return rosa_fail("%s: unk_token \"%s\" is not in the vocabulary", tok->file,
                             tok->unk_token);
        if (b->unk_pending && !tok->fuse_unk && sb_add(b, b->unk_id) < 0) return -1;
        b->unk_id = tok->unk_id;
        b->unk_pending = 1;
    }
    /* no unk token: the character is dropped, as HF does */
    return 0;
}

/* ------------------------------------------------------------------ merge */

static void merge_linear(tok_enc *e, size_t n, size_t out0) {
    const tok_pairmap *mp = &e->tok->merges;
    int32_t *id = e->sym_id, *rank = e->pair_rank, *nw = e->pair_new;
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pairslot *s = tok_pairmap_get(mp, id[i], id[i + 1]);
        rank[i] = s ? s->rank : INT32_MAX;
        nw[i] = s ? s->id : -1;
    }
    while (n > 1) {
        size_t best = 0;
        int32_t br = INT32_MAX;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < br) {
                br = rank[i];
                best = i;
            }
        if (br == INT32_MAX) break;
        id[best] = nw[best];
        memmove(id + best + 1, id + best + 2, (n - best - 2) * sizeof *id);
        memmove(rank + best + 1, rank + best + 2, (n - best - 2) * sizeof *rank);
        memmove(nw + best + 1, nw + best + 2, (n - best - 2) * sizeof *nw);
        n--;
        for (size_t i = best ? best - 1 : 0; i <= best && i + 1 < n; i++) {
            const tok_pairslot *s = tok_pairmap_get(mp, id[i], id[i + 1]);
            rank[i] = s ? s->rank : INT32_MAX;
            nw[i] = s ? s->id : -1;
        }
    }
    (void)out0;
    for (size_t i = 0; i < n; i++) e->ids[out0 + i] = id[i];
    e->n_ids = out0 + n;
}

/* Min-heap of (rank, pos, new_id) triples, ordered by rank then pos. */
static int heap_less(const int32_t *a, const int32_t *b) {
    return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]);
}

static int heap_push(tok_enc *e, int32_t rank, int32_t pos, int32_t nid) {
    if (e->heap_n == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 256;
        int32_t *p = rosa_realloc(e->heap, cap * 3 * sizeof *p, "BPE heap");
        if (!p) return -1;
        e->heap = p;
        e->heap_cap = cap;
    }
    int32_t *h = e->heap;
    size_t i = e->heap_n++;
    int32_t x[3] = {rank, pos, nid};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(x, h + 3 * p)) break;
        memcpy(h + 3 * i, h + 3 * p, 3 * sizeof *h);
        i = p;
    }
    memcpy(h + 3 * i, x, sizeof x);
    return 0;
}

static void heap_pop(tok_enc *e, int32_t *out) {
    int32_t *h = e->heap;
    memcpy(out, h, 3 * sizeof *h);
    size_t n = --e->heap_n;
    if (n == 0) return;
    int32_t x[3];
    memcpy(x, h + 3 * n, sizeof x);
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const int32_t *best = x;
        if (l < n && heap_less(h + 3 * l, best)) {
            m = l;
            best = h + 3 * l;
        }
        if (r < n && heap_less(h + 3 * r, best)) m = r;
        if (m == i) break;
        memcpy(h + 3 * i, h + 3 * m, 3 * sizeof *h);
        i = m;
    }
    memcpy(h + 3 * i, x, sizeof x);
}

static int merge_heap(tok_enc *e, size_t n, size_t out0) {
    const tok_pairmap *mp = &e->tok->merges;
    int32_t *id = e->sym_id, *prev = e->sym_prev, *next = e->sym_next;
    e->heap_n = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pairslot *s = tok_pairmap_get(mp, id[i], id[i + 1]);
        if (s && heap_push(e, s->rank, (int32_t)i, s->id) < 0) return -1;
    }
    while (e->heap_n > 0) {
        int32_t top[3];
        heap_pop(e, top);
        int32_t pos = top[1];
        if (id[pos] < 0 || next[pos] < 0) continue; /* removed, or last */
        int32_t nx = next[pos];
        const tok_pairslot *s = tok_pairmap_get(mp, id[pos], id[nx]);
        if (!s || s->id != top[2]) continue; /* stale entry */
        id[pos] = top[2];
        id[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        if (prev[pos] >= 0) {
            const tok_pairslot *q = tok_pairmap_get(mp, id[prev[pos]], id[pos]);
            if (q && heap_push(e, q->rank, prev[pos], q->id) < 0) return -1;
        }
        if (next[pos] >= 0) {
            const tok_pairslot *q = tok_pairmap_get(mp, id[pos], id[next[pos]]);
            if (q && heap_push(e, q->rank, pos, q->id) < 0) return -1;
        }
    }
    size_t k = out0;
    for (size_t i = 0; i < n; i++)
        if (id[i] >= 0) e->ids[k++] = id[i];
    e->n_ids = k;
    return 0;
}

/* ------------------------------------------------------------------- word */

static int bpe_compute(tok_enc *e, const char *w, size_t n) {
    const rosa_tokenizer *tok = e->tok;
    sym_builder b = {e, 0, -1, 0};
    const char *mw = w; /* the word in the vocabulary's alphabet */
    size_t mn = n;
    int all_bytes_known = 1;
    if (tok->byte_level) {
        for (size_t i = 0; i < n; i++)
            if (tok->bl_id[(unsigned char)w[i]] < 0) all_bytes_known = 0;
        if (tok->ignore_merges || !all_bytes_known) { /* map to the alphabet */
            rosa_buf *m = &e->wbuf;
            m->len = 0;
            for (size_t i = 0; i < n; i++) {
                char u[4];
                int l = tok_utf8_encode(tok_byte_to_cp((uint8_t)w[i]), u);
                if (rosa_buf_append(m, u, (size_t)l) < 0) return -1;
            }
            mw = m->data;
            mn = m->len;
        }
    }
    if (tok->ignore_merges) {
        int32_t id = tok_strmap_get(&tok->vocab, mw, mn);
        if (id >= 0) return tok_enc_push(e, id);
    }
    if (tok->byte_level && all_bytes_known) {
        if (sym_reserve(e, n) < 0) return -1;
        for (size_t i = 0; i < n; i++) e->sym_id[i] = tok->bl_id[(unsigned char)w[i]];
        b.n = n;
    } else {
        for (size_t i = 0; i < mn;) {
            int l = rosa_utf8_len((unsigned char)mw[i]);
            if (i + (size_t)l > mn) l = (int)(mn - i);
            if (sb_char(&b, mw + i, (size_t)l, -1) < 0) return -1;
            i += (size_t)l;
        }
        if (b.unk_pending && sb_add(&b, b.unk_id) < 0) return -1;
    }
    size_t out0 = e->n_ids;
    for (size_t i = 0; i < b.n; i++) /* room for the result */
        if (tok_enc_push(e, 0) < 0) return -1;
    if (b.n < (size_t)tok_bpe_heap_min) {
        merge_linear(e, b.n, out0);
        return 0;
    }
    return merge_heap(e, b.n, out0);
}

int tok_bpe_word(tok_enc *e, const char *w, size_t n) {
    if (n == 0) return 0;
    if (n > TOK_CACHE_MAX_WORD || tok_bpe_no_cache) return bpe_compute(e, w, n);
    uint64_t h = tok_hash(w, n);
    int hit = cache_get(e, w, n, h);
    if (hit) return hit < 0 ? -1 : 0;
    size_t start = e->n_ids;
    if (bpe_compute(e, w, n) < 0) return -1;
    cache_put(e, w, n, h, e->ids + start, e->n_ids - start);
    return 0;
}

void tok_enc_free(tok_enc *e) {
    free(e->ids);
    if (e->md) pcre2_match_data_free(e->md);
    for (int i = 0; i <= TOK_MAX_STEPS; i++) rosa_buf_free(&e->scratch[i]);
    for (int i = 0; i < TOK_MAX_STEPS; i++) free(e->spl[i]);
    rosa_buf_free(&e->nbuf);
    rosa_buf_free(&e->wbuf);
    free(e->sym_id);
    free(e->sym_prev);
    free(e->sym_next);
    free(e->pair_rank);
    free(e->pair_new);
    free(e->heap);
    memset(e, 0, sizeof *e);
}
