/* run_record.h: the files that say what made a training run and how it
 * ended, in its output directory (docs/formats.md):
 *   training_args.json  every option as resolved, the data file and the model
 *                       config by SHA-256, the command line, rosa's build,
 *                       the machine; written before the first step;
 *   train_results.json  the summary of a finished run (HF Trainer's names);
 *   README.md           the adapter's model card, as PEFT writes one.
 * --resume compares the recorded options with the new ones here. */
#ifndef ROSA_RUN_RECORD_H
#define ROSA_RUN_RECORD_H

#include <stdint.h>

#include "peft/peft.h"
#include "rosa_train.h"

/* Writes OUTPUT/training_args.json (atomically). */
int rosa_run_record_write(const rosa_train_options *o);

/* --resume: OUTPUT/training_args.json against o.  Returns 0 when the run can
 * continue bit-identically, or when there is no record (a run of an older
 * rosa; a warning says so); -1 (error set) when an option
 * that changes the math differs, the error naming each such option with its
 * recorded and its new value.  --max-steps and --epochs are not compared
 * here: the trainer checks the number of steps against the checkpoint. */
int rosa_run_record_check(const rosa_train_options *o);

/* How a finished run went. */
typedef struct {
    int64_t global_step, total_steps, steps_run; /* steps_run: done by this invocation */
    int64_t steps_per_epoch;
    double runtime_s;        /* this invocation's training loop */
    long long samples, tokens; /* trained on by this invocation */
    double train_loss;       /* mean loss of this invocation's steps (NaN: none) */
    double final_loss;       /* the last step's (NaN: none) */
    double eval_loss, best_eval_loss; /* last and lowest validation loss (NaN: none) */
    int64_t best_step;       /* the checkpoint of best_eval_loss (0: none) */
    int loaded_best;         /* the final adapter is checkpoint-best_step's */
    long long peak_rss_bytes;
    const char *adapter_dir;
} rosa_run_summary;

/* The summary on stderr (a few lines, through rosa_log). */
void rosa_run_summary_log(const rosa_run_summary *s);
/* OUTPUT/train_results.json. */
int rosa_run_results_write(const char *out_dir, const rosa_run_summary *s);
/* OUTPUT/README.md: YAML front matter (base_model, library_name: peft, tags),
 * then the method, its hyper-parameters and the final losses. */
int rosa_run_card_write(const rosa_train_options *o, const rosa_adapter *a, const char *base_model,
                        const rosa_run_summary *s);

#endif
