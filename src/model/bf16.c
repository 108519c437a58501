/* bf16.c: oneDNN matmul primitives over packed BF16 weights. */
#include "bf16.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define ROW_BLOCK 64
#define MAX_CACHED 64

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static char impl_name[64] = "none";

/* Scratch shared by all calls: the BF16 copy of the input and the FP32 output. */
static uint16_t *src_buf;
static float *dst_buf;
static size_t src_cap, dst_cap;

typedef struct {
    int M;                 /* rounded row count */
    int accumulate;        /* built with a sum post-op: C += A B */
    dnnl_primitive_t prim;
} cached_prim;

/* One direction: C[M][N] = A[M][K] B[K][N] with B packed. */
typedef struct {
    int K, N;
    dnnl_memory_desc_t packed_md;
    dnnl_memory_t packed;
    cached_prim cache[MAX_CACHED];
    int n_cached;
} direction;

struct rosa_bf16_weight {
    direction fwd, bwd;
};

static int init_engine(void) {
    if (engine) return 0;
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return rosa_fail("oneDNN: cannot create a CPU engine");
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success)
        return rosa_fail("oneDNN: cannot create a stream");
    return 0;
}

/* A matmul primitive for M rows; weights in `wmd` (any = let oneDNN choose).
 * With accumulate, a sum post-op makes it add to the destination. */
static dnnl_primitive_t make_prim(int M, int K, int N, const dnnl_memory_desc_t *wmd, int accumulate,
                                  dnnl_memory_desc_t *chosen) {
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t sd = {M, K}, dd = {M, N};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success)
        return NULL;
    if (accumulate &&
        (dnnl_primitive_attr_create(&attr) != dnnl_success || dnnl_post_ops_create(&po) != dnnl_success ||
         dnnl_post_ops_append_sum(po, 1.0f) != dnnl_success || dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success)) {
        if (po) dnnl_post_ops_destroy(po);
        if (attr) dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    dnnl_matmul_desc_t md;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, &src, wmd, NULL, &dst);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return NULL;
    if (chosen) *chosen = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(impl_name, sizeof impl_name, "%s", impl);
    if (dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    return prim;
}

/* Packs B[K][N], stored with strides (sk, sn) in FP32, into the layout the
 * BF16 matmul prefers for a typical row count. */
static int pack(direction *d, const float *B, int K, int N, dnnl_dim_t sk, dnnl_dim_t sn) {
    d->K = K;
    d->N = N;
    dnnl_memory_desc_t any, plain;
    dnnl_dims_t wd = {K, N}, ws = {sk, sn};
    if (dnnl_memory_desc_init_by_tag(&any, 2, wd, dnnl_bf16, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&plain, 2, wd, dnnl_f32, ws) != dnnl_success)
        return rosa_fail("oneDNN: bad weight shape %d x %d", K, N);
    dnnl_primitive_t first = make_prim(16 * ROW_BLOCK, K, N, &any, 0, &d->packed_md);
    if (!first) return rosa_fail("oneDNN: no BF16 matmul for %d x %d weights", K, N);
    d->cache[0] = (cached_prim){16 * ROW_BLOCK, 0, first};
    d->n_cached = 1;
    dnnl_memory_t src_mem = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    int rc = -1;
    if (dnnl_memory_create(&d->packed, &d->packed_md, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success &&
        dnnl_memory_create(&src_mem, &plain, engine, (void *)B) == dnnl_success &&
        dnnl_reorder_primitive_desc_create(&rpd, &plain, engine, &d->packed_md, engine, NULL) == dnnl_success &&
        dnnl_primitive_create(&reorder, rpd) == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src_mem}, {DNNL_ARG_TO, d->packed}};
        if (dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success)
            rc = 0;
    }
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (src_mem) dnnl_memory_destroy(src_mem);
    if (rc < 0) rosa_fail("oneDNN: packing a %d x %d weight failed", K, N);
    return rc;
}

static int prim_cached(const direction *d, dnnl_primitive_t p) {
    for (int i = 0; i < d->n_cached; i++)
        if (d->cache[i].prim == p) return 1;
    return 0;
}

static void direction_free(direction *d) {
    for (int i = 0; i < d->n_cached; i++) dnnl_primitive_destroy(d->cache[i].prim);
    if (d->packed) dnnl_memory_destroy(d->packed);
}

int rosa_bf16_supported(void) {
    if (init_engine() < 0) return 0;
    float W[32 * 32] = {0};
    rosa_bf16_weight *w = rosa_bf16_weight_new(W, 32, 32, 1);
    int ok = w != NULL;
    rosa_bf16_weight_free(w);
    return ok;
}

rosa_bf16_weight *rosa_bf16_weight_new(const float *W, int out, int in, int backward) {
    if (init_engine() < 0) return NULL;
    rosa_bf16_weight *w = rosa_calloc(1, sizeof *w, "BF16 weight");
    if (!w) return NULL;
    /* forward: B = W^T [in][out] is W read with strides (1, in);
     * backward: B = W [out][in], strides (in, 1). */
    if (pack(&w->fwd, W, in, out, 1, in) < 0 || (backward && pack(&w->bwd, W, out, in, in, 1) < 0)) {
        rosa_bf16_weight_free(w);
        return NULL;
    }
    return w;
}

void rosa_bf16_weight_free(rosa_bf16_weight *w) {
    if (!w) return;
    direction_free(&w->fwd);
    direction_free(&w->bwd);
    free(w);
}

size_t rosa_bf16_weight_bytes(const rosa_bf16_weight *w) {
    return dnnl_memory_desc_get_size(&w->fwd.packed_md) + (w->bwd.packed ? dnnl_memory_desc_get_size(&w->bwd.packed_md) : 0);
}

const char *rosa_bf16_impl(void) { return impl_name; }

static int grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    void *p = rosa_realloc(*buf, bytes, "BF16 scratch");
    if (!p) return -1;
    *buf = p;
    *cap = bytes;
    return 0;
}

/* The primitive for Mp rows, built on first use and cached. */
static dnnl_primitive_t get_prim(direction *d, int Mp, int accumulate) {
    for (int i = 0; i < d->n_cached; i++)
        if (d->cache[i].M == Mp && d->cache[i].accumulate == accumulate) return d->cache[i].prim;
    dnnl_primitive_t prim = make_prim(Mp, d->K, d->N, &d->packed_md, accumulate, NULL);
    if (prim && d->n_cached < MAX_CACHED) d->cache[d->n_cached++] = (cached_prim){Mp, accumulate, prim};
    return prim;
}

/* C[Mp][N] (+)= S[Mp][K] B for BF16 rows S, Mp a multiple of the row block;
 * into C itself, or into the scratch dst_buf when C is NULL. */
static int exec(direction *d, float *C, const uint16_t *S, int Mp, int accumulate) {
    dnnl_primitive_t prim = get_prim(d, Mp, accumulate);
    if (!prim) return rosa_fail("oneDNN: no BF16 matmul for %d rows", Mp);
    if (!C && grow((void **)&dst_buf, &dst_cap, (size_t)Mp * d->N * sizeof(float)) < 0) return -1;
    dnnl_memory_desc_t smd, dmd;
    dnnl_dims_t sd = {Mp, d->K}, dd = {Mp, d->N};
    dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab);
    dnnl_memory_t sm = NULL, dm = NULL;
    int rc = -1;
    if (dnnl_memory_create(&sm, &smd, engine, (void *)S) == dnnl_success &&
        dnnl_memory_create(&dm, &dmd, engine, C ? C : dst_buf) == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, d->packed}, {DNNL_ARG_DST, dm}};
        if (dnnl_primitive_execute(prim, stream, 3, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success)
            rc = 0;
    }
    if (sm) dnnl_memory_destroy(sm);
    if (dm) dnnl_memory_destroy(dm);
    if (!prim_cached(d, prim)) dnnl_primitive_destroy(prim);
    return rc < 0 ? rosa_fail("oneDNN: BF16 matmul failed") : 0;
}

/* C[M][N] (+)= A[M][K] B with A converted to BF16.  When M is a multiple of
 * the row block (training batches), oneDNN writes (or, with its sum post-op,
 * adds) straight into C; otherwise it fills the padded scratch, copied out. */
static int run(direction *d, float *C, const float *A, int M, int accumulate) {
    if (M <= 0) return 0;
    int Mp = (M + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK, direct = Mp == M;
    size_t nsrc = (size_t)Mp * d->K, n = (size_t)M * d->K;
    if (grow((void **)&src_buf, &src_cap, nsrc * sizeof(uint16_t)) < 0) return -1;
    uint16_t *sb = src_buf;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) sb[i] = rosa_f32_to_bf16(A[i]);
    memset(src_buf + n, 0, (nsrc - n) * sizeof(uint16_t));
    if (exec(d, direct ? C : NULL, src_buf, Mp, direct && accumulate) < 0) return -1;
    if (direct) return 0;
    size_t out = (size_t)M * d->N;
    if (accumulate) {
        float *db = dst_buf;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < out; i++) C[i] += db[i];
    } else {
        memcpy(C, dst_buf, out * sizeof(float));
    }
    return 0;
}

int rosa_bf16_forward_rows(rosa_bf16_weight *w, float *y, const uint16_t *x, int M) {
    if (M <= 0 || M % ROW_BLOCK) return rosa_fail("BF16 rows: %d is not a positive multiple of %d", M, ROW_BLOCK);
    return exec(&w->fwd, y, x, M, 0);
}

int rosa_bf16_forward(rosa_bf16_weight *w, float *y, const float *x, int M, int accumulate) {
    return run(&w->fwd, y, x, M, accumulate);
}

int rosa_bf16_backward(rosa_bf16_weight *w, float *dx, const float *dy, int M, int accumulate) {
    if (!w->bwd.packed) return rosa_fail("a BF16 weight packed for inference only has no backward");
    return run(&w->bwd, dx, dy, M, accumulate);
}
