/* normalize.c: the normalizers (NFC/NFD/NFKC/NFKD via utf8proc, Prepend,
 * Replace, Strip), applied in sequence. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

static int utf8proc_form(tok_norm_type t, const char *s, size_t n, rosa_buf *out) {
    int opts = UTF8PROC_STABLE;
    switch (t) {
    case NORM_NFC: opts |= UTF8PROC_COMPOSE; break;
    case NORM_NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case NORM_NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opts);
    if (r < 0) {
        free(dst);
        return rosa_fail("unicode normalization failed: %s", utf8proc_errmsg(r));
    }
    int rc = rosa_buf_append(out, dst, (size_t)r);
    free(dst);
    return rc;
}

/* ASCII is unchanged by every normalization form, and an ASCII character is
 * a starter that never composes with what precedes it.  So only the runs of
 * non-ASCII characters, each with the one character before it (a possible
 * base for a leading combining mark), go through utf8proc. */
static int unicode_form(tok_norm_type t, const char *s, size_t n, rosa_buf *out) {
    out->len = 0;
    size_t i = 0;
    while (i < n) {
        size_t a = i;
        while (a < n && !((unsigned char)s[a] & 0x80)) a++;
        if (a == n) break;
        size_t b = a;
        while (b < n && ((unsigned char)s[b] & 0x80)) b++;
        size_t a0 = a > i ? a - 1 : a; /* the ASCII character before the run */
        if (rosa_buf_append(out, s + i, a0 - i) < 0 || utf8proc_form(t, s + a0, b - a0, out) < 0)
            return -1;
        i = b;
    }
    return rosa_buf_append(out, s + i, n - i);
}

/* Replaces every non-overlapping occurrence (left to right) of a by b. */
static int replace_str(const char *s, size_t n, const char *a, size_t an, const char *b,
                       size_t bn, rosa_buf *out) {
    out->len = 0;
    size_t i = 0;
    while (i < n) {
        const char *hit = an ? memmem(s + i, n - i, a, an) : NULL;
        if (!hit) break;
        size_t k = (size_t)(hit - s);
        if (rosa_buf_append(out, s + i, k - i) < 0 || rosa_buf_append(out, b, bn) < 0) return -1;
        i = k + an;
    }
    return rosa_buf_append(out, s + i, n - i);
}

typedef struct {
    const char *s;
    rosa_buf *out;
    size_t pos;
    const char *b;
    size_t bn;
} re_replace_ctx;

static int re_replace_cb(void *user, size_t start, size_t end) {
    re_replace_ctx *c = user;
    if (rosa_buf_append(c->out, c->s + c->pos, start - c->pos) < 0 ||
        rosa_buf_append(c->out, c->b, c->bn) < 0)
        return -1;
    c->pos = end;
    return 0;
}

static int replace_re(const tok_norm *nm, const char *s, size_t n, rosa_buf *out) {
    out->len = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(nm->re, NULL);
    if (!md) return rosa_fail("out of memory for regex match data");
    re_replace_ctx c = {s, out, 0, nm->b, nm->b_len};
    int rc = tok_regex_foreach(nm->re, md, s, n, re_replace_cb, &c);
    pcre2_match_data_free(md);
    if (rc < 0) return -1;
    return rosa_buf_append(out, s + c.pos, n - c.pos);
}

static int strip_ws(const char *s, size_t n, int left, int right, rosa_buf *out) {
    size_t a = 0, b = n;
    if (left) {
        while (a < b) {
            int l;
            uint32_t cp = tok_utf8_decode(s + a, b - a, &l);
            if (!tok_is_whitespace(cp)) break;
            a += (size_t)l;
        }
    }
    if (right) {
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            int l;
            uint32_t cp = tok_utf8_decode(s + k, b - k, &l);
            if (!tok_is_whitespace(cp)) break;
            b = k;
        }
    }
    out->len = 0;
    return rosa_buf_append(out, s + a, b - a);
}

int tok_normalize(const rosa_tokenizer *tok, const char *s, size_t n, rosa_buf *out) {
    out->len = 0;
    if (tok->n_norm == 0) return rosa_buf_append(out, s, n);
    rosa_buf tmp = {0};
    /* Each step reads `cur` and writes `dst`; the two buffers alternate. */
    if (rosa_buf_append(out, s, n) < 0) return -1;
    int rc = 0;
    for (int k = 0; k < tok->n_norm && rc == 0; k++) {
        const tok_norm *nm = &tok->norm[k];
        const char *cur = out->data ? out->data : "";
        size_t cn = out->len;
        switch (nm->type) {
        case NORM_NFC:
        case NORM_NFD:
        case NORM_NFKC:
        case NORM_NFKD: rc = unicode_form(nm->type, cur, cn, &tmp); break;
        case NORM_PREPEND:
            if (cn == 0) continue; /* HF prepends only to non-empty strings */
            tmp.len = 0;
            rc = rosa_buf_append(&tmp, nm->a, nm->a_len);
            if (rc == 0) rc = rosa_buf_append(&tmp, cur, cn);
            break;
        case NORM_REPLACE:
            rc = nm->re ? replace_re(nm, cur, cn, &tmp)
                        : replace_str(cur, cn, nm->a, nm->a_len, nm->b, nm->b_len, &tmp);
            break;
        case NORM_STRIP: rc = strip_ws(cur, cn, nm->left, nm->right, &tmp); break;
        }
        if (rc == 0) { /* swap */
            rosa_buf t = *out;
            *out = tmp;
            tmp = t;
        }
    }
    rosa_buf_free(&tmp);
    if (rc == 0 && !out->data) rc = rosa_buf_append(out, "", 0);
    return rc;
}
