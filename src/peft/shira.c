/* shira.c: SHiRA (sparse high-rank adapters, Bhardwaj et al.), exactly as
 * Hugging Face PEFT computes, initialises, saves and loads it (tuners/shira,
 * commit 5d602fd): each adapted projection gets W' = W + S with S sparse,
 * S[rows_k][cols_k] = shira_weight[k] for k < r (in + out) (PEFT's scaling is
 * 1 in training and rosa never changes it).  The positions are PEFT's
 * random_mask: the first r (in + out) of torch.randperm(out x in) with a
 * generator seeded by random_seed (torch's default seed when null), taken in
 * row-major order (torch.where of the mask); PEFT saves them too, as
 * ...shira_indices [2][k] int32, which rosa writes and, when a file holds
 * them, reads instead.  Mergeable: W += S. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/json.h"
#include "model/model.h"
#include "peft/format.h"
#include "peft/lora.h"
#include "peft/peft.h"
#include "peft/targets.h"
#include "peft/torch_rand.h"

typedef struct {
    int rank;            /* r: r (in + out) values per module (default 32) */
    unsigned targets;    /* bit p: projection p adapted (default q, v) */
    int init_random;     /* init_weights false: N(0, 1) values instead of zeros */
    int has_seed;        /* random_seed given (else torch's default generator seed) */
    long long seed;
} shira_options;

typedef struct {
    int (*idx)[N_PROJ];         /* [L][p]: the module's tensor, -1 */
    int32_t *(*pos)[N_PROJ];    /* [L][p]: rows then cols, [2][k] (owned) */
    int64_t (*shape)[N_PROJ][2]; /* [L][p]: {2, k} for the saved indices */
    char (*ix_name)[N_PROJ][160]; /* [L][p]: "...<module>.shira_indices" */
    int (*dims)[N_PROJ][2];     /* [L][p]: out, in */
    int n_layers;
} shira_state;

static void opts_default(void *p) {
    shira_options *o = p;
    memset(o, 0, sizeof *o);
    o->rank = 32;
    o->targets = (1u << PROJ_Q) | (1u << PROJ_V);
}

static int parse_targets(void *p, const char *v) {
    if (rosa_parse_target_modules(v, &((shira_options *)p)->targets) < 0) return rosa_error_prefix("--target-modules"), -1;
    return 0;
}

static int parse_seed(void *p, const char *v) {
    shira_options *o = p;
    char *end;
    long long s = strtoll(v, &end, 10);
    if (end == v || *end || s < 0) return rosa_fail("--shira-seed expects a non-negative integer, got \"%s\"", v);
    o->has_seed = 1, o->seed = s;
    return 0;
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const shira_options *o = p;
    buf[0] = 0;
    if (strcmp(flag, "target-modules") == 0) return rosa_peft_target_mask_format(o->targets, buf, n), 0;
    if (strcmp(flag, "shira-seed") == 0) {
        if (o->has_seed) snprintf(buf, n, "%lld", o->seed);
        else snprintf(buf, n, "none");
        return 0;
    }
    return -1;
}

static const rosa_peft_option options[] = {
    {"rank", PEFT_OPT_INT, offsetof(shira_options, rank), "R", "r: r x (in + out) trained values per module (default 32)",
     NULL, NULL},
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST", "modules adapted, e.g. q_proj,v_proj (default) or all", NULL,
     parse_targets},
    {"shira-seed", PEFT_OPT_CUSTOM, 0, "S", "random_seed of the mask (default: none, torch's default generator seed)",
     NULL, parse_seed},
    {0},
};

static void set_rank(void *p, int r) { ((shira_options *)p)->rank = r; }

/* Every field of PEFT's ShiraConfig; the base fields are in format.c. */
static const rosa_peft_field fields[] = {
    {"r", PEFT_FIELD_READ, NULL, {NULL}},
    {"mask_type", PEFT_FIELD_DEFAULT, "a mask other than random", {"\"random\"", NULL}},
    {"random_seed", PEFT_FIELD_READ, NULL, {NULL}},
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"fan_in_fan_out", PEFT_FIELD_DEFAULT, "fan_in_fan_out (weights stored [in, out])", {"false", NULL}},
    {"init_weights", PEFT_FIELD_READ, NULL, {NULL}},
    {"modules_to_save", PEFT_FIELD_DEFAULT, "modules_to_save", {"null", "[]", NULL}},
    {NULL, 0, NULL, {NULL}},
};

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    (void)c;
    shira_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, fields) < 0) return -1;
    long long r;
    int init = 1;
    if (rosa_json_int(j, "r", path, 1, ROSA_MAX_RANK, &r) < 0 || rosa_json_bool_opt(j, "init_weights", path, 1, &init) < 0)
        return -1;
    o->rank = (int)r;
    o->init_random = !init;
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "random_seed");
    if (seed && !cJSON_IsNull(seed)) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble < 0 || seed->valuedouble > 9.0e15 ||
            seed->valuedouble != (double)(long long)seed->valuedouble)
            return rosa_fail("%s: \"random_seed\" must be null or a non-negative integer", path);
        o->has_seed = 1, o->seed = (long long)seed->valuedouble;
    }
    if (rosa_peft_target_mask_parse(cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path, &o->targets) < 0)
        return -1;
    return 0;
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const shira_options *o = a->opts;
    cJSON_AddStringToObject(j, "peft_type", "SHIRA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(j, "r", o->rank);
    cJSON_AddStringToObject(j, "mask_type", "random");
    if (o->has_seed) cJSON_AddNumberToObject(j, "random_seed", (double)o->seed);
    else cJSON_AddNullToObject(j, "random_seed");
    rosa_peft_target_mask_write(o->targets, j);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(j, "init_weights", !o->init_random);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
}

static void free_state(void *p) {
    shira_state *st = p;
    if (!st) return;
    for (int l = 0; st->pos && l < st->n_layers; l++)
        for (int q = 0; q < N_PROJ; q++) free(st->pos[l][q]);
    free(st->pos);
    free(st->idx);
    free(st->shape);
    free(st->ix_name);
    free(st->dims);
    free(st);
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* PEFT's random_mask positions for an out x in weight, row-major. */
static int32_t *random_positions(int out, int in, int64_t k, uint64_t seed) {
    int64_t *flat = rosa_malloc(sizeof(int64_t) * (size_t)k, "SHiRA mask");
    int32_t *pos = rosa_malloc(sizeof(int32_t) * 2 * (size_t)k, "SHiRA indices");
    if (!flat || !pos || rosa_torch_randperm((int64_t)out * in, seed, k, flat) < 0) {
        free(flat);
        free(pos);
        return NULL;
    }
    qsort(flat, (size_t)k, sizeof *flat, cmp_i64); /* torch.where walks the mask in order */
    for (int64_t i = 0; i < k; i++) pos[i] = (int32_t)(flat[i] / in), pos[k + i] = (int32_t)(flat[i] % in);
    free(flat);
    return pos;
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const shira_options *o = a->opts;
    if (o->rank < 1 || o->rank > ROSA_MAX_RANK) return rosa_fail("SHiRA r %d must be in [1, %d]", o->rank, ROSA_MAX_RANK);
    shira_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->n_layers = a->L;
    st->idx = rosa_calloc((size_t)a->L, sizeof *st->idx, "adapter index");
    st->pos = rosa_calloc((size_t)a->L, sizeof *st->pos, "SHiRA indices");
    st->shape = rosa_calloc((size_t)a->L, sizeof *st->shape, "SHiRA indices");
    st->ix_name = rosa_calloc((size_t)a->L, sizeof *st->ix_name, "SHiRA indices");
    st->dims = rosa_calloc((size_t)a->L, sizeof *st->dims, "SHiRA indices");
    if (!st->idx || !st->pos || !st->shape || !st->ix_name || !st->dims) return -1;
    uint64_t seed = o->has_seed ? (uint64_t)o->seed : ROSA_TORCH_DEFAULT_SEED;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            st->idx[l][p] = -1;
            if (!((o->targets >> p) & 1u)) continue;
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            int64_t k = (int64_t)o->rank * (in + out);
            if (k > (int64_t)in * out)
                return rosa_fail("SHiRA r %d gives %lld values, more than the %d x %d %s has", o->rank, (long long)k, out,
                                 in, rosa_proj_names[p]);
            char base[96], name[160];
            rosa_proj_tensor_name(base, sizeof base, l, p);
            snprintf(name, sizeof name, "base_model.model.%s.shira_weight", base);
            snprintf(st->ix_name[l][p], sizeof st->ix_name[l][p], "base_model.model.%s.shira_indices", base);
            st->idx[l][p] = a->n_params;
            if (rosa_adapter_add_param(a, name, l, 1, (int)k) < 0) return -1;
            a->params[a->n_params - 1].ndim = 1;
            /* The same positions for every module of one shape: PEFT seeds a new generator per module. */
            if (!(st->pos[l][p] = random_positions(out, in, k, seed))) return -1;
            st->shape[l][p][0] = 2, st->shape[l][p][1] = k;
            st->dims[l][p][0] = out, st->dims[l][p][1] = in;
        }
    if (a->n_params == 0) return rosa_fail("the SHiRA target modules select no module of this model");
    return 0;
}

/* PEFT's: zeros (init_weights true), else N(0, 1) (Box-Muller here; torch's
 * draws differ, the saved values are what count). */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    (void)m;
    const shira_options *o = a->opts;
    if (!o->init_random) return;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    for (size_t i = 0; i < a->n_floats; i++) {
        double u1 = 1.0 - (double)rosa_rng_uniform(&rng), u2 = rosa_rng_uniform(&rng);
        a->w[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static int write_extra(const rosa_adapter *a, st_write_entry *e, int64_t *shapes) {
    const shira_state *st = a->state;
    int n = 0;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            if (e) {
                shapes[2 * n] = st->shape[l][p][0], shapes[2 * n + 1] = st->shape[l][p][1];
                e[n] = (st_write_entry){st->ix_name[l][p], ST_I32, 2, &shapes[2 * n], st->pos[l][p]};
            }
            n++;
        }
    return n;
}

/* Saved indices (int32 or int64 as PEFT writes them on Linux, float32 as on
 * Windows) replace the ones drawn from random_seed; each must lie inside the
 * weight, once. */
static int read_extra(rosa_adapter *a, const st_set *s, const char *path) {
    shira_state *st = a->state;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            const st_tensor *t = st_set_find(s, st->ix_name[l][p]);
            if (!t) continue; /* PEFT draws them again from random_seed: so does rosa */
            int64_t k = st->shape[l][p][1];
            if (t->ndim != 2 || t->shape[0] != 2 || t->shape[1] != k)
                return rosa_fail("%s: tensor \"%s\" should have shape [2, %lld]", path, t->name, (long long)k);
            if (t->dtype != ST_I32 && t->dtype != ST_I64 && t->dtype != ST_F32)
                return rosa_fail("%s: tensor \"%s\" has dtype %s (expected I32, I64 or F32)", path, t->name,
                                 st_dtype_name(t->dtype));
            int32_t *pos = st->pos[l][p];
            for (int64_t i = 0; i < 2 * k; i++) {
                double v;
                const char *src = (const char *)t->data + (size_t)i * st_dtype_size(t->dtype);
                if (t->dtype == ST_I32) {
                    int32_t x;
                    memcpy(&x, src, 4);
                    v = x;
                } else if (t->dtype == ST_I64) {
                    int64_t x;
                    memcpy(&x, src, 8);
                    v = (double)x;
                } else {
                    float x;
                    memcpy(&x, src, 4);
                    v = x;
                }
                int lim = st->dims[l][p][i < k ? 0 : 1];
                if (!(v >= 0 && v < lim && v == (double)(int32_t)v))
                    return rosa_fail("%s: tensor \"%s\": %s index %g at %lld is outside the %d x %d weight", path,
                                     t->name, i < k ? "row" : "column", v, (long long)(i % k), st->dims[l][p][0],
                                     st->dims[l][p][1]);
                pos[i] = (int32_t)v;
            }
        }
    return 0;
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const shira_options *o = a->opts;
    snprintf(buf, n, "SHiRA r %d (sparse, %lld values)", o->rank, (long long)a->n_floats);
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const shira_state *)a->state)->idx[l][p] >= 0; }

/* W[row_k][col_k] += v_k. */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const shira_state *st = a->state;
    const rosa_param *t = &a->params[st->idx[l][p]];
    const int32_t *row = st->pos[l][p], *col = row + t->cols;
    if (st->dims[l][p][0] != out || st->dims[l][p][1] != in) return rosa_fail("SHiRA tensors of layer %d do not match the model", l);
    for (int k = 0; k < t->cols; k++) W[(size_t)row[k] * in + col[k]] += a->w[t->offset + k];
    return 0;
}

/* y[N][out] += x[N][in] S^T: each value adds v x[:, col] to y[:, row]. */
static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    (void)acts;
    const rosa_adapter *a = self;
    const shira_state *st = a->state;
    if (st->idx[l][p] < 0) return 0;
    const rosa_param *t = &a->params[st->idx[l][p]];
    const int32_t *row = st->pos[l][p], *col = row + t->cols;
    const float *v = a->w + t->offset;
    int out = st->dims[l][p][0], in = st->dims[l][p][1], K = t->cols;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < K; k++) y[(size_t)n * out + row[k]] += v[k] * x[(size_t)n * in + col[k]];
    return 0;
}

/* dx[:, col] += v dy[:, row]; dv_k = sum_n dy[n][row_k] x[n][col_k]. */
static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    (void)acts;
    const rosa_adapter *a = self;
    const shira_state *st = a->state;
    if (st->idx[l][p] < 0) return 0;
    const rosa_param *t = &a->params[st->idx[l][p]];
    const int32_t *row = st->pos[l][p], *col = row + t->cols;
    const float *v = a->w + t->offset;
    int out = st->dims[l][p][0], in = st->dims[l][p][1], K = t->cols, N = c->N;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) dx[(size_t)n * in + col[k]] += v[k] * dy[(size_t)n * out + row[k]];
    if (!rosa_block_layer_active(c, l)) return 0;
    float *dv = a->g + t->offset;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++) {
        float s = 0;
        for (int n = 0; n < N; n++) s += dy[(size_t)n * out + row[k]] * x[(size_t)n * in + col[k]];
        dv[k] += s;
    }
    return 0;
}

static const rosa_hook_ops hooks = {
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

const rosa_peft_method rosa_peft_shira = {
    .name = "shira",
    .peft_type = "SHIRA",
    .title = "SHiRA",
    .opts_size = sizeof(shira_options),
    .opts_default = opts_default,
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
    .extra_suffix = ".shira_indices",
    .write_extra = write_extra,
    .read_extra = read_extra,
};
