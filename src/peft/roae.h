/* roae.h: RoAE, the RoPE-aware attention enhancement of RoSA (docs/method.md):
 * per layer, a low-rank projection of the normed hidden state, through SiLU,
 * gates the low-frequency RoPE dimensions of the rotated Q and K states,
 *   Z* = Z + Z * (alpha * SiLU(h A^T B^T))   (gate form, default)
 *   Z* = Z + alpha * h A^T B^T               (add form)
 * after RoPE (default) or before it.  Not mergeable: its hook stays on at
 * inference.  Optionally it also trains the layers' RMSNorm weights. */
#ifndef ROSA_ROAE_H
#define ROSA_ROAE_H

#include "peft/peft.h"

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

typedef struct {
    int num_heads, num_kv_heads, head_dim; /* the head layout it was built for (recorded in its config) */
    int m_low, d_low;       /* m and 2m low-frequency dimensions per head */
    int *low_dims;          /* [d_low]: the set D, in order */
    int (*idx)[2];          /* [L][q, k]: index of roae lora_A (B follows), -1 */
    int *norm_idx;          /* [L]: index of the first norm weight (the next follows) when train_norms, -1 */
} rosa_roae_state;

extern const rosa_peft_method rosa_peft_roae;

void rosa_roae_options_default(rosa_roae_options *o);
/* A new RoAE adapter: A Kaiming-uniform, B = 0 (the model is unchanged at
 * step 0); with train_norms, the norm weights start at the model's values. */
rosa_adapter *rosa_adapter_new_roae(const rosa_model *m, const rosa_roae_options *o, uint64_t seed);
/* The state of a RoAE adapter (NULL for another method). */
const rosa_roae_state *rosa_roae_state_of(const rosa_adapter *a);

/* The modulation of z [N][H][hd] at the dimensions low_dims[0..dl) of every
 * head, by g [N][H][dl]; low [N][H][dl] (may be NULL) receives z at those
 * dimensions before. */
void roae_modulate_forward(float *z, float *low, const float *g, const int *low_dims, int N, int H, int hd, int dl,
                           float alpha, int add_form);
/* Its backward: dz [N][H][hd] in place (gradient after -> before), dg written. */
void roae_modulate_backward(float *dz, float *dg, const float *low, const float *g, const int *low_dims, int N, int H,
                            int hd, int dl, float alpha, int add_form);

#endif
