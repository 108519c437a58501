/* adapter.c: the method-agnostic adapter: its tensor table, options, the PEFT
 * file format (adapter_config.json + adapter_model.safetensors), and putting
 * an adapter on a model for inference (merge, or hooks). */
#include "peft/peft.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "core/log.h"
#include "core/util.h"

void rosa_dls_options_default(rosa_dls_options *o) {
    memset(o, 0, sizeof *o);
    o->interval = 50;
    o->warmup = 50;
    o->k_ratio = 0.5f;
    o->p_exploit = 0.8f;
    o->seed = 42;
}

/* ------------------------------------------------------------- options */

void *rosa_peft_opts_new(const rosa_peft_method *m, const void *src) {
    void *o = rosa_calloc(1, m->opts_size, "method options");
    if (!o) return NULL;
    if (!src) {
        m->opts_default(o);
    } else if (m->opts_copy) {
        if (m->opts_copy(o, src) < 0) {
            rosa_peft_opts_free(m, o);
            return NULL;
        }
    } else {
        memcpy(o, src, m->opts_size);
    }
    return o;
}

void rosa_peft_opts_free(const rosa_peft_method *m, void *opts) {
    if (!opts) return;
    if (m->opts_free) m->opts_free(opts);
    free(opts);
}

int rosa_peft_set_option(const rosa_peft_method *m, void *opts, const char *flag, const char *value) {
    for (const rosa_peft_option *o = m->options; o && o->flag; o++) {
        if (strcmp(o->flag, flag) != 0) continue;
        char *field = (char *)opts + o->offset, *end;
        switch (o->type) {
        case PEFT_OPT_INT: {
            long v = strtol(value, &end, 10);
            if (end == value || *end || v < -2147483647L || v > 2147483647L)
                return rosa_fail("--%s expects an integer, got \"%s\"", flag, value);
            *(int *)field = (int)v;
            return 0;
        }
        case PEFT_OPT_FLOAT: {
            float v = strtof(value, &end);
            if (end == value || *end || !isfinite(v)) return rosa_fail("--%s expects a number, got \"%s\"", flag, value);
            *(float *)field = v;
            return 0;
        }
        case PEFT_OPT_FLAG: *(int *)field = strcmp(value, "0") != 0; return 0;
        case PEFT_OPT_CHOICE: {
            int i = 0;
            for (const char *c = o->choices; *c; i++) {
                size_t n = strcspn(c, "|");
                if (strlen(value) == n && strncmp(value, c, n) == 0) {
                    *(int *)field = i;
                    return 0;
                }
                c += n + (c[n] == '|');
            }
            return rosa_fail("--%s expects %s, got \"%s\"", flag, o->choices, value);
        }
        case PEFT_OPT_CUSTOM: return o->parse(opts, value);
        }
    }
    return 1;
}

int rosa_peft_set_rank(const rosa_peft_method *m, void *opts, int rank) {
    if (!m->set_rank)
        return rosa_fail("--method %s has no size hyper-parameter to choose (its trainable parameters follow from its "
                         "target modules)", m->name);
    m->set_rank(opts, rank);
    return 0;
}

int64_t rosa_peft_num_params(const rosa_peft_method *m, const rosa_config *c, const void *opts) {
    rosa_adapter a = {.method = m, .L = c->num_layers, .opts = (void *)opts};
    int64_t n = m->build(&a, c) < 0 ? -1 : (int64_t)a.n_floats;
    if (m->free_state) m->free_state(a.state);
    free(a.params);
    return n;
}

/* ------------------------------------------------------------- the table */

int rosa_adapter_add_param(rosa_adapter *a, const char *name, int layer, int rows, int cols) {
    rosa_param *p = rosa_realloc(a->params, sizeof *p * (size_t)(a->n_params + 1), "adapter table");
    if (!p) return -1;
    a->params = p;
    rosa_param *t = &a->params[a->n_params++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->layer = layer;
    t->rows = rows;
    t->cols = cols;
    t->ndim = 2;
    t->offset = a->n_floats;
    a->n_floats += (size_t)rows * (size_t)cols;
    return 0;
}

/* An adapter of method m with a copy of opts, its table built; values (zero)
 * are allocated only when with_values, and only when a file could hold them
 * (max_floats, a file's bound). */
static int alloc_values(rosa_adapter *a) {
    a->w = rosa_calloc(a->n_floats, sizeof(float), "adapter weights");
    a->g = a->w ? rosa_calloc(a->n_floats, sizeof(float), "adapter gradients") : NULL;
    return a->g ? 0 : -1;
}

static rosa_adapter *adapter_build(const rosa_peft_method *m, const void *opts, const rosa_config *c,
                                   const cJSON *config, const char *path, size_t max_floats, int with_values) {
    rosa_adapter *a = rosa_calloc(1, sizeof *a, "adapter");
    if (!a) return NULL;
    a->method = m;
    a->L = c->num_layers;
    rosa_dls_options_default(&a->dls);
    a->opts = rosa_peft_opts_new(m, opts);
    if (!a->opts) goto fail;
    if (config && m->parse_config(a, config, path, c) < 0) goto fail;
    if (m->build(a, c) < 0) goto fail;
    if (a->n_floats > max_floats) {
        rosa_fail("the adapter has %zu values but adapter_model.safetensors is only %zu bytes", a->n_floats,
                  2 * max_floats);
        goto fail;
    }
    if (with_values && alloc_values(a) < 0) goto fail;
    return a;
fail:
    rosa_adapter_free(a);
    return NULL;
}

rosa_adapter *rosa_adapter_table(const rosa_peft_method *m, const void *opts, const rosa_config *c) {
    return adapter_build(m, opts, c, NULL, NULL, SIZE_MAX, 0);
}

int rosa_adapter_init_values(rosa_adapter *a, const rosa_model *model, uint64_t seed) {
    if (!a->w && alloc_values(a) < 0) return -1;
    if (a->method->init) a->method->init(a, model, seed);
    return 0;
}

rosa_adapter *rosa_adapter_new(const rosa_peft_method *m, const void *opts, const rosa_config *c,
                               const rosa_model *model, uint64_t seed) {
    rosa_adapter *a = rosa_adapter_table(m, opts, c);
    if (a && rosa_adapter_init_values(a, model, seed) < 0) {
        rosa_adapter_free(a);
        return NULL;
    }
    return a;
}

void rosa_adapter_free(rosa_adapter *a) {
    if (!a) return;
    if (a->method->free_state) a->method->free_state(a->state);
    rosa_peft_opts_free(a->method, a->opts);
    free(a->params);
    free(a->w);
    free(a->g);
    free(a);
}

int64_t rosa_adapter_num_params(const rosa_adapter *a) { return (int64_t)a->n_floats; }

int rosa_adapter_copy_values(rosa_adapter *dst, const rosa_adapter *src) {
    if (dst->method != src->method || dst->n_floats != src->n_floats || dst->n_params != src->n_params)
        return rosa_fail("adapter shapes differ (%zu vs %zu values)", dst->n_floats, src->n_floats);
    memcpy(dst->w, src->w, sizeof(float) * dst->n_floats);
    return 0;
}

void rosa_adapter_describe(const rosa_adapter *a, char *buf, size_t n) {
    if (a->method->describe) a->method->describe(a, buf, n);
    else snprintf(buf, n, "%s", a->method->title);
}

const rosa_peft_method *rosa_adapter_method(const rosa_adapter *a) { return a->method; }

int rosa_adapter_mergeable(const rosa_adapter *a) {
    return a->method->merge != NULL && (!a->method->can_merge || a->method->can_merge(a));
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

void rosa_adapter_warn_rank(const rosa_adapter *a) {
    for (int i = 0; i + 1 < a->n_params; i++) {
        const rosa_param *A = &a->params[i], *B = &a->params[i + 1];
        if (!ends_with(A->name, "lora_A.weight") || !ends_with(B->name, "lora_B.weight")) continue;
        int r = A->rows, lim = A->cols < B->rows ? A->cols : B->rows;
        if (r <= lim) continue;
        const char *module = A->name + (strncmp(A->name, "base_model.model.", 17) == 0 ? 17 : 0);
        rosa_log(ROSA_LOG_WARN, "%s rank %d is above min(in, out) = %d of %.*s: the product B A has rank at most %d, "
                                "so the extra rank adds parameters without capacity",
                 a->method->title, r, lim, (int)(strlen(module) - strlen(".lora_A.weight")), module, lim);
        return; /* once: the first module says it */
    }
}

/* The value of option o in opts as its flag takes it ("16", "q_proj,v_proj"). */
static void option_text(const rosa_peft_method *m, const rosa_peft_option *o, const void *opts, char *buf, size_t n) {
    const char *field = (const char *)opts + o->offset;
    switch (o->type) {
    case PEFT_OPT_INT: snprintf(buf, n, "%d", *(const int *)field); return;
    case PEFT_OPT_FLOAT: snprintf(buf, n, "%g", (double)*(const float *)field); return;
    case PEFT_OPT_FLAG: snprintf(buf, n, "%s", *(const int *)field ? "true" : "false"); return;
    case PEFT_OPT_CHOICE: {
        const char *c = o->choices;
        for (int k = *(const int *)field; k > 0 && c; k--) c = strchr(c, '|'), c = c ? c + 1 : NULL;
        snprintf(buf, n, "%.*s", c ? (int)strcspn(c, "|") : 1, c ? c : "?");
        return;
    }
    case PEFT_OPT_CUSTOM:
        if (!m->format_option || m->format_option(opts, o->flag, buf, n) < 0) snprintf(buf, n, "?");
        return;
    }
}

int rosa_adapter_check_given(const rosa_adapter *a, const rosa_peft_method *m, const void *opts,
                             const char *const *given) {
    for (int i = 0; given[i]; i++)
        if (strcmp(given[i], "method") == 0 && m != a->method)
            return rosa_fail("--init-adapter holds a %s adapter, --method %s another: give one (the adapter's file "
                             "decides its method)", a->method->title, m->name);
    if (m != a->method) return 0;
    /* Compared after taking the command line's runtime options, which may differ. */
    void *mine = rosa_peft_opts_new(m, a->opts);
    if (!mine) return -1;
    if (m->runtime_from) m->runtime_from(mine, opts);
    int rc = 0;
    for (int i = 0; given[i] && rc == 0; i++)
        for (const rosa_peft_option *o = m->options; o->flag && rc == 0; o++) {
            if (strcmp(o->flag, given[i]) != 0) continue;
            char file[512], asked[512];
            option_text(m, o, mine, file, sizeof file);
            option_text(m, o, opts, asked, sizeof asked);
            if (strcmp(file, asked) != 0)
                rc = rosa_fail("--init-adapter holds %s %s, --%s %s: give one (the adapter's file decides its "
                               "structure)", o->flag, file, o->flag, asked);
        }
    rosa_peft_opts_free(m, mine);
    return rc;
}

float rosa_adapter_analysis_r_low(const rosa_adapter *a) {
    return a->method->analysis_r_low ? a->method->analysis_r_low(a) : NAN;
}

rosa_hook rosa_adapter_hook(rosa_adapter *a) { return (rosa_hook){a->method->hooks, a}; }

void rosa_adapter_take_norm_grads(rosa_adapter *a, const float *norm_grad, int n_norms, int D, const uint8_t *active) {
    if (a->method->take_norm_grads) a->method->take_norm_grads(a, norm_grad, n_norms, D, active);
}

/* ------------------------------------------------------------- files */

double rosa_adapter_extra_loss(rosa_adapter *a, float weight, const uint8_t *active) {
    return a->method->extra_loss ? a->method->extra_loss(a, weight, active) : 0.0;
}

int rosa_adapter_after_step(rosa_adapter *a, int64_t t) { return a->method->after_step ? a->method->after_step(a, t) : 0; }

const char *rosa_adapter_no_resume(const rosa_adapter *a) { return a->method->no_resume ? a->method->no_resume(a) : NULL; }

int rosa_adapter_save(const rosa_adapter *a, const char *dir, const char *base_model) {
    /* The loader refuses a non-finite value: such an adapter is never written (nothing is, then). */
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        for (size_t k = 0; k < (size_t)p->rows * p->cols; k++)
            if (!isfinite(a->w[p->offset + k]))
                return rosa_fail("%s: not saved: tensor \"%s\" holds a non-finite value (%g at [%zu])", dir, p->name,
                                 (double)a->w[p->offset + k], k);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return rosa_fail("%s: cannot create directory: %s", dir, strerror(errno));
    cJSON *j = cJSON_CreateObject();
    if (!j) return rosa_fail("out of memory");
    cJSON_AddStringToObject(j, "base_model_name_or_path", base_model ? base_model : "");
    a->method->write_config(a, j);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return rosa_fail("out of memory");
    char *path = rosa_path_join(dir, "adapter_config.json");
    int rc = path ? rosa_write_file_atomic(path, text, strlen(text)) : -1;
    free(path);
    free(text);
    if (rc < 0) return -1;

    int n_extra = a->method->write_extra ? a->method->write_extra(a, NULL, NULL) : 0;
    st_write_entry *e = rosa_calloc((size_t)(a->n_params + n_extra), sizeof *e, "adapter tensors");
    int64_t *shapes = rosa_calloc((size_t)(a->n_params + n_extra) * 2, sizeof(int64_t), "adapter shapes");
    float **packed = rosa_calloc((size_t)a->n_params + 1, sizeof *packed, "adapter tensors");
    rc = e && shapes && packed ? 0 : -1;
    for (int i = 0; rc == 0 && i < a->n_params; i++) {
        shapes[2 * i] = a->params[i].rows;
        shapes[2 * i + 1] = a->params[i].cols;
        if (a->params[i].ndim == 1) shapes[2 * i] = a->params[i].cols;
        const float *v = a->w + a->params[i].offset;
        int k = a->method->saved_tensor ? a->method->saved_tensor(a, i, &packed[i], &shapes[2 * i]) : 0;
        if (k < 0) rc = -1;
        if (k > 0) v = packed[i];
        e[i] = (st_write_entry){a->params[i].name, ST_F32, a->params[i].ndim, &shapes[2 * i], v};
    }
    if (rc == 0 && n_extra) a->method->write_extra(a, e + a->n_params, shapes + 2 * a->n_params);
    path = rc == 0 ? rosa_path_join(dir, "adapter_model.safetensors") : NULL;
    rc = path ? st_write_file(path, e, a->n_params + n_extra, "{\"format\": \"pt\"}") : -1;
    for (int i = 0; packed && i < a->n_params; i++) free(packed[i]);
    free(packed);
    free(path);
    free(e);
    free(shapes);
    return rc;
}

/* A tensor name as rosa writes it: PEFT names the layers of a
 * Gemma3ForConditionalGeneration's text model
 * base_model.model.model.language_model.layers. (transformers >= 4.52) or
 * base_model.model.language_model.model.layers.; both are rosa's
 * base_model.model.model.layers. */
static const char *canonical_name(const char *name, char *buf, size_t n) {
    static const char *const alias[] = {"base_model.model.model.language_model.layers.",
                                        "base_model.model.language_model.model.layers."};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(alias[i]);
        if (strncmp(name, alias[i], k) == 0 && snprintf(buf, n, "base_model.model.model.layers.%s", name + k) < (int)n)
            return buf;
    }
    return name;
}

/* The tensor of s whose canonical name is name. */
static const st_tensor *find_canonical(const st_set *s, const char *name) {
    const st_tensor *t = st_set_find(s, name);
    char buf[512];
    for (int i = 0; !t && i < s->n_tensors; i++)
        if (strcmp(canonical_name(s->tensors[i].name, buf, sizeof buf), name) == 0) t = &s->tensors[i];
    return t;
}

/* Reads the values of every tensor of a's table from s, and refuses a tensor
 * the table does not have (it would be silently ignored). */
static int read_values(rosa_adapter *a, const st_set *s, const char *st_path) {
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        const st_tensor *t = find_canonical(s, p->name);
        if (!t) return rosa_fail("%s: tensor \"%s\" is missing", st_path, p->name);
        int shape_ok = p->ndim == 1 ? t->ndim == 1 && t->shape[0] == p->cols
                                    : t->ndim == 2 && t->shape[0] == p->rows && t->shape[1] == p->cols;
        if (!shape_ok) {
            if (p->ndim == 1) return rosa_fail("%s: tensor \"%s\" should have shape [%d]", st_path, p->name, p->cols);
            return rosa_fail("%s: tensor \"%s\" should have shape [%d, %d]", st_path, p->name, p->rows, p->cols);
        }
        const unsigned char *src = t->data;
        float *w = a->w + p->offset;
        for (int64_t k = 0; k < st_numel(t); k++) {
            if (t->dtype == ST_F32) {
                memcpy(&w[k], src + 4 * k, 4);
            } else if (t->dtype == ST_F16 || t->dtype == ST_BF16) {
                uint16_t h;
                memcpy(&h, src + 2 * k, 2);
                w[k] = t->dtype == ST_F16 ? rosa_f16_to_f32(h) : rosa_bf16_to_f32(h);
            } else {
                return rosa_fail("%s: tensor \"%s\" has dtype %s (expected F32, F16 or BF16)", st_path, p->name,
                                 st_dtype_name(t->dtype));
            }
            if (!isfinite(w[k])) return rosa_fail("%s: tensor \"%s\" holds a non-finite value", st_path, p->name);
        }
    }
    const char *suffix = a->method->extra_suffix;
    for (int i = 0; i < s->n_tensors; i++) {
        char buf[512];
        const char *name = canonical_name(s->tensors[i].name, buf, sizeof buf);
        size_t n = strlen(name), k = suffix ? strlen(suffix) : 0;
        int known = suffix && n > k && strcmp(name + n - k, suffix) == 0; /* the method's (read_extra checks it) */
        for (int j = 0; j < a->n_params && !known; j++) known = strcmp(a->params[j].name, name) == 0;
        if (!known)
            return rosa_fail("%s: unexpected tensor \"%s\" (not selected by adapter_config.json)", st_path, name);
    }
    return a->method->read_extra ? a->method->read_extra(a, s, st_path) : 0;
}

rosa_adapter *rosa_adapter_load(const char *dir, const rosa_config *c) {
    char *cfg_path = rosa_path_join(dir, "adapter_config.json");
    char *st_path = rosa_path_join(dir, "adapter_model.safetensors");
    cJSON *j = NULL;
    rosa_adapter *a = NULL;
    st_set s = {0};
    if (!cfg_path || !st_path) goto done;
    if (!rosa_is_dir(dir)) {
        rosa_fail("%s: adapter directory not found", dir);
        goto done;
    }
    j = rosa_json_load(cfg_path);
    if (!j) goto done;
    if (!cJSON_IsObject(j)) {
        rosa_fail("%s: not a JSON object", cfg_path);
        goto done;
    }
    int err;
    const char *type = rosa_json_str_opt(j, "peft_type", cfg_path, &err);
    if (err) goto done;
    const rosa_peft_method *m = type ? rosa_peft_by_type(type) : NULL;
    if (!m) {
        rosa_fail("%s: unsupported peft_type \"%s\" (supported: %s)", cfg_path, type ? type : "", rosa_peft_types());
        goto done;
    }
    const char *task = rosa_json_str_opt(j, "task_type", cfg_path, &err);
    if (err) goto done;
    if (task && strcmp(task, "CAUSAL_LM") != 0) {
        rosa_fail("%s: task_type \"%s\" is not supported (only CAUSAL_LM)", cfg_path, task);
        goto done;
    }
    /* LLM-Adapters' released adapters, and PEFT's before safetensors, are
     * torch pickles, which run code when read: rosa reads safetensors only. */
    if (!rosa_file_exists(st_path)) {
        char *bin = rosa_path_join(dir, "adapter_model.bin");
        if (bin && rosa_file_exists(bin))
            rosa_fail("%s: a PyTorch pickle, which rosa does not read (loading one can run code); convert it once, "
                      "where PyTorch is: python3 -c \"import torch, safetensors.torch as s; "
                      "s.save_file(torch.load('%s', map_location='cpu'), '%s')\"",
                      bin, bin, st_path);
        else rosa_fail("%s: not found (an adapter directory holds adapter_config.json and adapter_model.safetensors)",
                       st_path);
        free(bin);
        goto done;
    }
    /* Every value takes at least 2 bytes of the tensor file (F16/BF16): a
     * config asking for more is refused before its values are allocated. */
    struct stat sb;
    size_t max_floats = stat(st_path, &sb) == 0 ? (size_t)sb.st_size / 2 : SIZE_MAX;
    a = adapter_build(m, NULL, c, j, cfg_path, max_floats, 1);
    if (!a) {
        if (!strstr(rosa_last_error(), cfg_path)) rosa_error_prefix("%s", cfg_path);
        goto done;
    }
    if (st_set_add_file(&s, st_path) < 0 || read_values(a, &s, st_path) < 0) {
        rosa_adapter_free(a);
        a = NULL;
    }
done:
    st_set_close(&s);
    cJSON_Delete(j);
    free(cfg_path);
    free(st_path);
    return a;
}

/* ------------------------------------------------------------- inference */

float *rosa_adapter_merged_copy(const rosa_model *m, const rosa_adapter *a, int l, int p) {
    const rosa_weight *w = &m->layers[l].proj[p];
    size_t n = (size_t)w->out * (size_t)w->in;
    float *out = rosa_malloc(sizeof(float) * n, "merged weight");
    if (!out) return NULL;
    if (rosa_weight_copy_f32(w, out) < 0) {
        free(out);
        return NULL;
    }
    if (a->method->merge(a, l, p, out, w->out, w->in) < 0) {
        free(out);
        return NULL;
    }
    /* Finite adapter values can still overflow the sum: a weight of inf is refused, never written or run. */
    for (size_t k = 0; k < n; k++)
        if (!isfinite(out[k])) {
            rosa_fail("model.layers.%d.%s.%s.weight: merging the adapter gives a non-finite value (%g at [%zu]): "
                      "the adapter's delta overflows F32", l, rosa_proj_parent(p), rosa_proj_names[p], (double)out[k], k);
            free(out);
            return NULL;
        }
    return out;
}

/* Merges a into m's FP32 weights, the projections it adapts. */
static int merge_into(rosa_model *m, const rosa_adapter *a) {
    for (int l = 0; l < a->L; l++)
        for (int p = 0; p < N_PROJ; p++) {
            if (!a->method->adapts(a, l, p)) continue;
            float *w = rosa_adapter_merged_copy(m, a, l, p);
            int rc = w ? rosa_model_replace_weight(m, l, p, w) : -1;
            free(w);
            if (rc < 0) return -1;
        }
    return 0;
}

int rosa_adapter_apply(rosa_model *m, rosa_adapter *a) {
    if (a->L != m->cfg.num_layers) return rosa_fail("the adapter has %d layers, the model %d", a->L, m->cfg.num_layers);
    /* On an int8 base the adapter stays beside it, as it was trained
     * (QLoRA's way): merged, its delta would be rounded to the blocks'
     * steps, or the merged rows held in FP32, the memory int8 saves. */
    if (!rosa_adapter_mergeable(a) || m->quant) return rosa_model_attach_hook(m, rosa_adapter_hook(a));
    /* Merged weights must be packed again in BF16 mode. */
    rosa_dtype compute = m->compute;
    if (compute != ROSA_DTYPE_F32 && rosa_model_set_compute(m, ROSA_DTYPE_F32) < 0) return -1;
    if (merge_into(m, a) < 0) return -1;
    if (rosa_model_set_compute(m, compute) < 0) return -1;
    /* Norm weights a method replaces (LN-Tuning) are not projections: its
     * hook hands them to the block, which costs nothing. */
    return a->method->hooks->norm_weight ? rosa_model_attach_hook(m, rosa_adapter_hook(a)) : 0;
}

