/* report.h: `rosa report`: one self-contained HTML file (inline SVG, inline
 * CSS, no script, no network) from one or more training output directories:
 * loss, learning rate, gradient norm and tokens/s against the step, the DLS
 * heatmap and selection counts, configuration, parameters, memory, wall time
 * and evaluation results.  See docs/report.md. */
#ifndef ROSA_REPORT_H
#define ROSA_REPORT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "eval/eval_report.h"
#include "report/svg.h"
#include "rosa.h"
#include "rosa_train.h" /* rosa_report_write */
#include "train/metrics.h"

/* One DLS line of metrics.jsonl (dls_scores, dls_selection or dls_counts),
 * as rosa_metrics_read gave it. */
typedef struct {
    double step;
    rosa_metrics_kind kind; /* ROSA_METRICS_DLS_SCORES, _DLS_SELECTION or _DLS_COUNTS */
    rosa_dls_mode mode;     /* a selection's */
    double *vals;           /* scores / counts, or the selected layer indices */
    int n;
} rosa_dls_line;

/* A training output directory, as read by the report. */
typedef struct {
    char *dir, *name;
    int have_metrics;
    /* per optimizer step (sorted by step) */
    int n;
    double *step, *loss, *lr, *gnorm, *tps, *tokens, *seconds;
    int n_skipped;
    int n_val;
    double *val_step, *val_loss;
    /* DLS */
    rosa_dls_line *dls;
    int n_dls;
    int L; /* layers seen in DLS lines (0 = no DLS) */
    int bad_lines, first_bad_line;
    double max_step;
    /* files */
    cJSON *adapter_cfg;   /* adapter_config.json, or NULL */
    cJSON *options;       /* training_args.json's "options" (every option as resolved), or NULL */
    char *adapter_note;   /* why it is absent/unreadable, or NULL */
    int64_t trainable;    /* numel over adapter_model.safetensors, -1 unknown */
    int64_t adapter_bytes;
    char *base_dir;       /* base_model_name_or_path as resolved, or NULL */
    char *base_note;
    int have_base;
    rosa_config base;
    int64_t base_params;  /* -1 unknown */
    int64_t total_steps;  /* from the newest checkpoint's trainer_state.json, -1 unknown */
    double wall_seconds;  /* sum of step seconds */
    double tokens_total;
    int have_plan;        /* an optional {"step": 0, "plan": {...}} line (the last one) */
    rosa_training_plan plan;
    char *plan_compute;   /* plan.compute points here */
    double peak_rss;      /* an optional "peak_rss_bytes" line, else NAN */
    int n_eval;
    char **eval_files;    /* file names in dir */
    rosa_eval_summary **evals; /* read with rosa_eval_report_read, or NULL when not */
    char **eval_notes;    /* why not */
} rosa_run;

/* Reads a run directory.  Fails (-1, error set) only when the directory does
 * not exist or holds neither metrics.jsonl nor adapter_config.json; anything
 * else missing or malformed becomes a note shown in the report. */
int rosa_run_load(const char *dir, rosa_run *r);
void rosa_run_free(rosa_run *r);

/* The EMA span used for n points: clamp(round(n / 20), 1, 100). */
double rosa_report_span(int n);
/* Debiased exponential moving average with weight w = 1 - 2 / (span + 1)
 * (pandas' ewm(span, adjust=True)); NaN inputs are skipped (their output is NaN). */
void rosa_ema(const double *y, int n, double span, double *out);


/* The HTML report of runs[0..n) (n > 1: side by side) into out. */
int rosa_report_html(rosa_run *runs, int n, svg_buf *out);

#endif
