/* sha256.h: SHA-256 (FIPS 180-4), for the run records: training_args.json
 * names the data file and the model's config.json by their digests, so that
 * a --resume notices a file changed under the same name. */
#ifndef ROSA_SHA256_H
#define ROSA_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;       /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;        /* bytes waiting in block */
} rosa_sha256;

void rosa_sha256_init(rosa_sha256 *s);
void rosa_sha256_update(rosa_sha256 *s, const void *data, size_t n);
/* The digest as 64 lowercase hex digits and a NUL. */
void rosa_sha256_hex(rosa_sha256 *s, char hex[65]);
/* The digest of a whole file, and its size in bytes; 0, or -1 (error set
 * naming the file). */
int rosa_sha256_file(const char *path, char hex[65], int64_t *bytes);

#endif
