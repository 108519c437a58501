/* metrics.h: metrics.jsonl, the per-run training log of `rosa train`
 * (docs/formats.md).
 *
 * This module owns the format: metrics.c is its one writer and its one
 * reader.  The trainer writes every line through the rosa_metrics_* writer
 * functions below (it never formats a line itself), and everything that reads
 * the file back (the truncation of a resumed run in rosa_metrics_open, and
 * `rosa report` in src/report/report.c) goes through rosa_metrics_read, which
 * hands each line over as a typed rosa_metrics_line.  A new line kind or key
 * is added here, in the writer, the reader and rosa_metrics_line together,
 * and in docs/formats.md; nothing else formats or parses these lines.
 *
 * One JSON object per line, each with a numeric "step" (steps count from 1;
 * the plan is step 0):
 *   {"step": 0, "plan": {"memory_bytes": B, "activation_bytes": B, "trainable_params": N,
 *                        "base_params": N, "total_steps": N, "compute": "fp32"|"bf16",
 *                        "recompute": true|false}}
 *   {"step": S, "loss": %.9g, "lr": %.9g, "grad_norm": %.9g, "tokens": N,
 *    "tokens_per_second": %.2f, "seconds": %.4f}
 *   {"step": S, "skipped": true}
 *   {"step": S, "val_loss": %.9g}
 *   {"step": S, "dls_selection": {"mode": "exploit"|"explore", "layers": [l, ...]}}
 *   {"step": S, "dls_scores": [%.6g, ...]}
 *   {"step": S, "dls_counts": [N, ...]}
 *   {"step": S, "peak_rss_bytes": B}
 * Keys are written in that order, separated by ", " and ": ".  Numbers go
 * through printf as shown, so a non-finite value (a NaN validation loss or
 * DLS score) is written as "nan" or "inf", which is not JSON: such a line
 * reads back as ROSA_METRICS_BAD. */
#ifndef ROSA_TRAIN_METRICS_H
#define ROSA_TRAIN_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The most entries a DLS line may hold, and the bound of a layer index. */
#define ROSA_METRICS_MAX_LAYERS 4096

/* ------------------------------------------------------------------ lines */

typedef enum {
    ROSA_METRICS_BAD = 0,       /* not a JSON object with a numeric "step" (have_step = 0), or a
                                 * known kind with invalid contents (a selection without a "layers"
                                 * array or with an entry that is not a layer index, a DLS array
                                 * of more than ROSA_METRICS_MAX_LAYERS entries) */
    ROSA_METRICS_UNKNOWN,       /* an object with a numeric "step" and none of the keys below */
    ROSA_METRICS_PLAN,          /* "plan" is an object */
    ROSA_METRICS_STEP,          /* "loss" is a number */
    ROSA_METRICS_SKIPPED,       /* "skipped" is true */
    ROSA_METRICS_VAL,           /* "val_loss" is a number */
    ROSA_METRICS_PEAK_RSS,      /* "peak_rss_bytes" is a number */
    ROSA_METRICS_DLS_SCORES,    /* "dls_scores" is an array */
    ROSA_METRICS_DLS_COUNTS,    /* "dls_counts" is an array */
    ROSA_METRICS_DLS_SELECTION, /* "dls_selection" is an object with a "layers" array */
} rosa_metrics_kind;
/* (A line matching several kinds is the first of: step, skipped, val, plan,
 * peak RSS, scores, counts, selection.) */

typedef enum {
    ROSA_DLS_MODE_EXPLOIT = 0, /* the top-k layers by score */
    ROSA_DLS_MODE_EXPLORE = 1, /* k layers at random */
    ROSA_DLS_MODE_OTHER = 2,   /* read only: another or no "mode" */
} rosa_dls_mode;

const char *rosa_dls_mode_name(rosa_dls_mode m); /* "exploit", "explore", "other" */

/* The plan line.  Read back, a field that is absent or not of its type is -1
 * (compute: NULL). */
typedef struct {
    int64_t memory_bytes;     /* weights + activations + adapter + optimizer */
    int64_t activation_bytes;
    int64_t trainable_params;
    int64_t base_params;
    int64_t total_steps;
    const char *compute;      /* "fp32" or "bf16" */
    int recompute;            /* 0 / 1 */
} rosa_training_plan;

/* One line of metrics.jsonl as rosa_metrics_read hands it over.  Pointers
 * are valid during the callback only. */
typedef struct {
    rosa_metrics_kind kind;
    int line_no;             /* 1-based, counting every line of the file */
    int have_step;           /* "step" is a number: every kind but some BAD lines */
    double step;
    const char *text;        /* the line as in the file, without its '\n' */
    size_t len;
    /* ROSA_METRICS_STEP; NAN where absent or not a number */
    double loss, lr, grad_norm, tokens, tokens_per_second, seconds;
    double val_loss;         /* ROSA_METRICS_VAL */
    double peak_rss_bytes;   /* ROSA_METRICS_PEAK_RSS */
    rosa_training_plan plan; /* ROSA_METRICS_PLAN */
    rosa_dls_mode mode;      /* ROSA_METRICS_DLS_SELECTION */
    /* DLS_SCORES: the score of each layer; DLS_COUNTS: how often each layer
     * was selected (NAN for an entry that is not a number); DLS_SELECTION:
     * the active layers, integers in [0, ROSA_METRICS_MAX_LAYERS). */
    const double *values;
    int n;
} rosa_metrics_line;

/* Called for every line that is not empty (a lone "\r" counts as empty):
 * returns 0 to go on, < 0 (error set) to stop. */
typedef int (*rosa_metrics_fn)(const rosa_metrics_line *line, void *user);

/* Reads path line by line.  Returns 0, or -1 (error set) when the file
 * cannot be read, memory runs out or fn returned < 0. */
int rosa_metrics_read(const char *path, rosa_metrics_fn fn, void *user);

/* ----------------------------------------------------------------- writer */

typedef struct rosa_metrics rosa_metrics;

/* Opens path for a run starting after step start_step: with 0, a new file
 * (replacing any old one); with more, the lines of steps up to start_step
 * (those with a numeric "step" <= start_step, as they were) are kept, the
 * rest dropped, the file replaced atomically (a kill at that moment loses
 * nothing), and the new lines appended.  NULL (error set) on failure. */
rosa_metrics *rosa_metrics_open(const char *path, int64_t start_step);

/* The writers: one line each; 0, or -1 (error set: the path and why) when a
 * write fails.  A plan, step, skipped, validation, counts or peak RSS line is
 * flushed at once; selections and scores with the step line that follows. */
int rosa_metrics_plan(rosa_metrics *m, const rosa_training_plan *plan); /* step 0 */
int rosa_metrics_step(rosa_metrics *m, int64_t step, double loss, double lr, double grad_norm, long long tokens,
                      double seconds); /* tokens_per_second = tokens / seconds (0 when seconds <= 0) */
int rosa_metrics_skipped(rosa_metrics *m, int64_t step);
int rosa_metrics_val(rosa_metrics *m, int64_t step, double val_loss);
/* The layers l < L with active[l] != 0; mode exploit or explore. */
int rosa_metrics_dls_selection(rosa_metrics *m, int64_t step, rosa_dls_mode mode, const uint8_t *active, int L);
int rosa_metrics_dls_scores(rosa_metrics *m, int64_t step, const float *scores, int L);
int rosa_metrics_dls_counts(rosa_metrics *m, int64_t step, const int64_t *counts, int L);
int rosa_metrics_peak_rss(rosa_metrics *m, int64_t step, long long bytes);
/* Flushes and closes (NULL is fine); -1 (error set) when that or an earlier
 * write failed. */
int rosa_metrics_close(rosa_metrics *m);
/* Closes without a word (NULL is fine): for error paths, whose error stands. */
void rosa_metrics_free(rosa_metrics *m);

#endif
