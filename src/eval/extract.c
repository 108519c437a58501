/* extract.c: response extraction and answer scoring, following LLM-Adapters'
 * scripts:
 *   commonsense_evaluate.py   outputs = [o.split("### Response:")[1].strip() ...]
 *                             extract_answer: re.findall(r'true|false', s.strip())[0], ...
 *                             correct iff label == predict
 *   evaluate.py               extract_answer_number: s.replace(',', ''),
 *                             re.findall(r'-?\d+\.?\d*', s)[-1] -> float, else inf;
 *                             correct iff abs(label - predict) <= 0.001 (miss)
 *                             extract_answer_letter: re.findall(r'A|B|C|D|E', s.strip())[0]
 * Python's re matches \d against any Unicode decimal digit; the number
 * pattern is compiled with PCRE2 in UTF + UCP mode, where \d is \p{Nd}, and
 * the digits are converted with their Unicode values as float() does. */
#include "extract.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/util.h"

/* ------------------------------------------------------------ strings */

static int py_isspace(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Decodes the code point at s[i] (invalid bytes count as one non-space unit). */
static int32_t cp_at(const char *s, size_t len, size_t i, size_t *n) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
    if (k <= 0) {
        *n = 1;
        return -1;
    }
    *n = (size_t)k;
    return c;
}

const char *rosa_py_strip(const char *s, size_t len, size_t *out_len) {
    size_t a = 0, b = len, n;
    while (a < b) {
        int32_t c = cp_at(s, len, a, &n);
        if (!py_isspace(c)) break;
        a += n;
    }
    while (b > a) {
        /* step back to the start of the last code point */
        size_t p = b - 1;
        while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80 && b - p < 4) p--;
        int32_t c = cp_at(s, b, p, &n);
        if (p + n != b || !py_isspace(c)) break;
        b = p;
    }
    *out_len = b - a;
    return s + a;
}

static const char MARKER[] = "### Response:";

char *rosa_response_from_text(const char *text, size_t len, int *found) {
    size_t m = sizeof MARKER - 1;
    const char *p = memmem(text, len, MARKER, m);
    if (!p) {
        *found = 0;
        return NULL;
    }
    *found = 1;
    const char *start = p + m, *end = text + len;
    const char *q = memmem(start, (size_t)(end - start), MARKER, m);
    if (q) end = q;
    size_t n;
    const char *s = rosa_py_strip(start, (size_t)(end - start), &n);
    return rosa_strndup(s, n);
}

void rosa_free_labels(char **labels, int n) {
    for (int i = 0; i < n; i++) free(labels[i]);
    free(labels);
}

int rosa_answer_format_labels(const char *instruction, char ***labels) {
    static const char key[] = "Answer format:";
    *labels = NULL;
    const char *p = NULL;
    for (const char *q = strstr(instruction, key); q; q = strstr(q + 1, key)) p = q;
    if (!p) return 0;
    p += sizeof key - 1;
    size_t line = strcspn(p, "\n");
    char **out = NULL;
    int n = 0;
    const char *s = p, *e = p + line;
    while (s <= e) {
        const char *slash = memchr(s, '/', (size_t)(e - s));
        const char *t_end = slash ? slash : e;
        size_t tl;
        const char *t = rosa_py_strip(s, (size_t)(t_end - s), &tl);
        if (tl > 0) {
            char **o = rosa_realloc(out, sizeof(char *) * (size_t)(n + 1), "labels");
            char *d = o ? rosa_strndup(t, tl) : NULL;
            if (!d) {
                rosa_free_labels(o ? o : out, n);
                return -1;
            }
            out = o;
            out[n++] = d;
        }
        if (!slash) break;
        s = slash + 1;
    }
    *labels = out;
    return n;
}

void rosa_answer_free(rosa_answer *a) {
    if (!a) return;
    free(a->text);
    a->text = NULL;
}

/* ------------------------------------------------------------ extraction */

int rosa_extract_label(const char *response, const char *const *labels, int n) {
    size_t len = strlen(response);
    for (size_t i = 0; i < len; i++)
        for (int k = 0; k < n; k++) {
            size_t l = strlen(labels[k]);
            if (l > 0 && l <= len - i && memcmp(response + i, labels[k], l) == 0) return k;
        }
    return -1;
}

char rosa_extract_letter(const char *response) {
    for (const char *p = response; *p; p++)
        if (*p >= 'A' && *p <= 'E') return *p;
    return 0;
}

static pcre2_code *number_re;
static pthread_once_t number_once = PTHREAD_ONCE_INIT;

static void number_compile(void) {
    int err;
    PCRE2_SIZE off;
    number_re = pcre2_compile((PCRE2_SPTR) "-?\\d+\\.?\\d*", PCRE2_ZERO_TERMINATED,
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, NULL);
}

/* The value of a Unicode decimal digit: decimal digits come in runs of ten
 * (0 to 9) in code point order, so the digit is the offset in its run. */
static int digit_value(int32_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (utf8proc_category(c) != UTF8PROC_CATEGORY_ND) return -1;
    int32_t start = c;
    while (start > 0 && utf8proc_category(start - 1) == UTF8PROC_CATEGORY_ND) start--;
    return (int)((c - start) % 10);
}

/* float() of a match of -?\d+\.?\d*: digits converted to ASCII, then strtod
 * (correctly rounded, as CPython's float() is). */
static int match_value(const char *s, size_t len, double *value, char **ascii_out) {
    char *a = rosa_malloc(len + 1, "number");
    if (!a) return -1;
    size_t k = 0, n;
    for (size_t i = 0; i < len; i += n) {
        int32_t c = cp_at(s, len, i, &n);
        if (c == '-' || c == '.') a[k++] = (char)c;
        else {
            int d = digit_value(c);
            if (d < 0) {
                free(a);
                return rosa_fail("number extraction: U+%04X is not a decimal digit", (unsigned)c);
            }
            a[k++] = (char)('0' + d);
        }
    }
    a[k] = 0;
    *value = strtod(a, NULL);
    if (ascii_out) *ascii_out = a;
    else free(a);
    return 0;
}

int rosa_extract_number(const char *response, double *value, char **match) {
    pthread_once(&number_once, number_compile);
    if (!number_re) return rosa_fail("number extraction: the pattern did not compile");
    *value = INFINITY;
    if (match) *match = NULL;
    /* sentence.replace(',', '') */
    size_t len = strlen(response), n = 0;
    char *s = rosa_malloc(len + 1, "response");
    if (!s) return -1;
    for (size_t i = 0; i < len; i++)
        if (response[i] != ',') s[n++] = response[i];
    s[n] = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(number_re, NULL);
    if (!md) {
        free(s);
        return rosa_fail("out of memory");
    }
    PCRE2_SIZE at = 0, last_s = 0, last_e = 0;
    int found = 0;
    while (at <= n) {
        int rc = pcre2_match(number_re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        last_s = ov[0];
        last_e = ov[1];
        found = 1;
        at = ov[1] > ov[0] ? ov[1] : ov[1] + 1; /* matches are never empty */
    }
    pcre2_match_data_free(md);
    int rc = 0;
    if (found) {
        /* the value's text is kept as matched (digits as written) */
        if (match_value(s + last_s, last_e - last_s, value, NULL) < 0) rc = -1;
        else if (match && !(*match = rosa_strndup(s + last_s, last_e - last_s))) rc = -1;
        else rc = 1;
    }
    free(s);
    return rc;
}

int rosa_parse_number_label(const char *label, double *out) {
    size_t n;
    const char *s = rosa_py_strip(label, strlen(label), &n);
    if (n == 0 || n > 256) return -1;
    char buf[260];
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end) return -1;
    *out = v;
    return 0;
}

int rosa_score_response(const rosa_task *t, const char *instruction, const char *response, const char *label,
                        rosa_answer *out) {
    memset(out, 0, sizeof *out);
    out->number = INFINITY;
    if (!label) return rosa_fail("no label (answer)");
    if (t->rule == ROSA_RULE_NUMBER) {
        double want;
        if (rosa_parse_number_label(label, &want) < 0)
            return rosa_fail("the label \"%s\" is not a number", label);
        char *m = NULL;
        int rc = rosa_extract_number(response, &out->number, &m);
        if (rc < 0) return -1;
        out->extracted = rc == 1;
        out->text = m ? m : rosa_strdup("");
        if (!out->text) return -1;
        out->correct = out->extracted && fabs(want - out->number) <= 0.001;
        return 0;
    }
    if (t->rule == ROSA_RULE_LETTER) {
        char c = rosa_extract_letter(response);
        char buf[2] = {c, 0};
        out->extracted = c != 0;
        out->text = rosa_strdup(buf);
        if (!out->text) return -1;
        out->correct = out->extracted && strcmp(buf, label) == 0;
        return 0;
    }
    char **own = NULL;
    const char *const *labels = t->labels;
    int n = t->n_labels;
    if (!labels) {
        n = rosa_answer_format_labels(instruction ? instruction : "", &own);
        if (n < 0) return -1;
        if (n == 0)
            return rosa_fail("the instruction has no \"Answer format: a/b/...\" line to take the labels from");
        labels = (const char *const *)own;
    }
    int k = rosa_extract_label(response, labels, n);
    out->extracted = k >= 0;
    out->text = rosa_strdup(k >= 0 ? labels[k] : "");
    rosa_free_labels(own, own ? n : 0);
    if (!out->text) return -1;
    out->correct = out->extracted && strcmp(out->text, label) == 0;
    return 0;
}
