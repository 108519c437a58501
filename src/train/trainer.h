/* trainer.h: the training loop: data order, micro-batches and accumulation,
 * clipping, AdamW, schedule, validation, metrics, checkpoints and resume. */
#ifndef ROSA_TRAINER_H
#define ROSA_TRAINER_H

#include <stdint.h>

#include "peft/peft.h"
#include "data/data.h"
#include "train/dls.h"
#include "train/optim.h"
#include "train/train_ctx.h"
#include "rosa_train.h"

/* The options, rosa_train and rosa_train_request_stop are public
 * (rosa_train.h); this header gathers what trainer.c is built on. */

#endif
