/* gemm.c: dispatch of rosa_gemm to oneDNN or CBLAS. */
#include "gemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

/* -1 until the first GEMM reads ROSA_GEMM.  That GEMM may run inside a
 * parallel region, so the flag is read and set atomically (every thread
 * computes the same value). */
static int use_openblas = -1;

static int openblas_chosen(void) {
    int v = __atomic_load_n(&use_openblas, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv("ROSA_GEMM");
        v = e && strcmp(e, "openblas") == 0;
        __atomic_store_n(&use_openblas, v, __ATOMIC_RELAXED);
    }
    return v;
}

const char *rosa_gemm_backend(void) { return openblas_chosen() ? "openblas" : "onednn"; }

void rosa_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (openblas_chosen()) {
        cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N,
                    K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
