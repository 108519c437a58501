/* trainer.h: the training loop: data order, micro-batches and accumulation,
 * clipping, AdamW, schedule, validation, metrics, checkpoints and resume. */
#ifndef ROSA_TRAINER_H
#define ROSA_TRAINER_H

#include <stdatomic.h>
#include <stdint.h>

#include "peft/peft.h"
#include "data/data.h"
#include "train/dls.h"
#include "train/optim.h"
#include "train/train_ctx.h"

typedef enum { ROSA_LOSS_MEAN, ROSA_LOSS_TOKEN } rosa_loss_norm;
typedef enum { ROSA_NAN_STOP, ROSA_NAN_SKIP } rosa_nan_policy;

typedef struct {
    const char *model_dir, *data_path, *output_dir;
    const char *init_adapter; /* start from these adapter values (fresh optimizer) */
    int resume;               /* continue from the newest checkpoint in output_dir */
    int overwrite;
    const rosa_peft_method *method; /* the PEFT method (peft/registry.c) */
    const void *method_opts;  /* its options (NULL: its defaults) */
    rosa_dls_options dls;     /* dls.enabled turns layer selection on */
    rosa_adamw_options adam;
    rosa_schedule schedule;
    int warmup_steps;
    int batch_size, micro_batch_size;
    int epochs;               /* used when max_steps <= 0 */
    int max_steps;
    float max_grad_norm;      /* 0 = no clipping */
    uint64_t seed;
    rosa_data_options data;
    int shuffle;
    int val_set_size, eval_steps, save_steps;
    rosa_loss_norm loss_norm;
    rosa_nan_policy nan_policy;
    int skip_bad_records;
    double max_memory;        /* bytes; 0 = no limit */
    int quiet, plain_log;
    rosa_dtype compute;       /* ROSA_DTYPE_F32 (exact) or ROSA_DTYPE_BF16 (frozen GEMMs in BF16) */
    int recompute;            /* per-layer activation checkpointing */
} rosa_train_options;

void rosa_train_options_default(rosa_train_options *o);

/* How a training that returned 0 ended. */
typedef struct {
    int interrupted;      /* stopped by rosa_train_interrupted, after saving a checkpoint */
    int64_t last_step;    /* the last step done (the checkpoint's) */
    int skipped_steps;    /* steps skipped under --nan-policy skip */
} rosa_train_result;

/* Runs a whole training; returns 0 (res, which may be NULL, says how it
 * ended) or -1 on error. */
int rosa_train(const rosa_train_options *o, rosa_train_result *res);

/* Set (from another thread, or a signal handler: atomic either way): the loop
 * saves a checkpoint and stops at the end of the current step. */
extern atomic_int rosa_train_interrupted;

#endif
