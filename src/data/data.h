/* data.h: LLM-Adapters data sets: records (records.c), the Alpaca prompt
 * templates (prompts.c), tokenization into (ids, labels) exactly as
 * LLM-Adapters' finetune.py does, validation split, shuffling and
 * micro-batches (dataset.c).  Used by training and evaluation alike, so it
 * depends on neither (core/, io/ and the tokenizer only). */
#ifndef ROSA_DATA_H
#define ROSA_DATA_H

#include <stdint.h>

#include "rosa.h"

#define ROSA_IGNORE_INDEX (-100)

/* One record of a data file.  instruction and output are required strings;
 * input is optional ("" when absent); answer is kept for evaluation. */
typedef struct {
    char *instruction, *input, *output, *answer; /* answer may be NULL */
    int index; /* the record's 0-based position in its file (bad ones counted) */
} rosa_record;

typedef struct {
    rosa_record *rec;
    int n;
    int n_bad; /* records skipped with skip_bad */
} rosa_records;

/* Loads a JSON array of objects, or JSON Lines (one object per line).  A record
 * with a missing or mistyped field is an error naming the file, the record
 * index and the field; with skip_bad it is skipped and counted instead. */
int rosa_records_load(const char *path, int skip_bad, rosa_records *out);
void rosa_records_free(rosa_records *r);
/* Keeps the first n records (all when n >= r->n). */
void rosa_records_truncate(rosa_records *r, int n);

/* The LLM-Adapters training prompt (finetune.py generate_prompt), byte for
 * byte, with the record's output appended; with_output = 0 gives the "user
 * prompt" (output ""). malloc'ed. */
char *rosa_prompt_train(const rosa_record *r, int with_output);
/* The LLM-Adapters evaluation prompt (commonsense/math evaluate.py
 * generate_prompt): instruction only, never the input. malloc'ed. */
char *rosa_prompt_eval(const rosa_record *r);

/* One tokenized example. */
typedef struct {
    int32_t *ids;
    int32_t *labels; /* ROSA_IGNORE_INDEX where no loss is taken */
    int n;
} rosa_example;

typedef struct {
    rosa_example *ex;
    int n;
} rosa_dataset;

typedef struct {
    int cutoff_len;      /* default 256 */
    int train_on_inputs; /* default 1 */
    int add_eos;         /* default 1 */
} rosa_data_options;

void rosa_data_options_default(rosa_data_options *o);

/* tokenize(prompt) of finetune.py: encode with special tokens (BOS as the
 * tokenizer adds it), truncate to cutoff_len, append EOS iff the last id is
 * not EOS and the length is below cutoff_len; labels = ids, and when
 * !train_on_inputs the first len(tokenize(user prompt, no EOS)) labels are
 * ignored. */
int rosa_dataset_tokenize(const rosa_tokenizer *tok, const rosa_records *recs, const rosa_data_options *o,
                          rosa_dataset *out);
void rosa_dataset_free(rosa_dataset *d);

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
