/* test_main.c: runs the registered tests and prints "N passed, N failed". */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "test.h"

#define MAX_TESTS 1024

typedef struct {
    const char *name, *file;
    test_fn fn;
} test_case;

static test_case tests[MAX_TESTS];
static int n_tests;
static int current_failed, current_skipped;
static char skip_reason[256];

void test_register(const char *name, const char *file, test_fn fn) {
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[n_tests++] = (test_case){name, file, fn};
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (current_failed < 10) { /* the first failures of a test tell the story */
        fprintf(stdout, "    %s:%d: ", file, line);
        vfprintf(stdout, fmt, ap);
        fputc('\n', stdout);
    }
    va_end(ap);
    current_failed++;
}

void test_skip(const char *reason) {
    current_skipped = 1;
    snprintf(skip_reason, sizeof skip_reason, "%s", reason);
}

int test_failed(void) { return current_failed; }

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static const char *rotating_path(const char *root, const char *rel) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, 4096, "%s/%s", root, rel);
    return b;
}

const char *shared_path(const char *rel) { return rotating_path(env_or("ROSA_SHARED", "../shared"), rel); }
const char *testdata_path(const char *rel) {
    return rotating_path(env_or("ROSA_TESTDATA", "build/testdata"), rel);
}
const char *rosa_bin(void) { return env_or("ROSA_BIN", "build/rosa"); }

static char scratch_dir[256];

static void remove_scratch(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", scratch_dir);
}

const char *test_tmp_path(const char *name) {
    static char bufs[16][512];
    static int k;
    if (!scratch_dir[0]) {
        snprintf(scratch_dir, sizeof scratch_dir, "/tmp/rosa-test-XXXXXX");
        if (mkdtemp(scratch_dir)) atexit(remove_scratch);
        else snprintf(scratch_dir, sizeof scratch_dir, "/tmp");
    }
    char *b = bufs[k++ & 15];
    snprintf(b, 512, "%s/%s", scratch_dir, name);
    return b;
}

void write_toy_records(const char *path, int n) {
    static const char *words[] = {"cat", "dog", "ball", "tree", "sun", "happy", "red", "big", "park", "mom"};
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"instruction\": \"Is the %s %s?\", \"input\": \"\", \"output\": \"the correct answer is %s\"}\n",
                words[i % 10], words[(i * 3 + 1) % 10], i % 3 ? "true" : "false");
    fclose(f);
}

double max_rel_json(const float *a, const cJSON *ref, int n) {
    double mx = 1.0, err = 0.0;
    for (int i = 0; i < n; i++) {
        double r = cJSON_GetArrayItem(ref, i)->valuedouble;
        if (fabs(r) > mx) mx = fabs(r);
        double e = fabs(a[i] - r);
        if (!(e <= err)) err = e; /* NaN counts as a failure */
    }
    return err / mx;
}

int run_capture(const char *cmd, int merge_stderr, char **out) {
    char full[8192];
    snprintf(full, sizeof full, "%s%s", cmd, merge_stderr ? " 2>&1" : " 2>/dev/null");
    FILE *p = popen(full, "r");
    if (!p) {
        *out = rosa_strdup("");
        return -1;
    }
    rosa_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) rosa_buf_append(&b, chunk, n);
    int st = pclose(p);
    if (!b.data) rosa_buf_append(&b, "", 0);
    *out = b.data;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int run_shellf(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *o = NULL;
    int rc = run_capture(cmd, 1, &o);
    if (out) *out = o;
    else free(o);
    return rc;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]) && !strstr(tests[i].file, argv[1])) continue;
        current_failed = 0;
        current_skipped = 0;
        rosa_clear_error();
        double t0 = rosa_now();
        tests[i].fn();
        double dt = rosa_now() - t0;
        if (current_failed) {
            failed++;
            printf("FAIL %s (%s, %.2fs)\n", tests[i].name, tests[i].file, dt);
        } else if (current_skipped) {
            skipped++;
            printf("skip %s: %s\n", tests[i].name, skip_reason);
        } else {
            passed++;
            printf("ok   %s (%.2fs)\n", tests[i].name, dt);
        }
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
