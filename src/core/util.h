/* util.h: errors, allocation, files and small helpers shared by every module
 * (those also offered to programs built on the library, such as rosa_fail and
 * rosa_read_file, are declared in the public rosa_train.h). */
#ifndef ROSA_UTIL_H
#define ROSA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rosa.h"
#include "rosa_train.h"

void rosa_clear_error(void);

/* Allocators in the manner of rosa_malloc (rosa_train.h). */
void *rosa_realloc(void *p, size_t n, const char *what);
char *rosa_strdup(const char *s);
char *rosa_strndup(const char *s, size_t n);
/* a*b with overflow detection: returns 0 on overflow. */
int rosa_mul_size(size_t a, size_t b, size_t *out);

int rosa_file_exists(const char *path);
int rosa_is_dir(const char *path);
/* Is path root or below it (both absolute and resolved, as rosa_real_path
 * gives them)?  Compares whole components: /a/bc is not below /a/b. */
int rosa_path_inside(const char *path, const char *root);
/* The absolute path that `path` names, symbolic links resolved, also when it
 * does not exist yet (an output about to be made): its longest existing
 * ancestor is resolved and the rest appended ("." dropped, ".." taken
 * lexically).  malloc'ed; NULL with a message. */
char *rosa_real_path(const char *path);
/* Whether a and b (real paths compared) overlap: 1 the same path, 2 a lies
 * inside b, 3 b lies inside a, 0 apart, -1 (with a message) unresolvable. */
int rosa_path_overlaps(const char *a, const char *b);
/* Refuses an output that overlaps an input (rosa_path_overlaps), which writing
 * or clearing the output could overwrite or delete: -1 with a one-line message
 * naming both options and paths; 0 when apart or when in is NULL. */
int rosa_check_apart(const char *out_opt, const char *out, const char *in_opt, const char *in);

/* Atomic file replacement: write to the FILE from rosa_atomic_begin (a
 * temporary beside path), then rosa_atomic_end flushes, fsyncs, renames it
 * over path and fsyncs the directory; with ok = 0 (or on any failure) the
 * temporary is removed and path is left as it was. */
FILE *rosa_atomic_begin(const char *path, char **tmp_path);
int rosa_atomic_end(FILE *f, char *tmp_path, const char *path, int ok);

/* A read-only memory-mapped file. */
typedef struct {
    void *data;
    size_t size;
} rosa_mmap;
int rosa_mmap_open(rosa_mmap *m, const char *path);
void rosa_mmap_close(rosa_mmap *m);

/* Length of the longest prefix of s[0..n) that is valid UTF-8. */
size_t rosa_utf8_valid_prefix(const char *s, size_t n);
/* Bytes in the UTF-8 sequence led by byte c (1 for continuation/invalid bytes). */
int rosa_utf8_len(unsigned char c);

/* A growable byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} rosa_buf;
int rosa_buf_append(rosa_buf *b, const void *p, size_t n);
int rosa_buf_putc(rosa_buf *b, char c);
/* Appends printf-style text (data stays NUL-terminated). */
int rosa_buf_printf(rosa_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rosa_buf_free(rosa_buf *b);

/* Half-precision conversions (round-to-nearest-even for the narrowing ones). */
float rosa_f16_to_f32(uint16_t h);
float rosa_bf16_to_f32(uint16_t h);
uint16_t rosa_f32_to_f16(float f);

/* Round to nearest even; a NaN stays a (quiet) NaN.  Inline and branch-free
 * so that the loops converting GEMM inputs vectorize. */
static inline uint16_t rosa_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    uint32_t quiet = (bits >> 16) | 0x40u;
    return (uint16_t)((bits & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
}

/* rosa_rng (rosa.h): xoshiro256** seeded with splitmix64, reproducible across platforms. */
uint64_t rosa_rng_next(rosa_rng *r);
/* Uniform in [0, bound) without modulo bias (bound >= 1). */
uint64_t rosa_rng_below(rosa_rng *r, uint64_t bound);
/* Uniform in [0, 1) with 24 bits of precision. */
float rosa_rng_uniform(rosa_rng *r);

#endif
