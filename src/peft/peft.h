/* peft.h: the table of PEFT methods and the method-agnostic adapter.
 *
 * An adapter is a flat table of trainable tensors (rosa_param) carved from
 * one value buffer and one gradient buffer: the optimizer, clipping,
 * checkpoints and the PEFT file format work on that table alone.  What a
 * method adds (its options and their defaults, its adapter_config.json keys,
 * its tensors and their initialisation, what it does to the model) is one
 * rosa_peft_method in one file of src/peft/, listed in registry.c.  Nothing
 * outside src/peft/ names a method.  The part of this that programs use
 * (finding a method, options, adapters: load, save, apply, merge) is public,
 * in rosa_train.h; here are the method table and the adapter's insides. */
#ifndef ROSA_PEFT_H
#define ROSA_PEFT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "model/block.h"
#include "rosa.h"
#include "rosa_train.h"

/* One trainable tensor: rows x cols floats at `offset` in the flat buffers. */
typedef struct {
    char name[128]; /* PEFT name, e.g. base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight */
    int layer;      /* -1: outside the layers (always trained under DLS) */
    int rows, cols;
    int ndim;       /* 2, or 1 for a vector (rows = 1) */
    size_t offset;
} rosa_param;

struct rosa_adapter {
    const rosa_peft_method *method;
    int L;                  /* decoder layers of the base model */
    void *opts;             /* the method's options (method->opts_size bytes) */
    void *state;            /* the method's own tables (method->free_state) */
    rosa_dls_options dls;   /* how it was trained, for methods that record it */
    rosa_param *params;
    int n_params;
    size_t n_floats;
    float *w, *g;           /* [n_floats] values and gradients */
};

/* A warning when a low-rank pair (PEFT's lora_A [r, in], lora_B [out, r], the
 * layout every method of the table uses) has r above min(in, out): B A has
 * rank at most min(in, out), so the rest adds parameters, not capacity. */
void rosa_adapter_warn_rank(const rosa_adapter *a);

struct rosa_peft_method {
    const char *name;        /* the --method value, e.g. "lora" */
    const char *peft_type;   /* adapter_config.json "peft_type", e.g. "LORA" */
    const char *title;       /* e.g. "LoRA", in reports */
    size_t opts_size;
    void (*opts_default)(void *opts);       /* the one place its defaults live */
    int (*opts_copy)(void *dst, const void *src); /* deep copy (NULL: a plain copy) */
    void (*opts_free)(void *opts);          /* its owned members (NULL: none) */
    const rosa_peft_option *options;        /* its flags, {0}-terminated */
    /* The value of its PEFT_OPT_CUSTOM option `flag` in opts, as the flag
     * takes it (for training_args.json); 0, or -1 for no such option. */
    int (*format_option)(const void *opts, const char *flag, char *buf, size_t n);
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
    /* Takes the step's norm-weight gradients [L][n_norms][D] of active layers,
     * then the final norm's [D], as its own (a method that trains norm
     * weights; NULL otherwise). */
    void (*take_norm_grads)(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active);
    /* Whether it changes projection p of layer l (required with merge). */
    int (*adapts)(const rosa_adapter *a, int layer, int p);
    /* W[out][in] += the adapter's delta of projection p of layer l (one it
     * adapts); returns 0 or -1.  NULL: not mergeable, its hooks stay on at
     * inference. */
    int (*merge)(const rosa_adapter *a, int layer, int p, float *W, int out, int in);
    /* Whether this adapter merges into its model (NULL: whenever merge is
     * set).  IA3 cannot where it scales the output of a projection with a
     * bias (merge writes only W): there its hooks stay on. */
    int (*can_merge)(const rosa_adapter *a);
    const rosa_hook_ops *hooks; /* what it does in the decoder block */
    /* Tensors a method keeps in its file besides its trained values (SHiRA's
     * indices), named ...extra_suffix, at most 2-D (NULL: none).  write_extra
     * fills e[0..) with shapes[2 per entry] pointing into its state and
     * returns how many (e NULL: only the count); read_extra takes them from a
     * loaded file, where the method may find them or not. */
    const char *extra_suffix;
    /* Training hooks (NULL: none).  extra_loss: a term of the method's own
     * added to the step's loss (AdaLoRA's orthogonality), `weight` times it:
     * returns that and adds its gradient into a->g for the tensors of layers
     * with active[l] (NULL = all); NAN on error.  after_step: after the
     * optimizer's update of 0-based step t, with the step's clipped gradients
     * still in a->g (AdaLoRA's rank allocation); 0 or -1.  no_resume: why a
     * run of this adapter cannot be resumed from a checkpoint, or NULL. */
    double (*extra_loss)(rosa_adapter *a, float weight, const uint8_t *active);
    int (*after_step)(rosa_adapter *a, int64_t t);
    const char *(*no_resume)(const rosa_adapter *a);
    /* What the file holds of tensor i when that is not the table's tensor
     * (AdaLoRA after pruning: the kept ranks only): 1 with *out (malloc'ed)
     * and shape[2] set, 0 to save it as it is, -1 on error (NULL: always 0). */
    int (*saved_tensor)(const rosa_adapter *a, int i, float **out, int64_t *shape);
    int (*write_extra)(const rosa_adapter *a, st_write_entry *e, int64_t *shapes);
    int (*read_extra)(rosa_adapter *a, const st_set *s, const char *path);
};

/* ------------------------------------------------------------- adapters */

/* What rosa_adapter_new would make, without values (w and g NULL): the
 * tensor table and the method's state, for planning memory before the
 * values are allocated; rosa_adapter_init_values then allocates and
 * initialises them as rosa_adapter_new does. */
rosa_adapter *rosa_adapter_table(const rosa_peft_method *m, const void *opts, const rosa_config *c);
int rosa_adapter_init_values(rosa_adapter *a, const rosa_model *model, uint64_t seed);

/* Appends a 2-D tensor to the table (for a method's build; set ndim = 1 on
 * the entry for a vector of `cols` values). */
int rosa_adapter_add_param(rosa_adapter *a, const char *name, int layer, int rows, int cols);
/* Copies values of `src` into `dst` (same method and shapes). */
int rosa_adapter_copy_values(rosa_adapter *dst, const rosa_adapter *src);
/* A copy of projection p of layer l of m's FP32 weights with a's delta
 * merged (malloc'ed); NULL (error set) when a merged value is not finite. */
float *rosa_adapter_merged_copy(const rosa_model *m, const rosa_adapter *a, int l, int p);
/* The hook that runs a at the decoder block's hook points. */
rosa_hook rosa_adapter_hook(rosa_adapter *a);

/* After a step's backward: hands the norm-weight gradients to the method
 * (when it trains norms), for layers with active[l] (NULL = all). */
void rosa_adapter_take_norm_grads(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active);
/* The method's training hooks (0 when it has none): its loss term of the
 * step, weighted, with its gradient (NAN on error); the hook after the
 * optimizer's update of step t; why a run cannot resume (NULL: it can). */
double rosa_adapter_extra_loss(rosa_adapter *a, float weight, const uint8_t *active);
int rosa_adapter_after_step(rosa_adapter *a, int64_t t);
const char *rosa_adapter_no_resume(const rosa_adapter *a);

#endif
