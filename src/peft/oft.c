/* oft.c: the OFT method (see oft.h). */
#include "peft/oft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/prof.h"
#include "core/util.h"
#include "io/json.h"
#include "model/model.h"

/* PEFT's TRANSFORMERS_MODELS_TO_OFT_TARGET_MODULES_MAPPING for llama. */
#define DEFAULT_TARGETS "q_proj,v_proj"

typedef struct {
    int (*idx)[N_PROJ];   /* [L][p]: its oft_R.weight in the table, or -1 */
    int (*nb)[N_PROJ];    /* blocks r of the module */
    int (*bs)[N_PROJ];    /* block size */
    size_t scratch;       /* floats the hook's scratch needs per row ... */
    size_t scratch_fixed; /* ... and besides */
} oft_state;

/* ------------------------------------------------------------- the op */

/* The series' coefficients c_k of S^k, k = 0..*kmax (see oft.h). */
static void series(int terms, float *c, int *kmax) {
    c[0] = 1.0f;
    *kmax = 0;
    if (terms > 1) c[1] = 2.0f, *kmax = 1;
    if (terms > 2) {
        int m = terms - 2 > 2 ? terms - 2 : 2;
        for (int k = 2; k <= m; k++) c[k] = 2.0f;
        c[m + 1] = 1.0f;
        *kmax = m + 1;
    }
}

static int max_power(int terms) { return terms > 2 ? (terms - 2 > 2 ? terms - 2 : 2) + 1 : terms - 1; }

size_t oft_rotation_scratch(int bs, int terms) {
    return (size_t)(terms ? 2 * (max_power(terms) + 1) + 4 : 9) * bs * bs;
}

/* C[bs][bs] (+)= alpha A B. */
static void mm(float *C, const float *A, const float *B, int bs, float alpha, int add) {
    for (int i = 0; i < bs; i++) {
        float *c = C + (size_t)i * bs;
        if (!add) memset(c, 0, sizeof(float) * (size_t)bs);
        for (int k = 0; k < bs; k++) {
            float a = alpha * A[(size_t)i * bs + k];
            const float *b = B + (size_t)k * bs;
            for (int j = 0; j < bs; j++) c[j] += a * b[j];
        }
    }
}

/* S = vec - vec^T over the strict upper triangle, row by row (torch.triu_indices). */
static void skew(float *S, const float *vec, int bs) {
    memset(S, 0, sizeof(float) * (size_t)bs * bs);
    for (int r = 0, t = 0; r < bs; r++)
        for (int c = r + 1; c < bs; c++, t++) S[(size_t)r * bs + c] = vec[t], S[(size_t)c * bs + r] = -vec[t];
}

/* P[k] = S^k, k = 0..kmax, in P [(kmax + 1)][bs][bs]. */
static void powers(float *P, const float *vec, int bs, int kmax, float *S) {
    size_t b2 = (size_t)bs * bs;
    skew(S, vec, bs);
    memset(P, 0, sizeof(float) * b2);
    for (int i = 0; i < bs; i++) P[(size_t)i * bs + i] = 1.0f;
    for (int k = 1; k <= kmax; k++) mm(P + k * b2, P + (k - 1) * b2, S, bs, 1.0f, 0);
}

/* Ai = (I + S)^-1 by Gauss-Jordan with partial pivoting (I + S is
 * invertible for skew S: its eigenvalues are 1 + i t); W [bs][bs] is spoilt. */
static void inverse_i_plus(float *Ai, float *W, const float *S, int bs) {
    size_t b2 = (size_t)bs * bs;
    memcpy(W, S, sizeof(float) * b2);
    memset(Ai, 0, sizeof(float) * b2);
    for (int i = 0; i < bs; i++) W[(size_t)i * bs + i] += 1.0f, Ai[(size_t)i * bs + i] = 1.0f;
    for (int col = 0; col < bs; col++) {
        int piv = col;
        for (int r = col + 1; r < bs; r++)
            if (fabsf(W[(size_t)r * bs + col]) > fabsf(W[(size_t)piv * bs + col])) piv = r;
        for (int k = 0; piv != col && k < bs; k++) {
            float t = W[(size_t)col * bs + k];
            W[(size_t)col * bs + k] = W[(size_t)piv * bs + k], W[(size_t)piv * bs + k] = t;
            t = Ai[(size_t)col * bs + k];
            Ai[(size_t)col * bs + k] = Ai[(size_t)piv * bs + k], Ai[(size_t)piv * bs + k] = t;
        }
        float inv = 1.0f / W[(size_t)col * bs + col];
        for (int k = 0; k < bs; k++) W[(size_t)col * bs + k] *= inv, Ai[(size_t)col * bs + k] *= inv;
        for (int r = 0; r < bs; r++) {
            float f = W[(size_t)r * bs + col];
            if (r == col || f == 0.0f) continue;
            for (int k = 0; k < bs; k++)
                W[(size_t)r * bs + k] -= f * W[(size_t)col * bs + k], Ai[(size_t)r * bs + k] -= f * Ai[(size_t)col * bs + k];
        }
    }
}

/* R = (I - S) (I + S)^-1, keeping S and Ai = (I + S)^-1 (scratch S, Ai, W). */
static void cayley(float *R, float *S, float *Ai, float *W, const float *vec, int bs) {
    size_t b2 = (size_t)bs * bs;
    skew(S, vec, bs);
    inverse_i_plus(Ai, W, S, bs);
    for (size_t i = 0; i < b2; i++) W[i] = -S[i];
    for (int i = 0; i < bs; i++) W[(size_t)i * bs + i] += 1.0f;
    mm(R, W, Ai, bs, 1.0f, 0);
}

void oft_project(float *vec, int nv, int bs, float eps) {
    size_t nvec = (size_t)bs * (bs - 1) / 2;
    /* PEFT: eps / sqrt(blocks), the root taken of an integer tensor, in float32 */
    float e = eps / sqrtf((float)nv);
    for (int j = 0; j < nv; j++) {
        float *v = vec + j * nvec;
        double s = 0.0;
        for (size_t t = 0; t < nvec; t++) s += 2.0 * (double)v[t] * v[t]; /* |S|_F: both triangles */
        float norm = (float)sqrt(s);
        if (norm <= e) continue;
        for (size_t t = 0; t < nvec; t++) v[t] = e * (v[t] / norm);
    }
}

void oft_rotation_forward(float *R, const float *vec, int nv, int bs, int terms, float *scratch) {
    size_t b2 = (size_t)bs * bs, nvec = (size_t)bs * (bs - 1) / 2;
    if (!terms) {
        for (int j = 0; j < nv; j++) cayley(R + j * b2, scratch, scratch + b2, scratch + 2 * b2, vec + j * nvec, bs);
        return;
    }
    float c[64];
    int kmax;
    series(terms, c, &kmax);
    float *P = scratch, *S = P + (kmax + 1) * b2;
    for (int j = 0; j < nv; j++) {
        powers(P, vec + j * nvec, bs, kmax, S);
        float *Rj = R + j * b2;
        memset(Rj, 0, sizeof(float) * b2);
        for (int k = 0; k <= kmax; k++)
            for (size_t i = 0; i < b2; i++) Rj[i] += c[k] * P[k * b2 + i];
    }
}

/* d/dS of sum(G * c_k S^k) = c_k sum_a (S^a)^T G (S^(k-1-a))^T, and
 * (S^a)^T = (-1)^a S^a as S is skew. */
void oft_rotation_backward(float *dvec, const float *G, const float *vec, int nv, int bs, int terms, float *scratch) {
    size_t b2 = (size_t)bs * bs, nvec = (size_t)bs * (bs - 1) / 2;
    if (!terms) {
        /* dR = -(I + R) dS (I + S)^-1, so dS = -(I + R)^T G (I + S)^-T. */
        float *S = scratch, *Ai = S + b2, *W = Ai + b2, *R = W + b2, *T = R + b2, *dS = T + b2;
        for (int j = 0; j < nv; j++) {
            cayley(R, S, Ai, W, vec + j * nvec, bs);
            for (int i = 0; i < bs; i++) R[(size_t)i * bs + i] += 1.0f;
            const float *Gj = G + j * b2;
            for (int i = 0; i < bs; i++)
                for (int k = 0; k < bs; k++) {
                    double s = 0.0;
                    for (int m = 0; m < bs; m++) s += (double)R[(size_t)m * bs + i] * Gj[(size_t)m * bs + k];
                    T[(size_t)i * bs + k] = (float)s;
                }
            for (int i = 0; i < bs; i++)
                for (int k = 0; k < bs; k++) {
                    double s = 0.0;
                    for (int m = 0; m < bs; m++) s += (double)T[(size_t)i * bs + m] * Ai[(size_t)k * bs + m];
                    dS[(size_t)i * bs + k] = (float)-s;
                }
            float *dv = dvec + j * nvec;
            for (int r = 0, t = 0; r < bs; r++)
                for (int cc = r + 1; cc < bs; cc++, t++) dv[t] += dS[(size_t)r * bs + cc] - dS[(size_t)cc * bs + r];
        }
        return;
    }
    float c[64];
    int kmax;
    series(terms, c, &kmax);
    float *P = scratch, *T = P + (kmax + 1) * b2, *S = T + (kmax + 1) * b2, *dS = S + b2;
    for (int j = 0; j < nv; j++) {
        powers(P, vec + j * nvec, bs, kmax, S);
        const float *Gj = G + j * b2;
        for (int a = 0; a < kmax; a++) mm(T + a * b2, P + a * b2, Gj, bs, 1.0f, 0); /* S^a G */
        memset(dS, 0, sizeof(float) * b2);
        for (int k = 1; k <= kmax; k++) {
            float sign = (k - 1) % 2 ? -1.0f : 1.0f;
            for (int a = 0; a < k; a++) mm(dS, T + a * b2, P + (k - 1 - a) * b2, bs, sign * c[k], 1);
        }
        float *dv = dvec + j * nvec;
        for (int r = 0, t = 0; r < bs; r++)
            for (int cc = r + 1; cc < bs; cc++, t++) dv[t] += dS[(size_t)r * bs + cc] - dS[(size_t)cc * bs + r];
    }
}

void oft_rotate(float *out, const float *x, const float *R, int N, int nb, int bs, int share, int transpose, int add) {
    int in = nb * bs;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < nb; j++) {
            const float *xv = x + (size_t)n * in + (size_t)j * bs, *Rj = R + (size_t)(share ? 0 : j) * bs * bs;
            float *o = out + (size_t)n * in + (size_t)j * bs;
            for (int cc = 0; cc < bs; cc++) {
                float s = -xv[cc];
                for (int k = 0; k < bs; k++) s += xv[k] * (transpose ? Rj[(size_t)cc * bs + k] : Rj[(size_t)k * bs + cc]);
                o[cc] = add ? o[cc] + s : s;
            }
        }
}

void oft_rotate_grad(float *G, const float *x, const float *u, int N, int nb, int bs, int share) {
    int in = nb * bs;
    size_t b2 = (size_t)bs * bs;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < nb * bs; row++) {
        int j = row / bs, k = row % bs;
        float *g = G + (size_t)j * b2 + (size_t)k * bs;
        for (int cc = 0; cc < bs; cc++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += (double)x[(size_t)n * in + row] * u[(size_t)n * in + (size_t)j * bs + cc];
            g[cc] = (float)s;
        }
    }
    for (int j = 1; share && j < nb; j++)
        for (size_t i = 0; i < b2; i++) G[i] += G[j * b2 + i];
}

/* ------------------------------------------------------------- options */

static void opts_default(void *p) {
    rosa_oft_options *o = p;
    memset(o, 0, sizeof *o);
    o->block_size = 32;
    o->terms = 5;
    o->eps = 6e-5f;
}

static int opts_copy(void *dst, const void *src) {
    rosa_oft_options *d = dst;
    const rosa_oft_options *s = src;
    *d = *s;
    d->targets.names = NULL;
    d->layers = NULL;
    if (rosa_peft_targets_copy(&d->targets, &s->targets) < 0) return -1;
    return rosa_peft_layers_copy(&d->layers, s->layers, s->n_layers);
}

static void opts_free(void *p) {
    rosa_oft_options *o = p;
    rosa_peft_targets_free(&o->targets);
    free(o->layers);
    o->layers = NULL;
}

static int parse_targets(void *p, const char *v) {
    return rosa_peft_targets_from_flag(&((rosa_oft_options *)p)->targets, v, "target-modules");
}

static int parse_layers(void *p, const char *v) {
    rosa_oft_options *o = p;
    return rosa_peft_layers_from_flag(&o->layers, &o->n_layers, v);
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const rosa_oft_options *o = p;
    if (strcmp(flag, "target-modules") == 0) return rosa_peft_targets_format(&o->targets, DEFAULT_TARGETS, buf, n), 0;
    if (strcmp(flag, "layers") == 0) return rosa_peft_layers_format(o->layers, o->n_layers, buf, n), 0;
    return -1;
}

static const rosa_peft_option options[] = {
    {"oft-block-size", PEFT_OPT_INT, offsetof(rosa_oft_options, block_size), "N",
     "block size (default 32; PEFT's oft_block_size, moved to the nearest divisor of each input)", NULL, NULL},
    {"oft-r", PEFT_OPT_INT, offsetof(rosa_oft_options, r), "N",
     "number of blocks instead (PEFT's r; give --oft-block-size 0 with it)", NULL, NULL},
    {"block-share", PEFT_OPT_FLAG, offsetof(rosa_oft_options, block_share), NULL, "one rotation for all blocks",
     NULL, NULL},
    {"cayley-neumann-terms", PEFT_OPT_INT, offsetof(rosa_oft_options, terms), "N",
     "terms of the Cayley-Neumann series (default 5)", NULL, NULL},
    {"exact-cayley", PEFT_OPT_FLAG, offsetof(rosa_oft_options, exact), NULL,
     "the exact Cayley transform instead of the series (PEFT's use_cayley_neumann false)", NULL, NULL},
    {"coft", PEFT_OPT_FLAG, offsetof(rosa_oft_options, coft), NULL,
     "constrained OFT: each block's skew matrix clipped to norm eps / sqrt(blocks)", NULL, NULL},
    {"oft-eps", PEFT_OPT_FLOAT, offsetof(rosa_oft_options, eps), "F", "COFT's eps (default 6e-5)", NULL, NULL},
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST", "modules adapted: names (default q_proj,v_proj), re:PATTERN or "
     "all-linear", NULL, parse_targets},
    {"layers", PEFT_OPT_CUSTOM, 0, "LIST", "adapt only these layers, e.g. 0,1,2 (default: all)", NULL, parse_layers},
    {0},
};

/* --param-budget chooses the block size (the parameters grow with it). */
static void set_rank(void *p, int k) {
    rosa_oft_options *o = p;
    o->block_size = k;
    o->r = 0;
}

/* --------------------------------------------------- adapter_config.json */

#define DEFAULT_ONLY(feature, ...) PEFT_FIELD_DEFAULT, feature, {__VA_ARGS__, NULL}
const rosa_peft_field rosa_oft_fields[] = {
    {"r", PEFT_FIELD_READ, NULL, {NULL}},
    {"oft_block_size", PEFT_FIELD_READ, NULL, {NULL}},
    /* PEFT's oft.Linear.forward never applies the dropout layer it builds. */
    {"module_dropout", PEFT_FIELD_READ, NULL, {NULL}},
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"fan_in_fan_out", DEFAULT_ONLY("fan_in_fan_out (weights stored [in, out], as GPT-2's Conv1D)", "false")},
    {"bias", DEFAULT_ONLY("trained biases", "\"none\"", "null")},
    {"exclude_modules", DEFAULT_ONLY("exclude_modules (modules taken out of target_modules)", "null", "[]", "\"\"")},
    {"init_weights", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* how PEFT starts oft_R; the weights file holds it */
    {"layers_to_transform", PEFT_FIELD_READ, NULL, {NULL}},
    {"layers_pattern", DEFAULT_ONLY("a layers_pattern other than \"layers\"", "null", "[]", "\"\"", "\"layers\"",
                                    "[\"layers\"]")},
    {"modules_to_save", DEFAULT_ONLY("modules_to_save (whole modules trained besides the adapter)", "null", "[]")},
    {"coft", PEFT_FIELD_READ, NULL, {NULL}},
    {"eps", PEFT_FIELD_READ, NULL, {NULL}},
    {"block_share", PEFT_FIELD_READ, NULL, {NULL}},
    {"use_cayley_neumann", PEFT_FIELD_READ, NULL, {NULL}},
    {"num_cayley_neumann_terms", PEFT_FIELD_READ, NULL, {NULL}},
    {NULL, 0, NULL, {NULL}},
};
#undef DEFAULT_ONLY

static int check_opts(const rosa_oft_options *o, const char *where) {
    if ((o->r != 0) == (o->block_size != 0) || o->r < 0 || o->block_size < 0)
        return rosa_fail("%s: OFT needs exactly one of r (%d) and oft_block_size (%d) non-zero and positive", where,
                         o->r, o->block_size);
    if (o->coft && !(o->eps > 0.0f)) return rosa_fail("%s: COFT's eps %g must be positive", where, (double)o->eps);
    if (o->terms < 1 || o->terms > 32)
        return rosa_fail("%s: num_cayley_neumann_terms %d must be in [1, 32]", where, o->terms);
    return 0;
}

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    rosa_oft_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, rosa_oft_fields) < 0) return -1;
    if (!cJSON_GetObjectItemCaseSensitive(j, "oft_block_size"))
        return rosa_fail("%s: no \"oft_block_size\": an OFT adapter of PEFT before 0.14, whose layout current PEFT no "
                         "longer loads either", path);
    long long r, bs, terms;
    double md, eps;
    int neumann;
    if (rosa_json_int_opt(j, "r", path, 0, ROSA_MAX_RANK, 0, &r) < 0 ||
        rosa_json_int_opt(j, "oft_block_size", path, 0, ROSA_MAX_RANK, 32, &bs) < 0 ||
        rosa_json_int_opt(j, "num_cayley_neumann_terms", path, 1, 32, 5, &terms) < 0 ||
        rosa_json_bool_opt(j, "block_share", path, 0, &o->block_share) < 0 ||
        rosa_json_num_opt(j, "module_dropout", path, 0.0, &md) < 0 || rosa_json_bool_opt(j, "coft", path, 0, &o->coft) < 0 ||
        rosa_json_num_opt(j, "eps", path, 6e-5, &eps) < 0 ||
        rosa_json_bool_opt(j, "use_cayley_neumann", path, 1, &neumann) < 0)
        return -1;
    o->r = (int)r, o->block_size = (int)bs, o->terms = (int)terms, o->module_dropout = (float)md;
    o->eps = (float)eps, o->exact = !neumann;
    if (rosa_peft_targets_parse(&o->targets, cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path,
                                "target_modules") < 0)
        return -1;
    if (rosa_peft_layers_parse(j, path, c->num_layers, &o->layers, &o->n_layers) < 0) return -1;
    return check_opts(o, path);
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const rosa_oft_options *o = a->opts;
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "block_share", o->block_share);
    cJSON_AddBoolToObject(j, "coft", o->coft);
    rosa_json_add_float(j, "eps", o->eps);
    cJSON_AddNullToObject(j, "exclude_modules");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_weights", 1);
    rosa_peft_layers_write(o->layers, o->n_layers, j);
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNullToObject(j, "modules_to_save");
    rosa_json_add_float(j, "module_dropout", o->module_dropout);
    cJSON_AddNumberToObject(j, "num_cayley_neumann_terms", o->terms);
    cJSON_AddNumberToObject(j, "oft_block_size", o->block_size);
    cJSON_AddStringToObject(j, "peft_type", "OFT");
    cJSON_AddNumberToObject(j, "r", o->r);
    rosa_peft_targets_write(&o->targets, DEFAULT_TARGETS, j, "target_modules");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(j, "use_cayley_neumann", !o->exact);
}

/* ------------------------------------------------------------- tensors */

static void free_state(void *p) {
    oft_state *st = p;
    if (!st) return;
    free(st->idx);
    free(st->nb);
    free(st->bs);
    free(st);
}

/* PEFT's adjust_oft_parameters: the divisor of in nearest to v (ties: the lower). */
static int adjust(int in, int v) {
    if (v >= in) return in;
    int hi = v, lo = v;
    while (hi <= in && in % hi != 0) hi++;
    while (lo > 1 && in % lo != 0) lo--;
    return v - lo <= hi - v ? lo : hi;
}

/* The terms oft_rotation_* take: 0 for the exact Cayley transform. */
static int series_terms(const rosa_oft_options *o) { return o->exact ? 0 : o->terms; }

static int build(rosa_adapter *a, const rosa_config *c) {
    const rosa_oft_options *o = a->opts;
    if (check_opts(o, "OFT options") < 0) return -1;
    oft_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->idx = rosa_malloc(sizeof *st->idx * (size_t)a->L, "adapter index");
    st->nb = rosa_calloc((size_t)a->L, sizeof *st->nb, "adapter index");
    st->bs = rosa_calloc((size_t)a->L, sizeof *st->bs, "adapter index");
    uint8_t *on_layer = rosa_calloc((size_t)a->L, 1, "adapter layers");
    if (!st->idx || !st->nb || !st->bs || !on_layer) return free(on_layer), -1;
    int rc = rosa_peft_layers_mark(o->layers, o->n_layers, a->L, on_layer);
    for (int l = 0; l < a->L && rc == 0; l++)
        for (int p = 0; p < N_PROJ && rc == 0; p++) {
            st->idx[l][p] = -1;
            char key[96], name[128];
            rosa_proj_tensor_name(key, sizeof key, l, p);
            int on = (!o->layers || on_layer[l]) ? rosa_peft_targets_match(&o->targets, DEFAULT_TARGETS, key, 0) : 0;
            if (on < 0) rc = -1;
            if (on <= 0) continue;
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            int nb, bs;
            if (o->block_size) bs = in % o->block_size || o->block_size > in ? adjust(in, o->block_size) : o->block_size, nb = in / bs;
            else nb = in % o->r || o->r > in ? adjust(in, o->r) : o->r, bs = in / nb;
            st->idx[l][p] = a->n_params, st->nb[l][p] = nb, st->bs[l][p] = bs;
            size_t b2 = (size_t)bs * bs;
            /* per row: x M - x or dy W; fixed: R, G [nb][bs][bs], the series' scratch */
            if ((size_t)in > st->scratch) st->scratch = (size_t)in;
            size_t fixed = 2 * ROSA_ARENA_ROUND((size_t)nb * b2) + oft_rotation_scratch(bs, series_terms(o)) + 64;
            if (fixed > st->scratch_fixed) st->scratch_fixed = fixed;
            snprintf(name, sizeof name, "base_model.model.%s.oft_R.weight", key);
            rc = rosa_adapter_add_param(a, name, l, o->block_share ? 1 : nb, bs * (bs - 1) / 2);
        }
    free(on_layer);
    if (rc == 0 && a->n_params == 0) rc = rosa_fail("the OFT target_modules and layers select no module of this model");
    return rc;
}

/* PEFT's init_weights: zeros, R = I (values are zero on entry). */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) { (void)a, (void)m, (void)seed; }

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const rosa_oft_options *o = a->opts;
    char t[160];
    rosa_peft_targets_format(&o->targets, DEFAULT_TARGETS, t, sizeof t);
    const char *form = o->coft ? (o->exact ? " (COFT, exact Cayley)" : " (COFT)") : o->exact ? " (exact Cayley)" : "";
    if (o->block_size) snprintf(buf, n, "OFT block size %d%s%s on %s", o->block_size, o->block_share ? " shared" : "", form, t);
    else snprintf(buf, n, "OFT r %d%s%s on %s", o->r, o->block_share ? " shared" : "", form, t);
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const oft_state *)a->state)->idx[l][p] >= 0; }

/* W' = W M^T: W'[o][j bs + k] = sum_c W[o][j bs + c] R_j[k][c]. */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const oft_state *st = a->state;
    const rosa_oft_options *o = a->opts;
    const rosa_param *P = &a->params[st->idx[l][p]];
    int nb = st->nb[l][p], bs = st->bs[l][p];
    if (nb * bs != in) return rosa_fail("OFT blocks of layer %d do not match the model", l);
    size_t nv = (size_t)P->rows * P->cols;
    float *R = rosa_malloc(sizeof(float) * ((size_t)P->rows * bs * bs + oft_rotation_scratch(bs, series_terms(o)) + nv),
                           "OFT");
    float *tmp = rosa_malloc(sizeof(float) * (size_t)out * in, "OFT merge");
    if (!R || !tmp) return free(R), free(tmp), -1;
    float *vec = R + (size_t)P->rows * bs * bs + oft_rotation_scratch(bs, series_terms(o));
    memcpy(vec, a->w + P->offset, sizeof(float) * nv);
    if (o->coft) oft_project(vec, P->rows, bs, o->eps); /* as PEFT's forward would first */
    oft_rotation_forward(R, vec, P->rows, bs, series_terms(o), R + (size_t)P->rows * bs * bs);
    /* rows of W are the rows x of oft_rotate with M^T: W M^T - W, then + W */
    oft_rotate(tmp, W, R, out, nb, bs, o->block_share, 1, 0);
    for (size_t i = 0; i < (size_t)out * in; i++) W[i] += tmp[i];
    free(R);
    free(tmp);
    return 0;
}

/* ------------------------------------------------------------- hooks */

static size_t scratch_floats(const void *self, int N) {
    const oft_state *st = ((const rosa_adapter *)self)->state;
    return ROSA_ARENA_ROUND((size_t)N * st->scratch) + st->scratch_fixed;
}

typedef struct {
    float *rows, *R, *G, *series;
} oft_scratch;

static oft_scratch carve(const rosa_block_ctx *c, const void *self, int nb, int bs) {
    const oft_state *st = ((const rosa_adapter *)self)->state;
    oft_scratch s;
    s.rows = rosa_block_hook_scratch(c, self);
    s.R = s.rows + ROSA_ARENA_ROUND((size_t)c->N * st->scratch);
    s.G = s.R + ROSA_ARENA_ROUND((size_t)nb * bs * bs);
    s.series = s.G + ROSA_ARENA_ROUND((size_t)nb * bs * bs);
    return s;
}

/* y += (x M - x) W^T (COFT: oft_R projected in place first, as PEFT does). */
static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    rosa_adapter *a = self;
    const oft_state *st = a->state;
    const rosa_oft_options *o = a->opts;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_param *P = &a->params[idx];
    const rosa_weight *w = &c->m->layers[l].proj[p];
    int nb = st->nb[l][p], bs = st->bs[l][p], rc;
    oft_scratch s = carve(c, self, nb, bs);
    if (o->coft) oft_project(a->w + P->offset, P->rows, bs, o->eps);
    PROF(PROF_ADAPTER, 2.0 * c->N * w->in * (w->out + bs),
         oft_rotation_forward(s.R, a->w + P->offset, P->rows, bs, series_terms(o), s.series);
         oft_rotate(s.rows, x, s.R, c->N, nb, bs, o->block_share, 0, 0);
         rc = rosa_weight_forward(w, y, s.rows, NULL, c->N, 1));
    return rc;
}

/* u = dy W; dx += u M^T - u; G_j = x_j^T u_j through the series to oft_R. */
static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    rosa_adapter *a = self;
    const oft_state *st = a->state;
    const rosa_oft_options *o = a->opts;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_param *P = &a->params[idx];
    const rosa_weight *w = &c->m->layers[l].proj[p];
    int nb = st->nb[l][p], bs = st->bs[l][p], rc;
    oft_scratch s = carve(c, self, nb, bs);
    PROF(PROF_ADAPTER, 2.0 * c->N * w->in * (w->out + 2 * bs),
         oft_rotation_forward(s.R, a->w + P->offset, P->rows, bs, series_terms(o), s.series);
         rc = rosa_weight_backward(w, s.rows, dy, c->N, 0);
         if (rc == 0) oft_rotate(dx, s.rows, s.R, c->N, nb, bs, o->block_share, 1, 1);
         if (rc == 0 && rosa_block_layer_active(c, l)) {
             oft_rotate_grad(s.G, x, s.rows, c->N, nb, bs, o->block_share);
             oft_rotation_backward(a->g + P->offset, s.G, a->w + P->offset, P->rows, bs, series_terms(o), s.series);
         });
    return rc;
}

static const rosa_hook_ops hooks = {
    .scratch_floats = scratch_floats,
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

const rosa_peft_method rosa_peft_oft = {
    .name = "oft",
    .peft_type = "OFT",
    .title = "OFT",
    .opts_size = sizeof(rosa_oft_options),
    .opts_default = opts_default,
    .opts_copy = opts_copy,
    .opts_free = opts_free,
    .options = options,
    .format_option = format_option,
    .set_rank = set_rank,
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
