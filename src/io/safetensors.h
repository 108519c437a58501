/* safetensors.h: reading safetensors files (single or sharded) through mmap.
 *
 * Format: u64 little-endian header length N, N bytes of JSON object
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to the end of the header. */
#ifndef ROSA_SAFETENSORS_H
#define ROSA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* into the mapping */
    size_t nbytes;
    int file;         /* index into st_set.files */
} st_tensor;

/* A set of safetensors files seen as one table of tensors. */
typedef struct {
    rosa_mmap *maps;
    char **paths;
    int n_files;
    st_tensor *tensors;
    int n_tensors;
} st_set;

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);
int64_t st_numel(const st_tensor *t);

/* Adds one file's tensors to the set; validates the header completely
 * (JSON object, known dtypes, shapes, offsets inside the data, no overlap,
 * byte size = numel x dtype size, duplicate names across files). */
int st_set_add_file(st_set *s, const char *path);
/* Loads a model directory's weights: model.safetensors, or the shards listed
 * in model.safetensors.index.json (paths must stay inside dir, symbolic links
 * resolved; a Hugging Face cache snapshot may link into its repository's
 * blobs/: docs/robustness.md). */
int st_set_open_dir(st_set *s, const char *dir);
void st_set_close(st_set *s);
const st_tensor *st_set_find(const st_set *s, const char *name);

/* Parses a header from memory (for fuzzing and tests): buf holds the whole file. */
int st_parse(st_set *s, const void *buf, size_t size, const char *path, int file_index);

/* Writes tensors to a safetensors file atomically (path.tmp then rename).
 * Tensors are written in the order given. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} st_write_entry;
int st_write_file(const char *path, const st_write_entry *entries, int n, const char *metadata_json);

#endif
