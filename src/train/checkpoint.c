/* checkpoint.c: atomic checkpoint directories. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "train/hf_state.h"

/* Removes `name` in the directory open as dfd and, when it is a directory,
 * everything in it.  Never follows a symbolic link: a link is unlinked as a
 * link and its target left alone (a link named checkpoint-N or
 * .checkpoint-N.tmp in an output directory must not empty the directory it
 * points to).  Keeps going past a failure; returns -1 (errno set) if any. */
static int remove_at(int dfd, const char *name) {
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    /* O_NOFOLLOW: a directory swapped for a link since the fstatat is not entered. */
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int err = errno;
        if (fd >= 0) close(fd);
        return errno = err, -1;
    }
    int rc = 0, err = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (remove_at(fd, e->d_name) != 0 && !err) err = errno, rc = -1;
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) err = errno, rc = -1;
    if (rc) errno = err;
    return rc;
}

/* remove_at for a path: its last component, in its directory (which may be
 * reached through links: the output directory itself may be one). */
static int remove_tree(const char *path) {
    char *dir = rosa_strdup(path);
    if (!dir) return errno = ENOMEM, -1;
    char *slash = strrchr(dir, '/');
    const char *name = slash ? slash + 1 : dir;
    if (slash) *slash = 0;
    int dfd = open(slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = dfd >= 0 ? remove_at(dfd, name) : -1, err = errno;
    if (dfd >= 0) close(dfd);
    free(dir);
    errno = err;
    return rc;
}

static int fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_optimizer(const char *path, const rosa_adapter *a, const rosa_adamw *opt) {
    int n = 2 * a->n_params + 1;
    st_write_entry *e = rosa_calloc((size_t)n, sizeof *e, "optimizer tensors");
    int64_t *shapes = rosa_calloc((size_t)a->n_params * 2 + 1, sizeof(int64_t), "optimizer shapes");
    char (*names)[160] = rosa_calloc((size_t)n, sizeof *names, "optimizer names");
    int rc = -1;
    if (e && shapes && names) {
        for (int i = 0; i < a->n_params; i++) {
            const rosa_param *p = &a->params[i];
            shapes[2 * i] = p->rows;
            shapes[2 * i + 1] = p->cols;
            snprintf(names[2 * i], sizeof names[0], "%s.exp_avg", p->name);
            snprintf(names[2 * i + 1], sizeof names[0], "%s.exp_avg_sq", p->name);
            e[2 * i] = (st_write_entry){names[2 * i], ST_F32, 2, &shapes[2 * i], opt->m + p->offset};
            e[2 * i + 1] = (st_write_entry){names[2 * i + 1], ST_F32, 2, &shapes[2 * i], opt->v + p->offset};
        }
        shapes[2 * a->n_params] = a->n_params;
        e[n - 1] = (st_write_entry){"step", ST_I64, 1, &shapes[2 * a->n_params], opt->step};
        rc = st_write_file(path, e, n, NULL);
    }
    free(e);
    free(shapes);
    free(names);
    return rc;
}

/* u64 values go as decimal strings: JSON numbers lose bits past 2^53. */
static void add_u64(cJSON *o, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    cJSON_AddStringToObject(o, key, buf);
}

static char *state_json(const rosa_checkpoint_state *st) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "format", "rosa-checkpoint/1");
    cJSON_AddNumberToObject(j, "step", (double)st->step);
    cJSON_AddNumberToObject(j, "total_steps", (double)st->total_steps);
    add_u64(j, "seed", st->seed);
    if (st->dls) {
        const rosa_dls *d = st->dls;
        cJSON *o = cJSON_AddObjectToObject(j, "dls");
        cJSON *rng = cJSON_AddArrayToObject(o, "rng");
        for (int i = 0; i < 4; i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)d->rng.s[i]);
            cJSON_AddItemToArray(rng, cJSON_CreateString(buf));
        }
        cJSON_AddBoolToObject(o, "have_scores", d->have_scores);
        cJSON *sc = cJSON_AddArrayToObject(o, "scores"), *ac = cJSON_AddArrayToObject(o, "active"),
              *cn = cJSON_AddArrayToObject(o, "counts");
        for (int l = 0; l < d->L; l++) {
            /* %.9g round-trips a float exactly. */
            char buf[32];
            snprintf(buf, sizeof buf, "%.9g", d->scores[l]);
            cJSON_AddItemToArray(sc, cJSON_CreateRaw(buf));
            cJSON_AddItemToArray(ac, cJSON_CreateNumber(d->active[l]));
            cJSON_AddItemToArray(cn, cJSON_CreateNumber((double)d->counts[l]));
        }
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

/* Whether layer-selection state d is one a run can continue after `step`
 * steps (what the selection itself can leave): a live random stream, scores
 * that are gradient norms, all layers active (warm-up) or the k selected, each
 * count at most one per step.  Returns 0, or -1 with `what` (n bytes). */
static int dls_check(const rosa_dls *d, int64_t step, char *what, size_t n) {
    if (!(d->rng.s[0] | d->rng.s[1] | d->rng.s[2] | d->rng.s[3])) {
        snprintf(what, n, "dls.rng: all zero (xoshiro256** would only draw zeros)");
        return -1;
    }
    int n_active = 0;
    for (int l = 0; l < d->L; l++) {
        if (!(isfinite(d->scores[l]) && d->scores[l] >= 0.0f)) {
            snprintf(what, n, "dls.scores[%d]: %g (must be a finite gradient norm >= 0)", l, (double)d->scores[l]);
            return -1;
        }
        if (d->counts[l] < 0 || d->counts[l] > step) {
            snprintf(what, n, "dls.counts[%d]: %lld (must be in [0, %lld], the steps done)", l, (long long)d->counts[l],
                     (long long)step);
            return -1;
        }
        n_active += d->active[l] != 0;
    }
    if (n_active != d->L && n_active != d->k) {
        snprintf(what, n, "dls.active: %d layers (must be all %d, or the %d selected)", n_active, d->L, d->k);
        return -1;
    }
    return 0;
}

/* A u64 written by add_u64: decimal digits only, no overflow. */
static int parse_u64(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsString(x) || !x->valuestring[0] || strspn(x->valuestring, "0123456789") != strlen(x->valuestring))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(x->valuestring, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = v;
    return 0;
}

/* Refuses a key of o not in keys[] (NULL-terminated): rosa's own format, so
 * a misspelt field is an error rather than a default. */
static int only_keys(const cJSON *o, const char *path, const char *prefix, const char *const *keys) {
    const cJSON *item;
    cJSON_ArrayForEach(item, o) {
        int known = 0;
        for (int k = 0; keys[k] && !known; k++) known = strcmp(item->string, keys[k]) == 0;
        if (!known) return rosa_fail("%s: %s%s: unknown field", path, prefix, item->string);
    }
    return 0;
}

/* Restores the layer-selection state saved by state_json, every value
 * checked before it is converted (a double beyond the target type is
 * undefined behaviour) and the whole against dls_check. */
static int load_dls(const cJSON *j, const char *path, int64_t step, rosa_dls *d) {
    static const char *const keys[] = {"rng", "have_scores", "scores", "active", "counts", NULL};
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "dls");
    if (!cJSON_IsObject(o)) return rosa_fail("%s: dls: missing (was the run made without DLS?)", path);
    if (only_keys(o, path, "dls.", keys) < 0) return -1;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(o, "rng"), *sc = cJSON_GetObjectItemCaseSensitive(o, "scores"),
                *ac = cJSON_GetObjectItemCaseSensitive(o, "active"), *cn = cJSON_GetObjectItemCaseSensitive(o, "counts"),
                *hs = cJSON_GetObjectItemCaseSensitive(o, "have_scores");
    if (!cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != 4) return rosa_fail("%s: dls.rng: must be 4 strings", path);
    const cJSON *arrays[3] = {sc, ac, cn};
    static const char *const names[3] = {"scores", "active", "counts"};
    for (int k = 0; k < 3; k++)
        if (!cJSON_IsArray(arrays[k]) || cJSON_GetArraySize(arrays[k]) != d->L)
            return rosa_fail("%s: dls.%s: must be a list of %d values, one per layer of the model", path, names[k], d->L);
    if (!cJSON_IsBool(hs)) return rosa_fail("%s: dls.have_scores: must be true or false", path);
    for (int i = 0; i < 4; i++)
        if (parse_u64(cJSON_GetArrayItem(rng, i), &d->rng.s[i]) < 0)
            return rosa_fail("%s: dls.rng[%d]: must be a decimal string of a 64-bit unsigned integer", path, i);
    d->have_scores = cJSON_IsTrue(hs);
    for (int l = 0; l < d->L; l++) {
        const cJSON *x = cJSON_GetArrayItem(sc, l), *y = cJSON_GetArrayItem(ac, l), *z = cJSON_GetArrayItem(cn, l);
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= FLT_MAX))
            return rosa_fail("%s: dls.scores[%d]: must be a finite number", path, l);
        if (!cJSON_IsNumber(y) || (y->valuedouble != 0 && y->valuedouble != 1))
            return rosa_fail("%s: dls.active[%d]: must be 0 or 1", path, l);
        if (!cJSON_IsNumber(z) || !(z->valuedouble >= 0 && z->valuedouble <= (double)step) ||
            z->valuedouble != floor(z->valuedouble))
            return rosa_fail("%s: dls.counts[%d]: %g is not an integer in [0, %lld] (a layer is selected at most once "
                             "per step)", path, l, cJSON_IsNumber(z) ? z->valuedouble : NAN, (long long)step);
        d->scores[l] = (float)x->valuedouble;
        d->active[l] = y->valuedouble != 0;
        d->counts[l] = (int64_t)z->valuedouble;
    }
    char what[256];
    if (dls_check(d, step, what, sizeof what) < 0) return rosa_fail("%s: %s", path, what);
    return 0;
}

int rosa_checkpoint_save(const char *out_dir, const rosa_adapter *a, const rosa_adamw *opt,
                         const rosa_checkpoint_state *st, const char *base_model) {
    char final_dir[4096], tmp_dir[4096], old_dir[4096];
    snprintf(final_dir, sizeof final_dir, "%s/checkpoint-%lld", out_dir, (long long)st->step);
    snprintf(tmp_dir, sizeof tmp_dir, "%s/.checkpoint-%lld.tmp", out_dir, (long long)st->step);
    snprintf(old_dir, sizeof old_dir, "%s/.checkpoint-%lld.old", out_dir, (long long)st->step);
    /* Never a checkpoint that does not load: the state is checked as rosa_checkpoint_load checks it. */
    char what[320];
    if (rosa_adamw_check(opt, a, st->step, what, sizeof what) < 0 ||
        (st->dls && dls_check(st->dls, st->step, what, sizeof what) < 0))
        return rosa_fail("saving checkpoint-%lld: refused, it would not load: %s (the previous checkpoints are intact)",
                         (long long)st->step, what);
    remove_tree(tmp_dir);
    if (mkdir(tmp_dir, 0755) != 0) return rosa_fail("%s: cannot create: %s", tmp_dir, strerror(errno));
    char *p = NULL;
    int rc = rosa_adapter_save(a, tmp_dir, base_model);
    if (rc == 0) {
        p = rosa_path_join(tmp_dir, "optimizer.safetensors");
        rc = p ? write_optimizer(p, a, opt) : -1;
        free(p);
    }
    if (rc == 0) {
        char *text = state_json(st);
        p = rosa_path_join(tmp_dir, "rosa_state.json");
        rc = p && text ? rosa_write_file_atomic(p, text, strlen(text)) : -1;
        free(p);
        free(text);
    }
    if (rc == 0) {
        char *text = rosa_hf_state_json(st, out_dir);
        /* trainer_state.json is written last: its presence marks a complete checkpoint. */
        p = rosa_path_join(tmp_dir, "trainer_state.json");
        rc = p && text ? rosa_write_file_atomic(p, text, strlen(text)) : -1;
        free(p);
        free(text);
    }
    if (rc == 0 && fsync_dir(tmp_dir) != 0) rc = rosa_fail("%s: fsync failed: %s", tmp_dir, strerror(errno));
    if (rc == 0) {
        /* Replacing a checkpoint of the same step (a resumed run re-saving it). */
        remove_tree(old_dir);
        struct stat ls; /* lstat: a link there is moved aside (and removed) as a link */
        if (lstat(final_dir, &ls) == 0 && rename(final_dir, old_dir) != 0)
            rc = rosa_fail("%s: cannot move aside: %s", final_dir, strerror(errno));
        else if (rename(tmp_dir, final_dir) != 0)
            rc = rosa_fail("%s: cannot rename to %s: %s", tmp_dir, final_dir, strerror(errno));
        else {
            fsync_dir(out_dir);
            remove_tree(old_dir);
        }
    }
    if (rc < 0) {
        rosa_error_prefix("saving checkpoint-%lld (the previous checkpoints are intact)", (long long)st->step);
        remove_tree(tmp_dir);
    }
    return rc;
}

int64_t rosa_checkpoint_latest(const char *out_dir, char **path) {
    DIR *d = opendir(out_dir);
    if (!d) return -1;
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long step;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%lld%c", &step, &tail) != 1 || step < 0) continue;
        char state[4096];
        snprintf(state, sizeof state, "%s/%s/trainer_state.json", out_dir, e->d_name);
        if (rosa_file_exists(state) && step > best) best = step;
    }
    closedir(d);
    if (best >= 0 && path) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s/checkpoint-%lld", out_dir, best);
        *path = rosa_strdup(buf);
    }
    return best;
}

static int by_step(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int rosa_checkpoint_rotate(const char *out_dir, int limit, int64_t keep_step) {
    if (limit <= 0) return 0;
    DIR *d = opendir(out_dir);
    if (!d) return rosa_fail("%s: cannot list: %s", out_dir, strerror(errno));
    long long *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        long long step;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%lld%c", &step, &tail) != 1 || step < 0) continue;
        if (n == cap) {
            long long *grown = rosa_realloc(steps, sizeof *steps * (cap = cap ? 2 * cap : 16), "checkpoint list");
            if (!grown) {
                rc = -1;
                break;
            }
            steps = grown;
        }
        steps[n++] = step;
    }
    closedir(d);
    if (rc == 0 && n) qsort(steps, n, sizeof *steps, by_step);
    /* The oldest first; the newest (just saved) and the best stay. */
    size_t left = n;
    for (size_t i = 0; rc == 0 && i + 1 < n && left > (size_t)limit; i++) {
        if (steps[i] == keep_step) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/checkpoint-%lld", out_dir, steps[i]);
        if (remove_tree(path) != 0) rc = rosa_fail("%s: cannot remove: %s", path, strerror(errno));
        left--;
    }
    free(steps);
    return rc;
}

int rosa_checkpoint_clear(const char *out_dir) {
    DIR *d = opendir(out_dir);
    if (!d) return 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, "checkpoint-", 11) != 0 && strncmp(n, ".checkpoint-", 12) != 0 &&
            strcmp(n, "adapter_config.json") != 0 && strcmp(n, "adapter_model.safetensors") != 0 &&
            strcmp(n, "training_args.json") != 0 && strcmp(n, "train_results.json") != 0 && strcmp(n, "README.md") != 0)
            continue;
        char *p = rosa_path_join(out_dir, n);
        if (!p || remove_tree(p) != 0) rc = rosa_fail("%s/%s: cannot remove: %s", out_dir, n, strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

int rosa_checkpoint_load(const char *out_dir, int64_t step, const rosa_config *c, rosa_adapter *a, rosa_adamw *opt,
                         rosa_checkpoint_state *st) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoint-%lld", out_dir, (long long)step);
    rosa_adapter *saved = NULL;
    cJSON *j = NULL;
    st_set s = {0};
    int rc = -1;
    /* rosa's state; a checkpoint of rosa <= 0.1.0 had it in trainer_state.json. */
    char *path = rosa_path_join(dir, "rosa_state.json"), *hf = rosa_path_join(dir, "trainer_state.json");
    if (!path || !hf) {
        free(path);
        free(hf);
        return -1;
    }
    int legacy = !rosa_file_exists(path);
    if (legacy) {
        free(path);
        path = hf, hf = NULL;
    }
    j = rosa_json_load(path);
    if (!j) goto done;
    if (!cJSON_IsObject(j)) {
        rosa_fail("%s: not a JSON object", path);
        goto done;
    }
    /* Every field is checked before it is used: a resumed run trusts nothing it did not write itself. */
    static const char *const keys[] = {"format", "step", "total_steps", "seed", "dls", NULL};
    if (only_keys(j, path, "", keys) < 0) goto done;
    int err;
    const char *format = rosa_json_str_opt(j, "format", path, &err);
    if (err || !format || strcmp(format, "rosa-checkpoint/1") != 0) {
        rosa_fail("%s: format: must be \"rosa-checkpoint/1\"", path);
        goto done;
    }
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "step"), *tv = cJSON_GetObjectItemCaseSensitive(j, "total_steps");
    const double max_exact = 9007199254740992.0; /* 2^53: beyond, a JSON number is not an exact integer */
    if (!cJSON_IsNumber(tv) || !(tv->valuedouble >= 1 && tv->valuedouble <= max_exact) ||
        tv->valuedouble != floor(tv->valuedouble)) {
        rosa_fail("%s: total_steps: must be an integer in [1, 2^53]", path);
        goto done;
    }
    st->total_steps = (int64_t)tv->valuedouble;
    if (!cJSON_IsNumber(sv) || !(sv->valuedouble >= 0 && sv->valuedouble <= max_exact) ||
        sv->valuedouble != floor(sv->valuedouble)) {
        rosa_fail("%s: step: must be an integer >= 0", path);
        goto done;
    }
    st->step = (int64_t)sv->valuedouble;
    if (st->run_steps > 0 && st->step > st->run_steps) {
        rosa_fail("%s: step: %lld is beyond the %lld steps of this run", path, (long long)st->step,
                  (long long)st->run_steps);
        goto done;
    }
    if (st->step > st->total_steps) {
        rosa_fail("%s: step: %lld is beyond its total_steps %lld", path, (long long)st->step,
                  (long long)st->total_steps);
        goto done;
    }
    if (st->step != step) {
        rosa_fail("%s: step: %lld is not the step of its directory checkpoint-%lld", path, (long long)st->step,
                  (long long)step);
        goto done;
    }
    if (parse_u64(cJSON_GetObjectItemCaseSensitive(j, "seed"), &st->seed) < 0) {
        rosa_fail("%s: seed: must be a decimal string of a 64-bit unsigned integer", path);
        goto done;
    }
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(j, "dls");
    if (!st->dls && dv && !cJSON_IsNull(dv)) {
        rosa_fail("%s: dls: the checkpoint holds layer-selection state but this run has no DLS: resume with the same "
                  "options", path);
        goto done;
    }
    if (st->dls && load_dls(j, path, st->step, st->dls) < 0) goto done;
    st->has_best = 0, st->best_metric = NAN, st->best_step = 0;
    if (!legacy && rosa_hf_state_read_best(hf, st) < 0) goto done;
    /* The adapter values; the structure must match the one being trained. */
    saved = rosa_adapter_load(dir, c);
    if (!saved || rosa_adapter_copy_values(a, saved) < 0) goto done;
    free(path);
    path = rosa_path_join(dir, "optimizer.safetensors");
    if (!path || st_set_add_file(&s, path) < 0) goto done;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        char name[160];
        float *dst[2] = {opt->m + p->offset, opt->v + p->offset};
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
            const st_tensor *t = st_set_find(&s, name);
            if (!t || t->dtype != ST_F32 || t->nbytes != sizeof(float) * (size_t)p->rows * p->cols) {
                rosa_fail("%s: tensor \"%s\" missing or misshaped (was the checkpoint made with other adapter "
                          "options?)", path, name);
                goto done;
            }
            memcpy(dst[k], t->data, t->nbytes);
        }
    }
    const st_tensor *t = st_set_find(&s, "step");
    if (!t || t->dtype != ST_I64 || t->nbytes != sizeof(int64_t) * (size_t)a->n_params) {
        rosa_fail("%s: tensor \"step\" missing or misshaped", path);
        goto done;
    }
    memcpy(opt->step, t->data, t->nbytes);
    if (s.n_tensors != 2 * a->n_params + 1) { /* names are unique in a set: one is not ours */
        for (int i = 0; i < s.n_tensors; i++) {
            const char *n = s.tensors[i].name;
            int known = strcmp(n, "step") == 0;
            for (int k = 0; k < a->n_params && !known; k++) {
                size_t len = strlen(a->params[k].name);
                known = strncmp(n, a->params[k].name, len) == 0 &&
                        (strcmp(n + len, ".exp_avg") == 0 || strcmp(n + len, ".exp_avg_sq") == 0);
            }
            if (!known) {
                rosa_fail("%s: unexpected tensor \"%s\"", path, n);
                goto done;
            }
        }
    }
    char what[320];
    if (rosa_adamw_check(opt, a, st->step, what, sizeof what) < 0) {
        rosa_fail("%s: %s", path, what);
        goto done;
    }
    rc = 0;
done:
    rosa_adapter_free(saved);
    st_set_close(&s);
    cJSON_Delete(j);
    free(path);
    free(hf);
    return rc;
}
