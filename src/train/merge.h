/* merge.h: applying an adapter for inference (LoRA folded into the base weights,
 * W' = W + s B A; RoAE installed as the forward's hook) and `rosa merge` (LoRA). */
#ifndef ROSA_MERGE_H
#define ROSA_MERGE_H

#include "model/model.h"
#include "train/adapter.h"

/* Replaces the adapted matrices of m by merged copies (owned by m). */
int rosa_model_apply_adapter(rosa_model *m, const rosa_adapter *a);
/* Writes a model directory: m's files with the adapted tensors merged (in their
 * stored dtype), config, tokenizer and generation files copied. */
int rosa_merge_write(const rosa_model *m, const char *model_dir, const rosa_adapter *a, const char *out_dir);

#endif
