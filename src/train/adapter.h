/* adapter.h: trainable adapters (LoRA, and RoAE for RoSA): a table
 * of tensors carved from flat parameter and gradient buffers, PEFT-style
 * files in and out. */
#ifndef ROSA_ADAPTER_H
#define ROSA_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "rosa.h"

struct rosa_model;
typedef struct rosa_model rosa_model;

typedef enum { ROSA_METHOD_LORA = 1, ROSA_METHOD_ROAE = 2 } rosa_method;

/* The seven linear projections of a decoder layer, in PEFT's names. */
enum { MOD_Q, MOD_K, MOD_V, MOD_O, MOD_GATE, MOD_UP, MOD_DOWN, N_MODULES };
extern const char *const rosa_module_names[N_MODULES]; /* "q_proj", ... */

/* One trainable tensor: rows x cols floats at `offset` in the flat buffers. */
typedef struct {
    char name[128]; /* PEFT name, e.g. base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight */
    int layer;
    int rows, cols;
    int ndim;       /* 2, or 1 for a vector (RMSNorm weights, rows = 1) */
    size_t offset;
} rosa_param;

typedef struct {
    int rank;                 /* r */
    float alpha;              /* lora_alpha */
    int rslora;               /* scaling alpha/sqrt(r) instead of alpha/r */
    float dropout;            /* on the adapter input */
    unsigned targets;         /* bit m set: module m adapted (when target_regex is NULL) */
    const char *target_regex; /* PEFT's string form: full-match on module names */
    const int *layers;        /* layers_to_transform, NULL = all */
    int n_layers;
} rosa_lora_options;

/* RoAE (RoPE-aware attention enhancement), see docs/method.md. */
typedef struct {
    int rank;         /* r, default 32 */
    float alpha;      /* gate scale, used as is (default 1) */
    float r_low;      /* share of each head's dimensions adapted (default 0.25) */
    int target_q, target_k;
    int pre_rope;     /* 0: modulate after RoPE (default), 1: before */
    int add_form;     /* 0: Z + Z*(alpha*SiLU(hAB)) (default), 1: Z + alpha*hAB */
    float dropout;    /* on h for the adapter branch (default 0) */
    int train_norms;  /* also train the RMSNorm weights of active layers */
} rosa_roae_options;

/* Dynamic layer selection, see docs/method.md. */
typedef struct {
    int enabled;
    int interval;     /* u, default 50 */
    int warmup;       /* default = interval */
    float k_ratio;    /* default 0.5 */
    float p_exploit;  /* default 0.8 */
    float score_ema;  /* default 0 */
    int zero_grad;    /* inactive layers: 0 skip (default), 1 zero their gradients */
    uint64_t seed;
    int full_backward; /* always run the backward to layer 0 (for comparison; not saved) */
} rosa_dls_options;

void rosa_roae_options_default(rosa_roae_options *o);
void rosa_dls_options_default(rosa_dls_options *o);

typedef struct {
    rosa_method method;
    int L;                          /* decoder layers of the base model */
    rosa_roae_options roae;
    rosa_dls_options dls;           /* saved with ROSA adapters */
    int m_low, d_low;               /* RoAE: m and 2m low-frequency dimensions per head */
    int *low_dims;                  /* [d_low]: the set D, in order */
    int (*roae_idx)[2];             /* [L][q, k]: index of roae lora_A (B follows), -1 */
    int *norm_idx;                  /* [L]: index of input_layernorm (post follows) when train_norms, -1 */
    rosa_lora_options lora;         /* copy; pointers inside are not kept */
    float scaling;                  /* LoRA: alpha/r or alpha/sqrt(r) */
    char *target_regex;             /* owned copy, or NULL */
    uint8_t *layer_on;              /* [L]: layers_to_transform */
    int (*lora_idx)[N_MODULES];     /* [L][7]: index of lora_A in params (B follows), -1 */
    rosa_param *params;
    int n_params;
    size_t n_floats;
    float *w, *g;                   /* [n_floats] values and gradients */
} rosa_adapter;

void rosa_lora_options_default(rosa_lora_options *o);
/* A new LoRA adapter with PEFT's initialisation: A Kaiming-uniform (a = sqrt(5),
 * i.e. U(-1/sqrt(in), 1/sqrt(in))), B = 0.  Values drawn from `seed`. */
rosa_adapter *rosa_adapter_new_lora(const rosa_config *c, const rosa_lora_options *o, uint64_t seed);
void rosa_adapter_free(rosa_adapter *a);
/* Parses "q_proj,v_proj" (or "all") into a module bit set; -1 on an unknown name. */
int rosa_parse_target_modules(const char *list, unsigned *mask);

/* Writes dir/adapter_config.json and dir/adapter_model.safetensors (PEFT
 * layout, F32), each atomically. */
int rosa_adapter_save(const rosa_adapter *a, const char *dir, const char *base_model);
/* Reads an adapter directory written by rosa or PEFT and checks it against
 * the model config; unsupported keys are refused by name. */
rosa_adapter *rosa_adapter_load(const char *dir, const rosa_config *c);
/* A new RoAE adapter: A Kaiming-uniform, B = 0 (the model is unchanged at
 * step 0); with train_norms, the norm weights start at the model's values. */
rosa_adapter *rosa_adapter_new_roae(const rosa_model *m, const rosa_roae_options *o, uint64_t seed);
/* Parameters a LoRA adapter with options o but rank r would have. */
int64_t rosa_lora_num_params(const rosa_config *c, const rosa_lora_options *o, int rank);
/* Parameters a RoAE adapter of rank r would have (for --param-budget). */
int64_t rosa_roae_num_params(const rosa_config *c, const rosa_roae_options *o, int rank);

/* Copies values of `src` into `dst` (same method and shapes). */
int rosa_adapter_copy_values(rosa_adapter *dst, const rosa_adapter *src);
/* Trainable parameters. */
int64_t rosa_adapter_num_params(const rosa_adapter *a);

#endif
