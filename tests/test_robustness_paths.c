/* test_robustness_paths.c: rosa never deletes or exposes what is not its own
 * (issue 20, items 1-3; docs/robustness.md, "Files outside the output are
 * never touched"):
 *   - removing checkpoints never follows a symbolic link, and rosa does not
 *     write through a link in an output directory;
 *   - an output never overlaps an input (train --init-adapter/--model/--data,
 *     merge --model);
 *   - a Hugging Face cache whose blobs/ is a link does not open the weight
 *     path confinement.
 * The training runs are the real binary (ROSA_BIN) on the shipped
 * stories260K, one step each. */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "model/model.h"
#include "test.h"
#include "train/checkpoint.h"

/* ---------------------------------------------------------------- helpers */

#define PATH_CAP 1024

/* A fresh, empty scratch directory for one test (in its own buffer). */
static const char *fresh_dir(char *buf, const char *name) {
    snprintf(buf, PATH_CAP, "%s", test_tmp_path(name));
    char cmd[2 * PATH_CAP + 32];
    if (snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf) < (int)sizeof cmd) {
        char *out = NULL;
        run_capture(cmd, 1, &out);
        free(out);
    }
    return buf;
}

/* dir/rel in buf. */
static const char *in(char *buf, const char *dir, const char *rel) {
    if (snprintf(buf, PATH_CAP, "%s/%s", dir, rel) >= PATH_CAP) test_fail(__FILE__, __LINE__, "path too long");
    return buf;
}

/* One step of `rosa train` into out (extra: more options); exit status and
 * output in *log. */
static int train(char **log, const char *data, const char *out, const char *extra) {
    return run_shellf(log,
               "%s train --model %s --data %s --output %s --max-steps 1 --batch-size 2 --micro-batch-size 2 "
               "--save-steps 1 --quiet %s",
               rosa_bin(), shared_path("models/stories260K"), data, out, extra);
}

/* A directory "precious" with a file and a subdirectory with a file: what a
 * link in an output directory may point to. */
static void make_precious(const char *dir) {
    run_shellf(NULL, "mkdir -p '%s/sub' && echo keep > '%s/f' && echo keep > '%s/sub/g'", dir, dir, dir);
}

static int file_says(const char *path, const char *text) {
    size_t n;
    char *s = rosa_read_file(path, &n);
    int ok = s && strcmp(s, text) == 0;
    free(s);
    return ok;
}

static void check_precious(const char *dir, const char *what) {
    char a[PATH_CAP], b[PATH_CAP];
    CHECK_MSG(file_says(in(a, dir, "f"), "keep\n") && file_says(in(b, dir, "sub/g"), "keep\n"),
              "%s: the directory a link pointed to was changed", what);
}

static int is_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ------------------------------------------- item 1: links are not followed */

/* rosa_checkpoint_clear (--overwrite) unlinks links as links, at the top of
 * the output directory and inside the checkpoints it removes. */
TEST(paths_checkpoint_clear_never_follows_links) {
    char base[PATH_CAP], precious[PATH_CAP], out[PATH_CAP], p[PATH_CAP];
    fresh_dir(base, "clear-links");
    make_precious(in(precious, base, "precious"));
    in(out, base, "out");
    run_shellf(NULL,
        "cd '%s' && mkdir -p out/checkpoint-2 out/.checkpoint-3.tmp && ln -s ../precious out/checkpoint-0 && "
        "ln -s ../precious out/.checkpoint-1.tmp && ln -s ../../precious out/checkpoint-2/sub && "
        "ln -s ../../precious/f out/.checkpoint-3.tmp/f && echo x > out/checkpoint-2/trainer_state.json && "
        "ln -s ../precious/f out/adapter_model.safetensors && echo mine > out/notes.txt",
        base);
    REQUIRE(rosa_checkpoint_clear(out) == 0);
    check_precious(precious, "rosa_checkpoint_clear");
    static const char *const gone[] = {"checkpoint-0", ".checkpoint-1.tmp", "checkpoint-2", ".checkpoint-3.tmp",
                                       "adapter_model.safetensors"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        CHECK_MSG(!exists(in(p, out, gone[i])), "%s was not removed", gone[i]);
    CHECK(file_says(in(p, out, "notes.txt"), "mine\n")); /* not rosa's: kept */
}

/* The CLI cases of the issue: a link named like a checkpoint, or like the
 * temporaries of a checkpoint or of an atomic write, never empties or
 * truncates its target; a link where rosa would write through it (train.lock,
 * metrics.jsonl) is refused, naming it. */
TEST(paths_train_never_deletes_or_writes_through_links) {
    char base[PATH_CAP], precious[PATH_CAP], data[PATH_CAP], out[PATH_CAP], p[PATH_CAP];
    fresh_dir(base, "train-links");
    make_precious(in(precious, base, "precious"));
    write_toy_records(in(data, base, "data.jsonl"), 8);
    char *log = NULL;
    int rc;

    /* ln -s ~/precious OUT/checkpoint-0; rosa train --overwrite */
    run_shellf(NULL, "cd '%s' && mkdir o1 && ln -s ../precious o1/checkpoint-0", base);
    rc = train(&log, data, in(out, base, "o1"), "--overwrite");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    check_precious(precious, "--overwrite with checkpoint-0 a link");
    CHECK(!exists(in(p, out, "checkpoint-0")));
    CHECK(exists(in(p, out, "checkpoint-1/trainer_state.json")));

    /* a stale .checkpoint-1.tmp link, an ordinary first run */
    run_shellf(NULL, "cd '%s' && mkdir o2 && ln -s ../precious o2/.checkpoint-1.tmp", base);
    rc = train(&log, data, in(out, base, "o2"), "");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    check_precious(precious, "a stale .checkpoint-1.tmp link");
    CHECK(!is_link(in(p, out, "checkpoint-1")) && exists(in(p, out, "checkpoint-1/trainer_state.json")));

    /* checkpoint-1 a link (no trainer_state.json: not a run), replaced by the checkpoint saved */
    run_shellf(NULL, "cd '%s' && mkdir o3 && ln -s ../precious o3/checkpoint-1", base);
    rc = train(&log, data, in(out, base, "o3"), "");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    check_precious(precious, "checkpoint-1 a link to a directory");
    CHECK(!is_link(in(p, out, "checkpoint-1")) && exists(in(p, out, "checkpoint-1/trainer_state.json")));

    /* the temporary of the final adapter's atomic write a link to a file */
    run_shellf(NULL, "cd '%s' && mkdir o4 && ln -s ../precious/f o4/adapter_model.safetensors.tmp && "
              "ln -s ../precious/sub/g o4/adapter_config.json.tmp", base);
    rc = train(&log, data, in(out, base, "o4"), "");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    check_precious(precious, "a link at adapter_model.safetensors.tmp");
    CHECK(!is_link(in(p, out, "adapter_model.safetensors")) && exists(p));

    /* metrics.jsonl a link: refused, not truncated through */
    run_shellf(NULL, "cd '%s' && mkdir o5 && ln -s ../precious/f o5/metrics.jsonl", base);
    rc = train(&log, data, in(out, base, "o5"), "");
    CHECK_MSG(rc == 1 && strstr(log, "metrics.jsonl is a symbolic link"), "exit %d: %s", rc, log);
    free(log);
    check_precious(precious, "metrics.jsonl a link");

    /* train.lock a dangling link: refused, nothing created where it points */
    run_shellf(NULL, "cd '%s' && mkdir o6 && ln -s ../precious/new o6/train.lock", base);
    rc = train(&log, data, in(out, base, "o6"), "");
    CHECK_MSG(rc == 1 && strstr(log, "train.lock is a symbolic link"), "exit %d: %s", rc, log);
    free(log);
    CHECK_MSG(!exists(in(p, precious, "new")), "train.lock was created through the link");
}

/* -------------------------------------- item 2: outputs never overlap inputs */

TEST(paths_overlap_compares_real_paths) {
    char base[PATH_CAP], a[PATH_CAP], b[PATH_CAP];
    fresh_dir(base, "overlap");
    run_shellf(NULL, "cd '%s' && mkdir -p x/y z && ln -s x lx && touch x/file", base);
    struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"x", "x", 1},
        {"lx", "x/", 1},                 /* through a link */
        {"x/y/../y", "x/y", 1},          /* ".." of an existing directory */
        {"x/new", "x", 2},               /* not existing yet: inside */
        {"x/new/../new2", "x", 2},       /* ".." in the part that does not exist */
        {"x", "lx/y/new/deeper", 3},
        {"x/file", "lx", 2},
        {"z", "x", 0},
        {"x2", "x", 0},                  /* whole components: x2 is not inside x */
        {"lx/../z", "z", 1},             /* ".." after a link: the link's parent */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int r = rosa_path_overlaps(in(a, base, cases[i].a), in(b, base, cases[i].b));
        CHECK_MSG(r == cases[i].want, "rosa_path_overlaps(%s, %s) == %d, expected %d", cases[i].a, cases[i].b, r,
                  cases[i].want);
    }
    /* relative paths are taken from the current directory */
    char cwd[PATH_CAP];
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    CHECK_EQ_INT(rosa_path_overlaps(".", cwd), 1);
    CHECK_EQ_INT(rosa_path_overlaps("does-not-exist/x", cwd), 2);
    CHECK_EQ_INT(rosa_path_overlaps("/", "/etc"), 3);
    CHECK_EQ_INT(rosa_check_apart("--output", in(a, base, "z"), "--model", NULL), 0);
    CHECK_EQ_INT(rosa_check_apart("--output", in(a, base, "x/new"), "--model", in(b, base, "lx")), -1);
    CHECK_ERROR_HAS("--output");
    CHECK_ERROR_HAS("lies inside --model");
}

/* rosa train --output X --init-adapter X --overwrite deleted the adapter it
 * was about to start from; an output holding, inside or equal to the model
 * or the data is refused the same way, before anything is written. */
TEST(paths_train_output_never_overlaps_an_input) {
    char base[PATH_CAP], data[PATH_CAP], ad[PATH_CAP], p[PATH_CAP], q[PATH_CAP], extra[3 * PATH_CAP];
    fresh_dir(base, "train-overlap");
    write_toy_records(in(data, base, "data.jsonl"), 8);
    char *log = NULL;
    int rc = train(&log, data, in(ad, base, "adapter"), "");
    free(log);
    REQUIRE(rc == 0);
    size_t n_before, n_ck;
    char *before = rosa_read_file(in(p, ad, "adapter_model.safetensors"), &n_before);
    char *ck = rosa_read_file(in(q, ad, "checkpoint-1/adapter_model.safetensors"), &n_ck);
    REQUIRE(before && ck);

    struct {
        const char *output, *extra, *needle;
    } cases[] = {
        {"adapter", "--init-adapter %s/adapter --overwrite", "is the same path as --init-adapter"},
        {"adapter/", "--init-adapter %s/adapter/../adapter --overwrite", "is the same path as --init-adapter"},
        {"adapter", "--init-adapter %s/adapter/checkpoint-1 --overwrite", "contains --init-adapter"},
        {"adapter/checkpoint-1/new", "--init-adapter %s/adapter", "lies inside --init-adapter"},
        {".", "--data %s/data.jsonl", "contains --data"},
        {"model/new", "--model %s/model", "lies inside --model"},
        {"", "--model %s/model", "contains --model"},
    };
    run_shellf(NULL, "cp -r '%s' '%s/model'", shared_path("models/stories260K"), base);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(extra, sizeof extra, cases[i].extra, base);
        char out[PATH_CAP];
        in(out, base, cases[i].output);
        rc = train(&log, data, out, extra);
        CHECK_MSG(rc == 1 && strstr(log, cases[i].needle) && strstr(log, "--output"), "--output %s %s: exit %d: %s",
                  cases[i].output, extra, rc, log);
        free(log);
    }
    CHECK(!exists(in(p, base, "model/new")));
    CHECK(!exists(in(p, base, "adapter/checkpoint-1/new")));
    size_t n;
    char *after = rosa_read_file(in(p, ad, "adapter_model.safetensors"), &n);
    CHECK_MSG(after && n == n_before && memcmp(after, before, n) == 0, "the input adapter was changed");
    free(after);
    after = rosa_read_file(in(p, ad, "checkpoint-1/adapter_model.safetensors"), &n);
    CHECK_MSG(after && n == n_ck && memcmp(after, ck, n) == 0, "the input checkpoint was changed");
    free(after);
    free(before);
    free(ck);
    /* apart: fine */
    snprintf(extra, sizeof extra, "--init-adapter %s/adapter", base);
    rc = train(&log, data, in(p, base, "second"), extra);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
}

/* merge --output equal to, inside or holding --model overwrote the base weights. */
TEST(paths_merge_output_never_overlaps_the_model) {
    char base[PATH_CAP], data[PATH_CAP], model[PATH_CAP], ad[PATH_CAP], p[PATH_CAP];
    fresh_dir(base, "merge-overlap");
    write_toy_records(in(data, base, "data.jsonl"), 8);
    in(model, base, "model");
    run_shellf(NULL, "cp -r '%s' '%s'", shared_path("models/stories260K"), model);
    char *log = NULL;
    int rc = train(&log, data, in(ad, base, "adapter"), "");
    free(log);
    REQUIRE(rc == 0);
    size_t n_before;
    char *before = rosa_read_file(in(p, model, "model.safetensors"), &n_before);
    REQUIRE(before);
    static const char *const outs[][2] = {{"model", "is the same path as --model"},
                                          {"model/./", "is the same path as --model"},
                                          {"model/merged", "lies inside --model"},
                                          {"", "contains --model"}};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        rc = run_shellf(&log, "%s merge --model %s --adapter %s --output %s/%s", rosa_bin(), model, ad, base, outs[i][0]);
        CHECK_MSG(rc == 1 && strstr(log, outs[i][1]) && strstr(log, "--output"), "--output %s: exit %d: %s",
                  outs[i][0], rc, log);
        free(log);
    }
    size_t n;
    char *after = rosa_read_file(in(p, model, "model.safetensors"), &n);
    CHECK_MSG(after && n == n_before && memcmp(after, before, n) == 0, "the base weights were changed");
    CHECK(!exists(in(p, model, "merged")));
    CHECK(!exists(in(p, base, "model.safetensors")));
    free(after);
    free(before);
    rc = run_shellf(&log, "%s merge --model %s --adapter %s --output %s/merged", rosa_bin(), model, ad, base);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
}

/* ------------------------------- item 3: the cache's blobs/ must be its own */

static void expect_refused(const char *dir, const char *needle) {
    rosa_model *m = rosa_model_load(dir);
    CHECK_MSG(m == NULL, "%s loaded", dir);
    CHECK_MSG(strstr(rosa_last_error(), needle), "%s: error \"%s\" does not mention \"%s\"", dir, rosa_last_error(),
              needle);
    rosa_model_free(m);
}

/* A snapshot directory of a cache repository whose model.safetensors links
 * to ../../blobs/<target>, config.json a plain copy. */
static const char *snapshot(char *buf, const char *repo, const char *target) {
    in(buf, repo, "snapshots/abc123");
    run_shellf(NULL, "mkdir -p '%s' && cp %s '%s/' && ln -sfn '../../blobs/%s' '%s/model.safetensors'", buf,
        shared_path("models/stories260K/config.json"), buf, target, buf);
    return buf;
}

TEST(paths_hugging_face_cache_blobs_must_not_be_a_link) {
    char base[PATH_CAP], repo[PATH_CAP], snap[PATH_CAP], weights[PATH_CAP];
    fresh_dir(base, "hf-blobs");
    if (!realpath(shared_path("models/stories260K/model.safetensors"), weights)) {
        test_fail(__FILE__, __LINE__, "no stories260K weights");
        return;
    }
    /* blobs -> a directory elsewhere, holding real weights: they must not load */
    in(repo, base, "models--evil--elsewhere");
    run_shellf(NULL, "mkdir -p '%s/elsewhere' '%s' && cp '%s' '%s/elsewhere/0f1e2d' && ln -s ../elsewhere '%s/blobs'", base,
        repo, weights, base, repo);
    expect_refused(snapshot(snap, repo, "0f1e2d"), "outside the model directory");
    /* blobs -> /: a snapshot link to /etc/passwd is not opened (and so not parsed) */
    in(repo, base, "models--evil--root");
    run_shellf(NULL, "mkdir -p '%s' && ln -s / '%s/blobs'", repo, repo);
    expect_refused(snapshot(snap, repo, "etc/passwd"), "resolves to /etc/passwd, outside the model directory");
    /* a real blobs/ whose blob links out */
    in(repo, base, "models--evil--bloblink");
    run_shellf(NULL, "mkdir -p '%s/blobs' && ln -s '%s' '%s/blobs/0f1e2d'", repo, weights, repo);
    expect_refused(snapshot(snap, repo, "0f1e2d"), "outside the model directory");
    /* the ordinary layout still loads, also with the cache reached through a link */
    in(repo, base, "models--rosa--ok");
    run_shellf(NULL, "mkdir -p '%s/blobs' && cp '%s' '%s/blobs/0f1e2d' && ln -s '%s' '%s/hub'", repo, weights, repo, base,
        base);
    snapshot(snap, repo, "0f1e2d");
    char via[PATH_CAP];
    in(via, base, "hub/models--rosa--ok/snapshots/abc123");
    const char *dirs[] = {snap, via};
    for (int i = 0; i < 2; i++) {
        rosa_model *m = rosa_model_load(dirs[i]);
        CHECK_MSG(m != NULL, "%s: %s", dirs[i], rosa_last_error());
        rosa_model_free(m);
    }
}
