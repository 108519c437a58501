/* mem_plan.h: what the memory plans of model/ and train/ share. */
#ifndef ROSA_MEM_PLAN_H
#define ROSA_MEM_PLAN_H

#include <stdint.h>

#include "rosa.h"

/* The math libraries' resident working set once computing in dtype (a
 * measured constant, docs/memory.md). */
int64_t rosa_plan_libraries(rosa_dtype compute);

#endif
