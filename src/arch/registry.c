/* registry.c: the architectures rosa knows, and the shared layer facts. */
#include "arch/arch.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"

extern const rosa_arch_desc rosa_arch_llama, rosa_arch_qwen2, rosa_arch_mistral, rosa_arch_qwen3, rosa_arch_gemma3,
    rosa_arch_gemma3_mm;

static const rosa_arch_desc *const archs[] = {&rosa_arch_llama,  &rosa_arch_qwen2,  &rosa_arch_mistral,
                                              &rosa_arch_qwen3, &rosa_arch_gemma3, &rosa_arch_gemma3_mm};
#define N_ARCHS (sizeof archs / sizeof archs[0])

const rosa_arch_desc *rosa_arch_find(const char *hf_name, const char *model_type) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if ((hf_name && strcmp(hf_name, archs[i]->hf_name) == 0) ||
            (!hf_name && model_type && strcmp(model_type, archs[i]->model_type) == 0))
            return archs[i];
    return NULL;
}

const rosa_arch_desc *rosa_arch_of(const rosa_config *c) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (archs[i]->id == c->arch) return archs[i];
    return archs[0];
}

const char *rosa_arch_names(void) {
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0, k = 0; i < N_ARCHS && k < sizeof buf; i++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "", archs[i]->hf_name);
    return buf;
}

void rosa_layer_props_of(const rosa_config *c, int layer, rosa_layer_props *p) {
    *p = (rosa_layer_props){rosa_arch_layer_slides(c, layer) ? c->sliding_window : 0, c->rope_theta, 1};
    const rosa_arch_desc *ad = rosa_arch_of(c);
    if (ad->layer_props) ad->layer_props(c, layer, p);
}

const char *const rosa_proj_names[N_PROJ] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};

const char *rosa_proj_parent(int p) { return p <= PROJ_O ? "self_attn" : "mlp"; }

void rosa_proj_shape(const rosa_config *c, int p, int *in, int *out) {
    int D = c->hidden_size, F = c->intermediate_size, Q = c->num_heads * c->head_dim,
        K = c->num_kv_heads * c->head_dim;
    static const char attn_in[N_PROJ] = {1, 1, 1, 0, 1, 1, 0};
    *in = attn_in[p] ? D : p == PROJ_O ? Q : F;
    switch (p) {
    case PROJ_Q: *out = Q; break;
    case PROJ_K: case PROJ_V: *out = K; break;
    case PROJ_GATE: case PROJ_UP: *out = F; break;
    default: *out = D; break;
    }
}

int rosa_proj_has_bias(const rosa_config *c, int p) {
    if (p <= PROJ_V) return c->attention_bias || c->qkv_bias;
    if (p == PROJ_O) return c->attention_bias;
    return c->mlp_bias;
}

void rosa_proj_tensor_name(char *buf, size_t n, int layer, int p) {
    snprintf(buf, n, "model.layers.%d.%s.%s", layer, rosa_proj_parent(p), rosa_proj_names[p]);
}

int rosa_arch_layer_slides(const rosa_config *c, int layer) { return c->sliding_layers[layer / 8] >> (layer % 8) & 1; }

int rosa_arch_layer_types(const cJSON *j, const char *what, rosa_config *c, int *given) {
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    *given = types && !cJSON_IsNull(types);
    if (!*given) return 0;
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != c->num_layers)
        return rosa_fail("%s: \"layer_types\" must list one type per layer (%d)", what, c->num_layers);
    int l = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, types) {
        const char *s = cJSON_IsString(t) ? t->valuestring : "";
        if (strcmp(s, "sliding_attention") == 0)
            c->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
        else if (strcmp(s, "full_attention") != 0)
            return rosa_fail("%s: layer_types[%d] must be \"sliding_attention\" or \"full_attention\"", what, l);
        l++;
    }
    return 0;
}

int rosa_arch_weight_name(const rosa_config *c, const char *name, int alt, char *buf, size_t n) {
    if (!rosa_arch_of(c)->text_config) return 0;
    /* The Hub's checkpoints nest the text model as language_model.model.*
     * (and language_model.lm_head); transformers >= 4.52 saves it as
     * model.language_model.* with lm_head at the top. */
    if (alt == 1) return snprintf(buf, n, "language_model.%s", name) < (int)n;
    if (alt == 2 && strncmp(name, "model.", 6) == 0) return snprintf(buf, n, "model.language_model.%s", name + 6) < (int)n;
    return 0;
}

int64_t rosa_config_num_params(const rosa_config *c) {
    const rosa_arch_desc *ad = rosa_arch_of(c);
    int64_t V = c->vocab_size, D = c->hidden_size, per_layer = (int64_t)ad->n_norms * D;
    for (int i = 0; i < N_XNORMS; i++)
        if (ad->xnorm_names[i]) per_layer += i <= XNORM_K ? c->head_dim : D;
    for (int p = 0; p < N_PROJ; p++) {
        int in, out;
        rosa_proj_shape(c, p, &in, &out);
        per_layer += (int64_t)in * out + (rosa_proj_has_bias(c, p) ? out : 0);
    }
    return V * D * (c->tie_word_embeddings ? 1 : 2) + D + per_layer * c->num_layers;
}
