/* safetensors.c: a validating safetensors reader over mmap, and a writer. */
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

/* A header larger than this is refused before parsing (the official library
 * uses 100 MB as well). */
#define ST_MAX_HEADER (100u << 20)
#define ST_MAX_TENSORS 100000

static const struct {
    const char *name;
    st_dtype type;
    size_t size;
} dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"I16", ST_I16, 2},   {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

const char *st_dtype_name(st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].type == t) return dtypes[i].name;
    return "?";
}

size_t st_dtype_size(st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].type == t) return dtypes[i].size;
    return 0;
}

int64_t st_numel(const st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int parse_dtype(const char *s, st_dtype *out) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = dtypes[i].type;
            return 0;
        }
    return -1;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(st_tensor *const *)a)->name, (*(st_tensor *const *)b)->name);
}

/* Names must be unique across all files of the set (sorting keeps this
 * O(n log n) for headers with many tensors). */
static int check_unique_names(const st_set *s, const char *path) {
    if (s->n_tensors < 2) return 0;
    st_tensor **byname = rosa_malloc(sizeof(st_tensor *) * (size_t)s->n_tensors, "tensor names");
    if (!byname) return -1;
    for (int i = 0; i < s->n_tensors; i++) byname[i] = &s->tensors[i];
    qsort(byname, (size_t)s->n_tensors, sizeof *byname, cmp_by_name);
    int rc = 0;
    for (int i = 1; i < s->n_tensors && rc == 0; i++)
        if (strcmp(byname[i - 1]->name, byname[i]->name) == 0)
            rc = rosa_fail("%s: tensor \"%s\" appears twice", path, byname[i]->name);
    free(byname);
    return rc;
}

static int cmp_by_offset(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int parse_entry(const cJSON *e, const char *path, const char *data, size_t data_size, size_t *missing,
                       st_tensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return rosa_fail("%s: tensor \"%s\": entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return rosa_fail("%s: tensor \"%s\": missing string \"dtype\"", path, name);
    if (parse_dtype(dt->valuestring, &t->dtype) < 0)
        return rosa_fail("%s: tensor \"%s\": unknown dtype \"%s\"", path, name, dt->valuestring);
    if (!cJSON_IsArray(shape)) return rosa_fail("%s: tensor \"%s\": missing array \"shape\"", path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS) return rosa_fail("%s: tensor \"%s\": %d dimensions (at most %d)", path, name, nd, ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    int k = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.0e15 ||
            (double)(int64_t)d->valuedouble != d->valuedouble)
            return rosa_fail("%s: tensor \"%s\": shape[%d] is not a non-negative integer", path, name, k);
        t->shape[k] = (int64_t)d->valuedouble;
        if (!rosa_mul_size(numel, (size_t)t->shape[k], &numel))
            return rosa_fail("%s: tensor \"%s\": shape overflows", path, name);
        k++;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return rosa_fail("%s: tensor \"%s\": \"data_offsets\" must be [begin, end]", path, name);
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
    /* floor, not a cast: converting a double beyond size_t is undefined (found by fuzzing) */
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ||
        b < 0 || en < b || b != floor(b) || en != floor(en))
        return rosa_fail("%s: tensor \"%s\": invalid data_offsets", path, name);
    /* Reading headers only, data past the end is counted, not refused: the
     * tensors are never read (rosa info on a partial download). */
    if (en > (double)data_size && !data) {
        *missing += (size_t)en - ((size_t)b > data_size ? (size_t)b : data_size);
    } else if (en > (double)data_size)
        return rosa_fail("%s: tensor \"%s\": data_offsets [%.0f, %.0f] past the end of the data (%zu bytes)",
                         path, name, b, en, data_size);
    size_t expect;
    if (!rosa_mul_size(numel, st_dtype_size(t->dtype), &expect))
        return rosa_fail("%s: tensor \"%s\": size overflows", path, name);
    t->nbytes = (size_t)en - (size_t)b;
    if (t->nbytes != expect)
        return rosa_fail("%s: tensor \"%s\": %zu bytes of data, but shape x %s needs %zu", path, name,
                         t->nbytes, st_dtype_name(t->dtype), expect);
    t->offset = (size_t)b;
    t->data = data ? data + (size_t)b : NULL;
    return 0;
}

/* The header length of a file of size bytes whose first 8 bytes are p. */
static int header_length(const unsigned char *p, size_t size, const char *path, uint64_t *hlen) {
    if (size < 8) return rosa_fail("%s: too short to be a safetensors file (%zu bytes)", path, size);
    *hlen = 0;
    for (int i = 7; i >= 0; i--) *hlen = (*hlen << 8) | p[i];
    if (*hlen > ST_MAX_HEADER)
        return rosa_fail("%s: header length %llu is absurd (limit %u)", path, (unsigned long long)*hlen, ST_MAX_HEADER);
    if (*hlen > size - 8)
        return rosa_fail("%s: header length %llu runs past the end of the file (%zu bytes): truncated?", path,
                         (unsigned long long)*hlen, size);
    return 0;
}

/* The tensors of header text [hlen bytes]; data is the mapped data (NULL:
 * headers only), data_size the bytes the file holds after the header. */
static int parse_header(st_set *s, const char *text, size_t hlen, const char *data, size_t data_size,
                        const char *path, int file_index) {
    cJSON *h = rosa_json_parse(text, hlen, path);
    if (!h) return -1;
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return rosa_fail("%s: header is not a JSON object", path);
    }
    size_t missing = 0;
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) if (strcmp(e->string, "__metadata__") != 0) count++;
    if (count > ST_MAX_TENSORS || s->n_tensors + count > ST_MAX_TENSORS) {
        cJSON_Delete(h);
        return rosa_fail("%s: too many tensors (%d)", path, count);
    }
    st_tensor *grown = rosa_realloc(s->tensors, sizeof(st_tensor) * (size_t)(s->n_tensors + count), "tensor table");
    st_tensor **order = rosa_malloc(sizeof(st_tensor *) * (size_t)(count ? count : 1), "tensor order");
    if (!grown || !order) {
        if (grown) s->tensors = grown;
        free(order);
        cJSON_Delete(h);
        return -1;
    }
    s->tensors = grown;
    int first = s->n_tensors, rc = 0, k = 0;
    cJSON_ArrayForEach(e, h) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        st_tensor *t = &s->tensors[s->n_tensors];
        memset(t, 0, sizeof *t);
        if (parse_entry(e, path, data, data_size, &missing, t) < 0) {
            rc = -1;
            break;
        }
        t->name = rosa_strdup(e->string);
        if (!t->name) {
            rc = -1;
            break;
        }
        t->file = file_index;
        s->n_tensors++;
        order[k++] = t;
    }
    if (rc == 0) {
        /* Tensors must not share bytes: sort by start and compare neighbours. */
        qsort(order, (size_t)k, sizeof *order, cmp_by_offset);
        for (int i = 1; i < k; i++) {
            if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
                rc = rosa_fail("%s: tensors \"%s\" and \"%s\" overlap", path, order[i - 1]->name, order[i]->name);
                break;
            }
        }
    }
    if (rc == 0) rc = check_unique_names(s, path);
    if (rc < 0) {
        for (int i = first; i < s->n_tensors; i++) free(s->tensors[i].name);
        s->n_tensors = first;
    } else {
        s->data_missing += missing;
    }
    free(order);
    cJSON_Delete(h);
    return rc;
}

int st_parse(st_set *s, const void *buf, size_t size, const char *path, int file_index) {
    uint64_t hlen = 0;
    if (header_length(buf, size, path, &hlen) < 0) return -1;
    const char *text = (const char *)buf + 8;
    return parse_header(s, text, (size_t)hlen, text + hlen, size - 8 - (size_t)hlen, path, file_index);
}

/* The header alone, read with pread: no page of tensor data is touched. */
static int parse_header_file(st_set *s, const char *path, int file_index) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return rosa_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    unsigned char len8[8];
    uint64_t hlen = 0;
    int rc = -1;
    char *text = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) rosa_fail("%s: not a regular file", path);
    else if (pread(fd, len8, 8, 0) != (st.st_size < 8 ? st.st_size : 8))
        rosa_fail("%s: cannot read: %s", path, strerror(errno));
    else if (header_length(len8, (size_t)st.st_size, path, &hlen) == 0 && (text = rosa_malloc(hlen + 1, path))) {
        if (pread(fd, text, (size_t)hlen, 8) != (ssize_t)hlen) rosa_fail("%s: cannot read the header: %s", path, strerror(errno));
        else rc = parse_header(s, text, (size_t)hlen, NULL, (size_t)st.st_size - 8 - (size_t)hlen, path, file_index);
    }
    free(text);
    close(fd);
    return rc;
}

int st_set_add_file(st_set *s, const char *path) {
    rosa_mmap *maps = rosa_realloc(s->maps, sizeof(rosa_mmap) * (size_t)(s->n_files + 1), "file table");
    if (!maps) return -1;
    s->maps = maps;
    char **paths = rosa_realloc(s->paths, sizeof(char *) * (size_t)(s->n_files + 1), "file table");
    if (!paths) return -1;
    s->paths = paths;
    rosa_mmap m = {0};
    if (s->headers_only ? parse_header_file(s, path, s->n_files) < 0 : rosa_mmap_open(&m, path) < 0) return -1;
    if (!s->headers_only && st_parse(s, m.data, m.size, path, s->n_files) < 0) {
        rosa_mmap_close(&m);
        return -1;
    }
    s->maps[s->n_files] = m;
    s->paths[s->n_files] = rosa_strdup(path);
    s->n_files++;
    return 0;
}

/* A shard name from the index must be a plain relative path that stays in the
 * model directory: no absolute path, no ".." component. */
static int shard_name_ok(const char *name) {
    if (!*name || name[0] == '/') return 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

/* A weight file of a model directory, symbolic links resolved, must stay in
 * the directory, or, when the directory is a Hugging Face cache snapshot
 * (<repo>/snapshots/<rev>/, whose files link to ../../blobs/<hash>), in the
 * repository's blobs/, which must then be a directory of the repository
 * itself: not a link (`blobs -> /` would admit any file).  A file that does
 * not resolve is left to the open that follows, which names it. */
int st_path_in_model_dir(const char *dir, const char *path) {
    char *rdir = realpath(dir, NULL), *rfile = realpath(path, NULL), *blobs = NULL;
    int ok = !rfile || (rdir && rosa_path_inside(rfile, rdir));
    if (!ok && rdir) {
        /* rdir is resolved, so its grandparent is the real repository directory. */
        char *repo = rosa_strdup(rdir), *slash = repo ? strrchr(repo, '/') : NULL;
        if (slash) *slash = 0;
        slash = repo ? strrchr(repo, '/') : NULL;
        if (slash && strcmp(slash + 1, "snapshots") == 0) {
            *slash = 0;
            const char *root = *repo ? repo : "/";
            char *b = rosa_path_join(root, "blobs");
            struct stat st;
            if (b && lstat(b, &st) == 0 && S_ISDIR(st.st_mode)) {
                blobs = realpath(b, NULL);
                /* Not a link, so this holds; checked all the same: the blobs
                 * admitted are the repository's own. */
                if (blobs && (!rosa_path_inside(blobs, root) || strcmp(blobs, root) == 0)) {
                    free(blobs);
                    blobs = NULL;
                }
            }
            free(b);
        }
        free(repo);
        ok = blobs && rosa_path_inside(rfile, blobs);
    }
    if (!ok) rosa_fail("%s: resolves to %s, outside the model directory %s", path, rfile, rdir ? rdir : dir);
    free(rdir);
    free(rfile);
    free(blobs);
    return ok;
}

static int add_weight_file(st_set *s, const char *dir, const char *path) {
    return st_path_in_model_dir(dir, path) ? st_set_add_file(s, path) : -1;
}

static int open_index(st_set *s, const char *dir, const char *index_path) {
    cJSON *idx = rosa_json_load(index_path);
    if (!idx) return -1;
    int rc = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(idx) || !cJSON_IsObject(wm)) {
        cJSON_Delete(idx);
        return rosa_fail("%s: missing object \"weight_map\"", index_path);
    }
    /* Distinct shard files in order of first appearance. */
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) {
            rc = rosa_fail("%s: weight_map[\"%s\"] is not a string", index_path, e->string);
            break;
        }
        if (!shard_name_ok(e->valuestring)) {
            rc = rosa_fail("%s: shard path \"%s\" points outside the model directory", index_path, e->valuestring);
            break;
        }
        int seen = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, wm) {
            if (f == e) break;
            if (cJSON_IsString(f) && strcmp(f->valuestring, e->valuestring) == 0) {
                seen = 1;
                break;
            }
        }
        if (seen) continue;
        char *shard = rosa_path_join(dir, e->valuestring);
        if (!shard) {
            rc = -1;
            break;
        }
        rc = add_weight_file(s, dir, shard);
        free(shard);
        if (rc < 0) break;
    }
    /* Every tensor the index names must be in the shard it names. */
    if (rc == 0) {
        cJSON_ArrayForEach(e, wm) {
            const st_tensor *t = st_set_find(s, e->string);
            if (!t) {
                rc = rosa_fail("%s: tensor \"%s\" is listed but missing from %s", index_path, e->string, e->valuestring);
                break;
            }
        }
    }
    cJSON_Delete(idx);
    return rc;
}

static int open_dir(st_set *s, const char *dir, int headers_only) {
    memset(s, 0, sizeof *s);
    s->headers_only = headers_only;
    char *single = rosa_path_join(dir, "model.safetensors");
    char *index = rosa_path_join(dir, "model.safetensors.index.json");
    int rc;
    if (!single || !index)
        rc = -1;
    else if (rosa_file_exists(single))
        rc = add_weight_file(s, dir, single);
    else if (rosa_file_exists(index))
        rc = open_index(s, dir, index);
    else
        rc = rosa_fail("%s: no model.safetensors or model.safetensors.index.json", dir);
    free(single);
    free(index);
    if (rc < 0) st_set_close(s);
    return rc;
}

int st_set_open_dir(st_set *s, const char *dir) { return open_dir(s, dir, 0); }
int st_set_open_dir_headers(st_set *s, const char *dir) { return open_dir(s, dir, 1); }

void st_set_close(st_set *s) {
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    for (int i = 0; i < s->n_files; i++) {
        rosa_mmap_close(&s->maps[i]);
        free(s->paths[i]);
    }
    free(s->tensors);
    free(s->maps);
    free(s->paths);
    memset(s, 0, sizeof *s);
}

const st_tensor *st_set_find(const st_set *s, const char *name) {
    for (int i = 0; i < s->n_tensors; i++)
        if (strcmp(s->tensors[i].name, name) == 0) return &s->tensors[i];
    return NULL;
}

int st_write_file(const char *path, const st_write_entry *entries, int n, const char *metadata_json) {
    cJSON *h = cJSON_CreateObject();
    if (!h) return rosa_fail("out of memory");
    if (metadata_json) {
        cJSON *md = cJSON_Parse(metadata_json);
        if (!md) {
            cJSON_Delete(h);
            return rosa_fail("%s: invalid metadata JSON", path);
        }
        cJSON_AddItemToObject(h, "__metadata__", md);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_write_entry *e = &entries[i];
        size_t nbytes = st_dtype_size(e->dtype);
        cJSON *t = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *o = cJSON_CreateArray();
        for (int d = 0; d < e->ndim; d++) {
            nbytes *= (size_t)e->shape[d];
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        }
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + nbytes)));
        cJSON_AddStringToObject(t, "dtype", st_dtype_name(e->dtype));
        cJSON_AddItemToObject(t, "shape", shape);
        cJSON_AddItemToObject(t, "data_offsets", o);
        cJSON_AddItemToObject(h, e->name, t);
        off += nbytes;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!text) return rosa_fail("out of memory");
    size_t hlen = strlen(text), padded = (hlen + 7) & ~(size_t)7;
    char *tmp;
    FILE *f = rosa_atomic_begin(path, &tmp);
    if (!f) {
        free(text);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(text, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t nbytes = st_dtype_size(entries[i].dtype);
        for (int d = 0; d < entries[i].ndim; d++) nbytes *= (size_t)entries[i].shape[d];
        ok = fwrite(entries[i].data, 1, nbytes, f) == nbytes;
    }
    free(text);
    return rosa_atomic_end(f, tmp, path, ok);
}

int st_shard_plan(const size_t *nbytes, int n, uint64_t max_bytes, int *shard_of) {
    int shards = 0, first_open = 0; /* the shard being filled holds the unnumbered tensors from first_open on */
    uint64_t open_size = 0;
    for (int i = 0; i < n; i++) shard_of[i] = -1;
    for (int i = 0; i < n; i++) {
        if (nbytes[i] > max_bytes) {
            shard_of[i] = shards++;
            continue;
        }
        if (open_size + nbytes[i] > max_bytes) {
            for (int k = first_open; k < i; k++)
                if (shard_of[k] < 0) shard_of[k] = shards;
            shards++;
            first_open = i;
            open_size = 0;
        }
        open_size += nbytes[i];
    }
    int any = 0;
    for (int k = first_open; k < n; k++)
        if (shard_of[k] < 0) shard_of[k] = shards, any = 1;
    return shards + any > 0 ? shards + any : 1;
}

void st_shard_file_name(char *buf, size_t size, int shard, int n_shards) {
    if (n_shards <= 1) snprintf(buf, size, "model.safetensors");
    else snprintf(buf, size, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

typedef struct {
    const char *name;
    int shard;
} named_shard;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named_shard *)a)->name, ((const named_shard *)b)->name);
}

/* s as a JSON string (the names come from a safetensors header: any UTF-8). */
static int put_json_string(rosa_buf *b, const char *s) {
    int rc = rosa_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\') rc = rosa_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20) rc = rosa_buf_printf(b, "\\u%04x", *p);
        else rc = rosa_buf_putc(b, (char)*p);
    }
    return rc < 0 ? -1 : rosa_buf_putc(b, '"');
}

int st_write_index(const char *path, const char *const *names, const int *shard_of, int n, int n_shards,
                   uint64_t total_size) {
    named_shard *v = rosa_calloc((size_t)(n > 0 ? n : 1), sizeof *v, "shard index");
    if (!v) return -1;
    for (int i = 0; i < n; i++) v[i] = (named_shard){names[i], shard_of[i]};
    qsort(v, (size_t)n, sizeof *v, cmp_named);
    rosa_buf b = {0};
    int rc = rosa_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
                             (unsigned long long)total_size);
    for (int i = 0; rc == 0 && i < n; i++) {
        char file[64];
        st_shard_file_name(file, sizeof file, v[i].shard, n_shards);
        rc = rosa_buf_printf(&b, "%s\n    ", i ? "," : "");
        if (rc == 0) rc = put_json_string(&b, v[i].name);
        if (rc == 0) rc = rosa_buf_printf(&b, ": \"%s\"", file);
    }
    if (rc == 0) rc = rosa_buf_printf(&b, "\n  }\n}\n");
    if (rc == 0) rc = rosa_write_file_atomic(path, b.data, b.len);
    rosa_buf_free(&b);
    free(v);
    return rc;
}
