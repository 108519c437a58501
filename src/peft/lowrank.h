/* lowrank.h: the low-rank branch out = s * (drop(x) A^T) B^T that LoRA and
 * RoAE share, with its saved state laid out in a method's activation region. */
#ifndef ROSA_LOWRANK_H
#define ROSA_LOWRANK_H

#include <stddef.h>
#include <stdint.h>

#include "rosa.h"

/* Saved state of one branch for N rows of `in` features. */
typedef struct {
    float *u;       /* [N][r]: drop(x) A^T */
    float *xd;      /* [N][in]: the dropped-out input (NULL without dropout) */
    uint8_t *keep;  /* [N][in]: its mask, 1 = kept */
} lowrank_acts;

/* A [r][in] as PEFT initialises it: kaiming_uniform_(a = sqrt(5)), i.e.
 * uniform in +-1/sqrt(in), drawn from rng in row-major order (B stays 0). */
void lowrank_init_a(float *A, int r, int in, rosa_rng *rng);

/* Floats one branch keeps, and its carving from *p (advanced past it). */
size_t lowrank_act_floats(int N, int in, int r, float p);
lowrank_acts lowrank_carve(float **region, int N, int in, int r, float p);

/* out[N][od] (=, or += with accumulate) s * (drop(x) A^T) B^T, with A [r][in],
 * B [od][r]; inverted dropout with probability p (one mask per branch, as
 * torch.nn.Dropout) drawn from drop (NULL: identity, as in evaluation). */
void lowrank_forward(lowrank_acts *ba, float *out, int accumulate, const float *x, const float *A, const float *B,
                     float s, int N, int in, int r, int od, float p, rosa_rng *drop);
/* Its backward: dx[N][in] += d/dx; dA, dB accumulate (NULL: no weight
 * gradients, for a frozen layer).  du [N][r] and, with dropout, dtmp [N][in]
 * are scratch. */
void lowrank_backward(const lowrank_acts *ba, float *dx, const float *dout, const float *x, const float *A,
                      const float *B, float *dA, float *dB, float s, int N, int in, int r, int od, float p, float *du,
                      float *dtmp);

#endif
