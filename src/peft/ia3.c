/* ia3.c: the (IA)^3 method (see ia3.h). */
#include "peft/ia3.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/prof.h"
#include "core/util.h"
#include "model/model.h"
#include "peft/format.h"

/* PEFT's TRANSFORMERS_MODELS_TO_IA3_{TARGET,FEEDFORWARD}_MODULES_MAPPING:
 * llama and mistral scale k, qwen2, qwen3 and gemma3_text q; the
 * feed-forward module is down_proj for all. */
#define DEFAULT_FF "down_proj"

static const char *default_targets(const rosa_config *c) {
    const char *mt = rosa_arch_of(c)->model_type;
    return strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0 ? "k_proj,v_proj,down_proj" : "q_proj,v_proj,down_proj";
}

typedef struct {
    int (*idx)[N_PROJ];      /* [L][p]: its ia3_l in the table, or -1 */
    uint8_t (*ff)[N_PROJ];   /* [L][p]: feed-forward form (scales the input) */
    int has_bias[N_PROJ];    /* the model's projection p has a bias */
    int widest;              /* the largest in or out of an adapted projection */
    const char *dflt;        /* PEFT's default target_modules for the model type */
} ia3_state;

/* ------------------------------------------------------------- options */

static void opts_default(void *p) { memset(p, 0, sizeof(rosa_ia3_options)); }

static int opts_copy(void *dst, const void *src) {
    rosa_ia3_options *d = dst;
    const rosa_ia3_options *s = src;
    memset(d, 0, sizeof *d);
    return rosa_peft_targets_copy(&d->targets, &s->targets) < 0 || rosa_peft_targets_copy(&d->ff, &s->ff) < 0 ? -1 : 0;
}

static void opts_free(void *p) {
    rosa_ia3_options *o = p;
    rosa_peft_targets_free(&o->targets);
    rosa_peft_targets_free(&o->ff);
}

static int parse_targets(void *p, const char *v) {
    return rosa_peft_targets_from_flag(&((rosa_ia3_options *)p)->targets, v, "target-modules");
}

static int parse_ff(void *p, const char *v) {
    return rosa_peft_targets_from_flag(&((rosa_ia3_options *)p)->ff, v, "feedforward-modules");
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const rosa_ia3_options *o = p;
    /* NULL names: PEFT's default for the model's type, which the options alone do not know */
    if (strcmp(flag, "target-modules") == 0) return rosa_peft_targets_format(&o->targets, "default", buf, n), 0;
    if (strcmp(flag, "feedforward-modules") == 0) return rosa_peft_targets_format(&o->ff, DEFAULT_FF, buf, n), 0;
    return -1;
}

static const rosa_peft_option options[] = {
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST",
     "modules adapted: names (default PEFT's: k_proj,v_proj,down_proj; q_proj for k_proj on Qwen and Gemma), "
     "re:PATTERN or all-linear", NULL, parse_targets},
    {"feedforward-modules", PEFT_OPT_CUSTOM, 0, "LIST",
     "of those, the ones whose input is scaled, not their output (default down_proj)", NULL, parse_ff},
    {0},
};

/* --------------------------------------------------- adapter_config.json */

#define DEFAULT_ONLY(feature, ...) PEFT_FIELD_DEFAULT, feature, {__VA_ARGS__, NULL}
const rosa_peft_field rosa_ia3_fields[] = {
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"exclude_modules", DEFAULT_ONLY("exclude_modules (modules taken out of target_modules)", "null", "[]", "\"\"")},
    {"feedforward_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"fan_in_fan_out", DEFAULT_ONLY("fan_in_fan_out (weights stored [in, out], as GPT-2's Conv1D)", "false")},
    {"modules_to_save", DEFAULT_ONLY("modules_to_save (whole modules trained besides the adapter)", "null", "[]")},
    /* Only how PEFT starts the vectors; the weights file holds them. */
    {"init_ia3_weights", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {NULL, 0, NULL, {NULL}},
};
#undef DEFAULT_ONLY

/* PEFT (IA3Config.__post_init__): with both lists given, every feed-forward
 * module must be a target. */
static int check_ff_subset(const rosa_ia3_options *o, const char *path) {
    if (!o->targets.names || o->targets.regex || !o->ff.names || o->ff.regex) return 0;
    for (const char *p = o->ff.names; *p;) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (const char *q = o->targets.names; *q && !found;) {
            size_t k = strcspn(q, ",");
            found = k == n && strncmp(p, q, n) == 0;
            q += k + (q[k] == ',');
        }
        if (!found)
            return rosa_fail("%s: feedforward_modules \"%.*s\" is not in target_modules (PEFT requires a subset)", path,
                             (int)n, p);
        p += n + (p[n] == ',');
    }
    return 0;
}

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    (void)c;
    rosa_ia3_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, rosa_ia3_fields) < 0 ||
        rosa_peft_targets_parse(&o->targets, cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path,
                                "target_modules") < 0 ||
        rosa_peft_targets_parse(&o->ff, cJSON_GetObjectItemCaseSensitive(j, "feedforward_modules"), path,
                                "feedforward_modules") < 0)
        return -1;
    return check_ff_subset(o, path);
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const rosa_ia3_options *o = a->opts;
    cJSON_AddNullToObject(j, "exclude_modules");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    rosa_peft_targets_write(&o->ff, DEFAULT_FF, j, "feedforward_modules");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_ia3_weights", 1);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "IA3");
    rosa_peft_targets_write(&o->targets, ((const ia3_state *)a->state)->dflt, j, "target_modules");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
}

/* ------------------------------------------------------------- tensors */

static void free_state(void *p) {
    ia3_state *st = p;
    if (!st) return;
    free(st->idx);
    free(st->ff);
    free(st);
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const rosa_ia3_options *o = a->opts;
    if (check_ff_subset(o, "IA3 options") < 0) return -1;
    ia3_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->idx = rosa_malloc(sizeof *st->idx * (size_t)a->L, "adapter index");
    st->ff = rosa_calloc((size_t)a->L, sizeof *st->ff, "adapter index");
    if (!st->idx || !st->ff) return -1;
    for (int p = 0; p < N_PROJ; p++) st->has_bias[p] = rosa_proj_has_bias(c, p);
    st->dflt = default_targets(c);
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            st->idx[l][p] = -1;
            char key[96], name[128];
            rosa_proj_tensor_name(key, sizeof key, l, p);
            int on = rosa_peft_targets_match(&o->targets, st->dflt, key, 0);
            int ff = on > 0 ? rosa_peft_targets_match(&o->ff, DEFAULT_FF, key, 1) : 0;
            if (on < 0 || ff < 0) return -1;
            if (!on) continue;
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            st->idx[l][p] = a->n_params;
            st->ff[l][p] = (uint8_t)ff;
            int width = ff ? in : out;
            if (width > st->widest) st->widest = width;
            snprintf(name, sizeof name, "base_model.model.%s.ia3_l", key);
            if (rosa_adapter_add_param(a, name, l, ff ? 1 : out, ff ? in : 1) < 0) return -1;
        }
    if (a->n_params == 0) return rosa_fail("the IA3 target_modules select no module of this model");
    return 0;
}

/* PEFT's init_ia3_weights: ones, the model unchanged. */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    (void)m, (void)seed;
    for (size_t i = 0; i < a->n_floats; i++) a->w[i] = 1.0f;
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const rosa_ia3_options *o = a->opts;
    char t[160], f[160];
    rosa_peft_targets_format(&o->targets, ((const ia3_state *)a->state)->dflt, t, sizeof t);
    rosa_peft_targets_format(&o->ff, DEFAULT_FF, f, sizeof f);
    snprintf(buf, n, "IA3 on %s (feed-forward %s)", t, f);
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const ia3_state *)a->state)->idx[l][p] >= 0; }

/* PEFT scales the bias of an output-scaled module too, which merge (W only)
 * cannot write: such an adapter keeps its hooks. */
static int can_merge(const rosa_adapter *a) {
    const ia3_state *st = a->state;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++)
            if (st->idx[l][p] >= 0 && !st->ff[l][p] && st->has_bias[p]) return 0;
    return 1;
}

/* W scaled per column (feed-forward: its input) or per row (its output). */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const ia3_state *st = a->state;
    const rosa_param *P = &a->params[st->idx[l][p]];
    const float *v = a->w + P->offset;
    int ff = st->ff[l][p];
    if ((ff ? P->cols : P->rows) != (ff ? in : out)) return rosa_fail("IA3 vector of layer %d does not match the model", l);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) W[(size_t)o * in + i] *= ff ? v[i] : v[o];
    return 0;
}

/* ------------------------------------------------------------- the op */

int ia3_input_forward(const rosa_weight *w, float *y, const float *x, const float *l, float *s, int N) {
    int in = w->in;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < in; i++) s[(size_t)n * in + i] = x[(size_t)n * in + i] * (l[i] - 1.0f);
    return rosa_weight_forward(w, y, s, NULL, N, 1);
}

int ia3_input_backward(const rosa_weight *w, float *dx, float *gl, const float *dy, const float *x, const float *l,
                       float *u, int N) {
    int in = w->in;
    if (rosa_weight_backward(w, u, dy, N, 0) < 0) return -1;
    if (gl) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < in; i++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += (double)u[(size_t)n * in + i] * x[(size_t)n * in + i];
            gl[i] += (float)s;
        }
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < in; i++) dx[(size_t)n * in + i] += u[(size_t)n * in + i] * (l[i] - 1.0f);
    return 0;
}

int ia3_output_forward(const rosa_weight *w, const float *b, float *y, float *z, const float *x, const float *l, int N) {
    int out = w->out;
    if (rosa_weight_forward(w, z, x, b, N, 0) < 0) return -1;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) y[(size_t)n * out + o] += z[(size_t)n * out + o] * (l[o] - 1.0f);
    return 0;
}

int ia3_output_backward(const rosa_weight *w, float *dx, float *gl, const float *dy, const float *z, const float *l,
                        float *s, int N) {
    int out = w->out;
    if (gl) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += (double)dy[(size_t)n * out + o] * z[(size_t)n * out + o];
            gl[o] += (float)acc;
        }
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) s[(size_t)n * out + o] = dy[(size_t)n * out + o] * (l[o] - 1.0f);
    return rosa_weight_backward(w, dx, s, N, 1);
}

/* ------------------------------------------------------------- hooks */

/* The hook adds its term to y, which may already hold a residual (the
 * inference block accumulates into it), so the output form recomputes the
 * projection alone, z = x W^T + b: kept per layer for the backward, [N][out]
 * per output-scaled module in projection order. */
static size_t act_floats(const void *self, int l, int N) {
    const rosa_adapter *a = self;
    const ia3_state *st = a->state;
    size_t n = 0;
    for (int p = 0; p < N_PROJ; p++)
        if (st->idx[l][p] >= 0 && !st->ff[l][p]) n += ROSA_ARENA_ROUND((size_t)N * a->params[st->idx[l][p]].rows);
    return n;
}

static float *z_of(const rosa_adapter *a, int l, int p, float *acts, int N) {
    const ia3_state *st = a->state;
    for (int q = 0; q < p; q++)
        if (st->idx[l][q] >= 0 && !st->ff[l][q]) acts += ROSA_ARENA_ROUND((size_t)N * a->params[st->idx[l][q]].rows);
    return acts;
}

static size_t scratch_floats(const void *self, int N) {
    const ia3_state *st = ((const rosa_adapter *)self)->state;
    return (size_t)N * st->widest + 16;
}

static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    const rosa_adapter *a = self;
    const ia3_state *st = a->state;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_weight *w = &c->m->layers[l].proj[p];
    const float *v = a->w + a->params[idx].offset;
    int rc;
    PROF(PROF_ADAPTER, 2.0 * c->N * w->in * w->out,
         rc = st->ff[l][p] ? ia3_input_forward(w, y, x, v, rosa_block_hook_scratch(c, self), c->N)
                           : ia3_output_forward(w, c->m->layers[l].bias[p], y, z_of(a, l, p, acts, c->N), x, v, c->N));
    return rc;
}

static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    rosa_adapter *a = self;
    const ia3_state *st = a->state;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_weight *w = &c->m->layers[l].proj[p];
    const rosa_param *P = &a->params[idx];
    float *gl = rosa_block_layer_active(c, l) ? a->g + P->offset : NULL, *s = rosa_block_hook_scratch(c, self);
    int rc;
    PROF(PROF_ADAPTER, 2.0 * c->N * w->in * w->out,
         rc = st->ff[l][p] ? ia3_input_backward(w, dx, gl, dy, x, a->w + P->offset, s, c->N)
                           : ia3_output_backward(w, dx, gl, dy, z_of(a, l, p, acts, c->N), a->w + P->offset, s, c->N));
    return rc;
}

static const rosa_hook_ops hooks = {
    .act_floats = act_floats,
    .scratch_floats = scratch_floats,
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

const rosa_peft_method rosa_peft_ia3 = {
    .name = "ia3",
    .peft_type = "IA3",
    .title = "IA3",
    .opts_size = sizeof(rosa_ia3_options),
    .opts_default = opts_default,
    .opts_copy = opts_copy,
    .opts_free = opts_free,
    .options = options,
    .format_option = format_option,
    .parse_config = parse_config,
    .write_config = write_config,
    .build = build,
    .free_state = free_state,
    .init = init,
    .describe = describe,
    .adapts = adapts,
    .merge = merge,
    .can_merge = can_merge,
    .hooks = &hooks,
};
