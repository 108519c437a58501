/* ln_tuning.h: LN-Tuning as PEFT computes it (src/peft/tuners/ln_tuning/,
 * PEFT commit 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40): each targeted norm
 * is replaced by a trained copy (its weight starts at the model's).  PEFT's
 * Llama default targets every layer's input_layernorm and
 * post_attention_layernorm and the final norm.  Merging writes the trained
 * weights in place of the model's. */
#ifndef ROSA_PEFT_LN_TUNING_H
#define ROSA_PEFT_LN_TUNING_H

#include "peft/format.h"
#include "peft/peft.h"
#include "peft/targets.h"

typedef struct {
    rosa_peft_targets targets; /* PEFT's target_modules (NULL names: its Llama default) */
} rosa_ln_tuning_options;

extern const rosa_peft_method rosa_peft_ln_tuning;
extern const rosa_peft_field rosa_ln_tuning_fields[];

#endif
