/* checkpoint.h: OUT/checkpoint-STEP/ directories (adapter, AdamW state,
 * rosa's resume state in rosa_state.json, HF Trainer's trainer_state.json),
 * written atomically: a temporary directory is filled,
 * fsynced, then renamed into place, so the newest complete checkpoint always
 * survives a crash, a kill or a full disk. */
#ifndef ROSA_CHECKPOINT_H
#define ROSA_CHECKPOINT_H

#include <stdint.h>

#include "peft/peft.h"
#include "train/dls.h"
#include "train/optim.h"

typedef struct {
    int64_t step;        /* optimizer steps done */
    int64_t total_steps;
    uint64_t seed;
    rosa_dls *dls;       /* layer-selection state to save or restore, or NULL */
    int64_t run_steps;   /* load: the resuming run's total steps; a step beyond is refused (0: not checked) */
    /* For trainer_state.json (HF Trainer's TrainerState), saved only: */
    const char *metrics_path; /* metrics.jsonl, read into log_history (NULL: an empty history) */
    int64_t steps_per_epoch;  /* 0: epoch not known (written as 0) */
    int eval_steps, save_steps, train_batch_size;
    /* Saved and restored (trainer_state.json), as HF's best_metric and best_model_checkpoint: */
    int has_best;             /* a validation loss was measured */
    double best_metric;       /* the lowest validation loss */
    int64_t best_step;        /* the checkpoint holding it (0: none) */
} rosa_checkpoint_state;

int rosa_checkpoint_save(const char *out_dir, const rosa_adapter *a, const rosa_adamw *opt,
                         const rosa_checkpoint_state *st, const char *base_model);
/* Loads checkpoint-STEP into a (same structure) and opt.  Every field of
 * trainer_state.json and optimizer.safetensors is checked (a step within
 * [0, total_steps] and equal to STEP, moments finite, second moments >= 0,
 * step counts and DLS counts in [0, step], ...); a bad one is refused with
 * the file and the field named. */
int rosa_checkpoint_load(const char *out_dir, int64_t step, const rosa_config *c, rosa_adapter *a, rosa_adamw *opt,
                         rosa_checkpoint_state *st);
/* The largest STEP of a complete checkpoint in out_dir, or -1.  path (may be
 * NULL) receives a malloc'ed path of it. */
int64_t rosa_checkpoint_latest(const char *out_dir, char **path);
/* --save-total-limit: removes the oldest checkpoint directories of out_dir
 * until `limit` are left, never the newest nor checkpoint-keep_step (the
 * best; 0: none), as HF Trainer rotates them.  0, or -1 (error set). */
int rosa_checkpoint_rotate(const char *out_dir, int limit, int64_t keep_step);
/* What a finished or interrupted run left in out_dir: every checkpoint
 * directory (complete or not), the final adapter files and the run's records
 * (training_args.json, train_results.json, README.md); --overwrite
 * removes them so that a later --resume cannot continue the old run. */
int rosa_checkpoint_clear(const char *out_dir);

#endif
