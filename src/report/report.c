/* report.c: reading training output directories and writing the HTML report. */
#include "report.h"

#include <dirent.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/config.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "peft/peft.h"
#include "core/log.h"
#include "core/util.h"

/* ------------------------------------------------------------ small helpers */

typedef struct {
    double *v;
    int n, cap;
} dvec;

static int dvec_push(dvec *a, double x) {
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 64;
        double *p = rosa_realloc(a->v, sizeof(double) * (size_t)cap, "report data");
        if (!p) return -1;
        a->v = p, a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

static double num_or_nan(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = rosa_malloc((size_t)(n > 0 ? n : 0) + 1, "report text");
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

double rosa_report_span(int n) {
    double s = floor(n / 20.0 + 0.5);
    return s < 1 ? 1 : s > 100 ? 100 : s;
}

void rosa_ema(const double *y, int n, double span, double *out) {
    double w = span <= 1 ? 0.0 : 1.0 - 2.0 / (span + 1.0);
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            out[i] = NAN;
            continue;
        }
        num = w * num + y[i];
        den = w * den + 1.0;
        out[i] = num / den;
    }
}

/* ------------------------------------------------------------ reading a run */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* (key, index) pairs sorted by key, ties by index: a stable order in O(n log n). */
typedef struct {
    double key;
    int idx;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* order[i] = the index of the i-th smallest key (stable); -1 on allocation failure. */
static int stable_order(const double *key, size_t stride, int n, int *order) {
    keyed *k = rosa_calloc((size_t)(n > 0 ? n : 1), sizeof(keyed), "report order");
    if (!k) return -1;
    for (int i = 0; i < n; i++) k[i] = (keyed){*(const double *)((const char *)key + stride * (size_t)i), i};
    qsort(k, (size_t)n, sizeof(keyed), cmp_keyed);
    for (int i = 0; i < n; i++) order[i] = k[i].idx;
    free(k);
    return 0;
}

static int sort_steps(rosa_run *r) {
    int sorted = 1;
    for (int i = 1; i < r->n && sorted; i++)
        if (r->step[i] < r->step[i - 1]) sorted = 0;
    if (sorted) return 0;
    /* a hand-edited or concatenated file: put the parallel arrays in step order */
    int *ord = rosa_calloc((size_t)r->n, sizeof(int), "report order");
    double *tmp = rosa_calloc((size_t)r->n, sizeof(double), "report order");
    if (!ord || !tmp || stable_order(r->step, sizeof(double), r->n, ord) < 0) {
        free(ord);
        free(tmp);
        return rosa_fail("out of memory sorting metrics");
    }
    double *cols[] = {r->step, r->loss, r->lr, r->gnorm, r->tps, r->tokens, r->seconds};
    for (int c = 0; c < 7; c++) {
        for (int i = 0; i < r->n; i++) tmp[i] = cols[c][ord[i]];
        memcpy(cols[c], tmp, sizeof(double) * (size_t)r->n);
    }
    free(ord);
    free(tmp);
    return 0;
}

static void bad_line(rosa_run *r, int line_no) {
    if (!r->bad_lines) r->first_bad_line = line_no;
    r->bad_lines++;
}

/* metrics.jsonl as rosa_metrics_read hands it over. */
typedef struct {
    rosa_run *r;
    dvec cols[7], vs, vl;
    int cap_dls, failed; /* failed: memory ran out in on_metrics_line */
} metrics_reader;

static int add_dls_line(metrics_reader *m, const rosa_metrics_line *l) {
    rosa_run *r = m->r;
    if (r->n_dls == m->cap_dls) {
        int cap = m->cap_dls ? m->cap_dls * 2 : 32;
        rosa_dls_line *q = rosa_realloc(r->dls, sizeof *q * (size_t)cap, "report data");
        if (!q) return -1;
        r->dls = q, m->cap_dls = cap;
    }
    rosa_dls_line *d = &r->dls[r->n_dls];
    d->vals = rosa_malloc(sizeof(double) * (size_t)(l->n ? l->n : 1), "report data");
    if (!d->vals) return -1;
    if (l->n) memcpy(d->vals, l->values, sizeof(double) * (size_t)l->n);
    d->step = l->step, d->kind = l->kind, d->mode = l->mode, d->n = l->n;
    r->n_dls++;
    int span = d->n; /* the layers the line speaks of */
    if (l->kind == ROSA_METRICS_DLS_SELECTION) {
        span = 0;
        for (int i = 0; i < d->n; i++)
            if ((int)d->vals[i] + 1 > span) span = (int)d->vals[i] + 1;
    }
    if (span > r->L) r->L = span;
    return 0;
}

static int on_metrics_line(const rosa_metrics_line *l, void *user) {
    metrics_reader *m = user;
    rosa_run *r = m->r;
    if (!l->have_step) {
        bad_line(r, l->line_no);
        return 0;
    }
    if (l->step > r->max_step) r->max_step = l->step;
    int rc = 0;
    switch (l->kind) {
    case ROSA_METRICS_BAD: bad_line(r, l->line_no); break;
    case ROSA_METRICS_UNKNOWN: break;
    case ROSA_METRICS_STEP: {
        double v[7] = {l->step, l->loss, l->lr, l->grad_norm, l->tokens_per_second, l->tokens, l->seconds};
        for (int c = 0; c < 7 && rc == 0; c++) rc = dvec_push(&m->cols[c], v[c]);
        break;
    }
    case ROSA_METRICS_SKIPPED: r->n_skipped++; break;
    case ROSA_METRICS_VAL:
        rc = dvec_push(&m->vs, l->step) < 0 || dvec_push(&m->vl, l->val_loss) < 0 ? -1 : 0;
        break;
    case ROSA_METRICS_PLAN: {
        char *compute = l->plan.compute ? rosa_strdup(l->plan.compute) : NULL;
        if (l->plan.compute && !compute) {
            rc = -1;
            break;
        }
        free(r->plan_compute);
        r->plan_compute = compute;
        r->plan = l->plan;
        r->plan.compute = compute;
        r->have_plan = 1;
        break;
    }
    case ROSA_METRICS_PEAK_RSS:
        if (!(l->peak_rss_bytes <= r->peak_rss)) r->peak_rss = l->peak_rss_bytes;
        break;
    case ROSA_METRICS_DLS_SCORES:
    case ROSA_METRICS_DLS_COUNTS:
    case ROSA_METRICS_DLS_SELECTION: rc = add_dls_line(m, l); break;
    }
    if (rc < 0) m->failed = 1;
    return rc;
}

static int read_metrics(rosa_run *r) {
    char *path = rosa_path_join(r->dir, "metrics.jsonl");
    if (!path) return -1;
    metrics_reader m = {.r = r};
    int status = -1;
    r->peak_rss = NAN;
    r->have_metrics = rosa_file_exists(path);
    if (r->have_metrics && rosa_metrics_read(path, on_metrics_line, &m) < 0) {
        if (m.failed) goto done;
        r->have_metrics = 0; /* unreadable: as if absent */
    }
    rosa_clear_error();
    r->n = m.cols[0].n;
    double **dst[7] = {&r->step, &r->loss, &r->lr, &r->gnorm, &r->tps, &r->tokens, &r->seconds};
    for (int c = 0; c < 7; c++) *dst[c] = m.cols[c].v, m.cols[c].v = NULL;
    r->n_val = m.vs.n, r->val_step = m.vs.v, r->val_loss = m.vl.v;
    m.vs.v = m.vl.v = NULL;
    if (sort_steps(r) < 0) goto done;
    for (int i = 0; i < r->n; i++) {
        if (isfinite(r->seconds[i])) r->wall_seconds += r->seconds[i];
        if (isfinite(r->tokens[i])) r->tokens_total += r->tokens[i];
    }
    status = 0;
done:
    for (int c = 0; c < 7; c++) free(m.cols[c].v);
    free(m.vs.v);
    free(m.vl.v);
    free(path);
    return status;
}

/* The newest checkpoint-N/trainer_state.json's max_steps. */
static void read_total_steps(rosa_run *r) {
    r->total_steps = -1;
    DIR *d = opendir(r->dir);
    if (!d) return;
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%lld%c", &s, &tail) == 1 && s > best) best = s;
    }
    closedir(d);
    if (best < 0) return;
    char rel[64];
    snprintf(rel, sizeof rel, "checkpoint-%lld/trainer_state.json", best);
    char *path = rosa_path_join(r->dir, rel);
    cJSON *st = path && rosa_file_exists(path) ? rosa_json_load(path) : NULL;
    /* HF Trainer's max_steps; rosa <= 0.1.0 wrote total_steps there. */
    double t = st ? num_or_nan(st, "max_steps") : NAN;
    if (st && !isfinite(t)) t = num_or_nan(st, "total_steps");
    if (isfinite(t) && t >= 0) r->total_steps = (int64_t)t;
    cJSON_Delete(st);
    free(path);
    rosa_clear_error();
}

static void read_adapter(rosa_run *r) {
    r->trainable = -1;
    r->base_params = -1;
    char *cfg_path = rosa_path_join(r->dir, "adapter_config.json");
    char *st_path = rosa_path_join(r->dir, "adapter_model.safetensors");
    if (!cfg_path || !st_path) goto done;
    if (!rosa_file_exists(cfg_path)) {
        r->adapter_note = rosa_strdup("no adapter_config.json (the run has not finished, or this is not a run directory)");
    } else if (!(r->adapter_cfg = rosa_json_load(cfg_path)) || !cJSON_IsObject(r->adapter_cfg)) {
        r->adapter_note = dup_printf("adapter_config.json is unreadable: %s", rosa_last_error());
        cJSON_Delete(r->adapter_cfg);
        r->adapter_cfg = NULL;
    }
    if (rosa_file_exists(st_path)) {
        st_set s = {0};
        if (st_set_add_file(&s, st_path) == 0) {
            r->trainable = 0;
            for (int i = 0; i < s.n_tensors; i++) {
                r->trainable += st_numel(&s.tensors[i]);
                r->adapter_bytes += (int64_t)s.tensors[i].nbytes;
            }
        } else if (!r->adapter_note) {
            r->adapter_note = dup_printf("adapter_model.safetensors is unreadable: %s", rosa_last_error());
        }
        st_set_close(&s);
    }
    /* The base model, when its directory is reachable from here or from the run. */
    const cJSON *b = r->adapter_cfg ? cJSON_GetObjectItemCaseSensitive(r->adapter_cfg, "base_model_name_or_path") : NULL;
    if (cJSON_IsString(b) && *b->valuestring) {
        const char *name = b->valuestring;
        char *cands[2] = {rosa_strdup(name), name[0] == '/' ? NULL : rosa_path_join(r->dir, name)};
        for (int i = 0; i < 2 && !r->have_base; i++) {
            if (!cands[i] || !rosa_is_dir(cands[i])) continue;
            if (rosa_config_load(cands[i], &r->base) == 0) {
                r->have_base = 1;
                r->base_dir = cands[i], cands[i] = NULL;
                r->base_params = rosa_config_num_params(&r->base);
            } else if (!r->base_note) {
                r->base_note = dup_printf("the base model's config.json is unreadable: %s", rosa_last_error());
            }
        }
        if (!r->have_base && !r->base_note)
            r->base_note = dup_printf("the base model directory \"%s\" is not reachable from here", name);
        free(cands[0]);
        free(cands[1]);
    }
done:
    free(cfg_path);
    free(st_path);
    rosa_clear_error();
}

/* training_args.json's "options" object, when the run recorded one. */
static void read_training_args(rosa_run *r) {
    char *path = rosa_path_join(r->dir, "training_args.json");
    cJSON *j = path && rosa_file_exists(path) ? rosa_json_load(path) : NULL;
    cJSON *opts = j ? cJSON_DetachItemFromObjectCaseSensitive(j, "options") : NULL;
    if (cJSON_IsObject(opts)) r->options = opts;
    else cJSON_Delete(opts);
    cJSON_Delete(j);
    free(path);
    rosa_clear_error();
}

static void read_evals(rosa_run *r) {
    DIR *d = opendir(r->dir);
    if (!d) return;
    struct dirent *e;
    char **names = NULL;
    int n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (fnmatch("eval*.json", e->d_name, 0) != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            char **p = rosa_realloc(names, sizeof(char *) * (size_t)cap, "evaluation file names");
            if (!p) break;
            names = p;
        }
        names[n] = rosa_strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n == 0) {
        free(names);
        return;
    }
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    /* eval.json first */
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "eval.json") == 0) {
            char *t = names[i];
            memmove(names + 1, names, sizeof(char *) * (size_t)i);
            names[0] = t;
        }
    r->eval_files = names;
    r->n_eval = n;
    r->evals = rosa_calloc((size_t)n, sizeof *r->evals, "evaluation reports");
    r->eval_notes = rosa_calloc((size_t)n, sizeof(char *), "evaluation reports");
    if (!r->evals || !r->eval_notes) {
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        free(r->evals);
        free(r->eval_notes);
        r->eval_files = NULL, r->evals = NULL, r->eval_notes = NULL;
        r->n_eval = 0;
        rosa_clear_error();
        return;
    }
    /* only what rosa eval --output writes (src/eval/eval_report.c) is read */
    for (int i = 0; i < n; i++) {
        char *path = rosa_path_join(r->dir, names[i]);
        rosa_eval_summary *s = path ? rosa_calloc(1, sizeof *s, "evaluation report") : NULL;
        if (s && rosa_eval_report_read(path, s) == 0) {
            r->evals[i] = s;
        } else {
            free(s);
            r->eval_notes[i] = dup_printf("unreadable: %s", rosa_last_error());
        }
        free(path);
    }
    rosa_clear_error();
}

int rosa_run_load(const char *dir, rosa_run *r) {
    memset(r, 0, sizeof *r);
    r->peak_rss = NAN;
    r->total_steps = -1;
    r->trainable = -1;
    r->base_params = -1;
    if (!rosa_is_dir(dir)) return rosa_fail("%s: not a directory", dir);
    r->dir = rosa_strdup(dir);
    if (!r->dir) return -1;
    size_t n = strlen(r->dir);
    while (n > 1 && r->dir[n - 1] == '/') r->dir[--n] = 0;
    const char *slash = strrchr(r->dir, '/');
    r->name = rosa_strdup(slash && slash[1] ? slash + 1 : r->dir);
    if (!r->name || read_metrics(r) < 0) {
        rosa_run_free(r);
        return -1;
    }
    read_adapter(r);
    if (!r->have_metrics && !r->adapter_cfg) {
        rosa_fail("%s: neither metrics.jsonl nor adapter_config.json: not a training output directory", dir);
        rosa_run_free(r);
        return -1;
    }
    read_total_steps(r);
    read_training_args(r);
    read_evals(r);
    return 0;
}

void rosa_run_free(rosa_run *r) {
    free(r->dir);
    free(r->name);
    double *cols[] = {r->step, r->loss, r->lr, r->gnorm, r->tps, r->tokens, r->seconds, r->val_step, r->val_loss};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) free(cols[i]);
    for (int i = 0; i < r->n_dls; i++) free(r->dls[i].vals);
    free(r->dls);
    cJSON_Delete(r->adapter_cfg);
    cJSON_Delete(r->options);
    free(r->adapter_note);
    free(r->base_dir);
    free(r->base_note);
    free(r->plan_compute);
    for (int i = 0; i < r->n_eval; i++) {
        free(r->eval_files[i]);
        if (r->evals[i]) rosa_eval_summary_free(r->evals[i]);
        free(r->evals[i]);
        free(r->eval_notes[i]);
    }
    free(r->eval_files);
    free(r->evals);
    free(r->eval_notes);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------- HTML output */

static const char *CSS =
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f5f6f8;color:#222;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,"
    "'DejaVu Sans',Arial,sans-serif}"
    "main{max-width:1200px;margin:0 auto;padding:24px 28px 40px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:30px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid #dde1e6}h3{font-size:15px;margin:18px 0 6px}"
    ".sub{color:#5a6270;margin:0 0 16px}.sub code{background:#e9ecf0;padding:1px 5px;border-radius:4px}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:12px 0}"
    ".card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 14px}"
    ".card .k{color:#5a6270;font-size:12px;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:20px;font-weight:600;margin-top:2px}.card .d{color:#5a6270;font-size:12px}"
    ".panel{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px;margin:10px 0}"
    ".panel svg{display:block;max-width:100%;height:auto}"
    ".grid3{display:grid;grid-template-columns:repeat(3,1fr);gap:10px}"
    ".grid2{display:grid;grid-template-columns:repeat(2,1fr);gap:10px}"
    "@media(max-width:900px){.grid3,.grid2{grid-template-columns:1fr}}"
    ".grid3 .panel,.grid2 .panel{margin:0}"
    "table{border-collapse:collapse;background:#fff;border:1px solid #e1e4e8;margin:8px 0;font-size:13px}"
    "th,td{padding:5px 12px;border-bottom:1px solid #eceff2;text-align:left;vertical-align:top;"
    "overflow-wrap:anywhere}"
    ".grid2>div,.grid3>div{min-width:0}"
    "th{background:#f0f2f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "td.diff{background:#fff4d6}"
    ".note{background:#fff8e6;border:1px solid #f1d9a0;border-radius:6px;padding:8px 12px;margin:8px 0;color:#5c4813}"
    ".muted{color:#6a7280}details{margin:8px 0}summary{cursor:pointer;color:#3a5a8c}"
    "code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12.5px}"
    "footer{margin-top:36px;color:#6a7280;font-size:12px;border-top:1px solid #dde1e6;padding-top:10px}";

static void h(svg_buf *o, const char *s) { svg_escape(o, s); }

static void fmt_count(char *buf, size_t n, double v) {
    if (!isfinite(v)) {
        snprintf(buf, n, "–");
        return;
    }
    char raw[64], out[96];
    snprintf(raw, sizeof raw, "%.0f", fabs(v));
    size_t len = strlen(raw), k = 0;
    if (v < 0) out[k++] = '-';
    for (size_t i = 0; i < len; i++) {
        out[k++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len) out[k++] = ',';
    }
    out[k] = 0;
    snprintf(buf, n, "%s", out);
}

static void fmt_bytes(char *buf, size_t n, double b) {
    if (!isfinite(b) || b < 0) snprintf(buf, n, "–");
    else if (b >= 1073741824.0) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else if (b >= 1048576.0) snprintf(buf, n, "%.1f MiB", b / 1048576.0);
    else if (b >= 1024.0) snprintf(buf, n, "%.1f KiB", b / 1024.0);
    else snprintf(buf, n, "%.0f B", b);
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "–");
    else if (s >= 3.6e9) snprintf(buf, n, "%.3g h", s / 3600);
    else if (s < 60) snprintf(buf, n, "%.1f s", s);
    else if (s < 3600) snprintf(buf, n, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static const char *method_name(const rosa_run *r) {
    const cJSON *c = r->adapter_cfg;
    const cJSON *pt = c ? cJSON_GetObjectItemCaseSensitive(c, "peft_type") : NULL;
    int dls = r->L > 0;
    const cJSON *d = c ? cJSON_GetObjectItemCaseSensitive(c, "dls") : NULL;
    if (d && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "enabled"))) dls = 1;
    const rosa_peft_method *m = cJSON_IsString(pt) ? rosa_peft_by_type(pt->valuestring) : NULL;
    if (m) return rosa_peft_display_name(m, dls);
    return dls ? "DLS" : "unknown";
}

static const char *base_name(const rosa_run *r) {
    const cJSON *b = r->adapter_cfg ? cJSON_GetObjectItemCaseSensitive(r->adapter_cfg, "base_model_name_or_path") : NULL;
    return cJSON_IsString(b) ? b->valuestring : NULL;
}

/* Last finite value of the smoothed training loss. */
static double last_finite(const double *v, int n) {
    for (int i = n - 1; i >= 0; i--)
        if (isfinite(v[i])) return v[i];
    return NAN;
}

static double memory_estimate(const rosa_run *r, int *exact) {
    *exact = 0;
    if (r->have_plan && r->plan.memory_bytes >= 0) return *exact = 1, (double)r->plan.memory_bytes;
    if (isfinite(r->peak_rss)) return *exact = 2, r->peak_rss;
    if (r->base_params < 0 || r->trainable < 0) return NAN;
    /* weights in F32 + adapter values, gradients and two AdamW moments */
    return 4.0 * (double)r->base_params + 16.0 * (double)r->trainable;
}

static const char *run_color(int i) { return svg_palette(i); }

/* Key facts of a run, as (label, value) rows; value strings escaped later. */
typedef struct {
    char label[64];
    char value[256];
    char detail[256];
} fact;

static int run_facts(const rosa_run *r, fact *f) {
    int k = 0;
    char a[96], b[96];
#define ADD(L, D, ...)                                                                                           \
    do {                                                                                                         \
        snprintf(f[k].label, sizeof f[k].label, "%s", L);                                                        \
        snprintf(f[k].value, sizeof f[k].value, __VA_ARGS__);                                                    \
        snprintf(f[k].detail, sizeof f[k].detail, "%s", D);                                                      \
        k++;                                                                                                     \
    } while (0)
    {
        const char *mn = method_name(r), *paren = strchr(mn, '(');
        char shortname[64], detail[64] = "";
        snprintf(shortname, sizeof shortname, "%.*s", paren ? (int)(paren - mn - 1) : (int)strlen(mn), mn);
        if (paren) snprintf(detail, sizeof detail, "%.*s", (int)strlen(paren) - 2, paren + 1);
        ADD("method", detail, "%s", shortname);
    }
    double last_step = r->n ? r->step[r->n - 1] : r->max_step;
    if (r->total_steps > 0) ADD("steps", r->n_skipped ? "some skipped" : "", "%.0f / %lld", last_step, (long long)r->total_steps);
    else ADD("steps", "", "%.0f", last_step);
    double *sm = r->n ? rosa_calloc((size_t)r->n, sizeof(double), "smoothed loss") : NULL;
    if (sm) {
        rosa_ema(r->loss, r->n, rosa_report_span(r->n), sm);
        snprintf(a, sizeof a, "raw %.4f", last_finite(r->loss, r->n));
        ADD("final train loss", a, "%.4f", last_finite(sm, r->n));
        free(sm);
    } else ADD("final train loss", "", "–");
    if (r->n_val) {
        int best = 0;
        for (int i = 1; i < r->n_val; i++)
            if (r->val_loss[i] < r->val_loss[best]) best = i;
        snprintf(a, sizeof a, "best %.4f at step %.0f", r->val_loss[best], r->val_step[best]);
        ADD("final val loss", a, "%.4f", r->val_loss[r->n_val - 1]);
    } else ADD("final val loss", "no validation", "–");
    if (r->trainable >= 0) {
        fmt_count(a, sizeof a, (double)r->trainable);
        if (r->base_params > 0) {
            fmt_count(b, sizeof b, (double)r->base_params);
            char d[160];
            snprintf(d, sizeof d, "%.4f%% of %s", 100.0 * (double)r->trainable / (double)r->base_params, b);
            ADD("trainable params", d, "%s", a);
        } else ADD("trainable params", "base model unknown", "%s", a);
    } else ADD("trainable params", "", "–");
    fmt_duration(a, sizeof a, r->wall_seconds);
    fmt_count(b, sizeof b, r->tokens_total);
    char d2[160];
    snprintf(d2, sizeof d2, "%s tokens", b);
    ADD("wall time", d2, "%s", r->n ? a : "–");
    fmt_count(a, sizeof a, r->wall_seconds > 0 ? r->tokens_total / r->wall_seconds : NAN);
    if (r->wall_seconds > 0) ADD("tokens / s", "total tokens / wall time", "%s", a);
    else ADD("tokens / s", "", "–");
    int exact;
    double mem = memory_estimate(r, &exact);
    fmt_bytes(a, sizeof a, mem);
    ADD("memory", exact == 1 ? "planned by train" : exact == 2 ? "peak RSS" : isfinite(mem) ? "estimate, without activations" : "",
        "%s%s", exact == 0 && isfinite(mem) ? "≥ " : "", a);
#undef ADD
    return k;
}

static void cards(svg_buf *o, const rosa_run *r) {
    fact f[16];
    int n = run_facts(r, f);
    svg_put(o, "<div class=\"cards\">");
    for (int i = 0; i < n; i++) {
        svg_put(o, "<div class=\"card\"><div class=\"k\">");
        h(o, f[i].label);
        svg_put(o, "</div><div class=\"v\">");
        h(o, f[i].value);
        svg_put(o, "</div><div class=\"d\">");
        h(o, f[i].detail);
        svg_put(o, "</div></div>");
    }
    svg_put(o, "</div>");
}

static void facts_table(svg_buf *o, rosa_run *runs, int n) {
    fact f[8][16];
    int nf = 0;
    for (int i = 0; i < n && i < 8; i++) nf = run_facts(&runs[i], f[i]);
    svg_put(o, "<table><tr><th></th>");
    for (int i = 0; i < n && i < 8; i++) {
        svg_printf(o, "<th><span style=\"color:%s\">&#9632;</span> ", run_color(i));
        h(o, runs[i].name);
        svg_put(o, "</th>");
    }
    svg_put(o, "</tr>");
    for (int k = 0; k < nf; k++) {
        svg_put(o, "<tr><th>");
        h(o, f[0][k].label);
        svg_put(o, "</th>");
        for (int i = 0; i < n && i < 8; i++) {
            svg_put(o, "<td class=\"n\">");
            h(o, f[i][k].value);
            if (f[i][k].detail[0]) {
                svg_put(o, "<br><span class=\"muted\">");
                h(o, f[i][k].detail);
                svg_put(o, "</span>");
            }
            svg_put(o, "</td>");
        }
        svg_put(o, "</tr>");
    }
    svg_put(o, "</table>");
}

/* One metric against the step for every run: raw (faint) and smoothed. */
static void metric_chart(svg_buf *o, rosa_run *runs, int n, int which, const char *title, const char *ylabel, int W,
                         int H, int with_val) {
    svg_series s[3 * 8];
    double *bufs[8] = {0};
    int ns = 0;
    char labels[8][2][160];
    for (int i = 0; i < n && i < 8; i++) {
        rosa_run *r = &runs[i];
        const double *y = which == 0 ? r->loss : which == 1 ? r->lr : which == 2 ? r->gnorm : r->tps;
        if (r->n == 0) continue;
        double span = rosa_report_span(r->n);
        int smooth = which != 1 && span > 1;
        if (smooth) {
            bufs[i] = rosa_calloc((size_t)r->n, sizeof(double), "smoothed curve");
            if (!bufs[i]) smooth = 0;
            else rosa_ema(y, r->n, span, bufs[i]);
        }
        if (n == 1) {
            snprintf(labels[i][0], sizeof labels[i][0], "%s", smooth ? "raw" : which == 0 ? "train loss" : ylabel);
            snprintf(labels[i][1], sizeof labels[i][1], "EMA (span %.0f)", span);
        } else {
            snprintf(labels[i][0], sizeof labels[i][0], "%s", r->name);
            snprintf(labels[i][1], sizeof labels[i][1], "%s", r->name);
        }
        s[ns++] = (svg_series){(smooth && n > 1) || (!smooth && n == 1 && !with_val) ? NULL : labels[i][0], r->step, y,
                               r->n, run_color(i),
                               smooth ? 1.2 : 2, smooth ? 0.35 : 1, 0, 0, 0};
        if (smooth)
            s[ns++] = (svg_series){labels[i][1], r->step, bufs[i], r->n, run_color(i), 2.2, 1, 0, 0, 0};
    }
    char vlab[8][160];
    if (with_val)
        for (int i = 0; i < n && i < 8; i++) {
            rosa_run *r = &runs[i];
            if (!r->n_val) continue;
            if (n == 1) snprintf(vlab[i], sizeof vlab[i], "validation");
            else snprintf(vlab[i], sizeof vlab[i], "%s (validation)", r->name);
            s[ns++] = (svg_series){vlab[i], r->val_step, r->val_loss, r->n_val,
                                   n == 1 ? svg_palette(3) : run_color(i), 1.8, 1, 1, 1, 0};
        }
    svg_line_chart c = {.width = W, .height = H, .title = title, .xlabel = "step", .ylabel = ylabel,
                        .y_from_zero = which >= 2, .series = s, .n_series = ns, .empty_text = "no steps recorded",
                        .x_integer = 1};
    svg_line_chart_render(o, &c);
    for (int i = 0; i < 8; i++) free(bufs[i]);
}

/* The DLS heatmap of one run: layers x steps. */
static void dls_heatmap(svg_buf *o, const rosa_run *r, int W) {
    int L = r->L;
    /* steps past 10 million (a damaged file) are left out of the map */
    int S = r->max_step >= 1 ? (int)fmin(r->max_step, 1e7) : 0;
    if (L <= 0 || S <= 0) return;
    int cols = S > 1000 ? 1000 : S;
    int cap = 200000 / L; /* at most ~200k cells, whatever the layer count */
    if (cap < 20) cap = 20;
    if (cols > cap) cols = cap;
    double *vals = rosa_calloc((size_t)L * cols, sizeof(double), "DLS heatmap");
    unsigned char *faded = rosa_calloc((size_t)L * cols, 1, "DLS heatmap");
    double *edges = rosa_calloc((size_t)cols + 1, sizeof(double), "DLS heatmap");
    double *score = rosa_calloc((size_t)L, sizeof(double), "DLS heatmap");
    unsigned char *active = rosa_calloc((size_t)L, 1, "DLS heatmap");
    double *mx = rosa_calloc((size_t)r->n_dls + 1, sizeof(double), "DLS heatmap");
    int *mk = rosa_calloc((size_t)r->n_dls + 1, sizeof(int), "DLS heatmap");
    char **labels = rosa_calloc((size_t)L, sizeof(char *), "DLS heatmap");
    if (!vals || !faded || !edges || !score || !active || !mx || !mk || !labels) {
        o->failed = 1;
        goto done;
    }
    for (int l = 0; l < L; l++) {
        score[l] = NAN;
        active[l] = 1;
        labels[l] = NULL;
    }
    /* Walk the steps in order: a selection logged at step s holds from step s
     * on; scores logged at step s (computed after it) colour the steps after s. */
    int nm = 0;
    int *ord = rosa_calloc((size_t)r->n_dls + 1, sizeof(int), "DLS heatmap");
    if (!ord) {
        o->failed = 1;
        goto done;
    }
    if (r->n_dls > 0 && stable_order(&r->dls[0].step, sizeof(rosa_dls_line), r->n_dls, ord) < 0) {
        o->failed = 1;
        free(ord);
        goto done;
    }
    int sel_i = 0, score_i = 0;
    for (int t = 1; t <= S; t++) {
        for (; sel_i < r->n_dls && r->dls[ord[sel_i]].step <= t; sel_i++) {
            const rosa_dls_line *d = &r->dls[ord[sel_i]];
            if (d->kind != ROSA_METRICS_DLS_SELECTION) continue;
            memset(active, 0, (size_t)L);
            for (int k = 0; k < d->n; k++) active[(int)d->vals[k]] = 1;
            mx[nm] = d->step - 0.5;
            mk[nm++] = d->mode == ROSA_DLS_MODE_EXPLORE ? 1 : 0;
        }
        for (; score_i < r->n_dls && r->dls[ord[score_i]].step < t; score_i++) {
            const rosa_dls_line *d = &r->dls[ord[score_i]];
            if (d->kind != ROSA_METRICS_DLS_SCORES) continue;
            for (int l = 0; l < L; l++) score[l] = l < d->n ? d->vals[l] : NAN;
        }
        int col = (int)((long long)(t - 1) * cols / S);
        if ((int)((long long)t * cols / S) != col || t == S)
            for (int l = 0; l < L; l++) {
                vals[(size_t)l * cols + col] = score[l];
                faded[(size_t)l * cols + col] = !active[l];
            }
    }
    for (int k = 0; k <= cols; k++) edges[k] = 0.5 + (double)k * S / cols;
    for (int l = 0; l < L; l++) labels[l] = dup_printf("layer %d", l);
    for (int l = 0; l < L; l++)
        if (!labels[l]) o->failed = 1;
    if (!o->failed) {
        char title[512];
        snprintf(title, sizeof title, "DLS: active layers and scores by step%s%s", r->name ? " — " : "",
                 r->name ? r->name : "");
        static const char *mlabels[] = {"exploit selection (top-k)", "explore selection (random)"};
        int Hh = 120 + L * 22;
        if (Hh > 720) Hh = 720;
        if (Hh < 200) Hh = 200;
        svg_heatmap hm = {.width = W, .height = Hh, .title = title, .xlabel = "step", .rows = L, .cols = cols,
                          .values = vals, .faded = faded, .row_labels = (const char *const *)labels, .col_edges = edges,
                          .colorbar_label = "DLS score (latest)", .full_label = "active", .faded_label = "inactive",
                          .missing_label = "no score yet", .marker_x = mx, .marker_kind = mk, .n_markers = nm,
                          .marker_labels = mlabels, .n_marker_kinds = 2, .marker_lines = 1};
        svg_heatmap_render(o, &hm);
    }
    free(ord);
done:
    if (labels)
        for (int l = 0; l < L; l++) free(labels[l]);
    free(labels);
    free(vals);
    free(faded);
    free(edges);
    free(score);
    free(active);
    free(mx);
    free(mk);
}

/* Selections per layer: the dls_counts line, else counted from the selections. */
static void dls_counts(const rosa_run *r, double *counts) {
    int have = 0;
    for (int i = 0; i < r->L; i++) counts[i] = 0;
    for (int i = r->n_dls - 1; i >= 0 && !have; i--)
        if (r->dls[i].kind == ROSA_METRICS_DLS_COUNTS) {
            for (int l = 0; l < r->L; l++) counts[l] = l < r->dls[i].n ? r->dls[i].vals[l] : 0;
            have = 1;
        }
    if (!have)
        for (int i = 0; i < r->n_dls; i++)
            if (r->dls[i].kind == ROSA_METRICS_DLS_SELECTION)
                for (int k = 0; k < r->dls[i].n; k++) counts[(int)r->dls[i].vals[k]] += 1;
}

static void dls_section(svg_buf *o, rosa_run *runs, int n) {
    int any = 0, Lmax = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].L > 0) {
            any = 1;
            if (runs[i].L > Lmax) Lmax = runs[i].L;
        }
    svg_put(o, "<h2 id=\"dls\">Dynamic layer selection</h2>");
    if (!any) {
        svg_put(o, "<p class=\"muted\">No DLS lines in metrics.jsonl: DLS was not enabled");
        svg_put(o, n > 1 ? " in these runs.</p>" : " in this run.</p>");
        return;
    }
    svg_put(o, "<p class=\"muted\">Each row is a layer, each column an optimizer step. Bright cells trained in that "
               "step, faded cells were skipped; the colour is the layer's latest DLS score (the RMSNorm gradient norm "
               "the selection used). Markers on top show each reselection: filled triangles took the top-k layers "
               "(exploit), hollow diamonds drew k at random (explore). Before the first selection (warm-up) every layer "
               "trains.</p>");
    for (int i = 0; i < n; i++) {
        if (runs[i].L <= 0) continue;
        svg_put(o, "<div class=\"panel\">");
        dls_heatmap(o, &runs[i], 1140);
        svg_put(o, "</div>");
    }
    /* counts */
    double *vals = rosa_calloc((size_t)Lmax * (size_t)n, sizeof(double), "DLS counts chart");
    char **cats = rosa_calloc((size_t)Lmax, sizeof(char *), "DLS counts chart");
    const char *labels[8], *colors[8];
    int ns = 0;
    if (!vals || !cats) {
        o->failed = 1;
        goto done;
    }
    for (int l = 0; l < Lmax; l++)
        if (!(cats[l] = dup_printf("%d", l))) o->failed = 1;
    double *cnt = rosa_calloc((size_t)Lmax, sizeof(double), "DLS counts chart");
    if (!cnt) {
        o->failed = 1;
        goto done;
    }
    for (int i = 0; i < n && ns < 8; i++) {
        if (runs[i].L <= 0) continue;
        dls_counts(&runs[i], cnt);
        for (int l = 0; l < Lmax; l++) vals[(size_t)ns * Lmax + l] = l < runs[i].L ? cnt[l] : NAN;
        labels[ns] = runs[i].name;
        colors[ns] = run_color(i);
        ns++;
    }
    free(cnt);
    svg_put(o, "<div class=\"grid2\"><div class=\"panel\">");
    svg_bar_chart bc = {.width = 560, .height = 280, .title = "Selections per layer", .xlabel = "layer",
                        .ylabel = "times selected", .categories = (const char *const *)cats, .n_cat = Lmax,
                        .values = vals, .series_labels = ns > 1 ? labels : NULL, .n_series = ns, .colors = colors,
                        .value_format = Lmax <= 24 ? "%.0f" : NULL};
    svg_bar_chart_render(o, &bc);
    svg_put(o, "</div><div class=\"panel\" style=\"overflow:auto;max-height:300px\">");
    /* selection list */
    for (int i = 0; i < n; i++) {
        const rosa_run *r = &runs[i];
        if (r->L <= 0) continue;
        if (n > 1) {
            svg_put(o, "<h3>");
            h(o, r->name);
            svg_put(o, "</h3>");
        }
        svg_put(o, "<table><tr><th>step</th><th>mode</th><th>layers</th></tr>");
        for (int k = 0; k < r->n_dls; k++) {
            const rosa_dls_line *d = &r->dls[k];
            if (d->kind != ROSA_METRICS_DLS_SELECTION) continue;
            svg_printf(o, "<tr><td class=\"n\">%.0f</td><td>%s</td><td>", d->step,
                       rosa_dls_mode_name(d->mode));
            for (int j = 0; j < d->n; j++) svg_printf(o, "%s%d", j ? ", " : "", (int)d->vals[j]);
            svg_put(o, "</td></tr>");
        }
        svg_put(o, "</table>");
    }
    svg_put(o, "</div></div>");
done:
    if (cats)
        for (int l = 0; l < Lmax; l++) free(cats[l]);
    free(cats);
    free(vals);
}

/* Flattens a JSON object into "a.b" = value rows. */
typedef struct {
    char key[160];
    char *val;
} kv;

static int flatten(const cJSON *o, const char *prefix, kv *out, int n, int cap) {
    const cJSON *c;
    cJSON_ArrayForEach(c, o) {
        if (n >= cap) break;
        char key[160];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", c->string ? c->string : "?");
        if (cJSON_IsObject(c) && cJSON_GetArraySize(c) > 0) {
            n = flatten(c, key, out, n, cap);
            continue;
        }
        snprintf(out[n].key, sizeof out[n].key, "%s", key);
        out[n].val = cJSON_IsString(c) ? rosa_strdup(c->valuestring) : cJSON_PrintUnformatted(c);
        if (out[n].val) n++;
    }
    return n;
}

/* One flattened JSON object per run as a key / value table (rows that differ between runs highlighted). */
static void kv_table(svg_buf *o, rosa_run *runs, int n, cJSON *(*pick)(const rosa_run *), const char *empty) {
    enum { CAP = 256 };
    kv *rows[8] = {0};
    int nr[8] = {0};
    for (int i = 0; i < n && i < 8; i++) {
        rows[i] = rosa_calloc(CAP, sizeof(kv), "configuration table");
        if (!rows[i]) {
            o->failed = 1;
            goto done;
        }
        if (pick(&runs[i])) nr[i] = flatten(pick(&runs[i]), "", rows[i], 0, CAP);
    }
    /* union of keys in order of appearance */
    const char *keys[8 * CAP];
    int nk = 0;
    for (int i = 0; i < n && i < 8; i++)
        for (int k = 0; k < nr[i]; k++) {
            int seen = 0;
            for (int j = 0; j < nk && !seen; j++) seen = strcmp(keys[j], rows[i][k].key) == 0;
            if (!seen) keys[nk++] = rows[i][k].key;
        }
    if (nk == 0) {
        svg_put(o, "<p class=\"muted\">");
        svg_put(o, empty);
        svg_put(o, "</p>");
        goto done;
    }
    svg_put(o, "<table><tr><th>key</th>");
    if (n > 1)
        for (int i = 0; i < n && i < 8; i++) {
            svg_put(o, "<th>");
            h(o, runs[i].name);
            svg_put(o, "</th>");
        }
    else svg_put(o, "<th>value</th>");
    svg_put(o, "</tr>");
    for (int j = 0; j < nk; j++) {
        svg_put(o, "<tr><th>");
        h(o, keys[j]);
        svg_put(o, "</th>");
        const char *first = NULL;
        int differ = 0;
        for (int i = 0; i < n && i < 8; i++) {
            const char *v = NULL;
            for (int k = 0; k < nr[i] && !v; k++)
                if (strcmp(rows[i][k].key, keys[j]) == 0) v = rows[i][k].val;
            if (i == 0) first = v;
            else if ((v == NULL) != (first == NULL) || (v && first && strcmp(v, first) != 0)) differ = 1;
        }
        for (int i = 0; i < n && i < 8; i++) {
            const char *v = NULL;
            for (int k = 0; k < nr[i] && !v; k++)
                if (strcmp(rows[i][k].key, keys[j]) == 0) v = rows[i][k].val;
            svg_put(o, differ ? "<td class=\"diff\"><code>" : "<td><code>");
            h(o, v ? v : "–");
            svg_put(o, "</code></td>");
        }
        svg_put(o, "</tr>");
    }
    svg_put(o, "</table>");
done:
    for (int i = 0; i < n && i < 8; i++) {
        for (int k = 0; k < nr[i]; k++) free(rows[i][k].val);
        free(rows[i]);
    }
}

static cJSON *pick_options(const rosa_run *r) { return r->options; }
static cJSON *pick_adapter_cfg(const rosa_run *r) { return r->adapter_cfg; }

static void fmt_mib(char *buf, size_t n, double bytes) {
    if (isfinite(bytes) && bytes >= 0) snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
    else snprintf(buf, n, "–");
}

static void config_section(svg_buf *o, rosa_run *runs, int n) {
    svg_put(o, "<h2 id=\"config\">Configuration</h2>");
    int any_options = 0;
    for (int i = 0; i < n; i++) any_options |= runs[i].options != NULL;
    /* the hyper-parameters as train resolved them, when it recorded them */
    if (any_options) {
        svg_put(o, "<h3>Hyper-parameters (<code>training_args.json</code>)</h3>");
        kv_table(o, runs, n, pick_options, "no recorded options");
    }
    svg_put(o, n > 1 ? "<div><div><h3>adapter_config.json</h3>" : "<div class=\"grid2\"><div><h3>adapter_config.json</h3>");
    kv_table(o, runs, n, pick_adapter_cfg, "no adapter configuration");
    svg_put(o, "</div><div><h3>Base model and resources</h3><table><tr><th></th>");
    if (n > 1)
        for (int i = 0; i < n && i < 8; i++) {
            svg_put(o, "<th>");
            h(o, runs[i].name);
            svg_put(o, "</th>");
        }
    else svg_put(o, "<th></th>");
    svg_put(o, "</tr>");
    static const char *rl[] = {"base model",  "architecture", "layers × hidden", "heads (q / kv) × head_dim",
                               "base params", "trainable",    "adapter file",    "memory planned",
                               "wall time",   "tokens",       "peak RSS measured"};
    for (int k = 0; k < 11; k++) {
        svg_put(o, "<tr><th>");
        h(o, rl[k]);
        svg_put(o, "</th>");
        for (int i = 0; i < n && i < 8; i++) {
            const rosa_run *r = &runs[i];
            char v[512] = "–", a[96];
            const rosa_config *c = &r->base;
            switch (k) {
            case 0: snprintf(v, sizeof v, "%s", base_name(r) ? base_name(r) : "–"); break;
            case 1: if (r->have_base) snprintf(v, sizeof v, "%s", c->architecture); break;
            case 2: if (r->have_base) snprintf(v, sizeof v, "%d × %d", c->num_layers, c->hidden_size); break;
            case 3:
                if (r->have_base) snprintf(v, sizeof v, "%d / %d × %d", c->num_heads, c->num_kv_heads, c->head_dim);
                break;
            case 4: if (r->base_params >= 0) fmt_count(v, sizeof v, (double)r->base_params); break;
            case 5:
                if (r->trainable >= 0) {
                    fmt_count(a, sizeof a, (double)r->trainable);
                    if (r->base_params > 0)
                        snprintf(v, sizeof v, "%s (%.4f%%)", a, 100.0 * (double)r->trainable / (double)r->base_params);
                    else snprintf(v, sizeof v, "%s", a);
                }
                break;
            case 6: if (r->trainable >= 0) fmt_bytes(v, sizeof v, (double)r->adapter_bytes); break;
            case 7: /* the plan train printed, else an estimate; the measurement is row 10 */
                if (r->have_plan && r->plan.memory_bytes >= 0) {
                    fmt_mib(v, sizeof v, (double)r->plan.memory_bytes);
                } else if (r->base_params >= 0 && r->trainable >= 0) {
                    fmt_mib(a, sizeof a, 4.0 * (double)r->base_params + 16.0 * (double)r->trainable);
                    snprintf(v, sizeof v, "≥ %s (estimate)", a);
                }
                break;
            case 10: fmt_mib(v, sizeof v, r->peak_rss); break;
            case 8: fmt_duration(v, sizeof v, r->wall_seconds); break;
            case 9: fmt_count(v, sizeof v, r->tokens_total); break;
            }
            svg_put(o, "<td>");
            h(o, v);
            svg_put(o, "</td>");
        }
        svg_put(o, "</tr>");
    }
    svg_put(o, "</table>");
    /* the "plan" line, when train wrote one */
    for (int i = 0; i < n && i < 8; i++) {
        if (!runs[i].have_plan) continue;
        const rosa_training_plan *p = &runs[i].plan;
        svg_put(o, "<h3>Training plan");
        if (n > 1) {
            svg_put(o, ": ");
            h(o, runs[i].name);
        }
        svg_put(o, "</h3><table>");
        static const char *plan_keys[] = {"memory_bytes", "activation_bytes", "trainable_params", "base_params",
                                     "total_steps"};
        const int64_t plan_vals[] = {p->memory_bytes, p->activation_bytes, p->trainable_params, p->base_params,
                                p->total_steps};
        for (int k = 0; k < 5; k++)
            if (plan_vals[k] >= 0)
                svg_printf(o, "<tr><th>%s</th><td><code>%lld</code></td></tr>", plan_keys[k], (long long)plan_vals[k]);
        if (p->compute) {
            svg_put(o, "<tr><th>compute</th><td><code>");
            h(o, p->compute);
            svg_put(o, "</code></td></tr>");
        }
        if (p->recompute >= 0)
            svg_printf(o, "<tr><th>recompute</th><td><code>%s</code></td></tr>", p->recompute ? "true" : "false");
        /* what train planned next to what the process measured */
        char planned[64], measured[64];
        fmt_mib(planned, sizeof planned, p->memory_bytes >= 0 ? (double)p->memory_bytes : NAN);
        fmt_mib(measured, sizeof measured, runs[i].peak_rss);
        svg_printf(o, "<tr><th>memory: planned / peak RSS measured</th><td>%s / %s</td></tr>", planned, measured);
        svg_put(o, "</table>");
    }
    svg_put(o, "</div></div>");
}

/* A fraction as a percentage cell; "–" for null. */
static void pct_cell(svg_buf *o, double frac) {
    if (isnan(frac)) svg_put(o, "<td class=\"n\">–</td>");
    else svg_printf(o, "<td class=\"n\">%.2f%%</td>", 100.0 * frac);
}

/* What the evaluation was: a rescoring, or a run's model, adapter, mode and decoding. */
static void eval_context(svg_buf *o, const rosa_eval_summary *s) {
    long long n = 0;
    for (int i = 0; i < s->n_tasks; i++) n += s->tasks[i].n;
    char dur[64];
    fmt_duration(dur, sizeof dur, s->seconds);
    svg_put(o, "<p class=\"muted\">");
    if (s->scored_predictions) {
        svg_put(o, "rescored from <code>");
        h(o, s->scored_predictions);
        svg_put(o, "</code> · ");
    } else if (s->have_run) {
        if (s->model) {
            svg_put(o, "model <code>");
            h(o, s->model);
            svg_put(o, "</code> · ");
        }
        if (s->adapter) {
            svg_put(o, "adapter <code>");
            h(o, s->adapter);
            svg_put(o, "</code> · ");
        } else svg_put(o, "no adapter · ");
        if (s->mode == ROSA_EVAL_LOGLIK) svg_put(o, "loglik");
        else if (s->have_decoding && s->decoding.num_beams > 1) {
            svg_printf(o, "beam search, %d beams", s->decoding.num_beams);
            if (s->decoding.beam_rule) {
                svg_put(o, " (");
                h(o, s->decoding.beam_rule);
                svg_put(o, ")");
            }
        } else svg_put(o, "greedy");
        if (s->have_decoding)
            svg_printf(o, ", at most %d / %d new tokens (commonsense / math)", s->decoding.max_new_tokens[0],
                       s->decoding.max_new_tokens[1]);
        if (s->limit > 0) svg_printf(o, " · first %d examples per task", s->limit);
        svg_put(o, " · ");
    }
    svg_printf(o, "%lld examples, %s · rosa ", n, dur);
    h(o, s->rosa_version);
    svg_put(o, "</p>");
}

/* The protocol of an evaluation: mode, decoding, items; what two evaluations
 * must share for their accuracies to be compared. */
static void eval_protocol(char *buf, size_t size, const rosa_eval_summary *s) {
    long long items = 0;
    for (int i = 0; i < s->n_tasks; i++) items += s->tasks[i].n;
    if (!s->have_run) snprintf(buf, size, "rescored predictions, %lld items", items);
    else if (s->mode == ROSA_EVAL_LOGLIK) snprintf(buf, size, "loglik, %lld items", items);
    else if (s->have_decoding)
        snprintf(buf, size, "generate, %d beam%s%s%s%s, max %d/%d new tokens, %lld items", s->decoding.num_beams,
                 s->decoding.num_beams == 1 ? " (greedy)" : "s", s->decoding.beam_rule ? " (" : "",
                 s->decoding.beam_rule ? s->decoding.beam_rule : "", s->decoding.beam_rule ? ")" : "",
                 s->decoding.max_new_tokens[0], s->decoding.max_new_tokens[1], items);
    else snprintf(buf, size, "generate, %lld items", items);
}

/* "FILE: adapter DIR | base model, PROTOCOL": how every evaluation is labelled. */
static void eval_label(char *buf, size_t size, const char *file, const rosa_eval_summary *s) {
    char proto[256];
    eval_protocol(proto, sizeof proto, s);
    snprintf(buf, size, "%s: %s%s, %s", file, s->adapter ? "adapter " : s->have_run ? "base model (no adapter)" : "",
             s->adapter ? s->adapter : "", proto);
}

static void eval_tables(svg_buf *o, const rosa_eval_summary *s) {
    eval_context(o, s);
    svg_put(o, "<div class=\"grid2\"><div><table><tr><th>task</th><th>group</th><th>accuracy</th><th>correct</th>"
               "<th>n</th><th>no answer</th></tr>");
    for (int i = 0; i < s->n_tasks; i++) {
        const rosa_eval_task_summary *t = &s->tasks[i];
        svg_put(o, "<tr><td>");
        h(o, t->name);
        svg_printf(o, "</td><td>%s</td>", rosa_task_type_name(t->group));
        pct_cell(o, t->accuracy);
        svg_printf(o, "<td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td></tr>", t->correct, t->n,
                   t->no_answer);
    }
    svg_put(o, "</table></div><div>");
    if (s->n_groups > 0) {
        svg_put(o, "<table><tr><th>group</th><th>tasks</th><th>macro average</th><th>micro average</th>"
                   "<th>correct</th><th>n</th><th>no answer</th></tr>");
        for (int i = 0; i < s->n_groups; i++) {
            const rosa_eval_group_summary *g = &s->groups[i];
            svg_put(o, "<tr><td>");
            h(o, g->name);
            svg_printf(o, "</td><td class=\"n\">%d</td>", g->n_tasks);
            pct_cell(o, g->macro_accuracy);
            pct_cell(o, g->micro_accuracy);
            svg_printf(o, "<td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td></tr>", g->correct,
                       g->n, g->no_answer);
        }
        svg_put(o, "</table>");
    }
    svg_put(o, "</div></div>");
}

static void eval_section(svg_buf *o, rosa_run *runs, int n) {
    svg_put(o, "<h2 id=\"eval\">Evaluation</h2>");
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].n_eval > 0;
    if (!any) {
        svg_put(o, "<p class=\"muted\">No evaluation report (<code>eval.json</code> or <code>eval*.json</code>) in the "
                   "run directory. Write one with <code>rosa eval ... --output RUN_DIR/eval.json</code>.</p>");
        return;
    }
    /* every readable file is a series (at most 8): a base and an adapter evaluation of a run side by side */
    const rosa_eval_summary *ser[8];
    char ser_label[8][512];
    int nser = 0;
    for (int i = 0; i < n && i < 8; i++)
        for (int f = 0; f < runs[i].n_eval && nser < 8; f++) {
            if (!runs[i].evals[f]) continue;
            char lab[448];
            eval_label(lab, sizeof lab, runs[i].eval_files[f], runs[i].evals[f]);
            snprintf(ser_label[nser], sizeof ser_label[nser], "%s%s%s", n > 1 ? runs[i].name : "", n > 1 ? " · " : "", lab);
            ser[nser++] = runs[i].evals[f];
        }
    /* accuracies measured differently are not comparable: say so, on stderr and in the page */
    for (int k = 1; k < nser; k++) {
        char a[256], b[256];
        eval_protocol(a, sizeof a, ser[0]);
        eval_protocol(b, sizeof b, ser[k]);
        if (strcmp(a, b) == 0) continue;
        rosa_log(ROSA_LOG_WARN, "report: the evaluations drawn side by side differ in protocol: %s; %s", ser_label[0],
                 ser_label[k]);
        svg_put(o, "<p class=\"note\">The evaluations drawn side by side differ in protocol (mode, beams, new "
                   "tokens or items), so their accuracies are not comparable: ");
        h(o, ser_label[0]);
        svg_put(o, " <b>vs</b> ");
        h(o, ser_label[k]);
        svg_put(o, "</p>");
    }
    /* chart: tasks x evaluations */
    const char *cats[256];
    int ncat = 0;
    for (int i = 0; i < nser; i++)
        for (int k = 0; k < ser[i]->n_tasks; k++) {
            if (ncat == 256) break;
            int seen = 0;
            for (int j = 0; j < ncat && !seen; j++) seen = strcmp(cats[j], ser[i]->tasks[k].name) == 0;
            if (!seen) cats[ncat++] = ser[i]->tasks[k].name;
        }
    if (ncat > 0) {
        double *vals = rosa_calloc((size_t)ncat * (size_t)nser, sizeof(double), "evaluation chart");
        const char *labels[8], *colors[8];
        if (!vals) {
            o->failed = 1;
        } else {
            for (int i = 0; i < nser; i++) {
                for (int j = 0; j < ncat; j++) {
                    vals[(size_t)i * ncat + j] = NAN;
                    for (int k = 0; k < ser[i]->n_tasks; k++)
                        if (strcmp(ser[i]->tasks[k].name, cats[j]) == 0)
                            vals[(size_t)i * ncat + j] = 100.0 * ser[i]->tasks[k].accuracy; /* NAN stays NAN */
                }
                labels[i] = ser_label[i];
                colors[i] = run_color(i);
            }
            svg_put(o, "<div class=\"panel\">");
            svg_bar_chart bc = {.width = 1140, .height = 300 + 18 * nser, .title = "Accuracy per task",
                                .ylabel = "accuracy (%)", .categories = cats, .n_cat = ncat, .values = vals,
                                .series_labels = labels, .n_series = nser, .colors = colors, .fix_y = 1, .ymin = 0,
                                .ymax = 100, .value_format = nser * ncat <= 60 ? "%.1f" : NULL, .label_every = 1};
            svg_bar_chart_render(o, &bc);
            svg_put(o, "</div>");
            free(vals);
        }
    }
    for (int i = 0; i < n && i < 8; i++) {
        for (int f = 0; f < runs[i].n_eval; f++) {
            svg_put(o, "<h3>");
            if (n > 1) {
                h(o, runs[i].name);
                svg_put(o, ": ");
            }
            svg_put(o, "<code>");
            h(o, runs[i].eval_files[f]);
            svg_put(o, "</code>");
            if (runs[i].evals[f]) {
                char lab[448];
                eval_label(lab, sizeof lab, "", runs[i].evals[f]);
                svg_put(o, " — ");
                h(o, lab + 2); /* without the empty file name's ": " */
            }
            svg_put(o, "</h3>");
            if (!runs[i].evals[f]) {
                svg_put(o, "<p class=\"note\">");
                h(o, runs[i].eval_notes[f] ? runs[i].eval_notes[f] : "unreadable");
                svg_put(o, "</p>");
                continue;
            }
            if (runs[i].evals[f]->n_tasks == 0) {
                svg_put(o, "<p class=\"muted\">no tasks in this report</p>");
                continue;
            }
            eval_tables(o, runs[i].evals[f]);
        }
    }
}

static void notes(svg_buf *o, const rosa_run *r, int multi) {
    const char *msgs[4] = {r->adapter_note, r->base_note, NULL, NULL};
    char bad[256] = "", none[128] = "";
    if (r->bad_lines)
        snprintf(bad, sizeof bad, "metrics.jsonl: %d line%s could not be read (first: line %d) and %s ignored",
                 r->bad_lines, r->bad_lines == 1 ? "" : "s", r->first_bad_line, r->bad_lines == 1 ? "was" : "were");
    if (!r->have_metrics) snprintf(none, sizeof none, "no metrics.jsonl in the run directory");
    msgs[2] = bad[0] ? bad : NULL;
    msgs[3] = none[0] ? none : NULL;
    for (int i = 0; i < 4; i++) {
        if (!msgs[i]) continue;
        svg_put(o, "<div class=\"note\">");
        if (multi) {
            h(o, r->name);
            svg_put(o, ": ");
        }
        h(o, msgs[i]);
        svg_put(o, "</div>");
    }
}

int rosa_report_html(rosa_run *runs, int n, svg_buf *o) {
    if (n < 1) return rosa_fail("report: no runs");
    if (n > 8) return rosa_fail("report: at most 8 runs side by side (got %d)", n);
    svg_put(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
               "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>rosa report: ");
    for (int i = 0; i < n; i++) {
        if (i) svg_put(o, " vs ");
        h(o, runs[i].name);
    }
    svg_printf(o, "</title><style>%s</style></head><body><main>\n", CSS);
    svg_put(o, n > 1 ? "<h1>rosa run comparison</h1><p class=\"sub\">" : "<h1>rosa run report</h1><p class=\"sub\">");
    for (int i = 0; i < n; i++) {
        if (n > 1) svg_printf(o, "%s<span style=\"color:%s\">&#9632;</span> ", i ? " &nbsp; " : "", run_color(i));
        svg_put(o, "<code>");
        h(o, runs[i].dir);
        svg_put(o, "</code>");
        if (n == 1) {
            svg_put(o, " · ");
            h(o, method_name(&runs[i]));
            if (base_name(&runs[i])) {
                svg_put(o, " on ");
                h(o, base_name(&runs[i]));
            }
        }
    }
    svg_put(o, "</p>\n");
    for (int i = 0; i < n; i++) notes(o, &runs[i], n > 1);
    if (n == 1) cards(o, &runs[0]);
    else facts_table(o, runs, n);

    svg_put(o, "<h2 id=\"loss\">Loss</h2><div class=\"panel\">");
    metric_chart(o, runs, n, 0, n == 1 ? "Training and validation loss" : "Loss (train: EMA bold, raw faint; validation dashed)",
                 "loss", 1140, 360, 1);
    svg_put(o, "</div>\n<h2 id=\"opt\">Optimisation</h2><div class=\"grid3\"><div class=\"panel\">");
    metric_chart(o, runs, n, 1, "Learning rate", "lr", 370, 260, 0);
    svg_put(o, "</div><div class=\"panel\">");
    metric_chart(o, runs, n, 2, "Gradient norm (before clipping)", "grad norm", 370, 260, 0);
    svg_put(o, "</div><div class=\"panel\">");
    metric_chart(o, runs, n, 3, "Throughput", "tokens / s", 370, 260, 0);
    svg_put(o, "</div></div>\n");
    dls_section(o, runs, n);
    svg_put(o, "\n");
    eval_section(o, runs, n);
    svg_put(o, "\n");
    config_section(o, runs, n);
    svg_printf(o,
               "\n<footer>Generated by rosa %s from <code>metrics.jsonl</code>, <code>adapter_config.json</code>, "
               "<code>adapter_model.safetensors</code> and <code>eval*.json</code>. Smoothed curves are a debiased "
               "exponential moving average with span clamp(steps/20, 1, 100). Wall time is the sum of the step times "
               "(model loading, validation and checkpoints excluded); tokens/s is total tokens over wall time. "
               "Memory marked ≥ is an estimate (the base model's weights in F32 plus the adapter's values, gradients "
               "and AdamW moments; activations are not recorded) used when the run did not record its memory. "
               "Trainable parameters are counted from the adapter file, their share against the base model's "
               "config.json (tied embeddings counted once). See docs/report.md.</footer>\n</main></body></html>\n",
               ROSA_VERSION);
    if (o->failed) return rosa_fail("report: out of memory");
    return 0;
}

int rosa_report_write(const char *const *dirs, int n, const char *path) {
    if (n < 1) return rosa_fail("report: no run directory");
    if (n > 8) return rosa_fail("report: at most 8 runs side by side (got %d)", n);
    rosa_run runs[8];
    int loaded = 0, status = -1;
    for (; loaded < n; loaded++)
        if (rosa_run_load(dirs[loaded], &runs[loaded]) < 0) goto done;
    /* Same directory names: show the paths instead. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && strcmp(runs[i].name, runs[j].name) == 0) {
                char *p = rosa_strdup(runs[i].dir);
                if (!p) goto done;
                free(runs[i].name);
                runs[i].name = p;
                break;
            }
    svg_buf o = {0};
    if (rosa_report_html(runs, n, &o) == 0) status = rosa_write_file_atomic(path, o.b.data, o.b.len);
    svg_buf_free(&o);
done:
    for (int i = 0; i < loaded; i++) rosa_run_free(&runs[i]);
    return status;
}
