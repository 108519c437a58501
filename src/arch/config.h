/* config.h: reading a model's config.json (and generation_config.json). */
#ifndef ROSA_CONFIG_H
#define ROSA_CONFIG_H

#include "rosa.h"

/* rosa_config_load (rosa.h) from an already parsed config.json text (tests, fuzzing). */
int rosa_config_parse(const char *json, size_t len, const char *what, rosa_config *c);

#endif
