/* test_metrics.c: metrics.jsonl, its one writer and one reader
 * (src/train/metrics.h): the exact bytes of every line kind, the typed lines
 * read back, the classification of malformed lines, the truncation of a
 * resumed run, and write errors reported (by the writer and by `rosa train`). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "train/metrics.h"
#include "core/util.h"

static int write_text(const char *path, const char *text) { return rosa_write_file_atomic(path, text, strlen(text)); }

/* Every line handed over, copied. */
typedef struct {
    int n;
    rosa_metrics_line l[32];
    double vals[32][8];
    char text[32][256];
    char compute[16];
} lines;

static int collect(const rosa_metrics_line *l, void *user) {
    lines *c = user;
    if (c->n == 32) return rosa_fail("too many lines");
    int i = c->n++;
    c->l[i] = *l;
    for (int k = 0; k < l->n && k < 8; k++) c->vals[i][k] = l->values[k];
    c->l[i].values = c->vals[i];
    snprintf(c->text[i], sizeof c->text[i], "%.*s", (int)l->len, l->text);
    c->l[i].text = c->text[i];
    if (l->kind == ROSA_METRICS_PLAN && l->plan.compute) {
        snprintf(c->compute, sizeof c->compute, "%s", l->plan.compute);
        c->l[i].plan.compute = c->compute;
    }
    return 0;
}

TEST(metrics_writer_bytes_and_typed_lines_read_back) {
    const char *path = test_tmp_path("metrics-w.jsonl");
    rosa_metrics *m = rosa_metrics_open(path, 0);
    REQUIRE(m);
    rosa_training_plan plan = {.memory_bytes = 123456789, .activation_bytes = 1024, .trainable_params = 5000,
                               .base_params = 260000, .total_steps = 8, .compute = "fp32", .recompute = 0};
    const uint8_t active[4] = {0, 1, 0, 1};
    const float scores[4] = {0.5f, 0.25f, 1e-7f, 3.0f};
    const int64_t counts[4] = {0, 2, 0, 1};
    CHECK(rosa_metrics_plan(m, &plan) == 0);
    CHECK(rosa_metrics_dls_selection(m, 1, ROSA_DLS_MODE_EXPLORE, active, 4) == 0);
    CHECK(rosa_metrics_dls_scores(m, 1, scores, 4) == 0);
    CHECK(rosa_metrics_step(m, 1, 2.5, (float)1e-3, 0.75, 100, 0.4) == 0);
    CHECK(rosa_metrics_skipped(m, 2) == 0);
    CHECK(rosa_metrics_step(m, 3, 1.0, 0.0, 0.0, 7, 0.0) == 0);
    CHECK(rosa_metrics_dls_selection(m, 3, ROSA_DLS_MODE_EXPLOIT, active, 0) == 0);
    CHECK(rosa_metrics_val(m, 3, 1.25) == 0);
    CHECK(rosa_metrics_dls_counts(m, 3, counts, 4) == 0);
    CHECK(rosa_metrics_peak_rss(m, 3, 1048576) == 0);
    CHECK(rosa_metrics_dls_selection(m, 3, ROSA_DLS_MODE_OTHER, active, 4) < 0); /* read only */
    CHECK(rosa_metrics_close(m) == 0);
    size_t len;
    char *text = rosa_read_file(path, &len);
    REQUIRE(text);
    /* the format of docs/formats.md, byte for byte */
    CHECK_STR(text,
              "{\"step\": 0, \"plan\": {\"memory_bytes\": 123456789, \"activation_bytes\": 1024, \"trainable_params\": "
              "5000, \"base_params\": 260000, \"total_steps\": 8, \"compute\": \"fp32\", \"recompute\": false}}\n"
              "{\"step\": 1, \"dls_selection\": {\"mode\": \"explore\", \"layers\": [1, 3]}}\n"
              "{\"step\": 1, \"dls_scores\": [0.5, 0.25, 1e-07, 3]}\n"
              "{\"step\": 1, \"loss\": 2.5, \"lr\": 0.00100000005, \"grad_norm\": 0.75, \"tokens\": 100, "
              "\"tokens_per_second\": 250.00, \"seconds\": 0.4000}\n"
              "{\"step\": 2, \"skipped\": true}\n"
              "{\"step\": 3, \"loss\": 1, \"lr\": 0, \"grad_norm\": 0, \"tokens\": 7, \"tokens_per_second\": 0.00, "
              "\"seconds\": 0.0000}\n"
              "{\"step\": 3, \"dls_selection\": {\"mode\": \"exploit\", \"layers\": []}}\n"
              "{\"step\": 3, \"val_loss\": 1.25}\n"
              "{\"step\": 3, \"dls_counts\": [0, 2, 0, 1]}\n"
              "{\"step\": 3, \"peak_rss_bytes\": 1048576}\n");
    free(text);

    lines c = {0};
    REQUIRE(rosa_metrics_read(path, collect, &c) == 0);
    REQUIRE(c.n == 10);
    static const rosa_metrics_kind kinds[10] = {
        ROSA_METRICS_PLAN, ROSA_METRICS_DLS_SELECTION, ROSA_METRICS_DLS_SCORES, ROSA_METRICS_STEP,
        ROSA_METRICS_SKIPPED, ROSA_METRICS_STEP, ROSA_METRICS_DLS_SELECTION, ROSA_METRICS_VAL,
        ROSA_METRICS_DLS_COUNTS, ROSA_METRICS_PEAK_RSS};
    for (int i = 0; i < 10; i++) {
        CHECK_MSG(c.l[i].kind == kinds[i], "line %d: kind %d, expected %d", i + 1, c.l[i].kind, kinds[i]);
        CHECK(c.l[i].line_no == i + 1 && c.l[i].have_step);
    }
    const rosa_training_plan *p = &c.l[0].plan;
    CHECK(p->memory_bytes == 123456789 && p->activation_bytes == 1024 && p->trainable_params == 5000 &&
          p->base_params == 260000 && p->total_steps == 8 && p->recompute == 0);
    CHECK_STR(p->compute, "fp32");
    CHECK(c.l[1].step == 1 && c.l[1].mode == ROSA_DLS_MODE_EXPLORE && c.l[1].n == 2 && c.l[1].values[0] == 1 &&
          c.l[1].values[1] == 3);
    CHECK(c.l[2].n == 4 && c.l[2].values[0] == 0.5 && c.l[2].values[3] == 3 && fabs(c.l[2].values[2] - 1e-7) < 1e-13);
    CHECK(c.l[3].loss == 2.5 && c.l[3].grad_norm == 0.75 && c.l[3].tokens == 100 && c.l[3].tokens_per_second == 250 &&
          c.l[3].seconds == 0.4 && fabs(c.l[3].lr - 1e-3) < 1e-10);
    CHECK(c.l[4].step == 2);
    CHECK(c.l[6].mode == ROSA_DLS_MODE_EXPLOIT && c.l[6].n == 0);
    CHECK(c.l[7].val_loss == 1.25);
    CHECK(c.l[8].n == 4 && c.l[8].values[1] == 2 && c.l[8].values[3] == 1);
    CHECK(c.l[9].peak_rss_bytes == 1048576);
    CHECK_STR(c.l[7].text, "{\"step\": 3, \"val_loss\": 1.25}");
    CHECK_STR(rosa_dls_mode_name(ROSA_DLS_MODE_OTHER), "other");
}

TEST(metrics_reader_classifies_malformed_lines) {
    const char *path = test_tmp_path("metrics-bad.jsonl");
    rosa_buf b = {0};
    const char *head =
        "\n"                                                                   /* 1: empty, not handed over */
        "\r\n"                                                                 /* 2: empty */
        "not json\n"                                                           /* 3 BAD, no step */
        "[1, 2]\n"                                                             /* 4 BAD */
        "{\"step\": \"1\", \"loss\": 1}\n"                                     /* 5 BAD */
        "{\"step\": 4, \"what\": 1}\r\n"                                       /* 6 UNKNOWN */
        "{\"step\": 5, \"dls_selection\": {\"mode\": \"exploit\"}}\n"         /* 7 BAD: no layers */
        "{\"step\": 6, \"dls_selection\": {\"mode\": \"x\", \"layers\": [0, 9999]}}\n" /* 8 BAD */
        "{\"step\": 7, \"dls_selection\": {\"layers\": [2, 0.5]}}\n"          /* 9 BAD */
        "{\"step\": 8, \"dls_selection\": {\"mode\": 3, \"layers\": [2]}}\n"  /* 10 selection, other */
        "{\"step\": 9, \"dls_scores\": [\"a\", null, 2]}\n"                   /* 11 scores, NAN */
        "{\"step\": 10, \"plan\": {\"memory_bytes\": -5, \"compute\": 1, \"recompute\": true}}\n" /* 12 */
        "{\"step\": 11, \"loss\": \"x\", \"skipped\": true, \"val_loss\": 2}\n" /* 13 skipped first */
        "{\"step\": 12, \"loss\": 3, \"skipped\": true}\n";                   /* 14 step first */
    rosa_buf_append(&b, head, strlen(head));
    const char *counts = "{\"step\": 13, \"dls_counts\": [", *tail = "]}\n{\"step\": 14, \"val_loss\": 1}";
    rosa_buf_append(&b, counts, strlen(counts)); /* 15 BAD: too long */
    for (int i = 0; i <= ROSA_METRICS_MAX_LAYERS; i++) rosa_buf_append(&b, i ? ", 1" : "1", i ? 3 : 1);
    rosa_buf_append(&b, tail, strlen(tail)); /* 16: no final newline */
    REQUIRE(rosa_write_file_atomic(path, b.data, b.len) == 0);
    rosa_buf_free(&b);
    lines c = {0};
    REQUIRE(rosa_metrics_read(path, collect, &c) == 0);
    REQUIRE(c.n == 14);
    static const struct {
        int line_no, have_step;
        rosa_metrics_kind kind;
    } want[14] = {{3, 0, ROSA_METRICS_BAD},      {4, 0, ROSA_METRICS_BAD},
                  {5, 0, ROSA_METRICS_BAD},      {6, 1, ROSA_METRICS_UNKNOWN},
                  {7, 1, ROSA_METRICS_BAD},      {8, 1, ROSA_METRICS_BAD},
                  {9, 1, ROSA_METRICS_BAD},      {10, 1, ROSA_METRICS_DLS_SELECTION},
                  {11, 1, ROSA_METRICS_DLS_SCORES}, {12, 1, ROSA_METRICS_PLAN},
                  {13, 1, ROSA_METRICS_SKIPPED}, {14, 1, ROSA_METRICS_STEP},
                  {15, 1, ROSA_METRICS_BAD},     {16, 1, ROSA_METRICS_VAL}};
    for (int i = 0; i < 14; i++)
        CHECK_MSG(c.l[i].line_no == want[i].line_no && c.l[i].have_step == want[i].have_step &&
                      c.l[i].kind == want[i].kind,
                  "entry %d: line %d, step %d, kind %d; expected line %d, step %d, kind %d", i, c.l[i].line_no,
                  c.l[i].have_step, c.l[i].kind, want[i].line_no, want[i].have_step, want[i].kind);
    CHECK(isnan(c.l[0].step));
    CHECK_STR(c.l[3].text, "{\"step\": 4, \"what\": 1}\r"); /* as in the file, without the '\n' */
    CHECK(c.l[7].mode == ROSA_DLS_MODE_OTHER && c.l[7].n == 1 && c.l[7].values[0] == 2);
    CHECK(c.l[8].n == 3 && isnan(c.l[8].values[0]) && isnan(c.l[8].values[1]) && c.l[8].values[2] == 2);
    const rosa_training_plan *p = &c.l[9].plan;
    CHECK(p->memory_bytes == -1 && p->total_steps == -1 && p->compute == NULL && p->recompute == 1);
    CHECK(c.l[11].loss == 3 && isnan(c.l[11].lr));
    CHECK(c.l[13].val_loss == 1);
    /* a missing file; a callback that stops */
    CHECK(rosa_metrics_read(test_tmp_path("no-such-metrics.jsonl"), collect, &c) < 0);
    CHECK_ERROR_HAS("no-such-metrics.jsonl");
}

TEST(metrics_resume_keeps_the_lines_up_to_the_step) {
    const char *path = test_tmp_path("metrics-resume.jsonl");
    const char *before = "{\"step\": 0, \"plan\": {\"memory_bytes\": 1}}\n"
                         "{\"step\": 1, \"loss\": 3}\n"
                         "garbage\n"
                         "\n"
                         "{\"step\": 2, \"loss\": 2}\r\n"
                         "{\"step\": 2, \"dls_selection\": {\"mode\": \"x\", \"layers\": [1e9]}}\n"
                         "{\"step\": 3, \"loss\": 1}\n"
                         "{\"step\": 2.5, \"val_loss\": 1}\n"
                         "{\"step\": 1, \"later\": true}";
    REQUIRE(write_text(path, before) == 0);
    rosa_metrics *m = rosa_metrics_open(path, 2);
    REQUIRE(m);
    CHECK(rosa_metrics_step(m, 3, 0.5, 0.001, 1, 10, 1) == 0);
    CHECK(rosa_metrics_close(m) == 0);
    size_t len;
    char *text = rosa_read_file(path, &len);
    REQUIRE(text);
    /* kept as they were (a bad line with a step too), in order; the rest dropped */
    CHECK_STR(text, "{\"step\": 0, \"plan\": {\"memory_bytes\": 1}}\n"
                    "{\"step\": 1, \"loss\": 3}\n"
                    "{\"step\": 2, \"loss\": 2}\r\n"
                    "{\"step\": 2, \"dls_selection\": {\"mode\": \"x\", \"layers\": [1e9]}}\n"
                    "{\"step\": 1, \"later\": true}\n"
                    "{\"step\": 3, \"loss\": 0.5, \"lr\": 0.001, \"grad_norm\": 1, \"tokens\": 10, "
                    "\"tokens_per_second\": 10.00, \"seconds\": 1.0000}\n");
    free(text);
    /* resuming where there is no file yet makes an empty one; step 0 starts over */
    const char *fresh = test_tmp_path("metrics-fresh.jsonl");
    unlink(fresh);
    m = rosa_metrics_open(fresh, 5);
    REQUIRE(m);
    CHECK(rosa_metrics_close(m) == 0);
    text = rosa_read_file(fresh, &len);
    CHECK(text && len == 0);
    free(text);
    m = rosa_metrics_open(path, 0);
    REQUIRE(m);
    CHECK(rosa_metrics_close(m) == 0);
    text = rosa_read_file(path, &len);
    CHECK(text && len == 0);
    free(text);
    CHECK(rosa_metrics_open(test_tmp_path("no-such-dir/metrics.jsonl"), 0) == NULL);
    CHECK_ERROR_HAS("cannot write");
}

TEST(metrics_write_errors_are_reported) {
    if (access("/dev/full", W_OK) != 0) {
        test_skip("no /dev/full");
        return;
    }
    rosa_metrics *m = rosa_metrics_open("/dev/full", 0);
    REQUIRE(m);
    CHECK(rosa_metrics_step(m, 1, 1, 1, 1, 1, 1) < 0); /* flushed at once: ENOSPC */
    CHECK_ERROR_HAS("/dev/full: cannot write: No space left on device");
    rosa_metrics_free(m);
    m = rosa_metrics_open("/dev/full", 0);
    REQUIRE(m);
    float s[1] = {1};
    CHECK(rosa_metrics_dls_scores(m, 1, s, 1) == 0); /* buffered until the step line */
    CHECK(rosa_metrics_close(m) < 0);
    CHECK_ERROR_HAS("No space left on device");

    /* `rosa train` stops with the error when metrics.jsonl cannot be written:
     * a file size limit (SIGXFSZ ignored: EFBIG) that training_args.json
     * (about 3 KB) fits in and the metrics of 200 steps exceed before the
     * first checkpoint is written.  (A link to /dev/full
     * is refused: rosa does not write through links in an output directory,
     * tests/test_robustness_paths.c.) */
    const char *data = test_tmp_path("metrics-full.jsonl"), *out = test_tmp_path("metrics-full-out");
    write_toy_records(data, 8);
    mkdir(out, 0755);
    char link[600], cmd[4096], *o = NULL;
    snprintf(link, sizeof link, "%s/metrics.jsonl", out);
    unlink(link);
    REQUIRE(symlink("/dev/full", link) == 0);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --max-steps 200 --batch-size 4 "
             "--micro-batch-size 2 --cutoff-len 48 --threads 1 --quiet", rosa_bin(), shared_path("models/stories260K"),
             data, out);
    int rc = run_capture(cmd, 1, &o);
    CHECK_MSG(rc == 1 && strstr(o, "metrics.jsonl is a symbolic link"), "exit %d: %s", rc, o);
    free(o);
    unlink(link);
    if (getenv("ROSA_TSAN")) return; /* TSan's runtime faults under a low RLIMIT_FSIZE (docs/robustness.md) */
    char limited[4200];
    snprintf(limited, sizeof limited, "ulimit -f 16; trap '' XFSZ; %s", cmd);
    rc = run_capture(limited, 1, &o);
    CHECK_MSG(rc == 1 && strstr(o, "metrics.jsonl: cannot write: File too large"), "exit %d: %s", rc, o);
    free(o);
}
