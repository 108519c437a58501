/* test_peft_sparse.c: SHiRA's and FourierFT's pieces that their training
 * parity (test_train.c) does not reach: PyTorch's randperm bit for bit,
 * SHiRA's saved indices (written as PEFT writes them, read in each dtype PEFT
 * writes, checked), finite differences, merging. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "core/util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "peft/peft.h"
#include "peft/torch_rand.h"
#include "train/train_ctx.h"
#include "test.h"

extern const rosa_peft_method rosa_peft_shira, rosa_peft_fourierft;

TEST(torch_randperm_bit_for_bit) {
    static const struct {
        long long n, k;
        unsigned long long seed;
    } cases[] = {{10, 10, 42}, {7, 7, 123456789012ULL}, {100000, 300, 5}, {4096 * 1024, 2000, 0},
                 {33, 5, ROSA_TORCH_DEFAULT_SEED}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *out = NULL;
        int rc = run_shellf(&out, PY " -c \"import torch; g = torch.Generator(); g.manual_seed(%llu); "
                                     "print(' '.join(map(str, torch.randperm(%lld, generator=g)[:%lld].tolist())))\"",
                            cases[c].seed, cases[c].n, cases[c].k);
        REQUIRE(rc == 0 && out);
        int64_t *mine = malloc(sizeof(int64_t) * (size_t)cases[c].k);
        REQUIRE(mine && rosa_torch_randperm(cases[c].n, cases[c].seed, cases[c].k, mine) == 0);
        char *p = out;
        int bad = -1;
        for (long long i = 0; i < cases[c].k && bad < 0; i++) {
            long long v = strtoll(p, &p, 10);
            if (v != mine[i]) bad = (int)i;
        }
        CHECK_MSG(bad < 0, "randperm(%lld, seed %llu) differs from torch at %d", cases[c].n, cases[c].seed, bad);
        free(mine);
        free(out);
    }
}

/* A SHiRA adapter of r 2 on q_proj and down_proj of the shipped model, with non-zero values. */
static rosa_adapter *shira_adapter(const rosa_model *m) {
    void *o = rosa_peft_opts_new(&rosa_peft_shira, NULL);
    if (!o || rosa_peft_set_option(&rosa_peft_shira, o, "rank", "2") ||
        rosa_peft_set_option(&rosa_peft_shira, o, "target-modules", "q_proj,down_proj") ||
        rosa_peft_set_option(&rosa_peft_shira, o, "shira-seed", "11"))
        return NULL;
    rosa_adapter *a = rosa_adapter_new(&rosa_peft_shira, o, &m->cfg, m, 3);
    rosa_peft_opts_free(&rosa_peft_shira, o);
    for (size_t i = 0; a && i < a->n_floats; i++) a->w[i] = 0.05f * (float)((int)(i % 9) - 4);
    return a;
}

TEST(shira_saves_indices_as_peft_and_reads_them_back) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    rosa_adapter *a = shira_adapter(m);
    REQUIRE(a);
    const char *dir = test_tmp_path("shira-ad");
    REQUIRE(rosa_adapter_save(a, dir, "stories260K") == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    st_set s = {0};
    REQUIRE(st_set_add_file(&s, path) == 0);
    const st_tensor *ix = st_set_find(&s, "base_model.model.model.layers.0.self_attn.q_proj.shira_indices");
    REQUIRE(ix);
    CHECK(ix->dtype == ST_I32 && ix->ndim == 2 && ix->shape[0] == 2 && ix->shape[1] == 2 * (64 + 64));
    /* row-major, as torch.where walks the mask */
    const int32_t *pos = ix->data;
    int ordered = 1;
    for (int k = 1; k < (int)ix->shape[1]; k++)
        ordered &= pos[k - 1] < pos[k] || (pos[k - 1] == pos[k] && pos[256 + k - 1] < pos[256 + k]);
    CHECK(ordered);
    st_set_close(&s);
    rosa_adapter *b = rosa_adapter_load(dir, &m->cfg);
    CHECK_MSG(b != NULL, "%s", rosa_last_error());
    if (b) {
        CHECK(b->n_floats == a->n_floats && memcmp(a->w, b->w, sizeof(float) * a->n_floats) == 0);
        rosa_adapter_free(b);
    }
    /* Indices from the file win over random_seed's: change the seed in the config. */
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cJSON *j = rosa_json_load(path);
    REQUIRE(j);
    cJSON_ReplaceItemInObject(j, "random_seed", cJSON_CreateNumber(999));
    char *text = cJSON_Print(j);
    FILE *f = fopen(path, "w");
    REQUIRE(f && text);
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON_Delete(j);
    char *merged_a = NULL, *merged_b = NULL, *o = NULL;
    const char *ma = test_tmp_path("shira-merged");
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s", rosa_bin(), shared_path("models/stories260K"),
                       dir, ma) == 0);
    free(o);
    /* the adapter's loss with hooks on, and the merged model's */
    REQUIRE(run_shellf(&merged_a, "%s loss --model %s --data %s --json --quiet --limit 40", rosa_bin(), ma,
                       shared_path("data/train/commonsense_mix_small.json")) == 0);
    REQUIRE(run_shellf(&merged_b, "%s loss --model %s --adapter %s --data %s --json --quiet --limit 40", rosa_bin(),
                       shared_path("models/stories260K"), dir, shared_path("data/train/commonsense_mix_small.json")) == 0);
    cJSON *ja = cJSON_Parse(merged_a), *jb = cJSON_Parse(merged_b);
    REQUIRE(ja && jb);
    double la = cJSON_GetObjectItem(ja, "token_mean_loss")->valuedouble, lb = cJSON_GetObjectItem(jb, "token_mean_loss")->valuedouble;
    CHECK_MSG(fabs(la - lb) < 1e-5, "merged %.7f vs adapter %.7f", la, lb);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    free(merged_a);
    free(merged_b);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(shira_refuses_bad_indices_and_sizes) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    rosa_adapter *a = shira_adapter(m);
    REQUIRE(a);
    const char *dir = test_tmp_path("shira-bad");
    REQUIRE(rosa_adapter_save(a, dir, NULL) == 0);
    /* row 64 of layer 0's 64-row q_proj, in the F32 form PEFT writes on Windows */
    char *o = NULL;
    REQUIRE(run_shellf(&o, PY " -c \"import json, struct, numpy as np\n"
                           "p = '%s/adapter_model.safetensors'; b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
                           "h = json.loads(b[8:8 + n]); d = b[8 + n:]; out = {}; meta = {}\n"
                           "for k, v in h.items():\n"
                           "    if k == '__metadata__': continue\n"
                           "    s, e = v['data_offsets']; a = np.frombuffer(d[s:e], dtype=np.int32 if v['dtype'] == 'I32' else np.float32).reshape(v['shape'])\n"
                           "    out[k] = a.astype(np.float32)\n"
                           "out['base_model.model.model.layers.0.self_attn.q_proj.shira_indices'][0, 5] = 64\n"
                           "hdr = {}; off = 0; blob = b''\n"
                           "for k, a in out.items():\n"
                           "    raw = a.tobytes(); hdr[k] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [off, off + len(raw)]}; off += len(raw); blob += raw\n"
                           "t = json.dumps(hdr).encode(); open(p, 'wb').write(struct.pack('<Q', len(t)) + t + blob)\"",
                       dir) == 0);
    free(o);
    rosa_adapter *b = rosa_adapter_load(dir, &m->cfg);
    CHECK(b == NULL);
    CHECK_ERROR_HAS("q_proj.shira_indices\": row index 64 at 5 is outside the 64 x 64 weight");
    rosa_adapter_free(b);
    void *opts = rosa_peft_opts_new(&rosa_peft_shira, NULL);
    REQUIRE(opts && rosa_peft_set_option(&rosa_peft_shira, opts, "rank", "40") == 0);
    CHECK(rosa_peft_num_params(&rosa_peft_shira, &m->cfg, opts) < 0);
    CHECK_ERROR_HAS("SHiRA r 40 gives 5120 values, more than the 64 x 64 q_proj has");
    rosa_peft_opts_free(&rosa_peft_shira, opts);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* Finite differences of the update's gradient, on every projection of a GQA
 * model with biases (the values' gradients and, through the layers above,
 * the input gradient): SHiRA's sparse S, FourierFT's spectrum. */
static void grad_check(const rosa_peft_method *method, const char *const *opts) {
    rosa_model *m = rosa_model_load(testdata_path("qwen2_bias"));
    REQUIRE(m);
    void *o = rosa_peft_opts_new(method, NULL);
    REQUIRE(o);
    for (int i = 0; opts[i]; i += 2) REQUIRE(rosa_peft_set_option(method, o, opts[i], opts[i + 1]) == 0);
    rosa_adapter *a = rosa_adapter_new(method, o, &m->cfg, m, 3);
    rosa_peft_opts_free(method, o);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++) a->w[i] = 0.1f * (float)((int)(i % 7) - 3);
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 2, 9, 0);
    REQUIRE(t);
    int lens[2] = {9, 6}, T = 9, V = m->cfg.vocab_size;
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < T; k++) {
            int n = s * T + k, real = k < lens[s];
            ids[n] = real ? 3 + (s * 31 + k * 17) % (V - 3) : 0;
            labels[n] = real && k >= 2 ? ids[n] : ROSA_IGNORE_INDEX;
            mask[n] = (uint8_t)real;
        }
    rosa_batch b = {.B = 2, .T = T, .ids = ids, .labels = labels, .mask = mask};
    double loss, up, down;
    int n;
    memset(a->g, 0, sizeof(float) * a->n_floats);
    REQUIRE(rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = 0}, NULL, &loss, &n, NULL) == 0);
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        double worst = 0, gmax = 1e-3;
        for (int k = 0; k < p->cols; k++) gmax = fmax(gmax, fabs(a->g[p->offset + k]));
        for (int k = 0; k < p->cols; k += p->cols / 6 + 1) {
            float *x = &a->w[p->offset + k], keep = *x;
            *x = keep + 1e-2f;
            rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &up, &n, NULL);
            *x = keep - 1e-2f;
            rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &down, &n, NULL);
            *x = keep;
            worst = fmax(worst, fabs((up - down) / 2e-2 - a->g[p->offset + k]) / gmax);
        }
        CHECK_MSG(worst < 2e-2, "%s gradient off by %g", p->name, worst);
    }
    rosa_train_ctx_free(t);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(grad_shira_sparse_update) {
    static const char *const opts[] = {"rank", "1", "target-modules", "all", NULL};
    grad_check(&rosa_peft_shira, opts);
}

TEST(grad_fourierft_spectrum) {
    static const char *const opts[] = {"n-frequency", "12", "fourier-scaling", "40", "target-modules", "all", NULL};
    grad_check(&rosa_peft_fourierft, opts);
}

/* FourierFT merges dW = scaling Re(ifft2(F)) into the weights: the merged
 * model's loss is the adapter's (hooks on), the reference's file read. */
TEST(merge_fourierft_gives_the_adapters_loss) {
    char model[4096], ad[512], out[512], *o = NULL;
    snprintf(model, sizeof model, "%s", shared_path("models/stories260K"));
    snprintf(ad, sizeof ad, "%s", test_tmp_path("fft-ad"));
    snprintf(out, sizeof out, "%s", test_tmp_path("fft-merged"));
    REQUIRE(run_shellf(&o, REF " tools/ref_train.py make-adapter --model %s --method fourierft --n-frequency 30 "
                           "--fourier-scaling 50 --target-modules q_proj,down_proj --seed 4 --out %s", model, ad) == 0);
    free(o);
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s", rosa_bin(), model, ad, out) == 0);
    free(o);
    char *x = NULL, *y = NULL, *z = NULL;
    const char *data = shared_path("data/train/commonsense_mix_small.json");
    REQUIRE(run_shellf(&x, "%s loss --model %s --data %s --json --quiet --limit 40", rosa_bin(), out, data) == 0);
    REQUIRE(run_shellf(&y, "%s loss --model %s --adapter %s --data %s --json --quiet --limit 40", rosa_bin(), model, ad,
                       data) == 0);
    REQUIRE(run_shellf(&z, "%s loss --model %s --data %s --json --quiet --limit 40", rosa_bin(), model, data) == 0);
    cJSON *jx = cJSON_Parse(x), *jy = cJSON_Parse(y), *jz = cJSON_Parse(z);
    REQUIRE(jx && jy && jz);
    double lx = cJSON_GetObjectItem(jx, "token_mean_loss")->valuedouble, ly = cJSON_GetObjectItem(jy, "token_mean_loss")->valuedouble,
           lz = cJSON_GetObjectItem(jz, "token_mean_loss")->valuedouble;
    CHECK_MSG(fabs(lx - ly) < 1e-5, "merged %.7f vs adapter %.7f", lx, ly);
    CHECK_MSG(fabs(lz - ly) > 1e-3, "the adapter changes nothing (%.7f)", lz);
    cJSON_Delete(jx);
    cJSON_Delete(jy);
    cJSON_Delete(jz);
    free(x);
    free(y);
    free(z);
}

extern const rosa_peft_method rosa_peft_adalora;

/* AdaLoRA's x (A ⊙ E)^T B^T: A, B and E get their gradients through the product. */
TEST(grad_adalora_svd_update) {
    static const char *const opts[] = {"init-r", "3", "total-step", "10", "target-modules", "all", NULL};
    grad_check(&rosa_peft_adalora, opts);
}

/* The orthogonality term w * mean ||A A^T - I||_F, ||B^T B - I||_F and its
 * gradient (the method's extra_loss) against central differences. */
TEST(grad_adalora_orthogonality_term) {
    rosa_model *m = rosa_model_load(testdata_path("qwen2_bias"));
    REQUIRE(m);
    void *o = rosa_peft_opts_new(&rosa_peft_adalora, NULL);
    REQUIRE(o && rosa_peft_set_option(&rosa_peft_adalora, o, "init-r", "3") == 0 &&
            rosa_peft_set_option(&rosa_peft_adalora, o, "total-step", "10") == 0 &&
            rosa_peft_set_option(&rosa_peft_adalora, o, "target-modules", "q_proj,down_proj") == 0 &&
            rosa_peft_set_option(&rosa_peft_adalora, o, "orth-reg-weight", "0.3") == 0);
    rosa_adapter *a = rosa_adapter_new(&rosa_peft_adalora, o, &m->cfg, m, 3);
    rosa_peft_opts_free(&rosa_peft_adalora, o);
    REQUIRE(a);
    rosa_rng rng;
    rosa_rng_seed(&rng, 5);
    for (size_t i = 0; i < a->n_floats; i++) a->w[i] = 0.4f * (rosa_rng_uniform(&rng) - 0.5f);
    float *g0 = calloc(a->n_floats, sizeof(float));
    REQUIRE(g0);
    memset(a->g, 0, sizeof(float) * a->n_floats);
    double v = rosa_adapter_extra_loss(a, 0.5f, NULL);
    CHECK(v > 0);
    memcpy(g0, a->g, sizeof(float) * a->n_floats);
    double worst = 0, gmax = 1e-3;
    for (size_t i = 0; i < a->n_floats; i++) gmax = fmax(gmax, fabs(g0[i]));
    for (size_t i = 0; i < a->n_floats; i += 7) {
        float keep = a->w[i];
        a->w[i] = keep + 1e-3f;
        double up = rosa_adapter_extra_loss(a, 0.5f, NULL);
        a->w[i] = keep - 1e-3f;
        double down = rosa_adapter_extra_loss(a, 0.5f, NULL);
        a->w[i] = keep;
        worst = fmax(worst, fabs((up - down) / 2e-3 - g0[i]) / gmax);
    }
    CHECK_MSG(worst < 1e-3, "orthogonality gradient off by %g", worst);
    /* Only the tensors of active layers take it. */
    uint8_t active[64] = {0};
    active[1] = 1;
    memset(a->g, 0, sizeof(float) * a->n_floats);
    double v1 = rosa_adapter_extra_loss(a, 0.5f, active);
    CHECK(fabs(v1 - v) < 1e-12);
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        float s = 0;
        for (int k = 0; k < p->rows * p->cols; k++) s += fabsf(a->g[p->offset + k]);
        if (p->layer != 1) CHECK(s == 0);
    }
    free(g0);
    rosa_adapter_free(a);
    rosa_model_free(m);
}
