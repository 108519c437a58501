/* test_report.c: the SVG plotting module (scales, nice ticks, tick labels,
 * escaping, empty and degenerate data, each chart well-formed XML) and
 * `rosa report` on a real RoSA training run of stories260K and on hand-made
 * run directories (hostile strings escaped, --compare, bad lines, evaluation
 * reports read back exactly as rosa eval wrote them and other shapes refused,
 * errors). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "eval/eval_report.h"
#include "io/json.h"
#include "model/model.h"
#include "report/report.h"
#include "report/svg.h"
#include "test.h"
#include "peft/lora.h"
#include "peft/roae.h"
#include "core/util.h"

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int write_text(const char *path, const char *text) {
    return rosa_write_file_atomic(path, text, strlen(text));
}

/* Runs tools/check_report_html.py on a file; returns its exit status, output in *out. */
static int check_html(const char *path, int expect_svg, char **out) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, PY " tools/check_report_html.py %s --expect-svg %d", path, expect_svg);
    return run_capture(cmd, 1, out);
}

/* ------------------------------------------------------------ scales, ticks */

TEST(svg_nice_numbers_and_domains) {
    CHECK(svg_nice_num(1.0, 0) == 1.0);
    CHECK(svg_nice_num(1.2, 0) == 2.0);
    CHECK(svg_nice_num(37, 0) == 50.0);
    CHECK(svg_nice_num(12, 1) == 10.0);
    CHECK(svg_nice_num(25, 1) == 20.0);
    CHECK(fabs(svg_nice_num(0.00034, 1) - 5e-4) < 1e-18);
    CHECK(svg_nice_num(0, 1) == 1.0);
    CHECK(svg_nice_num(NAN, 1) == 1.0);
    double lo = 0.13, hi = 0.97, step = svg_nice_domain(&lo, &hi, 5);
    CHECK(fabs(step - 0.2) < 1e-12 && lo == 0.0 && fabs(hi - 1.0) < 1e-12);
    lo = 2.1, hi = 4.7;
    step = svg_nice_domain(&lo, &hi, 5);
    CHECK(step == 1.0 && lo == 2.0 && hi == 5.0);
    lo = 4.7, hi = 2.1; /* swapped */
    svg_nice_domain(&lo, &hi, 5);
    CHECK(lo == 2.0 && hi == 5.0);
    lo = hi = 3.0; /* a single value: widened around it */
    step = svg_nice_domain(&lo, &hi, 5);
    CHECK(lo < 3.0 && hi > 3.0 && step > 0);
    lo = hi = 0.0;
    svg_nice_domain(&lo, &hi, 5);
    CHECK(lo == -1.0 && hi == 1.0);
    lo = NAN, hi = INFINITY;
    svg_nice_domain(&lo, &hi, 5);
    CHECK(lo == 0.0 && hi == 1.0);
    lo = 1e-4, hi = 3.3e-3;
    step = svg_nice_domain(&lo, &hi, 4);
    CHECK(fabs(step - 1e-3) < 1e-15 && lo == 0.0 && fabs(hi - 4e-3) < 1e-15);
    /* x axes keep their extent */
    CHECK(svg_nice_step(1, 60, 8) == 10.0);
    CHECK(svg_nice_step(5, 5, 4) == 1.0);
}

TEST(svg_ticks_are_exact) {
    double t[64];
    int n = svg_ticks(0, 1, 0.2, t, 64);
    CHECK_EQ_INT(n, 6);
    CHECK(t[0] == 0.0 && fabs(t[5] - 1.0) < 1e-12);
    n = svg_ticks(-0.3, 0.3, 0.1, t, 64);
    CHECK_EQ_INT(n, 7);
    CHECK(t[3] == 0.0); /* exactly zero, not 5.55e-17 */
    char buf[32];
    svg_format_tick(buf, sizeof buf, t[3], 0.1);
    CHECK_STR(buf, "0");
    n = svg_ticks(1, 60, 10, t, 64);
    CHECK_EQ_INT(n, 6);
    CHECK(t[0] == 10.0 && t[5] == 60.0);
    CHECK_EQ_INT(svg_ticks(0, 1, 0, t, 64), 0);
    CHECK_EQ_INT(svg_ticks(0, 1e9, 1, t, 64), 64); /* capped */
    n = svg_log_ticks(1e-4, 1e-1, t, 64);
    CHECK_EQ_INT(n, 4);
    CHECK(fabs(t[0] - 1e-4) < 1e-18 && fabs(t[3] - 0.1) < 1e-15);
    n = svg_log_ticks(1, 50, t, 64);
    CHECK_EQ_INT(n, 6); /* 1 2 5 10 20 50 */
    CHECK(t[1] == 2.0 && t[5] == 50.0);
    CHECK_EQ_INT(svg_log_ticks(0, 10, t, 64), 0);
}

TEST(svg_tick_labels) {
    static const struct {
        double v, step;
        const char *want;
    } cases[] = {
        {0.25, 0.05, "0.25"}, {0.2, 0.2, "0.2"},     {0.4, 0.2, "0.4"},     {-0.4, 0.2, "-0.4"},
        {3, 1, "3"},          {2.5, 0.5, "2.5"},     {0.006, 0.002, "0.006"}, {12000, 2000, "12k"},
        {1500, 500, "1.5k"},  {5000, 5000, "5k"},    {2500000, 500000, "2.5M"}, {2.5e-4, 5e-5, "2.5e-4"},
        {1e-3, 5e-4, "1e-3"}, {0, 0.1, "0"},         {40, 20, "40"},        {0.125, 0.025, "0.125"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        svg_format_tick(buf, sizeof buf, cases[i].v, cases[i].step);
        CHECK_MSG(strcmp(buf, cases[i].want) == 0, "tick %g (step %g): \"%s\", expected \"%s\"", cases[i].v,
                  cases[i].step, buf, cases[i].want);
    }
    svg_format_tick(buf, sizeof buf, NAN, 1);
    CHECK_STR(buf, "nan");
}

TEST(svg_scales_map_domains_to_pixels) {
    svg_scale s = {0, 10, 100, 200, 0};
    CHECK(svg_scale_map(&s, 5) == 150.0);
    CHECK(svg_scale_map(&s, 0) == 100.0 && svg_scale_map(&s, 10) == 200.0);
    svg_scale inv = {0, 1, 300, 20, 0}; /* y axes run upwards */
    CHECK(svg_scale_map(&inv, 1) == 20.0);
    svg_scale lg = {1, 100, 0, 100, 1};
    CHECK(fabs(svg_scale_map(&lg, 10) - 50.0) < 1e-12);
    CHECK(isnan(svg_scale_map(&lg, -1)));
    svg_scale flat = {3, 3, 0, 100, 0};
    CHECK(svg_scale_map(&flat, 3) == 50.0);
    char c[8];
    svg_viridis(0, c);
    CHECK_STR(c, "#440154");
    svg_viridis(1, c);
    CHECK_STR(c, "#fde725");
    svg_viridis(NAN, c);
    CHECK_STR(c, "#440154");
    CHECK_STR(svg_palette(0), svg_palette(10));
}

TEST(svg_escaping) {
    svg_buf o = {0};
    svg_escape(&o, "<script>alert('x')&\"</script>");
    CHECK_STR(o.b.data, "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;");
    svg_buf_free(&o);
    /* valid UTF-8 kept; invalid bytes replaced; XML-forbidden controls dropped */
    svg_escape(&o, "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x99\x82|\xff|\xc0\xaf|\xed\xa0\x80|\x01\x1b|\t\n|\xef\xbf\xbe|");
    CHECK_STR(o.b.data, "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x99\x82|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd||\t\n||");
    svg_buf_free(&o);
    svg_escape_n(&o, "a\0<b", 4); /* an embedded NUL is a control character */
    CHECK_EQ_INT(o.b.len, 6);
    CHECK_STR(o.b.data, "a&lt;b");
    svg_buf_free(&o);
    svg_escape(&o, NULL);
    CHECK(o.b.len == 0 && !o.failed);
    svg_buf_free(&o);
}

/* Every string of a chart escaped; the chart well-formed; no NaN leaks. */
TEST(svg_charts_escape_labels_and_survive_bad_data) {
    const char *hostile = "<script>alert(1)</script>&\"'";
    double x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {3, 2.5, NAN, 1.5, 1.2, 1.1};
    svg_series s[2] = {{hostile, x, y, 6, NULL, 0, 0, 0, 0, 0}, {"b", x, y, 6, "#123456", 1, 0.5, 1, 1, 0}};
    double xb[2] = {2, 3};
    svg_line_chart lc = {.width = 500, .height = 260, .title = hostile, .xlabel = hostile, .ylabel = hostile,
                         .series = s, .n_series = 2, .xbands = xb, .n_xbands = 1, .xband_label = hostile};
    svg_buf o = {0};
    svg_line_chart_render(&o, &lc);
    REQUIRE(!o.failed);
    CHECK(strstr(o.b.data, "<script") == NULL);
    CHECK(count(o.b.data, "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;") >= 4);
    CHECK_EQ_INT(count(o.b.data, "<polyline"), 4); /* the NaN breaks each line in two */
    CHECK_EQ_INT(count(o.b.data, "<circle"), 5);   /* markers of the second series, finite points only */
    CHECK(strstr(o.b.data, "nan") == NULL && strstr(o.b.data, "inf") == NULL);
    write_text(test_tmp_path("chart-line.svg"), o.b.data);
    svg_buf_free(&o);

    /* empty, all-NaN, one point, log scale with non-positive values */
    double nanv[3] = {NAN, NAN, NAN}, one = 2.0, neg[3] = {-1, 0, 10};
    svg_series e[1] = {{"e", NULL, nanv, 3, NULL, 0, 0, 0, 0, 0}};
    svg_line_chart ec = {.title = "empty", .series = e, .n_series = 1};
    svg_line_chart_render(&o, &ec);
    CHECK(strstr(o.b.data, "no data") != NULL);
    CHECK(strstr(o.b.data, "viewBox=\"0 0 640 300\"") != NULL);
    svg_buf_free(&o);
    ec.n_series = 0;
    svg_line_chart_render(&o, &ec);
    CHECK(strstr(o.b.data, "no data") != NULL);
    write_text(test_tmp_path("chart-empty.svg"), o.b.data);
    svg_buf_free(&o);
    e[0] = (svg_series){"one", &one, &one, 1, NULL, 0, 0, 0, 1, 0};
    ec.n_series = 1;
    svg_line_chart_render(&o, &ec);
    CHECK(strstr(o.b.data, "<circle") != NULL && strstr(o.b.data, "nan") == NULL);
    write_text(test_tmp_path("chart-one.svg"), o.b.data);
    svg_buf_free(&o);
    e[0] = (svg_series){"log", NULL, neg, 3, NULL, 0, 0, 0, 0, 0};
    ec.ylog = 1;
    svg_line_chart_render(&o, &ec);
    CHECK(strstr(o.b.data, "nan") == NULL && strstr(o.b.data, "<polyline") != NULL);
    CHECK(strstr(o.b.data, ">10<") != NULL); /* a log tick */
    svg_buf_free(&o);

    /* bar chart: highlighted categories, hostile categories, NaN bars */
    const char *cats[4] = {"0", "<1>", "2", "3"};
    double v[4] = {1, 2, NAN, 4};
    unsigned char hl[4] = {0, 1, 0, 1};
    svg_bar_chart bc = {.width = 400, .height = 240, .title = "bars", .xlabel = "x", .ylabel = "y", .categories = cats,
                        .n_cat = 4, .values = v, .n_series = 1, .highlight = hl, .highlight_color = "#e15759",
                        .highlight_label = "hl", .base_label = "base", .value_format = "%.1f"};
    svg_bar_chart_render(&o, &bc);
    CHECK_EQ_INT(count(o.b.data, "fill=\"#e15759\">"), 2); /* two highlighted bars (the legend swatch has no title) */
    CHECK_EQ_INT(count(o.b.data, "<title>"), 1 + 3);       /* the chart's and one per finite bar */
    CHECK(strstr(o.b.data, "&lt;1&gt;") != NULL && strstr(o.b.data, "<1>") == NULL);
    CHECK(strstr(o.b.data, ">4.0<") != NULL);
    write_text(test_tmp_path("chart-bar.svg"), o.b.data);
    svg_buf_free(&o);
    bc.n_cat = 0;
    svg_bar_chart_render(&o, &bc);
    CHECK(strstr(o.b.data, "no data") != NULL);
    svg_buf_free(&o);

    /* heatmap: equal neighbours merge into one rectangle; faded cells; markers */
    double hv[2 * 5] = {1, 1, 1, 2, 2, NAN, NAN, 3, 3, 3};
    unsigned char fd[2 * 5] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 0};
    double edges[6] = {0.5, 1.5, 2.5, 3.5, 4.5, 5.5}, mx[2] = {2.5, 3.5};
    int mk[2] = {0, 1};
    const char *rows[2] = {"layer 0", "<layer 1>"}, *ml[2] = {"exploit", "explore"};
    svg_heatmap hm = {.width = 600, .height = 220, .title = "heat", .xlabel = "step", .rows = 2, .cols = 5,
                      .values = hv, .faded = fd, .row_labels = rows, .col_edges = edges, .colorbar_label = "score",
                      .full_label = "active", .faded_label = "inactive", .missing_label = "none", .marker_x = mx,
                      .marker_kind = mk, .n_markers = 2, .marker_labels = ml, .n_marker_kinds = 2, .marker_lines = 1};
    svg_heatmap_render(&o, &hm);
    /* row 0: [1 1 1][2 2]; row 1: [nan nan](faded)[3 3](faded)[3] */
    CHECK_EQ_INT(count(o.b.data, " fill-opacity=\"0.22\"/>"), 2 + 1); /* two faded runs + the legend swatch */
    CHECK_EQ_INT(count(o.b.data, "fill=\"#dcdcdc\""), 1 + 1); /* one missing run + its legend swatch */
    CHECK(strstr(o.b.data, "&lt;layer 1&gt;") != NULL);
    CHECK_EQ_INT(count(o.b.data, "<path d=\"M"), 2 + 2); /* two markers + the legend's two */
    CHECK(strstr(o.b.data, "nan") == NULL);
    write_text(test_tmp_path("chart-heat.svg"), o.b.data);
    svg_buf_free(&o);
    hm.rows = 0;
    svg_heatmap_render(&o, &hm);
    CHECK(strstr(o.b.data, "no data") != NULL);
    svg_buf_free(&o);

    /* each chart is well-formed XML */
    char cmd[2048], *out;
    snprintf(cmd, sizeof cmd,
             PY " -c \"import sys,xml.etree.ElementTree as E; [E.parse(f) for f in sys.argv[1:]]; print('ok')\" "
                "%s %s %s %s %s",
             test_tmp_path("chart-line.svg"), test_tmp_path("chart-empty.svg"), test_tmp_path("chart-one.svg"), test_tmp_path("chart-bar.svg"),
             test_tmp_path("chart-heat.svg"));
    int rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "an SVG chart is not well-formed XML: %s", out);
    free(out);
}

TEST(report_smoothing_and_counting) {
    double y[5] = {1, 3, NAN, 3, 3}, out[5];
    rosa_ema(y, 5, 1, out); /* span 1: no smoothing */
    CHECK(out[0] == 1 && out[1] == 3 && isnan(out[2]) && out[4] == 3);
    rosa_ema(y, 5, 3, out); /* w = 0.5, debiased: (0.5 * 1 + 3) / 1.5 */
    CHECK(out[0] == 1.0 && fabs(out[1] - 3.5 / 1.5) < 1e-12 && isnan(out[2]));
    CHECK(fabs(out[3] - (0.25 * 1 + 0.5 * 3 + 3) / 1.75) < 1e-12);
    CHECK(rosa_report_span(10) == 1 && rosa_report_span(60) == 3 && rosa_report_span(5000) == 100);
    /* the base model's parameters from its config, as the loader counts them */
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    CHECK_EQ_INT(rosa_config_num_params(&m->cfg), rosa_model_num_params(m));
    rosa_model_free(m);
    static const char *models[] = {"llama_gqa", "qwen2_bias", "llama_bias", "mistral", "head_dim_32"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        rosa_model *t = rosa_model_load(testdata_path(models[i]));
        if (!t) continue; /* test data not generated (make testdata) */
        CHECK_MSG(rosa_config_num_params(&t->cfg) == rosa_model_num_params(t), "%s", models[i]);
        rosa_model_free(t);
    }
}

/* Three tasks (one without examples) of two groups, as rosa eval reports them. */
static char hostile_task[] = "</td><script>x()</script>";
static void sample_report(rosa_task tasks[4], rosa_task_result res[4], rosa_eval_report *rep) {
    static char boolq_file[] = "D/boolq/test.json";
    tasks[0] = *rosa_task_find_builtin("boolq");
    tasks[0].file = boolq_file;
    tasks[1] = *rosa_task_find_builtin("piqa");
    tasks[2] = *rosa_task_find_builtin("gsm8k");
    tasks[3] = (rosa_task){.name = hostile_task, .type = ROSA_TASK_COMMONSENSE};
    res[0] = (rosa_task_result){&tasks[0], 10, 5, 1, 2};
    res[1] = (rosa_task_result){&tasks[1], 0, 0, 0, 0};
    res[2] = (rosa_task_result){&tasks[2], 4, 3, 0, 0};
    res[3] = (rosa_task_result){&tasks[3], 4, 1, 2, 0};
    *rep = (rosa_eval_report){res, 4, 2.5, 12};
}

/* Reading back gives the summary the writer wrote, field for field. */
static void check_same_summary(const rosa_eval_summary *a, const rosa_eval_summary *b) {
#define SAME_STR(x, y) CHECK_MSG(((x) == NULL) == ((y) == NULL) && (!(x) || strcmp((x), (y)) == 0), "%s differs", #x)
#define SAME_NUM(x, y) CHECK_MSG((x) == (y) || (isnan(x) && isnan(y)), "%s: %g, read back %g", #x, (double)(x), (double)(y))
    SAME_STR(a->rosa_version, b->rosa_version);
    SAME_STR(a->scored_predictions, b->scored_predictions);
    CHECK(a->have_run == b->have_run && a->have_decoding == b->have_decoding && a->mode == b->mode);
    SAME_STR(a->model, b->model);
    SAME_STR(a->adapter, b->adapter);
    SAME_STR(a->decoding.strategy, b->decoding.strategy);
    SAME_STR(a->decoding.beam_rule, b->decoding.beam_rule);
    CHECK(a->decoding.num_beams == b->decoding.num_beams && a->decoding.batch_size == b->decoding.batch_size &&
          a->decoding.early_stopping == b->decoding.early_stopping &&
          a->decoding.max_new_tokens[0] == b->decoding.max_new_tokens[0] &&
          a->decoding.max_new_tokens[1] == b->decoding.max_new_tokens[1]);
    SAME_NUM(a->decoding.length_penalty, b->decoding.length_penalty);
    CHECK(a->limit == b->limit && a->new_examples == b->new_examples);
    SAME_NUM(a->seed, b->seed);
    SAME_STR(a->predictions, b->predictions);
    SAME_NUM(a->seconds, b->seconds);
    SAME_NUM(a->examples_per_second, b->examples_per_second);
    REQUIRE(a->n_tasks == b->n_tasks && a->n_groups == b->n_groups);
    for (int i = 0; i < a->n_tasks; i++) {
        const rosa_eval_task_summary *x = &a->tasks[i], *y = &b->tasks[i];
        SAME_STR(x->name, y->name);
        SAME_STR(x->file, y->file);
        SAME_NUM(x->accuracy, y->accuracy);
        CHECK(x->group == y->group && x->correct == y->correct && x->n == y->n && x->no_answer == y->no_answer &&
              x->resumed == y->resumed);
    }
    for (int i = 0; i < a->n_groups; i++) {
        const rosa_eval_group_summary *x = &a->groups[i], *y = &b->groups[i];
        SAME_STR(x->name, y->name);
        SAME_NUM(x->macro_accuracy, y->macro_accuracy);
        SAME_NUM(x->micro_accuracy, y->micro_accuracy);
        CHECK(x->correct == y->correct && x->n == y->n && x->no_answer == y->no_answer);
        REQUIRE(x->n_tasks == y->n_tasks);
        for (int k = 0; k < x->n_tasks; k++) SAME_STR(x->tasks[k], y->tasks[k]);
    }
#undef SAME_STR
#undef SAME_NUM
}

TEST(report_reads_rosa_evaluation_json_exactly) {
    rosa_task tasks[4];
    rosa_task_result res[4];
    rosa_eval_report rep;
    sample_report(tasks, res, &rep);
    rosa_eval_options o;
    rosa_eval_options_default(&o);
    o.model_dir = "models/m";
    o.predictions = "preds.jsonl";
    o.limit = 10;
    o.seed = 7;
    const char *path = test_tmp_path("eval-rt.json");
    /* a generate run, a greedy run with an adapter, a loglik run, a rescoring, and neither */
    for (int k = 0; k < 5; k++) {
        rosa_eval_options q = o;
        if (k == 1) q.num_beams = 1, q.adapter_dir = "runs/a", q.max_new_tokens = 16, q.limit = 0, q.model_dir = NULL;
        if (k == 2) q.mode = ROSA_EVAL_LOGLIK, q.predictions = NULL;
        const char *scored = k == 3 ? "saved.jsonl" : NULL;
        const rosa_eval_options *op = k >= 3 ? NULL : &q;
        REQUIRE(rosa_eval_report_write_json(&rep, op, path, scored) == 0);
        rosa_eval_summary want, got;
        REQUIRE(rosa_eval_summary_make(&rep, op, scored, &want) == 0);
        int rc = rosa_eval_report_read(path, &got);
        CHECK_MSG(rc == 0, "variant %d: %s", k, rosa_last_error());
        if (rc == 0) {
            check_same_summary(&want, &got);
            CHECK_EQ_INT(got.have_run, k < 3);
            CHECK_EQ_INT(got.n_tasks, 4);
            CHECK_EQ_INT(got.n_groups, 3); /* commonsense, math, all */
            CHECK(isnan(got.tasks[1].accuracy) && got.tasks[0].accuracy == 0.5);
            CHECK_STR(got.tasks[3].name, hostile_task);
            CHECK_STR(got.groups[2].name, "all");
            CHECK(fabs(got.groups[0].macro_accuracy - (0.5 + 0.25) / 2) < 1e-15);
            CHECK(fabs(got.groups[0].micro_accuracy - 6.0 / 14) < 1e-15);
            CHECK_EQ_INT(got.tasks[0].resumed, k == 3 ? -1 : 2);
            rosa_eval_summary_free(&got);
        }
        rosa_eval_summary_free(&want);
    }
    /* other shapes (hand-written; rosa never wrote them) are refused, saying why */
    static const struct {
        const char *json, *why;
    } other[] = {
        {"[{\"task\": \"gsm8k\", \"accuracy\": 12.5, \"n\": 8}]", "not a JSON object"},
        {"{\"tasks\": {\"boolq\": {\"accuracy\": 0.5}}}", "rosa_version is missing"},
        {"{\"rosa_version\": \"0.1.0\", \"tasks\": {\"boolq\": {\"group\": \"commonsense\", \"accuracy\": 0.5, "
         "\"n\": 10}}, \"groups\": {}, \"seconds\": 1}",
         "tasks.\"boolq\".correct is missing"},
        {"{\"rosa_version\": \"0.1.0\", \"tasks\": {\"boolq\": {\"group\": \"commonsense\", \"accuracy\": 50, "
         "\"correct\": 5, \"n\": 10, \"no_answer\": 0}}, \"groups\": {}, \"seconds\": 1}",
         "tasks.\"boolq\".accuracy is not a fraction"},
        {"{\"rosa_version\": \"0.1.0\", \"tasks\": {}, \"groups\": {\"commonsense\": {\"macro\": 0.625}}, "
         "\"seconds\": 1}",
         "groups.\"commonsense\".tasks is missing"},
        {"{\"rosa_version\": \"0.1.0\", \"mode\": \"generate\", \"adapter\": null, \"tasks\": {}, \"groups\": {}, "
         "\"seconds\": 1}",
         "decoding is missing"},
        {"{\"tasks\": ", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        rosa_eval_summary s;
        CHECK_MSG(rosa_eval_report_parse(other[i].json, strlen(other[i].json), &s) < 0, "accepted: %s", other[i].json);
        CHECK_MSG(strstr(rosa_last_error(), other[i].why), "%s: error \"%s\", expected \"%s\"", other[i].json,
                  rosa_last_error(), other[i].why);
        CHECK(s.tasks == NULL && s.owner == NULL);
    }
}

/* A hand-made run: every line kind, a malformed line, a hostile base model
 * name and evaluation task name, and a directory name that needs escaping. */
static const char *make_synthetic_run(void) {
    const char *dir = test_tmp_path("syn<run>&");
    mkdir(dir, 0755);
    char *p = rosa_path_join(dir, "metrics.jsonl");
    const char *metrics =
        "{\"step\": 1, \"loss\": 3.0, \"lr\": 0.001, \"grad_norm\": 1.5, \"tokens\": 100, \"tokens_per_second\": 1000,"
        " \"seconds\": 0.1}\n"
        "{\"step\": 2, \"loss\": 2.5, \"lr\": 0.001, \"grad_norm\": 1.0, \"tokens\": 100, \"tokens_per_second\": 500,"
        " \"seconds\": 0.2}\n"
        "this is not json\n"
        "{\"step\": 2, \"dls_scores\": [0.5, 0.25, 0.125]}\n"
        "{\"step\": 3, \"dls_selection\": {\"mode\": \"explore\", \"layers\": [1, 2]}}\n"
        "{\"step\": 3, \"skipped\": true}\n"
        "{\"step\": 4, \"loss\": 2.0, \"lr\": 0.0005, \"grad_norm\": 0.5, \"tokens\": 100, \"tokens_per_second\": 250,"
        " \"seconds\": 0.4}\n"
        "{\"step\": 4, \"val_loss\": 2.2}\n"
        "{\"step\": 4, \"dls_counts\": [0, 1, 1]}\n";
    write_text(p, metrics);
    free(p);
    p = rosa_path_join(dir, "adapter_config.json");
    write_text(p, "{\"base_model_name_or_path\": \"\\\"><script>alert(1)</script><img src=x onerror=alert(2)>\", "
                  "\"peft_type\": \"ROSA\", \"r\": 4, \"dls\": {\"enabled\": true, \"interval\": 2}}");
    free(p);
    p = rosa_path_join(dir, "eval.json");
    rosa_task tasks[4];
    rosa_task_result res[4];
    rosa_eval_report rep;
    sample_report(tasks, res, &rep);
    rosa_eval_options o;
    rosa_eval_options_default(&o);
    o.model_dir = "<b>model</b>";
    rosa_eval_report_write_json(&rep, &o, p, NULL);
    free(p);
    p = rosa_path_join(dir, "eval-other.json"); /* not what rosa eval writes */
    write_text(p, "{\"tasks\": {\"boolq\": {\"accuracy\": 0.25, \"n\": 4}}, \"macro\": 0.25}");
    free(p);
    p = rosa_path_join(dir, "eval-broken.json");
    write_text(p, "{\"tasks\": ");
    free(p);
    return dir;
}

TEST(report_handmade_run_escapes_and_notes) {
    const char *dir = make_synthetic_run();
    rosa_run r;
    REQUIRE(rosa_run_load(dir, &r) == 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_INT(r.n_skipped, 1);
    CHECK_EQ_INT(r.n_val, 1);
    CHECK_EQ_INT(r.L, 3);
    CHECK_EQ_INT(r.bad_lines, 1);
    CHECK_EQ_INT(r.first_bad_line, 3);
    CHECK(fabs(r.wall_seconds - 0.7) < 1e-12);
    CHECK(r.tokens_total == 300);
    CHECK_EQ_INT(r.trainable, -1); /* no adapter_model.safetensors */
    CHECK_EQ_INT(r.n_eval, 3);
    CHECK_STR(r.eval_files[0], "eval.json");
    CHECK_STR(r.eval_files[2], "eval-other.json");
    CHECK(r.evals[0] != NULL && r.evals[0]->n_tasks == 4);
    CHECK(r.evals[1] == NULL && r.eval_notes[1] != NULL);
    CHECK(r.evals[2] == NULL && r.eval_notes[2] && strstr(r.eval_notes[2], "not a rosa eval report"));
    rosa_run_free(&r);

    char cmd[2048], *out;
    snprintf(cmd, sizeof cmd, "%s report '%s' --output %s", rosa_bin(), dir, test_tmp_path("syn.html"));
    int rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "rosa report failed: %s", out);
    free(out);
    size_t len;
    char *html = rosa_read_file(test_tmp_path("syn.html"), &len);
    REQUIRE(html);
    CHECK(count(html, "<script") == 0);
    CHECK(count(html, "<img") == 0);
    CHECK(strstr(html, "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") != NULL);
    CHECK(strstr(html, "&lt;/td&gt;&lt;script&gt;x()&lt;/script&gt;") != NULL);
    CHECK(strstr(html, "syn&lt;run&gt;&amp;") != NULL);
    CHECK(strstr(html, "1 line could not be read (first: line 3)") != NULL);
    CHECK(strstr(html, "is not reachable from here") != NULL);
    CHECK(strstr(html, "eval-broken.json") != NULL && strstr(html, "unreadable") != NULL);
    CHECK(strstr(html, "Accuracy per task") != NULL);
    CHECK(strstr(html, "25.00%") != NULL && strstr(html, "50.00%") != NULL); /* the hostile task, boolq */
    CHECK(strstr(html, "37.50%") != NULL && strstr(html, "42.86%") != NULL); /* commonsense macro and micro */
    CHECK(strstr(html, "&lt;b&gt;model&lt;/b&gt;") != NULL && strstr(html, "beam search, 4 beams") != NULL);
    CHECK(strstr(html, "not a rosa eval report: rosa_version is missing") != NULL);
    CHECK(strstr(html, "Content-Security-Policy") != NULL);
    free(html);
    rc = check_html(test_tmp_path("syn.html"), 7, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
}

TEST(report_sorts_steps_of_a_concatenated_file) {
    const char *dir = test_tmp_path("unsorted");
    mkdir(dir, 0755);
    char *p = rosa_path_join(dir, "metrics.jsonl");
    write_text(p, "{\"step\": 3, \"loss\": 1.0, \"seconds\": 1}\n{\"step\": 1, \"loss\": 3.0, \"seconds\": 1}\n"
                  "{\"step\": 2, \"loss\": 2.0, \"seconds\": 1}\r\n\n{\"step\": 2, \"dls_selection\": {\"mode\": \"x\", "
                  "\"layers\": [0, 9999]}}\n{\"step\": 1, \"dls_selection\": {\"mode\": \"exploit\", \"layers\": []}}\n");
    free(p);
    rosa_run r;
    REQUIRE(rosa_run_load(dir, &r) == 0);
    CHECK_EQ_INT(r.n, 3);
    for (int i = 0; i < 3 && i < r.n; i++) CHECK(r.step[i] == i + 1 && r.loss[i] == 3.0 - i);
    CHECK_EQ_INT(r.bad_lines, 1); /* layer 9999 is out of range; the CRLF line is fine */
    CHECK_EQ_INT(r.n_dls, 1);
    CHECK_EQ_INT(r.L, 0); /* an empty selection names no layer */
    svg_buf o = {0};
    CHECK(rosa_report_html(&r, 1, &o) == 0);
    CHECK(strstr(o.b.data, "Dynamic layer selection") != NULL);
    svg_buf_free(&o);
    rosa_run_free(&r);
}

TEST(report_cli_errors) {
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "%s report %s", rosa_bin(), test_tmp_path("no-such-run"));
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 1);
    CHECK(strstr(out, "not a directory") != NULL);
    free(out);
    mkdir(test_tmp_path("empty-dir"), 0755);
    snprintf(cmd, sizeof cmd, "%s report %s", rosa_bin(), test_tmp_path("empty-dir"));
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 1);
    CHECK(strstr(out, "neither metrics.jsonl nor adapter_config.json") != NULL);
    free(out);
    snprintf(cmd, sizeof cmd, "%s report", rosa_bin());
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s report a b", rosa_bin());
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 2);
    CHECK(strstr(out, "--compare") != NULL);
    free(out);
    snprintf(cmd, sizeof cmd, "%s report a --compare b c d e f g h i", rosa_bin());
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s report a --frobnicate", rosa_bin());
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s report --help", rosa_bin());
    CHECK_EQ_INT(run_capture(cmd, 1, &out), 0);
    CHECK(strstr(out, "--compare") != NULL);
    free(out);
}

/* A real RoSA run on stories260K, then its report. */
TEST(report_real_rosa_run) {
    const char *data = test_tmp_path("data.json");
    FILE *f = fopen(data, "w");
    REQUIRE(f);
    fputs("[", f);
    for (int i = 0; i < 24; i++)
        fprintf(f, "%s{\"instruction\": \"Tell a story about a cat called Tom number %d.\", \"input\": \"\", "
                   "\"output\": \"Once upon a time, Tom the cat found %d red balls in the garden.\"}",
                i ? ", " : "", i, i + 2);
    fputs("]\n", f);
    fclose(f);
    const char *run = test_tmp_path("run");
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd,
             "%s train --model %s --data %s --output %s --method rosa --rank 4 --dls-interval 2 --dls-warmup 1 "
             "--max-steps 8 --batch-size 4 --micro-batch-size 2 --cutoff-len 48 --lr 5e-3 --warmup-steps 1 "
             "--val-set-size 4 --eval-steps 4 --save-steps 4 --threads 1 --quiet",
             rosa_bin(), shared_path("models/stories260K"), data, run);
    int rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "rosa train failed: %s", out);
    free(out);
    if (rc) return;
    /* eval results beside the run, by rosa eval with the run's adapter */
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s --adapter %s --tasks boolq,gsm8k --limit 2 --num-beams 1 --max-new-tokens 4 "
             "--data-dir %s --threads 1 --quiet --output %s/eval.json",
             rosa_bin(), shared_path("models/stories260K"), run, shared_path("data/llm-adapters"), run);
    rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "rosa eval failed: %s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "%s report %s", rosa_bin(), run);
    rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0 && strstr(out, "report written to") && strstr(out, "/run/report.html"), "%s", out);
    free(out);
    char *rp = rosa_path_join(run, "report.html");
    size_t len;
    char *html = rosa_read_file(rp, &len);
    REQUIRE(html);
    rc = check_html(rp, 7, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);

    /* what the run directory says, and what the report must show */
    rosa_run r;
    REQUIRE(rosa_run_load(run, &r) == 0);
    CHECK_EQ_INT(r.n, 8);
    CHECK_EQ_INT(r.n_val, 2);
    CHECK_EQ_INT(r.L, 5);
    CHECK_EQ_INT(r.total_steps, 8);
    CHECK(r.have_base && r.wall_seconds > 0);
    int n_sel = 0, modes[2] = {0, 0};
    double counted[5] = {0}, logged[5] = {0};
    for (int i = 0; i < r.n_dls; i++) {
        if (r.dls[i].kind == ROSA_METRICS_DLS_SELECTION) {
            n_sel++;
            modes[r.dls[i].mode == ROSA_DLS_MODE_EXPLORE]++;
            CHECK_EQ_INT(r.dls[i].n, 3); /* k = round(0.5 * 5) */
            for (int k = 0; k < r.dls[i].n; k++) counted[(int)r.dls[i].vals[k]] += 1;
        } else if (r.dls[i].kind == ROSA_METRICS_DLS_COUNTS)
            for (int l = 0; l < 5; l++) logged[l] = r.dls[i].vals[l];
    }
    CHECK_EQ_INT(n_sel, 4); /* steps 2, 4, 6, 8 */
    for (int l = 0; l < 5; l++) CHECK(counted[l] == logged[l]);
    /* parameters: the adapter's own count, and its share of the base model */
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    rosa_adapter *a = rosa_adapter_load(run, &m->cfg);
    REQUIRE(a);
    CHECK_EQ_INT(r.trainable, rosa_adapter_num_params(a));
    CHECK_EQ_INT(r.base_params, rosa_model_num_params(m));
    char want[128], num[32];
    snprintf(num, sizeof num, "%lld", (long long)r.trainable);
    snprintf(want, sizeof want, "%.4f%% of", 100.0 * (double)r.trainable / (double)rosa_model_num_params(m));
    CHECK_MSG(strstr(html, want) != NULL, "no \"%s\" in the report", want);
    rosa_adapter_free(a);
    rosa_model_free(m);
    CHECK(strstr(html, ">8 / 8<") != NULL);
    /* the expected SVG elements */
    CHECK(strstr(html, "Training and validation loss") != NULL);
    CHECK(strstr(html, "Learning rate") != NULL && strstr(html, "Gradient norm") != NULL);
    CHECK(strstr(html, "Throughput") != NULL);
    CHECK(strstr(html, "DLS: active layers and scores by step") != NULL);
    CHECK(strstr(html, "Selections per layer") != NULL);
    CHECK(strstr(html, "Accuracy per task") != NULL && strstr(html, "micro average") != NULL);
    CHECK(strstr(html, ">gsm8k<") != NULL && strstr(html, "greedy, at most 4 / 4 new tokens") != NULL);
    CHECK(count(html, "<polyline") >= 5); /* loss, validation, lr, grad norm, tokens/s (8 steps: no smoothing) */
    const char *heat = strstr(html, "DLS: active layers");
    REQUIRE(heat);
    const char *heat_end = strstr(heat, "</svg>");
    REQUIRE(heat_end);
    int markers = 0, faded = 0;
    for (const char *p = heat; (p = strstr(p, "<path d=\"M")) && p < heat_end; p++) markers++;
    for (const char *p = heat; (p = strstr(p, "fill-opacity=\"0.22\"/>")) && p < heat_end; p++) faded++;
    CHECK_EQ_INT(markers, n_sel + 2); /* one per selection + the legend's two */
    CHECK(faded >= 2);                /* inactive layers exist after the first selection */
    CHECK(count(html, "<circle") >= 2); /* validation points */
    free(html);

    /* a hostile base model name is escaped everywhere it appears */
    char *cp = rosa_path_join(run, "adapter_config.json");
    cJSON *cfg = rosa_json_load(cp);
    REQUIRE(cfg);
    cJSON_ReplaceItemInObject(cfg, "base_model_name_or_path", cJSON_CreateString("<script>alert('pwned')</script>"));
    char *txt = cJSON_Print(cfg);
    write_text(cp, txt);
    free(txt);
    cJSON_Delete(cfg);
    free(cp);
    /* ... and --compare puts the hand-made run beside it */
    const char *syn = make_synthetic_run();
    snprintf(cmd, sizeof cmd, "%s report %s --compare '%s' --output %s", rosa_bin(), run, syn, test_tmp_path("cmp.html"));
    rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    html = rosa_read_file(test_tmp_path("cmp.html"), &len);
    REQUIRE(html);
    CHECK_EQ_INT(count(html, "<script"), 0);
    CHECK(count(html, "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;") >= 2);
    CHECK(strstr(html, "rosa run comparison") != NULL);
    CHECK_EQ_INT(count(html, "aria-label=\"DLS: active layers"), 2);
    CHECK(strstr(html, "syn&lt;run&gt;&amp;") != NULL);
    free(html);
    rc = check_html(test_tmp_path("cmp.html"), 8, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    rosa_run_free(&r);
    free(rp);
}

/* The configuration shows training_args.json's recorded options (the shape
 * issue 18's run records write), and the planned memory next to the peak RSS
 * measured, both in MiB. */
TEST(report_shows_recorded_options_and_peak_rss_next_to_plan) {
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("run-args"));
    REQUIRE(mkdir(dir, 0755) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    REQUIRE(write_text(path, "{\"step\": 0, \"plan\": {\"memory_bytes\": 104857600, \"activation_bytes\": 1048576, "
                             "\"trainable_params\": 10, \"base_params\": 100, \"total_steps\": 2, \"compute\": \"fp32\", "
                             "\"recompute\": false}}\n"
                             "{\"step\": 1, \"loss\": 2.5, \"lr\": 0.0002, \"grad_norm\": 1, \"tokens\": 100, "
                             "\"tokens_per_second\": 1000.00, \"seconds\": 0.1000}\n"
                             "{\"step\": 2, \"peak_rss_bytes\": 157286400}\n") == 0);
    snprintf(path, sizeof path, "%s/training_args.json", dir);
    REQUIRE(write_text(path, "{\"options\": {\"learning-rate\": 0.0002, \"lora-r\": 16, \"method\": \"rosa\", "
                             "\"dls\": {\"interval\": 50}}, \"data\": {\"path\": \"x.json\"}, \"command_line\": [\"rosa\"]}\n") == 0);
    rosa_run r;
    REQUIRE(rosa_run_load(dir, &r) == 0);
    CHECK(r.options != NULL);
    rosa_run_free(&r);
    char *out = NULL;
    snprintf(path, sizeof path, "%s/r.html", dir);
    int rc = run_shellf(&out, "%s report %s --output %s", rosa_bin(), dir, path);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    char *html = rosa_read_file(path, NULL);
    REQUIRE(html);
    CHECK(strstr(html, "Hyper-parameters (<code>training_args.json</code>)") != NULL);
    CHECK(strstr(html, "<th>learning-rate</th><td><code>0.0002</code>") != NULL);
    CHECK(strstr(html, "<th>lora-r</th><td><code>16</code>") != NULL);
    CHECK(strstr(html, "<th>dls.interval</th><td><code>50</code>") != NULL);
    CHECK(strstr(html, "memory: planned / peak RSS measured</th><td>100.0 MiB / 150.0 MiB") != NULL);
    CHECK(strstr(html, "<th>peak RSS measured</th><td>150.0 MiB</td>") != NULL);
    free(html);
    /* without training_args.json: no such table, the rest as before */
    snprintf(path, sizeof path, "%s/training_args.json", dir);
    REQUIRE(unlink(path) == 0);
    snprintf(path, sizeof path, "%s/r.html", dir);
    rc = run_shellf(&out, "%s report %s --output %s", rosa_bin(), dir, path);
    free(out);
    html = rosa_read_file(path, NULL);
    REQUIRE(html);
    CHECK(strstr(html, "Hyper-parameters") == NULL && strstr(html, "100.0 MiB / 150.0 MiB") != NULL);
    free(html);
}

/* Every evaluation is labelled (adapter or base, mode, beams, items); the
 * evaluations of a run are drawn side by side, and a difference of protocol
 * is warned about on stderr and in the page. */
TEST(report_labels_evaluations_and_warns_on_protocol_differences) {
    char dir[512], path[1024], model[4096];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("run-evals"));
    snprintf(model, sizeof model, "%s", shared_path("models/stories260K"));
    REQUIRE(mkdir(dir, 0755) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    REQUIRE(write_text(path, "{\"step\": 1, \"loss\": 2.5, \"lr\": 0.0002, \"grad_norm\": 1, \"tokens\": 100, "
                             "\"tokens_per_second\": 1000.00, \"seconds\": 0.1000}\n") == 0);
    char *out = NULL;
    REQUIRE(run_shellf(&out, "%s eval --model %s --tasks boolq --limit 2 --num-beams 1 --max-new-tokens 4 --quiet "
                             "--threads 1 --output %s/eval-base.json", rosa_bin(), model, dir) == 0);
    free(out);
    REQUIRE(run_shellf(&out, "%s eval --model %s --tasks boolq --limit 2 --mode loglik --quiet --threads 1 "
                             "--output %s/eval.json", rosa_bin(), model, dir) == 0);
    free(out);
    snprintf(path, sizeof path, "%s/r.html", dir);
    int rc = run_shellf(&out, "%s report %s --output %s", rosa_bin(), dir, path);
    CHECK_MSG(rc == 0, "%s", out);
    CHECK_MSG(strstr(out, "warning: report: the evaluations drawn side by side differ in protocol") != NULL, "%s", out);
    free(out);
    char *html = rosa_read_file(path, NULL);
    REQUIRE(html);
    CHECK(strstr(html, "eval.json: base model (no adapter), loglik, 2 items") != NULL);
    CHECK(strstr(html, "eval-base.json: base model (no adapter), generate, 1 beam (greedy), max 4/4 new tokens, 2 items") !=
          NULL);
    CHECK(strstr(html, "differ in protocol") != NULL);
    free(html);
    /* the same protocol: no warning */
    snprintf(path, sizeof path, "%s/eval-base.json", dir);
    REQUIRE(unlink(path) == 0);
    snprintf(path, sizeof path, "%s/r.html", dir);
    rc = run_shellf(&out, "%s report %s --output %s", rosa_bin(), dir, path);
    CHECK(rc == 0 && strstr(out, "differ in protocol") == NULL);
    free(out);
}
