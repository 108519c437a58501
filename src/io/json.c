/* json.c: cJSON wrappers with errors that name file and field. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

cJSON *rosa_json_parse(const char *text, size_t len, const char *what) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        rosa_fail("%s: invalid JSON near byte %zu", what, off);
    }
    return j;
}

cJSON *rosa_json_load(const char *path) {
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return NULL;
    cJSON *j = rosa_json_parse(text, len, path);
    free(text);
    return j;
}

static int is_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && floor(v->valuedouble) == v->valuedouble;
}

int rosa_json_int_opt(const cJSON *obj, const char *key, const char *what, long long lo,
                      long long hi, long long def, long long *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!is_integer(v)) return rosa_fail("%s: field \"%s\" must be an integer", what, key);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return rosa_fail("%s: field \"%s\" = %.0f is out of range [%lld, %lld]", what, key,
                         v->valuedouble, lo, hi);
    *out = (long long)v->valuedouble;
    return 0;
}

int rosa_json_int(const cJSON *obj, const char *key, const char *what, long long lo, long long hi,
                  long long *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return rosa_fail("%s: missing field \"%s\"", what, key);
    return rosa_json_int_opt(obj, key, what, lo, hi, 0, out);
}

int rosa_json_num_opt(const cJSON *obj, const char *key, const char *what, double def,
                      double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rosa_fail("%s: field \"%s\" must be a finite number", what, key);
    *out = v->valuedouble;
    return 0;
}

int rosa_json_bool_opt(const cJSON *obj, const char *key, const char *what, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return rosa_fail("%s: field \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

const char *rosa_json_str_opt(const cJSON *obj, const char *key, const char *what, int *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *err = 0;
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v)) {
        *err = 1;
        rosa_fail("%s: field \"%s\" must be a string", what, key);
        return NULL;
    }
    return v->valuestring;
}
