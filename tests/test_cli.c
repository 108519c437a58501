/* test_cli.c: the rosa command-line tool, run as a real process. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/util.h"
#include "io/json.h"
#include "test.h"

/* Runs `rosa ARGS`, returns the exit status and the output (stdout, plus
 * stderr when merge). */
static int rosa_run(const char *args, int merge, char **out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", rosa_bin(), args);
    return run_capture(cmd, merge, out);
}

static const char *stories_arg(void) { return shared_path("models/stories260K"); }

TEST(cli_help_on_every_subcommand) {
    const char *cmds[] = {"generate", "info", "tokenize"};
    char *out;
    CHECK_EQ_INT(rosa_run("--help", 0, &out), 0);
    CHECK(strstr(out, "usage: rosa <command>") != NULL);
    free(out);
    for (int i = 0; i < 3; i++) {
        char args[64], want[64];
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        snprintf(want, sizeof want, "usage: rosa %s", cmds[i]);
        CHECK_EQ_INT(rosa_run(args, 0, &out), 0);
        CHECK_MSG(strstr(out, want) != NULL, "'rosa %s' printed: %s", args, out);
        free(out);
    }
}

TEST(cli_errors_are_one_line_and_nonzero) {
    char *out, args[1024];
    CHECK(rosa_run("frobnicate", 1, &out) != 0);
    CHECK(strncmp(out, "rosa: error: unknown command", 28) == 0);
    free(out);
    CHECK(rosa_run("generate --model x --bogus 1", 1, &out) != 0);
    CHECK(strncmp(out, "rosa: error: rosa generate: unknown option --bogus", 50) == 0);
    free(out);
    CHECK(rosa_run("generate --prompt hi", 1, &out) != 0);
    CHECK(strstr(out, "--model is required") != NULL);
    free(out);
    CHECK(rosa_run("generate --model /nonexistent/model", 1, &out) == 1);
    CHECK_STR(out, "rosa: error: /nonexistent/model: model directory not found\n");
    free(out);
    snprintf(args, sizeof args, "generate --model %s --max-new-tokens many", stories_arg());
    CHECK(rosa_run(args, 1, &out) != 0);
    CHECK(strstr(out, "--max-new-tokens expects an integer") != NULL);
    free(out);
    /* A prompt that is not UTF-8 is refused, with nothing generated. */
    snprintf(args, sizeof args, "generate --model %s --prompt \"$(printf 'ab\\377c')\"", stories_arg());
    CHECK(rosa_run(args, 1, &out) == 1);
    CHECK_MSG(strstr(out, "rosa: error: --prompt: input is not valid UTF-8 at byte 2") != NULL, "got: %s", out);
    free(out);
}

TEST(cli_generate_greedy_from_bos_matches_vectors) {
    cJSON *v = rosa_json_load(shared_path("models/stories260K/vectors.json"));
    REQUIRE(v);
    const cJSON *g = cJSON_GetObjectItem(v, "greedy");
    char args[1024], *out;
    snprintf(args, sizeof args, "generate --model %s --max-new-tokens 256 --ignore-eos --json", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    cJSON *r = cJSON_Parse(out);
    REQUIRE(r);
    const cJSON *ids = cJSON_GetObjectItem(r, "ids"), *want = cJSON_GetObjectItem(g, "ids");
    CHECK_EQ_INT(cJSON_GetArraySize(ids), 256);
    CHECK(cJSON_Compare(ids, want, 1));
    CHECK(cJSON_Compare(cJSON_GetObjectItem(r, "prompt_ids"), cJSON_GetObjectItem(g, "input_ids"), 1));
    CHECK_STR(cJSON_GetObjectItem(r, "text")->valuestring, cJSON_GetObjectItem(g, "text")->valuestring);
    cJSON_Delete(r);
    free(out);
    /* The streamed text is the same story. */
    snprintf(args, sizeof args, "generate --model %s --max-new-tokens 256 --ignore-eos --quiet", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    size_t n = strlen(out);
    CHECK(n > 0 && out[n - 1] == '\n');
    if (n) out[n - 1] = 0;
    CHECK_STR(out, cJSON_GetObjectItem(g, "text")->valuestring);
    free(out);
    cJSON_Delete(v);
}

TEST(cli_generate_continues_a_prompt) {
    cJSON *v = rosa_json_load(shared_path("models/stories260K/vectors.json"));
    REQUIRE(v);
    const cJSON *pr = cJSON_GetArrayItem(cJSON_GetObjectItem(v, "prompts"), 0);
    char args[1024], *out;
    snprintf(args, sizeof args, "generate --model %s --prompt '%s' --max-new-tokens 64 --ignore-eos --json",
             stories_arg(), cJSON_GetObjectItem(pr, "prompt")->valuestring);
    REQUIRE(rosa_run(args, 0, &out) == 0);
    cJSON *r = cJSON_Parse(out);
    REQUIRE(r);
    CHECK(cJSON_Compare(cJSON_GetObjectItem(r, "prompt_ids"), cJSON_GetObjectItem(pr, "input_ids"), 1));
    CHECK(cJSON_Compare(cJSON_GetObjectItem(r, "ids"), cJSON_GetObjectItem(pr, "continuation_ids"), 1));
    cJSON_Delete(r);
    free(out);
    /* Stopping at EOS: the default generation stops at id 2 when it comes. */
    snprintf(args, sizeof args, "generate --model %s --max-new-tokens 400 --json", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    r = cJSON_Parse(out);
    REQUIRE(r);
    const cJSON *ids = cJSON_GetObjectItem(r, "ids");
    int n = cJSON_GetArraySize(ids);
    CHECK(n >= 1 && n <= 400);
    for (int i = 0; i + 1 < n; i++) CHECK(cJSON_GetArrayItem(ids, i)->valueint != 2);
    if (n < 400) CHECK_EQ_INT(cJSON_GetArrayItem(ids, n - 1)->valueint, 2);
    cJSON_Delete(r);
    free(out);
    cJSON_Delete(v);
}

TEST(cli_info_describes_the_model) {
    char args[1024], *out;
    snprintf(args, sizeof args, "info --model %s --json", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    cJSON *r = cJSON_Parse(out);
    REQUIRE(r);
    CHECK_STR(cJSON_GetObjectItem(r, "architecture")->valuestring, "LlamaForCausalLM");
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "parameters")->valuedouble, 260032);
    CHECK_EQ_INT(cJSON_GetObjectItem(r, "num_kv_heads")->valueint, 4);
    CHECK_STR(cJSON_GetObjectItem(r, "tokenizer")->valuestring, "tokenizer.json"); /* present; not read */
    cJSON_Delete(r);
    free(out);
    snprintf(args, sizeof args, "info --model %s", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK(strstr(out, "parameters    260032") != NULL);
    free(out);
}

TEST(cli_tokenize_encodes_and_decodes) {
    char args[1024], *out;
    snprintf(args, sizeof args, "tokenize --tokenizer %s --text 'Hello world'", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK_STR(out, "1 346 306 414 263 304 341\n");
    free(out);
    snprintf(args, sizeof args, "tokenize --tokenizer %s/tokenizer.json --text 'Hello world' --no-bos --json",
             stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK_STR(out, "{\"ids\": [346, 306, 414, 263, 304, 341], \"count\": 6}\n");
    free(out);
    snprintf(args, sizeof args, "tokenize --tokenizer %s --decode --text '1 346 306 414 263 304 341'", stories_arg());
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK_STR(out, "Hello world\n");
    free(out);
    snprintf(args, sizeof args, "tokenize --tokenizer %s --decode --text '1 99999'", stories_arg());
    CHECK(rosa_run(args, 1, &out) == 1);
    CHECK(strncmp(out, "rosa: error:", 12) == 0);
    free(out);
    snprintf(args, sizeof args, "tokenize --tokenizer %s", shared_path("tokenizers/qwen2"));
    CHECK(rosa_run(args, 1, &out) == 2);
    CHECK(strstr(out, "exactly one of --text and --file") != NULL);
    free(out);
    snprintf(args, sizeof args, "tokenize --tokenizer %s --text 'Hello world'", shared_path("tokenizers/qwen2"));
    REQUIRE(rosa_run(args, 0, &out) == 0);
    CHECK_STR(out, "9707 1879\n"); /* Qwen2 adds no BOS */
    free(out);
}

TEST(cli_flags_take_underscores_and_suggest_near_names) {
    char *out;
    /* --max_new_tokens is --max-new-tokens. */
    CHECK_EQ_INT(run_shellf(&out, "%s generate --model %s --max_new_tokens 3 --ignore_eos --json", rosa_bin(), stories_arg()),
                 0);
    CHECK_MSG(strstr(out, "\"ids\": [") != NULL, "got: %s", out);
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s generate --model %s --max-new-tokns 3", rosa_bin(), stories_arg()), 2);
    CHECK_STR(out, "rosa: error: rosa generate: unknown option --max-new-tokns (did you mean --max-new-tokens?)\n");
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s generate --model x --bogus 1", rosa_bin()), 2);
    CHECK_MSG(strstr(out, "did you mean") == NULL, "got: %s", out); /* near no option */
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s train --model x --data y --output z --cutof_len 8", rosa_bin()), 2);
    CHECK_MSG(strstr(out, "(did you mean --cutoff-len?)") != NULL, "got: %s", out);
    free(out);
}

TEST(cli_train_aliases_in_help_and_not_twice) {
    char *out;
    CHECK_EQ_INT(run_shellf(&out, "%s train --help", rosa_bin()), 0);
    CHECK(strstr(out, "--lr LR, --learning-rate ") != NULL);
    CHECK(strstr(out, "--rank R, --lora-r ") != NULL);
    CHECK(strstr(out, "--recompute, --gradient-checkpointing\n") != NULL);
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s train --model x --data y --output z --lr 1e-3 --learning_rate 2e-3", rosa_bin()), 2);
    CHECK_STR(out, "rosa: error: rosa train: --lr and --learning-rate are the same option: give one\n");
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s train --model x --data y --output z --lora-r 4 --rank 4", rosa_bin()), 2);
    CHECK_STR(out, "rosa: error: rosa train: --rank and --lora-r are the same option: give one\n");
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s train --model x --data y --output z --bf16 --dtype fp32", rosa_bin()), 2);
    CHECK_STR(out, "rosa: error: rosa train: --bf16 and --dtype are the same option: give one\n");
    free(out);
}

TEST(cli_generate_short_flags_match_long_ones) {
    char *a, *b;
    REQUIRE(run_shellf(&a, "%s generate --model %s --prompt 'Once upon' --max-new-tokens 12 --threads 1 --seed 5 "
                           "--temperature 0.8 --json",
                       rosa_bin(), stories_arg()) == 0);
    REQUIRE(run_shellf(&b, "%s generate -m %s -p 'Once upon' -n 12 -t 1 -s 5 --temperature 0.8 --json", rosa_bin(),
                       stories_arg()) == 0);
    char *ta = strstr(a, "\"seconds\""), *tb = strstr(b, "\"seconds\""); /* timing differs */
    REQUIRE(ta && tb);
    *ta = *tb = 0;
    CHECK_STR(b, a);
    free(a);
    free(b);
    CHECK_EQ_INT(run_shellf(&a, "%s generate -m x --model y", rosa_bin()), 2);
    CHECK_STR(a, "rosa: error: rosa generate: --model and -m are the same option: give one\n");
    free(a);
}

TEST(cli_help_command_and_short_version) {
    char *a, *b;
    REQUIRE(run_shellf(&a, "%s help train", rosa_bin()) == 0);
    REQUIRE(run_shellf(&b, "%s train --help", rosa_bin()) == 0);
    CHECK(strncmp(a, "usage: rosa train", 17) == 0);
    CHECK_STR(a, b);
    free(a);
    free(b);
    CHECK_EQ_INT(run_shellf(&a, "%s help frobnicate", rosa_bin()), 2);
    CHECK(strncmp(a, "rosa: error: unknown command", 28) == 0);
    free(a);
    REQUIRE(run_shellf(&a, "%s -V", rosa_bin()) == 0);
    REQUIRE(run_shellf(&b, "%s --version", rosa_bin()) == 0);
    CHECK(strncmp(a, "rosa ", 5) == 0);
    CHECK_STR(a, b);
    free(a);
    free(b);
}

TEST(cli_contradicting_options_are_usage_errors) {
    char *out;
    CHECK_EQ_INT(run_shellf(&out, "%s generate -m %s -p hi --prompt-ids 1,2", rosa_bin(), stories_arg()), 2);
    CHECK_STR(out, "rosa: error: --prompt and --prompt-ids do not go together: give one\n");
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s eval --model %s --tasks boolq --mode loglik --num-beams 2", rosa_bin(), stories_arg()),
                 2);
    CHECK_MSG(strstr(out, "rosa: error: --mode loglik and --num-beams do not go together") != NULL, "got: %s", out);
    free(out);
    const char *train = "train --model %s --data x.json --output /nonexistent/out --max-steps 2";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s --param-budget 0.01 --rank 4", rosa_bin(), train);
    CHECK_EQ_INT(run_shellf(&out, cmd, stories_arg()), 2);
    CHECK_STR(out, "rosa: error: rosa train: --param-budget and --rank both set the rank: give one\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s %s --gradient-accumulation-steps 2 --batch-size 8", rosa_bin(), train);
    CHECK_EQ_INT(run_shellf(&out, cmd, stories_arg()), 2);
    CHECK_STR(out, "rosa: error: rosa train: --gradient-accumulation-steps and --batch-size both set the batch: give one\n");
    free(out);    /* A warning, not an error: the run goes on (here to fail on the missing data). */
    snprintf(cmd, sizeof cmd, "%s %s --warmup-steps 5", rosa_bin(), train);
    run_shellf(&out, cmd, stories_arg());
    CHECK_MSG(strstr(out, "rosa: warning: --warmup-steps 5 is not shorter than the run (--max-steps 2)") != NULL,
              "got: %s", out);
    free(out);
}

/* train --help is in sections, as HF's argument groups: each heading once, in order, and
 * each option under its own (the method's options under "method"). */
TEST(cli_train_help_in_sections) {
    char *out;
    CHECK_EQ_INT(run_shellf(&out, "%s train --method rosa --help", rosa_bin()), 0);
    REQUIRE(out);
    const char *heads[] = {"\nmodel and data:\n", "\nmethod:\n", "\ndynamic layer selection (DLS):\n", "\noptimizer:\n",
                           "\nschedule:\n", "\nvalidation and checkpoints:\n", "\nruntime:\n"};
    const char *at = out;
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        const char *h = strstr(at, heads[i]);
        CHECK_MSG(h != NULL, "heading %zu missing or out of order: %s", i, out);
        if (h) at = h + 1;
    }
    const char *m = strstr(out, "\nmethod:\n"), *r = strstr(out, "--r-low"), *d = strstr(out, "\ndynamic layer");
    CHECK_MSG(m && r && d && m < r && r < d, "the method's options belong under method: %s", out);
    const char *rt = strstr(out, "\nruntime:\n"), *th = strstr(out, "--threads");
    CHECK(rt && th && rt < th);
    free(out);
}

/* Writes text to a scratch file and returns its path. */
static const char *scratch_file(const char *name, const char *text) {
    const char *path = test_tmp_path(name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* A config file's mistakes are usage errors that name the file, the line and the key. */
TEST(cli_config_file_errors_name_file_and_line) {
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"model: x\nlearning_rat: 1\n", "c0.yaml:2 (key learning_rat): unknown option --learning_rat (did you mean "
                                        "--learning-rate?)"},
        {"lr: abc\n", "c1.yaml:1 (key lr): --lr expects a number, got \"abc\""},
        {"lr:\n  a: 1\n", "c2.yaml:1: key lr: expected a value or a list of values, got a mapping"},
        {"lr: \"x\n", "c3.yaml:2:1: not valid YAML"},
        {"- a\n- b\n", "c4.yaml:1: expected a mapping of options (key: value), got a list"},
        {"quiet: maybe\n", "c5.yaml:1 (key quiet): --quiet takes no value, or true or false"},
        {"lr: 1\nlearning-rate: 2\n", "c6.yaml:2 (key learning-rate): --lr and --learning-rate are the same option"},
        {"config: other.yaml\n", "c7.yaml:1: a config file cannot name another"},
        {"a: 1\n---\nb: 2\n", "c8.yaml:2: one document expected"},
        {"lr: 1\nseed: 2\nlr: 3\n", "c9.yaml:3: key lr given twice (first at "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[16], *out;
        snprintf(name, sizeof name, "c%zu.yaml", i);
        const char *path = scratch_file(name, cases[i].yaml);
        CHECK_EQ_INT(run_shellf(&out, "%s train --config %s", rosa_bin(), path), 2);
        CHECK_MSG(out && strncmp(out, "rosa: error: rosa train: ", 25) == 0 && strstr(out, cases[i].want) &&
                      !strchr(out, '\n')[1],
                  "case %zu: got: %s", i, out);
        free(out);
    }
    char *out;
    CHECK_EQ_INT(run_shellf(&out, "%s train --config /nonexistent/run.yaml", rosa_bin()), 2);
    CHECK_STR(out, "rosa: error: rosa train: --config /nonexistent/run.yaml: cannot open the file\n");
    free(out);
    const char *p = scratch_file("ok.yaml", "quiet: true\n");
    CHECK_EQ_INT(run_shellf(&out, "%s train --config %s --config=%s", rosa_bin(), p, p), 2);
    CHECK_STR(out, "rosa: error: rosa train: --config given twice: give one file\n");
    free(out);
    /* Every subcommand reads one; generate has no --data. */
    p = scratch_file("gen.yaml", "data: x.json\n");
    CHECK_EQ_INT(run_shellf(&out, "%s generate --config %s", rosa_bin(), p), 2);
    CHECK_MSG(strstr(out, "gen.yaml:1 (key data): unknown option --data") != NULL, "got: %s", out);
    free(out);
    p = scratch_file("gen2.yaml", "model: /nonexistent\nmax_new_tokens: 3\n");
    CHECK_EQ_INT(run_shellf(&out, "%s generate --config %s -m %s --ignore-eos --json", rosa_bin(), p, stories_arg()), 0);
    CHECK_MSG(strstr(out, "\"ids\": [") != NULL, "the command line's -m did not override the file: %s", out);
    free(out);
}

/* --init-adapter decides the method and structure: a different --method or
 * rank on the command line is a usage error naming both; dropout may differ. */
TEST(cli_init_adapter_contradictions) {
    const char *data = test_tmp_path("init.jsonl"), *dir = test_tmp_path("init_src");
    write_toy_records(data, 4);
    char *out;
    const char *base = "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 2 --micro-batch-size 2 "
                       "--save-steps 0 --quiet --warmup-steps 0";
    char fmt[512];
    snprintf(fmt, sizeof fmt, "%s --rank 4", base);
    REQUIRE(run_shellf(&out, fmt, rosa_bin(), stories_arg(), data, dir) == 0);
    free(out);
    static const struct {
        const char *flags, *want;
    } cases[] = {
        {"--rank 8", "rosa: error: rosa train: --init-adapter holds rank 4, --rank 8: give one"},
        {"--lora-r 8", "rosa: error: rosa train: --init-adapter holds rank 4, --rank 8: give one"},
        {"--method roae", "rosa: error: rosa train: --init-adapter holds a LoRA adapter, --method roae another"},
        {"--target-modules q_proj", "--init-adapter holds target-modules q_proj,v_proj, --target-modules q_proj"},
        {"--param-budget 0.01", "--init-adapter and --param-budget do not go together"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(fmt, sizeof fmt, "%s --init-adapter %%s %s", base, cases[i].flags);
        CHECK_EQ_INT(run_shellf(&out, fmt, rosa_bin(), stories_arg(), data, test_tmp_path("init_dst"), dir), 2);
        CHECK_MSG(out && strstr(out, cases[i].want), "%s: got: %s", cases[i].flags, out);
        free(out);
    }
    snprintf(fmt, sizeof fmt, "%s --init-adapter %%s --rank 4 --dropout 0.2 --method lora", base);
    CHECK_EQ_INT(run_shellf(&out, fmt, rosa_bin(), stories_arg(), data, test_tmp_path("init_dst"), dir), 0);
    free(out);
}

/* Each subcommand's usage errors exit 2, zero and negative values included
 * (never silently the default), with one "rosa: error:" line. */
TEST(cli_usage_errors_exit_2_on_every_subcommand) {
    const char *M = stories_arg();
    char train[1200], data[512];
    snprintf(data, sizeof data, "%s", test_tmp_path("usage.jsonl"));
    write_toy_records(data, 4);
    snprintf(train, sizeof train, "train --model %s --data %s --output %s", M, data, test_tmp_path("usage_out"));
    static const char *const fmts[] = {
        "%1$s --rank 0", "%1$s --param-budget -1", "%1$s --lr -1", "%1$s --max-steps -3", "%1$s --warmup-ratio 2",
        "%1$s --warmup-ratio 0.1 --warmup-steps 3", "%1$s --micro-batch-size 0", "%1$s --cutoff-len 0",
        "%1$s --threads 0", "%1$s --threads -1", "%1$s --dropout 1.5", "%1$s --method nosuch", "%1$s --r-low 0.5",
        "generate --model %2$s --max-new-tokens -1", "generate --model %2$s --threads 0", "generate --model %2$s --top-p 0",
        "info --model %2$s --bogus", "tokenize --model %2$s --bogus", "loss --model %2$s --data %3$s --micro-batch-size 0",
        "loss --model %2$s --data %3$s --limit -1", "loss --model %2$s --data %3$s --limit 0",
        "merge --model %2$s --adapter x --output y --max-shard-size 0", "eval --model %2$s --tasks nosuch",
        "eval --model %2$s --tasks boolq --num-beams 0", "eval --model %2$s --tasks boolq --limit 0",
        "eval --model %2$s --tasks boolq --threads 0", "report", "report x --ouput y.html",
        "analyze --model %2$s --bogus",
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        char args[2048], *out;
        snprintf(args, sizeof args, fmts[i], train, M, data);
        int rc = rosa_run(args, 1, &out);
        CHECK_MSG(rc == 2, "rosa %s: exit %d: %s", args, rc, out);
        CHECK_MSG(out && strstr(out, "rosa: error: ") && !strstr(strstr(out, "rosa: error: ") + 1, "rosa: error: "),
                  "rosa %s: %s", args, out);
        free(out);
    }
}

/* What works but is unlikely to be meant gets a warning, as transformers gives one. */
TEST(cli_warnings_for_ignored_or_wasted_options) {
    char *out;
    CHECK_EQ_INT(run_shellf(&out, "%s generate -m %s -p hi -n 2 --top-k 5", rosa_bin(), stories_arg()), 0);
    CHECK_MSG(strstr(out, "rosa: warning: --top-k has no effect with greedy decoding (--temperature 0)") != NULL,
              "got: %s", out);
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s generate -m %s -p hi -n 2 --top-k 5 --temperature 0.7", rosa_bin(), stories_arg()), 0);
    CHECK_MSG(strstr(out, "warning") == NULL, "sampling uses --top-k: %s", out);
    free(out);
    const char *data = test_tmp_path("warn.jsonl");
    write_toy_records(data, 2);
    /* hidden 64: rank 100 cannot be reached by B A */
    CHECK_EQ_INT(run_shellf(&out, "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 2 "
                                  "--micro-batch-size 2 --rank 100 --warmup-ratio 0.5 --log-format plain",
                            rosa_bin(), stories_arg(), data, test_tmp_path("warn_out")),
                 0);
    CHECK_MSG(strstr(out, "rosa: warning: LoRA rank 100 is above min(in, out) = 64 of model.layers.0.self_attn.q_proj") !=
                  NULL,
              "got: %s", out);
    CHECK_MSG(strstr(out, "--warmup-steps") == NULL, "--warmup-ratio replaces --warmup-steps: %s", out);
    free(out);
}

/* rosa report takes the same spellings as the other parsers. */
TEST(cli_report_spellings_and_suggestions) {
    char *out;
    CHECK_EQ_INT(run_shellf(&out, "%s report /nonexistent --ouput x.html", rosa_bin()), 2);
    CHECK_STR(out, "rosa: error: rosa report: unknown option --ouput (did you mean --output?)\n");
    free(out);
    CHECK_EQ_INT(run_shellf(&out, "%s report /nonexistent/run --output_file x.html", rosa_bin()), 2);
    CHECK_MSG(strstr(out, "unknown option --output_file") != NULL, "got: %s", out);
    free(out);
    /* --compare_runs is not --compare; --Output is not --output (case matters, as in argparse). */
    CHECK_EQ_INT(run_shellf(&out, "%s report /nonexistent/run --output=%s", rosa_bin(), test_tmp_path("r.html")), 1);
    CHECK_MSG(strstr(out, "unknown option") == NULL, "got: %s", out);
    free(out);
}
