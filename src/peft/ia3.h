/* ia3.h: (IA)^3 as PEFT computes it (src/peft/tuners/ia3/, PEFT commit
 * 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40): a learned vector l per adapted
 * linear layer.  A feed-forward module scales its input,
 *   y = (x * l) W^T + b,          l: ia3_l [1, in];
 * any other scales its output,
 *   y = (x W^T + b) * l,          l: ia3_l [out, 1].
 * l starts at ones (the model is unchanged); both forms merge into W. */
#ifndef ROSA_PEFT_IA3_H
#define ROSA_PEFT_IA3_H

#include "peft/peft.h"
#include "model/weight.h"
#include "peft/format.h"
#include "peft/targets.h"

typedef struct {
    rosa_peft_targets targets; /* PEFT's target_modules (NULL names: k_proj,v_proj,down_proj) */
    rosa_peft_targets ff;      /* feedforward_modules (NULL names: down_proj) */
} rosa_ia3_options;

extern const rosa_peft_method rosa_peft_ia3;

/* PEFT's IA3Config fields (besides PeftConfig's). */
extern const rosa_peft_field rosa_ia3_fields[];

/* y[N][out] += (x * (l - 1)) W^T: the feed-forward form's term (s [N][in] scratch). */
int ia3_input_forward(const rosa_weight *w, float *y, const float *x, const float *l, float *s, int N);
/* dx[N][in] += (dy W) * (l - 1); gl[in] += sum_n (dy W) * x (gl NULL: none); u [N][in] scratch. */
int ia3_input_backward(const rosa_weight *w, float *dx, float *gl, const float *dy, const float *x, const float *l,
                       float *u, int N);
/* z[N][out] = x W^T + b; y += z * (l - 1): the output form's term. */
int ia3_output_forward(const rosa_weight *w, const float *b, float *y, float *z, const float *x, const float *l, int N);
/* dx[N][in] += (dy * (l - 1)) W; gl[out] += sum_n dy * z (gl NULL: none); s [N][out] scratch. */
int ia3_output_backward(const rosa_weight *w, float *dx, float *gl, const float *dy, const float *z, const float *l,
                        float *s, int N);

#endif
