/* json.h: loading JSON files with cJSON and reading typed fields with errors
 * that name the file and the field. */
#ifndef ROSA_JSON_H
#define ROSA_JSON_H

#include <cjson/cJSON.h>

/* Parses a whole file; the error names the file and the byte offset. */
cJSON *rosa_json_load(const char *path);
/* Parses a buffer; `what` names it in errors. */
cJSON *rosa_json_parse(const char *text, size_t len, const char *what);

/* Field getters.  `what` is the file (or context) named in errors.
 * The *_opt variants return `def` when the field is absent or null and fail
 * only when it is present with the wrong type.  All return 0 or -1. */
int rosa_json_int(const cJSON *obj, const char *key, const char *what, long long lo, long long hi,
                  long long *out);
int rosa_json_int_opt(const cJSON *obj, const char *key, const char *what, long long lo,
                      long long hi, long long def, long long *out);
int rosa_json_num_opt(const cJSON *obj, const char *key, const char *what, double def,
                      double *out);
int rosa_json_bool_opt(const cJSON *obj, const char *key, const char *what, int def, int *out);
/* Returns the string (owned by obj) or NULL when absent/null; fails (-1 via
 * *err set) when present with another type. */
const char *rosa_json_str_opt(const cJSON *obj, const char *key, const char *what, int *err);

#endif
