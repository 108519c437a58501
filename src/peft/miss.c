/* miss.c: the MiSS method (see miss.h). */
#include "peft/miss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/prof.h"
#include "core/util.h"
#include "io/json.h"
#include "model/gemm.h"
#include "model/model.h"
#include "peft/lowrank.h"

/* PEFT's TRANSFORMERS_MODELS_TO_MISS_TARGET_MODULES_MAPPING for llama. */
#define DEFAULT_TARGETS "q_proj,v_proj"

typedef struct {
    int (*idx)[N_PROJ]; /* [L][p]: its miss_block in the table, or -1 */
    int in[N_PROJ];     /* inputs of the projections */
    int widest_out;
} miss_state;

/* ------------------------------------------------------------- the op */

void miss_block_sum(float *s, const float *x, int N, int in, int r) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *sv = s + (size_t)n * r;
        const float *xv = x + (size_t)n * in;
        memset(sv, 0, sizeof(float) * (size_t)r);
        for (int i = 0; i < in; i++) sv[i % r] += xv[i];
    }
}

void miss_block_sum_backward(float *dx, const float *ds, int N, int in, int r) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < in; i++) dx[(size_t)n * in + i] += ds[(size_t)n * r + i % r];
}

/* ------------------------------------------------------------- options */

static void opts_default(void *p) {
    rosa_miss_options *o = p;
    memset(o, 0, sizeof *o);
    o->r = 64;
    o->mini_r = 1;
}

static int opts_copy(void *dst, const void *src) {
    rosa_miss_options *d = dst;
    const rosa_miss_options *s = src;
    *d = *s;
    d->targets.names = NULL;
    d->layers = NULL;
    if (rosa_peft_targets_copy(&d->targets, &s->targets) < 0) return -1;
    return rosa_peft_layers_copy(&d->layers, s->layers, s->n_layers);
}

static void opts_free(void *p) {
    rosa_miss_options *o = p;
    rosa_peft_targets_free(&o->targets);
    free(o->layers);
    o->layers = NULL;
}

static int parse_targets(void *p, const char *v) {
    return rosa_peft_targets_from_flag(&((rosa_miss_options *)p)->targets, v, "target-modules");
}

static int parse_layers(void *p, const char *v) {
    rosa_miss_options *o = p;
    return rosa_peft_layers_from_flag(&o->layers, &o->n_layers, v);
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const rosa_miss_options *o = p;
    if (strcmp(flag, "target-modules") == 0) return rosa_peft_targets_format(&o->targets, DEFAULT_TARGETS, buf, n), 0;
    if (strcmp(flag, "layers") == 0) return rosa_peft_layers_format(o->layers, o->n_layers, buf, n), 0;
    return -1;
}

static const rosa_peft_option options[] = {
    {"rank", PEFT_OPT_INT, offsetof(rosa_miss_options, r), "R", "r, the block width (default 64)", NULL, NULL},
    {"miss-form", PEFT_OPT_CHOICE, offsetof(rosa_miss_options, mini), "FORM",
     "miss (default, D [r, out]) or mini (D [r, mini_r] repeated along out)", "miss|mini", NULL},
    {"mini-r", PEFT_OPT_INT, offsetof(rosa_miss_options, mini_r), "N", "mini's width (default 1)", NULL, NULL},
    {"dropout", PEFT_OPT_FLOAT, offsetof(rosa_miss_options, dropout), "P",
     "dropout on the branch input (PEFT's miss_dropout, default 0)", NULL, NULL},
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST", "modules adapted: names (default q_proj,v_proj), re:PATTERN or "
     "all-linear", NULL, parse_targets},
    {"layers", PEFT_OPT_CUSTOM, 0, "LIST", "adapt only these layers, e.g. 0,1,2 (default: all)", NULL, parse_layers},
    {0},
};

static void set_rank(void *p, int r) { ((rosa_miss_options *)p)->r = r; }

static void runtime_from(void *p, const void *from) {
    ((rosa_miss_options *)p)->dropout = ((const rosa_miss_options *)from)->dropout;
}

/* --------------------------------------------------- adapter_config.json */

#define DEFAULT_ONLY(feature, ...) PEFT_FIELD_DEFAULT, feature, {__VA_ARGS__, NULL}
const rosa_peft_field rosa_miss_fields[] = {
    {"r", PEFT_FIELD_READ, NULL, {NULL}},
    {"miss_dropout", PEFT_FIELD_READ, NULL, {NULL}},
    {"mini_r", PEFT_FIELD_READ, NULL, {NULL}},
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"exclude_modules", DEFAULT_ONLY("exclude_modules (modules taken out of target_modules)", "null", "[]", "\"\"")},
    {"init_weights", PEFT_FIELD_READ, NULL, {NULL}},
    {"layers_to_transform", PEFT_FIELD_READ, NULL, {NULL}},
    {"layers_pattern", DEFAULT_ONLY("a layers_pattern other than \"layers\"", "null", "[]", "\"\"", "\"layers\"",
                                    "[\"layers\"]")},
    {"bias", DEFAULT_ONLY("trained biases", "\"none\"", "null")},
    {"modules_to_save", DEFAULT_ONLY("modules_to_save (whole modules trained besides the adapter)", "null", "[]")},
    {NULL, 0, NULL, {NULL}},
};
#undef DEFAULT_ONLY

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    rosa_miss_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, rosa_miss_fields) < 0) return -1;
    long long r, mr;
    double dropout;
    if (rosa_json_int_opt(j, "r", path, 1, ROSA_MAX_RANK, 64, &r) < 0 ||
        rosa_json_int_opt(j, "mini_r", path, 1, ROSA_MAX_RANK, 1, &mr) < 0 ||
        rosa_json_num_opt(j, "miss_dropout", path, 0.0, &dropout) < 0)
        return -1;
    o->r = (int)r, o->mini_r = (int)mr, o->dropout = (float)dropout;
    const cJSON *iw = cJSON_GetObjectItemCaseSensitive(j, "init_weights");
    if (cJSON_IsString(iw) && strcmp(iw->valuestring, "mini") == 0) o->mini = 1;
    else if (cJSON_IsString(iw) && strcmp(iw->valuestring, "bat") == 0)
        return rosa_fail("%s: \"init_weights\" is \"bat\": rosa does not implement Bat (the weight-dependent MiSS "
                         "block); it accepts true, false or \"mini\"", path);
    else if (cJSON_IsFalse(iw)) o->random_init = 1;
    else if (iw && !cJSON_IsTrue(iw) && !cJSON_IsNull(iw))
        return rosa_fail("%s: \"init_weights\" must be true, false, \"bat\" or \"mini\"", path);
    if (rosa_peft_targets_parse(&o->targets, cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path,
                                "target_modules") < 0)
        return -1;
    if (rosa_peft_layers_parse(j, path, c->num_layers, &o->layers, &o->n_layers) < 0) return -1;
    return 0;
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const rosa_miss_options *o = a->opts;
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddNullToObject(j, "exclude_modules");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    if (o->mini) cJSON_AddStringToObject(j, "init_weights", "mini");
    else cJSON_AddBoolToObject(j, "init_weights", !o->random_init);
    rosa_peft_layers_write(o->layers, o->n_layers, j);
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNumberToObject(j, "mini_r", o->mini_r);
    rosa_json_add_float(j, "miss_dropout", o->dropout);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "MISS");
    cJSON_AddNumberToObject(j, "r", o->r);
    rosa_peft_targets_write(&o->targets, DEFAULT_TARGETS, j, "target_modules");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
}

/* ------------------------------------------------------------- tensors */

static void free_state(void *p) {
    miss_state *st = p;
    if (!st) return;
    free(st->idx);
    free(st);
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const rosa_miss_options *o = a->opts;
    if (o->r < 1 || o->r > ROSA_MAX_RANK) return rosa_fail("MiSS r %d must be in [1, %d]", o->r, ROSA_MAX_RANK);
    if (o->mini && o->mini_r < 1) return rosa_fail("MiSS mini_r %d must be positive", o->mini_r);
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) return rosa_fail("MiSS dropout %g must be in [0, 1)", o->dropout);
    miss_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->idx = rosa_malloc(sizeof *st->idx * (size_t)a->L, "adapter index");
    uint8_t *on_layer = rosa_calloc((size_t)a->L, 1, "adapter layers");
    if (!st->idx || !on_layer) return free(on_layer), -1;
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
            st->in[p] = in;
            if (o->mini && out % o->mini_r)
                rc = rosa_fail("MiSS mini: out_features %d of %s is not divisible by mini_r %d (PEFT requires it)", out,
                               key, o->mini_r);
            if (out > st->widest_out) st->widest_out = out;
            st->idx[l][p] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.%s.miss_block", key);
            if (rc == 0) rc = rosa_adapter_add_param(a, name, l, o->r, o->mini ? o->mini_r : out);
        }
    free(on_layer);
    if (rc == 0 && a->n_params == 0) rc = rosa_fail("the MiSS target_modules and layers select no module of this model");
    return rc;
}

/* PEFT's: zeros (init_weights true or "mini"), Kaiming-uniform for false. */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    (void)m;
    if (!((const rosa_miss_options *)a->opts)->random_init) return;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    for (int i = 0; i < a->n_params; i++)
        lowrank_init_a(a->w + a->params[i].offset, a->params[i].rows, a->params[i].cols, &rng);
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const rosa_miss_options *o = a->opts;
    char t[160];
    rosa_peft_targets_format(&o->targets, DEFAULT_TARGETS, t, sizeof t);
    if (o->mini) snprintf(buf, n, "MiSS mini r %d, mini_r %d on %s", o->r, o->mini_r, t);
    else snprintf(buf, n, "MiSS r %d on %s", o->r, t);
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const miss_state *)a->state)->idx[l][p] >= 0; }

/* D [r][out] in full: mini's columns tiled out / mini_r times. */
static const float *full_block(const rosa_adapter *a, const rosa_param *P, int out, float *buf) {
    const float *D = a->w + P->offset;
    if (P->cols == out) return D;
    for (int k = 0; k < P->rows; k++)
        for (int o = 0; o < out; o++) buf[(size_t)k * out + o] = D[(size_t)k * P->cols + o % P->cols];
    return buf;
}

/* W[o][i] += D[i mod r][o]. */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const rosa_param *P = &a->params[((const miss_state *)a->state)->idx[l][p]];
    float *buf = rosa_malloc(sizeof(float) * (size_t)P->rows * out, "MiSS merge");
    if (!buf) return -1;
    const float *D = full_block(a, P, out, buf);
    int r = P->rows;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) W[(size_t)o * in + i] += D[(size_t)(i % r) * out + o];
    free(buf);
    return 0;
}

/* ------------------------------------------------------------- hooks */

/* With dropout, layer l keeps per adapted module the dropped input xd
 * [N][in] and its mask [N][in] bytes, in projection order. */
static size_t drop_floats(int N, int in) {
    return ROSA_ARENA_ROUND((size_t)N * in) + ROSA_ARENA_ROUND((size_t)N * in / sizeof(float) + 1);
}

static size_t act_floats(const void *self, int l, int N) {
    const rosa_adapter *a = self;
    const miss_state *st = a->state;
    if (((const rosa_miss_options *)a->opts)->dropout <= 0) return 0;
    size_t n = 0;
    for (int p = 0; p < N_PROJ; p++)
        if (st->idx[l][p] >= 0) n += drop_floats(N, st->in[p]);
    return n;
}

static float *drop_acts(const rosa_adapter *a, int l, int p, float *acts, int N) {
    const miss_state *st = a->state;
    for (int q = 0; q < p; q++)
        if (st->idx[l][q] >= 0) acts += drop_floats(N, st->in[q]);
    return acts;
}

/* s and ds [N][r], D in full and its gradient [r][widest out]. */
static size_t scratch_floats(const void *self, int N) {
    const rosa_adapter *a = self;
    const rosa_miss_options *o = a->opts;
    const miss_state *st = a->state;
    return 2 * ROSA_ARENA_ROUND((size_t)N * o->r) + 2 * ROSA_ARENA_ROUND((size_t)o->r * st->widest_out);
}

/* y += s D. */
static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    const rosa_adapter *a = self;
    const miss_state *st = a->state;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_param *P = &a->params[idx];
    const rosa_weight *w = &c->m->layers[l].proj[p];
    const rosa_miss_options *o = a->opts;
    int r = P->rows, N = c->N;
    float *s = rosa_block_hook_scratch(c, self), *buf = s + 2 * ROSA_ARENA_ROUND((size_t)N * r);
    if (o->dropout > 0) {
        /* inverted dropout, one mask per module (as torch.nn.Dropout); identity in evaluation */
        float *xd = drop_acts(a, l, p, acts, N), scale = 1.0f / (1.0f - o->dropout);
        uint8_t *keep = (uint8_t *)(xd + ROSA_ARENA_ROUND((size_t)N * w->in));
        for (size_t i = 0; i < (size_t)N * w->in; i++) {
            keep[i] = c->drop ? rosa_rng_uniform(c->drop) >= o->dropout : 1;
            xd[i] = keep[i] ? x[i] * (c->drop ? scale : 1.0f) : 0.0f;
        }
        x = xd;
    }
    PROF(PROF_ADAPTER, 2.0 * N * r * w->out, miss_block_sum(s, x, N, w->in, r);
         rosa_gemm('N', 'N', N, w->out, r, 1.0f, s, r, full_block(a, P, w->out, buf), w->out, 1.0f, y, w->out));
    return 0;
}

/* ds = dy D^T, dx += ds at every block; dD = s^T dy (summed over mini's tiles). */
static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    rosa_adapter *a = self;
    const miss_state *st = a->state;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_param *P = &a->params[idx];
    const rosa_weight *w = &c->m->layers[l].proj[p];
    int r = P->rows, N = c->N, out = w->out;
    float *s = rosa_block_hook_scratch(c, self), *ds = s + ROSA_ARENA_ROUND((size_t)N * r);
    float *buf = ds + ROSA_ARENA_ROUND((size_t)N * r), *dD = buf + ROSA_ARENA_ROUND((size_t)r * st->widest_out);
    int act = rosa_block_layer_active(c, l);
    const rosa_miss_options *o = a->opts;
    const uint8_t *keep = NULL;
    float scale = 1.0f;
    if (o->dropout > 0) {
        const float *xd = drop_acts(a, l, p, acts, N);
        keep = (const uint8_t *)(xd + ROSA_ARENA_ROUND((size_t)N * w->in));
        scale = c->drop ? 1.0f / (1.0f - o->dropout) : 1.0f;
        x = xd;
    }
    double t0 = rosa_prof_now();
    rosa_gemm('N', 'T', N, r, out, 1.0f, dy, out, full_block(a, P, out, buf), out, 0.0f, ds, r);
    if (keep) {
        for (size_t i = 0; i < (size_t)N * w->in; i++)
            dx[i] += keep[i] ? scale * ds[(i / (size_t)w->in) * r + (i % (size_t)w->in) % r] : 0.0f;
    } else {
        miss_block_sum_backward(dx, ds, N, w->in, r);
    }
    if (act) {
        miss_block_sum(s, x, N, w->in, r);
        float *g = a->g + P->offset;
        if (P->cols == out) {
            rosa_gemm('T', 'N', r, out, N, 1.0f, s, r, dy, out, 1.0f, g, out);
        } else {
            rosa_gemm('T', 'N', r, out, N, 1.0f, s, r, dy, out, 0.0f, dD, out);
            for (int k = 0; k < r; k++)
                for (int col = 0; col < out; col++) g[(size_t)k * P->cols + col % P->cols] += dD[(size_t)k * out + col];
        }
    }
    rosa_prof_add(PROF_ADAPTER, t0, (act ? 6.0 : 4.0) * N * r * out);
    return 0;
}

static const rosa_hook_ops hooks = {
    .act_floats = act_floats,
    .scratch_floats = scratch_floats,
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

const rosa_peft_method rosa_peft_miss = {
    .name = "miss",
    .peft_type = "MISS",
    .title = "MiSS",
    .opts_size = sizeof(rosa_miss_options),
    .opts_default = opts_default,
    .opts_copy = opts_copy,
    .opts_free = opts_free,
    .options = options,
    .format_option = format_option,
    .set_rank = set_rank,
    .runtime_from = runtime_from,
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
