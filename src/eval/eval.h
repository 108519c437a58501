/* eval.h: `rosa eval`: runs the LLM-Adapters benchmarks on a model (with an
 * adapter applied), scores them as the reference scripts do, and reports per
 * task and per group (docs/eval.md). */
#ifndef ROSA_EVAL_H
#define ROSA_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "eval/beam.h"
#include "eval/tasks.h"
#include "rosa.h"

typedef enum { ROSA_EVAL_GENERATE = 0, ROSA_EVAL_LOGLIK = 1 } rosa_eval_mode;

typedef struct {
    rosa_eval_mode mode;
    int num_beams;          /* default 4; 1 = greedy */
    rosa_beam_rule rule;    /* default llm-adapters */
    int max_new_tokens;     /* 0 = per task type (32 commonsense, 256 math) */
    int batch_size;         /* prompts decoded together (default 1) */
    int limit;              /* first N records of each task (0 = all) */
    uint64_t seed;          /* recorded; decoding is deterministic */
    const char *predictions;/* JSON Lines of every example; resumed when it exists */
    int quiet;              /* no progress line */
    /* recorded in the report */
    const char *model_dir, *adapter_dir;
} rosa_eval_options;

void rosa_eval_options_default(rosa_eval_options *o);

/* Results of one task. */
typedef struct {
    const rosa_task *task;
    int n;           /* examples scored */
    int correct;
    int no_answer;   /* responses where nothing could be extracted */
    int resumed;     /* of n, taken from the predictions file */
} rosa_task_result;

typedef struct {
    rosa_task_result *r;
    int n;
    double seconds;  /* wall time of the run (decoding and scoring) */
    int n_new;       /* examples computed in this run */
} rosa_eval_report;

/* Runs every task of `tasks` on m (adapter already applied).  The report is
 * filled even when some tasks have no examples.  Returns 0 or -1. */
int rosa_eval_run(rosa_model *m, const rosa_task_list *tasks, const rosa_eval_options *o, rosa_eval_report *rep);

/* Rescores saved generations without a model: JSON Lines (or a JSON array,
 * as LLM-Adapters writes) of objects with "task" (default: default_task), the
 * response ("response" or "output_pred") and the label ("label" or "answer",
 * or "index" into the task's test file).  Tasks are looked up in `known`
 * (built-in tasks must be listed there; see rosa_tasks_add_list with "all").
 * The report holds the tasks seen, in the order of `known`. */
int rosa_eval_score_file(const char *path, const rosa_task_list *known, const char *default_task,
                         rosa_eval_report *rep);

/* The readable table (percent, 2 decimals) with macro and micro averages per
 * group (commonsense, math, all). */
void rosa_eval_report_print(const rosa_eval_report *rep, FILE *f);
/* The JSON report (accuracies as fractions, with counts), written atomically.
 * Its format, and its reader rosa_eval_report_read, are in eval/eval_report.h. */
int rosa_eval_report_write_json(const rosa_eval_report *rep, const rosa_eval_options *o, const char *path,
                                const char *scored_file);
void rosa_eval_report_free(rosa_eval_report *rep);

/* Loglik mode for one example: the summed log-probability of the tokens of
 * prompt + "the correct answer is " + option[i] after the prompt's own tokens
 * (the longest common prefix of the two encodings), for every option.
 * scores[n_options].  Returns 0 or -1. */
int rosa_loglik_options(rosa_model *m, const char *prompt, const char *const *options, int n_options,
                        double *scores);

#endif
