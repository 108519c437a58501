/* peft.h: the table of PEFT methods and the method-agnostic adapter.
 *
 * An adapter is a flat table of trainable tensors (rosa_param) carved from
 * one value buffer and one gradient buffer: the optimizer, clipping,
 * checkpoints and the PEFT file format work on that table alone.  What a
 * method adds (its options and their defaults, its adapter_config.json keys,
 * its tensors and their initialisation, what it does to the model) is one
 * rosa_peft_method in one file of src/peft/, listed in registry.c.  Nothing
 * outside src/peft/ names a method. */
#ifndef ROSA_PEFT_H
#define ROSA_PEFT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "model/block.h"
#include "rosa.h"

struct rosa_model;
typedef struct rosa_model rosa_model;
typedef struct rosa_peft_method rosa_peft_method;

/* One trainable tensor: rows x cols floats at `offset` in the flat buffers. */
typedef struct {
    char name[128]; /* PEFT name, e.g. base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight */
    int layer;
    int rows, cols;
    int ndim;       /* 2, or 1 for a vector (rows = 1) */
    size_t offset;
} rosa_param;

/* Dynamic layer selection (train/dls.c), recorded with an adapter trained with it. */
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

typedef struct rosa_adapter {
    const rosa_peft_method *method;
    int L;                  /* decoder layers of the base model */
    void *opts;             /* the method's options (method->opts_size bytes) */
    void *state;            /* the method's own tables (method->free_state) */
    rosa_dls_options dls;   /* how it was trained, for methods that record it */
    rosa_param *params;
    int n_params;
    size_t n_floats;
    float *w, *g;           /* [n_floats] values and gradients */
} rosa_adapter;

/* A command-line option of a method: --flag VALUE sets a field of its options. */
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

struct rosa_peft_method {
    const char *name;        /* the --method value, e.g. "lora" */
    const char *peft_type;   /* adapter_config.json "peft_type", e.g. "LORA" */
    const char *title;       /* e.g. "LoRA", in reports */
    size_t opts_size;
    void (*opts_default)(void *opts);       /* the one place its defaults live */
    int (*opts_copy)(void *dst, const void *src); /* deep copy (NULL: a plain copy) */
    void (*opts_free)(void *opts);          /* its owned members (NULL: none) */
    const rosa_peft_option *options;        /* its flags, {0}-terminated */
    void (*set_rank)(void *opts, int rank); /* --param-budget */
    /* Keeps from `from` the options that do not change the tensors (dropout):
     * an --init-adapter takes its structure from its file, those from the CLI. */
    void (*runtime_from)(void *opts, const void *from);
    /* adapter_config.json: read its keys into a->opts (at their defaults on
     * entry; and into a->dls for a method that records DLS), write them. */
    int (*parse_config)(rosa_adapter *a, const cJSON *j, const char *path, const rosa_config *c);
    void (*write_config)(const rosa_adapter *a, cJSON *j);
    /* Fills the tensor table (rosa_adapter_add_param) and a->state from a->opts. */
    int (*build)(rosa_adapter *a, const rosa_config *c);
    void (*free_state)(void *state);
    /* Fresh values from seed (the table is built, values zero). */
    void (*init)(rosa_adapter *a, const rosa_model *m, uint64_t seed);
    /* One line for reports and `rosa analyze`, e.g. "LoRA r 8 on q_proj,v_proj". */
    void (*describe)(const rosa_adapter *a, char *buf, size_t n);
    /* The r_low a frequency analysis of this adapter defaults to (NULL: none). */
    float (*analysis_r_low)(const rosa_adapter *a);
    /* Takes the step's norm-weight gradients [L][n_norms][D] of active layers
     * as its own (a method that trains norm weights; NULL otherwise). */
    void (*take_norm_grads)(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active);
    /* Whether it changes projection p of layer l (required with merge). */
    int (*adapts)(const rosa_adapter *a, int layer, int p);
    /* W[out][in] += the adapter's delta of projection p of layer l (one it
     * adapts); returns 0 or -1.  NULL: not mergeable, its hooks stay on at
     * inference. */
    int (*merge)(const rosa_adapter *a, int layer, int p, float *W, int out, int in);
    const rosa_hook_ops *hooks; /* what it does in the decoder block */
};

/* ------------------------------------------------------------- registry */

/* The method of a --method name (aliases included, e.g. "rosa" = RoAE with
 * DLS: *with_dls set), or NULL. */
const rosa_peft_method *rosa_peft_find(const char *name, int *with_dls);
/* The k-th method of the table (each once), NULL past the end. */
const rosa_peft_method *rosa_peft_at(int k);
/* The method of a peft_type, or NULL. */
const rosa_peft_method *rosa_peft_by_type(const char *peft_type);
/* How reports name a run of method m, with or without DLS ("LoRA + DLS",
 * "RoSA (RoAE + DLS)"). */
const char *rosa_peft_display_name(const rosa_peft_method *m, int with_dls);
/* "lora, roae, rosa" / "LORA, ROSA" for messages and help. */
const char *rosa_peft_names(void);
const char *rosa_peft_types(void);

/* ------------------------------------------------------------- options */

/* A fresh options block of method m at its defaults, or a copy of src when
 * it is not NULL (free with rosa_peft_opts_free). */
void *rosa_peft_opts_new(const rosa_peft_method *m, const void *src);
void rosa_peft_opts_free(const rosa_peft_method *m, void *opts);
/* Sets the option of flag `flag` from its command-line value ("1" for a flag).
 * Returns 0, -1 with a message, or 1 when m has no such option. */
int rosa_peft_set_option(const rosa_peft_method *m, void *opts, const char *flag, const char *value);
/* Trainable parameters of an adapter of method m with opts on config c. */
int64_t rosa_peft_num_params(const rosa_peft_method *m, const rosa_config *c, const void *opts);

/* ------------------------------------------------------------- adapters */

/* A new adapter on config c, initialised as the method does from seed; opts
 * NULL = the method's defaults.  model (may be NULL for a method whose
 * initialisation does not read the base weights, such as LoRA) is the base. */
rosa_adapter *rosa_adapter_new(const rosa_peft_method *m, const void *opts, const rosa_config *c,
                               const rosa_model *model, uint64_t seed);
void rosa_adapter_free(rosa_adapter *a);
/* Appends a 2-D tensor to the table (for a method's build; set ndim = 1 on
 * the entry for a vector of `cols` values). */
int rosa_adapter_add_param(rosa_adapter *a, const char *name, int layer, int rows, int cols);
int64_t rosa_adapter_num_params(const rosa_adapter *a);
/* Copies values of `src` into `dst` (same method and shapes). */
int rosa_adapter_copy_values(rosa_adapter *dst, const rosa_adapter *src);
void rosa_adapter_describe(const rosa_adapter *a, char *buf, size_t n);
/* The hook that runs a at the decoder block's hook points. */
rosa_hook rosa_adapter_hook(rosa_adapter *a);

/* Writes dir/adapter_config.json and dir/adapter_model.safetensors (PEFT
 * layout, F32), each atomically. */
int rosa_adapter_save(const rosa_adapter *a, const char *dir, const char *base_model);
/* Reads an adapter directory written by rosa or PEFT and checks it against
 * the model config; unsupported keys are refused by name. */
rosa_adapter *rosa_adapter_load(const char *dir, const rosa_config *c);

/* Puts a on the model for inference: merged into the weights when the
 * method can (FP32 copies owned by the model; BF16 mode packs them again),
 * else attached as hooks (a must then outlive m). */
int rosa_adapter_apply(rosa_model *m, rosa_adapter *a);
/* Writes a model directory: m's files with the adapted tensors merged (in
 * their stored dtype), config, tokenizer and generation files copied.
 * Refused for a method that cannot merge. */
int rosa_adapter_merge_write(const rosa_model *m, const char *model_dir, const rosa_adapter *a, const char *out_dir);

/* After a step's backward: hands the norm-weight gradients to the method
 * (when it trains norms), for layers with active[l] (NULL = all). */
void rosa_adapter_take_norm_grads(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active);

#endif
