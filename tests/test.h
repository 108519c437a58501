/* test.h: a tiny test harness.  Each TEST registers itself; test_main.c runs
 * them all (or those whose name contains argv[1]) and prints the closing line
 * "N passed, N failed". */
#ifndef ROSA_TEST_H
#define ROSA_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rosa.h"

typedef void (*test_fn)(void);
void test_register(const char *name, const char *file, test_fn fn);
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the running test as skipped with a reason (counts as neither passed
 * nor failed); used only where a prerequisite is really absent. */
void test_skip(const char *reason);
int test_failed(void);

/* ROSA_SHARED/rel (default ../shared), ROSA_TESTDATA/rel (default build/testdata)
 * and the rosa binary (ROSA_BIN, default build/rosa).  Static buffers, rotating. */
const char *shared_path(const char *rel);
const char *testdata_path(const char *rel);
const char *rosa_bin(void);
/* NAME inside this run's scratch directory (made on first use, removed at
 * exit).  Static buffers, 16 rotating. */
const char *test_tmp_path(const char *name);
/* n short LLM-Adapters records ("Is the cat dog?" -> "the correct answer is
 * true|false") that fit the shipped model's context, as JSON Lines. */
void write_toy_records(const char *path, int n);
/* max|a - ref| / max(1, max|ref|) against a JSON array of n numbers. */
struct cJSON;
double max_rel_json(const float *a, const struct cJSON *ref, int n);
/* Runs a shell command, captures stdout (and stderr when merge_stderr) into a
 * malloc'ed string; returns the exit status. */
int run_capture(const char *cmd, int merge_stderr, char **out);
/* The same for a printf-style command, stderr merged; out NULL: discarded. */
int run_shellf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The Python that has torch (Debian's python3-torch), and the same running a
 * reference script through tools/refcache.py, which replays an earlier run
 * with the same inputs when ROSA_REFCACHE names a cache directory (CI runs
 * the suite three times). */
#define PY "/usr/bin/python3"
#define REF PY " tools/refcache.py"

#define TEST(name)                                                                     \
    static void name(void);                                                            \
    __attribute__((constructor)) static void register_##name(void) {                   \
        test_register(#name, __FILE__, name);                                          \
    }                                                                                  \
    static void name(void)

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                \
    } while (0)
#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);                       \
    } while (0)
#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            test_fail(__FILE__, __LINE__, "REQUIRE(%s) [last error: %s]", #cond,      \
                      rosa_last_error());                                              \
            return;                                                                    \
        }                                                                              \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                            \
        if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_); \
    } while (0)
#define CHECK_STR(a, b)                                                                \
    do {                                                                               \
        const char *a_ = (a), *b_ = (b);                                               \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                         \
            test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a,          \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                         \
    } while (0)
/* Error messages must mention `needle`. */
#define CHECK_ERROR_HAS(needle)                                                        \
    do {                                                                               \
        if (!strstr(rosa_last_error(), (needle)))                                      \
            test_fail(__FILE__, __LINE__, "error \"%s\" does not mention \"%s\"",        \
                      rosa_last_error(), (needle));                                    \
    } while (0)

#endif
