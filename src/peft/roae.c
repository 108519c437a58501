/* roae.c: the RoAE method (see roae.h). */
#include "peft/roae.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "io/json.h"
#include "model/model.h"
#include "model/ops.h"
#include "peft/format.h"
#include "peft/lowrank.h"
#include "core/prof.h"
#include "core/util.h"

/* ------------------------------------------------------------- options */

static void opts_default(void *p) {
    rosa_roae_options *o = p;
    memset(o, 0, sizeof *o);
    o->rank = 32;
    o->alpha = 1.0f;
    o->r_low = 0.25f;
    o->target_q = o->target_k = 1;
}

static int parse_targets(void *p, const char *v) {
    rosa_roae_options *o = p;
    if (strcmp(v, "q,k") == 0 || strcmp(v, "k,q") == 0) o->target_q = o->target_k = 1;
    else if (strcmp(v, "q") == 0) o->target_q = 1, o->target_k = 0;
    else if (strcmp(v, "k") == 0) o->target_q = 0, o->target_k = 1;
    else return rosa_fail("--roae-targets expects q,k or q or k");
    return 0;
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const rosa_roae_options *o = p;
    if (strcmp(flag, "roae-targets") != 0) return -1;
    snprintf(buf, n, "%s", o->target_q && o->target_k ? "q,k" : o->target_q ? "q" : "k");
    return 0;
}

static const rosa_peft_option options[] = {
    {"rank", PEFT_OPT_INT, offsetof(rosa_roae_options, rank), "R", "rank r (default 32)", NULL, NULL},
    {"alpha", PEFT_OPT_FLOAT, offsetof(rosa_roae_options, alpha), "A", "gate scale alpha (default 1)", NULL, NULL},
    {"dropout", PEFT_OPT_FLOAT, offsetof(rosa_roae_options, dropout), "P", "dropout on the branch input (default 0)",
     NULL, NULL},
    {"r-low", PEFT_OPT_FLOAT, offsetof(rosa_roae_options, r_low), "F",
     "share of each head's dimensions adapted, the lowest frequencies (default 0.25)", NULL, NULL},
    {"roae-targets", PEFT_OPT_CUSTOM, 0, "q,k|q|k", "states modulated (default q,k)", NULL, parse_targets},
    {"roae-placement", PEFT_OPT_CHOICE, offsetof(rosa_roae_options, pre_rope), "WHERE",
     "post-rope (default) or pre-rope", "post-rope|pre-rope", NULL},
    {"roae-form", PEFT_OPT_CHOICE, offsetof(rosa_roae_options, add_form), "FORM",
     "gate (default, Z + Z*alpha*SiLU(hAB)) or add (Z + alpha*hAB)", "gate|add", NULL},
    {"train-norms", PEFT_OPT_FLAG, offsetof(rosa_roae_options, train_norms), NULL,
     "also train the RMSNorm weights of active layers", NULL, NULL},
    {0},
};

static void set_rank(void *p, int r) { ((rosa_roae_options *)p)->rank = r; }

static void runtime_from(void *p, const void *from) {
    ((rosa_roae_options *)p)->dropout = ((const rosa_roae_options *)from)->dropout;
}

/* --------------------------------------------------- adapter_config.json */

/* The head layout and the modulated dimensions an adapter records: another
 * layout can give the same tensor shapes (4 heads of 16 and 8 of 8 both have
 * B [16, r] at r_low 0.25), so shapes alone do not tell.  Configs without
 * these keys (older rosa) are read as before. */
static int check_layout(const cJSON *j, const char *path, const rosa_config *c, float r_low) {
    static const char *const keys[] = {"num_heads", "num_kv_heads", "head_dim"};
    const int model[] = {c->num_heads, c->num_kv_heads, c->head_dim};
    for (int k = 0; k < 3; k++) {
        long long v;
        if (rosa_json_int_opt(j, keys[k], path, 1, 1 << 20, model[k], &v) < 0) return -1;
        if (v != model[k])
            return rosa_fail("%s: %s: the adapter was made for %lld, the model has %d (another head layout: %d heads "
                             "of %d, %d KV heads)", path, keys[k], v, model[k], c->num_heads, c->head_dim,
                             c->num_kv_heads);
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "modulated_dims");
    if (!md || cJSON_IsNull(md)) return 0;
    int m = rosa_rope_low_dims(c->head_dim, r_low, NULL);
    if (m < 0) {
        rosa_error_prefix("%s", path);
        return -1;
    }
    int dims[2 * 4096]; /* head_dim <= 4096 (config limits) */
    rosa_rope_low_dims(c->head_dim, r_low, dims);
    int ok = cJSON_IsArray(md) && cJSON_GetArraySize(md) == 2 * m;
    for (int i = 0; ok && i < 2 * m; i++) {
        const cJSON *x = cJSON_GetArrayItem(md, i);
        ok = cJSON_IsNumber(x) && x->valuedouble == dims[i];
    }
    if (!ok)
        return rosa_fail("%s: modulated_dims: not the %d dimensions %d..%d and %d..%d that r_low %g selects in a head "
                         "of %d", path, 2 * m, dims[0], dims[m - 1], dims[m], dims[2 * m - 1], (double)r_low,
                         c->head_dim);
    return 0;
}

/* A ROSA adapter_config.json: every key is known; anything else is refused. */
static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    static const char *const keys[] = {"peft_type", "task_type", "r", "alpha", "r_low", "targets", "placement", "form",
                                       "dropout", "train_norms", "dls", "base_model_name_or_path", "num_heads",
                                       "num_kv_heads", "head_dim", "modulated_dims", NULL};
    static const char *const dls_keys[] = {"enabled", "interval", "warmup", "k_ratio", "p_exploit", "score_ema",
                                           "inactive", "seed", NULL};
    rosa_roae_options *o = a->opts;
    rosa_dls_options *d = &a->dls;
    if (rosa_peft_check_keys_strict(j, path, "a ROSA adapter config", keys) < 0) return -1;
    long long r;
    double alpha, r_low, dropout;
    int err;
    if (rosa_json_int(j, "r", path, 1, ROSA_MAX_RANK, &r) < 0 || rosa_json_num_opt(j, "alpha", path, 1.0, &alpha) < 0 ||
        rosa_json_num_opt(j, "r_low", path, 0.25, &r_low) < 0 ||
        rosa_json_num_opt(j, "dropout", path, 0.0, &dropout) < 0 ||
        rosa_json_bool_opt(j, "train_norms", path, 0, &o->train_norms) < 0)
        return -1;
    if (!(fabs(alpha) <= FLT_MAX)) return rosa_fail("%s: \"alpha\" %g does not fit a float", path, alpha);
    o->rank = (int)r;
    o->alpha = (float)alpha;
    o->r_low = (float)r_low;
    o->dropout = (float)dropout;
    if (check_layout(j, path, c, o->r_low) < 0) return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "targets");
    if (t) {
        if (!cJSON_IsArray(t)) return rosa_fail("%s: \"targets\" must be a list of \"q\" and \"k\"", path);
        o->target_q = o->target_k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, t) {
            if (cJSON_IsString(x) && strcmp(x->valuestring, "q") == 0) o->target_q = 1;
            else if (cJSON_IsString(x) && strcmp(x->valuestring, "k") == 0) o->target_k = 1;
            else return rosa_fail("%s: \"targets\" entries must be \"q\" or \"k\"", path);
        }
    }
    const char *pl = rosa_json_str_opt(j, "placement", path, &err);
    if (err) return -1;
    if (pl && strcmp(pl, "post-rope") != 0 && strcmp(pl, "pre-rope") != 0)
        return rosa_fail("%s: placement \"%s\" (expected post-rope or pre-rope)", path, pl);
    o->pre_rope = pl && strcmp(pl, "pre-rope") == 0;
    const char *form = rosa_json_str_opt(j, "form", path, &err);
    if (err) return -1;
    if (form && strcmp(form, "gate") != 0 && strcmp(form, "add") != 0)
        return rosa_fail("%s: form \"%s\" (expected gate or add)", path, form);
    o->add_form = form && strcmp(form, "add") == 0;
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(j, "dls");
    if (dl && !cJSON_IsNull(dl)) {
        if (!cJSON_IsObject(dl)) return rosa_fail("%s: \"dls\" must be an object", path);
        const cJSON *item;
        cJSON_ArrayForEach(item, dl) {
            int known = 0;
            for (int k = 0; dls_keys[k]; k++) known |= strcmp(item->string, dls_keys[k]) == 0;
            if (!known) return rosa_fail("%s: unknown key \"dls.%s\"", path, item->string);
        }
        long long interval, warmup, seed;
        double kr, pe, ema;
        if (rosa_json_bool_opt(dl, "enabled", path, 0, &d->enabled) < 0 ||
            rosa_json_int_opt(dl, "interval", path, 1, 1 << 30, 50, &interval) < 0 ||
            rosa_json_int_opt(dl, "warmup", path, 1, 1 << 30, interval, &warmup) < 0 ||
            rosa_json_num_opt(dl, "k_ratio", path, 0.5, &kr) < 0 || rosa_json_num_opt(dl, "p_exploit", path, 0.8, &pe) < 0 ||
            rosa_json_num_opt(dl, "score_ema", path, 0.0, &ema) < 0 ||
            rosa_json_int_opt(dl, "seed", path, 0, (long long)1 << 53, 42, &seed) < 0)
            return -1;
        if (!(kr > 0 && kr <= 1) || !(pe >= 0 && pe <= 1) || !(ema >= 0 && ema < 1))
            return rosa_fail("%s: dls k_ratio must be in (0, 1], p_exploit in [0, 1], score_ema in [0, 1)", path);
        d->interval = (int)interval;
        d->warmup = (int)warmup;
        d->k_ratio = (float)kr;
        d->p_exploit = (float)pe;
        d->score_ema = (float)ema;
        d->seed = (uint64_t)seed;
        const char *inactive = rosa_json_str_opt(dl, "inactive", path, &err);
        if (err) return -1;
        if (inactive && strcmp(inactive, "skip") != 0 && strcmp(inactive, "zero-grad") != 0)
            return rosa_fail("%s: dls inactive \"%s\" (expected skip or zero-grad)", path, inactive);
        d->zero_grad = inactive && strcmp(inactive, "zero-grad") == 0;
    }
    return 0;
}

/* The ROSA adapter_config.json: exactly these keys (docs/formats.md). */
static void write_config(const rosa_adapter *a, cJSON *j) {
    const rosa_roae_options *o = a->opts;
    const rosa_dls_options *d = &a->dls;
    cJSON_AddStringToObject(j, "peft_type", "ROSA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(j, "r", o->rank);
    rosa_json_add_float(j, "alpha", o->alpha);
    rosa_json_add_float(j, "r_low", o->r_low);
    cJSON *t = cJSON_AddArrayToObject(j, "targets");
    if (o->target_q) cJSON_AddItemToArray(t, cJSON_CreateString("q"));
    if (o->target_k) cJSON_AddItemToArray(t, cJSON_CreateString("k"));
    cJSON_AddStringToObject(j, "placement", o->pre_rope ? "pre-rope" : "post-rope");
    cJSON_AddStringToObject(j, "form", o->add_form ? "add" : "gate");
    rosa_json_add_float(j, "dropout", o->dropout);
    cJSON_AddBoolToObject(j, "train_norms", o->train_norms);
    const rosa_roae_state *st = a->state;
    cJSON_AddNumberToObject(j, "num_heads", st->num_heads);
    cJSON_AddNumberToObject(j, "num_kv_heads", st->num_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", st->head_dim);
    cJSON *md = cJSON_AddArrayToObject(j, "modulated_dims");
    for (int i = 0; i < st->d_low; i++) cJSON_AddItemToArray(md, cJSON_CreateNumber(st->low_dims[i]));
    cJSON *dl = cJSON_AddObjectToObject(j, "dls");
    cJSON_AddBoolToObject(dl, "enabled", d->enabled);
    cJSON_AddNumberToObject(dl, "interval", d->interval);
    cJSON_AddNumberToObject(dl, "warmup", d->warmup);
    rosa_json_add_float(dl, "k_ratio", d->k_ratio);
    rosa_json_add_float(dl, "p_exploit", d->p_exploit);
    rosa_json_add_float(dl, "score_ema", d->score_ema);
    cJSON_AddStringToObject(dl, "inactive", d->zero_grad ? "zero-grad" : "skip");
    cJSON_AddNumberToObject(dl, "seed", (double)d->seed);
}

/* ------------------------------------------------------------- tensors */

static void free_state(void *p) {
    rosa_roae_state *st = p;
    if (!st) return;
    free(st->low_dims);
    free(st->idx);
    free(st->norm_idx);
    free(st);
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const rosa_roae_options *o = a->opts;
    if (o->rank < 1 || o->rank > ROSA_MAX_RANK) return rosa_fail("RoAE rank %d must be in [1, %d]", o->rank, ROSA_MAX_RANK);
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) return rosa_fail("RoAE dropout %g must be in [0, 1)", o->dropout);
    if (!o->target_q && !o->target_k) return rosa_fail("RoAE needs at least one target (q or k)");
    int hd = c->head_dim, m = rosa_rope_low_dims(hd, o->r_low, NULL);
    if (m < 0) return -1;
    const rosa_arch_desc *ad = rosa_arch_of(c);
    rosa_roae_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->num_heads = c->num_heads;
    st->num_kv_heads = c->num_kv_heads;
    st->head_dim = hd;
    st->m_low = m;
    st->d_low = 2 * m;
    st->low_dims = rosa_malloc(sizeof(int) * (size_t)st->d_low, "RoAE dimensions");
    st->idx = rosa_malloc(sizeof *st->idx * (size_t)a->L, "adapter index");
    st->norm_idx = rosa_malloc(sizeof(int) * (size_t)a->L, "adapter index");
    if (!st->low_dims || !st->idx || !st->norm_idx) return -1;
    rosa_rope_low_dims(hd, o->r_low, st->low_dims);
    for (int l = 0; l < a->L; l++) {
        char name[128];
        for (int w = 0; w < 2; w++) {
            st->idx[l][w] = -1;
            if (!(w ? o->target_k : o->target_q)) continue;
            int heads = w ? c->num_kv_heads : c->num_heads;
            st->idx[l][w] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.roae_%c.lora_A.weight", l, w ? 'k' : 'q');
            if (rosa_adapter_add_param(a, name, l, o->rank, c->hidden_size) < 0) return -1;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.roae_%c.lora_B.weight", l, w ? 'k' : 'q');
            if (rosa_adapter_add_param(a, name, l, heads * st->d_low, o->rank) < 0) return -1;
        }
        st->norm_idx[l] = -1;
        if (!o->train_norms) continue;
        st->norm_idx[l] = a->n_params;
        for (int i = 0; i < ad->n_norms; i++) {
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.weight", l, ad->norm_names[i]);
            if (rosa_adapter_add_param(a, name, l, 1, c->hidden_size) < 0) return -1;
            a->params[a->n_params - 1].ndim = 1;
        }
    }
    return 0;
}

/* A Kaiming-uniform, B = 0 (the model is unchanged at step 0); trained norm
 * weights start at the model's. */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    const rosa_roae_state *st = a->state;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    size_t D = (size_t)m->cfg.hidden_size;
    for (int l = 0; l < a->L; l++) {
        for (int w = 0; w < 2; w++) {
            int idx = st->idx[l][w];
            if (idx < 0) continue;
            const rosa_param *A = &a->params[idx];
            lowrank_init_a(a->w + A->offset, A->rows, A->cols, &rng);
        }
        for (int i = 0; st->norm_idx[l] >= 0 && i < rosa_arch_of(&m->cfg)->n_norms; i++)
            memcpy(a->w + a->params[st->norm_idx[l] + i].offset, m->layers[l].norm[i], sizeof(float) * D);
    }
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const rosa_roae_options *o = a->opts;
    snprintf(buf, n, "RoAE %s %s, r_low %g", o->pre_rope ? "pre-rope" : "post-rope", o->add_form ? "add" : "gate",
             (double)o->r_low);
}

static float analysis_r_low(const rosa_adapter *a) { return ((const rosa_roae_options *)a->opts)->r_low; }

const rosa_roae_state *rosa_roae_state_of(const rosa_adapter *a) {
    return a && a->method == &rosa_peft_roae ? a->state : NULL;
}

/* Trained norms take the gradients the block computed for layer selection. */
static void take_norm_grads(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active) {
    const rosa_roae_state *st = a->state;
    for (int l = 0; l < a->L; l++)
        if (st->norm_idx[l] >= 0 && (!active || active[l]))
            memcpy(a->g + a->params[st->norm_idx[l]].offset, norm_grad + (size_t)l * n_norms * D,
                   sizeof(float) * (size_t)n_norms * D);
}

/* ------------------------------------------------------------- hooks */

static int heads(const rosa_config *c, int w) { return w ? c->num_kv_heads : c->num_heads; }

/* Layer l keeps, for q then k: the branch, z = h A^T B^T and the states at the
 * dimensions D before modulation, [N][H][d_low] each. */
typedef struct {
    lowrank_acts br;
    float *z, *low;
} qk_acts;

static size_t act_floats(const void *self, int l, int N) {
    const rosa_adapter *a = self;
    const rosa_roae_options *o = a->opts;
    const rosa_roae_state *st = a->state;
    size_t n = 0;
    for (int w = 0; w < 2; w++) {
        if (st->idx[l][w] < 0) continue;
        size_t zn = ROSA_ARENA_ROUND((size_t)N * a->params[st->idx[l][w] + 1].rows);
        n += lowrank_act_floats(N, a->params[st->idx[l][w]].cols, o->rank, o->dropout) + 2 * zn;
    }
    return n;
}

static qk_acts carve(const rosa_adapter *a, int l, int w, float *acts, int N) {
    const rosa_roae_options *o = a->opts;
    const rosa_roae_state *st = a->state;
    qk_acts q = {0};
    for (int k = 0; k <= w; k++) {
        if (st->idx[l][k] < 0) continue;
        size_t zn = ROSA_ARENA_ROUND((size_t)N * a->params[st->idx[l][k] + 1].rows);
        q.br = lowrank_carve(&acts, N, a->params[st->idx[l][k]].cols, o->rank, o->dropout);
        q.z = acts;
        q.low = acts + zn;
        acts += 2 * zn;
    }
    return q;
}

/* du [N][r], dz [N][Hq*d_low], and with dropout [N][D]. */
static size_t scratch_floats(const void *self, int N) {
    const rosa_adapter *a = self;
    const rosa_roae_options *o = a->opts;
    size_t widest = 0;
    for (int i = 0; i < a->n_params; i++)
        if (a->params[i].ndim == 2 && (size_t)a->params[i].rows > widest && a->params[i].cols == o->rank)
            widest = (size_t)a->params[i].rows;
    return 3 * 16 + (size_t)N * o->rank + (size_t)N * widest +
           (o->dropout > 0 ? (size_t)N * a->params[0].cols : 0);
}

static const float *norm_weight(const void *self, int l, int which) {
    const rosa_adapter *a = self;
    const rosa_roae_state *st = a->state;
    /* layer L is the final norm, which RoAE does not train */
    return l < a->L && st->norm_idx[l] >= 0 ? a->w + a->params[st->norm_idx[l] + which].offset : NULL;
}

static int qk_forward(void *self, const rosa_block_ctx *c, int l, int stage, float *acts, const float *h, float *q,
                      float *k) {
    const rosa_adapter *a = self;
    const rosa_roae_options *o = a->opts;
    const rosa_roae_state *st = a->state;
    if (stage != (o->pre_rope ? HOOK_PRE_ROPE : HOOK_POST_ROPE)) return 0;
    const rosa_config *cf = &c->m->cfg;
    for (int w = 0; w < 2; w++) {
        int idx = st->idx[l][w];
        if (idx < 0) continue;
        int H = heads(cf, w), N = c->N;
        qk_acts s = carve(a, l, w, acts, N);
        double t0 = rosa_prof_now();
        lowrank_forward(&s.br, s.z, 0, h, a->w + a->params[idx].offset, a->w + a->params[idx + 1].offset, 1.0f, N,
                        cf->hidden_size, o->rank, H * st->d_low, o->dropout, c->drop);
        roae_modulate_forward(w ? k : q, s.low, s.z, st->low_dims, N, H, cf->head_dim, st->d_low, o->alpha, o->add_form);
        rosa_prof_add(PROF_ADAPTER, t0, 2.0 * N * o->rank * (cf->hidden_size + H * st->d_low));
    }
    return 0;
}

static int qk_backward(void *self, const rosa_block_ctx *c, int l, int stage, float *acts, const float *h, float *dq,
                       float *dk, float *dh) {
    rosa_adapter *a = self;
    const rosa_roae_options *o = a->opts;
    const rosa_roae_state *st = a->state;
    if (stage != (o->pre_rope ? HOOK_PRE_ROPE : HOOK_POST_ROPE)) return 0;
    const rosa_config *cf = &c->m->cfg;
    int N = c->N, act = rosa_block_layer_active(c, l);
    float *du = rosa_block_hook_scratch(c, self);
    float *dz = du + ROSA_ARENA_ROUND((size_t)N * o->rank);
    float *dtmp = dz + ROSA_ARENA_ROUND((size_t)N * cf->num_heads * st->d_low);
    for (int w = 0; w < 2; w++) {
        int idx = st->idx[l][w];
        if (idx < 0) continue;
        int H = heads(cf, w);
        qk_acts s = carve(a, l, w, acts, N);
        const rosa_param *A = &a->params[idx], *B = &a->params[idx + 1];
        double t0 = rosa_prof_now();
        roae_modulate_backward(w ? dk : dq, dz, s.low, s.z, st->low_dims, N, H, cf->head_dim, st->d_low, o->alpha,
                               o->add_form);
        lowrank_backward(&s.br, dh, dz, h, a->w + A->offset, a->w + B->offset, act ? a->g + A->offset : NULL,
                         act ? a->g + B->offset : NULL, 1.0f, N, cf->hidden_size, o->rank, H * st->d_low, o->dropout,
                         du, dtmp);
        rosa_prof_add(PROF_ADAPTER, t0, (act ? 4.0 : 2.0) * N * o->rank * (cf->hidden_size + H * st->d_low));
    }
    return 0;
}

static const rosa_hook_ops hooks = {
    .act_floats = act_floats,
    .scratch_floats = scratch_floats,
    .norm_weight = norm_weight,
    .qk_forward = qk_forward,
    .qk_backward = qk_backward,
};

const rosa_peft_method rosa_peft_roae = {
    .name = "roae",
    .peft_type = "ROSA",
    .title = "RoAE",
    .opts_size = sizeof(rosa_roae_options),
    .opts_default = opts_default,
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
    .analysis_r_low = analysis_r_low,
    .take_norm_grads = take_norm_grads,
    .hooks = &hooks,
};

/* ------------------------------------------------------------- the op */

void roae_modulate_forward(float *z, float *low, const float *g, const int *low_dims, int N, int H, int hd, int dl,
                           float alpha, int add_form) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            float *zv = z + ((int64_t)n * H + h) * hd;
            const float *gv = g + ((int64_t)n * H + h) * dl;
            float *lv = low ? low + ((int64_t)n * H + h) * dl : NULL;
            for (int c = 0; c < dl; c++) {
                float x = zv[low_dims[c]];
                if (low) lv[c] = x;
                zv[low_dims[c]] = add_form ? x + alpha * gv[c] : x + x * alpha * (gv[c] / (1.0f + exp_vec(-gv[c])));
            }
        }
}

void roae_modulate_backward(float *dz, float *dg, const float *low, const float *g, const int *low_dims,
                                   int N, int H, int hd, int dl, float alpha, int add_form) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            float *dzv = dz + ((int64_t)n * H + h) * hd;
            const float *gv = g + ((int64_t)n * H + h) * dl, *lv = low + ((int64_t)n * H + h) * dl;
            float *dgv = dg + ((int64_t)n * H + h) * dl;
            for (int c = 0; c < dl; c++) {
                float d = dzv[low_dims[c]];
                if (add_form) {
                    dgv[c] = alpha * d;
                } else {
                    float sig = 1.0f / (1.0f + exp_vec(-gv[c])), silu = gv[c] * sig;
                    dgv[c] = d * lv[c] * alpha * sig * (1.0f + gv[c] * (1.0f - sig));
                    dzv[low_dims[c]] = d * (1.0f + alpha * silu);
                }
            }
        }
}

void rosa_roae_options_default(rosa_roae_options *o) { opts_default(o); }

rosa_adapter *rosa_adapter_new_roae(const rosa_model *m, const rosa_roae_options *o, uint64_t seed) {
    return rosa_adapter_new(&rosa_peft_roae, o, &m->cfg, m, seed);
}
