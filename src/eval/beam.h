/* beam.h: deterministic decoding for evaluation: greedy search and the beam
 * search of two transformers versions, each prompt decoded as if alone, with
 * several prompts batched through one KV cache for speed.
 *
 * Rules (docs/eval.md has the details and the transformers sources):
 *   ROSA_BEAM_LLM_ADAPTERS  transformers 4.28 BeamSearchScorer (what produced
 *                           LLM-Adapters' published numbers): a finished
 *                           hypothesis scores sum_logprobs / len^lp with len the
 *                           whole sequence (prompt included, EOS excluded).
 *   ROSA_BEAM_HF            the vectorised beam search of transformers >= 4.50:
 *                           sum_logprobs / generated_len^lp (EOS included).
 * Both: length_penalty (default 1.0), early_stopping False, 2 * num_beams
 * candidates per step (hf: max(2, 1 + n_eos) * num_beams), first beam 0 with
 * the others at -1e9.  num_beams 1 is greedy search. */
#ifndef ROSA_BEAM_H
#define ROSA_BEAM_H

#include <stdint.h>

#include "rosa.h"
#include "rosa_train.h" /* rosa_beam_rule */

typedef struct {
    int num_beams;          /* 1 = greedy (default 4) */
    rosa_beam_rule rule;    /* default ROSA_BEAM_LLM_ADAPTERS */
    int max_new_tokens;     /* >= 1 (default 32) */
    double length_penalty;  /* default 1.0 */
    const int32_t *eos;     /* end-of-sequence ids; NULL = the model's (generation_config.json) */
    int n_eos;
} rosa_decode_params;

void rosa_decode_params_default(rosa_decode_params *p);

/* One decoded prompt. */
typedef struct {
    int32_t *ids;    /* the new ids as transformers returns them: with the EOS that ended the
                      * hypothesis (llm-adapters: the first EOS id, appended by finalize) */
    int n;
    double score;    /* beams: the returned hypothesis' normalised score; greedy: sum of logprobs */
    int ended_eos;   /* 1 when the hypothesis ended with EOS, 0 when it ran to max_new_tokens */
} rosa_decode_result;

/* Called once per prompt as it completes (not in prompt order).  `res` is
 * only valid during the call.  Return non-zero to stop decoding (the value is
 * then returned by rosa_decode). */
typedef int (*rosa_decode_fn)(int index, const rosa_decode_result *res, void *user);

/* Decodes prompts[0..n) (each lens[i] >= 1 ids), up to `batch` prompts at a
 * time (batch * num_beams cache rows).  Each prompt is computed once and its
 * KV cache copied into its beams' rows; a finished prompt's rows are refilled
 * with the next prompt.  Returns 0, -1 on error (rosa_last_error), or the
 * callback's non-zero value. */
int rosa_decode(rosa_model *m, int n, const int32_t *const *prompts, const int *lens, const rosa_decode_params *p,
                int batch, rosa_decode_fn on_done, void *user);

/* The same, collecting the results into out[0..n) (free each with
 * rosa_decode_result_free). */
int rosa_decode_all(rosa_model *m, int n, const int32_t *const *prompts, const int *lens, const rosa_decode_params *p,
                    int batch, rosa_decode_result *out);
void rosa_decode_result_free(rosa_decode_result *r);

#endif
