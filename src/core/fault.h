/* fault.h: the one fault-injection point of the library.
 *
 * Some failures that the tests must exercise cannot be produced from the
 * outside reliably (a NaN loss at a chosen step of a real model: no data
 * set makes one on demand).  Rather than a test hook of its own in each
 * place, every such place asks ROSA_FAULT("name"), and one environment
 * variable, ROSA_FAULT=name[:arg], turns on one of them in one process:
 *
 *     const char *arg = ROSA_FAULT("nan-step"); // NULL unless ROSA_FAULT=nan-step[:...]
 *
 * ROSA_FAULT gives NULL when the variable is unset or names another fault,
 * else arg ("" when there is none); a pointer into the environment, valid
 * until it changes.  Unset, it costs one getenv per call: keep the points
 * off inner loops.  Built with -DROSA_NO_FAULTS, every point is a constant
 * NULL and compiles away.
 *
 * The points (each documented where it is; the tests that use them):
 *   nan-step:N   src/train/trainer.c: the loss of optimizer step N (from 1)
 *                is NaN (tests/test_train.c, tests/test_robustness_faults.c).
 */
#ifndef ROSA_FAULT_H
#define ROSA_FAULT_H

#ifdef ROSA_NO_FAULTS
#define ROSA_FAULT(name) ((const char *)0)
#else
#define ROSA_FAULT(name) rosa_fault(name)
#endif

/* ROSA_FAULT's function: see above. */
const char *rosa_fault(const char *name);

#endif
