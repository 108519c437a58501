/* gemma3.c: Gemma 3's text model (Gemma3ForCausalLM, and the text part of
 * Gemma3ForConditionalGeneration), as transformers' modeling_gemma3.py
 * computes it (followed at commit 003320480b9e): the Llama block with
 * embeddings scaled by sqrt(hidden), RMSNorms scaling by (1 + w), sandwich
 * norms around both sublayers, q_norm/k_norm, a GeGLU MLP (tanh GELU), the
 * attention scale query_pre_attn_scalar^-0.5, and sliding-window layers with
 * their own RoPE base between global ones. */
#include <math.h>

#include "arch/arch.h"
#include "io/json.h"
#include "core/util.h"

#define MAX_WINDOW (1 << 24)

static int parse_gemma3(const cJSON *j, const char *what, rosa_config *c) {
    long long sw, pattern;
    double qpas, local;
    int bidi;
    if (rosa_json_bool_opt(j, "attention_bias", what, 0, &c->attention_bias) < 0 ||
        rosa_json_int_opt(j, "sliding_window", what, 1, MAX_WINDOW, 4096, &sw) < 0 ||
        rosa_json_int_opt(j, "_sliding_window_pattern", what, 1, 1 << 20, 6, &pattern) < 0 ||
        rosa_json_int_opt(j, "sliding_window_pattern", what, 1, 1 << 20, pattern, &pattern) < 0 ||
        rosa_json_num_opt(j, "query_pre_attn_scalar", what, 256.0, &qpas) < 0 ||
        rosa_json_num_opt(j, "rope_local_base_freq", what, c->rope_local_theta > 0 ? c->rope_local_theta : 10000.0,
                          &local) < 0 ||
        rosa_json_bool_opt(j, "use_bidirectional_attention", what, 0, &bidi) < 0)
        return -1;
    if (bidi) return rosa_fail("%s: use_bidirectional_attention is not supported (causal attention only)", what);
    /* Gemma 2 capped logits with tanh; Gemma 3 does not, and rosa does not implement it. */
    static const char *const caps[] = {"final_logit_softcapping", "attn_logit_softcapping"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, caps[i]);
        if (x && !cJSON_IsNull(x)) return rosa_fail("%s: %s is not supported (Gemma 3 uses none)", what, caps[i]);
    }
    if (!(qpas > 0 && qpas < 1e9)) return rosa_fail("%s: query_pre_attn_scalar %g must be positive", what, qpas);
    if (!(local > 1 && local < 1e30)) return rosa_fail("%s: rope_local_base_freq %g must be > 1", what, local);
    c->attn_scale = (float)pow(qpas, -0.5);
    c->rope_local_theta = (float)local;
    c->sliding_window = (int)sw;
    int given;
    if (rosa_arch_layer_types(j, what, c, &given) < 0) return -1;
    /* Gemma3TextConfig without layer_types: every pattern-th layer is global. */
    for (int l = 0; !given && l < c->num_layers; l++)
        if ((l + 1) % pattern) c->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
    return 0;
}

/* Sliding layers: the window and rope_local_base_freq without scaling;
 * global layers: full attention, rope_theta with rope_scaling. */
static void gemma3_layer_props(const rosa_config *c, int l, rosa_layer_props *p) {
    int s = rosa_arch_layer_slides(c, l);
    p->window = s ? c->sliding_window : 0;
    p->rope_theta = s ? c->rope_local_theta : c->rope_theta;
    p->rope_scaling = !s;
}

/* Gemma3TextConfig's defaults (the multimodal configs on the Hub rely on them). */
#define GEMMA3_DEFAULTS                                                                                        \
    "{\"vocab_size\": 262208, \"hidden_size\": 2304, \"intermediate_size\": 9216, \"num_hidden_layers\": 26, " \
    "\"num_attention_heads\": 8, \"num_key_value_heads\": 4, \"head_dim\": 256, "                              \
    "\"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-6, \"eos_token_id\": 1, \"bos_token_id\": 2, "  \
    "\"tie_word_embeddings\": true, \"rope_theta\": 1000000.0}"

#define GEMMA3_COMMON                                                                                   \
    .parse = parse_gemma3, .n_norms = 2, .norm_names = {"input_layernorm", "pre_feedforward_layernorm"}, \
    .layer_props = gemma3_layer_props,                                                                   \
    .xnorm_names = {"self_attn.q_norm", "self_attn.k_norm", "post_attention_layernorm",                 \
                    "post_feedforward_layernorm"},                                                      \
    .defaults = GEMMA3_DEFAULTS, .norm_plus_one = 1, .geglu = 1, .embed_scale = 1

const rosa_arch_desc rosa_arch_gemma3 = {.hf_name = "Gemma3ForCausalLM", .model_type = "gemma3_text",
                                         .id = ROSA_ARCH_GEMMA3, GEMMA3_COMMON};
const rosa_arch_desc rosa_arch_gemma3_mm = {.hf_name = "Gemma3ForConditionalGeneration", .model_type = "gemma3",
                                            .id = ROSA_ARCH_GEMMA3_MM, .text_config = "text_config", GEMMA3_COMMON};
