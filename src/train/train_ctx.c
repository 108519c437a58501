/* train_ctx.c: the training pass: embedding, the decoder block per layer
 * with the adapter's hooks (model/block.c), the final norm and the chunked LM
 * head loss; then the backward from the loss down to the plan's stop layer.
 * Base weights are frozen: only the adapter's hooks add weight gradients. */
#include "train/train_ctx.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/ops.h"
#include "core/prof.h"
#include "core/util.h"

/* Walks the arena layout: with base == NULL it only counts floats.  The one
 * list serves the size (--max-memory, the printed plan) and the carving. */
static size_t layout(rosa_train_ctx *t, float *base) {
    const rosa_config *c = &t->m->cfg;
    size_t N = (size_t)t->Bmax * (size_t)t->Tmax, off = 0, D = (size_t)c->hidden_size,
           F = (size_t)c->intermediate_size, Q = (size_t)c->num_heads * c->head_dim,
           K = (size_t)c->num_kv_heads * c->head_dim, L = (size_t)c->num_layers;
#define TAKE(ptr, n) ROSA_ARENA_TAKE(base, off, ptr, n)
    /* With recompute, layer 0's set serves every layer: it is sized for the
     * largest hook state of any layer. */
    size_t shared_hook = t->recompute ? rosa_block_hook_floats_max(t->hooks, t->n_hooks, (int)L, (int)N) : 0;
    const rosa_arch_desc *ad = rosa_arch_of(c);
    int qk_norm = ad->xnorm_names[XNORM_Q] != NULL, sandwich = ad->xnorm_names[XNORM_POST_ATTN] != NULL;
    for (size_t l = 0; l < L; l++) {
        rosa_block_acts *A = base ? &t->acts[l] : &(rosa_block_acts){0};
        TAKE(A->x, N * D);
        if (t->recompute && l > 0) { /* share layer 0's set, keep an own input */
            if (base) {
                float *x = A->x;
                *A = t->acts[0];
                A->x = x;
            }
            continue;
        }
        TAKE(A->rstd1, N);
        TAKE(A->q, N * Q);
        TAKE(A->k, N * K);
        TAKE(A->v, N * K);
        TAKE(A->lse, N * (size_t)c->num_heads);
        TAKE(A->att, N * Q);
        TAKE(A->x2, N * D);
        TAKE(A->rstd2, N);
        TAKE(A->gate, N * F);
        TAKE(A->up, N * F);
        if (qk_norm) {
            TAKE(A->qn, N * Q);
            TAKE(A->kn, N * K);
            TAKE(A->rstdq, N * (size_t)c->num_heads);
            TAKE(A->rstdk, N * (size_t)c->num_kv_heads);
        }
        if (sandwich) {
            TAKE(A->o, N * D);
            TAKE(A->rstdo, N);
            TAKE(A->mo, N * D);
            TAKE(A->rstdm, N);
        }
        float *hook = NULL;
        TAKE(hook, t->recompute ? shared_hook : rosa_block_hook_floats(t->hooks, t->n_hooks, (int)l, (int)N));
        for (int i = 0; base && i < t->n_hooks; i++) A->hook[i] = hook;
    }
    TAKE(t->xf, N * D);
    TAKE(t->hf, N * D);
    TAKE(t->rstdf, N);
    TAKE(t->dx, N * D);
    TAKE(t->dh, N * D);
    TAKE(t->dq, N * Q);
    TAKE(t->dk, N * K);
    TAKE(t->dv, N * K);
    TAKE(t->datt, N * Q);
    TAKE(t->dgate, N * F);
    TAKE(t->dup, N * F);
    TAKE(t->dact, N * F);
    TAKE(t->h, N * D);
    size_t widest = D > F ? D : F;
    TAKE(t->tmp, N * (widest > Q ? widest : Q));
    for (int i = 0; i < t->n_hooks; i++)
        if (t->hooks[i].ops->scratch_floats) TAKE(t->hook_scratch[i], t->hooks[i].ops->scratch_floats(t->hooks[i].self, (int)N));
    TAKE(t->scores, (size_t)omp_get_max_threads() * 2 * (size_t)t->Tmax * (size_t)t->Tmax);
    TAKE(t->pos, N);
    TAKE(t->rope_cs, (size_t)t->m->n_rope * N * (size_t)c->head_dim);
    TAKE(t->target, N);
    TAKE(t->weight, N);
    TAKE(t->ce, N);
    TAKE(t->norm_grad, (L * (size_t)t->n_norms + 1) * D);
#undef TAKE
    return off;
}

/* Each hook's slice of layer l's hook region (carved at hook[0]). */
static void hook_slices(rosa_train_ctx *t, int l, int N) {
    rosa_block_hook_slices(t->hooks, t->n_hooks, l, N, t->acts[l].hook[0], &t->acts[l]);
}

static void init_ctx(rosa_train_ctx *t, const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute) {
    t->m = m;
    t->a = a;
    t->Bmax = Bmax;
    t->Tmax = Tmax;
    t->recompute = recompute;
    t->n_norms = rosa_arch_of(&m->cfg)->n_norms;
    t->n_hooks = 0;
    if (a) t->hooks[t->n_hooks++] = rosa_adapter_hook(a);
}

size_t rosa_train_ctx_bytes(const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute) {
    rosa_train_ctx t = {0};
    init_ctx(&t, m, a, Bmax, Tmax, recompute);
    return layout(&t, NULL) * sizeof(float);
}

rosa_train_ctx *rosa_train_ctx_new(const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute) {
    if (Bmax < 1 || Tmax < 1) {
        rosa_fail("training batch %d x %d must be positive", Bmax, Tmax);
        return NULL;
    }
    rosa_train_ctx *t = rosa_calloc(1, sizeof *t, "training state");
    if (!t) return NULL;
    init_ctx(t, m, a, Bmax, Tmax, recompute);
    t->acts = rosa_calloc((size_t)m->cfg.num_layers, sizeof(rosa_block_acts), "activations");
    t->layer_rng = rosa_calloc((size_t)m->cfg.num_layers, sizeof(rosa_rng), "dropout state");
    t->arena_floats = layout(t, NULL);
    t->arena = t->acts && t->layer_rng ? rosa_calloc(t->arena_floats, sizeof(float), "activations") : NULL;
    if (!t->arena) {
        rosa_train_ctx_free(t);
        return NULL;
    }
    layout(t, t->arena);
    return t;
}

void rosa_train_ctx_free(rosa_train_ctx *t) {
    if (!t) return;
    free(t->arena);
    free(t->acts);
    free(t->layer_rng);
    free(t);
}

void rosa_train_zero_norm_grads(rosa_train_ctx *t) {
    memset(t->norm_grad, 0, sizeof(float) * ((size_t)t->m->cfg.num_layers * t->n_norms + 1) * t->m->cfg.hidden_size);
}

int rosa_train_microbatch(rosa_train_ctx *t, const rosa_batch *b, float token_weight, const rosa_step_plan *plan,
                          rosa_rng *dropout_rng, double *loss_sum, int *n_tokens, float *ce_out) {
    const rosa_model *m = t->m;
    const rosa_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, D = c->hidden_size, V = c->vocab_size, L = c->num_layers;
    if (B > t->Bmax || T > t->Tmax)
        return rosa_fail("micro-batch %d x %d exceeds the allocated %d x %d", B, T, t->Bmax, t->Tmax);
    for (int i = 0; i < N; i++)
        if (b->ids[i] < 0 || b->ids[i] >= V) return rosa_fail("token id %d out of range [0, %d)", b->ids[i], V);
    /* Positions count real tokens; targets are the next token's label. */
    int count = 0;
    for (int s = 0; s < B; s++) {
        int p = 0;
        for (int k = 0; k < T; k++) {
            int n = s * T + k;
            t->pos[n] = b->mask[n] ? p++ : 0;
            int32_t lab = k + 1 < T ? b->labels[n + 1] : ROSA_IGNORE_INDEX;
            t->target[n] = lab >= 0 && b->mask[n] ? lab : -1;
            if (t->target[n] >= V) return rosa_fail("label %d out of range [0, %d)", t->target[n], V);
            t->weight[n] = token_weight;
            count += t->target[n] >= 0;
        }
    }
    *n_tokens = count;
    rosa_block_ctx bc = {.m = m, .hooks = t->hooks, .n_hooks = t->n_hooks, .B = B, .T = T, .N = N,
                         .rope_cs = t->rope_cs, .mask = b->mask, .pos = t->pos, .scores = t->scores, .h = t->h, .act = t->dact,
                         .tmp = t->tmp, .train = plan->backward, .drop = dropout_rng,
                         .layer_active = plan->layer_active, .norm_grad = t->norm_grad, .dx = t->dx, .dh = t->dh,
                         .dq = t->dq, .dk = t->dk, .dv = t->dv, .datt = t->datt, .dgate = t->dgate, .dup = t->dup,
                         .dact = t->dact};
    memcpy(bc.hook_scratch, t->hook_scratch, sizeof bc.hook_scratch);
    PROF(PROF_ROPE, 0, rosa_model_rope_tables(m, t->rope_cs, t->pos, N));
    PROF(PROF_OTHER, 0, rosa_block_embed(m, t->acts[0].x, b->ids, N));
    for (int l = 0; l < L; l++) {
        if (dropout_rng) t->layer_rng[l] = *dropout_rng;
        hook_slices(t, l, N);
        if (rosa_block_forward(&bc, l, &t->acts[l], l + 1 < L ? t->acts[l + 1].x : t->xf) < 0) return -1;
    }
    const float *final_norm = rosa_block_final_norm(t->hooks, t->n_hooks, m);
    rmsnorm_forward(t->hf, t->rstdf, t->xf, final_norm, N, D, c->rms_norm_eps);
    double loss;
    if (lm_head_loss(&loss, plan->backward ? t->dh : NULL, t->ce, t->hf, &m->lm_head, t->target, t->weight, N, D, V) < 0)
        return -1;
    *loss_sum = loss;
    if (ce_out) memcpy(ce_out, t->ce, sizeof(float) * (size_t)N);
    /* A non-finite loss is the caller's to report; its gradient is useless. */
    if (!plan->backward || count == 0 || !isfinite(loss)) return 0;
    memset(t->dx, 0, sizeof(float) * (size_t)N * D);
    /* The final norm's gradient follows the layers' (for a method that trains it). */
    rmsnorm_backward(t->dx, t->norm_grad + (size_t)L * t->n_norms * D, t->dh, t->xf, final_norm, t->rstdf, N, D);
    int stop = plan->stop_layer < 0 ? 0 : plan->stop_layer;
    for (int l = L - 1; l >= stop; l--) {
        /* The shared set still holds the last layer's activations. */
        if (t->recompute && l < L - 1) {
            rosa_rng r = t->layer_rng[l];
            bc.drop = dropout_rng ? &r : NULL;
            hook_slices(t, l, N);
            if (rosa_block_forward(&bc, l, &t->acts[l], l + 1 < L ? t->acts[l + 1].x : t->xf) < 0) return -1;
        }
        if (rosa_block_backward(&bc, l, &t->acts[l]) < 0) return -1;
    }
    return 0;
}

int rosa_eval_loss(rosa_train_ctx *t, const rosa_dataset *d, const int32_t *idx, int n, int micro,
                   double *token_mean, double *example_mean, double *per_example) {
    double total = 0.0, ex_total = 0.0;
    long long tokens = 0;
    int examples = 0;
    float *ce = rosa_malloc(sizeof(float) * (size_t)micro * (size_t)t->Tmax, "losses");
    if (!ce) return -1;
    rosa_step_plan plan = {0};
    for (int i = 0; i < n; i += micro) {
        int B = n - i < micro ? n - i : micro;
        rosa_batch b;
        if (rosa_batch_make(d, idx + i, B, 0, &b) < 0) {
            free(ce);
            return -1;
        }
        double sum;
        int ntok;
        int rc = rosa_train_microbatch(t, &b, 1.0f, &plan, NULL, &sum, &ntok, ce);
        if (rc == 0) {
            for (int s = 0; s < B; s++) {
                double es = 0.0;
                int et = 0;
                for (int k = 0; k + 1 < b.T; k++) {
                    if (b.mask[s * b.T + k] && b.labels[s * b.T + k + 1] != ROSA_IGNORE_INDEX) {
                        es += ce[s * b.T + k];
                        et++;
                    }
                }
                total += es;
                tokens += et;
                double mean = et ? es / et : NAN;
                if (per_example) per_example[i + s] = mean;
                if (et) {
                    ex_total += mean;
                    examples++;
                }
            }
        }
        rosa_batch_free(&b);
        if (rc < 0) {
            free(ce);
            return -1;
        }
    }
    free(ce);
    *token_mean = tokens ? total / (double)tokens : NAN;
    if (example_mean) *example_mean = examples ? ex_total / examples : NAN;
    return 0;
}
