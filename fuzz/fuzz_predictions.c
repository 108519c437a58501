/* fuzz_predictions: the reader of `rosa eval --score-predictions`
 * (rosa_eval_score_file: JSON Lines or a JSON array of saved generations),
 * then the readable and JSON reports of what it scored.
 *
 * The tasks known are the 15 built-in ones with tiny test files made at start
 * (three records each, so that "index" lines resolve fast) and two custom
 * tasks, one commonsense (labels from each record's "Answer format:" line)
 * and one math.  Inputs of even size have no default task, odd ones default
 * to boolq.  Properties: counts are consistent, the JSON report is valid JSON
 * and its reader (rosa_eval_report_read) gives back what was written. */
#include <cjson/cJSON.h>

#include "eval/eval.h"
#include "eval/eval_report.h"
#include "fuzz_common.h"

static rosa_task_list pred_known;

/* Three records whose answers suit the task's rule. */
static void write_test_file(const char *path, rosa_answer_rule rule) {
    FILE *f = fopen(path, "w");
    if (!f) abort();
    if (rule == ROSA_RULE_NUMBER)
        fputs("[{\"instruction\": \"What is 2 + 3?\", \"output\": \"5\", \"answer\": \"5\"},"
              " {\"instruction\": \"Half of 7?\", \"output\": \"3.5\", \"answer\": 3.5},"
              " {\"instruction\": \"Minus\", \"output\": \"-2\", \"answer\": \"-2\"}]", f);
    else if (rule == ROSA_RULE_LETTER)
        fputs("[{\"instruction\": \"Pick (A) 1 (B) 2\", \"output\": \"B\", \"answer\": \"B\"},"
              " {\"instruction\": \"Pick\", \"output\": \"A\", \"answer\": \"A\"},"
              " {\"instruction\": \"Pick\", \"output\": \"E\", \"answer\": \"E\"}]", f);
    else
        fputs("[{\"instruction\": \"Is it? Answer format: true/false\", \"output\": \"the correct answer is true\", "
              "\"answer\": \"true\"}, {\"instruction\": \"Which? Answer format: option1/option2\", \"output\": "
              "\"x\", \"answer\": \"option2\"}, {\"instruction\": \"Q\\nAnswer format: answer1/answer2/answer3\", "
              "\"output\": \"x\", \"answer\": \"answer3\"}]", f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char dir[PATH_MAX], path[PATH_MAX + 256];
    snprintf(dir, sizeof dir, "%s", fuzz_path("tasks"));
    mkdir(dir, 0755);
    for (int i = 0; i < rosa_task_builtin_count(); i++) {
        const rosa_task *t = rosa_task_builtin(i);
        snprintf(path, sizeof path, "%s/%s", dir, t->name);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/%s/test.json", dir, t->name);
        write_test_file(path, t->rule);
    }
    char spec[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/custom.json", dir);
    write_test_file(path, ROSA_RULE_LABELS);
    snprintf(spec, sizeof spec, "mytask=%s", path);
    if (rosa_tasks_add_list(&pred_known, "all", dir) < 0 || rosa_tasks_add_custom(&pred_known, spec, "commonsense") < 0) {
        fprintf(stderr, "fuzz: %s\n", rosa_last_error());
        abort();
    }
    snprintf(path, sizeof path, "%s/custom-math.json", dir);
    write_test_file(path, ROSA_RULE_NUMBER);
    snprintf(spec, sizeof spec, "mymath=%s", path);
    if (rosa_tasks_add_custom(&pred_known, spec, "math") < 0) {
        fprintf(stderr, "fuzz: %s\n", rosa_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("predictions.jsonl", data, size);
    rosa_eval_report rep;
    if (rosa_eval_score_file(path, &pred_known, size & 1 ? "boolq" : NULL, &rep) < 0) {
        fuzz_refused();
        return 0;
    }
    FUZZ_ASSERT(rep.n >= 0 && rep.n <= pred_known.n, "%d results", rep.n);
    for (int i = 0; i < rep.n; i++) {
        const rosa_task_result *r = &rep.r[i];
        FUZZ_ASSERT(r->task && r->n > 0 && r->correct >= 0 && r->correct <= r->n && r->no_answer >= 0 &&
                        r->no_answer <= r->n && r->correct + r->no_answer <= r->n,
                    "task %d: n %d correct %d no answer %d", i, r->n, r->correct, r->no_answer);
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        rosa_eval_report_print(&rep, devnull);
        fclose(devnull);
    }
    const char *out = fuzz_path("report.json");
    FUZZ_ASSERT(rosa_eval_report_write_json(&rep, NULL, out, path) == 0, "writing the report: %s", rosa_last_error());
    size_t len;
    char *text = rosa_read_file(out, &len);
    cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
    FUZZ_ASSERT(j != NULL, "the JSON report is not valid JSON");
    cJSON_Delete(j);
    free(text);
    rosa_eval_summary back;
    FUZZ_ASSERT(rosa_eval_report_read(out, &back) == 0, "reading the report back: %s", rosa_last_error());
    FUZZ_ASSERT(back.n_tasks == rep.n && back.scored_predictions && strcmp(back.scored_predictions, path) == 0,
                "%d tasks read back of %d", back.n_tasks, rep.n);
    for (int i = 0; i < rep.n; i++) {
        const rosa_task_result *r = &rep.r[i];
        const rosa_eval_task_summary *t = &back.tasks[i];
        FUZZ_ASSERT(strcmp(t->name, r->task->name) == 0 && t->group == r->task->type && t->n == r->n &&
                        t->correct == r->correct && t->no_answer == r->no_answer && t->resumed == -1,
                    "task %d read back differs", i);
    }
    rosa_eval_summary_free(&back);
    rosa_eval_report_free(&rep);
    return 0;
}
