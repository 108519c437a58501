/* decode.c: the decoder chain as a streaming transducer.
 *
 * HF decoders work on the whole list of token strings; each step maps a list
 * to a list and the result is joined.  Here every step receives events: in
 * token mode one event is one token string; after a step that fuses
 * everything into one string (Fuse, ByteLevel) the steps that follow are in
 * chunk mode and receive pieces of that single string.  Steps hold back what
 * they cannot decide yet (a run of byte tokens, an incomplete UTF-8 sequence,
 * a possible pattern prefix, trailing characters that Strip may remove) and
 * release it when later input or the end decides.  rosa_tokenizer_decode is
 * push-all + finish, so the streaming and the full decode agree by
 * construction. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct {
    rosa_buf pend;
    int count; /* tokens seen (Metaspace, Fuse); chars stripped (Strip) */
    int done;  /* Strip: the start is decided */
    unsigned char u8[4];
    int nu8; /* ByteLevel: pending bytes of an incomplete sequence */
} dstage;

struct rosa_detok {
    const rosa_tokenizer *tok;
    int skip_special;
    rosa_buf out;
    rosa_buf tmp[TOK_MAX_DEC];
    dstage st[TOK_MAX_DEC];
};

static const char FFFD[] = "\xEF\xBF\xBD";

static int dpush(rosa_detok *d, int k, const char *s, size_t n);

/* ------------------------------------------------------------ Replace */

static int replace_all(rosa_buf *o, const char *s, size_t n, const char *a, size_t an,
                       const char *b, size_t bn) {
    size_t i = 0;
    while (i < n) {
        const char *hit = memmem(s + i, n - i, a, an);
        if (!hit) break;
        size_t h = (size_t)(hit - s);
        if (rosa_buf_append(o, s + i, h - i) < 0 || rosa_buf_append(o, b, bn) < 0) return -1;
        i = h + an;
    }
    return rosa_buf_append(o, s + i, n - i);
}

static int replace_chunk(rosa_detok *d, int k, const char *s, size_t n) {
    const tok_dec *dc = &d->tok->dec[k];
    dstage *st = &d->st[k];
    if (rosa_buf_append(&st->pend, s, n) < 0) return -1;
    const char *p = st->pend.data;
    size_t pn = st->pend.len, i = 0;
    rosa_buf *o = &d->tmp[k];
    o->len = 0;
    for (;;) {
        const char *hit = memmem(p + i, pn - i, dc->a, dc->a_len);
        if (!hit) break;
        size_t h = (size_t)(hit - p);
        if (rosa_buf_append(o, p + i, h - i) < 0 || rosa_buf_append(o, dc->b, dc->b_len) < 0)
            return -1;
        i = h + dc->a_len;
    }
    /* hold back the earliest tail that could start an occurrence */
    size_t keep = pn;
    for (size_t j = pn > dc->a_len ? pn - dc->a_len + 1 : 0; j < pn; j++) {
        if (j < i) continue;
        if (memcmp(p + j, dc->a, pn - j) == 0) {
            keep = j;
            break;
        }
    }
    if (rosa_buf_append(o, p + i, keep - i) < 0) return -1;
    memmove(st->pend.data, p + keep, pn - keep);
    st->pend.len = pn - keep;
    if (o->len && dpush(d, k + 1, o->data, o->len) < 0) return -1;
    return 0;
}

/* ----------------------------------------------------------- ByteFallback */

static int byte_token(const char *s, size_t n, uint8_t *out) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return 0;
    int v = 0, digits = 0;
    for (int i = 3; i < 5; i++) { /* Rust's from_str_radix also takes a leading '+' */
        char c = s[i];
        int x;
        if (c >= '0' && c <= '9') x = c - '0';
        else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
        else if (c == '+' && i == 3) continue;
        else return 0;
        v = v * 16 + x;
        digits++;
    }
    if (!digits) return 0;
    *out = (uint8_t)v;
    return 1;
}

static int flush_bytes(rosa_detok *d, int k) {
    dstage *st = &d->st[k];
    size_t n = st->pend.len;
    if (!n) return 0;
    st->pend.len = 0;
    /* the run may be pushed further down while pend is reused: copy it */
    rosa_buf *o = &d->tmp[k];
    o->len = 0;
    if (rosa_buf_append(o, st->pend.data, n) < 0) return -1;
    if (rosa_utf8_valid_prefix(o->data, n) == n) return dpush(d, k + 1, o->data, n);
    for (size_t i = 0; i < n; i++)
        if (dpush(d, k + 1, FFFD, 3) < 0) return -1;
    return 0;
}

/* ------------------------------------------------------------------ Strip */

static int strip_token(rosa_detok *d, int k, const char *s, size_t n) {
    const tok_dec *dc = &d->tok->dec[k];
    size_t a = 0, b = n;
    for (int i = 0; i < dc->start && a < n; i++) {
        int l;
        if (tok_utf8_decode(s + a, n - a, &l) != dc->ch) break;
        a += (size_t)l;
    }
    for (int i = 0; i < dc->stop && b > a; i++) {
        size_t j = b - 1;
        while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
        int l;
        if (tok_utf8_decode(s + j, b - j, &l) != dc->ch) break;
        b = j;
    }
    return dpush(d, k + 1, s + a, b - a);
}

static int strip_chunk(rosa_detok *d, int k, const char *s, size_t n) {
    const tok_dec *dc = &d->tok->dec[k];
    dstage *st = &d->st[k];
    size_t a = 0;
    while (!st->done && a < n) {
        int l;
        if (st->count >= dc->start || tok_utf8_decode(s + a, n - a, &l) != dc->ch) {
            st->done = 1;
            break;
        }
        a += (size_t)l;
        st->count++;
    }
    if (a == n) return 0;
    if (dc->stop == 0) return dpush(d, k + 1, s + a, n - a);
    /* hold back up to `stop` trailing strip characters */
    if (rosa_buf_append(&st->pend, s + a, n - a) < 0) return -1;
    const char *p = st->pend.data;
    size_t b = st->pend.len;
    int held = 0;
    while (held < dc->stop && b > 0) {
        size_t j = b - 1;
        while (j > 0 && ((unsigned char)p[j] & 0xC0) == 0x80) j--;
        int l;
        if (tok_utf8_decode(p + j, b - j, &l) != dc->ch) break;
        b = j;
        held++;
    }
    rosa_buf *o = &d->tmp[k];
    o->len = 0;
    if (rosa_buf_append(o, p, b) < 0) return -1;
    memmove(st->pend.data, p + b, st->pend.len - b);
    st->pend.len -= b;
    return o->len ? dpush(d, k + 1, o->data, o->len) : 0;
}

/* -------------------------------------------------------------- Metaspace */

static int metaspace(rosa_detok *d, int k, const char *s, size_t n, int first) {
    const tok_dec *dc = &d->tok->dec[k];
    rosa_buf *o = &d->tmp[k];
    o->len = 0;
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t cp = tok_utf8_decode(s + i, n - i, &l);
        if (cp == dc->ch) {
            if (!(first && !dc->prepend_never) && rosa_buf_putc(o, ' ') < 0) return -1;
        } else if (rosa_buf_append(o, s + i, (size_t)l) < 0) {
            return -1;
        }
        i += (size_t)l;
    }
    return dpush(d, k + 1, o->data ? o->data : "", o->len);
}

/* -------------------------------------------------------------- ByteLevel */

/* Rust's String::from_utf8_lossy, streamed: one U+FFFD per maximal invalid
 * subpart, an incomplete tail held in st->u8. */
static int lossy_feed(dstage *st, rosa_buf *o, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
    again:
        if (st->nu8 == 0) {
            if (c < 0x80) {
                if (rosa_buf_putc(o, (char)c) < 0) return -1;
            } else if (c >= 0xC2 && c <= 0xF4) {
                st->u8[st->nu8++] = c;
            } else if (rosa_buf_append(o, FFFD, 3) < 0) {
                return -1;
            }
            continue;
        }
        unsigned char lead = st->u8[0];
        int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        unsigned char lo = 0x80, hi = 0xBF;
        if (st->nu8 == 1) {
            if (lead == 0xE0) lo = 0xA0;
            else if (lead == 0xED) hi = 0x9F;
            else if (lead == 0xF0) lo = 0x90;
            else if (lead == 0xF4) hi = 0x8F;
        }
        if (c < lo || c > hi) { /* the pending bytes are one invalid subpart */
            st->nu8 = 0;
            if (rosa_buf_append(o, FFFD, 3) < 0) return -1;
            goto again;
        }
        st->u8[st->nu8++] = c;
        if (st->nu8 == need) {
            if (rosa_buf_append(o, st->u8, (size_t)need) < 0) return -1;
            st->nu8 = 0;
        }
    }
    return 0;
}

static int bytelevel_token(rosa_detok *d, int k, const char *s, size_t n) {
    dstage *st = &d->st[k];
    rosa_buf *o = &d->tmp[k];
    o->len = 0;
    /* map every character back to its byte; if one is not in the alphabet,
     * the token's own bytes are used (as HF) */
    unsigned char small[256];
    unsigned char *bytes = n <= sizeof small ? small : malloc(n);
    if (!bytes) return rosa_fail("out of memory decoding");
    size_t nb = 0;
    int ok = 1;
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t cp = tok_utf8_decode(s + i, n - i, &l);
        int b = tok_cp_to_byte(cp);
        if (b < 0) {
            ok = 0;
            break;
        }
        bytes[nb++] = (unsigned char)b;
        i += (size_t)l;
    }
    int rc = ok ? lossy_feed(st, o, bytes, nb) : lossy_feed(st, o, (const unsigned char *)s, n);
    if (bytes != small) free(bytes);
    if (rc < 0) return -1;
    return o->len ? dpush(d, k + 1, o->data, o->len) : 0;
}

/* ------------------------------------------------------------------- push */

static int dpush(rosa_detok *d, int k, const char *s, size_t n) {
    const rosa_tokenizer *tok = d->tok;
    if (k == tok->n_dec) return rosa_buf_append(&d->out, s, n);
    const tok_dec *dc = &tok->dec[k];
    dstage *st = &d->st[k];
    switch (dc->type) {
    case DEC_REPLACE:
        if (dc->chunk_mode) return replace_chunk(d, k, s, n);
        if (!memmem(s, n, dc->a, dc->a_len)) return dpush(d, k + 1, s, n);
        d->tmp[k].len = 0;
        if (replace_all(&d->tmp[k], s, n, dc->a, dc->a_len, dc->b, dc->b_len) < 0) return -1;
        return dpush(d, k + 1, d->tmp[k].data, d->tmp[k].len);
    case DEC_BYTEFALLBACK: {
        uint8_t b;
        if (byte_token(s, n, &b)) return rosa_buf_putc(&st->pend, (char)b);
        if (flush_bytes(d, k) < 0) return -1;
        return dpush(d, k + 1, s, n);
    }
    case DEC_FUSE:
        if (!dc->chunk_mode && st->count++ > 0 && dc->a_len &&
            dpush(d, k + 1, dc->a, dc->a_len) < 0)
            return -1;
        return n ? dpush(d, k + 1, s, n) : 0;
    case DEC_STRIP: return dc->chunk_mode ? strip_chunk(d, k, s, n) : strip_token(d, k, s, n);
    case DEC_METASPACE: return metaspace(d, k, s, n, dc->chunk_mode || st->count++ == 0);
    case DEC_BYTELEVEL: return bytelevel_token(d, k, s, n);
    }
    return rosa_fail("internal error: bad decoder step");
}

static int dfinish(rosa_detok *d, int k) {
    const rosa_tokenizer *tok = d->tok;
    if (k == tok->n_dec) return 0;
    const tok_dec *dc = &tok->dec[k];
    dstage *st = &d->st[k];
    switch (dc->type) {
    case DEC_REPLACE:
        if (dc->chunk_mode && st->pend.len) {
            rosa_buf *o = &d->tmp[k];
            o->len = 0;
            if (rosa_buf_append(o, st->pend.data, st->pend.len) < 0) return -1;
            st->pend.len = 0;
            if (dpush(d, k + 1, o->data, o->len) < 0) return -1;
        }
        break;
    case DEC_BYTEFALLBACK:
        if (flush_bytes(d, k) < 0) return -1;
        break;
    case DEC_BYTELEVEL:
        if (st->nu8) {
            st->nu8 = 0;
            if (dpush(d, k + 1, FFFD, 3) < 0) return -1;
        }
        break;
    case DEC_STRIP: st->pend.len = 0; break; /* the held characters are stripped */
    default: break;
    }
    st->count = 0;
    st->done = 0;
    return dfinish(d, k + 1);
}

/* ------------------------------------------------------------------- API */

rosa_detok *rosa_detok_new(const rosa_tokenizer *tok, int skip_special) {
    if (!tok) {
        rosa_fail("rosa_detok_new: tokenizer is NULL");
        return NULL;
    }
    rosa_detok *d = rosa_calloc(1, sizeof *d, "detokenizer");
    if (!d) return NULL;
    d->tok = tok;
    d->skip_special = skip_special;
    return d;
}

void rosa_detok_free(rosa_detok *d) {
    if (!d) return;
    rosa_buf_free(&d->out);
    for (int i = 0; i < TOK_MAX_DEC; i++) {
        rosa_buf_free(&d->tmp[i]);
        rosa_buf_free(&d->st[i].pend);
    }
    free(d);
}

static const char *out_text(rosa_detok *d, size_t *len) {
    if (len) *len = d->out.len;
    return d->out.data ? d->out.data : "";
}

const char *rosa_detok_push(rosa_detok *d, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!d) {
        rosa_fail("rosa_detok_push: detokenizer is NULL");
        return NULL;
    }
    size_t n;
    const char *piece = tok_piece(d->tok, id, &n);
    if (!piece) {
        rosa_fail("token id %d is out of range (vocabulary size %d)", (int)id, d->tok->n_ids);
        return NULL;
    }
    d->out.len = 0;
    if (d->out.data) d->out.data[0] = 0;
    int32_t ai = d->tok->id_added[id];
    if (d->skip_special && ai >= 0 && d->tok->added[ai].special) return out_text(d, len);
    if (dpush(d, 0, piece, n) < 0) return NULL;
    return out_text(d, len);
}

const char *rosa_detok_finish(rosa_detok *d, size_t *len) {
    if (len) *len = 0;
    if (!d) {
        rosa_fail("rosa_detok_finish: detokenizer is NULL");
        return NULL;
    }
    d->out.len = 0;
    if (d->out.data) d->out.data[0] = 0;
    if (dfinish(d, 0) < 0) return NULL;
    return out_text(d, len);
}

char *rosa_tokenizer_decode(const rosa_tokenizer *tok, const int32_t *ids, size_t n_ids,
                            int skip_special, size_t *len) {
    if (len) *len = 0;
    if (!tok) {
        rosa_fail("rosa_tokenizer_decode: tokenizer is NULL");
        return NULL;
    }
    for (size_t i = 0; i < n_ids; i++) { /* check first: no partial output */
        size_t n;
        if (!tok_piece(tok, ids[i], &n)) {
            rosa_fail("token id %d at position %zu is out of range (vocabulary size %d)",
                      (int)ids[i], i, tok->n_ids);
            return NULL;
        }
    }
    rosa_detok *d = rosa_detok_new(tok, skip_special);
    if (!d) return NULL;
    rosa_buf all = {0};
    int rc = 0;
    for (size_t i = 0; i < n_ids && rc == 0; i++) {
        size_t n;
        const char *s = rosa_detok_push(d, ids[i], &n);
        rc = s ? rosa_buf_append(&all, s, n) : -1;
    }
    if (rc == 0) {
        size_t n;
        const char *s = rosa_detok_finish(d, &n);
        rc = s ? rosa_buf_append(&all, s, n) : -1;
    }
    rosa_detok_free(d);
    if (rc == 0 && !all.data) rc = rosa_buf_append(&all, "", 0);
    if (rc < 0) {
        rosa_buf_free(&all);
        return NULL;
    }
    if (len) *len = all.len;
    return all.data;
}
