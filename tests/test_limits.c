/* test_limits.c: numbers from the command line and the API (issue 20, items
 * 7-9): sizes beyond the stated limits are refused before anything is
 * computed from them, optimizer values PyTorch refuses are refused, the
 * memory plan is checked before the adapter and optimizer are allocated,
 * JSON never holds NaN, and a FIFO is never waited on. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "eval/beam.h"
#include "rosa_train.h"

/* rosa ARGS with stderr merged; the exit status, the output in *out. */
static int rosa_cmd(const char *args, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", rosa_bin(), args);
    return run_capture(cmd, 1, out);
}

/* rosa ARGS exits 2 with one line that mentions each of the needles. */
static void expect_usage_error(const char *args, const char *needle1, const char *needle2) {
    char *out;
    int rc = rosa_cmd(args, &out);
    CHECK_MSG(rc == 2, "rosa %s: exit %d, expected 2 (usage error); printed: %s", args, rc, out);
    CHECK_MSG(strncmp(out, "rosa: error: ", 13) == 0 && strchr(out, '\n') == out + strlen(out) - 1,
              "rosa %s: expected one error line, got: %s", args, out);
    CHECK_MSG(strstr(out, needle1), "rosa %s: the message does not name \"%s\": %s", args, needle1, out);
    CHECK_MSG(!needle2 || strstr(out, needle2), "rosa %s: the message does not name \"%s\": %s", args, needle2, out);
    free(out);
}

TEST(limits_generate_and_eval_sizes_are_refused_with_the_limit) {
    char args[2048];
    const char *model = shared_path("models/stories260K");
    /* Once an int overflow (exit 1, no message) and a negative KV capacity. */
    snprintf(args, sizeof args, "generate --model %s --max-new-tokens 2147483647", model);
    expect_usage_error(args, "--max-new-tokens", "1048576");
    snprintf(args, sizeof args, "generate --model %s --max-new-tokens 2147483646", model);
    expect_usage_error(args, "--max-new-tokens", "1048576");
    snprintf(args, sizeof args, "eval --model %s --tasks boolq --limit 1 --num-beams 1073741824", model);
    expect_usage_error(args, "--num-beams", "256");
    snprintf(args, sizeof args, "eval --model %s --tasks boolq --limit 1 --max-new-tokens 2147483647", model);
    expect_usage_error(args, "--max-new-tokens", "1048576");
    snprintf(args, sizeof args, "eval --model %s --tasks boolq --limit 1 --batch-size 2 --max-new-tokens 1073741824",
             model);
    expect_usage_error(args, "--max-new-tokens", "1048576");
    snprintf(args, sizeof args, "eval --model %s --tasks boolq --limit 1 --batch-size 100000", model);
    expect_usage_error(args, "--batch-size", "4096");
    /* The limits are stated in --help. */
    char *out;
    CHECK_EQ_INT(rosa_cmd("generate --help", &out), 0);
    CHECK_MSG(strstr(out, "1048576"), "generate --help does not state the --max-new-tokens limit:\n%s", out);
    free(out);
    CHECK_EQ_INT(rosa_cmd("eval --help", &out), 0);
    CHECK_MSG(strstr(out, "at most 256") && strstr(out, "at most 4096") && strstr(out, "1048576"),
              "eval --help does not state its limits:\n%s", out);
    free(out);
}

TEST(limits_library_refuses_sizes_that_would_overflow) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    int32_t prompt[2] = {1, 100}, out[4];
    int n_out = 0;
    rosa_gen_params p;
    rosa_gen_params_default(&p);
    p.max_new_tokens = ROSA_MAX_NEW_TOKENS + 1;
    CHECK(rosa_generate(m, prompt, 2, &p, NULL, NULL, out, &n_out) < 0);
    CHECK_ERROR_HAS("max_new_tokens");
    p.max_new_tokens = 2;
    CHECK(rosa_generate(m, prompt, 2, &p, NULL, NULL, out, &n_out) == 0);
    CHECK_EQ_INT(n_out, 2);

    const int32_t *prompts[1] = {prompt};
    int lens[1] = {2};
    rosa_decode_params d;
    rosa_decode_params_default(&d);
    d.num_beams = ROSA_MAX_BEAMS + 1;
    CHECK(rosa_decode(m, 1, prompts, lens, &d, 1, NULL, NULL) < 0);
    CHECK_ERROR_HAS("num_beams");
    d.num_beams = 1;
    d.max_new_tokens = ROSA_MAX_NEW_TOKENS + 1;
    CHECK(rosa_decode(m, 1, prompts, lens, &d, 1, NULL, NULL) < 0);
    CHECK_ERROR_HAS("max_new_tokens");
    d.max_new_tokens = 2;
    CHECK(rosa_decode(m, 1, prompts, lens, &d, ROSA_MAX_BATCH + 1, NULL, NULL) < 0);
    CHECK_ERROR_HAS("batch");
    rosa_model_free(m);
}

TEST(limits_train_refuses_values_pytorch_refuses) {
    const char *data = test_tmp_path("limits_train.jsonl");
    write_toy_records(data, 8);
    char base[2048], args[2560];
    snprintf(base, sizeof base, "train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --quiet --overwrite", shared_path("models/stories260K"), data,
             test_tmp_path("limits_train_out"));
    static const struct {
        const char *flags, *name, *range;
    } bad[] = {
        {"--adam-beta1 1", "--adam-beta1", "[0, 1)"},
        {"--adam-beta2 1.5", "--adam-beta2", "[0, 1)"},
        {"--adam-eps -1", "--adam-eps", ">= 0"},
        {"--weight-decay -1", "--weight-decay", ">= 0"},
        {"--lr -1", "--lr", ">= 0"},
        {"--max-grad-norm -1", "--max-grad-norm", ">= 0"},
        {"--rank 0", "rank 0", "[1, 65536]"},       /* once silently the default, 8 */
        {"--param-budget -1", "--param-budget", "(0, 1)"},
        {"--warmup-steps -1", "--warmup-steps", ">= 0"},
        {"--max-steps -3", "--max-steps", ">= 0"},
        {"--save-steps -1", "--save-steps", ">= 0"},
        {"--method rosa --dls-k-ratio 2", "k_ratio", "(0, 1]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "%s %s", base, bad[i].flags);
        expect_usage_error(args, bad[i].name, bad[i].range);
    }
    /* The same check is the library's: rosa_train refuses them too. */
    rosa_train_options o;
    rosa_train_options_default(&o);
    o.model_dir = shared_path("models/stories260K");
    o.data_path = data;
    o.output_dir = test_tmp_path("limits_train_lib");
    CHECK(rosa_train_options_check(&o) == 0);
    o.adam.beta2 = 1.0f;
    CHECK(rosa_train(&o, NULL) < 0);
    CHECK_ERROR_HAS("--adam-beta2");
    struct stat st;
    CHECK_MSG(stat(o.output_dir, &st) != 0, "rosa_train created %s before refusing its options", o.output_dir);
}

/* Peak RSS of the largest child waited for so far, in MiB. */
static double children_peak_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_maxrss / 1024.0;
}

TEST(limits_max_memory_is_checked_before_the_adapter_is_allocated) {
    /* A LoRA of rank 16384 on every projection of the 260K model: about 95 M
     * values, 1.5 GiB with their gradients and AdamW's moments; --max-memory
     * 100M must refuse it before any of that exists. */
    const char *data = test_tmp_path("limits_mem.jsonl");
    write_toy_records(data, 8);
    char args[2048], *out;
    snprintf(args, sizeof args, "train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --rank 16384 --target-modules all --max-memory 100M --overwrite",
             shared_path("models/stories260K"), data, test_tmp_path("limits_mem_out"));
    double before = children_peak_mib();
    int rc = rosa_cmd(args, &out);
    double peak = children_peak_mib();
    CHECK_MSG(rc == 1, "exit %d, expected 1: %s", rc, out);
    CHECK_MSG(strstr(out, "more than --max-memory"), "no memory refusal: %s", out);
    CHECK_MSG(strstr(out, "memory plan"), "the plan was not printed before the refusal: %s", out);
    /* Children of earlier tests in this process count too: only a new peak
     * is this run's, and it must stay far below the 1.5 GiB of the plan. */
    CHECK_MSG(peak <= before || peak < 400.0, "rosa train reached %.0f MiB before refusing a 100 MiB plan", peak);
    free(out);
}

TEST(limits_loss_json_writes_null_for_an_undefined_loss) {
    /* Every label masked (train-on-inputs false, outputs empty): no label
     * token, so both means are undefined, which JSON can only say as null. */
    const char *data = test_tmp_path("limits_loss.jsonl");
    FILE *f = fopen(data, "w");
    REQUIRE(f);
    fputs("{\"instruction\": \"Is the cat dog?\", \"input\": \"\", \"output\": \"\"}\n", f);
    fclose(f);
    char args[2048], *out;
    snprintf(args, sizeof args, "loss --model %s --data %s --cutoff-len 8 --train-on-inputs false --per-example --json",
             shared_path("models/stories260K"), data);
    int rc = rosa_cmd(args, &out);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    const char *brace = strchr(out, '{');
    cJSON *j = brace ? cJSON_Parse(brace) : NULL;
    CHECK_MSG(j != NULL, "rosa loss --json is not JSON: %s", out);
    if (j) {
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "token_mean_loss")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "example_mean_loss")));
        CHECK(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "per_example"), 0)));
    }
    CHECK_MSG(!strstr(out, "nan"), "NaN in JSON: %s", out);
    cJSON_Delete(j);
    free(out);
}

TEST(limits_a_fifo_is_refused_not_waited_on) {
    /* An adapter_config.json that is a FIFO with no writer: opening it for
     * reading used to block for ever. */
    const char *dir = test_tmp_path("limits_fifo_adapter");
    mkdir(dir, 0755);
    char fifo[1024];
    snprintf(fifo, sizeof fifo, "%s/adapter_config.json", dir);
    REQUIRE(mkfifo(fifo, 0644) == 0);
    char args[2048], *out;
    snprintf(args, sizeof args, "generate --model %s --adapter %s --max-new-tokens 1", shared_path("models/stories260K"),
             dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "timeout 20 %s %s", rosa_bin(), args);
    int rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 1, "exit %d (124: it waited on the FIFO), expected 1: %s", rc, out);
    CHECK_MSG(strstr(out, "adapter_config.json") && strstr(out, "not a regular file"), "%s", out);
    free(out);
    CHECK(rosa_read_file(fifo, NULL) == NULL);
    CHECK_ERROR_HAS("not a regular file");
}

TEST(limits_an_eval_prompt_far_past_the_context_is_refused) {
    /* A 100 KB instruction, 200 x the context of the 260K model: it used to
     * decode for minutes with a warning. */
    const char *file = test_tmp_path("limits_long_task.json");
    FILE *f = fopen(file, "w");
    REQUIRE(f);
    fputs("[{\"instruction\": \"", f);
    for (int i = 0; i < 20000; i++) fputs("cat. ", f);
    fputs("Answer format: true/false\", \"input\": \"\", \"output\": \"true\", \"answer\": \"true\"}]", f);
    fclose(f);
    const char *modes[] = {"generate", "loglik"};
    for (int k = 0; k < 2; k++) {
        char cmd[4096], *out;
        snprintf(cmd, sizeof cmd, "timeout 60 %s eval --model %s --task long=%s --task-type commonsense --mode %s "
                 "--quiet", rosa_bin(), shared_path("models/stories260K"), file, modes[k]);
        int rc = run_capture(cmd, 1, &out);
        CHECK_MSG(rc == 1, "--mode %s: exit %d (124: it decoded the prompt), expected 1: %s", modes[k], rc, out);
        CHECK_MSG(strstr(out, "long record 0") && strstr(out, "more than the limit of 2048"), "%s", out);
        free(out);
        /* The limit is the user's to raise; below the prompt's length it still refuses. */
        snprintf(cmd, sizeof cmd, "timeout 60 %s eval --model %s --task long=%s --task-type commonsense --mode %s "
                 "--quiet --max-prompt-tokens 4096", rosa_bin(), shared_path("models/stories260K"), file, modes[k]);
        rc = run_capture(cmd, 1, &out);
        CHECK_MSG(rc == 1 && strstr(out, "more than the limit of 4096 (--max-prompt-tokens)"), "exit %d: %s", rc, out);
        free(out);
    }
}

TEST(limits_adapter_sizes_beyond_int_are_counted_in_size_t) {
    /* LoRA rank 4096 on a 2^19-wide down_proj: lora_A alone is 2^31 values,
     * one past INT_MAX; its initialisation loop once ran over an int product
     * and never ran (the values stayed 0).  The table is built without values
     * here (8 GiB would not fit a test): its count must be exact. */
    rosa_config c;
    REQUIRE(rosa_config_load(shared_path("models/stories260K"), &c) == 0);
    c.intermediate_size = 1 << 19;
    const rosa_peft_method *lora = rosa_peft_find("lora", NULL);
    REQUIRE(lora);
    void *opts = rosa_peft_opts_new(lora, NULL);
    REQUIRE(opts);
    REQUIRE(rosa_peft_set_option(lora, opts, "rank", "4096") == 0);
    REQUIRE(rosa_peft_set_option(lora, opts, "target-modules", "down_proj") == 0);
    int64_t n = rosa_peft_num_params(lora, &c, opts);
    int64_t per_layer = 4096LL * ((1LL << 19) + c.hidden_size); /* A [r][in] + B [out][r] */
    CHECK_MSG(n == c.num_layers * per_layer, "counted %lld values, expected %lld", (long long)n,
              (long long)(c.num_layers * per_layer));
    rosa_peft_opts_free(lora, opts);
}
