/* test_records.c: the records of a training run (issue 18, item 3):
 * training_args.json and SHA-256, --resume comparing the recorded options,
 * a longer resumed run, the end-of-run summary and train_results.json,
 * train.lock, HF's trainer_state.json, --save-total-limit,
 * --load-best-model-at-end, base_model_name_or_path and the model card.
 * The runs use the real binary (ROSA_BIN) on the shipped stories260K. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/sha256.h"
#include "core/util.h"
#include "io/json.h"
#include "test.h"

/* FIPS 180-4's examples (NIST CSRC "SHA256.pdf", "SHA2_Additional.pdf"). */
TEST(sha256_nist_vectors) {
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rosa_sha256 s;
        rosa_sha256_init(&s);
        rosa_sha256_update(&s, v[i].msg, strlen(v[i].msg));
        rosa_sha256_hex(&s, hex);
        CHECK_STR(hex, v[i].hex);
    }
    /* one million 'a', fed in uneven pieces (the block boundary crossed every way) */
    rosa_sha256 s;
    rosa_sha256_init(&s);
    char a[1024]; /* pieces of up to 1009 bytes */
    memset(a, 'a', sizeof a);
    size_t left = 1000000, k = 1;
    while (left) {
        size_t n = k < left ? k : left;
        rosa_sha256_update(&s, a, n);
        left -= n;
        k = k % 997 + 13;
    }
    rosa_sha256_hex(&s, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static const char *records(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", test_tmp_path("records-data.jsonl"));
        write_toy_records(path, 24);
    }
    return path;
}

/* A run of `steps` steps on data into out, with extra options; returns the exit status, output in *o. */
static int train_on(const char *data, const char *out, int steps, const char *extra, char **o) {
    return run_shellf(o,
                      "%s train --model %s --data %s --output %s --max-steps %d --save-steps 2 --batch-size 4 "
                      "--micro-batch-size 2 --cutoff-len 48 --seed 5 --threads 1 --warmup-steps 0 %s",
                      rosa_bin(), shared_path("models/stories260K"), data, out, steps, extra);
}

static int train(const char *out, int steps, const char *extra, char **o) {
    return train_on(records(), out, steps, extra, o);
}

static cJSON *load(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return rosa_json_load(p);
}

static int exists_in(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return rosa_file_exists(p);
}

TEST(records_training_args_json) {
    const char *out = test_tmp_path("records-args");
    char *o = NULL;
    int rc = train(out, 2, "--quiet --lr 0.001", &o);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", o), 0));
    free(o);
    cJSON *j = load(out, "training_args.json");
    REQUIRE(j);
    static const char *const top[] = {"options", "data", "model", "command_line", "rosa", "machine"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(j, top[i]), "training_args.json: no \"%s\"", top[i]);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, "options");
    /* every option, defaults included, under its flag */
    static const char *const keys[] = {"model", "data", "output", "method", "rank", "alpha", "dropout",
                                       "target-modules", "layers", "lr", "adam-beta1", "lr-scheduler", "warmup-steps",
                                       "batch-size", "micro-batch-size", "epochs", "max-steps", "seed", "cutoff-len",
                                       "train-on-inputs", "val-set-size", "eval-steps", "save-steps", "dtype",
                                       "threads", "dls", "dls-interval", "save-total-limit", "base-model-name"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(opt, keys[i]), "options: no \"%s\"", keys[i]);
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(opt, "lr"), *rank = cJSON_GetObjectItemCaseSensitive(opt, "rank"),
                *tm = cJSON_GetObjectItemCaseSensitive(opt, "target-modules");
    CHECK(cJSON_IsNumber(lr) && lr->valuedouble == 0.001);
    CHECK(cJSON_IsNumber(rank) && rank->valuedouble == 8);
    CHECK(cJSON_IsString(tm) && strcmp(tm->valuestring, "q_proj,v_proj") == 0);
    /* the data file's size and digest, as sha256sum computes it */
    char *sum = NULL;
    REQUIRE(run_shellf(&sum, "sha256sum %s | cut -c1-64", records()) == 0);
    sum[strcspn(sum, "\n")] = 0;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(data, "sha256"), *path = cJSON_GetObjectItemCaseSensitive(data, "path"),
                *bytes = cJSON_GetObjectItemCaseSensitive(data, "bytes");
    CHECK(cJSON_IsString(sha) && strcmp(sha->valuestring, sum) == 0);
    CHECK(cJSON_IsString(path) && path->valuestring[0] == '/');
    FILE *f = fopen(records(), "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    CHECK(cJSON_IsNumber(bytes) && bytes->valuedouble == (double)ftell(f));
    fclose(f);
    free(sum);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(model, "config_sha256");
    CHECK(cJSON_IsString(cs) && strlen(cs->valuestring) == 64);
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "command_line");
    CHECK(cJSON_IsArray(cl) && cJSON_GetArraySize(cl) > 4 &&
          strcmp(cJSON_GetArrayItem(cl, 1)->valuestring, "train") == 0);
    const cJSON *build = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "rosa"), "build");
    CHECK(cJSON_GetObjectItemCaseSensitive(build, "blas") && cJSON_GetObjectItemCaseSensitive(build, "onednn") &&
          cJSON_GetObjectItemCaseSensitive(build, "dtype"));
    const cJSON *cpus = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "machine"), "cpus");
    CHECK(cJSON_IsNumber(cpus) && cpus->valuedouble >= 1);
    cJSON_Delete(j);
    /* a clean run leaves no lock */
    CHECK(!exists_in(out, "train.lock"));
}

/* --resume names every option that would change the math, old -> new, in
 * one message; options that do not (threads, output side) may change. */
TEST(records_resume_refuses_changed_options) {
    const char *out = test_tmp_path("records-resume");
    char *o = NULL;
    REQUIRE(train(out, 4, "--quiet --lr 0.001", &o) == 0);
    free(o);
    REQUIRE(run_shellf(NULL, "rm -rf %s/checkpoint-4", out) == 0);
    int rc = train(out, 4, "--quiet --lr 0.002 --resume", &o);
    CHECK_MSG(rc == 1 && strstr(o, "--lr 0.001 -> 0.002"), "exit %d: %s", rc, o);
    free(o);
    rc = train(out, 4, "--quiet --lr 0.002 --rank 4 --resume", &o);
    CHECK_MSG(rc == 1 && strstr(o, "--lr 0.001 -> 0.002") && strstr(o, "--rank 8 -> 4"), "exit %d: %s", rc, o);
    free(o);
    CHECK(!exists_in(out, "train.lock")); /* a refused run removes its lock too */
    rc = train(out, 4, "--quiet --lr 0.001 --resume --weight-decay 0.01", &o);
    CHECK_MSG(rc == 1 && strstr(o, "--weight-decay 0 -> 0.01"), "exit %d: %s", rc, o);
    free(o);
    rc = train(out, 4, "--quiet --lr 0.001 --resume --quantize int8", &o); /* another base model's numbers */
    CHECK_MSG(rc == 1 && strstr(o, "--quantize none -> int8"), "exit %d: %s", rc, o);
    free(o);
    /* output-side options may change */
    rc = train(out, 4, "--quiet --lr 0.001 --resume --eval-steps 7 --save-total-limit 3 --log-format plain", &o);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, o);
    free(o);
}

/* The data file changed under the same name: refused by its SHA-256. */
TEST(records_resume_refuses_changed_data) {
    const char *out = test_tmp_path("records-data"), *data = test_tmp_path("records-data-copy.jsonl");
    REQUIRE(run_shellf(NULL, "cp %s %s", records(), data) == 0);
    char *o = NULL;
    REQUIRE(train_on(data, out, 4, "--quiet", &o) == 0);
    free(o);
    REQUIRE(run_shellf(NULL, "rm -rf %s/checkpoint-4 && head -n 1 %s >> %s", out, data, data) == 0);
    int rc = train_on(data, out, 4, "--quiet --resume", &o);
    CHECK_MSG(rc == 1 && strstr(o, "--data: the file changed (sha256 "), "exit %d: %s", rc, o);
    free(o);
}

/* A run of an older rosa (no training_args.json) resumes, with a warning. */
TEST(records_resume_without_record_warns) {
    const char *out = test_tmp_path("records-old");
    char *o = NULL;
    REQUIRE(train(out, 4, "--quiet", &o) == 0);
    free(o);
    REQUIRE(run_shellf(NULL, "rm -rf %s/checkpoint-4 %s/training_args.json", out, out) == 0);
    int rc = train(out, 4, "--quiet --resume", &o);
    CHECK_MSG(rc == 0 && strstr(o, "training_args.json: not found"), "exit %d: %s", rc, o);
    free(o);
}

/* A larger --max-steps extends the run and says so; with a constant schedule
 * (the learning rate does not depend on the run's length) the result is
 * bit-identical to an uninterrupted longer run.  A smaller one is refused. */
TEST(records_resume_longer_run) {
    const char *a = test_tmp_path("records-long-a"), *b = test_tmp_path("records-long-b");
    char *o = NULL;
    REQUIRE(train(a, 4, "--quiet --lr-scheduler constant --lr 0.01", &o) == 0);
    free(o);
    int rc = train(a, 8, "--quiet --lr-scheduler constant --lr 0.01 --resume", &o);
    CHECK_MSG(rc == 0 && strstr(o, "from 4 to 8 steps"), "exit %d: %s", rc, o);
    free(o);
    REQUIRE(train(b, 8, "--quiet --lr-scheduler constant --lr 0.01", &o) == 0);
    free(o);
    rc = run_shellf(&o, "cmp %s/adapter_model.safetensors %s/adapter_model.safetensors", a, b);
    CHECK_MSG(rc == 0, "the extended run differs from the uninterrupted one: %s", o);
    free(o);
    /* shorter than the checkpoint's run: cut back to checkpoint-6 of the 8-step run */
    REQUIRE(run_shellf(NULL, "rm -rf %s/checkpoint-8", a) == 0);
    rc = train(a, 6, "--quiet --lr-scheduler constant --lr 0.01 --resume", &o);
    CHECK_MSG(rc == 1 && strstr(o, "with the same options (or more steps)"), "exit %d: %s", rc, o);
    free(o);
}

TEST(records_summary_results_and_hf_state) {
    const char *out = test_tmp_path("records-summary");
    char *o = NULL;
    int rc = train(out, 4, "--log-format plain --val-set-size 4 --eval-steps 2", &o);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", o), 0));
    CHECK_MSG(strstr(o, "rosa: done: 4 steps") && strstr(o, "tokens/s") && strstr(o, "train loss: final") &&
                  strstr(o, "validation loss: final") && strstr(o, "peak RSS") && strstr(o, "adapter saved in"),
              "summary: %s", o);
    free(o);
    cJSON *r = load(out, "train_results.json");
    REQUIRE(r);
    static const char *const keys[] = {"epoch", "global_step", "train_runtime", "train_samples_per_second",
                                       "train_loss", "train_tokens_per_second", "eval_loss", "best_eval_loss",
                                       "peak_rss_bytes", "adapter_dir"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(r, keys[i]), "train_results.json: no \"%s\"", keys[i]);
    CHECK(cJSON_GetObjectItemCaseSensitive(r, "global_step")->valuedouble == 4);
    cJSON_Delete(r);
    char ck[600];
    snprintf(ck, sizeof ck, "%s/checkpoint-4", out);
    cJSON *s = load(ck, "trainer_state.json");
    REQUIRE(s);
    static const char *const hf[] = {"global_step", "epoch", "max_steps", "num_train_epochs", "log_history",
                                     "best_metric", "best_model_checkpoint", "logging_steps", "eval_steps",
                                     "save_steps", "train_batch_size", "trial_name", "is_world_process_zero"};
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++)
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(s, hf[i]), "trainer_state.json: no \"%s\"", hf[i]);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "log_history");
    int n_loss = 0, n_eval = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        n_loss += cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "loss")) &&
                  cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "learning_rate"));
        n_eval += cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "eval_loss"));
    }
    CHECK_EQ_INT(n_loss, 4);
    CHECK_EQ_INT(n_eval, 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(s, "global_step")->valuedouble == 4);
    CHECK(cJSON_GetObjectItemCaseSensitive(s, "max_steps")->valuedouble == 4);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "best_metric")));
    cJSON_Delete(s);
    CHECK(exists_in(ck, "rosa_state.json"));
    CHECK(!exists_in(out, "train.lock"));
}

static int count_checkpoints(const char *out) {
    DIR *d = opendir(out);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strncmp(e->d_name, "checkpoint-", 11) == 0;
    closedir(d);
    return n;
}

TEST(records_save_total_limit) {
    const char *out = test_tmp_path("records-limit");
    char *o = NULL;
    int rc = train(out, 8, "--quiet --save-total-limit 2", &o);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", o), 0));
    free(o);
    CHECK_EQ_INT(count_checkpoints(out), 2);
    CHECK(exists_in(out, "checkpoint-6/trainer_state.json") && exists_in(out, "checkpoint-8/trainer_state.json"));
}

/* The lowest validation loss at a checkpoint is kept and becomes the final adapter. */
TEST(records_load_best_model_at_end) {
    const char *out = test_tmp_path("records-best");
    char *o = NULL;
    int rc = train(out, 8, "--quiet --save-total-limit 1 --load-best-model-at-end --val-set-size 4 --eval-steps 2 "
                           "--lr 0.05 --lr-scheduler constant", &o);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", o), 0));
    free(o);
    /* the best step, from metrics.jsonl */
    char p[600];
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    FILE *f = fopen(p, "r");
    REQUIRE(f);
    char line[4096];
    double best = INFINITY;
    int best_step = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "val_loss"), *s = cJSON_GetObjectItemCaseSensitive(j, "step");
        if (cJSON_IsNumber(v) && v->valuedouble < best) best = v->valuedouble, best_step = (int)s->valuedouble;
        cJSON_Delete(j);
    }
    fclose(f);
    REQUIRE(best_step > 0);
    cJSON *r = load(out, "train_results.json");
    REQUIRE(r);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(r, "best_global_step")->valuedouble, best_step);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "loaded_best_model")));
    cJSON_Delete(r);
    char ck[64];
    snprintf(ck, sizeof ck, "checkpoint-%d/trainer_state.json", best_step);
    CHECK_MSG(exists_in(out, ck), "%s was removed", ck);
    CHECK(exists_in(out, "checkpoint-8/trainer_state.json"));
    CHECK_EQ_INT(count_checkpoints(out), best_step == 8 ? 1 : 2);
    rc = run_shellf(&o, "cmp %s/adapter_model.safetensors %s/checkpoint-%d/adapter_model.safetensors", out, out,
                    best_step);
    CHECK_MSG(rc == 0, "the final adapter is not checkpoint-%d's: %s", best_step, o);
    free(o);
    /* without a validation set it is a usage error */
    rc = train(test_tmp_path("records-best-noval"), 2, "--quiet --load-best-model-at-end", &o);
    CHECK_MSG(rc == 2 && strstr(o, "--load-best-model-at-end needs a validation set"), "exit %d: %s", rc, o);
    free(o);
}

TEST(records_base_model_and_card) {
    const char *out = test_tmp_path("records-card");
    char *o = NULL;
    int rc = train(out, 2, "--quiet", &o);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", o), 0));
    free(o);
    char *abs = rosa_real_path(shared_path("models/stories260K"));
    REQUIRE(abs);
    cJSON *c = load(out, "adapter_config.json");
    REQUIRE(c);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(c, "base_model_name_or_path");
    CHECK(cJSON_IsString(b) && strcmp(b->valuestring, abs) == 0);
    cJSON_Delete(c);
    char p[600], *card = NULL;
    snprintf(p, sizeof p, "%s/README.md", out);
    REQUIRE(run_shellf(&card, "cat %s", p) == 0);
    CHECK_MSG(strncmp(card, "---\nbase_model: \"", 17) == 0 && strstr(card, abs) && strstr(card, "library_name: peft") &&
                  strstr(card, "\n- lora\n") && strstr(card, "### Training hyperparameters") &&
                  strstr(card, "final train loss"),
              "README.md: %s", card);
    free(card);
    free(abs);
    rc = train(out, 2, "--quiet --overwrite --base-model-name karpathy/tinyllamas", &o);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", o), 0));
    free(o);
    c = load(out, "adapter_config.json");
    REQUIRE(c);
    b = cJSON_GetObjectItemCaseSensitive(c, "base_model_name_or_path");
    CHECK(cJSON_IsString(b) && strcmp(b->valuestring, "karpathy/tinyllamas") == 0);
    cJSON_Delete(c);
    c = load(out, "checkpoint-2/adapter_config.json");
    REQUIRE(c);
    b = cJSON_GetObjectItemCaseSensitive(c, "base_model_name_or_path");
    CHECK(cJSON_IsString(b) && strcmp(b->valuestring, "karpathy/tinyllamas") == 0);
    cJSON_Delete(c);
}
