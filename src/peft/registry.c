/* registry.c: the PEFT methods rosa knows.  Adding one is a line here. */
#include "peft/lora.h"
#include "peft/ia3.h"
#include "peft/ln_tuning.h"
#include "peft/miss.h"
#include "peft/oft.h"
#include "peft/roae.h"

extern const rosa_peft_method rosa_peft_shira, rosa_peft_fourierft, rosa_peft_adalora;

#include <stdio.h>
#include <string.h>

/* --method names; an alias may switch dynamic layer selection on. */
static const struct {
    const char *name;
    const rosa_peft_method *method;
    int with_dls;
    const char *display; /* in reports (NULL: the method's title) */
} methods[] = {
    {"lora", &rosa_peft_lora, 0, NULL},
    {"roae", &rosa_peft_roae, 0, NULL},
    {"rosa", &rosa_peft_roae, 1, "RoSA (RoAE + DLS)"},
    {"ia3", &rosa_peft_ia3, 0, NULL},
    {"ln_tuning", &rosa_peft_ln_tuning, 0, NULL},
    {"oft", &rosa_peft_oft, 0, NULL},
    {"miss", &rosa_peft_miss, 0, NULL},
    {"shira", &rosa_peft_shira, 0, NULL},
    {"fourierft", &rosa_peft_fourierft, 0, NULL},
    {"adalora", &rosa_peft_adalora, 0, NULL},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

const rosa_peft_method *rosa_peft_find(const char *name, int *with_dls) {
    for (size_t i = 0; i < N_METHODS; i++)
        if (strcmp(name, methods[i].name) == 0) {
            if (with_dls) *with_dls = methods[i].with_dls;
            return methods[i].method;
        }
    return NULL;
}

const rosa_peft_method *rosa_peft_at(int k) {
    for (size_t i = 0; i < N_METHODS; i++) {
        int first = 1;
        for (size_t j = 0; j < i; j++) first &= methods[j].method != methods[i].method;
        if (first && k-- == 0) return methods[i].method;
    }
    return NULL;
}

const rosa_peft_method *rosa_peft_by_type(const char *peft_type) {
    for (size_t i = 0; i < N_METHODS; i++)
        if (strcmp(peft_type, methods[i].method->peft_type) == 0) return methods[i].method;
    return NULL;
}

const char *rosa_peft_names(void) {
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0, k = 0; i < N_METHODS && k < sizeof buf; i++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "", methods[i].name);
    return buf;
}

const char *rosa_peft_types(void) {
    static char buf[256];
    if (!buf[0])
        for (int i = 0, k = 0; rosa_peft_at(i) && k < (int)sizeof buf; i++)
            k += snprintf(buf + k, sizeof buf - (size_t)k, "%s%s", i ? ", " : "", rosa_peft_at(i)->peft_type);
    return buf;
}

const char *rosa_peft_method_name(const rosa_peft_method *m) { return m->name; }

const rosa_peft_option *rosa_peft_method_options(const rosa_peft_method *m) { return m->options; }

const char *rosa_peft_display_name(const rosa_peft_method *m, int with_dls) {
    for (size_t i = 0; i < N_METHODS; i++)
        if (methods[i].method == m && methods[i].with_dls == with_dls && methods[i].display) return methods[i].display;
    if (!with_dls) return m->title;
    /* "LoRA + DLS": each method's once, built on first use. */
    static char names[N_METHODS][64];
    for (size_t i = 0; i < N_METHODS; i++)
        if (methods[i].method == m) {
            if (!names[i][0]) snprintf(names[i], sizeof names[i], "%s + DLS", m->title);
            return names[i];
        }
    return m->title;
}
