/* report.h: `rosa report`: one self-contained HTML file (inline SVG, inline
 * CSS, no script, no network) from one or more training output directories:
 * loss, learning rate, gradient norm and tokens/s against the step, the DLS
 * heatmap and selection counts, configuration, parameters, memory, wall time
 * and evaluation results.  See docs/report.md. */
#ifndef ROSA_REPORT_H
#define ROSA_REPORT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "report/svg.h"
#include "rosa.h"

/* One DLS line of metrics.jsonl (dls_scores, dls_selection or dls_counts). */
typedef struct {
    double step;
    int kind;      /* 0 scores, 1 selection, 2 counts */
    int mode;      /* selection: 0 exploit, 1 explore, 2 other */
    double *vals;  /* scores / counts, or the selected layer indices */
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
    cJSON *plan;          /* an optional {"plan": {...}} line */
    double peak_rss;      /* an optional "peak_rss_bytes" line, else NAN */
    int n_eval;
    char **eval_files;    /* file names in dir */
    cJSON **evals;        /* parsed, or NULL when unreadable */
    char **eval_notes;
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
/* Loads the run directories and writes the report to path atomically. */
int rosa_report_write(const char *const *dirs, int n, const char *path);

/* Evaluation JSON read generically: rows with a name and an accuracy (as a
 * percentage), extra numeric columns, and whether it is an average. */
typedef struct {
    char *name;
    double acc;        /* percent */
    int is_avg;
    int n_extra;
    char *extra_key[8];
    double extra_val[8];
} rosa_eval_row;

/* Extracts the rows of an evaluation JSON (see docs/report.md); returns the
 * count, rows malloc'ed in *rows (free with rosa_eval_rows_free). */
int rosa_eval_rows(const cJSON *root, rosa_eval_row **rows);
void rosa_eval_rows_free(rosa_eval_row *rows, int n);

#endif
