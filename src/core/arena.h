/* arena.h: carving one flat float buffer by a single walk.
 *
 * A layout function lists its buffers once with ROSA_ARENA_TAKE; called with
 * base NULL it only counts floats (the size, for memory plans), called again
 * with the allocation it points each buffer at its slice.  Every slice starts
 * on a 16-float (64-byte) boundary. */
#ifndef ROSA_ARENA_H
#define ROSA_ARENA_H

#include <stddef.h>

#define ROSA_ARENA_ROUND(n) (((size_t)(n) + 15) & ~(size_t)15)

/* ptr = base + off (when base is not NULL); off advances past n floats. */
#define ROSA_ARENA_TAKE(base, off, ptr, n)                 \
    do {                                                   \
        if (base) (ptr) = (void *)((base) + (off));        \
        (off) += ROSA_ARENA_ROUND(n);                      \
    } while (0)

#endif
