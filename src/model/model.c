/* model.c: loading a Hugging Face model directory into a rosa_model. */
#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/util.h"
#include "io/config.h"

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

/* Looks up a tensor, checks its shape, and returns fp32 data: the mapped bytes
 * themselves when stored as aligned F32, else a converted copy. */
static const float *tensor(rosa_model *m, const char *dir, const char *name, int ndim, int64_t d0, int64_t d1,
                           int required, int *err) {
    const st_tensor *t = st_set_find(&m->weights, name);
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
    int64_t n = st_numel(t);
    m->n_params += n;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        m->weight_bytes += (int64_t)t->nbytes;
        return t->data;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        rosa_fail("%s: tensor \"%s\" has dtype %s (expected F32, F16 or BF16)", m->weights.paths[t->file], name,
                  st_dtype_name(t->dtype));
        *err = 1;
        return NULL;
    }
    float *f = rosa_malloc(sizeof(float) * (size_t)n, name);
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
    m->weight_bytes += (int64_t)sizeof(float) * n;
    return f;
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

static int load_layer(rosa_model *m, const char *dir, int l) {
    const rosa_config *c = &m->cfg;
    int64_t D = c->hidden_size, F = c->intermediate_size, Q = (int64_t)c->num_heads * c->head_dim,
            K = (int64_t)c->num_kv_heads * c->head_dim;
    int qkv_bias = c->attention_bias || c->qkv_bias, err = 0;
    rosa_layer *L = &m->layers[l];
    char name[256];
#define W(field, suffix, nd, a, b, req)                                        \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);              \
    L->field = tensor(m, dir, name, nd, a, b, req, &err);                      \
    if (err) return -1;
    W(attn_norm, "input_layernorm.weight", 1, D, 0, 1)
    W(wq, "self_attn.q_proj.weight", 2, Q, D, 1)
    W(wk, "self_attn.k_proj.weight", 2, K, D, 1)
    W(wv, "self_attn.v_proj.weight", 2, K, D, 1)
    W(wo, "self_attn.o_proj.weight", 2, D, Q, 1)
    W(bq, "self_attn.q_proj.bias", 1, Q, 0, qkv_bias)
    W(bk, "self_attn.k_proj.bias", 1, K, 0, qkv_bias)
    W(bv, "self_attn.v_proj.bias", 1, K, 0, qkv_bias)
    W(bo, "self_attn.o_proj.bias", 1, D, 0, c->attention_bias)
    W(ffn_norm, "post_attention_layernorm.weight", 1, D, 0, 1)
    W(w_gate, "mlp.gate_proj.weight", 2, F, D, 1)
    W(w_up, "mlp.up_proj.weight", 2, F, D, 1)
    W(w_down, "mlp.down_proj.weight", 2, D, F, 1)
    W(b_gate, "mlp.gate_proj.bias", 1, F, 0, c->mlp_bias)
    W(b_up, "mlp.up_proj.bias", 1, F, 0, c->mlp_bias)
    W(b_down, "mlp.down_proj.bias", 1, D, 0, c->mlp_bias)
#undef W
    /* A bias the config does not ask for would be silently ignored: refuse it. */
    if (!qkv_bias && L->bq) return rosa_fail("%s: weights have q_proj.bias but config.json has no attention_bias", dir);
    if (!c->attention_bias && L->bo) return rosa_fail("%s: weights have o_proj.bias but config.json has no attention_bias", dir);
    if (!c->mlp_bias && L->b_gate) return rosa_fail("%s: weights have mlp biases but config.json has mlp_bias false", dir);
    return 0;
}

void rosa_rope_inv_freq(const rosa_config *c, double *inv_freq) {
    int hd = c->head_dim;
    for (int j = 0; j < hd / 2; j++) {
        double f = 1.0 / pow((double)c->rope_theta, (double)(2 * j) / (double)hd);
        if (c->rope_type == ROSA_ROPE_LINEAR) {
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

rosa_model *rosa_model_load(const char *dir) {
    rosa_model *m = rosa_calloc(1, sizeof *m, "model");
    if (!m) return NULL;
    if (rosa_config_load(dir, &m->cfg) < 0 || st_set_open_dir(&m->weights, dir) < 0) goto fail;
    const rosa_config *c = &m->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size;
    int err = 0;
    m->layers = rosa_calloc((size_t)c->num_layers, sizeof(rosa_layer), "layers");
    m->inv_freq = rosa_calloc((size_t)c->head_dim / 2, sizeof(double), "rope");
    if (!m->layers || !m->inv_freq) goto fail;
    if (check_extra_layers(m, dir) < 0) goto fail;
    m->embed = tensor(m, dir, "model.embed_tokens.weight", 2, V, D, 1, &err);
    if (err) goto fail;
    for (int l = 0; l < c->num_layers; l++)
        if (load_layer(m, dir, l) < 0) goto fail;
    m->norm = tensor(m, dir, "model.norm.weight", 1, D, 0, 1, &err);
    if (err) goto fail;
    m->lm_head = tensor(m, dir, "lm_head.weight", 2, V, D, !c->tie_word_embeddings, &err);
    if (err) goto fail;
    /* transformers ties when the config says so, even if lm_head.weight is stored. */
    if (c->tie_word_embeddings) {
        if (m->lm_head) m->n_params -= V * D;
        m->lm_head = m->embed;
    }
    {
        const st_tensor *t = st_set_find(&m->weights, "model.layers.0.self_attn.q_proj.weight");
        m->cfg.weight_dtype = t->dtype == ST_F16 ? ROSA_DTYPE_F16 : t->dtype == ST_BF16 ? ROSA_DTYPE_BF16 : ROSA_DTYPE_F32;
    }
    rosa_rope_inv_freq(c, m->inv_freq);

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
    int64_t V = c->vocab_size, D = c->hidden_size, F = c->intermediate_size, Q = (int64_t)c->num_heads * c->head_dim,
            K = (int64_t)c->num_kv_heads * c->head_dim;
    int qkv_bias = c->attention_bias || c->qkv_bias;
    int64_t per_layer = 2 * D + Q * D + 2 * K * D + D * Q + 3 * F * D + (qkv_bias ? Q + 2 * K : 0) +
                        (c->attention_bias ? D : 0) + (c->mlp_bias ? 2 * F + D : 0);
    int64_t total = V * D * (c->tie_word_embeddings ? 1 : 2) + D + per_layer * c->num_layers;
    float *w = rosa_malloc(sizeof(float) * (size_t)total, "random weights");
    if (!w || rosa_model_own(m, w) < 0) {
        free(w);
        rosa_model_free(m);
        return NULL;
    }
    m->layers = rosa_calloc((size_t)c->num_layers, sizeof(rosa_layer), "layers");
    m->inv_freq = rosa_calloc((size_t)c->head_dim / 2, sizeof(double), "rope");
    if (!m->layers || !m->inv_freq) {
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
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    else TAKE(m->lm_head, V * D, 0);
    for (int l = 0; l < c->num_layers; l++) {
        rosa_layer *L = &m->layers[l];
        TAKE(L->attn_norm, D, 1);
        TAKE(L->ffn_norm, D, 1);
        TAKE(L->wq, Q * D, 0);
        TAKE(L->wk, K * D, 0);
        TAKE(L->wv, K * D, 0);
        TAKE(L->wo, D * Q, 0);
        TAKE(L->w_gate, F * D, 0);
        TAKE(L->w_up, F * D, 0);
        TAKE(L->w_down, D * F, 0);
        if (qkv_bias) {
            TAKE(L->bq, Q, 0);
            TAKE(L->bk, K, 0);
            TAKE(L->bv, K, 0);
        }
        if (c->attention_bias) TAKE(L->bo, D, 0);
        if (c->mlp_bias) {
            TAKE(L->b_gate, F, 0);
            TAKE(L->b_up, F, 0);
            TAKE(L->b_down, D, 0);
        }
    }
#undef TAKE
    m->n_params = total;
    m->weight_bytes = (int64_t)sizeof(float) * total;
    rosa_rope_inv_freq(c, m->inv_freq);
    return m;
}

static void drop_packed(rosa_model *m) {
    for (int l = 0; m->layers && l < m->cfg.num_layers; l++)
        for (int w = 0; w < 7; w++) {
            rosa_bf16_weight_free(m->layers[l].packed[w]);
            m->layers[l].packed[w] = NULL;
        }
    rosa_bf16_weight_free(m->lm_packed);
    m->lm_packed = NULL;
}

/* Hands the whole pages inside [p, p + bytes) back to the kernel.  The caller
 * forgets the pointer: anonymous pages read back as zeros. */
static void release_pages(const void *p, size_t bytes) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)p + page - 1) & ~(page - 1),
              hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int rosa_model_set_compute(rosa_model *m, rosa_dtype dtype) {
    if (dtype != ROSA_DTYPE_F32 && dtype != ROSA_DTYPE_BF16) return rosa_fail("compute dtype must be F32 or BF16");
    if (m->fp32_released) {
        if (dtype == ROSA_DTYPE_BF16) return 0;
        return rosa_fail("the model's FP32 weights were released when it was packed for --dtype bf16; "
                         "load it again to compute in FP32 or to merge an adapter");
    }
    drop_packed(m);
    m->compute = ROSA_DTYPE_F32;
    if (dtype == ROSA_DTYPE_F32) return 0;
    if (!rosa_bf16_supported()) return rosa_fail("--dtype bf16: this CPU (or oneDNN build) has no BF16 matrix product");
    const rosa_config *c = &m->cfg;
    int D = c->hidden_size, F = c->intermediate_size, Q = c->num_heads * c->head_dim, K = c->num_kv_heads * c->head_dim;
    const int out[7] = {Q, K, K, D, F, F, D}, in[7] = {D, D, D, Q, D, D, F};
    for (int l = 0; l < c->num_layers; l++)
        for (int w = 0; w < 7; w++) {
            m->layers[l].packed[w] = rosa_bf16_weight_new(*rosa_layer_weight_slot(&m->layers[l], w), out[w], in[w]);
            if (!m->layers[l].packed[w]) {
                drop_packed(m);
                return -1;
            }
        }
    m->lm_packed = rosa_bf16_weight_new(m->lm_head, c->vocab_size, D);
    if (!m->lm_packed) {
        drop_packed(m);
        return -1;
    }
    m->compute = ROSA_DTYPE_BF16;
    /* The products read only the packed copies now.  Release the FP32
     * projections, wherever they live (mapped file, converted copy, one
     * random-weight buffer), so BF16 mode does not hold the base twice; their
     * pointers become NULL so that nothing can read released pages.  The
     * embedding stays: token lookup reads its rows. */
    int64_t released = 0, packed = (int64_t)rosa_bf16_weight_bytes(m->lm_packed);
    for (int l = 0; l < c->num_layers; l++)
        for (int w = 0; w < 7; w++) {
            const float **slot = rosa_layer_weight_slot(&m->layers[l], w);
            size_t bytes = sizeof(float) * (size_t)out[w] * (size_t)in[w];
            release_pages(*slot, bytes);
            *slot = NULL;
            released += (int64_t)bytes;
            packed += (int64_t)rosa_bf16_weight_bytes(m->layers[l].packed[w]);
        }
    if (m->lm_head != m->embed) {
        release_pages(m->lm_head, sizeof(float) * (size_t)c->vocab_size * (size_t)D);
        m->lm_head = NULL;
        released += (int64_t)sizeof(float) * c->vocab_size * D;
    }
    m->fp32_released = 1;
    m->weight_bytes += packed - released;
    return 0;
}

void rosa_model_free(rosa_model *m) {
    if (!m) return;
    drop_packed(m);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->roae.low_dims);
    free(m->roae.A);
    free(m->roae.B);
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
