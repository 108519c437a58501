/* gemm.c: dispatch of rosa_gemm to oneDNN or CBLAS. */
#include "gemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

static int use_openblas = -1;

const char *rosa_gemm_backend(void) {
    if (use_openblas < 0) {
        const char *e = getenv("ROSA_GEMM");
        use_openblas = e && strcmp(e, "openblas") == 0;
    }
    return use_openblas ? "openblas" : "onednn";
}

void rosa_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (use_openblas < 0) rosa_gemm_backend();
    if (use_openblas) {
        cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N,
                    K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
