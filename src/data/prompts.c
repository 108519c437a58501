/* prompts.c: the LLM-Adapters (Alpaca) prompt templates, training and
 * evaluation, byte for byte (data.h). */
#include "data/data.h"

#include <string.h>

#include "core/util.h"

/* The training template: LLM-Adapters finetune.py, generate_prompt(data_point)
 * (AGI-Edgerunners/LLM-Adapters; copied from the stored version at commit
 * 91770aba93bbbde16f3e16d1bf395a59706fa390, the form kept by the later
 * upstream and its forks; the pinned data commit 816657208af4... was not
 * available to check, and the older 063e3d420afb... had "  # noqa: E501"
 * inside the string).  The f-string's continuation lines carry the source
 * indentation: 16 spaces, and the "blank" lines between sections are 16
 * spaces too.  The header line ends with ONE space when there is an input and
 * TWO spaces when there is none.  `if data_point["input"]:` is Python
 * truthiness, so an empty input selects the no-input form. */
#define TRAIN_HEAD_INPUT                                                                                        \
    "Below is an instruction that describes a task, paired with an input that provides further context. Write " \
    "a response that appropriately completes the request. \n\n"
#define TRAIN_HEAD_NO_INPUT                                                                                     \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "         \
    "request.  \n\n"
#define IND "                " /* 16 spaces */
#define TRAIN_INSTRUCTION IND "### Instruction:\n" IND
#define TRAIN_INPUT "\n" IND "\n" IND "### Input:\n" IND
#define TRAIN_RESPONSE "\n" IND "\n" IND "### Response:\n" IND

/* The evaluation template: LLM-Adapters commonsense_evaluate.py (spelled
 * commomsense_evaluate.py upstream; stored at commit e0efdc0e8bb4...) and
 * evaluate.py (math; the same text in the later upstream form, e.g. the fork
 * aneekroy/LLM-Adapters@92934be82db1...; the early 1bb2f7c78b1c... had
 * "  # noqa: E501" inside the string), generate_prompt(instruction,
 * input=None), no-input branch: both scripts call it with the instruction
 * only.  Here the blank lines are empty (no indentation), the
 * header ends with ONE space, and the prompt ends with the 16-space
 * indentation after "### Response:\n". */
#define EVAL_HEAD                                                                                               \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "         \
    "request. \n\n"
#define EVAL_INSTRUCTION IND "### Instruction:\n" IND
#define EVAL_RESPONSE "\n\n" IND "### Response:\n" IND

static char *concat(const char *const *parts, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *s = rosa_malloc(len + 1, "prompt");
    if (!s) return NULL;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);
        memcpy(s + o, parts[i], k);
        o += k;
    }
    s[o] = 0;
    return s;
}

char *rosa_prompt_train(const rosa_record *r, int with_output) {
    const char *instruction = r->instruction ? r->instruction : "";
    const char *output = with_output && r->output ? r->output : "";
    if (r->input && r->input[0]) {
        const char *parts[] = {TRAIN_HEAD_INPUT, TRAIN_INSTRUCTION, instruction, TRAIN_INPUT, r->input,
                               TRAIN_RESPONSE, output};
        return concat(parts, 7);
    }
    const char *parts[] = {TRAIN_HEAD_NO_INPUT, TRAIN_INSTRUCTION, instruction, TRAIN_RESPONSE, output};
    return concat(parts, 5);
}

char *rosa_prompt_eval(const rosa_record *r) {
    const char *parts[] = {EVAL_HEAD, EVAL_INSTRUCTION, r->instruction ? r->instruction : "", EVAL_RESPONSE};
    return concat(parts, 4);
}
