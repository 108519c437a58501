/* fuzz_tokenizer_load: tokenizer.json (and tokenizer_config.json) loading.
 *
 * Input: tokenizer.json, optionally followed by FUZZ_SEP and a
 * tokenizer_config.json; both are written to a scratch directory that
 * rosa_tokenizer_load reads.  An accepted tokenizer is then used: a few fixed
 * texts are encoded (every id must be in range and decode again) and every id
 * is decoded, so the tables built from the fuzzed file are exercised too. */
#include "fuzz_common.h"

static const char *const texts[] = {"Hello world", " two  spaces\tand\nlines ", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
                                    "<s>x</s><|endoftext|>", "a", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *tj, *cfg;
    size_t ntj, ncfg;
    fuzz_split(data, size, &tj, &ntj, &cfg, &ncfg);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", fuzz_path("tok"));
    mkdir(dir, 0755);
    fuzz_write("tok/tokenizer.json", tj, ntj);
    if (cfg) fuzz_write("tok/tokenizer_config.json", cfg, ncfg);
    else fuzz_remove("tok/tokenizer_config.json");
    rosa_tokenizer *tok = rosa_tokenizer_load(dir);
    if (!tok) {
        fuzz_refused();
        return 0;
    }
    int V = rosa_tokenizer_vocab_size(tok);
    FUZZ_ASSERT(V >= 1, "vocab %d", V);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (rosa_tokenizer_encode(tok, texts[i], strlen(texts[i]), (int)(i & 1), &ids, &n) == 0) {
            for (size_t k = 0; k < n; k++) FUZZ_ASSERT(ids[k] >= 0 && ids[k] < V, "id %d of %d", ids[k], V);
            char *s = rosa_tokenizer_decode(tok, ids, n, 0, NULL);
            FUZZ_ASSERT(s != NULL, "decoding what was encoded failed: %s", rosa_last_error());
            free(s);
        }
        free(ids);
    }
    /* Every id that has a piece decodes, alone and all together (capped for
     * huge vocabularies); ids in holes of the vocabulary are refused. */
    int cap = V < 4096 ? V : 4096, n = 0;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)cap);
    if (all) {
        for (int i = 0; i < cap; i++) {
            int32_t id = i;
            char *s = rosa_tokenizer_decode(tok, &id, 1, 0, NULL);
            FUZZ_ASSERT((s != NULL) == (rosa_tokenizer_piece(tok, id) != NULL), "id %d: decode and piece disagree", id);
            if (s) all[n++] = id;
            free(s);
        }
        for (int skip = 0; skip < 2; skip++) {
            size_t len;
            char *s = rosa_tokenizer_decode(tok, all, (size_t)n, skip, &len);
            FUZZ_ASSERT(s != NULL, "decoding %d ids failed: %s", n, rosa_last_error());
            FUZZ_ASSERT(rosa_utf8_valid_prefix(s, len) == len, "decode gave invalid UTF-8");
            free(s);
        }
        free(all);
    }
    int32_t bad = V;
    FUZZ_ASSERT(rosa_tokenizer_decode(tok, &bad, 1, 0, NULL) == NULL, "id %d (= vocab size) decoded", V);
    rosa_tokenizer_free(tok);
    return 0;
}
