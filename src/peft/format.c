/* format.c: shared pieces of the adapter_config.json readers and writers. */
#include "peft/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static int is_off(const cJSON *v) {
    return cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsString(v) && !*v->valuestring) ||
           ((cJSON_IsObject(v) || cJSON_IsArray(v)) && cJSON_GetArraySize(v) == 0);
}

static int known_key(const char *key, const char *const *known) {
    for (int k = 0; known[k]; k++)
        if (strcmp(key, known[k]) == 0) return 1;
    return 0;
}

int rosa_peft_check_keys(const cJSON *j, const char *path, const char *const *known) {
    const cJSON *item;
    cJSON_ArrayForEach(item, j) {
        if (!known_key(item->string, known) && !is_off(item))
            return rosa_fail("%s: \"%s\" is not supported by rosa (only its default value is accepted)", path,
                             item->string);
    }
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
