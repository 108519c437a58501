/* targets.h: PEFT's module selection (target_modules, feedforward_modules)
 * for the methods that keep PEFT's own forms of it: a list of names, a regex,
 * or "all-linear". */
#ifndef ROSA_PEFT_TARGETS_H
#define ROSA_PEFT_TARGETS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* A selection as PEFT's config holds it.  names: comma-separated (list form)
 * or the pattern (regex form); NULL: the method's default list. */
typedef struct {
    char *names;
    int regex;
} rosa_peft_targets;

/* Whether module `key` (e.g. "model.layers.0.self_attn.k_proj") is selected.
 * List form: key equals an entry or ends with "." + entry (PEFT's
 * check_target_module_exists); with suffix_only, key ends with an entry
 * (PEFT's IA3 feedforward test).  Regex form: the pattern matches all of key.
 * dflt (comma-separated) stands for NULL names.  -1 (error set) when the
 * pattern does not compile. */
int rosa_peft_targets_match(const rosa_peft_targets *t, const char *dflt, const char *key, int suffix_only);
/* From a config value (null: names NULL, a string: regex, or "all-linear"
 * kept as that string, a list of strings). */
int rosa_peft_targets_parse(rosa_peft_targets *t, const cJSON *v, const char *path, const char *key);
/* From a CLI value: "a,b", "re:PATTERN", "all-linear" or "default" (names NULL). */
int rosa_peft_targets_from_flag(rosa_peft_targets *t, const char *v, const char *flag);
/* Adds it to j under key (a list, or the string), dflt when names is NULL. */
void rosa_peft_targets_write(const rosa_peft_targets *t, const char *dflt, cJSON *j, const char *key);
/* As the CLI flag takes it. */
void rosa_peft_targets_format(const rosa_peft_targets *t, const char *dflt, char *buf, size_t n);
int rosa_peft_targets_copy(rosa_peft_targets *dst, const rosa_peft_targets *src);

/* The simpler form for methods that adapt whole projections (SHiRA,
 * FourierFT): a bit set of projections from target_modules (a list of names
 * or "all-linear"; null keeps *mask; a regex is refused), written back as a
 * list, and formatted as the CLI flag takes it ("q_proj,v_proj"). */
int rosa_peft_target_mask_parse(const cJSON *v, const char *path, unsigned *mask);
void rosa_peft_target_mask_write(unsigned mask, cJSON *j);
void rosa_peft_target_mask_format(unsigned mask, char *buf, size_t n);
void rosa_peft_targets_free(rosa_peft_targets *t);

/* The layers a method adapts (PEFT's layers_to_transform, rosa's --layers):
 * ids[n] malloc'ed, or ids NULL for every layer.  For LoRA, OFT and MiSS. */
int rosa_peft_layers_copy(int **dst, const int *ids, int n);
/* From the CLI value "0,2,5" (an empty list is refused), replacing *ids. */
int rosa_peft_layers_from_flag(int **ids, int *n, const char *v);
/* As the CLI flag takes it ("all" for NULL). */
void rosa_peft_layers_format(const int *ids, int n, char *buf, size_t len);
/* From j's layers_to_transform (absent or null keeps *ids; a number or a list
 * of indices below num_layers). */
int rosa_peft_layers_parse(const cJSON *j, const char *path, int num_layers, int **ids, int *n);
/* Adds layers_to_transform to j: null for NULL ids, else the list. */
void rosa_peft_layers_write(const int *ids, int n, cJSON *j);
/* on[L]: 1 for each listed layer (every layer for NULL ids), else 0; -1
 * (error set) for an index out of range. */
int rosa_peft_layers_mark(const int *ids, int n, int L, uint8_t *on);

#endif
