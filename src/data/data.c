/* data.c: LLM-Adapters data sets: loading, the Alpaca prompt templates,
 * tokenization as finetune.py does it, validation split, shuffling, batches. */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/json.h"

/* ------------------------------------------------------------------ loading */

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* 1-based line and column of byte `off` of text. */
static void line_col(const char *text, size_t off, size_t *line, size_t *col) {
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void record_free(rosa_record *r) {
    free(r->instruction);
    free(r->input);
    free(r->output);
    free(r->answer);
    memset(r, 0, sizeof *r);
}

/* Reads field `key` as a string into *out.  required: absent or null is an
 * error; otherwise it gives *out = NULL.  Returns 0, or -1 with the error set
 * (the record is bad), or -2 when out of memory. */
static int take_string(const cJSON *obj, const char *key, int required, const char *path, int index,
                       char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required) return rosa_fail("%s: record %d: missing field \"%s\"", path, index, key);
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return rosa_fail("%s: record %d: field \"%s\" must be a string, not %s", path, index, key,
                         json_type_name(v));
    size_t n = strlen(v->valuestring);
    if (rosa_utf8_valid_prefix(v->valuestring, n) != n)
        return rosa_fail("%s: record %d: field \"%s\" is not valid UTF-8", path, index, key);
    *out = rosa_strndup(v->valuestring, n);
    return *out ? 0 : -2;
}

/* "answer" is kept for evaluation only: a string, or a number turned into text. */
static int take_answer(const cJSON *obj, const char *path, int index, char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "answer");
    if (v && cJSON_IsNumber(v)) {
        char tmp[64];
        double d = v->valuedouble;
        if (d > -1e15 && d < 1e15 && d == (double)(long long)d) /* range first: the cast is UB outside it */
            snprintf(tmp, sizeof tmp, "%lld", (long long)d);
        else
            snprintf(tmp, sizeof tmp, "%.17g", d);
        *out = rosa_strdup(tmp);
        return *out ? 0 : -2;
    }
    return take_string(obj, "answer", 0, path, index, out);
}

/* Converts one JSON value to a record.  Returns 0, -1 for a bad record (error
 * set), -2 for a fatal error. */
static int take_record(const cJSON *v, const char *path, int index, rosa_record *r) {
    memset(r, 0, sizeof *r);
    r->index = index;
    if (!cJSON_IsObject(v))
        return rosa_fail("%s: record %d: expected an object with \"instruction\" and \"output\", got %s", path,
                         index, json_type_name(v));
    int st;
    if ((st = take_string(v, "instruction", 1, path, index, &r->instruction)) < 0 ||
        (st = take_string(v, "input", 0, path, index, &r->input)) < 0 ||
        (st = take_string(v, "output", 1, path, index, &r->output)) < 0 ||
        (st = take_answer(v, path, index, &r->answer)) < 0) {
        record_free(r);
        return st;
    }
    if (!r->input && !(r->input = rosa_strdup(""))) {
        record_free(r);
        return -2;
    }
    return 0;
}

typedef struct {
    const char *path;
    int skip_bad;
    rosa_records *out;
    int cap;
} loader;

/* Adds the record made from v (index = its position in the file). */
static int loader_add(loader *L, const cJSON *v, int index) {
    rosa_records *o = L->out;
    if (o->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 256;
        rosa_record *p = rosa_realloc(o->rec, sizeof(rosa_record) * (size_t)cap, "records");
        if (!p) return -1;
        o->rec = p;
        L->cap = cap;
    }
    int st = take_record(v, L->path, index, &o->rec[o->n]);
    if (st == 0) {
        o->n++;
        return 0;
    }
    if (st == -1 && L->skip_bad) {
        o->n_bad++;
        return 0;
    }
    return -1;
}

static int has_record_fields(const cJSON *v) {
    return cJSON_GetObjectItemCaseSensitive(v, "instruction") || cJSON_GetObjectItemCaseSensitive(v, "output");
}

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

int rosa_records_load(const char *path, int skip_bad, rosa_records *out) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return -1;
    loader L = {path, skip_bad, out, 0};
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3; /* UTF-8 byte order mark */
    i = skip_ws(text, i, len);
    int status = -1;
    if (i == len) {
        rosa_fail("%s: the file is empty (expected a JSON array of records, or JSON Lines)", path);
        goto done;
    }
    if (text[i] == '[') {
        /* A JSON array of objects (the LLM-Adapters format). */
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
        if (!root) {
            size_t off = end && end >= text ? (size_t)(end - text) : i, line, col;
            line_col(text, off, &line, &col);
            rosa_fail("%s: invalid JSON at line %zu, column %zu", path, line, col);
            goto done;
        }
        size_t after = skip_ws(text, (size_t)(end - text), len);
        if (after != len) {
            size_t line, col;
            line_col(text, after, &line, &col);
            cJSON_Delete(root);
            rosa_fail("%s: unexpected text after the JSON array at line %zu, column %zu", path, line, col);
            goto done;
        }
        int index = 0;
        for (const cJSON *v = root->child; v; v = v->next, index++) {
            if (loader_add(&L, v, index) < 0) {
                cJSON_Delete(root);
                goto done;
            }
        }
        cJSON_Delete(root);
    } else if (text[i] == '{') {
        /* JSON Lines: one object per line (any whitespace between values). */
        int index = 0;
        while (i < len) {
            const char *end = NULL;
            cJSON *v = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
            if (!v) {
                size_t off = end && end >= text ? (size_t)(end - text) : i, line, col;
                line_col(text, off, &line, &col);
                rosa_fail("%s: record %d: invalid JSON at line %zu, column %zu", path, index, line, col);
                goto done;
            }
            size_t next = skip_ws(text, (size_t)(end - text), len);
            if (index == 0 && next == len && cJSON_IsObject(v) && !has_record_fields(v)) {
                cJSON_Delete(v);
                rosa_fail("%s: expected a JSON array of records (or JSON Lines), got one object without "
                          "\"instruction\" or \"output\"",
                          path);
                goto done;
            }
            int st = loader_add(&L, v, index);
            cJSON_Delete(v);
            if (st < 0) goto done;
            index++;
            i = next;
        }
    } else {
        size_t line, col;
        line_col(text, i, &line, &col);
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
        if (v) {
            rosa_fail("%s: expected a JSON array of records (or JSON Lines), got %s", path, json_type_name(v));
            cJSON_Delete(v);
        } else {
            rosa_fail("%s: not JSON (expected a JSON array of records, or JSON Lines): invalid JSON at line %zu, "
                      "column %zu",
                      path, line, col);
        }
        goto done;
    }
    if (out->n == 0) {
        if (out->n_bad)
            rosa_fail("%s: no usable records (all %d skipped as bad)", path, out->n_bad);
        else
            rosa_fail("%s: no records", path);
        goto done;
    }
    status = 0;
done:
    free(text);
    if (status < 0) {
        int n_bad = out->n_bad;
        rosa_records_free(out);
        out->n_bad = n_bad;
    }
    return status;
}

void rosa_records_free(rosa_records *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) record_free(&r->rec[i]);
    free(r->rec);
    r->rec = NULL;
    r->n = 0;
    r->n_bad = 0;
}

void rosa_records_truncate(rosa_records *r, int n) {
    for (int i = n; i < r->n; i++) record_free(&r->rec[i]);
    if (n < r->n) r->n = n;
}

/* ------------------------------------------------------------------ prompts */

/* The training template: LLM-Adapters finetune.py, generate_prompt(data_point)
 * (AGI-Edgerunners/LLM-Adapters; copied from the stored version at commit
 * 91770aba93bbbde16f3e16d1bf395a59706fa390, the form kept by the later
 * upstream and its forks; the pinned data commit 816657208af4... was not
 * available to check, and the older 063e3d420afb... had "  # noqa: E501"
 * inside the string).  The f-string's continuation lines carry the source
 * indentation: 16 spaces, and the "blank" lines between sections are 16
 * spaces too.  The header line ends with ONE space when there is an input and
 * TWO spaces when there is none.  `if data_point["input"]:` is Python
 * truthiness, so an empty input selects the no-input form. */
#define TRAIN_HEAD_INPUT                                                                                        \
    "Below is an instruction that describes a task, paired with an input that provides further context. Write " \
    "a response that appropriately completes the request. \n\n"
#define TRAIN_HEAD_NO_INPUT                                                                                     \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "         \
    "request.  \n\n"
#define IND "                " /* 16 spaces */
#define TRAIN_INSTRUCTION IND "### Instruction:\n" IND
#define TRAIN_INPUT "\n" IND "\n" IND "### Input:\n" IND
#define TRAIN_RESPONSE "\n" IND "\n" IND "### Response:\n" IND

/* The evaluation template: LLM-Adapters commonsense_evaluate.py (spelled
 * commomsense_evaluate.py upstream; stored at commit e0efdc0e8bb4...) and
 * evaluate.py (math; the same text in the later upstream form, e.g. the fork
 * aneekroy/LLM-Adapters@92934be82db1...; the early 1bb2f7c78b1c... had
 * "  # noqa: E501" inside the string), generate_prompt(instruction,
 * input=None), no-input branch: both scripts call it with the instruction
 * only.  Here the blank lines are empty (no indentation), the
 * header ends with ONE space, and the prompt ends with the 16-space
 * indentation after "### Response:\n". */
#define EVAL_HEAD                                                                                               \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "         \
    "request. \n\n"
#define EVAL_INSTRUCTION IND "### Instruction:\n" IND
#define EVAL_RESPONSE "\n\n" IND "### Response:\n" IND

static char *concat(const char *const *parts, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *s = rosa_malloc(len + 1, "prompt");
    if (!s) return NULL;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);
        memcpy(s + o, parts[i], k);
        o += k;
    }
    s[o] = 0;
    return s;
}

char *rosa_prompt_train(const rosa_record *r, int with_output) {
    const char *instruction = r->instruction ? r->instruction : "";
    const char *output = with_output && r->output ? r->output : "";
    if (r->input && r->input[0]) {
        const char *parts[] = {TRAIN_HEAD_INPUT, TRAIN_INSTRUCTION, instruction, TRAIN_INPUT, r->input,
                               TRAIN_RESPONSE, output};
        return concat(parts, 7);
    }
    const char *parts[] = {TRAIN_HEAD_NO_INPUT, TRAIN_INSTRUCTION, instruction, TRAIN_RESPONSE, output};
    return concat(parts, 5);
}

char *rosa_prompt_eval(const rosa_record *r) {
    const char *parts[] = {EVAL_HEAD, EVAL_INSTRUCTION, r->instruction ? r->instruction : "", EVAL_RESPONSE};
    return concat(parts, 4);
}

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
