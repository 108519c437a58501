/* merge.c: W' = W + s * B A for every LoRA module. */
#include "merge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/gemm.h"
#include "core/util.h"

/* out[rows][cols] = W + s * B A, with A [r][cols] and B [rows][r]. */
static float *merged(const float *W, const rosa_adapter *a, int idx) {
    const rosa_param *A = &a->params[idx], *B = &a->params[idx + 1];
    size_t n = (size_t)B->rows * A->cols;
    float *out = rosa_malloc(sizeof(float) * n, "merged weight");
    if (!out) return NULL;
    memcpy(out, W, sizeof(float) * n);
    rosa_gemm('N', 'N', B->rows, A->cols, A->rows, a->scaling, a->w + B->offset,
                B->cols, a->w + A->offset, A->cols, 1.0f, out, A->cols);
    return out;
}

/* Keeps a copy of n floats owned by the model. */
static const float *own_copy(rosa_model *m, const float *src, size_t n) {
    float *p = rosa_malloc(sizeof(float) * n, "adapter weights");
    if (!p || rosa_model_own(m, p) < 0) {
        free(p);
        return NULL;
    }
    memcpy(p, src, sizeof(float) * n);
    return p;
}

/* RoAE cannot be merged into weights: the forward applies it (model.h). */
static int apply_roae(rosa_model *m, const rosa_adapter *a) {
    rosa_roae_hook *ro = &m->roae;
    if (ro->on) return rosa_fail("the model already has a RoAE adapter");
    ro->A = rosa_calloc((size_t)a->L, sizeof *ro->A, "RoAE");
    ro->B = rosa_calloc((size_t)a->L, sizeof *ro->B, "RoAE");
    ro->low_dims = rosa_malloc(sizeof(int) * (size_t)a->d_low, "RoAE");
    if (!ro->A || !ro->B || !ro->low_dims) return -1;
    memcpy(ro->low_dims, a->low_dims, sizeof(int) * (size_t)a->d_low);
    ro->rank = a->roae.rank;
    ro->alpha = a->roae.alpha;
    ro->pre_rope = a->roae.pre_rope;
    ro->add_form = a->roae.add_form;
    ro->d_low = a->d_low;
    size_t D = (size_t)m->cfg.hidden_size;
    for (int l = 0; l < a->L; l++) {
        for (int w = 0; w < 2; w++) {
            int idx = a->roae_idx[l][w];
            if (idx < 0) continue;
            const rosa_param *A = &a->params[idx], *B = &a->params[idx + 1];
            ro->A[l][w] = own_copy(m, a->w + A->offset, (size_t)A->rows * A->cols);
            ro->B[l][w] = own_copy(m, a->w + B->offset, (size_t)B->rows * B->cols);
            if (!ro->A[l][w] || !ro->B[l][w]) return -1;
        }
        if (a->norm_idx[l] >= 0) { /* trained RMSNorm weights replace the model's */
            m->layers[l].attn_norm = own_copy(m, a->w + a->params[a->norm_idx[l]].offset, D);
            m->layers[l].ffn_norm = own_copy(m, a->w + a->params[a->norm_idx[l] + 1].offset, D);
            if (!m->layers[l].attn_norm || !m->layers[l].ffn_norm) return -1;
        }
    }
    ro->on = 1;
    return 0;
}

static int apply_lora(rosa_model *m, const rosa_adapter *a);

int rosa_model_apply_adapter(rosa_model *m, const rosa_adapter *a) {
    if (a->L != m->cfg.num_layers) return rosa_fail("the adapter has %d layers, the model %d", a->L, m->cfg.num_layers);
    if (a->method == ROSA_METHOD_ROAE) return apply_roae(m, a);
    /* Merged weights must be packed again in BF16 mode. */
    rosa_dtype compute = m->compute;
    if (compute != ROSA_DTYPE_F32 && rosa_model_set_compute(m, ROSA_DTYPE_F32) < 0) return -1;
    if (apply_lora(m, a) < 0) return -1;
    return rosa_model_set_compute(m, compute);
}

static int apply_lora(rosa_model *m, const rosa_adapter *a) {
    for (int l = 0; l < a->L; l++)
        for (int mod = 0; mod < N_MODULES; mod++) {
            int idx = a->lora_idx[l][mod];
            if (idx < 0) continue;
            const float **slot = rosa_layer_weight_slot(&m->layers[l], mod);
            float *w = merged(*slot, a, idx);
            if (!w || rosa_model_own(m, w) < 0) {
                free(w);
                return -1;
            }
            *slot = w;
        }
    return 0;
}

static int copy_file(const char *from, const char *to) {
    size_t len;
    char *data = rosa_read_file(from, &len);
    if (!data) return -1;
    int rc = rosa_write_file_atomic(to, data, len);
    free(data);
    return rc;
}

int rosa_merge_write(const rosa_model *m, const char *model_dir, const rosa_adapter *a, const char *out_dir) {
    if (a->method != ROSA_METHOD_LORA)
        return rosa_fail("only LoRA adapters can be merged into weights (RoAE modulates RoPE states; use --adapter)");
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return rosa_fail("%s: cannot create directory: %s", out_dir, strerror(errno));
    static const char *const files[] = {"config.json", "generation_config.json", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json", NULL};
    for (int i = 0; files[i]; i++) {
        char *from = rosa_path_join(model_dir, files[i]), *to = rosa_path_join(out_dir, files[i]);
        int rc = from && to ? (rosa_file_exists(from) ? copy_file(from, to) : 0) : -1;
        free(from);
        free(to);
        if (rc < 0) return -1;
    }
    const st_set *s = &m->weights;
    st_write_entry *e = rosa_calloc((size_t)s->n_tensors, sizeof *e, "tensors");
    void **bufs = rosa_calloc((size_t)s->n_tensors, sizeof(void *), "tensors");
    int rc = e && bufs ? 0 : -1;
    for (int i = 0; rc == 0 && i < s->n_tensors; i++) {
        const st_tensor *t = &s->tensors[i];
        e[i] = (st_write_entry){t->name, t->dtype, t->ndim, t->shape, t->data};
        int l = -1, mod = -1;
        for (int k = 0; k < N_MODULES && l < 0; k++) {
            char suffix[64];
            int layer, consumed = 0;
            snprintf(suffix, sizeof suffix, ".%s.%s.weight%%n", k <= MOD_O ? "self_attn" : "mlp", rosa_module_names[k]);
            char fmt[96];
            snprintf(fmt, sizeof fmt, "model.layers.%%d%s", suffix);
            if (sscanf(t->name, fmt, &layer, &consumed) == 1 && consumed == (int)strlen(t->name) && layer >= 0 &&
                layer < a->L && a->lora_idx[layer][k] >= 0) {
                l = layer;
                mod = k;
            }
        }
        if (l < 0) continue;
        rosa_layer copy = m->layers[l];
        float *w = merged(*rosa_layer_weight_slot(&copy, mod), a, a->lora_idx[l][mod]);
        if (!w) {
            rc = -1;
            break;
        }
        bufs[i] = w;
        if (t->dtype != ST_F32) { /* back to the stored dtype */
            int64_t n = st_numel(t);
            uint16_t *h = rosa_malloc(sizeof(uint16_t) * (size_t)n, "merged weight");
            if (!h) {
                rc = -1;
                break;
            }
            for (int64_t k = 0; k < n; k++) h[k] = t->dtype == ST_BF16 ? rosa_f32_to_bf16(w[k]) : rosa_f32_to_f16(w[k]);
            free(w);
            bufs[i] = h;
        }
        e[i].data = bufs[i];
    }
    if (rc == 0) {
        char *path = rosa_path_join(out_dir, "model.safetensors");
        rc = path ? st_write_file(path, e, s->n_tensors, "{\"format\": \"pt\"}") : -1;
        free(path);
    }
    for (int i = 0; bufs && i < s->n_tensors; i++) free(bufs[i]);
    free(bufs);
    free(e);
    return rc;
}
