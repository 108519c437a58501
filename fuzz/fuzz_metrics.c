/* fuzz_metrics: the run directory reader of `rosa report` (rosa_run_load:
 * metrics.jsonl, adapter_config.json and an evaluation JSON), then the HTML
 * report made from it.
 *
 * Input: metrics.jsonl [FUZZ_SEP adapter_config.json [FUZZ_SEP eval.json]].
 * Property: no string from these files reaches the HTML unescaped: the
 * canaries "<x-fuzz" and "<script" (in the seeds and the dictionary) never
 * appear in the output. */
#include <strings.h>

#include "fuzz_common.h"
#include "report/report.h"

static int has_ci(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3];
    size_t len[3];
    int n = fuzz_parts(data, size, part, len, 3);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", fuzz_path("run"));
    mkdir(dir, 0755);
    static const char *const names[3] = {"run/metrics.jsonl", "run/adapter_config.json", "run/eval.json"};
    for (int i = 0; i < 3; i++) {
        if (i < n) fuzz_write(names[i], part[i], len[i]);
        else fuzz_remove(names[i]);
    }
    rosa_run r;
    if (rosa_run_load(dir, &r) < 0) {
        fuzz_refused();
        return 0;
    }
    FUZZ_ASSERT(r.n >= 0 && r.n_val >= 0 && r.n_dls >= 0, "counts");
    for (int i = 1; i < r.n; i++) FUZZ_ASSERT(r.step[i - 1] <= r.step[i], "steps not sorted");
    svg_buf out = {0};
    if (rosa_report_html(&r, 1, &out) == 0 && !out.failed) {
        FUZZ_ASSERT(!has_ci(out.b.data, out.b.len, "<x-fuzz") && !has_ci(out.b.data, out.b.len, "<script"),
                    "a string from the run reached the HTML unescaped");
        FUZZ_ASSERT(rosa_utf8_valid_prefix(out.b.data, out.b.len) == out.b.len, "the HTML is not valid UTF-8");
    }
    svg_buf_free(&out);
    rosa_run_free(&r);
    return 0;
}
