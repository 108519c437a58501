/* data.h: LLM-Adapters data sets: records (records.c), the Alpaca prompt
 * templates (prompts.c), tokenization into (ids, labels) exactly as
 * LLM-Adapters' finetune.py does, validation split, shuffling and
 * micro-batches (dataset.c).  Used by training and evaluation alike, so it
 * depends on neither (core/, io/ and the tokenizer only). */
#ifndef ROSA_DATA_H
#define ROSA_DATA_H

#include <stdint.h>

#include "rosa.h"
#include "rosa_train.h"

/* Records, prompts, examples, datasets and their options are public
 * (rosa_train.h); what follows is for the trainer. */

/* Fisher-Yates shuffle of order[0..n) with r. */
void rosa_shuffle(int32_t *order, int n, rosa_rng *r);

/* Splits indices 0..n-1 into a seeded-random validation set of val_n and the
 * rest (both kept in ascending index order).  malloc'ed arrays. */
int rosa_split_validation(int n, int val_n, uint64_t seed, int32_t **train_idx, int *n_train, int32_t **val_idx);

/* A right-padded micro-batch of B examples, T = the longest.  Padding slots
 * have mask 0, id pad_id and label ROSA_IGNORE_INDEX. */
typedef struct {
    int B, T;
    int32_t *ids, *labels; /* [B][T] */
    uint8_t *mask;         /* [B][T] */
    int n_label_tokens;    /* labels != ignore, counting shifted targets (t >= 1) */
} rosa_batch;

int rosa_batch_make(const rosa_dataset *d, const int32_t *idx, int B, int32_t pad_id, rosa_batch *b);
void rosa_batch_free(rosa_batch *b);

#endif
