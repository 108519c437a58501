/* metrics.c: the one writer and the one reader of metrics.jsonl (metrics.h). */
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

const char *rosa_dls_mode_name(rosa_dls_mode m) {
    return m == ROSA_DLS_MODE_EXPLOIT ? "exploit" : m == ROSA_DLS_MODE_EXPLORE ? "explore" : "other";
}

/* ----------------------------------------------------------------- reader */

static double num_or_nan(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A count or size: an integer in [0, 2^63), else -1. */
static int64_t count_or_neg(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    return d >= 0 && d < 9.2233720368547758e18 && d == floor(d) ? (int64_t)d : -1;
}

static void read_plan(const cJSON *p, rosa_training_plan *out) {
    out->memory_bytes = count_or_neg(p, "memory_bytes");
    out->activation_bytes = count_or_neg(p, "activation_bytes");
    out->trainable_params = count_or_neg(p, "trainable_params");
    out->base_params = count_or_neg(p, "base_params");
    out->total_steps = count_or_neg(p, "total_steps");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(p, "compute");
    out->compute = cJSON_IsString(c) ? c->valuestring : NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "recompute");
    out->recompute = cJSON_IsBool(r) ? cJSON_IsTrue(r) : -1;
}

/* The entries of a DLS array into *vals (grown as needed); the count, or -1
 * when the array is too long or a selection's entry is not a layer index, -2
 * when memory runs out. */
static int read_values(const cJSON *arr, int layers, double **vals, int *cap) {
    int n = cJSON_GetArraySize(arr);
    if (n > ROSA_METRICS_MAX_LAYERS) return -1;
    if (n > *cap) {
        double *p = rosa_realloc(*vals, sizeof(double) * (size_t)n, "metrics line");
        if (!p) return -2;
        *vals = p, *cap = n;
    }
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (k == n) break;
        double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        if (layers && !(v >= 0 && v < ROSA_METRICS_MAX_LAYERS && v == floor(v))) return -1;
        (*vals)[k++] = v;
    }
    return k;
}

/* Fills l from the parsed line o; -1 when memory runs out. */
static int classify(const cJSON *o, rosa_metrics_line *l, double **vals, int *cap) {
    const cJSON *st = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
    if (!cJSON_IsNumber(st)) return 0; /* BAD, no step */
    l->have_step = 1;
    l->step = st->valuedouble;
    const cJSON *x;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "loss"))) {
        l->kind = ROSA_METRICS_STEP;
        l->loss = num_or_nan(o, "loss");
        l->lr = num_or_nan(o, "lr");
        l->grad_norm = num_or_nan(o, "grad_norm");
        l->tokens = num_or_nan(o, "tokens");
        l->tokens_per_second = num_or_nan(o, "tokens_per_second");
        l->seconds = num_or_nan(o, "seconds");
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "skipped"))) {
        l->kind = ROSA_METRICS_SKIPPED;
    } else if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(o, "val_loss"))) {
        l->kind = ROSA_METRICS_VAL;
        l->val_loss = x->valuedouble;
    } else if (cJSON_IsObject(x = cJSON_GetObjectItemCaseSensitive(o, "plan"))) {
        l->kind = ROSA_METRICS_PLAN;
        read_plan(x, &l->plan);
    } else if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(o, "peak_rss_bytes"))) {
        l->kind = ROSA_METRICS_PEAK_RSS;
        l->peak_rss_bytes = x->valuedouble;
    } else {
        rosa_metrics_kind kind = ROSA_METRICS_UNKNOWN;
        const cJSON *arr = NULL;
        if (cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(o, "dls_scores"))) {
            kind = ROSA_METRICS_DLS_SCORES, arr = x;
        } else if (cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(o, "dls_counts"))) {
            kind = ROSA_METRICS_DLS_COUNTS, arr = x;
        } else if (cJSON_IsObject(x = cJSON_GetObjectItemCaseSensitive(o, "dls_selection"))) {
            kind = ROSA_METRICS_DLS_SELECTION;
            arr = cJSON_GetObjectItemCaseSensitive(x, "layers");
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(x, "mode");
            l->mode = !cJSON_IsString(m)                         ? ROSA_DLS_MODE_OTHER
                      : strcmp(m->valuestring, "exploit") == 0 ? ROSA_DLS_MODE_EXPLOIT
                      : strcmp(m->valuestring, "explore") == 0 ? ROSA_DLS_MODE_EXPLORE
                                                               : ROSA_DLS_MODE_OTHER;
            if (!cJSON_IsArray(arr)) return 0; /* BAD */
        }
        if (arr) {
            int n = read_values(arr, kind == ROSA_METRICS_DLS_SELECTION, vals, cap);
            if (n == -2) return -1;
            if (n < 0) return 0; /* BAD */
            l->values = *vals;
            l->n = n;
        }
        l->kind = kind;
    }
    return 0;
}

int rosa_metrics_read(const char *path, rosa_metrics_fn fn, void *user) {
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return -1;
    double *vals = NULL;
    int cap = 0, line_no = 0, status = 0;
    for (size_t pos = 0; pos < len && status == 0;) {
        const char *p = text + pos, *e = memchr(p, '\n', len - pos);
        size_t n = e ? (size_t)(e - p) : len - pos;
        pos += n + (e ? 1 : 0);
        line_no++;
        if (n == 0 || (n == 1 && p[0] == '\r')) continue;
        rosa_metrics_line l = {.kind = ROSA_METRICS_BAD, .line_no = line_no, .step = NAN, .text = p, .len = n};
        cJSON *o = cJSON_ParseWithLength(p, n);
        if (classify(o, &l, &vals, &cap) < 0 || fn(&l, user) < 0) status = -1; /* l points into o */
        cJSON_Delete(o);
    }
    free(vals);
    free(text);
    return status;
}

/* ----------------------------------------------------------------- writer */

struct rosa_metrics {
    FILE *f;
    char *path;
};

static int write_failed(rosa_metrics *m) {
    return rosa_fail("%s: cannot write: %s", m->path, strerror(errno ? errno : EIO));
}

/* Appends formatted text to the line being written. */
static int put(rosa_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(rosa_metrics *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int rc = vfprintf(m->f, fmt, ap);
    va_end(ap);
    return rc < 0 ? write_failed(m) : 0;
}

/* The end of a line ("}\n" or "]}}\n"...), flushed when asked. */
static int end_line(rosa_metrics *m, const char *tail, int flush) {
    errno = 0;
    if (fputs(tail, m->f) == EOF || (flush && fflush(m->f) != 0) || ferror(m->f)) return write_failed(m);
    return 0;
}

typedef struct {
    int64_t start;
    rosa_buf keep;
} keep_state;

static int keep_line(const rosa_metrics_line *l, void *user) {
    keep_state *k = user;
    if (!l->have_step || !(l->step <= (double)k->start)) return 0;
    if (rosa_buf_append(&k->keep, l->text, l->len) < 0 || rosa_buf_putc(&k->keep, '\n') < 0)
        return rosa_fail("out of memory keeping the lines of metrics.jsonl");
    return 0;
}

rosa_metrics *rosa_metrics_open(const char *path, int64_t start_step) {
    if (start_step > 0) {
        /* On resume the kept lines replace the file atomically: a kill at
         * this moment must not lose them (tests/test_robustness_faults.c). */
        keep_state k = {.start = start_step};
        int rc = rosa_file_exists(path) ? rosa_metrics_read(path, keep_line, &k) : 0;
        if (rc == 0) rc = rosa_write_file_atomic(path, k.keep.data ? k.keep.data : "", k.keep.len);
        rosa_buf_free(&k.keep);
        if (rc < 0) return NULL;
    }
    rosa_metrics *m = rosa_calloc(1, sizeof *m, "metrics writer");
    if (!m) return NULL;
    m->path = rosa_strdup(path);
    /* O_NOFOLLOW: a link left at metrics.jsonl must not have rosa truncate
     * or append to a file elsewhere. */
    int fd = m->path ? open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (start_step > 0 ? O_APPEND : O_TRUNC),
                            0666)
                     : -1;
    m->f = fd >= 0 ? fdopen(fd, start_step > 0 ? "a" : "w") : NULL;
    if (!m->f) {
        int err = errno;
        if (fd >= 0) close(fd);
        if (m->path && err == ELOOP)
            rosa_fail("%s is a symbolic link: rosa does not write through links in an output directory (remove it)",
                      path);
        else if (m->path)
            rosa_fail("%s: cannot write: %s", path, strerror(err));
        free(m->path);
        free(m);
        return NULL;
    }
    return m;
}

int rosa_metrics_close(rosa_metrics *m) {
    if (!m) return 0;
    int rc = 0, failed = ferror(m->f);
    errno = 0;
    if (fclose(m->f) != 0 || failed) rc = write_failed(m);
    free(m->path);
    free(m);
    return rc;
}

void rosa_metrics_free(rosa_metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m->path);
    free(m);
}

/* A string written between quotes as it is: it must need no escaping. */
static int plain_string(const char *s) {
    if (!s) return 0;
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) return 0;
    return 1;
}

int rosa_metrics_plan(rosa_metrics *m, const rosa_training_plan *p) {
    if (!plain_string(p->compute)) return rosa_fail("metrics plan: compute must be a plain name");
    if (put(m,
            "{\"step\": 0, \"plan\": {\"memory_bytes\": %lld, \"activation_bytes\": %lld, \"trainable_params\": %lld, "
            "\"base_params\": %lld, \"total_steps\": %lld, \"compute\": \"%s\", \"recompute\": %s",
            (long long)p->memory_bytes, (long long)p->activation_bytes, (long long)p->trainable_params,
            (long long)p->base_params, (long long)p->total_steps, p->compute, p->recompute ? "true" : "false") < 0)
        return -1;
    return end_line(m, "}}\n", 1);
}

int rosa_metrics_step(rosa_metrics *m, int64_t step, double loss, double lr, double grad_norm, long long tokens,
                      double seconds) {
    if (put(m,
            "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens\": %lld, "
            "\"tokens_per_second\": %.2f, \"seconds\": %.4f",
            (long long)step, loss, lr, grad_norm, tokens, seconds > 0 ? tokens / seconds : 0.0, seconds) < 0)
        return -1;
    return end_line(m, "}\n", 1);
}

int rosa_metrics_skipped(rosa_metrics *m, int64_t step) {
    if (put(m, "{\"step\": %lld, \"skipped\": true", (long long)step) < 0) return -1;
    return end_line(m, "}\n", 1);
}

int rosa_metrics_val(rosa_metrics *m, int64_t step, double val_loss) {
    if (put(m, "{\"step\": %lld, \"val_loss\": %.9g", (long long)step, val_loss) < 0) return -1;
    return end_line(m, "}\n", 1);
}

int rosa_metrics_dls_selection(rosa_metrics *m, int64_t step, rosa_dls_mode mode, const uint8_t *active, int L) {
    if (mode != ROSA_DLS_MODE_EXPLOIT && mode != ROSA_DLS_MODE_EXPLORE)
        return rosa_fail("metrics: a DLS selection is exploit or explore");
    if (put(m, "{\"step\": %lld, \"dls_selection\": {\"mode\": \"%s\", \"layers\": [", (long long)step,
            rosa_dls_mode_name(mode)) < 0)
        return -1;
    for (int l = 0, n = 0; l < L; l++)
        if (active[l] && put(m, "%s%d", n++ ? ", " : "", l) < 0) return -1;
    return end_line(m, "]}}\n", 0);
}

int rosa_metrics_dls_scores(rosa_metrics *m, int64_t step, const float *scores, int L) {
    if (put(m, "{\"step\": %lld, \"dls_scores\": [", (long long)step) < 0) return -1;
    for (int l = 0; l < L; l++)
        if (put(m, "%s%.6g", l ? ", " : "", scores[l]) < 0) return -1;
    return end_line(m, "]}\n", 0);
}

int rosa_metrics_dls_counts(rosa_metrics *m, int64_t step, const int64_t *counts, int L) {
    if (put(m, "{\"step\": %lld, \"dls_counts\": [", (long long)step) < 0) return -1;
    for (int l = 0; l < L; l++)
        if (put(m, "%s%lld", l ? ", " : "", (long long)counts[l]) < 0) return -1;
    return end_line(m, "]}\n", 1);
}

int rosa_metrics_peak_rss(rosa_metrics *m, int64_t step, long long bytes) {
    if (put(m, "{\"step\": %lld, \"peak_rss_bytes\": %lld", (long long)step, bytes) < 0) return -1;
    return end_line(m, "}\n", 1);
}
