/* fourierft.c: FourierFT (Gao et al.), exactly as Hugging Face PEFT computes,
 * initialises, saves and loads it (tuners/fourierft, commit 5d602fd):
 *   dW = scaling * Re(ifft2(F)),  F [out][in] zero but F[u_k][v_k] = c_k,
 * k < n_frequency, the positions (u, v) = divmod(randperm(out x in)[:n], in)
 * from a generator seeded with random_loc_seed (PyTorch's, reproduced in
 * torch_rand.c), the trained spectrum c saved as ...fourierft_spectrum [n].
 * PEFT draws the positions again on load, so rosa stores none.
 *
 * With F real, Re(ifft2(F))[a][b] = 1/(out in) sum_k c_k cos(2 pi (u_k a / out +
 * v_k b / in)), and cos(x + y) = cos x cos y - sin x sin y splits it into
 * tables Ca, Sa [n][out] and Cb, Sb [n][in]: a step costs like a LoRA of rank
 * 2n and dW is never formed (except to merge):
 *   y += s' ((x Cb^T) . c) Ca - s' ((x Sb^T) . c) Sa,   s' = scaling / (out in).
 * The angles are reduced modulo the period in integers first, so they are
 * exact for any size.  The tables depend on the shape only (every module of
 * one shape gets the same positions, as in PEFT): one set per shape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/json.h"
#include "model/gemm.h"
#include "model/model.h"
#include "peft/format.h"
#include "peft/lora.h"
#include "peft/peft.h"
#include "peft/targets.h"
#include "peft/torch_rand.h"

typedef struct {
    int n;              /* n_frequency (default 1000) */
    float scaling;      /* default 150 */
    long long seed;     /* random_loc_seed (default 777) */
    unsigned targets;   /* bit p: projection p adapted (default q, v) */
    int init_zero;      /* init_weights true: zeros; false (PEFT's default): N(0, 1) */
} fourierft_options;

typedef struct {
    int out, in;
    float *ca, *sa, *cb, *sb; /* [n][out] x 2, [n][in] x 2 */
} shape_tables;

typedef struct {
    int (*idx)[N_PROJ];        /* [L][p]: the module's spectrum, -1 */
    int (*shape_of)[N_PROJ];   /* [L][p]: index into shapes */
    shape_tables shapes[N_PROJ];
    int n_shapes, n_layers;
} fourierft_state;

static void opts_default(void *p) {
    fourierft_options *o = p;
    memset(o, 0, sizeof *o);
    o->n = 1000;
    o->scaling = 150.0f;
    o->seed = 777;
    o->targets = (1u << PROJ_Q) | (1u << PROJ_V);
}

static int parse_targets(void *p, const char *v) {
    if (rosa_parse_target_modules(v, &((fourierft_options *)p)->targets) < 0)
        return rosa_error_prefix("--target-modules"), -1;
    return 0;
}

static int parse_seed(void *p, const char *v) {
    char *end;
    long long s = strtoll(v, &end, 10);
    if (end == v || *end || s < 0) return rosa_fail("--random-loc-seed expects a non-negative integer, got \"%s\"", v);
    ((fourierft_options *)p)->seed = s;
    return 0;
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const fourierft_options *o = p;
    buf[0] = 0;
    if (strcmp(flag, "target-modules") == 0) return rosa_peft_target_mask_format(o->targets, buf, n), 0;
    if (strcmp(flag, "random-loc-seed") == 0) return snprintf(buf, n, "%lld", o->seed), 0;
    return -1;
}

static const rosa_peft_option options[] = {
    {"n-frequency", PEFT_OPT_INT, offsetof(fourierft_options, n), "N", "spectral coefficients per module (default 1000)",
     NULL, NULL},
    {"fourier-scaling", PEFT_OPT_FLOAT, offsetof(fourierft_options, scaling), "S", "scaling of dW (default 150)", NULL,
     NULL},
    {"random-loc-seed", PEFT_OPT_CUSTOM, 0, "S", "seed of the frequency positions (default 777)", NULL, parse_seed},
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST", "modules adapted, e.g. q_proj,v_proj (default) or all", NULL,
     parse_targets},
    {0},
};

static void set_size(void *p, int n) { ((fourierft_options *)p)->n = n; }

/* Every field of PEFT's FourierFTConfig; the base fields are in format.c. */
static const rosa_peft_field fields[] = {
    {"n_frequency", PEFT_FIELD_READ, NULL, {NULL}},
    {"scaling", PEFT_FIELD_READ, NULL, {NULL}},
    {"random_loc_seed", PEFT_FIELD_READ, NULL, {NULL}},
    {"fan_in_fan_out", PEFT_FIELD_DEFAULT, "fan_in_fan_out (weights stored [in, out])", {"false", NULL}},
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"exclude_modules", PEFT_FIELD_DEFAULT, "exclude_modules", {"null", "[]", "\"\"", NULL}},
    {"bias", PEFT_FIELD_DEFAULT, "trained biases", {"\"none\"", "null", NULL}},
    {"modules_to_save", PEFT_FIELD_DEFAULT, "modules_to_save", {"null", "[]", NULL}},
    {"layers_to_transform", PEFT_FIELD_DEFAULT, "layers_to_transform", {"null", NULL}},
    {"layers_pattern", PEFT_FIELD_DEFAULT, "layers_pattern", {"null", "[]", "\"\"", "\"layers\"", NULL}},
    {"n_frequency_pattern", PEFT_FIELD_DEFAULT, "n_frequency_pattern (per-module sizes)", {"{}", "null", NULL}},
    {"init_weights", PEFT_FIELD_READ, NULL, {NULL}},
    {NULL, 0, NULL, {NULL}},
};

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    (void)c;
    fourierft_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, fields) < 0) return -1;
    long long n, seed;
    double s;
    int zero = 0;
    if (rosa_json_int_opt(j, "n_frequency", path, 1, 1LL << 30, 1000, &n) < 0 ||
        rosa_json_num_opt(j, "scaling", path, 150.0, &s) < 0 ||
        rosa_json_int_opt(j, "random_loc_seed", path, 0, 1LL << 53, 777, &seed) < 0 ||
        rosa_json_bool_opt(j, "init_weights", path, 0, &zero) < 0)
        return -1;
    if (!(fabs(s) <= 3.0e38)) return rosa_fail("%s: \"scaling\" %g does not fit a float", path, s);
    o->n = (int)n, o->scaling = (float)s, o->seed = seed, o->init_zero = zero;
    if (rosa_peft_target_mask_parse(cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path, &o->targets) < 0)
        return -1;
    return 0;
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const fourierft_options *o = a->opts;
    cJSON_AddStringToObject(j, "peft_type", "FOURIERFT");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(j, "n_frequency", o->n);
    rosa_json_add_float(j, "scaling", o->scaling);
    cJSON_AddNumberToObject(j, "random_loc_seed", (double)o->seed);
    rosa_peft_target_mask_write(o->targets, j);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddItemToObject(j, "n_frequency_pattern", cJSON_CreateObject());
    cJSON_AddBoolToObject(j, "init_weights", o->init_zero);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
}

static void free_state(void *p) {
    fourierft_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_shapes; i++) {
        free(st->shapes[i].ca);
        free(st->shapes[i].cb);
    }
    free(st->idx);
    free(st->shape_of);
    free(st);
}

/* cos and sin of 2 pi (u a mod M) / M for a < M, k < n. */
static void fill_tables(float *c, float *s, const int64_t *u, int n, int M) {
    for (int k = 0; k < n; k++)
        for (int a = 0; a < M; a++) {
            double th = 6.283185307179586 * (double)((u[k] * a) % M) / M;
            c[(size_t)k * M + a] = (float)cos(th);
            s[(size_t)k * M + a] = (float)sin(th);
        }
}

static int make_tables(shape_tables *t, int out, int in, int n, uint64_t seed) {
    int64_t *flat = rosa_malloc(sizeof(int64_t) * 3 * (size_t)n, "FourierFT positions"), *u = flat + n, *v = u + n;
    t->out = out, t->in = in;
    t->ca = rosa_malloc(sizeof(float) * 2 * (size_t)n * out, "FourierFT tables");
    t->cb = rosa_malloc(sizeof(float) * 2 * (size_t)n * in, "FourierFT tables");
    if (!flat || !t->ca || !t->cb || rosa_torch_randperm((int64_t)out * in, seed, n, flat) < 0) return free(flat), -1;
    t->sa = t->ca + (size_t)n * out, t->sb = t->cb + (size_t)n * in;
    for (int k = 0; k < n; k++) u[k] = flat[k] / in, v[k] = flat[k] % in;
    fill_tables(t->ca, t->sa, u, n, out);
    fill_tables(t->cb, t->sb, v, n, in);
    free(flat);
    return 0;
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const fourierft_options *o = a->opts;
    if (o->n < 1) return rosa_fail("FourierFT n_frequency %d must be >= 1", o->n);
    fourierft_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->n_layers = a->L;
    st->idx = rosa_calloc((size_t)a->L, sizeof *st->idx, "adapter index");
    st->shape_of = rosa_calloc((size_t)a->L, sizeof *st->shape_of, "adapter index");
    if (!st->idx || !st->shape_of) return -1;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            st->idx[l][p] = -1;
            if (!((o->targets >> p) & 1u)) continue;
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            if ((int64_t)o->n > (int64_t)in * out)
                return rosa_fail("FourierFT n_frequency %d is more than the %d x %d %s has", o->n, out, in,
                                 rosa_proj_names[p]);
            int s = 0;
            while (s < st->n_shapes && (st->shapes[s].out != out || st->shapes[s].in != in)) s++;
            if (s == st->n_shapes && make_tables(&st->shapes[st->n_shapes++], out, in, o->n, (uint64_t)o->seed) < 0)
                return -1;
            st->shape_of[l][p] = s;
            char base[96], name[160];
            rosa_proj_tensor_name(base, sizeof base, l, p);
            snprintf(name, sizeof name, "base_model.model.%s.fourierft_spectrum", base);
            st->idx[l][p] = a->n_params;
            if (rosa_adapter_add_param(a, name, l, 1, o->n) < 0) return -1;
            a->params[a->n_params - 1].ndim = 1;
        }
    if (a->n_params == 0) return rosa_fail("the FourierFT target modules select no module of this model");
    return 0;
}

/* PEFT's default (init_weights false): N(0, 1), drawn here by Box-Muller
 * (torch's draws differ; the saved values are what count); true: zeros. */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    (void)m;
    if (((const fourierft_options *)a->opts)->init_zero) return;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    for (size_t i = 0; i < a->n_floats; i++) {
        double u1 = 1.0 - (double)rosa_rng_uniform(&rng), u2 = rosa_rng_uniform(&rng);
        a->w[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const fourierft_options *o = a->opts;
    snprintf(buf, n, "FourierFT n %d, scaling %g", o->n, (double)o->scaling);
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const fourierft_state *)a->state)->idx[l][p] >= 0; }

/* W += s' sum_k c_k (Ca_k^T Cb_k - Sa_k^T Sb_k). */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const fourierft_state *st = a->state;
    const fourierft_options *o = a->opts;
    const shape_tables *t = &st->shapes[st->shape_of[l][p]];
    if (t->out != out || t->in != in) return rosa_fail("FourierFT tensors of layer %d do not match the model", l);
    const float *c = a->w + a->params[st->idx[l][p]].offset;
    float sc = o->scaling / ((float)out * (float)in);
    float *cc = rosa_malloc(sizeof(float) * 2 * (size_t)o->n * out, "FourierFT merge"), *ss = cc ? cc + (size_t)o->n * out : NULL;
    if (!cc) return -1;
    for (int k = 0; k < o->n; k++)
        for (int i = 0; i < out; i++) {
            cc[(size_t)k * out + i] = t->ca[(size_t)k * out + i] * c[k] * sc;
            ss[(size_t)k * out + i] = -t->sa[(size_t)k * out + i] * c[k] * sc;
        }
    rosa_gemm('T', 'N', out, in, o->n, 1.0f, cc, out, t->cb, in, 1.0f, W, in);
    rosa_gemm('T', 'N', out, in, o->n, 1.0f, ss, out, t->sb, in, 1.0f, W, in);
    free(cc);
    return 0;
}

/* ------------------------------------------------------------- hooks */

/* P = x Cb^T and Q = x Sb^T [N][n] of each module, kept for the backward. */
static size_t act_floats(const void *self, int l, int N) {
    const rosa_adapter *a = self;
    const fourierft_state *st = a->state;
    size_t n = 0;
    for (int p = 0; p < N_PROJ; p++)
        if (st->idx[l][p] >= 0) n += 2 * (size_t)N * ((const fourierft_options *)a->opts)->n;
    return n;
}

static float *module_acts(const rosa_adapter *a, int l, int p, float *acts, int N) {
    const fourierft_state *st = a->state;
    for (int q = 0; q < p; q++)
        if (st->idx[l][q] >= 0) acts += 2 * (size_t)N * ((const fourierft_options *)a->opts)->n;
    return acts;
}

/* Two [N][n] buffers. */
static size_t scratch_floats(const void *self, int N) {
    return 2 * (size_t)N * ((const fourierft_options *)((const rosa_adapter *)self)->opts)->n + 16;
}

static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    const rosa_adapter *a = self;
    const fourierft_state *st = a->state;
    const fourierft_options *o = a->opts;
    if (st->idx[l][p] < 0) return 0;
    const shape_tables *t = &st->shapes[st->shape_of[l][p]];
    const float *cf = a->w + a->params[st->idx[l][p]].offset;
    int N = c->N, n = o->n, out = t->out, in = t->in;
    float *P = module_acts(a, l, p, acts, N), *Q = P + (size_t)N * n, *pc = rosa_block_hook_scratch(c, self),
          *qc = pc + (size_t)N * n;
    float sc = o->scaling / ((float)out * (float)in);
    rosa_gemm('N', 'T', N, n, in, 1.0f, x, in, t->cb, in, 0.0f, P, n);
    rosa_gemm('N', 'T', N, n, in, 1.0f, x, in, t->sb, in, 0.0f, Q, n);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        for (int k = 0; k < n; k++) {
            pc[(size_t)r * n + k] = P[(size_t)r * n + k] * cf[k] * sc;
            qc[(size_t)r * n + k] = -Q[(size_t)r * n + k] * cf[k] * sc;
        }
    rosa_gemm('N', 'N', N, out, n, 1.0f, pc, n, t->ca, out, 1.0f, y, out);
    rosa_gemm('N', 'N', N, out, n, 1.0f, qc, n, t->sa, out, 1.0f, y, out);
    return 0;
}

/* G = dy Ca^T, H = dy Sa^T; dc_k = s' sum (G P - H Q); dx += s' ((G . c) Cb - (H . c) Sb). */
static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    (void)x;
    const rosa_adapter *a = self;
    const fourierft_state *st = a->state;
    const fourierft_options *o = a->opts;
    if (st->idx[l][p] < 0) return 0;
    const shape_tables *t = &st->shapes[st->shape_of[l][p]];
    const rosa_param *prm = &a->params[st->idx[l][p]];
    const float *cf = a->w + prm->offset;
    int N = c->N, n = o->n, out = t->out, in = t->in;
    const float *P = module_acts(a, l, p, acts, N), *Q = P + (size_t)N * n;
    float *G = rosa_block_hook_scratch(c, self), *H = G + (size_t)N * n;
    float sc = o->scaling / ((float)out * (float)in);
    rosa_gemm('N', 'T', N, n, out, 1.0f, dy, out, t->ca, out, 0.0f, G, n);
    rosa_gemm('N', 'T', N, n, out, 1.0f, dy, out, t->sa, out, 0.0f, H, n);
    if (rosa_block_layer_active(c, l)) {
        float *dc = a->g + prm->offset;
#pragma omp parallel for schedule(static)
        for (int k = 0; k < n; k++) {
            double s = 0;
            for (int r = 0; r < N; r++)
                s += (double)G[(size_t)r * n + k] * P[(size_t)r * n + k] - (double)H[(size_t)r * n + k] * Q[(size_t)r * n + k];
            dc[k] += (float)(s * sc);
        }
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        for (int k = 0; k < n; k++) {
            G[(size_t)r * n + k] *= cf[k] * sc;
            H[(size_t)r * n + k] *= -cf[k] * sc;
        }
    rosa_gemm('N', 'N', N, in, n, 1.0f, G, n, t->cb, in, 1.0f, dx, in);
    rosa_gemm('N', 'N', N, in, n, 1.0f, H, n, t->sb, in, 1.0f, dx, in);
    return 0;
}

static const rosa_hook_ops hooks = {
    .act_floats = act_floats,
    .scratch_floats = scratch_floats,
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

const rosa_peft_method rosa_peft_fourierft = {
    .name = "fourierft",
    .peft_type = "FOURIERFT",
    .title = "FourierFT",
    .opts_size = sizeof(fourierft_options),
    .opts_default = opts_default,
    .options = options,
    .format_option = format_option,
    .set_rank = set_size,
    .parse_config = parse_config,
    .write_config = write_config,
    .build = build,
    .free_state = free_state,
    .init = init,
    .describe = describe,
    .adapts = adapts,
    .merge = merge,
    .hooks = &hooks,
};
