/* rosa.h: public API of rosa, a CPU fine-tuning library for Llama-family models.
 *
 * Conventions
 *   - Every function that can fail returns NULL or a negative int and leaves a
 *     one-line message in rosa_last_error() (per thread).  The message names the
 *     file and field at fault when there is one.
 *   - The library never prints errors and never exits; other messages go
 *     through one log channel (rosa_set_log_callback below).
 *   - Objects are created by *_load / *_new and released by *_free; *_free(NULL)
 *     is a no-op.
 *   - Token ids are int32_t.  Text is UTF-8 with an explicit byte length.
 */
#ifndef ROSA_H
#define ROSA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ROSA_VERSION "0.1.0"

/* The last error message of the calling thread ("" when none). */
const char *rosa_last_error(void);

/* Messages that are not errors (warnings, training's plan and notes) go
 * through one log channel.  By default each is one line on stderr,
 * "rosa: MESSAGE" (ROSA_LOG_INFO) or "rosa: warning: MESSAGE" (ROSA_LOG_WARN).
 * rosa_set_log_callback(fn, user) sends them to fn instead, msg without
 * the prefix or a newline (valid during the call only); NULL restores the
 * default.  Set it before other calls: it is process-wide and not
 * synchronised with messages being logged by other threads. */
typedef enum { ROSA_LOG_INFO = 0, ROSA_LOG_WARN = 1 } rosa_log_level;
typedef void (*rosa_log_fn)(rosa_log_level level, const char *msg, void *user);
void rosa_set_log_callback(rosa_log_fn fn, void *user);

/* Number of threads used by OpenMP regions and BLAS (0 = all cores). */
void rosa_set_threads(int n);
int rosa_get_threads(void);

/* ---------------------------------------------------------------- tokenizer */

typedef struct rosa_tokenizer rosa_tokenizer;

typedef enum {
    ROSA_TOK_SENTENCEPIECE_BPE = 1, /* Metaspace / Prepend+Replace, byte_fallback */
    ROSA_TOK_BYTE_LEVEL_BPE = 2     /* GPT-2 byte-to-unicode alphabet, Split regex */
} rosa_tokenizer_kind;

/* path: a tokenizer.json file, or a directory holding tokenizer.json (and
 * optionally tokenizer_config.json, read for add_bos_token / add_eos_token). */
rosa_tokenizer *rosa_tokenizer_load(const char *path);
void rosa_tokenizer_free(rosa_tokenizer *tok);

rosa_tokenizer_kind rosa_tokenizer_get_kind(const rosa_tokenizer *tok);
const char *rosa_tokenizer_kind_name(const rosa_tokenizer *tok);
/* Largest id + 1 over the model vocabulary and the added tokens. */
int rosa_tokenizer_vocab_size(const rosa_tokenizer *tok);
/* -1 when the tokenizer has no such token. */
int32_t rosa_tokenizer_bos_id(const rosa_tokenizer *tok);
int32_t rosa_tokenizer_eos_id(const rosa_tokenizer *tok);
/* 1 when `id` is an added token marked special. */
int rosa_tokenizer_is_special(const rosa_tokenizer *tok, int32_t id);
/* The vocabulary string of an id (its raw piece, e.g. "▁the" or "Ġthe"), or NULL. */
const char *rosa_tokenizer_piece(const rosa_tokenizer *tok, int32_t id);

/* Encodes `len` bytes of UTF-8 text.  add_special: apply the post-processor
 * (BOS/EOS as transformers decides).  On success *ids is malloc'ed (free() it)
 * and *n_ids set; returns 0.  Invalid UTF-8 is an error. */
int rosa_tokenizer_encode(const rosa_tokenizer *tok, const char *text, size_t len,
                          int add_special, int32_t **ids, size_t *n_ids);

/* Decodes ids to text through the tokenizer.json decoder.  Returns a malloc'ed,
 * NUL-terminated string (free() it) and its length in *len (may be NULL), or
 * NULL on error (an id out of range). */
char *rosa_tokenizer_decode(const rosa_tokenizer *tok, const int32_t *ids, size_t n_ids,
                            int skip_special, size_t *len);

/* Streaming decode: feed ids one at a time and receive only complete UTF-8 text.
 * The concatenation of all pieces returned equals rosa_tokenizer_decode of all
 * ids fed (after rosa_detok_finish). */
typedef struct rosa_detok rosa_detok;
rosa_detok *rosa_detok_new(const rosa_tokenizer *tok, int skip_special);
void rosa_detok_free(rosa_detok *d);
/* Returns a pointer to the new text (valid until the next call) and its length;
 * NULL on error. */
const char *rosa_detok_push(rosa_detok *d, int32_t id, size_t *len);
/* Flushes held-back bytes (an incomplete UTF-8 tail is emitted as U+FFFD). */
const char *rosa_detok_finish(rosa_detok *d, size_t *len);

/* ------------------------------------------------------------------- model */

typedef enum {
    ROSA_ARCH_LLAMA = 1,
    ROSA_ARCH_QWEN2 = 2,
    ROSA_ARCH_MISTRAL = 3,
    ROSA_ARCH_QWEN3 = 4,
    ROSA_ARCH_GEMMA3 = 5,
    ROSA_ARCH_GEMMA3_MM = 6 /* Gemma3ForConditionalGeneration: its text model only */
} rosa_arch;
typedef enum { ROSA_ROPE_DEFAULT = 0, ROSA_ROPE_LINEAR = 1, ROSA_ROPE_LLAMA3 = 2 } rosa_rope_type;
typedef enum { ROSA_DTYPE_F32 = 0, ROSA_DTYPE_F16 = 1, ROSA_DTYPE_BF16 = 2 } rosa_dtype;
/* How the frozen projections are stored: as the checkpoint holds them, or
 * int8 blocks (rosa_model_quantize). */
typedef enum { ROSA_QUANT_NONE = 0, ROSA_QUANT_INT8 = 1 } rosa_quant;

/* The model hyper-parameters, as read from config.json. */
typedef struct {
    rosa_arch arch;
    char architecture[64];  /* e.g. "LlamaForCausalLM" */
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim;
    int max_position_embeddings;
    int sliding_window;     /* attention window of the sliding layers: 0 when unset or disabled */
    /* bit l (byte l / 8, bit l % 8) set: layer l attends within sliding_window
     * (Mistral: every layer; Qwen2/3: from max_window_layers or by layer_types;
     * Gemma 3: by layer_types or sliding_window_pattern). */
    unsigned char sliding_layers[128];
    float rope_local_theta; /* Gemma 3: RoPE base of the sliding layers */
    float attn_scale;       /* softmax scale of q.k: head_dim^-0.5, Gemma 3 query_pre_attn_scalar^-0.5 */
    float rms_norm_eps;
    float rope_theta;
    rosa_rope_type rope_type;
    float rope_factor;                 /* linear and llama3 */
    float rope_low_freq_factor;        /* llama3 */
    float rope_high_freq_factor;       /* llama3 */
    int rope_original_max_position;    /* llama3 */
    int attention_bias;     /* q/k/v/o biases (Llama attention_bias) */
    int qkv_bias;           /* q/k/v biases only (Qwen2) */
    int mlp_bias;
    int tie_word_embeddings;
    int bos_token_id;       /* -1 when unset */
    int n_eos;              /* eos ids, from generation_config.json, else config.json */
    int eos_token_ids[8];
    rosa_dtype weight_dtype; /* dtype of the stored weights (first matrix) */
} rosa_config;

/* Fills *c from dir/config.json and dir/generation_config.json without
 * loading weights.  Refuses unknown architectures and unsupported values with
 * an error naming them. */
int rosa_config_load(const char *dir, rosa_config *c);
/* Parameters of a model of config c (tied embeddings counted once). */
int64_t rosa_config_num_params(const rosa_config *c);

typedef struct rosa_model rosa_model;

/* What a model directory holds, read from config.json and the safetensors
 * headers alone (no tensor data is read, so a checkpoint of any size takes
 * milliseconds): shapes are checked as rosa_model_load checks them.
 * Parameters count as rosa_model_num_params; stored_bytes counts every
 * tensor the loader checks (a tied model's stored lm_head too, never read). */
typedef struct {
    rosa_config cfg;          /* weight_dtype set from the first layer's q_proj */
    int64_t n_params;         /* as rosa_model_num_params: tied embeddings once */
    int64_t proj_params;      /* the layers' seven projection matrices */
    int64_t stored_bytes;     /* the used tensors' bytes in the checkpoint */
    /* The matrices (projections, an untied lm_head) and the rest (embedding,
     * norms, biases), by stored format: F32 or 16-bit (BF16/F16). */
    int64_t matrix_f32_bytes, matrix_half_bytes, other_f32_bytes, other_half_bytes;
    int64_t embed_half_bytes;     /* the embedding, when stored in 16 bits */
    int64_t head_f32_bytes, head_half_bytes; /* an untied lm_head, by format (in the matrix counts too) */
    int64_t largest_matrix_params, largest_half_matrix_params, largest_proj_params;
    int n_files;
    int64_t data_missing;     /* bytes the headers place past the end of truncated files */
    int has_tokenizer;        /* tokenizer.json present (not read) */
} rosa_model_info;
int rosa_model_inspect(const char *dir, rosa_model_info *info);

/* A memory plan: the peak resident memory of a run, by part, computed from
 * the headers before anything large is allocated (docs/memory.md). */
typedef struct {
    int64_t process;     /* what the process holds already (code, libraries, tokenizer, data: measured) */
    int64_t libraries;   /* the math libraries' working set once computing (a measured constant) */
    int64_t weights;     /* the frozen weights while computing */
    int64_t load_extra;  /* held only while loading: F32 copies before --dtype bf16 packs them */
    int64_t activations; /* training: the largest micro-batch's activations and gradients */
    int64_t adapter;     /* the adapter's values and gradients */
    int64_t optimizer;   /* AdamW's two moments */
    int64_t kv_cache;    /* generation: keys and values (of the last window positions on sliding layers) */
    int64_t scratch;     /* LM head logits, forward buffers, BF16 conversions */
    int64_t total;       /* the peak: process + libraries + weights + the larger of load_extra and the rest */
} rosa_memory_plan;
/* The frozen weights of a model in compute dtype (F32 or BF16) and
 * quantisation (int8 with F32 only), as the loader stores them
 * (forward_only: rosa_model_set_compute_inference); sets weights and
 * load_extra only. */
void rosa_plan_weights(const rosa_model_info *mi, rosa_dtype compute, rosa_quant quant, int forward_only,
                       rosa_memory_plan *p);
/* rosa generate (or eval) of `batch` sequences of n_ctx positions (prompt +
 * new tokens) whose prompts of n_prompt positions are run at once; process
 * is this process's resident memory now. */
void rosa_plan_generate(const rosa_model_info *mi, rosa_dtype compute, rosa_quant quant, int batch, int n_prompt,
                        int n_ctx, rosa_memory_plan *p);
/* Sets p->total from the parts. */
void rosa_plan_total(rosa_memory_plan *p);
/* This process's resident memory now (/proc/self/statm), 0 when unknown. */
int64_t rosa_rss_bytes(void);
/* The memory the kernel could give without swapping (/proc/meminfo
 * MemAvailable, or less when a cgroup v2 memory.max binds), 0 when unknown. */
int64_t rosa_mem_available(void);

/* Loads a Hugging Face model directory: config.json, model.safetensors or
 * model.safetensors.index.json + shards, tokenizer.json when present.
 * Weights stay in the checkpoint's format, memory-mapped: F32 rows are used in place,
 * BF16/F16 matrices are widened one at a time at each product (exact), norms,
 * biases and the embedding are widened to F32 at load. */
rosa_model *rosa_model_load(const char *dir);
void rosa_model_free(rosa_model *m);
const rosa_config *rosa_model_config(const rosa_model *m);
/* The tokenizer found in the model directory, or NULL when there is none. */
const rosa_tokenizer *rosa_model_tokenizer(const rosa_model *m);
/* Total parameters of the base model (tied embeddings counted once). */
int64_t rosa_model_num_params(const rosa_model *m);
/* Bytes of weights held in memory (mapped or owned). */
int64_t rosa_model_weight_bytes(const rosa_model *m);
/* Switches the frozen weights' matrix products to BF16 (packing every
 * projection and the LM head) or leaves them in FP32.  BF16 releases the FP32
 * projections (and an untied LM head) after packing, so the model cannot go
 * back to FP32 afterwards: merge adapters before switching.  Returns -1
 * when the CPU or oneDNN cannot do BF16. */
int rosa_model_set_compute(rosa_model *m, rosa_dtype dtype);
/* The same for a model that is only run forward (generate, eval, loss):
 * BF16 packs the forward layout only, half the memory of the packed copies. */
int rosa_model_set_compute_inference(rosa_model *m, rosa_dtype dtype);

/* --quantize int8: replaces every layer's seven projections by int8 blocks
 * of 32 inputs with one FP32 scale each (absmax / 127, round to nearest:
 * llama.cpp's Q8_0 with an FP32 scale), 1.125 bytes a parameter, quantised
 * from the mapping one matrix at a time (whose pages are then released), so
 * the FP32 model is never held.  The embedding, norms, biases and LM head
 * stay as they were.  Products dequantise to FP32 and run in FP32
 * (rosa_model_set_compute then accepts F32 only).  Call it before applying
 * an adapter: on an int8 base an adapter is attached, never merged.  There is
 * no way back (ROSA_QUANT_NONE afterwards fails); NONE before is a no-op. */
int rosa_model_quantize(rosa_model *m, rosa_quant q);

/* A KV cache for `batch` sequences of up to `capacity` slots each.  A slot is
 * one input position of a forward call, real or padding. */
typedef struct rosa_kv_cache rosa_kv_cache;
rosa_kv_cache *rosa_kv_cache_new(const rosa_model *m, int batch, int capacity);
void rosa_kv_cache_free(rosa_kv_cache *kv);
/* Forgets all cached slots. */
void rosa_kv_cache_reset(rosa_kv_cache *kv);
/* Slots used so far (the same for every sequence of the batch). */
int rosa_kv_cache_length(const rosa_kv_cache *kv);

/* Runs T new slots for each of the kv cache's B sequences.
 *   ids    [B][T]  token ids (any valid id at padding slots)
 *   mask   [B][T]  1 = real token, 0 = padding; NULL = all real
 *   logits [B][T][V] when all_logits, else [B][V] holding, for each sequence,
 *          the logits of its last real slot in this call (left untouched for a
 *          sequence with no real slot).
 * A real token's position is the number of real tokens before it in its
 * sequence, so positions start at 0 at the first real token whatever the
 * padding side, and a sequence's logits never depend on its batch mates.
 * Returns 0, or -1 (capacity exceeded, id out of range, sliding window). */
int rosa_forward(rosa_model *m, rosa_kv_cache *kv, int T, const int32_t *ids,
                 const uint8_t *mask, float *logits, int all_logits);

/* -------------------------------------------------------------- generation */

/* The largest sizes a caller may ask for; beyond them a call fails with an
 * error naming the limit (sizes derived from them then fit every int and
 * size_t the library computes). */
#define ROSA_MAX_NEW_TOKENS 1048576 /* new tokens of one generation or beam search */
#define ROSA_MAX_BEAMS 256          /* beams of a beam search */
#define ROSA_MAX_BATCH 4096         /* prompts decoded together */

typedef struct {
    int max_new_tokens;   /* default 256 */
    float temperature;    /* 0 = greedy (default) */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    uint64_t seed;
    int stop_at_eos;      /* 1 = stop at the model's EOS ids (default) */
} rosa_gen_params;

void rosa_gen_params_default(rosa_gen_params *p);

/* Called with each new token; return non-zero to stop. */
typedef int (*rosa_token_fn)(int32_t id, void *user);

/* Generates from `prompt` (n_prompt >= 1 ids) for one sequence.  The new ids
 * (EOS included when it stopped there) are written to out[0..*n_out) when out
 * is not NULL (room for max_new_tokens).  Returns 0 or -1. */
int rosa_generate(rosa_model *m, const int32_t *prompt, int n_prompt,
                  const rosa_gen_params *p, rosa_token_fn on_token, void *user,
                  int32_t *out, int *n_out);

/* A reproducible random stream (xoshiro256**), seeded with rosa_rng_seed. */
typedef struct {
    uint64_t s[4];
} rosa_rng;
void rosa_rng_seed(rosa_rng *r, uint64_t seed);

/* Picks the next token from one row of logits (modified in place):
 * argmax (lowest id on ties) when temperature <= 0, else temperature, top-k,
 * top-p (in that order, as transformers' warpers) and a draw from r. */
int32_t rosa_sample(float *logits, int vocab, const rosa_gen_params *p, rosa_rng *r);

#ifdef __cplusplus
}
#endif
#endif
