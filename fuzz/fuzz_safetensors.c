/* fuzz_safetensors: the safetensors header and tensor table (st_parse over a
 * buffer, as st_set_add_file does over a mapping).
 *
 * Properties checked beyond "no crash, no leak": every tensor of an accepted
 * file lies inside the data section, its byte size is numel x dtype size, no
 * two tensors overlap, and a second file with the same names is refused
 * (names are unique across the files of a set). */
#include "fuzz_common.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy so that an out-of-bounds read past `size` is caught by ASan. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    st_set s = {0};
    if (st_parse(&s, buf, size, "fuzz.safetensors", 0) == 0) {
        FUZZ_ASSERT(size >= 8, "accepted %zu bytes", size);
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
        const uint8_t *start = buf + 8 + hlen, *end = buf + size;
        for (int i = 0; i < s.n_tensors; i++) {
            const st_tensor *t = &s.tensors[i];
            const uint8_t *p = t->data;
            FUZZ_ASSERT(p >= start && p <= end && t->nbytes <= (size_t)(end - p), "tensor %s outside the data", t->name);
            FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "ndim %d", t->ndim);
            FUZZ_ASSERT((size_t)st_numel(t) * st_dtype_size(t->dtype) == t->nbytes, "size of %s", t->name);
            FUZZ_ASSERT(st_set_find(&s, t->name) == t, "lookup of %s", t->name);
            for (int k = 0; k < i; k++) {
                const st_tensor *u = &s.tensors[k];
                const uint8_t *q = u->data;
                FUZZ_ASSERT(!t->nbytes || !u->nbytes || p + t->nbytes <= q || q + u->nbytes <= p,
                            "%s and %s overlap", t->name, u->name);
            }
        }
        int n = s.n_tensors;
        int rc = st_parse(&s, buf, size, "fuzz2.safetensors", 1);
        FUZZ_ASSERT(n == 0 ? rc == 0 : rc < 0, "a second file with the same %d names gave %d", n, rc);
        FUZZ_ASSERT(s.n_tensors == n, "a refused file changed the table (%d -> %d)", n, s.n_tensors);
    } else {
        fuzz_refused();
        FUZZ_ASSERT(s.n_tensors == 0, "a refused file left %d tensors", s.n_tensors);
    }
    st_set_close(&s);
    free(buf);
    return 0;
}
