/* trainer.c: the training loop.
 *
 * Everything random is derived from --seed so that a run can be resumed
 * exactly from a checkpoint that stores only the step: the data order of
 * epoch e is a shuffle seeded by (seed, e), and the dropout masks of step s
 * come from a stream seeded by (seed, s). */
#include "trainer.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "core/progress.h"
#include "train/hf_state.h"
#include "train/metrics.h"
#include "train/run_record.h"
#include "train/train_ctx.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"

/* Set by rosa_train_request_stop (a signal handler or another thread: a
 * lock-free atomic is safe from both); read at the end of each step. */
static atomic_int stop_requested;

void rosa_train_request_stop(void) { atomic_store(&stop_requested, 1); }

void rosa_train_options_default(rosa_train_options *o) {
    memset(o, 0, sizeof *o);
    o->method = rosa_peft_find("lora", NULL);
    rosa_dls_options_default(&o->dls);
    rosa_adamw_options_default(&o->adam);
    o->schedule = ROSA_SCHED_LINEAR;
    o->warmup_steps = 100;
    o->batch_size = 16;
    o->micro_batch_size = 4;
    o->epochs = 3;
    o->max_grad_norm = 1.0f;
    o->seed = 42;
    rosa_data_options_default(&o->data);
    o->shuffle = 1;
    o->eval_steps = 200;
    o->save_steps = 200;
}

/* A 64-bit mix of two values (splitmix64 finaliser), for derived seeds. */
static uint64_t mix_seed(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
#define SHUFFLE_SALT 0x0DA7A000u /* epoch e shuffles with mix_seed(seed, SHUFFLE_SALT + e); fixed: runs repeat */
#define DROPOUT_SALT 0xD80Bu     /* step s drops out with DROPOUT_SALT + s: a shuffle seed only past 2e8 steps */

/* Label tokens of an example that carry loss (shifted targets, t >= 1). */
static int example_label_tokens(const rosa_example *e) {
    int n = 0;
    for (int t = 1; t < e->n; t++) n += e->labels[t] != ROSA_IGNORE_INDEX;
    return n;
}

typedef struct {
    const rosa_train_options *o;
    rosa_model *m;
    rosa_dataset data;
    int32_t *train_idx, *val_idx, *order;
    int n_train, n_val, order_epoch;
    int n_accum, steps_per_epoch;
    int64_t total_steps;
    int warmup_steps;         /* resolved: --warmup-steps, or --warmup-ratio of total_steps */
    rosa_adapter *a;
    rosa_adamw opt;
    rosa_train_ctx *tm;
    rosa_dls dls;             /* layer selection, when o->dls.enabled */
    uint8_t *param_active;    /* [n_params]: updated this step */
    rosa_step_plan plan;      /* what each micro-batch's pass does this step */
    float *raw_scores;        /* [L] */
    rosa_metrics *metrics;    /* metrics.jsonl (train/metrics.h) */
    char *metrics_path;
    char *base_model;         /* adapter_config.json base_model_name_or_path */
    int lock_fd;
    char *lock_path;          /* set while this run holds the lock: removed at the end */
    int Tmax;
    rosa_model_info mi;       /* the model's headers: the plan is made before it is loaded */
    rosa_memory_plan mem;
    /* Validation, as HF Trainer tracks it for load_best_model_at_end. */
    int has_best;
    double best_loss, last_val;
    int64_t best_step;        /* the checkpoint of best_loss (0: none) */
    int64_t new_best_at;      /* the step whose validation was a new best (0: none) */
} run;

/* The record indices of micro-batch j of step s. */
static const int32_t *micro_indices(run *r, int64_t s, int j) {
    int epoch = (int)(s / r->steps_per_epoch), group = (int)(s % r->steps_per_epoch);
    if (epoch != r->order_epoch) {
        memcpy(r->order, r->train_idx, sizeof(int32_t) * (size_t)r->n_train);
        if (r->o->shuffle) {
            rosa_rng rng;
            rosa_rng_seed(&rng, mix_seed(r->o->seed, SHUFFLE_SALT + (uint64_t)epoch));
            rosa_shuffle(r->order, r->n_train, &rng);
        }
        r->order_epoch = epoch;
    }
    return r->order + (size_t)group * r->o->batch_size + (size_t)j * r->o->micro_batch_size;
}

static int open_output(run *r) {
    const rosa_train_options *o = r->o;
    /* --overwrite clears the output and every run writes into it: an input
     * there (or around it) would be overwritten or deleted. */
    if (rosa_check_apart("--output", o->output_dir, "--init-adapter", o->init_adapter) < 0 ||
        rosa_check_apart("--output", o->output_dir, "--model", o->model_dir) < 0 ||
        rosa_check_apart("--output", o->output_dir, "--data", o->data_path) < 0)
        return -1;
    if (mkdir(o->output_dir, 0755) != 0 && errno != EEXIST)
        return rosa_fail("%s: cannot create output directory: %s", o->output_dir, strerror(errno));
    char *lock = rosa_path_join(o->output_dir, "train.lock");
    if (!lock) return -1;
    /* O_NOFOLLOW: a link there would make rosa create or lock a file elsewhere. */
    r->lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    int err = errno;
    if (r->lock_fd < 0) free(lock);
    if (r->lock_fd < 0 && err == ELOOP)
        return rosa_fail("%s/train.lock is a symbolic link: rosa does not write through links in an output directory "
                         "(remove it)", o->output_dir);
    if (r->lock_fd < 0) return rosa_fail("%s: cannot create train.lock: %s", o->output_dir, strerror(err));
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        free(lock);
        return rosa_fail("%s: another rosa train is writing to this directory", o->output_dir);
    }
    /* A run that ended removed its lock file: one that was opened before that and
     * locked after is no lock anymore (the path names a new file, or none). */
    struct stat held, now;
    if (fstat(r->lock_fd, &held) != 0 || lstat(lock, &now) != 0 || held.st_ino != now.st_ino || held.st_dev != now.st_dev) {
        free(lock);
        return rosa_fail("%s: another rosa train is writing to this directory (train.lock was replaced)", o->output_dir);
    }
    r->lock_path = lock;
    if (!o->resume && !o->overwrite && rosa_checkpoint_latest(o->output_dir, NULL) >= 0)
        return rosa_fail("%s already holds a training run: use --resume to continue it or --overwrite to start over",
                         o->output_dir);
    /* Starting over: the old run's checkpoints must not be resumed later
     * (tests/test_robustness_faults.c). */
    if (o->overwrite && !o->resume && rosa_checkpoint_clear(o->output_dir) < 0) return -1;
    return 0;
}

static int prepare_data(run *r, const rosa_tokenizer *tok) {
    const rosa_train_options *o = r->o;
    rosa_records recs;
    if (rosa_records_load(o->data_path, o->skip_bad_records, &recs) < 0) return -1;
    if (recs.n_bad && !o->quiet)
        rosa_log(ROSA_LOG_WARN, "%s: skipped %d bad records", o->data_path, recs.n_bad);
    int rc = rosa_dataset_tokenize(tok, &recs, &o->data, &r->data);
    rosa_records_free(&recs);
    if (rc < 0) return -1;
    if (o->val_set_size < 0 || o->val_set_size >= r->data.n)
        return rosa_fail("--val-set-size %d must be below the number of records (%d)", o->val_set_size, r->data.n);
    if (rosa_split_validation(r->data.n, o->val_set_size, o->seed, &r->train_idx, &r->n_train, &r->val_idx) < 0)
        return -1;
    r->n_val = o->val_set_size;
    r->n_accum = o->batch_size / o->micro_batch_size;
    r->steps_per_epoch = r->n_train / o->batch_size;
    if (r->steps_per_epoch == 0)
        return rosa_fail("%s: %d training records are fewer than one batch of %d", o->data_path, r->n_train,
                         o->batch_size);
    r->total_steps = o->max_steps > 0 ? o->max_steps : (int64_t)o->epochs * r->steps_per_epoch;
    r->warmup_steps = rosa_train_warmup_steps(o, r->total_steps);
    r->order = rosa_malloc(sizeof(int32_t) * (size_t)r->n_train, "data order");
    r->order_epoch = -1;
    r->Tmax = 1;
    for (int i = 0; i < r->data.n; i++)
        if (r->data.ex[i].n > r->Tmax) r->Tmax = r->data.ex[i].n;
    return r->order ? 0 : -1;
}

/* The adapter's structure: from --init-adapter (its values read, a size the
 * file bounds), else the method's table without values, so that the memory
 * plan is checked before anything that grows with it is allocated. */
int rosa_train_warmup_steps(const rosa_train_options *o, int64_t total_steps) {
    if (!(o->warmup_ratio > 0.0)) return o->warmup_steps;
    double w = ceil(o->warmup_ratio * (double)total_steps);
    return w < INT_MAX ? (int)w : INT_MAX;
}

int rosa_train_options_check(const rosa_train_options *o) {
    const rosa_adamw_options *a = &o->adam;
    /* torch.optim.AdamW's own checks, which PyTorch users get as errors. */
    if (!(a->lr >= 0.0f && isfinite(a->lr))) return rosa_fail("--lr %g must be a finite number >= 0", (double)a->lr);
    if (!(a->beta1 >= 0.0f && a->beta1 < 1.0f)) return rosa_fail("--adam-beta1 %g must be in [0, 1)", (double)a->beta1);
    if (!(a->beta2 >= 0.0f && a->beta2 < 1.0f)) return rosa_fail("--adam-beta2 %g must be in [0, 1)", (double)a->beta2);
    if (!(a->eps >= 0.0f && isfinite(a->eps))) return rosa_fail("--adam-eps %g must be a finite number >= 0", (double)a->eps);
    if (!(a->weight_decay >= 0.0f && isfinite(a->weight_decay)))
        return rosa_fail("--weight-decay %g must be a finite number >= 0", (double)a->weight_decay);
    if (!(o->max_grad_norm >= 0.0f && isfinite(o->max_grad_norm)))
        return rosa_fail("--max-grad-norm %g must be a finite number >= 0 (0: no clipping)", (double)o->max_grad_norm);
    if (o->batch_size < 1 || o->micro_batch_size < 1 || o->batch_size % o->micro_batch_size != 0)
        return rosa_fail("--batch-size %d must be a positive multiple of --micro-batch-size %d", o->batch_size,
                         o->micro_batch_size);
    if (o->warmup_steps < 0) return rosa_fail("--warmup-steps %d must be >= 0", o->warmup_steps);
    if (!(o->warmup_ratio >= 0.0 && o->warmup_ratio <= 1.0))
        return rosa_fail("--warmup-ratio %g must be in [0, 1]", o->warmup_ratio);
    if (o->max_steps < 0) return rosa_fail("--max-steps %d must be >= 0 (0: --epochs decides)", o->max_steps);
    if (o->max_steps == 0 && o->epochs < 1) return rosa_fail("--epochs %d must be >= 1", o->epochs);
    if (o->val_set_size < 0) return rosa_fail("--val-set-size %d must be >= 0", o->val_set_size);
    if (o->eval_steps < 0) return rosa_fail("--eval-steps %d must be >= 0 (0: at the end only)", o->eval_steps);
    if (o->save_steps < 0) return rosa_fail("--save-steps %d must be >= 0 (0: at the end only)", o->save_steps);
    if (o->save_total_limit < 0)
        return rosa_fail("--save-total-limit %d must be >= 0 (0: keep every checkpoint)", o->save_total_limit);
    /* As HF Trainer: the best model is chosen by validation loss among the
     * checkpoints, so validation runs at every checkpoint. */
    if (o->load_best_model_at_end && o->val_set_size <= 0)
        return rosa_fail("--load-best-model-at-end needs a validation set (--val-set-size N)");
    if (o->load_best_model_at_end && (o->eval_steps <= 0 || o->save_steps <= 0 || o->save_steps % o->eval_steps != 0))
        return rosa_fail("--load-best-model-at-end needs --save-steps %d to be a multiple of --eval-steps %d (both > 0), "
                         "so that every checkpoint is validated", o->save_steps, o->eval_steps);
    if (o->data.cutoff_len < 2) return rosa_fail("--cutoff-len %d must be at least 2", o->data.cutoff_len);
    if (!(o->max_memory >= 0.0)) return rosa_fail("--max-memory must be >= 0");
    if (o->quantize != ROSA_QUANT_NONE && o->quantize != ROSA_QUANT_INT8) return rosa_fail("--quantize: unknown kind");
    if (o->quantize && o->compute != ROSA_DTYPE_F32)
        return rosa_fail("--quantize int8 and --dtype bf16 do not go together: int8 weights are dequantised and "
                         "multiplied in FP32 (give --dtype fp32)");
    if (o->dls.enabled && rosa_dls_options_check(&o->dls) < 0) return -1;
    if (!o->method) return rosa_fail("no PEFT method given");
    /* The method's options, on the model's shapes (config.json alone):
     * building its table refuses a rank out of range, a module the model
     * does not have, ... */
    if (o->model_dir && !o->init_adapter) {
        rosa_config c;
        if (rosa_config_load(o->model_dir, &c) < 0) return -1;
        void *opts = rosa_peft_opts_new(o->method, o->method_opts);
        int64_t n = opts ? rosa_peft_num_params(o->method, &c, opts) : -1;
        rosa_peft_opts_free(o->method, opts);
        if (n < 0) return -1;
    }
    return 0;
}

static int prepare_adapter(run *r) {
    const rosa_train_options *o = r->o;
    if (o->init_adapter) {
        r->a = rosa_adapter_load(o->init_adapter, &r->mi.cfg);
        if (!r->a) return -1;
        /* The adapter's method and structure come from its file; dropout from
         * the command line (when it names the same method). */
        if (r->a->method == o->method && o->method_opts && o->method->runtime_from)
            o->method->runtime_from(r->a->opts, o->method_opts);
    } else {
        r->a = rosa_adapter_table(o->method, o->method_opts, &r->mi.cfg);
        if (r->a && !o->quiet) rosa_adapter_warn_rank(r->a);
    }
    return r->a ? 0 : -1;
}

/* After the plan: the adapter's values, AdamW's moments, DLS. */
static int allocate_training_state(run *r) {
    const rosa_train_options *o = r->o;
    if (!o->init_adapter && rosa_adapter_init_values(r->a, r->m, o->seed) < 0) return -1;
    r->a->dls = o->dls; /* recorded by methods that save it */
    r->param_active = rosa_malloc((size_t)r->a->n_params, "active tensors");
    r->raw_scores = rosa_calloc((size_t)r->m->cfg.num_layers, sizeof(float), "scores");
    if (!r->param_active || !r->raw_scores) return -1;
    memset(r->param_active, 1, (size_t)r->a->n_params);
    if (o->dls.enabled && rosa_dls_init(&r->dls, &o->dls, r->m->cfg.num_layers) < 0) return -1;
    return rosa_adamw_init(&r->opt, r->a);
}

/* The layer-selection part of step s: the active set and its telemetry.
 * Returns 0 or -1 (a failed metrics write). */
static int dls_begin(run *r, int64_t s) {
    if (!r->o->dls.enabled) return 0;
    int exploit = 0;
    if (rosa_dls_begin_step(&r->dls, s, &exploit) &&
        rosa_metrics_dls_selection(r->metrics, s + 1, exploit ? ROSA_DLS_MODE_EXPLOIT : ROSA_DLS_MODE_EXPLORE,
                                   r->dls.active, r->dls.L) < 0)
        return -1;
    r->plan.layer_active = r->dls.active;
    /* skip: inactive tensors are left out of the update and of the clip norm;
     * zero-grad: they get zero gradients and AdamW still steps them. */
    for (int i = 0; i < r->a->n_params; i++)
        /* layer -1: a tensor outside the layers (LN-Tuning's final norm), always trained. */
        r->param_active[i] = r->o->dls.zero_grad || r->a->params[i].layer < 0 || r->dls.active[r->a->params[i].layer];
    return 0;
}

/* One line of the plan's parts (MiB), for the log and the refusal. */
static void plan_line(const rosa_memory_plan *p, char *buf, size_t n) {
    const double M = 1048576.0;
    snprintf(buf, n, "weights %.1f MiB (%.1f more while loading), activations %.1f MiB, adapter %.1f MiB, "
                     "optimizer %.1f MiB, scratch %.1f MiB, process and libraries %.1f MiB: peak %.1f MiB",
             p->weights / M, p->load_extra / M, p->activations / M, p->adapter / M, p->optimizer / M, p->scratch / M,
             (p->process + p->libraries) / M, p->total / M);
}

/* The memory plan, from the headers, the adapter's structure and the data,
 * before the model is loaded; refused above --max-memory (default: what the
 * machine has available) with what would fit. */
static int plan_memory(run *r) {
    const rosa_train_options *o = r->o;
    if (rosa_plan_train(&r->mi, o, r->a, r->Tmax, &r->mem) < 0) return -1;
    char line[512];
    plan_line(&r->mem, line, sizeof line);
    if (!o->quiet) {
        int64_t base = r->mi.n_params, trainable = rosa_adapter_num_params(r->a);
        rosa_log(ROSA_LOG_INFO, "%d train records, %d validation; %d steps (%d per epoch), batch %d = %d x %d micro-batches",
                 r->n_train, r->n_val, (int)r->total_steps, r->steps_per_epoch, o->batch_size, r->n_accum,
                 o->micro_batch_size);
        rosa_log(ROSA_LOG_INFO, "trainable parameters %lld of %lld (%.4f%%)", (long long)trainable, (long long)base,
                 100.0 * (double)trainable / (double)base);
        rosa_log(ROSA_LOG_INFO, "memory plan (micro-batch %d x %d tokens%s, --dtype %s%s): %s", o->micro_batch_size,
                 r->Tmax, o->recompute ? ", recomputed per layer" : "", o->compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32",
                 o->quantize ? ", --quantize int8" : "", line);
    }
    double limit = o->max_memory > 0 ? o->max_memory : (double)rosa_mem_available();
    if (!(limit > 0) || (double)r->mem.total <= limit) return 0;
    char advice[512];
    rosa_plan_train_advice(&r->mi, o, r->a, r->Tmax, limit, advice, sizeof advice);
    return rosa_fail("training needs about %.1f MiB, more than %s %.1f MiB (%s); %s%s", r->mem.total / 1048576.0,
                     o->max_memory > 0 ? "--max-memory" : "the memory available (MemAvailable; --max-memory sets the limit)",
                     limit / 1048576.0, line, advice[0] ? "these would fit: " : "no change of --micro-batch-size, "
                     "--recompute, --cutoff-len, --dtype or --quantize fits: a smaller model, or a machine with more memory", advice);
}

/* Metrics file: on resume, keep the lines of steps up to the resumed one
 * (rosa_metrics_open). */
static int open_metrics(run *r, int64_t start_step) {
    r->metrics_path = rosa_path_join(r->o->output_dir, "metrics.jsonl");
    if (!r->metrics_path) return -1;
    r->metrics = rosa_metrics_open(r->metrics_path, start_step);
    return r->metrics ? 0 : -1;
}

static int save_checkpoint(run *r, int64_t step) {
    const rosa_train_options *o = r->o;
    /* HF Trainer: a checkpoint saved at the step of a new best validation loss becomes the best one. */
    if (r->new_best_at == step) r->best_step = step;
    rosa_checkpoint_state st = {.step = step, .total_steps = r->total_steps, .seed = o->seed,
                                .dls = o->dls.enabled ? &r->dls : NULL, .metrics_path = r->metrics_path,
                                .steps_per_epoch = r->steps_per_epoch, .eval_steps = o->eval_steps,
                                .save_steps = o->save_steps, .train_batch_size = o->micro_batch_size,
                                .has_best = r->has_best, .best_metric = r->best_loss, .best_step = r->best_step};
    if (rosa_checkpoint_save(o->output_dir, r->a, &r->opt, &st, r->base_model) < 0) return -1;
    return rosa_checkpoint_rotate(o->output_dir, o->save_total_limit, o->load_best_model_at_end ? r->best_step : 0);
}

static int validate(run *r, int64_t step) {
    if (r->n_val == 0) return 0;
    double loss;
    if (rosa_eval_loss(r->tm, &r->data, r->val_idx, r->n_val, r->o->micro_batch_size, &loss, NULL, NULL) < 0)
        return -1;
    r->last_val = loss;
    if (!r->has_best || loss < r->best_loss) r->has_best = 1, r->best_loss = loss, r->new_best_at = step;
    if (rosa_metrics_val(r->metrics, step, loss) < 0) return -1;
    if (!r->o->quiet) rosa_log(ROSA_LOG_INFO, "step %lld: validation loss %.4f", (long long)step, loss);
    return 0;
}

/* One optimizer step s.  Returns 0, -1 on error, 1 for a skipped step. */
static int train_step(run *r, int64_t s, double *loss_out, double *gnorm_out, long long *tokens_out) {
    const rosa_train_options *o = r->o;
    rosa_adapter *a = r->a;
    memset(a->g, 0, sizeof(float) * a->n_floats);
    rosa_train_zero_norm_grads(r->tm);
    rosa_rng drop;
    rosa_rng_seed(&drop, mix_seed(o->seed, DROPOUT_SALT + (uint64_t)s));
    r->plan.backward = 1;
    r->plan.stop_layer = o->dls.enabled ? rosa_dls_stop_layer(&r->dls, s) : 0;
    /* Token normalisation weighs every label token of the step equally. */
    long long step_tokens = 0;
    for (int j = 0; j < r->n_accum; j++) {
        const int32_t *idx = micro_indices(r, s, j);
        for (int k = 0; k < o->micro_batch_size; k++) step_tokens += example_label_tokens(&r->data.ex[idx[k]]);
    }
    double loss = 0.0;
    long long tokens = 0;
    int empty = 0;
    /* Fault point (core/fault.h): ROSA_FAULT=nan-step:n makes step n's loss NaN (steps count from 1, as in
     * metrics.jsonl and checkpoint names), for the tests of --nan-policy and of resuming after it. */
    const char *poison = ROSA_FAULT("nan-step");
    int64_t poison_step = poison ? atoll(poison) : -1;
    for (int j = 0; j < r->n_accum; j++) {
        const int32_t *idx = micro_indices(r, s, j);
        long long mb_tokens = 0;
        for (int k = 0; k < o->micro_batch_size; k++) mb_tokens += example_label_tokens(&r->data.ex[idx[k]]);
        float w;
        if (o->loss_norm == ROSA_LOSS_TOKEN) w = step_tokens ? (float)(1.0 / (double)step_tokens) : 0.0f;
        else w = mb_tokens ? (float)(1.0 / ((double)mb_tokens * r->n_accum)) : 0.0f;
        if (mb_tokens == 0) {
            empty++;
            continue; /* contributes zero */
        }
        rosa_batch b;
        if (rosa_batch_make(&r->data, idx, o->micro_batch_size, 0, &b) < 0) return -1;
        double sum;
        int ntok;
        int rc = rosa_train_microbatch(r->tm, &b, w, &r->plan, &drop, &sum, &ntok, NULL);
        for (int t = 0; t < b.B * b.T; t++) tokens += b.mask[t];
        rosa_batch_free(&b);
        if (rc < 0) return -1;
        if (poison_step == s + 1) sum = NAN;
        if (!isfinite(sum)) {
            if (o->nan_policy == ROSA_NAN_SKIP) {
                rosa_log(ROSA_LOG_INFO, "step %lld, micro-batch %d: non-finite loss; step skipped", (long long)(s + 1), j);
                return 1;
            }
            return rosa_fail("non-finite loss at step %lld, micro-batch %d (records %d..); the last checkpoint is "
                             "kept (use --nan-policy skip to skip such steps)", (long long)(s + 1), j, idx[0]);
        }
        loss += sum;
    }
    if (empty && !o->quiet)
        rosa_log(ROSA_LOG_WARN, "step %lld: %d micro-batches without label tokens contribute zero",
                           (long long)(s + 1), empty);
    /* A method's own loss term (AdaLoRA's orthogonality), added to each micro-batch's loss as PEFT's model
     * forward adds it: once per micro-batch with label tokens, over the n_accum of the step. */
    if (r->n_accum > empty) {
        double extra = rosa_adapter_extra_loss(a, (float)(r->n_accum - empty) / (float)r->n_accum,
                                               o->dls.enabled ? r->dls.active : NULL);
        if (!isfinite(extra)) return rosa_fail("step %lld: the adapter's loss term is not finite", (long long)(s + 1));
        loss += extra;
    }
    const rosa_config *c = &r->m->cfg;
    /* A method that trains norm weights takes the gradients computed for DLS. */
    rosa_adapter_take_norm_grads(a, r->tm->norm_grad, r->tm->n_norms, c->hidden_size,
                                 o->dls.enabled ? r->dls.active : NULL);
    if (o->dls.enabled && rosa_dls_scores_needed(&r->dls, s)) {
        rosa_dls_update_scores(&r->dls, r->tm->norm_grad, r->tm->n_norms, c->hidden_size, r->raw_scores);
        if (rosa_metrics_dls_scores(r->metrics, s + 1, r->raw_scores, c->num_layers) < 0) return -1;
    }
    double gnorm = rosa_grad_norm(a, r->param_active);
    if (!isfinite(gnorm)) {
        if (o->nan_policy == ROSA_NAN_SKIP) {
            rosa_log(ROSA_LOG_INFO, "step %lld: non-finite gradient; step skipped", (long long)(s + 1));
            return 1;
        }
        return rosa_fail("non-finite gradient at step %lld; the last checkpoint is kept (use --nan-policy skip to skip "
                         "such steps)", (long long)(s + 1));
    }
    if (o->max_grad_norm > 0) rosa_clip_grads(a, r->param_active, gnorm, o->max_grad_norm);
    float lr = (float)(o->adam.lr * rosa_lr_factor(o->schedule, s, r->total_steps, r->warmup_steps));
    rosa_adamw_step(&r->opt, a, r->param_active, lr, &o->adam);
    /* An update can overflow with finite inputs (--lr 1e38, --weight-decay 1e30): stopped here, as a non-finite
     * loss is, so that no checkpoint or final adapter holds a value the loader refuses.  Not skippable: the
     * update is already applied. */
    char what[320];
    if (rosa_adamw_check(&r->opt, a, s + 1, what, sizeof what) < 0)
        return rosa_fail("non-finite training state after the update of step %lld: %s; the last checkpoint is kept "
                         "(lower --lr or --weight-decay)", (long long)(s + 1), what);
    /* After the update, with the step's clipped gradients (AdaLoRA's rank allocation, as PEFT's users call
     * update_and_allocate between optimizer.step() and zero_grad()). */
    if (rosa_adapter_after_step(a, s) < 0) return -1;
    *loss_out = loss;
    *gnorm_out = gnorm;
    *tokens_out = tokens;
    return 0;
}

static void run_free(run *r) {
    rosa_dls_free(&r->dls);
    free(r->param_active);
    free(r->raw_scores);
    rosa_train_ctx_free(r->tm);
    rosa_adamw_free(&r->opt);
    rosa_adapter_free(r->a);
    rosa_dataset_free(&r->data);
    free(r->train_idx);
    free(r->val_idx);
    free(r->order);
    rosa_metrics_free(r->metrics);
    free(r->metrics_path);
    free(r->base_model);
    /* The lock file goes with the run (a killed run leaves it: the next one locks it again). */
    if (r->lock_path) unlink(r->lock_path);
    free(r->lock_path);
    if (r->lock_fd >= 0) close(r->lock_fd);
    rosa_model_free(r->m);
}

int rosa_train(const rosa_train_options *o, rosa_train_result *res) {
    run r = {.o = o, .lock_fd = -1, .best_loss = NAN, .last_val = NAN};
    rosa_adapter *best_as_loaded = NULL; /* --load-best-model-at-end's checkpoint, when its table is another */
    rosa_train_result done_as = {0};
    int status = -1;
    if (rosa_train_options_check(o) < 0) return -1;
    if (open_output(&r) < 0) goto done;
    /* Before anything is loaded: a resume that would not continue the run is refused at once. */
    if (o->resume && rosa_run_record_check(o) < 0) goto done;
    /* PEFT records where the base model is: an absolute path (from anywhere), or the hub id given. */
    r.base_model = o->base_model_name ? rosa_strdup(o->base_model_name) : rosa_real_path(o->model_dir);
    if (!r.base_model) goto done;
    /* The headers, the tokenizer and the data first: the plan is checked
     * before the weights are touched. */
    if (rosa_model_inspect(o->model_dir, &r.mi) < 0) goto done;
    if (!r.mi.has_tokenizer) {
        rosa_fail("%s: training needs the model's tokenizer.json", o->model_dir);
        goto done;
    }
    rosa_tokenizer *tok = rosa_tokenizer_load(o->model_dir);
    int prc = tok ? prepare_data(&r, tok) : -1;
    if (prc == 0) prc = prepare_adapter(&r);
    if (prc == 0) prc = plan_memory(&r); /* with the tokenizer resident, as the model's will be */
    rosa_tokenizer_free(tok);
    if (prc < 0) goto done;
    r.m = rosa_model_load(o->model_dir);
    if (!r.m || rosa_model_quantize(r.m, o->quantize) < 0 || rosa_model_set_compute(r.m, o->compute) < 0) goto done;
    if (allocate_training_state(&r) < 0) goto done;

    int64_t start = 0;
    if (o->resume && rosa_adapter_no_resume(r.a)) {
        rosa_fail("--resume: %s", rosa_adapter_no_resume(r.a));
        goto done;
    }
    if (o->resume) {
        rosa_checkpoint_state st = {.dls = o->dls.enabled ? &r.dls : NULL, .run_steps = r.total_steps};
        int64_t last = rosa_checkpoint_latest(o->output_dir, NULL);
        if (last < 0) {
            rosa_fail("%s: no checkpoint to resume from", o->output_dir);
            goto done;
        }
        if (rosa_checkpoint_load(o->output_dir, last, &r.m->cfg, r.a, &r.opt, &st) < 0) goto done;
        /* A longer run (a larger --max-steps or --epochs) continues, as HF Trainer's does; a shorter one would
         * have followed another schedule from the start. */
        if (st.total_steps > r.total_steps || st.seed != o->seed) {
            rosa_fail("%s: checkpoint-%lld was made with %lld total steps and seed %llu, not %lld and %llu: resume "
                      "with the same options (or more steps)", o->output_dir, (long long)last,
                      (long long)st.total_steps, (unsigned long long)st.seed, (long long)r.total_steps,
                      (unsigned long long)o->seed);
            goto done;
        }
        if (st.total_steps < r.total_steps)
            rosa_log(ROSA_LOG_WARN, "--resume: the run grows from %lld to %lld steps: the %s learning-rate schedule's "
                     "length changes from %lld to %lld steps for the steps after %lld", (long long)st.total_steps,
                     (long long)r.total_steps, o->schedule == ROSA_SCHED_COSINE ? "cosine"
                                                : o->schedule == ROSA_SCHED_CONSTANT ? "constant" : "linear",
                     (long long)st.total_steps, (long long)r.total_steps, (long long)st.step);
        if (st.total_steps < r.total_steps && o->warmup_ratio > 0.0 &&
            rosa_train_warmup_steps(o, st.total_steps) != r.warmup_steps)
            rosa_log(ROSA_LOG_WARN, "--resume: --warmup-ratio %g of the longer run is %d warm-up steps, not %d",
                     o->warmup_ratio, r.warmup_steps, rosa_train_warmup_steps(o, st.total_steps));
        start = st.step;
        r.has_best = st.has_best, r.best_loss = st.best_metric, r.best_step = st.best_step;
        if (!o->quiet) rosa_log(ROSA_LOG_INFO, "resuming from %s/checkpoint-%lld", o->output_dir, (long long)last);
    }

    r.tm = rosa_train_ctx_new(r.m, r.a, o->micro_batch_size, r.Tmax, o->recompute);
    if (!r.tm || open_metrics(&r, start) < 0) goto done;
    /* What made this run, before its first step (a resumed run records its new options). */
    if (rosa_run_record_write(o) < 0) goto done;
    if (start == 0) { /* the plan, for reports (docs/formats.md) */
        rosa_training_plan plan = {.memory_bytes = r.mem.total, .activation_bytes = r.mem.activations,
                                  .trainable_params = rosa_adapter_num_params(r.a),
                                  .base_params = rosa_model_num_params(r.m), .total_steps = r.total_steps,
                                  .compute = o->compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32",
                                  .recompute = o->recompute != 0};
        if (rosa_metrics_plan(r.metrics, &plan) < 0) goto done;
    }

    rosa_progress prog;
    rosa_progress_start(&prog, "train", r.total_steps, start, o->quiet, o->plain_log);
    int skipped = 0;
    rosa_run_summary sum = {.total_steps = r.total_steps, .steps_per_epoch = r.steps_per_epoch, .final_loss = NAN,
                            .eval_loss = NAN, .best_eval_loss = NAN, .adapter_dir = o->output_dir};
    double loss_sum = 0.0, t_start = rosa_now();
    for (int64_t s = start; s < r.total_steps; s++) {
        double loss = 0.0, gnorm = 0.0;
        long long tokens = 0;
        double t0 = rosa_now();
        int rc = dls_begin(&r, s) < 0 ? -1 : train_step(&r, s, &loss, &gnorm, &tokens);
        if (rc < 0) {
            rosa_progress_end(&prog);
            goto done;
        }
        double dt = rosa_now() - t0;
        float lr = (float)(o->adam.lr * rosa_lr_factor(o->schedule, s, r.total_steps, r.warmup_steps));
        if (rc == 1) skipped++;
        else sum.steps_run++, sum.samples += o->batch_size, sum.tokens += tokens, loss_sum += loss, sum.final_loss = loss;
        if ((rc == 1 ? rosa_metrics_skipped(r.metrics, s + 1)
                     : rosa_metrics_step(r.metrics, s + 1, loss, lr, gnorm, tokens, dt)) < 0) {
            rosa_progress_end(&prog);
            goto done;
        }
        rosa_progress_update(&prog, s + 1, loss, lr, gnorm, tokens);
        int last = s + 1 == r.total_steps;
        if (o->eval_steps > 0 && r.n_val && ((s + 1) % o->eval_steps == 0 || last) && validate(&r, s + 1) < 0) {
            rosa_progress_end(&prog);
            goto done;
        }
        if ((o->save_steps > 0 && (s + 1) % o->save_steps == 0) || last || atomic_load(&stop_requested)) {
            if (save_checkpoint(&r, s + 1) < 0) {
                rosa_progress_end(&prog);
                goto done;
            }
        }
        if (atomic_load(&stop_requested) && !last) {
            rosa_progress_end(&prog);
            rosa_log(ROSA_LOG_INFO, "interrupted after step %lld; checkpoint saved in %s/checkpoint-%lld; continue with "
                            "the same command and --resume", (long long)(s + 1), o->output_dir, (long long)(s + 1));
            done_as.interrupted = 1;
            done_as.last_step = s + 1;
            done_as.skipped_steps = skipped;
            status = 0;
            goto done;
        }
    }
    rosa_progress_end(&prog);
    if (o->dls.enabled) {
        if (rosa_metrics_dls_counts(r.metrics, r.total_steps, r.dls.counts, r.dls.L) < 0) goto done;
        if (!o->quiet) {
            rosa_buf line = {0}; /* the counts of all layers, in one message */
            for (int l = 0; l < r.dls.L; l++) rosa_buf_printf(&line, " %d:%lld", l, (long long)r.dls.counts[l]);
            rosa_log(ROSA_LOG_INFO, "DLS selections per layer:%s", line.data ? line.data : ""), rosa_buf_free(&line);
        }
    }
    sum.runtime_s = rosa_now() - t_start;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) sum.peak_rss_bytes = (long long)ru.ru_maxrss * 1024;
    if (sum.peak_rss_bytes && rosa_metrics_peak_rss(r.metrics, r.total_steps, sum.peak_rss_bytes) < 0) goto done;
    int mrc = rosa_metrics_close(r.metrics);
    r.metrics = NULL;
    if (mrc < 0) goto done;
    if (o->load_best_model_at_end && r.best_step > 0 && r.best_step != r.total_steps) {
        /* As HF Trainer: the final adapter is the best checkpoint's. */
        char best[4096];
        snprintf(best, sizeof best, "%s/checkpoint-%lld", o->output_dir, (long long)r.best_step);
        rosa_adapter *b = rosa_adapter_load(best, &r.m->cfg);
        /* A checkpoint of another table (AdaLoRA's, pruned and resized) is the final adapter as it is. */
        int crc = !b ? -1 : b->n_floats != r.a->n_floats && b->method == r.a->method ? 0 : rosa_adapter_copy_values(r.a, b);
        if (crc == 0 && b->n_floats != r.a->n_floats) best_as_loaded = b, b = NULL;
        rosa_adapter_free(b);
        if (crc < 0) {
            rosa_error_prefix("--load-best-model-at-end: %s", best);
            goto done;
        }
    }
    sum.loaded_best = o->load_best_model_at_end && r.best_step > 0;
    sum.global_step = r.total_steps;
    sum.train_loss = sum.steps_run ? loss_sum / (double)sum.steps_run : NAN;
    sum.eval_loss = r.last_val;
    sum.best_eval_loss = r.has_best ? r.best_loss : NAN;
    sum.best_step = r.best_step;
    if (rosa_adapter_save(best_as_loaded ? best_as_loaded : r.a, o->output_dir, r.base_model) < 0 ||
        rosa_run_results_write(o->output_dir, &sum) < 0 ||
        rosa_run_card_write(o, r.a, r.base_model, &sum) < 0)
        goto done;
    if (skipped && !o->quiet) rosa_log(ROSA_LOG_INFO, "%d steps were skipped (non-finite loss)", skipped);
    if (!o->quiet) rosa_run_summary_log(&sum);
    done_as.last_step = r.total_steps;
    done_as.skipped_steps = skipped;
    status = 0;
done:
    rosa_adapter_free(best_as_loaded);
    run_free(&r);
    if (status == 0 && res) *res = done_as;
    return status;
}
