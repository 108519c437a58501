/* llama.c: the Llama block family: Llama 2/3/3.x, Qwen2/2.5, Qwen3 and
 * Mistral share one decoder block (RMSNorm, GQA attention with RoPE, SwiGLU
 * MLP) and differ in flags read here (Qwen3 adds q_norm/k_norm). */
#include "arch/arch.h"

#include "io/json.h"
#include "core/util.h"

/* The longest position a config may name (the same bound as config.c's). */
#define MAX_WINDOW (1 << 24)

/* Llama: optional q/k/v/o biases (attention_bias) and MLP biases. */
static int parse_llama(const cJSON *j, const char *what, rosa_config *c) {
    if (rosa_json_bool_opt(j, "attention_bias", what, 0, &c->attention_bias) < 0 ||
        rosa_json_bool_opt(j, "mlp_bias", what, 0, &c->mlp_bias) < 0)
        return -1;
    return 0;
}

/* Qwen2 and Qwen3: with use_sliding_window, the layers of layer_types
 * "sliding_attention", or without it those from max_window_layers on,
 * attend within sliding_window (Qwen2Config, Qwen3Config). */
static int parse_qwen_window(const cJSON *j, const char *what, rosa_config *c) {
    int use_sw, given;
    long long sw, from;
    if (rosa_json_bool_opt(j, "use_sliding_window", what, 0, &use_sw) < 0 ||
        rosa_json_int_opt(j, "sliding_window", what, 0, MAX_WINDOW, 0, &sw) < 0 ||
        rosa_json_int_opt(j, "max_window_layers", what, 0, 1 << 20, 28, &from) < 0)
        return -1;
    if (!use_sw || sw == 0) return 0;
    c->sliding_window = (int)sw;
    if (rosa_arch_layer_types(j, what, c, &given) < 0) return -1;
    for (int l = (int)from; !given && l < c->num_layers; l++) c->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
    return 0;
}

/* Qwen2: q/k/v biases always. */
static int parse_qwen2(const cJSON *j, const char *what, rosa_config *c) {
    c->qkv_bias = 1;
    return parse_qwen_window(j, what, c);
}

/* Qwen3: q/k/v/o biases only with attention_bias. */
static int parse_qwen3(const cJSON *j, const char *what, rosa_config *c) {
    if (rosa_json_bool_opt(j, "attention_bias", what, 0, &c->attention_bias) < 0) return -1;
    return parse_qwen_window(j, what, c);
}

/* Mistral: every layer attends within sliding_window (null or absent: none). */
static int parse_mistral(const cJSON *j, const char *what, rosa_config *c) {
    long long sw;
    if (rosa_json_int_opt(j, "sliding_window", what, 0, MAX_WINDOW, 0, &sw) < 0) return -1;
    c->sliding_window = (int)sw;
    for (int l = 0; sw > 0 && l < c->num_layers; l++) c->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
    return 0;
}

/* The family's layers differ only in their window (sliding_layers; layer_props NULL). */
#define LLAMA_NORMS .n_norms = 2, .norm_names = {"input_layernorm", "post_attention_layernorm"}

const rosa_arch_desc rosa_arch_llama = {.hf_name = "LlamaForCausalLM", .model_type = "llama", .id = ROSA_ARCH_LLAMA,
                                        .parse = parse_llama, LLAMA_NORMS};
const rosa_arch_desc rosa_arch_qwen2 = {.hf_name = "Qwen2ForCausalLM", .model_type = "qwen2", .id = ROSA_ARCH_QWEN2,
                                        .parse = parse_qwen2, LLAMA_NORMS};
const rosa_arch_desc rosa_arch_mistral = {.hf_name = "MistralForCausalLM", .model_type = "mistral",
                                          .id = ROSA_ARCH_MISTRAL, .parse = parse_mistral, LLAMA_NORMS};
/* Qwen3Config's defaults for the keys its configs may leave out. */
const rosa_arch_desc rosa_arch_qwen3 = {
    .hf_name = "Qwen3ForCausalLM", .model_type = "qwen3", .id = ROSA_ARCH_QWEN3, .parse = parse_qwen3, LLAMA_NORMS,
    .xnorm_names = {"self_attn.q_norm", "self_attn.k_norm"},
    .defaults = "{\"head_dim\": 128, \"max_position_embeddings\": 32768, \"rope_theta\": 10000.0}"};
