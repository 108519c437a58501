/* hashmap.c: open-addressing hash maps over byte strings and id pairs, and the
 * byte trie used to find added tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return x;
}

uint64_t tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x94D049BB133111EBull;
    }
    return mix64(h);
}

static uint32_t pow2_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 16) cap *= 2;
    return (uint32_t)cap;
}

int tok_strmap_init(tok_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    uint32_t cap = pow2_for(expected);
    m->slots = rosa_malloc((size_t)cap * sizeof *m->slots, "tokenizer hash map");
    if (!m->slots) return -1;
    for (uint32_t i = 0; i < cap; i++) m->slots[i].val = -1;
    m->mask = cap - 1;
    return 0;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    rosa_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static int strmap_grow(tok_strmap *m) {
    uint32_t cap = (m->mask + 1) * 2;
    tok_strslot *s = rosa_malloc((size_t)cap * sizeof *s, "tokenizer hash map");
    if (!s) return -1;
    for (uint32_t i = 0; i < cap; i++) s[i].val = -1;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].val < 0) continue;
        uint32_t j = (uint32_t)m->slots[i].h & (cap - 1);
        while (s[j].val >= 0) j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->mask = cap - 1;
    return 0;
}

int32_t tok_strmap_get_h(const tok_strmap *m, const char *k, size_t n, uint64_t h) {
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        const tok_strslot *s = &m->slots[i];
        if (s->val < 0) return -1;
        if (s->h == h && s->len == n && memcmp(m->keys.data + s->off, k, n) == 0) return s->val;
    }
}

int32_t tok_strmap_get(const tok_strmap *m, const char *k, size_t n) {
    return tok_strmap_get_h(m, k, n, tok_hash(k, n));
}

int tok_strmap_put(tok_strmap *m, const char *k, size_t n, int32_t v, int32_t *old,
                   uint32_t *key_off) {
    uint64_t h = tok_hash(k, n);
    *old = -1;
    uint32_t i = (uint32_t)h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        tok_strslot *s = &m->slots[i];
        if (s->val < 0) break;
        if (s->h == h && s->len == n && memcmp(m->keys.data + s->off, k, n) == 0) {
            *old = s->val;
            if (key_off) *key_off = s->off;
            return 0;
        }
    }
    if (m->keys.len + n + 1 > UINT32_MAX) return rosa_fail("tokenizer vocabulary too large");
    uint32_t off = (uint32_t)m->keys.len;
    if (rosa_buf_append(&m->keys, k, n) < 0 || rosa_buf_putc(&m->keys, 0) < 0) return -1;
    m->slots[i] = (tok_strslot){h, off, (uint32_t)n, v};
    m->n++;
    if (key_off) *key_off = off;
    if ((size_t)m->n * 2 > (size_t)m->mask + 1) return strmap_grow(m);
    return 0;
}

/* ------------------------------------------------------------------ pairs */

int tok_pairmap_init(tok_pairmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    uint32_t cap = pow2_for(expected);
    m->slots = rosa_malloc((size_t)cap * sizeof *m->slots, "merge table");
    if (!m->slots) return -1;
    for (uint32_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    return 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* The table is sized for all merges up front (tok_pairmap_init), so it never
 * needs to grow. */
void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        tok_pairslot *s = &m->slots[i];
        if (s->key == key) {
            s->rank = rank;
            s->id = id;
            return;
        }
        if (s->key == UINT64_MAX) {
            *s = (tok_pairslot){key, rank, id};
            m->n++;
            return;
        }
    }
}

/* ------------------------------------------------------------------- trie */

static int32_t trie_node(tok_trie *t, uint8_t byte) {
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 64;
        tok_trie_node *nodes = rosa_realloc(t->nodes, (size_t)cap * sizeof *nodes, "token trie");
        if (!nodes) return -1;
        t->nodes = nodes;
        t->cap = cap;
    }
    t->nodes[t->n] = (tok_trie_node){-1, -1, -1, byte};
    return t->n++;
}

int tok_trie_add(tok_trie *t, const char *s, size_t n, int32_t token) {
    if (n == 0) return 0;
    if (t->n == 0 && trie_node(t, 0) < 0) return -1; /* root */
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t ch = t->nodes[cur].child;
        while (ch >= 0 && t->nodes[ch].byte != c) ch = t->nodes[ch].sibling;
        if (ch < 0) {
            ch = trie_node(t, c);
            if (ch < 0) return -1;
            t->nodes[ch].sibling = t->nodes[cur].child;
            t->nodes[cur].child = ch;
        }
        cur = ch;
    }
    t->nodes[cur].token = token; /* a later token with the same content wins */
    t->first[(uint8_t)s[0] >> 3] |= (uint8_t)(1u << ((uint8_t)s[0] & 7));
    t->n_tokens++;
    return 0;
}

void tok_trie_free(tok_trie *t) {
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

size_t tok_trie_longest(const tok_trie *t, const char *s, size_t n, int32_t *token) {
    if (t->n == 0 || n == 0) return 0;
    uint8_t c0 = (uint8_t)s[0];
    if (!(t->first[c0 >> 3] & (1u << (c0 & 7)))) return 0;
    int32_t cur = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t ch = t->nodes[cur].child;
        while (ch >= 0 && t->nodes[ch].byte != c) ch = t->nodes[ch].sibling;
        if (ch < 0) break;
        cur = ch;
        if (t->nodes[cur].token >= 0) {
            best = i + 1;
            *token = t->nodes[cur].token;
        }
    }
    return best;
}
