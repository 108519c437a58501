/* test_tokenizer.c: the tokenizer against Hugging Face's outputs: llama.cpp's
 * vectors for Llama 2 and Qwen2, stories260K's vectors.json, special tokens,
 * streaming decode, configuration variants (expected ids made with the HF
 * `tokenizers` library), and malformed input and files. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "test.h"
#include "tokenizer/tokenizer_internal.h"

/* ---------------------------------------------------------------- helpers */

static rosa_tokenizer *load_shared(const char *rel) {
    rosa_tokenizer *t = rosa_tokenizer_load(shared_path(rel));
    if (!t) test_fail(__FILE__, __LINE__, "loading %s: %s", rel, rosa_last_error());
    return t;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(buf + k, cap - k, "%d ", ids[i]);
}

/* Encodes and compares with the expected ids; returns the ids (free them). */
static int32_t *check_encode(const rosa_tokenizer *t, const char *text, size_t len, int add_special,
                             const int32_t *want, size_t n_want, size_t *n_out, const char *file,
                             int line) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (rosa_tokenizer_encode(t, text, len, add_special, &ids, &n) != 0) {
        test_fail(file, line, "encode(\"%.60s\") failed: %s", text, rosa_last_error());
        return NULL;
    }
    if (want && !ids_equal(ids, n, want, n_want)) {
        char a[512], b[512];
        fmt_ids(a, sizeof a, ids, n);
        fmt_ids(b, sizeof b, want, n_want);
        test_fail(file, line, "encode(\"%.60s\") = [%s], expected [%s]", text, a, b);
    }
    if (n_out) *n_out = n;
    return ids;
}

#define CHECK_ENCODE(t, text, sp, ...)                                                       \
    do {                                                                                     \
        const int32_t want_[] = {__VA_ARGS__};                                               \
        free(check_encode((t), (text), strlen(text), (sp), want_, sizeof want_ / sizeof *want_, \
                          NULL, __FILE__, __LINE__));                                        \
    } while (0)

static void check_decode(const rosa_tokenizer *t, const int32_t *ids, size_t n, int skip,
                         const char *want, size_t want_len, const char *file, int line) {
    size_t len = 0;
    char *s = rosa_tokenizer_decode(t, ids, n, skip, &len);
    if (!s) {
        test_fail(file, line, "decode failed: %s", rosa_last_error());
        return;
    }
    if (len != want_len || memcmp(s, want, len) != 0 || s[len] != 0)
        test_fail(file, line, "decode = \"%.80s\" (%zu bytes), expected \"%.80s\" (%zu bytes)", s, len,
                  want, want_len);
    free(s);
}

#define CHECK_DECODE(t, skip, want, ...)                                                    \
    do {                                                                                    \
        const int32_t ids_[] = {__VA_ARGS__};                                               \
        check_decode((t), ids_, sizeof ids_ / sizeof *ids_, (skip), (want), strlen(want),     \
                     __FILE__, __LINE__);                                                   \
    } while (0)

/* Streams ids through rosa_detok: every piece must be complete UTF-8 and the
 * pieces must add up to the full decode.  Returns the number of pieces that
 * were empty (held back). */
static int check_stream(const rosa_tokenizer *t, const int32_t *ids, size_t n, int skip,
                        const char *file, int line) {
    size_t full_len;
    char *full = rosa_tokenizer_decode(t, ids, n, skip, &full_len);
    rosa_detok *d = rosa_detok_new(t, skip);
    if (!full || !d) {
        test_fail(file, line, "decode/detok_new failed: %s", rosa_last_error());
        free(full);
        rosa_detok_free(d);
        return -1;
    }
    rosa_buf acc = {0};
    int empty = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t len;
        const char *p = i < n ? rosa_detok_push(d, ids[i], &len) : rosa_detok_finish(d, &len);
        if (!p) {
            test_fail(file, line, "detok failed at %zu: %s", i, rosa_last_error());
            break;
        }
        if (rosa_utf8_valid_prefix(p, len) != len)
            test_fail(file, line, "detok piece %zu is not complete UTF-8", i);
        if (len == 0 && i < n) empty++;
        rosa_buf_append(&acc, p, len);
    }
    if (acc.len != full_len || (full_len && memcmp(acc.data, full, full_len) != 0))
        test_fail(file, line, "streamed \"%.80s\" != decoded \"%.80s\"", acc.data ? acc.data : "",
                  full);
    rosa_buf_free(&acc);
    rosa_detok_free(d);
    free(full);
    return empty;
}

/* llama.cpp's test vector files: cases separated by "\n__ggml_vocab_test__\n",
 * expected ids one line per case. */
typedef struct {
    char *inp, *out;
    char *cases[128];
    char *lines[128];
    int n;
} vocab_vectors;

static int load_vectors(vocab_vectors *v, const char *inp, const char *out) {
    memset(v, 0, sizeof *v);
    size_t n;
    v->inp = rosa_read_file(shared_path(inp), &n);
    v->out = rosa_read_file(shared_path(out), NULL);
    if (!v->inp || !v->out) return -1;
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char *p = v->inp;
    for (char *q; (q = strstr(p, SEP)) && v->n < 128; p = q + sizeof SEP - 1) {
        *q = 0;
        v->cases[v->n++] = p;
    }
    int k = 0;
    for (char *l = v->out; k < v->n; k++) {
        char *nl = strchr(l, '\n');
        if (!nl) break;
        *nl = 0;
        v->lines[k] = l;
        l = nl + 1;
    }
    return k == v->n ? 0 : -1;
}

static void free_vectors(vocab_vectors *v) {
    free(v->inp);
    free(v->out);
}

static size_t parse_ids(const char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    for (const char *p = line; *p && n < cap;) {
        long x = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)x;
        p = end;
    }
    return n;
}

static void run_vectors(const char *tok_rel, const char *inp, const char *out, int32_t bos) {
    rosa_tokenizer *t = load_shared(tok_rel);
    vocab_vectors v;
    if (!t) return;
    if (load_vectors(&v, inp, out) < 0) {
        test_fail(__FILE__, __LINE__, "cannot read %s / %s", inp, out);
        free_vectors(&v);
        rosa_tokenizer_free(t);
        return;
    }
    CHECK_EQ_INT(v.n, 46);
    int32_t want[512];
    for (int i = 0; i < v.n; i++) {
        size_t nw = parse_ids(v.lines[i], want + 1, 500), n;
        const char *s = v.cases[i];
        int32_t *ids = check_encode(t, s, strlen(s), 0, want + 1, nw, &n, __FILE__, __LINE__);
        if (!ids) continue;
        check_decode(t, ids, n, 0, s, strlen(s), __FILE__, __LINE__);
        check_stream(t, ids, n, 0, __FILE__, __LINE__);
        free(ids);
        /* with the post-processor: BOS or nothing */
        want[0] = bos;
        int32_t *w = bos >= 0 ? want : want + 1;
        size_t nw2 = bos >= 0 ? nw + 1 : nw;
        ids = check_encode(t, s, strlen(s), 1, w, nw2, &n, __FILE__, __LINE__);
        if (ids) check_decode(t, ids, n, 1, s, strlen(s), __FILE__, __LINE__);
        free(ids);
    }
    free_vectors(&v);
    rosa_tokenizer_free(t);
}

/* ------------------------------------------------------- shared vectors */

TEST(tokenizer_llama2_vectors) {
    run_vectors("tokenizers/llama2", "tokenizers/llama2/ggml-vocab-llama-spm.gguf.inp",
                "tokenizers/llama2/ggml-vocab-llama-spm.gguf.out", 1);
}

TEST(tokenizer_qwen2_vectors) {
    run_vectors("tokenizers/qwen2", "tokenizers/qwen2/ggml-vocab-qwen2.gguf.inp",
                "tokenizers/qwen2/ggml-vocab-qwen2.gguf.out", -1);
}

static size_t json_ids(const cJSON *arr, int32_t *ids, size_t cap) {
    size_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (n < cap) ids[n++] = (int32_t)x->valuedouble;
    return n;
}

TEST(tokenizer_stories260k_vectors) {
    rosa_tokenizer *t = load_shared("models/stories260K");
    REQUIRE(t);
    size_t len;
    char *text = rosa_read_file(shared_path("models/stories260K/vectors.json"), &len);
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!v) {
        rosa_tokenizer_free(t);
        REQUIRE(v);
    }
    CHECK_EQ_INT(rosa_tokenizer_bos_id(t), 1);
    CHECK_EQ_INT(rosa_tokenizer_eos_id(t), 2);
    CHECK_EQ_INT(rosa_tokenizer_vocab_size(t), 512);
    static int32_t want[4096], want2[4096];
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(v, "tokenization")) {
        const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *dec = cJSON_GetObjectItem(c, "decoded")->valuestring;
        size_t nw = json_ids(cJSON_GetObjectItem(c, "ids"), want, 4096), n;
        int32_t *ids = check_encode(t, s, strlen(s), 0, want, nw, &n, __FILE__, __LINE__);
        if (ids) {
            check_decode(t, ids, n, 0, dec, strlen(dec), __FILE__, __LINE__);
            check_stream(t, ids, n, 0, __FILE__, __LINE__);
        }
        free(ids);
        nw = json_ids(cJSON_GetObjectItem(c, "input_ids"), want, 4096);
        free(check_encode(t, s, strlen(s), 1, want, nw, NULL, __FILE__, __LINE__));
        cases++;
    }
    CHECK_EQ_INT(cases, 20);
    /* greedy text == decode(greedy ids), and it encodes back to [BOS] + ids */
    const cJSON *g = cJSON_GetObjectItem(v, "greedy");
    size_t ng = json_ids(cJSON_GetObjectItem(g, "ids"), want, 4096);
    const char *gt = cJSON_GetObjectItem(g, "text")->valuestring;
    check_decode(t, want, ng, 0, gt, strlen(gt), __FILE__, __LINE__);
    check_stream(t, want, ng, 0, __FILE__, __LINE__);
    want2[0] = 1;
    memcpy(want2 + 1, want, ng * sizeof *want);
    free(check_encode(t, gt, strlen(gt), 1, want2, ng + 1, NULL, __FILE__, __LINE__));
    int prompts = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(v, "prompts")) {
        const char *p = cJSON_GetObjectItem(c, "prompt")->valuestring;
        size_t nw = json_ids(cJSON_GetObjectItem(c, "input_ids"), want, 4096);
        free(check_encode(t, p, strlen(p), 1, want, nw, NULL, __FILE__, __LINE__));
        size_t nc = json_ids(cJSON_GetObjectItem(c, "continuation_ids"), want2, 4096);
        const char *ct = cJSON_GetObjectItem(c, "continuation_text")->valuestring;
        check_decode(t, want2, nc, 0, ct, strlen(ct), __FILE__, __LINE__);
        size_t ns = json_ids(cJSON_GetObjectItem(c, "sequence_ids"), want, 4096);
        const char *ft = cJSON_GetObjectItem(c, "full_text")->valuestring;
        check_decode(t, want, ns, 1, ft, strlen(ft), __FILE__, __LINE__);
        check_stream(t, want, ns, 1, __FILE__, __LINE__);
        prompts++;
    }
    CHECK_EQ_INT(prompts, 3);
    cJSON_Delete(v);
    rosa_tokenizer_free(t);
}

/* ------------------------------------------------- special tokens, ids */

TEST(tokenizer_special_tokens) {
    rosa_tokenizer *l = load_shared("tokenizers/llama2");
    rosa_tokenizer *q = load_shared("tokenizers/qwen2");
    if (!l || !q) {
        rosa_tokenizer_free(l);
        rosa_tokenizer_free(q);
        return;
    }
    CHECK_STR(rosa_tokenizer_kind_name(l), "sentencepiece-bpe");
    CHECK_STR(rosa_tokenizer_kind_name(q), "byte-level-bpe");
    CHECK_EQ_INT(rosa_tokenizer_get_kind(l), ROSA_TOK_SENTENCEPIECE_BPE);
    CHECK_EQ_INT(rosa_tokenizer_get_kind(q), ROSA_TOK_BYTE_LEVEL_BPE);
    CHECK_EQ_INT(rosa_tokenizer_vocab_size(l), 32000);
    CHECK_EQ_INT(rosa_tokenizer_vocab_size(q), 151646);
    CHECK_EQ_INT(rosa_tokenizer_bos_id(l), 1);
    CHECK_EQ_INT(rosa_tokenizer_eos_id(l), 2);
    CHECK_EQ_INT(rosa_tokenizer_bos_id(q), -1);
    CHECK_EQ_INT(rosa_tokenizer_eos_id(q), 151645);
    CHECK(rosa_tokenizer_is_special(l, 1) && rosa_tokenizer_is_special(l, 2));
    CHECK(!rosa_tokenizer_is_special(l, 15043) && !rosa_tokenizer_is_special(l, -1));
    CHECK(rosa_tokenizer_is_special(q, 151644) && !rosa_tokenizer_is_special(q, 9707));
    CHECK_STR(rosa_tokenizer_piece(l, 1), "<s>");
    CHECK_STR(rosa_tokenizer_piece(l, 15043), "\xE2\x96\x81Hello");
    CHECK_STR(rosa_tokenizer_piece(q, 1879), "\xC4\xA0world");
    CHECK_STR(rosa_tokenizer_piece(q, 151645), "<|im_end|>");
    CHECK(rosa_tokenizer_piece(q, 151646) == NULL);
    CHECK(rosa_tokenizer_piece(l, -5) == NULL);

    /* added tokens are matched in the raw text; llama's normalizer then runs
     * on each segment (hence "▁hi") */
    CHECK_ENCODE(l, "<s>hi</s>", 0, 1, 7251, 2);
    CHECK_ENCODE(l, "<s>hi</s>", 1, 1, 1, 7251, 2);
    CHECK_DECODE(l, 0, "<s><s> hi</s>", 1, 1, 7251, 2);
    CHECK_DECODE(l, 1, "hi", 1, 1, 7251, 2);
    CHECK_DECODE(l, 0, "<s> Hello world", 1, 15043, 3186);
    CHECK_DECODE(l, 1, "Hello world", 1, 15043, 3186);
    CHECK_ENCODE(q, "<|im_start|>user\nhi<|im_end|>", 1, 151644, 872, 198, 6023, 151645);
    CHECK_DECODE(q, 0, "<|im_start|>user\nhi<|im_end|>", 151644, 872, 198, 6023, 151645);
    CHECK_DECODE(q, 1, "user\nhi", 151644, 872, 198, 6023, 151645);
    rosa_tokenizer_free(l);
    rosa_tokenizer_free(q);
}

/* The empty text: no ids, or the post-processor's alone. */
TEST(tokenizer_empty_text) {
    rosa_tokenizer *l = load_shared("tokenizers/llama2");
    REQUIRE(l);
    int32_t *ids = NULL;
    size_t n = 99;
    CHECK_EQ_INT(rosa_tokenizer_encode(l, "", 0, 0, &ids, &n), 0);
    CHECK(ids != NULL);
    CHECK_EQ_INT(n, 0);
    free(ids);
    CHECK_EQ_INT(rosa_tokenizer_encode(l, NULL, 0, 1, &ids, &n), 0);
    CHECK(n == 1 && ids && ids[0] == 1);
    free(ids);
    char *s = rosa_tokenizer_decode(l, NULL, 0, 0, &n);
    CHECK(s && n == 0 && s[0] == 0);
    free(s);
    rosa_tokenizer_free(l);
}

/* A tokenizer.json given as a file: no tokenizer_config.json, so BOS is the
 * template's and there is no EOS. */
TEST(tokenizer_file_path_uses_template) {
    rosa_tokenizer *l = load_shared("tokenizers/llama2/tokenizer.json");
    REQUIRE(l);
    CHECK_EQ_INT(rosa_tokenizer_bos_id(l), 1);
    CHECK_EQ_INT(rosa_tokenizer_eos_id(l), -1);
    CHECK_ENCODE(l, "Hello", 1, 1, 15043);
    rosa_tokenizer_free(l);
}

/* ------------------------------------------------------------- streaming */

TEST(tokenizer_stream_multibyte) {
    rosa_tokenizer *l = load_shared("tokenizers/llama2");
    rosa_tokenizer *q = load_shared("tokenizers/qwen2");
    if (!l || !q) {
        rosa_tokenizer_free(l);
        rosa_tokenizer_free(q);
        return;
    }
    /* llama2: the emoji is 4 byte-fallback tokens; only the whole character
     * may come out */
    const char *text = "I \xF0\x9F\xA6\x99 llamas: \xE2\x82\xAC 5";
    size_t n;
    int32_t *ids = check_encode(l, text, strlen(text), 1, NULL, 0, &n, __FILE__, __LINE__);
    REQUIRE(ids);
    int held = check_stream(l, ids, n, 1, __FILE__, __LINE__);
    CHECK(held >= 3); /* at least the first three bytes of the emoji were held */
    check_stream(l, ids, n, 0, __FILE__, __LINE__);
    free(ids);
    {
        const int32_t e[] = {243, 162, 169, 156}; /* <0xF0><0x9F><0xA6><0x99> */
        rosa_detok *d = rosa_detok_new(l, 0);
        REQUIRE(d);
        size_t len;
        for (int i = 0; i < 3; i++) {
            const char *p = rosa_detok_push(d, e[i], &len);
            CHECK(p && len == 0);
        }
        const char *p = rosa_detok_push(d, e[3], &len);
        CHECK(p && len == 0); /* the run of byte tokens is still open */
        p = rosa_detok_push(d, 29871, &len); /* "▁" */
        CHECK(p && len == 5 && memcmp(p, "\xF0\x9F\xA6\x99 ", 5) == 0);
        p = rosa_detok_finish(d, &len);
        CHECK(p && len == 0);
        rosa_detok_free(d);
    }
    /* only the very first token loses its leading space (Strip(" ", 1, 0)) */
    {
        rosa_detok *d = rosa_detok_new(l, 1);
        REQUIRE(d);
        const int32_t e[] = {1, 15043, 3186, 15043};
        const char *want[] = {"", "Hello", " world", " Hello"};
        for (int i = 0; i < 4; i++) {
            size_t len;
            const char *p = rosa_detok_push(d, e[i], &len);
            CHECK(p && len == strlen(want[i]) && memcmp(p, want[i], len) == 0);
        }
        rosa_detok_free(d);
    }
    /* qwen2: the emoji is split across byte-level tokens */
    {
        const int32_t e[] = {11162, 99, 247}; /* " " + 🦙 over three tokens */
        rosa_detok *d = rosa_detok_new(q, 0);
        REQUIRE(d);
        size_t len;
        const char *p = rosa_detok_push(d, e[0], &len);
        CHECK(p && len == 1 && p[0] == ' ');
        p = rosa_detok_push(d, e[1], &len);
        CHECK(p && len == 0);
        p = rosa_detok_push(d, e[2], &len);
        CHECK(p && len == 4 && memcmp(p, "\xF0\x9F\xA6\x99", 4) == 0);
        /* an incomplete tail comes out as U+FFFD at the end */
        p = rosa_detok_push(d, e[0], &len);
        CHECK(p && len == 1);
        p = rosa_detok_finish(d, &len);
        CHECK(p && len == 3 && memcmp(p, "\xEF\xBF\xBD", 3) == 0);
        rosa_detok_free(d);
    }
    CHECK_DECODE(q, 0, " \xEF\xBF\xBD", 11162);
    text = "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 ok";
    ids = check_encode(q, text, strlen(text), 1, NULL, 0, &n, __FILE__, __LINE__);
    if (ids) check_stream(q, ids, n, 0, __FILE__, __LINE__);
    free(ids);
    /* invalid ids */
    rosa_detok *d = rosa_detok_new(q, 0);
    REQUIRE(d);
    size_t len;
    CHECK(rosa_detok_push(d, 151646, &len) == NULL);
    CHECK_ERROR_HAS("151646");
    CHECK(rosa_detok_push(d, -1, &len) == NULL);
    rosa_detok_free(d);
    const int32_t bad[] = {9707, 999999};
    CHECK(rosa_tokenizer_decode(q, bad, 2, 0, NULL) == NULL);
    CHECK_ERROR_HAS("999999");
    rosa_tokenizer_free(l);
    rosa_tokenizer_free(q);
}

/* ------------------------------------------------------------- bad input */

TEST(tokenizer_invalid_utf8) {
    rosa_tokenizer *q = load_shared("tokenizers/qwen2");
    REQUIRE(q);
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    static const struct {
        const char *s;
        size_t len, at;
    } bad[] = {
        {"a\xFF" "b", 3, 1},          /* not a UTF-8 byte */
        {"ok \xC3", 4, 3},            /* truncated at the end */
        {"\xC0\xAF", 2, 0},           /* overlong */
        {"xy\xED\xA0\x80", 5, 2},     /* surrogate */
        {"\xF4\x90\x80\x80", 4, 0},   /* past U+10FFFF */
        {"abc\x80" "def", 7, 3},      /* stray continuation byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ_INT(rosa_tokenizer_encode(q, bad[i].s, bad[i].len, 0, &ids, &n), -1);
        char want[64];
        snprintf(want, sizeof want, "input is not valid UTF-8 at byte %zu", bad[i].at);
        CHECK_ERROR_HAS(want);
        CHECK(ids == NULL && n == 0);
    }
    rosa_tokenizer_free(q);
}

/* ------------------------------------------------------ malformed files */

typedef struct {
    char dir[64];
    char path[128];
} tmpfile_t;

static int write_tmp(tmpfile_t *f, const char *name, const char *content) {
    if (!f->dir[0]) {
        snprintf(f->dir, sizeof f->dir, "/tmp/rosa_tok_XXXXXX");
        if (!mkdtemp(f->dir)) return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    FILE *fp = fopen(f->path, "wb");
    if (!fp) return -1;
    fputs(content, fp);
    fclose(fp);
    return 0;
}

static void rm_tmp(tmpfile_t *f, const char *const *names, int n) {
    char p[192];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, names[i]);
        unlink(p);
    }
    if (f->dir[0]) rmdir(f->dir);
}

/* A tiny valid tokenizer; the cases below break it one way at a time. */
#define TINY_HEAD "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true}],"
#define TINY_MODEL(vocab, merges)                                                          \
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":" vocab ",\"merges\":" merges "}"
#define TINY_VOCAB "{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3}"

TEST(tokenizer_bad_files) {
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"this is not json", "invalid JSON"},
        {"[1, 2, 3]", "not a JSON object"},
        {"{\"version\":\"1.0\"}", "missing field \"model\""},
        {TINY_HEAD "\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "unsupported model type \"Unigram\""},
        {TINY_HEAD "\"model\":{\"type\":\"BPE\",\"vocab\":[1,2],\"merges\":[]}}", "model.vocab\" must be an object"},
        {TINY_HEAD TINY_MODEL("{\"<unk>\":0,\"a\":-1}", "[]") "}", "out of range"},
        {TINY_HEAD TINY_MODEL("{\"<unk>\":0,\"a\":99999999999}", "[]") "}", "out of range"},
        {TINY_HEAD TINY_MODEL("{\"<unk>\":0,\"a\":1.5}", "[]") "}", "must be an integer"},
        {TINY_HEAD TINY_MODEL("{\"<unk>\":0,\"a\":1,\"b\":1}", "[]") "}", "duplicate id 1"},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[\"a c\"]") "}", "token \"c\" is not in the vocabulary"},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[\"b a\"]") "}", "merged token \"ba\" is not in the vocabulary"},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[\"a b c\"]") "}", "model.merges[0]"},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[[\"a\"]]") "}", "model.merges[0]"},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "{}") "}", "model.merges\" must be an array"},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[]") ",\"normalizer\":{\"type\":\"BertNormalizer\"}}",
         "unsupported normalizer type \"BertNormalizer\""},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[]") ",\"pre_tokenizer\":{\"type\":\"Whitespace\"}}",
         "unsupported pre_tokenizer type \"Whitespace\""},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[]") ",\"decoder\":{\"type\":\"WordPiece\"}}",
         "unsupported decoder type \"WordPiece\""},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[]") ",\"post_processor\":{\"type\":\"Weird\"}}",
         "unsupported post_processor type \"Weird\""},
        {TINY_HEAD TINY_MODEL(TINY_VOCAB, "[]") ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}",
         "cannot compile regex"},
        {"{\"added_tokens\":[{\"content\":\"a\"}]," TINY_MODEL("{\"a\":1}", "[]") "}",
         "missing field \"id\""},
        {"{\"added_tokens\":{}," TINY_MODEL(TINY_VOCAB, "[]") "}", "added_tokens\" must be an array"},
        /* HF numbers "x" 2 (the vocabulary's size), the id of "x2" */
        {"{\"added_tokens\":[{\"id\":3,\"content\":\"x\"}]," TINY_MODEL("{\"a\":0,\"x2\":2}", "[]") "}",
         "is already the id of"},
    };
    tmpfile_t f = {{0}, {0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        REQUIRE(write_tmp(&f, "tokenizer.json", cases[i].json) == 0);
        rosa_clear_error();
        rosa_tokenizer *t = rosa_tokenizer_load(f.path);
        CHECK_MSG(t == NULL, "case %zu loaded", i);
        rosa_tokenizer_free(t);
        CHECK_ERROR_HAS(f.path);
        CHECK_ERROR_HAS(cases[i].needle);
    }
    /* the tiny tokenizer itself loads and works */
    REQUIRE(write_tmp(&f, "tokenizer.json", TINY_HEAD TINY_MODEL(TINY_VOCAB, "[\"a b\"]") "}") == 0);
    rosa_tokenizer *t = rosa_tokenizer_load(f.path);
    CHECK_MSG(t != NULL, "tiny tokenizer: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "abba", 0, 3, 2, 1);
        CHECK_ENCODE(t, "xab", 0, 0, 3); /* unknown character: unk */
        CHECK_DECODE(t, 0, "<unk> ab b", 0, 3, 2); /* no decoder: joined by spaces */
        rosa_tokenizer_free(t);
    }
    /* a bad tokenizer_config.json names its own file */
    REQUIRE(write_tmp(&f, "tokenizer_config.json", "{\"bos_token\": 5}") == 0);
    t = rosa_tokenizer_load(f.dir);
    CHECK(t == NULL);
    CHECK_ERROR_HAS("tokenizer_config.json");
    CHECK_ERROR_HAS("bos_token");
    rosa_tokenizer_free(t);
    REQUIRE(write_tmp(&f, "tokenizer_config.json", "{not json") == 0);
    t = rosa_tokenizer_load(f.dir);
    CHECK(t == NULL);
    CHECK_ERROR_HAS("tokenizer_config.json");
    rosa_tokenizer_free(t);
    /* a directory without tokenizer.json */
    unlink(f.path);
    char tj[192];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", f.dir);
    unlink(tj);
    t = rosa_tokenizer_load(f.dir);
    CHECK(t == NULL);
    CHECK_ERROR_HAS(f.dir);
    CHECK_ERROR_HAS("no tokenizer.json");
    rosa_tokenizer_free(t);
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json"};
    rm_tmp(&f, names, 2);
    /* nonexistent paths */
    CHECK(rosa_tokenizer_load("/nonexistent/rosa/tokenizer.json") == NULL);
    CHECK_ERROR_HAS("/nonexistent/rosa/tokenizer.json");
    CHECK(rosa_tokenizer_load(NULL) == NULL);
}

/* ------------------------------------------- configuration (BOS/EOS) rules */

static int make_dir_with(tmpfile_t *f, const char *tok_json_rel, const char *config) {
    if (write_tmp(f, "tokenizer_config.json", config) < 0) return -1;
    char link[192];
    snprintf(link, sizeof link, "%s/tokenizer.json", f->dir);
    unlink(link);
    char target[4096];
    const char *rel = shared_path(tok_json_rel);
    if (rel[0] != '/') {
        if (!getcwd(target, sizeof target - strlen(rel) - 2)) return -1;
        strcat(target, "/");
        strcat(target, rel);
    } else {
        snprintf(target, sizeof target, "%s", rel);
    }
    return symlink(target, link);
}

TEST(tokenizer_config_bos_eos) {
    tmpfile_t f = {{0}, {0}};
    /* LlamaTokenizerFast: the flags decide */
    REQUIRE(make_dir_with(&f, "tokenizers/llama2/tokenizer.json",
                          "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"add_bos_token\":false,"
                          "\"add_eos_token\":true,\"bos_token\":\"<s>\",\"eos_token\":"
                          "{\"content\":\"</s>\",\"lstrip\":false}}") == 0);
    rosa_tokenizer *t = rosa_tokenizer_load(f.dir);
    CHECK_MSG(t != NULL, "%s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello", 1, 15043, 2);
        CHECK_EQ_INT(rosa_tokenizer_bos_id(t), 1);
        CHECK_EQ_INT(rosa_tokenizer_eos_id(t), 2);
        rosa_tokenizer_free(t);
    }
    /* another class: tokenizer.json's template decides, flags ignored */
    REQUIRE(make_dir_with(&f, "tokenizers/llama2/tokenizer.json",
                          "{\"tokenizer_class\":\"PreTrainedTokenizerFast\",\"add_bos_token\":false,"
                          "\"add_eos_token\":true,\"eos_token\":\"</s>\"}") == 0);
    t = rosa_tokenizer_load(f.dir);
    CHECK_MSG(t != NULL, "%s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello", 1, 1, 15043);
        CHECK_EQ_INT(rosa_tokenizer_bos_id(t), 1); /* from the template */
        CHECK_EQ_INT(rosa_tokenizer_eos_id(t), 2);
        rosa_tokenizer_free(t);
    }
    /* Llama class, keys absent: transformers' defaults (BOS, no EOS) */
    REQUIRE(make_dir_with(&f, "tokenizers/qwen2/tokenizer.json",
                          "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"bos_token\":\"<|endoftext|>\","
                          "\"eos_token\":\"<|im_end|>\"}") == 0);
    t = rosa_tokenizer_load(f.dir);
    CHECK_MSG(t != NULL, "%s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello", 1, 151643, 9707);
        rosa_tokenizer_free(t);
    }
    /* transformers' clean_up_tokenization_spaces */
    REQUIRE(make_dir_with(&f, "tokenizers/qwen2/tokenizer.json",
                          "{\"tokenizer_class\":\"Qwen2Tokenizer\",\"clean_up_tokenization_spaces\":true,"
                          "\"bos_token\":null,\"eos_token\":\"<|im_end|>\"}") == 0);
    t = rosa_tokenizer_load(f.dir);
    CHECK_MSG(t != NULL, "%s", rosa_last_error());
    if (t) {
        const char *s = "Hello , world . It 's ok ! Is n't it ?";
        size_t n;
        int32_t *ids = check_encode(t, s, strlen(s), 1, NULL, 0, &n, __FILE__, __LINE__);
        if (ids) {
            const char *want = "Hello, world. It's ok! Isn't it?";
            check_decode(t, ids, n, 0, want, strlen(want), __FILE__, __LINE__);
            check_stream(t, ids, n, 0, __FILE__, __LINE__);
        }
        free(ids);
        CHECK_EQ_INT(rosa_tokenizer_bos_id(t), -1);
        CHECK_EQ_INT(rosa_tokenizer_eos_id(t), 151645);
        rosa_tokenizer_free(t);
    }
    /* add_bos_token with no bos_token is refused */
    REQUIRE(make_dir_with(&f, "tokenizers/qwen2/tokenizer.json",
                          "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"add_bos_token\":true,"
                          "\"bos_token\":null}") == 0);
    t = rosa_tokenizer_load(f.dir);
    CHECK(t == NULL);
    CHECK_ERROR_HAS("add_bos_token");
    rosa_tokenizer_free(t);
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json"};
    rm_tmp(&f, names, 2);
}

/* ------------------------------------------ variants of the shared files */

/* Writes a modified copy of a shared tokenizer.json. */
typedef void (*edit_fn)(cJSON *root);

static rosa_tokenizer *load_variant(tmpfile_t *f, const char *rel, edit_fn edit) {
    char *text = rosa_read_file(shared_path(rel), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root) return NULL;
    edit(root);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    int rc = out ? write_tmp(f, "tokenizer.json", out) : -1;
    free(out);
    if (rc < 0) return NULL;
    rosa_tokenizer *t = rosa_tokenizer_load(f->path);
    unlink(f->path);
    rmdir(f->dir);
    f->dir[0] = 0;
    return t;
}

static void replace_item(cJSON *o, const char *key, const char *json) {
    cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_Parse(json));
}

static void edit_metaspace(cJSON *r) {
    replace_item(r, "normalizer", "null");
    replace_item(r, "pre_tokenizer",
                 "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":"
                 "\"first\",\"split\":false}");
    replace_item(r, "decoder",
                 "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":"
                 "\"first\",\"split\":false}");
}

static void edit_gpt2(cJSON *r) {
    replace_item(r, "pre_tokenizer",
                 "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                 "\"use_regex\":true}");
}

static void edit_ignore_merges(cJSON *r) {
    replace_item(cJSON_GetObjectItem(r, "model"), "ignore_merges", "true");
}

static void edit_added(cJSON *r) {
    cJSON *a = cJSON_GetObjectItem(r, "added_tokens");
    cJSON_AddItemToArray(a, cJSON_Parse("{\"id\":151646,\"content\":\"<tool>\",\"single_word\":false,"
                                        "\"lstrip\":true,\"rstrip\":true,\"normalized\":false,"
                                        "\"special\":true}"));
    cJSON_AddItemToArray(a, cJSON_Parse("{\"id\":151647,\"content\":\"foo\",\"single_word\":true,"
                                        "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
                                        "\"special\":false}"));
    cJSON_AddItemToArray(a, cJSON_Parse("{\"id\":151648,\"content\":\"[X]\",\"single_word\":false,"
                                        "\"lstrip\":false,\"rstrip\":false,\"normalized\":true,"
                                        "\"special\":false}"));
}

static void edit_unk(cJSON *r) {
    cJSON *m = cJSON_GetObjectItem(r, "model");
    replace_item(m, "byte_fallback", "false");
    replace_item(m, "fuse_unk", "true");
}

static void edit_merges_as_arrays(cJSON *r) {
    cJSON *m = cJSON_GetObjectItem(r, "model");
    cJSON *old = cJSON_GetObjectItem(m, "merges"), *arr = cJSON_CreateArray(), *it;
    cJSON_ArrayForEach(it, old) {
        char *s = strdup(it->valuestring), *sp = strchr(s, ' ');
        *sp = 0;
        const char *pair[2] = {s, sp + 1};
        cJSON_AddItemToArray(arr, cJSON_CreateStringArray(pair, 2));
        free(s);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(m, "merges", arr);
}

/* Expected values made with Hugging Face tokenizers 0.23.2 on the same edits. */
TEST(tokenizer_variants_match_hf) {
    tmpfile_t f = {{0}, {0}};
    rosa_tokenizer *t = load_variant(&f, "tokenizers/llama2/tokenizer.json", edit_metaspace);
    CHECK_MSG(t != NULL, "metaspace: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello world", 0, 15043, 3186);
        CHECK_ENCODE(t, " Hello  world", 0, 15043, 29871, 3186);
        CHECK_ENCODE(t, "<s>Hi there</s> you", 0, 1, 18567, 727, 2, 366);
        CHECK_DECODE(t, 0, "<s>Hi there</s> you", 1, 18567, 727, 2, 366);
        CHECK_DECODE(t, 1, "Hi there you", 1, 18567, 727, 2, 366);
        CHECK_ENCODE(t, "\xF0\x9F\xA6\x99 ok", 0, 29871, 243, 162, 169, 156, 3431);
        CHECK_DECODE(t, 0, "<0xF0><0x9F><0xA6><0x99> ok", 29871, 243, 162, 169, 156, 3431);
        rosa_tokenizer_free(t);
    }
    t = load_variant(&f, "tokenizers/qwen2/tokenizer.json", edit_gpt2);
    CHECK_MSG(t != NULL, "gpt2: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello world", 0, 21927, 1879);
        CHECK_ENCODE(t, "It's 2024!  ok\n\nyes", 0, 1084, 594, 220, 17, 15, 17, 19, 0, 220, 5394,
                     198, 198, 9693);
        CHECK_ENCODE(t, "<|im_start|>x y", 0, 151644, 856, 379);
        CHECK_DECODE(t, 0, "<|im_start|> x y", 151644, 856, 379);
        rosa_tokenizer_free(t);
    }
    t = load_variant(&f, "tokenizers/qwen2/tokenizer.json", edit_ignore_merges);
    CHECK_MSG(t != NULL, "ignore_merges: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello world anticonstitutionnellement", 0, 9707, 1879, 3196, 1924, 10446,
                     8138, 986);
        rosa_tokenizer_free(t);
    }
    t = load_variant(&f, "tokenizers/qwen2/tokenizer.json", edit_added);
    CHECK_MSG(t != NULL, "added: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "a  <tool>  b", 0, 64, 151646, 65);
        CHECK_DECODE(t, 0, "a<tool>b", 64, 151646, 65);
        CHECK_DECODE(t, 1, "ab", 64, 151646, 65);
        CHECK_ENCODE(t, "foo food foo_ xfoo foo", 0, 7975, 3607, 15229, 62, 856, 7975, 220, 7975);
        CHECK_ENCODE(t, "a[X]b", 0, 64, 151647, 65); /* "foo" took the vocab's id */
        CHECK_EQ_INT(rosa_tokenizer_vocab_size(t), 151648);
        rosa_tokenizer_free(t);
    }
    t = load_variant(&f, "tokenizers/llama2/tokenizer.json", edit_unk);
    CHECK_MSG(t != NULL, "unk: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "a\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99" "b", 0, 263, 0, 29890);
        CHECK_DECODE(t, 0, "a<unk>b", 263, 0, 29890);
        rosa_tokenizer_free(t);
    }
    t = load_variant(&f, "tokenizers/llama2/tokenizer.json", edit_merges_as_arrays);
    CHECK_MSG(t != NULL, "merges as arrays: %s", rosa_last_error());
    if (t) {
        CHECK_ENCODE(t, "Hello world", 1, 1, 15043, 3186);
        rosa_tokenizer_free(t);
    }
}

/* ------------------------------------------------------- BPE internals */

/* The linear and the heap merge must agree (they are chosen by length). */
TEST(tokenizer_bpe_heap_matches_linear) {
    rosa_tokenizer *l = load_shared("tokenizers/llama2");
    rosa_tokenizer *q = load_shared("tokenizers/qwen2");
    if (!l || !q) {
        rosa_tokenizer_free(l);
        rosa_tokenizer_free(q);
        return;
    }
    static const char *const atoms[] = {"the", " ", "  ", "Hello", "\n", "aaaa", "ing", "'s",
                                        "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\xA6\x99", "1234", "..",
                                        "ab", "zz", "tion", "\t", "Q", "er", "re"};
    rosa_rng rng;
    rosa_rng_seed(&rng, 42);
    int saved = tok_bpe_heap_min;
    tok_bpe_no_cache = 1; /* else the second encode would read the first's results */
    for (int iter = 0; iter < 300; iter++) {
        char buf[512];
        size_t n = 0;
        int k = (int)(rosa_rng_next(&rng) % 40);
        for (int i = 0; i < k; i++) {
            const char *a = atoms[rosa_rng_next(&rng) % (sizeof atoms / sizeof *atoms)];
            memcpy(buf + n, a, strlen(a));
            n += strlen(a);
        }
        buf[n] = 0;
        for (int w = 0; w < 2; w++) {
            const rosa_tokenizer *t = w ? q : l;
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            tok_bpe_heap_min = 1 << 30;
            int ra = rosa_tokenizer_encode(t, buf, n, 0, &a, &na);
            tok_bpe_heap_min = 2;
            int rb = rosa_tokenizer_encode(t, buf, n, 0, &b, &nb);
            CHECK_MSG(ra == 0 && rb == 0 && ids_equal(a, na, b, nb), "linear != heap on \"%s\"", buf);
            free(a);
            free(b);
        }
    }
    tok_bpe_heap_min = saved;
    tok_bpe_no_cache = 0;
    rosa_tokenizer_free(l);
    rosa_tokenizer_free(q);
}

/* Concurrent encodes share the word cache; results must not change. */
TEST(tokenizer_threads) {
    rosa_tokenizer *q = load_shared("tokenizers/qwen2");
    REQUIRE(q);
    char *text = rosa_read_file(shared_path("tokenizers/qwen2/ggml-vocab-qwen2.gguf.inp"), NULL);
    REQUIRE(text);
    size_t len = strlen(text), n0;
    int32_t *ref = check_encode(q, text, len, 0, NULL, 0, &n0, __FILE__, __LINE__);
    int bad = 0;
#pragma omp parallel for reduction(+ : bad) num_threads(4)
    for (int i = 0; i < 64; i++) {
        int32_t *ids;
        size_t n;
        size_t cut = (size_t)i * 7 % 40; /* different texts, overlapping words */
        while (cut < len && ((unsigned char)text[cut] & 0xC0) == 0x80) cut++;
        if (rosa_tokenizer_encode(q, text + cut, len - cut, 0, &ids, &n) != 0) {
            bad++;
            continue;
        }
        if (cut == 0 && !ids_equal(ids, n, ref, n0)) bad++;
        free(ids);
    }
    CHECK_EQ_INT(bad, 0);
    free(ref);
    free(text);
    rosa_tokenizer_free(q);
}
