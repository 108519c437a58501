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
#include "rosa_train.h"

/* rosa_analysis, rosa_analyze and rosa_analysis_free are public
 * (rosa_train.h); analyze.c computes them. */

#endif
