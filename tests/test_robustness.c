/* test_robustness.c: bad input never crashes rosa (issue 8; docs/robustness.md).
 *
 *   - every fuzz target's seed corpus, which holds every input the fuzzers
 *     ever found (fuzz/corpus/<target>/regress-*), replayed through the same
 *     harness, in a child process of this binary, under the suite's own
 *     sanitizers (make test-san);
 *   - one named test per crash found and fixed;
 *   - absurd sizes refused with a clear message before anything is
 *     allocated from them;
 *   - weight paths of a model directory cannot leave it, symbolic links
 *     resolved (the Hugging Face cache layout is allowed). */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "data/data.h"
#include "eval/eval.h"
#include "arch/config.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"
#include "peft/lora.h"
#include "peft/roae.h"
#include "data/data.h"
#include "core/util.h"

/* ------------------------------------------------------------ fuzz replay */

/* The harnesses of fuzz/, compiled in with their entry points renamed. */
#define LLVMFuzzerInitialize fuzz_init_tokenizer_codec
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_codec
#include "../fuzz/fuzz_tokenizer_codec.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerInitialize fuzz_init_data
#define LLVMFuzzerTestOneInput fuzz_one_data
#include "../fuzz/fuzz_data.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerInitialize fuzz_init_adapter
#define LLVMFuzzerTestOneInput fuzz_one_adapter
#include "../fuzz/fuzz_adapter.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_safetensors
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_config
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_tokenizer_load
#include "../fuzz/fuzz_tokenizer_load.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerInitialize fuzz_init_predictions
#define LLVMFuzzerTestOneInput fuzz_one_predictions
#include "../fuzz/fuzz_predictions.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_metrics
#include "../fuzz/fuzz_metrics.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_args
#include "../fuzz/fuzz_args.c"
#include "../cli/args.c" /* the option parser is the CLI's, outside librosa.a */
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_runconfig
#include "../fuzz/fuzz_runconfig.c"
#include "../cli/config_file.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerInitialize fuzz_init_checkpoint
#define LLVMFuzzerTestOneInput fuzz_one_checkpoint
#include "../fuzz/fuzz_checkpoint.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

typedef struct {
    const char *name;
    int (*init)(int *, char ***);
    int (*one)(const uint8_t *, size_t);
} fuzz_harness;

static const fuzz_harness harnesses[] = {
    {"safetensors", NULL, fuzz_one_safetensors},
    {"config", NULL, fuzz_one_config},
    {"tokenizer_load", NULL, fuzz_one_tokenizer_load},
    {"tokenizer_codec", fuzz_init_tokenizer_codec, fuzz_one_tokenizer_codec},
    {"data", fuzz_init_data, fuzz_one_data},
    {"adapter", fuzz_init_adapter, fuzz_one_adapter},
    {"predictions", fuzz_init_predictions, fuzz_one_predictions},
    {"metrics", NULL, fuzz_one_metrics},
    {"args", NULL, fuzz_one_args},
    {"runconfig", NULL, fuzz_one_runconfig},
    {"checkpoint", fuzz_init_checkpoint, fuzz_one_checkpoint},
};

/* With ROSA_FUZZ_REPLAY=<target> this binary replays every file of
 * fuzz/corpus/<target>/ through that harness and exits before main(): 0 when every input passed
 * (a broken property aborts, a sanitizer report exits non-zero). */
__attribute__((constructor)) static void fuzz_replay_main(void) {
    const char *target = getenv("ROSA_FUZZ_REPLAY");
    if (!target) return;
    const fuzz_harness *h = NULL;
    for (size_t i = 0; i < sizeof harnesses / sizeof harnesses[0]; i++)
        if (strcmp(harnesses[i].name, target) == 0) h = &harnesses[i];
    if (!h) {
        fprintf(stderr, "replay: unknown target %s\n", target);
        exit(2);
    }
    if (h->init) h->init(NULL, NULL);
    char dir[256], cmd[512];
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", target);
    snprintf(cmd, sizeof cmd, "ls %s", dir);
    FILE *ls = popen(cmd, "r");
    char name[256];
    int n = 0;
    while (ls && fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        size_t len;
        char *data = rosa_read_file(path, &len);
        if (!data) {
            fprintf(stderr, "replay: %s\n", rosa_last_error());
            exit(1);
        }
        fprintf(stderr, "replay: %s\n", path);
        h->one((const uint8_t *)data, len);
        free(data);
        n++;
    }
    if (ls) pclose(ls);
    printf("replayed %d inputs of %s\n", n, target);
    exit(n > 0 ? 0 : 1);
}

static void replay(const char *target) {
    char self[512], cmd[1024], *out = NULL;
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(k > 0);
    self[k] = 0;
    snprintf(cmd, sizeof cmd, "ROSA_SHARED=%s ROSA_FUZZ_REPLAY=%s %s", shared_path(""), target, self);
    int rc = run_capture(cmd, 1, &out);
    char expect[128];
    snprintf(expect, sizeof expect, "replayed ");
    CHECK_MSG(rc == 0 && strstr(out, expect), "replaying fuzz/corpus/%s: exit %d, last lines:\n%s", target, rc,
              strlen(out) > 3000 ? out + strlen(out) - 3000 : out);
    free(out);
}

TEST(fuzz_corpus_safetensors_replays_cleanly) { replay("safetensors"); }
TEST(fuzz_corpus_config_replays_cleanly) { replay("config"); }
TEST(fuzz_corpus_tokenizer_load_replays_cleanly) { replay("tokenizer_load"); }
TEST(fuzz_corpus_tokenizer_codec_replays_cleanly) { replay("tokenizer_codec"); }
TEST(fuzz_corpus_data_replays_cleanly) { replay("data"); }
TEST(fuzz_corpus_adapter_replays_cleanly) { replay("adapter"); }
TEST(fuzz_corpus_predictions_replays_cleanly) { replay("predictions"); }
TEST(fuzz_corpus_metrics_replays_cleanly) { replay("metrics"); }
TEST(fuzz_corpus_args_replays_cleanly) { replay("args"); }
TEST(fuzz_corpus_runconfig_replays_cleanly) { replay("runconfig"); }

/* Found by fuzz_args: --layers with an empty list ("[" or ",") was refused
 * but its parsed list leaked (LeakSanitizer, under make test-san). */
TEST(fuzz_regression_args_empty_layers_list) {
    const rosa_peft_method *lora = rosa_peft_find("lora", NULL);
    REQUIRE(lora);
    void *opts = rosa_peft_opts_new(lora, NULL);
    REQUIRE(opts);
    CHECK(rosa_peft_set_option(lora, opts, "layers", "[") < 0);
    CHECK_ERROR_HAS("--layers");
    CHECK(rosa_peft_set_option(lora, opts, "layers", "0,2") == 0);
    rosa_peft_opts_free(lora, opts);
}
TEST(fuzz_corpus_checkpoint_replays_cleanly) { replay("checkpoint"); }

/* ---------------------------------------------------------------- helpers */

static const char *rpath(const char *name) {
    static char root[64], bufs[8][512];
    static int k;
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/rosa-robust-XXXXXX");
        if (!mkdtemp(root)) snprintf(root, sizeof root, "/tmp");
    }
    char *b = bufs[k++ & 7];
    snprintf(b, 512, "%s/%s", root, name);
    return b;
}

static void put(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void put_text(const char *path, const char *s) { put(path, s, strlen(s)); }

/* A safetensors file in memory: 8-byte length, header, `data` zero bytes. */
static size_t st_buf(unsigned char *buf, size_t cap, const char *header, size_t data) {
    size_t h = strlen(header);
    if (8 + h + data > cap) return 0;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, 0, data);
    return 8 + h + data;
}

static int parse_st(const char *header, size_t data) {
    static unsigned char buf[1 << 16];
    size_t n = st_buf(buf, sizeof buf, header, data);
    st_set s = {0};
    int rc = st_parse(&s, buf, n, "t.safetensors", 0);
    st_set_close(&s);
    return rc;
}

/* ------------------------------------------------- crashes found by fuzzing */

/* fuzz_data (UBSan float-cast-overflow): a numeric "answer" beyond long long
 * was cast before its range was checked (src/data/records.c take_answer). */
TEST(fuzz_regression_data_answer_beyond_long_long) {
    const char *p = rpath("answers.jsonl");
    put_text(p, "{\"instruction\": \"a\", \"output\": \"b\", \"answer\": -3e20}\n"
                "{\"instruction\": \"a\", \"output\": \"b\", \"answer\": 1e300}\n"
                "{\"instruction\": \"a\", \"output\": \"b\", \"answer\": 12}\n");
    rosa_records r;
    REQUIRE(rosa_records_load(p, 0, &r) == 0);
    CHECK_STR(r.rec[0].answer, "-3e+20");
    CHECK_STR(r.rec[1].answer, "1.0000000000000001e+300");
    CHECK_STR(r.rec[2].answer, "12");
    rosa_records_free(&r);
}

/* fuzz_safetensors, fuzz_adapter (UBSan float-cast-overflow): data_offsets
 * beyond 2^64 were cast to size_t before the end of the data was checked
 * (src/io/safetensors.c parse_entry). */
TEST(fuzz_regression_safetensors_offsets_beyond_size_t) {
    CHECK(parse_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16184467440737095516]}}", 8) < 0);
    CHECK_ERROR_HAS("past the end of the data");
    CHECK(parse_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [1e308, 1e308]}}", 8) < 0);
    CHECK_ERROR_HAS("past the end of the data");
    CHECK(parse_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0.5, 8.5]}}", 16) < 0);
    CHECK_ERROR_HAS("invalid data_offsets");
    CHECK(parse_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8) == 0);
}

static int parse_config(const char *extra) {
    char j[2048];
    snprintf(j, sizeof j,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 16, \"hidden_size\": 8, "
             "\"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2%s}", extra);
    rosa_config c;
    return rosa_config_parse(j, strlen(j), "config.json", &c);
}

/* fuzz_config (property: an accepted config holds usable floats): an
 * rms_norm_eps that rounds to 0 as a float, a rope_theta beyond FLT_MAX and
 * llama3 frequency factors that round to 0 or to each other were accepted
 * (src/io/config.c). */
TEST(fuzz_regression_config_values_that_do_not_fit_a_float) {
    CHECK(parse_config(", \"rms_norm_eps\": 1e-50") < 0);
    CHECK_ERROR_HAS("rms_norm_eps");
    CHECK(parse_config(", \"rope_theta\": 1e39") < 0);
    CHECK_ERROR_HAS("rope_theta");
    const char *rs = ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"original_max_position_embeddings\": 8192, "
                     "\"low_freq_factor\": %s, \"high_freq_factor\": %s}";
    char extra[512];
    snprintf(extra, sizeof extra, rs, "1e-300", "4");
    CHECK(parse_config(extra) < 0);
    CHECK_ERROR_HAS("low_freq_factor");
    snprintf(extra, sizeof extra, rs, "1", "1.00000001");
    CHECK(parse_config(extra) < 0);
    snprintf(extra, sizeof extra, rs, "1", "1e300");
    CHECK(parse_config(extra) < 0);
    snprintf(extra, sizeof extra, rs, "1", "4");
    CHECK(parse_config(extra) == 0);
    CHECK(parse_config(", \"rms_norm_eps\": 1e-30, \"rope_theta\": 1e30") == 0);
}

/* fuzz_config (property: an accepted config respects the documented limits,
 * 160 k executions): head_dim was range-checked only when given; its default
 * hidden_size / num_attention_heads could reach 65536 (src/io/config.c). */
TEST(fuzz_regression_config_default_head_dim_is_bounded) {
    const char *j = "{\"architectures\": [\"MistralForCausalLM\"], \"vocab_size\": 16, \"hidden_size\": 5218, "
                    "\"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 1}";
    rosa_config c;
    CHECK(rosa_config_parse(j, strlen(j), "config.json", &c) < 0);
    CHECK_ERROR_HAS("head_dim 5218 (hidden_size / num_attention_heads) is out of range");
}

static const char *tiny_config_json =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 16, \"hidden_size\": 8, \"intermediate_size\": 12,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1}";

/* An adapter directory: adapter_config.json and a safetensors file of `data`
 * zero bytes with the given header. */
static const char *adapter_dir(const char *name, const char *config, const char *st_header, size_t data) {
    const char *dir = rpath(name);
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    put_text(p, config);
    static unsigned char buf[1 << 16];
    size_t n = st_buf(buf, sizeof buf, st_header, data);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    put(p, buf, n);
    return dir;
}

/* fuzz_adapter (property: save + load gives the same adapter): a
 * lora_alpha or alpha beyond FLT_MAX became inf, which the writer spells
 * "inf", invalid JSON (src/train/adapter.c parse_lora_config,
 * parse_roae_config). */
TEST(fuzz_regression_adapter_alpha_beyond_float) {
    rosa_config c;
    REQUIRE(rosa_config_parse(tiny_config_json, strlen(tiny_config_json), "config.json", &c) == 0);
    const char *dir = adapter_dir("alpha", "{\"peft_type\": \"LORA\", \"r\": 1, \"lora_alpha\": 1e39, "
                                           "\"target_modules\": [\"q_proj\"]}", "{}", 0);
    CHECK(rosa_adapter_load(dir, &c) == NULL);
    CHECK_ERROR_HAS("\"lora_alpha\" 1e+39 does not fit a float");
    dir = adapter_dir("ralpha", "{\"peft_type\": \"ROSA\", \"r\": 1, \"alpha\": -1e300}", "{}", 0);
    CHECK(rosa_adapter_load(dir, &c) == NULL);
    CHECK_ERROR_HAS("\"alpha\" -1e+300 does not fit a float");
}

/* fuzz_predictions (UBSan float-cast-overflow): an "index" beyond int was
 * cast before any check (src/eval/eval.c jint); it is now clamped, so the
 * line is refused as an index past the test file. */
TEST(fuzz_regression_predictions_index_beyond_int) {
    const char *dir = rpath("evaltasks");
    char p[600];
    snprintf(p, sizeof p, "%s/boolq", dir);
    run_shellf(NULL, "mkdir -p %s", p);
    snprintf(p, sizeof p, "%s/boolq/test.json", dir);
    put_text(p, "[{\"instruction\": \"Q? Answer format: true/false\", \"output\": \"x\", \"answer\": \"true\"}]");
    rosa_task_list known = {0};
    REQUIRE(rosa_tasks_add_list(&known, "boolq", dir) == 0);
    const char *pred = rpath("preds.jsonl");
    put_text(pred, "{\"task\": \"boolq\", \"index\": 184467440737095516162, \"response\": \"true\"}\n");
    rosa_eval_report rep;
    CHECK(rosa_eval_score_file(pred, &known, NULL, &rep) < 0);
    CHECK_ERROR_HAS("index 2147483647 is past the 1 records");
    put_text(pred, "{\"task\": \"boolq\", \"index\": -1e300, \"response\": \"true\"}\n");
    CHECK(rosa_eval_score_file(pred, &known, NULL, &rep) < 0);
    CHECK_ERROR_HAS("has no label");
    put_text(pred, "{\"task\": \"boolq\", \"index\": 0, \"response\": \"true\"}\n");
    REQUIRE(rosa_eval_score_file(pred, &known, NULL, &rep) == 0);
    CHECK(rep.n == 1 && rep.r[0].correct == 1);
    rosa_eval_report_free(&rep);
    rosa_task_list_free(&known);
}

/* fuzz_tokenizer_load (clang UBSan, 28 k executions): a word that encodes to
 * no ids (characters outside the vocabulary, no unk, no byte fallback) was
 * put in the word cache with memcpy(NULL + 0, ...) (src/tokenizer/bpe.c
 * cache_put). */
TEST(fuzz_regression_tokenizer_word_without_ids) {
    const char *dir = rpath("noids");
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    put_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}}");
    rosa_tokenizer *tok = rosa_tokenizer_load(dir);
    REQUIRE(tok);
    for (int k = 0; k < 2; k++) { /* the second time from the cache */
        int32_t *ids = NULL;
        size_t n = 99;
        CHECK(rosa_tokenizer_encode(tok, "xyz", 3, 0, &ids, &n) == 0);
        CHECK_EQ_INT(n, 0);
        free(ids);
        CHECK(rosa_tokenizer_encode(tok, "ab", 2, 0, &ids, &n) == 0);
        CHECK_EQ_INT(n, 2);
        free(ids);
    }
    rosa_tokenizer_free(tok);
}

/* ------------------------------------------------ limits before allocation */

/* A rank the tensor file cannot back is refused before the table's values are
 * allocated (here 2^43 floats, 32 TiB, for a 100-byte file: under ASan such
 * an allocation would abort the test). */
TEST(limits_adapter_rank_refused_before_allocation) {
    const char *big = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 32000, \"hidden_size\": 65536,"
                      " \"intermediate_size\": 65536, \"num_hidden_layers\": 1024, \"num_attention_heads\": 512}";
    rosa_config c;
    REQUIRE(rosa_config_parse(big, strlen(big), "config.json", &c) == 0);
    const char *dir = adapter_dir("rank", "{\"peft_type\": \"LORA\", \"r\": 65536, \"target_modules\": [\"q_proj\"]}",
                                  "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    CHECK(rosa_adapter_load(dir, &c) == NULL);
    CHECK_ERROR_HAS("adapter_config.json: the adapter has 8796093022208 values but adapter_model.safetensors is only");
    dir = adapter_dir("rank2", "{\"peft_type\": \"ROSA\", \"r\": 65536}", "{}", 0);
    CHECK(rosa_adapter_load(dir, &c) == NULL);
    CHECK_ERROR_HAS("values but adapter_model.safetensors is only");
}

TEST(limits_absurd_config_sizes_are_refused) {
    static const char *const fields[][2] = {
        {"vocab_size", "1e9"}, {"hidden_size", "1000000"}, {"intermediate_size", "100000000"},
        {"num_hidden_layers", "100000"}, {"num_attention_heads", "100000"}, {"num_key_value_heads", "100000"},
        {"max_position_embeddings", "1e10"}, {"head_dim", "1000000"}, {"sliding_window", "1e12"},
        {"bos_token_id", "1e12"}, {"eos_token_id", "1e12"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char extra[256], j[2048];
        snprintf(extra, sizeof extra, "\"%s\": %s", fields[i][0], fields[i][1]);
        /* first, as cJSON finds the first of two equal keys */
        snprintf(j, sizeof j,
                 "{\"%s\": %s, \"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 16, \"hidden_size\": 8, "
                 "\"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
                 fields[i][0], fields[i][1]);
        rosa_config c;
        CHECK_MSG(rosa_config_parse(j, strlen(j), "config.json", &c) < 0, "%s accepted", extra);
        CHECK_MSG(strstr(rosa_last_error(), fields[i][0]) && strstr(rosa_last_error(), "config.json"),
                  "%s: error \"%s\" does not name the field", extra, rosa_last_error());
    }
    CHECK(parse_config(", \"eos_token_id\": [1,2,3,4,5,6,7,8,9]") < 0);
    CHECK_ERROR_HAS("more than 8");
}

TEST(limits_absurd_safetensors_headers_are_refused) {
    /* more tensors than any model has */
    rosa_buf h = {0};
    rosa_buf_append(&h, "{", 1);
    for (int i = 0; i <= 100000; i++) {
        char e[96];
        int n = snprintf(e, sizeof e, "%s\"t%d\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [0, 0]}",
                         i ? ", " : "", i);
        rosa_buf_append(&h, e, (size_t)n);
    }
    rosa_buf_append(&h, "}", 1);
    unsigned char *buf = malloc(8 + h.len);
    REQUIRE(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.data, h.len);
    st_set s = {0};
    CHECK(st_parse(&s, buf, 8 + h.len, "many.safetensors", 0) < 0);
    CHECK_ERROR_HAS("too many tensors (100001)");
    st_set_close(&s);
    free(buf);
    rosa_buf_free(&h);
    /* a shape of 2^60 elements is only compared with the data, never allocated */
    CHECK(parse_st("{\"a\": {\"dtype\": \"U8\", \"shape\": [1099511627776, 1048576], \"data_offsets\": [0, 8]}}", 8) < 0);
    CHECK_ERROR_HAS("needs 1152921504606846976");
    CHECK(parse_st("{\"a\": {\"dtype\": \"U8\", \"shape\": [1e300], \"data_offsets\": [0, 8]}}", 8) < 0);
    CHECK_ERROR_HAS("shape[0]");
    CHECK(parse_st("{\"a\": {\"dtype\": \"U8\", \"shape\": [1,2,3,4,5,6,7,8,9], \"data_offsets\": [0, 8]}}", 8) < 0);
    CHECK_ERROR_HAS("9 dimensions");
}

/* A tokenizer.json past 1 GiB is refused from its size (a sparse file: nothing
 * is read); an id of a billion is refused before the id tables are sized. */
TEST(limits_absurd_tokenizer_files_are_refused) {
    const char *dir = rpath("bigtok");
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    CHECK(ftruncate(fd, (off_t)3 << 30) == 0);
    close(fd);
    double t0 = rosa_now();
    CHECK(rosa_tokenizer_load(dir) == NULL);
    CHECK_ERROR_HAS("file too large");
    CHECK(rosa_now() - t0 < 1.0);
    put_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1000000000}, \"merges\": []}}");
    CHECK(rosa_tokenizer_load(dir) == NULL);
    CHECK_ERROR_HAS("out of range");
}

/* --------------------------------------------------- weight paths and links */

/* A model directory with stories260K's config and tokenizer and its weights
 * as one shard named by an index (the shard file itself is placed by the
 * caller). */
static const char *sharded_model(const char *name, const char *shard_name) {
    const char *dir = rpath(name);
    run_shellf(NULL, "rm -rf %s && mkdir -p %s && cp %s %s %s %s/", dir, dir, shared_path("models/stories260K/config.json"),
       shared_path("models/stories260K/tokenizer.json"), shared_path("models/stories260K/tokenizer_config.json"), dir);
    char p[700], idx[700];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    snprintf(idx, sizeof idx, "{\"weight_map\": {\"model.norm.weight\": \"%s\"}}", shard_name);
    put_text(p, idx);
    return dir;
}

static void expect_refused(const char *dir, const char *needle) {
    rosa_model *m = rosa_model_load(dir);
    CHECK_MSG(m == NULL, "%s loaded", dir);
    CHECK_MSG(strstr(rosa_last_error(), needle), "%s: error \"%s\" does not mention \"%s\"", dir, rosa_last_error(),
              needle);
    rosa_model_free(m);
}

static void expect_loads(const char *dir) {
    rosa_model *m = rosa_model_load(dir);
    CHECK_MSG(m != NULL, "%s: %s", dir, rosa_last_error());
    rosa_model_free(m);
}

/* The absolute path of a file of the shared data (links must not depend on the cwd). */
static const char *shared_abs(const char *rel, char *buf) {
    if (!realpath(shared_path(rel), buf)) snprintf(buf, 4096, "%s", shared_path(rel));
    return buf;
}

TEST(weight_paths_cannot_leave_the_model_directory) {
    char wbuf[4096];
    const char *weights = shared_abs("models/stories260K/model.safetensors", wbuf);
    /* a shard that is a link to a file outside */
    const char *d = sharded_model("out-link", "shard.safetensors");
    run_shellf(NULL, "ln -s %s %s/shard.safetensors", weights, d);
    expect_refused(d, "outside the model directory");
    /* a shard in a linked directory that is outside */
    d = sharded_model("out-dirlink", "sub/shard.safetensors");
    run_shellf(NULL, "mkdir -p %s/elsewhere && cp %s %s/elsewhere/shard.safetensors && ln -s %s/elsewhere %s/sub", rpath(""), weights,
       rpath(""), rpath(""), d);
    expect_refused(d, "outside the model directory");
    /* names: absolute, "..", empty */
    d = sharded_model("dotdot", "sub/../shard.safetensors");
    expect_refused(d, "points outside the model directory");
    d = sharded_model("abs", "/etc/hostname");
    expect_refused(d, "points outside the model directory");
    d = sharded_model("empty", "");
    expect_refused(d, "points outside the model directory");
    /* model.safetensors itself linked outside */
    d = rpath("single-out");
    run_shellf(NULL, "rm -rf %s && mkdir -p %s && cp %s %s && ln -s %s %s/model.safetensors", d, d,
       shared_path("models/stories260K/config.json"), d, weights, d);
    expect_refused(d, "outside the model directory");
    /* a FIFO is refused at once, not waited on */
    d = sharded_model("fifo", "shard.safetensors");
    run_shellf(NULL, "mkfifo %s/shard.safetensors", d);
    double t0 = rosa_now();
    expect_refused(d, "not a regular file");
    CHECK(rosa_now() - t0 < 2.0);
    /* links that stay inside are fine, and "./" prefixes too */
    d = sharded_model("in-link", "./shard.safetensors");
    run_shellf(NULL, "mkdir -p %s/real && cp %s %s/real/w.safetensors && ln -s real/w.safetensors %s/shard.safetensors", d, weights, d,
       d);
    expect_loads(d);
    /* the model directory reached through a link */
    run_shellf(NULL, "ln -sfn %s %s", d, rpath("via-link"));
    expect_loads(rpath("via-link"));
}

/* huggingface-cli download (no --local-dir) gives
 * models--org--name/snapshots/<rev>/<file> -> ../../blobs/<hash>. */
TEST(weight_paths_allow_the_hugging_face_cache_layout) {
    const char *repo = rpath("models--rosa--tiny");
    char wbuf[4096];
    const char *weights = shared_abs("models/stories260K/model.safetensors", wbuf);
    run_shellf(NULL, "rm -rf %s && mkdir -p %s/blobs %s/snapshots/abc123 && cp %s %s/blobs/0f1e2d && cp %s %s/blobs/9a8b7c",
       repo, repo, repo, weights, repo, shared_path("models/stories260K/config.json"), repo);
    char snap[700];
    snprintf(snap, sizeof snap, "%s/snapshots/abc123", repo);
    run_shellf(NULL, "ln -s ../../blobs/0f1e2d %s/model.safetensors && ln -s ../../blobs/9a8b7c %s/config.json", snap, snap);
    expect_loads(snap);
    /* ...and as shards */
    run_shellf(NULL, "rm %s/model.safetensors", snap);
    char p[800];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", snap);
    put_text(p, "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00001.safetensors\"}}");
    run_shellf(NULL, "ln -s ../../blobs/0f1e2d %s/model-00001-of-00001.safetensors", snap);
    expect_loads(snap);
    /* but not into another repository's blobs */
    run_shellf(NULL, "mkdir -p %s/other/blobs && mv %s/blobs/0f1e2d %s/other/blobs/ && ln -sfn ../../other/blobs/0f1e2d "
       "%s/model-00001-of-00001.safetensors", repo, repo, repo, snap);
    expect_refused(snap, "outside the model directory");
}
