/* torch_rand.h: PyTorch's CPU random permutation, bit for bit, for the PEFT
 * methods whose saved files rely on it (SHiRA's random mask, FourierFT's
 * spectral positions: both draw torch.randperm(n, generator=torch.Generator()
 * .manual_seed(seed)) again when PEFT loads an adapter). */
#ifndef ROSA_TORCH_RAND_H
#define ROSA_TORCH_RAND_H

#include <stdint.h>

/* torch.Generator()'s seed when none is given (c10's default_rng_seed_val). */
#define ROSA_TORCH_DEFAULT_SEED 67280421310721ULL

/* out[0..k) = torch.randperm(n, generator=<seeded with seed>)[:k] (k <= n),
 * in O(k) memory.  Returns 0, or -1 (out of memory, or n at or above
 * 2^32 / 20, where PyTorch switches to another algorithm). */
int rosa_torch_randperm(int64_t n, uint64_t seed, int64_t k, int64_t *out);

#endif
