/* arch.h: the table of model architectures.
 *
 * An architecture entry says what a Hugging Face config.json of that family
 * means beyond the keys every Llama-family config shares (read by config.c):
 * its own keys and flags (biases, sliding window), and the layer's norms by
 * name, in block order.  The tensor names and shapes of a layer, which every
 * family here shares, are the helpers below: the one owner of those facts.
 * Adding a family whose block is the Llama block with other flags is one
 * entry in arch/registry.c and a parse function (see arch/llama.c). */
#ifndef ROSA_ARCH_H
#define ROSA_ARCH_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "rosa.h"

/* The seven linear projections of a decoder layer, in block order. */
enum { PROJ_Q, PROJ_K, PROJ_V, PROJ_O, PROJ_GATE, PROJ_UP, PROJ_DOWN, N_PROJ };
/* A layer's pre-sublayer RMSNorms (the ones DLS scores and RoAE may train);
 * an architecture has the first n_norms of them. */
enum { NORM_ATTN, NORM_FFN, MAX_NORMS = 4 };
/* The other per-layer norms some families have: q_norm and k_norm over a
 * head (Qwen3, Gemma 3), the sandwich norms on each sublayer's output
 * (Gemma 3).  Frozen and never scored. */
enum { XNORM_Q, XNORM_K, XNORM_POST_ATTN, XNORM_POST_FFN, N_XNORMS };

/* What may differ from layer to layer (interleaved local and global layers). */
typedef struct {
    int window;         /* attention window in tokens, 0 = full causal attention */
    float rope_theta;   /* RoPE base of the layer */
    int rope_scaling;   /* whether config.json's rope_scaling applies to it */
} rosa_layer_props;

typedef struct {
    const char *hf_name;      /* "architectures"[0], e.g. "LlamaForCausalLM" */
    const char *model_type;   /* config.json "model_type", e.g. "llama" */
    rosa_arch id;
    /* Reads the family's own keys into c (the common ones are already set). */
    int (*parse)(const cJSON *j, const char *what, rosa_config *c);
    int n_norms;
    const char *norm_names[MAX_NORMS]; /* tensor names within a layer, without ".weight" */
    /* Layer l's properties (NULL: the config's RoPE, and its window where
     * sliding_layers says the layer slides). */
    void (*layer_props)(const rosa_config *c, int layer, rosa_layer_props *p);
    /* Tensor names of the extra norms within a layer (NULL: the family has
     * none of that kind); q/k norms are [head_dim], post norms [hidden]. */
    const char *xnorm_names[N_XNORMS];
    /* Defaults of the family's config class for keys config.json may omit
     * (a JSON object; NULL: none). */
    const char *defaults;
    /* The key holding the text model's config in a multimodal config.json
     * (NULL: the config is the text model's), whose text weights may sit
     * under "language_model." (rosa_arch_weight_name). */
    const char *text_config;
    int norm_plus_one;  /* RMSNorms scale by (1 + w) (Gemma) */
    int geglu;          /* MLP activation gelu_pytorch_tanh instead of SiLU */
    int embed_scale;    /* embeddings multiplied by sqrt(hidden_size) */
} rosa_arch_desc;

/* The entry for an "architectures" name, or when it is NULL for a model_type;
 * NULL when unknown. */
const rosa_arch_desc *rosa_arch_find(const char *hf_name, const char *model_type);
/* The entry of a loaded config (never NULL for a config rosa parsed). */
const rosa_arch_desc *rosa_arch_of(const rosa_config *c);
/* "LlamaForCausalLM, Qwen2ForCausalLM, ..." for error messages. */
const char *rosa_arch_names(void);

/* Layer l's properties under config c (through its architecture's entry). */
void rosa_layer_props_of(const rosa_config *c, int layer, rosa_layer_props *p);

/* PEFT's module names ("q_proj", ...) and their parents ("self_attn", "mlp"). */
extern const char *const rosa_proj_names[N_PROJ];
const char *rosa_proj_parent(int p);
/* in and out features of projection p (y[out] = W[out][in] x). */
void rosa_proj_shape(const rosa_config *c, int p, int *in, int *out);
/* Whether projection p has a bias under config c. */
int rosa_proj_has_bias(const rosa_config *c, int p);
/* "model.layers.3.self_attn.q_proj" into buf. */
void rosa_proj_tensor_name(char *buf, size_t n, int layer, int p);
/* Whether layer l is a sliding-window layer (its bit in c->sliding_layers). */
int rosa_arch_layer_slides(const rosa_config *c, int layer);
/* Sets c->sliding_layers from config.json's "layer_types" (one
 * "sliding_attention" or "full_attention" per layer); *given says whether
 * the key was there.  0, or -1 with the error set. */
int rosa_arch_layer_types(const cJSON *j, const char *what, rosa_config *c, int *given);

/* The alt-th other name under which a multimodal checkpoint of config c may
 * store the text tensor `name` ("model.norm.weight" ->
 * "language_model.model.norm.weight", "model.language_model.norm.weight");
 * 0 when there is no such alternative. */
int rosa_arch_weight_name(const rosa_config *c, const char *name, int alt, char *buf, size_t n);

#endif
