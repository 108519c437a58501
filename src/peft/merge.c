/* merge.c: rosa_adapter_merge_write, a merged model directory as complete as
 * the base: the merged tensors in the dtype and shards asked for, and every
 * file of the base that is not a weight file. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "peft/peft.h"

void rosa_merge_options_default(rosa_merge_options *o) {
    o->max_shard_size = 5000000000ull;
    o->dtype = -1;
    o->overwrite = 0;
}

/* The layer and projection of a stored weight name, or -1. */
static int proj_of_tensor(const char *name, int L, int *layer) {
    for (int p = 0; p < N_PROJ; p++) {
        char fmt[96];
        int l, consumed = 0;
        snprintf(fmt, sizeof fmt, "model.layers.%%d.%s.%s.weight%%n", rosa_proj_parent(p), rosa_proj_names[p]);
        if (sscanf(name, fmt, &l, &consumed) == 1 && consumed == (int)strlen(name) && l >= 0 && l < L) {
            *layer = l;
            return p;
        }
    }
    return -1;
}

/* The adapter's replacement for norm tensor `name` (model.layers.{l}.{norm}.weight,
 * or model.norm.weight), or NULL. */
static const float *norm_of_tensor(const rosa_adapter *a, const rosa_config *c, const char *name) {
    const rosa_hook_ops *h = a->method->hooks;
    if (!h->norm_weight) return NULL;
    if (strcmp(name, "model.norm.weight") == 0) return h->norm_weight(a, a->L, 0);
    const rosa_arch_desc *ad = rosa_arch_of(c);
    for (int i = 0; i < ad->n_norms; i++) {
        char fmt[96];
        int l, consumed = 0;
        snprintf(fmt, sizeof fmt, "model.layers.%%d.%s.weight%%n", ad->norm_names[i]);
        if (sscanf(name, fmt, &l, &consumed) == 1 && consumed == (int)strlen(name) && l >= 0 && l < a->L)
            return h->norm_weight(a, l, i);
    }
    return NULL;
}

static int is_float(st_dtype t) { return t == ST_F32 || t == ST_F16 || t == ST_BF16 || t == ST_F64; }

static st_dtype out_dtype(st_dtype stored, int dtype) {
    if (dtype < 0 || !is_float(stored)) return stored;
    return dtype == ROSA_DTYPE_BF16 ? ST_BF16 : dtype == ROSA_DTYPE_F16 ? ST_F16 : ST_F32;
}

static const char *torch_dtype_name(int dtype) {
    return dtype == ROSA_DTYPE_BF16 ? "bfloat16" : dtype == ROSA_DTYPE_F16 ? "float16" : "float32";
}

/* Element k of a floating tensor (memcpy: a mapped tensor need not be aligned). */
static double load_elem(const void *data, st_dtype t, size_t k) {
    const char *p = data;
    if (t == ST_F64) {
        double d;
        memcpy(&d, p + 8 * k, 8);
        return d;
    }
    if (t == ST_F32) {
        float f;
        memcpy(&f, p + 4 * k, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    return t == ST_BF16 ? rosa_bf16_to_f32(h) : rosa_f16_to_f32(h);
}

/* Converts n elements of src (dtype from) to dst (dtype to; NULL: only
 * checks).  Returns the first k where a finite value becomes infinite in
 * `to` (F16 past 65504, BF16 or F32 past their largest finite value), or -1. */
static long long convert(const void *src, st_dtype from, size_t n, void *dst, st_dtype to) {
    long long bad = -1;
    for (size_t k = 0; k < n; k++) {
        double v = load_elem(src, from, k);
        float f = (float)v, back;
        if (to == ST_F64) {
            if (dst) memcpy((char *)dst + 8 * k, &v, 8);
            continue;
        }
        if (to == ST_F32) {
            if (dst) memcpy((char *)dst + 4 * k, &f, 4);
            back = f;
        } else {
            uint16_t h = to == ST_BF16 ? rosa_f32_to_bf16(f) : rosa_f32_to_f16(f);
            if (dst) memcpy((char *)dst + 2 * k, &h, 2);
            back = to == ST_BF16 ? rosa_bf16_to_f32(h) : rosa_f16_to_f32(h);
        }
        if (bad < 0 && isfinite(v) && !isfinite(back)) bad = (long long)k;
    }
    return bad;
}

/* Files of the base that hold weights (in any format) or an index of them:
 * the merged model has its own, so these are not copied. */
static int is_weight_file(const char *name) {
    static const char *const pats[] = {"*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5",
                                       "*.msgpack",     "*.gguf", "*.onnx", "*.index.json", NULL};
    for (int i = 0; pats[i]; i++)
        if (fnmatch(pats[i], name, 0) == 0) return 1;
    return 0;
}

/* The weight files a save_pretrained of safetensors writes: an earlier
 * merge's, removed by --overwrite so that no stale shard or index remains. */
static int is_saved_weight_file(const char *name) {
    return strcmp(name, "model.safetensors") == 0 || strcmp(name, "model.safetensors.index.json") == 0 ||
           fnmatch("model-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].safetensors", name, 0) == 0;
}

/* Whether dir holds anything; -1 (error set) when it cannot be read. */
static int dir_has_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return rosa_fail("%s: cannot read the directory: %s", dir, strerror(errno));
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

static int remove_old_weights(const char *out_dir) {
    DIR *d = opendir(out_dir);
    if (!d) return rosa_fail("%s: cannot read the directory: %s", out_dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!is_saved_weight_file(e->d_name)) continue;
        char *p = rosa_path_join(out_dir, e->d_name);
        /* unlink: a link there is removed, its target left alone */
        if (!p || unlink(p) != 0) rc = rosa_fail("%s/%s: cannot remove: %s", out_dir, e->d_name, strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

static int copy_file(const char *from, const char *to) {
    size_t len;
    char *data = rosa_read_file(from, &len);
    if (!data) return -1;
    int rc = rosa_write_file_atomic(to, data, len);
    free(data);
    return rc;
}

/* config.json with torch_dtype (and transformers 5's "dtype", where present) set to dtype. */
static int write_config(const char *model_dir, const char *out_dir, int dtype) {
    char *from = rosa_path_join(model_dir, "config.json"), *to = rosa_path_join(out_dir, "config.json");
    int rc = -1;
    cJSON *j = from && to ? rosa_json_load(from) : NULL;
    if (j && !cJSON_IsObject(j)) rosa_fail("%s: not a JSON object", from);
    else if (j) {
        const char *name = torch_dtype_name(dtype);
        if (cJSON_GetObjectItemCaseSensitive(j, "torch_dtype"))
            cJSON_ReplaceItemInObjectCaseSensitive(j, "torch_dtype", cJSON_CreateString(name));
        else cJSON_AddStringToObject(j, "torch_dtype", name);
        if (cJSON_GetObjectItemCaseSensitive(j, "dtype"))
            cJSON_ReplaceItemInObjectCaseSensitive(j, "dtype", cJSON_CreateString(name));
        char *text = cJSON_Print(j);
        if (!text) rosa_fail("out of memory");
        else {
            size_t n = strlen(text);
            text[n] = '\n'; /* cJSON_Print leaves no newline; the terminator is not needed */
            rc = rosa_write_file_atomic(to, text, n + 1);
        }
        free(text);
    }
    cJSON_Delete(j);
    free(from);
    free(to);
    return rc;
}

/* Every regular file of model_dir but the weight files (and config.json when
 * it is rewritten), copied into out_dir. */
static int copy_other_files(const char *model_dir, const char *out_dir, int skip_config) {
    DIR *d = opendir(model_dir);
    if (!d) return rosa_fail("%s: cannot read the directory: %s", model_dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *n = e->d_name;
        if (is_weight_file(n) || (skip_config && strcmp(n, "config.json") == 0)) continue;
        char *from = rosa_path_join(model_dir, n), *to = rosa_path_join(out_dir, n);
        struct stat st;
        if (!from || !to) rc = -1;
        else if (stat(from, &st) != 0 || !S_ISREG(st.st_mode)) {
            /* ".", "..", subdirectories (a download's .cache/), broken links */
        } else if (!st_path_in_model_dir(model_dir, from)) {
            rosa_log(ROSA_LOG_WARN, "%s: not copied: %s", from, rosa_last_error());
            rosa_clear_error();
        } else {
            rc = copy_file(from, to);
        }
        free(from);
        free(to);
    }
    closedir(d);
    return rc;
}

int rosa_adapter_merge_write(const rosa_model *m, const char *model_dir, const rosa_adapter *a, const char *out_dir,
                             const rosa_merge_options *opts) {
    rosa_merge_options o;
    if (opts) o = *opts;
    else rosa_merge_options_default(&o);
    if (!rosa_adapter_mergeable(a))
        return rosa_fail("%s adapters cannot be merged into this model's weights (RoAE acts inside attention, IA3 "
                         "scales a projection's bias too); use --adapter", a->method->title);
    if (m->fp32_released) return rosa_fail("merging needs the FP32 weights: load the model without --dtype bf16");
    if (o.max_shard_size == 0) return rosa_fail("merge: the largest shard size must be positive");
    if (o.dtype > ROSA_DTYPE_BF16) return rosa_fail("merge: unknown dtype %d", o.dtype);
    /* Merged weights written into (or around) the base model would replace them. */
    if (rosa_check_apart("--output", out_dir, "--model", model_dir) < 0) return -1;
    struct stat ost;
    int exists = lstat(out_dir, &ost) == 0;
    if (exists && !S_ISDIR(ost.st_mode)) return rosa_fail("%s exists and is not a directory", out_dir);
    if (exists && !o.overwrite) {
        int any = dir_has_entries(out_dir);
        if (any < 0) return -1;
        if (any)
            return rosa_fail("%s already holds files: use --overwrite to write the merged model into it "
                             "(its old weight files are removed)", out_dir);
    }
    const st_set *s = &m->weights;
    int nt = s->n_tensors, rc = 0;
    void **bufs = rosa_calloc((size_t)(nt ? nt : 1), sizeof(void *), "merged tensors");
    size_t *nbytes = rosa_calloc((size_t)(nt ? nt : 1), sizeof(size_t), "merged tensors");
    int *shard_of = rosa_calloc((size_t)(nt ? nt : 1), sizeof(int), "merged tensors");
    const char **names = rosa_calloc((size_t)(nt ? nt : 1), sizeof(char *), "merged tensors");
    st_write_entry *e = rosa_calloc((size_t)(nt ? nt : 1), sizeof *e, "merged tensors");
    if (!bufs || !nbytes || !shard_of || !names || !e) rc = -1;
    /* Every value is merged or checked before anything is written: a refused merge writes nothing. */
    uint64_t total = 0;
    for (int i = 0; rc == 0 && i < nt; i++) {
        const st_tensor *t = &s->tensors[i];
        st_dtype to = out_dtype(t->dtype, o.dtype);
        size_t n = (size_t)st_numel(t);
        names[i] = t->name;
        nbytes[i] = to == t->dtype ? t->nbytes : n * st_dtype_size(to);
        total += nbytes[i];
        int l, p = proj_of_tensor(t->name, a->L, &l);
        long long bad = -1;
        const float *norm = norm_of_tensor(a, &m->cfg, t->name);
        if (norm || (p >= 0 && a->method->adapts(a, l, p))) {
            float *merged = norm ? rosa_malloc(sizeof(float) * n, "merged norm") : rosa_adapter_merged_copy(m, a, l, p);
            if (merged && norm) memcpy(merged, norm, sizeof(float) * n);
            if (!merged) {
                rc = -1;
                break;
            }
            if (to == ST_F32) {
                bufs[i] = merged;
            } else {
                bufs[i] = rosa_malloc(nbytes[i], "merged weight");
                if (bufs[i]) bad = convert(merged, ST_F32, n, bufs[i], to);
                free(merged);
                if (!bufs[i]) rc = -1;
            }
        } else if (to != t->dtype) {
            bad = convert(t->data, t->dtype, n, NULL, to);
        }
        if (bad >= 0)
            rc = rosa_fail("%s: %s gives a value that overflows %s (at [%lld]): not written", t->name,
                           bufs[i] ? "merging the adapter" : "converting", st_dtype_name(to), bad);
    }
    int n_shards = rc == 0 ? st_shard_plan(nbytes, nt, o.max_shard_size, shard_of) : 0;
    if (rc == 0 && !exists && mkdir(out_dir, 0755) != 0)
        rc = rosa_fail("%s: cannot create directory: %s", out_dir, strerror(errno));
    if (rc == 0 && exists && o.overwrite) rc = remove_old_weights(out_dir);
    /* one shard at a time: converted copies of the tensors that are not merged live only while it is written */
    for (int sh = 0; rc == 0 && sh < n_shards; sh++) {
        int k = 0;
        for (int i = 0; rc == 0 && i < nt; i++) {
            if (shard_of[i] != sh) continue;
            const st_tensor *t = &s->tensors[i];
            st_dtype to = out_dtype(t->dtype, o.dtype);
            if (!bufs[i] && to != t->dtype) {
                bufs[i] = rosa_malloc(nbytes[i], "converted weight");
                if (!bufs[i]) rc = -1;
                else convert(t->data, t->dtype, (size_t)st_numel(t), bufs[i], to);
            }
            e[k++] = (st_write_entry){t->name, to, t->ndim, t->shape, bufs[i] ? bufs[i] : t->data};
        }
        char file[64];
        st_shard_file_name(file, sizeof file, sh, n_shards);
        char *path = rc == 0 ? rosa_path_join(out_dir, file) : NULL;
        if (rc == 0) rc = path ? st_write_file(path, e, k, "{\"format\": \"pt\"}") : -1;
        free(path);
        for (int i = 0; i < nt; i++)
            if (shard_of[i] == sh) free(bufs[i]), bufs[i] = NULL;
    }
    if (rc == 0 && n_shards > 1) {
        char *path = rosa_path_join(out_dir, "model.safetensors.index.json");
        rc = path ? st_write_index(path, names, shard_of, nt, n_shards, total) : -1;
        free(path);
    }
    if (rc == 0) rc = copy_other_files(model_dir, out_dir, o.dtype >= 0);
    if (rc == 0 && o.dtype >= 0) rc = write_config(model_dir, out_dir, o.dtype);
    for (int i = 0; bufs && i < nt; i++) free(bufs[i]);
    free(bufs);
    free(nbytes);
    free(shard_of);
    free(names);
    free(e);
    return rc;
}
