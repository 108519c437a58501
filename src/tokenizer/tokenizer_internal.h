/* tokenizer_internal.h: the data structures shared by the tokenizer's files.
 *
 * The pipeline mirrors Hugging Face `tokenizers`:
 *   raw text -> added tokens (non-normalized) -> normalizer -> added tokens
 *   (normalized) -> pre-tokenizer -> BPE model -> post-processor
 * and for decoding: ids -> pieces -> decoder chain (a streaming transducer, so
 * rosa_tokenizer_decode and rosa_detok share one implementation). */
#ifndef ROSA_TOKENIZER_INTERNAL_H
#define ROSA_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "rosa.h"

/* Ids are < TOK_MAX_ID; a tokenizer.json asking for more is refused. */
#define TOK_MAX_ID (1 << 22)
/* tokenizer.json files larger than this are refused before reading. */
#define TOK_MAX_FILE_BYTES ((size_t)1 << 30)
#define TOK_MAX_STEPS 16    /* normalizer / pre-tokenizer steps */
#define TOK_MAX_DEC 32      /* decoder steps, including transformers' clean-up */

/* ------------------------------------------------------------------ hashing */

uint64_t tok_hash(const void *p, size_t n);

/* Byte string -> int32 (>= 0).  Keys are copied, NUL-terminated, into `keys`. */
typedef struct {
    uint64_t h;
    uint32_t off, len;
    int32_t val; /* -1: empty slot */
} tok_strslot;

typedef struct {
    tok_strslot *slots;
    uint32_t mask, n;
    rosa_buf keys;
} tok_strmap;

int tok_strmap_init(tok_strmap *m, size_t expected);
void tok_strmap_free(tok_strmap *m);
/* Inserts k -> v.  When k is already there, leaves it and returns its value in
 * *old (else *old = -1).  Returns 0 or -1 (out of memory).  *key_off receives
 * the offset of the stored (NUL-terminated) key in m->keys. */
int tok_strmap_put(tok_strmap *m, const char *k, size_t n, int32_t v, int32_t *old,
                   uint32_t *key_off);
int32_t tok_strmap_get(const tok_strmap *m, const char *k, size_t n);
int32_t tok_strmap_get_h(const tok_strmap *m, const char *k, size_t n, uint64_t h);

/* (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, id;
} tok_pairslot;

typedef struct {
    tok_pairslot *slots;
    uint32_t mask, n;
} tok_pairmap;

int tok_pairmap_init(tok_pairmap *m, size_t expected);
void tok_pairmap_free(tok_pairmap *m);
/* Inserts or overwrites (a later duplicate merge wins, as in HF's HashMap). */
void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
static inline const tok_pairslot *tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        const tok_pairslot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* A word -> ids cache (HF caches BPE results per word).  Sharded, each shard
 * behind a try-lock: a busy shard is simply not used. */
#define TOK_CACHE_SHARDS 16
#define TOK_CACHE_SLOTS 8192       /* per shard, power of 2 */
#define TOK_CACHE_MAX_ENTRIES 4096 /* per shard; then no more inserts (as HF) */
#define TOK_CACHE_MAX_WORD 255     /* bytes */

typedef struct {
    uint64_t h;
    uint32_t koff, ioff;
    uint16_t klen, nids; /* klen 0: empty (empty words are never cached) */
} tok_cslot;

typedef struct {
    atomic_flag busy;
    tok_cslot *slots; /* allocated on first insert */
    uint32_t n;
    rosa_buf keys;
    int32_t *ids;
    size_t n_ids, cap_ids;
} tok_cache_shard;

/* ------------------------------------------------------------- added tokens */

typedef struct {
    char *content;
    size_t len;
    char *norm; /* content through the normalizer (normalized tokens only) */
    size_t norm_len;
    int32_t id;
    uint8_t special, lstrip, rstrip, normalized, single_word;
} tok_added;

/* A byte trie of added-token contents for leftmost-longest matching. */
typedef struct {
    int32_t child, sibling; /* node indices, -1: none */
    int32_t token;          /* index into tok->added ending here, -1: none */
    uint8_t byte;
} tok_trie_node;

typedef struct {
    tok_trie_node *nodes;
    int32_t n, cap;
    uint8_t first[32]; /* bitmap of first bytes */
    int n_tokens;
} tok_trie;

/* -------------------------------------------------------------- normalizer */

typedef enum {
    NORM_NFC,
    NORM_NFD,
    NORM_NFKC,
    NORM_NFKD,
    NORM_PREPEND,
    NORM_REPLACE,
    NORM_STRIP
} tok_norm_type;

typedef struct {
    tok_norm_type type;
    char *a, *b; /* Prepend: a; Replace: a (pattern, when a string) -> b */
    size_t a_len, b_len;
    pcre2_code *re; /* Replace with a Regex pattern */
    int left, right; /* Strip */
} tok_norm;

/* ----------------------------------------------------------- pre-tokenizer */

typedef enum { PT_SPLIT, PT_METASPACE, PT_BYTELEVEL } tok_pt_type;

typedef enum {
    SPLIT_REMOVED,
    SPLIT_ISOLATED,
    SPLIT_MERGED_PREV,
    SPLIT_MERGED_NEXT,
    SPLIT_CONTIGUOUS
} tok_split_behavior;

typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } tok_prepend;

typedef struct {
    tok_pt_type type;
    pcre2_code *re; /* Split */
    tok_split_behavior behavior;
    int invert;
    char rep[8]; /* Metaspace replacement (UTF-8) */
    int rep_len;
    uint32_t rep_cp;
    tok_prepend prepend;
    int split;
    int add_prefix_space; /* ByteLevel */
} tok_pretok;

/* ----------------------------------------------------------------- decoder */

typedef enum {
    DEC_REPLACE,
    DEC_BYTEFALLBACK,
    DEC_FUSE,
    DEC_STRIP,
    DEC_METASPACE,
    DEC_BYTELEVEL
} tok_dec_type;

typedef struct {
    tok_dec_type type;
    int chunk_mode; /* input is the single fused string, arriving in chunks */
    char *a, *b;    /* Replace: a -> b; Fuse: a = separator */
    size_t a_len, b_len;
    uint32_t ch; /* Strip content / Metaspace replacement */
    int start, stop;
    int prepend_never;
} tok_dec;

/* --------------------------------------------------------------- tokenizer */

struct rosa_tokenizer {
    rosa_tokenizer_kind kind;
    char *file; /* the tokenizer.json path, for messages */

    /* BPE model */
    tok_strmap vocab;    /* model piece -> id; vocab.keys holds the pieces */
    uint32_t *piece_off; /* per id: offset of the model piece in vocab.keys, UINT32_MAX: none */
    uint32_t *piece_len;
    int32_t n_ids;       /* vocab size: max id + 1 */
    tok_pairmap merges;
    char *unk_token;     /* NULL: none */
    int32_t unk_id;      /* -1 when unk_token is not in the vocab (error at use) */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_tok[256];  /* id of "<0xNN>", -1 */
    int32_t ascii_id[128];  /* id of the 1-byte piece, -1 */
    int byte_level;         /* pieces are in the GPT-2 byte-to-unicode alphabet */
    int32_t bl_id[256];     /* id of the byte's alphabet character, -1 */

    /* added tokens */
    tok_added *added;
    int n_added;
    int32_t *id_added; /* per id: index into added, -1 */
    tok_trie trie_raw, trie_norm;

    tok_norm norm[TOK_MAX_STEPS];
    int n_norm;
    tok_pretok pt[TOK_MAX_STEPS];
    int n_pt;
    tok_dec dec[TOK_MAX_DEC];
    int n_dec;

    int32_t *pre_ids, *post_ids; /* post-processor: ids around the sequence */
    int n_pre, n_post;
    int32_t bos_id, eos_id;

    tok_cache_shard cache[TOK_CACHE_SHARDS];
};

/* ------------------------------------------------------------ unicode utils */

/* Decodes one code point of valid UTF-8 at s (n bytes left); sets *len. */
uint32_t tok_utf8_decode(const char *s, size_t n, int *len);
int tok_utf8_encode(uint32_t cp, char *out);
/* Unicode White_Space (Rust's char::is_whitespace). */
int tok_is_whitespace(uint32_t cp);
/* The GPT-2 byte-to-unicode alphabet: byte -> code point, and back (-1). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* Compiles an Oniguruma-style pattern (as HF uses) with PCRE2 (UTF, UCP, JIT),
 * rewriting \s, \S, \w, \W to Oniguruma's Unicode sets.  literal: the pattern
 * is a plain string.  `what` names the field in errors. */
pcre2_code *tok_regex_compile(const char *pat, size_t len, int literal, const char *file,
                              const char *what);

/* Finds all matches of re in s[0..n) with Oniguruma's iteration rules (an empty
 * match right after the previous match is skipped).  Calls fn(user, start, end)
 * for each.  Returns 0 or -1 (matching error). */
typedef int (*tok_match_fn)(void *user, size_t start, size_t end);
int tok_regex_foreach(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                      tok_match_fn fn, void *user);

/* ---------------------------------------------------------------- pieces */

/* The text of an id (added content first, then the model piece), or NULL. */
const char *tok_piece(const rosa_tokenizer *tok, int32_t id, size_t *len);

/* ------------------------------------------------------------------ tries */

int tok_trie_add(tok_trie *t, const char *s, size_t n, int32_t token);
void tok_trie_free(tok_trie *t);
/* Longest token matching at s[0..n): returns its length (0: none), *token. */
size_t tok_trie_longest(const tok_trie *t, const char *s, size_t n, int32_t *token);

/* --------------------------------------------------------------- normalize */

/* Runs the normalizer chain on s[0..n) into out (cleared first). */
int tok_normalize(const rosa_tokenizer *tok, const char *s, size_t n, rosa_buf *out);

/* ------------------------------------------------------------------ encode */

/* Per-call encoder state (encode.c, pretokenize.c, bpe.c). */
typedef struct {
    const rosa_tokenizer *tok;
    int32_t *ids;
    size_t n_ids, cap_ids;
    pcre2_match_data *md;
    rosa_buf scratch[TOK_MAX_STEPS + 1]; /* per pre-tokenizer depth */
    rosa_buf nbuf;                       /* normalized segment */
    rosa_buf wbuf;                       /* byte-level mapped word */
    /* split matches per depth: (start, end, is_match) triples */
    size_t *spl[TOK_MAX_STEPS];
    size_t spl_n[TOK_MAX_STEPS], spl_cap[TOK_MAX_STEPS];
    /* BPE scratch */
    int32_t *sym_id, *sym_prev, *sym_next, *pair_rank, *pair_new;
    size_t sym_cap;
    int32_t *heap; /* triples (rank, pos, new_id) */
    size_t heap_n, heap_cap;
} tok_enc;

int tok_enc_push(tok_enc *e, int32_t id);
/* Pre-tokenizes one normalized piece (at_origin: it starts at offset 0 of the
 * original text) and runs the model on each word. */
int tok_pretokenize(tok_enc *e, const char *s, size_t n, int at_origin);
/* Runs the BPE model on one word (cache included). */
int tok_bpe_word(tok_enc *e, const char *w, size_t n);
void tok_enc_free(tok_enc *e);

/* Words with at least this many symbols use the heap merge (tests lower it to
 * check both paths agree). */
extern int tok_bpe_heap_min;
/* Non-zero: the word cache is not used (tests). */
extern int tok_bpe_no_cache;

/* Cache (bpe.c). */
void tok_cache_init(rosa_tokenizer *tok);
void tok_cache_free(rosa_tokenizer *tok);

#endif
