/* hf_state.h: checkpoint-N/trainer_state.json in the schema of Hugging Face
 * Trainer's TrainerState (transformers/trainer_callback.py), so that tools
 * reading HF checkpoints find global_step, log_history, best_metric, ...;
 * it holds only TrainerState's keys (TrainerState.load_from_json takes every
 * key as a constructor argument).  rosa's own resume state is in
 * rosa_state.json beside it (checkpoint.c). */
#ifndef ROSA_HF_STATE_H
#define ROSA_HF_STATE_H

#include "train/checkpoint.h"

/* The JSON text (malloc'ed) of st: log_history from st->metrics_path, the
 * lines of steps up to st->step.  best_model_checkpoint is
 * out_dir/checkpoint-BEST.  NULL (error set) on failure. */
char *rosa_hf_state_json(const rosa_checkpoint_state *st, const char *out_dir);
/* Restores has_best, best_metric and best_step from trainer_state.json at
 * path, checked: best_metric a finite number or null, best_global_step an
 * integer in [0, step] (0 or null: none).  0, or -1 (error naming the file
 * and the field). */
int rosa_hf_state_read_best(const char *path, rosa_checkpoint_state *st);

#endif
