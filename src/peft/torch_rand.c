/* torch_rand.c: see torch_rand.h.
 *
 * PyTorch's CPU generator is the 32-bit Mersenne Twister (mt19937) seeded
 * with the low 32 bits of the seed, and randperm for n < 2^32 / 20 is the
 * Fisher-Yates shuffle of 0..n-1 with z = random() % (n - i) swapped into
 * place i (aten randperm_cpu; unchanged from 1.x to 2.x).  Place i is final
 * after step i, so the first k places need only the first k draws, and the
 * swapped-away values are kept in a hash map of O(k) entries instead of an
 * array of n. */
#include "peft/torch_rand.h"

#include <stdlib.h>

#include "core/util.h"

typedef struct {
    uint32_t s[624];
    int i;
} mt19937;

static void mt_seed(mt19937 *m, uint64_t seed) {
    m->s[0] = (uint32_t)seed;
    for (int j = 1; j < 624; j++) m->s[j] = 1812433253u * (m->s[j - 1] ^ (m->s[j - 1] >> 30)) + (uint32_t)j;
    m->i = 624;
}

static uint32_t mt_next(mt19937 *m) {
    if (m->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (m->s[k] & 0x80000000u) | (m->s[(k + 1) % 624] & 0x7fffffffu);
            m->s[k] = m->s[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* Open addressing: position -> value, for positions whose value moved. */
typedef struct {
    int64_t *key, *val;
    size_t mask;
} pos_map;

static size_t slot(const pos_map *h, int64_t key) {
    size_t i = ((uint64_t)key * 0x9e3779b97f4a7c15ull) >> 20 & h->mask;
    while (h->key[i] >= 0 && h->key[i] != key) i = (i + 1) & h->mask;
    return i;
}

static int64_t get(const pos_map *h, int64_t pos) {
    size_t i = slot(h, pos);
    return h->key[i] == pos ? h->val[i] : pos; /* untouched: the identity */
}

static void put(pos_map *h, int64_t pos, int64_t v) {
    size_t i = slot(h, pos);
    h->key[i] = pos, h->val[i] = v;
}

int rosa_torch_randperm(int64_t n, uint64_t seed, int64_t k, int64_t *out) {
    if (n >= (int64_t)(4294967295u / 20)) return rosa_fail("randperm of %lld: beyond PyTorch's small-n algorithm", (long long)n);
    if (k > n) k = n;
    size_t cap = 16;
    while (cap < 4 * (size_t)k) cap *= 2; /* each step writes at most one new position */
    pos_map h = {rosa_malloc(sizeof(int64_t) * cap, "randperm"), rosa_malloc(sizeof(int64_t) * cap, "randperm"), cap - 1};
    if (!h.key || !h.val) {
        free(h.key);
        free(h.val);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) h.key[i] = -1;
    mt19937 m;
    mt_seed(&m, seed);
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)(mt_next(&m) % (uint64_t)(n - i));
        int64_t vi = get(&h, i), vj = get(&h, j);
        out[i] = vj;
        put(&h, j, vi);
    }
    free(h.key);
    free(h.val);
    return 0;
}
