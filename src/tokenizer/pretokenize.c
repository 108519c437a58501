/* pretokenize.c: the pre-tokenizers (Split with its five behaviors, Metaspace,
 * ByteLevel), run depth-first: each step splits its piece and hands every
 * non-empty sub-piece to the next step, the last one to the BPE model. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static int run_step(tok_enc *e, int k, const char *s, size_t n, int at_origin);

/* ---- the list of (start, end, is_match) covering a piece, per depth ---- */

static int spl_reserve(tok_enc *e, int k, size_t triples) {
    if (triples * 3 <= e->spl_cap[k]) return 0;
    size_t cap = e->spl_cap[k] ? e->spl_cap[k] : 96;
    while (cap < triples * 3) cap *= 2;
    size_t *p = rosa_realloc(e->spl[k], cap * sizeof *p, "pre-tokenizer splits");
    if (!p) return -1;
    e->spl[k] = p;
    e->spl_cap[k] = cap;
    return 0;
}

static int spl_add(tok_enc *e, int k, size_t a, size_t b, size_t m) {
    if (spl_reserve(e, k, e->spl_n[k] + 1) < 0) return -1;
    size_t *t = e->spl[k] + 3 * e->spl_n[k]++;
    t[0] = a;
    t[1] = b;
    t[2] = m;
    return 0;
}

typedef struct {
    tok_enc *e;
    int k;
    size_t prev;
} match_ctx;

/* HF's Pattern::find_matches: the gaps become non-matches. */
static int on_match(void *user, size_t start, size_t end) {
    match_ctx *c = user;
    if (c->prev != start && spl_add(c->e, c->k, c->prev, start, 0) < 0) return -1;
    if (spl_add(c->e, c->k, start, end, 1) < 0) return -1;
    c->prev = end;
    return 0;
}

/* Applies a SplitDelimiterBehavior to the triples of depth k, then runs the
 * next step on each kept, non-empty piece. */
static int apply_behavior(tok_enc *e, int k, tok_split_behavior beh, int invert, const char *s,
                          int at_origin) {
    size_t cnt = e->spl_n[k];
    size_t *t = e->spl[k];
    if (invert)
        for (size_t i = 0; i < cnt; i++) t[3 * i + 2] = !t[3 * i + 2];
    size_t first = 0, last = cnt; /* result: t[first..last) */
    if (beh == SPLIT_CONTIGUOUS || beh == SPLIT_MERGED_PREV) {
        size_t w = 0;
        int prev = 0;
        for (size_t i = 0; i < cnt; i++) {
            int m = (int)t[3 * i + 2];
            int merge = beh == SPLIT_CONTIGUOUS ? (m == prev) : (m && !prev);
            if (merge && w > 0) {
                t[3 * (w - 1) + 1] = t[3 * i + 1];
            } else {
                t[3 * w] = t[3 * i];
                t[3 * w + 1] = t[3 * i + 1];
                t[3 * w + 2] = 0;
                w++;
            }
            prev = m;
        }
        last = w;
    } else if (beh == SPLIT_MERGED_NEXT) {
        size_t w = cnt;
        int prev = 0;
        for (size_t i = cnt; i-- > 0;) {
            int m = (int)t[3 * i + 2];
            if (m && !prev && w < cnt) {
                t[3 * w] = t[3 * i];
            } else {
                w--;
                t[3 * w] = t[3 * i];
                t[3 * w + 1] = t[3 * i + 1];
                t[3 * w + 2] = 0;
            }
            prev = m;
        }
        first = w;
    } else if (beh == SPLIT_ISOLATED) {
        for (size_t i = 0; i < cnt; i++) t[3 * i + 2] = 0;
    } /* SPLIT_REMOVED: the matches are the ones to drop */
    for (size_t i = first; i < last; i++) {
        /* re-read: the next step may grow a deeper list, never this one */
        size_t a = e->spl[k][3 * i], b = e->spl[k][3 * i + 1], rm = e->spl[k][3 * i + 2];
        if (rm || b <= a) continue;
        if (run_step(e, k + 1, s + a, b - a, at_origin && a == 0) < 0) return -1;
    }
    return 0;
}

static int split_step(tok_enc *e, int k, const tok_pretok *p, const char *s, size_t n,
                      int at_origin) {
    e->spl_n[k] = 0;
    match_ctx c = {e, k, 0};
    if (tok_regex_foreach(p->re, e->md, s, n, on_match, &c) < 0) return -1;
    if (c.prev != n && spl_add(e, k, c.prev, n, 0) < 0) return -1;
    return apply_behavior(e, k, p->behavior, p->invert, s, at_origin);
}

static int metaspace_step(tok_enc *e, int k, const tok_pretok *p, const char *s, size_t n,
                          int at_origin) {
    rosa_buf *b = &e->scratch[k];
    b->len = 0;
    /* replace ' ' by the replacement */
    size_t i = 0;
    while (i < n) {
        const char *sp = memchr(s + i, ' ', n - i);
        size_t j = sp ? (size_t)(sp - s) : n;
        if (rosa_buf_append(b, s + i, j - i) < 0) return -1;
        if (!sp) break;
        if (rosa_buf_append(b, p->rep, (size_t)p->rep_len) < 0) return -1;
        i = j + 1;
    }
    int starts = b->len >= (size_t)p->rep_len && memcmp(b->data, p->rep, (size_t)p->rep_len) == 0;
    int prepend = !starts && (p->prepend == PREPEND_ALWAYS ||
                              (p->prepend == PREPEND_FIRST && at_origin));
    if (prepend) {
        if (rosa_buf_append(b, p->rep, (size_t)p->rep_len) < 0) return -1;
        memmove(b->data + p->rep_len, b->data, b->len - (size_t)p->rep_len);
        memcpy(b->data, p->rep, (size_t)p->rep_len);
    }
    const char *t = b->data;
    size_t tn = b->len;
    if (!p->split) return run_step(e, k + 1, t, tn, at_origin);
    e->spl_n[k] = 0;
    size_t prev = 0, r = (size_t)p->rep_len;
    for (size_t a = 0; a + r <= tn;) {
        const char *hit = memmem(t + a, tn - a, p->rep, r);
        if (!hit) break;
        size_t h = (size_t)(hit - t);
        if (prev != h && spl_add(e, k, prev, h, 0) < 0) return -1;
        if (spl_add(e, k, h, h + r, 1) < 0) return -1;
        prev = a = h + r;
    }
    if (prev != tn && spl_add(e, k, prev, tn, 0) < 0) return -1;
    return apply_behavior(e, k, SPLIT_MERGED_NEXT, 0, t, at_origin);
}

static int run_step(tok_enc *e, int k, const char *s, size_t n, int at_origin) {
    const rosa_tokenizer *tok = e->tok;
    if (n == 0) return 0;
    if (k == tok->n_pt) return tok_bpe_word(e, s, n);
    const tok_pretok *p = &tok->pt[k];
    switch (p->type) {
    case PT_SPLIT: return split_step(e, k, p, s, n, at_origin);
    case PT_METASPACE: return metaspace_step(e, k, p, s, n, at_origin);
    case PT_BYTELEVEL:
        if (p->add_prefix_space && s[0] != ' ') {
            rosa_buf *b = &e->scratch[k];
            b->len = 0;
            if (rosa_buf_putc(b, ' ') < 0 || rosa_buf_append(b, s, n) < 0) return -1;
            return run_step(e, k + 1, b->data, b->len, at_origin);
        }
        return run_step(e, k + 1, s, n, at_origin);
    }
    return rosa_fail("internal error: bad pre-tokenizer step");
}

int tok_pretokenize(tok_enc *e, const char *s, size_t n, int at_origin) {
    return run_step(e, 0, s, n, at_origin);
}
