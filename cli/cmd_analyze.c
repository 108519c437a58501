/* cmd_analyze.c: `rosa analyze`: the RoPE frequency analysis (the RoSA paper's
 * Figure 1) on the user's model and data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "rosa.h"
#include "rosa_train.h"

static void on_progress(void *user, int done, int total, long long tokens) {
    static long long last_tokens;
    rosa_progress *p = user;
    (void)total;
    if (done == 1) last_tokens = 0;
    rosa_progress_update_rate(p, done, tokens - last_tokens, "tok/s", NULL);
    last_tokens = tokens;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

int cmd_analyze(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *data = NULL, *output = NULL, *template = "train",
               *log_format = NULL;
    int limit = 64, cutoff = 256, threads = 0, quiet = 0, skip_bad = 0;
    float r_low = NAN;
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "base model (Hugging Face directory with tokenizer.json)", 1, 0, NULL},
        {"data", ARG_STR, &data, "FILE", "records (LLM-Adapters JSON or JSON Lines) whose prompts are analysed", 1, 0, NULL},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "apply this adapter (LoRA merged; RoAE modulates Q/K)", 0, 0, NULL},
        {"limit", ARG_INT, &limit, "N", "the first N records (default 64; 0 = all)", 0, 0, NULL},
        {"r-low", ARG_FLOAT, &r_low, "F", "mark RoAE's dimensions for this r_low (default: the adapter's, else 0.25)", 0,
         0, NULL},
        {"template", ARG_STR, &template, "train|eval", "training prompt with the answer (default) or evaluation prompt",
         0, 0, NULL},
        {"cutoff-len", ARG_INT, &cutoff, "N", "truncate each record to N tokens (default 256)", 0, 0, NULL},
        {"skip-bad-records", ARG_FLAG, &skip_bad, NULL, "skip malformed records with a warning", 0, 0, NULL},
        {"output", ARG_STR, &output, "FILE", "write FILE.html (plots) or FILE.json (numbers); a table goes to stdout",
         0, 0, NULL},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0, NULL},
        {"log-format", ARG_STR, &log_format, "tty|plain", "progress display (default: tty on a terminal)", 0, 0, NULL},
        {"quiet", ARG_FLAG, &quiet, NULL, "no progress output", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"analyze", "--model DIR --data FILE [--adapter DIR] [--limit N] [--r-low F] [--output FILE.html|.json]",
                    "Measures the mean L2 norm of the RoPE-rotated query and key states per head dimension and per "
                    "layer on your data (the RoSA paper's Figure 1), marks the dimensions --r-low selects, and the "
                    "mean activation per rotary frequency band.",
                    specs, NULL, NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    int eval = 0;
    if (strcmp(template, "eval") == 0) eval = 1;
    else if (strcmp(template, "train") != 0) return die_msg("--template expects train or eval"), 2;
    if (limit < 0) return die_msg("--limit must be >= 0"), 2;
    if (cutoff < 1) return die_msg("--cutoff-len must be at least 1"), 2;
    if (output && !ends_with(output, ".html") && !ends_with(output, ".htm") && !ends_with(output, ".json"))
        return die_msg("--output must end in .html or .json, got \"%s\"", output), 2;
    int plain = 0;
    if (log_format) {
        if (strcmp(log_format, "plain") == 0) plain = 1;
        else if (strcmp(log_format, "tty") != 0) return die_msg("--log-format expects tty or plain"), 2;
    }
    if (take_threads(specs, threads) < 0) return 2;

    int status = 1;
    rosa_records recs = {0};
    rosa_dataset ds = {0};
    rosa_adapter *a = NULL;
    rosa_analysis an = {0};
    const int32_t **ids = NULL;
    int *lens = NULL;
    char kind[96] = "";
    rosa_model *m = rosa_model_load(model_dir);
    if (!m) goto fail;
    const rosa_tokenizer *tok = rosa_model_tokenizer(m);
    if (!tok) {
        rosa_fail("%s: the model directory has no tokenizer.json", model_dir);
        goto fail;
    }
    if (adapter_dir) {
        a = rosa_adapter_load(adapter_dir, rosa_model_config(m));
        if (!a || rosa_adapter_apply(m, a) < 0) goto fail;
        rosa_adapter_describe(a, kind, sizeof kind - 10);
        if (rosa_adapter_mergeable(a)) strcat(kind, ", merged");
        if (isnan(r_low)) r_low = rosa_adapter_analysis_r_low(a);
    }
    if (isnan(r_low)) r_low = 0.25f;
    if (!(r_low > 0.0f && r_low <= 1.0f)) {
        rosa_fail("--r-low %g must be in (0, 1]", r_low);
        goto fail;
    }
    if (rosa_rope_low_dims(rosa_model_config(m)->head_dim, r_low, NULL) < 0) goto fail;
    if (rosa_records_load(data, skip_bad, &recs) < 0) goto fail;
    if (recs.n_bad)
        fprintf(stderr, "rosa: warning: %s: skipped %d bad record%s\n", data, recs.n_bad, recs.n_bad == 1 ? "" : "s");
    if (limit > 0) rosa_records_truncate(&recs, limit);
    if (recs.n == 0) {
        rosa_fail("%s: no records", data);
        goto fail;
    }
    /* Token ids: the training prompt as train tokenizes it, or the evaluation prompt. */
    if (!eval) {
        rosa_data_options d;
        rosa_data_options_default(&d);
        d.cutoff_len = cutoff;
        if (rosa_dataset_tokenize(tok, &recs, &d, &ds) < 0) goto fail;
    } else {
        ds.ex = rosa_calloc((size_t)recs.n, sizeof(rosa_example), "dataset");
        if (!ds.ex) goto fail;
        ds.n = recs.n;
        for (int i = 0; i < recs.n; i++) {
            char *prompt = rosa_prompt_eval(&recs.rec[i]);
            size_t n = 0;
            if (!prompt || rosa_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ds.ex[i].ids, &n) < 0) {
                free(prompt);
                rosa_error_prefix("%s: record %d", data, recs.rec[i].index);
                goto fail;
            }
            free(prompt);
            ds.ex[i].n = (int)n > cutoff ? cutoff : (int)n;
        }
    }
    ids = rosa_malloc(sizeof(int32_t *) * (size_t)ds.n, "analysis");
    lens = rosa_malloc(sizeof(int) * (size_t)ds.n, "analysis");
    if (!ids || !lens) goto fail;
    for (int i = 0; i < ds.n; i++) ids[i] = ds.ex[i].ids, lens[i] = ds.ex[i].n;
    rosa_progress prog;
    rosa_progress_start(&prog, "analyze", ds.n, 0, quiet, plain);
    int rc = rosa_analyze(m, ids, lens, ds.n, r_low, on_progress, &prog, &an);
    rosa_progress_end(&prog);
    if (rc < 0) goto fail;
    rosa_analysis_print(&an, stdout);
    if (output) {
        rosa_analysis_meta meta = {model_dir, adapter_dir, data, eval ? "eval" : "train", cutoff,
                                   rosa_model_config(m)->rope_theta, NULL, adapter_dir ? kind : NULL};
        if (rosa_analysis_write(&an, &meta, output) < 0) goto fail;
        printf("analysis written to %s\n", output);
    }
    status = 0;
    goto done;
fail:
    die_msg("%s", rosa_last_error());
done:
    rosa_analysis_free(&an);
    free(ids);
    free(lens);
    rosa_dataset_free(&ds);
    rosa_records_free(&recs);
    rosa_model_free(m);
    rosa_adapter_free(a); /* after the model it may be attached to */
    return status;
}
