/* analyze.h: the RoPE frequency analysis of `rosa analyze` (the RoSA paper's
 * Figure 1 on any model): how large the RoPE-rotated query and key states are
 * in each head dimension, per layer, and which dimensions --r-low selects.
 *
 * Definitions (docs/report.md), over the real tokens t of all records (each
 * record runs alone, positions 0..T-1) and the heads h of a layer:
 *   rms[h][j]   = sqrt(mean_t Z[t,h,j]^2)          Z = Q (H_q heads) or K (H_kv heads)
 *   norm[j]     = mean_h rms[h][j]                  "mean L2 norm of dimension j"
 *   band[i]     = mean_h sqrt(mean_t (Z[t,h,i]^2 + Z[t,h,i+d/2]^2)),  i < d/2,
 *                 the rotary pair of frequency inv_freq[i] (rotation-invariant)
 *   share       = sum_{h, j in D} sum_t Z^2 / sum_{h, j} sum_t Z^2
 * Z is the state attention uses: after RoPE and, with a RoAE adapter, after its
 * modulation (whichever the placement); K before grouped-query repetition.
 * D is RoAE's set for r_low: m = max(1, floor(d*r_low/2 + 0.5)), the last m
 * dimensions of each half. */
#ifndef ROSA_ANALYZE_H
#define ROSA_ANALYZE_H

#include <stdint.h>

#include "model/model.h"

typedef struct {
    int L, Hq, Hkv, hd;
    int n_records;
    long long n_tokens;
    float r_low;
    int m;             /* low-frequency dimensions per half */
    int *dims;         /* [2m] the set D */
    double *inv_freq;  /* [hd/2] */
    double *q_norm, *k_norm;   /* [L][hd] */
    double *q_band, *k_band;   /* [L][hd/2] */
    double *q_share, *k_share; /* [L] */
    double *q_sumsq, *k_sumsq; /* [L][Hq][hd], [L][Hkv][hd]: the raw sums */
} rosa_analysis;

/* Called after each record (may be NULL). */
typedef void (*rosa_analyze_progress)(void *user, int done, int total, long long tokens);

/* RoAE's m for head_dim hd and r_low; -1 (error set) when r_low is out of (0, 1]. */
int rosa_roae_m(int hd, float r_low);

/* Runs records ids[i][0..lens[i]) through m (with whatever adapter was applied
 * to it) and fills *out.  Records of length 0 are skipped. */
int rosa_analyze(rosa_model *m, const int32_t *const *ids, const int *lens, int n, float r_low,
                 rosa_analyze_progress progress, void *user, rosa_analysis *out);
void rosa_analysis_free(rosa_analysis *a);

#endif
