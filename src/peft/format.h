/* format.h: helpers the methods share for PEFT's adapter_config.json. */
#ifndef ROSA_PEFT_FORMAT_H
#define ROSA_PEFT_FORMAT_H

#include <cjson/cJSON.h>
#include <stdint.h>

/* Ranks above this are refused before anything is allocated from them: no
 * real adapter comes near, and a hostile config cannot ask for absurd tables. */
#define ROSA_MAX_RANK 65536

/* Refuses a key not in known[] (NULL-terminated) unless it holds its "off"
 * value (null, false, "", {} or []), as PEFT writes every key of its config. */
int rosa_peft_check_keys(const cJSON *j, const char *path, const char *const *known);
/* Refuses any key not in known[]: for formats rosa defines itself. */
int rosa_peft_check_keys_strict(const cJSON *j, const char *path, const char *what, const char *const *known);
/* A float as the shortest decimal that reads back to the same float. */
void rosa_json_add_float(cJSON *o, const char *key, float v);

#endif
