/* adalora.c: AdaLoRA (Zhang et al. 2023), exactly as Hugging Face PEFT
 * computes, initialises, saves and loads it (tuners/adalora, commit 5d602fd:
 * layer.py SVDLinear and RankAllocator, model.py AdaLoraModel).
 *
 * Each adapted projection gets the SVD-shaped update
 *     y += x (A ⊙ E)^T B^T * scaling / (ranknum + 1e-5)
 * with A [r][in], E [r][1] (the "singular values"), B [out][r], scaling =
 * lora_alpha (r when lora_alpha <= 0) and ranknum = init_r, a frozen value
 * PEFT keeps through a resize and does not save.
 *
 * Training adds orth_reg_weight * mean over every A and B of ||A A^T - I||_F
 * and ||B^T B - I||_F to the loss (AdaLoraModel.forward), and after every
 * optimizer step runs PEFT's RankAllocator (AdaLoraModel.update_and_allocate,
 * which PEFT's users call after optimizer.step()): EMAs of the sensitivity
 * |w ⊙ g| and of its uncertainty, a cubic budget from Σ init_r down to
 * target_r per module between tinit and total_step - tfinal, and every
 * deltaT steps E zeroed on the ranks whose score is at or below the
 * (Σ init_r - budget)-th smallest.  At total_step - tfinal the final mask is
 * fixed (the rank_pattern) and re-applied after every later step.
 *
 * The saved adapter holds the rank_pattern in adapter_config.json and, as
 * PEFT's _get_adapter_state_dict writes it, only the kept ranks: rows of A and
 * E, columns of B.  Loading such a file builds the modules at their kept
 * ranks (PEFT's resize_modules_by_rank_pattern).  Mergeable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/util.h"
#include "io/json.h"
#include "model/gemm.h"
#include "model/model.h"
#include "peft/format.h"
#include "peft/lora.h"
#include "peft/lowrank.h"
#include "peft/peft.h"
#include "peft/targets.h"

typedef struct {
    int init_r, target_r;  /* default 12, 8 */
    float alpha;           /* lora_alpha (default 8) */
    float dropout;         /* lora_dropout (default 0) */
    int tinit, tfinal, delta_t; /* default 0, 0, 1 */
    float beta1, beta2;    /* default 0.85, 0.85 */
    float orth;            /* orth_reg_weight (default 0.5) */
    int total_step;        /* required, > 0 */
    unsigned targets;      /* bit p: projection p adapted (default q, v) */
    int no_allocate;       /* --no-rank-allocation: train without the RankAllocator */
    /* rank_pattern: [L][N_PROJ][init_r] kept (1) or pruned (0), NULL: none. */
    uint8_t *pattern;
    int pattern_layers;
} adalora_options;

typedef struct {
    int (*idx)[N_PROJ];     /* [L][p]: index of lora_A in the table (B, E follow), -1 */
    uint8_t *pattern;       /* [L][N_PROJ][init_r]: the current rank_pattern (NULL: none yet) */
    double *ipt, *unc;      /* [n_floats]: EMA sensitivity and uncertainty (NULL: reset) */
    int resized;            /* some module holds fewer than init_r ranks (loaded after pruning) */
    int max_r, max_in;
} adalora_state;

enum { T_A, T_B, T_E };

static void opts_default(void *p) {
    adalora_options *o = p;
    memset(o, 0, sizeof *o);
    o->init_r = 12, o->target_r = 8;
    o->alpha = 8.0f;
    o->delta_t = 1;
    o->beta1 = o->beta2 = 0.85f;
    o->orth = 0.5f;
    o->targets = (1u << PROJ_Q) | (1u << PROJ_V);
}

static int opts_copy(void *dst, const void *src) {
    adalora_options *d = dst;
    const adalora_options *s = src;
    *d = *s;
    if (!s->pattern) return 0;
    size_t n = (size_t)s->pattern_layers * N_PROJ * (size_t)s->init_r;
    if (!(d->pattern = rosa_malloc(n, "AdaLoRA rank_pattern"))) return -1;
    memcpy(d->pattern, s->pattern, n);
    return 0;
}

static void opts_free(void *p) {
    adalora_options *o = p;
    free(o->pattern);
    o->pattern = NULL;
}

static int parse_targets(void *p, const char *v) {
    if (rosa_parse_target_modules(v, &((adalora_options *)p)->targets) < 0) return rosa_error_prefix("--target-modules"), -1;
    return 0;
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const adalora_options *o = p;
    buf[0] = 0;
    if (strcmp(flag, "target-modules") == 0) return rosa_peft_target_mask_format(o->targets, buf, n), 0;
    return -1;
}

static const rosa_peft_option options[] = {
    {"init-r", PEFT_OPT_INT, offsetof(adalora_options, init_r), "R", "init_r: the ranks each module starts with (default 12)",
     NULL, NULL},
    {"target-r", PEFT_OPT_INT, offsetof(adalora_options, target_r), "R",
     "target_r: the average rank per module the budget ends at (default 8)", NULL, NULL},
    {"alpha", PEFT_OPT_FLOAT, offsetof(adalora_options, alpha), "A", "lora_alpha: the scaling (default 8)", NULL, NULL},
    {"dropout", PEFT_OPT_FLOAT, offsetof(adalora_options, dropout), "P", "lora_dropout (default 0)", NULL, NULL},
    {"tinit", PEFT_OPT_INT, offsetof(adalora_options, tinit), "N", "steps of full rank before pruning (default 0)", NULL,
     NULL},
    {"tfinal", PEFT_OPT_INT, offsetof(adalora_options, tfinal), "N", "steps at the final ranks at the end (default 0)",
     NULL, NULL},
    {"deltaT", PEFT_OPT_INT, offsetof(adalora_options, delta_t), "N", "steps between two maskings (default 1)", NULL, NULL},
    {"beta1", PEFT_OPT_FLOAT, offsetof(adalora_options, beta1), "B", "EMA factor of the sensitivity (default 0.85)", NULL,
     NULL},
    {"beta2", PEFT_OPT_FLOAT, offsetof(adalora_options, beta2), "B", "EMA factor of the uncertainty (default 0.85)", NULL,
     NULL},
    {"orth-reg-weight", PEFT_OPT_FLOAT, offsetof(adalora_options, orth), "W",
     "orth_reg_weight: weight of the orthogonality term in the loss (default 0.5)", NULL, NULL},
    {"total-step", PEFT_OPT_INT, offsetof(adalora_options, total_step), "N",
     "total_step: the steps of the budget schedule (required, > 0)", NULL, NULL},
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST", "modules adapted, e.g. q_proj,v_proj (default) or all", NULL,
     parse_targets},
    {"no-rank-allocation", PEFT_OPT_FLAG, offsetof(adalora_options, no_allocate), NULL,
     "train without the rank allocator (as HF Trainer, which never calls update_and_allocate)", NULL, NULL},
    {0},
};

/* --param-budget sizes init_r; the budget ends at target_r = init_r * 2/3 (PEFT's 8 of 12). */
static void set_rank(void *p, int r) {
    adalora_options *o = p;
    o->init_r = r;
    o->target_r = r * 2 / 3 > 0 ? r * 2 / 3 : 1;
}

static void runtime_from(void *p, const void *from) {
    adalora_options *o = p;
    const adalora_options *f = from;
    o->dropout = f->dropout;
    o->no_allocate = f->no_allocate;
}

#define DEFAULT_ONLY(feature, ...) PEFT_FIELD_DEFAULT, feature, {__VA_ARGS__, NULL}
/* Every field of PEFT's AdaLoraConfig (a LoraConfig); the base fields are in format.c. */
static const rosa_peft_field fields[] = {
    {"target_r", PEFT_FIELD_READ, NULL, {NULL}},
    {"init_r", PEFT_FIELD_READ, NULL, {NULL}},
    {"tinit", PEFT_FIELD_READ, NULL, {NULL}},
    {"tfinal", PEFT_FIELD_READ, NULL, {NULL}},
    {"deltaT", PEFT_FIELD_READ, NULL, {NULL}},
    {"beta1", PEFT_FIELD_READ, NULL, {NULL}},
    {"beta2", PEFT_FIELD_READ, NULL, {NULL}},
    {"orth_reg_weight", PEFT_FIELD_READ, NULL, {NULL}},
    {"total_step", PEFT_FIELD_READ, NULL, {NULL}},
    {"rank_pattern", PEFT_FIELD_READ, NULL, {NULL}},
    {"r", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* AdaLoRA uses init_r */
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"lora_alpha", PEFT_FIELD_READ, NULL, {NULL}},
    {"lora_dropout", PEFT_FIELD_READ, NULL, {NULL}},
    {"exclude_modules", DEFAULT_ONLY("exclude_modules", "null", "[]", "\"\"")},
    {"fan_in_fan_out", DEFAULT_ONLY("fan_in_fan_out (weights stored [in, out])", "false")},
    {"bias", DEFAULT_ONLY("trained biases", "\"none\"", "null")},
    {"use_rslora", DEFAULT_ONLY("use_rslora", "false")},
    {"modules_to_save", DEFAULT_ONLY("modules_to_save", "null", "[]")},
    {"init_lora_weights", DEFAULT_ONLY("an initialization other than PEFT's", "true", "false")},
    {"layers_to_transform", DEFAULT_ONLY("layers_to_transform", "null", "[]")},
    {"layers_pattern", DEFAULT_ONLY("a layers_pattern other than \"layers\"", "null", "[]", "\"\"", "\"layers\"")},
    {"alpha_pattern", DEFAULT_ONLY("alpha_pattern", "null", "{}")},
    {"megatron_config", DEFAULT_ONLY("Megatron's parallel layers", "null")},
    {"megatron_core", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"trainable_token_indices", DEFAULT_ONLY("trainable_token_indices", "null")},
    {"loftq_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"eva_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"corda_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"use_dora", DEFAULT_ONLY("DoRA (PEFT's AdaLoRA refuses it)", "false")},
    {"layer_replication", DEFAULT_ONLY("layer_replication", "null", "[]")},
    {"runtime_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"lora_bias", DEFAULT_ONLY("lora_bias", "false")},
    {"target_parameters", DEFAULT_ONLY("target_parameters", "null", "[]")},
    {NULL, 0, NULL, {NULL}},
};

/* "model.layers.3.self_attn.q_proj.lora_E" (PEFT's rank_pattern key; an
 * adapter name after it, as PEFT also accepts, is allowed): its layer and
 * projection, or -1. */
static int pattern_key(const char *key, int L, int *layer, int *proj) {
    for (int l = 0; l < L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            char base[96];
            rosa_proj_tensor_name(base, sizeof base, l, p);
            size_t n = strlen(base);
            if (strncmp(key, base, n) == 0 && strncmp(key + n, ".lora_E", 7) == 0 &&
                (key[n + 7] == 0 || (key[n + 7] == '.' && !strchr(key + n + 8, '.'))))
                return *layer = l, *proj = p, 0;
        }
    return -1;
}

static int parse_pattern(adalora_options *o, const cJSON *rp, const char *path, const rosa_config *c) {
    if (!rp || cJSON_IsNull(rp) || (cJSON_IsObject(rp) && !rp->child)) return 0;
    if (!cJSON_IsObject(rp)) return rosa_fail("%s: \"rank_pattern\" must be null or an object", path);
    size_t n = (size_t)c->num_layers * N_PROJ * (size_t)o->init_r;
    if (!(o->pattern = rosa_malloc(n, "AdaLoRA rank_pattern"))) return -1;
    memset(o->pattern, 1, n);
    o->pattern_layers = c->num_layers;
    for (const cJSON *e = rp->child; e; e = e->next) {
        int l, p;
        if (pattern_key(e->string, c->num_layers, &l, &p) < 0)
            return rosa_fail("%s: \"rank_pattern\" key \"%s\" is not a module's lora_E (expected e.g. "
                             "\"model.layers.0.self_attn.q_proj.lora_E\")", path, e->string);
        if (!((o->targets >> p) & 1u))
            return rosa_fail("%s: \"rank_pattern\" key \"%s\" names a module target_modules does not select", path,
                             e->string);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != o->init_r)
            return rosa_fail("%s: \"rank_pattern\" \"%s\" must be a list of init_r = %d booleans", path, e->string,
                             o->init_r);
        int k = 0;
        for (const cJSON *b = e->child; b; b = b->next, k++) {
            if (!cJSON_IsBool(b))
                return rosa_fail("%s: \"rank_pattern\" \"%s\" must be a list of booleans (item %d is not)", path,
                                 e->string, k);
            o->pattern[((size_t)l * N_PROJ + p) * o->init_r + k] = (uint8_t)cJSON_IsTrue(b);
        }
    }
    return 0;
}

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    adalora_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, fields) < 0) return -1;
    long long init_r, target_r, tinit, tfinal, dt, ts;
    double alpha, dropout, b1, b2, orth;
    if (rosa_json_int_opt(j, "init_r", path, 1, ROSA_MAX_RANK, 12, &init_r) < 0 ||
        rosa_json_int_opt(j, "target_r", path, 1, ROSA_MAX_RANK, 8, &target_r) < 0 ||
        rosa_json_int_opt(j, "tinit", path, 0, 1LL << 40, 0, &tinit) < 0 ||
        rosa_json_int_opt(j, "tfinal", path, 0, 1LL << 40, 0, &tfinal) < 0 ||
        rosa_json_int_opt(j, "deltaT", path, 1, 1LL << 40, 1, &dt) < 0 ||
        rosa_json_num_opt(j, "lora_alpha", path, 8.0, &alpha) < 0 ||
        rosa_json_num_opt(j, "lora_dropout", path, 0.0, &dropout) < 0 || rosa_json_num_opt(j, "beta1", path, 0.85, &b1) < 0 ||
        rosa_json_num_opt(j, "beta2", path, 0.85, &b2) < 0 || rosa_json_num_opt(j, "orth_reg_weight", path, 0.5, &orth) < 0)
        return -1;
    const cJSON *tsj = cJSON_GetObjectItemCaseSensitive(j, "total_step");
    if (!tsj || cJSON_IsNull(tsj))
        return rosa_fail("%s: \"total_step\" is null: AdaLoRA needs the steps of its budget schedule (> 0)", path);
    if (rosa_json_int(j, "total_step", path, 1, 1LL << 40, &ts) < 0) return -1;
    if (tinit > INT32_MAX || tfinal > INT32_MAX || dt > INT32_MAX || ts > INT32_MAX)
        return rosa_fail("%s: tinit, tfinal, deltaT and total_step must be below 2^31", path);
    o->init_r = (int)init_r, o->target_r = (int)target_r, o->tinit = (int)tinit, o->tfinal = (int)tfinal;
    o->delta_t = (int)dt, o->total_step = (int)ts;
    o->alpha = (float)alpha, o->dropout = (float)dropout, o->beta1 = (float)b1, o->beta2 = (float)b2, o->orth = (float)orth;
    if (rosa_peft_target_mask_parse(cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path, &o->targets) < 0)
        return -1;
    return parse_pattern(o, cJSON_GetObjectItemCaseSensitive(j, "rank_pattern"), path, c);
}

static void write_pattern(const rosa_adapter *a, const uint8_t *pat, cJSON *j) {
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    cJSON *rp = cJSON_AddObjectToObject(j, "rank_pattern");
    for (int l = 0; rp && l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            char key[128];
            rosa_proj_tensor_name(key, sizeof key - 8, l, p);
            strcat(key, ".lora_E");
            cJSON *v = cJSON_AddArrayToObject(rp, key);
            for (int k = 0; v && k < o->init_r; k++)
                cJSON_AddItemToArray(v, cJSON_CreateBool(pat[((size_t)l * N_PROJ + p) * o->init_r + k]));
        }
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    cJSON_AddStringToObject(j, "peft_type", "ADALORA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(j, "r", 8);
    rosa_peft_target_mask_write(o->targets, j);
    cJSON_AddNullToObject(j, "exclude_modules");
    rosa_json_add_float(j, "lora_alpha", o->alpha);
    rosa_json_add_float(j, "lora_dropout", o->dropout);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "use_rslora", 0);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddBoolToObject(j, "use_dora", 0);
    cJSON_AddNumberToObject(j, "target_r", o->target_r);
    cJSON_AddNumberToObject(j, "init_r", o->init_r);
    cJSON_AddNumberToObject(j, "tinit", o->tinit);
    cJSON_AddNumberToObject(j, "tfinal", o->tfinal);
    cJSON_AddNumberToObject(j, "deltaT", o->delta_t);
    rosa_json_add_float(j, "beta1", o->beta1);
    rosa_json_add_float(j, "beta2", o->beta2);
    rosa_json_add_float(j, "orth_reg_weight", o->orth);
    cJSON_AddNumberToObject(j, "total_step", o->total_step);
    if (st->pattern) write_pattern(a, st->pattern, j);
    else cJSON_AddNullToObject(j, "rank_pattern");
    cJSON_AddNullToObject(j, "alpha_pattern");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
}

static void free_state(void *p) {
    adalora_state *st = p;
    if (!st) return;
    free(st->idx);
    free(st->pattern);
    free(st->ipt);
    free(st->unc);
    free(st);
}

static int kept_of(const uint8_t *m, int r) {
    int k = 0;
    for (int i = 0; i < r; i++) k += m[i] != 0;
    return k;
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const adalora_options *o = a->opts;
    if (o->init_r < 1 || o->init_r > ROSA_MAX_RANK)
        return rosa_fail("AdaLoRA init_r %d must be in [1, %d]", o->init_r, ROSA_MAX_RANK);
    if (o->target_r < 1) return rosa_fail("AdaLoRA target_r %d must be >= 1", o->target_r);
    if (o->total_step < 1)
        return rosa_fail("AdaLoRA needs --total-step > 0 (PEFT's total_step: the steps of the budget schedule)");
    if (o->tinit < 0 || o->tfinal < 0 || o->tinit >= o->total_step - o->tfinal)
        return rosa_fail("AdaLoRA: tinit %d, tfinal %d and total_step %d leave no budgeting phase (PEFT needs tinit < "
                         "total_step - tfinal)", o->tinit, o->tfinal, o->total_step);
    if (o->delta_t < 1) return rosa_fail("AdaLoRA deltaT %d must be >= 1", o->delta_t);
    if (!(o->beta1 > 0 && o->beta1 < 1 && o->beta2 > 0 && o->beta2 < 1))
        return rosa_fail("AdaLoRA beta1 %g and beta2 %g must be in (0, 1)", (double)o->beta1, (double)o->beta2);
    if (!(o->orth >= 0)) return rosa_fail("AdaLoRA orth_reg_weight %g must be >= 0", (double)o->orth);
    if (!(o->dropout >= 0 && o->dropout < 1)) return rosa_fail("AdaLoRA lora_dropout %g must be in [0, 1)", (double)o->dropout);
    adalora_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    if (!(st->idx = rosa_calloc((size_t)a->L, sizeof *st->idx, "adapter index"))) return -1;
    if (o->pattern) {
        size_t n = (size_t)a->L * N_PROJ * (size_t)o->init_r;
        if (o->pattern_layers != a->L || !(st->pattern = rosa_malloc(n, "AdaLoRA rank_pattern")))
            return o->pattern_layers != a->L ? rosa_fail("AdaLoRA rank_pattern is for another model") : -1;
        memcpy(st->pattern, o->pattern, n);
    }
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            st->idx[l][p] = -1;
            if (!((o->targets >> p) & 1u)) continue;
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            /* A module's kept ranks under a loaded rank_pattern (PEFT's resize on load). */
            int r = st->pattern ? kept_of(st->pattern + ((size_t)l * N_PROJ + p) * o->init_r, o->init_r) : o->init_r;
            st->resized |= r < o->init_r;
            char base[96], name[160];
            rosa_proj_tensor_name(base, sizeof base, l, p);
            st->idx[l][p] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.%s.lora_A", base);
            if (rosa_adapter_add_param(a, name, l, r, in) < 0) return -1;
            snprintf(name, sizeof name, "base_model.model.%s.lora_B", base);
            if (rosa_adapter_add_param(a, name, l, out, r) < 0) return -1;
            snprintf(name, sizeof name, "base_model.model.%s.lora_E", base);
            if (rosa_adapter_add_param(a, name, l, r, 1) < 0) return -1;
            if (r > st->max_r) st->max_r = r;
            if (in > st->max_in) st->max_in = in;
        }
    if (a->n_params == 0) return rosa_fail("the AdaLoRA target modules select no module of this model");
    return 0;
}

/* PEFT's: E = 0, A and B ~ N(0, 0.02^2) (Box-Muller here; torch's draws
 * differ, the saved values are what count). */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    (void)m;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *t = &a->params[i];
        if ((i % 3) == T_E) continue;
        for (size_t k = 0; k < (size_t)t->rows * t->cols; k++) {
            double u1 = 1.0 - (double)rosa_rng_uniform(&rng), u2 = rosa_rng_uniform(&rng);
            a->w[t->offset + k] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        }
    }
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const adalora_options *o = a->opts;
    char t[128];
    rosa_peft_target_mask_format(o->targets, t, sizeof t);
    snprintf(buf, n, "AdaLoRA init_r %d target_r %d on %s", o->init_r, o->target_r, t);
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const adalora_state *)a->state)->idx[l][p] >= 0; }

/* scaling / (ranknum + 1e-5): ranknum is init_r, also after a resize; the
 * scaling of lora_alpha <= 0 is the module's rank (PEFT's update_layer). */
static float module_scale(const rosa_adapter *a, int r) {
    const adalora_options *o = a->opts;
    float s = o->alpha > 0 ? o->alpha : (float)r;
    return s / ((float)o->init_r + 1e-5f);
}

/* AE[r][in] = A ⊙ E (E broadcast along each row). */
static void scaled_a(float *AE, const float *A, const float *E, int r, int in) {
    for (int k = 0; k < r; k++)
        for (int j = 0; j < in; j++) AE[(size_t)k * in + j] = A[(size_t)k * in + j] * E[k];
}

/* W[out][in] += s B (A ⊙ E). */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const adalora_state *st = a->state;
    const rosa_param *A = &a->params[st->idx[l][p]], *B = A + 1, *E = A + 2;
    if (A->cols != in || B->rows != out) return rosa_fail("AdaLoRA tensors of layer %d do not match the model", l);
    int r = A->rows;
    if (r == 0) return 0; /* pruned to no rank */
    float *AE = rosa_malloc(sizeof(float) * (size_t)r * in, "AdaLoRA merge");
    if (!AE) return -1;
    scaled_a(AE, a->w + A->offset, a->w + E->offset, r, in);
    rosa_gemm('N', 'N', out, in, r, module_scale(a, r), a->w + B->offset, r, AE, in, 1.0f, W, in);
    free(AE);
    return 0;
}

/* ------------------------------------------------------------- hooks */

static size_t act_floats(const void *self, int l, int N) {
    const rosa_adapter *a = self;
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    size_t n = 0;
    for (int p = 0; p < N_PROJ; p++)
        if (st->idx[l][p] >= 0) {
            const rosa_param *A = &a->params[st->idx[l][p]];
            n += lowrank_act_floats(N, A->cols, A->rows, o->dropout);
        }
    return n;
}

static lowrank_acts module_acts(const rosa_adapter *a, int l, int p, float *acts, int N) {
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    lowrank_acts ba = {0};
    for (int q = 0; q <= p; q++) {
        if (st->idx[l][q] < 0) continue;
        const rosa_param *A = &a->params[st->idx[l][q]];
        ba = lowrank_carve(&acts, N, A->cols, A->rows, o->dropout);
    }
    return ba;
}

/* Scratch: AE and dAE [max r][max in], du [N][max r], dtmp [N][max in] (dropout). */
static size_t scratch_floats(const void *self, int N) {
    const rosa_adapter *a = self;
    const adalora_state *st = a->state;
    const adalora_options *o = a->opts;
    size_t ra = ROSA_ARENA_ROUND((size_t)st->max_r * st->max_in);
    return 2 * ra + ROSA_ARENA_ROUND((size_t)N * st->max_r) + (o->dropout > 0 ? (size_t)N * st->max_in : 0) + 16;
}

static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    const rosa_adapter *a = self;
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    if (st->idx[l][p] < 0) return 0;
    const rosa_param *A = &a->params[st->idx[l][p]], *B = A + 1, *E = A + 2;
    int N = c->N, r = A->rows, in = A->cols, out = B->rows;
    if (r == 0) return 0; /* pruned to no rank */
    float *AE = rosa_block_hook_scratch(c, self);
    scaled_a(AE, a->w + A->offset, a->w + E->offset, r, in);
    lowrank_acts ba = module_acts(a, l, p, acts, N);
    lowrank_forward(&ba, y, 1, x, AE, a->w + B->offset, module_scale(a, r), N, in, r, out, o->dropout, c->drop);
    return 0;
}

/* Through AE = A ⊙ E: dA = dAE ⊙ E, dE[k] = Σ_j dAE[k][j] A[k][j]. */
static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    const rosa_adapter *a = self;
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    if (st->idx[l][p] < 0) return 0;
    const rosa_param *A = &a->params[st->idx[l][p]], *B = A + 1, *E = A + 2;
    int N = c->N, r = A->rows, in = A->cols, out = B->rows;
    if (r == 0) return 0;
    size_t ra = ROSA_ARENA_ROUND((size_t)st->max_r * st->max_in);
    float *AE = rosa_block_hook_scratch(c, self), *dAE = AE + ra, *du = dAE + ra;
    float *dtmp = du + ROSA_ARENA_ROUND((size_t)N * st->max_r);
    const float *wA = a->w + A->offset, *wE = a->w + E->offset;
    scaled_a(AE, wA, wE, r, in);
    int act = rosa_block_layer_active(c, l);
    if (act) memset(dAE, 0, sizeof(float) * (size_t)r * in);
    lowrank_acts ba = module_acts(a, l, p, acts, N);
    lowrank_backward(&ba, dx, dy, x, AE, a->w + B->offset, act ? dAE : NULL, act ? a->g + B->offset : NULL,
                     module_scale(a, r), N, in, r, out, o->dropout, du, dtmp);
    if (!act) return 0;
    float *gA = a->g + A->offset, *gE = a->g + E->offset;
    for (int k = 0; k < r; k++) {
        double s = 0;
        for (int j = 0; j < in; j++) {
            size_t i = (size_t)k * in + j;
            gA[i] += dAE[i] * wE[k];
            s += (double)dAE[i] * wA[i];
        }
        gE[k] += (float)s;
    }
    return 0;
}

static const rosa_hook_ops hooks = {
    .act_floats = act_floats,
    .scratch_floats = scratch_floats,
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

/* ------------------------------------------------------------- training */

/* ||C - I||_F of C = X X^T (X = A [r][in]) or C = X^T X (X = B [out][r], t
 * set), and with g non-NULL g += w d/dX: 2 (C - I) X / f, or 2 X (C - I) / f. */
static double orth_term(const float *X, int rows, int cols, int t, double w, float *g, double *C) {
    int r = t ? cols : rows, n = t ? rows : cols;
    for (int i = 0; i < r; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int k = 0; k < n; k++)
                s += t ? (double)X[(size_t)k * cols + i] * X[(size_t)k * cols + j]
                       : (double)X[(size_t)i * cols + k] * X[(size_t)j * cols + k];
            C[(size_t)i * r + j] = C[(size_t)j * r + i] = s - (i == j);
        }
    double f = 0;
    for (size_t i = 0; i < (size_t)r * r; i++) f += C[i] * C[i];
    f = sqrt(f);
    if (!g || f == 0) return f; /* torch's norm backward at 0 is 0 */
    double s = 2.0 * w / f;
    for (int a = 0; a < rows; a++)
        for (int b = 0; b < cols; b++) {
            double d = 0;
            if (t) /* X[a][b]: 2 Σ_j X[a][j] M[j][b] */
                for (int j = 0; j < r; j++) d += (double)X[(size_t)a * cols + j] * C[(size_t)j * r + b];
            else /* X[a][b]: 2 Σ_j M[a][j] X[j][b] */
                for (int j = 0; j < r; j++) d += C[(size_t)a * r + j] * X[(size_t)j * cols + b];
            g[(size_t)a * cols + b] += (float)(s * d);
        }
    return f;
}

/* orth_reg_weight * mean over every A and B of its term (AdaLoraModel.forward),
 * times weight; its gradient into the tensors of active layers. */
static double extra_loss(rosa_adapter *a, float weight, const uint8_t *active) {
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    if (o->orth == 0 || weight == 0) return 0.0;
    int n_terms = 0;
    for (int i = 0; i < a->n_params; i++) n_terms += (i % 3) != T_E;
    double *C = rosa_malloc(sizeof(double) * ((size_t)st->max_r * st->max_r + 1), "AdaLoRA orthogonality");
    if (!C) return NAN;
    double w = (double)o->orth * weight / n_terms, sum = 0;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *t = &a->params[i];
        if ((i % 3) == T_E) continue;
        float *g = !active || active[t->layer] ? a->g + t->offset : NULL;
        sum += orth_term(a->w + t->offset, t->rows, t->cols, (i % 3) == T_B, w, g, C);
    }
    free(C);
    return w * sum;
}

/* PEFT's budget_schedule(step): the budget and whether to mask now. */
static int budget_at(const adalora_options *o, int init_bgt, int target_bgt, int64_t t, int *mask) {
    *mask = 0;
    if (t <= o->tinit) return init_bgt;
    if (t > o->total_step - o->tfinal) return *mask = 1, target_bgt;
    double mul = 1.0 - (double)(t - o->tinit) / (double)(o->total_step - o->tfinal - o->tinit);
    *mask = t % o->delta_t == 0;
    return (int)((double)(init_bgt - target_bgt) * mul * mul * mul + (double)target_bgt);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* PEFT's mask_to_budget: each rank's score s_E + mean_in(s_A) + mean_out(s_B)
 * with s = ipt ⊙ unc; E zeroed and the pattern cleared where the score is at
 * or below the (init_bgt - budget)-th smallest (torch.kthvalue). */
static int mask_to_budget(rosa_adapter *a, int init_bgt, int budget) {
    const adalora_options *o = a->opts;
    adalora_state *st = a->state;
    int k = init_bgt - budget, R = o->init_r;
    if (k < 1)
        return rosa_fail("AdaLoRA: the budget %d leaves nothing to prune (PEFT's kthvalue fails): target_r %d must be "
                         "below init_r %d", budget, o->target_r, R);
    if (!st->pattern && !(st->pattern = rosa_malloc((size_t)a->L * N_PROJ * R, "AdaLoRA rank_pattern"))) return -1;
    double *score = rosa_malloc(sizeof(double) * (size_t)init_bgt * 2, "AdaLoRA scores");
    if (!score) return -1;
    double *sorted = score + init_bgt;
    int n = 0;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            int i0 = st->idx[l][p];
            const rosa_param *A = &a->params[i0], *B = A + 1, *E = A + 2;
            for (int q = 0; q < R; q++) {
                double sa = 0, sb = 0;
                for (int j = 0; j < A->cols; j++) {
                    size_t x = A->offset + (size_t)q * A->cols + j;
                    sa += st->ipt[x] * st->unc[x];
                }
                for (int j = 0; j < B->rows; j++) {
                    size_t x = B->offset + (size_t)j * R + q;
                    sb += st->ipt[x] * st->unc[x];
                }
                size_t x = E->offset + q;
                score[n++] = st->ipt[x] * st->unc[x] + sa / A->cols + sb / B->rows;
            }
        }
    memcpy(sorted, score, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    double thr = sorted[k - 1];
    n = 0;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            const rosa_param *E = &a->params[st->idx[l][p] + 2];
            uint8_t *m = st->pattern + ((size_t)l * N_PROJ + p) * R;
            for (int q = 0; q < R; q++, n++) {
                m[q] = !(score[n] <= thr);
                if (!m[q]) a->w[E->offset + q] = 0.0f;
            }
        }
    free(score);
    return 0;
}

static void ema_update(rosa_adapter *a, const adalora_options *o, adalora_state *st) {
    double b1 = o->beta1, b2 = o->beta2;
    for (size_t i = 0; i < a->n_floats; i++) {
        double ipt = fabs((double)a->w[i] * a->g[i]);
        st->ipt[i] = b1 * st->ipt[i] + (1 - b1) * ipt;
        st->unc[i] = b2 * st->unc[i] + (1 - b2) * fabs(ipt - st->ipt[i]);
    }
}

/* AdaLoraModel.update_and_allocate(t), t the 0-based step, after the
 * optimizer's update, with the step's (clipped) gradients in a->g. */
static int after_step(rosa_adapter *a, int64_t t) {
    const adalora_options *o = a->opts;
    adalora_state *st = a->state;
    if (o->no_allocate) return 0;
    if (st->resized)
        return rosa_fail("AdaLoRA: this adapter was pruned already (its rank_pattern keeps fewer than init_r ranks): "
                         "train it on with --no-rank-allocation");
    int R = o->init_r, n_mod = a->n_params / 3, init_bgt = R * n_mod, target_bgt = o->target_r * n_mod;
    int64_t edge = o->total_step - o->tfinal;
    if (t > edge && !st->pattern) return 0; /* nothing masked yet (a run resumed past the edge) */
    if (t <= edge && !st->ipt) {
        st->ipt = rosa_calloc(a->n_floats, sizeof(double), "AdaLoRA scores");
        st->unc = rosa_calloc(a->n_floats, sizeof(double), "AdaLoRA scores");
        if (!st->ipt || !st->unc) return -1;
    }
    if (t < edge) {
        ema_update(a, o, st);
        int mask, b = budget_at(o, init_bgt, target_bgt, t, &mask);
        return mask ? mask_to_budget(a, init_bgt, b) : 0;
    }
    if (t == edge) {
        int mask, b = budget_at(o, init_bgt, target_bgt, t, &mask);
        if (mask_to_budget(a, init_bgt, b) < 0) return -1;
        free(st->ipt), free(st->unc); /* PEFT's reset_ipt */
        st->ipt = st->unc = NULL;
        return 0;
    }
    for (int l = 0; l < a->L; l++) /* mask_using_rank_pattern */
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            const uint8_t *m = st->pattern + ((size_t)l * N_PROJ + p) * R;
            float *E = a->w + a->params[st->idx[l][p] + 2].offset;
            for (int q = 0; q < R; q++)
                if (!m[q]) E[q] = 0.0f;
        }
    return 0;
}

static const char *no_resume(const rosa_adapter *a) {
    const adalora_options *o = a->opts;
    return o->no_allocate ? NULL
                          : "AdaLoRA's rank allocator (its EMA scores and masks) is not kept in checkpoints; train "
                            "again, or resume with --no-rank-allocation";
}

/* What the file holds of tensor i: with a rank_pattern, the kept ranks of a
 * module still at init_r (PEFT's resize_state_dict_by_rank_pattern). */
static int saved_tensor(const rosa_adapter *a, int i, float **out, int64_t *shape) {
    const adalora_options *o = a->opts;
    const adalora_state *st = a->state;
    const rosa_param *t = &a->params[i], *A = &a->params[i - i % 3];
    if (!st->pattern || A->rows != o->init_r) return 0;
    const uint8_t *m = st->pattern + ((size_t)A->layer * N_PROJ + 0) * o->init_r;
    for (int p = 0; p < N_PROJ; p++)
        if (st->idx[A->layer][p] == i - i % 3) m = st->pattern + ((size_t)A->layer * N_PROJ + p) * o->init_r;
    int kept = kept_of(m, o->init_r);
    if (kept == o->init_r) return 0;
    /* A module pruned to no rank is saved as PEFT saves it, [0, in], [out, 0] and [0, 1]. */
    float *v = rosa_malloc(sizeof(float) * ((size_t)kept * (i % 3 == T_B ? t->rows : t->cols) + 1), "AdaLoRA save");
    if (!v) return -1;
    const float *w = a->w + t->offset;
    size_t n = 0;
    if (i % 3 == T_B) {
        for (int row = 0; row < t->rows; row++)
            for (int q = 0; q < t->cols; q++)
                if (m[q]) v[n++] = w[(size_t)row * t->cols + q];
        shape[0] = t->rows, shape[1] = kept;
    } else {
        for (int q = 0; q < t->rows; q++)
            if (m[q])
                for (int j = 0; j < t->cols; j++) v[n++] = w[(size_t)q * t->cols + j];
        shape[0] = kept, shape[1] = t->cols;
    }
    *out = v;
    return 1;
}

const rosa_peft_method rosa_peft_adalora = {
    .name = "adalora",
    .peft_type = "ADALORA",
    .title = "AdaLoRA",
    .opts_size = sizeof(adalora_options),
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
    .extra_loss = extra_loss,
    .after_step = after_step,
    .no_resume = no_resume,
    .saved_tensor = saved_tensor,
};
