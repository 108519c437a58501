/* ln_tuning.c: the LN-Tuning method (see ln_tuning.h). */
#include "peft/ln_tuning.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/model.h"

typedef struct {
    int (*idx)[MAX_NORMS]; /* [L + 1][norm]: its tensor in the table or -1; row L is the final norm */
    const char *dflt;      /* PEFT's default target_modules for the model type */
} ln_state;

/* PEFT's TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING: llama and
 * mistral train both norms of each layer and the final one ("norm" selects
 * model.norm), qwen2 and qwen3 only post_attention_layernorm. */
static const char *default_targets(const rosa_config *c) {
    const char *mt = rosa_arch_of(c)->model_type;
    return strncmp(mt, "qwen", 4) == 0 ? "post_attention_layernorm" : "input_layernorm,post_attention_layernorm,norm";
}

static void opts_default(void *p) { memset(p, 0, sizeof(rosa_ln_tuning_options)); }

static int opts_copy(void *dst, const void *src) {
    memset(dst, 0, sizeof(rosa_ln_tuning_options));
    return rosa_peft_targets_copy(&((rosa_ln_tuning_options *)dst)->targets,
                                  &((const rosa_ln_tuning_options *)src)->targets);
}

static void opts_free(void *p) { rosa_peft_targets_free(&((rosa_ln_tuning_options *)p)->targets); }

static int parse_targets(void *p, const char *v) {
    return rosa_peft_targets_from_flag(&((rosa_ln_tuning_options *)p)->targets, v, "target-modules");
}

static int format_option(const void *p, const char *flag, char *buf, size_t n) {
    if (strcmp(flag, "target-modules") != 0) return -1;
    rosa_peft_targets_format(&((const rosa_ln_tuning_options *)p)->targets, "default", buf, n);
    return 0;
}

static const rosa_peft_option options[] = {
    {"target-modules", PEFT_OPT_CUSTOM, 0, "LIST",
     "norms trained: names (default PEFT's: input_layernorm,post_attention_layernorm,norm, norm the final one; "
     "post_attention_layernorm on Qwen) or re:PATTERN", NULL, parse_targets},
    {0},
};

#define DEFAULT_ONLY(feature, ...) PEFT_FIELD_DEFAULT, feature, {__VA_ARGS__, NULL}
const rosa_peft_field rosa_ln_tuning_fields[] = {
    {"target_modules", PEFT_FIELD_READ, NULL, {NULL}},
    {"exclude_modules", DEFAULT_ONLY("exclude_modules (modules taken out of target_modules)", "null", "[]", "\"\"")},
    {"modules_to_save", DEFAULT_ONLY("modules_to_save (whole modules trained besides the adapter)", "null", "[]")},
    {NULL, 0, NULL, {NULL}},
};
#undef DEFAULT_ONLY

static int parse_config(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c) {
    (void)c;
    rosa_ln_tuning_options *o = a->opts;
    if (rosa_peft_check_fields(j, path, rosa_ln_tuning_fields) < 0) return -1;
    return rosa_peft_targets_parse(&o->targets, cJSON_GetObjectItemCaseSensitive(j, "target_modules"), path,
                                   "target_modules");
}

static void write_config(const rosa_adapter *a, cJSON *j) {
    const rosa_ln_tuning_options *o = a->opts;
    cJSON_AddNullToObject(j, "exclude_modules");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "LN_TUNING");
    rosa_peft_targets_write(&o->targets, ((const ln_state *)a->state)->dflt, j, "target_modules");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
}

static void free_state(void *p) {
    ln_state *st = p;
    if (!st) return;
    free(st->idx);
    free(st);
}

/* One [D] tensor per selected norm: layers first, the final norm last. */
static int build(rosa_adapter *a, const rosa_config *c) {
    const rosa_ln_tuning_options *o = a->opts;
    const rosa_arch_desc *ad = rosa_arch_of(c);
    /* Gemma's norms scale by 1 + w (the model holds 1 + w, PEFT's tensor is w) and
     * its post-sublayer norms are outside the norms the block trains. */
    if (rosa_arch_of(c)->norm_plus_one)
        return rosa_fail("LN-Tuning on %s (RMSNorms scaling by 1 + w) is not implemented", c->architecture);
    ln_state *st = rosa_calloc(1, sizeof *st, "adapter");
    if (!st) return -1;
    a->state = st;
    st->dflt = default_targets(c);
    st->idx = rosa_malloc(sizeof *st->idx * (size_t)(a->L + 1), "adapter index");
    if (!st->idx) return -1;
    for (int l = 0; l <= a->L; l++)
        for (int i = 0; i < MAX_NORMS; i++) {
            st->idx[l][i] = -1;
            if (i >= (l < a->L ? ad->n_norms : 1)) continue;
            char key[128], name[192];
            if (l < a->L) snprintf(key, sizeof key, "model.layers.%d.%s", l, ad->norm_names[i]);
            else snprintf(key, sizeof key, "model.norm");
            int on = rosa_peft_targets_match(&o->targets, st->dflt, key, 0);
            if (on < 0) return -1;
            if (!on) continue;
            st->idx[l][i] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.%s.ln_tuning_layers.weight", key);
            if (rosa_adapter_add_param(a, name, l < a->L ? l : -1, 1, c->hidden_size) < 0) return -1;
            a->params[a->n_params - 1].ndim = 1;
        }
    if (a->n_params == 0) return rosa_fail("the LN_TUNING target_modules select no norm of this model");
    return 0;
}

/* PEFT deep-copies the norm: its weight starts at the model's. */
static void init(rosa_adapter *a, const rosa_model *m, uint64_t seed) {
    (void)seed;
    const ln_state *st = a->state;
    size_t D = (size_t)m->cfg.hidden_size;
    for (int l = 0; l <= a->L; l++)
        for (int i = 0; i < MAX_NORMS; i++)
            if (st->idx[l][i] >= 0)
                memcpy(a->w + a->params[st->idx[l][i]].offset, l < a->L ? m->layers[l].norm[i] : m->norm,
                       sizeof(float) * D);
}

static void describe(const rosa_adapter *a, char *buf, size_t n) {
    char t[200];
    rosa_peft_targets_format(&((const rosa_ln_tuning_options *)a->opts)->targets, ((const ln_state *)a->state)->dflt, t,
                             sizeof t);
    snprintf(buf, n, "LN-Tuning of %s", t);
}

/* The block's norm gradients become the trained copies' (the final norm's
 * is computed every step: it is outside DLS's layers). */
static void take_norm_grads(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active) {
    const ln_state *st = a->state;
    for (int l = 0; l <= a->L; l++)
        for (int i = 0; i < MAX_NORMS; i++) {
            int idx = st->idx[l][i];
            if (idx < 0 || (l < a->L && active && !active[l])) continue;
            const float *g = norm_grad + ((size_t)l * n_norms + (l < a->L ? i : 0)) * D;
            memcpy(a->g + a->params[idx].offset, g, sizeof(float) * (size_t)D);
        }
}

static const float *norm_weight(const void *self, int l, int which) {
    const rosa_adapter *a = self;
    const ln_state *st = a->state;
    int idx = which < MAX_NORMS ? st->idx[l][which] : -1;
    return idx >= 0 ? a->w + a->params[idx].offset : NULL;
}

static int adapts(const rosa_adapter *a, int l, int p) { return 0; }

/* No projection changes; the norms are merged by writing norm_weight's
 * values (rosa_adapter_apply keeps the hook for them at inference). */
static int merge(const rosa_adapter *a, int l, int p, float *W, int out, int in) {
    return rosa_fail("LN-Tuning changes no projection");
}

static const rosa_hook_ops hooks = {
    .norm_weight = norm_weight,
};

const rosa_peft_method rosa_peft_ln_tuning = {
    .name = "ln_tuning",
    .peft_type = "LN_TUNING",
    .title = "LN-Tuning",
    .opts_size = sizeof(rosa_ln_tuning_options),
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
    .take_norm_grads = take_norm_grads,
    .adapts = adapts,
    .merge = merge,
    .hooks = &hooks,
};
