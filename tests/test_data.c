/* test_data.c: LLM-Adapters data: loading, prompt templates, tokenization,
 * shuffle, validation split, batches, and `rosa tokenize --data`. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/util.h"
#include "data/data.h"
#include "test.h"

/* ----------------------------------------------------------------- helpers */

/* A per-process scratch file under /tmp holding `content`; returns its path
 * (static buffer, rotating). */
static const char *tmp_file(const char *name, const char *content) {
    static char bufs[8][256];
    static int k;
    char *p = bufs[k++ & 7];
    snprintf(p, 256, "/tmp/rosa_test_data_%d_%s", (int)getpid(), name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(content, 1, strlen(content), f);
        fclose(f);
    }
    return p;
}

static const char *stories_dir(void) { return shared_path("models/stories260K"); }

static rosa_record mkrec(const char *instruction, const char *input, const char *output) {
    rosa_record r = {(char *)instruction, (char *)input, (char *)output, NULL, 0};
    return r;
}

static rosa_records one_record(rosa_record *r) {
    rosa_records rs = {r, 1, 0};
    return rs;
}

static int32_t *encode(const rosa_tokenizer *tok, const char *text, int add_special, int *n) {
    int32_t *ids = NULL;
    size_t len = 0;
    if (rosa_tokenizer_encode(tok, text, strlen(text), add_special, &ids, &len) < 0) return NULL;
    *n = (int)len;
    return ids;
}

static int same_ids(const int32_t *a, const int32_t *b, int n) { return n == 0 || memcmp(a, b, sizeof(int32_t) * (size_t)n) == 0; }

/* ---------------------------------------------------------------- templates */

/* Expected bytes written out from LLM-Adapters finetune.py generate_prompt():
 * 16-space indentation, "blank" lines of 16 spaces, header ending in one space
 * (with input) or two spaces (without). */
TEST(data_template_train_no_input_bytes) {
    rosa_record r = mkrec("Is the sky blue?\n\nAnswer format: true/false", "", "the correct answer is true");
    char *p = rosa_prompt_train(&r, 1);
    CHECK_STR(p, "Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request.  \n"
                 "\n"
                 "                ### Instruction:\n"
                 "                Is the sky blue?\n"
                 "\n"
                 "Answer format: true/false\n"
                 "                \n"
                 "                ### Response:\n"
                 "                the correct answer is true");
    free(p);
    p = rosa_prompt_train(&r, 0);
    CHECK_STR(p, "Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request.  \n\n                ### Instruction:\n                Is the sky blue?\n\nAnswer "
                 "format: true/false\n                \n                ### Response:\n                ");
    free(p);
    /* A NULL input is the same as "" (Python truthiness). */
    rosa_record r2 = mkrec("Is the sky blue?\n\nAnswer format: true/false", NULL, "the correct answer is true");
    char *a = rosa_prompt_train(&r, 1), *b = rosa_prompt_train(&r2, 1);
    CHECK_STR(a, b);
    free(a);
    free(b);
}

TEST(data_template_train_with_input_bytes) {
    rosa_record r = mkrec("Add the numbers.", "2, 3", "5");
    char *p = rosa_prompt_train(&r, 1);
    CHECK_STR(p, "Below is an instruction that describes a task, paired with an input that provides further "
                 "context. Write a response that appropriately completes the request. \n"
                 "\n"
                 "                ### Instruction:\n"
                 "                Add the numbers.\n"
                 "                \n"
                 "                ### Input:\n"
                 "                2, 3\n"
                 "                \n"
                 "                ### Response:\n"
                 "                5");
    free(p);
    p = rosa_prompt_train(&r, 0);
    size_t n = p ? strlen(p) : 0;
    CHECK(n > 30 && strcmp(p + n - 30, "### Response:\n                ") == 0);
    free(p);
}

/* commonsense_evaluate.py / evaluate.py generate_prompt(instruction): empty
 * blank lines, header ending in one space, 16 spaces after "### Response:\n";
 * the record's input is never used. */
TEST(data_template_eval_bytes) {
    rosa_record r = mkrec("Add the numbers.", "2, 3", "5");
    char *p = rosa_prompt_eval(&r);
    CHECK_STR(p, "Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request. \n"
                 "\n"
                 "                ### Instruction:\n"
                 "                Add the numbers.\n"
                 "\n"
                 "                ### Response:\n"
                 "                ");
    free(p);
}

/* ------------------------------------------------------------- tokenization */

static rosa_tokenizer *stories_tok(void) { return rosa_tokenizer_load(stories_dir()); }

TEST(data_tokenize_bos_eos_and_labels) {
    rosa_tokenizer *tok = stories_tok();
    REQUIRE(tok);
    int32_t bos = rosa_tokenizer_bos_id(tok), eos = rosa_tokenizer_eos_id(tok);
    CHECK_EQ_INT(bos, 1);
    CHECK_EQ_INT(eos, 2);
    rosa_record r = mkrec("Is the sky blue?", "", "the correct answer is true");
    rosa_records rs = one_record(&r);
    char *full = rosa_prompt_train(&r, 1);
    int nf;
    int32_t *enc = encode(tok, full, 1, &nf);
    free(full);
    REQUIRE(enc && nf > 20);
    CHECK_EQ_INT(enc[0], bos);
    CHECK(enc[nf - 1] != eos);

    rosa_data_options o;
    rosa_data_options_default(&o);
    CHECK_EQ_INT(o.cutoff_len, 256);
    CHECK_EQ_INT(o.train_on_inputs, 1);
    CHECK_EQ_INT(o.add_eos, 1);
    rosa_dataset d;
    /* Short: BOS first, EOS appended, labels = ids. */
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    REQUIRE(d.n == 1);
    CHECK_EQ_INT(d.ex[0].n, nf + 1);
    CHECK_EQ_INT(d.ex[0].ids[0], bos);
    CHECK(same_ids(d.ex[0].ids, enc, nf));
    CHECK_EQ_INT(d.ex[0].ids[nf], eos);
    CHECK(same_ids(d.ex[0].labels, d.ex[0].ids, d.ex[0].n));
    rosa_dataset_free(&d);
    /* Truncated: the first cutoff ids, no EOS. */
    o.cutoff_len = 10;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    CHECK_EQ_INT(d.ex[0].n, 10);
    CHECK(same_ids(d.ex[0].ids, enc, 10));
    CHECK(same_ids(d.ex[0].labels, enc, 10));
    rosa_dataset_free(&d);
    /* Exactly cutoff ids: len < cutoff fails, so no EOS. */
    o.cutoff_len = nf;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    CHECK_EQ_INT(d.ex[0].n, nf);
    CHECK(same_ids(d.ex[0].ids, enc, nf));
    rosa_dataset_free(&d);
    /* One below the cutoff: EOS fits. */
    o.cutoff_len = nf + 1;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    CHECK_EQ_INT(d.ex[0].n, nf + 1);
    CHECK_EQ_INT(d.ex[0].ids[nf], eos);
    rosa_dataset_free(&d);
    /* add_eos = 0: never appended. */
    o.cutoff_len = 256;
    o.add_eos = 0;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    CHECK_EQ_INT(d.ex[0].n, nf);
    rosa_dataset_free(&d);
    o.cutoff_len = 0;
    CHECK(rosa_dataset_tokenize(tok, &rs, &o, &d) < 0);
    CHECK_ERROR_HAS("cutoff_len");
    free(enc);
    rosa_tokenizer_free(tok);
}

TEST(data_tokenize_eos_not_appended_twice) {
    rosa_tokenizer *tok = stories_tok();
    REQUIRE(tok);
    int32_t eos = rosa_tokenizer_eos_id(tok);
    /* "</s>" in the text is the EOS token (an added special token), as in
     * Hugging Face tokenizers; an output ending in it gets no second EOS. */
    rosa_record r = mkrec("Say yes.", "", "yes</s>");
    rosa_records rs = one_record(&r);
    char *full = rosa_prompt_train(&r, 1);
    int nf;
    int32_t *enc = encode(tok, full, 1, &nf);
    free(full);
    REQUIRE(enc && nf > 2);
    REQUIRE(enc[nf - 1] == eos);
    rosa_data_options o;
    rosa_data_options_default(&o);
    rosa_dataset d;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    CHECK_EQ_INT(d.ex[0].n, nf);
    CHECK(same_ids(d.ex[0].ids, enc, nf));
    CHECK(d.ex[0].ids[nf - 2] != eos);
    rosa_dataset_free(&d);
    free(enc);
    rosa_tokenizer_free(tok);
}

TEST(data_tokenize_train_on_inputs_false_masks_user_prompt) {
    rosa_tokenizer *tok = stories_tok();
    REQUIRE(tok);
    rosa_record recs[2] = {mkrec("Is the sky blue?", "", "the correct answer is true"),
                           mkrec("Add the numbers.", "2, 3", "The answer is 5.")};
    recs[1].index = 1;
    rosa_records rs = {recs, 2, 0};
    rosa_data_options o;
    rosa_data_options_default(&o);
    o.cutoff_len = 1024; /* stories260K's 512-token vocabulary makes long prompts */
    o.train_on_inputs = 0;
    rosa_dataset d, all;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    o.train_on_inputs = 1;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &all) == 0);
    for (int i = 0; i < 2; i++) {
        char *user = rosa_prompt_train(&recs[i], 0);
        int nu;
        int32_t *u = encode(tok, user, 1, &nu);
        free(user);
        REQUIRE(u);
        const rosa_example *e = &d.ex[i];
        CHECK(nu > 10 && nu < e->n);
        CHECK_EQ_INT(e->n, all.ex[i].n);
        CHECK(same_ids(e->ids, all.ex[i].ids, e->n));
        /* The user prompt ends in 16 spaces; in the full prompt the last one
         * merges into the output's first word ("\u2581the"), so only nu - 1
         * ids are shared, and the mask (nu, as upstream) covers that word. */
        CHECK(same_ids(e->ids, u, nu - 1));
        CHECK(e->ids[nu - 1] != u[nu - 1]);
        int masked = 0;
        for (int t = 0; t < e->n; t++) {
            if (t < nu) {
                CHECK_EQ_INT(e->labels[t], ROSA_IGNORE_INDEX);
            } else {
                CHECK_EQ_INT(e->labels[t], e->ids[t]);
            }
            masked += e->labels[t] == ROSA_IGNORE_INDEX;
        }
        CHECK_EQ_INT(masked, nu);
        free(u);
    }
    rosa_dataset_free(&d);
    rosa_dataset_free(&all);
    /* A cutoff inside the user prompt masks everything. */
    o.train_on_inputs = 0;
    o.cutoff_len = 8;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(d.ex[i].n, 8);
        for (int t = 0; t < 8; t++) CHECK_EQ_INT(d.ex[i].labels[t], ROSA_IGNORE_INDEX);
    }
    rosa_dataset_free(&d);
    rosa_tokenizer_free(tok);
}

TEST(data_tokenize_commonsense_small) {
    rosa_tokenizer *tok = stories_tok();
    REQUIRE(tok);
    rosa_records rs;
    REQUIRE(rosa_records_load(shared_path("data/train/commonsense_mix_small.json"), 0, &rs) == 0);
    rosa_data_options o;
    rosa_data_options_default(&o);
    o.train_on_inputs = 0;
    rosa_dataset d;
    /* stories260K spends one id per space, so every prompt (271..697 ids)
     * is cut at the default 256: no EOS. */
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    CHECK_EQ_INT(d.n, 2000);
    for (int i = 0; i < d.n && !test_failed(); i++) {
        CHECK_EQ_INT(d.ex[i].n, 256);
        CHECK_EQ_INT(d.ex[i].ids[0], 1);
        CHECK(d.ex[i].ids[255] != 2);
    }
    rosa_dataset_free(&d);
    /* With room, every example ends in EOS, and the answer is trained on. */
    o.cutoff_len = 1024;
    REQUIRE(rosa_dataset_tokenize(tok, &rs, &o, &d) == 0);
    for (int i = 0; i < d.n && !test_failed(); i++) {
        const rosa_example *e = &d.ex[i];
        CHECK(e->n > 256 && e->n < 1024);
        CHECK_EQ_INT(e->ids[0], 1);
        CHECK_EQ_INT(e->ids[e->n - 1], 2);
        CHECK_EQ_INT(e->labels[0], ROSA_IGNORE_INDEX);
        CHECK_EQ_INT(e->labels[e->n - 1], 2);
        CHECK_EQ_INT(e->labels[e->n - 2], e->ids[e->n - 2]);
    }
    rosa_dataset_free(&d);
    rosa_records_free(&rs);
    rosa_tokenizer_free(tok);
}

/* ------------------------------------------------------------------ loading */

TEST(data_load_commonsense_mix_small) {
    rosa_records rs;
    double t0 = rosa_now();
    REQUIRE(rosa_records_load(shared_path("data/train/commonsense_mix_small.json"), 0, &rs) == 0);
    CHECK_EQ_INT(rs.n, 2000);
    CHECK_EQ_INT(rs.n_bad, 0);
    CHECK_STR(rs.rec[0].instruction, "Please answer the following question with true or false, question: did "
                                     "attack on titan season 2 come out?\n\nAnswer format: true/false");
    CHECK_STR(rs.rec[0].input, "");
    CHECK_STR(rs.rec[0].output, "the correct answer is true");
    CHECK_STR(rs.rec[0].answer, "true");
    CHECK_STR(rs.rec[1999].instruction, "Please answer the following question with true or false, question: is "
                                        "square d and schneider electric the same company?\n\nAnswer format: "
                                        "true/false");
    CHECK_EQ_INT(rs.rec[1999].index, 1999);
    rosa_records_free(&rs);
    /* The 6 MB set loads quickly. */
    REQUIRE(rosa_records_load(shared_path("data/train/commonsense_mix.json"), 0, &rs) == 0);
    CHECK_EQ_INT(rs.n, 17754);
    double dt = rosa_now() - t0;
    CHECK_MSG(dt < 5.0, "loading took %.2f s", dt);
    rosa_records_free(&rs);
}

TEST(data_load_jsonl) {
    const char *p = tmp_file("ok.jsonl",
                             "{\"instruction\": \"a\", \"input\": \"b\", \"output\": \"c\", \"answer\": \"d\"}\n"
                             "{\"instruction\": \"e\", \"output\": \"f\"}\r\n"
                             "\n"
                             "{\"instruction\": \"g\\u00e9\", \"input\": null, \"output\": \"\", \"answer\": 42, "
                             "\"extra\": [1]}\n");
    rosa_records rs;
    REQUIRE(rosa_records_load(p, 0, &rs) == 0);
    CHECK_EQ_INT(rs.n, 3);
    CHECK_STR(rs.rec[0].input, "b");
    CHECK_STR(rs.rec[0].answer, "d");
    CHECK_STR(rs.rec[1].instruction, "e");
    CHECK_STR(rs.rec[1].input, "");
    CHECK(rs.rec[1].answer == NULL);
    CHECK_STR(rs.rec[2].instruction, "g\xc3\xa9");
    CHECK_STR(rs.rec[2].input, "");
    CHECK_STR(rs.rec[2].output, "");
    CHECK_STR(rs.rec[2].answer, "42");
    CHECK_EQ_INT(rs.rec[2].index, 2);
    rosa_records_free(&rs);
    unlink(p);
    /* A bad line names its record. */
    p = tmp_file("bad.jsonl", "{\"instruction\": \"a\", \"output\": \"c\"}\n"
                              "{\"instruction\": \"a\", \"output\": [\"c\"]}\n");
    CHECK(rosa_records_load(p, 0, &rs) < 0);
    CHECK_ERROR_HAS("record 1: field \"output\" must be a string");
    REQUIRE(rosa_records_load(p, 1, &rs) == 0);
    CHECK_EQ_INT(rs.n, 1);
    CHECK_EQ_INT(rs.n_bad, 1);
    rosa_records_free(&rs);
    unlink(p);
    p = tmp_file("broken.jsonl", "{\"instruction\": \"a\", \"output\": \"c\"}\n{\"instruction\": \"a\", \n");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("invalid JSON at line 2");
    unlink(p);
}

TEST(data_load_bad_records) {
    const char *p = tmp_file("bad.json", "[\n"
                                         "  {\"instruction\": \"ok\", \"input\": \"\", \"output\": \"x\"},\n"
                                         "  {\"instruction\": \"no output\", \"input\": \"\"},\n"
                                         "  {\"instruction\": \"number\", \"output\": 5},\n"
                                         "  7,\n"
                                         "  {\"instruction\": \"bad input\", \"input\": true, \"output\": \"x\"},\n"
                                         "  {\"instruction\": \"ok too\", \"output\": \"y\", \"answer\": \"z\"}\n"
                                         "]");
    rosa_records rs;
    CHECK(rosa_records_load(p, 0, &rs) < 0);
    CHECK_ERROR_HAS(p);
    CHECK_ERROR_HAS("record 1: missing field \"output\"");
    CHECK(rs.n == 0 && rs.rec == NULL);
    REQUIRE(rosa_records_load(p, 1, &rs) == 0);
    CHECK_EQ_INT(rs.n, 2);
    CHECK_EQ_INT(rs.n_bad, 4);
    CHECK_EQ_INT(rs.rec[0].index, 0);
    CHECK_EQ_INT(rs.rec[1].index, 5);
    CHECK_STR(rs.rec[1].instruction, "ok too");
    CHECK_STR(rs.rec[1].answer, "z");
    rosa_records_free(&rs);
    unlink(p);
    p = tmp_file("num.json", "[{\"instruction\": \"a\", \"output\": \"x\"}, {\"instruction\": \"a\", \"output\": 5}]");
    CHECK(rosa_records_load(p, 0, &rs) < 0);
    CHECK_ERROR_HAS("record 1: field \"output\" must be a string");
    unlink(p);
    p = tmp_file("notobj.json", "[{\"instruction\": \"a\", \"output\": \"x\"}, \"just text\"]");
    CHECK(rosa_records_load(p, 0, &rs) < 0);
    CHECK_ERROR_HAS("record 1: expected an object");
    unlink(p);
    p = tmp_file("instr.json", "[{\"instruction\": 3, \"output\": \"x\"}]");
    CHECK(rosa_records_load(p, 0, &rs) < 0);
    CHECK_ERROR_HAS("record 0: field \"instruction\" must be a string");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("no usable records");
    CHECK_EQ_INT(rs.n_bad, 1);
    unlink(p);
    p = tmp_file("utf8.json", "[{\"instruction\": \"a\xff\", \"output\": \"x\"}]");
    CHECK(rosa_records_load(p, 0, &rs) < 0);
    CHECK_ERROR_HAS("record 0: field \"instruction\" is not valid UTF-8");
    unlink(p);
}

TEST(data_load_refuses_absurd_files) {
    rosa_records rs;
    const char *p = tmp_file("text.json", "hello, this is not JSON\n");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("not JSON");
    unlink(p);
    p = tmp_file("empty_array.json", "[ ]\n");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("no records");
    unlink(p);
    p = tmp_file("empty.json", "  \n");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("empty");
    unlink(p);
    p = tmp_file("object.json", "{\n  \"data\": [{\"instruction\": \"a\", \"output\": \"b\"}]\n}\n");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("expected a JSON array of records");
    unlink(p);
    p = tmp_file("number.json", "42");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("got a number");
    unlink(p);
    p = tmp_file("truncated.json", "[\n {\"instruction\": \"a\", \"output\": \"b\"},\n {\"instr");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("invalid JSON at line 3");
    unlink(p);
    p = tmp_file("trailing.json", "[{\"instruction\": \"a\", \"output\": \"b\"}] x");
    CHECK(rosa_records_load(p, 1, &rs) < 0);
    CHECK_ERROR_HAS("after the JSON array");
    unlink(p);
    CHECK(rosa_records_load("/nonexistent/data.json", 0, &rs) < 0);
    CHECK_ERROR_HAS("/nonexistent/data.json");
}

/* ------------------------------------------------------ shuffle, split, batch */

TEST(data_shuffle_is_seeded_permutation) {
    enum { N = 1000 };
    static int32_t a[N], b[N], c[N];
    for (int i = 0; i < N; i++) a[i] = b[i] = c[i] = i;
    rosa_rng r1, r2, r3;
    rosa_rng_seed(&r1, 42);
    rosa_rng_seed(&r2, 42);
    rosa_rng_seed(&r3, 43);
    rosa_shuffle(a, N, &r1);
    rosa_shuffle(b, N, &r2);
    rosa_shuffle(c, N, &r3);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    static unsigned char seen[N];
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        CHECK(a[i] >= 0 && a[i] < N);
        if (a[i] >= 0 && a[i] < N) seen[a[i]]++;
        fixed += a[i] == i;
    }
    for (int i = 0; i < N; i++) CHECK_EQ_INT(seen[i], 1);
    CHECK(fixed < 10);
    /* All 6 orders of 3 items come out about equally often. */
    int counts[6] = {0};
    rosa_rng r;
    rosa_rng_seed(&r, 7);
    for (int k = 0; k < 60000; k++) {
        int32_t v[3] = {0, 1, 2};
        rosa_shuffle(v, 3, &r);
        counts[v[0] * 2 + (v[1] > v[2])]++;
    }
    for (int i = 0; i < 6; i++) CHECK_MSG(counts[i] > 9500 && counts[i] < 10500, "order %d: %d of 60000", i, counts[i]);
    /* n = 0 and 1 are no-ops. */
    int32_t one = 5;
    rosa_shuffle(&one, 1, &r);
    rosa_shuffle(NULL, 0, &r);
    CHECK_EQ_INT(one, 5);
}

TEST(data_split_validation) {
    int32_t *tr, *va, *tr2, *va2;
    int nt, nt2;
    REQUIRE(rosa_split_validation(100, 20, 42, &tr, &nt, &va) == 0);
    CHECK_EQ_INT(nt, 80);
    unsigned char seen[100] = {0};
    for (int i = 0; i < nt; i++) {
        if (i) CHECK(tr[i] > tr[i - 1]);
        CHECK(tr[i] >= 0 && tr[i] < 100);
        seen[tr[i]] |= 1;
    }
    for (int i = 0; i < 20; i++) {
        if (i) CHECK(va[i] > va[i - 1]);
        CHECK(va[i] >= 0 && va[i] < 100);
        CHECK(!(seen[va[i]] & 1));
        seen[va[i]] |= 2;
    }
    for (int i = 0; i < 100; i++) CHECK(seen[i] == 1 || seen[i] == 2);
    /* The validation set is not simply the first or last records. */
    CHECK(va[19] - va[0] > 20);
    REQUIRE(rosa_split_validation(100, 20, 42, &tr2, &nt2, &va2) == 0);
    CHECK(nt2 == nt && memcmp(tr, tr2, sizeof(int32_t) * 80) == 0 && memcmp(va, va2, sizeof(int32_t) * 20) == 0);
    free(tr2);
    free(va2);
    REQUIRE(rosa_split_validation(100, 20, 43, &tr2, &nt2, &va2) == 0);
    CHECK(memcmp(va, va2, sizeof(int32_t) * 20) != 0);
    free(tr2);
    free(va2);
    free(tr);
    free(va);
    REQUIRE(rosa_split_validation(5, 0, 1, &tr, &nt, &va) == 0);
    CHECK_EQ_INT(nt, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(tr[i], i);
    free(tr);
    free(va);
    CHECK(rosa_split_validation(5, 5, 1, &tr, &nt, &va) < 0);
    CHECK_ERROR_HAS("validation set size 5");
    CHECK(rosa_split_validation(5, -1, 1, &tr, &nt, &va) < 0);
    CHECK(tr == NULL && va == NULL);
}

TEST(data_batch_padding_and_label_count) {
    int32_t ids0[] = {1, 10, 11, 2}, lab0[] = {-100, -100, 11, 2};
    int32_t ids1[] = {1, 20, 21, 22, 23, 2}, lab1[] = {1, 20, 21, 22, 23, 2};
    int32_t ids2[] = {1, 30}, lab2[] = {-100, 30};
    rosa_example ex[3] = {{ids0, lab0, 4}, {ids1, lab1, 6}, {ids2, lab2, 2}};
    rosa_dataset d = {ex, 3};
    int32_t idx[3] = {2, 0, 1};
    rosa_batch b;
    REQUIRE(rosa_batch_make(&d, idx, 3, 0, &b) == 0);
    CHECK_EQ_INT(b.B, 3);
    CHECK_EQ_INT(b.T, 6);
    int32_t want_ids[18] = {1, 30, 0, 0, 0, 0, 1, 10, 11, 2, 0, 0, 1, 20, 21, 22, 23, 2};
    int32_t want_lab[18] = {-100, 30, -100, -100, -100, -100, -100, -100, 11, 2, -100, -100, 1, 20, 21, 22, 23, 2};
    uint8_t want_mask[18] = {1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1};
    CHECK(memcmp(b.ids, want_ids, sizeof want_ids) == 0);
    CHECK(memcmp(b.labels, want_lab, sizeof want_lab) == 0);
    CHECK(memcmp(b.mask, want_mask, sizeof want_mask) == 0);
    /* Shifted targets (t >= 1): 1 + 2 + 5; lab1[0] is not counted. */
    CHECK_EQ_INT(b.n_label_tokens, 8);
    rosa_batch_free(&b);
    /* Another pad id, a batch of one: T = its length, nothing padded. */
    REQUIRE(rosa_batch_make(&d, idx + 1, 1, 7, &b) == 0);
    CHECK_EQ_INT(b.T, 4);
    CHECK_EQ_INT(b.n_label_tokens, 2);
    for (int t = 0; t < 4; t++) CHECK_EQ_INT(b.mask[t], 1);
    rosa_batch_free(&b);
    REQUIRE(rosa_batch_make(&d, idx, 1, 7, &b) == 0);
    CHECK_EQ_INT(b.T, 2);
    rosa_batch_free(&b);
    int32_t bad[2] = {0, 3};
    CHECK(rosa_batch_make(&d, bad, 2, 0, &b) < 0);
    CHECK_ERROR_HAS("out of range");
    CHECK(rosa_batch_make(&d, idx, 0, 0, &b) < 0);
}

/* ---------------------------------------------------------------------- CLI */

static int rosa_run(const char *args, int merge, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", rosa_bin(), args);
    return run_capture(cmd, merge, out);
}

static const char *cli_data_file(void) {
    return tmp_file("cli.json", "[\n"
                                " {\"instruction\": \"Is the sky blue?\", \"input\": \"\", \"output\": \"the correct "
                                "answer is true\", \"answer\": \"true\"},\n"
                                " {\"instruction\": \"Add the numbers.\", \"input\": \"2, 3\", \"output\": \"5\"},\n"
                                " {\"instruction\": \"Tell a story.\", \"output\": \"Once upon a time there was a "
                                "little dog. He liked to play in the park with his friends every day.\"}\n"
                                "]\n");
}

/* Checks a dump against the library's own tokenization of the same file. */
static void check_dump(const char *out, const char *path, const rosa_data_options *o) {
    cJSON *j = cJSON_Parse(out);
    CHECK_MSG(j != NULL, "not JSON: %.200s", out);
    if (!j) return;
    rosa_tokenizer *tok = stories_tok();
    rosa_records rs;
    rosa_dataset d;
    if (!tok || rosa_records_load(path, 0, &rs) < 0) {
        CHECK_MSG(0, "%s", rosa_last_error());
        cJSON_Delete(j);
        rosa_tokenizer_free(tok);
        return;
    }
    CHECK(rosa_dataset_tokenize(tok, &rs, o, &d) == 0);
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(j, "records");
    CHECK_EQ_INT(cJSON_GetArraySize(recs), rs.n);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(j, "cutoff_len")->valueint, o->cutoff_len);
    CHECK(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "train_on_inputs")));
    CHECK_EQ_INT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "train_on_inputs")), o->train_on_inputs);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(j, "eos_id")->valueint, 2);
    int i = 0;
    for (const cJSON *r = recs ? recs->child : NULL; r && i < d.n; r = r->next, i++) {
        CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(r, "index")->valueint, i);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(r, "ids"), *labels = cJSON_GetObjectItemCaseSensitive(r, "labels");
        CHECK_EQ_INT(cJSON_GetArraySize(ids), d.ex[i].n);
        CHECK_EQ_INT(cJSON_GetArraySize(labels), d.ex[i].n);
        int t = 0;
        for (const cJSON *a = ids->child, *b = labels->child; a && b && t < d.ex[i].n; a = a->next, b = b->next, t++) {
            CHECK_EQ_INT(a->valueint, d.ex[i].ids[t]);
            CHECK_EQ_INT(b->valueint, d.ex[i].labels[t]);
        }
    }
    rosa_dataset_free(&d);
    rosa_records_free(&rs);
    rosa_tokenizer_free(tok);
    cJSON_Delete(j);
}

TEST(data_cli_tokenize_data_train) {
    const char *path = cli_data_file();
    char args[2048], *out;
    rosa_data_options o;
    rosa_data_options_default(&o);
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template train --json", stories_dir(), path);
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK(strncmp(out, "{\"records\": [{\"index\": 0, \"ids\": [1, ", 37) == 0);
    check_dump(out, path, &o);
    free(out);
    o.cutoff_len = 40;
    o.train_on_inputs = 0;
    snprintf(args, sizeof args,
             "tokenize --tokenizer %s --data %s --template train --cutoff-len 40 --train-on-inputs false --json",
             stories_dir(), path);
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK(strstr(out, "\"cutoff_len\": 40, \"train_on_inputs\": false, \"eos_id\": 2}") != NULL);
    CHECK(strstr(out, "-100") != NULL);
    check_dump(out, path, &o);
    free(out);
    unlink(path);
}

TEST(data_cli_tokenize_data_eval) {
    const char *path = cli_data_file();
    char args[2048], *out;
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template eval --json", stories_dir(), path);
    REQUIRE(rosa_run(args, 0, &out) == 0);
    cJSON *j = cJSON_Parse(out);
    REQUIRE(j);
    rosa_tokenizer *tok = stories_tok();
    REQUIRE(tok);
    rosa_record r = mkrec("Add the numbers.", "2, 3", "5");
    char *prompt = rosa_prompt_eval(&r);
    int n;
    int32_t *want = encode(tok, prompt, 1, &n);
    free(prompt);
    REQUIRE(want);
    const cJSON *rec1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "records"), 1);
    REQUIRE(rec1);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(rec1, "ids"), *labels = cJSON_GetObjectItemCaseSensitive(rec1, "labels");
    CHECK_EQ_INT(cJSON_GetArraySize(ids), n);
    CHECK_EQ_INT(cJSON_GetArraySize(labels), n);
    int t = 0;
    for (const cJSON *a = ids->child, *b = labels->child; a && b && t < n; a = a->next, b = b->next, t++) {
        CHECK_EQ_INT(a->valueint, want[t]);
        CHECK_EQ_INT(b->valueint, ROSA_IGNORE_INDEX);
    }
    CHECK(want[n - 1] != 2); /* no EOS in an evaluation prompt */
    free(want);
    rosa_tokenizer_free(tok);
    cJSON_Delete(j);
    free(out);
    unlink(path);
}

TEST(data_cli_tokenize_data_errors) {
    const char *path = cli_data_file();
    char args[2048], *out;
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template bogus", stories_dir(), path);
    CHECK_EQ_INT(rosa_run(args, 1, &out), 2);
    CHECK_MSG(strncmp(out, "rosa: error:", 12) == 0 && strstr(out, "--template") != NULL, "got: %s", out);
    free(out);
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template train --train-on-inputs maybe", stories_dir(),
             path);
    CHECK_EQ_INT(rosa_run(args, 1, &out), 2);
    CHECK_MSG(strstr(out, "rosa: error:") == out && strstr(out, "true or false") != NULL, "got: %s", out);
    free(out);
    snprintf(args, sizeof args, "tokenize --model %s --data %s", stories_dir(), path);
    CHECK_EQ_INT(rosa_run(args, 1, &out), 2);
    CHECK_MSG(strstr(out, "--template") != NULL, "got: %s", out);
    free(out);
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template train --text hi", stories_dir(), path);
    CHECK_EQ_INT(rosa_run(args, 1, &out), 2);
    CHECK(strncmp(out, "rosa: error:", 12) == 0);
    free(out);
    unlink(path);
    const char *bad = tmp_file("cli_bad.json", "[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instruction\": \"c\"}, "
                                               "{\"instruction\": \"d\", \"output\": \"e\"}]");
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template train --json", stories_dir(), bad);
    CHECK_EQ_INT(rosa_run(args, 1, &out), 1);
    CHECK_MSG(strstr(out, "rosa: error:") == out && strstr(out, "record 1: missing field \"output\"") != NULL,
              "got: %s", out);
    free(out);
    snprintf(args, sizeof args, "tokenize --model %s --data %s --template train --skip-bad-records --json",
             stories_dir(), bad);
    REQUIRE(rosa_run(args, 0, &out) == 0);
    cJSON *j = cJSON_Parse(out);
    REQUIRE(j);
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(j, "records");
    CHECK_EQ_INT(cJSON_GetArraySize(recs), 2);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(recs, 1), "index")->valueint, 2);
    cJSON_Delete(j);
    free(out);
    unlink(bad);
    CHECK_EQ_INT(rosa_run("tokenize --help", 0, &out), 0);
    CHECK(strstr(out, "--data") != NULL && strstr(out, "--template") != NULL && strstr(out, "--model") != NULL);
    free(out);
}
