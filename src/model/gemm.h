/* gemm.h: the one matrix product every module uses.
 *
 * C[M][N] = alpha * op(A) op(B) + beta * C, row-major, op = 'N' (as is) or 'T'
 * (transposed).  oneDNN's sgemm by default: it picks the AVX-512 kernels of
 * the machine, where the Debian OpenBLAS (0.3.21) falls back to its generic
 * Prescott kernels on CPUs it does not know (about 5x slower here; see
 * bench/RESULTS.md).  ROSA_GEMM=openblas selects CBLAS instead.  Called inside
 * an OpenMP parallel region, both run single-threaded, so threads never
 * multiply. */
#ifndef ROSA_GEMM_H
#define ROSA_GEMM_H

void rosa_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);

/* "onednn" or "openblas": the backend rosa_gemm uses in this process. */
const char *rosa_gemm_backend(void);

#endif
