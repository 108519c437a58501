/* format.h: helpers the methods share for PEFT's adapter_config.json. */
#ifndef ROSA_PEFT_FORMAT_H
#define ROSA_PEFT_FORMAT_H

#include <cjson/cJSON.h>
#include <stdint.h>

/* Ranks above this are refused before anything is allocated from them: no
 * real adapter comes near, and a hostile config cannot ask for absurd tables. */
#define ROSA_MAX_RANK 65536

/* How rosa treats one field of a PEFT config.  PEFT writes every field of its
 * config class into adapter_config.json, so a reader must know them all. */
typedef enum {
    PEFT_FIELD_READ,    /* the method (or rosa_adapter_load) reads and honours it */
    PEFT_FIELD_IGNORED, /* no effect on the adapter's values or math: any value */
    PEFT_FIELD_DEFAULT, /* not implemented: accepted only at a value in `accepted` */
} rosa_peft_field_kind;

#define ROSA_PEFT_MAX_ACCEPTED 6

typedef struct {
    const char *key;
    rosa_peft_field_kind kind;
    /* PEFT_FIELD_DEFAULT: what rosa does not implement, for the message, and
     * the values accepted as JSON text (the default and the spellings PEFT
     * treats as it), NULL-terminated. */
    const char *feature;
    const char *accepted[ROSA_PEFT_MAX_ACCEPTED + 1];
} rosa_peft_field;

/* The fields of PEFT's base PeftConfig (peft_type, peft_version, ...),
 * terminated by a NULL key.  Every method with PEFT's format accepts them. */
extern const rosa_peft_field rosa_peft_base_fields[];

/* Checks every key of j against rosa_peft_base_fields and fields[] (terminated
 * by a NULL key): a PEFT_FIELD_DEFAULT field at another value is refused
 * naming path, the field, its value and what rosa does not implement.  A key
 * in neither table (a field of another PEFT version) is accepted only at an
 * "off" value: null, false, "", {} or []. */
int rosa_peft_check_fields(const cJSON *j, const char *path, const rosa_peft_field *fields);
/* The field of fields[] named key, else of rosa_peft_base_fields, or NULL. */
const rosa_peft_field *rosa_peft_field_find(const rosa_peft_field *fields, const char *key);
/* Refuses any key not in known[]: for formats rosa defines itself. */
int rosa_peft_check_keys_strict(const cJSON *j, const char *path, const char *what, const char *const *known);
/* A float as the shortest decimal that reads back to the same float. */
void rosa_json_add_float(cJSON *o, const char *key, float v);

#endif
