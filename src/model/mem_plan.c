/* mem_plan.c: the memory a model needs, from its headers (rosa_model_info):
 * the frozen weights as model.c stores them, generation's KV cache and
 * buffers.  Keep the rules here in step with model.c, forward.c and bf16.c;
 * tests/test_mem_plan.c compares the plan with the measured peak. */
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arch/arch.h"
#include "model/mem_plan.h"
#include "model/model.h"
#include "model/weight.h"
#include "rosa.h"

/* The math libraries' pages once computing (OpenBLAS's packing buffers,
 * oneDNN's kernels and scratchpad, the OpenMP threads' stacks): measured
 * with ru_maxrss on the shipped models, about 9 MiB in FP32 and 14 MiB in
 * BF16, whatever the thread count (docs/memory.md). */
int64_t rosa_plan_libraries(rosa_dtype compute) { return compute == ROSA_DTYPE_BF16 ? 14LL << 20 : 9LL << 20; }

/* The int8 blocks of every layer's projections: a byte an element and an
 * FP32 scale a block (weight.h). */
static int64_t q8_bytes(const rosa_config *c) {
    int64_t n = 0;
    for (int p = 0; p < N_PROJ; p++) {
        int in, out;
        rosa_proj_shape(c, p, &in, &out);
        n += (int64_t)out * (in + 4 * rosa_q8_blocks(in));
    }
    return n * c->num_layers;
}

void rosa_plan_weights(const rosa_model_info *mi, rosa_dtype compute, rosa_quant quant, int forward_only,
                       rosa_memory_plan *p) {
    /* The embedding, norms and biases: F32 used from the mapping (its pages
     * count once read), 16-bit widened to F32 copies at load (the mapped
     * pages released). */
    int64_t other = mi->other_f32_bytes + 2 * mi->other_half_bytes;
    if (quant == ROSA_QUANT_INT8) {
        /* The projections' blocks, an untied LM head used from the mapping
         * as in FP32, and the one buffer that every product dequantises
         * (or widens) into: of the largest projection, or a 16-bit head. */
        int64_t head = mi->head_f32_bytes + mi->head_half_bytes, buffer = mi->largest_proj_params;
        if (mi->head_half_bytes / 2 > buffer) buffer = mi->head_half_bytes / 2;
        p->weights = other + head + q8_bytes(&mi->cfg) + 4 * buffer;
        /* While a projection is quantised, its rows as stored are resident
         * (then released); or the embedding's mapped pages while widened. */
        int64_t rows = mi->largest_proj_params * (mi->cfg.weight_dtype == ROSA_DTYPE_F32 ? 4 : 2);
        p->load_extra = rows > mi->embed_half_bytes ? rows : mi->embed_half_bytes;
        return;
    }
    if (compute != ROSA_DTYPE_BF16) {
        /* Matrices from the mapping, whatever their format; 16-bit ones are
         * widened at each product into one buffer of the largest. */
        p->weights = other + mi->matrix_f32_bytes + mi->matrix_half_bytes + 4 * mi->largest_half_matrix_params;
        p->load_extra = mi->embed_half_bytes; /* the embedding's mapped pages while it is widened */
        return;
    }
    /* --dtype bf16 packs every projection and the LM head twice (forward and
     * backward layouts, 2 bytes an element; once for inference), one matrix
     * at a time, releasing its rows at once: while packing, one matrix's rows
     * and the widening buffer are held besides. */
    const rosa_config *c = &mi->cfg;
    int64_t VD = (int64_t)c->vocab_size * c->hidden_size;
    p->weights = other + (forward_only ? 2 : 4) * (mi->proj_params + VD);
    p->load_extra = 4 * mi->largest_half_matrix_params + 4 * mi->largest_matrix_params;
    if (p->load_extra < mi->embed_half_bytes) p->load_extra = mi->embed_half_bytes;
}

void rosa_plan_total(rosa_memory_plan *p) {
    int64_t rest = p->activations + p->adapter + p->optimizer + p->kv_cache + p->scratch;
    p->total = p->process + p->libraries + p->weights + (p->load_extra > rest ? p->load_extra : rest);
}

void rosa_plan_generate(const rosa_model_info *mi, rosa_dtype compute, rosa_quant quant, int batch, int n_prompt,
                        int n_ctx, rosa_memory_plan *p) {
    memset(p, 0, sizeof *p);
    const rosa_config *c = &mi->cfg;
    rosa_plan_weights(mi, compute, quant, 1, p);
    p->process = rosa_rss_bytes();
    p->libraries = rosa_plan_libraries(compute);
    int64_t kv = (int64_t)c->num_kv_heads * c->head_dim, rows = 0;
    /* forward.c's cache: n_ctx rows a layer, min(window, n_ctx) on sliding ones. */
    for (int l = 0; l < c->num_layers; l++) {
        rosa_layer_props lp;
        rosa_layer_props_of(c, l, &lp);
        rows += rosa_kv_rows(lp.window, n_ctx);
    }
    p->kv_cache = (int64_t)batch * (rows * kv * 2 * 4 + 4);
    /* The prefill of the whole prompt at once: forward.c's buffers for N
     * rows, its attention scores, and the last rows' logits. */
    int64_t T = n_prompt < n_ctx ? n_prompt : n_ctx, N = (int64_t)batch * T, threads = omp_get_max_threads();
    int64_t D = c->hidden_size, F = c->intermediate_size, Q = (int64_t)c->num_heads * c->head_dim;
    p->scratch = 4 * (N * (3 * D + Q + 2 * kv + 2 * F + c->head_dim) + threads * 2 * T * T + (int64_t)batch * c->vocab_size);
    if (compute == ROSA_DTYPE_BF16) p->scratch += N * (F > D ? F : D) * 2 + N * (F > Q ? F : Q) * 4;
    rosa_plan_total(p);
}

int64_t rosa_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long long pages = 0, rss = 0;
    int ok = f && fscanf(f, "%lld %lld", &pages, &rss) == 2;
    if (f) fclose(f);
    return ok ? rss * (int64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The first number of a one-line file, or -1 (absent, or "max"). */
static long long read_number(const char *path) {
    FILE *f = fopen(path, "r");
    long long v = -1;
    if (f && fscanf(f, "%lld", &v) != 1) v = -1;
    if (f) fclose(f);
    return v;
}

int64_t rosa_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    if (f) fclose(f);
    int64_t avail = (int64_t)kb * 1024;
    /* In a container, its cgroup's limit (v2) binds first. */
    long long max = read_number("/sys/fs/cgroup/memory.max"), cur = read_number("/sys/fs/cgroup/memory.current");
    if (max > 0 && cur >= 0 && max - cur < avail) avail = max > cur ? max - cur : 0;
    return avail;
}
