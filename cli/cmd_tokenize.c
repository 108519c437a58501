/* cmd_tokenize.c: `rosa tokenize`: text to ids, ids back to text, or (with
 * --data) the exact ids and labels training would use for each record of a
 * data file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "rosa.h"
#include "rosa_train.h"

static int spec_seen(const arg_spec *specs, const char *name) {
    for (const arg_spec *a = specs; a->name; a++)
        if (strcmp(a->name, name) == 0) return a->seen;
    return 0;
}

/* Writes [a, b, ...] (fast: a data set dump holds millions of ids). */
static void print_int_list(const int32_t *v, int n) {
    char buf[4096];
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < n; i++) {
        if (k > sizeof buf - 16) {
            fwrite(buf, 1, k, stdout);
            k = 0;
        }
        if (i) {
            buf[k++] = ',';
            buf[k++] = ' ';
        }
        long long x = v[i];
        if (x < 0) {
            buf[k++] = '-';
            x = -x;
        }
        char d[12];
        int nd = 0;
        do d[nd++] = (char)('0' + x % 10); while ((x /= 10) > 0);
        while (nd) buf[k++] = d[--nd];
    }
    buf[k++] = ']';
    fwrite(buf, 1, k, stdout);
}

/* --data: one JSON object {"records": [{"index", "ids", "labels"}...],
 * "cutoff_len", "train_on_inputs", "eos_id"}.  index is the record's position
 * in the file.  Template eval: the evaluation prompt's ids (no truncation, no
 * EOS, as the LLM-Adapters evaluation scripts tokenize it) and labels all
 * -100; cutoff_len and train_on_inputs are echoed but not applied. */
static int dump_data(const rosa_tokenizer *tok, const char *path, int eval, const rosa_data_options *o,
                     int skip_bad) {
    rosa_records rs;
    if (rosa_records_load(path, skip_bad, &rs) < 0) return die_msg("%s", rosa_last_error()), 1;
    if (rs.n_bad)
        fprintf(stderr, "rosa: warning: %s: skipped %d bad record%s\n", path, rs.n_bad, rs.n_bad == 1 ? "" : "s");
    rosa_dataset d = {0};
    int status = 1;
    if (eval) {
        d.ex = rosa_calloc((size_t)rs.n, sizeof(rosa_example), "dataset");
        if (!d.ex) {
            die_msg("%s", rosa_last_error());
            goto done;
        }
        d.n = rs.n;
        for (int i = 0; i < rs.n; i++) {
            char *prompt = rosa_prompt_eval(&rs.rec[i]);
            int32_t *ids = NULL;
            size_t n = 0;
            if (!prompt || rosa_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &n) < 0) {
                free(prompt);
                die_msg("%s: record %d: %s", path, rs.rec[i].index, rosa_last_error());
                goto done;
            }
            free(prompt);
            d.ex[i].ids = ids;
            d.ex[i].n = (int)n;
            d.ex[i].labels = rosa_malloc(sizeof(int32_t) * (n ? n : 1), "labels");
            if (!d.ex[i].labels) {
                die_msg("%s", rosa_last_error());
                goto done;
            }
            for (size_t t = 0; t < n; t++) d.ex[i].labels[t] = ROSA_IGNORE_INDEX;
        }
    } else if (rosa_dataset_tokenize(tok, &rs, o, &d) < 0) {
        die_msg("%s: %s", path, rosa_last_error());
        goto done;
    }
    fputs("{\"records\": [", stdout);
    for (int i = 0; i < rs.n; i++) {
        printf("%s{\"index\": %d, \"ids\": ", i ? ", " : "", rs.rec[i].index);
        print_int_list(d.ex[i].ids, d.ex[i].n);
        fputs(", \"labels\": ", stdout);
        print_int_list(d.ex[i].labels, d.ex[i].n);
        putchar('}');
    }
    int32_t eos = rosa_tokenizer_eos_id(tok);
    printf("], \"cutoff_len\": %d, \"train_on_inputs\": %s, \"eos_id\": ", o->cutoff_len,
           o->train_on_inputs ? "true" : "false");
    if (eos >= 0)
        printf("%d}\n", (int)eos);
    else
        fputs("null}\n", stdout);
    status = 0;
done:
    rosa_dataset_free(&d);
    rosa_records_free(&rs);
    return status;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *model = NULL, *text = NULL, *file = NULL;
    const char *data = NULL, *template = NULL, *train_on_inputs = NULL;
    int no_bos = 0, json = 0, decode = 0, keep_special = 0, skip_bad = 0;
    rosa_data_options opt;
    rosa_data_options_default(&opt);
    int cutoff_len = opt.cutoff_len;
    arg_spec specs[] = {
        {"tokenizer", ARG_STR, &tok_path, "DIR|FILE", "tokenizer.json, or a directory holding it", 0, 0, NULL},
        {"model", ARG_STR, &model, "DIR", "use the tokenizer of this model directory", 0, 0, NULL},
        {"text", ARG_STR, &text, "T", "the text (with --decode: ids like \"1 2 3\")", 0, 0, NULL},
        {"file", ARG_STR, &file, "F", "read the text (or ids) from a file", 0, 0, NULL},
        {"no-bos", ARG_FLAG, &no_bos, NULL, "do not add special tokens (BOS/EOS)", 0, 0, NULL},
        {"decode", ARG_FLAG, &decode, NULL, "decode ids to text instead", 0, 0, NULL},
        {"keep-special", ARG_FLAG, &keep_special, NULL, "with --decode: keep special tokens in the text", 0, 0, NULL},
        {"data", ARG_STR, &data, "FILE",
         "LLM-Adapters data (JSON array or JSON Lines): print each record's ids and labels as JSON", 0, 0, NULL},
        {"template", ARG_STR, &template, "train|eval",
         "with --data: the training prompt (with the output, as finetune.py) or the evaluation prompt", 0, 0, NULL},
        {"cutoff-len", ARG_INT, &cutoff_len, "N", "with --data: truncate training examples to N ids (default 256)",
         0, 0, NULL},
        {"train-on-inputs", ARG_STR, &train_on_inputs, "true|false",
         "with --data: false masks the prompt's labels with -100 (default true)", 0, 0, NULL},
        {"skip-bad-records", ARG_FLAG, &skip_bad, NULL, "with --data: skip malformed records instead of failing", 0,
         0, NULL},
        {"json", ARG_FLAG, &json, NULL, "print JSON (always, with --data)", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"tokenize",
                    "(--tokenizer DIR|FILE | --model DIR) ((--text T | --file F) [--no-bos] [--decode] | --data FILE "
                    "--template train|eval [--cutoff-len N] [--train-on-inputs true|false] [--skip-bad-records]) "
                    "[--json]",
                    "Prints the token ids of the whole text (with BOS as transformers adds it), or with --decode "
                    "the text of a list of ids, or with --data the ids and labels that training (LLM-Adapters "
                    "finetune.py) uses for each record of a data file.",
                    specs, NULL, NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!!tok_path + !!model != 1) return die_msg("rosa tokenize: give exactly one of --tokenizer and --model"), 2;
    const char *path = tok_path ? tok_path : model;

    if (data) {
        if (text || file || decode || no_bos || keep_special)
            return die_msg("rosa tokenize: --data cannot be combined with --text, --file, --decode, --no-bos or "
                           "--keep-special"),
                   2;
        if (!template) return die_msg("rosa tokenize: --data needs --template train|eval"), 2;
        int eval;
        if (strcmp(template, "train") == 0)
            eval = 0;
        else if (strcmp(template, "eval") == 0)
            eval = 1;
        else
            return die_msg("rosa tokenize: --template must be train or eval, got \"%s\"", template), 2;
        if (train_on_inputs) {
            if (strcmp(train_on_inputs, "true") == 0)
                opt.train_on_inputs = 1;
            else if (strcmp(train_on_inputs, "false") == 0)
                opt.train_on_inputs = 0;
            else
                return die_msg("rosa tokenize: --train-on-inputs must be true or false, got \"%s\"", train_on_inputs),
                       2;
        }
        if (cutoff_len < 1) return die_msg("rosa tokenize: --cutoff-len must be at least 1, got %d", cutoff_len), 2;
        opt.cutoff_len = cutoff_len;
        rosa_tokenizer *tok = rosa_tokenizer_load(path);
        if (!tok) return die_msg("%s", rosa_last_error()), 1;
        int st = dump_data(tok, data, eval, &opt, skip_bad);
        rosa_tokenizer_free(tok);
        return st;
    }
    if (template || train_on_inputs || skip_bad || spec_seen(specs, "cutoff-len"))
        return die_msg("rosa tokenize: --template, --cutoff-len, --train-on-inputs and --skip-bad-records need "
                       "--data"),
               2;

    if (!!text + !!file != 1) return die_msg("rosa tokenize: give exactly one of --text and --file"), 2;
    char *content = NULL;
    size_t len;
    if (file) {
        content = rosa_read_file(file, &len);
        if (!content) return die_msg("%s", rosa_last_error()), 1;
    } else {
        len = strlen(text);
    }
    const char *input = file ? content : text;
    rosa_tokenizer *tok = rosa_tokenizer_load(path);
    int status = 1;
    if (!tok) {
        die_msg("%s", rosa_last_error());
        goto done;
    }
    if (decode) {
        int32_t *ids;
        int n;
        if (rosa_parse_int_list(input, &ids, &n) < 0) {
            die_msg("--decode: expected token ids like \"1 2 3\"");
            goto done;
        }
        size_t out_len;
        char *out = rosa_tokenizer_decode(tok, ids, (size_t)n, !keep_special, &out_len);
        free(ids);
        if (!out) {
            die_msg("%s", rosa_last_error());
            goto done;
        }
        if (json) {
            printf("{\"text\": ");
            print_json_string(out, out_len);
            printf("}\n");
        } else {
            fwrite(out, 1, out_len, stdout);
            putchar('\n');
        }
        free(out);
    } else {
        int32_t *ids;
        size_t n;
        if (rosa_tokenizer_encode(tok, input, len, !no_bos, &ids, &n) < 0) {
            die_msg("%s%s", file ? "" : "--text: ", rosa_last_error());
            goto done;
        }
        if (json) printf("{\"ids\": [");
        for (size_t i = 0; i < n; i++) printf(json ? "%s%d" : "%s%d", i ? (json ? ", " : " ") : "", ids[i]);
        if (json) printf("], \"count\": %zu}", n);
        putchar('\n');
        free(ids);
    }
    status = 0;
done:
    rosa_tokenizer_free(tok);
    free(content);
    return status;
}
