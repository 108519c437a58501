/* model.c: loading a Hugging Face model directory into a rosa_model. */
#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "arch/config.h"
#include "core/log.h"
#include "model/ops.h"
#include "core/util.h"

int rosa_model_own(rosa_model *m, void *p) {
    void **o = rosa_realloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1), "buffer list");
    if (!o) return -1;
    m->owned = o;
    m->owned[m->n_owned++] = p;
    return 0;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Hands the whole pages inside [p, p + bytes) back to the kernel.  The caller
 * forgets the pointer: anonymous pages read back as zeros (mapped ones as the
 * file again). */
static void release_pages(const void *p, size_t bytes) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)p + page - 1) & ~(page - 1),
              hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Looks up a tensor and checks its shape and dtype; counts its parameters. */
static const st_tensor *find_tensor(rosa_model *m, const char *dir, const char *name, int ndim, int64_t d0,
                                    int64_t d1, int required, int *err) {
    const st_tensor *t = st_set_find(&m->weights, name);
    char alt[320];
    for (int i = 1; !t && rosa_arch_weight_name(&m->cfg, name, i, alt, sizeof alt); i++)
        t = st_set_find(&m->weights, alt);
    if (!t) {
        if (required) {
            rosa_fail("%s: tensor \"%s\" is missing from the weights", dir, name);
            *err = 1;
        }
        return NULL;
    }
    int64_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[96], exp[96];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(exp, sizeof exp, ndim, want);
        rosa_fail("%s: tensor \"%s\" has shape %s but config.json implies %s", m->weights.paths[t->file], name, got,
                  exp);
        *err = 1;
        return NULL;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        rosa_fail("%s: tensor \"%s\" has dtype %s (expected F32, F16 or BF16)", m->weights.paths[t->file], name,
                  st_dtype_name(t->dtype));
        *err = 1;
        return NULL;
    }
    m->n_params += st_numel(t);
    return t;
}

/* A tensor's fp32 data: the mapped bytes themselves when stored as aligned
 * F32, else a converted copy (whose source pages are released: read once). */
static const float *to_f32(rosa_model *m, const st_tensor *t, int *err) {
    int64_t n = st_numel(t);
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        m->weight_bytes += (int64_t)t->nbytes;
        return t->data;
    }
    float *f = rosa_malloc(sizeof(float) * (size_t)n, t->name);
    if (!f || rosa_model_own(m, f) < 0) {
        free(f);
        *err = 1;
        return NULL;
    }
    const unsigned char *src = t->data;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&f[i], src + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f[i] = t->dtype == ST_F16 ? rosa_f16_to_f32(h) : rosa_bf16_to_f32(h);
        }
    }
    release_pages(t->data, t->nbytes);
    m->weight_bytes += (int64_t)sizeof(float) * n;
    return f;
}

static const float *tensor(rosa_model *m, const char *dir, const char *name, int ndim, int64_t d0, int64_t d1,
                           int required, int *err) {
    const st_tensor *t = find_tensor(m, dir, name, ndim, d0, d1, required, err);
    return t ? to_f32(m, t, err) : NULL;
}

/* A frozen matrix [out][in] in the checkpoint's format: F32 or BF16/F16 rows
 * used from the mapping (16-bit rows widened at each product, weight.h); a
 * copy only for rows the mapping does not align. */
static rosa_weight matrix(rosa_model *m, const char *dir, const char *name, int out, int in, int required, int *err) {
    rosa_weight w = {.out = out, .in = in};
    const st_tensor *t = find_tensor(m, dir, name, 2, out, in, required, err);
    if (t && t->dtype != ST_F32 && (uintptr_t)t->data % 2 == 0) {
        w.half = t->data;
        w.half_f16 = t->dtype == ST_F16;
        m->weight_bytes += (int64_t)t->nbytes;
    } else if (t) {
        w.f32 = to_f32(m, t, err);
    }
    return w;
}

/* Weights for a layer index the config does not have mean the two disagree. */
static int check_extra_layers(const rosa_model *m, const char *dir) {
    for (int i = 0; i < m->weights.n_tensors; i++) {
        const char *name = m->weights.tensors[i].name;
        long layer;
        if (sscanf(name, "model.layers.%ld.", &layer) == 1 && layer >= m->cfg.num_layers)
            return rosa_fail("%s: weights hold tensor \"%s\" but config.json has num_hidden_layers = %d", dir, name,
                             m->cfg.num_layers);
    }
    return 0;
}

/* A norm weight as the norm multiplies by: the stored w, or a copy of 1 + w
 * for architectures whose RMSNorm scales by (1 + w). */
static const float *norm_tensor(rosa_model *m, const char *dir, const char *name, int64_t n, int *err) {
    const float *w = tensor(m, dir, name, 1, n, 0, 1, err);
    if (!w || !rosa_arch_of(&m->cfg)->norm_plus_one) return w;
    float *f = rosa_malloc(sizeof(float) * (size_t)n, name);
    if (!f || rosa_model_own(m, f) < 0) {
        free(f);
        *err = 1;
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) f[i] = 1.0f + w[i];
    return f;
}

static int load_layer(rosa_model *m, const char *dir, int l) {
    const rosa_config *c = &m->cfg;
    const rosa_arch_desc *ad = rosa_arch_of(c);
    int64_t D = c->hidden_size;
    int err = 0;
    rosa_layer *L = &m->layers[l];
    char base[192], name[256];
    for (int i = 0; i < ad->n_norms; i++) {
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ad->norm_names[i]);
        L->norm[i] = norm_tensor(m, dir, name, D, &err);
        if (err) return -1;
    }
    for (int i = 0; i < N_XNORMS; i++) {
        if (!ad->xnorm_names[i]) continue;
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ad->xnorm_names[i]);
        L->xnorm[i] = norm_tensor(m, dir, name, i <= XNORM_K ? c->head_dim : D, &err);
        if (err) return -1;
    }
    for (int p = 0; p < N_PROJ; p++) {
        int in, out, has_bias = rosa_proj_has_bias(c, p);
        rosa_proj_shape(c, p, &in, &out);
        rosa_proj_tensor_name(base, sizeof base, l, p);
        snprintf(name, sizeof name, "%s.weight", base);
        L->proj[p] = matrix(m, dir, name, out, in, 1, &err);
        if (err) return -1;
        snprintf(name, sizeof name, "%s.bias", base);
        L->bias[p] = tensor(m, dir, name, 1, out, 0, has_bias, &err);
        if (err) return -1;
        /* A bias the config does not ask for would be silently ignored: refuse it. */
        if (L->bias[p] && !has_bias)
            return rosa_fail("%s: weights have %s.bias but config.json asks for no %s bias", dir, base,
                             p <= PROJ_O ? "attention" : "MLP");
    }
    return 0;
}

void rosa_rope_inv_freq(const rosa_config *c, double *inv_freq) {
    rosa_rope_inv_freq_base(c, c->rope_theta, 1, inv_freq);
}

void rosa_rope_inv_freq_base(const rosa_config *c, float theta, int use_scaling, double *inv_freq) {
    int hd = c->head_dim;
    for (int j = 0; j < hd / 2; j++) {
        double f = 1.0 / pow((double)theta, (double)(2 * j) / (double)hd);
        if (!use_scaling) {
        } else if (c->rope_type == ROSA_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_type == ROSA_ROPE_LLAMA3) {
            /* transformers' _compute_llama3_parameters: long wavelengths are
             * divided by factor, short ones kept, the band between blended. */
            double factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double old_ctx = c->rope_original_max_position;
            double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
            double wavelen = 2.0 * M_PI / f;
            double scaled = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                scaled = (1.0 - smooth) * scaled / factor + smooth * scaled;
            }
            f = scaled;
        }
        inv_freq[j] = f;
    }
}

/* Each layer's window and RoPE table; layers with the same RoPE share one. */
static int layer_props(rosa_model *m) {
    const rosa_config *c = &m->cfg;
    size_t half = (size_t)c->head_dim / 2;
    rosa_layer_props *props = rosa_malloc(sizeof *props * (size_t)c->num_layers, "layer properties");
    if (!props) return -1;
    m->n_rope = 0;
    for (int l = 0; l < c->num_layers; l++) {
        rosa_layer_props_of(c, l, &props[l]);
        int k = 0;
        while (k < l && (props[k].rope_theta != props[l].rope_theta || props[k].rope_scaling != props[l].rope_scaling)) k++;
        m->layers[l].window = props[l].window;
        m->layers[l].rope = k < l ? m->layers[k].rope : m->n_rope++;
    }
    m->inv_freq = rosa_calloc((size_t)m->n_rope * half, sizeof(double), "rope");
    for (int l = 0; m->inv_freq && l < c->num_layers; l++)
        rosa_rope_inv_freq_base(c, props[l].rope_theta, props[l].rope_scaling, m->inv_freq + m->layers[l].rope * half);
    free(props);
    return m->inv_freq ? 0 : -1;
}

void rosa_model_rope_tables(const rosa_model *m, float *cs, const int *pos, int N) {
    size_t half = (size_t)m->cfg.head_dim / 2;
    for (int k = 0; k < m->n_rope; k++)
        rope_table(cs + (size_t)k * N * m->cfg.head_dim, pos, m->inv_freq + k * half, N, m->cfg.head_dim);
}

int rosa_rope_low_dims(int hd, float r_low, int *dims) {
    if (!(r_low > 0.0f && r_low <= 1.0f)) return rosa_fail("--r-low %g must be in (0, 1]", r_low);
    int m = (int)floor((double)hd * r_low / 2.0 + 0.5);
    if (m < 1) m = 1;
    if (m > hd / 2) return rosa_fail("r_low %g selects %d dimensions per half of a %d-dimensional head", r_low, m, hd);
    for (int i = 0; dims && i < m; i++) {
        dims[i] = hd / 2 - m + i;
        dims[m + i] = hd - m + i;
    }
    return m;
}

rosa_model *rosa_model_load(const char *dir) {
    rosa_model *m = rosa_calloc(1, sizeof *m, "model");
    if (!m) return NULL;
    if (rosa_config_load(dir, &m->cfg) < 0 || st_set_open_dir(&m->weights, dir) < 0) goto fail;
    const rosa_config *c = &m->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size;
    int err = 0;
    m->layers = rosa_calloc((size_t)c->num_layers, sizeof(rosa_layer), "layers");
    if (!m->layers) goto fail;
    if (check_extra_layers(m, dir) < 0) goto fail;
    m->embed = tensor(m, dir, "model.embed_tokens.weight", 2, V, D, 1, &err);
    if (err) goto fail;
    for (int l = 0; l < c->num_layers; l++)
        if (load_layer(m, dir, l) < 0) goto fail;
    m->norm = norm_tensor(m, dir, "model.norm.weight", D, &err);
    if (err) goto fail;
    m->lm_head = matrix(m, dir, "lm_head.weight", (int)V, (int)D, !c->tie_word_embeddings, &err);
    if (err) goto fail;
    /* transformers ties when the config says so, even if lm_head.weight is stored. */
    if (c->tie_word_embeddings) {
        if (m->lm_head.f32 || m->lm_head.half) m->n_params -= V * D;
        m->lm_head = (rosa_weight){.f32 = m->embed, .out = (int)V, .in = (int)D};
    }
    {
        char q[256];
        rosa_proj_tensor_name(q, sizeof q - 8, 0, PROJ_Q);
        strcat(q, ".weight");
        const st_tensor *t = st_set_find(&m->weights, q);
        char alt[320];
        for (int i = 1; !t && rosa_arch_weight_name(c, q, i, alt, sizeof alt); i++) t = st_set_find(&m->weights, alt);
        m->cfg.weight_dtype = t->dtype == ST_F16 ? ROSA_DTYPE_F16 : t->dtype == ST_BF16 ? ROSA_DTYPE_BF16 : ROSA_DTYPE_F32;
    }
    if (layer_props(m) < 0) goto fail;
    if (rosa_arch_of(c)->text_config)
        rosa_log(ROSA_LOG_INFO, "%s: %s: running its text model only (the vision tower is not loaded)", dir,
                 c->architecture);

    /* The tokenizer is optional: a bare weights directory still runs on ids. */
    char *tp = rosa_path_join(dir, "tokenizer.json");
    if (!tp) goto fail;
    int has_tok = rosa_file_exists(tp);
    free(tp);
    if (has_tok) {
        m->tok = rosa_tokenizer_load(dir);
        if (!m->tok) goto fail;
        if (rosa_tokenizer_vocab_size(m->tok) > c->vocab_size) {
            rosa_fail("%s: tokenizer.json has %d tokens but config.json vocab_size is %d", dir,
                      rosa_tokenizer_vocab_size(m->tok), c->vocab_size);
            goto fail;
        }
    }
    return m;
fail:
    rosa_model_free(m);
    return NULL;
}

rosa_model *rosa_model_random(const rosa_config *c, uint64_t seed) {
    rosa_model *m = rosa_calloc(1, sizeof *m, "model");
    if (!m) return NULL;
    m->cfg = *c;
    const rosa_arch_desc *ad = rosa_arch_of(c);
    int64_t V = c->vocab_size, D = c->hidden_size, total = rosa_config_num_params(c);
    float *w = rosa_malloc(sizeof(float) * (size_t)total, "random weights");
    if (!w || rosa_model_own(m, w) < 0) {
        free(w);
        rosa_model_free(m);
        return NULL;
    }
    m->layers = rosa_calloc((size_t)c->num_layers, sizeof(rosa_layer), "layers");
    if (!m->layers) {
        rosa_model_free(m);
        return NULL;
    }
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    float *p = w;
#define TAKE(ptr, n, norm)                                                                 \
    do {                                                                                   \
        (ptr) = p;                                                                         \
        for (int64_t i_ = 0; i_ < (n); i_++)                                               \
            p[i_] = (norm) ? 1.0f : 0.04f * (rosa_rng_uniform(&rng) - 0.5f);               \
        p += (n);                                                                          \
    } while (0)
    TAKE(m->embed, V * D, 0);
    TAKE(m->norm, D, 1);
    m->lm_head = (rosa_weight){.f32 = m->embed, .out = (int)V, .in = (int)D};
    if (!c->tie_word_embeddings) TAKE(m->lm_head.f32, V * D, 0);
    for (int l = 0; l < c->num_layers; l++) {
        rosa_layer *L = &m->layers[l];
        for (int i = 0; i < ad->n_norms; i++) TAKE(L->norm[i], D, 1);
        for (int i = 0; i < N_XNORMS; i++)
            if (ad->xnorm_names[i]) TAKE(L->xnorm[i], i <= XNORM_K ? c->head_dim : D, 1);
        for (int q = 0; q < N_PROJ; q++) {
            int in, out;
            rosa_proj_shape(c, q, &in, &out);
            L->proj[q] = (rosa_weight){.out = out, .in = in};
            TAKE(L->proj[q].f32, (int64_t)in * out, 0);
        }
        for (int q = 0; q < N_PROJ; q++)
            if (rosa_proj_has_bias(c, q)) TAKE(L->bias[q], L->proj[q].out, 0);
    }
#undef TAKE
    m->n_params = total;
    m->weight_bytes = (int64_t)sizeof(float) * total;
    if (layer_props(m) < 0) {
        rosa_model_free(m);
        return NULL;
    }
    return m;
}

static void drop_packed(rosa_model *m) {
    for (int l = 0; m->layers && l < m->cfg.num_layers; l++)
        for (int p = 0; p < N_PROJ; p++) rosa_weight_drop_bf16(&m->layers[l].proj[p]);
    rosa_weight_drop_bf16(&m->lm_head);
}

/* Packs w for BF16 products and releases its rows at once, wherever they
 * live (mapped file, converted or merged copy, the random-weight buffer), so
 * that packing holds one matrix twice at most, never the model; the pointers
 * become NULL so that nothing can read released pages.  The embedding's rows
 * (a tied LM head's) stay: token lookup reads them. */
static int pack_and_release(rosa_model *m, rosa_weight *w, int64_t *released) {
    if (rosa_weight_pack_bf16(w, !m->forward_only) < 0) return -1;
    m->fp32_released = 1;
    size_t n = (size_t)w->out * (size_t)w->in;
    if (w->f32 && w->f32 != m->embed) {
        release_pages(w->f32, sizeof(float) * n);
        *released += (int64_t)(sizeof(float) * n);
    }
    if (w->half) {
        release_pages(w->half, sizeof(uint16_t) * n);
        *released += (int64_t)(sizeof(uint16_t) * n);
    }
    w->f32 = NULL;
    w->half = NULL;
    return 0;
}

/* backward 0: packed for inference only (the forward layout). */
static int set_compute(rosa_model *m, rosa_dtype dtype, int backward) {
    if (dtype != ROSA_DTYPE_F32 && dtype != ROSA_DTYPE_BF16) return rosa_fail("compute dtype must be F32 or BF16");
    if (m->quant && dtype != ROSA_DTYPE_F32)
        return rosa_fail("--quantize int8 computes in FP32 from the dequantised blocks: --dtype bf16 does not apply "
                         "to it (give --dtype fp32)");
    if (m->fp32_released) {
        if (dtype == ROSA_DTYPE_BF16 && m->compute == ROSA_DTYPE_BF16 && (!m->forward_only || !backward)) return 0;
        if (dtype == ROSA_DTYPE_BF16)
            return rosa_fail("the model was packed for inference only (its FP32 weights released): load it again to train");
        return rosa_fail("the model's FP32 weights were released when it was packed for --dtype bf16; "
                         "load it again to compute in FP32 or to merge an adapter");
    }
    drop_packed(m);
    m->compute = ROSA_DTYPE_F32;
    m->forward_only = 0;
    if (dtype == ROSA_DTYPE_F32) return 0;
    if (!rosa_bf16_supported()) return rosa_fail("--dtype bf16: this CPU (or oneDNN build) has no BF16 matrix product");
    m->forward_only = !backward;
    const rosa_config *c = &m->cfg;
    int64_t released = 0, packed = 0;
    int rc = 0;
    for (int l = 0; rc == 0 && l < c->num_layers; l++)
        for (int p = 0; rc == 0 && p < N_PROJ; p++) {
            rc = pack_and_release(m, &m->layers[l].proj[p], &released);
            if (rc == 0) packed += (int64_t)rosa_bf16_weight_bytes(m->layers[l].proj[p].bf16);
        }
    if (rc == 0) rc = pack_and_release(m, &m->lm_head, &released);
    rosa_weight_free_scratch(); /* the products read only the packed copies now */
    if (rc < 0) return -1;      /* part released: the model is for freeing only */
    packed += (int64_t)rosa_bf16_weight_bytes(m->lm_head.bf16);
    m->compute = ROSA_DTYPE_BF16;
    m->weight_bytes += packed - released;
    return 0;
}

int rosa_model_set_compute(rosa_model *m, rosa_dtype dtype) { return set_compute(m, dtype, 1); }
int rosa_model_set_compute_inference(rosa_model *m, rosa_dtype dtype) { return set_compute(m, dtype, 0); }

/* Quantises one matrix from its rows into buffers the model owns and
 * releases the rows, as pack_and_release does: one matrix's rows are
 * resident at a time, never the FP32 model. */
static int quantize_and_release(rosa_model *m, rosa_weight *w) {
    size_t n = (size_t)w->out * (size_t)w->in, ns = (size_t)w->out * (size_t)rosa_q8_blocks(w->in);
    int8_t *q = rosa_malloc(n, "int8 weight");
    float *d = rosa_malloc(sizeof(float) * ns, "int8 scales");
    if (!q || !d || rosa_model_own(m, q) < 0) {
        free(q);
        free(d);
        return -1;
    }
    if (rosa_model_own(m, d) < 0) {
        free(d);
        return -1;
    }
    const void *src = w->f32 ? (const void *)w->f32 : (const void *)w->half;
    size_t bytes = n * (w->f32 ? sizeof(float) : sizeof(uint16_t));
    if (rosa_weight_quantize_q8(w, q, d) < 0) return -1;
    release_pages(src, bytes);
    m->weight_bytes += (int64_t)(n + sizeof(float) * ns) - (int64_t)bytes;
    return 0;
}

int rosa_model_quantize(rosa_model *m, rosa_quant q) {
    if (q == ROSA_QUANT_NONE) return m->quant ? rosa_fail("the model's weights are int8 already: load it again") : 0;
    if (q != ROSA_QUANT_INT8) return rosa_fail("unknown quantisation %d", (int)q);
    if (m->quant) return 0;
    if (m->compute != ROSA_DTYPE_F32 || m->fp32_released)
        return rosa_fail("--quantize int8: the model was packed for --dtype bf16 already");
    /* Only the layers' projections: the embedding is read by token lookup
     * (and is a tied LM head), norms and biases are tiny, and the LM head
     * sets every logit, where the error would go straight into the loss. */
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int p = 0; p < N_PROJ; p++)
            if (quantize_and_release(m, &m->layers[l].proj[p]) < 0) return -1; /* part done: for freeing only */
    rosa_weight_free_scratch();
    m->quant = q;
    return 0;
}

int rosa_model_attach_hook(rosa_model *m, rosa_hook h) {
    if (m->n_hooks == ROSA_MAX_HOOKS) return rosa_fail("at most %d adapters can be attached at once", ROSA_MAX_HOOKS);
    m->hooks[m->n_hooks++] = h;
    return 0;
}

int rosa_model_replace_weight(rosa_model *m, int layer, int p, const float *w) {
    if (m->fp32_released) return rosa_fail("cannot merge into a model whose FP32 weights were released (--dtype bf16)");
    if (m->quant) return rosa_fail("cannot merge into an int8 base (--quantize int8): attach the adapter instead");
    rosa_weight *dst = &m->layers[layer].proj[p];
    size_t n = (size_t)dst->out * (size_t)dst->in;
    float *copy = rosa_malloc(sizeof(float) * n, "merged weight");
    if (!copy || rosa_model_own(m, copy) < 0) {
        free(copy);
        return -1;
    }
    memcpy(copy, w, sizeof(float) * n);
    dst->f32 = copy;
    dst->half = NULL;
    return 0;
}

void rosa_model_free(rosa_model *m) {
    if (!m) return;
    drop_packed(m);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->inv_freq);
    st_set_close(&m->weights);
    rosa_tokenizer_free(m->tok);
    free(m);
}

const rosa_config *rosa_model_config(const rosa_model *m) { return &m->cfg; }
const rosa_tokenizer *rosa_model_tokenizer(const rosa_model *m) { return m->tok; }
int64_t rosa_model_num_params(const rosa_model *m) { return m->n_params; }
int64_t rosa_model_weight_bytes(const rosa_model *m) { return m->weight_bytes; }
