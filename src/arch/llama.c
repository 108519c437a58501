/* llama.c: the Llama block family: Llama 2/3/3.x, Qwen2/2.5 and Mistral
 * share one decoder block (RMSNorm, GQA attention with RoPE, SwiGLU MLP) and
 * differ in flags read here. */
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

/* Qwen2: q/k/v biases always; a sliding window only with use_sliding_window. */
static int parse_qwen2(const cJSON *j, const char *what, rosa_config *c) {
    c->qkv_bias = 1;
    int use_sw;
    long long sw;
    if (rosa_json_bool_opt(j, "use_sliding_window", what, 0, &use_sw) < 0 ||
        rosa_json_int_opt(j, "sliding_window", what, 0, MAX_WINDOW, 0, &sw) < 0)
        return -1;
    if (use_sw) c->sliding_window = (int)sw;
    return 0;
}

/* Mistral: attention within sliding_window (null or absent: none). */
static int parse_mistral(const cJSON *j, const char *what, rosa_config *c) {
    long long sw;
    if (rosa_json_int_opt(j, "sliding_window", what, 0, MAX_WINDOW, 0, &sw) < 0) return -1;
    c->sliding_window = (int)sw;
    return 0;
}

/* Every layer of the family has the config's window and RoPE (layer_props NULL). */
#define LLAMA_NORMS 2, {"input_layernorm", "post_attention_layernorm"}, NULL

const rosa_arch_desc rosa_arch_llama = {"LlamaForCausalLM", "llama", ROSA_ARCH_LLAMA, parse_llama, LLAMA_NORMS};
const rosa_arch_desc rosa_arch_qwen2 = {"Qwen2ForCausalLM", "qwen2", ROSA_ARCH_QWEN2, parse_qwen2, LLAMA_NORMS};
const rosa_arch_desc rosa_arch_mistral = {"MistralForCausalLM", "mistral", ROSA_ARCH_MISTRAL, parse_mistral,
                                          LLAMA_NORMS};
