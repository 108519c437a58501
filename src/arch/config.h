/* config.h: reading a model's config.json (and generation_config.json). */
#ifndef ROSA_CONFIG_H
#define ROSA_CONFIG_H

#include "rosa.h"

/* Fills *c from dir/config.json and dir/generation_config.json.  Refuses
 * unknown architectures and unsupported values with an error naming them. */
int rosa_config_load(const char *dir, rosa_config *c);
/* The same from an already parsed config.json text (tests, fuzzing). */
int rosa_config_parse(const char *json, size_t len, const char *what, rosa_config *c);

#endif
