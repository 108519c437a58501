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
    const void *data; /* into the mapping; NULL when only the headers were read */
    size_t offset;    /* from the start of the file's data */
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
    int headers_only;    /* st_set_open_dir_headers: no file mapped, no data */
    size_t data_missing; /* headers only: bytes the headers place past the files' ends */
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
/* The same tables from the headers alone (read, not mapped): every data
 * pointer is NULL, and data that a truncated file lacks is counted in
 * data_missing instead of refused.  For sizes and plans (rosa info). */
int st_set_open_dir_headers(st_set *s, const char *dir);
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

/* Sharding as transformers' save_pretrained does it (huggingface_hub's
 * split_state_dict_into_shards): tensors in the order given fill a shard
 * until the next would take it past max_bytes; a tensor larger than
 * max_bytes gets a shard of its own, numbered when it is met (before the
 * shard being filled).  shard_of[i] receives tensor i's shard (0-based);
 * returns the number of shards (1: a single model.safetensors). */
int st_shard_plan(const size_t *nbytes, int n, uint64_t max_bytes, int *shard_of);
/* "model.safetensors" for a single shard, else "model-00002-of-00005.safetensors". */
void st_shard_file_name(char *buf, size_t size, int shard, int n_shards);
/* Writes path (model.safetensors.index.json) atomically, as transformers
 * does: {"metadata": {"total_size": N}, "weight_map": {name: file, ...}},
 * keys sorted, 2-space indent. */
int st_write_index(const char *path, const char *const *names, const int *shard_of, int n, int n_shards,
                   uint64_t total_size);
/* Whether path, symbolic links resolved, lies in the model directory dir or,
 * for a Hugging Face cache snapshot, in its repository's own blobs/ (the
 * rule weight files are held to): 1 yes, 0 no (error set, naming both). */
int st_path_in_model_dir(const char *dir, const char *path);

#endif
