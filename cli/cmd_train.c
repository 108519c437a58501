/* cmd_train.c: `rosa train`, `rosa loss` and `rosa merge`. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "rosa.h"
#include "rosa_train.h"

/* SIGINT and SIGTERM are taken by one thread that waits for them, never
 * by an asynchronous handler: they are blocked in every other thread
 * (threads created later, the OpenMP and oneDNN workers, inherit the mask),
 * so no computing thread is ever interrupted.  With a handler, a signal
 * arriving in the middle of a training step corrupted the heap about one run
 * in twenty on a loaded machine (seen in oneDNN's sgemm right after it). */
static void *wait_for_stop(void *arg) {
    const sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) == 0) rosa_train_request_stop();
    }
    return NULL;
}

static int take_stop_signals(void) {
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_t t;
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || pthread_create(&t, NULL, wait_for_stop, &set) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}

/* --param-budget: the rank whose trainable parameters are closest to the
 * fraction of the base model (ties: the smaller rank). */
static int choose_rank(rosa_train_options *o, void *opts, float budget) {
    rosa_config c;
    if (rosa_config_load(o->model_dir, &c) < 0) return die_msg("%s", rosa_last_error()), -1;
    double target = budget * (double)rosa_config_num_params(&c), best_err = INFINITY;
    int best = 1;
    for (int r = 1; r <= 4096; r++) {
        /* A method without a size (IA3, LN-Tuning) is a usage error: -2. */
        if (rosa_peft_set_rank(o->method, opts, r) < 0) return die_msg("--param-budget: %s", rosa_last_error()), -2;
        int64_t n = rosa_peft_num_params(o->method, &c, opts);
        if (n < 0 && r == 1) return die_msg("%s", rosa_last_error()), -1;
        if (n < 0) break; /* past the largest rank the model's shapes allow (SHiRA: r (in + out) <= in x out) */
        double err = fabs((double)n - target);
        if (err < best_err) best_err = err, best = r;
    }
    rosa_peft_set_rank(o->method, opts, best);
    double share = (double)rosa_peft_num_params(o->method, &c, opts) / (double)rosa_config_num_params(&c);
    if (!o->quiet) fprintf(stderr, "rosa: --param-budget %g: rank %d (%.4g of the base model)\n", budget, best, share);
    /* Ranks move the size in steps; say so when the nearest step is far off (as PEFT users
     * would otherwise assume the budget was met). */
    if (best_err > 0.1 * target)
        fprintf(stderr, "rosa: warning: --param-budget %g cannot be met within 10%%: the nearest rank, %d, gives %.4g\n",
                budget, best, share);
    return 0;
}

/* The --method value in argv ("lora" when absent); the last one, as the
 * command line comes after a --config file's options. */
static const char *method_arg(int argc, char **argv) {
    const char *m = "lora";
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--method=", 9) == 0) m = argv[i] + 9;
        if (strcmp(argv[i], "--method") == 0 && i + 1 < argc) m = argv[++i];
    }
    return m;
}

/* Whether --flag is an option of method m. */
static int method_has(const rosa_peft_method *m, const char *flag, size_t n) {
    for (const rosa_peft_option *o = rosa_peft_method_options(m); o->flag; o++)
        if (args_name_eq(o->flag, flag, n)) return 1;
    return 0;
}

/* An option of another method is a usage error that names its method. */
static int check_foreign_options(const rosa_peft_method *m, const char *method, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        const char *flag = argv[i] + 2;
        size_t n = strcspn(flag, "=");
        if (method_has(m, flag, n)) continue;
        const rosa_peft_method *other;
        for (int k = 0; (other = rosa_peft_at(k)); k++) {
            if (other != m && method_has(other, flag, n)) {
                die_msg("--%.*s applies to --method %s, not %s", (int)n, flag, rosa_peft_method_name(other), method);
                return -1;
            }
        }
    }
    return 0;
}

/* The method's options as arg_specs (values kept as strings, set afterwards
 * through rosa_peft_set_option, so that the help and the parsing come from
 * the method's own table). */
#define MAX_METHOD_OPTS 32
typedef struct {
    arg_spec specs[MAX_METHOD_OPTS];
    const char *values[MAX_METHOD_OPTS];
    int flags[MAX_METHOD_OPTS];
    char help[MAX_METHOD_OPTS][160];
    int n;
} method_args;

/* PEFT's LoraConfig names of the method options, accepted as aliases. */
static const char *peft_alias(const char *flag) {
    static const char *const names[][2] = {{"rank", "lora-r"}, {"alpha", "lora-alpha"}, {"dropout", "lora-dropout"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(flag, names[i][0]) == 0) return names[i][1];
    return NULL;
}

static void method_specs(const rosa_peft_method *m, method_args *ma) {
    ma->n = 0;
    for (const rosa_peft_option *o = rosa_peft_method_options(m); o->flag && ma->n < MAX_METHOD_OPTS; o++) {
        int i = ma->n++;
        snprintf(ma->help[i], sizeof ma->help[i], "%s: %s", rosa_peft_display_name(m, 0), o->help);
        ma->values[i] = NULL;
        ma->flags[i] = 0;
        ma->specs[i] = (arg_spec){o->flag, o->type == PEFT_OPT_FLAG ? ARG_FLAG : ARG_STR,
                                  o->type == PEFT_OPT_FLAG ? (void *)&ma->flags[i] : (void *)&ma->values[i],
                                  o->metavar, ma->help[i], 0, 0, peft_alias(o->flag)};
    }
}

/* --init-adapter with a --method or method option that the adapter's file
 * contradicts is a usage error.  An adapter or model that cannot be read is
 * left to rosa_train, which says why. */
static int check_init_adapter(const rosa_train_options *o, const method_args *ma, const arg_spec *seen,
                              const arg_spec *specs) {
    const char *given[MAX_METHOD_OPTS + 2];
    int n = 0;
    if (arg_seen(specs, "method")) given[n++] = "method";
    for (int i = 0; i < ma->n; i++)
        if (seen[i].seen) given[n++] = seen[i].name;
    given[n] = NULL;
    if (arg_seen(specs, "param-budget")) {
        die_msg("rosa train: --init-adapter and --param-budget do not go together: the adapter's file decides its rank");
        return -1;
    }
    rosa_config c;
    if (!n || rosa_config_load(o->model_dir, &c) < 0) return 0;
    rosa_adapter *a = rosa_adapter_load(o->init_adapter, &c);
    if (!a) return 0;
    int rc = rosa_adapter_check_given(a, o->method, o->method_opts, given);
    rosa_adapter_free(a);
    if (rc < 0) die_msg("rosa train: %s", rosa_last_error());
    return rc;
}

/* Sets the options whose specs (the parsed copies of ma's) were seen. */
static int method_apply(const rosa_peft_method *m, const method_args *ma, const arg_spec *seen, void *opts) {
    for (int i = 0; i < ma->n; i++) {
        if (!seen[i].seen) continue;
        const char *v = seen[i].type == ARG_FLAG ? (ma->flags[i] ? "1" : "0") : ma->values[i];
        if (rosa_peft_set_option(m, opts, seen[i].name, v) != 0) return die_msg("%s", rosa_last_error()), -1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    rosa_train_options o;
    rosa_train_options_default(&o);
    const char *method = method_arg(argc, argv), *sched = "linear", *train_inputs = "true", *loss_norm = "mean",
               *nan_policy = "stop", *max_mem = NULL, *log_format = NULL, *dls_inactive = "skip", *dtype = "fp32",
               *quantize = "none";
    int threads = 0, no_shuffle = 0, dls = 0, bf16 = 0, grad_accum = 0;
    float budget = 0.0f;
    rosa_dls_options *d = &o.dls;
    int with_dls; /* the method's name switches DLS on (rosa) */
    o.method = rosa_peft_find(method, &with_dls);
    if (!o.method) return die_msg("--method: unknown method \"%s\" (available: %s)", method, rosa_peft_names()), 2;
    method_args ma;
    method_specs(o.method, &ma);
    char method_help[512];
    snprintf(method_help, sizeof method_help, "%s (default lora; rosa = roae + DLS); `rosa train --method NAME --help` "
             "lists its options", rosa_peft_names());
    arg_spec common[] = {
        {"model", ARG_STR, &o.model_dir, "DIR", "base model (Hugging Face directory)", 1, 0, NULL},
        {"data", ARG_STR, &o.data_path, "FILE", "training data (LLM-Adapters JSON or JSON Lines)", 1, 0, NULL},
        {"output", ARG_STR, &o.output_dir, "DIR", "where checkpoints, metrics and the adapter go", 1, 0, NULL},
        {"cutoff-len", ARG_INT, &o.data.cutoff_len, "N", "truncate examples to N tokens (default 256)", 0, 0,
         "max-seq-length"},
        {"train-on-inputs", ARG_STR, &train_inputs, "BOOL", "take loss on the prompt too (default true)", 0, 0, NULL},
        {"no-shuffle", ARG_FLAG, &no_shuffle, NULL, "keep file order", 0, 0, NULL},
        {"val-set-size", ARG_INT, &o.val_set_size, "N", "hold out N random records for validation (default 0)", 0, 0, NULL},
        {"skip-bad-records", ARG_FLAG, &o.skip_bad_records, NULL, "skip malformed records with a warning", 0, 0, NULL},
        {"method", ARG_STR, &method, "NAME", method_help, 0, 0, NULL},
        {"param-budget", ARG_FLOAT, &budget, "F", "pick the rank whose size is closest to F x the base model", 0, 0, NULL},
        {"dls", ARG_FLAG, &dls, NULL, "dynamic layer selection, with any method (on with --method rosa)", 0, 0, NULL},
        {"dls-interval", ARG_INT, &d->interval, "U", "DLS: reselect every U steps (default 50)", 0, 0, NULL},
        {"dls-warmup", ARG_INT, &d->warmup, "N", "DLS: all layers train for the first N steps (default U)", 0, 0, NULL},
        {"dls-k-ratio", ARG_FLOAT, &d->k_ratio, "F", "DLS: share of layers active (default 0.5)", 0, 0, NULL},
        {"dls-p-exploit", ARG_FLOAT, &d->p_exploit, "P", "DLS: probability of top-k over random (default 0.8)", 0, 0, NULL},
        {"dls-score-ema", ARG_FLOAT, &d->score_ema, "B", "DLS: EMA of scores (default 0: latest only)", 0, 0, NULL},
        {"dls-inactive", ARG_STR, &dls_inactive, "MODE", "DLS: skip (default) or zero-grad", 0, 0, NULL},
        {"dls-full-backward", ARG_FLAG, &d->full_backward, NULL, "DLS: never truncate the backward pass", 0, 0, NULL},
        {"lr", ARG_FLOAT, &o.adam.lr, "LR", "peak learning rate (default 3e-4)", 0, 0, "learning-rate"},
        {"adam-beta1", ARG_FLOAT, &o.adam.beta1, "B", "AdamW beta1 (default 0.9)", 0, 0, NULL},
        {"adam-beta2", ARG_FLOAT, &o.adam.beta2, "B", "AdamW beta2 (default 0.999)", 0, 0, NULL},
        {"adam-eps", ARG_FLOAT, &o.adam.eps, "E", "AdamW epsilon (default 1e-8)", 0, 0, NULL},
        {"weight-decay", ARG_FLOAT, &o.adam.weight_decay, "W", "decoupled weight decay (default 0)", 0, 0, NULL},
        {"max-grad-norm", ARG_FLOAT, &o.max_grad_norm, "X", "clip the gradient norm (default 1; 0 = off)", 0, 0, NULL},
        {"loss-norm", ARG_STR, &loss_norm, "MODE", "mean (per micro-batch, HF Trainer) or token", 0, 0, NULL},
        {"lr-scheduler", ARG_STR, &sched, "NAME", "linear (default), cosine or constant", 0, 0, "lr-scheduler-type"},
        {"warmup-steps", ARG_INT, &o.warmup_steps, "N", "linear warm-up steps (default 100)", 0, 0, NULL},
        {"warmup-ratio", ARG_DOUBLE, &o.warmup_ratio, "F",
         "warm-up as a share of the run, ceil(F x steps) as HF Trainer (instead of --warmup-steps)", 0, 0, NULL},
        {"batch-size", ARG_INT, &o.batch_size, "N", "examples per optimizer step (default 16)", 0, 0, NULL},
        {"micro-batch-size", ARG_INT, &o.micro_batch_size, "N", "examples per forward pass (default 4)", 0, 0,
         "per-device-train-batch-size"},
        {"gradient-accumulation-steps", ARG_INT, &grad_accum, "N",
         "HF's name for the batch as micro-batches: --batch-size = N x --micro-batch-size", 0, 0, NULL},
        {"epochs", ARG_INT, &o.epochs, "N", "passes over the data (default 3)", 0, 0, "num-train-epochs"},
        {"max-steps", ARG_INT, &o.max_steps, "N", "optimizer steps (overrides --epochs)", 0, 0, NULL},
        {"seed", ARG_U64, &o.seed, "S", "seed of everything random (default 42)", 0, 0, NULL},
        {"eval-steps", ARG_INT, &o.eval_steps, "N", "validate every N steps (default 200; 0: at the end only)", 0, 0, NULL},
        {"save-steps", ARG_INT, &o.save_steps, "N", "checkpoint every N steps (default 200; 0: at the end only)", 0, 0, NULL},
        {"save-total-limit", ARG_INT, &o.save_total_limit, "N",
         "keep only the newest N checkpoints (default 0: all)", 0, 0, NULL},
        {"load-best-model-at-end", ARG_FLAG, &o.load_best_model_at_end, NULL,
         "keep the checkpoint of the lowest validation loss; it becomes the final adapter", 0, 0, NULL},
        {"init-adapter", ARG_STR, &o.init_adapter, "DIR", "start from this adapter's weights", 0, 0, NULL},
        {"resume", ARG_FLAG, &o.resume, NULL, "continue from the newest checkpoint in --output", 0, 0, NULL},
        {"overwrite", ARG_FLAG, &o.overwrite, NULL, "start over in an --output that holds a run", 0, 0, NULL},
        {"base-model-name", ARG_STR, &o.base_model_name, "ID",
         "base_model_name_or_path to record, e.g. a hub id (default: --model as an absolute path)", 0, 0, NULL},
        {"nan-policy", ARG_STR, &nan_policy, "stop|skip", "on a non-finite loss (default stop)", 0, 0, NULL},
        {"max-memory", ARG_STR, &max_mem, "SIZE", "refuse to start when the memory plan exceeds SIZE (e.g. 8G; default: MemAvailable)", 0, 0, NULL},
        {"dtype", ARG_STR, &dtype, "fp32|bf16", "bf16: frozen matrix products in BF16, FP32 accumulation (default fp32)", 0, 0, NULL},
        {"bf16", ARG_FLAG, &bf16, NULL, "the same as --dtype bf16", 0, 0, NULL},
        {"quantize", ARG_STR, &quantize, "none|int8", QUANTIZE_HELP, 0, 0, NULL},
        {"recompute", ARG_FLAG, &o.recompute, NULL, "keep only each layer's input, recompute the rest in the backward", 0, 0,
         "gradient-checkpointing"},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0, NULL},
        {"log-format", ARG_STR, &log_format, "tty|plain", "progress display (default: tty on a terminal)", 0, 0, NULL},
        {"quiet", ARG_FLAG, &o.quiet, NULL, "no progress output", 0, 0, NULL},
    };
    enum { N_COMMON = sizeof common / sizeof common[0] };
    arg_spec specs[N_COMMON + MAX_METHOD_OPTS + 1];
    /* The method's options come right after --method in the help. */
    int M = 0; /* the index after --method */
    while (strcmp(common[M++].name, "method") != 0) {}
    memcpy(specs, common, sizeof(arg_spec) * M);
    memcpy(specs + M, ma.specs, sizeof(arg_spec) * (size_t)ma.n);
    memcpy(specs + M + ma.n, common + M, sizeof(arg_spec) * (N_COMMON - M));
    memset(&specs[N_COMMON + ma.n], 0, sizeof specs[0]);
    static const struct arg_section sections[] = {
        {"model", "model and data"}, {"method", "method"},       {"dls", "dynamic layer selection (DLS)"},
        {"lr", "optimizer"},         {"lr-scheduler", "schedule"}, {"eval-steps", "validation and checkpoints"},
        {"max-memory", "runtime"},   {NULL, NULL},
    };
    arg_parser p = {"train", "--model DIR --data FILE --output DIR [options]",
                    "Fine-tunes an adapter on a frozen base model and saves it in PEFT format.", specs, NULL, NULL, NULL};
    p.sections = sections;
    if (check_foreign_options(o.method, method, argc, argv) < 0) return 2;
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    void *opts = rosa_peft_opts_new(o.method, NULL);
    if (!opts) return die_msg("%s", rosa_last_error()), 1;
    int status = 2;
    if (method_apply(o.method, &ma, specs + M, opts) < 0) goto done;
    o.method_opts = opts;
    if (o.init_adapter && check_init_adapter(&o, &ma, specs + M, specs) < 0) goto done;
    d->enabled = dls || with_dls;
    if (!arg_seen(specs, "dls-warmup")) d->warmup = d->interval;
    if (strcmp(dls_inactive, "skip") && strcmp(dls_inactive, "zero-grad")) {
        die_msg("--dls-inactive expects skip or zero-grad");
        goto done;
    }
    d->zero_grad = strcmp(dls_inactive, "zero-grad") == 0;
    d->seed = o.seed;
    if (!d->enabled && (arg_seen(specs, "dls-interval") || arg_seen(specs, "dls-warmup") || arg_seen(specs, "dls-k-ratio") ||
                        arg_seen(specs, "dls-p-exploit") || arg_seen(specs, "dls-score-ema") || arg_seen(specs, "dls-inactive") ||
                        d->full_backward)) {
        die_msg("--dls-* options need --dls (or --method rosa)");
        goto done;
    }
    if (arg_seen(specs, "param-budget") && !(budget > 0.0f && budget < 1.0f)) {
        die_msg("--param-budget %g must be a fraction of the base model in (0, 1)", (double)budget);
        goto done;
    }
    if (arg_seen(specs, "param-budget") && arg_seen(specs, "rank")) {
        die_msg("rosa train: --param-budget and --rank both set the rank: give one");
        goto done;
    }
    if (arg_seen(specs, "warmup-ratio") && arg_seen(specs, "warmup-steps")) {
        die_msg("rosa train: --warmup-ratio and --warmup-steps both set the warm-up: give one");
        goto done;
    }
    if (arg_seen(specs, "gradient-accumulation-steps")) {
        if (arg_seen(specs, "batch-size")) {
            die_msg("rosa train: --gradient-accumulation-steps and --batch-size both set the batch: give one");
            goto done;
        }
        if (grad_accum <= 0 || o.micro_batch_size <= 0 || grad_accum > INT_MAX / o.micro_batch_size) {
            die_msg("--gradient-accumulation-steps %d with --micro-batch-size %d: expected two positive counts whose product fits an int",
                    grad_accum, o.micro_batch_size);
            goto done;
        }
        o.batch_size = grad_accum * o.micro_batch_size;
    }
    int chosen = budget > 0 ? choose_rank(&o, opts, budget) : 0;
    if (chosen < 0) {
        status = chosen == -2 ? 2 : 1;
        goto done;
    }
    if (rosa_parse_schedule(sched, &o.schedule) < 0) {
        die_msg("--lr-scheduler: %s", rosa_last_error());
        goto done;
    }
    if (arg_parse_bool("train-on-inputs", train_inputs, &o.data.train_on_inputs) < 0) goto done;
    if (strcmp(loss_norm, "mean") == 0) o.loss_norm = ROSA_LOSS_MEAN;
    else if (strcmp(loss_norm, "token") == 0) o.loss_norm = ROSA_LOSS_TOKEN;
    else {
        die_msg("--loss-norm expects mean or token");
        goto done;
    }
    if (strcmp(nan_policy, "stop") == 0) o.nan_policy = ROSA_NAN_STOP;
    else if (strcmp(nan_policy, "skip") == 0) o.nan_policy = ROSA_NAN_SKIP;
    else {
        die_msg("--nan-policy expects stop or skip");
        goto done;
    }
    if (max_mem && arg_parse_size("max-memory", max_mem, &o.max_memory) < 0) goto done;
    if (log_format) {
        if (strcmp(log_format, "plain") == 0) o.plain_log = 1;
        else if (strcmp(log_format, "tty") != 0) {
            die_msg("--log-format expects tty or plain");
            goto done;
        }
    }
    if (bf16 && arg_seen(specs, "dtype")) {
        die_msg("rosa train: --bf16 and --dtype are the same option: give one");
        goto done;
    }
    if (parse_dtype(bf16 ? "bf16" : dtype, &o.compute) < 0 || parse_quantize(quantize, o.compute, &o.quantize) < 0)
        goto done;
    o.shuffle = !no_shuffle;
    if (rosa_train_options_check(&o) < 0) { /* a value out of range is a usage error */
        die_msg("%s", rosa_last_error());
        goto done;
    }
    /* Warned, not refused: a short test run with a long warm-up is legitimate. */
    if (arg_seen(specs, "warmup-ratio") && o.warmup_ratio >= 1.0)
        fprintf(stderr, "rosa: warning: --warmup-ratio %g: the whole run is warm-up; the learning rate never reaches its "
                        "peak\n", o.warmup_ratio);
    else if (!arg_seen(specs, "warmup-ratio") && arg_seen(specs, "max-steps") && o.max_steps > 0 &&
             o.warmup_steps >= o.max_steps)
        fprintf(stderr, "rosa: warning: --warmup-steps %d is not shorter than the run (--max-steps %d): the learning rate "
                        "never reaches its peak\n", o.warmup_steps, o.max_steps);
    if (take_stop_signals() < 0) {
        die_msg("cannot set up the handling of SIGINT and SIGTERM");
        status = 1;
        goto done;
    }
    if (take_threads(specs, threads) < 0) goto done;
    /* The command line for training_args.json. */
    char **cl = malloc(sizeof(char *) * (size_t)(argc + 2));
    if (!cl) {
        die_msg("out of memory");
        status = 1;
        goto done;
    }
    cl[0] = "rosa", cl[1] = "train";
    memcpy(cl + 2, argv, sizeof(char *) * (size_t)argc);
    o.argc = argc + 2, o.argv = cl;
    rosa_train_result res;
    int trc = rosa_train(&o, &res);
    free(cl);
    if (trc < 0) {
        die_msg("%s", rosa_last_error());
        status = 1;
    } else {
        status = res.interrupted ? 130 : 0; /* 128 + SIGINT, as a shell reports an interrupted command */
    }
done:
    rosa_peft_opts_free(o.method, opts);
    return status;
}

int cmd_loss(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *data = NULL, *train_inputs = "true", *dtype = "fp32",
               *quantize = "none";
    int per_example = 0, json = 0, skip_bad = 0, micro = 4, threads = 0, limit = 0, quiet = 0, plain = 0;
    const char *log_format = NULL;
    rosa_data_options d;
    rosa_data_options_default(&d);
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "base model", 1, 0, NULL},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "adapter to apply", 0, 0, NULL},
        {"data", ARG_STR, &data, "FILE", "data (LLM-Adapters JSON or JSON Lines)", 1, 0, NULL},
        {"cutoff-len", ARG_INT, &d.cutoff_len, "N", "truncate examples to N tokens (default 256)", 0, 0, NULL},
        {"train-on-inputs", ARG_STR, &train_inputs, "BOOL", "take loss on the prompt too (default true)", 0, 0, NULL},
        {"micro-batch-size", ARG_INT, &micro, "N", "examples per forward pass (default 4; results do not depend on it)", 0, 0, NULL},
        {"skip-bad-records", ARG_FLAG, &skip_bad, NULL, "skip malformed records with a warning", 0, 0, NULL},
        {"limit", ARG_INT, &limit, "N", "only the first N records", 0, 0, NULL},
        {"per-example", ARG_FLAG, &per_example, NULL, "also print each record's loss", 0, 0, NULL},
        {"json", ARG_FLAG, &json, NULL, "print JSON", 0, 0, NULL},
        {"dtype", ARG_STR, &dtype, "fp32|bf16", "matrix products of the frozen model (default fp32)", 0, 0, NULL},
        {"quantize", ARG_STR, &quantize, "none|int8", QUANTIZE_HELP, 0, 0, NULL},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0, NULL},
        {"log-format", ARG_STR, &log_format, "tty|plain", "progress display (default: tty on a terminal)", 0, 0, NULL},
        {"quiet", ARG_FLAG, &quiet, NULL, "no progress output", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"loss", "--model DIR [--adapter DIR] --data FILE [options]",
                    "Prints the token-weighted mean loss and the mean of per-example losses of a data set.", specs, NULL,
                    NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (arg_parse_bool("train-on-inputs", train_inputs, &d.train_on_inputs) < 0) return 2;
    if (micro < 1) return die_msg("--micro-batch-size must be >= 1"), 2;
    if (log_format && strcmp(log_format, "plain") && strcmp(log_format, "tty")) return die_msg("--log-format expects tty or plain"), 2;
    plain = log_format && strcmp(log_format, "plain") == 0;
    rosa_dtype compute;
    rosa_quant quant;
    if (parse_dtype(dtype, &compute) < 0 || parse_quantize(quantize, compute, &quant) < 0) return 2;
    if (take_threads(specs, threads) < 0) return 2;
    if (arg_seen(specs, "limit") && limit < 1) return die_msg("--limit must be >= 1, got %d", limit), 2;
    int status = 1;
    rosa_records recs = {0};
    rosa_dataset ds = {0};
    rosa_adapter *a = NULL;
    rosa_train_ctx *tm = NULL;
    int32_t *idx = NULL;
    double *per = NULL;
    rosa_model *m = rosa_model_load(model_dir);
    if (!m || rosa_model_quantize(m, quant) < 0 || rosa_model_set_compute_inference(m, compute) < 0) goto fail;
    if (!rosa_model_tokenizer(m)) {
        rosa_fail("%s: the model directory has no tokenizer.json", model_dir);
        goto fail;
    }
    if (adapter_dir && !(a = rosa_adapter_load(adapter_dir, rosa_model_config(m)))) goto fail;
    if (rosa_records_load(data, skip_bad, &recs) < 0) goto fail;
    if (limit > 0) rosa_records_truncate(&recs, limit);
    if (rosa_dataset_tokenize(rosa_model_tokenizer(m), &recs, &d, &ds) < 0) goto fail;
    int Tmax = 1;
    for (int i = 0; i < ds.n; i++)
        if (ds.ex[i].n > Tmax) Tmax = ds.ex[i].n;
    tm = rosa_train_ctx_new(m, a, micro, Tmax, 0);
    idx = rosa_malloc(sizeof(int32_t) * (size_t)(ds.n ? ds.n : 1), "indices");
    per = rosa_malloc(sizeof(double) * (size_t)(ds.n ? ds.n : 1), "losses");
    if (!tm || !idx || !per) goto fail;
    for (int i = 0; i < ds.n; i++) idx[i] = i;
    /* Chunks of records, for the progress line; the means are taken at the end. */
    rosa_progress prog;
    rosa_progress_start(&prog, "loss", ds.n, 0, quiet, plain);
    double tok_sum = 0.0, ex_sum = 0.0, token_mean, example_mean;
    long long tok_n = 0;
    int ex_n = 0, chunk = micro * 4;
    for (int i = 0; i < ds.n; i += chunk) {
        int n = ds.n - i < chunk ? ds.n - i : chunk;
        double unused_token, unused_example;
        long long toks = 0;
        if (rosa_eval_loss(tm, &ds, idx + i, n, micro, &unused_token, &unused_example, per + i) < 0) {
            rosa_progress_end(&prog);
            goto fail;
        }
        for (int k = i; k < i + n; k++) {
            int c = 0;
            for (int t = 1; t < ds.ex[k].n; t++) c += ds.ex[k].labels[t] != ROSA_IGNORE_INDEX;
            if (c) {
                tok_sum += per[k] * c;
                ex_sum += per[k];
                ex_n++;
            }
            tok_n += c;
            toks += ds.ex[k].n;
        }
        char extra[48];
        snprintf(extra, sizeof extra, "loss %.4f", tok_n ? tok_sum / (double)tok_n : 0.0);
        rosa_progress_update_rate(&prog, i + n, toks, "tok/s", extra);
    }
    rosa_progress_end(&prog);
    token_mean = tok_n ? tok_sum / (double)tok_n : NAN;
    example_mean = ex_n ? ex_sum / ex_n : NAN;
    if (json) {
        /* JSON has no NaN or infinity: a loss without label tokens, or a
         * non-finite one, is null. */
        printf("{\"records\": %d, \"token_mean_loss\": ", ds.n);
        print_json_number(token_mean);
        printf(", \"example_mean_loss\": ");
        print_json_number(example_mean);
        if (per_example) {
            printf(", \"per_example\": [");
            for (int i = 0; i < ds.n; i++) {
                if (i) printf(", ");
                print_json_number(per[i]);
            }
            printf("]");
        }
        printf("}\n");
    } else {
        printf("records            %d\n", ds.n);
        printf("token-mean loss    %.6f\n", token_mean);
        printf("example-mean loss  %.6f\n", example_mean);
        for (int i = 0; per_example && i < ds.n; i++) printf("record %d  %.6f\n", i, per[i]);
    }
    status = 0;
    goto done;
fail:
    die_msg("%s", rosa_last_error());
done:
    free(idx);
    free(per);
    rosa_train_ctx_free(tm);
    rosa_dataset_free(&ds);
    rosa_records_free(&recs);
    rosa_adapter_free(a);
    rosa_model_free(m);
    return status;
}

/* A --max-shard-size in transformers' units: KB, MB, GB, TB are powers of
 * 1000, KiB, MiB, GiB, TiB of 1024 (any case), a bare number is bytes. */
static int parse_shard_size(const char *v, uint64_t *out) {
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1},         {"B", 1},         {"KB", 1e3},           {"MB", 1e6},
                 {"GB", 1e9},     {"TB", 1e12},     {"KIB", 1024.0},       {"MIB", 1048576.0},
                 {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
    char *end;
    double x = strtod(v, &end);
    for (size_t i = 0; end != v && i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].unit) == 0 && x * units[i].mul >= 1 && x * units[i].mul < 1.8e19) {
            *out = (uint64_t)(x * units[i].mul);
            return 0;
        }
    die_msg("--max-shard-size expects a size such as 5GB (10^9 bytes), 2GiB (2^30) or 500MB, got \"%s\"", v);
    return -1;
}

int cmd_merge(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *shard = "5GB", *dtype = "auto";
    rosa_merge_options mo;
    rosa_merge_options_default(&mo);
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "base model", 1, 0, NULL},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "adapter to merge (a method that can: LoRA)", 1, 0, NULL},
        {"output", ARG_STR, &out, "DIR", "the merged model directory to write", 1, 0, NULL},
        {"max-shard-size", ARG_STR, &shard, "SIZE",
         "largest weight file before sharding, as transformers (default 5GB = 5*10^9 bytes; GiB = 2^30)", 0, 0, NULL},
        {"dtype", ARG_STR, &dtype, "auto|fp32|fp16|bf16", "dtype of the saved weights (auto: as the base stores them)",
         0, 0, NULL},
        {"overwrite", ARG_FLAG, &mo.overwrite, NULL, "write into an --output that holds files", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"merge", "--model DIR --adapter DIR --output DIR",
                    "Writes a model directory with the adapter folded into the weights (LoRA: W + s B A), and every "
                    "other file of the base (tokenizer, chat template, licence) copied.", specs, NULL,
                    NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (parse_shard_size(shard, &mo.max_shard_size) < 0) return 2;
    if (strcmp(dtype, "auto") == 0) mo.dtype = -1;
    else if (strcmp(dtype, "fp32") == 0 || strcmp(dtype, "f32") == 0 || strcmp(dtype, "float32") == 0) mo.dtype = ROSA_DTYPE_F32;
    else if (strcmp(dtype, "fp16") == 0 || strcmp(dtype, "f16") == 0 || strcmp(dtype, "float16") == 0) mo.dtype = ROSA_DTYPE_F16;
    else if (strcmp(dtype, "bf16") == 0 || strcmp(dtype, "bfloat16") == 0) mo.dtype = ROSA_DTYPE_BF16;
    else return die_msg("--dtype expects auto, fp32, fp16 or bf16, got \"%s\"", dtype), 2;
    rosa_model *m = rosa_model_load(model_dir);
    rosa_adapter *a = m ? rosa_adapter_load(adapter_dir, rosa_model_config(m)) : NULL;
    int rc = a ? rosa_adapter_merge_write(m, model_dir, a, out, &mo) : -1;
    if (rc < 0) die_msg("%s", rosa_last_error());
    else printf("merged model written to %s\n", out);
    rosa_adapter_free(a);
    rosa_model_free(m);
    return rc < 0 ? 1 : 0;
}
