/* tokenizer.c: loading tokenizer.json (+ tokenizer_config.json) and the small
 * accessors of the public API.  Everything that is not understood is refused
 * at load with an error naming the file and the field. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "tokenizer_internal.h"

#define J(o, k) cJSON_GetObjectItemCaseSensitive((o), (k))

static int is_null(const cJSON *j) { return !j || cJSON_IsNull(j); }

/* The "type" of a component, or NULL (error set) when absent or not a string. */
static const char *comp_type(const char *F, const cJSON *j, const char *what) {
    const cJSON *t = J(j, "type");
    if (!cJSON_IsString(t)) {
        rosa_fail("%s: %s: missing or invalid field \"type\"", F, what);
        return NULL;
    }
    return t->valuestring;
}

static const char *str_field(const char *F, const cJSON *o, const char *key, const char *what,
                             int required) {
    const cJSON *v = J(o, key);
    if (is_null(v)) {
        if (required) rosa_fail("%s: %s: missing field \"%s\"", F, what, key);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        rosa_fail("%s: %s: field \"%s\" must be a string", F, what, key);
        return NULL;
    }
    if (rosa_utf8_valid_prefix(v->valuestring, strlen(v->valuestring)) != strlen(v->valuestring)) {
        rosa_fail("%s: %s: field \"%s\" is not valid UTF-8", F, what, key);
        return NULL;
    }
    return v->valuestring;
}

static int bool_field(const char *F, const cJSON *o, const char *key, const char *what, int def,
                      int *out) {
    const cJSON *v = J(o, key);
    if (is_null(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return rosa_fail("%s: %s: field \"%s\" must be true or false", F, what, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int int_field(const char *F, const cJSON *o, const char *key, const char *what, long lo,
                     long hi, long def, long *out) {
    const cJSON *v = J(o, key);
    if (is_null(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
        v->valuedouble != (double)(long)v->valuedouble)
        return rosa_fail("%s: %s: field \"%s\" must be an integer in [%ld, %ld]", F, what, key, lo,
                         hi);
    *out = (long)v->valuedouble;
    return 0;
}

/* A pattern object {"String": s} or {"Regex": r}. */
static int pattern_field(const char *F, const cJSON *o, const char *what, const char **str,
                         int *is_regex) {
    const cJSON *p = J(o, "pattern");
    if (!cJSON_IsObject(p)) return rosa_fail("%s: %s: field \"pattern\" must be an object", F, what);
    const char *s = str_field(F, p, "String", what, 0);
    if (s) {
        *str = s;
        *is_regex = 0;
        return 0;
    }
    const char *r = str_field(F, p, "Regex", what, 0);
    if (r) {
        *str = r;
        *is_regex = 1;
        return 0;
    }
    return rosa_fail("%s: %s: pattern must have a \"String\" or \"Regex\" field", F, what);
}

/* A single character given as a string (Metaspace replacement, Strip content). */
static int char_field(const char *F, const cJSON *o, const char *key, const char *what,
                      uint32_t def, uint32_t *cp) {
    const char *s = str_field(F, o, key, what, 0);
    if (!s) {
        if (J(o, key) && !is_null(J(o, key))) return -1;
        *cp = def;
        return 0;
    }
    int l;
    size_t n = strlen(s);
    if (n == 0) return rosa_fail("%s: %s: field \"%s\" must be one character", F, what, key);
    *cp = tok_utf8_decode(s, n, &l);
    if ((size_t)l != n) return rosa_fail("%s: %s: field \"%s\" must be one character", F, what, key);
    return 0;
}

static int prepend_scheme(const char *F, const cJSON *o, const char *what, tok_prepend *out) {
    const char *ps = str_field(F, o, "prepend_scheme", what, 0);
    if (!ps && !is_null(J(o, "prepend_scheme"))) return -1;
    int aps = -1;
    const cJSON *a = J(o, "add_prefix_space");
    if (!is_null(a)) {
        if (!cJSON_IsBool(a))
            return rosa_fail("%s: %s: field \"add_prefix_space\" must be true or false", F, what);
        aps = cJSON_IsTrue(a);
    }
    if (!ps) {
        *out = aps == 0 ? PREPEND_NEVER : PREPEND_ALWAYS;
        return 0;
    }
    if (!strcmp(ps, "always")) *out = PREPEND_ALWAYS;
    else if (!strcmp(ps, "first")) *out = PREPEND_FIRST;
    else if (!strcmp(ps, "never")) *out = PREPEND_NEVER;
    else return rosa_fail("%s: %s: unknown prepend_scheme \"%s\"", F, what, ps);
    if (aps == 0 && *out != PREPEND_NEVER)
        return rosa_fail("%s: %s: add_prefix_space does not match prepend_scheme", F, what);
    return 0;
}

/* ------------------------------------------------------------------ model */

static int parse_model(rosa_tokenizer *tok, const cJSON *root, int32_t *max_id) {
    const char *F = tok->file;
    const cJSON *m = J(root, "model");
    if (is_null(m)) return rosa_fail("%s: missing field \"model\"", F);
    if (!cJSON_IsObject(m)) return rosa_fail("%s: field \"model\" must be an object", F);
    const cJSON *type = J(m, "type");
    if (!is_null(type)) {
        if (!cJSON_IsString(type)) return rosa_fail("%s: field \"model.type\" must be a string", F);
        if (strcmp(type->valuestring, "BPE") != 0)
            return rosa_fail("%s: unsupported model type \"%s\" (only BPE is supported)", F,
                             type->valuestring);
    } else if (!J(m, "merges")) {
        return rosa_fail("%s: missing field \"model.type\"", F);
    }
    const cJSON *dropout = J(m, "dropout");
    if (!is_null(dropout) && (!cJSON_IsNumber(dropout) || dropout->valuedouble != 0.0))
        return rosa_fail("%s: unsupported model.dropout (BPE dropout is not supported)", F);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = str_field(F, m, affixes[i], "model", 0);
        if (!s && !is_null(J(m, affixes[i]))) return -1;
        if (s && *s) return rosa_fail("%s: unsupported model.%s \"%s\"", F, affixes[i], s);
    }
    if (bool_field(F, m, "byte_fallback", "model", 0, &tok->byte_fallback) < 0 ||
        bool_field(F, m, "fuse_unk", "model", 0, &tok->fuse_unk) < 0 ||
        bool_field(F, m, "ignore_merges", "model", 0, &tok->ignore_merges) < 0)
        return -1;
    const char *unk = str_field(F, m, "unk_token", "model", 0);
    if (!unk && !is_null(J(m, "unk_token"))) return -1;
    if (unk && !(tok->unk_token = rosa_strdup(unk))) return -1;

    /* vocab */
    const cJSON *vocab = J(m, "vocab");
    if (is_null(vocab)) return rosa_fail("%s: missing field \"model.vocab\"", F);
    if (!cJSON_IsObject(vocab)) return rosa_fail("%s: field \"model.vocab\" must be an object", F);
    int nv = cJSON_GetArraySize(vocab);
    if (nv > TOK_MAX_ID)
        return rosa_fail("%s: model.vocab has %d entries (at most %d supported)", F, nv, TOK_MAX_ID);
    if (tok_strmap_init(&tok->vocab, (size_t)nv) < 0) return -1;
    *max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        const char *k = it->string ? it->string : "";
        size_t kn = strlen(k);
        if (rosa_utf8_valid_prefix(k, kn) != kn)
            return rosa_fail("%s: model.vocab: a token is not valid UTF-8", F);
        if (!cJSON_IsNumber(it))
            return rosa_fail("%s: model.vocab[\"%s\"]: the id must be an integer", F, k);
        if (it->valuedouble < 0 || it->valuedouble >= TOK_MAX_ID)
            return rosa_fail("%s: model.vocab[\"%s\"]: id %.0f is out of range [0, %d)", F, k,
                             it->valuedouble, TOK_MAX_ID);
        if (it->valuedouble != (double)(long)it->valuedouble)
            return rosa_fail("%s: model.vocab[\"%s\"]: the id must be an integer", F, k);
        int32_t id = (int32_t)it->valuedouble, old;
        if (tok_strmap_put(&tok->vocab, k, kn, id, &old, NULL) < 0) return -1;
        if (old >= 0) return rosa_fail("%s: model.vocab: duplicate token \"%s\"", F, k);
        if (id > *max_id) *max_id = id;
    }
    return 0;
}

/* Fills the per-id piece table (after the added tokens fixed n_ids). */
static int fill_pieces(rosa_tokenizer *tok) {
    const char *F = tok->file;
    size_t n = (size_t)tok->n_ids;
    tok->piece_off = rosa_malloc(n * sizeof *tok->piece_off, "vocabulary");
    tok->piece_len = rosa_malloc(n * sizeof *tok->piece_len, "vocabulary");
    if (!tok->piece_off || !tok->piece_len) return -1;
    for (size_t i = 0; i < n; i++) tok->piece_off[i] = UINT32_MAX;
    const tok_strmap *v = &tok->vocab;
    for (uint32_t i = 0; i <= v->mask; i++) {
        const tok_strslot *s = &v->slots[i];
        if (s->val < 0) continue;
        if (tok->piece_off[s->val] != UINT32_MAX)
            return rosa_fail("%s: model.vocab: duplicate id %d (\"%s\" and \"%s\")", F, s->val,
                             v->keys.data + tok->piece_off[s->val], v->keys.data + s->off);
        tok->piece_off[s->val] = s->off;
        tok->piece_len[s->val] = s->len;
    }
    return 0;
}

static int parse_merges(rosa_tokenizer *tok, const cJSON *root) {
    const char *F = tok->file;
    const cJSON *m = J(J(root, "model"), "merges");
    if (is_null(m)) return rosa_fail("%s: missing field \"model.merges\"", F);
    if (!cJSON_IsArray(m)) return rosa_fail("%s: field \"model.merges\" must be an array", F);
    int nm = cJSON_GetArraySize(m);
    if (nm > 2 * TOK_MAX_ID)
        return rosa_fail("%s: model.merges has %d entries (too many)", F, nm);
    if (tok_pairmap_init(&tok->merges, (size_t)nm) < 0) return -1;
    rosa_buf cat = {0};
    int rank = 0, rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        const char *a, *b;
        size_t an, bn;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = rosa_fail("%s: model.merges[%d]: \"%s\" is not two tokens separated by one space",
                               F, rank, s);
                break;
            }
            a = s;
            an = (size_t)(sp - s);
            b = sp + 1;
            bn = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring;
            b = cJSON_GetArrayItem(it, 1)->valuestring;
            an = strlen(a);
            bn = strlen(b);
        } else {
            rc = rosa_fail("%s: model.merges[%d] must be a string \"a b\" or an array [\"a\", \"b\"]",
                           F, rank);
            break;
        }
        int32_t ia = tok_strmap_get(&tok->vocab, a, an);
        int32_t ib = tok_strmap_get(&tok->vocab, b, bn);
        if (ia < 0 || ib < 0) {
            const char *bad = ia < 0 ? a : b;
            int bl = (int)(ia < 0 ? an : bn);
            rc = rosa_fail("%s: model.merges[%d]: token \"%.*s\" is not in the vocabulary", F, rank,
                           bl, bad);
            break;
        }
        cat.len = 0;
        if (rosa_buf_append(&cat, a, an) < 0 || rosa_buf_append(&cat, b, bn) < 0) {
            rc = -1;
            break;
        }
        int32_t im = tok_strmap_get(&tok->vocab, cat.data, cat.len);
        if (im < 0) {
            rc = rosa_fail("%s: model.merges[%d]: merged token \"%s\" is not in the vocabulary", F,
                           rank, cat.data);
            break;
        }
        tok_pairmap_put(&tok->merges, ia, ib, rank, im);
        rank++;
    }
    rosa_buf_free(&cat);
    return rc;
}

/* ----------------------------------------------------------- added tokens */

static int find_added(const rosa_tokenizer *tok, const char *content) {
    for (int i = 0; i < tok->n_added; i++)
        if (!strcmp(tok->added[i].content, content)) return i;
    return -1;
}

/* Appends (or, for a known content, updates) an added token.  Its id is
 * assigned as HF's AddedVocabulary::add_tokens does, whatever id the file
 * declares (HF only warns when they differ): the model's id when the content
 * is in the vocabulary, else one past the largest added id, or the number of
 * model tokens when that is larger. */
static int add_token(rosa_tokenizer *tok, const char *content, int special, int lstrip,
                     int rstrip, int normalized, int single_word) {
    if (!*content) return 0; /* HF ignores empty added tokens */
    int i = find_added(tok, content);
    if (i < 0) {
        int32_t id = tok_strmap_get(&tok->vocab, content, strlen(content));
        if (id < 0) {
            int32_t max = -1;
            for (int k = 0; k < tok->n_added; k++)
                if (tok->added[k].id > max) max = tok->added[k].id;
            int32_t nv = (int32_t)tok->vocab.n;
            id = max < 0 ? nv : (max >= nv || nv == 0 ? max + 1 : nv);
            if (id >= TOK_MAX_ID) return rosa_fail("%s: too many added tokens", tok->file);
        }
        if (tok->n_added >= TOK_MAX_ID) return rosa_fail("%s: too many added tokens", tok->file);
        tok_added *a = rosa_realloc(tok->added, (size_t)(tok->n_added + 1) * sizeof *a, "added tokens");
        if (!a) return -1;
        tok->added = a;
        i = tok->n_added;
        memset(&a[i], 0, sizeof a[i]);
        if (!(a[i].content = rosa_strdup(content))) return -1;
        a[i].len = strlen(content);
        a[i].id = id;
        tok->n_added++;
    }
    tok_added *a = &tok->added[i];
    a->special = (uint8_t)special;
    a->lstrip = (uint8_t)lstrip;
    a->rstrip = (uint8_t)rstrip;
    a->normalized = (uint8_t)normalized;
    a->single_word = (uint8_t)single_word;
    return 0;
}

static int parse_added(rosa_tokenizer *tok, const cJSON *root) {
    const char *F = tok->file;
    const cJSON *at = J(root, "added_tokens");
    if (is_null(at)) return 0;
    if (!cJSON_IsArray(at)) return rosa_fail("%s: field \"added_tokens\" must be an array", F);
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, at) {
        char what[64];
        snprintf(what, sizeof what, "added_tokens[%d]", k++);
        if (!cJSON_IsObject(it)) return rosa_fail("%s: %s must be an object", F, what);
        long id;
        /* the declared id is checked but, as in HF, not used (see add_token) */
        if (is_null(J(it, "id"))) return rosa_fail("%s: %s: missing field \"id\"", F, what);
        if (int_field(F, it, "id", what, 0, TOK_MAX_ID - 1, 0, &id) < 0) return -1;
        const char *content = str_field(F, it, "content", what, 1);
        if (!content) return -1;
        int special = 0, lstrip = 0, rstrip = 0, normalized = 0, single_word = 0; /* set on success (GCC -O3 cannot tell) */
        if (bool_field(F, it, "special", what, 0, &special) < 0 ||
            bool_field(F, it, "lstrip", what, 0, &lstrip) < 0 ||
            bool_field(F, it, "rstrip", what, 0, &rstrip) < 0 ||
            bool_field(F, it, "normalized", what, !special, &normalized) < 0 ||
            bool_field(F, it, "single_word", what, 0, &single_word) < 0)
            return -1;
        if (add_token(tok, content, special, lstrip, rstrip, normalized, single_word) < 0)
            return -1;
    }
    return 0;
}

/* Sizes the id tables once all ids are known, and checks for collisions. */
static int index_ids(rosa_tokenizer *tok, int32_t max_model_id) {
    const char *F = tok->file;
    int32_t max_id = max_model_id;
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].id > max_id) max_id = tok->added[i].id;
    tok->n_ids = max_id + 1;
    if (tok->n_ids == 0) return rosa_fail("%s: the vocabulary is empty", F);
    free(tok->piece_off);
    free(tok->piece_len);
    free(tok->id_added);
    tok->piece_off = NULL;
    tok->piece_len = NULL;
    if (fill_pieces(tok) < 0) return -1;
    tok->id_added = rosa_malloc((size_t)tok->n_ids * sizeof *tok->id_added, "added tokens");
    if (!tok->id_added) return -1;
    for (int32_t i = 0; i < tok->n_ids; i++) tok->id_added[i] = -1;
    for (int i = 0; i < tok->n_added; i++) {
        const tok_added *a = &tok->added[i];
        if (tok->id_added[a->id] >= 0)
            return rosa_fail("%s: added_tokens: duplicate id %d (\"%s\" and \"%s\")", F, a->id,
                             tok->added[tok->id_added[a->id]].content, a->content);
        uint32_t off = tok->piece_off[a->id];
        if (off != UINT32_MAX && strcmp(tok->vocab.keys.data + off, a->content) != 0)
            return rosa_fail("%s: added_tokens: id %d of \"%s\" is already the id of \"%s\" in "
                             "model.vocab",
                             F, a->id, a->content, tok->vocab.keys.data + off);
        tok->id_added[a->id] = i;
    }
    return 0;
}

static int32_t token_to_id(const rosa_tokenizer *tok, const char *s) {
    int i = find_added(tok, s);
    if (i >= 0) return tok->added[i].id;
    return tok_strmap_get(&tok->vocab, s, strlen(s));
}

/* ------------------------------------------------------------- normalizer */

static int parse_normalizer(rosa_tokenizer *tok, const cJSON *j, const char *what) {
    const char *F = tok->file;
    if (is_null(j)) return 0;
    if (!cJSON_IsObject(j)) return rosa_fail("%s: %s must be an object", F, what);
    const char *type = comp_type(F, j, what);
    if (!type) return -1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = J(j, "normalizers");
        if (!cJSON_IsArray(arr)) return rosa_fail("%s: %s: field \"normalizers\" must be an array", F, what);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) if (parse_normalizer(tok, it, what) < 0) return -1;
        return 0;
    }
    if (tok->n_norm == TOK_MAX_STEPS) return rosa_fail("%s: %s: too many steps", F, what);
    tok_norm *nm = &tok->norm[tok->n_norm];
    memset(nm, 0, sizeof *nm);
    if (!strcmp(type, "NFC")) nm->type = NORM_NFC;
    else if (!strcmp(type, "NFD")) nm->type = NORM_NFD;
    else if (!strcmp(type, "NFKC")) nm->type = NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nm->type = NORM_NFKD;
    else if (!strcmp(type, "Prepend")) {
        nm->type = NORM_PREPEND;
        const char *p = str_field(F, j, "prepend", what, 1);
        if (!p || !(nm->a = rosa_strdup(p))) return -1;
        nm->a_len = strlen(p);
    } else if (!strcmp(type, "Replace")) {
        nm->type = NORM_REPLACE;
        const char *pat, *content;
        int is_re;
        if (pattern_field(F, j, what, &pat, &is_re) < 0) return -1;
        if (!(content = str_field(F, j, "content", what, 1))) return -1;
        if (!*pat) return rosa_fail("%s: %s: empty Replace pattern", F, what);
        if (is_re && !(nm->re = tok_regex_compile(pat, strlen(pat), 0, F, what))) return -1;
        if (!(nm->a = rosa_strdup(pat)) || !(nm->b = rosa_strdup(content))) return -1;
        nm->a_len = strlen(pat);
        nm->b_len = strlen(content);
    } else if (!strcmp(type, "Strip")) {
        nm->type = NORM_STRIP;
        if (bool_field(F, j, "strip_left", what, 0, &nm->left) < 0 ||
            bool_field(F, j, "strip_right", what, 0, &nm->right) < 0)
            return -1;
    } else {
        return rosa_fail("%s: unsupported normalizer type \"%s\"", F, type);
    }
    tok->n_norm++;
    return 0;
}

/* ---------------------------------------------------------- pre-tokenizer */

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static tok_pretok *new_pt(rosa_tokenizer *tok, const char *what) {
    if (tok->n_pt == TOK_MAX_STEPS) {
        rosa_fail("%s: %s: too many steps", tok->file, what);
        return NULL;
    }
    tok_pretok *p = &tok->pt[tok->n_pt++];
    memset(p, 0, sizeof *p);
    return p;
}

static int parse_pretok(rosa_tokenizer *tok, const cJSON *j, const char *what, int *n_bytelevel) {
    const char *F = tok->file;
    if (is_null(j)) return 0;
    if (!cJSON_IsObject(j)) return rosa_fail("%s: %s must be an object", F, what);
    const char *type = comp_type(F, j, what);
    if (!type) return -1;
    if (*n_bytelevel)
        return rosa_fail("%s: unsupported pre_tokenizer: \"%s\" after ByteLevel", F, type);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = J(j, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return rosa_fail("%s: %s: field \"pretokenizers\" must be an array", F, what);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) if (parse_pretok(tok, it, what, n_bytelevel) < 0) return -1;
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const char *pat, *beh;
        int is_re, invert = 0;
        if (pattern_field(F, j, what, &pat, &is_re) < 0) return -1;
        if (!(beh = str_field(F, j, "behavior", what, 1))) return -1;
        if (bool_field(F, j, "invert", what, 0, &invert) < 0) return -1;
        tok_pretok *p = new_pt(tok, what);
        if (!p) return -1;
        if (!strcmp(beh, "Removed")) p->behavior = SPLIT_REMOVED;
        else if (!strcmp(beh, "Isolated")) p->behavior = SPLIT_ISOLATED;
        else if (!strcmp(beh, "MergedWithPrevious")) p->behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) p->behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous")) p->behavior = SPLIT_CONTIGUOUS;
        else return rosa_fail("%s: %s: unsupported Split behavior \"%s\"", F, what, beh);
        p->type = PT_SPLIT;
        p->invert = invert;
        if (!*pat) return rosa_fail("%s: %s: empty Split pattern", F, what);
        p->re = tok_regex_compile(pat, strlen(pat), !is_re, F, what);
        return p->re ? 0 : -1;
    }
    if (!strcmp(type, "Digits")) {
        int individual = 0;
        if (bool_field(F, j, "individual_digits", what, 0, &individual) < 0) return -1;
        tok_pretok *p = new_pt(tok, what);
        if (!p) return -1;
        p->type = PT_SPLIT;
        p->behavior = SPLIT_ISOLATED;
        const char *re = individual ? "\\p{N}" : "\\p{N}+";
        p->re = tok_regex_compile(re, strlen(re), 0, F, what);
        return p->re ? 0 : -1;
    }
    if (!strcmp(type, "Metaspace")) {
        tok_pretok *p = new_pt(tok, what);
        if (!p) return -1;
        p->type = PT_METASPACE;
        if (char_field(F, j, "replacement", what, 0x2581, &p->rep_cp) < 0) return -1;
        p->rep_len = tok_utf8_encode(p->rep_cp, p->rep);
        if (prepend_scheme(F, j, what, &p->prepend) < 0) return -1;
        return bool_field(F, j, "split", what, 1, &p->split);
    }
    if (!strcmp(type, "ByteLevel")) {
        int aps = 0, use_regex = 0;
        if (bool_field(F, j, "add_prefix_space", what, 1, &aps) < 0 ||
            bool_field(F, j, "use_regex", what, 1, &use_regex) < 0)
            return -1;
        tok_pretok *p = new_pt(tok, what);
        if (!p) return -1;
        p->type = PT_BYTELEVEL;
        p->add_prefix_space = aps;
        if (use_regex) {
            tok_pretok *q = new_pt(tok, what);
            if (!q) return -1;
            q->type = PT_SPLIT;
            q->behavior = SPLIT_ISOLATED;
            q->re = tok_regex_compile(GPT2_REGEX, strlen(GPT2_REGEX), 0, F, what);
            if (!q->re) return -1;
        }
        tok->byte_level = 1;
        (*n_bytelevel)++;
        return 0;
    }
    return rosa_fail("%s: unsupported pre_tokenizer type \"%s\"", F, type);
}

/* ---------------------------------------------------------------- decoder */

static tok_dec *new_dec(rosa_tokenizer *tok, tok_dec_type type) {
    if (tok->n_dec == TOK_MAX_DEC) {
        rosa_fail("%s: decoder: too many steps", tok->file);
        return NULL;
    }
    tok_dec *d = &tok->dec[tok->n_dec++];
    memset(d, 0, sizeof *d);
    d->type = type;
    return d;
}

static int dec_strings(tok_dec *d, const char *a, const char *b) {
    if (a && !(d->a = rosa_strdup(a))) return -1;
    if (b && !(d->b = rosa_strdup(b))) return -1;
    d->a_len = a ? strlen(a) : 0;
    d->b_len = b ? strlen(b) : 0;
    return 0;
}

static int parse_decoder(rosa_tokenizer *tok, const cJSON *j, const char *what) {
    const char *F = tok->file;
    if (!cJSON_IsObject(j)) return rosa_fail("%s: %s must be an object", F, what);
    const char *type = comp_type(F, j, what);
    if (!type) return -1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = J(j, "decoders");
        if (!cJSON_IsArray(arr)) return rosa_fail("%s: %s: field \"decoders\" must be an array", F, what);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) if (parse_decoder(tok, it, what) < 0) return -1;
        return 0;
    }
    tok_dec *d;
    if (!strcmp(type, "ByteLevel")) return new_dec(tok, DEC_BYTELEVEL) ? 0 : -1;
    if (!strcmp(type, "ByteFallback")) return new_dec(tok, DEC_BYTEFALLBACK) ? 0 : -1;
    if (!strcmp(type, "Fuse")) return new_dec(tok, DEC_FUSE) ? 0 : -1;
    if (!strcmp(type, "Replace")) {
        const char *pat, *content;
        int is_re;
        if (pattern_field(F, j, what, &pat, &is_re) < 0) return -1;
        if (is_re) return rosa_fail("%s: unsupported decoder: Replace with a Regex pattern", F);
        if (!*pat) return rosa_fail("%s: %s: empty Replace pattern", F, what);
        if (!(content = str_field(F, j, "content", what, 1))) return -1;
        if (!(d = new_dec(tok, DEC_REPLACE))) return -1;
        return dec_strings(d, pat, content);
    }
    if (!strcmp(type, "Strip")) {
        uint32_t ch;
        long start = 0, stop = 0;
        if (char_field(F, j, "content", what, ' ', &ch) < 0 ||
            int_field(F, j, "start", what, 0, 1 << 20, 0, &start) < 0 ||
            int_field(F, j, "stop", what, 0, 1 << 20, 0, &stop) < 0)
            return -1;
        if (!(d = new_dec(tok, DEC_STRIP))) return -1;
        d->ch = ch;
        d->start = (int)start;
        d->stop = (int)stop;
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        uint32_t ch;
        tok_prepend ps;
        if (char_field(F, j, "replacement", what, 0x2581, &ch) < 0 ||
            prepend_scheme(F, j, what, &ps) < 0)
            return -1;
        if (!(d = new_dec(tok, DEC_METASPACE))) return -1;
        d->ch = ch;
        d->prepend_never = ps == PREPEND_NEVER;
        return 0;
    }
    return rosa_fail("%s: unsupported decoder type \"%s\"", F, type);
}

/* transformers' clean_up_tokenization, as chunk-mode Replace steps. */
static int add_cleanup(rosa_tokenizer *tok) {
    static const char *const pairs[][2] = {
        {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    if (!new_dec(tok, DEC_FUSE)) return -1;
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        tok_dec *d = new_dec(tok, DEC_REPLACE);
        if (!d || dec_strings(d, pairs[i][0], pairs[i][1]) < 0) return -1;
    }
    return 0;
}

/* Marks which steps receive the single fused string, and refuses chains
 * that cannot be streamed. */
static int dec_modes(rosa_tokenizer *tok) {
    int chunk = 0;
    for (int i = 0; i < tok->n_dec; i++) {
        tok_dec *d = &tok->dec[i];
        d->chunk_mode = chunk;
        if (chunk && (d->type == DEC_BYTEFALLBACK || d->type == DEC_BYTELEVEL))
            return rosa_fail("%s: unsupported decoder: %s after Fuse or ByteLevel", tok->file,
                             d->type == DEC_BYTELEVEL ? "ByteLevel" : "ByteFallback");
        if (d->type == DEC_FUSE || d->type == DEC_BYTELEVEL) chunk = 1;
    }
    return 0;
}

/* --------------------------------------------------------- post-processor */

typedef struct {
    int32_t *pre, *post;
    int n_pre, n_post;
} ids2;

static int ids_append(int32_t **arr, int *n, const int32_t *src, int k) {
    int32_t *p = rosa_realloc(*arr, (size_t)(*n + k + 1) * sizeof *p, "post-processor");
    if (!p) return -1;
    if (k) memcpy(p + *n, src, (size_t)k * sizeof *p);
    *arr = p;
    *n += k;
    return 0;
}

/* Wraps the current (pre, post) with one processor's (p, s). */
static int wrap(rosa_tokenizer *tok, const int32_t *p, int np, const int32_t *s, int ns) {
    int32_t *pre = NULL;
    int n = 0;
    if (ids_append(&pre, &n, p, np) < 0 || ids_append(&pre, &n, tok->pre_ids, tok->n_pre) < 0) {
        free(pre);
        return -1;
    }
    free(tok->pre_ids);
    tok->pre_ids = pre;
    tok->n_pre = n;
    return ids_append(&tok->post_ids, &tok->n_post, s, ns);
}

static int parse_template(rosa_tokenizer *tok, const cJSON *j) {
    const char *F = tok->file;
    const cJSON *single = J(j, "single");
    const cJSON *specials = J(j, "special_tokens");
    if (!cJSON_IsArray(single))
        return rosa_fail("%s: post_processor: field \"single\" must be an array", F);
    int32_t *p = NULL, *s = NULL;
    int np = 0, ns = 0, seen_a = 0, rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *st = J(it, "SpecialToken"), *sq = J(it, "Sequence");
        if (cJSON_IsObject(sq)) {
            const char *id = str_field(F, sq, "id", "post_processor.single", 1);
            if (!id) {
                rc = -1;
                break;
            }
            if (strcmp(id, "A") != 0 || seen_a) {
                rc = rosa_fail("%s: unsupported post_processor: sequence \"%s\" in the single template",
                               F, id);
                break;
            }
            seen_a = 1;
        } else if (cJSON_IsObject(st)) {
            const char *name = str_field(F, st, "id", "post_processor.single", 1);
            if (!name) {
                rc = -1;
                break;
            }
            const cJSON *spec = cJSON_IsObject(specials) ? J(specials, name) : NULL;
            const cJSON *ids = spec ? J(spec, "ids") : NULL;
            if (!cJSON_IsArray(ids)) {
                rc = rosa_fail("%s: post_processor: special token \"%s\" is not in special_tokens", F,
                               name);
                break;
            }
            const cJSON *x;
            cJSON_ArrayForEach(x, ids) {
                if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= TOK_MAX_ID ||
                    x->valuedouble != (double)(int32_t)x->valuedouble) {
                    rc = rosa_fail("%s: post_processor: special token \"%s\": bad id", F, name);
                    break;
                }
                int32_t v = (int32_t)x->valuedouble;
                if (ids_append(seen_a ? &s : &p, seen_a ? &ns : &np, &v, 1) < 0) {
                    rc = -1;
                    break;
                }
            }
            if (rc) break;
        } else {
            rc = rosa_fail("%s: post_processor: bad entry in the single template", F);
            break;
        }
    }
    if (rc == 0 && !seen_a)
        rc = rosa_fail("%s: post_processor: the single template has no sequence $A", F);
    if (rc == 0) rc = wrap(tok, p, np, s, ns);
    free(p);
    free(s);
    return rc;
}

static int parse_post(rosa_tokenizer *tok, const cJSON *j) {
    const char *F = tok->file;
    if (is_null(j)) return 0;
    if (!cJSON_IsObject(j)) return rosa_fail("%s: post_processor must be an object", F);
    const char *type = comp_type(F, j, "post_processor");
    if (!type) return -1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = J(j, "processors");
        if (!cJSON_IsArray(arr))
            return rosa_fail("%s: post_processor: field \"processors\" must be an array", F);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) if (parse_post(tok, it) < 0) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(type, "TemplateProcessing")) return parse_template(tok, j);
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = J(j, "cls"), *sep = J(j, "sep");
        const cJSON *c1 = cJSON_GetArrayItem(cls, 1), *s1 = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(c1) || !cJSON_IsNumber(s1) || c1->valuedouble < 0 ||
            s1->valuedouble < 0 || c1->valuedouble >= TOK_MAX_ID || s1->valuedouble >= TOK_MAX_ID)
            return rosa_fail("%s: post_processor: bad \"cls\" or \"sep\"", F);
        int32_t c = (int32_t)c1->valuedouble, s = (int32_t)s1->valuedouble;
        return wrap(tok, &c, 1, &s, 1);
    }
    return rosa_fail("%s: unsupported post_processor type \"%s\"", F, type);
}

/* -------------------------------------------------- tokenizer_config.json */

/* A special token of the config: a string or {"content": ...}; NULL when
 * absent or null (*err set on a bad type). */
static const char *config_token(const cJSON *cfg, const char *key, const char *file, int *err) {
    const cJSON *v = J(cfg, key);
    *err = 0;
    if (is_null(v)) return NULL;
    if (cJSON_IsObject(v)) v = J(v, "content");
    if (!cJSON_IsString(v)) {
        *err = 1;
        rosa_fail("%s: field \"%s\" must be a string or an object with a \"content\" string", file,
                  key);
        return NULL;
    }
    return v->valuestring;
}

static const char *const CONFIG_SPECIALS[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

static int is_config_special(const cJSON *cfg, const char *s) {
    int err;
    for (size_t i = 0; i < sizeof CONFIG_SPECIALS / sizeof *CONFIG_SPECIALS; i++) {
        const char *t = config_token(cfg, CONFIG_SPECIALS[i], "", &err);
        if (t && !strcmp(t, s)) return 1;
    }
    const cJSON *extra = J(cfg, "additional_special_tokens"), *it;
    if (cJSON_IsArray(extra)) {
        cJSON_ArrayForEach(it, extra) {
            const cJSON *c = cJSON_IsObject(it) ? J(it, "content") : it;
            if (cJSON_IsString(c) && !strcmp(c->valuestring, s)) return 1;
        }
    }
    return 0;
}

/* transformers adds the config's tokens that tokenizer.json lacks (through
 * the same add_tokens, so with the same id assignment). */
static int config_add(rosa_tokenizer *tok, const cJSON *cfg, const cJSON *v) {
    const cJSON *c = cJSON_IsObject(v) ? J(v, "content") : v;
    if (!cJSON_IsString(c) || !*c->valuestring || find_added(tok, c->valuestring) >= 0) return 0;
    const char *s = c->valuestring;
    if (rosa_utf8_valid_prefix(s, strlen(s)) != strlen(s)) return 0;
    int special = cJSON_IsTrue(J(v, "special")) || is_config_special(cfg, s);
    int normalized = !special;
    if (cJSON_IsObject(v) && cJSON_IsBool(J(v, "normalized"))) normalized = cJSON_IsTrue(J(v, "normalized"));
    return add_token(tok, s, special, cJSON_IsTrue(J(v, "lstrip")), cJSON_IsTrue(J(v, "rstrip")),
                     normalized, cJSON_IsTrue(J(v, "single_word")));
}

static int atd_cmp(const void *a, const void *b) {
    long x = strtol((*(const cJSON *const *)a)->string, NULL, 10);
    long y = strtol((*(const cJSON *const *)b)->string, NULL, 10);
    return (x > y) - (x < y);
}

static int parse_config(rosa_tokenizer *tok, const char *cfg_path, int *cleanup, int *bos_known,
                        int *eos_known) {
    cJSON *cfg = rosa_json_load(cfg_path);
    if (!cfg) return -1;
    int rc = -1, err;
    const char *F = cfg_path;
    if (!cJSON_IsObject(cfg)) {
        rosa_fail("%s: not a JSON object", F);
        goto out;
    }
    const char *cls = rosa_json_str_opt(cfg, "tokenizer_class", F, &err);
    if (err) goto out;
    const char *bos = config_token(cfg, "bos_token", F, &err);
    if (err) goto out;
    const char *eos = config_token(cfg, "eos_token", F, &err);
    if (err) goto out;
    if (rosa_json_bool_opt(cfg, "clean_up_tokenization_spaces", F, 0, cleanup) < 0) goto out;

    /* tokens transformers would add: added_tokens_decoder (by id), then the
     * special tokens */
    const cJSON *atd = J(cfg, "added_tokens_decoder"), *it;
    if (cJSON_IsObject(atd)) {
        int n = cJSON_GetArraySize(atd), k = 0;
        const cJSON **v = rosa_calloc((size_t)n + 1, sizeof *v, "added_tokens_decoder");
        if (!v) goto out;
        cJSON_ArrayForEach(it, atd) {
            char *end;
            if (!it->string) continue;
            long id = strtol(it->string, &end, 10);
            if (*end || end == it->string || id < 0) continue;
            v[k++] = it;
        }
        qsort(v, (size_t)k, sizeof *v, atd_cmp);
        for (int i = 0; i < k; i++)
            if (config_add(tok, cfg, v[i]) < 0) {
                free(v);
                goto out;
            }
        free(v);
    }
    for (size_t i = 0; i < sizeof CONFIG_SPECIALS / sizeof *CONFIG_SPECIALS; i++)
        if (config_add(tok, cfg, J(cfg, CONFIG_SPECIALS[i])) < 0) goto out;
    const cJSON *extra = J(cfg, "additional_special_tokens");
    if (cJSON_IsArray(extra))
        cJSON_ArrayForEach(it, extra) if (config_add(tok, cfg, it) < 0) goto out;

    int llama = cls && (!strcmp(cls, "LlamaTokenizerFast") || !strcmp(cls, "LlamaTokenizer") ||
                        !strcmp(cls, "CodeLlamaTokenizerFast") || !strcmp(cls, "CodeLlamaTokenizer") ||
                        !strcmp(cls, "GemmaTokenizerFast") || !strcmp(cls, "GemmaTokenizer"));
    int gemma = cls && !strncmp(cls, "Gemma", 5);
    if (llama) {
        /* transformers rebuilds the template: [bos] $A [eos] from the flags,
         * with the class defaults when the keys are absent */
        int add_bos, add_eos;
        if (rosa_json_bool_opt(cfg, "add_bos_token", F, 1, &add_bos) < 0 ||
            rosa_json_bool_opt(cfg, "add_eos_token", F, 0, &add_eos) < 0)
            goto out;
        const char *b = J(cfg, "bos_token") ? bos : (gemma ? "<bos>" : "<s>");
        const char *e = J(cfg, "eos_token") ? eos : (gemma ? "<eos>" : "</s>");
        int32_t bid = b ? token_to_id(tok, b) : -1, eid = e ? token_to_id(tok, e) : -1;
        if (add_bos && bid < 0) {
            rosa_fail("%s: add_bos_token is true but bos_token is %s", F, b ? "not in the vocabulary" : "null");
            goto out;
        }
        if (add_eos && eid < 0) {
            rosa_fail("%s: add_eos_token is true but eos_token is %s", F, e ? "not in the vocabulary" : "null");
            goto out;
        }
        free(tok->pre_ids);
        free(tok->post_ids);
        tok->pre_ids = tok->post_ids = NULL;
        tok->n_pre = tok->n_post = 0;
        if (wrap(tok, &bid, add_bos, &eid, add_eos) < 0) goto out;
        bos = b;
        eos = e;
    }
    /* bos/eos ids: the config's tokens when it names them (null: none) */
    if (llama || J(cfg, "bos_token")) {
        *bos_known = 1;
        tok->bos_id = bos ? token_to_id(tok, bos) : -1;
    }
    if (llama || J(cfg, "eos_token")) {
        *eos_known = 1;
        tok->eos_id = eos ? token_to_id(tok, eos) : -1;
    }
    rc = 0;
out:
    cJSON_Delete(cfg);
    return rc;
}

/* -------------------------------------------------------------------- load */

static int finish_tables(rosa_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        tok->byte_tok[b] = tok_strmap_get(&tok->vocab, s, 6);
        char u[4];
        int l = tok_utf8_encode(tok_byte_to_cp((uint8_t)b), u);
        tok->bl_id[b] = tok_strmap_get(&tok->vocab, u, (size_t)l);
        if (b < 128) {
            char c = (char)b;
            tok->ascii_id[b] = tok_strmap_get(&tok->vocab, &c, 1);
        }
    }
    tok->unk_id = tok->unk_token ? tok_strmap_get(&tok->vocab, tok->unk_token, strlen(tok->unk_token)) : -1;
    /* added tokens: the normalized ones match their normalized content */
    rosa_buf nb = {0};
    for (int i = 0; i < tok->n_added; i++) {
        tok_added *a = &tok->added[i];
        if (!a->normalized) {
            if (tok_trie_add(&tok->trie_raw, a->content, a->len, i) < 0) goto fail;
            continue;
        }
        if (tok_normalize(tok, a->content, a->len, &nb) < 0) goto fail;
        free(a->norm);
        if (!(a->norm = rosa_strndup(nb.data, nb.len))) goto fail;
        a->norm_len = nb.len;
        if (tok_trie_add(&tok->trie_norm, a->norm, a->norm_len, i) < 0) goto fail;
    }
    rosa_buf_free(&nb);
    /* the post-processor's ids must exist */
    for (int i = 0; i < tok->n_pre + tok->n_post; i++) {
        int32_t id = i < tok->n_pre ? tok->pre_ids[i] : tok->post_ids[i - tok->n_pre];
        size_t n;
        if (!tok_piece(tok, id, &n))
            return rosa_fail("%s: post_processor: special token id %d is not in the vocabulary",
                             tok->file, id);
    }
    return 0;
fail:
    rosa_buf_free(&nb);
    return -1;
}

rosa_tokenizer *rosa_tokenizer_load(const char *path) {
    if (!path) {
        rosa_fail("rosa_tokenizer_load: path is NULL");
        return NULL;
    }
    char *file = NULL, *cfg = NULL;
    if (rosa_is_dir(path)) {
        file = rosa_path_join(path, "tokenizer.json");
        cfg = rosa_path_join(path, "tokenizer_config.json");
        if (!file || !cfg) goto fail_paths;
        if (!rosa_file_exists(file)) {
            rosa_fail("%s: no tokenizer.json in this directory", path);
            goto fail_paths;
        }
        if (!rosa_file_exists(cfg)) {
            free(cfg);
            cfg = NULL;
        }
    } else if (rosa_file_exists(path)) {
        if (!(file = rosa_strdup(path))) goto fail_paths;
    } else {
        rosa_fail("%s: no such file or directory", path);
        return NULL;
    }
    struct stat st;
    if (stat(file, &st) == 0 && (size_t)st.st_size > TOK_MAX_FILE_BYTES) {
        rosa_fail("%s: file too large (%lld bytes)", file, (long long)st.st_size);
        goto fail_paths;
    }
    cJSON *root = rosa_json_load(file);
    if (!root) goto fail_paths;
    rosa_tokenizer *tok = rosa_calloc(1, sizeof *tok, "tokenizer");
    if (!tok) {
        cJSON_Delete(root);
        goto fail_paths;
    }
    tok->file = file;
    tok->bos_id = tok->eos_id = -1;
    tok_cache_init(tok);
    const char *F = file;
    int32_t max_model_id = -1;
    int n_bytelevel = 0, cleanup = 0, bos_known = 0, eos_known = 0;
    if (!cJSON_IsObject(root)) {
        rosa_fail("%s: not a JSON object", F);
        goto fail;
    }
    if (parse_model(tok, root, &max_model_id) < 0 || parse_merges(tok, root) < 0 ||
        parse_added(tok, root) < 0)
        goto fail;
    if (parse_normalizer(tok, J(root, "normalizer"), "normalizer") < 0 ||
        parse_pretok(tok, J(root, "pre_tokenizer"), "pre_tokenizer", &n_bytelevel) < 0 ||
        parse_post(tok, J(root, "post_processor")) < 0)
        goto fail;
    const cJSON *dec = J(root, "decoder");
    if (is_null(dec)) { /* HF joins the tokens with spaces */
        tok_dec *d = new_dec(tok, DEC_FUSE);
        if (!d || dec_strings(d, " ", NULL) < 0) goto fail;
    } else if (parse_decoder(tok, dec, "decoder") < 0) {
        goto fail;
    }
    if (cfg && parse_config(tok, cfg, &cleanup, &bos_known, &eos_known) < 0) goto fail;
    if (index_ids(tok, max_model_id) < 0) goto fail;
    if (cleanup && add_cleanup(tok) < 0) goto fail;
    if (dec_modes(tok) < 0 || finish_tables(tok) < 0) goto fail;
    /* otherwise the template's special tokens */
    if (!bos_known && tok->n_pre > 0) tok->bos_id = tok->pre_ids[0];
    if (!eos_known && tok->n_post > 0) tok->eos_id = tok->post_ids[tok->n_post - 1];
    int bl_dec = 0;
    for (int i = 0; i < tok->n_dec; i++) bl_dec |= tok->dec[i].type == DEC_BYTELEVEL;
    tok->kind = tok->byte_level || bl_dec ? ROSA_TOK_BYTE_LEVEL_BPE : ROSA_TOK_SENTENCEPIECE_BPE;
    cJSON_Delete(root);
    free(cfg);
    return tok;
fail:
    cJSON_Delete(root);
    rosa_tokenizer_free(tok);
    free(cfg);
    return NULL;
fail_paths:
    free(file);
    free(cfg);
    return NULL;
}

void rosa_tokenizer_free(rosa_tokenizer *tok) {
    if (!tok) return;
    free(tok->file);
    tok_strmap_free(&tok->vocab);
    free(tok->piece_off);
    free(tok->piece_len);
    tok_pairmap_free(&tok->merges);
    free(tok->unk_token);
    for (int i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
        free(tok->added[i].norm);
    }
    free(tok->added);
    free(tok->id_added);
    tok_trie_free(&tok->trie_raw);
    tok_trie_free(&tok->trie_norm);
    for (int i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].a);
        free(tok->norm[i].b);
        if (tok->norm[i].re) pcre2_code_free(tok->norm[i].re);
    }
    for (int i = 0; i < tok->n_pt; i++)
        if (tok->pt[i].re) pcre2_code_free(tok->pt[i].re);
    for (int i = 0; i < tok->n_dec; i++) {
        free(tok->dec[i].a);
        free(tok->dec[i].b);
    }
    free(tok->pre_ids);
    free(tok->post_ids);
    tok_cache_free(tok);
    free(tok);
}

/* ------------------------------------------------------------- accessors */

const char *tok_piece(const rosa_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_ids) return NULL;
    int32_t a = tok->id_added[id];
    if (a >= 0) { /* a normalized added token reads as its normalized content (HF 0.23) */
        const tok_added *t = &tok->added[a];
        *len = t->norm ? t->norm_len : t->len;
        return t->norm ? t->norm : t->content;
    }
    if (tok->piece_off[id] == UINT32_MAX) return NULL;
    *len = tok->piece_len[id];
    return tok->vocab.keys.data + tok->piece_off[id];
}

rosa_tokenizer_kind rosa_tokenizer_get_kind(const rosa_tokenizer *tok) { return tok->kind; }

const char *rosa_tokenizer_kind_name(const rosa_tokenizer *tok) {
    return tok->kind == ROSA_TOK_BYTE_LEVEL_BPE ? "byte-level-bpe" : "sentencepiece-bpe";
}

int rosa_tokenizer_vocab_size(const rosa_tokenizer *tok) { return tok->n_ids; }
int32_t rosa_tokenizer_bos_id(const rosa_tokenizer *tok) { return tok->bos_id; }
int32_t rosa_tokenizer_eos_id(const rosa_tokenizer *tok) { return tok->eos_id; }

int rosa_tokenizer_is_special(const rosa_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_ids) return 0;
    int32_t a = tok->id_added[id];
    return a >= 0 && tok->added[a].special;
}

const char *rosa_tokenizer_piece(const rosa_tokenizer *tok, int32_t id) {
    size_t n;
    const char *p = tok_piece(tok, id, &n);
    if (!p) rosa_fail("token id %d is out of range (vocabulary size %d)", (int)id, tok->n_ids);
    return p;
}
