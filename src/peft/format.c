/* format.c: shared pieces of the adapter_config.json readers and writers. */
#include "peft/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* PEFT's PeftConfigMixin and PeftConfig (src/peft/config.py). */
const rosa_peft_field rosa_peft_base_fields[] = {
    {"peft_type", PEFT_FIELD_READ, NULL, {NULL}},
    {"task_type", PEFT_FIELD_READ, NULL, {NULL}},
    {"auto_mapping", PEFT_FIELD_IGNORED, NULL, {NULL}},            /* the Python class of a custom model */
    {"peft_version", PEFT_FIELD_IGNORED, NULL, {NULL}},            /* the PEFT that saved it (>= 0.18) */
    {"base_model_name_or_path", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* --model names the model */
    {"revision", PEFT_FIELD_IGNORED, NULL, {NULL}},
    {"inference_mode", PEFT_FIELD_IGNORED, NULL, {NULL}}, /* PEFT saves true */
    {NULL, 0, NULL, {NULL}},
};

static int is_off(const cJSON *v) {
    return cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsString(v) && !*v->valuestring) ||
           ((cJSON_IsObject(v) || cJSON_IsArray(v)) && cJSON_GetArraySize(v) == 0);
}

static const rosa_peft_field *find_in(const rosa_peft_field *fields, const char *key) {
    for (int k = 0; fields && fields[k].key; k++)
        if (strcmp(key, fields[k].key) == 0) return &fields[k];
    return NULL;
}

const rosa_peft_field *rosa_peft_field_find(const rosa_peft_field *fields, const char *key) {
    const rosa_peft_field *f = find_in(fields, key);
    return f ? f : find_in(rosa_peft_base_fields, key);
}

/* Is v one of the JSON values f accepts?  -1 when an entry does not parse (a
 * bug in the table). */
static int accepted(const rosa_peft_field *f, const cJSON *v) {
    for (int i = 0; i < ROSA_PEFT_MAX_ACCEPTED && f->accepted[i]; i++) {
        cJSON *want = cJSON_Parse(f->accepted[i]);
        if (!want) return rosa_fail("internal: the accepted value %s of \"%s\" is not JSON", f->accepted[i], f->key);
        int same = cJSON_Compare(v, want, 1);
        cJSON_Delete(want);
        if (same) return 1;
    }
    return 0;
}

/* v as compact JSON, cut to fit buf. */
static const char *json_text(const cJSON *v, char *buf, size_t n) {
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return "(a value)";
    if (strlen(t) < n) {
        memcpy(buf, t, strlen(t) + 1);
    } else {
        memcpy(buf, t, n - 4);
        memcpy(buf + n - 4, "...", 4);
    }
    free(t);
    return buf;
}

static int refuse(const char *path, const rosa_peft_field *f, const cJSON *v) {
    char val[72], acc[160];
    size_t k = 0;
    acc[0] = 0;
    for (int i = 0; i < ROSA_PEFT_MAX_ACCEPTED && f->accepted[i]; i++) {
        int w = snprintf(acc + k, sizeof acc - k, "%s%s", i ? " or " : "", f->accepted[i]);
        if (w < 0 || (size_t)w >= sizeof acc - k) break;
        k += (size_t)w;
    }
    return rosa_fail("%s: \"%s\" is %s: rosa does not implement %s; it accepts only %s", path, f->key,
                     json_text(v, val, sizeof val), f->feature, acc);
}

int rosa_peft_check_fields(const cJSON *j, const char *path, const rosa_peft_field *fields) {
    const cJSON *item;
    cJSON_ArrayForEach(item, j) {
        const rosa_peft_field *f = rosa_peft_field_find(fields, item->string);
        if (!f) {
            if (is_off(item)) continue;
            char val[72];
            return rosa_fail("%s: \"%s\" is %s: rosa does not know this field (an unknown field is accepted only "
                             "at null, false, \"\", [] or {})", path, item->string, json_text(item, val, sizeof val));
        }
        if (f->kind != PEFT_FIELD_DEFAULT) continue;
        int ok = accepted(f, item);
        if (ok < 0) return -1;
        if (!ok) return refuse(path, f, item);
    }
    return 0;
}

static int known_key(const char *key, const char *const *known) {
    for (int k = 0; known[k]; k++)
        if (strcmp(key, known[k]) == 0) return 1;
    return 0;
}

int rosa_peft_check_keys_strict(const cJSON *j, const char *path, const char *what, const char *const *known) {
    const cJSON *item;
    cJSON_ArrayForEach(item, j) {
        if (!known_key(item->string, known)) return rosa_fail("%s: unknown key \"%s\" in %s", path, item->string, what);
    }
    return 0;
}

void rosa_json_add_float(cJSON *o, const char *key, float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtof(buf, NULL) == v) break;
    }
    cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}
