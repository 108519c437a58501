/* dataset.c: records tokenized into (ids, labels) as LLM-Adapters'
 * finetune.py does it; validation split, shuffling, micro-batches (data.h). */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* ------------------------------------------------------------- tokenization */

void rosa_data_options_default(rosa_data_options *o) {
    o->cutoff_len = 256;
    o->train_on_inputs = 1;
    o->add_eos = 1;
}

/* How many special tokens the post-processor puts before (P) and after (S) the
 * text, found by encoding a probe with and without special tokens.  Hugging
 * Face truncation keeps them: it cuts the text to max_length - P - S ids and
 * then adds them.  With P = 1, S = 0 (Llama: BOS only) this is the same as
 * keeping the first cutoff_len ids. */
static int special_layout(const rosa_tokenizer *tok, int *P, int *S) {
    static const char probe[] = "Below is an instruction";
    int32_t *with = NULL, *without = NULL;
    size_t nw, no;
    *P = *S = 0;
    if (rosa_tokenizer_encode(tok, probe, sizeof probe - 1, 1, &with, &nw) < 0) return -1;
    if (rosa_tokenizer_encode(tok, probe, sizeof probe - 1, 0, &without, &no) < 0) {
        free(with);
        return -1;
    }
    for (size_t p = 0; nw >= no && p <= nw - no; p++) {
        if (memcmp(with + p, without, no * sizeof(int32_t)) == 0) {
            *P = (int)p;
            *S = (int)(nw - no - p);
            break;
        }
    }
    free(with);
    free(without);
    return 0;
}

/* tokenizer(prompt, truncation=True, max_length=cutoff_len): encodes with
 * special tokens and truncates to cutoff ids, keeping the special tokens. */
static int encode_truncated(const rosa_tokenizer *tok, const char *text, int cutoff, int P, int S, int32_t **ids,
                            int *n) {
    size_t len;
    if (rosa_tokenizer_encode(tok, text, strlen(text), 1, ids, &len) < 0) return -1;
    if (len > (size_t)cutoff) {
        if (cutoff >= P + S && S > 0) memmove(*ids + (cutoff - S), *ids + (len - (size_t)S), sizeof(int32_t) * (size_t)S);
        len = (size_t)cutoff;
    }
    *n = (int)len;
    return 0;
}

/* generate_and_tokenize_prompt(data_point) for one record.  Returns 0 or -1
 * (error set, e's arrays possibly allocated: the caller frees them). */
static int tokenize_one(const rosa_tokenizer *tok, const rosa_record *r, const rosa_data_options *o, int P, int S,
                        int32_t eos, rosa_example *e) {
    int cutoff = o->cutoff_len;
    char *full = rosa_prompt_train(r, 1);
    if (!full) return -1;
    int32_t *ids;
    int n;
    int st = encode_truncated(tok, full, cutoff, P, S, &ids, &n);
    free(full);
    if (st < 0) return -1;
    if (o->add_eos && (n == 0 || ids[n - 1] != eos) && n < cutoff) {
        int32_t *p = rosa_realloc(ids, sizeof(int32_t) * (size_t)(n + 1), "token ids");
        if (!p) {
            free(ids);
            return -1;
        }
        ids = p;
        ids[n++] = eos;
    }
    e->ids = ids;
    e->n = n;
    e->labels = rosa_malloc(sizeof(int32_t) * (size_t)(n ? n : 1), "labels");
    if (!e->labels) return -1;
    memcpy(e->labels, ids, sizeof(int32_t) * (size_t)n);
    if (!o->train_on_inputs) {
        /* user_prompt = generate_prompt({**data_point, "output": ""}),
         * tokenized the same way without EOS; that many labels are ignored.
         * (Python would make labels longer than the ids if the user prompt
         * had more ids than the full prompt; we clamp to n.) */
        char *user = rosa_prompt_train(r, 0);
        if (!user) return -1;
        int32_t *uids;
        int un;
        st = encode_truncated(tok, user, cutoff, P, S, &uids, &un);
        free(user);
        if (st < 0) return -1;
        free(uids);
        if (un > n) un = n;
        for (int t = 0; t < un; t++) e->labels[t] = ROSA_IGNORE_INDEX;
    }
    return 0;
}

int rosa_dataset_tokenize(const rosa_tokenizer *tok, const rosa_records *recs, const rosa_data_options *o,
                          rosa_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!tok || !recs || !o) return rosa_fail("rosa_dataset_tokenize: missing argument");
    if (o->cutoff_len < 1) return rosa_fail("cutoff_len must be at least 1 (got %d)", o->cutoff_len);
    int32_t eos = rosa_tokenizer_eos_id(tok);
    if (o->add_eos && eos < 0)
        return rosa_fail("the tokenizer has no EOS token, which training appends to each example");
    int P, S;
    if (special_layout(tok, &P, &S) < 0) return -1;
    out->ex = rosa_calloc(recs->n > 0 ? (size_t)recs->n : 1, sizeof(rosa_example), "dataset");
    if (!out->ex) return -1;
    out->n = recs->n;
    /* Records are independent and the tokenizer is thread-safe.  On failure
     * the error of the first failing record (by index) is reported. */
    int n = recs->n, first_bad = n;
    char msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < n; i++) {
        if (tokenize_one(tok, &recs->rec[i], o, P, S, eos, &out->ex[i]) < 0) {
#pragma omp critical(rosa_data_tokenize_error)
            if (i < first_bad) {
                first_bad = i;
                snprintf(msg, sizeof msg, "%s", rosa_last_error());
            }
        }
    }
    if (first_bad < n) {
        rosa_fail("record %d: %s", recs->rec[first_bad].index, msg);
        rosa_dataset_free(out);
        return -1;
    }
    return 0;
}

void rosa_dataset_free(rosa_dataset *d) {
    if (!d) return;
    if (d->ex)
        for (int i = 0; i < d->n; i++) {
            free(d->ex[i].ids);
            free(d->ex[i].labels);
        }
    free(d->ex);
    d->ex = NULL;
    d->n = 0;
}

/* ------------------------------------------------------ shuffle, split, batch */

/* Uniform in [0, bound) without modulo bias: rejects the low 2^64 mod bound
 * draws so that the accepted range is a multiple of bound. */
void rosa_shuffle(int32_t *order, int n, rosa_rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rosa_rng_below(r, (uint64_t)i + 1);
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

int rosa_split_validation(int n, int val_n, uint64_t seed, int32_t **train_idx, int *n_train, int32_t **val_idx) {
    *train_idx = NULL;
    *val_idx = NULL;
    *n_train = 0;
    if (n < 1) return rosa_fail("cannot split %d records", n);
    if (val_n < 0 || val_n >= n)
        return rosa_fail("validation set size %d must be between 0 and %d (the number of records less one)", val_n,
                         n - 1);
    int32_t *perm = rosa_malloc(sizeof(int32_t) * (size_t)n, "split");
    uint8_t *is_val = rosa_calloc((size_t)n, 1, "split");
    int32_t *tr = rosa_malloc(sizeof(int32_t) * (size_t)(n - val_n), "training indices");
    int32_t *va = rosa_malloc(sizeof(int32_t) * (size_t)(val_n ? val_n : 1), "validation indices");
    if (!perm || !is_val || !tr || !va) {
        free(perm);
        free(is_val);
        free(tr);
        free(va);
        return -1;
    }
    for (int i = 0; i < n; i++) perm[i] = i;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    rosa_shuffle(perm, n, &rng);
    for (int i = 0; i < val_n; i++) is_val[perm[i]] = 1;
    int nt = 0, nv = 0;
    for (int i = 0; i < n; i++) {
        if (is_val[i])
            va[nv++] = i;
        else
            tr[nt++] = i;
    }
    free(perm);
    free(is_val);
    *train_idx = tr;
    *val_idx = va;
    *n_train = nt;
    return 0;
}

int rosa_batch_make(const rosa_dataset *d, const int32_t *idx, int B, int32_t pad_id, rosa_batch *b) {
    memset(b, 0, sizeof *b);
    if (B < 1) return rosa_fail("batch size must be at least 1 (got %d)", B);
    int T = 0;
    for (int i = 0; i < B; i++) {
        if (idx[i] < 0 || idx[i] >= d->n)
            return rosa_fail("batch: example index %d out of range [0, %d)", (int)idx[i], d->n);
        if (d->ex[idx[i]].n > T) T = d->ex[idx[i]].n;
    }
    if (T == 0) return rosa_fail("batch: all %d examples are empty", B);
    size_t cells = (size_t)B * (size_t)T;
    b->ids = rosa_malloc(sizeof(int32_t) * cells, "batch ids");
    b->labels = rosa_malloc(sizeof(int32_t) * cells, "batch labels");
    b->mask = rosa_calloc(cells, 1, "batch mask");
    if (!b->ids || !b->labels || !b->mask) {
        rosa_batch_free(b);
        return -1;
    }
    b->B = B;
    b->T = T;
    int count = 0;
    for (int i = 0; i < B; i++) {
        const rosa_example *e = &d->ex[idx[i]];
        int32_t *ids = b->ids + (size_t)i * T, *lab = b->labels + (size_t)i * T;
        uint8_t *m = b->mask + (size_t)i * T;
        for (int t = 0; t < T; t++) {
            if (t < e->n) {
                ids[t] = e->ids[t];
                lab[t] = e->labels[t];
                m[t] = 1;
                if (t >= 1 && lab[t] != ROSA_IGNORE_INDEX) count++;
            } else {
                ids[t] = pad_id;
                lab[t] = ROSA_IGNORE_INDEX;
                m[t] = 0;
            }
        }
    }
    b->n_label_tokens = count;
    return 0;
}

void rosa_batch_free(rosa_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->labels);
    free(b->mask);
    memset(b, 0, sizeof *b);
}
