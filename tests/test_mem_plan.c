/* test_mem_plan.c: `rosa info` from the headers alone, the memory plan
 * against the measured peak of real `rosa train` processes, and the refusal
 * above the limit before anything large is allocated (docs/memory.md). */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/util.h"
#include "io/json.h"
#include "test.h"

/* Runs CMD with its output to out_path; returns the exit status, the wall
 * time and its ru_maxrss (KiB).  Through a Python that forks and waits: a
 * process forked from this one would count this one's pages in its peak
 * (the high-water mark survives exec), Python's few MiB do not matter. */
static int run_measured(const char *cmd, const char *out_path, double *secs, long *maxrss_kb) {
    char full[16384], *res = NULL;
    snprintf(full, sizeof full,
             PY " -c 'import os, sys\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
             "    os.dup2(fd, 1); os.dup2(fd, 2)\n"
             "    os.execv(\"/bin/sh\", [\"sh\", \"-c\", \"exec \" + sys.argv[1]])\n"
             "_, st, ru = os.wait4(pid, 0)\n"
             "print(ru.ru_maxrss, os.waitstatus_to_exitcode(st))' \"%s\" '%s'",
             cmd, out_path);
    double t0 = rosa_now();
    int rc = run_capture(full, 0, &res);
    *secs = rosa_now() - t0;
    int status = -1;
    if (rc != 0 || !res || sscanf(res, "%ld %d", maxrss_kb, &status) != 2) status = -1;
    free(res);
    return status;
}

/* A copy of a model directory's config and tokenizer with a header-only
 * model.safetensors: its header, no tensor data. */
static void truncated_copy(const char *src, const char *dst) {
    run_shellf(NULL, "mkdir -p '%s' && cp '%s'/config.json '%s'/tokenizer*.json '%s'/special_tokens_map.json '%s'/ && "
               "chmod -R u+w '%s'", dst, src, src, src, dst, dst);
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/model.safetensors", src);
    snprintf(out, sizeof out, "%s/model.safetensors", dst);
    FILE *f = fopen(in, "rb"), *g = fopen(out, "wb");
    unsigned char len8[8];
    if (f && g && fread(len8, 1, 8, f) == 8) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
        char *h = malloc(hlen);
        if (h && fread(h, 1, hlen, f) == hlen) fwrite(len8, 1, 8, g), fwrite(h, 1, hlen, g);
        free(h);
    }
    if (f) fclose(f);
    if (g) fclose(g);
}

/* A header-only checkpoint with the exact config of bench/configs or of a
 * Hugging Face config written here, and the shipped model's tokenizer. */
static const char *headers_only_model(const char *name, const char *config_json) {
    const char *dir = test_tmp_path(name);
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s.json", dir);
    FILE *f = fopen(cfg, "w");
    if (f) fputs(config_json, f), fclose(f);
    if (run_shellf(NULL, PY " tools/make_random_model.py --config '%s' --out '%s' --headers-only --shards 2 "
                   "--tokenizer '%s'", cfg, dir, shared_path("models/stories260K")) != 0)
        return NULL;
    return dir;
}

#define LLAMA_3_2_3B                                                                                         \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 3072, "           \
    "\"intermediate_size\": 8192, \"num_hidden_layers\": 28, \"num_attention_heads\": 24, "                    \
    "\"num_key_value_heads\": 8, \"head_dim\": 128, \"vocab_size\": 128256, \"max_position_embeddings\": 131072, " \
    "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true, \"rope_scaling\": "      \
    "{\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "                                  \
    "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"bos_token_id\": 1, "              \
    "\"eos_token_id\": 2}"

/* Under ASan and TSan the process's memory and time are the sanitizer's:
 * the plan models rosa's own, so those measurements are not compared there. */
static int sanitized(void) { return getenv("ROSA_TSAN") || strstr(rosa_bin(), "build-san"); }

TEST(info_reads_the_headers_only) {
    /* The shipped model without its tensor data: info still describes it,
     * so it read no tensor. */
    const char *dir = test_tmp_path("stories-headers");
    truncated_copy(shared_path("models/stories260K"), dir);
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info --model %s --json 2>/dev/null", rosa_bin(), dir);
    REQUIRE(run_capture(cmd, 0, &out) == 0);
    cJSON *j = cJSON_Parse(out);
    REQUIRE(j);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "parameters")->valuedouble, 260032);
    /* every byte of tensor data is missing, and said so */
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "missing_bytes")->valuedouble, cJSON_GetObjectItem(j, "weight_bytes")->valuedouble);
    CHECK(cJSON_GetObjectItem(j, "missing_bytes")->valuedouble > 1e6);
    cJSON *plans = cJSON_GetObjectItem(j, "plans");
    REQUIRE(plans);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(plans, "train"), "bf16"), "total_bytes")->valuedouble > 0);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(plans, "generate"), "fp32"), "kv_cache_bytes")->valuedouble > 0);
    cJSON_Delete(j);
    free(out);
    /* ... and loading it for real is refused, naming the missing data */
    snprintf(cmd, sizeof cmd, "%s generate --model %s -n 1", rosa_bin(), dir);
    REQUIRE(run_capture(cmd, 1, &out) == 1);
    CHECK_MSG(strstr(out, "past the end of the data"), "got: %s", out);
    free(out);
}

TEST(info_checks_shapes_as_the_loader_does) {
    /* A config that disagrees with the headers: info names the tensor, as
     * loading would. */
    const char *dir = test_tmp_path("stories-wrong-vocab");
    truncated_copy(shared_path("models/stories260K"), dir);
    REQUIRE(run_shellf(NULL, "sed -i 's/\"vocab_size\": 512/\"vocab_size\": 1024/' '%s/config.json'", dir) == 0);
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info --model %s", rosa_bin(), dir);
    CHECK(run_capture(cmd, 1, &out) == 1);
    CHECK_MSG(out && strstr(out, "tensor \"model.embed_tokens.weight\" has shape [512, 64] but config.json implies "
                                 "[1024, 64]"), "got: %s", out);
    free(out);
}

TEST(info_on_a_3b_checkpoint_takes_milliseconds_and_megabytes) {
    /* The exact config of Llama-3.2-3B, headers only (sharded: the index is
     * followed): 6 GiB of BF16 data that is not there. */
    const char *dir = headers_only_model("llama-3.2-3b", LLAMA_3_2_3B);
    REQUIRE(dir);
    char cmd[4096], log[4096];
    snprintf(cmd, sizeof cmd, "%s info --model %s", rosa_bin(), dir);
    snprintf(log, sizeof log, "%s.info", dir);
    double secs;
    long kb;
    REQUIRE(run_measured(cmd, log, &secs, &kb) == 0);
    CHECK_MSG(sanitized() || secs < 1.0, "rosa info took %.2f s", secs);
    CHECK_MSG(sanitized() || kb < 32 * 1024, "rosa info peak RSS %ld KiB", kb);
    size_t n;
    char *out = rosa_read_file(log, &n);
    REQUIRE(out);
    CHECK_MSG(strstr(out, "parameters    3212749824"), "got: %s", out);
    CHECK_MSG(strstr(out, "BF16, 5.98 GiB in 2 files") || strstr(out, "BF16, 6"), "got: %s", out);
    CHECK_MSG(strstr(out, "train --dtype bf16"), "got: %s", out);
    free(out);
}

/* The peak of a "memory plan ... peak X MiB" line in a train log (MiB). */
static double planned_peak_mib(const char *log) {
    const char *p = strstr(log, "memory plan");
    p = p ? strstr(p, ": peak ") : NULL;
    return p ? atof(p + 7) : -1.0;
}

/* Runs one step of `rosa train ARGS` on dir and checks its plan against its
 * measured peak RSS: within 15%. */
static void check_plan(const char *dir, const char *args, const char *tag) {
    const char *data = test_tmp_path("plan.jsonl");
    write_toy_records(data, 8);
    char cmd[8192], log[4096];
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --warmup-steps 0 --log-format plain --overwrite %s", rosa_bin(), dir, data,
             test_tmp_path("plan-out"), args);
    snprintf(log, sizeof log, "%s.log", test_tmp_path(tag));
    double secs;
    long kb;
    int rc = run_measured(cmd, log, &secs, &kb);
    size_t n;
    char *out = rosa_read_file(log, &n);
    CHECK_MSG(rc == 0, "%s: exit %d: %s", tag, rc, out ? out : "");
    double plan = out ? planned_peak_mib(out) : -1, peak = kb / 1024.0;
    CHECK_MSG(plan > 0, "%s: no plan in: %s", tag, out ? out : "");
    CHECK_MSG(fabs(plan - peak) <= 0.15 * peak, "%s: plan %.1f MiB, measured peak %.1f MiB (%+.0f%%)", tag, plan,
              peak, 100.0 * (plan - peak) / peak);
    if (getenv("ROSA_TEST_VERBOSE")) fprintf(stderr, "%s: plan %.1f MiB, peak %.1f MiB\n", tag, plan, peak);
    free(out);
}

TEST(plan_is_within_15_percent_of_the_measured_peak) {
    if (sanitized()) {
        test_skip("the sanitizers' shadow memory is not rosa's");
        return;
    }
    const char *stories = shared_path("models/stories260K");
    check_plan(stories, "", "stories-fp32");
    check_plan(stories, "--dtype bf16", "stories-bf16");
    check_plan(stories, "--quantize int8", "stories-int8");
    check_plan(stories, "--method rosa --recompute", "stories-rosa-recompute");
    /* A BF16 checkpoint (widened in FP32, packed in BF16), untied, with
     * q/k/v biases: random weights, 8 M parameters. */
    const char *dir = test_tmp_path("qwen-small");
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s.json", dir);
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fputs("{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 256, "
          "\"intermediate_size\": 704, \"num_hidden_layers\": 6, \"num_attention_heads\": 8, \"num_key_value_heads\": 2, "
          "\"vocab_size\": 4096, \"max_position_embeddings\": 1024, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, "
          "\"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}", f);
    fclose(f);
    REQUIRE(run_shellf(NULL, PY " tools/make_random_model.py --config '%s' --out '%s' --tokenizer '%s'", cfg, dir,
                       stories) == 0);
    check_plan(dir, "", "qwen-small-fp32");
    check_plan(dir, "--dtype bf16", "qwen-small-bf16");
    check_plan(dir, "--quantize int8", "qwen-small-int8");
}

TEST(train_refuses_above_the_limit_before_loading) {
    /* Header-only Llama-3.2-3B (its plan: about 10.4 GiB): loading it would
     * fail on the missing data, so a refusal naming the plan proves the plan
     * came first. */
    const char *dir = headers_only_model("llama-3.2-3b-train", LLAMA_3_2_3B);
    REQUIRE(dir);
    const char *data = test_tmp_path("refuse.jsonl");
    write_toy_records(data, 8);
    char cmd[8192], log[4096];
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --max-memory 8G --overwrite", rosa_bin(), dir, data, test_tmp_path("refuse-out"));
    snprintf(log, sizeof log, "%s.log", dir);
    double secs;
    long kb;
    int rc = run_measured(cmd, log, &secs, &kb);
    size_t n;
    char *out = rosa_read_file(log, &n);
    REQUIRE(out);
    CHECK_MSG(rc == 1, "exit %d: %s", rc, out);
    CHECK_MSG(strstr(out, "more than --max-memory 8192.0 MiB (weights"), "got: %s", out);
    CHECK_MSG(strstr(out, "memory plan (micro-batch 4"), "the plan was not printed: %s", out);
    CHECK_MSG(!strstr(out, "past the end"), "the model was loaded before the plan: %s", out);
    CHECK_MSG(sanitized() || (secs < 3.0 && kb < 64 * 1024), "the refusal took %.2f s and %ld KiB", secs, kb);
    free(out);
    /* 6 GiB: only int8 weights (4.5 GiB planned) with --recompute fit. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --max-memory 6G --overwrite --quiet", rosa_bin(), dir, data, test_tmp_path("refuse-out"));
    rc = run_measured(cmd, log, &secs, &kb);
    out = rosa_read_file(log, &n);
    REQUIRE(out);
    CHECK_MSG(rc == 1 && strstr(out, "these would fit: --recompute --quantize int8 ("), "exit %d: %s", rc, out);
    free(out);
    /* No --max-memory: the limit is what the machine has available, which a
     * 70B-shaped model exceeds anywhere this runs. */
    const char *big = headers_only_model("llama-70b-shape",
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 8192, "
        "\"intermediate_size\": 28672, \"num_hidden_layers\": 80, \"num_attention_heads\": 64, "
        "\"num_key_value_heads\": 8, \"vocab_size\": 128256, \"max_position_embeddings\": 8192, "
        "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false, \"bos_token_id\": 1, "
        "\"eos_token_id\": 2}");
    REQUIRE(big);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --overwrite --quiet", rosa_bin(), big, data, test_tmp_path("refuse-out2"));
    rc = run_measured(cmd, log, &secs, &kb);
    out = rosa_read_file(log, &n);
    REQUIRE(out);
    CHECK_MSG(rc == 1 && strstr(out, "more than the memory available (MemAvailable"), "exit %d: %s", rc, out);
    CHECK_MSG(sanitized() || (secs < 3.0 && kb < 64 * 1024), "the refusal took %.2f s and %ld KiB", secs, kb);
    free(out);
}

TEST(refusal_says_what_would_fit) {
    if (sanitized()) {
        test_skip("the sanitizers' shadow memory is not rosa's");
        return;
    }
    /* The shipped model's plan is about 39 MiB at micro-batch 4 x the
     * longest example; 30 MiB fits a smaller micro-batch or --recompute. */
    const char *data = test_tmp_path("fit.jsonl");
    write_toy_records(data, 8);
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 4 "
             "--micro-batch-size 4 --cutoff-len 256 --max-memory 30M --overwrite --quiet", rosa_bin(),
             shared_path("models/stories260K"), data, test_tmp_path("fit-out"));
    CHECK(run_capture(cmd, 1, &out) == 1);
    CHECK_MSG(out && strstr(out, "these would fit: ") && strstr(out, "--micro-batch-size "), "got: %s", out);
    free(out);
}

TEST(generate_refuses_above_the_memory_available_before_loading) {
    const char *big = headers_only_model("llama-70b-shape-gen",
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 8192, "
        "\"intermediate_size\": 28672, \"num_hidden_layers\": 80, \"num_attention_heads\": 64, "
        "\"num_key_value_heads\": 8, \"vocab_size\": 128256, \"max_position_embeddings\": 8192, "
        "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false}");
    REQUIRE(big);
    char cmd[8192], log[4096];
    snprintf(cmd, sizeof cmd, "%s generate --model %s --prompt-ids 1,2,3 -n 8", rosa_bin(), big);
    snprintf(log, sizeof log, "%s.gen", big);
    double secs;
    long kb;
    int rc = run_measured(cmd, log, &secs, &kb);
    size_t n;
    char *out = rosa_read_file(log, &n);
    REQUIRE(out);
    CHECK_MSG(rc == 1 && strstr(out, "generation needs about") && strstr(out, "MemAvailable"), "exit %d: %s", rc, out);
    CHECK_MSG(!strstr(out, "past the end"), "the model was loaded before the plan: %s", out);
    CHECK_MSG(sanitized() || (secs < 3.0 && kb < 64 * 1024), "the refusal took %.2f s and %ld KiB", secs, kb);
    free(out);
}
