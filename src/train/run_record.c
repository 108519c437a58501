/* run_record.c: training_args.json, train_results.json and the model card
 * (run_record.h). */
#include "train/run_record.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"
#include "io/json.h"

/* ------------------------------------------------------------- options */

/* A float as the shortest decimal that reads back as the same float, so that
 * --lr 0.001 is recorded as 0.001 and any two different values differ. */
static cJSON *float_item(float v) {
    char buf[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* The method's options under their flags, from its table. */
static void add_method_options(cJSON *j, const rosa_train_options *o) {
    void *opts = rosa_peft_opts_new(o->method, o->method_opts);
    if (!opts) return;
    for (const rosa_peft_option *p = o->method->options; p->flag; p++) {
        const char *field = (const char *)opts + p->offset;
        cJSON *v = NULL;
        switch (p->type) {
        case PEFT_OPT_INT: v = cJSON_CreateNumber(*(const int *)field); break;
        case PEFT_OPT_FLOAT: v = float_item(*(const float *)field); break;
        case PEFT_OPT_FLAG: v = cJSON_CreateBool(*(const int *)field); break;
        case PEFT_OPT_CHOICE: { /* "a|b": the field is the index of the name */
            const char *c = p->choices;
            for (int k = *(const int *)field; k > 0 && c; k--) c = strchr(c, '|'), c = c ? c + 1 : NULL;
            char name[64];
            if (c) snprintf(name, sizeof name, "%.*s", (int)strcspn(c, "|"), c);
            v = c ? cJSON_CreateString(name) : cJSON_CreateNull();
            break;
        }
        case PEFT_OPT_CUSTOM: {
            char buf[1024];
            v = o->method->format_option && o->method->format_option(opts, p->flag, buf, sizeof buf) == 0
                    ? cJSON_CreateString(buf)
                    : cJSON_CreateNull();
            break;
        }
        }
        cJSON_AddItemToObject(j, p->flag, v);
    }
    rosa_peft_opts_free(o->method, opts);
}

static const char *schedule_name(rosa_schedule s) {
    return s == ROSA_SCHED_COSINE ? "cosine" : s == ROSA_SCHED_CONSTANT ? "constant" : "linear";
}

/* Every option of `rosa train` under its flag (without "--"), as the run
 * uses it: defaults filled in, --dls-warmup resolved, the rank --param-budget
 * chose, the thread count the machine gave. */
static cJSON *options_json(const rosa_train_options *o) {
    cJSON *j = cJSON_CreateObject();
    const rosa_dls_options *d = &o->dls;
    cJSON_AddItemToObject(j, "model", str_or_null(o->model_dir));
    cJSON_AddItemToObject(j, "data", str_or_null(o->data_path));
    cJSON_AddItemToObject(j, "output", str_or_null(o->output_dir));
    cJSON_AddStringToObject(j, "method", rosa_peft_method_name(o->method));
    add_method_options(j, o);
    cJSON_AddBoolToObject(j, "dls", d->enabled);
    cJSON_AddNumberToObject(j, "dls-interval", d->interval);
    cJSON_AddNumberToObject(j, "dls-warmup", d->warmup);
    cJSON_AddItemToObject(j, "dls-k-ratio", float_item(d->k_ratio));
    cJSON_AddItemToObject(j, "dls-p-exploit", float_item(d->p_exploit));
    cJSON_AddItemToObject(j, "dls-score-ema", float_item(d->score_ema));
    cJSON_AddStringToObject(j, "dls-inactive", d->zero_grad ? "zero-grad" : "skip");
    cJSON_AddBoolToObject(j, "dls-full-backward", d->full_backward);
    cJSON_AddItemToObject(j, "lr", float_item(o->adam.lr));
    cJSON_AddItemToObject(j, "adam-beta1", float_item(o->adam.beta1));
    cJSON_AddItemToObject(j, "adam-beta2", float_item(o->adam.beta2));
    cJSON_AddItemToObject(j, "adam-eps", float_item(o->adam.eps));
    cJSON_AddItemToObject(j, "weight-decay", float_item(o->adam.weight_decay));
    cJSON_AddStringToObject(j, "lr-scheduler", schedule_name(o->schedule));
    cJSON_AddNumberToObject(j, "warmup-steps", o->warmup_steps);
    cJSON_AddNumberToObject(j, "warmup-ratio", o->warmup_ratio);
    cJSON_AddNumberToObject(j, "batch-size", o->batch_size);
    cJSON_AddNumberToObject(j, "micro-batch-size", o->micro_batch_size);
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "max-steps", o->max_steps);
    cJSON_AddItemToObject(j, "max-grad-norm", float_item(o->max_grad_norm));
    char seed[32]; /* every bit of a 64-bit seed: a JSON integer, written exactly */
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddItemToObject(j, "seed", cJSON_CreateRaw(seed));
    cJSON_AddNumberToObject(j, "cutoff-len", o->data.cutoff_len);
    cJSON_AddBoolToObject(j, "train-on-inputs", o->data.train_on_inputs);
    cJSON_AddBoolToObject(j, "no-shuffle", !o->shuffle);
    cJSON_AddNumberToObject(j, "val-set-size", o->val_set_size);
    cJSON_AddNumberToObject(j, "eval-steps", o->eval_steps);
    cJSON_AddNumberToObject(j, "save-steps", o->save_steps);
    cJSON_AddNumberToObject(j, "save-total-limit", o->save_total_limit);
    cJSON_AddBoolToObject(j, "load-best-model-at-end", o->load_best_model_at_end);
    cJSON_AddStringToObject(j, "loss-norm", o->loss_norm == ROSA_LOSS_TOKEN ? "token" : "mean");
    cJSON_AddItemToObject(j, "init-adapter", str_or_null(o->init_adapter));
    cJSON_AddBoolToObject(j, "resume", o->resume);
    cJSON_AddBoolToObject(j, "overwrite", o->overwrite);
    cJSON_AddStringToObject(j, "nan-policy", o->nan_policy == ROSA_NAN_SKIP ? "skip" : "stop");
    cJSON_AddBoolToObject(j, "skip-bad-records", o->skip_bad_records);
    cJSON_AddNumberToObject(j, "max-memory", o->max_memory);
    cJSON_AddStringToObject(j, "dtype", o->compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32");
    cJSON_AddStringToObject(j, "quantize", o->quantize == ROSA_QUANT_INT8 ? "int8" : "none");
    cJSON_AddBoolToObject(j, "recompute", o->recompute);
    cJSON_AddItemToObject(j, "base-model-name", str_or_null(o->base_model_name));
    cJSON_AddNumberToObject(j, "threads", rosa_get_threads());
    cJSON_AddStringToObject(j, "log-format", o->plain_log ? "plain" : "tty");
    cJSON_AddBoolToObject(j, "quiet", o->quiet);
    return j;
}

/* ------------------------------------------------------- the record */

/* {"path": absolute, "bytes": N, "sha256": hex} of a file. */
static cJSON *file_json(const char *path, const char *sha_key, int with_bytes) {
    char hex[65];
    int64_t bytes;
    if (rosa_sha256_file(path, hex, &bytes) < 0) return NULL;
    cJSON *j = cJSON_CreateObject();
    char *abs = rosa_real_path(path);
    cJSON_AddStringToObject(j, "path", abs ? abs : path);
    free(abs);
    if (with_bytes) cJSON_AddNumberToObject(j, "bytes", (double)bytes);
    cJSON_AddStringToObject(j, sha_key, hex);
    return j;
}

static cJSON *model_json(const char *model_dir) {
    char *cfg = rosa_path_join(model_dir, "config.json");
    cJSON *j = cfg ? file_json(cfg, "config_sha256", 0) : NULL;
    free(cfg);
    if (!j) return NULL;
    char *abs = rosa_real_path(model_dir); /* the directory, not its config.json */
    cJSON_ReplaceItemInObject(j, "path", cJSON_CreateString(abs ? abs : model_dir));
    free(abs);
    return j;
}

static cJSON *build_json(const rosa_train_options *o) {
    cJSON *j = cJSON_CreateObject();
    const dnnl_version_t *dv = dnnl_version();
    char onednn[64];
    snprintf(onednn, sizeof onednn, "%d.%d.%d", dv->major, dv->minor, dv->patch);
    cJSON_AddStringToObject(j, "version", ROSA_VERSION);
    cJSON *b = cJSON_AddObjectToObject(j, "build");
    const char *blas = openblas_get_config(); /* "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Cooperlake ..." */
    cJSON_AddStringToObject(b, "blas", blas ? blas : "OpenBLAS");
    cJSON_AddStringToObject(b, "onednn", onednn);
    cJSON_AddStringToObject(b, "dtype", o->compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32");
    return j;
}

static cJSON *machine_json(void) {
    cJSON *j = cJSON_CreateObject();
    char host[256];
    if (gethostname(host, sizeof host) == 0) host[sizeof host - 1] = 0, cJSON_AddStringToObject(j, "hostname", host);
    cJSON_AddNumberToObject(j, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512], *model = NULL;
    while (f && !model && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            model = colon + 1 + strspn(colon + 1, " \t");
            model[strcspn(model, "\n")] = 0;
        }
    }
    if (f) fclose(f);
    cJSON_AddItemToObject(j, "cpu_model", str_or_null(model));
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    cJSON_AddNumberToObject(j, "memory_bytes", pages > 0 && page > 0 ? (double)pages * (double)page : 0.0);
    return j;
}

static int write_json(const char *dir, const char *name, cJSON *j) {
    char *text = cJSON_Print(j);
    char *path = rosa_path_join(dir, name);
    int rc = text && path ? rosa_write_file_atomic(path, text, strlen(text)) : rosa_fail("out of memory");
    free(text);
    free(path);
    return rc;
}

int rosa_run_record_write(const rosa_train_options *o) {
    cJSON *j = cJSON_CreateObject(), *data = file_json(o->data_path, "sha256", 1), *model = model_json(o->model_dir);
    int rc = -1;
    if (j && data && model) {
        cJSON_AddItemToObject(j, "options", options_json(o));
        cJSON_AddItemToObject(j, "data", data), data = NULL;
        cJSON_AddItemToObject(j, "model", model), model = NULL;
        cJSON *cl = cJSON_AddArrayToObject(j, "command_line");
        for (int i = 0; i < o->argc; i++) cJSON_AddItemToArray(cl, cJSON_CreateString(o->argv[i]));
        cJSON_AddItemToObject(j, "rosa", build_json(o));
        cJSON_AddItemToObject(j, "machine", machine_json());
        rc = write_json(o->output_dir, "training_args.json", j);
    }
    cJSON_Delete(data);
    cJSON_Delete(model);
    cJSON_Delete(j);
    if (rc < 0) rosa_error_prefix("%s/training_args.json", o->output_dir);
    return rc;
}

/* ------------------------------------------------------------ resume */

/* Options that --resume may change: they do not change a bit of the
 * training.  What is printed and where, how often validation runs and
 * checkpoints are written and kept (the training state does not depend on
 * them), the memory guard, the recorded base-model name, --recompute (the
 * same gradients, tests/test_grad_model.c), --nan-policy (it only decides
 * what happens at a non-finite step), the paths (the files are compared by
 * their SHA-256 instead, so a moved data file resumes), and --max-steps and
 * --epochs (a longer run is accepted; the trainer compares the steps with
 * the checkpoint's). */
static const char *const free_keys[] = {"model", "data", "output", "resume", "overwrite", "quiet", "log-format",
                                        "max-memory", "eval-steps", "save-steps", "save-total-limit",
                                        "load-best-model-at-end", "base-model-name", "recompute", "nan-policy",
                                        "max-steps", "epochs", "threads", NULL};

static int is_free(const char *key) {
    for (int i = 0; free_keys[i]; i++)
        if (strcmp(free_keys[i], key) == 0) return 1;
    return 0;
}

/* A value for a message: strings bare, null as "none". */
static char *value_text(const cJSON *v) {
    if (cJSON_IsString(v)) return rosa_strdup(v->valuestring);
    if (!v || cJSON_IsNull(v)) return rosa_strdup("none");
    return cJSON_PrintUnformatted(v);
}

static int same(const cJSON *a, const cJSON *b) {
    char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
    int eq = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

/* The recorded digest at rec.section.key against the file's now. */
static void compare_file(const cJSON *rec, const char *section, const char *key, const cJSON *now, const char *flag,
                         rosa_buf *changes) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, section), key);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(now, key);
    if (!cJSON_IsString(a) || !cJSON_IsString(b) || strcmp(a->valuestring, b->valuestring) == 0) return;
    rosa_buf_printf(changes, "%s--%s: %s changed (sha256 %.12s... -> %.12s...)", changes->len ? ", " : "", flag,
                    strcmp(section, "model") == 0 ? "its config.json" : "the file", a->valuestring, b->valuestring);
}

int rosa_run_record_check(const rosa_train_options *o) {
    char *path = rosa_path_join(o->output_dir, "training_args.json");
    if (!path) return -1;
    if (!rosa_file_exists(path)) {
        rosa_log(ROSA_LOG_WARN, "%s: not found (a run of an older rosa): the options of the resumed run are not "
                                "compared with the recorded ones", path);
        free(path);
        return 0;
    }
    cJSON *rec = rosa_json_load(path), *now = NULL, *data = NULL, *model = NULL;
    rosa_buf changes = {0};
    int rc = -1;
    const cJSON *old = rec ? cJSON_GetObjectItemCaseSensitive(rec, "options") : NULL;
    if (rec && !cJSON_IsObject(old)) {
        rosa_fail("%s: options: missing or not an object", path);
        goto done;
    }
    if (!rec) goto done;
    /* Printed and parsed again, so that both sides went through the same conversions. */
    cJSON *built = options_json(o);
    char *text = cJSON_PrintUnformatted(built);
    cJSON_Delete(built);
    now = text ? cJSON_Parse(text) : NULL;
    free(text);
    data = file_json(o->data_path, "sha256", 1);
    model = model_json(o->model_dir);
    if (!now || !data || !model) goto done;
    const cJSON *item;
    cJSON_ArrayForEach(item, now) {
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(old, item->string);
        if (!was || same(was, item)) continue; /* absent: an option the record predates */
        char *a = value_text(was), *b = value_text(item);
        if (is_free(item->string)) {
            if (strcmp(item->string, "threads") == 0)
                rosa_log(ROSA_LOG_WARN, "--threads %s -> %s: the run continues, but not bit-identically (sums are "
                                        "split by thread)", a, b);
        } else {
            rosa_buf_printf(&changes, "%s--%s %s -> %s", changes.len ? ", " : "", item->string, a, b);
        }
        free(a);
        free(b);
    }
    compare_file(rec, "data", "sha256", data, "data", &changes);
    compare_file(rec, "model", "config_sha256", model, "model", &changes);
    if (changes.len) {
        rosa_fail("%s: --resume with options that would not continue the recorded run bit-identically: %s (resume "
                  "with the recorded values, or start over with --overwrite)", path, changes.data);
        goto done;
    }
    rc = 0;
done:
    rosa_buf_free(&changes);
    cJSON_Delete(rec);
    cJSON_Delete(now);
    cJSON_Delete(data);
    cJSON_Delete(model);
    free(path);
    return rc;
}

/* ----------------------------------------------------------- results */

static void add_num_or_null(cJSON *j, const char *key, double v) {
    cJSON_AddItemToObject(j, key, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
}

static double epoch_of(const rosa_run_summary *s) {
    return s->steps_per_epoch > 0 ? (double)s->global_step / (double)s->steps_per_epoch : 0.0;
}

void rosa_run_summary_log(const rosa_run_summary *s) {
    double t = s->runtime_s > 0 ? s->runtime_s : 0.0;
    rosa_log(ROSA_LOG_INFO, "done: %lld steps (%lld in this run) in %.1f s, %.0f tokens/s, %.2f samples/s",
             (long long)s->global_step, (long long)s->steps_run, t, t > 0 ? (double)s->tokens / t : 0.0,
             t > 0 ? (double)s->samples / t : 0.0);
    rosa_log(ROSA_LOG_INFO, "train loss: final %.4f, mean of this run %.4f", s->final_loss, s->train_loss);
    if (isfinite(s->eval_loss))
        rosa_log(ROSA_LOG_INFO, "validation loss: final %.4f, best %.4f%s", s->eval_loss, s->best_eval_loss,
                 s->best_step > 0 ? "" : " (no checkpoint at that step)");
    rosa_log(ROSA_LOG_INFO, "peak RSS %.1f MiB", (double)s->peak_rss_bytes / 1048576.0);
    if (s->loaded_best)
        rosa_log(ROSA_LOG_INFO, "adapter saved in %s: the best checkpoint's (checkpoint-%lld, validation loss %.4f)",
                 s->adapter_dir, (long long)s->best_step, s->best_eval_loss);
    else
        rosa_log(ROSA_LOG_INFO, "adapter saved in %s", s->adapter_dir);
}

int rosa_run_results_write(const char *out_dir, const rosa_run_summary *s) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return rosa_fail("out of memory");
    double t = s->runtime_s;
    cJSON_AddNumberToObject(j, "epoch", epoch_of(s));
    cJSON_AddNumberToObject(j, "global_step", (double)s->global_step);
    cJSON_AddNumberToObject(j, "max_steps", (double)s->total_steps);
    cJSON_AddNumberToObject(j, "train_runtime", t);
    add_num_or_null(j, "train_samples_per_second", t > 0 ? (double)s->samples / t : NAN);
    add_num_or_null(j, "train_steps_per_second", t > 0 ? (double)s->steps_run / t : NAN);
    add_num_or_null(j, "train_tokens_per_second", t > 0 ? (double)s->tokens / t : NAN);
    add_num_or_null(j, "train_loss", s->train_loss);
    add_num_or_null(j, "final_train_loss", s->final_loss);
    add_num_or_null(j, "eval_loss", s->eval_loss);
    add_num_or_null(j, "best_eval_loss", s->best_eval_loss);
    cJSON_AddNumberToObject(j, "best_global_step", (double)s->best_step);
    cJSON_AddBoolToObject(j, "loaded_best_model", s->loaded_best);
    cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)s->peak_rss_bytes);
    char *abs = rosa_real_path(s->adapter_dir);
    cJSON_AddStringToObject(j, "adapter_dir", abs ? abs : s->adapter_dir);
    free(abs);
    int rc = write_json(out_dir, "train_results.json", j);
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------------ the card */

/* A YAML double-quoted scalar. */
static void yaml_str(rosa_buf *b, const char *s) {
    rosa_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') rosa_buf_putc(b, '\\');
        if ((unsigned char)*s < 0x20) rosa_buf_printf(b, "\\x%02x", (unsigned char)*s);
        else rosa_buf_putc(b, *s);
    }
    rosa_buf_putc(b, '"');
}

static void loss_line(rosa_buf *b, const char *what, double v) {
    if (isfinite(v)) rosa_buf_printf(b, "- %s: %.4f\n", what, v);
}

int rosa_run_card_write(const rosa_train_options *o, const rosa_adapter *a, const char *base_model,
                        const rosa_run_summary *s) {
    /* As PEFT's create_or_update_model_card: front matter, then sections. */
    rosa_buf b = {0};
    char peft_type[64], what[256];
    snprintf(peft_type, sizeof peft_type, "%s", a->method->peft_type);
    for (char *p = peft_type; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    rosa_adapter_describe(a, what, sizeof what);
    rosa_buf_printf(&b, "---\nbase_model: ");
    yaml_str(&b, base_model);
    rosa_buf_printf(&b, "\nlibrary_name: peft\npipeline_tag: text-generation\ntags:\n- ");
    rosa_buf b2 = {0};
    rosa_buf_printf(&b2, "base_model:adapter:%s", base_model);
    yaml_str(&b, b2.data ? b2.data : "");
    rosa_buf_free(&b2);
    rosa_buf_printf(&b, "\n- %s\n- rosa\n---\n\n", peft_type);
    rosa_buf_printf(&b, "# Model Card for %s\n\n", o->output_dir);
    rosa_buf_printf(&b, "A %s adapter of `%s`, trained with rosa %s.\n\n", rosa_peft_display_name(a->method, o->dls.enabled),
                    base_model, ROSA_VERSION);
    rosa_buf_printf(&b, "## Training procedure\n\n- method: %s\n- data: `%s`\n\n", what, o->data_path);
    rosa_buf_printf(&b, "### Training hyperparameters\n\nThe following hyperparameters were used during training:\n");
    rosa_buf_printf(&b, "- learning_rate: %g\n- train_batch_size: %d\n- gradient_accumulation_steps: %d\n"
                        "- total_train_batch_size: %d\n- seed: %llu\n- optimizer: AdamW with betas=(%g,%g) and "
                        "epsilon=%g, weight_decay %g\n- lr_scheduler_type: %s\n- lr_scheduler_warmup_steps: %d\n"
                        "- training_steps: %lld\n- max_grad_norm: %g\n- cutoff_len: %d\n",
                    (double)o->adam.lr, o->micro_batch_size, o->batch_size / o->micro_batch_size, o->batch_size,
                    (unsigned long long)o->seed, (double)o->adam.beta1, (double)o->adam.beta2, (double)o->adam.eps,
                    (double)o->adam.weight_decay, schedule_name(o->schedule),
                    rosa_train_warmup_steps(o, s->total_steps),
                    (long long)s->total_steps, (double)o->max_grad_norm, o->data.cutoff_len);
    if (o->dls.enabled)
        rosa_buf_printf(&b, "- dynamic layer selection: every %d steps, %g of the layers, p_exploit %g\n",
                        o->dls.interval, (double)o->dls.k_ratio, (double)o->dls.p_exploit);
    rosa_buf_printf(&b, "\nEvery option as resolved is in `training_args.json`.\n\n### Training results\n\n");
    loss_line(&b, "final train loss", s->final_loss);
    loss_line(&b, "final validation loss", s->eval_loss);
    loss_line(&b, "best validation loss", s->best_eval_loss);
    if (s->loaded_best)
        rosa_buf_printf(&b, "- this adapter is the best checkpoint's (checkpoint-%lld)\n", (long long)s->best_step);
    rosa_buf_printf(&b, "\n### Framework versions\n\n- rosa %s\n", ROSA_VERSION);
    char *path = rosa_path_join(o->output_dir, "README.md");
    int rc = path && b.data ? rosa_write_file_atomic(path, b.data, b.len) : rosa_fail("out of memory");
    free(path);
    rosa_buf_free(&b);
    return rc;
}
