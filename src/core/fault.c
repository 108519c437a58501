/* fault.c: ROSA_FAULT=name[:arg] (fault.h). */
#include "core/fault.h"

#include <stdlib.h>
#include <string.h>

const char *rosa_fault(const char *name) {
    const char *v = getenv("ROSA_FAULT");
    if (!v || !name) return NULL;
    size_t n = strlen(name);
    if (strncmp(v, name, n) != 0) return NULL;
    if (v[n] == 0) return v + n;
    if (v[n] == ':') return v + n + 1;
    return NULL; /* a longer name that starts with this one */
}
