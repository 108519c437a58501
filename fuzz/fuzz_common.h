/* fuzz_common.h: helpers shared by the libFuzzer targets (fuzz/fuzz_*.c).
 *
 * Readers that take a path are fed through a private scratch directory
 * ($TMPDIR, default /tmp; `make fuzz` points it at build/fuzz/tmp), one per
 * process, removed at exit.  A target that needs several files splits its
 * input at FUZZ_SEP (a line "#-#-#"), which the dictionaries contain, so the
 * mutator can move text between the files. */
#ifndef ROSA_FUZZ_COMMON_H
#define ROSA_FUZZ_COMMON_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "rosa.h"

#define FUZZ_SEP "\n#-#-#\n"

/* Stops the fuzzer with a message: a broken property, not a sanitizer report. */
#define FUZZ_ASSERT(cond, ...)                                                    \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz property failed: %s (%s:%d): ", #cond, __FILE__, \
                    __LINE__);                                                    \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* A refused input: with ROSA_FUZZ_VERBOSE set (when checking seeds: the
 * target run on files) the error is printed. */
static inline void fuzz_refused(void) {
    FUZZ_ASSERT(rosa_last_error()[0], "refused without a message");
    if (getenv("ROSA_FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", rosa_last_error());
}

static char fuzz_dir_path[PATH_MAX];

static inline void fuzz_dir_cleanup(void) {
    if (!fuzz_dir_path[0]) return;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

/* This process's scratch directory. */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/rosa-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror(fuzz_dir_path);
            abort();
        }
        atexit(fuzz_dir_cleanup);
    }
    return fuzz_dir_path;
}

/* fuzz_dir()/name, in a static buffer (one of 4, rotating). */
static inline const char *fuzz_path(const char *name) {
    static char bufs[4][PATH_MAX];
    static int k;
    char *b = bufs[k++ & 3];
    if (snprintf(b, PATH_MAX, "%s/%s", fuzz_dir(), name) >= PATH_MAX) abort();
    return b;
}

/* Writes data to fuzz_dir()/name (replacing it) and returns the path. */
static inline const char *fuzz_write(const char *name, const void *data, size_t size) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

static inline void fuzz_remove(const char *name) { unlink(fuzz_path(name)); }

/* Splits data at the first FUZZ_SEP: part 0 before it, part 1 after it (NULL
 * and 0 when there is no separator). */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na, const uint8_t **b,
                       size_t *nb) {
    const size_t sl = sizeof FUZZ_SEP - 1;
    const uint8_t *hit = size >= sl ? memmem(data, size, FUZZ_SEP, sl) : NULL;
    *a = data;
    *na = hit ? (size_t)(hit - data) : size;
    *b = hit ? hit + sl : NULL;
    *nb = hit ? size - *na - sl : 0;
}

/* Splits data at every FUZZ_SEP into at most `max` parts (the last part keeps
 * any further separators); returns the number of parts (>= 1). */
static inline int fuzz_parts(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max) {
    int n = 0;
    while (n < max - 1) {
        const uint8_t *b;
        size_t nb;
        fuzz_split(data, size, &part[n], &len[n], &b, &nb);
        n++;
        if (!b) return n;
        data = b;
        size = nb;
    }
    part[n] = data;
    len[n] = size;
    return n + 1;
}

/* The shared data directory: $ROSA_SHARED, else ../shared from the working
 * directory (the repository root), else ../shared beside the repository that
 * holds this binary (build/fuzz/fuzz_x). */
static inline const char *fuzz_shared(void) {
    static char buf[PATH_MAX];
    const char *env = getenv("ROSA_SHARED");
    if (env && *env) return env;
    if (rosa_is_dir("../shared/tokenizers")) return "../shared";
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;
        }
        if (snprintf(buf, sizeof buf, "%s/../shared", exe) < (int)sizeof buf && rosa_is_dir(buf)) return buf;
    }
    fprintf(stderr, "fuzz: shared data not found: set ROSA_SHARED=/path/to/shared\n");
    abort();
}

#endif
