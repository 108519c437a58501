/* rosa_train.h: public API of rosa's fine-tuning side: data sets, PEFT
 * methods and adapters, training, loss, the LLM-Adapters evaluation, reports
 * and the RoPE frequency analysis.  The conventions of rosa.h hold here too
 * (NULL or a negative int plus rosa_last_error() on failure; *_free(NULL) is
 * a no-op; messages through rosa_set_log_callback).  The `rosa` command line
 * tool is written on this header and rosa.h alone. */
#ifndef ROSA_TRAIN_H
#define ROSA_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rosa.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ROSA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ROSA_PRINTF(a, b)
#endif

/* ---------------------------------------------------------------- utilities */

/* Sets the calling thread's error message (printf-style) and returns -1, so
 * that code built on the library reports through rosa_last_error() as the
 * library does: `return rosa_fail("...")`. */
int rosa_fail(const char *fmt, ...) ROSA_PRINTF(1, 2);
/* Prepends "prefix: " to the current error message. */
void rosa_error_prefix(const char *fmt, ...) ROSA_PRINTF(1, 2);
/* malloc/calloc that set an error naming `what` and return NULL on failure
 * (a size overflow included). */
void *rosa_malloc(size_t n, const char *what);
void *rosa_calloc(size_t count, size_t size, const char *what);
/* A whole file, NUL-terminated and malloc'ed; *len (may be NULL) its size. */
char *rosa_read_file(const char *path, size_t *len);
/* data[0..len) written to path atomically (a temporary beside it, fsync,
 * rename): path holds either its old content or all of the new. */
int rosa_write_file_atomic(const char *path, const void *data, size_t len);
/* dir + "/" + name, malloc'ed. */
char *rosa_path_join(const char *dir, const char *name);
/* Seconds since an arbitrary origin (monotonic). */
double rosa_now(void);
/* "0,3,5" (or "[0, 3, 5]", spaces allowed) -> malloc'ed non-negative ints
 * (free() them) and their count; -1 with a message on bad input. */
int rosa_parse_int_list(const char *s, int32_t **ids, int *n);

/* The progress line of long work, on stderr: one line redrawn in place on a
 * terminal, plain lines otherwise (or with plain set); nothing with quiet.
 * Fields are private. */
typedef struct {
    const char *what;
    int64_t total, start;
    double t0, last_print;
    long long tokens;
    int quiet, tty, open_line;
} rosa_progress;

void rosa_progress_start(rosa_progress *p, const char *what, int64_t total, int64_t start, int quiet, int plain);
/* An optimizer-step line: loss, lr, gradient norm and tokens/s. */
void rosa_progress_update(rosa_progress *p, int64_t done, double loss, double lr, double grad_norm, long long tokens);
/* The same line for work that counts items: bar, done/total, `extra` (e.g.
 * "loss 1.2345", may be NULL), the rate of `items` (accumulated) per second
 * in `unit` (e.g. "tok/s"), elapsed and ETA. */
void rosa_progress_update_rate(rosa_progress *p, int64_t done, long long items, const char *unit, const char *extra);
void rosa_progress_end(rosa_progress *p);

/* --------------------------------------------------------------------- data */

#define ROSA_IGNORE_INDEX (-100)

/* One record of an LLM-Adapters data file.  instruction and output are
 * required; input is optional ("" when absent); answer is kept for
 * evaluation (may be NULL). */
typedef struct {
    char *instruction, *input, *output, *answer;
    int index; /* the record's 0-based position in its file (bad ones counted) */
} rosa_record;

typedef struct {
    rosa_record *rec;
    int n;
    int n_bad; /* records skipped with skip_bad */
} rosa_records;

/* Loads a JSON array of objects, or JSON Lines (one object per line).  A record
 * with a missing or mistyped field is an error naming the file, the record
 * index and the field; with skip_bad it is skipped and counted instead. */
int rosa_records_load(const char *path, int skip_bad, rosa_records *out);
void rosa_records_free(rosa_records *r);
/* Keeps the first n records (all when n >= r->n). */
void rosa_records_truncate(rosa_records *r, int n);

/* The LLM-Adapters training prompt (finetune.py generate_prompt), byte for
 * byte, with the record's output appended; with_output = 0 gives the "user
 * prompt" (output ""). malloc'ed. */
char *rosa_prompt_train(const rosa_record *r, int with_output);
/* The LLM-Adapters evaluation prompt (commonsense/math evaluate.py
 * generate_prompt): instruction only, never the input. malloc'ed. */
char *rosa_prompt_eval(const rosa_record *r);

/* One tokenized example. */
typedef struct {
    int32_t *ids;
    int32_t *labels; /* ROSA_IGNORE_INDEX where no loss is taken */
    int n;
} rosa_example;

typedef struct {
    rosa_example *ex;
    int n;
} rosa_dataset;

typedef struct {
    int cutoff_len;      /* default 256 */
    int train_on_inputs; /* default 1 */
    int add_eos;         /* default 1 */
} rosa_data_options;

void rosa_data_options_default(rosa_data_options *o);

/* tokenize(prompt) of finetune.py: encode with special tokens (BOS as the
 * tokenizer adds it), truncate to cutoff_len, append EOS iff the last id is
 * not EOS and the length is below cutoff_len; labels = ids, and when
 * !train_on_inputs the first len(tokenize(user prompt, no EOS)) labels are
 * ignored. */
int rosa_dataset_tokenize(const rosa_tokenizer *tok, const rosa_records *recs, const rosa_data_options *o,
                          rosa_dataset *out);
void rosa_dataset_free(rosa_dataset *d);

/* ------------------------------------------------------ PEFT methods, adapters */

/* A PEFT method of the table (lora, roae, ...) and an adapter of one. */
typedef struct rosa_peft_method rosa_peft_method;
typedef struct rosa_adapter rosa_adapter;

/* A command-line option of a method: --flag VALUE sets a field of its
 * options.  The table is the method's; offset and parse are its own. */
typedef enum { PEFT_OPT_INT, PEFT_OPT_FLOAT, PEFT_OPT_FLAG, PEFT_OPT_CHOICE, PEFT_OPT_CUSTOM } rosa_peft_opt_type;
typedef struct {
    const char *flag;       /* without "--" */
    rosa_peft_opt_type type;
    size_t offset;          /* of an int or float field in the options */
    const char *metavar;    /* NULL for a flag */
    const char *help;       /* says the default */
    const char *choices;    /* PEFT_OPT_CHOICE: "a|b": the field (int) becomes the index */
    int (*parse)(void *opts, const char *value); /* PEFT_OPT_CUSTOM */
} rosa_peft_option;

/* The method of a --method name (aliases included, e.g. "rosa" = RoAE with
 * DLS: *with_dls set), or NULL. */
const rosa_peft_method *rosa_peft_find(const char *name, int *with_dls);
/* The k-th method of the table (each once), NULL past the end. */
const rosa_peft_method *rosa_peft_at(int k);
/* The method of an adapter_config.json peft_type, or NULL. */
const rosa_peft_method *rosa_peft_by_type(const char *peft_type);
/* "lora, roae, rosa" / "LORA, ROSA" for messages and help. */
const char *rosa_peft_names(void);
const char *rosa_peft_types(void);
/* Its --method name ("lora"), and its flags ({0}-terminated). */
const char *rosa_peft_method_name(const rosa_peft_method *m);
const rosa_peft_option *rosa_peft_method_options(const rosa_peft_method *m);
/* How reports name a run of method m, with or without DLS ("LoRA + DLS",
 * "RoSA (RoAE + DLS)"). */
const char *rosa_peft_display_name(const rosa_peft_method *m, int with_dls);

/* A fresh options block of method m at its defaults, or a copy of src when
 * it is not NULL (free with rosa_peft_opts_free). */
void *rosa_peft_opts_new(const rosa_peft_method *m, const void *src);
void rosa_peft_opts_free(const rosa_peft_method *m, void *opts);
/* Sets the option of flag `flag` from its command-line value ("1" for a flag).
 * Returns 0, -1 with a message, or 1 when m has no such option. */
int rosa_peft_set_option(const rosa_peft_method *m, void *opts, const char *flag, const char *value);
/* Sets the method's rank (--param-budget searches it); -1 for a method without one. */
int rosa_peft_set_rank(const rosa_peft_method *m, void *opts, int rank);
/* Trainable parameters of an adapter of method m with opts on config c. */
int64_t rosa_peft_num_params(const rosa_peft_method *m, const rosa_config *c, const void *opts);

/* A new adapter on config c, initialised as the method does from seed; opts
 * NULL = the method's defaults.  model (may be NULL for a method whose
 * initialisation does not read the base weights, such as LoRA) is the base. */
rosa_adapter *rosa_adapter_new(const rosa_peft_method *m, const void *opts, const rosa_config *c,
                               const rosa_model *model, uint64_t seed);
void rosa_adapter_free(rosa_adapter *a);
const rosa_peft_method *rosa_adapter_method(const rosa_adapter *a);
int64_t rosa_adapter_num_params(const rosa_adapter *a);
/* One line for reports, e.g. "LoRA r 8 on q_proj,v_proj". */
void rosa_adapter_describe(const rosa_adapter *a, char *buf, size_t n);
/* 1 when its method merges into the weights, 0 when its hooks stay on. */
int rosa_adapter_mergeable(const rosa_adapter *a);
/* The r_low a frequency analysis of this adapter defaults to; NaN for none. */
float rosa_adapter_analysis_r_low(const rosa_adapter *a);
/* --init-adapter against options given on the command line: `given` names
 * (NULL-terminated, without "--") "method" and the flags of m that were set
 * explicitly with values in opts.  0 when they agree with the adapter's file
 * (options that do not change its tensors, dropout, may differ); -1 with an
 * error naming both sides, e.g. "--init-adapter holds rank 16, --rank 8". */
int rosa_adapter_check_given(const rosa_adapter *a, const rosa_peft_method *m, const void *opts,
                             const char *const *given);

/* Writes dir/adapter_config.json and dir/adapter_model.safetensors (PEFT
 * layout, F32), each atomically. */
int rosa_adapter_save(const rosa_adapter *a, const char *dir, const char *base_model);
/* Reads an adapter directory written by rosa or PEFT and checks it against
 * the model config; unsupported keys are refused by name. */
rosa_adapter *rosa_adapter_load(const char *dir, const rosa_config *c);
/* Puts a on the model for inference: merged into the weights when the
 * method can (FP32 copies owned by the model; BF16 mode packs them again),
 * else, or on an int8 base (rosa_model_quantize), attached as hooks (a must
 * then outlive m: keep it until the model is freed in every case). */
int rosa_adapter_apply(rosa_model *m, rosa_adapter *a);
/* How rosa_adapter_merge_write writes the merged model. */
typedef struct {
    /* Bytes per safetensors file before the weights are sharded as
     * transformers' save_pretrained does (model-00001-of-0000N.safetensors
     * and model.safetensors.index.json); default 5000000000 ("5GB",
     * transformers 4.x's default). */
    uint64_t max_shard_size;
    /* -1 (default): every tensor in the dtype the base stores it in; else a
     * rosa_dtype every floating tensor is converted to (round to nearest
     * even), config.json's torch_dtype set to match. */
    int dtype;
    /* Write into an output directory that holds files: those merge writes
     * are replaced and the old weight files (model*.safetensors and their
     * index) removed; anything else is left.  Default 0: refused. */
    int overwrite;
} rosa_merge_options;
void rosa_merge_options_default(rosa_merge_options *o);
/* Writes a model directory as complete as model_dir: m's tensors with the
 * adapted ones merged, in o's dtype and shards, config.json (torch_dtype
 * updated when converted), and every other file of model_dir except weight
 * files (*.safetensors, *.bin, *.pt, *.pth, *.ckpt, *.h5, *.msgpack,
 * *.gguf, *.onnx and *.index.json) and subdirectories copied as they are
 * (tokenizer files, tokenizer.model, chat template, licence, README).
 * Refused for a method that cannot merge, an out_dir that is, holds or lies
 * inside model_dir, and an out_dir that holds files (unless o->overwrite);
 * a refused merge writes nothing.  o NULL: defaults. */
int rosa_adapter_merge_write(const rosa_model *m, const char *model_dir, const rosa_adapter *a, const char *out_dir,
                             const rosa_merge_options *o);

/* ----------------------------------------------------------------- training */

/* Dynamic layer selection (DLS), recorded with an adapter trained with it. */
typedef struct {
    int enabled;
    int interval;     /* u, default 50 */
    int warmup;       /* default = interval */
    float k_ratio;    /* default 0.5 */
    float p_exploit;  /* default 0.8 */
    float score_ema;  /* default 0 */
    int zero_grad;    /* inactive layers: 0 skip (default), 1 zero their gradients */
    uint64_t seed;
    int full_backward; /* always run the backward to layer 0 (for comparison; not saved) */
} rosa_dls_options;
void rosa_dls_options_default(rosa_dls_options *o);
/* 0, or -1 naming the first value out of range. */
int rosa_dls_options_check(const rosa_dls_options *o);

/* AdamW, torch.optim.AdamW semantics. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} rosa_adamw_options;
void rosa_adamw_options_default(rosa_adamw_options *o);

/* transformers' learning-rate schedules: "linear", "cosine", "constant". */
typedef enum { ROSA_SCHED_LINEAR, ROSA_SCHED_COSINE, ROSA_SCHED_CONSTANT } rosa_schedule;
int rosa_parse_schedule(const char *s, rosa_schedule *out);

typedef enum { ROSA_LOSS_MEAN, ROSA_LOSS_TOKEN } rosa_loss_norm;
typedef enum { ROSA_NAN_STOP, ROSA_NAN_SKIP } rosa_nan_policy;

typedef struct {
    const char *model_dir, *data_path, *output_dir;
    const char *init_adapter; /* start from these adapter values (fresh optimizer) */
    int resume;               /* continue from the newest checkpoint in output_dir */
    int overwrite;
    const rosa_peft_method *method; /* the PEFT method */
    const void *method_opts;  /* its options (NULL: its defaults) */
    rosa_dls_options dls;     /* dls.enabled turns layer selection on */
    rosa_adamw_options adam;
    rosa_schedule schedule;
    int warmup_steps;
    double warmup_ratio;      /* > 0: the warm-up is ceil(ratio x total steps), as HF Trainer's, not warmup_steps
                                 (a double, as Python's float: 0.1 x 100 steps is 10, not 11) */
    int batch_size, micro_batch_size;
    int epochs;               /* used when max_steps <= 0 */
    int max_steps;
    float max_grad_norm;      /* 0 = no clipping */
    uint64_t seed;
    rosa_data_options data;
    int shuffle;
    int val_set_size, eval_steps, save_steps;
    rosa_loss_norm loss_norm;
    rosa_nan_policy nan_policy;
    int skip_bad_records;
    double max_memory;        /* bytes; 0 = no limit */
    int quiet, plain_log;
    rosa_dtype compute;       /* ROSA_DTYPE_F32 (exact) or ROSA_DTYPE_BF16 (frozen GEMMs in BF16) */
    rosa_quant quantize;      /* ROSA_QUANT_INT8: int8 frozen projections (rosa_model_quantize), FP32 compute only */
    int recompute;            /* per-layer activation checkpointing */
    int save_total_limit;     /* keep the newest N checkpoints (0: all), and the best with load_best_model_at_end */
    int load_best_model_at_end; /* the final adapter is the checkpoint of the lowest validation loss */
    const char *base_model_name; /* adapter_config.json base_model_name_or_path (NULL: model_dir, made absolute) */
    int argc;                 /* the command line, recorded in training_args.json (argc 0: none) */
    char *const *argv;
} rosa_train_options;

void rosa_train_options_default(rosa_train_options *o);
/* The warm-up steps of a run of total_steps: warmup_steps, or from warmup_ratio. */
int rosa_train_warmup_steps(const rosa_train_options *o, int64_t total_steps);

/* The memory plan of rosa_train with options o on the model of mi, whose
 * longest example has Tmax tokens: a is the adapter (its structure; values
 * not needed), or NULL for o's method on mi's shapes.  process is this
 * process's resident memory now (with the tokenizer and data loaded, that is
 * the run's).  0, or -1 when the method does not fit the model. */
int rosa_plan_train(const rosa_model_info *mi, const rosa_train_options *o, const rosa_adapter *a, int Tmax,
                    rosa_memory_plan *p);
/* What would bring a plan above limit bytes under it: the options of o to
 * change, tried one by one and in pairs (--micro-batch-size, --recompute,
 * --cutoff-len, --dtype bf16, --quantize int8), into buf ("" when nothing does). */
void rosa_plan_train_advice(const rosa_model_info *mi, const rosa_train_options *o, const rosa_adapter *a, int Tmax,
                            double limit, char *buf, size_t n);
/* Checks every number of o against its range (AdamW's as torch.optim.AdamW
 * checks them; sizes, steps, DLS) and the method's options against the
 * model's config.json; 0, or -1 naming the first option at fault by its
 * command-line flag.  rosa_train runs it first. */
int rosa_train_options_check(const rosa_train_options *o);

/* How a training that returned 0 ended. */
typedef struct {
    int interrupted;      /* stopped by rosa_train_request_stop, after saving a checkpoint */
    int64_t last_step;    /* the last step done (the checkpoint's) */
    int skipped_steps;    /* steps skipped under --nan-policy skip */
} rosa_train_result;

/* Runs a whole training; returns 0 (res, which may be NULL, says how it
 * ended) or -1 on error. */
int rosa_train(const rosa_train_options *o, rosa_train_result *res);

/* Asks a running rosa_train to save a checkpoint and stop at the end of the
 * current step.  Safe from any thread and from a signal handler. */
void rosa_train_request_stop(void);

/* The training pass without an optimizer, for measuring loss: activations
 * for micro-batches of up to Bmax x Tmax tokens; a may be NULL (the base
 * model alone). */
typedef struct rosa_train_ctx rosa_train_ctx;
rosa_train_ctx *rosa_train_ctx_new(const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute);
void rosa_train_ctx_free(rosa_train_ctx *t);

/* Loss of examples idx[0..n) of d under the current adapter, in micro-batches
 * of `micro` (a record's loss never depends on its batch mates): the mean over
 * all label tokens, the mean of the per-example means, and (when not NULL)
 * each example's mean CE (NaN for an example without label tokens). */
int rosa_eval_loss(rosa_train_ctx *t, const rosa_dataset *d, const int32_t *idx, int n, int micro,
                   double *token_mean, double *example_mean, double *per_example);

/* ------------------------------------------------------------- evaluation */

typedef enum { ROSA_TASK_COMMONSENSE = 1, ROSA_TASK_MATH = 2 } rosa_task_type;

/* How an answer is extracted from a response. */
typedef enum {
    ROSA_RULE_LABELS = 1, /* first match of label1|label2|... (fixed list, or the record's "Answer format:") */
    ROSA_RULE_NUMBER = 2, /* last number, within 0.001 of the label */
    ROSA_RULE_LETTER = 3  /* first capital A-E (AQuA) */
} rosa_answer_rule;

/* One benchmark. */
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

/* The 15 built-in tasks in table order (commonsense first, then math). */
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

/* Which beam search: LLM-Adapters' (its stopping rule) or transformers'. */
typedef enum { ROSA_BEAM_LLM_ADAPTERS = 0, ROSA_BEAM_HF = 1 } rosa_beam_rule;
/* "llm-adapters" / "hf"; parse returns -1 for an unknown name. */
const char *rosa_beam_rule_name(rosa_beam_rule r);
int rosa_beam_rule_parse(const char *s, rosa_beam_rule *out);

typedef enum { ROSA_EVAL_GENERATE = 0, ROSA_EVAL_LOGLIK = 1 } rosa_eval_mode;

typedef struct {
    rosa_eval_mode mode;
    int num_beams;          /* default 4; 1 = greedy */
    rosa_beam_rule rule;    /* default llm-adapters */
    int max_new_tokens;     /* 0 = per task type (32 commonsense, 256 math) */
    int batch_size;         /* prompts decoded together (default 1) */
    /* A prompt longer than this many tokens is refused (0: the default, 4 x
     * the model's max_position_embeddings): the reference scripts do not
     * truncate, and far past its context a model only costs time. */
    int max_prompt_tokens;
    int limit;              /* first N records of each task (0 = all) */
    uint64_t seed;          /* recorded; decoding is deterministic */
    const char *predictions;/* JSON Lines of every example after a header naming the model, adapter and
                             * options (digests); resumed when it exists, only by a run they match */
    int quiet;              /* no progress line */
    /* recorded in the report */
    const char *model_dir, *adapter_dir;
} rosa_eval_options;

void rosa_eval_options_default(rosa_eval_options *o);

/* Results of one task. */
typedef struct {
    const rosa_task *task;
    int n;           /* examples scored */
    int correct;
    int no_answer;   /* responses where nothing could be extracted */
    int resumed;     /* of n, taken from the predictions file */
} rosa_task_result;

typedef struct {
    rosa_task_result *r;
    int n;
    double seconds;  /* wall time of the run (decoding and scoring) */
    int n_new;       /* examples computed in this run */
} rosa_eval_report;

/* Runs every task of `tasks` on m (adapter already applied).  The report is
 * filled even when some tasks have no examples.  Returns 0 or -1. */
int rosa_eval_run(rosa_model *m, const rosa_task_list *tasks, const rosa_eval_options *o, rosa_eval_report *rep);

/* Rescores saved generations without a model: JSON Lines (or a JSON array,
 * as LLM-Adapters writes) of objects with "task" (default: default_task), the
 * response ("response" or "output_pred") and the label ("label" or "answer",
 * or "index" into the task's test file); a first line that is rosa's header
 * is skipped.  Tasks are looked up in `known` (built-in tasks must be listed
 * there; see rosa_tasks_add_list with "all").  The report holds the tasks
 * seen, in the order of `known`. */
int rosa_eval_score_file(const char *path, const rosa_task_list *known, const char *default_task,
                         rosa_eval_report *rep);

/* The readable table (percent, 2 decimals) with macro and micro averages per
 * group (commonsense, math, all). */
void rosa_eval_report_print(const rosa_eval_report *rep, FILE *f);
/* The JSON report (accuracies as fractions, with counts), written atomically
 * (docs/formats.md). */
int rosa_eval_report_write_json(const rosa_eval_report *rep, const rosa_eval_options *o, const char *path,
                                const char *scored_file);
void rosa_eval_report_free(rosa_eval_report *rep);

/* ----------------------------------------------------------------- reports */

/* One self-contained HTML file from training output directories dirs[0..n)
 * (n > 1: side by side), written to path atomically (docs/report.md). */
int rosa_report_write(const char *const *dirs, int n, const char *path);

/* --------------------------------------------------- RoPE frequency analysis */

/* How large the RoPE-rotated query and key states are in each head
 * dimension, per layer (the RoSA paper's Figure 1; definitions in
 * docs/report.md).  Arrays are malloc'ed; rosa_analysis_free releases them. */
typedef struct {
    int L, Hq, Hkv, hd;
    int n_records;
    long long n_tokens;
    float r_low;
    int m;             /* low-frequency dimensions per half */
    int *dims;         /* [2m] the set D */
    double *inv_freq;  /* [hd/2] layer 0's RoPE frequencies */
    double *layer_inv_freq; /* [L][hd/2] each layer's (Gemma 3: local base on sliding layers) */
    double *q_norm, *k_norm;   /* [L][hd] */
    double *q_band, *k_band;   /* [L][hd/2] */
    double *q_share, *k_share; /* [L] */
    double *q_sumsq, *k_sumsq; /* [L][Hq][hd], [L][Hkv][hd]: the raw sums */
} rosa_analysis;

/* The lowest-frequency RoPE dimensions of a head of hd dimensions that a
 * share r_low in (0, 1] selects (RoAE's set): m = max(1, round(hd * r_low / 2))
 * of each half, dims[0..2m) = {hd/2 - m .. hd/2 - 1, hd - m .. hd - 1} (dims
 * may be NULL).  Returns m, or -1 (message set) when r_low is out of range. */
int rosa_rope_low_dims(int hd, float r_low, int *dims);

/* Called after each record (may be NULL). */
typedef void (*rosa_analyze_progress)(void *user, int done, int total, long long tokens);

/* Runs records ids[i][0..lens[i]) through m (with whatever adapter was applied
 * to it) and fills *out.  Records of length 0 are skipped. */
int rosa_analyze(rosa_model *m, const int32_t *const *ids, const int *lens, int n, float r_low,
                 rosa_analyze_progress progress, void *user, rosa_analysis *out);
void rosa_analysis_free(rosa_analysis *a);

/* What an analysis was run on, recorded in its JSON and HTML. */
typedef struct {
    const char *model, *adapter, *data; /* adapter may be NULL */
    const char *template_name;          /* "train" or "eval" */
    int cutoff_len;
    double rope_theta;
    const char *rope_type;
    const char *adapter_kind;           /* e.g. "ROSA post-rope gate", NULL without adapter */
} rosa_analysis_meta;

/* Writes the analysis to path atomically: JSON ("rosa-analyze/1") when path
 * ends in .json, else a self-contained HTML page with the plots. */
int rosa_analysis_write(const rosa_analysis *a, const rosa_analysis_meta *meta, const char *path);
/* A short table for the terminal. */
void rosa_analysis_print(const rosa_analysis *a, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
