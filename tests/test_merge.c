/* test_merge.c: rosa merge writes a model directory as complete as the base
 * (issue 18, item 4): every non-weight file copied, the same logits as the
 * base with the adapter, shards with an index rosa loads, BF16 weights, and
 * an existing directory refused without --overwrite. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "test.h"

/* rosa loss --json of model (with adapter when not NULL) on the first 8 boolq test records. */
static char *loss_json(const char *model, const char *adapter) {
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s loss --model %s %s%s --data %s --limit 8 --json", rosa_bin(), model,
             adapter ? "--adapter " : "", adapter ? adapter : "", shared_path("data/llm-adapters/boolq/test.json"));
    int rc = run_capture(cmd, 0, &out);
    if (rc != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static double mean_loss(const char *json) {
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    const cJSON *v = j ? cJSON_GetObjectItem(j, "token_mean_loss") : NULL;
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(j);
    return x;
}

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    char *x = rosa_read_file(a, &na), *y = rosa_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    rosa_clear_error();
    return same;
}

TEST(merge_writes_a_complete_sharded_bf16_model_dir) {
    /* copies: the path helpers hand out rotating buffers */
    char model[4096], ad[512], m1[512], m2[512], m3[512];
    snprintf(model, sizeof model, "%s", shared_path("models/stories260K"));
    snprintf(ad, sizeof ad, "%s", test_tmp_path("merge-ad"));
    snprintf(m1, sizeof m1, "%s", test_tmp_path("merged-full"));
    snprintf(m2, sizeof m2, "%s", test_tmp_path("merged-shards"));
    snprintf(m3, sizeof m3, "%s", test_tmp_path("merged-bf16"));
    char *o = NULL;
    REQUIRE(run_shellf(&o, REF " tools/ref_train.py make-adapter --model %s --method lora --rank 4 --alpha 8 "
                           "--target-modules q_proj,v_proj,down_proj --b-std 0.1 --seed 4 --out %s", model, ad) == 0);
    free(o);
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s", rosa_bin(), model, ad, m1) == 0);
    free(o);
    /* every file of the base but its weights, byte for byte; the weights as one model.safetensors */
    DIR *d = opendir(model);
    REQUIRE(d);
    int copied = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "model.safetensors") == 0) continue;
        char a[8192], b[8192];
        snprintf(a, sizeof a, "%s/%s", model, e->d_name);
        snprintf(b, sizeof b, "%s/%s", m1, e->d_name);
        CHECK_MSG(same_bytes(a, b), "%s was not copied as it is", e->d_name);
        copied++;
    }
    closedir(d);
    CHECK(copied >= 6); /* config, generation_config, tokenizer.json, tokenizer_config, LICENSE, README, ... */
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", m1);
    CHECK(rosa_file_exists(path));
    /* reloaded: the same losses, bit for bit, as the base with the adapter */
    char *with_adapter = loss_json(model, ad), *merged = loss_json(m1, NULL);
    REQUIRE(with_adapter && merged);
    /* the merged F32 weights are those rosa runs with the adapter merged: equal up to the order of the sum */
    CHECK_MSG(fabs(mean_loss(merged) - mean_loss(with_adapter)) < 1e-5, "%s vs %s", merged, with_adapter);

    /* an existing directory is refused without --overwrite, and nothing in it changes */
    int rc = run_shellf(&o, "%s merge --model %s --adapter %s --output %s", rosa_bin(), model, ad, m1);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(o && strstr(o, "--overwrite") && strstr(o, "already holds files"), "%s", o);
    free(o);

    /* sharded as transformers does: an index rosa itself loads, the same losses */
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s --max-shard-size 200KB", rosa_bin(), model, ad,
                       m2) == 0);
    free(o);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", m2);
    cJSON *idx = rosa_json_load(path);
    REQUIRE(idx);
    const cJSON *wm = cJSON_GetObjectItem(idx, "weight_map");
    const cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "metadata"), "total_size");
    CHECK(cJSON_IsObject(wm) && cJSON_IsNumber(ts));
    st_set s = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", m1);
    REQUIRE(st_set_add_file(&s, path) == 0);
    CHECK_EQ_INT(cJSON_GetArraySize(wm), s.n_tensors);
    double total = 0;
    for (int i = 0; i < s.n_tensors; i++) total += (double)s.tensors[i].nbytes;
    CHECK(ts && ts->valuedouble == total);
    /* every file the index names exists, is model-0000k-of-0000N.safetensors and at most 200 KB (the
     * largest tensor, the 128 KB embedding, fits) */
    int files = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, wm) {
        int k, nn;
        char tail;
        REQUIRE(cJSON_IsString(f));
        CHECK_MSG(sscanf(f->valuestring, "model-%5d-of-%5d.safetensor%c", &k, &nn, &tail) == 3 && k <= nn && nn > 1,
                  "%s", f->valuestring);
        snprintf(path, sizeof path, "%s/%s", m2, f->valuestring);
        struct stat st;
        CHECK_MSG(stat(path, &st) == 0 && st.st_size <= 200000 + 4096, "%s", path);
        files++;
    }
    CHECK(files == s.n_tensors);
    st_set_close(&s);
    snprintf(path, sizeof path, "%s/model.safetensors", m2);
    CHECK(!rosa_file_exists(path));
    cJSON_Delete(idx);
    char *sharded = loss_json(m2, NULL);
    CHECK_STR(sharded ? sharded : "", merged);
    free(sharded);

    /* --overwrite into the single-file directory: the old model.safetensors goes, no stale weights remain */
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s --max-shard-size 200KB --overwrite",
                       rosa_bin(), model, ad, m1) == 0);
    free(o);
    snprintf(path, sizeof path, "%s/model.safetensors", m1);
    CHECK(!rosa_file_exists(path));
    sharded = loss_json(m1, NULL);
    CHECK_STR(sharded ? sharded : "", merged);
    free(sharded);

    /* BF16: every tensor BF16, config.json says so, losses within BF16 rounding */
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s --dtype bf16", rosa_bin(), model, ad, m3) == 0);
    free(o);
    snprintf(path, sizeof path, "%s/model.safetensors", m3);
    s = (st_set){0};
    REQUIRE(st_set_add_file(&s, path) == 0);
    int bf16 = 0;
    for (int i = 0; i < s.n_tensors; i++) bf16 += s.tensors[i].dtype == ST_BF16;
    CHECK_EQ_INT(bf16, s.n_tensors);
    st_set_close(&s);
    snprintf(path, sizeof path, "%s/config.json", m3);
    cJSON *cfg = rosa_json_load(path);
    REQUIRE(cfg);
    const cJSON *td = cJSON_GetObjectItem(cfg, "torch_dtype");
    CHECK(cJSON_IsString(td) && strcmp(td->valuestring, "bfloat16") == 0);
    cJSON_Delete(cfg);
    char *b = loss_json(m3, NULL);
    double lb = mean_loss(b), la = mean_loss(with_adapter);
    CHECK_MSG(isfinite(lb) && fabs(lb - la) < 0.01 * la && strcmp(b, with_adapter) != 0, "bf16 %g, fp32 %g", lb, la);
    free(b);

    /* usage errors */
    CHECK_EQ_INT(run_shellf(&o, "%s merge --model %s --adapter %s --output %s --max-shard-size 5XB", rosa_bin(), model,
                            ad, test_tmp_path("merged-bad")), 2);
    CHECK(o && strstr(o, "--max-shard-size"));
    free(o);
    CHECK_EQ_INT(run_shellf(&o, "%s merge --model %s --adapter %s --output %s --dtype int8", rosa_bin(), model, ad,
                            test_tmp_path("merged-bad")), 2);
    free(o);
    free(with_adapter);
    free(merged);
}

/* transformers' split: a tensor past the limit gets its own shard, numbered when met. */
TEST(merge_shard_plan_follows_transformers) {
    size_t sizes[] = {40, 40, 30, 150, 10, 90};
    int shard[6];
    CHECK_EQ_INT(st_shard_plan(sizes, 6, 100, shard), 4);
    int want[6] = {0, 0, 2, 1, 2, 3}; /* [40,40] closes at 30, then 150 alone, [30,10] closes at 90, [90] */
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(shard[i], want[i]);
    CHECK_EQ_INT(st_shard_plan(sizes, 6, 1000, shard), 1);
    char name[64];
    st_shard_file_name(name, sizeof name, 1, 3);
    CHECK_STR(name, "model-00002-of-00003.safetensors");
    st_shard_file_name(name, sizeof name, 0, 1);
    CHECK_STR(name, "model.safetensors");
}

/* DoRA merges as PEFT's merge_safe: W' = m / ||W + s B A|| * (W + s B A), so
 * the merged model's loss is the adapter's (hooks on). */
TEST(merge_dora_gives_the_adapters_loss) {
    char model[4096], ad[512], out[512];
    snprintf(model, sizeof model, "%s", shared_path("models/stories260K"));
    snprintf(ad, sizeof ad, "%s", test_tmp_path("merge-dora-ad"));
    snprintf(out, sizeof out, "%s", test_tmp_path("merged-dora"));
    char *o = NULL;
    REQUIRE(run_shellf(&o, REF " tools/ref_train.py make-adapter --model %s --method dora --rank 4 --alpha 8 "
                           "--target-modules q_proj,v_proj,down_proj --b-std 0.1 --seed 4 --out %s", model, ad) == 0);
    free(o);
    REQUIRE(run_shellf(&o, "%s merge --model %s --adapter %s --output %s", rosa_bin(), model, ad, out) == 0);
    free(o);
    char *with_adapter = loss_json(model, ad), *merged = loss_json(out, NULL), *base = loss_json(model, NULL);
    REQUIRE(with_adapter && merged && base);
    CHECK_MSG(fabs(mean_loss(merged) - mean_loss(with_adapter)) < 1e-5, "%s vs %s", merged, with_adapter);
    CHECK_MSG(fabs(mean_loss(base) - mean_loss(with_adapter)) > 1e-3, "the adapter changes nothing: %s", base);
    free(with_adapter);
    free(merged);
    free(base);
}
