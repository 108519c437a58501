/* eval_report.h: the JSON report of `rosa eval --output FILE` (docs/eval.md).
 *
 * eval_report.c owns the format: it holds its one writer
 * (rosa_eval_report_write_json, declared in eval.h) and its one reader
 * (rosa_eval_report_read, below), and both go through rosa_eval_summary, the
 * report's contents as a struct: the writer makes one from a
 * rosa_eval_report and writes it, the reader gives back exactly that
 * struct.  `rosa report` (src/report/report.c) reads evaluation files with
 * rosa_eval_report_read only, so a file of another shape is refused with a
 * message rather than guessed at.  A new field is added to rosa_eval_summary,
 * the writer and the reader together, and to docs/eval.md.
 *
 * The shape, keys in this order (accuracies are fractions; "?" keys may be
 * absent):
 *   {"rosa_version",
 *    then a rescoring (--score-predictions): "scored_predictions": FILE,
 *    or a run: "model"?, "adapter": DIR|null, "mode": "generate"|"loglik",
 *      "decoding"? (generate only): {"strategy": "beam_search"|"greedy", "num_beams",
 *        "beam_rule"? (beams > 1), "length_penalty", "early_stopping",
 *        "max_new_tokens": {"commonsense", "math"}, "batch_size"},
 *      "limit": N|null, "seed", "predictions"?,
 *    "tasks": {NAME: {"group": "commonsense"|"math", "accuracy": F|null, "correct", "n",
 *                     "no_answer", "resumed" (a run only), "file"?}, ...},
 *    "groups": {"commonsense"|"math"|"all": {"tasks": [NAME, ...], "macro_accuracy": F|null,
 *               "micro_accuracy": F|null, "correct", "n", "no_answer"}, ...},
 *    "seconds",
 *    a run only: "new_examples", "examples_per_second"} */
#ifndef ROSA_EVAL_REPORT_H
#define ROSA_EVAL_REPORT_H

#include <stddef.h>

#include "eval/eval.h"

/* One task's results: "tasks"."name". */
typedef struct {
    const char *name;
    rosa_task_type group;
    double accuracy;       /* correct / n; NAN for null (no examples) */
    int correct, n, no_answer;
    int resumed;           /* of n, from the predictions file; -1: absent (a rescoring) */
    const char *file;      /* the test file; NULL: absent */
} rosa_eval_task_summary;

/* A group's averages: "groups"."name". */
typedef struct {
    const char *name;      /* "commonsense", "math" or "all" */
    const char **tasks;    /* [n_tasks] */
    int n_tasks;
    double macro_accuracy; /* the mean of the task accuracies; NAN for null */
    double micro_accuracy; /* correct / n; NAN for null */
    int correct, n, no_answer;
} rosa_eval_group_summary;

typedef struct {
    const char *rosa_version;
    const char *scored_predictions; /* a rescoring: the file rescored; NULL: not one */
    /* a run (have_run; absent from a rescoring) */
    int have_run;
    const char *model;              /* NULL: absent */
    const char *adapter;            /* NULL: null */
    rosa_eval_mode mode;
    int have_decoding;              /* generate mode */
    struct {
        const char *strategy;       /* "beam_search" or "greedy" */
        int num_beams;
        const char *beam_rule;      /* NULL: absent (greedy) */
        double length_penalty;
        int early_stopping;
        int max_new_tokens[2];      /* commonsense, math */
        int batch_size;
    } decoding;
    int limit;                      /* 0: null (every example) */
    double seed;                    /* as written: a JSON number */
    const char *predictions;        /* NULL: absent */
    /* results */
    rosa_eval_task_summary *tasks;
    int n_tasks;
    rosa_eval_group_summary *groups;
    int n_groups;
    double seconds;
    int new_examples;               /* -1: absent (a rescoring) */
    double examples_per_second;     /* NAN: absent */
    void *owner;                    /* what the strings point into (private) */
} rosa_eval_summary;

/* The summary that rosa_eval_report_write_json writes for (rep, o,
 * scored_file); its strings are borrowed from them. */
int rosa_eval_summary_make(const rosa_eval_report *rep, const rosa_eval_options *o, const char *scored_file,
                           rosa_eval_summary *out);
/* Writes s as the JSON report, atomically. */
int rosa_eval_summary_write_json(const rosa_eval_summary *s, const char *path);

/* Reads a JSON report written by rosa_eval_report_write_json.  Returns 0, or
 * -1 with an error saying why (unreadable, not JSON, or the first key that
 * is not as rosa writes it) and *out zeroed. */
int rosa_eval_report_read(const char *path, rosa_eval_summary *out);
/* The same from text[0..len). */
int rosa_eval_report_parse(const char *text, size_t len, rosa_eval_summary *out);
void rosa_eval_summary_free(rosa_eval_summary *s);

#endif
