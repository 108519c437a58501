/* adapter.c: the adapter tensor table, PEFT initialisation, and the PEFT file
 * format (adapter_config.json + adapter_model.safetensors). */
#include "adapter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "model/model.h"
#include "io/safetensors.h"
#include "core/util.h"

const char *const rosa_module_names[N_MODULES] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};

static const char *module_parent(int m) { return m <= MOD_O ? "self_attn" : "mlp"; }

/* in/out features of module m. */
static void module_shape(const rosa_config *c, int m, int *in, int *out) {
    int D = c->hidden_size, F = c->intermediate_size, Q = c->num_heads * c->head_dim,
        K = c->num_kv_heads * c->head_dim;
    switch (m) {
    case MOD_Q: *in = D, *out = Q; break;
    case MOD_K: *in = D, *out = K; break;
    case MOD_V: *in = D, *out = K; break;
    case MOD_O: *in = Q, *out = D; break;
    case MOD_GATE: *in = D, *out = F; break;
    case MOD_UP: *in = D, *out = F; break;
    default: *in = F, *out = D; break;
    }
}

void rosa_lora_options_default(rosa_lora_options *o) {
    memset(o, 0, sizeof *o);
    o->rank = 8;
    o->alpha = 16.0f;
    o->dropout = 0.05f;
    o->targets = (1u << MOD_Q) | (1u << MOD_V);
}

int rosa_parse_target_modules(const char *list, unsigned *mask) {
    *mask = 0;
    if (strcmp(list, "all") == 0 || strcmp(list, "all-linear") == 0) {
        *mask = (1u << N_MODULES) - 1;
        return 0;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int m = 0; m < N_MODULES; m++)
            if (strlen(rosa_module_names[m]) == n && strncmp(p, rosa_module_names[m], n) == 0) found = m;
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

static int add_param(rosa_adapter *a, const char *name, int layer, int rows, int cols) {
    rosa_param *p = rosa_realloc(a->params, sizeof *p * (size_t)(a->n_params + 1), "adapter table");
    if (!p) return -1;
    a->params = p;
    rosa_param *t = &a->params[a->n_params++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->layer = layer;
    t->rows = rows;
    t->cols = cols;
    t->ndim = 2;
    t->offset = a->n_floats;
    a->n_floats += (size_t)rows * (size_t)cols;
    return 0;
}

/* Does PEFT's regex form of target_modules select this module?  PEFT
 * full-matches the pattern against the module's name in the base model. */
static int regex_selects(const pcre2_code *re, int layer, int m) {
    char key[128];
    snprintf(key, sizeof key, "model.layers.%d.%s.%s", layer, module_parent(m), rosa_module_names[m]);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)key, strlen(key), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL) : -1;
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* Builds the table (values zero) for a LoRA adapter on config c.  max_floats:
 * refuse, before allocating, a table of more values than that (a file's bound). */
static rosa_adapter *roae_table(const rosa_config *c, const rosa_roae_options *o, size_t max_floats);

/* The values are allocated only when a file could hold them (see max_floats). */
static int alloc_values(rosa_adapter *a, size_t max_floats) {
    if (a->n_floats > max_floats)
        return rosa_fail("the adapter has %zu values but adapter_model.safetensors is only %zu bytes", a->n_floats,
                         2 * max_floats);
    a->w = rosa_calloc(a->n_floats, sizeof(float), "adapter weights");
    a->g = rosa_calloc(a->n_floats, sizeof(float), "adapter gradients");
    return a->w && a->g ? 0 : -1;
}

static rosa_adapter *lora_table(const rosa_config *c, const rosa_lora_options *o, size_t max_floats) {
    if (o->rank < 1 || o->rank > 65536) {
        rosa_fail("LoRA rank %d must be in [1, 65536]", o->rank);
        return NULL;
    }
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) {
        rosa_fail("LoRA dropout %g must be in [0, 1)", o->dropout);
        return NULL;
    }
    rosa_adapter *a = rosa_calloc(1, sizeof *a, "adapter");
    if (!a) return NULL;
    a->method = ROSA_METHOD_LORA;
    a->L = c->num_layers;
    a->lora = *o;
    a->lora.target_regex = NULL;
    a->lora.layers = NULL;
    a->scaling = o->rslora ? o->alpha / sqrtf((float)o->rank) : o->alpha / (float)o->rank;
    a->layer_on = rosa_calloc((size_t)a->L, 1, "adapter layers");
    a->lora_idx = rosa_calloc((size_t)a->L, sizeof *a->lora_idx, "adapter index");
    pcre2_code *re = NULL;
    if (!a->layer_on || !a->lora_idx) goto fail;
    if (o->target_regex) {
        int err;
        PCRE2_SIZE off;
        re = pcre2_compile((PCRE2_SPTR)o->target_regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
        if (!re) {
            rosa_fail("target_modules regex \"%s\" does not compile (at offset %zu)", o->target_regex, (size_t)off);
            goto fail;
        }
        a->target_regex = rosa_strdup(o->target_regex);
        if (!a->target_regex) goto fail;
    }
    if (o->layers) {
        for (int i = 0; i < o->n_layers; i++) {
            if (o->layers[i] < 0 || o->layers[i] >= a->L) {
                rosa_fail("layer %d is out of range (the model has %d layers)", o->layers[i], a->L);
                goto fail;
            }
            a->layer_on[o->layers[i]] = 1;
        }
    } else {
        memset(a->layer_on, 1, (size_t)a->L);
    }
    for (int l = 0; l < a->L; l++) {
        for (int m = 0; m < N_MODULES; m++) {
            a->lora_idx[l][m] = -1;
            int on = a->layer_on[l] && (re ? regex_selects(re, l, m) : (int)((o->targets >> m) & 1u));
            if (!on) continue;
            int in, out;
            module_shape(c, m, &in, &out);
            char name[128];
            a->lora_idx[l][m] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l, module_parent(m),
                     rosa_module_names[m]);
            if (add_param(a, name, l, o->rank, in) < 0) goto fail;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l, module_parent(m),
                     rosa_module_names[m]);
            if (add_param(a, name, l, out, o->rank) < 0) goto fail;
        }
    }
    if (a->n_params == 0) {
        rosa_fail("the LoRA target modules and layers select no module of this model");
        goto fail;
    }
    if (alloc_values(a, max_floats) < 0) goto fail;
    pcre2_code_free(re);
    return a;
fail:
    pcre2_code_free(re);
    rosa_adapter_free(a);
    return NULL;
}

rosa_adapter *rosa_adapter_new_lora(const rosa_config *c, const rosa_lora_options *o, uint64_t seed) {
    rosa_adapter *a = lora_table(c, o, SIZE_MAX);
    if (!a) return NULL;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    /* PEFT: kaiming_uniform_(A, a=sqrt(5)) gives bound 1/sqrt(fan_in); B = 0. */
    for (int i = 0; i < a->n_params; i += 2) {
        const rosa_param *A = &a->params[i];
        float bound = 1.0f / sqrtf((float)A->cols);
        float *w = a->w + A->offset;
        for (int k = 0; k < A->rows * A->cols; k++) w[k] = (2.0f * rosa_rng_uniform(&rng) - 1.0f) * bound;
    }
    return a;
}

void rosa_roae_options_default(rosa_roae_options *o) {
    memset(o, 0, sizeof *o);
    o->rank = 32;
    o->alpha = 1.0f;
    o->r_low = 0.25f;
    o->target_q = o->target_k = 1;
}

void rosa_dls_options_default(rosa_dls_options *o) {
    memset(o, 0, sizeof *o);
    o->interval = 50;
    o->warmup = 50;
    o->k_ratio = 0.5f;
    o->p_exploit = 0.8f;
    o->seed = 42;
}

/* m = max(1, round(hd * r_low / 2)) with round(x) = floor(x + 0.5). */
static int roae_m(int hd, float r_low) {
    int m = (int)floor((double)hd * r_low / 2.0 + 0.5);
    return m < 1 ? 1 : m;
}

int64_t rosa_lora_num_params(const rosa_config *c, const rosa_lora_options *o, int rank) {
    int64_t per = 0;
    for (int m = 0; m < N_MODULES; m++) {
        if (!((o->targets >> m) & 1u)) continue;
        int in, out;
        module_shape(c, m, &in, &out);
        per += (int64_t)rank * (in + out);
    }
    return per * (o->layers ? o->n_layers : c->num_layers);
}

int64_t rosa_roae_num_params(const rosa_config *c, const rosa_roae_options *o, int rank) {
    int64_t d_low = 2 * roae_m(c->head_dim, o->r_low), per = 0;
    if (o->target_q) per += (int64_t)rank * c->hidden_size + (int64_t)c->num_heads * d_low * rank;
    if (o->target_k) per += (int64_t)rank * c->hidden_size + (int64_t)c->num_kv_heads * d_low * rank;
    int64_t n = per * c->num_layers;
    if (o->train_norms) n += 2LL * c->hidden_size * c->num_layers;
    return n;
}

/* Builds the table (values zero) of a RoAE adapter on config c. */
static rosa_adapter *roae_table(const rosa_config *c, const rosa_roae_options *o, size_t max_floats) {
    if (o->rank < 1 || o->rank > 65536) {
        rosa_fail("RoAE rank %d must be in [1, 65536]", o->rank);
        return NULL;
    }
    if (!(o->r_low > 0.0f && o->r_low <= 1.0f)) {
        rosa_fail("r_low %g must be in (0, 1]", o->r_low);
        return NULL;
    }
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f)) {
        rosa_fail("RoAE dropout %g must be in [0, 1)", o->dropout);
        return NULL;
    }
    if (!o->target_q && !o->target_k) {
        rosa_fail("RoAE needs at least one target (q or k)");
        return NULL;
    }
    int hd = c->head_dim, m = roae_m(hd, o->r_low);
    if (m > hd / 2) {
        rosa_fail("r_low %g selects %d dimensions per half of a %d-dimensional head", o->r_low, m, hd);
        return NULL;
    }
    rosa_adapter *a = rosa_calloc(1, sizeof *a, "adapter");
    if (!a) return NULL;
    a->method = ROSA_METHOD_ROAE;
    a->L = c->num_layers;
    a->roae = *o;
    rosa_dls_options_default(&a->dls);
    a->m_low = m;
    a->d_low = 2 * m;
    a->scaling = o->alpha;
    a->low_dims = rosa_malloc(sizeof(int) * (size_t)a->d_low, "RoAE dimensions");
    a->roae_idx = rosa_malloc(sizeof *a->roae_idx * (size_t)a->L, "adapter index");
    a->norm_idx = rosa_malloc(sizeof(int) * (size_t)a->L, "adapter index");
    a->layer_on = rosa_calloc((size_t)a->L, 1, "adapter layers");
    if (!a->low_dims || !a->roae_idx || !a->norm_idx || !a->layer_on) goto fail;
    for (int i = 0; i < m; i++) {
        a->low_dims[i] = hd / 2 - m + i;
        a->low_dims[m + i] = hd - m + i;
    }
    memset(a->layer_on, 1, (size_t)a->L);
    for (int l = 0; l < a->L; l++) {
        char name[128];
        for (int w = 0; w < 2; w++) {
            a->roae_idx[l][w] = -1;
            if (!(w ? o->target_k : o->target_q)) continue;
            int heads = w ? c->num_kv_heads : c->num_heads;
            a->roae_idx[l][w] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.roae_%c.lora_A.weight", l, w ? 'k' : 'q');
            if (add_param(a, name, l, o->rank, c->hidden_size) < 0) goto fail;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.self_attn.roae_%c.lora_B.weight", l, w ? 'k' : 'q');
            if (add_param(a, name, l, heads * a->d_low, o->rank) < 0) goto fail;
        }
        a->norm_idx[l] = -1;
        if (o->train_norms) {
            a->norm_idx[l] = a->n_params;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.input_layernorm.weight", l);
            if (add_param(a, name, l, 1, c->hidden_size) < 0) goto fail;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.post_attention_layernorm.weight", l);
            if (add_param(a, name, l, 1, c->hidden_size) < 0) goto fail;
            a->params[a->n_params - 1].ndim = a->params[a->n_params - 2].ndim = 1;
        }
    }
    if (alloc_values(a, max_floats) < 0) goto fail;
    return a;
fail:
    rosa_adapter_free(a);
    return NULL;
}

rosa_adapter *rosa_adapter_new_roae(const rosa_model *model, const rosa_roae_options *o, uint64_t seed) {
    rosa_adapter *a = roae_table(&model->cfg, o, SIZE_MAX);
    if (!a) return NULL;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    for (int l = 0; l < a->L; l++) {
        for (int w = 0; w < 2; w++) {
            int idx = a->roae_idx[l][w];
            if (idx < 0) continue;
            const rosa_param *A = &a->params[idx];
            float bound = 1.0f / sqrtf((float)A->cols), *v = a->w + A->offset;
            for (int k = 0; k < A->rows * A->cols; k++) v[k] = (2.0f * rosa_rng_uniform(&rng) - 1.0f) * bound;
        }
        if (a->norm_idx[l] >= 0) {
            size_t D = (size_t)model->cfg.hidden_size;
            memcpy(a->w + a->params[a->norm_idx[l]].offset, model->layers[l].attn_norm, sizeof(float) * D);
            memcpy(a->w + a->params[a->norm_idx[l] + 1].offset, model->layers[l].ffn_norm, sizeof(float) * D);
        }
    }
    return a;
}

void rosa_adapter_free(rosa_adapter *a) {
    if (!a) return;
    free(a->low_dims);
    free(a->roae_idx);
    free(a->norm_idx);
    free(a->target_regex);
    free(a->layer_on);
    free(a->lora_idx);
    free(a->params);
    free(a->w);
    free(a->g);
    free(a);
}

int64_t rosa_adapter_num_params(const rosa_adapter *a) { return (int64_t)a->n_floats; }

int rosa_adapter_copy_values(rosa_adapter *dst, const rosa_adapter *src) {
    if (dst->n_floats != src->n_floats || dst->n_params != src->n_params)
        return rosa_fail("adapter shapes differ (%zu vs %zu values)", dst->n_floats, src->n_floats);
    memcpy(dst->w, src->w, sizeof(float) * dst->n_floats);
    return 0;
}

/* A float as the shortest decimal that reads back to the same float. */
static void add_float(cJSON *o, const char *key, float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtof(buf, NULL) == v) break;
    }
    cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}

static void lora_config_json(const rosa_adapter *a, cJSON *j) {
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    int all = 1;
    for (int l = 0; l < a->L; l++) all &= a->layer_on[l];
    if (all) {
        cJSON_AddNullToObject(j, "layers_to_transform");
    } else {
        cJSON *ls = cJSON_AddArrayToObject(j, "layers_to_transform");
        for (int l = 0; l < a->L; l++)
            if (a->layer_on[l]) cJSON_AddItemToArray(ls, cJSON_CreateNumber(l));
    }
    add_float(j, "lora_alpha", a->lora.alpha);
    add_float(j, "lora_dropout", a->lora.dropout);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", a->lora.rank);
    if (a->target_regex) {
        cJSON_AddStringToObject(j, "target_modules", a->target_regex);
    } else {
        cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
        for (int m = 0; m < N_MODULES; m++)
            if ((a->lora.targets >> m) & 1u) cJSON_AddItemToArray(tm, cJSON_CreateString(rosa_module_names[m]));
    }
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(j, "use_dora", 0);
    cJSON_AddBoolToObject(j, "use_rslora", a->lora.rslora);
}

/* The ROSA adapter_config.json: exactly these keys (docs/formats.md). */
static void roae_config_json(const rosa_adapter *a, cJSON *j) {
    const rosa_roae_options *o = &a->roae;
    const rosa_dls_options *d = &a->dls;
    cJSON_AddStringToObject(j, "peft_type", "ROSA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(j, "r", o->rank);
    add_float(j, "alpha", o->alpha);
    add_float(j, "r_low", o->r_low);
    cJSON *t = cJSON_AddArrayToObject(j, "targets");
    if (o->target_q) cJSON_AddItemToArray(t, cJSON_CreateString("q"));
    if (o->target_k) cJSON_AddItemToArray(t, cJSON_CreateString("k"));
    cJSON_AddStringToObject(j, "placement", o->pre_rope ? "pre-rope" : "post-rope");
    cJSON_AddStringToObject(j, "form", o->add_form ? "add" : "gate");
    add_float(j, "dropout", o->dropout);
    cJSON_AddBoolToObject(j, "train_norms", o->train_norms);
    cJSON *dl = cJSON_AddObjectToObject(j, "dls");
    cJSON_AddBoolToObject(dl, "enabled", d->enabled);
    cJSON_AddNumberToObject(dl, "interval", d->interval);
    cJSON_AddNumberToObject(dl, "warmup", d->warmup);
    add_float(dl, "k_ratio", d->k_ratio);
    add_float(dl, "p_exploit", d->p_exploit);
    add_float(dl, "score_ema", d->score_ema);
    cJSON_AddStringToObject(dl, "inactive", d->zero_grad ? "zero-grad" : "skip");
    cJSON_AddNumberToObject(dl, "seed", (double)d->seed);
}

int rosa_adapter_save(const rosa_adapter *a, const char *dir, const char *base_model) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return rosa_fail("%s: cannot create directory: %s", dir, strerror(errno));
    cJSON *j = cJSON_CreateObject();
    if (!j) return rosa_fail("out of memory");
    cJSON_AddStringToObject(j, "base_model_name_or_path", base_model ? base_model : "");
    if (a->method == ROSA_METHOD_ROAE) roae_config_json(a, j);
    else lora_config_json(a, j);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return rosa_fail("out of memory");
    char *path = rosa_path_join(dir, "adapter_config.json");
    int rc = path ? rosa_write_file_atomic(path, text, strlen(text)) : -1;
    free(path);
    free(text);
    if (rc < 0) return -1;

    st_write_entry *e = rosa_calloc((size_t)a->n_params, sizeof *e, "adapter tensors");
    int64_t *shapes = rosa_calloc((size_t)a->n_params * 2, sizeof(int64_t), "adapter shapes");
    if (!e || !shapes) {
        free(e);
        free(shapes);
        return -1;
    }
    for (int i = 0; i < a->n_params; i++) {
        shapes[2 * i] = a->params[i].rows;
        shapes[2 * i + 1] = a->params[i].cols;
        if (a->params[i].ndim == 1) shapes[2 * i] = a->params[i].cols;
        e[i] = (st_write_entry){a->params[i].name, ST_F32, a->params[i].ndim, &shapes[2 * i], a->w + a->params[i].offset};
    }
    path = rosa_path_join(dir, "adapter_model.safetensors");
    rc = path ? st_write_file(path, e, a->n_params, "{\"format\": \"pt\"}") : -1;
    free(path);
    free(e);
    free(shapes);
    return rc;
}

/* An adapter_config.json key that rosa does not implement is accepted only at
 * its "off" value (null, false, "", {} or []), as PEFT writes them all. */
static int is_off(const cJSON *v) {
    return cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsString(v) && !*v->valuestring) ||
           ((cJSON_IsObject(v) || cJSON_IsArray(v)) && cJSON_GetArraySize(v) == 0);
}

static const char *const lora_keys_read[] = {
    "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora",
    "layers_to_transform", "bias", "base_model_name_or_path", "revision", "inference_mode",
    "init_lora_weights", "megatron_core", "auto_mapping", NULL};

static int parse_lora_config(const cJSON *j, const char *path, const rosa_config *c, rosa_lora_options *o,
                             char **regex, int **layers) {
    rosa_lora_options_default(o);
    *regex = NULL;
    *layers = NULL;
    const cJSON *item;
    cJSON_ArrayForEach(item, j) {
        int known = 0;
        for (int k = 0; lora_keys_read[k]; k++) known |= strcmp(item->string, lora_keys_read[k]) == 0;
        if (!known && !is_off(item))
            return rosa_fail("%s: \"%s\" is not supported by rosa (only its default value is accepted)", path,
                             item->string);
    }
    int err;
    const char *bias = rosa_json_str_opt(j, "bias", path, &err);
    if (err) return -1;
    if (bias && strcmp(bias, "none") != 0) return rosa_fail("%s: \"bias\": \"%s\" is not supported (only \"none\")", path, bias);
    const char *task = rosa_json_str_opt(j, "task_type", path, &err);
    if (err) return -1;
    if (task && strcmp(task, "CAUSAL_LM") != 0) return rosa_fail("%s: task_type \"%s\" is not supported (only CAUSAL_LM)", path, task);
    long long r;
    double alpha, dropout;
    if (rosa_json_int(j, "r", path, 1, 65536, &r) < 0 || rosa_json_num_opt(j, "lora_alpha", path, 8.0, &alpha) < 0 ||
        rosa_json_num_opt(j, "lora_dropout", path, 0.0, &dropout) < 0 ||
        rosa_json_bool_opt(j, "use_rslora", path, 0, &o->rslora) < 0)
        return -1;
    if (!(fabs(alpha) <= FLT_MAX)) return rosa_fail("%s: \"lora_alpha\" %g does not fit a float", path, alpha);
    o->rank = (int)r;
    o->alpha = (float)alpha;
    o->dropout = (float)dropout;
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (cJSON_IsString(tm)) {
        *regex = rosa_strdup(tm->valuestring);
        if (!*regex) return -1;
        o->target_regex = *regex;
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
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layers_to_transform");
    if (lt && !cJSON_IsNull(lt)) {
        int n = cJSON_IsArray(lt) ? cJSON_GetArraySize(lt) : 1;
        *layers = rosa_malloc(sizeof(int) * (size_t)(n ? n : 1), "layers");
        if (!*layers) return -1;
        for (int i = 0; i < n; i++) {
            const cJSON *v = cJSON_IsArray(lt) ? cJSON_GetArrayItem(lt, i) : lt;
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= c->num_layers)
                return rosa_fail("%s: layers_to_transform must hold layer indices below %d", path, c->num_layers);
            (*layers)[i] = (int)v->valuedouble;
        }
        o->layers = *layers;
        o->n_layers = n;
    }
    return 0;
}

/* A ROSA adapter_config.json: every key is known; anything else is refused. */
static int parse_roae_config(const cJSON *j, const char *path, rosa_roae_options *o, rosa_dls_options *d) {
    static const char *const keys[] = {"peft_type", "task_type", "r", "alpha", "r_low", "targets", "placement", "form",
                                       "dropout", "train_norms", "dls", "base_model_name_or_path", NULL};
    static const char *const dls_keys[] = {"enabled", "interval", "warmup", "k_ratio", "p_exploit", "score_ema",
                                           "inactive", "seed", NULL};
    rosa_roae_options_default(o);
    rosa_dls_options_default(d);
    const cJSON *item;
    cJSON_ArrayForEach(item, j) {
        int known = 0;
        for (int k = 0; keys[k]; k++) known |= strcmp(item->string, keys[k]) == 0;
        if (!known) return rosa_fail("%s: unknown key \"%s\" in a ROSA adapter config", path, item->string);
    }
    long long r;
    double alpha, r_low, dropout;
    int err;
    if (rosa_json_int(j, "r", path, 1, 65536, &r) < 0 || rosa_json_num_opt(j, "alpha", path, 1.0, &alpha) < 0 ||
        rosa_json_num_opt(j, "r_low", path, 0.25, &r_low) < 0 ||
        rosa_json_num_opt(j, "dropout", path, 0.0, &dropout) < 0 ||
        rosa_json_bool_opt(j, "train_norms", path, 0, &o->train_norms) < 0)
        return -1;
    if (!(fabs(alpha) <= FLT_MAX)) return rosa_fail("%s: \"alpha\" %g does not fit a float", path, alpha);
    o->rank = (int)r;
    o->alpha = (float)alpha;
    o->r_low = (float)r_low;
    o->dropout = (float)dropout;
    const char *task = rosa_json_str_opt(j, "task_type", path, &err);
    if (err) return -1;
    if (task && strcmp(task, "CAUSAL_LM") != 0) return rosa_fail("%s: task_type \"%s\" is not supported (only CAUSAL_LM)", path, task);
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

rosa_adapter *rosa_adapter_load(const char *dir, const rosa_config *c) {
    char *cfg_path = rosa_path_join(dir, "adapter_config.json");
    char *st_path = rosa_path_join(dir, "adapter_model.safetensors");
    cJSON *j = NULL;
    rosa_adapter *a = NULL;
    char *regex = NULL;
    int *layers = NULL;
    st_set s = {0};
    if (!cfg_path || !st_path) goto done;
    if (!rosa_is_dir(dir)) {
        rosa_fail("%s: adapter directory not found", dir);
        goto done;
    }
    j = rosa_json_load(cfg_path);
    if (!j) goto done;
    if (!cJSON_IsObject(j)) {
        rosa_fail("%s: not a JSON object", cfg_path);
        goto done;
    }
    int err;
    const char *type = rosa_json_str_opt(j, "peft_type", cfg_path, &err);
    if (err) goto done;
    /* Every value takes at least 2 bytes of the tensor file (F16/BF16): a
     * config asking for more is refused before its table is allocated. */
    struct stat sb;
    size_t max_floats = stat(st_path, &sb) == 0 ? (size_t)sb.st_size / 2 : SIZE_MAX;
    if (type && strcmp(type, "ROSA") == 0) {
        rosa_roae_options ro;
        rosa_dls_options dl;
        if (parse_roae_config(j, cfg_path, &ro, &dl) < 0) goto done;
        a = roae_table(c, &ro, max_floats);
        if (a) a->dls = dl;
    } else if (type && strcmp(type, "LORA") == 0) {
        rosa_lora_options o;
        if (parse_lora_config(j, cfg_path, c, &o, &regex, &layers) < 0) goto done;
        a = lora_table(c, &o, max_floats);
    } else {
        rosa_fail("%s: unsupported peft_type \"%s\" (supported: LORA, ROSA)", cfg_path, type ? type : "");
        goto done;
    }
    if (!a) {
        rosa_error_prefix("%s", cfg_path);
        goto done;
    }
    if (st_set_add_file(&s, st_path) < 0) goto fail;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        const st_tensor *t = st_set_find(&s, p->name);
        if (!t) {
            rosa_fail("%s: tensor \"%s\" is missing", st_path, p->name);
            goto fail;
        }
        int shape_ok = p->ndim == 1 ? t->ndim == 1 && t->shape[0] == p->cols
                                    : t->ndim == 2 && t->shape[0] == p->rows && t->shape[1] == p->cols;
        if (!shape_ok) {
            if (p->ndim == 1) rosa_fail("%s: tensor \"%s\" should have shape [%d]", st_path, p->name, p->cols);
            else rosa_fail("%s: tensor \"%s\" should have shape [%d, %d]", st_path, p->name, p->rows, p->cols);
            goto fail;
        }
        const unsigned char *src = t->data;
        float *w = a->w + p->offset;
        for (int64_t k = 0; k < st_numel(t); k++) {
            if (t->dtype == ST_F32) {
                memcpy(&w[k], src + 4 * k, 4);
            } else if (t->dtype == ST_F16 || t->dtype == ST_BF16) {
                uint16_t h;
                memcpy(&h, src + 2 * k, 2);
                w[k] = t->dtype == ST_F16 ? rosa_f16_to_f32(h) : rosa_bf16_to_f32(h);
            } else {
                rosa_fail("%s: tensor \"%s\" has dtype %s (expected F32, F16 or BF16)", st_path, p->name,
                          st_dtype_name(t->dtype));
                goto fail;
            }
            if (!isfinite(w[k])) {
                rosa_fail("%s: tensor \"%s\" holds a non-finite value", st_path, p->name);
                goto fail;
            }
        }
    }
    /* A tensor the configuration does not account for would be ignored. */
    for (int i = 0; i < s.n_tensors; i++) {
        int known = 0;
        for (int k = 0; k < a->n_params && !known; k++) known = strcmp(a->params[k].name, s.tensors[i].name) == 0;
        if (!known) {
            rosa_fail("%s: unexpected tensor \"%s\" (not selected by adapter_config.json)", st_path, s.tensors[i].name);
            goto fail;
        }
    }
    goto done;
fail:
    rosa_adapter_free(a);
    a = NULL;
done:
    st_set_close(&s);
    cJSON_Delete(j);
    free(regex);
    free(layers);
    free(cfg_path);
    free(st_path);
    return a;
}
