/* config.c: config.json -> rosa_config, with limits checked before anything
 * is allocated from these numbers. */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "io/json.h"
#include "core/util.h"

/* Upper bounds that no real model reaches; they keep a hostile config from
 * asking for absurd allocations. */
#define MAX_VOCAB (1 << 22)
#define MAX_HIDDEN (1 << 16)
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_POSITIONS (1 << 24)

static int get_int(const cJSON *j, const char *key, const char *what, long long lo, long long hi, int *out) {
    long long v;
    if (rosa_json_int(j, key, what, lo, hi, &v) < 0) return -1;
    *out = (int)v;
    return 0;
}

static int get_int_opt(const cJSON *j, const char *key, const char *what, long long lo, long long hi,
                       long long def, int *out) {
    long long v;
    if (rosa_json_int_opt(j, key, what, lo, hi, def, &v) < 0) return -1;
    *out = (int)v;
    return 0;
}

static int parse_rope_scaling(const cJSON *rs, const char *what, rosa_config *c) {
    c->rope_type = ROSA_ROPE_DEFAULT;
    c->rope_factor = 1.0f;
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return rosa_fail("%s: \"rope_scaling\" must be an object or null", what);
    int err;
    const char *type = rosa_json_str_opt(rs, "rope_type", what, &err);
    if (err) return -1;
    if (!type) type = rosa_json_str_opt(rs, "type", what, &err); /* older configs */
    if (err) return -1;
    if (!type) return rosa_fail("%s: \"rope_scaling\" has no \"rope_type\"", what);
    double factor, lo, hi;
    long long orig;
    if (strcmp(type, "default") == 0) return 0;
    if (rosa_json_num_opt(rs, "factor", what, 1.0, &factor) < 0) return -1;
    if (!(factor >= 1.0 && factor <= 1e6)) return rosa_fail("%s: rope_scaling \"factor\" = %g must be >= 1", what, factor);
    c->rope_factor = (float)factor;
    if (strcmp(type, "linear") == 0) {
        c->rope_type = ROSA_ROPE_LINEAR;
        return 0;
    }
    if (strcmp(type, "llama3") == 0) {
        c->rope_type = ROSA_ROPE_LLAMA3;
        if (rosa_json_num_opt(rs, "low_freq_factor", what, NAN, &lo) < 0 ||
            rosa_json_num_opt(rs, "high_freq_factor", what, NAN, &hi) < 0 ||
            rosa_json_int(rs, "original_max_position_embeddings", what, 1, MAX_POSITIONS, &orig) < 0)
            return -1;
        if (isnan(lo) || isnan(hi)) return rosa_fail("%s: llama3 rope_scaling needs low_freq_factor and high_freq_factor", what);
        if (!(hi > lo && lo > 0 && hi <= 1e6) || !((float)hi > (float)lo && (float)lo > 0))
            return rosa_fail("%s: llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor <= 1e6", what);
        c->rope_low_freq_factor = (float)lo;
        c->rope_high_freq_factor = (float)hi;
        c->rope_original_max_position = (int)orig;
        return 0;
    }
    return rosa_fail("%s: unsupported rope_scaling type \"%s\" (supported: default, linear, llama3)", what, type);
}

/* eos_token_id: an int or a list of ints; absent/null leaves *n unchanged. */
static int parse_eos(const cJSON *j, const char *what, rosa_config *c) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (!e || cJSON_IsNull(e)) return 0;
    if (cJSON_IsNumber(e)) {
        if (e->valuedouble < 0 || e->valuedouble >= MAX_VOCAB) return rosa_fail("%s: \"eos_token_id\" out of range", what);
        c->eos_token_ids[0] = (int)e->valuedouble;
        c->n_eos = 1;
        return 0;
    }
    if (!cJSON_IsArray(e)) return rosa_fail("%s: \"eos_token_id\" must be an integer or a list", what);
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, e) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= MAX_VOCAB)
            return rosa_fail("%s: \"eos_token_id\" entries must be token ids", what);
        if (n == 8) return rosa_fail("%s: more than 8 eos_token_id values", what);
        c->eos_token_ids[n++] = (int)x->valuedouble;
    }
    c->n_eos = n;
    return 0;
}

/* A copy of config object j with the family's defaults for the keys it lacks. */
static cJSON *with_defaults(const cJSON *j, const char *defaults, const char *what) {
    cJSON *out = cJSON_Duplicate(j, 1), *d = defaults ? cJSON_Parse(defaults) : NULL;
    if (!out || (defaults && !d)) {
        cJSON_Delete(out);
        cJSON_Delete(d);
        rosa_fail("%s: out of memory", what);
        return NULL;
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, d) {
        if (!cJSON_GetObjectItemCaseSensitive(out, x->string) && !cJSON_AddItemToObject(out, x->string, cJSON_Duplicate(x, 1))) {
            cJSON_Delete(out);
            cJSON_Delete(d);
            rosa_fail("%s: out of memory", what);
            return NULL;
        }
    }
    cJSON_Delete(d);
    return out;
}

static int parse_text_config(const cJSON *j, const rosa_arch_desc *ad, const char *what, rosa_config *c);

static int parse_config(const cJSON *top, const char *what, rosa_config *c) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(top)) return rosa_fail("%s: not a JSON object", what);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(top, "architectures");
    const char *arch = NULL;
    if (cJSON_IsArray(a) && cJSON_GetArraySize(a) >= 1 && cJSON_IsString(cJSON_GetArrayItem(a, 0)))
        arch = cJSON_GetArrayItem(a, 0)->valuestring;
    int err;
    const char *mt = rosa_json_str_opt(top, "model_type", what, &err);
    if (err) return -1;
    const rosa_arch_desc *ad = rosa_arch_find(arch, mt);
    if (!ad) {
        if (arch) return rosa_fail("%s: unsupported architecture \"%s\" (supported: %s)", what, arch, rosa_arch_names());
        return rosa_fail("%s: no \"architectures\" (and model_type \"%s\" is not one rosa knows; supported: %s)",
                         what, mt ? mt : "", rosa_arch_names());
    }
    c->arch = ad->id;
    snprintf(c->architecture, sizeof c->architecture, "%s", ad->hf_name);
    const cJSON *text = top;
    if (ad->text_config) {
        text = cJSON_GetObjectItemCaseSensitive(top, ad->text_config);
        if (!cJSON_IsObject(text)) return rosa_fail("%s: %s needs a \"%s\" object", what, ad->hf_name, ad->text_config);
    }
    cJSON *j = with_defaults(text, ad->defaults, what);
    if (!j) return -1;
    int rc = parse_text_config(j, ad, what, c);
    cJSON_Delete(j);
    if (rc < 0 || !ad->text_config) return rc;
    /* A multimodal config's own token ids, when given, are the model's. */
    long long bos;
    if (rosa_json_int_opt(top, "bos_token_id", what, -1, MAX_VOCAB, c->bos_token_id, &bos) < 0) return -1;
    c->bos_token_id = (int)bos;
    return parse_eos(top, what, c);
}

/* The text model's keys, from j (the family's defaults filled in). */
static int parse_text_config(const cJSON *j, const rosa_arch_desc *ad, const char *what, rosa_config *c) {
    int err;
    const char *want = ad->geglu ? "gelu_pytorch_tanh" : "silu";
    for (int i = 0; i < 2; i++) {
        const char *key = i ? "hidden_activation" : "hidden_act";
        const char *act = rosa_json_str_opt(j, key, what, &err);
        if (err) return -1;
        if (act && strcmp(act, want) != 0)
            return rosa_fail("%s: unsupported %s \"%s\" (%s needs %s)", what, key, act, ad->hf_name, want);
    }

    if (get_int(j, "vocab_size", what, 1, MAX_VOCAB, &c->vocab_size) < 0 ||
        get_int(j, "hidden_size", what, 1, MAX_HIDDEN, &c->hidden_size) < 0 ||
        get_int(j, "intermediate_size", what, 1, 8 * MAX_HIDDEN, &c->intermediate_size) < 0 ||
        get_int(j, "num_hidden_layers", what, 1, MAX_LAYERS, &c->num_layers) < 0 ||
        get_int(j, "num_attention_heads", what, 1, MAX_HEADS, &c->num_heads) < 0 ||
        get_int_opt(j, "num_key_value_heads", what, 1, MAX_HEADS, c->num_heads, &c->num_kv_heads) < 0 ||
        get_int_opt(j, "max_position_embeddings", what, 1, MAX_POSITIONS, 2048, &c->max_position_embeddings) < 0)
        return -1;
    if (c->num_heads % c->num_kv_heads != 0)
        return rosa_fail("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", what, c->num_heads, c->num_kv_heads);
    int def_hd = c->hidden_size % c->num_heads == 0 ? c->hidden_size / c->num_heads : 0;
    if (get_int_opt(j, "head_dim", what, 1, 4096, def_hd, &c->head_dim) < 0) return -1;
    if (c->head_dim == 0) return rosa_fail("%s: hidden_size %d is not a multiple of num_attention_heads %d and no head_dim is given", what, c->hidden_size, c->num_heads);
    if (c->head_dim % 2) return rosa_fail("%s: head_dim %d must be even for RoPE", what, c->head_dim);
    if (c->head_dim > 4096) /* the default, hidden_size / num_attention_heads, is bounded too (found by fuzzing) */
        return rosa_fail("%s: head_dim %d (hidden_size / num_attention_heads) is out of range [1, 4096]", what, c->head_dim);
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);

    double eps, theta;
    if (rosa_json_num_opt(j, "rms_norm_eps", what, 1e-6, &eps) < 0 ||
        rosa_json_num_opt(j, "rope_theta", what, 10000.0, &theta) < 0)
        return -1;
    /* transformers 5 writes rope_parameters: theta and scaling together, per
     * layer type for interleaved families (Gemma 3's full_attention and
     * sliding_attention). */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling"),
                *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp)) return rosa_fail("%s: \"rope_parameters\" must be an object", what);
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention"),
                    *slide = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
        rs = full ? full : rp;
        if (!cJSON_IsObject(rs)) return rosa_fail("%s: rope_parameters.full_attention must be an object", what);
        if (rosa_json_num_opt(rs, "rope_theta", what, theta, &theta) < 0) return -1;
        if (slide) {
            double local;
            const char *type = cJSON_IsObject(slide) ? rosa_json_str_opt(slide, "rope_type", what, &err) : NULL;
            if (!cJSON_IsObject(slide) || err || (type && strcmp(type, "default") != 0))
                return rosa_fail("%s: rope_parameters.sliding_attention must be an object of rope_type default", what);
            if (rosa_json_num_opt(slide, "rope_theta", what, 10000.0, &local) < 0) return -1;
            if (!(local > 1 && local <= FLT_MAX)) return rosa_fail("%s: sliding rope_theta %g must be > 1", what, local);
            c->rope_local_theta = (float)local;
        }
    }
    /* Both are used as floats: eps must not round to 0, theta must fit (found by fuzzing). */
    if (!(eps > 0 && eps < 1) || !((float)eps > 0)) return rosa_fail("%s: rms_norm_eps %g out of range", what, eps);
    if (!(theta > 1 && theta <= FLT_MAX)) return rosa_fail("%s: rope_theta %g must be > 1 (and fit a float)", what, theta);
    c->rms_norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (parse_rope_scaling(rs, what, c) < 0) return -1;

    double prf;
    if (rosa_json_num_opt(j, "partial_rotary_factor", what, 1.0, &prf) < 0) return -1;
    if (prf != 1.0) return rosa_fail("%s: unsupported partial_rotary_factor %g (only 1.0)", what, prf);
    long long tp;
    if (rosa_json_int_opt(j, "pretraining_tp", what, 1, 64, 1, &tp) < 0) return -1;

    int tie_default = 0;
    if (rosa_json_bool_opt(j, "tie_word_embeddings", what, tie_default, &c->tie_word_embeddings) < 0) return -1;
    /* Read (and bounded) for every family; the family decides whether it applies. */
    long long sw;
    if (rosa_json_int_opt(j, "sliding_window", what, 0, MAX_POSITIONS, 0, &sw) < 0) return -1;
    if (ad->parse(j, what, c) < 0) return -1;

    long long bos;
    if (rosa_json_int_opt(j, "bos_token_id", what, -1, MAX_VOCAB, -1, &bos) < 0) return -1;
    c->bos_token_id = (int)bos;
    return parse_eos(j, what, c);
}

int rosa_config_parse(const char *json, size_t len, const char *what, rosa_config *c) {
    cJSON *j = rosa_json_parse(json, len, what);
    if (!j) return -1;
    int rc = parse_config(j, what, c);
    cJSON_Delete(j);
    return rc;
}

int rosa_config_load(const char *dir, rosa_config *c) {
    if (!rosa_is_dir(dir)) return rosa_fail("%s: model directory not found", dir);
    char *path = rosa_path_join(dir, "config.json");
    if (!path) return -1;
    cJSON *j = rosa_json_load(path);
    int rc = j ? parse_config(j, path, c) : -1;
    cJSON_Delete(j);
    free(path);
    if (rc < 0) return -1;
    /* generation_config.json, when present, decides the EOS ids and BOS. */
    path = rosa_path_join(dir, "generation_config.json");
    if (!path) return -1;
    if (rosa_file_exists(path)) {
        j = rosa_json_load(path);
        if (!j) rc = -1;
        else if (!cJSON_IsObject(j)) rc = rosa_fail("%s: not a JSON object", path);
        else {
            long long bos;
            rc = parse_eos(j, path, c);
            if (rc == 0) rc = rosa_json_int_opt(j, "bos_token_id", path, -1, MAX_VOCAB, c->bos_token_id, &bos);
            if (rc == 0) c->bos_token_id = (int)bos;
        }
        cJSON_Delete(j);
    }
    free(path);
    return rc;
}
