/* lora.h: LoRA (Hu et al.), exactly as Hugging Face PEFT computes, initialises
 * and saves it: y = x W^T + s * (drop(x) A^T) B^T with s = alpha / r (or
 * alpha / sqrt(r) with rsLoRA), A Kaiming-uniform, B = 0.
 *
 * DoRA (use_dora, Liu et al.; PEFT's lora/dora.py and variants.py at commit
 * 5d602fd): a magnitude m [out] per module, initialised to the row norms of
 * W + s B A (= ||W|| while B = 0), and g = m / n with n = ||W + s B A|| per
 * output row, detached from the gradient (the paper's section 4.3, as PEFT):
 *   y = x W^T + b + (g - 1) * (x' W^T) + g * s * (x' A^T) B^T
 * where x' = x, and (x' W^T) = y - b, unless dropout is active in training,
 * where x' = drop(x) and x' W^T is a second product, as PEFT computes it. */
#ifndef ROSA_LORA_H
#define ROSA_LORA_H

#include "peft/format.h"
#include "peft/peft.h"

/* One key of PEFT's rank_pattern or alpha_pattern: a regex that selects the
 * modules whose name ends in a match ("q_proj", "layers\\.0\\..*"), and its value. */
typedef struct {
    char *key;
    float value;
} rosa_lora_pattern;

typedef struct {
    int rank;           /* r (default 8) */
    float alpha;        /* lora_alpha (default 16) */
    int rslora;         /* scaling alpha/sqrt(r) instead of alpha/r */
    int dora;           /* use_dora: weight-decomposed LoRA */
    float dropout;      /* on the adapter input (default 0.05) */
    unsigned targets;   /* bit p set: projection p adapted (when target_regex is NULL); default q, v */
    char *target_regex; /* PEFT's string form, full-matched on module names (owned) */
    int *layers;        /* layers_to_transform (owned), NULL = all */
    int n_layers;
    /* Per-module r and lora_alpha (owned; the first key that matches wins, as
     * PEFT's get_pattern_key); only from adapter_config.json. */
    rosa_lora_pattern *rank_pattern, *alpha_pattern;
    int n_rank_pattern, n_alpha_pattern;
} rosa_lora_options;

typedef struct {
    uint8_t *layer_on;      /* [L]: layers_to_transform */
    int (*idx)[N_PROJ];     /* [L][p]: index of lora_A in the table (B follows), -1 */
    float (*scale)[N_PROJ]; /* [L][p]: alpha / r of the module (alpha / sqrt(r) with rsLoRA) */
    int max_rank;           /* the largest r of any module */
    int max_out;            /* the largest output of any module */
    /* DoRA: ||W_o||^2 of each module's base rows, computed at first use ([L][p], owned). */
    double *(*w_sqnorm)[N_PROJ];
    int n_layers;
    /* Finite-difference checks: keep the norms of the last forward, as the
     * gradient treats them as constants (PEFT detaches them). */
    int hold_norms;
} rosa_lora_state;

extern const rosa_peft_method rosa_peft_lora;
/* Every field of PEFT's LoraConfig and how rosa treats it (NULL key ends it). */
extern const rosa_peft_field rosa_lora_fields[];

/* Parses "q_proj,v_proj" (or "all", "all-linear") into a projection bit set;
 * -1 on an unknown name. */
int rosa_parse_target_modules(const char *list, unsigned *mask);
void rosa_lora_options_default(rosa_lora_options *o);
/* A new LoRA adapter with PEFT's initialisation (values drawn from seed). */
rosa_adapter *rosa_adapter_new_lora(const rosa_config *c, const rosa_lora_options *o, uint64_t seed);
/* The state of a LoRA adapter (NULL for another method). */
const rosa_lora_state *rosa_lora_state_of(const rosa_adapter *a);

#endif
