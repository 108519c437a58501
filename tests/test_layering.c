/* test_layering.c: the include rules between the library's folders.
 *
 * Reads the source tree (the working directory, the repo root under
 * `make test`) and resolves every #include of src/, include/ and cli/ as the
 * compiler does
 * (-Iinclude -Isrc: "x.h" beside the file first), following headers, so that
 * a header that pulls in a forbidden one counts as well.  The rules:
 *   - src/model/ includes nothing of src/train/, src/eval/, src/peft/, src/report/
 *     (the model is below training, evaluation and reports);
 *   - src/eval/ includes nothing of src/train/ (shared pieces live in src/data/
 *     and src/core/);
 *   - src/data/ includes nothing of src/train/, src/eval/, src/model/, src/report/;
 *   - src/core/ includes only src/core/ and include/ (the bottom layer);
 *   - nothing under src/ includes a cli/ header (the library is below its CLI);
 *   - cli/ includes only its own headers and the public ones of include/
 *     (rosa.h, rosa_train.h): the tool uses the library as any program would;
 *   - include/ includes only include/.
 * A second test runs the same checker on a small made-up tree with one
 * violation of each rule, so that the checker itself is known to fail. */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test.h"

#define MAX_FILES 1024
#define MAX_INCLUDES 64
#define PATH_LEN 512

typedef struct {
    char path[PATH_LEN]; /* relative to the root: src/model/forward.c */
    int inc[MAX_INCLUDES]; /* resolved includes, indices into the table */
    int inc_line[MAX_INCLUDES];
    int n_inc;
} src_file;

typedef struct {
    char root[PATH_LEN];
    src_file *f;
    int n;
    int overflow;
} src_tree;

static int is_source(const char *name) {
    size_t n = strlen(name);
    return n > 2 && name[n - 2] == '.' && (name[n - 1] == 'c' || name[n - 1] == 'h');
}

static void walk(src_tree *t, const char *rel) {
    char dir[PATH_LEN * 2];
    snprintf(dir, sizeof dir, "%s/%s", t->root, rel);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_LEN], full[PATH_LEN * 3];
        snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
        snprintf(full, sizeof full, "%s/%s", t->root, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(t, sub);
        } else if (S_ISREG(st.st_mode) && is_source(e->d_name)) {
            if (t->n == MAX_FILES) {
                t->overflow = 1;
                continue;
            }
            memset(&t->f[t->n], 0, sizeof t->f[t->n]);
            snprintf(t->f[t->n].path, PATH_LEN, "%s", sub);
            t->n++;
        }
    }
    closedir(d);
}

static int find_file(const src_tree *t, const char *path) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->f[i].path, path) == 0) return i;
    return -1;
}

/* dir + "/" + name with "." and ".." segments folded; "" when it climbs out. */
static void join_norm(char *out, size_t n, const char *dir, const char *name) {
    char tmp[PATH_LEN * 2];
    if (dir[0]) snprintf(tmp, sizeof tmp, "%s/%s", dir, name);
    else snprintf(tmp, sizeof tmp, "%s", name);
    const char *seg[64];
    size_t len[64];
    int k = 0;
    for (char *p = tmp; *p;) {
        char *s = p;
        while (*p && *p != '/') p++;
        size_t l = (size_t)(p - s);
        if (*p) *p++ = 0;
        if (l == 0 || (l == 1 && s[0] == '.')) continue;
        if (l == 2 && s[0] == '.' && s[1] == '.') {
            if (k == 0) {
                out[0] = 0;
                return;
            }
            k--;
            continue;
        }
        if (k == 64) break;
        seg[k] = s, len[k] = l, k++;
    }
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < k && o + len[i] + 2 < n; i++) {
        if (i) out[o++] = '/';
        memcpy(out + o, seg[i], len[i]);
        o += len[i];
        out[o] = 0;
    }
}

/* Resolves the includes of file i: "x" beside the file, then include/, then
 * src/; <x> in include/ and src/ (system headers resolve to nothing). */
static void parse_includes(src_tree *t, int i) {
    src_file *f = &t->f[i];
    char full[PATH_LEN * 2];
    snprintf(full, sizeof full, "%s/%s", t->root, f->path);
    FILE *fp = fopen(full, "r");
    if (!fp) return;
    char dir[PATH_LEN];
    snprintf(dir, sizeof dir, "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else dir[0] = 0;
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p++ != '#') continue;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, "include", 7) != 0) continue;
        p += 7;
        while (*p == ' ' || *p == '\t') p++;
        char close = *p == '"' ? '"' : *p == '<' ? '>' : 0;
        if (!close) continue;
        const char *s = ++p;
        while (*p && *p != close) p++;
        if (*p != close) continue;
        char name[PATH_LEN];
        snprintf(name, sizeof name, "%.*s", (int)(p - s), s);
        const char *dirs[3] = {close == '"' ? dir : NULL, "include", "src"};
        int found = -1;
        for (int k = 0; k < 3 && found < 0; k++) {
            if (!dirs[k]) continue;
            char cand[PATH_LEN];
            join_norm(cand, sizeof cand, dirs[k], name);
            if (cand[0]) found = find_file(t, cand);
        }
        if (found >= 0 && f->n_inc < MAX_INCLUDES) {
            f->inc_line[f->n_inc] = lineno;
            f->inc[f->n_inc++] = found;
        }
    }
    fclose(fp);
}

typedef struct {
    const char *from;      /* a folder prefix of the including file */
    const char *deny[5];   /* folder prefixes it must not reach */
    const char *only[3];   /* or, when set: the only prefixes it may reach */
} rule;

static const rule rules[] = {
    {"src/model/", {"src/train/", "src/eval/", "src/peft/", "src/report/"}, {NULL}},
    {"src/eval/", {"src/train/"}, {NULL}},
    {"src/data/", {"src/train/", "src/eval/", "src/model/", "src/report/"}, {NULL}},
    {"src/core/", {NULL}, {"src/core/", "include/"}},
    {"src/", {"cli/"}, {NULL}},
    {"cli/", {NULL}, {"cli/", "include/"}},   /* the tool is written on the public API */
    {"include/", {NULL}, {"include/"}},
};

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int forbidden(const rule *r, const char *path) {
    if (r->only[0]) {
        for (int k = 0; k < 3 && r->only[k]; k++)
            if (has_prefix(path, r->only[k])) return 0;
        return 1;
    }
    for (int k = 0; k < 5 && r->deny[k]; k++)
        if (has_prefix(path, r->deny[k])) return 1;
    return 0;
}

/* Depth-first over the includes of `start`, not descending into forbidden
 * files; appends the chain to each forbidden file reached to report.
 * Returns their number. */
static int check_from(const src_tree *t, int start, const rule *r, char *report, size_t cap) {
    int *parent = malloc(sizeof(int) * (size_t)t->n), *stack = malloc(sizeof(int) * (size_t)t->n);
    char *seen = calloc((size_t)t->n, 1);
    int top = 0, bad = 0;
    if (!parent || !stack || !seen) goto out;
    stack[top++] = start;
    seen[start] = 1;
    parent[start] = -1;
    while (top) {
        int i = stack[--top];
        for (int k = 0; k < t->f[i].n_inc; k++) {
            int j = t->f[i].inc[k];
            if (seen[j]) continue;
            seen[j] = 1;
            parent[j] = i;
            if (!forbidden(r, t->f[j].path)) {
                stack[top++] = j;
                continue;
            }
            bad++;
            size_t o = strlen(report);
            int chain[64], n = 0;
            for (int c = j; c >= 0 && n < 64; c = parent[c]) chain[n++] = c;
            if (o < cap) o += (size_t)snprintf(report + o, cap - o, "  %s may not include %s:", r->from, t->f[j].path);
            for (int c = n - 1; c >= 0 && o < cap; c--)
                o += (size_t)snprintf(report + o, cap - o, " %s%s", t->f[chain[c]].path, c ? " ->" : "\n");
        }
    }
out:
    free(parent);
    free(stack);
    free(seen);
    return bad;
}

/* Reads the tree at root; returns the number of violations (their chains
 * in report), or -1 when root holds no src/. */
static int check_tree(const char *root, char *report, size_t cap, int *n_files) {
    src_tree t = {0};
    snprintf(t.root, sizeof t.root, "%s", root);
    t.f = calloc(MAX_FILES, sizeof *t.f);
    if (!t.f) return -1;
    walk(&t, "src");
    int n_src = t.n;
    walk(&t, "include");
    walk(&t, "cli");
    report[0] = 0;
    int bad = 0;
    if (n_src == 0 || t.overflow) {
        if (t.overflow) snprintf(report, cap, "more than %d source files under %s\n", MAX_FILES, root);
        else snprintf(report, cap, "no source files under %s/src\n", root);
        free(t.f);
        return -1;
    }
    for (int i = 0; i < t.n; i++) parse_includes(&t, i);
    for (int i = 0; i < t.n; i++)
        for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
            if (has_prefix(t.f[i].path, rules[r].from)) bad += check_from(&t, i, &rules[r], report, cap);
    if (n_files) *n_files = n_src;
    free(t.f);
    return bad;
}

/* The repo root: the working directory under `make test`; a parent or two
 * when run from build/. */
static const char *find_root(void) {
    static const char *cands[] = {".", "..", "../.."};
    for (int i = 0; i < 3; i++) {
        char p[PATH_LEN];
        struct stat st;
        snprintf(p, sizeof p, "%s/src/core/util.h", cands[i]);
        if (stat(p, &st) != 0) continue;
        snprintf(p, sizeof p, "%s/include/rosa.h", cands[i]);
        if (stat(p, &st) == 0) return cands[i];
    }
    return NULL;
}

TEST(layering_include_rules_hold) {
    const char *root = find_root();
    if (!root) {
        test_fail(__FILE__, __LINE__, "source tree not found: no src/core/util.h and include/rosa.h in ., .. or "
                                      "../.. (run the tests from the repo root, as make test does)");
        return;
    }
    static char report[65536];
    int n_files = 0;
    int bad = check_tree(root, report, sizeof report, &n_files);
    CHECK_MSG(bad >= 0, "%s", report);
    /* the tree read is the real one, not an empty or partial copy */
    CHECK_MSG(n_files > 50, "only %d files under %s/src", n_files, root);
    CHECK_MSG(bad == 0, "%d include(s) break the layering rules (tests/test_layering.c):\n%s", bad, report);
}

static void put(const char *root, const char *rel, const char *text) {
    char p[PATH_LEN * 2];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    FILE *f = fopen(p, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

TEST(layering_checker_catches_bad_includes) {
    const char *root = test_tmp_path("layering");
    mkdir(root, 0755);
    put(root, "include/rosa.h", "");
    put(root, "cli/commands.h", "");
    put(root, "src/core/util.h", "#include \"rosa.h\"\n#include <stdio.h>\n");
    put(root, "src/core/log.c", "#include \"core/util.h\"\n#include \"log.h\"\n");
    put(root, "src/core/log.h", "#include \"../io/json.h\"\n");            /* core -> io */
    put(root, "src/io/json.h", "#include \"core/util.h\"\n");
    put(root, "src/data/data.h", "#include \"core/util.h\"\n#include \"io/json.h\"\n");
    put(root, "src/train/trainer.h", "#include \"data/data.h\"\n");
    put(root, "src/report/report.h", "#include \"core/util.h\"\n");
    put(root, "src/model/model.h", "#include \"core/util.h\"\n");
    put(root, "src/model/ops.h", "#include \"model.h\"\n");
    put(root, "src/model/forward.c", "#include \"ops.h\"\n  #  include <report/report.h>\n"); /* model -> report */
    put(root, "src/model/analyze.c", "#include \"model.h\"\n#include \"../train/trainer.h\"\n#include \"report/report.h\"\n");
    /* model -> train, report */
    put(root, "src/model/gemm.c", "#include \"model.h\"\n#include \"io/json.h\"\n");            /* allowed */
    put(root, "src/io/config.c", "#include \"json.h\"\n#include \"../../cli/commands.h\"\n");   /* src -> cli */
    put(root, "src/eval/eval.h", "#include \"train/trainer.h\"\n");
    put(root, "src/eval/eval.c", "#include \"eval.h\"\n"); /* eval -> train, through its own header */
    put(root, "cli/cmd_x.c", "#include \"commands.h\"\n#include \"rosa.h\"\n#include \"model/model.h\"\n"); /* cli -> src */
    static char report[16384];
    int bad = check_tree(root, report, sizeof report, NULL);
    /* core/log.c and core/log.h (-> io), model/forward.c (-> report),
     * model/analyze.c (-> train and -> report), io/config.c (-> cli),
     * eval/eval.h and eval/eval.c (-> train), cli/cmd_x.c (-> src) */
    CHECK_MSG(bad == 9, "%d violations found, expected 9:\n%s", bad, report);
    CHECK_MSG(strstr(report, "src/model/ may not include src/train/trainer.h: src/model/analyze.c -> "
                             "src/train/trainer.h\n"), "%s", report);
    CHECK_MSG(strstr(report, "src/model/ may not include src/report/report.h: src/model/forward.c -> "
                             "src/report/report.h\n"), "%s", report);
    CHECK_MSG(strstr(report, "src/model/ may not include src/report/report.h: src/model/analyze.c -> "
                             "src/report/report.h\n"), "%s", report);
    CHECK_MSG(strstr(report, "src/ may not include cli/commands.h: src/io/config.c -> cli/commands.h"), "%s", report);
    CHECK_MSG(strstr(report, "src/eval/ may not include src/train/trainer.h: src/eval/eval.c -> src/eval/eval.h -> "
                             "src/train/trainer.h"), "%s", report);
    CHECK_MSG(strstr(report, "src/core/ may not include src/io/json.h: src/core/log.c -> src/core/log.h -> "
                             "src/io/json.h"), "%s", report);
    CHECK_MSG(strstr(report, "cli/ may not include src/model/model.h: cli/cmd_x.c -> src/model/model.h"), "%s", report);
    CHECK_MSG(!strstr(report, "gemm.c"), "%s", report);
    CHECK_MSG(check_tree(test_tmp_path("layering-none"), report, sizeof report, NULL) == -1, "%s", report);
}
