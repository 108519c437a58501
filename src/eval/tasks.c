/* tasks.c: the task table (declared in rosa_train.h).  Labels and rules are those of LLM-Adapters'
 * commonsense_evaluate.py (extract_answer) and evaluate.py
 * (extract_answer_number / extract_answer_letter). */
#include "rosa_train.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

static const char *const L_BOOL[] = {"true", "false"};
static const char *const L_SOL[] = {"solution1", "solution2"};
static const char *const L_ANS[] = {"answer1", "answer2", "answer3", "answer4", "answer5"};
static const char *const L_END[] = {"ending1", "ending2", "ending3", "ending4"};
static const char *const L_OPT[] = {"option1", "option2"};

#define CS(name, labels) {name, ROSA_TASK_COMMONSENSE, ROSA_RULE_LABELS, labels, sizeof labels / sizeof labels[0], NULL, 0}
#define MATH(name, rule) {name, ROSA_TASK_MATH, rule, NULL, 0, NULL, 0}

static const rosa_task builtin[] = {
    CS("boolq", L_BOOL),
    CS("piqa", L_SOL),
    CS("social_i_qa", L_ANS),
    CS("hellaswag", L_END),
    CS("winogrande", L_OPT),
    CS("ARC-Easy", L_ANS),
    CS("ARC-Challenge", L_ANS),
    CS("openbookqa", L_ANS),
    MATH("MultiArith", ROSA_RULE_NUMBER),
    MATH("gsm8k", ROSA_RULE_NUMBER),
    MATH("AddSub", ROSA_RULE_NUMBER),
    MATH("AQuA", ROSA_RULE_LETTER),
    MATH("SingleEq", ROSA_RULE_NUMBER),
    MATH("SVAMP", ROSA_RULE_NUMBER),
    MATH("mawps", ROSA_RULE_NUMBER),
};

#define N_BUILTIN ((int)(sizeof builtin / sizeof builtin[0]))

int rosa_task_builtin_count(void) { return N_BUILTIN; }
const rosa_task *rosa_task_builtin(int i) { return i >= 0 && i < N_BUILTIN ? &builtin[i] : NULL; }

const rosa_task *rosa_task_find_builtin(const char *name) {
    for (int i = 0; i < N_BUILTIN; i++)
        if (strcasecmp(builtin[i].name, name) == 0) return &builtin[i];
    return NULL;
}

const char *rosa_task_type_name(rosa_task_type t) { return t == ROSA_TASK_MATH ? "math" : "commonsense"; }

int rosa_task_type_parse(const char *s, rosa_task_type *out) {
    if (strcmp(s, "commonsense") == 0) *out = ROSA_TASK_COMMONSENSE;
    else if (strcmp(s, "math") == 0) *out = ROSA_TASK_MATH;
    else return -1;
    return 0;
}

int rosa_task_default_max_new_tokens(rosa_task_type t) { return t == ROSA_TASK_MATH ? 256 : 32; }

rosa_task *rosa_tasks_find(const rosa_task_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0) return &l->t[i];
    return NULL;
}

static void task_clear(rosa_task *t) {
    free(t->name);
    free(t->file);
    memset(t, 0, sizeof *t);
}

/* Appends (or replaces) a copy of proto with the given file. */
static int add_task(rosa_task_list *l, const rosa_task *proto, const char *name, const char *file, int custom) {
    rosa_task *t = rosa_tasks_find(l, name);
    if (t && !custom) return 0; /* already listed */
    rosa_task nt = *proto;
    nt.name = rosa_strdup(name);
    nt.file = rosa_strdup(file);
    nt.custom = custom;
    if (!nt.name || !nt.file) {
        free(nt.name);
        free(nt.file);
        return -1;
    }
    if (t) {
        task_clear(t);
        *t = nt;
        return 0;
    }
    rosa_task *p = rosa_realloc(l->t, sizeof(rosa_task) * (size_t)(l->n + 1), "task list");
    if (!p) {
        free(nt.name);
        free(nt.file);
        return -1;
    }
    l->t = p;
    l->t[l->n++] = nt;
    return 0;
}

static int add_builtin(rosa_task_list *l, const rosa_task *b, const char *data_dir) {
    char *dir = rosa_path_join(data_dir, b->name);
    char *file = dir ? rosa_path_join(dir, "test.json") : NULL;
    int rc = file ? add_task(l, b, b->name, file, 0) : -1;
    free(dir);
    free(file);
    return rc;
}

int rosa_tasks_add_list(rosa_task_list *l, const char *list, const char *data_dir) {
    const char *s = list;
    while (*s) {
        while (*s == ',' || *s == ' ') s++;
        if (!*s) break;
        size_t n = strcspn(s, ", ");
        char name[128];
        if (n >= sizeof name) return rosa_fail("--tasks: a name is too long");
        memcpy(name, s, n);
        name[n] = 0;
        s += n;
        int is_cs = strcasecmp(name, "commonsense") == 0, is_math = strcasecmp(name, "math") == 0,
            is_all = strcasecmp(name, "all") == 0;
        if (is_cs || is_math || is_all) {
            for (int i = 0; i < N_BUILTIN; i++)
                if (is_all || (is_cs && builtin[i].type == ROSA_TASK_COMMONSENSE) ||
                    (is_math && builtin[i].type == ROSA_TASK_MATH))
                    if (add_builtin(l, &builtin[i], data_dir) < 0) return -1;
            continue;
        }
        const rosa_task *b = rosa_task_find_builtin(name);
        if (b) {
            if (add_builtin(l, b, data_dir) < 0) return -1;
            continue;
        }
        rosa_task *c = rosa_tasks_find(l, name);
        if (c && c->custom) continue; /* a --task given before */
        return rosa_fail("unknown task \"%s\" (tasks: boolq, piqa, social_i_qa, hellaswag, winogrande, ARC-Easy, "
                         "ARC-Challenge, openbookqa, MultiArith, gsm8k, AddSub, AQuA, SingleEq, SVAMP, mawps; "
                         "groups: commonsense, math, all; or --task NAME=FILE)", name);
    }
    return 0;
}

int rosa_tasks_add_custom(rosa_task_list *l, const char *spec, const char *type_name) {
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) return rosa_fail("--task expects NAME=FILE, got \"%s\"", spec);
    char name[128];
    size_t n = (size_t)(eq - spec);
    if (n >= sizeof name) return rosa_fail("--task: the name is too long");
    memcpy(name, spec, n);
    name[n] = 0;
    if (strpbrk(name, ", \t")) return rosa_fail("--task: the name \"%s\" may not contain commas or spaces", name);
    const rosa_task *b = rosa_task_find_builtin(name);
    rosa_task proto;
    memset(&proto, 0, sizeof proto);
    if (type_name) {
        rosa_task_type ty;
        if (rosa_task_type_parse(type_name, &ty) < 0)
            return rosa_fail("--task-type must be commonsense or math, got \"%s\"", type_name);
        proto.type = ty;
        proto.rule = ty == ROSA_TASK_MATH ? ROSA_RULE_NUMBER : ROSA_RULE_LABELS;
        if (b && b->type == ty) proto = *b; /* a built-in task's own rules for its own type */
    } else if (b) {
        proto = *b;
    } else {
        return rosa_fail("--task %s: give --task-type commonsense or math for a task that is not built in", name);
    }
    return add_task(l, &proto, b && (!type_name || b->type == proto.type) ? b->name : name, eq + 1, 1);
}

void rosa_task_list_free(rosa_task_list *l) {
    for (int i = 0; i < l->n; i++) task_clear(&l->t[i]);
    free(l->t);
    l->t = NULL;
    l->n = 0;
}
