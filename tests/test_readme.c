/* test_readme.c: the library example of README.md ("Using the library") is
 * built with the command the README shows next to it and run on the shipped
 * model, so that the README fails a test when it stops compiling, linking or
 * working.  Runs from the repository root (make test, make check-readme). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test.h"
#include "core/util.h"

/* A copy of the n bytes at p. */
static char *dup_n(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* The first ```c block of the README (*code) and the first `cc ...` command
 * after it (*cmd), both malloc'ed; 0, or -1 with the reason in *why. */
static int readme_example(const char *readme, char **code, char **cmd, const char **why) {
    const char *b = strstr(readme, "\n```c\n");
    if (!b) return *why = "no ```c block", -1;
    b += 6;
    const char *e = strstr(b, "\n```\n");
    if (!e) return *why = "the ```c block is not closed", -1;
    const char *c = strstr(e, "`cc ");
    const char *ce = c ? strchr(c + 1, '`') : NULL;
    if (!ce) return *why = "no `cc ...` command after the ```c block", -1;
    *code = dup_n(b, (size_t)(e + 1 - b));
    *cmd = dup_n(c + 1, (size_t)(ce - c - 1));
    return 0;
}

/* The README's command with example.c and build/librosa.a replaced by src and
 * lib (its words otherwise kept as they are), output to exe.  Under ASan the
 * library needs the sanitizer runtime too. */
static int build_command(char *out, size_t size, const char *cmd, const char *src, const char *lib, const char *exe) {
    char words[4096];
    snprintf(words, sizeof words, "%s", cmd);
    int have_src = 0, have_lib = 0;
    size_t len = 0;
    out[0] = 0;
    for (char *save = NULL, *w = strtok_r(words, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
        size_t wl = strlen(w);
        const char *put = w;
        if (strcmp(w, "example.c") == 0) put = src, have_src = 1;
        else if (wl >= 9 && strcmp(w + wl - 9, "librosa.a") == 0) put = lib, have_lib = 1;
        len += (size_t)snprintf(out + len, size - len, "%s%s", len ? " " : "", put);
        if (len >= size) return -1;
    }
    const char *san = "";
#if defined(__SANITIZE_ADDRESS__)
    san = " -fsanitize=address,undefined";
#endif
    len += (size_t)snprintf(out + len, size - len, " -Wall -Wextra -Werror%s -o %s", san, exe);
    return have_src && have_lib && len < size ? 0 : -1;
}

TEST(readme_library_example_compiles_links_and_runs) {
    if (getenv("ROSA_TSAN")) { /* make test-tsan: a clang/libomp library the README's cc cannot link */
        test_skip("the README's command links a plain build, not the ThreadSanitizer one");
        return;
    }
    char *readme = rosa_read_file("README.md", NULL);
    REQUIRE(readme);
    char *code = NULL, *cmd = NULL;
    const char *why = "";
    int found = readme_example(readme, &code, &cmd, &why);
    free(readme);
    CHECK_MSG(found == 0, "README.md: %s", why);
    if (found < 0) return;

    /* librosa.a next to the rosa binary under test (build/ or build-san/). */
    char lib[1024];
    const char *bin = rosa_bin(), *slash = strrchr(bin, '/');
    snprintf(lib, sizeof lib, "%.*s/librosa.a", slash ? (int)(slash - bin) : 1, slash ? bin : ".");
    struct stat st;
    CHECK_MSG(stat(lib, &st) == 0, "%s is missing (make all builds it)", lib);

    const char *src = test_tmp_path("readme_example.c"), *exe = test_tmp_path("readme_example");
    FILE *f = fopen(src, "w");
    REQUIRE(f);
    fputs(code, f);
    fclose(f);
    char build[8192], *out;
    CHECK_MSG(build_command(build, sizeof build, cmd, src, lib, exe) == 0,
              "README.md: the command `%s` should name example.c and build/librosa.a", cmd);
    int rc = run_capture(build, 1, &out);
    CHECK_MSG(rc == 0, "the README's example does not build (exit %d):\n  %s\n%s", rc, build, out);
    free(out);
    free(code);
    free(cmd);
    if (rc != 0) return;

    /* It prints the greedy continuation of its prompt: the CLI's, word for word. */
    char run[4096], *got, *want;
    snprintf(run, sizeof run, "%s '%s'", exe, shared_path("models/stories260K"));
    rc = run_capture(run, 0, &got);
    CHECK_MSG(rc == 0, "the README's example exited with %d: %s", rc, got);
    snprintf(run, sizeof run, "%s generate --model '%s' --prompt 'Once upon a time' --json", rosa_bin(),
             shared_path("models/stories260K"));
    CHECK_EQ_INT(run_capture(run, 0, &want), 0);
    cJSON *j = cJSON_Parse(want);
    const cJSON *text = cJSON_GetObjectItem(j, "text");
    if (cJSON_IsString(text)) {
        CHECK(strlen(text->valuestring) > 0);
        char expect[8192];
        snprintf(expect, sizeof expect, "%s\n", text->valuestring);
        CHECK_STR(got, expect);
    } else {
        CHECK_MSG(0, "rosa generate --json printed: %s", want);
    }
    cJSON_Delete(j);
    free(got);
    free(want);
}

/* README's command for an installed rosa: `cc example.c $(pkg-config ...)`,
 * after `make install` into a temporary PREFIX; the example prints what the
 * in-tree build printed (the CLI's continuation, checked above). */
TEST(readme_example_builds_with_pkg_config_after_make_install) {
    if (getenv("ROSA_TSAN") || strstr(rosa_bin(), "build-san")) {
        test_skip("make install installs the plain build, not the sanitizer one");
        return;
    }
    char *out = NULL;
    if (run_capture("command -v pkg-config", 1, &out) != 0) {
        free(out);
        CHECK_MSG(0, "pkg-config is not installed (make deps installs it)");
        return;
    }
    free(out);
    char *readme = rosa_read_file("README.md", NULL);
    REQUIRE(readme);
    char *code = NULL, *cmd = NULL;
    const char *why = "";
    REQUIRE(readme_example(readme, &code, &cmd, &why) == 0);
    const char *pc = strstr(readme, "`cc example.c $(pkg-config --cflags --libs rosa)`");
    free(readme);
    CHECK_MSG(pc != NULL, "README.md: no `cc example.c $(pkg-config --cflags --libs rosa)` command");
    char prefix[512], src[512], exe[512];
    snprintf(prefix, sizeof prefix, "%s", test_tmp_path("prefix"));
    snprintf(src, sizeof src, "%s", test_tmp_path("example.c"));
    snprintf(exe, sizeof exe, "%s", test_tmp_path("example-installed"));
    FILE *f = fopen(src, "w");
    REQUIRE(f);
    fputs(code, f);
    fclose(f);
    free(code);
    free(cmd);
    /* the make running this suite must not hand its jobserver to this one */
    int rc = run_shellf(&out, "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s install PREFIX=%s",
                        prefix);
    CHECK_MSG(rc == 0, "make install PREFIX=%s failed:\n%s", prefix, out);
    free(out);
    if (rc != 0) return;
    static const char *installed[] = {"bin/rosa", "include/rosa.h", "include/rosa_train.h", "lib/librosa.a",
                                      "lib/librosa.so", "lib/librosa.so.0", "lib/pkgconfig/rosa.pc"};
    for (size_t i = 0; i < sizeof installed / sizeof installed[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", prefix, installed[i]);
        struct stat st;
        CHECK_MSG(stat(p, &st) == 0, "make install did not install %s", installed[i]);
    }
    /* the soname is librosa.so.0 */
    rc = run_shellf(&out, "objdump -p %s/lib/librosa.so | grep SONAME", prefix);
    CHECK_MSG(rc == 0 && strstr(out, "librosa.so.0"), "%s", out);
    free(out);
    rc = run_shellf(&out, "cd %s && PKG_CONFIG_PATH=%s/lib/pkgconfig cc example.c $(PKG_CONFIG_PATH=%s/lib/pkgconfig "
                          "pkg-config --cflags --libs rosa) -o %s", test_tmp_path(""), prefix, prefix, exe);
    CHECK_MSG(rc == 0, "cc example.c $(pkg-config --cflags --libs rosa) failed:\n%s", out);
    free(out);
    if (rc != 0) return;
    char *got = NULL, *want = NULL;
    rc = run_shellf(&got, "LD_LIBRARY_PATH=%s/lib %s '%s'", prefix, exe, shared_path("models/stories260K"));
    CHECK_MSG(rc == 0, "the installed example exited with %d: %s", rc, got);
    char run[4096];
    snprintf(run, sizeof run, "%s generate --model '%s' --prompt 'Once upon a time' --json", rosa_bin(),
             shared_path("models/stories260K"));
    CHECK_EQ_INT(run_capture(run, 0, &want), 0);
    cJSON *j = cJSON_Parse(want);
    const cJSON *text = cJSON_GetObjectItem(j, "text");
    CHECK(cJSON_IsString(text));
    if (cJSON_IsString(text)) {
        char expect[8192];
        snprintf(expect, sizeof expect, "%s\n", text->valuestring);
        CHECK_STR(got, expect);
    }
    cJSON_Delete(j);
    free(got);
    free(want);
    /* it is linked against the shared library */
    rc = run_shellf(&out, "LD_LIBRARY_PATH=%s/lib ldd %s | grep librosa.so.0", prefix, exe);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
}

/* The public headers stand alone: each compiles as the only include of a C11
 * file with pedantic warnings as errors, and as C++ where a C++ compiler is
 * installed (they are wrapped in extern "C" for it). */
TEST(public_headers_compile_alone) {
    static const char *headers[] = {"rosa.h", "rosa_train.h"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        const char *src = test_tmp_path("header_alone.c");
        FILE *f = fopen(src, "w");
        REQUIRE(f);
        fprintf(f, "#include <%s>\nint main(void) { return 0; }\n", headers[i]);
        fclose(f);
        char cmd[4096], *out;
        snprintf(cmd, sizeof cmd, "cc -std=c11 -Wall -Wextra -pedantic -Werror -fsyntax-only -Iinclude %s", src);
        int rc = run_capture(cmd, 1, &out);
        CHECK_MSG(rc == 0, "include/%s does not compile alone as C11 (exit %d):\n%s", headers[i], rc, out);
        free(out);
        if (run_capture("command -v c++ >/dev/null", 1, &out) == 0) {
            free(out);
            snprintf(cmd, sizeof cmd, "c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -x c++ -Iinclude %s", src);
            rc = run_capture(cmd, 1, &out);
            CHECK_MSG(rc == 0, "include/%s does not compile alone as C++ (exit %d):\n%s", headers[i], rc, out);
        }
        free(out);
    }
}

/* make demo, shortened (20 steps, 20 items): the summary labels the loss and the accuracy
 * before and after, the "no answer" column and the majority-class baseline; the base model
 * gives no answer at all (the effect the demo shows). */
TEST(demo_prints_labelled_before_and_after) {
    char *out = NULL;
    int rc = run_shellf(&out, "DEMO_STEPS=20 DEMO_LIMIT=20 DEMO_OUT='%s' sh tools/demo.sh '%s' '%s/..'",
                        test_tmp_path("demo"), rosa_bin(), shared_path("models"));
    REQUIRE(out);
    CHECK_MSG(rc == 0, "demo failed: %s", out);
    CHECK(strstr(out, "loss (answers)") && strstr(out, "no answer") && strstr(out, "accuracy"));
    const char *base = strstr(out, "\nbase model ");
    const char *eol = base ? strchr(base + 1, '\n') : NULL;
    char *row = base && eol ? dup_n(base + 1, (size_t)(eol - base - 1)) : NULL;
    CHECK_MSG(row && strstr(row, " 20/20 ") && strstr(row, " 0.00%"),
              "the base model should give no answer on 20/20 items: %s", out);
    free(row);
    CHECK(strstr(out, "RoSA, 20 steps") && strstr(out, "LoRA, 10 steps"));
    CHECK(strstr(out, "majority class ('true')"));
    CHECK(strstr(out, "What it cannot show"));
    free(out);
}
