/* prof.h: wall-clock time and FLOPs by kind of operation, for the profile by
 * op that `bench_train` prints (docs/performance.md).  The training pass adds
 * to these counters from its calling thread (outside parallel regions); the
 * cost is two clock reads per operation. */
#ifndef ROSA_PROF_H
#define ROSA_PROF_H

typedef enum {
    PROF_PROJ,      /* frozen projections: x W^T forward, dy W backward */
    PROF_HEAD,      /* LM head products, forward and backward */
    PROF_LOSS,      /* LM head softmax and cross-entropy */
    PROF_ATTN,      /* attention (its GEMMs and softmax), forward and backward */
    PROF_ADAPTER,   /* LoRA / RoAE branches and RoAE modulation */
    PROF_NORM,      /* RMSNorm forward, rebuild and backward */
    PROF_ROPE,      /* RoPE forward and backward */
    PROF_SWIGLU,    /* SwiGLU forward, rebuild and backward */
    PROF_OTHER,     /* embedding, residual adds, copies */
    PROF_N
} rosa_prof_op;

double rosa_prof_now(void);
/* Adds the time since t0 (from rosa_prof_now) and flops to op. */
void rosa_prof_add(rosa_prof_op op, double t0, double flops);
void rosa_prof_reset(void);
void rosa_prof_get(rosa_prof_op op, double *seconds, double *flops);
const char *rosa_prof_name(rosa_prof_op op);

/* Times one statement. */
#define PROF(op, flops, stmt)                      \
    do {                                           \
        double prof_t0_ = rosa_prof_now();         \
        stmt;                                      \
        rosa_prof_add((op), prof_t0_, (flops));    \
    } while (0)

#endif
