/* eval.h: `rosa eval`: runs the LLM-Adapters benchmarks on a model (with an
 * adapter applied), scores them as the reference scripts do, and reports per
 * task and per group (docs/eval.md). */
#ifndef ROSA_EVAL_H
#define ROSA_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "eval/beam.h"
#include "rosa.h"
#include "rosa_train.h"

/* The options, the report and the functions of `rosa eval` are public
 * (rosa_train.h). */

/* Loglik mode for one example: the summed log-probability of the tokens of
 * prompt + "the correct answer is " + option[i] after the prompt's own tokens
 * (the longest common prefix of the two encodings), for every option.
 * scores[n_options].  Returns 0 or -1. */
int rosa_loglik_options(rosa_model *m, const char *prompt, const char *const *options, int n_options,
                        double *scores);

#endif
