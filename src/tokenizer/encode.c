/* encode.c: rosa_tokenizer_encode: added tokens are split out of the raw
 * text, each remaining segment is normalized, split again on normalized added
 * tokens, pre-tokenized and run through BPE; then the post-processor adds
 * BOS/EOS. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

/* Rust regex's \w (Unicode): alphabetic, marks, decimal digits, connectors. */
static int is_word_char(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
                          (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return 1; /* Join_Control */
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC: return 1;
    default: return 0;
    }
}

static uint32_t last_cp(const char *s, size_t n) {
    size_t k = n - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    int l;
    return tok_utf8_decode(s + k, n - k, &l);
}

/* Start of the trailing run of whitespace of s[0..n). */
static size_t trailing_ws_start(const char *s, size_t n) {
    while (n > 0) {
        size_t k = n - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        int l;
        if (!tok_is_whitespace(tok_utf8_decode(s + k, n - k, &l))) break;
        n = k;
    }
    return n;
}

static size_t leading_ws_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int l;
        if (!tok_is_whitespace(tok_utf8_decode(s + i, n - i, &l))) break;
        i += (size_t)l;
    }
    return i;
}

/* A piece of text between added tokens (added < 0) or an added token. */
typedef int (*seg_fn)(tok_enc *e, const char *s, size_t a, size_t b, int32_t added,
                      int at_origin);

/* HF's AddedVocabulary::find_matches with a leftmost-longest automaton. */
static int split_added(tok_enc *e, const tok_trie *t, const char *s, size_t n, int at_origin,
                       seg_fn fn) {
    const rosa_tokenizer *tok = e->tok;
    size_t start_offset = 0, i = 0;
    if (t->n_tokens > 0) {
        while (i < n) {
            size_t pos = i, mlen = 0;
            int32_t tk = -1;
            for (; pos < n; pos++) {
                uint8_t c = (uint8_t)s[pos];
                if (!(t->first[c >> 3] & (1u << (c & 7)))) continue;
                mlen = tok_trie_longest(t, s + pos, n - pos, &tk);
                if (mlen) break;
            }
            if (!mlen) break;
            size_t start = pos, stop = pos + mlen;
            i = stop;
            const tok_added *a = &tok->added[tk];
            if (a->single_word) {
                int start_space = start == 0 || !is_word_char(last_cp(s, start));
                int l;
                int stop_space = stop == n || !is_word_char(tok_utf8_decode(s + stop, n - stop, &l));
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t ns = trailing_ws_start(s, start);
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) stop += leading_ws_len(s + stop, n - stop);
            if (start_offset < start && fn(e, s, start_offset, start, -1, at_origin) < 0) return -1;
            if (fn(e, s, start, stop, tk, at_origin) < 0) return -1;
            start_offset = stop;
        }
    }
    if (start_offset < n && fn(e, s, start_offset, n, -1, at_origin) < 0) return -1;
    return 0;
}

static int on_norm_segment(tok_enc *e, const char *s, size_t a, size_t b, int32_t added,
                           int at_origin) {
    if (added >= 0) return tok_enc_push(e, e->tok->added[added].id);
    return tok_pretokenize(e, s + a, b - a, at_origin && a == 0);
}

static int on_raw_segment(tok_enc *e, const char *s, size_t a, size_t b, int32_t added,
                          int at_origin) {
    (void)at_origin;
    if (added >= 0) return tok_enc_push(e, e->tok->added[added].id);
    if (b <= a) return 0;
    if (tok_normalize(e->tok, s + a, b - a, &e->nbuf) < 0) return -1;
    if (e->nbuf.len == 0) return 0;
    /* nbuf is not touched again until this segment is done */
    return split_added(e, &e->tok->trie_norm, e->nbuf.data, e->nbuf.len, a == 0, on_norm_segment);
}

int rosa_tokenizer_encode(const rosa_tokenizer *tok, const char *text, size_t len,
                          int add_special, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!tok) return rosa_fail("rosa_tokenizer_encode: tokenizer is NULL");
    if (!text && len) return rosa_fail("rosa_tokenizer_encode: text is NULL");
    if (len > (size_t)INT32_MAX) return rosa_fail("input text too long (%zu bytes)", len);
    size_t valid = rosa_utf8_valid_prefix(text, len);
    if (valid != len) return rosa_fail("input is not valid UTF-8 at byte %zu", valid);
    tok_enc e;
    memset(&e, 0, sizeof e);
    e.tok = tok;
    e.md = pcre2_match_data_create(1, NULL);
    if (!e.md) return rosa_fail("out of memory for regex match data");
    int rc = 0;
    if (add_special)
        for (int i = 0; i < tok->n_pre && rc == 0; i++) rc = tok_enc_push(&e, tok->pre_ids[i]);
    if (rc == 0 && len) rc = split_added(&e, &tok->trie_raw, text, len, 1, on_raw_segment);
    if (add_special)
        for (int i = 0; i < tok->n_post && rc == 0; i++) rc = tok_enc_push(&e, tok->post_ids[i]);
    if (rc == 0 && !e.ids) rc = tok_enc_push(&e, 0), e.n_ids = 0; /* a valid pointer */
    if (rc < 0) {
        tok_enc_free(&e);
        return -1;
    }
    *ids = e.ids;
    *n_ids = e.n_ids;
    e.ids = NULL;
    tok_enc_free(&e);
    return 0;
}
