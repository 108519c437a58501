/* cmd_eval.c: `rosa eval`: the LLM-Adapters benchmarks (docs/eval.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "rosa.h"
#include "rosa_train.h"

/* --task and --task-type may repeat, which the option table cannot express:
 * they are taken out of argv here, in order. */
typedef struct {
    const char **spec, **type;
    int n_spec, n_type;
} custom_args;

static int take_custom(int *argc, char **argv, custom_args *c) {
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *s = argv[i], *v = NULL;
        int is_task = 0, is_type = 0;
        size_t n = strncmp(s, "--", 2) == 0 ? strcspn(s + 2, "=") : 0;
        if (n && args_name_eq("task", s + 2, n)) is_task = 1;
        else if (n && args_name_eq("task-type", s + 2, n)) is_type = 1;
        if (!is_task && !is_type) {
            argv[out++] = argv[i];
            continue;
        }
        const char *eq = strchr(s, '=');
        if (eq) v = eq + 1;
        else if (i + 1 < *argc) v = argv[++i];
        if (!v) {
            die_msg("rosa eval: %s needs a value", is_task ? "--task" : "--task-type");
            return -1;
        }
        if (is_task) c->spec[c->n_spec++] = v;
        else c->type[c->n_type++] = v;
    }
    *argc = out;
    return 0;
}

static const char *default_data_dir(void) {
    static char buf[4096];
    const char *sh = getenv("ROSA_SHARED");
    snprintf(buf, sizeof buf, "%s/data/llm-adapters", sh && *sh ? sh : "../shared");
    return buf;
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *tasks_list = NULL, *mode = "generate", *rule = "llm-adapters";
    const char *dtype = "fp32", *quantize = "none";
    const char *output = NULL, *predictions = NULL, *score_file = NULL, *data_dir = NULL, *dummy = NULL;
    int num_beams = 4, max_new = 0, batch = 1, limit = 0, max_prompt = 0, threads = 0, quiet = 0;
    uint64_t seed = 0;
    custom_args ca = {0};
    ca.spec = calloc((size_t)argc + 1, sizeof(char *));
    ca.type = calloc((size_t)argc + 1, sizeof(char *));
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    if (!ca.spec || !ca.type || !args) {
        free(ca.spec);
        free(ca.type);
        free(args);
        die_msg("out of memory");
        return 1;
    }
    memcpy(args, argv, sizeof(char *) * (size_t)argc);
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "model directory (not needed with --score-predictions)", 0, 0, NULL},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "apply this adapter (LoRA or RoSA)", 0, 0, NULL},
        {"tasks", ARG_STR, &tasks_list, "LIST",
         "tasks and groups, comma-separated: boolq, piqa, social_i_qa, hellaswag, winogrande, ARC-Easy, "
         "ARC-Challenge, openbookqa, MultiArith, gsm8k, AddSub, AQuA, SingleEq, SVAMP, mawps; commonsense, math, all",
         0, 0, NULL},
        {"task", ARG_STR, &dummy, "NAME=FILE", "a custom task (repeatable)", 0, 0, NULL},
        {"task-type", ARG_STR, &dummy, "TYPE", "commonsense or math, for each --task (one for all, or one each)", 0, 0, NULL},
        {"data-dir", ARG_STR, &data_dir, "DIR", "the LLM-Adapters test sets (default $ROSA_SHARED/data/llm-adapters, "
                                                "else ../shared/data/llm-adapters)", 0, 0, NULL},
        {"mode", ARG_STR, &mode, "MODE", "generate (the paper's protocol, default) or loglik (commonsense only)", 0, 0, NULL},
        {"num-beams", ARG_INT, &num_beams, "N", "beams (default 4; 1 = greedy; at most 256)", 0, 0, NULL},
        {"beam-rule", ARG_STR, &rule, "RULE", "llm-adapters (transformers 4.28, default) or hf (transformers >= 4.50)",
         0, 0, NULL},
        {"max-new-tokens", ARG_INT, &max_new, "N", "new tokens (default 32 commonsense, 256 math; at most 1048576)", 0,
         0, NULL},
        {"batch-size", ARG_INT, &batch, "N", "prompts decoded together (default 1, at most 4096; results do not depend "
                                             "on it)", 0, 0, NULL},
        {"limit", ARG_INT, &limit, "N", "only the first N examples of each task", 0, 0, NULL},
        {"max-prompt-tokens", ARG_INT, &max_prompt, "N", "refuse a prompt longer than N tokens (default 4 x the "
                                                        "model's max_position_embeddings)", 0, 0, NULL},
        {"seed", ARG_U64, &seed, "S", "recorded in the report (decoding is deterministic)", 0, 0, NULL},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0, NULL},
        {"dtype", ARG_STR, &dtype, "fp32|bf16", "matrix products of the frozen model (default fp32)", 0, 0, NULL},
        {"quantize", ARG_STR, &quantize, "none|int8", QUANTIZE_HELP, 0, 0, NULL},
        {"output", ARG_STR, &output, "FILE", "write the JSON report", 0, 0, NULL},
        {"predictions", ARG_STR, &predictions, "FILE", "JSON Lines of every example; an existing file is resumed", 0,
         0, NULL},
        {"score-predictions", ARG_STR, &score_file, "FILE", "rescore saved generations (no model needed)", 0, 0, NULL},
        {"quiet", ARG_FLAG, &quiet, NULL, "no progress line", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"eval", "--model DIR [--adapter DIR] --tasks LIST [options]",
                    "Evaluates on the LLM-Adapters benchmarks (8 commonsense, 7 arithmetic) with their protocol: "
                    "beam search, answer extraction and scoring as the reference scripts.",
                    specs, NULL, NULL, NULL};
    int status = 2, n_args = argc;
    rosa_task_list tasks = {0};
    rosa_model *m = NULL;
    rosa_adapter *a = NULL; /* attached to m when not merged: freed after it */
    rosa_eval_report rep = {0};
    if (take_custom(&n_args, args, &ca) < 0) goto done;
    int r = args_parse(&p, n_args, args);
    if (r) {
        status = r > 0 ? 0 : 2;
        goto done;
    }
    rosa_eval_options o;
    rosa_eval_options_default(&o);
    if (strcmp(mode, "generate") == 0) o.mode = ROSA_EVAL_GENERATE;
    else if (strcmp(mode, "loglik") == 0) o.mode = ROSA_EVAL_LOGLIK;
    else {
        die_msg("--mode must be generate or loglik, got \"%s\"", mode);
        goto done;
    }
    if (o.mode == ROSA_EVAL_LOGLIK && arg_seen(p.args, "num-beams")) {
        die_msg("--mode loglik and --num-beams do not go together: loglik scores the choices, it decodes nothing");
        goto done;
    }
    if (rosa_beam_rule_parse(rule, &o.rule) < 0) {
        die_msg("--beam-rule must be llm-adapters or hf, got \"%s\"", rule);
        goto done;
    }
    if (num_beams < 1 || num_beams > ROSA_MAX_BEAMS) {
        die_msg("--num-beams must be in [1, %d], got %d", ROSA_MAX_BEAMS, num_beams);
        goto done;
    }
    if (max_new < 0 || max_new > ROSA_MAX_NEW_TOKENS) {
        die_msg("--max-new-tokens must be in [0, %d] (0: per task type), got %d", ROSA_MAX_NEW_TOKENS, max_new);
        goto done;
    }
    if (batch < 1 || batch > ROSA_MAX_BATCH) {
        die_msg("--batch-size must be in [1, %d], got %d", ROSA_MAX_BATCH, batch);
        goto done;
    }
    if (arg_seen(specs, "limit") && limit < 1) {
        die_msg("--limit must be >= 1, got %d", limit);
        goto done;
    }
    if (arg_seen(specs, "max-prompt-tokens") && max_prompt < 1) {
        die_msg("--max-prompt-tokens must be >= 1, got %d", max_prompt);
        goto done;
    }
    if (ca.n_type > 1 && ca.n_type != ca.n_spec) {
        die_msg("give one --task-type for all --task, or one per --task (%d --task, %d --task-type)", ca.n_spec,
                ca.n_type);
        goto done;
    }
    if (ca.n_type > 0 && ca.n_spec == 0) {
        die_msg("--task-type goes with --task NAME=FILE");
        goto done;
    }
    if (!tasks_list && ca.n_spec == 0 && !score_file) {
        die_msg("rosa eval: --tasks is required (see rosa eval --help)");
        goto done;
    }
    if (!score_file && !model_dir) {
        die_msg("rosa eval: --model is required (see rosa eval --help)");
        goto done;
    }
    if (!data_dir) data_dir = default_data_dir();
    o.num_beams = num_beams;
    o.max_new_tokens = max_new;
    o.max_prompt_tokens = max_prompt;
    o.batch_size = batch;
    o.limit = limit;
    o.seed = seed;
    o.predictions = predictions;
    o.quiet = quiet;
    o.model_dir = model_dir;
    o.adapter_dir = adapter_dir;
    status = 1;
    for (int i = 0; i < ca.n_spec; i++)
        if (rosa_tasks_add_custom(&tasks, ca.spec[i], ca.n_type == 0 ? NULL : ca.type[ca.n_type == 1 ? 0 : i]) < 0)
            goto fail;
    if (score_file) {
        /* every built-in task is known; --tasks (one task) names the task of lines without one */
        rosa_task_list known = {0};
        const char *default_task = NULL;
        int ok = 1;
        for (int i = 0; ok && i < tasks.n; i++) {
            rosa_task *t = &tasks.t[i];
            char spec[4200];
            snprintf(spec, sizeof spec, "%s=%s", t->name, t->file);
            ok = rosa_tasks_add_custom(&known, spec, rosa_task_type_name(t->type)) == 0;
        }
        if (ok) ok = rosa_tasks_add_list(&known, "all", data_dir) == 0;
        if (ok && tasks_list && !strchr(tasks_list, ',')) {
            const rosa_task *b = rosa_task_find_builtin(tasks_list);
            const rosa_task *t = rosa_tasks_find(&known, b ? b->name : tasks_list);
            if (t) default_task = t->name;
        }
        if (ok) ok = rosa_eval_score_file(score_file, &known, default_task, &rep) == 0;
        if (ok) {
            rosa_eval_report_print(&rep, stdout);
            if (output) ok = rosa_eval_report_write_json(&rep, NULL, output, score_file) == 0;
        }
        rosa_eval_report_free(&rep);
        rosa_task_list_free(&known);
        if (!ok) goto fail;
        status = 0;
        goto done;
    }
    if (tasks_list && rosa_tasks_add_list(&tasks, tasks_list, data_dir) < 0) {
        /* A misspelt task is a usage error; a missing data file is not. */
        if (strncmp(rosa_last_error(), "unknown task", 12) == 0) status = 2;
        goto fail;
    }
    if (take_threads(specs, threads) < 0) {
        status = 2;
        goto done;
    }
    rosa_dtype compute;
    rosa_quant quant;
    if (parse_dtype(dtype, &compute) < 0 || parse_quantize(quantize, compute, &quant) < 0) {
        status = 2;
        goto done;
    }
    m = rosa_model_load(model_dir);
    if (!m) goto fail;
    if (!rosa_model_tokenizer(m)) {
        rosa_fail("%s: the model directory has no tokenizer.json", model_dir);
        goto fail;
    }
    /* Before the adapter: on an int8 base it is attached, not merged. */
    if (rosa_model_quantize(m, quant) < 0) goto fail;
    if (adapter_dir) {
        a = rosa_adapter_load(adapter_dir, rosa_model_config(m));
        int rc = a ? rosa_adapter_apply(m, a) : -1;
        if (rc < 0) goto fail;
    }
    if (rosa_model_set_compute_inference(m, compute) < 0) goto fail;
    if (rosa_eval_run(m, &tasks, &o, &rep) < 0) goto fail;
    rosa_eval_report_print(&rep, stdout);
    fflush(stdout);
    if (output && rosa_eval_report_write_json(&rep, &o, output, NULL) < 0) goto fail;
    status = 0;
    goto done;
fail:
    die_msg("%s", rosa_last_error()); /* status: 1, or 2 for a usage error found late */
done:
    rosa_eval_report_free(&rep);
    rosa_task_list_free(&tasks);
    rosa_model_free(m);
    rosa_adapter_free(a);
    free(ca.spec);
    free(ca.type);
    free(args);
    return status;
}
