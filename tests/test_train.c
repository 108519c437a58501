/* test_train.c: the optimizer, schedules and clipping against hand-computed
 * values; end-to-end parity of `rosa train` with the PyTorch reference
 * (tools/ref_train.py); checkpoints, resume, merge and the loss command. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peft/lora.h"
#include "peft/roae.h"
#include "io/json.h"
#include "model/model.h"
#include "test.h"
#include "peft/peft.h"
#include "train/checkpoint.h"
#include "core/util.h"
#include "train/optim.h"
#include "train/trainer.h"

TEST(lr_schedules_match_transformers) {
    /* get_linear_schedule_with_warmup(W=10, T=110) */
    CHECK(rosa_lr_factor(ROSA_SCHED_LINEAR, 0, 110, 10) == 0.0);
    CHECK(fabs(rosa_lr_factor(ROSA_SCHED_LINEAR, 5, 110, 10) - 0.5) < 1e-12);
    CHECK(fabs(rosa_lr_factor(ROSA_SCHED_LINEAR, 10, 110, 10) - 1.0) < 1e-12);
    CHECK(fabs(rosa_lr_factor(ROSA_SCHED_LINEAR, 60, 110, 10) - 0.5) < 1e-12);
    CHECK(rosa_lr_factor(ROSA_SCHED_LINEAR, 110, 110, 10) == 0.0);
    /* cosine: half way through the decay is 0.5; the end is 0 */
    CHECK(fabs(rosa_lr_factor(ROSA_SCHED_COSINE, 60, 110, 10) - 0.5) < 1e-12);
    CHECK(fabs(rosa_lr_factor(ROSA_SCHED_COSINE, 35, 110, 10) - 0.5 * (1 + cos(M_PI * 0.25))) < 1e-12);
    CHECK(fabs(rosa_lr_factor(ROSA_SCHED_COSINE, 110, 110, 10)) < 1e-12);
    /* no warm-up: step 0 runs at the full rate */
    CHECK(rosa_lr_factor(ROSA_SCHED_LINEAR, 0, 10, 0) == 1.0);
    CHECK(rosa_lr_factor(ROSA_SCHED_CONSTANT, 7, 10, 2) == 1.0);
}

static rosa_adapter *tiny_adapter(void) {
    rosa_config c = {0};
    c.num_layers = 1;
    c.hidden_size = 2;
    c.intermediate_size = 2;
    c.num_heads = 1;
    c.num_kv_heads = 1;
    c.head_dim = 2;
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 1;
    o.targets = 1u << PROJ_Q;
    return rosa_adapter_new_lora(&c, &o, 1);
}

TEST(adamw_matches_torch_by_hand) {
    rosa_adapter *a = tiny_adapter();
    REQUIRE(a);
    rosa_adamw opt;
    REQUIRE(rosa_adamw_init(&opt, a) == 0);
    rosa_adamw_options o = {0.1f, 0.9f, 0.999f, 1e-8f, 0.01f};
    a->w[0] = 1.0f;
    a->g[0] = 0.5f;
    rosa_adamw_step(&opt, a, NULL, 0.1f, &o);
    /* torch: p = 1*(1-0.1*0.01) = 0.999; m = 0.05, v = 0.00025; mhat = 0.5, vhat = 0.25;
     * p -= 0.1 * 0.5 / (0.5 + 1e-8) -> 0.899 */
    CHECK(fabs(a->w[0] - 0.899f) < 1e-6);
    a->g[0] = -1.0f;
    rosa_adamw_step(&opt, a, NULL, 0.1f, &o);
    double p = 0.899 * (1 - 0.001), m = 0.9 * 0.05 - 0.1, v = 0.999 * 0.00025 + 0.001;
    double mhat = m / (1 - 0.81), denom = sqrt(v) / sqrt(1 - 0.999 * 0.999) + 1e-8;
    p -= 0.1 * mhat / denom;
    CHECK_MSG(fabs(a->w[0] - p) < 1e-6, "w = %.8f, expected %.8f", a->w[0], p);
    CHECK_EQ_INT(opt.step[0], 2);
    /* An inactive tensor keeps its values, moments and step count. */
    uint8_t active[2] = {0, 1};
    float keep = a->w[0], keep_m = opt.m[0];
    rosa_adamw_step(&opt, a, active, 0.1f, &o);
    CHECK(a->w[0] == keep && opt.m[0] == keep_m && opt.step[0] == 2 && opt.step[1] == 3);
    rosa_adamw_free(&opt);
    rosa_adapter_free(a);
}

TEST(clip_grad_norm_like_torch) {
    rosa_adapter *a = tiny_adapter();
    REQUIRE(a);
    memset(a->g, 0, sizeof(float) * a->n_floats);
    a->g[0] = 3.0f;
    a->g[a->n_floats - 1] = 4.0f;
    double n = rosa_grad_norm(a, NULL);
    CHECK(fabs(n - 5.0) < 1e-12);
    rosa_clip_grads(a, NULL, n, 1.0f);
    CHECK(fabs(a->g[0] - 3.0f / (5.0f + 1e-6f)) < 1e-7);
    rosa_clip_grads(a, NULL, rosa_grad_norm(a, NULL), 2.0f); /* below the limit: unchanged */
    CHECK(fabs(a->g[0] - 3.0f / (5.0f + 1e-6f)) < 1e-7);
    rosa_adapter_free(a);
}

/* ------------------------------------------------ end-to-end with the CLI */

static int sh(const char *cmd, char **out) { return run_capture(cmd, 1, out); }

static cJSON *load_json(const char *path) {
    cJSON *j = rosa_json_load(path);
    return j;
}

/* 10 AdamW steps of rosa and tools/ref_train.py from the same adapter (made
 * by the reference with make_flags, in PEFT's layout): step losses, gradient
 * norms, the final adapter, and `rosa loss`'s per-example losses. */
static void reference_parity(const char *tag, const char *make_flags, const char *train_flags) {
    const char *model = shared_path("models/stories260K");
    char names[5][64];
    const char *suffix[5] = {".jsonl", "-dump.json", "-init", "-ref.json", "-out"};
    for (int i = 0; i < 5; i++) snprintf(names[i], sizeof names[i], "%s%s", tag, suffix[i]);
    const char *data = test_tmp_path(names[0]), *dump = test_tmp_path(names[1]), *init = test_tmp_path(names[2]),
               *ref = test_tmp_path(names[3]), *out = test_tmp_path(names[4]);
    write_toy_records(data, 16);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --data %s --template train --cutoff-len 48 --json > %s", rosa_bin(),
             model, data, dump);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd,
             REF " tools/ref_train.py make-adapter --model %s %s --seed 3 --out %s", model, make_flags, init);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    const char *hyper = "--max-steps 10 --batch-size 4 --micro-batch-size 2 --lr 5e-3 --warmup-steps 3 "
                        "--max-grad-norm 0.5 --weight-decay 0.01 --lr-scheduler linear";
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s %s -q", model,
             dump, init, ref, hyper);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --init-adapter %s --output %s %s --cutoff-len 48 --no-shuffle "
             "--save-steps 0 --quiet --overwrite %s",
             rosa_bin(), model, data, init, out, hyper, train_flags);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "rosa train failed: %s", o);
    free(o);
    REQUIRE(rc == 0);

    cJSON *r = load_json(ref);
    REQUIRE(r);
    /* Step losses from metrics.jsonl. */
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", out);
    size_t len;
    char *metrics = rosa_read_file(mpath, &len);
    REQUIRE(metrics);
    float losses[10], norms[10];
    int n = 0;
    for (char *line = strtok(metrics, "\n"); line && n < 10; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (j && cJSON_GetObjectItem(j, "loss")) {
            losses[n] = (float)cJSON_GetObjectItem(j, "loss")->valuedouble;
            norms[n++] = (float)cJSON_GetObjectItem(j, "grad_norm")->valuedouble;
        }
        cJSON_Delete(j);
    }
    free(metrics);
    CHECK_EQ_INT(n, 10);
    double el = max_rel_json(losses, cJSON_GetObjectItem(r, "losses"), n);
    double eg = max_rel_json(norms, cJSON_GetObjectItem(r, "grad_norms"), n);
    CHECK_MSG(el <= 1e-4, "step losses differ by %g", el);
    CHECK_MSG(eg <= 1e-4, "grad norms differ by %g", eg);
    /* The adapter after 10 AdamW steps. */
    rosa_model *m = rosa_model_load(model);
    REQUIRE(m);
    rosa_adapter *a = rosa_adapter_load(out, &m->cfg);
    REQUIRE(a);
    const cJSON *ad = cJSON_GetObjectItem(r, "adapter");
    double worst = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        const cJSON *want = cJSON_GetObjectItem(ad, a->params[i].name);
        CHECK_MSG(want != NULL, "reference lacks %s", a->params[i].name);
        if (!want) continue;
        double e = max_rel_json(a->w + a->params[i].offset, want, a->params[i].rows * a->params[i].cols);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst <= 1e-4, "adapter differs from the reference by %g", worst);
    rosa_adapter_free(a);
    rosa_model_free(m);

    /* Per-example losses at the initial adapter: `rosa loss` vs the reference. */
    snprintf(cmd, sizeof cmd, "%s loss --model %s --adapter %s --data %s --cutoff-len 48 --per-example --json "
             "--micro-batch-size 3", rosa_bin(), model, init, data);
    REQUIRE(run_capture(cmd, 0, &o) == 0);
    cJSON *lj = cJSON_Parse(o);
    free(o);
    REQUIRE(lj);
    const cJSON *per = cJSON_GetObjectItem(lj, "per_example"), *want = cJSON_GetObjectItem(r, "per_example_init_loss");
    CHECK_EQ_INT(cJSON_GetArraySize(per), 16);
    double ep = 0.0;
    for (int i = 0; i < 16; i++) {
        double e = fabs(cJSON_GetArrayItem(per, i)->valuedouble - cJSON_GetArrayItem(want, i)->valuedouble);
        if (e > ep) ep = e;
    }
    CHECK_MSG(ep <= 1e-5, "per-example losses differ by %g", ep);
    cJSON_Delete(lj);
    cJSON_Delete(r);
}

TEST(train_lora_matches_pytorch_reference) {
    reference_parity("lora", "--method lora --rank 4 --alpha 8 "
                             "--target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --b-std 0.05",
                     "--dropout 0");
}

/* DoRA (use_dora): magnitudes away from ||W|| and B != 0, on every projection. */
TEST(train_dora_matches_pytorch_reference) {
    reference_parity("dora", "--method dora --rank 4 --alpha 8 "
                             "--target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --b-std 0.05",
                     "--dropout 0");
}

/* SHiRA: the reference's file holds no indices, so rosa draws PEFT's mask
 * from random_seed with PyTorch's randperm: any other mask would train other
 * entries and the losses would part at step 1. */
/* FourierFT: the frequency positions drawn again from random_loc_seed (as
 * PEFT does on load), the spectrum through the factored inverse DFT. */
TEST(train_fourierft_matches_pytorch_reference) {
    reference_parity("fourierft", "--method fourierft --n-frequency 40 --fourier-scaling 30 --random-loc-seed 5 "
                                  "--target-modules q_proj,v_proj,down_proj", "");
}

TEST(train_shira_matches_pytorch_reference) {
    reference_parity("shira", "--method shira --rank 2 --shira-seed 7 --target-modules q_proj,v_proj,down_proj", "");
}

/* Token-normalised loss, a cosine schedule and micro-batches of 1. */
TEST(train_token_loss_norm_matches_pytorch_reference) {
    const char *model = shared_path("models/stories260K");
    const char *data = test_tmp_path("tok.jsonl"), *dump = test_tmp_path("tok-dump.json"), *init = test_tmp_path("tok-init"),
               *ref = test_tmp_path("tok-ref.json"), *out = test_tmp_path("tok-out");
    write_toy_records(data, 12);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --data %s --template train --cutoff-len 40 --train-on-inputs false "
             "--json > %s", rosa_bin(), model, data, dump);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s --method lora --rank 2 --alpha 4 "
             "--target-modules q_proj,v_proj --rslora --layers 1,3 --b-std 0.05 --seed 5 --out %s", model, init);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    const char *hyper = "--max-steps 6 --batch-size 3 --micro-batch-size 1 --lr 1e-2 --warmup-steps 0 "
                        "--max-grad-norm 0 --lr-scheduler cosine --loss-norm token";
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s %s -q", model,
             dump, init, ref, hyper);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s %s --cutoff-len 40 "
             "--train-on-inputs false --no-shuffle --dropout 0 --quiet --overwrite", rosa_bin(), model, data, init, out,
             hyper);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "rosa train failed: %s", o);
    free(o);
    REQUIRE(rc == 0);
    cJSON *r = load_json(ref);
    REQUIRE(r);
    rosa_model *m = rosa_model_load(model);
    rosa_adapter *a = m ? rosa_adapter_load(out, &m->cfg) : NULL;
    REQUIRE(a);
    CHECK(((rosa_lora_options *)a->opts)->rslora && a->n_params == 2 * 2 * 2);
    double worst = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "adapter"), a->params[i].name);
        if (!want) {
            CHECK_MSG(0, "reference lacks %s", a->params[i].name);
            continue;
        }
        double e = max_rel_json(a->w + a->params[i].offset, want, a->params[i].rows * a->params[i].cols);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst <= 1e-4, "adapter differs from the reference by %g", worst);
    rosa_adapter_free(a);
    rosa_model_free(m);
    cJSON_Delete(r);
}

/* 6 steps straight == 3 steps, stop, resume for 3 more: identical adapters. */
TEST(train_resume_is_exact) {
    const char *model = shared_path("models/stories260K");
    const char *data = test_tmp_path("resume.jsonl"), *a_dir = test_tmp_path("straight"), *b_dir = test_tmp_path("resumed");
    write_toy_records(data, 24);
    const char *common = "--max-steps 6 --batch-size 4 --micro-batch-size 2 --lr 3e-3 --warmup-steps 2 "
                         "--cutoff-len 48 --dropout 0.1 --target-modules all --seed 9 --quiet";
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s --save-steps 0", rosa_bin(), model, data,
             a_dir, common);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    /* The second run keeps checkpoint-3 and loses everything after it, as if it
     * had been killed during step 4; then it resumes. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s --save-steps 3", rosa_bin(), model, data,
             b_dir, common);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "rm -rf %s/checkpoint-6 %s/adapter_model.safetensors", b_dir, b_dir);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s --save-steps 3 --resume", rosa_bin(), model,
             data, b_dir, common);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "resume failed: %s", o);
    free(o);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", a_dir);
    snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", b_dir);
    size_t la, lb;
    char *x = rosa_read_file(pa, &la), *y = rosa_read_file(pb, &lb);
    REQUIRE(x && y);
    CHECK_MSG(la == lb && memcmp(x, y, la) == 0, "resumed adapter differs from the straight run");
    free(x);
    free(y);
    /* metrics.jsonl of the resumed run has each step once. */
    snprintf(pb, sizeof pb, "%s/metrics.jsonl", b_dir);
    char *mt = rosa_read_file(pb, &lb);
    REQUIRE(mt);
    int lines = 0, plans = 0;
    for (char *p = strstr(mt, "\"loss\""); p; p = strstr(p + 1, "\"loss\"")) lines++;
    for (char *p = strstr(mt, "\"plan\""); p; p = strstr(p + 1, "\"plan\"")) plans++;
    CHECK_EQ_INT(lines, 6);
    CHECK_EQ_INT(plans, 1);
    free(mt);
    /* A second run into the same directory is refused without --resume/--overwrite. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s", rosa_bin(), model, data, b_dir, common);
    CHECK(sh(cmd, &o) == 1);
    CHECK(strstr(o, "already holds a training run") != NULL);
    free(o);
}

TEST(train_sigint_saves_a_resumable_checkpoint) {
    const char *model = shared_path("models/stories260K");
    const char *data = test_tmp_path("sig.jsonl"), *dir = test_tmp_path("sig-out");
    write_toy_records(data, 40);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd,
             "{ %s train --model %s --data %s --output %s --max-steps 500 --batch-size 4 --micro-batch-size 2 "
             "--cutoff-len 48 --save-steps 0 --log-format plain & pid=$!; sleep 1.5; kill -INT $pid; wait $pid; }",
             rosa_bin(), model, data, dir);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 130, "exit status %d, output: %s", rc, o);
    CHECK(strstr(o, "--resume") != NULL);
    free(o);
    char *latest = NULL;
    CHECK(rosa_checkpoint_latest(dir, &latest) > 0);
    free(latest);
}

TEST(merge_and_generate_with_adapter_agree) {
    const char *model = shared_path("models/stories260K");
    const char *init = test_tmp_path("merge-adapter"), *merged = test_tmp_path("merged");
    char cmd[4096], *o = NULL, *g1 = NULL, *g2 = NULL;
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s --method lora --rank 4 --alpha 8 "
             "--target-modules q_proj,v_proj,down_proj --b-std 0.1 --seed 4 --out %s", model, init);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "%s merge --model %s --adapter %s --output %s --overwrite", rosa_bin(), model, init, merged);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --adapter %s --max-new-tokens 40 --json", rosa_bin(), model, init);
    REQUIRE(run_capture(cmd, 0, &g1) == 0);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --max-new-tokens 40 --json", rosa_bin(), merged);
    REQUIRE(run_capture(cmd, 0, &g2) == 0);
    cJSON *j1 = cJSON_Parse(g1), *j2 = cJSON_Parse(g2);
    REQUIRE(j1 && j2);
    CHECK(cJSON_Compare(cJSON_GetObjectItem(j1, "ids"), cJSON_GetObjectItem(j2, "ids"), 1));
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    free(g1);
    free(g2);
    /* The adapter changes the model's output. */
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --json", rosa_bin(), model, test_tmp_path("parity.jsonl"));
    char *l0 = NULL, *l1 = NULL;
    write_toy_records(test_tmp_path("parity.jsonl"), 16);
    REQUIRE(run_capture(cmd, 0, &l0) == 0);
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --json", rosa_bin(), merged, test_tmp_path("parity.jsonl"));
    REQUIRE(run_capture(cmd, 0, &l1) == 0);
    CHECK(strcmp(l0, l1) != 0);
    free(l0);
    free(l1);
}

/* Writes records [from, to) of an LLM-Adapters JSON file as JSON Lines. */
static int slice_records(const char *src, const char *dst, int from, int to) {
    cJSON *all = rosa_json_load(src);
    if (!all) return -1;
    FILE *f = fopen(dst, "w");
    for (int i = from; i < to && i < cJSON_GetArraySize(all); i++) {
        char *line = cJSON_PrintUnformatted(cJSON_GetArrayItem(all, i));
        fprintf(f, "%s\n", line);
        free(line);
    }
    fclose(f);
    cJSON_Delete(all);
    return 0;
}

static double json_number(const char *json, const char *key) {
    cJSON *j = cJSON_Parse(json);
    double v = j && cJSON_GetObjectItem(j, key) ? cJSON_GetObjectItem(j, key)->valuedouble : NAN;
    cJSON_Delete(j);
    return v;
}

/* The real model on real data: LoRA lowers the loss of held-out boolq records. */
TEST(train_lora_lowers_heldout_loss_on_boolq) {
    const char *model = shared_path("models/stories260K"), *train = test_tmp_path("boolq-train.jsonl"),
               *held = test_tmp_path("boolq-held.jsonl"), *out = test_tmp_path("boolq-out");
    REQUIRE(slice_records(shared_path("data/llm-adapters/boolq/train.json"), train, 0, 96) == 0);
    REQUIRE(slice_records(shared_path("data/llm-adapters/boolq/train.json"), held, 1000, 1024) == 0);
    char cmd[4096], *before = NULL, *after = NULL, *o = NULL;
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --cutoff-len 384 --json", rosa_bin(), model, held);
    REQUIRE(run_capture(cmd, 0, &before) == 0);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --cutoff-len 384 --max-steps 12 "
             "--batch-size 8 --micro-batch-size 4 --lr 3e-3 --warmup-steps 2 --target-modules all --rank 8 "
             "--val-set-size 8 --eval-steps 6 --quiet --overwrite", rosa_bin(), model, train, out);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "train failed: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "%s loss --model %s --adapter %s --data %s --cutoff-len 384 --json", rosa_bin(), model,
             out, held);
    REQUIRE(run_capture(cmd, 0, &after) == 0);
    double b = json_number(before, "token_mean_loss"), a = json_number(after, "token_mean_loss");
    CHECK_MSG(a < b - 0.2, "held-out loss %.4f -> %.4f: training did not help", b, a);
    free(before);
    free(after);
    /* metrics.jsonl has the validation losses, decreasing. */
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len;
    char *m = rosa_read_file(mp, &len);
    REQUIRE(m);
    double v[2] = {0, 0};
    int nv = 0;
    for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
        double x = json_number(line, "val_loss");
        if (!isnan(x) && nv < 2) v[nv++] = x;
    }
    CHECK_EQ_INT(nv, 2);
    CHECK(v[1] < v[0]);
    free(m);
}

TEST(train_non_finite_loss_stops_or_skips) {
    const char *model = shared_path("models/stories260K"), *data = test_tmp_path("nan.jsonl"), *out = test_tmp_path("nan-out");
    write_toy_records(data, 8);
    char cmd[4096], *o = NULL;
    /* ROSA_FAULT=nan-step:N makes step N's loss NaN (the trainer's fault point, core/fault.h). */
    snprintf(cmd, sizeof cmd, "ROSA_FAULT=nan-step:3 %s train --model %s --data %s --output %s --max-steps 4 "
             "--batch-size 2 --micro-batch-size 1 --save-steps 1 --cutoff-len 48 --quiet --overwrite", rosa_bin(),
             model, data, out);
    CHECK(sh(cmd, &o) == 1);
    /* steps count from 1, as in metrics.jsonl and the checkpoint names */
    CHECK_MSG(strstr(o, "non-finite loss at step 3, micro-batch 0") != NULL, "got: %s", o);
    free(o);
    CHECK_EQ_INT(rosa_checkpoint_latest(out, NULL), 2); /* the last good one is kept */
    snprintf(cmd, sizeof cmd, "ROSA_FAULT=nan-step:3 %s train --model %s --data %s --output %s --max-steps 4 "
             "--batch-size 2 --micro-batch-size 1 --cutoff-len 48 --nan-policy skip --overwrite", rosa_bin(), model,
             data, out);
    CHECK(sh(cmd, &o) == 0);
    CHECK_MSG(strstr(o, "1 steps were skipped") != NULL, "got: %s", o);
    free(o);
}

TEST(train_refuses_above_max_memory_and_bad_options) {
    const char *model = shared_path("models/stories260K"), *data = test_tmp_path("mem.jsonl");
    write_toy_records(data, 8);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-memory 2M --batch-size 4 "
             "--micro-batch-size 4 --quiet", rosa_bin(), model, data, test_tmp_path("mem-out"));
    CHECK(sh(cmd, &o) == 1);
    CHECK_MSG(strstr(o, "more than --max-memory 2.0 MiB (weights") != NULL, "got: %s", o);
    CHECK_MSG(strstr(o, "no change of --micro-batch-size, --recompute, --cutoff-len, --dtype or --quantize fits") != NULL,
              "got: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --batch-size 6 --micro-batch-size 4",
             rosa_bin(), model, data, test_tmp_path("mem-out"));
    CHECK(sh(cmd, &o) == 2); /* a usage error, found before anything is loaded */
    CHECK(strstr(o, "must be a positive multiple of --micro-batch-size") != NULL);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --target-modules q_proj,lm_head", rosa_bin(),
             model, data, test_tmp_path("mem-out"));
    CHECK(sh(cmd, &o) == 2);
    CHECK(strstr(o, "unknown target module \"lm_head\"") != NULL);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --batch-size 16", rosa_bin(), model, data,
             test_tmp_path("mem-out"));
    CHECK(sh(cmd, &o) == 1);
    CHECK(strstr(o, "8 training records are fewer than one batch of 16") != NULL);
    free(o);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

TEST(adapter_files_follow_peft_and_refuse_what_rosa_lacks) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 2;
    o.target_regex = ".*\\.(q_proj|down_proj)";
    int layers[2] = {1, 3};
    o.layers = layers;
    o.n_layers = 2;
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 7);
    REQUIRE(a);
    CHECK_EQ_INT(a->n_params, 2 * 2 * 2);
    CHECK(rosa_lora_state_of(a)->idx[1][PROJ_Q] >= 0 && rosa_lora_state_of(a)->idx[3][PROJ_DOWN] >= 0 && rosa_lora_state_of(a)->idx[0][PROJ_Q] < 0 &&
          rosa_lora_state_of(a)->idx[1][PROJ_V] < 0);
    CHECK_STR(a->params[0].name, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
    const char *dir = test_tmp_path("peft");
    REQUIRE(rosa_adapter_save(a, dir, "stories260K") == 0);
    rosa_adapter *b = rosa_adapter_load(dir, &m->cfg);
    REQUIRE(b);
    CHECK(b->n_floats == a->n_floats && memcmp(a->w, b->w, sizeof(float) * a->n_floats) == 0);
    CHECK_STR(((rosa_lora_options *)b->opts)->target_regex, ".*\\.(q_proj|down_proj)");
    rosa_adapter_free(b);
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    size_t len;
    char *orig = rosa_read_file(cfg, &len);
    REQUIRE(orig);
    struct {
        const char *key, *value, *needle;
    } cases[] = {
        {"use_dora", "true", "lora_magnitude_vector\" is missing"}, /* DoRA: a tensor a LoRA file lacks */
        {"modules_to_save", "[\"lm_head\"]", "\"modules_to_save\" is [\"lm_head\"]: rosa does not implement"},
        {"peft_type", "\"LOKR\"", "unsupported peft_type \"LOKR\""},
        {"bias", "\"all\"", "\"bias\" is \"all\": rosa does not implement trained biases"},
        {"r", "3", "should have shape [3, 64]"},
        {"rank_pattern", "{\"q_proj\": 4}", "q_proj.lora_A.weight\" should have shape [4, 64]"},
        {"some_future_option", "7", "\"some_future_option\" is 7: rosa does not know this field"},
        {"layers_to_transform", "[1]", "unexpected tensor"},
        {"layers_to_transform", "[1, 3, 4]", "is missing"},
        {"target_modules", "[\"q_proj\", \"lm_head\"]", "unknown target module \"lm_head\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(orig);
        REQUIRE(j);
        cJSON_DeleteItemFromObject(j, cases[i].key);
        cJSON_AddItemToObject(j, cases[i].key, cJSON_Parse(cases[i].value));
        char *text = cJSON_Print(j);
        write_file(cfg, text);
        free(text);
        cJSON_Delete(j);
        rosa_adapter *c = rosa_adapter_load(dir, &m->cfg);
        CHECK_MSG(c == NULL, "case %zu loaded", i);
        CHECK_ERROR_HAS(cases[i].needle);
        CHECK_ERROR_HAS("adapter_");
        rosa_adapter_free(c);
    }
    free(orig);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* adapter_config.json as PEFT 0.20 saves LoraConfig(r=2, target_modules=["q_proj",
 * "v_proj"], lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM"): to_dict()
 * writes every field, sort_keys and indent 2; plus runtime_config, which
 * configs from other writers carry (PEFT drops it on load), and kasa_config
 * of PEFT's main branch.  Before issue 18, qalora_group_size (16, PEFT's
 * default since 0.16) and peft_version (since 0.18) were refused. */
static const char peft_020_config[] =
    "{\n"
    "  \"alora_invocation_tokens\": null,\n"
    "  \"alpha_pattern\": {},\n"
    "  \"arrow_config\": null,\n"
    "  \"auto_mapping\": null,\n"
    "  \"base_model_name_or_path\": \"stories260K\",\n"
    "  \"bias\": \"none\",\n"
    "  \"corda_config\": null,\n"
    "  \"ensure_weight_tying\": false,\n"
    "  \"eva_config\": null,\n"
    "  \"exclude_modules\": null,\n"
    "  \"fan_in_fan_out\": false,\n"
    "  \"inference_mode\": true,\n"
    "  \"init_lora_weights\": true,\n"
    "  \"kasa_config\": null,\n"
    "  \"layer_replication\": null,\n"
    "  \"layers_pattern\": null,\n"
    "  \"layers_to_transform\": null,\n"
    "  \"loftq_config\": {},\n"
    "  \"lora_alpha\": 16,\n"
    "  \"lora_bias\": false,\n"
    "  \"lora_dropout\": 0.05,\n"
    "  \"lora_ga_config\": null,\n"
    "  \"megatron_config\": null,\n"
    "  \"megatron_core\": \"megatron.core\",\n"
    "  \"modules_to_save\": null,\n"
    "  \"monteclora_config\": null,\n"
    "  \"peft_type\": \"LORA\",\n"
    "  \"peft_version\": \"0.20.0\",\n"
    "  \"qalora_group_size\": 16,\n"
    "  \"r\": 2,\n"
    "  \"rank_pattern\": {},\n"
    "  \"revision\": null,\n"
    "  \"runtime_config\": {\n"
    "    \"ephemeral_gpu_offload\": false\n"
    "  },\n"
    "  \"target_modules\": [\n"
    "    \"v_proj\",\n"
    "    \"q_proj\"\n"
    "  ],\n"
    "  \"target_parameters\": null,\n"
    "  \"task_type\": \"CAUSAL_LM\",\n"
    "  \"trainable_token_indices\": null,\n"
    "  \"use_bdlora\": null,\n"
    "  \"use_dora\": false,\n"
    "  \"use_qalora\": false,\n"
    "  \"use_rslora\": false,\n"
    "  \"velora_config\": null\n"
    "}\n";

/* peft_020_config with each "key": value of `edits` (JSON, set in turn). */
static void write_peft_config(const char *path, const char *const *edits, int n) {
    cJSON *j = cJSON_Parse(peft_020_config);
    for (int i = 0; i + 1 < n; i += 2) {
        cJSON_DeleteItemFromObject(j, edits[i]);
        cJSON_AddItemToObject(j, edits[i], cJSON_Parse(edits[i + 1]));
    }
    char *text = cJSON_Print(j);
    write_file(path, text);
    free(text);
    cJSON_Delete(j);
}

TEST(adapter_config_from_current_peft_loads_with_every_field) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 2;
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 11);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++) a->w[i] = (float)((int)(i % 13) - 6) / 64.0f; /* lora_B too */
    const char *dir = test_tmp_path("peft-0.20");
    REQUIRE(rosa_adapter_save(a, dir, "stories260K") == 0);
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);

    /* Every field of the shipped table is in the config (a field PEFT adds
     * later gets a row and a place here), and every row is in docs/formats.md. */
    cJSON *full = cJSON_Parse(peft_020_config);
    REQUIRE(full);
    char *doc = rosa_read_file("docs/formats.md", NULL);
    REQUIRE(doc);
    for (int pass = 0; pass < 2; pass++) {
        const rosa_peft_field *t = pass ? rosa_peft_base_fields : rosa_lora_fields;
        for (int k = 0; t[k].key; k++) {
            char quoted[80];
            snprintf(quoted, sizeof quoted, "`%s`", t[k].key);
            CHECK_MSG(cJSON_GetObjectItemCaseSensitive(full, t[k].key) != NULL, "%s is not in the test config",
                      t[k].key);
            CHECK_MSG(strstr(doc, quoted) != NULL, "docs/formats.md does not name %s", quoted);
        }
    }
    free(doc);
    const cJSON *item;
    cJSON_ArrayForEach(item, full) CHECK_MSG(rosa_peft_field_find(rosa_lora_fields, item->string) != NULL,
                                             "%s of PEFT's LoraConfig is not in rosa's table", item->string);
    cJSON_Delete(full);

    /* As PEFT writes it, every field at its default: loads, honouring r,
     * lora_alpha, lora_dropout and target_modules. */
    write_peft_config(cfg, NULL, 0);
    rosa_adapter *b = rosa_adapter_load(dir, &m->cfg);
    CHECK_MSG(b != NULL, "PEFT 0.20's config refused: %s", rosa_last_error());
    if (b) {
        const rosa_lora_options *bo = b->opts;
        CHECK_EQ_INT(bo->rank, 2);
        CHECK(bo->alpha == 16.0f && bo->dropout == 0.05f && !bo->rslora);
        CHECK(bo->targets == ((1u << PROJ_Q) | (1u << PROJ_V)) && !bo->target_regex);
        CHECK(b->n_floats == a->n_floats && memcmp(a->w, b->w, sizeof(float) * a->n_floats) == 0);
        CHECK(rosa_lora_state_of(b)->scale[0][PROJ_Q] == 8.0f);
        rosa_adapter_free(b);
    }

    /* Values PEFT's math does not depend on, or treats as the default. */
    static const char *const fine[][4] = {
        {"peft_version", "\"0.21.0.dev0@0123abc\""},
        {"qalora_group_size", "32"}, /* read only with use_qalora */
        {"init_lora_weights", "\"eva\"", "eva_config", "{\"rho\": 2.0, \"tau\": 0.99, \"whiten\": false}"},
        {"init_lora_weights", "\"gaussian\""},
        {"init_lora_weights", "false"},
        {"corda_config", "{\"corda_method\": \"ipm\"}"}, /* PEFT keeps it, ignored, unless init is corda */
        {"runtime_config", "{\"ephemeral_gpu_offload\": true}"},
        {"exclude_modules", "[]"},
        {"modules_to_save", "[]"},
        {"target_parameters", "[]"},
        {"layers_pattern", "\"layers\"", "layers_to_transform", "[0, 1, 2, 3, 4]"},
        {"ensure_weight_tying", "true"},
        {"megatron_core", "null"},
        {"use_rslora", "true"},
        {"enable_lora", "null"}, /* a field of another PEFT version, off */
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        write_peft_config(cfg, fine[i], fine[i][2] ? 4 : 2);
        b = rosa_adapter_load(dir, &m->cfg);
        CHECK_MSG(b != NULL, "%s: %s refused: %s", fine[i][0], fine[i][1], rosa_last_error());
        if (b && strcmp(fine[i][0], "use_rslora") == 0) CHECK(rosa_lora_state_of(b)->scale[0][PROJ_Q] == 16.0f / sqrtf(2.0f));
        rosa_adapter_free(b);
    }

    /* What rosa does not implement is refused by name, with the value. */
    static const char *const refused[][5] = {
        {"use_qalora", "true", "qalora_group_size", "32", "\"use_qalora\" is true: rosa does not implement QALoRA"},
        {"init_lora_weights", "\"pissa_niter_16\"", NULL, NULL,
         "\"init_lora_weights\" is \"pissa_niter_16\": rosa does not implement this initialization"},
        {"init_lora_weights", "\"loftq\"", "loftq_config", "{\"loftq_bits\": 4, \"loftq_iter\": 1}",
         "\"init_lora_weights\" is \"loftq\": rosa does not implement"},
        {"init_lora_weights", "\"mica\"", NULL, NULL, "\"init_lora_weights\" is \"mica\": rosa does not implement"},
        /* saved unconverted, these are right only on PEFT's changed (residual) base weights */
        {"init_lora_weights", "\"pissa\"", NULL, NULL, "\"init_lora_weights\" is \"pissa\": rosa does not implement"},
        {"init_lora_weights", "\"olora\"", NULL, NULL, "\"init_lora_weights\" is \"olora\": rosa does not implement"},
        {"init_lora_weights", "\"corda\"", "corda_config", "{\"corda_method\": \"kpm\"}",
         "\"init_lora_weights\" is \"corda\": rosa does not implement"},
        {"lora_bias", "true", NULL, NULL, "\"lora_bias\" is true: rosa does not implement"},
        {"fan_in_fan_out", "true", NULL, NULL, "\"fan_in_fan_out\" is true: rosa does not implement"},
        {"alora_invocation_tokens", "[128, 9]", NULL, NULL,
         "\"alora_invocation_tokens\" is [128,9]: rosa does not implement aLoRA"},
        {"trainable_token_indices", "[0, 1]", NULL, NULL, "\"trainable_token_indices\" is [0,1]: rosa does not"},
        {"target_parameters", "[\"mlp.experts.down_proj\"]", NULL, NULL, "\"target_parameters\" is [\"mlp."},
        {"exclude_modules", "[\"model.layers.0.self_attn.q_proj\"]", NULL, NULL, "\"exclude_modules\" is"},
        {"layer_replication", "[[0, 3], [1, 5]]", NULL, NULL, "\"layer_replication\" is [[0,3],[1,5]]: rosa does"},
        {"layers_pattern", "\"h\"", "layers_to_transform", "[0]", "\"layers_pattern\" is \"h\": rosa does not"},
        {"megatron_config", "{}", NULL, NULL, "\"megatron_config\" is {}: rosa does not implement"},
        {"velora_config", "{\"num_groups\": 64}", NULL, NULL, "\"velora_config\" is {\"num_groups\":64}: rosa"},
        {"monteclora_config", "{}", NULL, NULL, "\"monteclora_config\" is {}: rosa does not implement"},
        {"use_bdlora", "{\"nblocks\": 2}", NULL, NULL, "\"use_bdlora\" is {\"nblocks\":2}: rosa does not"},
        {"arrow_config", "{\"top_k\": 3}", NULL, NULL, "\"arrow_config\" is {\"top_k\":3}: rosa does not"},
        {"kasa_config", "{}", NULL, NULL, "\"kasa_config\" is {}: rosa does not implement KaSA"},
        {"enable_lora", "[true]", NULL, NULL, "\"enable_lora\" is [true]: rosa does not know this field"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        write_peft_config(cfg, refused[i], refused[i][2] ? 4 : 2);
        b = rosa_adapter_load(dir, &m->cfg);
        CHECK_MSG(b == NULL, "%s: %s loaded", refused[i][0], refused[i][1]);
        CHECK_ERROR_HAS(refused[i][4]);
        CHECK_ERROR_HAS("adapter_config.json: ");
        rosa_adapter_free(b);
    }
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* --dtype bf16: frozen matrix products in BF16 stay within the documented
 * tolerance of FP32 (docs/performance.md): the loss of the shipped model
 * within 0.02 (nats), and a short RoSA run step by step within 0.03. */
static double step_losses(const char *metrics, double *out, int max) {
    size_t len;
    char *m = rosa_read_file(metrics, &len);
    int n = 0;
    for (char *line = m ? strtok(m, "\n") : NULL; line && n < max; line = strtok(NULL, "\n")) {
        double x = json_number(line, "loss");
        if (!isnan(x)) out[n++] = x;
    }
    free(m);
    return n;
}

TEST(bf16_mode_stays_close_to_fp32) {
    const char *model = shared_path("models/stories260K"), *data = shared_path("data/llm-adapters/boolq/train.json");
    char cmd[4096], *a = NULL, *b = NULL;
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --cutoff-len 256 --limit 24 --json", rosa_bin(), model, data);
    REQUIRE(run_capture(cmd, 0, &a) == 0);
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --cutoff-len 256 --limit 24 --json --dtype bf16", rosa_bin(),
             model, data);
    int rc = run_capture(cmd, 0, &b);
    CHECK_MSG(rc == 0, "bf16 loss failed: %s", b);
    double la = json_number(a, "token_mean_loss"), lb = json_number(b, "token_mean_loss");
    CHECK_MSG(fabs(la - lb) < 0.02, "fp32 %.5f vs bf16 %.5f", la, lb);
    CHECK(la != lb); /* BF16 really ran */
    free(a);
    free(b);
    /* Runs: FP32, BF16, and BF16 with --recompute (which must not change a bit). */
    double losses[3][6];
    char *adapters[3];
    size_t adapter_len[3];
    for (int k = 0; k < 3; k++) {
        char out[600], mp[700], *o = NULL;
        snprintf(out, sizeof out, "%s-%d", test_tmp_path("bf16-run"), k);
        snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --method rosa --rank 8 --max-steps 6 "
                 "--batch-size 4 --micro-batch-size 4 --cutoff-len 256 --lr 5e-3 --warmup-steps 1 --dls-interval 2 "
                 "--save-steps 0 --quiet --overwrite --dtype %s%s", rosa_bin(), model, data, out, k ? "bf16" : "fp32",
                 k == 2 ? " --recompute" : "");
        REQUIRE(sh(cmd, &o) == 0);
        free(o);
        snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
        CHECK_EQ_INT(step_losses(mp, losses[k], 6), 6);
        snprintf(mp, sizeof mp, "%s/adapter_model.safetensors", out);
        adapters[k] = rosa_read_file(mp, &adapter_len[k]);
        REQUIRE(adapters[k]);
    }
    double worst = 0;
    for (int i = 0; i < 6; i++) worst = fmax(worst, fabs(losses[0][i] - losses[1][i]));
    CHECK_MSG(worst < 0.03, "bf16 training losses differ from fp32 by up to %g", worst);
    CHECK(memcmp(losses[1], losses[2], sizeof losses[1]) == 0);
    CHECK(adapter_len[1] == adapter_len[2] && memcmp(adapters[1], adapters[2], adapter_len[1]) == 0);
    for (int k = 0; k < 3; k++) free(adapters[k]);
}

/* The Hugging Face / PEFT names train exactly what rosa's own flags train. */
TEST(train_hf_aliases_match_rosa_flags) {
    const char *model = shared_path("models/stories260K");
    const char *data = test_tmp_path("alias.jsonl"), *a_dir = test_tmp_path("rosa_flags"), *b_dir = test_tmp_path("hf_flags");
    write_toy_records(data, 8);
    const char *common = "--max-steps 2 --warmup-steps 0 --seed 3 --save-steps 0 --quiet";
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --output %s %s --lr 1e-2 --rank 4 --alpha 8 --dropout 0.1 "
             "--micro-batch-size 1 --batch-size 2 --epochs 1 --cutoff-len 32 --recompute --lr-scheduler cosine",
             rosa_bin(), model, data, a_dir, common);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --output %s %s --learning-rate 1e-2 --lora-r 4 --lora_alpha 8 "
             "--lora-dropout 0.1 --per-device-train-batch-size 1 --num-train-epochs 1 --max-seq-length 32 "
             "--gradient-checkpointing --gradient-accumulation-steps 2 --lr_scheduler_type cosine",
             rosa_bin(), model, data, b_dir, common);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "alias run failed: %s", o);
    free(o);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", a_dir);
    snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", b_dir);
    size_t la, lb;
    char *x = rosa_read_file(pa, &la), *y = rosa_read_file(pb, &lb);
    REQUIRE(x && y);
    CHECK_MSG(la == lb && memcmp(x, y, la) == 0, "the alias run's adapter differs");
    free(x);
    free(y);
}

/* The adapter a run wrote, for comparing runs byte for byte (malloc'ed). */
static char *adapter_bytes(const char *dir, size_t *len) {
    char p[600];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    return rosa_read_file(p, len);
}

/* A --config file holds any option (HF/PEFT names, lists, booleans); the
 * command line overrides it: the run is the one rosa's flags give. */
TEST(train_config_file_gives_the_same_run) {
    const char *model = shared_path("models/stories260K");
    const char *data = test_tmp_path("cfg.jsonl"), *a_dir = test_tmp_path("cfg_flags"), *b_dir = test_tmp_path("cfg_yaml");
    const char *yaml = test_tmp_path("run.yaml");
    write_toy_records(data, 8);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --output %s --max-steps 2 --warmup-steps 0 --seed 3 --save-steps 0 --quiet "
             "--lr 1e-2 --rank 4 --alpha 8 --target-modules q_proj,k_proj --micro-batch-size 1 --batch-size 2 "
             "--cutoff-len 32 --recompute --lr-scheduler cosine",
             rosa_bin(), model, data, a_dir);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    FILE *f = fopen(yaml, "w");
    REQUIRE(f);
    fprintf(f, "# as LLaMA-Factory users write them\nmodel: %s\ndata: %s\noutput: %s\nmax_steps: 2\nwarmup_steps: 0\n"
               "seed: 99\nsave_steps: 0\nquiet: True\nlearning_rate: 1.0e-2\nlora_r: 4\nlora_alpha: 8\n"
               "target_modules: [q_proj, k_proj]\nper_device_train_batch_size: 1\ngradient_accumulation_steps: 2\n"
               "max_seq_length: 32\ngradient_checkpointing: true\nlr_scheduler_type: cosine\nval_set_size: ~\n",
            model, data, b_dir);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s train --config %s --seed 3", rosa_bin(), yaml); /* the file says seed 99 */
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "config run failed: %s", o);
    free(o);
    size_t la = 0, lb = 0;
    char *x = adapter_bytes(a_dir, &la), *y = adapter_bytes(b_dir, &lb);
    REQUIRE(x && y);
    CHECK_MSG(la == lb && memcmp(x, y, la) == 0, "the config run's adapter differs");
    free(x);
    free(y);
}

/* --warmup-ratio F is HF's ceil(F x steps) warm-up: 0.25 of 4 steps is 1
 * step (exactly, not 2 from a float's rounding), 0.3 of 4 is 2. */
TEST(train_warmup_ratio_is_hf_ceil) {
    const char *model = shared_path("models/stories260K"), *data = test_tmp_path("wr.jsonl");
    write_toy_records(data, 8);
    const char *runs[4][2] = {{"wr_s1", "--warmup-steps 1"}, {"wr_r25", "--warmup-ratio 0.25"},
                              {"wr_s2", "--warmup-steps 2"}, {"wr_r30", "--warmup-ratio 0.3"}};
    char *bytes[4];
    size_t len[4];
    for (int k = 0; k < 4; k++) {
        char *o = NULL;
        const char *dir = test_tmp_path(runs[k][0]);
        int rc = run_shellf(&o, "%s train --model %s --data %s --output %s --max-steps 4 --lr 1e-2 --rank 2 --seed 5 "
                                "--batch-size 2 --micro-batch-size 2 --save-steps 0 --quiet %s",
                            rosa_bin(), model, data, dir, runs[k][1]);
        CHECK_MSG(rc == 0, "%s: %s", runs[k][1], o);
        REQUIRE(rc == 0);
        free(o);
        bytes[k] = adapter_bytes(dir, &len[k]);
        REQUIRE(bytes[k]);
    }
    CHECK_MSG(len[0] == len[1] && memcmp(bytes[0], bytes[1], len[0]) == 0, "--warmup-ratio 0.25 x 4 is not 1 step");
    CHECK_MSG(len[2] == len[3] && memcmp(bytes[2], bytes[3], len[2]) == 0, "--warmup-ratio 0.3 x 4 is not 2 steps");
    CHECK_MSG(len[0] != len[2] || memcmp(bytes[0], bytes[2], len[0]) != 0, "1 and 2 warm-up steps trained alike");
    char path[600];
    snprintf(path, sizeof path, "%s/training_args.json", test_tmp_path("wr_r30"));
    cJSON *j = rosa_json_load(path);
    REQUIRE(j);
    const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "options"), "warmup-ratio");
    CHECK(cJSON_IsNumber(r) && r->valuedouble == 0.3);
    cJSON_Delete(j);
    for (int k = 0; k < 4; k++) free(bytes[k]);
}

/* rank_pattern and alpha_pattern as PEFT's get_pattern_key matches them: the
 * first key K for which the module name matches "(.*\\.)?(K)$"; "all-linear"
 * is every projection; an adapter_model.bin is refused with how to convert. */
TEST(adapter_rank_alpha_patterns_all_linear_and_bin) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    rosa_lora_options *o = rosa_peft_opts_new(&rosa_peft_lora, NULL);
    REQUIRE(o);
    o->rank = 2;
    o->n_rank_pattern = 2;
    o->rank_pattern = calloc(2, sizeof *o->rank_pattern);
    o->rank_pattern[0] = (rosa_lora_pattern){strdup("_proj"), 7}; /* never: "_proj" must match a whole name part */
    o->rank_pattern[1] = (rosa_lora_pattern){strdup("q_proj"), 4};
    o->n_alpha_pattern = 2;
    o->alpha_pattern = calloc(2, sizeof *o->alpha_pattern);
    o->alpha_pattern[0] = (rosa_lora_pattern){strdup("layers\\.1\\.self_attn\\.v_proj"), 32};
    o->alpha_pattern[1] = (rosa_lora_pattern){strdup(".*v_proj"), 4}; /* after the first match: not for layer 1 */
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, o, 5);
    REQUIRE(a);
    const rosa_lora_state *st = rosa_lora_state_of(a);
    CHECK_EQ_INT(a->params[st->idx[0][PROJ_Q]].rows, 4);
    CHECK_EQ_INT(a->params[st->idx[0][PROJ_Q] + 1].cols, 4);
    CHECK_EQ_INT(a->params[st->idx[0][PROJ_V]].rows, 2);
    CHECK(st->scale[0][PROJ_Q] == 16.0f / 4 && st->scale[0][PROJ_V] == 4.0f / 2 && st->scale[1][PROJ_V] == 32.0f / 2);
    for (size_t i = 0; i < a->n_floats; i++) a->w[i] = (float)((int)(i % 11) - 5) / 32.0f;
    const char *dir = test_tmp_path("patterns");
    REQUIRE(rosa_adapter_save(a, dir, "stories260K") == 0);
    rosa_adapter *b = rosa_adapter_load(dir, &m->cfg);
    CHECK_MSG(b != NULL, "%s", rosa_last_error());
    if (b) {
        const rosa_lora_state *sb = rosa_lora_state_of(b);
        CHECK(b->n_floats == a->n_floats && memcmp(a->w, b->w, sizeof(float) * a->n_floats) == 0);
        for (int l = 0; l < m->cfg.num_layers; l++)
            for (int p = 0; p < N_PROJ; p++)
                CHECK(sb->idx[l][p] == st->idx[l][p] && (st->idx[l][p] < 0 || sb->scale[l][p] == st->scale[l][p]));
        rosa_adapter_free(b);
    }
    /* "all-linear" (any case), as PEFT expands it. */
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    cJSON *j = rosa_json_load(cfg);
    REQUIRE(j);
    cJSON_ReplaceItemInObject(j, "target_modules", cJSON_CreateString("ALL-LINEAR"));
    char *text = cJSON_Print(j);
    write_file(cfg, text);
    free(text);
    cJSON_Delete(j);
    b = rosa_adapter_load(dir, &m->cfg);
    CHECK(b == NULL); /* the weights file holds q and v only */
    CHECK_ERROR_HAS("the adapter has 12840 values"); /* all seven projections of 5 layers, not q and v */
    rosa_adapter_free(b);
    rosa_lora_options *all = rosa_peft_opts_new(&rosa_peft_lora, NULL);
    REQUIRE(all);
    CHECK(rosa_peft_set_option(&rosa_peft_lora, all, "target-modules", "all-linear") == 0 &&
          all->targets == (1u << N_PROJ) - 1);
    rosa_peft_opts_free(&rosa_peft_lora, all);
    /* adapter_model.bin only */
    char st_path[600], bin[600];
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", dir);
    snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
    REQUIRE(rename(st_path, bin) == 0);
    b = rosa_adapter_load(dir, &m->cfg);
    CHECK(b == NULL);
    CHECK_ERROR_HAS("adapter_model.bin: a PyTorch pickle, which rosa does not read");
    CHECK_ERROR_HAS("s.save_file(torch.load(");
    REQUIRE(unlink(bin) == 0);
    b = rosa_adapter_load(dir, &m->cfg);
    CHECK(b == NULL);
    CHECK_ERROR_HAS("adapter_model.safetensors: not found");
    rosa_adapter_free(a);
    rosa_peft_opts_free(&rosa_peft_lora, o);
    rosa_model_free(m);
}
