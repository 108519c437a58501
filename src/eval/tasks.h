/* tasks.h: the 15 LLM-Adapters benchmarks (8 commonsense, 7 arithmetic),
 * the groups commonsense / math / all, and custom tasks from a file. */
#ifndef ROSA_TASKS_H
#define ROSA_TASKS_H

typedef enum { ROSA_TASK_COMMONSENSE = 1, ROSA_TASK_MATH = 2 } rosa_task_type;

/* How an answer is extracted from a response (extract.h). */
typedef enum {
    ROSA_RULE_LABELS = 1, /* first match of label1|label2|... (fixed list, or the record's "Answer format:") */
    ROSA_RULE_NUMBER = 2, /* last number, within 0.001 of the label */
    ROSA_RULE_LETTER = 3  /* first capital A-E (AQuA) */
} rosa_answer_rule;

typedef struct {
    char *name;             /* as upstream spells it, e.g. "ARC-Easy" */
    rosa_task_type type;
    rosa_answer_rule rule;
    const char *const *labels; /* ROSA_RULE_LABELS: the pattern's alternatives in order;
                                * NULL = read from each record's "Answer format:" line */
    int n_labels;
    char *file;             /* the test file */
    int custom;             /* given with --task */
} rosa_task;

typedef struct {
    rosa_task *t;
    int n;
} rosa_task_list;

/* The built-in tasks in table order (commonsense first, then math). */
int rosa_task_builtin_count(void);
/* name, type, rule and labels of built-in task i (file and custom unset). */
const rosa_task *rosa_task_builtin(int i);
/* The built-in task of that name (case-insensitive), or NULL. */
const rosa_task *rosa_task_find_builtin(const char *name);

const char *rosa_task_type_name(rosa_task_type t); /* "commonsense" / "math" */
int rosa_task_type_parse(const char *s, rosa_task_type *out);

/* Adds the tasks of a comma-separated list of task and group names
 * (commonsense, math, all) to l, each once, in the order given (a group in
 * table order).  Files are data_dir/<name>/test.json.  Returns 0 or -1 with
 * an error naming the unknown entry. */
int rosa_tasks_add_list(rosa_task_list *l, const char *list, const char *data_dir);
/* Adds a custom task from "NAME=FILE".  type_name is "commonsense" or "math";
 * NULL keeps the rules of a built-in task of that name (an error for a new
 * name).  A custom commonsense task reads its labels from each record's
 * "Answer format: a/b/c" line; a custom math task scores numbers.  A task of
 * the same name already in l is replaced. */
int rosa_tasks_add_custom(rosa_task_list *l, const char *spec, const char *type_name);
/* The task named `name` in l (exact), or NULL. */
rosa_task *rosa_tasks_find(const rosa_task_list *l, const char *name);
void rosa_task_list_free(rosa_task_list *l);

/* The default --max-new-tokens of a task type (32 commonsense, 256 math). */
int rosa_task_default_max_new_tokens(rosa_task_type t);

#endif
