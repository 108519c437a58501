/* records.c: LLM-Adapters data files (a JSON array or JSON Lines) read into
 * records, with errors naming the file, the record and the field (data.h). */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/json.h"

/* ------------------------------------------------------------------ loading */

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* 1-based line and column of byte `off` of text. */
static void line_col(const char *text, size_t off, size_t *line, size_t *col) {
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void record_free(rosa_record *r) {
    free(r->instruction);
    free(r->input);
    free(r->output);
    free(r->answer);
    memset(r, 0, sizeof *r);
}

/* Reads field `key` as a string into *out.  required: absent or null is an
 * error; otherwise it gives *out = NULL.  Returns 0, or -1 with the error set
 * (the record is bad), or -2 when out of memory. */
static int take_string(const cJSON *obj, const char *key, int required, const char *path, int index,
                       char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required) return rosa_fail("%s: record %d: missing field \"%s\"", path, index, key);
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return rosa_fail("%s: record %d: field \"%s\" must be a string, not %s", path, index, key,
                         json_type_name(v));
    size_t n = strlen(v->valuestring);
    if (rosa_utf8_valid_prefix(v->valuestring, n) != n)
        return rosa_fail("%s: record %d: field \"%s\" is not valid UTF-8", path, index, key);
    *out = rosa_strndup(v->valuestring, n);
    return *out ? 0 : -2;
}

/* "answer" is kept for evaluation only: a string, or a number turned into text. */
static int take_answer(const cJSON *obj, const char *path, int index, char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "answer");
    if (v && cJSON_IsNumber(v)) {
        char tmp[64];
        double d = v->valuedouble;
        if (d > -1e15 && d < 1e15 && d == (double)(long long)d) /* range first: the cast is UB outside it */
            snprintf(tmp, sizeof tmp, "%lld", (long long)d);
        else
            snprintf(tmp, sizeof tmp, "%.17g", d);
        *out = rosa_strdup(tmp);
        return *out ? 0 : -2;
    }
    return take_string(obj, "answer", 0, path, index, out);
}

/* Converts one JSON value to a record.  Returns 0, -1 for a bad record (error
 * set), -2 for a fatal error. */
static int take_record(const cJSON *v, const char *path, int index, rosa_record *r) {
    memset(r, 0, sizeof *r);
    r->index = index;
    if (!cJSON_IsObject(v))
        return rosa_fail("%s: record %d: expected an object with \"instruction\" and \"output\", got %s", path,
                         index, json_type_name(v));
    int st;
    if ((st = take_string(v, "instruction", 1, path, index, &r->instruction)) < 0 ||
        (st = take_string(v, "input", 0, path, index, &r->input)) < 0 ||
        (st = take_string(v, "output", 1, path, index, &r->output)) < 0 ||
        (st = take_answer(v, path, index, &r->answer)) < 0) {
        record_free(r);
        return st;
    }
    if (!r->input && !(r->input = rosa_strdup(""))) {
        record_free(r);
        return -2;
    }
    return 0;
}

typedef struct {
    const char *path;
    int skip_bad;
    rosa_records *out;
    int cap;
} loader;

/* Adds the record made from v (index = its position in the file). */
static int loader_add(loader *L, const cJSON *v, int index) {
    rosa_records *o = L->out;
    if (o->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 256;
        rosa_record *p = rosa_realloc(o->rec, sizeof(rosa_record) * (size_t)cap, "records");
        if (!p) return -1;
        o->rec = p;
        L->cap = cap;
    }
    int st = take_record(v, L->path, index, &o->rec[o->n]);
    if (st == 0) {
        o->n++;
        return 0;
    }
    if (st == -1 && L->skip_bad) {
        o->n_bad++;
        return 0;
    }
    return -1;
}

static int has_record_fields(const cJSON *v) {
    return cJSON_GetObjectItemCaseSensitive(v, "instruction") || cJSON_GetObjectItemCaseSensitive(v, "output");
}

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

int rosa_records_load(const char *path, int skip_bad, rosa_records *out) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return -1;
    loader L = {path, skip_bad, out, 0};
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3; /* UTF-8 byte order mark */
    i = skip_ws(text, i, len);
    int status = -1;
    if (i == len) {
        rosa_fail("%s: the file is empty (expected a JSON array of records, or JSON Lines)", path);
        goto done;
    }
    if (text[i] == '[') {
        /* A JSON array of objects (the LLM-Adapters format). */
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
        if (!root) {
            size_t off = end && end >= text ? (size_t)(end - text) : i, line, col;
            line_col(text, off, &line, &col);
            rosa_fail("%s: invalid JSON at line %zu, column %zu", path, line, col);
            goto done;
        }
        size_t after = skip_ws(text, (size_t)(end - text), len);
        if (after != len) {
            size_t line, col;
            line_col(text, after, &line, &col);
            cJSON_Delete(root);
            rosa_fail("%s: unexpected text after the JSON array at line %zu, column %zu", path, line, col);
            goto done;
        }
        int index = 0;
        for (const cJSON *v = root->child; v; v = v->next, index++) {
            if (loader_add(&L, v, index) < 0) {
                cJSON_Delete(root);
                goto done;
            }
        }
        cJSON_Delete(root);
    } else if (text[i] == '{') {
        /* JSON Lines: one object per line (any whitespace between values). */
        int index = 0;
        while (i < len) {
            const char *end = NULL;
            cJSON *v = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
            if (!v) {
                size_t off = end && end >= text ? (size_t)(end - text) : i, line, col;
                line_col(text, off, &line, &col);
                rosa_fail("%s: record %d: invalid JSON at line %zu, column %zu", path, index, line, col);
                goto done;
            }
            size_t next = skip_ws(text, (size_t)(end - text), len);
            if (index == 0 && next == len && cJSON_IsObject(v) && !has_record_fields(v)) {
                cJSON_Delete(v);
                rosa_fail("%s: expected a JSON array of records (or JSON Lines), got one object without "
                          "\"instruction\" or \"output\"",
                          path);
                goto done;
            }
            int st = loader_add(&L, v, index);
            cJSON_Delete(v);
            if (st < 0) goto done;
            index++;
            i = next;
        }
    } else {
        size_t line, col;
        line_col(text, i, &line, &col);
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(text + i, len - i, &end, 0);
        if (v) {
            rosa_fail("%s: expected a JSON array of records (or JSON Lines), got %s", path, json_type_name(v));
            cJSON_Delete(v);
        } else {
            rosa_fail("%s: not JSON (expected a JSON array of records, or JSON Lines): invalid JSON at line %zu, "
                      "column %zu",
                      path, line, col);
        }
        goto done;
    }
    if (out->n == 0) {
        if (out->n_bad)
            rosa_fail("%s: no usable records (all %d skipped as bad)", path, out->n_bad);
        else
            rosa_fail("%s: no records", path);
        goto done;
    }
    status = 0;
done:
    free(text);
    if (status < 0) {
        int n_bad = out->n_bad;
        rosa_records_free(out);
        out->n_bad = n_bad;
    }
    return status;
}

void rosa_records_free(rosa_records *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) record_free(&r->rec[i]);
    free(r->rec);
    r->rec = NULL;
    r->n = 0;
    r->n_bad = 0;
}

void rosa_records_truncate(rosa_records *r, int n) {
    for (int i = n; i < r->n; i++) record_free(&r->rec[i]);
    if (n < r->n) r->n = n;
}
