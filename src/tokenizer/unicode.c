/* unicode.c: UTF-8 helpers, the GPT-2 byte alphabet, and regexes (PCRE2 made
 * to behave like the Oniguruma regexes of Hugging Face tokenizers). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

uint32_t tok_utf8_decode(const char *str, size_t n, int *len) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    if (c < 0x80 || n < 2) {
        *len = 1;
        return c;
    }
    if ((c & 0xE0) == 0xC0) {
        *len = 2;
        return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if ((c & 0xF0) == 0xE0 && n >= 3) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if (n >= 4) {
        *len = 4;
        return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
    *len = 1;
    return c;
}

int tok_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int tok_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in increasing byte order. */
static int byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 other bytes, in order: 0x00-0x20 (33), 0x7F-0xA0 (34), 0xAD. */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (uint32_t)(b - 0x7F);
    return 256u + 67u; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable((int)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    if (n < 33) return (int)n;
    if (n < 67) return (int)(0x7F + (n - 33));
    return 0xAD;
}

/* ------------------------------------------------------------------ regex */

/* Oniguruma's \s (Unicode White_Space) and \w (Letter, Mark, Decimal_Number,
 * Connector_Punctuation), written as class contents for PCRE2. */
static const char WS_SET[] =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";
static const char WORD_SET[] = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

static int append_str(rosa_buf *b, const char *s) { return rosa_buf_append(b, s, strlen(s)); }

/* Rewrites \s \S \w \W.  Inside a class \s and \w expand in place; \S and \W
 * inside a class are left to PCRE2 (they cannot be expanded there). */
static int rewrite_pattern(const char *p, size_t n, rosa_buf *out) {
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            int r = 0;
            if (e == 's' || e == 'w') {
                const char *set = e == 's' ? WS_SET : WORD_SET;
                if (in_class)
                    r = append_str(out, set);
                else
                    r = append_str(out, "[") || append_str(out, set) || append_str(out, "]");
            } else if ((e == 'S' || e == 'W') && !in_class) {
                const char *set = e == 'S' ? WS_SET : WORD_SET;
                r = append_str(out, "[^") || append_str(out, set) || append_str(out, "]");
            } else {
                r = rosa_buf_append(out, p + i, 2);
            }
            if (r) return -1;
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            if (rosa_buf_putc(out, c) < 0) return -1;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && p[i + 1] == '^') {
                if (rosa_buf_putc(out, '^') < 0) return -1;
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                if (rosa_buf_append(out, "\\]", 2) < 0) return -1;
                i++;
            }
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
            const char *end = strstr(p + i + 2, ":]");
            if (end && (size_t)(end - p) < n) {
                size_t k = (size_t)(end - p) + 2 - i;
                if (rosa_buf_append(out, p + i, k) < 0) return -1;
                i += k - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        if (rosa_buf_putc(out, c) < 0) return -1;
    }
    return rosa_buf_putc(out, 0);
}

pcre2_code *tok_regex_compile(const char *pat, size_t len, int literal, const char *file,
                              const char *what) {
    rosa_buf b = {0};
    uint32_t opts = PCRE2_UTF;
    const char *src = pat;
    size_t src_len = len;
    if (literal) {
        opts |= PCRE2_LITERAL; /* UCP is not allowed with LITERAL */
    } else {
        opts |= PCRE2_UCP;
        if (rewrite_pattern(pat, len, &b) < 0) {
            rosa_buf_free(&b);
            return NULL;
        }
        src = b.data;
        src_len = b.len - 1;
    }
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, src_len, opts, &err, &off, NULL);
    rosa_buf_free(&b);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        rosa_fail("%s: %s: cannot compile regex: %s", file, what, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return re;
}

static int regex_match(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                       size_t start) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) { /* deep backtracking: use the interpreter */
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    }
    return rc;
}

int tok_regex_foreach(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                      tok_match_fn fn, void *user) {
    size_t last_end = 0;
    int have_last = 0;
    size_t last_match_end = 0;
    while (last_end <= n) {
        int rc = regex_match(re, md, s, n, last_end);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rosa_fail("regex matching failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me < ms) me = ms; /* \K tricks; not expected */
        if (ms == me && have_last && last_match_end == me) {
            /* Oniguruma's iterator: no empty match right after the last one */
            if (last_end >= n) break;
            last_end += (size_t)rosa_utf8_len((unsigned char)s[last_end]);
            continue;
        }
        if (fn(user, ms, me) < 0) return -1;
        last_end = me;
        last_match_end = me;
        have_last = 1;
        if (ms == me && last_end >= n) break;
    }
    return 0;
}
