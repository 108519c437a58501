/* test_peft_methods.c: the PEFT methods of issue 15 (IA3, ...): their ops'
 * gradients by finite differences, and against the independent PyTorch
 * reference (tools/ref_peft.py through tools/ref_train.py): the loss of a
 * non-trivial adapter on the shipped and on a tiny model, 10 training steps
 * (accumulation, warm-up, clipping; with DLS), save -> load, reference-written
 * files, merge. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/util.h"
#include "io/json.h"
#include "model/model.h"
#include "peft/ia3.h"
#include "peft/ln_tuning.h"
#include "peft/miss.h"
#include "peft/oft.h"
#include "peft/peft.h"
#include "test.h"
#include "train/train_ctx.h"

static void fill(float *x, int n, rosa_rng *r, float scale) {
    for (int i = 0; i < n; i++) x[i] = (rosa_rng_uniform(r) * 2.0f - 1.0f) * scale;
}

/* ------------------------------------------------- finite differences */

/* L = sum(r * f(x, l)) for f one of IA3's forms over a frozen W; the
 * gradients of x and l from the backward against central differences. */
typedef struct {
    rosa_weight w;
    float *x, *l, *r, *y, *z, *s;
    int N, ff;
} ia3_ctx;

static double ia3_loss(ia3_ctx *c) {
    int out = c->w.out;
    memset(c->y, 0, sizeof(float) * (size_t)c->N * out);
    /* y starts at the frozen product, as in the block. */
    rosa_weight_forward(&c->w, c->y, c->x, NULL, c->N, 0);
    if (c->ff) ia3_input_forward(&c->w, c->y, c->x, c->l, c->s, c->N);
    else ia3_output_forward(&c->w, NULL, c->y, c->z, c->x, c->l, c->N);
    double L = 0.0;
    for (int i = 0; i < c->N * out; i++) L += (double)c->r[i] * c->y[i];
    return L;
}

static void ia3_gradcheck(int ff) {
    int N = 5, in = 7, out = 6;
    rosa_rng g;
    rosa_rng_seed(&g, 11 + ff);
    float W[42], x[35], l[7], r[30], y[30], z[30], s[64], dx[35], gl[7];
    fill(W, out * in, &g, 1.0f);
    fill(x, N * in, &g, 1.0f);
    fill(r, N * out, &g, 1.0f);
    int nl = ff ? in : out;
    for (int i = 0; i < nl; i++) l[i] = 1.0f + 0.5f * (rosa_rng_uniform(&g) - 0.5f);
    ia3_ctx c = {{.f32 = W, .out = out, .in = in}, x, l, r, y, z, s, N, ff};
    ia3_loss(&c);
    /* dL/dy = r; the frozen part's input gradient first, as the block does. */
    rosa_weight_backward(&c.w, dx, r, N, 0);
    memset(gl, 0, sizeof gl);
    if (ff) ia3_input_backward(&c.w, dx, gl, r, x, l, s, N);
    else ia3_output_backward(&c.w, dx, gl, r, z, l, s, N);
    const float eps = 1e-3f;
    double worst = 0.0;
    for (int k = 0; k < N * in + nl; k++) {
        float *v = k < N * in ? &x[k] : &l[k - N * in], keep = *v;
        *v = keep + eps;
        double up = ia3_loss(&c);
        *v = keep - eps;
        double down = ia3_loss(&c);
        *v = keep;
        double num = (up - down) / (2.0 * eps), an = k < N * in ? dx[k] : gl[k - N * in];
        worst = fmax(worst, fabs(num - an) / fmax(fabs(num), 0.1));
    }
    CHECK_MSG(worst < 1e-2, "IA3 %s form: gradient off by %g", ff ? "input" : "output", worst);
}

TEST(ia3_input_form_gradients) { ia3_gradcheck(1); }
TEST(ia3_output_form_gradients) { ia3_gradcheck(0); }

/* L = sum(r * (x M(vec) - x)) for OFT's block rotation: the gradients of x
 * and vec (through the Cayley-Neumann series) against central differences. */
typedef struct {
    float *x, *vec, *r, *R, *out, *scr;
    int N, nb, bs, share, terms;
} oft_ctx;

static double oft_loss(void *p) {
    oft_ctx *c = p;
    oft_rotation_forward(c->R, c->vec, c->share ? 1 : c->nb, c->bs, c->terms, c->scr);
    oft_rotate(c->out, c->x, c->R, c->N, c->nb, c->bs, c->share, 0, 0);
    double L = 0.0;
    for (int i = 0; i < c->N * c->nb * c->bs; i++) L += (double)c->r[i] * c->out[i];
    return L;
}

static void oft_gradcheck(int share, int terms) {
    int N = 3, nb = 3, bs = 4, in = nb * bs, nv = share ? 1 : nb, nvec = nv * bs * (bs - 1) / 2;
    rosa_rng g;
    rosa_rng_seed(&g, 21 + share + terms);
    float x[36], vec[18], r[36], R[48], out[36], dx[36], dvec[18], G[48];
    float *scr = malloc(sizeof(float) * oft_rotation_scratch(bs, terms));
    fill(x, N * in, &g, 1.0f);
    fill(r, N * in, &g, 1.0f);
    fill(vec, nvec, &g, 0.3f);
    oft_ctx c = {x, vec, r, R, out, scr, N, nb, bs, share, terms};
    oft_loss(&c);
    oft_rotate(dx, r, R, N, nb, bs, share, 1, 0);
    oft_rotate_grad(G, x, r, N, nb, bs, share);
    memset(dvec, 0, sizeof dvec);
    oft_rotation_backward(dvec, G, vec, nv, bs, terms, scr);
    const float eps = 1e-3f;
    double worst = 0.0;
    for (int k = 0; k < N * in + nvec; k++) {
        float *v = k < N * in ? &x[k] : &vec[k - N * in], keep = *v;
        *v = keep + eps;
        double up = oft_loss(&c);
        *v = keep - eps;
        double down = oft_loss(&c);
        *v = keep;
        double num = (up - down) / (2.0 * eps), an = k < N * in ? dx[k] : dvec[k - N * in];
        worst = fmax(worst, fabs(num - an) / fmax(fabs(num), 0.1));
    }
    free(scr);
    CHECK_MSG(worst < 1e-2, "OFT (share %d, %d terms): gradient off by %g", share, terms, worst);
}

TEST(oft_rotation_gradients) {
    oft_gradcheck(0, 5);
    oft_gradcheck(1, 5);
    oft_gradcheck(0, 3);
    oft_gradcheck(0, 2);
    oft_gradcheck(0, 7);
    oft_gradcheck(0, 0); /* the exact Cayley transform */
    oft_gradcheck(1, 0);
}

/* The exact Cayley transform is orthogonal; COFT's projection clips each
 * block's skew matrix to Frobenius norm eps / sqrt(blocks). */
TEST(oft_exact_cayley_and_coft_projection) {
    float vec[12], R[32], scr[256];
    rosa_rng g;
    rosa_rng_seed(&g, 41);
    fill(vec, 12, &g, 0.8f);
    oft_rotation_forward(R, vec, 2, 4, 0, scr);
    double worst = 0.0;
    for (int j = 0; j < 2; j++)
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                double s = 0.0;
                for (int k = 0; k < 4; k++) s += (double)R[j * 16 + a * 4 + k] * R[j * 16 + b * 4 + k];
                worst = fmax(worst, fabs(s - (a == b)));
            }
    CHECK_MSG(worst < 1e-5, "R R^T differs from I by %g", worst);
    float v2[12];
    memcpy(v2, vec, sizeof v2);
    v2[6] = v2[7] = v2[8] = v2[9] = v2[10] = v2[11] = 1e-6f; /* block 1 inside the radius: kept */
    float keep = v2[6];
    oft_project(v2, 2, 4, 0.01f);
    double n0 = 0.0;
    for (int t = 0; t < 6; t++) n0 += 2.0 * v2[t] * v2[t];
    CHECK_MSG(fabs(sqrt(n0) - 0.01 / sqrt(2.0)) < 1e-7, "projected norm %g", sqrt(n0));
    CHECK(v2[6] == keep);
}

/* R = I + 2S + 2S^2 + 2S^3 + S^4 at PEFT's default of 5 terms, by hand. */
TEST(oft_series_is_peft_s) {
    float vec[3] = {0.1f, -0.2f, 0.3f}, R[9], scr[256];
    oft_rotation_forward(R, vec, 1, 3, 5, scr);
    double S[9] = {0, 0.1, -0.2, -0.1, 0, 0.3, 0.2, -0.3, 0}, P[9], Q[9], want[9];
    for (int i = 0; i < 9; i++) P[i] = S[i], want[i] = (i % 4 == 0) + 2 * S[i];
    for (int k = 2; k <= 4; k++) {
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                Q[i * 3 + j] = 0;
                for (int m = 0; m < 3; m++) Q[i * 3 + j] += P[i * 3 + m] * S[m * 3 + j];
            }
        for (int i = 0; i < 9; i++) P[i] = Q[i], want[i] += (k < 4 ? 2.0 : 1.0) * P[i];
    }
    double worst = 0.0;
    for (int i = 0; i < 9; i++) worst = fmax(worst, fabs(R[i] - want[i]));
    CHECK_MSG(worst < 1e-6, "series off by %g", worst);
}

/* MiSS's block sum over a zero-padded input (in 7, r 3: the last block has
 * one column) and its adjoint: <ds, sum(x)> == <dx, x> for the gradient. */
TEST(miss_block_sum_and_its_gradient) {
    float x[14], s[6], ds[6], dx[14];
    rosa_rng g;
    rosa_rng_seed(&g, 31);
    fill(x, 14, &g, 1.0f);
    fill(ds, 6, &g, 1.0f);
    miss_block_sum(s, x, 2, 7, 3);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 3; k++) {
            float want = 0.0f;
            for (int i = k; i < 7; i += 3) want += x[n * 7 + i];
            CHECK(fabsf(s[n * 3 + k] - want) < 1e-6f);
        }
    memset(dx, 0, sizeof dx);
    miss_block_sum_backward(dx, ds, 2, 7, 3);
    double lhs = 0.0, rhs = 0.0;
    for (int i = 0; i < 6; i++) lhs += (double)ds[i] * s[i];
    for (int i = 0; i < 14; i++) rhs += (double)dx[i] * x[i];
    CHECK_MSG(fabs(lhs - rhs) < 1e-5, "adjoint off: %g vs %g", lhs, rhs);
}

/* ------------------------------------------------- against the reference */

static int sh(const char *cmd, char **out) { return run_capture(cmd, 1, out); }

static int shq(const char *cmd) {
    char *o = NULL;
    int rc = sh(cmd, &o);
    if (rc != 0) test_fail(__FILE__, __LINE__, "%s failed (%d): %s", cmd, rc, o);
    free(o);
    return rc;
}

static const char *HYPER = "--max-steps 10 --batch-size 4 --micro-batch-size 2 --lr 5e-3 --warmup-steps 3 "
                           "--max-grad-norm 0.5 --weight-decay 0.01 --lr-scheduler linear";

/* 10 steps of rosa train from the reference-written adapter `init` and of
 * the reference: step losses, gradient norms, DLS selections (with ref_dls),
 * the final adapter; and rosa loss of `init` per example. */
static void train_parity(const char *label, const char *init, const char *rosa_flags, const char *ref_dls) {
    const char *model = shared_path("models/stories260K");
    char data[512], dump[512], ref[512], out[512], cmd[4096], *o = NULL;
    snprintf(data, sizeof data, "%s", test_tmp_path("pm.jsonl"));
    snprintf(dump, sizeof dump, "%s", test_tmp_path("pm-dump.json"));
    snprintf(ref, sizeof ref, "%s-%s.json", test_tmp_path("pm-ref"), label);
    snprintf(out, sizeof out, "%s-%s", test_tmp_path("pm-out"), label);
    write_toy_records(data, 16);
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --data %s --template train --cutoff-len 48 --json > %s", rosa_bin(),
             model, data, dump);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s %s %s -q",
             model, dump, init, ref, HYPER, ref_dls);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s %s %s --cutoff-len 48 "
             "--no-shuffle --quiet --overwrite --save-steps 0", rosa_bin(), model, data, init, out, HYPER, rosa_flags);
    REQUIRE(shq(cmd) == 0);
    cJSON *r = rosa_json_load(ref);
    REQUIRE(r);
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len;
    char *metrics = rosa_read_file(mp, &len);
    REQUIRE(metrics);
    float losses[10], norms[10];
    int n = 0;
    cJSON *sel = cJSON_CreateArray();
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (j && cJSON_GetObjectItem(j, "loss") && cJSON_GetObjectItem(j, "grad_norm") && n < 10) {
            losses[n] = (float)cJSON_GetObjectItem(j, "loss")->valuedouble;
            norms[n++] = (float)cJSON_GetObjectItem(j, "grad_norm")->valuedouble;
        }
        const cJSON *s = j ? cJSON_GetObjectItem(j, "dls_selection") : NULL;
        if (s) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(cJSON_GetObjectItem(j, "step")->valuedouble - 1));
            cJSON_AddItemToArray(pair, cJSON_Duplicate(cJSON_GetObjectItem(s, "layers"), 1));
            cJSON_AddItemToArray(sel, pair);
        }
        cJSON_Delete(j);
    }
    free(metrics);
    CHECK_EQ_INT(n, 10);
    double el = max_rel_json(losses, cJSON_GetObjectItem(r, "losses"), n);
    double eg = max_rel_json(norms, cJSON_GetObjectItem(r, "grad_norms"), n);
    CHECK_MSG(el <= 1e-4, "%s: step losses differ by %g", label, el);
    CHECK_MSG(eg <= 1e-4, "%s: grad norms differ by %g", label, eg);
    if (*ref_dls) {
        CHECK_MSG(cJSON_Compare(sel, cJSON_GetObjectItem(r, "dls_selections"), 1), "%s: DLS selections differ", label);
        CHECK(cJSON_GetArraySize(sel) >= 2);
    }
    cJSON_Delete(sel);
    rosa_config c;
    REQUIRE(rosa_config_load(model, &c) == 0);
    rosa_adapter *a = rosa_adapter_load(out, &c);
    REQUIRE(a);
    double worst = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "adapter"), a->params[i].name);
        CHECK_MSG(want != NULL, "%s: reference lacks %s", label, a->params[i].name);
        if (want) worst = fmax(worst, max_rel_json(a->w + a->params[i].offset, want, a->params[i].rows * a->params[i].cols));
    }
    CHECK_MSG(worst <= 1e-4, "%s: adapter differs from the reference by %g", label, worst);
    rosa_adapter_free(a);
    /* rosa loss of the initial adapter, per example. */
    snprintf(cmd, sizeof cmd, "%s loss --model %s --adapter %s --data %s --cutoff-len 48 --per-example --json "
             "--micro-batch-size 3", rosa_bin(), model, init, data);
    REQUIRE(run_capture(cmd, 0, &o) == 0);
    cJSON *lj = cJSON_Parse(o);
    free(o);
    REQUIRE(lj);
    const cJSON *per = cJSON_GetObjectItem(lj, "per_example"), *want = cJSON_GetObjectItem(r, "per_example_init_loss");
    CHECK_EQ_INT(cJSON_GetArraySize(per), 16);
    double ep = 0.0;
    for (int i = 0; i < 16 && i < cJSON_GetArraySize(per); i++) {
        double w = cJSON_GetArrayItem(want, i)->valuedouble;
        ep = fmax(ep, fabs(cJSON_GetArrayItem(per, i)->valuedouble - w) / fabs(w));
    }
    CHECK_MSG(ep <= 1e-5, "%s: per-example losses differ by %g (relative)", label, ep);
    cJSON_Delete(lj);
    cJSON_Delete(r);
}

/* The per-record mean cross-entropy of `adapter` on a tiny test model
 * (random tokens: the test models have no tokenizer) against the
 * reference's, relative 1e-5. */
static void tiny_loss_parity(const char *label, const char *tiny, const char *make_args) {
    const char *model = testdata_path(tiny);
    char init[512], dump[512], ref[512], cmd[4096];
    snprintf(init, sizeof init, "%s-%s", test_tmp_path("tiny-init"), label);
    snprintf(dump, sizeof dump, "%s-%s.json", test_tmp_path("tiny-dump"), label);
    snprintf(ref, sizeof ref, "%s-%s.json", test_tmp_path("tiny-ref"), label);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s %s --out %s", model, make_args, init);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-data --model %s --n 4 --seed 2 --out %s", model, dump);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s "
             "--max-steps 1 --batch-size 4 --micro-batch-size 4 -q", model, dump, init, ref);
    REQUIRE(shq(cmd) == 0);
    rosa_model *m = rosa_model_load(model);
    REQUIRE(m);
    rosa_adapter *a = rosa_adapter_load(init, &m->cfg);
    REQUIRE(a);
    cJSON *d = rosa_json_load(dump), *r = rosa_json_load(ref);
    REQUIRE(d && r);
    const cJSON *recs = cJSON_GetObjectItem(d, "records"), *want = cJSON_GetObjectItem(r, "per_example_init_loss");
    double worst = 0.0;
    for (int k = 0; k < cJSON_GetArraySize(recs); k++) {
        const cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(recs, k), "ids");
        const cJSON *lab = cJSON_GetObjectItem(cJSON_GetArrayItem(recs, k), "labels");
        int T = cJSON_GetArraySize(ids);
        int32_t *id = malloc(sizeof(int32_t) * (size_t)T), *lb = malloc(sizeof(int32_t) * (size_t)T);
        uint8_t *mask = malloc((size_t)T);
        float *ce = malloc(sizeof(float) * (size_t)T);
        for (int t = 0; t < T; t++) {
            id[t] = (int32_t)cJSON_GetArrayItem(ids, t)->valuedouble;
            lb[t] = (int32_t)cJSON_GetArrayItem(lab, t)->valuedouble;
            mask[t] = 1;
        }
        rosa_train_ctx *t = rosa_train_ctx_new(m, a, 1, T, 0);
        REQUIRE(t);
        rosa_batch b = {.B = 1, .T = T, .ids = id, .labels = lb, .mask = mask};
        double sum;
        int nt;
        REQUIRE(rosa_train_microbatch(t, &b, 1.0f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &sum, &nt,
                                      ce) == 0);
        rosa_train_ctx_free(t);
        double w = cJSON_GetArrayItem(want, k)->valuedouble;
        worst = fmax(worst, fabs(sum / nt - w) / fabs(w));
        free(id), free(lb), free(mask), free(ce);
    }
    CHECK_MSG(worst <= 1e-5, "%s on %s: losses differ from the reference by %g (relative)", label, tiny, worst);
    cJSON_Delete(d);
    cJSON_Delete(r);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* A reference-written adapter loads; saved by rosa and loaded again it has
 * the same tensors, values and config keys. */
static void round_trip(const char *dir, const char *label) {
    rosa_config c;
    REQUIRE(rosa_config_load(shared_path("models/stories260K"), &c) == 0);
    rosa_adapter *a = rosa_adapter_load(dir, &c);
    REQUIRE(a);
    char out[512];
    snprintf(out, sizeof out, "%s-%s", test_tmp_path("rt"), label);
    REQUIRE(rosa_adapter_save(a, out, "stories260K") == 0);
    rosa_adapter *b = rosa_adapter_load(out, &c);
    REQUIRE(b);
    CHECK(b->method == a->method);
    CHECK_EQ_INT(b->n_params, a->n_params);
    for (int i = 0; i < a->n_params && i < b->n_params; i++) CHECK_STR(a->params[i].name, b->params[i].name);
    CHECK(b->n_floats == a->n_floats && memcmp(a->w, b->w, sizeof(float) * a->n_floats) == 0);
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/adapter_config.json", dir);
    snprintf(p2, sizeof p2, "%s/adapter_config.json", out);
    cJSON *j1 = rosa_json_load(p1), *j2 = rosa_json_load(p2);
    REQUIRE(j1 && j2);
    /* rosa writes every key PEFT wrote (but the PEFT version and revision). */
    const cJSON *it;
    cJSON_ArrayForEach(it, j1) {
        if (strcmp(it->string, "peft_version") == 0 || strcmp(it->string, "revision") == 0) continue;
        CHECK_MSG(cJSON_GetObjectItem(j2, it->string) != NULL, "%s: rosa's config lacks \"%s\"", label, it->string);
    }
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    rosa_adapter_free(a);
    rosa_adapter_free(b);
}

/* rosa loss of the merged model equals rosa loss with the adapter's hooks. */
static void merge_matches_hooks(const char *dir, const char *label) {
    const char *model = shared_path("models/stories260K");
    char merged[512], data[512], cmd[4096], *l0 = NULL, *l1 = NULL;
    snprintf(merged, sizeof merged, "%s-%s", test_tmp_path("merged"), label);
    snprintf(data, sizeof data, "%s", test_tmp_path("pm-merge.jsonl"));
    write_toy_records(data, 8);
    snprintf(cmd, sizeof cmd, "%s merge --model %s --adapter %s --output %s --overwrite", rosa_bin(), model, dir, merged);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s loss --model %s --adapter %s --data %s --json", rosa_bin(), model, dir, data);
    REQUIRE(run_capture(cmd, 0, &l0) == 0);
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --json", rosa_bin(), merged, data);
    REQUIRE(run_capture(cmd, 0, &l1) == 0);
    cJSON *j0 = cJSON_Parse(l0), *j1 = cJSON_Parse(l1);
    REQUIRE(j0 && j1);
    REQUIRE(cJSON_GetObjectItem(j0, "token_mean_loss") && cJSON_GetObjectItem(j1, "token_mean_loss"));
    double a = cJSON_GetObjectItem(j0, "token_mean_loss")->valuedouble, b = cJSON_GetObjectItem(j1, "token_mean_loss")->valuedouble;
    CHECK_MSG(fabs(a - b) <= 1e-5 * fabs(a), "%s: merged loss %.8g, with the adapter %.8g", label, b, a);
    snprintf(cmd, sizeof cmd, "%s loss --model %s --data %s --json", rosa_bin(), model, data);
    char *lb = NULL;
    REQUIRE(run_capture(cmd, 0, &lb) == 0);
    cJSON *jb = cJSON_Parse(lb);
    REQUIRE(jb && cJSON_GetObjectItem(jb, "token_mean_loss"));
    CHECK_MSG(fabs(cJSON_GetObjectItem(jb, "token_mean_loss")->valuedouble - a) > 1e-4, "%s: the adapter changes nothing", label);
    cJSON_Delete(jb);
    free(lb);
    /* Generation with the adapter (merged in memory, or its hooks) equals the merged model's. */
    char *g0 = NULL, *g1 = NULL;
    snprintf(cmd, sizeof cmd, "%s generate --model %s --adapter %s --max-new-tokens 30 --json", rosa_bin(), model, dir);
    REQUIRE(run_capture(cmd, 0, &g0) == 0);
    snprintf(cmd, sizeof cmd, "%s generate --model %s --max-new-tokens 30 --json", rosa_bin(), merged);
    REQUIRE(run_capture(cmd, 0, &g1) == 0);
    cJSON *k0 = cJSON_Parse(g0), *k1 = cJSON_Parse(g1);
    REQUIRE(k0 && k1);
    CHECK_MSG(cJSON_Compare(cJSON_GetObjectItem(k0, "ids"), cJSON_GetObjectItem(k1, "ids"), 1),
              "%s: generation with the adapter differs from the merged model's", label);
    cJSON_Delete(k0);
    cJSON_Delete(k1);
    free(g0);
    free(g1);
    cJSON_Delete(j0);
    cJSON_Delete(j1);
    free(l0);
    free(l1);
}

static const char *make_adapter(const char *label, const char *args) {
    static char dir[512];
    char cmd[4096];
    snprintf(dir, sizeof dir, "%s-%s", test_tmp_path("pm-init"), label);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s %s --out %s",
             shared_path("models/stories260K"), args, dir);
    return shq(cmd) == 0 ? dir : NULL;
}

/* --param-budget with a method that has no size to choose: a usage error naming it. */
static void no_budget(const char *method) {
    char cmd[2048], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --method %s --param-budget 0.01 --output %s --quiet",
             rosa_bin(), shared_path("models/stories260K"), test_tmp_path("pm.jsonl"), method, test_tmp_path("nb"));
    write_toy_records(test_tmp_path("pm.jsonl"), 4);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 2, "--param-budget with %s: exit %d: %s", method, rc, o);
    CHECK_MSG(strstr(o, method) && strstr(o, "--param-budget"), "message does not name %s: %s", method, o);
    free(o);
}

/* ------------------------------------------------------------- IA3 */

#define IA3_ARGS "--method ia3 --init-std 0.2 --seed 3"

TEST(ia3_trains_as_the_reference) {
    const char *init = make_adapter("ia3", IA3_ARGS);
    REQUIRE(init);
    train_parity("ia3", init, "", "");
}

TEST(ia3_all_linear_with_dls_trains_as_the_reference) {
    const char *init = make_adapter("ia3-dls", "--method ia3 --target-modules all-linear "
                                               "--feedforward-modules down_proj,up_proj --init-std 0.2 --seed 4");
    REQUIRE(init);
    train_parity("ia3-dls", init, "--dls --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4",
                 "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4");
}

TEST(ia3_loss_on_tiny_models_matches_the_reference) {
    tiny_loss_parity("ia3", "llama_gqa", IA3_ARGS);
    tiny_loss_parity("ia3-bias", "qwen2_bias", "--method ia3 --target-modules q_proj,k_proj,up_proj,down_proj "
                                              "--feedforward-modules up_proj --init-std 0.2 --seed 5");
}

TEST(ia3_files_round_trip_and_merge) {
    const char *init = make_adapter("ia3-rt", IA3_ARGS);
    REQUIRE(init);
    round_trip(init, "ia3");
    merge_matches_hooks(init, "ia3");
    no_budget("ia3");
}

/* ------------------------------------------------------------- LN-Tuning */

#define LN_ARGS "--method ln_tuning --init-std 0.2 --seed 3"

TEST(ln_tuning_trains_as_the_reference) {
    const char *init = make_adapter("ln", LN_ARGS);
    REQUIRE(init);
    train_parity("ln", init, "", "");
}

/* The final norm is outside DLS's layers: it trains every step. */
TEST(ln_tuning_with_dls_trains_as_the_reference) {
    const char *init = make_adapter("ln-dls", LN_ARGS);
    REQUIRE(init);
    train_parity("ln-dls", init, "--dls --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4",
                 "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4");
}

TEST(ln_tuning_loss_on_tiny_models_matches_the_reference) {
    tiny_loss_parity("ln", "llama_gqa", LN_ARGS);
    tiny_loss_parity("ln-part", "llama_mha_tied", "--method ln_tuning --target-modules post_attention_layernorm,norm "
                                                  "--init-std 0.2 --seed 6");
}

TEST(ln_tuning_files_round_trip_and_merge) {
    const char *init = make_adapter("ln-rt", LN_ARGS);
    REQUIRE(init);
    round_trip(init, "ln_tuning");
    merge_matches_hooks(init, "ln_tuning");
    no_budget("ln_tuning");
}

/* With target_modules null, PEFT's defaults for the model's type: IA3 scales
 * q (not k) on Qwen2, LN-Tuning trains only post_attention_layernorm there;
 * Gemma's 1 + w norms are refused by LN-Tuning. */
TEST(ia3_and_ln_tuning_defaults_follow_the_model_type) {
    rosa_config q, l, g;
    REQUIRE(rosa_config_load(testdata_path("qwen2_bias"), &q) == 0);
    REQUIRE(rosa_config_load(testdata_path("llama_gqa"), &l) == 0);
    rosa_ia3_options io = {0};
    rosa_adapter *a = rosa_adapter_table(&rosa_peft_ia3, &io, &q);
    REQUIRE(a);
    CHECK(strstr(a->params[0].name, "q_proj.ia3_l") != NULL);
    CHECK_EQ_INT(a->n_params, 3 * q.num_layers);
    rosa_adapter_free(a);
    a = rosa_adapter_table(&rosa_peft_ia3, &io, &l);
    REQUIRE(a);
    CHECK(strstr(a->params[0].name, "k_proj.ia3_l") != NULL);
    rosa_adapter_free(a);
    rosa_ln_tuning_options lo = {0};
    a = rosa_adapter_table(&rosa_peft_ln_tuning, &lo, &q);
    REQUIRE(a);
    CHECK_EQ_INT(a->n_params, q.num_layers);
    CHECK(strstr(a->params[0].name, "post_attention_layernorm.ln_tuning_layers.weight") != NULL);
    rosa_adapter_free(a);
    a = rosa_adapter_table(&rosa_peft_ln_tuning, &lo, &l);
    REQUIRE(a);
    CHECK_EQ_INT(a->n_params, 2 * l.num_layers + 1);
    rosa_adapter_free(a);
    REQUIRE(rosa_config_load(testdata_path("gemma3-tiny"), &g) == 0);
    CHECK(rosa_adapter_table(&rosa_peft_ln_tuning, &lo, &g) == NULL);
    CHECK_ERROR_HAS("1 + w");
}

/* IA3 scaling the output of Qwen2's biased q/v projections is not merged
 * (PEFT scales the bias too): its hooks run at inference, and the cached
 * forward's cross-entropies equal the training forward's. */
TEST(ia3_with_biases_keeps_its_hooks_at_inference) {
    rosa_model *m = rosa_model_load(testdata_path("qwen2_bias"));
    REQUIRE(m);
    rosa_ia3_options io = {0};
    rosa_adapter *a = rosa_adapter_new(&rosa_peft_ia3, &io, &m->cfg, m, 1);
    REQUIRE(a);
    rosa_rng g;
    rosa_rng_seed(&g, 9);
    for (size_t i = 0; i < a->n_floats; i++) a->w[i] = 1.0f + 0.4f * (rosa_rng_uniform(&g) - 0.5f);
    CHECK(!rosa_adapter_mergeable(a));
    int V = m->cfg.vocab_size, n = 16;
    int32_t ids[16];
    uint8_t mask[16];
    for (int i = 0; i < n; i++) ids[i] = 3 + (i * 37) % (V - 3), mask[i] = 1;
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 1, n, 0);
    REQUIRE(t);
    rosa_batch b = {.B = 1, .T = n, .ids = ids, .labels = ids, .mask = mask};
    float ce[16];
    double loss;
    int nt;
    REQUIRE(rosa_train_microbatch(t, &b, 1.0f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &loss, &nt, ce) == 0);
    rosa_train_ctx_free(t);
    REQUIRE(rosa_adapter_apply(m, a) == 0);
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    REQUIRE(kv && logits);
    REQUIRE(rosa_forward(m, kv, n, ids, NULL, logits, 1) == 0);
    double worst = 0.0;
    for (int i = 0; i + 1 < n; i++) {
        const float *row = logits + (size_t)i * V;
        double mx = row[0], s = 0;
        for (int k = 1; k < V; k++) mx = fmax(mx, row[k]);
        for (int k = 0; k < V; k++) s += exp(row[k] - mx);
        worst = fmax(worst, fabs(log(s) + mx - row[ids[i + 1]] - ce[i]));
    }
    CHECK_MSG(worst < 1e-4, "inference and training forward disagree by %g", worst);
    free(logits);
    rosa_kv_cache_free(kv);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* ------------------------------------------------------------- OFT */

#define OFT_ARGS "--method oft --oft-block-size 8 --target-modules q_proj,v_proj,o_proj,down_proj --init-std 0.1 --seed 3"

TEST(oft_trains_as_the_reference) {
    const char *init = make_adapter("oft", OFT_ARGS);
    REQUIRE(init);
    train_parity("oft", init, "", "");
}

/* PEFT's defaults (block size 32, q_proj and v_proj), blocks sharing one rotation, with DLS. */
TEST(oft_shared_blocks_with_dls_train_as_the_reference) {
    const char *init = make_adapter("oft-dls", "--method oft --block-share --num-cayley-neumann-terms 4 --init-std 0.1 "
                                               "--seed 4");
    REQUIRE(init);
    train_parity("oft-dls", init, "--dls --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4",
                 "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4");
}

/* COFT (its in-place projection at every forward) and the exact Cayley transform. */
TEST(oft_coft_exact_cayley_trains_as_the_reference) {
    const char *init = make_adapter("oft-coft", "--method oft --oft-block-size 8 --coft --oft-eps 0.05 "
                                                "--no-cayley-neumann --target-modules q_proj,v_proj,up_proj --init-std 0.1 "
                                                "--seed 8");
    REQUIRE(init);
    train_parity("oft-coft", init, "", "");
}

TEST(oft_loss_on_tiny_models_matches_the_reference) {
    tiny_loss_parity("oft", "llama_gqa", "--method oft --oft-block-size 0 --oft-r 4 --target-modules all-linear "
                                         "--init-std 0.1 --seed 5");
    tiny_loss_parity("oft-bias", "qwen2_bias", "--method oft --oft-block-size 5 --target-modules q_proj,k_proj,up_proj "
                                               "--init-std 0.1 --seed 6");
}

TEST(oft_files_round_trip_and_merge) {
    const char *init = make_adapter("oft-rt", OFT_ARGS);
    REQUIRE(init);
    round_trip(init, "oft");
    merge_matches_hooks(init, "oft");
    /* --param-budget picks the block size. */
    char cmd[2048], *o = NULL;
    write_toy_records(test_tmp_path("pm-b.jsonl"), 4);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --method oft --param-budget 0.05 --max-steps 1 "
             "--batch-size 2 --micro-batch-size 2 --output %s --overwrite --save-steps 0", rosa_bin(),
             shared_path("models/stories260K"), test_tmp_path("pm-b.jsonl"), test_tmp_path("pm-b-out"));
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0 && strstr(o, "--param-budget 0.05: rank"), "OFT --param-budget: %d %s", rc, o);
    free(o);
}

/* ------------------------------------------------------------- MiSS */

#define MISS_ARGS "--method miss --rank 12 --target-modules q_proj,v_proj,o_proj,down_proj --init-std 0.05 --seed 3"

TEST(miss_trains_as_the_reference) {
    const char *init = make_adapter("miss", MISS_ARGS);
    REQUIRE(init);
    train_parity("miss", init, "", "");
}

TEST(miss_mini_with_dls_trains_as_the_reference) {
    const char *init = make_adapter("miss-dls", "--method miss --rank 8 --miss-init mini --mini-r 4 "
                                                "--target-modules q_proj,k_proj,up_proj,down_proj --init-std 0.01 --seed 3");
    REQUIRE(init);
    train_parity("miss-dls", init, "--dls --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4",
                 "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4");
}

/* r 5 divides no width of the tiny models: the input is zero-padded. */
TEST(miss_loss_on_tiny_models_matches_the_reference) {
    tiny_loss_parity("miss", "llama_gqa", "--method miss --rank 5 --target-modules all-linear --init-std 0.05 --seed 5");
    tiny_loss_parity("miss-bias", "qwen2_bias", "--method miss --rank 4 --miss-init mini --mini-r 2 "
                                                "--target-modules q_proj,k_proj,up_proj --init-std 0.05 --seed 6");
}

TEST(miss_files_round_trip_and_merge) {
    const char *init = make_adapter("miss-rt", "--method miss --rank 5 --target-modules q_proj,v_proj,down_proj "
                                               "--init-std 0.05 --seed 7");
    REQUIRE(init);
    round_trip(init, "miss");
    merge_matches_hooks(init, "miss");
    char cmd[2048], *o = NULL;
    write_toy_records(test_tmp_path("pm-b.jsonl"), 4);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --method miss --param-budget 0.02 --max-steps 1 "
             "--batch-size 2 --micro-batch-size 2 --output %s --overwrite --save-steps 0", rosa_bin(),
             shared_path("models/stories260K"), test_tmp_path("pm-b.jsonl"), test_tmp_path("pm-b-miss"));
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0 && strstr(o, "--param-budget 0.02: rank"), "MiSS --param-budget: %d %s", rc, o);
    free(o);
    /* miss_dropout: from scratch D = 0, so step 1 has the base model's loss; it is saved. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --method miss --rank 4 --dropout 0.5 --max-steps 2 "
             "--batch-size 2 --micro-batch-size 2 --warmup-steps 0 --output %s --overwrite --save-steps 0 --quiet",
             rosa_bin(), shared_path("models/stories260K"), test_tmp_path("pm-b.jsonl"), test_tmp_path("pm-b-drop"));
    CHECK(sh(cmd, &o) == 0);
    free(o);
    char dcfg[700];
    snprintf(dcfg, sizeof dcfg, "%s/adapter_config.json", test_tmp_path("pm-b-drop"));
    cJSON *dj = rosa_json_load(dcfg);
    CHECK(dj && cJSON_GetObjectItem(dj, "miss_dropout") &&
          fabs(cJSON_GetObjectItem(dj, "miss_dropout")->valuedouble - 0.5) < 1e-9);
    cJSON_Delete(dj);
    /* Bat (the weight-dependent block) is refused by name. */
    char dir[600], cfg[700];
    snprintf(dir, sizeof dir, "%s", init);
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    cJSON *j = rosa_json_load(cfg);
    REQUIRE(j);
    cJSON_ReplaceItemInObject(j, "init_weights", cJSON_CreateString("bat"));
    char *text = cJSON_Print(j);
    REQUIRE(rosa_write_file_atomic(cfg, text, strlen(text)) == 0);
    free(text);
    cJSON_Delete(j);
    rosa_config c;
    REQUIRE(rosa_config_load(shared_path("models/stories260K"), &c) == 0);
    CHECK(rosa_adapter_load(dir, &c) == NULL);
    CHECK_ERROR_HAS("Bat");
}

/* ------------------------------------------------------------- AdaLoRA */

#define ADALORA_ARGS "--method adalora --rank 6 --target-r 2 --total-step 8 --target-modules q_proj,v_proj,down_proj --seed 3"

/* Without the rank allocator (HF Trainer's loop): the SVD form and the
 * orthogonality term in the loss, through 10 steps. */
TEST(adalora_trains_as_the_reference) {
    const char *init = make_adapter("adalora", ADALORA_ARGS);
    REQUIRE(init);
    train_parity("adalora", init, "--method adalora --no-rank-allocation", "");
}

TEST(adalora_with_dls_trains_as_the_reference) {
    const char *init = make_adapter("adalora-dls", "--method adalora --rank 4 --target-modules all-linear --seed 4");
    REQUIRE(init);
    train_parity("adalora-dls", init,
                 "--method adalora --no-rank-allocation --dls --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 "
                 "--dls-k-ratio 0.4",
                 "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4");
}

TEST(adalora_loss_on_tiny_models_matches_the_reference) {
    tiny_loss_parity("adalora", "qwen2_bias", "--method adalora --rank 3 --target-modules all-linear --seed 5");
}

/* max |a - b| / max(1, max |b|) over two loaded adapters of one table. */
static double adapter_diff(const rosa_adapter *a, const rosa_adapter *b) {
    double mx = 1.0, err = 0.0;
    for (size_t i = 0; i < b->n_floats; i++) mx = fmax(mx, fabs(b->w[i]));
    for (size_t i = 0; i < b->n_floats; i++) err = fmax(err, fabs(a->w[i] - b->w[i]));
    return err / mx;
}

/* The rank allocator through a whole budget schedule (total_step 8 of 10
 * steps: masking from step 1, the final pattern at step 8, re-applied after):
 * losses, gradient norms, the rank_pattern and the pruned, resized file the
 * reference writes as PEFT does; that file loads, round-trips and merges. */
TEST(adalora_rank_allocation_matches_the_reference) {
    const char *init = make_adapter("adalora-alloc", ADALORA_ARGS);
    REQUIRE(init);
    const char *model = shared_path("models/stories260K");
    char data[512], dump[512], ref[512], refad[512], out[512], cmd[4096], *o = NULL;
    snprintf(data, sizeof data, "%s", test_tmp_path("pm.jsonl"));
    snprintf(dump, sizeof dump, "%s", test_tmp_path("pm-dump.json"));
    snprintf(ref, sizeof ref, "%s", test_tmp_path("pm-ref-alloc.json"));
    snprintf(refad, sizeof refad, "%s", test_tmp_path("pm-ref-alloc-ad"));
    snprintf(out, sizeof out, "%s", test_tmp_path("pm-out-alloc"));
    write_toy_records(data, 16);
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --data %s --template train --cutoff-len 48 --json > %s", rosa_bin(),
             model, data, dump);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s %s "
             "--adalora-allocate --save-adapter %s -q", model, dump, init, ref, HYPER, refad);
    REQUIRE(shq(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s %s --cutoff-len 48 "
             "--no-shuffle --quiet --overwrite --save-steps 5", rosa_bin(), model, data, init, out, HYPER);
    REQUIRE(shq(cmd) == 0);
    cJSON *r = rosa_json_load(ref);
    REQUIRE(r);
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len;
    char *metrics = rosa_read_file(mp, &len);
    REQUIRE(metrics);
    float losses[10], norms[10];
    int n = 0;
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (j && cJSON_GetObjectItem(j, "loss") && cJSON_GetObjectItem(j, "grad_norm") && n < 10) {
            losses[n] = (float)cJSON_GetObjectItem(j, "loss")->valuedouble;
            norms[n++] = (float)cJSON_GetObjectItem(j, "grad_norm")->valuedouble;
        }
        cJSON_Delete(j);
    }
    free(metrics);
    CHECK_EQ_INT(n, 10);
    CHECK_MSG(max_rel_json(losses, cJSON_GetObjectItem(r, "losses"), n) <= 1e-4, "step losses differ");
    CHECK_MSG(max_rel_json(norms, cJSON_GetObjectItem(r, "grad_norms"), n) <= 1e-4, "grad norms differ");
    /* The rank_pattern of both files, and the kept ranks: target_r x modules. */
    char p1[700], p2[700];
    snprintf(p1, sizeof p1, "%s/adapter_config.json", out);
    snprintf(p2, sizeof p2, "%s/adapter_config.json", refad);
    cJSON *j1 = rosa_json_load(p1), *j2 = rosa_json_load(p2);
    REQUIRE(j1 && j2);
    const cJSON *rp = cJSON_GetObjectItem(j1, "rank_pattern");
    CHECK_MSG(cJSON_Compare(rp, cJSON_GetObjectItem(j2, "rank_pattern"), 1), "rank patterns differ");
    CHECK(cJSON_Compare(rp, cJSON_GetObjectItem(cJSON_GetObjectItem(r, "adalora"), "rank_pattern"), 1));
    int kept = 0, total = 0;
    const cJSON *m, *b;
    cJSON_ArrayForEach(m, rp) cJSON_ArrayForEach(b, m) kept += cJSON_IsTrue(b), total++;
    CHECK_EQ_INT(total, 15 * 6);
    CHECK_EQ_INT(kept, 15 * 2);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    /* Both files hold the kept ranks only, with the same values. */
    rosa_config c;
    REQUIRE(rosa_config_load(model, &c) == 0);
    rosa_adapter *a = rosa_adapter_load(out, &c), *w = rosa_adapter_load(refad, &c);
    CHECK_MSG(a && w, "%s", rosa_last_error());
    if (a && w) {
        CHECK_EQ_INT(a->n_params, w->n_params);
        CHECK(a->n_floats == w->n_floats && a->n_floats < (size_t)6000);
        for (int i = 0; i < a->n_params && i < w->n_params; i++)
            CHECK(a->params[i].rows == w->params[i].rows && a->params[i].cols == w->params[i].cols);
        if (a->n_floats == w->n_floats) CHECK_MSG(adapter_diff(a, w) <= 1e-4, "adapter differs by %g", adapter_diff(a, w));
    }
    rosa_adapter_free(a);
    rosa_adapter_free(w);
    round_trip(refad, "adalora-pruned");
    merge_matches_hooks(refad, "adalora-pruned");
    /* The allocator's state is not in checkpoints: --resume is refused, and says why. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s %s --cutoff-len 48 "
             "--no-shuffle --quiet --resume --save-steps 5", rosa_bin(), model, data, init, out, HYPER);
    CHECK(sh(cmd, &o) != 0 && strstr(o, "not kept in checkpoints"));
    free(o);
    /* --load-best-model-at-end with a pruned checkpoint: it is the final adapter as it was saved. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s-best %s --cutoff-len 48 "
             "--quiet --overwrite --save-steps 5 --eval-steps 5 --val-set-size 4 --load-best-model-at-end",
             rosa_bin(), model, data, init, out, HYPER);
    CHECK(sh(cmd, &o) == 0);
    free(o);
    char best[600];
    snprintf(best, sizeof best, "%s-best", out);
    rosa_adapter *fb = rosa_adapter_load(best, &c);
    CHECK_MSG(fb != NULL, "%s", rosa_last_error());
    rosa_adapter_free(fb);
    /* An already pruned adapter trains on only without the allocator. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s-2 %s --cutoff-len 48 "
             "--quiet --overwrite --save-steps 0", rosa_bin(), model, data, refad, out, HYPER);
    CHECK(sh(cmd, &o) != 0 && strstr(o, "--no-rank-allocation"));
    free(o);
    cJSON_Delete(r);
}

TEST(adalora_files_round_trip_merge_and_budget) {
    const char *init = make_adapter("adalora-rt", "--method adalora --rank 5 --target-modules q_proj,k_proj,up_proj "
                                                  "--seed 7");
    REQUIRE(init);
    round_trip(init, "adalora");
    merge_matches_hooks(init, "adalora");
    char cmd[2048], *o = NULL;
    write_toy_records(test_tmp_path("pm-b.jsonl"), 4);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --method adalora --total-step 1 --param-budget 0.02 "
             "--max-steps 1 --batch-size 2 --micro-batch-size 2 --output %s --overwrite --save-steps 0", rosa_bin(),
             shared_path("models/stories260K"), test_tmp_path("pm-b.jsonl"), test_tmp_path("pm-b-adalora"));
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0 && strstr(o, "--param-budget 0.02: rank"), "AdaLoRA --param-budget: %d %s", rc, o);
    free(o);
    /* total_step is required, as in PEFT. */
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --method adalora --max-steps 1 --batch-size 2 "
             "--micro-batch-size 2 --output %s --overwrite --save-steps 0", rosa_bin(),
             shared_path("models/stories260K"), test_tmp_path("pm-b.jsonl"), test_tmp_path("pm-b-adalora"));
    CHECK(sh(cmd, &o) != 0 && strstr(o, "--total-step"));
    free(o);
}
