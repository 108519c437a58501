/* eval_report.c: the reports of `rosa eval`: the readable table, and the JSON
 * report's one writer and one reader (eval_report.h). */
#include "eval_report.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "core/util.h"

typedef struct {
    int tasks, n, correct, no_answer, with_examples;
    double acc_sum;
} group_stats;

static group_stats group_of(const rosa_eval_report *rep, int which /* 0 all, else rosa_task_type */) {
    group_stats g = {0};
    for (int i = 0; i < rep->n; i++) {
        const rosa_task_result *r = &rep->r[i];
        if (which && (int)r->task->type != which) continue;
        g.tasks++;
        g.n += r->n;
        g.correct += r->correct;
        g.no_answer += r->no_answer;
        if (r->n > 0) {
            g.with_examples++;
            g.acc_sum += (double)r->correct / r->n;
        }
    }
    return g;
}

static const int GROUPS[] = {ROSA_TASK_COMMONSENSE, ROSA_TASK_MATH, 0};
static const char *group_name(int g) { return g ? rosa_task_type_name((rosa_task_type)g) : "all"; }

/* ------------------------------------------------------------ the table */

void rosa_eval_report_print(const rosa_eval_report *rep, FILE *f) {
    fprintf(f, "%-16s %-12s %6s %8s %10s %9s\n", "task", "group", "n", "correct", "no answer", "accuracy");
    for (int i = 0; i < rep->n; i++) {
        const rosa_task_result *r = &rep->r[i];
        char acc[32] = "-";
        if (r->n > 0) snprintf(acc, sizeof acc, "%.2f%%", 100.0 * r->correct / r->n);
        fprintf(f, "%-16s %-12s %6d %8d %10d %9s\n", r->task->name, rosa_task_type_name(r->task->type), r->n,
                r->correct, r->no_answer, acc);
    }
    fprintf(f, "%.*s\n", 66, "------------------------------------------------------------------------------");
    int both = group_of(rep, ROSA_TASK_COMMONSENSE).tasks > 0 && group_of(rep, ROSA_TASK_MATH).tasks > 0;
    for (int gi = 0; gi < 3; gi++) {
        group_stats g = group_of(rep, GROUPS[gi]);
        if (g.tasks == 0 || (GROUPS[gi] == 0 && !both)) continue; /* "all" only with both groups */
        char macro[32] = "-", micro[32] = "-", label[64];
        if (g.with_examples) snprintf(macro, sizeof macro, "%.2f%%", 100.0 * g.acc_sum / g.with_examples);
        if (g.n) snprintf(micro, sizeof micro, "%.2f%%", 100.0 * g.correct / g.n);
        snprintf(label, sizeof label, "%s (%d)", group_name(GROUPS[gi]), g.tasks);
        fprintf(f, "%-16s %-12s %6s %8s %10s %9s\n", label, "macro avg", "", "", "", macro);
        fprintf(f, "%-16s %-12s %6d %8d %10d %9s\n", "", "micro avg", g.n, g.correct, g.no_answer, micro);
    }
}

/* ------------------------------------------------------------ the summary */

void rosa_eval_summary_free(rosa_eval_summary *s) {
    for (int i = 0; i < s->n_groups; i++) free(s->groups[i].tasks);
    free(s->tasks);
    free(s->groups);
    cJSON_Delete(s->owner);
    memset(s, 0, sizeof *s);
}

int rosa_eval_summary_make(const rosa_eval_report *rep, const rosa_eval_options *o, const char *scored_file,
                           rosa_eval_summary *s) {
    memset(s, 0, sizeof *s);
    s->rosa_version = ROSA_VERSION;
    s->scored_predictions = scored_file;
    if (!scored_file && o) {
        s->have_run = 1;
        s->model = o->model_dir;
        s->adapter = o->adapter_dir;
        s->mode = o->mode;
        if (o->mode == ROSA_EVAL_GENERATE) {
            s->have_decoding = 1;
            s->decoding.strategy = o->num_beams > 1 ? "beam_search" : "greedy";
            s->decoding.num_beams = o->num_beams;
            s->decoding.beam_rule = o->num_beams > 1 ? rosa_beam_rule_name(o->rule) : NULL;
            s->decoding.length_penalty = 1.0;
            s->decoding.early_stopping = 0;
            for (int t = ROSA_TASK_COMMONSENSE; t <= ROSA_TASK_MATH; t++)
                s->decoding.max_new_tokens[t - 1] =
                    o->max_new_tokens > 0 ? o->max_new_tokens : rosa_task_default_max_new_tokens((rosa_task_type)t);
            s->decoding.batch_size = o->batch_size;
        }
        s->limit = o->limit > 0 ? o->limit : 0;
        s->seed = (double)o->seed;
        s->predictions = o->predictions;
    }
    s->tasks = rosa_calloc((size_t)(rep->n > 0 ? rep->n : 1), sizeof *s->tasks, "evaluation report");
    s->groups = rosa_calloc(3, sizeof *s->groups, "evaluation report");
    if (!s->tasks || !s->groups) goto fail;
    for (int i = 0; i < rep->n; i++) {
        const rosa_task_result *r = &rep->r[i];
        s->tasks[s->n_tasks++] = (rosa_eval_task_summary){
            .name = r->task->name, .group = r->task->type, .accuracy = r->n > 0 ? (double)r->correct / r->n : NAN,
            .correct = r->correct, .n = r->n, .no_answer = r->no_answer, .resumed = scored_file ? -1 : r->resumed,
            .file = r->task->file};
    }
    for (int gi = 0; gi < 3; gi++) {
        group_stats g = group_of(rep, GROUPS[gi]);
        if (g.tasks == 0) continue;
        rosa_eval_group_summary *gs = &s->groups[s->n_groups++];
        gs->name = group_name(GROUPS[gi]);
        gs->tasks = rosa_calloc((size_t)g.tasks, sizeof *gs->tasks, "evaluation report");
        if (!gs->tasks) goto fail;
        for (int i = 0; i < rep->n; i++)
            if (!GROUPS[gi] || (int)rep->r[i].task->type == GROUPS[gi]) gs->tasks[gs->n_tasks++] = rep->r[i].task->name;
        gs->macro_accuracy = g.with_examples ? g.acc_sum / g.with_examples : NAN;
        gs->micro_accuracy = g.n > 0 ? (double)g.correct / g.n : NAN;
        gs->correct = g.correct;
        gs->n = g.n;
        gs->no_answer = g.no_answer;
    }
    s->seconds = rep->seconds;
    s->new_examples = scored_file ? -1 : rep->n_new;
    s->examples_per_second = scored_file ? NAN : rep->seconds > 0 ? rep->n_new / rep->seconds : 0.0;
    return 0;
fail:
    rosa_eval_summary_free(s);
    return -1;
}

/* ------------------------------------------------------------ the writer */

/* A fraction, or null for NAN (no examples). */
static void add_frac(cJSON *o, const char *key, double v) {
    if (isnan(v)) cJSON_AddNullToObject(o, key);
    else cJSON_AddNumberToObject(o, key, v);
}

static cJSON *summary_json(const rosa_eval_summary *s) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "rosa_version", s->rosa_version);
    if (s->scored_predictions) {
        cJSON_AddStringToObject(j, "scored_predictions", s->scored_predictions);
    } else if (s->have_run) {
        if (s->model) cJSON_AddStringToObject(j, "model", s->model);
        if (s->adapter) cJSON_AddStringToObject(j, "adapter", s->adapter);
        else cJSON_AddNullToObject(j, "adapter");
        cJSON_AddStringToObject(j, "mode", s->mode == ROSA_EVAL_LOGLIK ? "loglik" : "generate");
        if (s->have_decoding) {
            cJSON *d = cJSON_AddObjectToObject(j, "decoding");
            cJSON_AddStringToObject(d, "strategy", s->decoding.strategy);
            cJSON_AddNumberToObject(d, "num_beams", s->decoding.num_beams);
            if (s->decoding.beam_rule) cJSON_AddStringToObject(d, "beam_rule", s->decoding.beam_rule);
            cJSON_AddNumberToObject(d, "length_penalty", s->decoding.length_penalty);
            cJSON_AddBoolToObject(d, "early_stopping", s->decoding.early_stopping);
            cJSON *mn = cJSON_AddObjectToObject(d, "max_new_tokens");
            for (int t = ROSA_TASK_COMMONSENSE; t <= ROSA_TASK_MATH; t++)
                cJSON_AddNumberToObject(mn, rosa_task_type_name((rosa_task_type)t), s->decoding.max_new_tokens[t - 1]);
            cJSON_AddNumberToObject(d, "batch_size", s->decoding.batch_size);
        }
        if (s->limit > 0) cJSON_AddNumberToObject(j, "limit", s->limit);
        else cJSON_AddNullToObject(j, "limit");
        cJSON_AddNumberToObject(j, "seed", s->seed);
        if (s->predictions) cJSON_AddStringToObject(j, "predictions", s->predictions);
    }
    cJSON *tasks = cJSON_AddObjectToObject(j, "tasks");
    for (int i = 0; i < s->n_tasks; i++) {
        const rosa_eval_task_summary *r = &s->tasks[i];
        cJSON *t = cJSON_AddObjectToObject(tasks, r->name);
        cJSON_AddStringToObject(t, "group", rosa_task_type_name(r->group));
        add_frac(t, "accuracy", r->accuracy);
        cJSON_AddNumberToObject(t, "correct", r->correct);
        cJSON_AddNumberToObject(t, "n", r->n);
        cJSON_AddNumberToObject(t, "no_answer", r->no_answer);
        if (r->resumed >= 0) cJSON_AddNumberToObject(t, "resumed", r->resumed);
        if (r->file) cJSON_AddStringToObject(t, "file", r->file);
    }
    cJSON *groups = cJSON_AddObjectToObject(j, "groups");
    for (int gi = 0; gi < s->n_groups; gi++) {
        const rosa_eval_group_summary *g = &s->groups[gi];
        cJSON *o2 = cJSON_AddObjectToObject(groups, g->name);
        cJSON *names = cJSON_AddArrayToObject(o2, "tasks");
        for (int i = 0; i < g->n_tasks; i++) cJSON_AddItemToArray(names, cJSON_CreateString(g->tasks[i]));
        add_frac(o2, "macro_accuracy", g->macro_accuracy);
        add_frac(o2, "micro_accuracy", g->micro_accuracy);
        cJSON_AddNumberToObject(o2, "correct", g->correct);
        cJSON_AddNumberToObject(o2, "n", g->n);
        cJSON_AddNumberToObject(o2, "no_answer", g->no_answer);
    }
    cJSON_AddNumberToObject(j, "seconds", s->seconds);
    if (s->new_examples >= 0) {
        cJSON_AddNumberToObject(j, "new_examples", s->new_examples);
        cJSON_AddNumberToObject(j, "examples_per_second", s->examples_per_second);
    }
    return j;
}

int rosa_eval_summary_write_json(const rosa_eval_summary *s, const char *path) {
    cJSON *j = summary_json(s);
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return rosa_fail("out of memory");
    size_t n = strlen(text);
    text[n] = '\n'; /* in place of the NUL: the length is known */
    int rc = rosa_write_file_atomic(path, text, n + 1);
    free(text);
    return rc;
}

int rosa_eval_report_write_json(const rosa_eval_report *rep, const rosa_eval_options *o, const char *path,
                                const char *scored_file) {
    rosa_eval_summary s;
    if (rosa_eval_summary_make(rep, o, scored_file, &s) < 0) return -1;
    int rc = rosa_eval_summary_write_json(&s, path);
    rosa_eval_summary_free(&s);
    return rc;
}

/* ------------------------------------------------------------ the reader */

/* Every check names where it looked: `tasks."boolq".n`. */
static int bad(const char *where, const char *key, const char *what) {
    return rosa_fail("not a rosa eval report: %s%s%s %s", where, *where ? "." : "", key, what);
}

/* The member `key` of o: required unless optional (then *out NULL when absent). */
static int member(const cJSON *o, const char *key, int optional, const char *where, const cJSON **out) {
    *out = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!*out && !optional) return bad(where, key, "is missing");
    return 0;
}

/* A string; with nullable, null gives NULL. */
static int get_str(const cJSON *o, const char *key, int optional, int nullable, const char *where, const char **out) {
    const cJSON *v;
    *out = NULL;
    if (member(o, key, optional, where, &v) < 0) return -1;
    if (!v || (nullable && cJSON_IsNull(v))) return 0;
    if (!cJSON_IsString(v)) return bad(where, key, nullable ? "is not a string or null" : "is not a string");
    *out = v->valuestring;
    return 0;
}

/* An integer in [lo, INT_MAX]; absent (optional) gives def. */
static int get_int(const cJSON *o, const char *key, int optional, int lo, int def, const char *where, int *out) {
    const cJSON *v;
    *out = def;
    if (member(o, key, optional, where, &v) < 0) return -1;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= INT_MAX) ||
        v->valuedouble != floor(v->valuedouble))
        return bad(where, key, lo > 0 ? "is not a positive integer" : "is not a count");
    *out = (int)v->valuedouble;
    return 0;
}

/* A finite number; absent (optional) gives def. */
static int get_num(const cJSON *o, const char *key, int optional, double def, const char *where, double *out) {
    const cJSON *v;
    *out = def;
    if (member(o, key, optional, where, &v) < 0) return -1;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return bad(where, key, "is not a number");
    *out = v->valuedouble;
    return 0;
}

/* A fraction in [0, 1], or null (NAN). */
static int get_frac(const cJSON *o, const char *key, const char *where, double *out) {
    const cJSON *v;
    *out = NAN;
    if (member(o, key, 0, where, &v) < 0) return -1;
    if (cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
        return bad(where, key, "is not a fraction in [0, 1] or null");
    *out = v->valuedouble;
    return 0;
}

static int get_obj(const cJSON *o, const char *key, int optional, const char *where, const cJSON **out) {
    if (member(o, key, optional, where, out) < 0) return -1;
    if (*out && !cJSON_IsObject(*out)) return bad(where, key, "is not an object");
    return 0;
}

/* `parent."name"` for messages (names cut at 80 bytes). */
static void where_of(char *buf, size_t n, const char *parent, const char *name) {
    snprintf(buf, n, "%s.\"%.80s\"", parent, name);
}

static int read_decoding(const cJSON *d, rosa_eval_summary *s) {
    const char *w = "decoding";
    const cJSON *mn;
    if (get_str(d, "strategy", 0, 0, w, &s->decoding.strategy) < 0 ||
        get_int(d, "num_beams", 0, 1, 0, w, &s->decoding.num_beams) < 0 ||
        get_str(d, "beam_rule", 1, 0, w, &s->decoding.beam_rule) < 0 ||
        get_num(d, "length_penalty", 0, 0, w, &s->decoding.length_penalty) < 0 ||
        get_obj(d, "max_new_tokens", 0, w, &mn) < 0 ||
        get_int(d, "batch_size", 0, 1, 0, w, &s->decoding.batch_size) < 0)
        return -1;
    if (strcmp(s->decoding.strategy, "beam_search") != 0 && strcmp(s->decoding.strategy, "greedy") != 0)
        return bad(w, "strategy", "is neither \"beam_search\" nor \"greedy\"");
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(d, "early_stopping");
    if (!cJSON_IsBool(es)) return bad(w, "early_stopping", es ? "is not true or false" : "is missing");
    s->decoding.early_stopping = cJSON_IsTrue(es);
    for (int t = ROSA_TASK_COMMONSENSE; t <= ROSA_TASK_MATH; t++)
        if (get_int(mn, rosa_task_type_name((rosa_task_type)t), 0, 1, 0, "decoding.max_new_tokens",
                    &s->decoding.max_new_tokens[t - 1]) < 0)
            return -1;
    return 0;
}

static int read_run(const cJSON *j, rosa_eval_summary *s) {
    const char *mode;
    if (get_str(j, "model", 1, 0, "", &s->model) < 0 || get_str(j, "adapter", 0, 1, "", &s->adapter) < 0 ||
        get_str(j, "mode", 0, 0, "", &mode) < 0)
        return -1;
    if (strcmp(mode, "generate") == 0) s->mode = ROSA_EVAL_GENERATE;
    else if (strcmp(mode, "loglik") == 0) s->mode = ROSA_EVAL_LOGLIK;
    else return bad("", "mode", "is neither \"generate\" nor \"loglik\"");
    const cJSON *d, *lim;
    if (get_obj(j, "decoding", s->mode != ROSA_EVAL_GENERATE, "", &d) < 0) return -1;
    if (d) {
        if (s->mode != ROSA_EVAL_GENERATE) return bad("", "decoding", "is there in loglik mode");
        s->have_decoding = 1;
        if (read_decoding(d, s) < 0) return -1;
    }
    if (member(j, "limit", 0, "", &lim) < 0) return -1;
    if (!cJSON_IsNull(lim) && get_int(j, "limit", 0, 1, 0, "", &s->limit) < 0) return -1;
    if (get_num(j, "seed", 0, 0, "", &s->seed) < 0 || get_str(j, "predictions", 1, 0, "", &s->predictions) < 0)
        return -1;
    s->have_run = 1;
    return 0;
}

static int read_task(const cJSON *t, rosa_eval_task_summary *r) {
    char w[128];
    where_of(w, sizeof w, "tasks", t->string);
    if (!cJSON_IsObject(t)) return rosa_fail("not a rosa eval report: %s is not an object", w);
    r->name = t->string;
    const char *group;
    if (get_str(t, "group", 0, 0, w, &group) < 0) return -1;
    if (rosa_task_type_parse(group, &r->group) < 0) return bad(w, "group", "is neither \"commonsense\" nor \"math\"");
    return get_frac(t, "accuracy", w, &r->accuracy) < 0 || get_int(t, "correct", 0, 0, 0, w, &r->correct) < 0 ||
                   get_int(t, "n", 0, 0, 0, w, &r->n) < 0 || get_int(t, "no_answer", 0, 0, 0, w, &r->no_answer) < 0 ||
                   get_int(t, "resumed", 1, 0, -1, w, &r->resumed) < 0 || get_str(t, "file", 1, 0, w, &r->file) < 0
               ? -1
               : 0;
}

static int read_group(const cJSON *g, rosa_eval_group_summary *r) {
    char w[128];
    where_of(w, sizeof w, "groups", g->string);
    if (!cJSON_IsObject(g)) return rosa_fail("not a rosa eval report: %s is not an object", w);
    if (strcmp(g->string, "commonsense") != 0 && strcmp(g->string, "math") != 0 && strcmp(g->string, "all") != 0)
        return rosa_fail("not a rosa eval report: %s is not commonsense, math or all", w);
    r->name = g->string;
    const cJSON *names, *it;
    if (member(g, "tasks", 0, w, &names) < 0) return -1;
    if (!cJSON_IsArray(names)) return bad(w, "tasks", "is not an array");
    r->tasks = rosa_calloc((size_t)cJSON_GetArraySize(names) + 1, sizeof *r->tasks, "evaluation report");
    if (!r->tasks) return -1;
    cJSON_ArrayForEach(it, names) {
        if (!cJSON_IsString(it)) return bad(w, "tasks", "holds something other than task names");
        r->tasks[r->n_tasks++] = it->valuestring;
    }
    return get_frac(g, "macro_accuracy", w, &r->macro_accuracy) < 0 ||
                   get_frac(g, "micro_accuracy", w, &r->micro_accuracy) < 0 ||
                   get_int(g, "correct", 0, 0, 0, w, &r->correct) < 0 || get_int(g, "n", 0, 0, 0, w, &r->n) < 0 ||
                   get_int(g, "no_answer", 0, 0, 0, w, &r->no_answer) < 0
               ? -1
               : 0;
}

static int read_summary(const cJSON *j, rosa_eval_summary *s) {
    if (!cJSON_IsObject(j)) return rosa_fail("not a rosa eval report: not a JSON object");
    const cJSON *tasks, *groups, *it;
    if (get_str(j, "rosa_version", 0, 0, "", &s->rosa_version) < 0 ||
        get_str(j, "scored_predictions", 1, 0, "", &s->scored_predictions) < 0)
        return -1;
    if (!s->scored_predictions && cJSON_GetObjectItemCaseSensitive(j, "mode") && read_run(j, s) < 0) return -1;
    if (get_obj(j, "tasks", 0, "", &tasks) < 0 || get_obj(j, "groups", 0, "", &groups) < 0) return -1;
    int nt = cJSON_GetArraySize(tasks), ng = cJSON_GetArraySize(groups);
    s->tasks = rosa_calloc((size_t)nt + 1, sizeof *s->tasks, "evaluation report");
    s->groups = rosa_calloc((size_t)ng + 1, sizeof *s->groups, "evaluation report");
    if (!s->tasks || !s->groups) return -1;
    cJSON_ArrayForEach(it, tasks) {
        if (s->n_tasks == nt) break;
        if (read_task(it, &s->tasks[s->n_tasks++]) < 0) return -1;
    }
    cJSON_ArrayForEach(it, groups) {
        if (s->n_groups == ng) break;
        if (read_group(it, &s->groups[s->n_groups++]) < 0) return -1;
    }
    if (get_num(j, "seconds", 0, 0, "", &s->seconds) < 0 ||
        get_int(j, "new_examples", 1, 0, -1, "", &s->new_examples) < 0 ||
        get_num(j, "examples_per_second", 1, NAN, "", &s->examples_per_second) < 0)
        return -1;
    return 0;
}

int rosa_eval_report_parse(const char *text, size_t len, rosa_eval_summary *out) {
    memset(out, 0, sizeof *out);
    cJSON *j = rosa_json_parse(text, len, "evaluation report");
    if (!j) return -1;
    out->owner = j;
    if (read_summary(j, out) < 0) {
        rosa_eval_summary_free(out);
        return -1;
    }
    return 0;
}

int rosa_eval_report_read(const char *path, rosa_eval_summary *out) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return -1;
    int rc = rosa_eval_report_parse(text, len, out);
    free(text);
    if (rc < 0) rosa_error_prefix("%s", path);
    return rc;
}
