/* fuzz_data: the data set loader (LLM-Adapters JSON arrays and JSON Lines,
 * rosa_records_load), then what training does with the records: both prompt
 * templates, tokenization with truncation and label masking (the real
 * stories260K tokenizer of the shared data), and micro-batches.
 *
 * The options come from the input's size so that seeds stay plain data
 * files: skip_bad (bit 0), train_on_inputs (bit 1), cutoff_len 2..64. */
#include "data/data.h"
#include "fuzz_common.h"

static rosa_tokenizer *data_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/models/stories260K", fuzz_shared()) >= (int)sizeof path) abort();
    data_tok = rosa_tokenizer_load(path);
    if (!data_tok) {
        fprintf(stderr, "fuzz: %s\n", rosa_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("data.json", data, size);
    rosa_records recs;
    int skip_bad = size & 1;
    if (rosa_records_load(path, skip_bad, &recs) < 0) {
        fuzz_refused();
        FUZZ_ASSERT(recs.n == 0 && recs.rec == NULL, "a refused file left records");
        return 0;
    }
    FUZZ_ASSERT(recs.n >= 1, "accepted with no records");
    rosa_records_truncate(&recs, 64); /* keep one execution fast */
    for (int i = 0; i < recs.n; i++) {
        const rosa_record *r = &recs.rec[i];
        FUZZ_ASSERT(r->instruction && r->input && r->output, "record %d lacks a field", i);
        FUZZ_ASSERT(i == 0 || r->index > recs.rec[i - 1].index, "record indices out of order");
        char *a = rosa_prompt_train(r, 1), *b = rosa_prompt_train(r, 0), *c = rosa_prompt_eval(r);
        FUZZ_ASSERT(a && b && c && strlen(a) >= strlen(b), "prompts");
        free(a);
        free(b);
        free(c);
    }
    rosa_data_options o;
    rosa_data_options_default(&o);
    o.train_on_inputs = (size >> 1) & 1;
    o.cutoff_len = 2 + (int)((size >> 2) % 63);
    rosa_dataset ds;
    if (rosa_dataset_tokenize(data_tok, &recs, &o, &ds) == 0) {
        int V = rosa_tokenizer_vocab_size(data_tok);
        for (int i = 0; i < ds.n; i++) {
            const rosa_example *e = &ds.ex[i];
            FUZZ_ASSERT(e->n >= 1 && e->n <= o.cutoff_len, "example %d has %d ids (cutoff %d)", i, e->n, o.cutoff_len);
            for (int t = 0; t < e->n; t++) {
                FUZZ_ASSERT(e->ids[t] >= 0 && e->ids[t] < V, "id %d", e->ids[t]);
                FUZZ_ASSERT(e->labels[t] == e->ids[t] || e->labels[t] == ROSA_IGNORE_INDEX, "label %d", e->labels[t]);
            }
        }
        int32_t idx[4];
        int B = ds.n < 4 ? ds.n : 4;
        for (int i = 0; i < B; i++) idx[i] = ds.n - 1 - i;
        rosa_batch b;
        FUZZ_ASSERT(rosa_batch_make(&ds, idx, B, 0, &b) == 0, "batch: %s", rosa_last_error());
        rosa_batch_free(&b);
        rosa_dataset_free(&ds);
    }
    rosa_records_free(&recs);
    return 0;
}
