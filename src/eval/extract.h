/* extract.h: the response and the answer in it, scored exactly as the
 * LLM-Adapters evaluation scripts do (Python semantics: str.strip, re.findall
 * with Unicode \d, float()). */
#ifndef ROSA_EXTRACT_H
#define ROSA_EXTRACT_H

#include <stddef.h>

#include "rosa_train.h"

/* Python's str.strip(): the bounds of s[0..len) without leading and trailing
 * Unicode whitespace (str.isspace: U+0009-000D, 001C-001F, 0020, 0085, 00A0,
 * 1680, 2000-200A, 2028, 2029, 202F, 205F, 3000).  Returns the new start and
 * sets *out_len. */
const char *rosa_py_strip(const char *s, size_t len, size_t *out_len);

/* The response in a decoded generation: text.split("### Response:")[1].strip(),
 * i.e. after the first marker, up to a second one if any.  Returns a malloc'ed
 * string, or NULL with *found = 0 when the text has no marker (or on
 * allocation failure, *found = 1). */
char *rosa_response_from_text(const char *text, size_t len, int *found);

/* The options of an "Answer format: a/b/c" line in an instruction (the last
 * such line): malloc'ed array of malloc'ed strings.  Returns the count (0
 * when there is no such line), or -1. */
int rosa_answer_format_labels(const char *instruction, char ***labels);
void rosa_free_labels(char **labels, int n);

/* An extracted and scored answer. */
typedef struct {
    int extracted;   /* 0: nothing could be extracted (counted as wrong) */
    int correct;
    char *text;      /* the prediction: the label, the letter, or the number as matched
                      * (commas removed); "" when nothing was found.  malloc'ed */
    double number;   /* ROSA_RULE_NUMBER: float() of the match, INFINITY when none */
} rosa_answer;

void rosa_answer_free(rosa_answer *a);

/* The first match of labels[0]|labels[1]|... (Python re alternation: the
 * leftmost position, then the first alternative).  Returns the index of the
 * label found, or -1. */
int rosa_extract_label(const char *response, const char *const *labels, int n);
/* The last match of -?\d+\.?\d* after removing ','; \d is any Unicode
 * decimal digit (category Nd), converted as Python's float() does.  Returns 1
 * and sets *value (and *match, malloc'ed, when not NULL), or 0 when there is
 * no number, or -1 on error. */
int rosa_extract_number(const char *response, double *value, char **match);
/* The first of A, B, C, D, E in the response, or 0. */
char rosa_extract_letter(const char *response);

/* Python float(label) for a numeric gold answer; -1 when it is not a number. */
int rosa_parse_number_label(const char *label, double *out);

/* Scores one response for a task.  instruction is needed for custom
 * commonsense tasks (their labels come from it).  Returns 0, or -1 (with
 * an error) when the label cannot be read or the instruction has no
 * "Answer format:" line for a custom task. */
int rosa_score_response(const rosa_task *t, const char *instruction, const char *response, const char *label,
                        rosa_answer *out);

#endif
