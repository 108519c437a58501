/* targets.c: PEFT's module selection (see targets.h). */
#include "peft/targets.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "peft/lora.h"

static int ends_with(const char *s, const char *tail, size_t k) {
    size_t n = strlen(s);
    return n >= k && strncmp(s + n - k, tail, k) == 0;
}

static int regex_full(const char *pattern, const char *key) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
    if (!re) return rosa_fail("target regex \"%s\" does not compile (at offset %zu)", pattern, (size_t)off);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)key, strlen(key), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

int rosa_peft_targets_match(const rosa_peft_targets *t, const char *dflt, const char *key, int suffix_only) {
    if (t->names && t->regex) {
        /* PEFT's shorthand for every linear layer but the head: rosa's keys are only those. */
        if (strcasecmp(t->names, "all-linear") == 0) return !strstr(key, "norm");
        return regex_full(t->names, key);
    }
    const char *p = t->names ? t->names : dflt;
    while (*p) {
        size_t n = strcspn(p, ",");
        size_t kn = strlen(key);
        if (n && (suffix_only ? ends_with(key, p, n)
                              : (kn == n && strncmp(key, p, n) == 0) ||
                                    (ends_with(key, p, n) && kn > n && key[kn - n - 1] == '.')))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

static int set_names(rosa_peft_targets *t, const char *v, int regex) {
    char *s = rosa_strdup(v);
    if (!s) return -1;
    free(t->names);
    t->names = s;
    t->regex = regex;
    return 0;
}

int rosa_peft_targets_parse(rosa_peft_targets *t, const cJSON *v, const char *path, const char *key) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) return set_names(t, v->valuestring, 1);
    if (!cJSON_IsArray(v)) return rosa_fail("%s: \"%s\" must be a list of module names, a regex string or null", path, key);
    size_t len = 1;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if (!cJSON_IsString(x) || !*x->valuestring || strchr(x->valuestring, ','))
            return rosa_fail("%s: \"%s\" entries must be non-empty module names", path, key);
        len += strlen(x->valuestring) + 1;
    }
    char *s = rosa_malloc(len, key);
    if (!s) return -1;
    s[0] = 0;
    cJSON_ArrayForEach(x, v) {
        if (s[0]) strcat(s, ",");
        strcat(s, x->valuestring);
    }
    free(t->names);
    t->names = s;
    t->regex = 0;
    return 0;
}

int rosa_peft_targets_from_flag(rosa_peft_targets *t, const char *v, const char *flag) {
    if (strcmp(v, "default") == 0) return rosa_peft_targets_free(t), t->regex = 0, 0; /* the method's default */
    if (strncmp(v, "re:", 3) == 0) return set_names(t, v + 3, 1);
    if (strcasecmp(v, "all-linear") == 0) return set_names(t, "all-linear", 1);
    if (!*v || strstr(v, ",,") || v[0] == ',' || v[strlen(v) - 1] == ',')
        return rosa_fail("--%s expects module names like k_proj,v_proj, re:PATTERN or all-linear, got \"%s\"", flag, v);
    return set_names(t, v, 0);
}

void rosa_peft_targets_write(const rosa_peft_targets *t, const char *dflt, cJSON *j, const char *key) {
    if (t->names && t->regex) {
        cJSON_AddStringToObject(j, key, t->names);
        return;
    }
    cJSON *a = cJSON_AddArrayToObject(j, key);
    for (const char *p = t->names ? t->names : dflt; *p;) {
        size_t n = strcspn(p, ",");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        cJSON_AddItemToArray(a, cJSON_CreateString(name));
        p += n + (p[n] == ',');
    }
}

void rosa_peft_targets_format(const rosa_peft_targets *t, const char *dflt, char *buf, size_t n) {
    if (t->names && t->regex && strcasecmp(t->names, "all-linear") != 0) snprintf(buf, n, "re:%s", t->names);
    else snprintf(buf, n, "%s", t->names ? t->names : dflt);
}

int rosa_peft_targets_copy(rosa_peft_targets *dst, const rosa_peft_targets *src) {
    *dst = *src;
    dst->names = NULL;
    return src->names ? set_names(dst, src->names, src->regex) : 0;
}

void rosa_peft_targets_free(rosa_peft_targets *t) {
    free(t->names);
    t->names = NULL;
}

int rosa_peft_target_mask_parse(const cJSON *v, const char *path, unsigned *mask) {
    const cJSON *t;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        if (rosa_parse_target_modules(v->valuestring, mask) < 0)
            return rosa_fail("%s: \"target_modules\" \"%s\": a list of module names or \"all-linear\" (rosa does not "
                             "read a regex for this method)", path, v->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(v)) return rosa_fail("%s: \"target_modules\" must be a list of names", path);
    *mask = 0;
    cJSON_ArrayForEach(t, v) {
        unsigned bit;
        if (!cJSON_IsString(t) || rosa_parse_target_modules(t->valuestring, &bit) < 0)
            return rosa_fail("%s: target_modules: expected names such as \"q_proj\"", path);
        *mask |= bit;
    }
    return 0;
}

void rosa_peft_target_mask_write(unsigned mask, cJSON *j) {
    cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
    for (int m = 0; m < N_PROJ; m++)
        if ((mask >> m) & 1u) cJSON_AddItemToArray(tm, cJSON_CreateString(rosa_proj_names[m]));
}

void rosa_peft_target_mask_format(unsigned mask, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int m = 0; m < N_PROJ; m++)
        if (mask & (1u << m) && len < n) len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : "", rosa_proj_names[m]);
}

int rosa_peft_layers_copy(int **dst, const int *ids, int n) {
    *dst = NULL;
    if (!ids) return 0;
    *dst = rosa_malloc(sizeof(int) * (size_t)(n ? n : 1), "layers");
    if (!*dst) return -1;
    memcpy(*dst, ids, sizeof(int) * (size_t)n);
    return 0;
}

int rosa_peft_layers_from_flag(int **ids, int *n, const char *v) {
    int32_t *list;
    int k;
    if (rosa_parse_int_list(v, &list, &k) < 0) return rosa_fail("--layers expects a list of integers like 0,2,5");
    if (k == 0) {
        free(list);
        return rosa_fail("--layers expects a list of integers like 0,2,5, got an empty one");
    }
    free(*ids);
    *ids = (int *)list;
    *n = k;
    return 0;
}

void rosa_peft_layers_format(const int *ids, int n, char *buf, size_t len) {
    size_t used = 0;
    if (!ids) {
        snprintf(buf, len, "all");
        return;
    }
    buf[0] = 0;
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? "," : "", ids[i]);
}

int rosa_peft_layers_parse(const cJSON *j, const char *path, int num_layers, int **ids, int *n) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layers_to_transform");
    if (!lt || cJSON_IsNull(lt)) return 0;
    int k = cJSON_IsArray(lt) ? cJSON_GetArraySize(lt) : 1;
    int *list = rosa_malloc(sizeof(int) * (size_t)(k ? k : 1), "layers");
    if (!list) return -1;
    for (int i = 0; i < k; i++) {
        const cJSON *v = cJSON_IsArray(lt) ? cJSON_GetArrayItem(lt, i) : lt;
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= num_layers) {
            free(list);
            return rosa_fail("%s: layers_to_transform must hold layer indices below %d", path, num_layers);
        }
        list[i] = (int)v->valuedouble;
    }
    free(*ids);
    *ids = list;
    *n = k;
    return 0;
}

void rosa_peft_layers_write(const int *ids, int n, cJSON *j) {
    if (!ids) {
        cJSON_AddNullToObject(j, "layers_to_transform");
        return;
    }
    cJSON *ls = cJSON_AddArrayToObject(j, "layers_to_transform");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(ls, cJSON_CreateNumber(ids[i]));
}

int rosa_peft_layers_mark(const int *ids, int n, int L, uint8_t *on) {
    memset(on, ids ? 0 : 1, (size_t)L);
    for (int i = 0; ids && i < n; i++) {
        if (ids[i] < 0 || ids[i] >= L) return rosa_fail("layer %d is out of range (the model has %d layers)", ids[i], L);
        on[ids[i]] = 1;
    }
    return 0;
}
