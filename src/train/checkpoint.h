/* checkpoint.h: OUT/checkpoint-STEP/ directories (adapter, AdamW state,
 * trainer state), written atomically: a temporary directory is filled,
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
/* What a finished or interrupted run left in out_dir: every checkpoint
 * directory (complete or not) and the final adapter files; --overwrite
 * removes them so that a later --resume cannot continue the old run. */
int rosa_checkpoint_clear(const char *out_dir);

#endif
