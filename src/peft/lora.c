/* lora.c: the LoRA method (see lora.h). */
#include "peft/lora.h"
#include "peft/targets.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <float.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "io/json.h"
#include "model/gemm.h"
#include "model/model.h"
#include "peft/format.h"
#include "peft/lowrank.h"
#include "core/prof.h"
#include "core/util.h"

/* ------------------------------------------------------------- options */

static void opts_default(void *p) {
    rosa_lora_options *o = p;
    memset(o, 0, sizeof *o);
    o->rank = 8;
    o->alpha = 16.0f;
    o->dropout = 0.05f;
    o->targets = (1u << PROJ_Q) | (1u << PROJ_V);
}

static int copy_patterns(rosa_lora_pattern **dst, const rosa_lora_pattern *src, int n) {
    *dst = NULL;
    if (!src) return 0;
    *dst = rosa_calloc((size_t)(n ? n : 1), sizeof **dst, "rank_pattern");
    if (!*dst) return -1;
    for (int i = 0; i < n; i++) {
        (*dst)[i].value = src[i].value;
        if (!((*dst)[i].key = rosa_strdup(src[i].key))) return -1;
    }
    return 0;
}

static void free_patterns(rosa_lora_pattern *p, int n) {
    for (int i = 0; p && i < n; i++) free(p[i].key);
    free(p);
}

static int opts_copy(void *dst, const void *src) {
    rosa_lora_options *d = dst;
    const rosa_lora_options *s = src;
    *d = *s;
    d->target_regex = NULL;
    d->layers = NULL;
    d->rank_pattern = d->alpha_pattern = NULL;
    if (copy_patterns(&d->rank_pattern, s->rank_pattern, s->n_rank_pattern) < 0 ||
        copy_patterns(&d->alpha_pattern, s->alpha_pattern, s->n_alpha_pattern) < 0)
        return -1;
    if (s->target_regex && !(d->target_regex = rosa_strdup(s->target_regex))) return -1;
    return rosa_peft_layers_copy(&d->layers, s->layers, s->n_layers);
}

static void opts_free(void *p) {
    rosa_lora_options *o = p;
    free(o->target_regex);
    free(o->layers);
    free_patterns(o->rank_pattern, o->n_rank_pattern);
    free_patterns(o->alpha_pattern, o->n_alpha_pattern);
    o->target_regex = NULL;
    o->layers = NULL;
    o->rank_pattern = o->alpha_pattern = NULL;
}

int rosa_parse_target_modules(const char *list, unsigned *mask) {
    *mask = 0;
    if (strcmp(list, "all") == 0 || strcmp(list, "all-linear") == 0) {
        *mask = (1u << N_PROJ) - 1;
        return 0;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int m = 0; m < N_PROJ; m++)
            if (strlen(rosa_proj_names[m]) == n && strncmp(p, rosa_proj_names[m], n) == 0) found = m;
        if (found < 0)
            return rosa_fail("unknown target module \"%.*s\" (expected q_proj, k_proj, v_proj, o_proj, gate_proj, "
                             "up_proj, down_proj)", (int)n, p);
        *mask |= 1u << found;
        p += n;
        if (*p == ',') p++;
    }
    if (!*mask) return rosa_fail("no target modules given");
    return 0;
}

static int parse_targets(void *p, const char *v) {
    rosa_lora_options *o = p;
    if (rosa_parse_target_modules(v, &o->targets) < 0) return rosa_error_prefix("--target-modules"), -1;
    return 0;
}

static int parse_layers(void *p, const char *v) {
    rosa_lora_options *o = p;
    return rosa_peft_layers_from_flag(&o->layers, &o->n_layers, v);
}

/* --target-modules and --layers as they would be given (a regex target as
 * PEFT's string form). */
static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    const rosa_lora_options *o = p;
    size_t len = 0;
    buf[0] = 0;
    if (strcmp(flag, "target-modules") == 0) {
        if (o->target_regex) return snprintf(buf, n, "%s", o->target_regex), 0;
        for (int m = 0; m < N_PROJ; m++)
            if (o->targets & (1u << m) && len < n)
                len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : "", rosa_proj_names[m]);
        return 0;
    }
    if (strcmp(flag, "layers") == 0) return rosa_peft_layers_format(o->layers, o->n_layers, buf, n), 0;
    return -1;
}

static const rosa_peft_option options[] = {
    {"rank", PEFT_OPT_INT, offsetof(rosa_lora_options, rank), "R", "rank r (default 8)", NULL, NULL},
    {"alpha", PEFT_OPT_FLOAT, offsetof(rosa_lora_options, alpha), "A", "scaling alpha/r (default 16)", NULL, NULL},
    {"dropout", PEFT_OPT_FLOAT, offsetof(rosa_lora_options, dropout), "P", "dropout on the adapter input (default 0.05)",
     NULL, NULL},
    {"rslora", PEFT_OPT_FLAG, offsetof(rosa_lora_options, rslora), NULL, "scale by alpha/sqrt(r) instead", NULL, NULL},
    {"use-dora", PEFT_OPT_FLAG, offsetof(rosa_lora_options, dora), NULL,
     "DoRA: also train a magnitude per output row (PEFT's use_dora)", NULL, NULL},
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST", "modules adapted, e.g. q_proj,v_proj (default) or all", NULL,
     parse_targets},
    {"layers", PEFT_OPT_CUSTOM, 0, "LIST", "adapt only these layers, e.g. 0,1,2 (default: all)", NULL, parse_layers},
    {0},
};

static void set_rank(void *p, int r) { ((rosa_lora_options *)p)->rank = r; }

static void runtime_from(void *p, const void *from) {
    ((rosa_lora_options *)p)->dropout = ((const rosa_lora_options *)from)->dropout;
}

/* --------------------------------------------------- adapter_config.json */

/* Every field of PEFT's LoraConfig (src/peft/tuners/lora/config.py, release
 * 0.20 and its main branch), in PEFT's order; the base PeftConfig fields are
 * in format.c.  PEFT's save writes them all: a field rosa does not implement
 * is accepted at its default, and at the spellings PEFT treats as the default
 * (None and an empty list, say, where PEFT tests the value's truth). */
#define DEFAULT_ONLY(feature, ...) PEFT_FIELD_DEFAULT, feature, {__VA_ARGS__, NULL}
const rosa_peft_field rosa_lora_fields[] = {
    {"r", PEFT_FIELD_READ, NULL, {NULL}},
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"exclude_modules", DEFAULT_ONLY("exclude_modules (modules taken out of target_modules)", "null", "[]", "\"\"")},
    {"lora_alpha", PEFT_FIELD_READ, NULL, {NULL}},
    {"lora_dropout", PEFT_FIELD_READ, NULL, {NULL}},
    {"fan_in_fan_out", DEFAULT_ONLY("fan_in_fan_out (weights stored [in, out], as GPT-2's Conv1D)", "false")},
    {"bias", DEFAULT_ONLY("trained biases", "\"none\"", "null")},
    {"use_rslora", PEFT_FIELD_READ, NULL, {NULL}},
    {"modules_to_save", DEFAULT_ONLY("modules_to_save (whole modules trained besides the adapter)", "null", "[]")},
    /* The initialisations that leave the base weights alone and train A and
     * B as LoRA does; the weights file holds the result.  PiSSA, OLoRA, CorDA,
     * LoftQ and LoRA-GA save an adapter relative to changed base weights
     * (unless converted on save, which writes true), MiCA freezes lora_B. */
    {"init_lora_weights", DEFAULT_ONLY("this initialization (PiSSA, OLoRA, CorDA, LoftQ and LoRA-GA change the base "
                                       "weights, MiCA freezes lora_B)",
                                       "true", "false", "\"gaussian\"", "\"orthogonal\"", "\"eva\"")},
    {"layers_to_transform", PEFT_FIELD_READ, NULL, {NULL}},
    /* PEFT: an empty pattern means any layer list; a Llama's is "layers". */
    {"layers_pattern", DEFAULT_ONLY("a layers_pattern other than \"layers\"", "null", "[]", "\"\"", "\"layers\"",
                                    "[\"layers\"]")},
    {"rank_pattern", PEFT_FIELD_READ, NULL, {NULL}},
    {"alpha_pattern", PEFT_FIELD_READ, NULL, {NULL}},
    {"megatron_config", DEFAULT_ONLY("Megatron's parallel layers", "null")},
    {"megatron_core", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* read only with megatron_config */
    {"trainable_token_indices", DEFAULT_ONLY("trainable_token_indices (trained embedding rows)", "null")},
    /* Parameters of the initialisation init_lora_weights names (PEFT keeps
     * them, ignored, under another one); the weights file holds the result. */
    {"loftq_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"eva_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"corda_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"lora_ga_config", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"use_dora", PEFT_FIELD_READ, NULL, {NULL}},
    {"velora_config", DEFAULT_ONLY("VeLoRA", "null")},
    {"alora_invocation_tokens", DEFAULT_ONLY("aLoRA (activated LoRA)", "null")},
    {"use_qalora", DEFAULT_ONLY("QALoRA", "false")},
    {"qalora_group_size", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* read only with use_qalora */
    {"monteclora_config", DEFAULT_ONLY("MonteCLoRA", "null")},
    {"layer_replication", DEFAULT_ONLY("layer_replication (stacked copies of layers)", "null", "[]")},
    {"runtime_config", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* PEFT drops it when loading */
    {"lora_bias", DEFAULT_ONLY("lora_bias (a bias on lora_B)", "false")},
    {"target_parameters", DEFAULT_ONLY("target_parameters (LoRA on bare parameters)", "null", "[]")},
    {"use_bdlora", DEFAULT_ONLY("BD-LoRA (block-diagonal LoRA)", "null")},
    {"arrow_config", DEFAULT_ONLY("Arrow routing", "null")},
    {"kasa_config", DEFAULT_ONLY("KaSA", "null")},
    /* Ties adapters on tied embeddings; rosa adapts only projections. */
    {"ensure_weight_tying", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {NULL, 0, NULL, {NULL}},
};
#undef DEFAULT_ONLY

/* rank_pattern / alpha_pattern: {"regex": number, ...} (null or {}: none). */
static int parse_pattern(const cJSON *j, const char *key, const char *path, int is_rank, rosa_lora_pattern **out,
                         int *n) {
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, key), *it;
    *out = NULL, *n = 0;
    if (!pj || cJSON_IsNull(pj)) return 0;
    if (!cJSON_IsObject(pj)) return rosa_fail("%s: \"%s\" must be an object of module patterns and numbers", path, key);
    int count = cJSON_GetArraySize(pj);
    if (!count) return 0;
    *out = rosa_calloc((size_t)count, sizeof **out, key);
    if (!*out) return -1;
    cJSON_ArrayForEach(it, pj) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        if (is_rank ? !(v >= 1 && v <= ROSA_MAX_RANK && v == floor(v)) : !(fabs(v) <= FLT_MAX))
            return rosa_fail("%s: %s \"%s\": expected %s", path, key, it->string,
                             is_rank ? "an integer rank in [1, 65536]" : "a number that fits a float");
        (*out)[*n].value = (float)v;
        if (!((*out)[(*n)++].key = rosa_strdup(it->string))) return -1;
    }
    return 0;
}

static void add_pattern(cJSON *j, const char *key, const rosa_lora_pattern *p, int n) {
    cJSON *o = cJSON_AddObjectToObject(j, key);
    for (int i = 0; i < n; i++) rosa_json_add_float(o, p[i].key, p[i].value);
}

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    rosa_lora_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, rosa_lora_fields) < 0) return -1;
    long long r;
    double alpha, dropout;
    if (rosa_json_int(j, "r", path, 1, ROSA_MAX_RANK, &r) < 0 || rosa_json_num_opt(j, "lora_alpha", path, 8.0, &alpha) < 0 ||
        rosa_json_num_opt(j, "lora_dropout", path, 0.0, &dropout) < 0 ||
        rosa_json_bool_opt(j, "use_rslora", path, 0, &o->rslora) < 0 ||
        rosa_json_bool_opt(j, "use_dora", path, 0, &o->dora) < 0)
        return -1;
    if (!(fabs(alpha) <= FLT_MAX)) return rosa_fail("%s: \"lora_alpha\" %g does not fit a float", path, alpha);
    o->rank = (int)r;
    o->alpha = (float)alpha;
    o->dropout = (float)dropout;
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (cJSON_IsString(tm) && strcasecmp(tm->valuestring, "all-linear") == 0) {
        o->targets = (1u << N_PROJ) - 1; /* PEFT's shorthand: every linear layer but the output head */
    } else if (cJSON_IsString(tm)) {
        o->target_regex = rosa_strdup(tm->valuestring);
        if (!o->target_regex) return -1;
    } else if (cJSON_IsArray(tm)) {
        o->targets = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tm) {
            unsigned bit;
            if (!cJSON_IsString(t)) return rosa_fail("%s: target_modules entries must be strings", path);
            if (rosa_parse_target_modules(t->valuestring, &bit) < 0) {
                rosa_error_prefix("%s", path);
                return -1;
            }
            o->targets |= bit;
        }
    } else {
        return rosa_fail("%s: \"target_modules\" must be a list or a regex string", path);
    }
    if (parse_pattern(j, "rank_pattern", path, 1, &o->rank_pattern, &o->n_rank_pattern) < 0 ||
        parse_pattern(j, "alpha_pattern", path, 0, &o->alpha_pattern, &o->n_alpha_pattern) < 0)
        return -1;
    return rosa_peft_layers_parse(j, path, c->num_layers, &o->layers, &o->n_layers);
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const rosa_lora_options *o = a->opts;
    const rosa_lora_state *st = a->state;
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    int all = 1;
    for (int l = 0; l < a->L; l++) all &= st->layer_on[l];
    if (all) {
        cJSON_AddNullToObject(j, "layers_to_transform");
    } else {
        cJSON *ls = cJSON_AddArrayToObject(j, "layers_to_transform");
        for (int l = 0; l < a->L; l++)
            if (st->layer_on[l]) cJSON_AddItemToArray(ls, cJSON_CreateNumber(l));
    }
    rosa_json_add_float(j, "lora_alpha", o->alpha);
    rosa_json_add_float(j, "lora_dropout", o->dropout);
    cJSON_AddNullToObject(j, "modules_to_save");
    add_pattern(j, "rank_pattern", o->rank_pattern, o->n_rank_pattern);
    add_pattern(j, "alpha_pattern", o->alpha_pattern, o->n_alpha_pattern);
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", o->rank);
    if (o->target_regex) {
        cJSON_AddStringToObject(j, "target_modules", o->target_regex);
    } else {
        cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
        for (int m = 0; m < N_PROJ; m++)
            if ((o->targets >> m) & 1u) cJSON_AddItemToArray(tm, cJSON_CreateString(rosa_proj_names[m]));
    }
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(j, "use_dora", o->dora);
    cJSON_AddBoolToObject(j, "use_rslora", o->rslora);
}

/* ------------------------------------------------------------- tensors */

/* Does PEFT's regex form of target_modules select this module?  PEFT
 * full-matches the pattern against the module's name in the base model. */
static int regex_selects(const pcre2_code *re, int layer, int p) {
    char key[128];
    rosa_proj_tensor_name(key, sizeof key, layer, p);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)key, strlen(key), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL) : -1;
    pcre2_match_data_free(md);
    return rc >= 0;
}

static void free_state(void *state) {
    rosa_lora_state *st = state;
    if (!st) return;
    free(st->layer_on);
    for (int l = 0; st->w_sqnorm && l < st->n_layers; l++)
        for (int p = 0; p < N_PROJ; p++) free(st->w_sqnorm[l][p]);
    free(st->w_sqnorm);
    free(st->idx);
    free(st->scale);
    free(st);
}

/* The value of the first pattern key that matches module `name` as PEFT's
 * get_pattern_key matches it (re.match of "(.*\.)?(KEY)$"), else dflt. */
static int pattern_value(const rosa_lora_pattern *p, int n, const char *name, float dflt, float *out) {
    *out = dflt;
    for (int i = 0; i < n; i++) {
        char *re_text = rosa_malloc(strlen(p[i].key) + 16, "pattern");
        if (!re_text) return -1;
        sprintf(re_text, "(.*\\.)?(%s)$", p[i].key);
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)re_text, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED, &err,
                                       &off, NULL);
        free(re_text);
        if (!re) return rosa_fail("pattern \"%s\" of rank_pattern/alpha_pattern does not compile", p[i].key);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        int rc = md ? pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL) : -1;
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (rc >= 0) {
            *out = p[i].value;
            return 0;
        }
    }
    return 0;
}

static int build(rosa_adapter *a, const rosa_config *c) {
    const rosa_lora_options *o = a->opts;
    if (o->rank < 1 || o->rank > ROSA_MAX_RANK) return rosa_fail("LoRA rank %d must be in [1, %d]", o->rank, ROSA_MAX_RANK);
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) return rosa_fail("LoRA dropout %g must be in [0, 1)", o->dropout);
    rosa_lora_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->layer_on = rosa_calloc((size_t)a->L, 1, "adapter layers");
    st->idx = rosa_calloc((size_t)a->L, sizeof *st->idx, "adapter index");
    st->scale = rosa_calloc((size_t)a->L, sizeof *st->scale, "adapter scaling");
    st->n_layers = a->L;
    if (o->dora && !(st->w_sqnorm = rosa_calloc((size_t)a->L, sizeof *st->w_sqnorm, "DoRA norms"))) return -1;
    if (!st->layer_on || !st->idx || !st->scale) return -1;
    pcre2_code *re = NULL;
    if (o->target_regex) {
        int err;
        PCRE2_SIZE off;
        re = pcre2_compile((PCRE2_SPTR)o->target_regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
        if (!re) return rosa_fail("target_modules regex \"%s\" does not compile (at offset %zu)", o->target_regex, (size_t)off);
    }
    int rc = rosa_peft_layers_mark(o->layers, o->n_layers, a->L, st->layer_on);
    for (int l = 0; rc == 0 && l < a->L; l++) {
        for (int p = 0; rc == 0 && p < N_PROJ; p++) {
            st->idx[l][p] = -1;
            int on = st->layer_on[l] && (re ? regex_selects(re, l, p) : (int)((o->targets >> p) & 1u));
            if (!on) continue;
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            char base[96], name[160];
            rosa_proj_tensor_name(base, sizeof base, l, p);
            float rank, alpha;
            if (pattern_value(o->rank_pattern, o->n_rank_pattern, base, (float)o->rank, &rank) < 0 ||
                pattern_value(o->alpha_pattern, o->n_alpha_pattern, base, o->alpha, &alpha) < 0) {
                rc = -1;
                break;
            }
            int r = (int)rank;
            st->scale[l][p] = o->rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
            if (r > st->max_rank) st->max_rank = r;
            st->idx[l][p] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.%s.lora_A.weight", base);
            rc = rosa_adapter_add_param(a, name, l, r, in);
            snprintf(name, sizeof name, "base_model.model.%s.lora_B.weight", base);
            if (rc == 0) rc = rosa_adapter_add_param(a, name, l, out, r);
            if (out > st->max_out) st->max_out = out;
            if (rc == 0 && o->dora) { /* PEFT's saved name: the ".weight" of its DoRA layer removed */
                snprintf(name, sizeof name, "base_model.model.%s.lora_magnitude_vector", base);
                rc = rosa_adapter_add_param(a, name, l, 1, out);
                a->params[a->n_params - 1].ndim = 1;
            }
        }
    }
    pcre2_code_free(re);
    if (rc == 0 && a->n_params == 0) rc = rosa_fail("the LoRA target modules and layers select no module of this model");
    return rc;
}

/* PEFT's: A Kaiming-uniform, B = 0. */
/* ||W_o||^2 of module (l, p), made once (DoRA). */
static const double *w_sqnorm(const rosa_adapter *a, const rosa_model *m, int l, int p) {
    rosa_lora_state *st = a->state;
    if (!st->w_sqnorm[l][p]) {
        const rosa_weight *w = &m->layers[l].proj[p];
        double *n = rosa_malloc(sizeof(double) * (size_t)w->out, "DoRA norms");
        if (!n || rosa_weight_row_sqnorms(w, n) < 0) return free(n), NULL;
        st->w_sqnorm[l][p] = n;
    }
    return st->w_sqnorm[l][p];
}

/* PEFT's: A Kaiming-uniform, B = 0; DoRA's magnitude ||W + s B A|| = ||W||
 * (the model is needed then: without it the magnitudes stay 0). */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    const rosa_lora_state *st = a->state;
    const rosa_lora_options *o = a->opts;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (st->idx[l][p] < 0) continue;
            const rosa_param *A = &a->params[st->idx[l][p]];
            lowrank_init_a(a->w + A->offset, A->rows, A->cols, &rng);
            const double *n2 = o->dora && m ? w_sqnorm(a, m, l, p) : NULL;
            const rosa_param *M = &a->params[st->idx[l][p] + 2];
            for (int k = 0; n2 && k < M->cols; k++) a->w[M->offset + k] = (float)sqrt(n2[k]);
        }
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    const rosa_lora_options *o = a->opts;
    snprintf(buf, n, "%s r %d, alpha %g%s%s", o->dora ? "DoRA" : "LoRA", o->rank, (double)o->alpha,
             o->rslora ? " (rsLoRA)" : "",
             o->n_rank_pattern || o->n_alpha_pattern ? " (per-module rank_pattern/alpha_pattern)" : "");
}

const rosa_lora_state *rosa_lora_state_of(const rosa_adapter *a) {
    return a && a->method == &rosa_peft_lora ? a->state : NULL;
}

static int adapts(const rosa_adapter *a, int l, int p) { return ((const rosa_lora_state *)a->state)->idx[l][p] >= 0; }

/* W += s B A for projection p of layer l. */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    const rosa_lora_state *st = a->state;
    int idx = st->idx[l][p];
    const rosa_param *A = &a->params[idx], *B = &a->params[idx + 1];
    if (B->rows != out || A->cols != in) return rosa_fail("LoRA tensors of layer %d do not match the model", l);
    rosa_gemm('N', 'N', out, in, A->rows, st->scale[l][p], a->w + B->offset, B->cols, a->w + A->offset, A->cols, 1.0f, W,
              in);
    if (!((const rosa_lora_options *)a->opts)->dora) return 0;
    /* DoRA: W' = m / ||W + s B A|| * (W + s B A), row by row (PEFT's merge_safe). */
    const float *M = a->w + a->params[idx + 2].offset;
    for (int o = 0; o < out; o++) {
        double n2 = 0;
        for (int i = 0; i < in; i++) n2 += (double)W[(size_t)o * in + i] * W[(size_t)o * in + i];
        float g = (float)(M[o] / sqrt(n2));
        for (int i = 0; i < in; i++) W[(size_t)o * in + i] *= g;
    }
    return 0;
}

/* ------------------------------------------------------------- hooks */

/* DoRA's saved state of one module for N rows, after its low-rank branch's. */
typedef struct {
    float *v;     /* [N][out]: x' W^T + s (x' A^T) B^T, for the magnitude's gradient */
    float *g;     /* [out]: m / n */
    float *inv_n; /* [out]: 1 / n */
} dora_acts;

static size_t module_act_floats(const rosa_lora_options *o, const rosa_param *A, const rosa_param *B, int N) {
    size_t n = lowrank_act_floats(N, A->cols, A->rows, o->dropout);
    if (o->dora) n += ROSA_ARENA_ROUND((size_t)N * B->rows) + 2 * ROSA_ARENA_ROUND((size_t)B->rows);
    return n;
}

/* Layer l's state: one module after another, in projection order. */
static size_t act_floats(const void *self, int l, int N) {
    const rosa_adapter *a = self;
    const rosa_lora_state *st = a->state;
    size_t n = 0;
    for (int p = 0; p < N_PROJ; p++)
        if (st->idx[l][p] >= 0) n += module_act_floats(a->opts, &a->params[st->idx[l][p]], &a->params[st->idx[l][p] + 1], N);
    return n;
}

/* Module p's state inside layer l's region. */
static lowrank_acts module_acts(const rosa_adapter *a, int l, int p, float *acts, int N, dora_acts *da) {
    const rosa_lora_options *o = a->opts;
    const rosa_lora_state *st = a->state;
    lowrank_acts ba = {0};
    for (int q = 0; q <= p; q++) {
        if (st->idx[l][q] < 0) continue;
        const rosa_param *A = &a->params[st->idx[l][q]], *B = &a->params[st->idx[l][q] + 1];
        ba = lowrank_carve(&acts, N, A->cols, A->rows, o->dropout);
        if (!o->dora) continue;
        da->v = acts, acts += ROSA_ARENA_ROUND((size_t)N * B->rows);
        da->g = acts, acts += ROSA_ARENA_ROUND((size_t)B->rows);
        da->inv_n = acts, acts += ROSA_ARENA_ROUND((size_t)B->rows);
    }
    return ba;
}

/* The scratch, shared by the modules: du [N][max r]; with DoRA a region of
 * [N][max out] + [max r][max out] + [max r][max r]; with dropout dtmp, the
 * widest input [N][in]. */
static size_t dora_floats(const rosa_lora_state *st, int N) {
    return ROSA_ARENA_ROUND((size_t)N * st->max_out) + ROSA_ARENA_ROUND((size_t)st->max_rank * st->max_out) +
           ROSA_ARENA_ROUND((size_t)st->max_rank * st->max_rank);
}

static size_t scratch_floats(const void *self, int N) {
    const rosa_adapter *a = self;
    const rosa_lora_options *o = a->opts;
    const rosa_lora_state *st = a->state;
    int widest = 0;
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++)
            if (st->idx[l][p] >= 0 && a->params[st->idx[l][p]].cols > widest) widest = a->params[st->idx[l][p]].cols;
    return ROSA_ARENA_ROUND((size_t)N * st->max_rank) + (o->dora ? dora_floats(st, N) : 0) +
           (o->dropout > 0 ? (size_t)N * widest : 0) + 16;
}

typedef struct {
    float *du, *dora, *dtmp;
} lora_scratch;

static lora_scratch scratch_of(const rosa_block_ctx *c, const void *self, int N) {
    const rosa_adapter *a = self;
    const rosa_lora_state *st = a->state;
    lora_scratch s;
    s.du = rosa_block_hook_scratch(c, self);
    s.dora = s.du + ROSA_ARENA_ROUND((size_t)N * st->max_rank);
    s.dtmp = s.dora + (((const rosa_lora_options *)a->opts)->dora ? dora_floats(st, N) : 0);
    return s;
}

/* inv_n[out] = 1 / ||W_o + s (B A)_o||, from ||W_o||^2, P = A W^T [r][out]
 * and G = A A^T [r][r]: W is only multiplied, whatever its storage, and
 * W + s B A is never formed. */
static int dora_norms(const rosa_weight *w, const double *w_sq, const float *A, const float *B, float s, int r, int in,
                      int out, float *P, float *G, float *inv_n) {
    if (rosa_weight_forward(w, P, A, NULL, r, 0) < 0) return -1;
    rosa_gemm('N', 'T', r, r, in, 1.0f, A, in, A, in, 0.0f, G, r);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++) {
        const float *b = B + (size_t)o * r;
        double cross = 0, dd = 0;
        for (int k = 0; k < r; k++) {
            double gb = 0;
            for (int j = 0; j < r; j++) gb += (double)G[k * r + j] * b[j];
            cross += (double)b[k] * P[(size_t)k * out + o];
            dd += (double)b[k] * gb;
        }
        inv_n[o] = (float)(1.0 / sqrt(w_sq[o] + 2.0 * s * cross + (double)s * s * dd));
    }
    return 0;
}

static int proj_forward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *y, const float *x) {
    const rosa_adapter *a = self;
    const rosa_lora_options *o = a->opts;
    const rosa_lora_state *st = a->state;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_param *A = &a->params[idx], *B = &a->params[idx + 1];
    int N = c->N, r = A->rows, in = A->cols, out = B->rows;
    float s = st->scale[l][p];
    dora_acts da;
    lowrank_acts ba = module_acts(a, l, p, acts, N, &da);
    if (!o->dora) {
        PROF(PROF_ADAPTER, 2.0 * N * r * (in + out),
             lowrank_forward(&ba, y, 1, x, a->w + A->offset, a->w + B->offset, s, N, in, r, out, o->dropout, c->drop));
        return 0;
    }
    const rosa_weight *w = &c->m->layers[l].proj[p];
    const float *bias = c->m->layers[l].bias[p], *M = a->w + a->params[idx + 2].offset;
    const double *w_sq = w_sqnorm(a, c->m, l, p);
    float *base = scratch_of(c, self, N).dora; /* [N][out], then P and G */
    float *P = base + ROSA_ARENA_ROUND((size_t)N * st->max_out), *G = P + ROSA_ARENA_ROUND((size_t)st->max_rank * st->max_out);
    if (!st->hold_norms &&
        (!w_sq || dora_norms(w, w_sq, a->w + A->offset, a->w + B->offset, s, r, in, out, P, G, da.inv_n) < 0))
        return -1;
    for (int k = 0; k < out; k++) da.g[k] = M[k] * da.inv_n[k];
    lowrank_forward(&ba, da.v, 0, x, a->w + A->offset, a->w + B->offset, s, N, in, r, out, o->dropout, c->drop);
    /* x' W^T: the base output less its bias, or, with dropout active, a product of its own. */
    int dropped = o->dropout > 0 && c->drop;
    if (dropped && rosa_weight_forward(w, base, ba.xd, NULL, N, 0) < 0) return -1;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++)
        for (int k = 0; k < out; k++) {
            size_t i = (size_t)t * out + k;
            float xw = dropped ? base[i] : y[i] - (bias ? bias[k] : 0.0f);
            y[i] += (da.g[k] - 1.0f) * xw + da.g[k] * da.v[i];
            da.v[i] += xw;
        }
    return 0;
}

static int proj_backward(void *self, const rosa_block_ctx *c, int l, int p, float *acts, float *dx, const float *dy,
                         const float *x) {
    const rosa_adapter *a = self;
    const rosa_lora_options *o = a->opts;
    const rosa_lora_state *st = a->state;
    int idx = st->idx[l][p];
    if (idx < 0) return 0;
    const rosa_param *A = &a->params[idx], *B = &a->params[idx + 1];
    int N = c->N, r = A->rows, in = A->cols, out = B->rows;
    dora_acts da;
    lowrank_acts ba = module_acts(a, l, p, acts, N, &da);
    int act = rosa_block_layer_active(c, l);
    lora_scratch sc = scratch_of(c, self, N);
    float *du = sc.du, *dtmp = sc.dtmp;
    float *dA = act ? a->g + A->offset : NULL, *dB = act ? a->g + B->offset : NULL;
    if (!o->dora) {
        PROF(PROF_ADAPTER, (act ? 4.0 : 2.0) * N * r * (in + out),
             lowrank_backward(&ba, dx, dy, x, a->w + A->offset, a->w + B->offset, dA, dB, st->scale[l][p], N, in, r,
                              out, o->dropout, du, dtmp));
        return 0;
    }
    /* DoRA: the branch sees g * dy; x' W^T adds (g - 1) * dy W to dx (through
     * the dropout mask); m gets sum_t dy * v / n. */
    float *dyg = sc.dora; /* [N][out] */
    const rosa_weight *w = &c->m->layers[l].proj[p];
    if (act) {
        float *dM = a->g + a->params[idx + 2].offset;
        for (int t = 0; t < N; t++)
            for (int k = 0; k < out; k++) dM[k] += dy[(size_t)t * out + k] * da.v[(size_t)t * out + k] * da.inv_n[k];
    }
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++)
        for (int k = 0; k < out; k++) dyg[(size_t)t * out + k] = da.g[k] * dy[(size_t)t * out + k];
    lowrank_backward(&ba, dx, dyg, x, a->w + A->offset, a->w + B->offset, dA, dB, st->scale[l][p], N, in, r, out,
                     o->dropout, du, dtmp);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++)
        for (int k = 0; k < out; k++) dyg[(size_t)t * out + k] = (da.g[k] - 1.0f) * dy[(size_t)t * out + k];
    if (!(o->dropout > 0)) return rosa_weight_backward(w, dx, dyg, N, 1);
    if (rosa_weight_backward(w, dtmp, dyg, N, 0) < 0) return -1;
    float scale = 1.0f / (1.0f - o->dropout);
    for (size_t i = 0; i < (size_t)N * in; i++)
        if (ba.keep[i]) dx[i] += dtmp[i] * scale;
    return 0;
}

static const rosa_hook_ops hooks = {
    .act_floats = act_floats,
    .scratch_floats = scratch_floats,
    .proj_forward = proj_forward,
    .proj_backward = proj_backward,
};

const rosa_peft_method rosa_peft_lora = {
    .name = "lora",
    .peft_type = "LORA",
    .title = "LoRA",
    .opts_size = sizeof(rosa_lora_options),
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

void rosa_lora_options_default(rosa_lora_options *o) { opts_default(o); }

rosa_adapter *rosa_adapter_new_lora(const rosa_config *c, const rosa_lora_options *o, uint64_t seed) {
    return rosa_adapter_new(&rosa_peft_lora, o, c, NULL, seed);
}
