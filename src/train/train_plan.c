/* train_plan.c: the memory plan of a training run, from the model's headers,
 * the adapter's structure and the longest example, before the model is
 * loaded: what rosa_train holds at its peak (docs/memory.md). */
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "model/mem_plan.h"
#include "model/model.h"
#include "model/ops.h"
#include "peft/peft.h"
#include "train/train_ctx.h"
#include "core/util.h"


/* The distinct RoPE tables over the layers, as model.c builds them. */
static int rope_tables(const rosa_config *c) {
    int n = 0;
    for (int l = 0; l < c->num_layers; l++) {
        rosa_layer_props a, b;
        rosa_layer_props_of(c, l, &a);
        int k = 0;
        for (; k < l; k++) {
            rosa_layer_props_of(c, k, &b);
            if (b.rope_theta == a.rope_theta && b.rope_scaling == a.rope_scaling) break;
        }
        n += k == l;
    }
    return n;
}

static void plan_with(const rosa_model_info *mi, const rosa_adapter *a, int micro, int Tmax, int recompute,
                      rosa_dtype compute, rosa_quant quant, rosa_memory_plan *p) {
    const rosa_config *c = &mi->cfg;
    memset(p, 0, sizeof *p);
    rosa_plan_weights(mi, compute, quant, 0, p);
    p->process = rosa_rss_bytes();
    p->libraries = rosa_plan_libraries(compute);
    /* The activation arena is laid out from the config and the adapter's
     * hooks alone: a model with no weights sizes it. */
    rosa_model shapes = {.cfg = *c, .n_rope = rope_tables(c)};
    p->activations = (int64_t)rosa_train_ctx_bytes(&shapes, (rosa_adapter *)a, micro, Tmax, recompute);
    p->adapter = 2 * (int64_t)sizeof(float) * (int64_t)a->n_floats;
    p->optimizer = 2 * (int64_t)sizeof(float) * (int64_t)a->n_floats + (int64_t)(sizeof(int64_t) + 1) * a->n_params;
    /* lm_head_loss's logits (the rows it touches), and in BF16 the
     * activations converted for oneDNN and its padded output. */
    int64_t N = (int64_t)micro * Tmax, V = c->vocab_size, rows = lm_chunk_rows((int)V);
    if (rows > N) rows = N;
    int64_t D = c->hidden_size, F = c->intermediate_size, wide = F > D ? F : D;
    p->scratch = rows * V * 4 + rows * 8;
    if (compute == ROSA_DTYPE_BF16) p->scratch += N * wide * 2 + (rows * V > N * wide ? rows * V : N * wide) * 4;
    rosa_plan_total(p);
}

int rosa_plan_train(const rosa_model_info *mi, const rosa_train_options *o, const rosa_adapter *a, int Tmax,
                    rosa_memory_plan *p) {
    rosa_adapter *own = a ? NULL : rosa_adapter_table(o->method, o->method_opts, &mi->cfg);
    if (!a && !own) return -1;
    plan_with(mi, a ? a : own, o->micro_batch_size, Tmax, o->recompute, o->compute, o->quantize, p);
    rosa_adapter_free(own);
    return 0;
}

/* Appends "--flags (N MiB)" to buf when the plan of these settings fits. */
static int try_fit(const rosa_model_info *mi, const rosa_adapter *a, const rosa_train_options *o, int Tmax, int micro,
                   int T, int recompute, rosa_dtype compute, rosa_quant quant, double limit, char *buf, size_t n) {
    rosa_memory_plan q;
    plan_with(mi, a, micro, T, recompute, compute, quant, &q);
    if ((double)q.total > limit) return 0;
    char flags[160] = "";
    size_t f = 0;
    if (micro != o->micro_batch_size) f += (size_t)snprintf(flags + f, sizeof flags - f, "--micro-batch-size %d ", micro);
    if (T != Tmax) f += (size_t)snprintf(flags + f, sizeof flags - f, "--cutoff-len %d ", T);
    if (recompute && !o->recompute) f += (size_t)snprintf(flags + f, sizeof flags - f, "--recompute ");
    if (compute != o->compute)
        f += (size_t)snprintf(flags + f, sizeof flags - f, "--dtype %s ", compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32");
    if (quant != o->quantize)
        snprintf(flags + f, sizeof flags - f, "--quantize %s ", quant == ROSA_QUANT_INT8 ? "int8" : "none");
    size_t k = strlen(buf);
    snprintf(buf + k, n - k, "%s%s(%.0f MiB)", k ? "; " : "", flags, q.total / 1048576.0);
    return 1;
}

void rosa_plan_train_advice(const rosa_model_info *mi, const rosa_train_options *o, const rosa_adapter *a, int Tmax,
                            double limit, char *buf, size_t n) {
    rosa_adapter *own = a ? NULL : rosa_adapter_table(o->method, o->method_opts, &mi->cfg);
    const rosa_adapter *ad = a ? a : own;
    buf[0] = 0;
    if (!ad) return;
    /* The other storage: --dtype bf16 without int8, or int8 in FP32 (the two
     * do not combine). */
    rosa_dtype other = o->compute == ROSA_DTYPE_BF16 || o->quantize ? ROSA_DTYPE_F32 : ROSA_DTYPE_BF16;
    rosa_dtype c = o->compute;
    rosa_quant q = o->quantize;
    /* Each change alone (the largest micro-batch and length that fit), then
     * each with --recompute. */
    if (!o->recompute) try_fit(mi, ad, o, Tmax, o->micro_batch_size, Tmax, 1, c, q, limit, buf, n);
    for (int rc = o->recompute; rc <= 1; rc++) {
        for (int mb = o->micro_batch_size / 2; mb >= 1; mb /= 2)
            if (try_fit(mi, ad, o, Tmax, mb, Tmax, rc, c, q, limit, buf, n)) break;
        for (int t = Tmax / 2; t >= 16; t /= 2)
            if (try_fit(mi, ad, o, Tmax, o->micro_batch_size, t, rc, c, q, limit, buf, n)) break;
        try_fit(mi, ad, o, Tmax, o->micro_batch_size, Tmax, rc, other, ROSA_QUANT_NONE, limit, buf, n);
        if (!q) try_fit(mi, ad, o, Tmax, o->micro_batch_size, Tmax, rc, ROSA_DTYPE_F32, ROSA_QUANT_INT8, limit, buf, n);
    }
    rosa_adapter_free(own);
}
