/* bench_tokenizer: encoding speed of a tokenizer on one thread.
 *
 *   build/bench_tokenizer TOKENIZER TEXT [SECONDS]
 *
 * TOKENIZER is a tokenizer.json or a model directory.  TEXT is a text file,
 * or a .json file holding an array of objects, whose "instruction", "input"
 * and "output" strings are concatenated (the training sets of data/train).
 * Prints the speed of encoding the whole text repeatedly (after one warm-up
 * pass; the word cache is then warm, as in a long training run), and of
 * encoding each example on its own. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rosa.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0, k;
    char *b = malloc(cap + 1);
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    *len = n;
    return b;
}

typedef struct {
    char *text;  /* all examples, concatenated */
    size_t len;
    size_t *off; /* example i is text[off[i] .. off[i+1]) */
    size_t n;
} corpus;

static int add_example(corpus *c, const char *s, size_t n, size_t *cap) {
    if (c->n + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        size_t *o = realloc(c->off, *cap * sizeof *o);
        if (!o) return -1;
        c->off = o;
    }
    char *t = realloc(c->text, c->len + n + 1);
    if (!t) return -1;
    c->text = t;
    memcpy(c->text + c->len, s, n);
    c->off[c->n++] = c->len;
    c->len += n;
    c->text[c->len] = 0;
    c->off[c->n] = c->len;
    return 0;
}

static int load_corpus(const char *path, corpus *c) {
    size_t len, cap = 0;
    char *raw = read_all(path, &len);
    if (!raw) return -1;
    memset(c, 0, sizeof *c);
    size_t pl = strlen(path);
    if (pl > 5 && !strcmp(path + pl - 5, ".json")) {
        cJSON *j = cJSON_ParseWithLength(raw, len);
        if (!cJSON_IsArray(j)) {
            fprintf(stderr, "%s: not a JSON array\n", path);
            cJSON_Delete(j);
            free(raw);
            return -1;
        }
        const cJSON *it;
        char *buf = NULL;
        size_t bcap = 0;
        cJSON_ArrayForEach(it, j) {
            static const char *const keys[] = {"instruction", "input", "output"};
            size_t bl = 0;
            for (int k = 0; k < 3; k++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, keys[k]);
                if (!cJSON_IsString(v) || !*v->valuestring) continue;
                size_t vl = strlen(v->valuestring);
                if (bl + vl + 2 > bcap) {
                    bcap = (bl + vl + 2) * 2;
                    char *nb = realloc(buf, bcap);
                    if (!nb) break;
                    buf = nb;
                }
                if (bl) {
                    memcpy(buf + bl, "\n\n", 2);
                    bl += 2;
                }
                memcpy(buf + bl, v->valuestring, vl);
                bl += vl;
            }
            if (bl && add_example(c, buf, bl, &cap) < 0) break;
        }
        free(buf);
        cJSON_Delete(j);
        free(raw);
    } else {
        if (add_example(c, raw, len, &cap) < 0) {
            free(raw);
            return -1;
        }
        free(raw);
    }
    return c->n ? 0 : -1;
}

static const char *tok_name(const char *path) {
    static char name[256];
    snprintf(name, sizeof name, "%s", path);
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '/') name[--n] = 0;
    if (n > 15 && !strcmp(name + n - 15, "/tokenizer.json")) name[n -= 15] = 0;
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER TEXT [SECONDS]\n", argv[0]);
        return 2;
    }
    double secs = argc > 3 ? atof(argv[3]) : 2.0;
    double t0 = now();
    rosa_tokenizer *tok = rosa_tokenizer_load(argv[1]);
    if (!tok) {
        fprintf(stderr, "error: %s\n", rosa_last_error());
        return 1;
    }
    double t_load = now() - t0;
    corpus c;
    if (load_corpus(argv[2], &c) < 0) {
        fprintf(stderr, "error: cannot read text from %s\n", argv[2]);
        rosa_tokenizer_free(tok);
        return 1;
    }
    const char *name = tok_name(argv[1]);
    printf("loaded %s (%s, %d tokens) in %.3f s; text: %zu bytes, %zu examples\n", name,
           rosa_tokenizer_kind_name(tok), rosa_tokenizer_vocab_size(tok), t_load, c.len, c.n);

    /* cold pass: the word cache starts empty */
    int32_t *ids;
    size_t n_ids;
    t0 = now();
    if (rosa_tokenizer_encode(tok, c.text, c.len, 0, &ids, &n_ids) < 0) {
        fprintf(stderr, "error: %s\n", rosa_last_error());
        return 1;
    }
    double t_cold = now() - t0;
    free(ids);

    /* whole text, repeatedly */
    size_t bytes = 0, tokens = 0;
    t0 = now();
    double dt;
    do {
        if (rosa_tokenizer_encode(tok, c.text, c.len, 0, &ids, &n_ids) < 0) return 1;
        free(ids);
        bytes += c.len;
        tokens += n_ids;
        dt = now() - t0;
    } while (dt < secs);
    printf("tokenizer %s: %.1f MB/s (%.0f tokens/s), english text, 1 thread [whole text; first "
           "pass %.1f MB/s]\n",
           name, (double)bytes / dt / 1e6, (double)tokens / dt, (double)c.len / t_cold / 1e6);

    /* each example on its own, with BOS/EOS as configured */
    if (c.n > 1) {
        bytes = tokens = 0;
        t0 = now();
        do {
            for (size_t i = 0; i < c.n; i++) {
                size_t len = c.off[i + 1] - c.off[i];
                if (rosa_tokenizer_encode(tok, c.text + c.off[i], len, 1, &ids, &n_ids) < 0) return 1;
                free(ids);
                bytes += len;
                tokens += n_ids;
            }
            dt = now() - t0;
        } while (dt < secs);
        printf("tokenizer %s: %.1f MB/s (%.0f tokens/s), english text, 1 thread [per example, "
               "%zu examples]\n",
               name, (double)bytes / dt / 1e6, (double)tokens / dt, c.n);
    }
    free(c.text);
    free(c.off);
    rosa_tokenizer_free(tok);
    return 0;
}
