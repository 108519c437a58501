/* optim.h: AdamW (torch.optim.AdamW semantics), gradient clipping
 * (clip_grad_norm_) and the learning-rate schedules of transformers. */
#ifndef ROSA_OPTIM_H
#define ROSA_OPTIM_H

#include <stdint.h>

#include "peft/peft.h"
#include "rosa_train.h"

/* rosa_adamw_options, rosa_schedule and rosa_parse_schedule are public (rosa_train.h). */

/* Moments over the adapter's flat buffer and one step count per tensor (a
 * tensor that is not updated keeps its count, as PyTorch does for a
 * parameter whose grad is None). */
typedef struct {
    float *m, *v;   /* [n_floats] */
    int64_t *step;  /* [n_params] */
    size_t n_floats;
    int n_params;
} rosa_adamw;

int rosa_adamw_init(rosa_adamw *opt, const rosa_adapter *a);
void rosa_adamw_free(rosa_adamw *opt);
/* One update of every tensor i with active == NULL or active[i] != 0. */
void rosa_adamw_step(rosa_adamw *opt, rosa_adapter *a, const uint8_t *active, float lr, const rosa_adamw_options *o);
/* Whether the training state is one a checkpoint can hold and a resume can
 * continue: every adapter value and first moment finite, every second moment
 * finite and >= 0, every step count in [0, max_step].  Returns 0, or -1 with
 * `what` (n bytes) naming the tensor and the value, e.g.
 * "\"...lora_A.weight.exp_avg_sq\" holds -1 (must be finite and >= 0)". */
int rosa_adamw_check(const rosa_adamw *opt, const rosa_adapter *a, int64_t max_step, char *what, size_t n);

/* L2 norm of the gradients of the active tensors (torch: norm of per-tensor norms). */
double rosa_grad_norm(const rosa_adapter *a, const uint8_t *active);
/* clip_grad_norm_: scales active gradients by min(1, max_norm / (norm + 1e-6)). */
void rosa_clip_grads(rosa_adapter *a, const uint8_t *active, double norm, float max_norm);

/* The multiplier of the base lr at optimizer step t (from 0) of `total`. */
double rosa_lr_factor(rosa_schedule s, int64_t t, int64_t total, int64_t warmup);

#endif
