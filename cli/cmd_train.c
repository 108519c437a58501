/* cmd_train.c: `rosa train`, `rosa loss` and `rosa merge`. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "io/config.h"
#include "model/model.h"
#include "rosa.h"
#include "train/merge.h"
#include "core/progress.h"
#include "train/trainer.h"
#include "core/util.h"

static void on_signal(int sig) {
    (void)sig;
    rosa_train_interrupted = 1;
}

int parse_dtype(const char *v, rosa_dtype *out) {
    if (strcmp(v, "fp32") == 0 || strcmp(v, "f32") == 0) *out = ROSA_DTYPE_F32;
    else if (strcmp(v, "bf16") == 0) *out = ROSA_DTYPE_BF16;
    else {
        die_msg("--dtype expects fp32 or bf16, got \"%s\"", v);
        return -1;
    }
    return 0;
}

int parse_bool(const char *flag, const char *v, int *out) {
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0) *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0) *out = 0;
    else {
        die_msg("--%s expects true or false, got \"%s\"", flag, v);
        return -1;
    }
    return 0;
}

/* "0,3,5" -> malloc'ed ints. */
static int parse_int_list(const char *flag, const char *s, int **out, int *n) {
    int32_t *ids;
    if (parse_id_list(s, &ids, n) < 0 || *n == 0) {
        die_msg("--%s expects a list of integers like 0,2,5", flag);
        return -1;
    }
    *out = (int *)ids;
    return 0;
}

/* "8G", "512M", "1.5GiB" -> bytes. */
static int parse_size(const char *flag, const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824.0, end++;
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (end == s || *end || !(v > 0)) {
        die_msg("--%s expects a size like 8G or 512M, got \"%s\"", flag, s);
        return -1;
    }
    *out = v * mul;
    return 0;
}

/* --param-budget: the rank whose trainable parameters are closest to the
 * fraction of the base model (ties: the smaller rank). */
static int choose_rank(rosa_train_options *o, float budget) {
    rosa_config c;
    if (rosa_config_load(o->model_dir, &c) < 0) return die_msg("%s", rosa_last_error()), -1;
    /* Base parameters, tied embeddings counted once. */
    int64_t D = c.hidden_size, F = c.intermediate_size, Q = (int64_t)c.num_heads * c.head_dim,
            K = (int64_t)c.num_kv_heads * c.head_dim, V = c.vocab_size;
    int64_t layer = 2 * D + D * Q + 2 * D * K + Q * D + 3 * D * F;
    if (c.attention_bias) layer += Q + 2 * K + D;
    else if (c.qkv_bias) layer += Q + 2 * K;
    if (c.mlp_bias) layer += 2 * F + D;
    int64_t base = V * D * (c.tie_word_embeddings ? 1 : 2) + D + layer * c.num_layers;
    double target = budget * (double)base, best_err = INFINITY;
    int best = 1;
    for (int r = 1; r <= 4096; r++) {
        int64_t n = o->method == ROSA_METHOD_ROAE ? rosa_roae_num_params(&c, &o->roae, r)
                                                   : rosa_lora_num_params(&c, &o->lora, r);
        double err = fabs((double)n - target);
        if (err < best_err) best_err = err, best = r;
    }
    o->lora.rank = o->roae.rank = best;
    if (!o->quiet) fprintf(stderr, "rosa: --param-budget %g: rank %d\n", budget, best);
    return 0;
}

int cmd_train(int argc, char **argv) {
    rosa_train_options o;
    rosa_train_options_default(&o);
    const char *method = "lora", *targets = NULL, *layers = NULL, *sched = "linear", *train_inputs = "true",
               *loss_norm = "mean", *nan_policy = "stop", *max_mem = NULL, *log_format = NULL, *roae_targets = "q,k",
               *placement = "post-rope", *form = "gate", *dls_inactive = "skip", *dtype = "fp32";
    int threads = 0, no_shuffle = 0, rank = 0, dls = 0, train_norms = 0;
    float alpha = NAN, dropout = NAN, r_low = 0.25f, budget = 0.0f;
    rosa_dls_options *d = &o.dls;
    arg_spec specs[] = {
        {"model", ARG_STR, &o.model_dir, "DIR", "base model (Hugging Face directory)", 1, 0},
        {"data", ARG_STR, &o.data_path, "FILE", "training data (LLM-Adapters JSON or JSON Lines)", 1, 0},
        {"output", ARG_STR, &o.output_dir, "DIR", "where checkpoints, metrics and the adapter go", 1, 0},
        {"method", ARG_STR, &method, "NAME", "lora (default), roae, or rosa (= roae + DLS)", 0, 0},
        {"target-modules", ARG_STR, &targets, "LIST", "LoRA modules, e.g. q_proj,v_proj (default) or all", 0, 0},
        {"rank", ARG_INT, &rank, "R", "adapter rank (default: LoRA 8, RoAE 32)", 0, 0},
        {"param-budget", ARG_FLOAT, &budget, "F", "pick the rank whose size is closest to F x the base model", 0, 0},
        {"alpha", ARG_FLOAT, &alpha, "A", "LoRA: scaling alpha/r (default 16); RoAE: gate scale (default 1)", 0, 0},
        {"rslora", ARG_FLAG, &o.lora.rslora, NULL, "LoRA: scale by alpha/sqrt(r) instead", 0, 0},
        {"dropout", ARG_FLOAT, &dropout, "P", "dropout on the adapter input (default: LoRA 0.05, RoAE 0)", 0, 0},
        {"layers", ARG_STR, &layers, "LIST", "LoRA: adapt only these layers, e.g. 0,1,2", 0, 0},
        {"r-low", ARG_FLOAT, &r_low, "F", "RoAE: share of each head's dimensions adapted (default 0.25)", 0, 0},
        {"roae-targets", ARG_STR, &roae_targets, "q,k|q|k", "RoAE: states modulated (default q,k)", 0, 0},
        {"roae-placement", ARG_STR, &placement, "WHERE", "RoAE: post-rope (default) or pre-rope", 0, 0},
        {"roae-form", ARG_STR, &form, "FORM", "RoAE: gate (default, Z + Z*alpha*SiLU(hAB)) or add", 0, 0},
        {"train-norms", ARG_FLAG, &train_norms, NULL, "RoAE: also train the RMSNorm weights of active layers", 0, 0},
        {"dls", ARG_FLAG, &dls, NULL, "dynamic layer selection (on with --method rosa)", 0, 0},
        {"dls-interval", ARG_INT, &d->interval, "U", "DLS: reselect every U steps (default 50)", 0, 0},
        {"dls-warmup", ARG_INT, &d->warmup, "N", "DLS: all layers train for the first N steps (default U)", 0, 0},
        {"dls-k-ratio", ARG_FLOAT, &d->k_ratio, "F", "DLS: share of layers active (default 0.5)", 0, 0},
        {"dls-p-exploit", ARG_FLOAT, &d->p_exploit, "P", "DLS: probability of top-k over random (default 0.8)", 0, 0},
        {"dls-score-ema", ARG_FLOAT, &d->score_ema, "B", "DLS: EMA of scores (default 0: latest only)", 0, 0},
        {"dls-inactive", ARG_STR, &dls_inactive, "MODE", "DLS: skip (default) or zero-grad", 0, 0},
        {"dls-full-backward", ARG_FLAG, &d->full_backward, NULL, "DLS: never truncate the backward pass", 0, 0},
        {"lr", ARG_FLOAT, &o.adam.lr, "LR", "peak learning rate (default 3e-4)", 0, 0},
        {"adam-beta1", ARG_FLOAT, &o.adam.beta1, "B", "AdamW beta1 (default 0.9)", 0, 0},
        {"adam-beta2", ARG_FLOAT, &o.adam.beta2, "B", "AdamW beta2 (default 0.999)", 0, 0},
        {"adam-eps", ARG_FLOAT, &o.adam.eps, "E", "AdamW epsilon (default 1e-8)", 0, 0},
        {"weight-decay", ARG_FLOAT, &o.adam.weight_decay, "W", "decoupled weight decay (default 0)", 0, 0},
        {"lr-scheduler", ARG_STR, &sched, "NAME", "linear (default), cosine or constant", 0, 0},
        {"warmup-steps", ARG_INT, &o.warmup_steps, "N", "linear warm-up steps (default 100)", 0, 0},
        {"batch-size", ARG_INT, &o.batch_size, "N", "examples per optimizer step (default 16)", 0, 0},
        {"micro-batch-size", ARG_INT, &o.micro_batch_size, "N", "examples per forward pass (default 4)", 0, 0},
        {"epochs", ARG_INT, &o.epochs, "N", "passes over the data (default 3)", 0, 0},
        {"max-steps", ARG_INT, &o.max_steps, "N", "optimizer steps (overrides --epochs)", 0, 0},
        {"max-grad-norm", ARG_FLOAT, &o.max_grad_norm, "X", "clip the gradient norm (default 1; 0 = off)", 0, 0},
        {"seed", ARG_U64, &o.seed, "S", "seed of everything random (default 42)", 0, 0},
        {"cutoff-len", ARG_INT, &o.data.cutoff_len, "N", "truncate examples to N tokens (default 256)", 0, 0},
        {"train-on-inputs", ARG_STR, &train_inputs, "BOOL", "take loss on the prompt too (default true)", 0, 0},
        {"no-shuffle", ARG_FLAG, &no_shuffle, NULL, "keep file order", 0, 0},
        {"val-set-size", ARG_INT, &o.val_set_size, "N", "hold out N random records for validation (default 0)", 0, 0},
        {"eval-steps", ARG_INT, &o.eval_steps, "N", "validate every N steps (default 200)", 0, 0},
        {"save-steps", ARG_INT, &o.save_steps, "N", "checkpoint every N steps (default 200)", 0, 0},
        {"loss-norm", ARG_STR, &loss_norm, "MODE", "mean (per micro-batch, HF Trainer) or token", 0, 0},
        {"init-adapter", ARG_STR, &o.init_adapter, "DIR", "start from this adapter's weights", 0, 0},
        {"resume", ARG_FLAG, &o.resume, NULL, "continue from the newest checkpoint in --output", 0, 0},
        {"overwrite", ARG_FLAG, &o.overwrite, NULL, "start over in an --output that holds a run", 0, 0},
        {"nan-policy", ARG_STR, &nan_policy, "stop|skip", "on a non-finite loss (default stop)", 0, 0},
        {"skip-bad-records", ARG_FLAG, &o.skip_bad_records, NULL, "skip malformed records with a warning", 0, 0},
        {"max-memory", ARG_STR, &max_mem, "SIZE", "refuse to start above this much memory (e.g. 8G)", 0, 0},
        {"dtype", ARG_STR, &dtype, "fp32|bf16", "bf16: frozen matrix products in BF16, FP32 accumulation (default fp32)", 0, 0},
        {"recompute", ARG_FLAG, &o.recompute, NULL, "keep only each layer's input, recompute the rest in the backward", 0, 0},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0},
        {"log-format", ARG_STR, &log_format, "tty|plain", "progress display (default: tty on a terminal)", 0, 0},
        {"quiet", ARG_FLAG, &o.quiet, NULL, "no progress output", 0, 0},
        {0},
    };
    arg_parser p = {"train", "--model DIR --data FILE --output DIR [options]",
                    "Fine-tunes an adapter on a frozen base model and saves it in PEFT format.", specs, NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (strcmp(method, "lora") == 0) o.method = ROSA_METHOD_LORA;
    else if (strcmp(method, "roae") == 0 || strcmp(method, "rosa") == 0) o.method = ROSA_METHOD_ROAE;
    else return die_msg("--method: unknown method \"%s\" (available: lora, roae, rosa)", method), 2;
    int roae = o.method == ROSA_METHOD_ROAE;
    if (!roae && (train_norms || strcmp(placement, "post-rope") || strcmp(form, "gate") || strcmp(roae_targets, "q,k")))
        return die_msg("--train-norms and --roae-* apply to --method roae and rosa"), 2;
    if (roae && (targets || layers || o.lora.rslora))
        return die_msg("--target-modules, --layers and --rslora apply to --method lora"), 2;
    if (targets && rosa_parse_target_modules(targets, &o.lora.targets) < 0) return die_msg("--target-modules: %s", rosa_last_error()), 2;
    /* Method-dependent defaults (see docs/method.md). */
    o.lora.rank = o.roae.rank = rank > 0 ? rank : roae ? 32 : 8;
    if (rank < 0) return die_msg("--rank must be positive"), 2;
    o.lora.alpha = isnan(alpha) ? 16.0f : alpha;
    o.roae.alpha = isnan(alpha) ? 1.0f : alpha;
    o.lora.dropout = isnan(dropout) ? 0.05f : dropout;
    o.roae.dropout = isnan(dropout) ? 0.0f : dropout;
    o.roae.r_low = r_low;
    o.roae.train_norms = train_norms;
    if (strcmp(roae_targets, "q,k") == 0 || strcmp(roae_targets, "k,q") == 0) o.roae.target_q = o.roae.target_k = 1;
    else if (strcmp(roae_targets, "q") == 0) o.roae.target_q = 1, o.roae.target_k = 0;
    else if (strcmp(roae_targets, "k") == 0) o.roae.target_q = 0, o.roae.target_k = 1;
    else return die_msg("--roae-targets expects q,k or q or k"), 2;
    if (strcmp(placement, "post-rope") && strcmp(placement, "pre-rope")) return die_msg("--roae-placement expects post-rope or pre-rope"), 2;
    o.roae.pre_rope = strcmp(placement, "pre-rope") == 0;
    if (strcmp(form, "gate") && strcmp(form, "add")) return die_msg("--roae-form expects gate or add"), 2;
    o.roae.add_form = strcmp(form, "add") == 0;
    d->enabled = dls || strcmp(method, "rosa") == 0;
    if (!arg_seen(specs, "dls-warmup")) d->warmup = d->interval;
    if (strcmp(dls_inactive, "skip") && strcmp(dls_inactive, "zero-grad")) return die_msg("--dls-inactive expects skip or zero-grad"), 2;
    d->zero_grad = strcmp(dls_inactive, "zero-grad") == 0;
    d->seed = o.seed;
    if (!d->enabled && (arg_seen(specs, "dls-interval") || arg_seen(specs, "dls-warmup") || arg_seen(specs, "dls-k-ratio") ||
                        arg_seen(specs, "dls-p-exploit") || arg_seen(specs, "dls-score-ema") || arg_seen(specs, "dls-inactive") ||
                        d->full_backward))
        return die_msg("--dls-* options need --dls (or --method rosa)"), 2;
    int *layer_list = NULL;
    if (layers && parse_int_list("layers", layers, &layer_list, &o.lora.n_layers) < 0) return 2;
    o.lora.layers = layer_list;
    if (budget > 0 && choose_rank(&o, budget) < 0) return 1;
    if (rosa_parse_schedule(sched, &o.schedule) < 0) return die_msg("--lr-scheduler: %s", rosa_last_error()), 2;
    if (parse_bool("train-on-inputs", train_inputs, &o.data.train_on_inputs) < 0) return 2;
    if (strcmp(loss_norm, "mean") == 0) o.loss_norm = ROSA_LOSS_MEAN;
    else if (strcmp(loss_norm, "token") == 0) o.loss_norm = ROSA_LOSS_TOKEN;
    else return die_msg("--loss-norm expects mean or token"), 2;
    if (strcmp(nan_policy, "stop") == 0) o.nan_policy = ROSA_NAN_STOP;
    else if (strcmp(nan_policy, "skip") == 0) o.nan_policy = ROSA_NAN_SKIP;
    else return die_msg("--nan-policy expects stop or skip"), 2;
    if (max_mem && parse_size("max-memory", max_mem, &o.max_memory) < 0) return 2;
    if (log_format) {
        if (strcmp(log_format, "plain") == 0) o.plain_log = 1;
        else if (strcmp(log_format, "tty") != 0) return die_msg("--log-format expects tty or plain"), 2;
    }
    if (parse_dtype(dtype, &o.compute) < 0) return 2;
    if (o.data.cutoff_len < 2) return die_msg("--cutoff-len must be at least 2"), 2;
    if (o.warmup_steps < 0 || o.epochs < 1 || !(o.adam.lr >= 0)) return die_msg("--warmup-steps, --epochs and --lr must be positive"), 2;
    o.shuffle = !no_shuffle;
    rosa_set_threads(threads);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = rosa_train(&o);
    free(layer_list);
    if (rc < 0) return die_msg("%s", rosa_last_error()), 1;
    return rc;
}

int cmd_loss(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *data = NULL, *train_inputs = "true", *dtype = "fp32";
    int per_example = 0, json = 0, skip_bad = 0, micro = 4, threads = 0, limit = 0, quiet = 0, plain = 0;
    const char *log_format = NULL;
    rosa_data_options d;
    rosa_data_options_default(&d);
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "base model", 1, 0},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "adapter to apply", 0, 0},
        {"data", ARG_STR, &data, "FILE", "data (LLM-Adapters JSON or JSON Lines)", 1, 0},
        {"cutoff-len", ARG_INT, &d.cutoff_len, "N", "truncate examples to N tokens (default 256)", 0, 0},
        {"train-on-inputs", ARG_STR, &train_inputs, "BOOL", "take loss on the prompt too (default true)", 0, 0},
        {"micro-batch-size", ARG_INT, &micro, "N", "examples per forward pass (default 4; results do not depend on it)", 0, 0},
        {"skip-bad-records", ARG_FLAG, &skip_bad, NULL, "skip malformed records with a warning", 0, 0},
        {"limit", ARG_INT, &limit, "N", "only the first N records", 0, 0},
        {"per-example", ARG_FLAG, &per_example, NULL, "also print each record's loss", 0, 0},
        {"json", ARG_FLAG, &json, NULL, "print JSON", 0, 0},
        {"dtype", ARG_STR, &dtype, "fp32|bf16", "matrix products of the frozen model (default fp32)", 0, 0},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0},
        {"log-format", ARG_STR, &log_format, "tty|plain", "progress display (default: tty on a terminal)", 0, 0},
        {"quiet", ARG_FLAG, &quiet, NULL, "no progress output", 0, 0},
        {0},
    };
    arg_parser p = {"loss", "--model DIR [--adapter DIR] --data FILE [options]",
                    "Prints the token-weighted mean loss and the mean of per-example losses of a data set.", specs, NULL,
                    NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (parse_bool("train-on-inputs", train_inputs, &d.train_on_inputs) < 0) return 2;
    if (micro < 1) return die_msg("--micro-batch-size must be >= 1"), 2;
    if (log_format && strcmp(log_format, "plain") && strcmp(log_format, "tty")) return die_msg("--log-format expects tty or plain"), 2;
    plain = log_format && strcmp(log_format, "plain") == 0;
    rosa_dtype compute;
    if (parse_dtype(dtype, &compute) < 0) return 2;
    rosa_set_threads(threads);
    int status = 1;
    rosa_records recs = {0};
    rosa_dataset ds = {0};
    rosa_adapter *a = NULL;
    rosa_train_model *tm = NULL;
    int32_t *idx = NULL;
    double *per = NULL;
    rosa_model *m = rosa_model_load(model_dir);
    if (!m || rosa_model_set_compute(m, compute) < 0) goto fail;
    if (!rosa_model_tokenizer(m)) {
        rosa_fail("%s: the model directory has no tokenizer.json", model_dir);
        goto fail;
    }
    if (adapter_dir) {
        a = rosa_adapter_load(adapter_dir, &m->cfg);
    } else { /* no adapter: an empty LoRA (B = 0) leaves the model as it is */
        rosa_lora_options lo;
        rosa_lora_options_default(&lo);
        lo.rank = 1;
        lo.dropout = 0;
        lo.targets = 1u << MOD_Q;
        a = rosa_adapter_new_lora(&m->cfg, &lo, 0);
        if (a) memset(a->w, 0, sizeof(float) * a->n_floats);
    }
    if (!a) goto fail;
    if (rosa_records_load(data, skip_bad, &recs) < 0) goto fail;
    if (limit > 0) rosa_records_truncate(&recs, limit);
    if (rosa_dataset_tokenize(rosa_model_tokenizer(m), &recs, &d, &ds) < 0) goto fail;
    int Tmax = 1;
    for (int i = 0; i < ds.n; i++)
        if (ds.ex[i].n > Tmax) Tmax = ds.ex[i].n;
    tm = rosa_train_model_new(m, a, micro, Tmax, 0);
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
        printf("{\"records\": %d, \"token_mean_loss\": %.9g, \"example_mean_loss\": %.9g", ds.n, token_mean, example_mean);
        if (per_example) {
            printf(", \"per_example\": [");
            for (int i = 0; i < ds.n; i++) {
                if (isnan(per[i])) printf("%snull", i ? ", " : "");
                else printf("%s%.9g", i ? ", " : "", per[i]);
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
    rosa_train_model_free(tm);
    rosa_dataset_free(&ds);
    rosa_records_free(&recs);
    rosa_adapter_free(a);
    rosa_model_free(m);
    return status;
}

int cmd_merge(int argc, char **argv) {
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL;
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "base model", 1, 0},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "LoRA adapter to merge", 1, 0},
        {"output", ARG_STR, &out, "DIR", "the merged model directory to write", 1, 0},
        {0},
    };
    arg_parser p = {"merge", "--model DIR --adapter DIR --output DIR",
                    "Writes a model directory with the LoRA adapter folded into the weights (W + s B A).", specs, NULL,
                    NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    rosa_model *m = rosa_model_load(model_dir);
    rosa_adapter *a = m ? rosa_adapter_load(adapter_dir, &m->cfg) : NULL;
    int rc = a ? rosa_merge_write(m, model_dir, a, out) : -1;
    if (rc < 0) die_msg("%s", rosa_last_error());
    else printf("merged model written to %s\n", out);
    rosa_adapter_free(a);
    rosa_model_free(m);
    return rc < 0 ? 1 : 0;
}
