/* inspect.c: a model directory's sizes from config.json and the safetensors
 * headers, with no tensor read (rosa info, the memory plan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/config.h"
#include "io/safetensors.h"
#include "core/util.h"
#include "rosa.h"

/* What a tensor is to the plan: a matrix (a projection, an untied lm_head),
 * the rest (embedding, norms, biases), or never read (a tied lm_head). */
enum { OTHER, MATRIX, UNUSED };

/* "[a, b]" */
static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Checks a tensor as model.c's loader does (shape, dtype) and counts it;
 * returns its entry, NULL when absent (an error when required). */

static const st_tensor *count(const st_set *s, rosa_model_info *mi, const char *dir, const char *name, int kind,
                              int ndim, int64_t d0, int64_t d1, int required, int *err) {
    const st_tensor *t = st_set_find(s, name);
    char alt[320]; /* the names the architecture also stores it under (Gemma 3's language_model.) */
    for (int i = 1; !t && rosa_arch_weight_name(&mi->cfg, name, i, alt, sizeof alt); i++) t = st_set_find(s, alt);
    if (!t) {
        if (required) *err = rosa_fail("%s: tensor \"%s\" is missing from the weights", dir, name);
        return NULL;
    }
    int ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (!ok) {
        int64_t want[2] = {d0, d1};
        char got[96], exp[96];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(exp, sizeof exp, ndim, want);
        *err = rosa_fail("%s: tensor \"%s\" has shape %s but config.json implies %s", s->paths[t->file], name, got, exp);
        return NULL;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        *err = rosa_fail("%s: tensor \"%s\" has dtype %s (expected F32, F16 or BF16)", s->paths[t->file], name,
                         st_dtype_name(t->dtype));
        return NULL;
    }
    int64_t n = st_numel(t), bytes = (int64_t)t->nbytes;
    mi->n_params += n;
    mi->stored_bytes += bytes;
    if (kind == UNUSED) return t;
    int half = t->dtype != ST_F32;
    *(kind == MATRIX ? half ? &mi->matrix_half_bytes : &mi->matrix_f32_bytes
                     : half ? &mi->other_half_bytes : &mi->other_f32_bytes) += bytes;
    if (kind == MATRIX && n > mi->largest_matrix_params) mi->largest_matrix_params = n;
    if (kind == MATRIX && half && n > mi->largest_half_matrix_params) mi->largest_half_matrix_params = n;
    return t;
}

static int inspect_layers(const st_set *s, rosa_model_info *mi, const char *dir) {
    const rosa_config *c = &mi->cfg;
    const rosa_arch_desc *ad = rosa_arch_of(c);
    int err = 0;
    char base[192], name[256];
    for (int l = 0; l < c->num_layers && !err; l++) {
        for (int i = 0; i < ad->n_norms && !err; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ad->norm_names[i]);
            count(s, mi, dir, name, OTHER, 1, c->hidden_size, 0, 1, &err);
        }
        for (int i = 0; i < N_XNORMS && !err; i++) { /* q_norm/k_norm, Gemma's sandwich norms */
            if (!ad->xnorm_names[i]) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ad->xnorm_names[i]);
            count(s, mi, dir, name, OTHER, 1, i <= XNORM_K ? c->head_dim : c->hidden_size, 0, 1, &err);
        }
        for (int p = 0; p < N_PROJ && !err; p++) {
            int in, out;
            rosa_proj_shape(c, p, &in, &out);
            rosa_proj_tensor_name(base, sizeof base, l, p);
            snprintf(name, sizeof name, "%s.weight", base);
            const st_tensor *t = count(s, mi, dir, name, MATRIX, 2, out, in, 1, &err);
            if (!t) break;
            if (l == 0 && p == PROJ_Q)
                mi->cfg.weight_dtype = t->dtype == ST_F16 ? ROSA_DTYPE_F16 : t->dtype == ST_BF16 ? ROSA_DTYPE_BF16
                                                                                                 : ROSA_DTYPE_F32;
            mi->proj_params += st_numel(t);
            if (st_numel(t) > mi->largest_proj_params) mi->largest_proj_params = st_numel(t);
            snprintf(name, sizeof name, "%s.bias", base);
            int has_bias = rosa_proj_has_bias(c, p);
            if (count(s, mi, dir, name, OTHER, 1, out, 0, has_bias, &err) && !has_bias)
                err = rosa_fail("%s: weights have %s.bias but config.json asks for no %s bias", dir, base,
                                p <= PROJ_O ? "attention" : "MLP");
        }
    }
    return err ? -1 : 0;
}

int rosa_model_inspect(const char *dir, rosa_model_info *mi) {
    memset(mi, 0, sizeof *mi);
    st_set s;
    if (rosa_config_load(dir, &mi->cfg) < 0 || st_set_open_dir_headers(&s, dir) < 0) return -1;
    const rosa_config *c = &mi->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size;
    int err = 0;
    const st_tensor *e = count(&s, mi, dir, "model.embed_tokens.weight", OTHER, 2, V, D, 1, &err);
    if (e && e->dtype != ST_F32) mi->embed_half_bytes = (int64_t)e->nbytes;
    if (!err) err = inspect_layers(&s, mi, dir);
    if (!err) count(&s, mi, dir, "model.norm.weight", OTHER, 1, D, 0, 1, &err);
    /* A tied model's stored lm_head is never read: the embedding serves. */
    int tied = c->tie_word_embeddings;
    const st_tensor *h = err ? NULL : count(&s, mi, dir, "lm_head.weight", tied ? UNUSED : MATRIX, 2, V, D, !tied, &err);
    if (h && tied) mi->n_params -= V * D; /* counted once, as the loader does */
    if (h && !tied) *(h->dtype == ST_F32 ? &mi->head_f32_bytes : &mi->head_half_bytes) = (int64_t)h->nbytes;
    mi->n_files = s.n_files;
    mi->data_missing = (int64_t)s.data_missing;
    st_set_close(&s);
    if (err) return -1;
    char *tp = rosa_path_join(dir, "tokenizer.json");
    if (!tp) return -1;
    mi->has_tokenizer = rosa_file_exists(tp);
    free(tp);
    return 0;
}
