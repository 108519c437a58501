/* test_robustness_state.c: never checkpoint poison, check every number
 * (issue 20, items 4, 5, 6 and 10; docs/robustness.md):
 *   - an update that overflows (--lr 1e38, --weight-decay 1e30) stops the run
 *     and keeps the last checkpoint, which loads; no save writes a value the
 *     loader refuses;
 *   - --resume refuses every bad field of rosa_state.json and
 *     optimizer.safetensors, naming the file and the field;
 *   - eval --predictions records what made the file and a resume checks it,
 *     and each line's instruction against the test record;
 *   - a RoSA adapter records its head layout; a merge that overflows is
 *     refused.
 * The runs use the real binary (ROSA_BIN) on the shipped stories260K. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "arch/config.h"
#include "core/util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "peft/lora.h"
#include "peft/roae.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/optim.h"

static int sh(const char *cmd, char **out) { return run_capture(cmd, 1, out); }

static const char *model_dir(void) { return shared_path("models/stories260K"); }

static const char *records(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", test_tmp_path("state-data.jsonl"));
        write_toy_records(path, 24);
    }
    return path;
}

static void train_cmd(char *cmd, size_t n, const char *out, int steps, int save, const char *extra) {
    snprintf(cmd, n,
             "%s train --model %s --data %s --output %s --max-steps %d --save-steps %d --batch-size 4 "
             "--micro-batch-size 2 --cutoff-len 48 --seed 5 --threads 1 --quiet %s",
             rosa_bin(), model_dir(), records(), out, steps, save, extra);
}

/* Replaces (raw != NULL, JSON text) or removes key of path's object, or of
 * its object `sub`, or element `index` of that array. */
static int edit_json(const char *path, const char *sub, const char *key, int index, const char *raw) {
    cJSON *j = rosa_json_load(path);
    if (!j) return -1;
    cJSON *o = sub ? cJSON_GetObjectItemCaseSensitive(j, sub) : j;
    cJSON *v = raw ? cJSON_Parse(raw) : NULL;
    int ok = o && (raw == NULL || v);
    if (ok && index >= 0) {
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
        ok = cJSON_IsArray(arr) && cJSON_ReplaceItemInArray(arr, index, v);
    } else if (ok && raw) {
        if (cJSON_GetObjectItemCaseSensitive(o, key)) ok = cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
        else ok = cJSON_AddItemToObject(o, key, v);
    } else if (ok) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    }
    if (!ok) cJSON_Delete(v);
    char *text = ok ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    int rc = text ? rosa_write_file_atomic(path, text, strlen(text)) : -1;
    free(text);
    return rc;
}

/* Rewrites dir/optimizer.safetensors with element 0 of the first tensor whose
 * name ends in `suffix` set to *value (4 or 8 bytes, as its dtype), and with
 * an extra tensor `extra` when not NULL. */
static int edit_optimizer(const char *dir, const char *suffix, const void *value, const char *extra) {
    char path[1024];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_set s = {0};
    if (st_set_add_file(&s, path) < 0) return -1;
    int n = s.n_tensors + (extra != NULL);
    st_write_entry *e = calloc((size_t)n, sizeof *e);
    void **copies = calloc((size_t)n, sizeof *copies);
    int done = suffix == NULL, rc = -1;
    static float one[2] = {1, 2};
    static const int64_t two = 2;
    if (e && copies) {
        for (int i = 0; i < s.n_tensors; i++) {
            const st_tensor *t = &s.tensors[i];
            copies[i] = malloc(t->nbytes);
            memcpy(copies[i], t->data, t->nbytes);
            size_t len = strlen(t->name), sl = suffix ? strlen(suffix) : 0;
            if (!done && len >= sl && strcmp(t->name + len - sl, suffix) == 0) {
                memcpy(copies[i], value, st_dtype_size(t->dtype));
                done = 1;
            }
            e[i] = (st_write_entry){t->name, t->dtype, t->ndim, t->shape, copies[i]};
        }
        if (extra) e[n - 1] = (st_write_entry){extra, ST_F32, 1, &two, one};
        rc = done ? st_write_file(path, e, n, NULL) : -1;
    }
    for (int i = 0; copies && i < n; i++) free(copies[i]);
    free(copies);
    free(e);
    st_set_close(&s);
    return rc;
}

/* ------------------------------------------------------- item 4: updates */

/* An update that overflows: the old trainer saved its inf as "adapter saved"
 * (exit 0), an adapter rosa itself then refused.  Now the run stops at the
 * update, like a non-finite loss, and the previous checkpoint loads and
 * resumes (into the same overflow: deterministic). */
TEST(state_overflowing_update_stops_and_keeps_a_loadable_checkpoint) {
    static const char *const cases[] = {"--lr 1e38 --warmup-steps 1", "--weight-decay 1e30 --warmup-steps 0"};
    for (int c = 0; c < 2; c++) {
        char out[512], cmd[4096], *o = NULL;
        snprintf(out, sizeof out, "%s", test_tmp_path(c ? "state-wd" : "state-lr"));
        train_cmd(cmd, sizeof cmd, out, 2, 1, cases[c]);
        int rc = sh(cmd, &o);
        CHECK_MSG(rc == 1 && strstr(o, "non-finite training state after the update of step 2: ") &&
                      strstr(o, "the last checkpoint is kept"),
                  "%s: exit %d: %s", cases[c], rc, o);
        CHECK_MSG(!strstr(o, "adapter saved"), "%s", o);
        free(o);
        CHECK_EQ_INT(rosa_checkpoint_latest(out, NULL), 1);
        char p[600];
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", out);
        CHECK_MSG(!rosa_file_exists(p), "%s: a final adapter was written", cases[c]);
        rosa_config cfg;
        REQUIRE(rosa_config_load(model_dir(), &cfg) == 0);
        snprintf(p, sizeof p, "%s/checkpoint-1", out);
        rosa_adapter *a = rosa_adapter_load(p, &cfg);
        CHECK_MSG(a != NULL, "%s: checkpoint-1 does not load: %s", cases[c], rosa_last_error());
        rosa_adapter_free(a);
        /* the checkpoint resumes: the run gets to step 2 again and stops there again, not at loading */
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " --resume");
        rc = sh(cmd, &o);
        CHECK_MSG(rc == 1 && strstr(o, "after the update of step 2"), "%s --resume: exit %d: %s", cases[c], rc, o);
        free(o);
    }
}

/* The savers refuse what their loaders refuse, writing nothing. */
TEST(state_savers_refuse_non_finite_values) {
    rosa_config c = {0};
    c.num_layers = 1;
    c.hidden_size = 4;
    c.intermediate_size = 4;
    c.num_heads = 1;
    c.num_kv_heads = 1;
    c.head_dim = 4;
    rosa_lora_options lo;
    rosa_lora_options_default(&lo);
    lo.rank = 1;
    lo.targets = 1u << PROJ_Q;
    rosa_adapter *a = rosa_adapter_new_lora(&c, &lo, 1);
    REQUIRE(a);
    rosa_adamw opt;
    REQUIRE(rosa_adamw_init(&opt, a) == 0);
    for (int i = 0; i < a->n_params; i++) opt.step[i] = 3;
    const char *out = test_tmp_path("state-savers");
    mkdir(out, 0755);
    rosa_checkpoint_state st = {.step = 3, .total_steps = 4, .seed = 1};
    char dir[600];
    snprintf(dir, sizeof dir, "%s/checkpoint-3", out);
    struct {
        float *at;
        float value;
        const char *needle;
    } cases[] = {
        {&opt.v[0], -1.0f, ".exp_avg_sq\" holds -1 at [0] (must be finite and >= 0)"},
        {&opt.m[1], NAN, ".exp_avg\" holds nan at [1]"},
        {&a->w[2], INFINITY, "lora_A.weight\" holds inf at [2]"},
    };
    for (int k = 0; k < 3; k++) {
        float keep = *cases[k].at;
        *cases[k].at = cases[k].value;
        CHECK(rosa_checkpoint_save(out, a, &opt, &st, "m") < 0);
        CHECK_ERROR_HAS("saving checkpoint-3: refused, it would not load");
        CHECK_ERROR_HAS(cases[k].needle);
        CHECK_MSG(!rosa_is_dir(dir), "case %d: a checkpoint was written", k);
        *cases[k].at = keep;
    }
    opt.step[0] = 4; /* beyond the steps done */
    CHECK(rosa_checkpoint_save(out, a, &opt, &st, "m") < 0);
    CHECK_ERROR_HAS("(must be in [0, 3], the steps done)");
    opt.step[0] = 3;
    REQUIRE(rosa_checkpoint_save(out, a, &opt, &st, "m") == 0);
    /* the final adapter's writer too */
    a->w[0] = NAN;
    const char *ad = test_tmp_path("state-savers-adapter");
    CHECK(rosa_adapter_save(a, ad, "m") < 0);
    CHECK_ERROR_HAS("holds a non-finite value");
    char p[600];
    snprintf(p, sizeof p, "%s/adapter_config.json", ad);
    CHECK(!rosa_file_exists(p));
    rosa_adamw_free(&opt);
    rosa_adapter_free(a);
}

/* ------------------------------------------------------- item 5: resume */

/* A 4-step run cut back to checkpoint-2, as if killed in step 3; the
 * checkpoint's pristine copy is kept beside it. */
static int cut_run(const char *out, const char *extra, char *cmd, size_t n) {
    char sh_cmd[8192], *o = NULL;
    train_cmd(cmd, n, out, 4, 2, extra);
    int rc = sh(cmd, &o);
    if (rc != 0) fprintf(stderr, "training failed: %s\n", o);
    free(o);
    if (rc != 0) return -1;
    snprintf(sh_cmd, sizeof sh_cmd,
             "rm -rf %s/checkpoint-4 %s/adapter_model.safetensors %s/adapter_config.json && cp -r %s/checkpoint-2 "
             "%s/pristine-2", out, out, out, out, out);
    rc = sh(sh_cmd, &o);
    free(o);
    snprintf(cmd + strlen(cmd), n - strlen(cmd), " --resume");
    return rc;
}

static void restore(const char *out) {
    char cmd[2048], *o = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf %s/checkpoint-2 && cp -r %s/pristine-2 %s/checkpoint-2", out, out, out);
    if (sh(cmd, &o) != 0) fprintf(stderr, "restore: %s\n", o);
    free(o);
}

/* Resumes (cmd) and expects exit 1 with every needle in the message. */
static void expect_refused(const char *cmd, const char *what, const char *n1, const char *n2) {
    char *o = NULL;
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 1 && strstr(o, n1) && (!n2 || strstr(o, n2)), "%s: exit %d, expected \"%s\"%s%s: %s", what, rc, n1,
              n2 ? " and " : "", n2 ? n2 : "", o);
    free(o);
}

/* Each bad field of rosa_state.json or optimizer.safetensors is refused
 * by name.  Before, "step": 99 in a 4-step run exited 0 with the step-2
 * weights as the final adapter, and a step count at INT64_MAX overflowed. */
TEST(state_resume_refuses_every_bad_field) {
    char out[512], cmd[4096], dir[600], state[700];
    snprintf(out, sizeof out, "%s", test_tmp_path("state-resume"));
    REQUIRE(cut_run(out, "", cmd, sizeof cmd) == 0);
    snprintf(dir, sizeof dir, "%s/checkpoint-2", out);
    snprintf(state, sizeof state, "%s/rosa_state.json", dir);
    struct {
        const char *key, *raw, *needle;
    } fields[] = {
        {"step", "99", "step: 99 is beyond the 4 steps of this run"},
        {"step", "3", "step: 3 is not the step of its directory checkpoint-2"},
        {"step", "-1", "step: must be an integer >= 0"},
        {"step", "1.5", "step: must be an integer >= 0"},
        {"step", "\"2\"", "step: must be an integer >= 0"},
        {"step", NULL, "step: must be an integer >= 0"},
        {"total_steps", "1e300", "total_steps: must be an integer in [1, 2^53]"},
        {"seed", "\"5x\"", "seed: must be a decimal string"},
        {"seed", "\"99999999999999999999999\"", "seed: must be a decimal string"},
        {"format", "\"rosa-checkpoint/9\"", "format: must be \"rosa-checkpoint/1\""},
        {"steps", "2", "steps: unknown field"},
        {"dls", "{}", "dls: the checkpoint holds layer-selection state but this run has no DLS"},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        restore(out);
        REQUIRE(edit_json(state, NULL, fields[k].key, -1, fields[k].raw) == 0);
        expect_refused(cmd, fields[k].key, "checkpoint-2/rosa_state.json: ", fields[k].needle);
    }
    float neg = -1.0f, nan = NAN, inf = INFINITY;
    int64_t huge = INT64_MAX, minus = -1;
    struct {
        const char *suffix;
        const void *value;
        const char *extra, *needle;
    } tensors[] = {
        {".exp_avg_sq", &neg, NULL, ".exp_avg_sq\" holds -1 at [0] (must be finite and >= 0)"},
        {".exp_avg_sq", &nan, NULL, ".exp_avg_sq\" holds nan at [0]"},
        {".exp_avg", &inf, NULL, ".exp_avg\" holds inf at [0] (must be finite)"},
        {"step", &huge, NULL, "is 9223372036854775807 (must be in [0, 2], the steps done)"},
        {"step", &minus, NULL, "is -1 (must be in [0, 2], the steps done)"},
        {NULL, NULL, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.exp_avg_sqq",
         "unexpected tensor \"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.exp_avg_sqq\""},
    };
    for (size_t k = 0; k < sizeof tensors / sizeof tensors[0]; k++) {
        restore(out);
        REQUIRE(edit_optimizer(dir, tensors[k].suffix, tensors[k].value, tensors[k].extra) == 0);
        expect_refused(cmd, tensors[k].needle, "checkpoint-2/optimizer.safetensors: ", tensors[k].needle);
    }
    /* untouched, it resumes */
    restore(out);
    char *o = NULL;
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "pristine resume: exit %d: %s", rc, o);
    free(o);
}

/* The layer-selection state: counts of 1e300 were cast to int64 (undefined
 * behaviour), negative scores and dead streams were taken as they were. */
TEST(state_resume_refuses_bad_dls_state) {
    char out[512], cmd[4096], state[700];
    snprintf(out, sizeof out, "%s", test_tmp_path("state-dls"));
    REQUIRE(cut_run(out, "--dls --dls-interval 1 --dls-warmup 1", cmd, sizeof cmd) == 0);
    snprintf(state, sizeof state, "%s/checkpoint-2/rosa_state.json", out);
    struct {
        const char *key;
        int index;
        const char *raw, *needle;
    } cases[] = {
        {"counts", 0, "1e300", "dls.counts[0]: 1e+300 is not an integer in [0, 2]"},
        {"counts", 1, "3", "dls.counts[1]: 3 is not an integer in [0, 2]"},
        {"counts", 2, "-1", "dls.counts[2]: -1 is not an integer"},
        {"counts", 0, "0.5", "dls.counts[0]: 0.5 is not an integer"},
        {"scores", 1, "-1", "dls.scores[1]: -1 (must be a finite gradient norm >= 0)"},
        {"scores", 1, "1e39", "dls.scores[1]: must be a finite number"},
        {"active", 0, "2", "dls.active[0]: must be 0 or 1"},
        {"rng", 0, "\"x\"", "dls.rng[0]: must be a decimal string"},
        {"counts", -1, "[0]", "dls.counts: must be a list of 5 values"},
        {"active", -1, "[0, 0, 0, 0, 0]", "dls.active: 0 layers (must be all 5, or the 3 selected)"},
        {"rng", -1, "[\"0\", \"0\", \"0\", \"0\"]", "dls.rng: all zero"},
        {"have_scores", -1, "1", "dls.have_scores: must be true or false"},
        {"extra", -1, "1", "dls.extra: unknown field"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        restore(out);
        REQUIRE(edit_json(state, "dls", cases[k].key, cases[k].index, cases[k].raw) == 0);
        expect_refused(cmd, cases[k].needle, "checkpoint-2/rosa_state.json: ", cases[k].needle);
    }
    restore(out);
    REQUIRE(edit_json(state, NULL, "dls", -1, NULL) == 0);
    expect_refused(cmd, "no dls", "rosa_state.json: dls: missing", NULL);
    restore(out);
    char *o = NULL;
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "pristine resume: exit %d: %s", rc, o);
    free(o);
}

/* ------------------------------------------------------- item 6: eval */

static void eval_cmd(char *cmd, size_t n, const char *pred, const char *extra) {
    snprintf(cmd, n,
             "%s eval --model %s --data-dir %s --tasks boolq --limit 3 --num-beams 1 --max-new-tokens 4 --threads 1 "
             "--quiet --predictions %s %s",
             rosa_bin(), model_dir(), shared_path("data/llm-adapters"), pred, extra);
}

/* Rewrites path: every line passed through f (the header is line 0). */
static int rewrite_lines(const char *path, const char *to, cJSON *(*f)(cJSON *line, int no)) {
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return -1;
    rosa_buf b = {0};
    int no = 0;
    for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"), no++) {
        cJSON *j = f(cJSON_Parse(l), no);
        if (!j) continue;
        char *s = cJSON_PrintUnformatted(j);
        rosa_buf_printf(&b, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    int rc = rosa_write_file_atomic(to, b.data ? b.data : "", b.data ? strlen(b.data) : 0);
    rosa_buf_free(&b);
    free(text);
    return rc;
}

/* "Right answers": each response the label, marked correct. */
static cJSON *right_answers(cJSON *j, int no) {
    if (no == 0) {
        cJSON_Delete(j); /* a file of another tool: no header */
        return NULL;
    }
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(j, "label");
    char buf[256];
    snprintf(buf, sizeof buf, "the correct answer is %s", label->valuestring);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "response", cJSON_CreateString(buf));
    return j;
}

static cJSON *other_model(cJSON *j, int no) {
    if (no == 0) cJSON_ReplaceItemInObjectCaseSensitive(j, "model_digest", cJSON_CreateString("0123456789abcdef"));
    return j;
}

static cJSON *other_options(cJSON *j, int no) {
    if (no == 0) cJSON_ReplaceItemInObjectCaseSensitive(j, "options_digest", cJSON_CreateString("0123456789abcdef"));
    return j;
}

static cJSON *other_records(cJSON *j, int no) {
    if (no == 2) cJSON_ReplaceItemInObjectCaseSensitive(j, "instruction", cJSON_CreateString("Is it? true/false"));
    return j;
}

/* Before, a resume took any line with a task and an index: a file of right
 * answers (no header) scored 100%, and lines of another model, adapter or
 * test file were taken as this run's. */
TEST(state_eval_resume_checks_identity_and_instructions) {
    char cmd[8192], *o = NULL;
    const char *pred = test_tmp_path("state-pred.jsonl"), *bad = test_tmp_path("state-pred-bad.jsonl");
    eval_cmd(cmd, sizeof cmd, pred, "");
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    char *text = rosa_read_file(pred, NULL);
    REQUIRE(text);
    CHECK_MSG(strncmp(text, "{\"format\":\"rosa-predictions/1\",\"model\":", 39) == 0, "%.300s", text);
    CHECK(strstr(text, "\"adapter\":null,\"adapter_digest\":null,\"options\":{\"mode\":\"generate\",\"num_beams\":1,"));
    free(text);
    struct {
        cJSON *(*f)(cJSON *, int);
        const char *extra, *needle;
    } cases[] = {
        {right_answers, "", "line 1 is not a rosa predictions header"},
        {other_model, "", "line 1: the predictions were made with another model"},
        {other_options, "", "line 1: the predictions were made with other options"},
        {other_records, "", "line 3: its instruction is not that of record 1 of boolq"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        REQUIRE(rewrite_lines(pred, bad, cases[k].f) == 0);
        eval_cmd(cmd, sizeof cmd, bad, cases[k].extra);
        int rc = sh(cmd, &o);
        CHECK_MSG(rc == 1 && strstr(o, bad) && strstr(o, cases[k].needle), "case %zu: exit %d: %s", k, rc, o);
        free(o);
    }
    /* another adapter: a LoRA of rank 1 (B = 0, so it changes nothing but its identity) */
    rosa_config cfg;
    REQUIRE(rosa_config_load(model_dir(), &cfg) == 0);
    rosa_lora_options lo;
    rosa_lora_options_default(&lo);
    lo.rank = 1;
    rosa_adapter *a = rosa_adapter_new_lora(&cfg, &lo, 3);
    REQUIRE(a);
    const char *ad = test_tmp_path("state-pred-lora");
    REQUIRE(rosa_adapter_save(a, ad, model_dir()) == 0);
    rosa_adapter_free(a);
    char extra[700];
    snprintf(extra, sizeof extra, "--adapter %s", ad);
    eval_cmd(cmd, sizeof cmd, pred, extra);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 1 && strstr(o, "line 1: the predictions were made with another adapter (adapter none"),
              "exit %d: %s", rc, o);
    free(o);
    /* the file as written resumes (and --score-predictions reads past its header) */
    eval_cmd(cmd, sizeof cmd, pred, "");
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 0 && strstr(o, "boolq"), "exit %d: %s", rc, o);
    free(o);
    snprintf(cmd, sizeof cmd, "%s eval --data-dir %s --score-predictions %s", rosa_bin(),
             shared_path("data/llm-adapters"), pred);
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 0 && strstr(o, "boolq            commonsense       3"), "exit %d: %s", rc, o);
    free(o);
}

/* ------------------------------------------------------- item 10: RoSA, merge */

/* 8 heads of 8 (4 KV) and 4 heads of 16 (2 KV) give RoAE tensors of the same
 * shapes at r_low 0.25 ([16, r] and [8, r]): before, an adapter of one loaded
 * on the other.  The config now records the layout and the dimensions. */
TEST(state_rosa_adapter_records_its_head_layout) {
    rosa_model *m = rosa_model_load(model_dir());
    REQUIRE(m);
    rosa_adapter *a = rosa_adapter_new(&rosa_peft_roae, NULL, &m->cfg, m, 7);
    REQUIRE(a);
    const char *dir = test_tmp_path("state-roae");
    REQUIRE(rosa_adapter_save(a, dir, model_dir()) == 0);
    rosa_adapter_free(a);
    char cfg_path[600];
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", dir);
    cJSON *j = rosa_json_load(cfg_path);
    REQUIRE(j);
    static const char *const layout[] = {"num_heads", "num_kv_heads", "head_dim"};
    static const int expect[] = {8, 4, 8};
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, layout[k]);
        CHECK_MSG(cJSON_IsNumber(v) && v->valuedouble == expect[k], "%s is not recorded as %d", layout[k], expect[k]);
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "modulated_dims");
    char *dims = md ? cJSON_PrintUnformatted(md) : NULL;
    CHECK_STR(dims, "[3,7]");
    free(dims);
    cJSON_Delete(j);
    rosa_config other = m->cfg;
    other.num_heads = 4;
    other.num_kv_heads = 2;
    other.head_dim = 16;
    a = rosa_adapter_load(dir, &other);
    CHECK(a == NULL);
    CHECK_ERROR_HAS("adapter_config.json: num_heads: the adapter was made for 8, the model has 4");
    rosa_adapter_free(a);
    other = m->cfg;
    other.num_kv_heads = 8;
    CHECK(rosa_adapter_load(dir, &other) == NULL);
    CHECK_ERROR_HAS("num_kv_heads: the adapter was made for 4, the model has 8");
    /* the dimensions too */
    REQUIRE(edit_json(cfg_path, NULL, "modulated_dims", -1, "[2, 7]") == 0);
    CHECK(rosa_adapter_load(dir, &m->cfg) == NULL);
    CHECK_ERROR_HAS("modulated_dims: not the 2 dimensions 3..3 and 7..7 that r_low 0.25 selects in a head of 8");
    /* an adapter of an older rosa (no layout recorded) still loads */
    static const char *const keys[] = {"num_heads", "num_kv_heads", "head_dim", "modulated_dims"};
    for (int k = 0; k < 4; k++) REQUIRE(edit_json(cfg_path, NULL, keys[k], -1, NULL) == 0);
    a = rosa_adapter_load(dir, &m->cfg);
    CHECK_MSG(a != NULL, "%s", rosa_last_error());
    rosa_adapter_free(a);
    rosa_model_free(m);

    /* end to end: the model with its heads regrouped (the same weights) runs, the adapter is refused on it */
    const char *variant = test_tmp_path("state-4x16");
    char cmd[4096], *o = NULL, cfgv[600];
    snprintf(cmd, sizeof cmd, "cp -r %s %s", model_dir(), variant);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cfgv, sizeof cfgv, "%s/config.json", variant);
    REQUIRE(edit_json(cfgv, NULL, "num_attention_heads", -1, "4") == 0);
    REQUIRE(edit_json(cfgv, NULL, "num_key_value_heads", -1, "2") == 0);
    REQUIRE(edit_json(cfgv, NULL, "head_dim", -1, "16") == 0);
    m = rosa_model_load(model_dir());
    REQUIRE(m);
    a = rosa_adapter_new(&rosa_peft_roae, NULL, &m->cfg, m, 7);
    REQUIRE(a && rosa_adapter_save(a, dir, model_dir()) == 0);
    rosa_adapter_free(a);
    rosa_model_free(m);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --max-new-tokens 2", rosa_bin(), variant);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "the regrouped model: exit %d: %s", rc, o);
    free(o);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --adapter %s --max-new-tokens 2", rosa_bin(), variant, dir);
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 1 && strstr(o, "num_heads: the adapter was made for 8, the model has 4 (another head layout"),
              "exit %d: %s", rc, o);
    free(o);
}

/* A LoRA adapter of finite values whose delta overflows F32: before, `rosa
 * merge` wrote weights of inf with exit 0. */
TEST(state_merge_refuses_weights_that_overflow) {
    rosa_model *m = rosa_model_load(model_dir());
    REQUIRE(m);
    rosa_lora_options lo;
    rosa_lora_options_default(&lo);
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &lo, 3);
    REQUIRE(a);
    for (size_t k = 0; k < a->n_floats; k++) a->w[k] = 1e19f; /* B A sums r products of 1e38 */
    const char *dir = test_tmp_path("state-huge-lora"), *merged = test_tmp_path("state-huge-merged");
    REQUIRE(rosa_adapter_save(a, dir, model_dir()) == 0);
    /* applied for inference, it is refused too */
    CHECK(rosa_adapter_apply(m, a) < 0);
    CHECK_ERROR_HAS("merging the adapter gives a non-finite value");
    rosa_adapter_free(a);
    rosa_model_free(m);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s merge --model %s --adapter %s --output %s", rosa_bin(), model_dir(), dir, merged);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 1 && strstr(o, "model.layers.0.self_attn.q_proj.weight: merging the adapter gives a non-finite "
                                   "value (inf at ["),
              "exit %d: %s", rc, o);
    free(o);
    CHECK_MSG(!rosa_is_dir(merged), "the refused merge left %s", merged);
}
