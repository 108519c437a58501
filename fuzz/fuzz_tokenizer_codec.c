/* fuzz_tokenizer_codec: encode and decode arbitrary bytes with the real
 * Qwen2 (byte-level BPE) and Llama 2 (SentencePiece BPE) tokenizers of the
 * shared data ($ROSA_SHARED/tokenizers, found as fuzz_common.h says).
 *
 * Input byte 0 picks the tokenizer (bit 0), add_special (bit 1), skip_special
 * (bit 2) and the direction (bit 3: decode the rest as ids, 2 bytes each;
 * else encode the rest as text).  Properties:
 *   - encode succeeds exactly when the text is valid UTF-8, with ids in range;
 *   - decode succeeds exactly when every id is in range, and gives valid UTF-8;
 *   - streaming decode emits only whole UTF-8 characters and its pieces
 *     concatenate to the full decode;
 *   - ASCII text without '<' (no special-token spelling) round-trips exactly. */
#include "fuzz_common.h"

static rosa_tokenizer *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static const char *const names[2] = {"qwen2", "llama2"};
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/tokenizers/%s", fuzz_shared(), names[i]) >= (int)sizeof path) abort();
        toks[i] = rosa_tokenizer_load(path);
        if (!toks[i]) {
            fprintf(stderr, "fuzz: %s\n", rosa_last_error());
            abort();
        }
    }
    return 0;
}

static void check_decode(const rosa_tokenizer *tok, const int32_t *ids, size_t n, int skip) {
    int V = rosa_tokenizer_vocab_size(tok), in_range = 1;
    for (size_t i = 0; i < n; i++) in_range &= ids[i] >= 0 && ids[i] < V;
    size_t len;
    char *s = rosa_tokenizer_decode(tok, ids, n, skip, &len);
    FUZZ_ASSERT((s != NULL) == in_range, "decode %s with ids %s", s ? "succeeded" : "failed",
                in_range ? "in range" : "out of range");
    if (!s) return;
    FUZZ_ASSERT(strlen(s) <= len && rosa_utf8_valid_prefix(s, len) == len, "decode gave invalid UTF-8");
    rosa_detok *d = rosa_detok_new(tok, skip);
    rosa_buf all = {0};
    rosa_buf_append(&all, "", 0);
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        const char *p = rosa_detok_push(d, ids[i], &pl);
        FUZZ_ASSERT(p != NULL, "streaming decode failed: %s", rosa_last_error());
        FUZZ_ASSERT(rosa_utf8_valid_prefix(p, pl) == pl, "streaming decode emitted a partial character");
        rosa_buf_append(&all, p, pl);
    }
    size_t pl;
    const char *p = rosa_detok_finish(d, &pl);
    FUZZ_ASSERT(p != NULL, "streaming finish failed");
    rosa_buf_append(&all, p, pl);
    FUZZ_ASSERT(all.len == len && memcmp(all.data, s, len) == 0, "streaming decode differs from decode");
    rosa_buf_free(&all);
    rosa_detok_free(d);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int mode = data[0];
    const rosa_tokenizer *tok = toks[mode & 1];
    const int add_special = (mode >> 1) & 1, skip = (mode >> 2) & 1;
    data++;
    size--;
    if (mode & 8) {
        /* ids: 2 bytes each, spread over [-8, V + 8) */
        int V = rosa_tokenizer_vocab_size(tok);
        size_t n = size / 2;
        int32_t *ids = malloc(sizeof(int32_t) * (n ? n : 1));
        if (!ids) return 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t r = (uint32_t)data[2 * i] | (uint32_t)data[2 * i + 1] << 8;
            /* low ids (bytes, specials) and the top of the vocabulary are the interesting ones */
            ids[i] = r < 0xF000 ? (int32_t)(r % (uint32_t)(V + 16)) - 8 : V - 1 - (int32_t)(r - 0xF000);
        }
        check_decode(tok, ids, n, skip);
        free(ids);
        return 0;
    }
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    int32_t *ids = NULL;
    size_t n = 0;
    int valid = rosa_utf8_valid_prefix(text, size) == size;
    int rc = rosa_tokenizer_encode(tok, text, size, add_special, &ids, &n);
    FUZZ_ASSERT((rc == 0) == valid, "encode of %s UTF-8 returned %d (%s)", valid ? "valid" : "invalid", rc,
                rosa_last_error());
    if (rc == 0) {
        check_decode(tok, ids, n, skip);
        int plain = 1;
        for (size_t i = 0; i < size; i++) plain &= (unsigned char)text[i] < 0x80 && text[i] != '<' && text[i] != 0;
        if (plain && !add_special) {
            size_t len;
            char *s = rosa_tokenizer_decode(tok, ids, n, 0, &len);
            FUZZ_ASSERT(s && len == size && memcmp(s, text, size) == 0, "ASCII text does not round-trip");
            free(s);
        }
    }
    free(ids);
    free(text);
    return 0;
}
