/* test_analyze.c: `rosa analyze` (the RoPE frequency analysis) against the
 * independent float64 reference tools/ref_analyze.py on stories260K, with no
 * adapter (through the CLI and its JSON) and with RoAE adapters in both
 * placements and forms; the RoAE dimension rule; the CLI's outputs and errors. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "data/data.h"
#include "io/json.h"
#include "model/analyze.h"
#include "model/model.h"
#include "test.h"
#include "peft/lora.h"
#include "peft/roae.h"
#include "data/data.h"
#include "peft/peft.h"
#include "core/util.h"

#define LIMIT 6
#define CUTOFF 64

static const char *model_dir(void) { return shared_path("models/stories260K"); }
static const char *data_file(void) { return shared_path("data/llm-adapters/boolq/test.json"); }

TEST(analyze_roae_dims_rule) {
    /* m = max(1, floor(d * r_low / 2 + 0.5)), as RoAE (docs/method.md) */
    CHECK_EQ_INT(rosa_rope_low_dims(8, 0.25f, NULL), 1);
    CHECK_EQ_INT(rosa_rope_low_dims(8, 0.5f, NULL), 2);
    CHECK_EQ_INT(rosa_rope_low_dims(8, 1.0f, NULL), 4);
    CHECK_EQ_INT(rosa_rope_low_dims(8, 0.01f, NULL), 1);
    CHECK_EQ_INT(rosa_rope_low_dims(128, 0.25f, NULL), 16);
    CHECK_EQ_INT(rosa_rope_low_dims(64, 0.3f, NULL), 10);   /* 9.6 + 0.5 -> 10 */
    CHECK_EQ_INT(rosa_rope_low_dims(10, 0.5f, NULL), 3);    /* 2.5 + 0.5 -> 3 (half up) */
    CHECK(rosa_rope_low_dims(8, 0.0f, NULL) < 0);
    CHECK(rosa_rope_low_dims(8, 1.5f, NULL) < 0);
    CHECK_ERROR_HAS("r-low");
}

/* The first LIMIT records' training ids, as rosa analyze tokenizes them. */
static int load_ids(rosa_model *m, rosa_dataset *ds) {
    rosa_records recs = {0};
    if (rosa_records_load(data_file(), 0, &recs) < 0) return -1;
    rosa_records_truncate(&recs, LIMIT);
    rosa_data_options o;
    rosa_data_options_default(&o);
    o.cutoff_len = CUTOFF;
    int rc = rosa_dataset_tokenize(rosa_model_tokenizer(m), &recs, &o, ds);
    rosa_records_free(&recs);
    return rc;
}

static int write_dump(const rosa_dataset *ds, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("{\"records\": [", f);
    for (int i = 0; i < ds->n; i++) {
        fprintf(f, "%s{\"ids\": [", i ? ", " : "");
        for (int t = 0; t < ds->ex[i].n; t++) fprintf(f, "%s%d", t ? ", " : "", ds->ex[i].ids[t]);
        fputs("]}", f);
    }
    fputs("]}\n", f);
    return fclose(f);
}

/* A RoAE adapter with non-zero B (so that it changes Q and K), saved to dir. */
static int make_roae(rosa_model *m, const char *dir, int pre_rope, int add_form, float r_low, int seed) {
    rosa_roae_options o;
    rosa_roae_options_default(&o);
    o.rank = 4;
    o.r_low = r_low;
    o.pre_rope = pre_rope;
    o.add_form = add_form;
    rosa_adapter *a = rosa_adapter_new_roae(m, &o, (uint64_t)seed);
    if (!a) return -1;
    rosa_rng r;
    rosa_rng_seed(&r, (uint64_t)seed + 100);
    for (int i = 0; i < a->n_params; i++)
        if (strstr(a->params[i].name, "lora_B"))
            for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++)
                a->w[a->params[i].offset + k] = 0.6f * (rosa_rng_uniform(&r) - 0.5f);
    int rc = rosa_adapter_save(a, dir, model_dir());
    rosa_adapter_free(a);
    return rc;
}

/* A LoRA adapter on q_proj and k_proj with non-zero B, saved to dir. */
static int make_lora(rosa_model *m, const char *dir) {
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 4;
    o.dropout = 0;
    o.targets = (1u << PROJ_Q) | (1u << PROJ_K);
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 7);
    if (!a) return -1;
    rosa_rng r;
    rosa_rng_seed(&r, 8);
    for (int i = 0; i < a->n_params; i++)
        if (strstr(a->params[i].name, "lora_B"))
            for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++)
                a->w[a->params[i].offset + k] = 0.2f * (rosa_rng_uniform(&r) - 0.5f);
    int rc = rosa_adapter_save(a, dir, model_dir());
    rosa_adapter_free(a);
    return rc;
}

/* Worst |c - ref| / max(1, max|ref|) over one array field of every layer. */
static double worst(const cJSON *ref_layers, const double *c, int L, int n, const char *field) {
    double w = 0;
    for (int l = 0; l < L; l++) {
        const cJSON *arr = cJSON_GetObjectItem(cJSON_GetArrayItem(ref_layers, l), field);
        if (cJSON_GetArraySize(arr) != n) return INFINITY;
        double scale = 1;
        for (int j = 0; j < n; j++) scale = fmax(scale, fabs(cJSON_GetArrayItem(arr, j)->valuedouble));
        for (int j = 0; j < n; j++) {
            double d = fabs(c[(size_t)l * n + j] - cJSON_GetArrayItem(arr, j)->valuedouble) / scale;
            if (!(d <= w)) w = d;
        }
    }
    return w;
}

static void compare_to_ref(const char *label, const rosa_analysis *a, const char *ref_path) {
    cJSON *ref = rosa_json_load(ref_path);
    CHECK_MSG(ref, "%s: reference output %s unreadable: %s", label, ref_path, rosa_last_error());
    if (!ref) return;
    CHECK_EQ_INT(cJSON_GetObjectItem(ref, "tokens")->valuedouble, a->n_tokens);
    CHECK_EQ_INT(cJSON_GetObjectItem(ref, "records")->valuedouble, a->n_records);
    const cJSON *dims = cJSON_GetObjectItem(ref, "selected_dims");
    CHECK_EQ_INT(cJSON_GetArraySize(dims), 2 * a->m);
    for (int i = 0; i < 2 * a->m && i < cJSON_GetArraySize(dims); i++)
        CHECK_EQ_INT(cJSON_GetArrayItem(dims, i)->valueint, a->dims[i]);
    const cJSON *layers = cJSON_GetObjectItem(ref, "layers");
    CHECK_EQ_INT(cJSON_GetArraySize(layers), a->L);
    static const char *fields[] = {"q_norm", "k_norm", "q_band", "k_band"};
    const double *vals[] = {a->q_norm, a->k_norm, a->q_band, a->k_band};
    for (int f = 0; f < 4; f++) {
        double w = worst(layers, vals[f], a->L, f < 2 ? a->hd : a->hd / 2, fields[f]);
        CHECK_MSG(w <= 1e-5, "%s: %s differs from the reference by %.3g (relative to max(1, max|ref|))", label,
                  fields[f], w);
    }
    for (int l = 0; l < a->L; l++) {
        const cJSON *e = cJSON_GetArrayItem(layers, l);
        double dq = fabs(cJSON_GetObjectItem(e, "q_selected_share")->valuedouble - a->q_share[l]);
        double dk = fabs(cJSON_GetObjectItem(e, "k_selected_share")->valuedouble - a->k_share[l]);
        CHECK_MSG(dq <= 1e-5 && dk <= 1e-5, "%s: layer %d selected shares differ by %.3g / %.3g", label, l, dq, dk);
    }
    cJSON_Delete(ref);
}

/* The in-process analysis of the model with an adapter directory applied. */
static int analyze_with(const char *adapter, const rosa_dataset *ds, float r_low, rosa_analysis *out) {
    rosa_model *m = rosa_model_load(model_dir());
    if (!m) return -1;
    rosa_adapter *a = adapter ? rosa_adapter_load(adapter, &m->cfg) : NULL;
    int rc = -1;
    if (adapter && (!a || rosa_adapter_apply(m, a) < 0)) goto done;
    if (a && a->method == &rosa_peft_roae) r_low = ((rosa_roae_options *)a->opts)->r_low;
    const int32_t *ids[LIMIT];
    int lens[LIMIT];
    for (int i = 0; i < ds->n && i < LIMIT; i++) ids[i] = ds->ex[i].ids, lens[i] = ds->ex[i].n;
    int threads = rosa_get_threads();
    rosa_set_threads(1); /* a tiny model: one thread is fastest, and immune to a busy machine */
    rc = rosa_analyze(m, ids, lens, ds->n, r_low, NULL, NULL, out);
    rosa_set_threads(threads);
done:
    rosa_adapter_free(a);
    rosa_model_free(m);
    return rc;
}

TEST(analyze_matches_reference) {
    rosa_model *m = rosa_model_load(model_dir());
    REQUIRE(m);
    rosa_dataset ds = {0};
    REQUIRE(load_ids(m, &ds) == 0);
    REQUIRE(ds.n == LIMIT);
    REQUIRE(write_dump(&ds, test_tmp_path("tokens.json")) == 0);
    REQUIRE(make_roae(m, test_tmp_path("roae-post-gate"), 0, 0, 0.5f, 1) == 0);
    REQUIRE(make_roae(m, test_tmp_path("roae-pre-add"), 1, 1, 0.25f, 2) == 0);
    REQUIRE(make_lora(m, test_tmp_path("lora-qk")) == 0);
    rosa_model_free(m);

    /* The reference, three cases in one run (torch starts once). */
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             REF " tools/ref_analyze.py --model %s --tokens %s --limit %d --cutoff-len %d --adapter none --output %s "
                "--adapter %s --output %s --adapter %s --output %s --adapter %s --output %s",
             model_dir(), test_tmp_path("tokens.json"), LIMIT, CUTOFF, test_tmp_path("ref-base.json"), test_tmp_path("roae-post-gate"),
             test_tmp_path("ref-post.json"), test_tmp_path("roae-pre-add"), test_tmp_path("ref-pre.json"), test_tmp_path("lora-qk"),
             test_tmp_path("ref-lora.json"));
    int rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "ref_analyze.py failed (%d): %s", rc, out);
    free(out);
    if (rc != 0) {
        rosa_dataset_free(&ds);
        return;
    }

    /* No adapter: through the CLI and its JSON, the whole user-facing path. */
    snprintf(cmd, sizeof cmd, "%s analyze --model %s --data %s --limit %d --cutoff-len %d --output %s --quiet --threads 1",
             rosa_bin(), model_dir(), data_file(), LIMIT, CUTOFF, test_tmp_path("cli.json"));
    rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "rosa analyze failed (%d): %s", rc, out);
    CHECK(strstr(out, "analysis written to") != NULL);
    free(out);
    cJSON *cj = rosa_json_load(test_tmp_path("cli.json"));
    CHECK_MSG(cj, "%s", rosa_last_error());
    rosa_analysis base = {0};
    REQUIRE(analyze_with(NULL, &ds, 0.25f, &base) == 0);
    if (cj) {
        /* the JSON the CLI wrote, read back into an analysis for the comparison */
        rosa_analysis fromjson = base;
        int L = base.L, hd = base.hd;
        double *q = calloc((size_t)L * hd, sizeof(double)), *k = calloc((size_t)L * hd, sizeof(double));
        REQUIRE(q && k);
        const cJSON *layers = cJSON_GetObjectItem(cj, "layers");
        CHECK_EQ_INT(cJSON_GetArraySize(layers), L);
        for (int l = 0; l < L && l < cJSON_GetArraySize(layers); l++) {
            const cJSON *e = cJSON_GetArrayItem(layers, l);
            for (int j = 0; j < hd; j++) {
                q[(size_t)l * hd + j] = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "q_norm"), j)->valuedouble;
                k[(size_t)l * hd + j] = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "k_norm"), j)->valuedouble;
            }
        }
        fromjson.q_norm = q, fromjson.k_norm = k;
        CHECK_EQ_INT(cJSON_GetObjectItem(cj, "tokens")->valuedouble, base.n_tokens);
        compare_to_ref("CLI JSON, no adapter", &fromjson, test_tmp_path("ref-base.json"));
        free(q);
        free(k);
        cJSON_Delete(cj);
    }
    compare_to_ref("no adapter", &base, test_tmp_path("ref-base.json"));

    /* RoAE adapters: norms after the modulation; r_low comes from the adapter. */
    rosa_analysis post = {0}, pre = {0};
    REQUIRE(analyze_with(test_tmp_path("roae-post-gate"), &ds, 0.25f, &post) == 0);
    REQUIRE(analyze_with(test_tmp_path("roae-pre-add"), &ds, 0.25f, &pre) == 0);
    CHECK_EQ_INT(post.m, 2); /* r_low 0.5 of d_h 8 */
    compare_to_ref("RoAE post-rope gate", &post, test_tmp_path("ref-post.json"));
    compare_to_ref("RoAE pre-rope add", &pre, test_tmp_path("ref-pre.json"));
    rosa_analysis lora = {0};
    REQUIRE(analyze_with(test_tmp_path("lora-qk"), &ds, 0.25f, &lora) == 0);
    compare_to_ref("LoRA q_proj,k_proj (merged)", &lora, test_tmp_path("ref-lora.json"));
    /* the adapters really change the states (else the comparisons prove little) */
    double dpost = 0, dpre = 0, dlora = 0;
    for (int i = 0; i < base.L * base.hd; i++) {
        dpost = fmax(dpost, fabs(post.q_norm[i] - base.q_norm[i]));
        dpre = fmax(dpre, fabs(pre.k_norm[i] - base.k_norm[i]));
        dlora = fmax(dlora, fabs(lora.q_norm[i] - base.q_norm[i]));
    }
    CHECK_MSG(dpost > 1e-2 && dpre > 1e-2 && dlora > 1e-2, "the adapters changed the norms by only %.3g, %.3g, %.3g",
              dpost, dpre, dlora);
    /* basic consistency: shares are fractions, a band is at least each of its two dims' norms over sqrt 2 */
    for (int l = 0; l < base.L; l++) {
        CHECK(base.q_share[l] > 0 && base.q_share[l] < 1);
        for (int i = 0; i < base.hd / 2; i++)
            CHECK(base.q_band[(size_t)l * base.hd / 2 + i] >= base.q_norm[(size_t)l * base.hd + i] - 1e-9);
    }
    rosa_analysis_free(&base);
    rosa_analysis_free(&post);
    rosa_analysis_free(&pre);
    rosa_analysis_free(&lora);
    rosa_dataset_free(&ds);
}

TEST(analyze_cli_outputs_and_errors) {
    char cmd[4096], *out = NULL;
    /* HTML with an adapter: the plots, the selected dimensions, no NaN */
    rosa_model *m = rosa_model_load(model_dir());
    REQUIRE(m);
    REQUIRE(make_roae(m, test_tmp_path("roae-html"), 0, 0, 0.5f, 3) == 0);
    rosa_model_free(m);
    snprintf(cmd, sizeof cmd, "%s analyze --model %s --data %s --adapter %s --limit 2 --cutoff-len 32 --output %s "
             "--log-format plain --threads 1", rosa_bin(), model_dir(), data_file(), test_tmp_path("roae-html"), test_tmp_path("a.html"));
    int rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "rosa analyze --output a.html failed: %s", out);
    CHECK_MSG(strstr(out, "analyze [####################] 2/2") != NULL, "no progress line: %s", out);
    CHECK(strstr(out, "m = 2, D = {2, 3, 6, 7}") != NULL); /* r_low from the adapter */
    free(out);
    size_t len;
    char *html = rosa_read_file(test_tmp_path("a.html"), &len);
    REQUIRE(html);
    CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    CHECK(strstr(html, "<script") == NULL);
    CHECK(strstr(html, "selected by --r-low") != NULL);
    CHECK(strstr(html, "RoAE post-rope gate") != NULL);
    int svgs = 0;
    for (const char *p = html; (p = strstr(p, "<svg ")); p++) svgs++;
    CHECK_MSG(svgs >= 2 + 2 + 1 + 2 + 5, "%d SVG charts", svgs); /* means, heatmaps, shares, bands, one per layer */
    CHECK(strstr(html, "nan") == NULL && strstr(html, "inf\"") == NULL);
    free(html);
    /* eval template, JSON */
    snprintf(cmd, sizeof cmd, "%s analyze --model %s --data %s --template eval --limit 3 --r-low 1 --output %s --quiet --threads 1",
             rosa_bin(), model_dir(), data_file(), test_tmp_path("e.json"));
    rc = run_capture(cmd, 1, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    cJSON *j = rosa_json_load(test_tmp_path("e.json"));
    REQUIRE(j);
    CHECK_STR(cJSON_GetObjectItem(j, "template")->valuestring, "eval");
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "selected_dims")), 8); /* r_low 1: every dimension */
    const cJSON *mean = cJSON_GetObjectItem(j, "mean_over_layers");
    CHECK(fabs(cJSON_GetObjectItem(mean, "q_selected_share")->valuedouble - 1.0) < 1e-9);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "layers")), 5);
    cJSON_Delete(j);
    /* errors */
    snprintf(cmd, sizeof cmd, "%s analyze --model %s --data %s --output %s", rosa_bin(), model_dir(), data_file(),
             test_tmp_path("x.txt"));
    rc = run_capture(cmd, 1, &out);
    CHECK_EQ_INT(rc, 2);
    CHECK(strstr(out, ".html or .json") != NULL);
    free(out);
    snprintf(cmd, sizeof cmd, "%s analyze --model %s --data %s --r-low 0 --quiet", rosa_bin(), model_dir(),
             data_file());
    rc = run_capture(cmd, 1, &out);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(strstr(out, "rosa: error: --r-low 0 must be in (0, 1]") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s analyze --model %s --data %s --quiet", rosa_bin(), model_dir(), test_tmp_path("missing.json"));
    rc = run_capture(cmd, 1, &out);
    CHECK_EQ_INT(rc, 1);
    CHECK(strstr(out, "missing.json") != NULL);
    free(out);
}
