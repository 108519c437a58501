/* test_eval.c: evaluation (issue 5): answer extraction and scoring against
 * the reference rules, the prompt template, beam search against the PyTorch
 * reference (tools/ref_beam.py) for both transformers rules, greedy, batching,
 * and `rosa eval` end to end on stories260K (report, predictions, resume,
 * --score-predictions). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "eval/beam.h"
#include "eval/eval.h"
#include "io/json.h"
#include "model/kv_ops.h"
#include "model/model.h"
#include "test.h"

/* The models here are tiny: one thread is fastest and immune to a busy
 * machine (OpenMP threads spin at every barrier). */
static int saved_threads;
static void one_thread(void) {
    saved_threads = rosa_get_threads();
    rosa_set_threads(1);
}
static void restore_threads(void) { rosa_set_threads(saved_threads); }

/* ------------------------------------------------------------ beam search */

typedef struct {
    int n;
    int32_t **ids;
    int *lens;
} prompt_set;

static void prompts_make(prompt_set *s, int n, int V, uint64_t seed, int max_len) {
    rosa_rng r;
    rosa_rng_seed(&r, seed);
    s->n = n;
    s->ids = calloc((size_t)n, sizeof *s->ids);
    s->lens = calloc((size_t)n, sizeof *s->lens);
    for (int i = 0; i < n; i++) {
        s->lens[i] = 1 + (int)rosa_rng_below(&r, (uint64_t)max_len);
        s->ids[i] = malloc(sizeof(int32_t) * (size_t)s->lens[i]);
        for (int t = 0; t < s->lens[i]; t++) s->ids[i][t] = 3 + (int32_t)rosa_rng_below(&r, (uint64_t)(V - 3));
    }
}

static void prompts_free(prompt_set *s) {
    for (int i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->lens);
}

static int prompts_write(const prompt_set *s, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"prompts\": [");
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int t = 0; t < s->lens[i]; t++) fprintf(f, "%s%d", t ? ", " : "", s->ids[i][t]);
        fprintf(f, "]");
    }
    fprintf(f, "]}\n");
    return fclose(f);
}

static int same_ids(const rosa_decode_result *r, const cJSON *ids) {
    if (cJSON_GetArraySize(ids) != r->n) return 0;
    int t = 0;
    for (const cJSON *e = ids->child; e; e = e->next, t++)
        if (e->valueint != r->ids[t]) return 0;
    return 1;
}

static void print_ids(const char *what, const rosa_decode_result *r) {
    printf("    %s:", what);
    for (int t = 0; t < r->n; t++) printf(" %d", r->ids[t]);
    printf("  (score %.6f)\n", r->score);
}

/* Runs the reference and rosa_decode on the same prompts for llm-adapters,
 * hf and greedy; counts how the hypotheses ended so the cases are known to
 * exercise EOS handling and early stopping. */
static void check_against_reference(const char *model_name, const int32_t *eos, int n_eos, int num_beams,
                                    int max_new, int n_prompts, uint64_t seed, int batch) {
    one_thread();
    rosa_model *m = rosa_model_load(testdata_path(model_name));
    REQUIRE(m);
    prompt_set ps;
    prompts_make(&ps, n_prompts, m->cfg.vocab_size, seed, 16);
    char pfile[512], rfile[512], eos_list[128] = "", cmd[4096];
    snprintf(pfile, sizeof pfile, "%s", test_tmp_path("prompts.json"));
    snprintf(rfile, sizeof rfile, "%s", test_tmp_path("ref.json"));
    for (int i = 0; i < n_eos; i++)
        snprintf(eos_list + strlen(eos_list), sizeof eos_list - strlen(eos_list), "%s%d", i ? "," : "", eos[i]);
    REQUIRE(prompts_write(&ps, pfile) == 0);
    snprintf(cmd, sizeof cmd, REF " tools/ref_beam.py --model %s --prompts %s --num-beams %d --max-new-tokens %d "
             "--eos %s --out %s", testdata_path(model_name), pfile, num_beams, max_new, eos_list, rfile);
    char *o = NULL;
    int rc = run_capture(cmd, 1, &o);
    CHECK_MSG(rc == 0, "reference failed: %s", o);
    free(o);
    cJSON *ref = rosa_json_load(rfile);
    REQUIRE(ref);
    const char *rules[] = {"llm-adapters", "hf", "greedy"};
    for (int ri = 0; ri < 3; ri++) {
        rosa_decode_params p;
        rosa_decode_params_default(&p);
        p.num_beams = ri == 2 ? 1 : num_beams;
        p.rule = ri == 1 ? ROSA_BEAM_HF : ROSA_BEAM_LLM_ADAPTERS;
        p.max_new_tokens = max_new;
        p.eos = eos;
        p.n_eos = n_eos;
        rosa_decode_result *res = calloc((size_t)ps.n, sizeof *res);
        REQUIRE(rosa_decode_all(m, ps.n, (const int32_t *const *)ps.ids, ps.lens, &p, batch, res) == 0);
        const cJSON *want = cJSON_GetObjectItem(ref, rules[ri]);
        REQUIRE(cJSON_GetArraySize(want) == ps.n);
        int n_eos_end = 0, n_short = 0, mismatches = 0, n_early = 0;
        for (int i = 0; i < ps.n; i++) {
            const cJSON *w = cJSON_GetArrayItem(want, i);
            const cJSON *ids = cJSON_GetObjectItem(w, "ids");
            double score = cJSON_GetObjectItem(w, "score")->valuedouble;
            n_eos_end += res[i].ended_eos;
            n_early += cJSON_GetObjectItem(w, "steps")->valueint < max_new;
            n_short += res[i].n < max_new;
            if (!same_ids(&res[i], ids) || fabs(res[i].score - score) > 1e-4 * (1 + fabs(score))) {
                if (mismatches++ < 3) {
                    char *t = cJSON_PrintUnformatted(w);
                    printf("    %s %s prompt %d: reference %s\n", model_name, rules[ri], i, t);
                    free(t);
                    print_ids("rosa", &res[i]);
                }
            }
        }
        CHECK_MSG(mismatches == 0, "%s %s: %d of %d prompts differ from the reference", model_name, rules[ri],
                  mismatches, ps.n);
        printf("    %s %-12s eos=%s beams=%d: %d/%d equal; %d ended with EOS, %d shorter than max_new_tokens, "
               "%d stopped early\n", model_name, rules[ri], eos_list, p.num_beams, ps.n - mismatches, ps.n, n_eos_end,
               n_short, n_early);
        for (int i = 0; i < ps.n; i++) rosa_decode_result_free(&res[i]);
        free(res);
    }
    cJSON_Delete(ref);
    prompts_free(&ps);
    rosa_model_free(m);
    restore_threads();
}

TEST(eval_beam_search_matches_reference_one_eos) {
    static const int32_t eos[] = {2};
    check_against_reference("llama_gqa", eos, 1, 4, 10, 16, 11, 1);
}

/* Past the window (issue 14): gemma3-tiny and mistral-window-tiny (window
 * 4), prompts of up to 16 tokens and 16 new ones, so the sliding layers'
 * rings wrap while beams are copied from the prompt's cache, reordered and
 * refilled in groups of a batch. */
TEST(eval_beam_search_past_the_window_matches_reference) {
    static const int32_t eos[] = {2, 7};
    check_against_reference("gemma3-tiny", eos, 2, 4, 16, 8, 21, 3);
    check_against_reference("mistral-window-tiny", eos, 2, 3, 16, 8, 22, 2);
}

TEST(eval_beam_search_matches_reference_frequent_eos) {
    /* Many EOS ids: hypotheses end early and often, the early-stop rules and
     * (hf) the (1 + n_eos) * num_beams candidates are exercised. */
    static const int32_t eos[] = {19, 33, 69, 137, 143, 149, 199, 253};
    check_against_reference("llama_gqa", eos, 8, 4, 10, 16, 12, 3);
    /* another model (attention and MLP biases), two EOS ids, five beams */
    static const int32_t eos2[] = {138, 8};
    check_against_reference("llama_bias", eos2, 2, 5, 12, 12, 13, 2);
}

TEST(eval_kv_copy_and_reorder_rows) {
    one_thread();
    rosa_model *m = rosa_model_load(testdata_path("llama_gqa"));
    REQUIRE(m);
    int V = m->cfg.vocab_size;
    int32_t a[] = {5, 9, 33, 71}, b[] = {200, 14};
    /* reference: each sequence alone, then one more token */
    float *ra = malloc(sizeof(float) * V), *rb = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * 3 * V);
    rosa_kv_cache *k1 = rosa_kv_cache_new(m, 1, 8), *pa = rosa_kv_cache_new(m, 1, 8), *pb = rosa_kv_cache_new(m, 1, 8);
    int32_t nxt = 42;
    REQUIRE(rosa_forward(m, k1, 4, a, NULL, ra, 0) == 0 && rosa_forward(m, k1, 1, &nxt, NULL, ra, 0) == 0);
    rosa_kv_cache_reset(k1);
    REQUIRE(rosa_forward(m, k1, 2, b, NULL, rb, 0) == 0 && rosa_forward(m, k1, 1, &nxt, NULL, rb, 0) == 0);
    REQUIRE(rosa_forward(m, pa, 4, a, NULL, lg, 0) == 0 && rosa_forward(m, pb, 2, b, NULL, lg, 0) == 0);
    /* rows: 0 <- b (shorter: padding after it), 1 <- a, 2 <- b; then reorder so row 2 takes row 1 */
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 3, 8);
    REQUIRE(rosa_kv_cache_copy_seq(kv, 0, pb, 0) == 0);
    REQUIRE(rosa_kv_cache_copy_seq(kv, 1, pa, 0) == 0);
    REQUIRE(rosa_kv_cache_copy_seq(kv, 2, pb, 0) == 0);
    CHECK_EQ_INT(rosa_kv_cache_length(kv), 4);
    CHECK_EQ_INT(kv->n_real[0], 2);
    CHECK_EQ_INT(kv->n_real[1], 4);
    int src[3] = {1, 0, 1};
    REQUIRE(rosa_kv_cache_reorder(kv, src) == 0);
    int32_t ids[3] = {42, 42, 42};
    REQUIRE(rosa_forward(m, kv, 1, ids, NULL, lg, 0) == 0);
    double d0 = 0, d1 = 0, d2 = 0;
    for (int v = 0; v < V; v++) {
        d0 = fmax(d0, fabs(lg[v] - ra[v]));
        d1 = fmax(d1, fabs(lg[V + v] - rb[v]));
        d2 = fmax(d2, fabs(lg[2 * V + v] - ra[v]));
    }
    CHECK_MSG(d0 < 1e-4 && d1 < 1e-4 && d2 < 1e-4, "row logits differ from the sequences alone: %g %g %g", d0, d1, d2);
    int bad[3] = {0, 3, 0};
    CHECK(rosa_kv_cache_reorder(kv, bad) < 0);
    rosa_kv_cache_free(kv);
    rosa_kv_cache_free(k1);
    rosa_kv_cache_free(pa);
    rosa_kv_cache_free(pb);
    free(ra);
    free(rb);
    free(lg);
    rosa_model_free(m);
    restore_threads();
}

/* rosa_kv_cache_reorder_from against a naive gather, for random maps (chains,
 * fan-out, cycles), moving only positions [from, n_real): on a model of
 * global layers (rows = cap) and on gemma3-tiny, whose sliding layers keep a
 * ring of 4 rows (moved: the ring rows of the positions it still holds). */
static void reorder_random_maps(const char *name) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    int B = 6, cap = 9;
    rosa_kv_cache *kv = rosa_kv_cache_new(m, B, cap);
    REQUIRE(kv);
    kv->len = cap;
    size_t per = kv->off[kv->L - 1] + (size_t)B * kv->rows[kv->L - 1] * kv->kv_dim;
    float *k0 = malloc(sizeof(float) * per), *v0 = malloc(sizeof(float) * per);
    rosa_rng r;
    rosa_rng_seed(&r, 5);
    int bad = 0;
    for (int trial = 0; trial < 200; trial++) {
        for (size_t i = 0; i < per; i++) {
            kv->k[i] = (float)rosa_rng_below(&r, 1000);
            kv->v[i] = -(float)rosa_rng_below(&r, 1000);
        }
        for (int b = 0; b < B; b++) kv->n_real[b] = (int)rosa_rng_below(&r, (uint64_t)cap + 1);
        memcpy(k0, kv->k, sizeof(float) * per);
        memcpy(v0, kv->v, sizeof(float) * per);
        int real0[6];
        memcpy(real0, kv->n_real, sizeof real0);
        int src[6], from = (int)rosa_rng_below(&r, 8);
        for (int b = 0; b < B; b++) src[b] = (int)rosa_rng_below(&r, (uint64_t)B);
        if (trial % 3 == 0) /* a permutation: cycles only */
            for (int b = 0; b < B; b++) {
                int j = (int)rosa_rng_below(&r, (uint64_t)(b + 1));
                src[b] = src[j];
                src[j] = b;
            }
        REQUIRE(rosa_kv_cache_reorder_from(kv, src, from) == 0);
        for (int l = 0; l < kv->L; l++) {
            int R = kv->rows[l];
            for (int b = 0; b < B; b++) {
                int n = real0[src[b]], p0 = n - R > from ? n - R : from;
                for (int i = 0; i < R; i++) {
                    int moved = 0; /* a position of [p0, n) lies in ring row i */
                    for (int t = p0; t < n; t++) moved |= t % R == i;
                    for (int d = 0; d < kv->kv_dim; d++) {
                        size_t at = kv->off[l] + ((size_t)b * R + i) * kv->kv_dim + d;
                        size_t want = moved ? kv->off[l] + ((size_t)src[b] * R + i) * kv->kv_dim + d : at;
                        bad += kv->k[at] != k0[want] || kv->v[at] != v0[want];
                    }
                }
            }
        }
        for (int b = 0; b < B; b++) bad += kv->n_real[b] != real0[src[b]];
    }
    CHECK_EQ_INT(bad, 0);
    free(k0);
    free(v0);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

TEST(eval_kv_reorder_random_maps) { reorder_random_maps("llama_gqa"); }
TEST(eval_kv_reorder_random_maps_ring) { reorder_random_maps("gemma3-tiny"); }

TEST(eval_greedy_equals_generate_and_batching_changes_nothing) {
    one_thread();
    rosa_model *m = rosa_model_load(testdata_path("qwen2_bias"));
    REQUIRE(m);
    prompt_set ps;
    prompts_make(&ps, 9, m->cfg.vocab_size, 21, 24);
    static const int32_t eos[] = {2, 33, 228};
    rosa_decode_params p;
    rosa_decode_params_default(&p);
    p.max_new_tokens = 14;
    p.eos = eos;
    p.n_eos = 3;
    /* num_beams 1 == rosa_generate's greedy (which stops at the model's EOS only) */
    p.num_beams = 1;
    p.n_eos = 0;
    rosa_decode_result *one = calloc((size_t)ps.n, sizeof *one);
    REQUIRE(rosa_decode_all(m, ps.n, (const int32_t *const *)ps.ids, ps.lens, &p, 1, one) == 0);
    for (int i = 0; i < ps.n; i++) {
        rosa_gen_params gp;
        rosa_gen_params_default(&gp);
        gp.max_new_tokens = p.max_new_tokens;
        gp.stop_at_eos = 0;
        int32_t out[32];
        int n = 0;
        REQUIRE(rosa_generate(m, ps.ids[i], ps.lens[i], &gp, NULL, NULL, out, &n) == 0);
        CHECK_EQ_INT(one[i].n, n);
        CHECK(one[i].n == n && memcmp(one[i].ids, out, sizeof(int32_t) * (size_t)n) == 0);
        rosa_decode_result_free(&one[i]);
    }
    p.n_eos = 3;
    /* batched == one at a time, for every rule */
    for (int rule = 0; rule < 3; rule++) {
        p.num_beams = rule == 2 ? 1 : 4;
        p.rule = rule == 1 ? ROSA_BEAM_HF : ROSA_BEAM_LLM_ADAPTERS;
        rosa_decode_result *batched = calloc((size_t)ps.n, sizeof *batched);
        REQUIRE(rosa_decode_all(m, ps.n, (const int32_t *const *)ps.ids, ps.lens, &p, 1, one) == 0);
        REQUIRE(rosa_decode_all(m, ps.n, (const int32_t *const *)ps.ids, ps.lens, &p, 4, batched) == 0);
        int diff = 0;
        for (int i = 0; i < ps.n; i++) {
            diff += one[i].n != batched[i].n || memcmp(one[i].ids, batched[i].ids, sizeof(int32_t) * (size_t)one[i].n) ||
                    fabs(one[i].score - batched[i].score) > 1e-5;
            rosa_decode_result_free(&one[i]);
            rosa_decode_result_free(&batched[i]);
        }
        CHECK_MSG(diff == 0, "rule %d: %d prompts decode differently in a batch of 4", rule, diff);
        free(batched);
    }
    free(one);
    prompts_free(&ps);
    rosa_model_free(m);
    restore_threads();
}

/* ------------------------------------------------------------ extraction */

#include "data/data.h"
#include "eval/extract.h"
#include "rosa_train.h"

typedef struct {
    const char *task, *response, *label, *pred;
    int extracted, correct;
} score_case;

/* Expected values computed with LLM-Adapters' extract_answer /
 * extract_answer_number / extract_answer_letter in CPython 3.11. */
static const score_case score_cases[] = {
    {"boolq", "true", "true", "true", 1, 1},
    {"boolq", "the correct answer is false. true is wrong", "false", "false", 1, 1},
    {"boolq", "It is True, not false", "true", "false", 1, 0},
    {"boolq", "untrue", "true", "true", 1, 1},
    {"boolq", "yes", "true", "", 0, 0},
    {"boolq", "falsetrue", "false", "false", 1, 1},
    {"piqa", "solution2 or solution1", "solution2", "solution2", 1, 1},
    {"piqa", "Solution1", "solution1", "", 0, 0},
    {"piqa", "solution12", "solution1", "solution1", 1, 1},
    {"social_i_qa", "answer5", "answer5", "answer5", 1, 1},
    {"social_i_qa", "answer10", "answer1", "answer1", 1, 1},
    {"social_i_qa", "answer 3", "answer3", "", 0, 0},
    {"hellaswag", "ending4ending1", "ending1", "ending4", 1, 0},
    {"winogrande", "Option1 option2", "option2", "option2", 1, 1},
    {"ARC-Easy", "the correct answer is answer3", "answer3", "answer3", 1, 1},
    {"ARC-Challenge", "answer4 answer2", "answer2", "answer4", 1, 0},
    {"openbookqa", "", "answer1", "", 0, 0},
    {"gsm8k", "Natalia sold 48 + 24 = 72 clips. The answer is 72.", "72.0", "72.", 1, 1},
    {"gsm8k", "1,080 apples", "1080", "1080", 1, 1},
    {"SVAMP", "The answer is -3.", "-3.0", "-3.", 1, 1},
    {"MultiArith", "x-5", "5", "-5", 1, 0},
    {"AddSub", "0.125", "0.125", "0.125", 1, 1},
    {"mawps", "1.8333", "1.8333333333333335", "1.8333", 1, 1},
    {"mawps", "1.834", "1.8333333333333335", "1.834", 1, 1},
    {"mawps", "1.835", "1.8333333333333335", "1.835", 1, 0},
    {"SingleEq", "3.14.15", "15", "15", 1, 1},
    {"gsm8k", "no numbers here", "1", "", 0, 0},
    {"gsm8k", "\xd9\xa3\xd9\xa4", "34.0", "\xd9\xa3\xd9\xa4", 1, 1},                        /* Arabic-Indic 34 */
    {"gsm8k", "\xef\xbc\x91\xef\xbc\x92.\xef\xbc\x95", "12.5", "\xef\xbc\x91\xef\xbc\x92.\xef\xbc\x95", 1, 1}, /* fullwidth */
    {"gsm8k", "x\xc2\xb2", "2", "", 0, 0},                                                  /* superscript: not Nd */
    {"gsm8k", "\xf0\x9d\x9f\x99\xf0\x9d\x9f\x9a", "12", "\xf0\x9d\x9f\x99\xf0\x9d\x9f\x9a", 1, 1}, /* double-struck */
    {"gsm8k", "5.", "5", "5.", 1, 1},
    {"gsm8k", "-.5", "0.5", "5", 1, 0},
    {"gsm8k", "1e5", "5", "5", 1, 1},
    {"gsm8k", "The answer is 72.\n\nThe answer is 73", "73", "73", 1, 1},
    {"gsm8k", "--7", "-7", "-7", 1, 1},
    {"gsm8k", "12,34", "1234", "1234", 1, 1},
    {"gsm8k", "10.001", "10", "10.001", 1, 1}, /* |10 - 10.001| <= 0.001 */
    {"gsm8k", "10.0011", "10", "10.0011", 1, 0},
    {"gsm8k", "\xd9\xa1\xd9\xa0\xd9\xa0.5 and 7", "7.0", "7", 1, 1},
    {"AQuA", "The answer is B", "B", "B", 1, 1},
    {"AQuA", "Answer: (C)", "C", "A", 1, 0},
    {"AQuA", "THE ANSWER IS B", "B", "E", 1, 0},
    {"AQuA", "b", "B", "", 0, 0},
    {"AQuA", "\xc3\x89" "B", "B", "B", 1, 1},
    {"AQuA", "  E  ", "E", "E", 1, 1},
};

TEST(eval_extraction_and_scoring_follow_the_reference_scripts) {
    for (size_t i = 0; i < sizeof score_cases / sizeof score_cases[0]; i++) {
        const score_case *c = &score_cases[i];
        const rosa_task *t = rosa_task_find_builtin(c->task);
        REQUIRE(t);
        rosa_answer a;
        REQUIRE(rosa_score_response(t, "", c->response, c->label, &a) == 0);
        CHECK_MSG(a.extracted == c->extracted && a.correct == c->correct && strcmp(a.text, c->pred) == 0,
                  "case %zu (%s, \"%s\"): got \"%s\" extracted %d correct %d", i, c->task, c->response, a.text,
                  a.extracted, a.correct);
        rosa_answer_free(&a);
    }
    /* the value of a huge number is inf (float() overflows): extracted but wrong */
    char big[402];
    memset(big, '9', 400);
    big[400] = 0;
    rosa_answer a;
    REQUIRE(rosa_score_response(rosa_task_find_builtin("gsm8k"), "", big, "1", &a) == 0);
    CHECK(a.extracted && !a.correct && isinf(a.number));
    rosa_answer_free(&a);
    double v;
    CHECK(rosa_extract_number("\xd9\xa1\xd9\xa0\xd9\xa0.5", &v, NULL) == 1 && v == 100.5);
    CHECK(rosa_extract_number("\xf0\x9d\x9f\x8e\xf0\x9d\x9f\xbf", &v, NULL) == 1 && v == 9); /* U+1D7CE 0, U+1D7FF 9 */
    CHECK(rosa_extract_number("none", &v, NULL) == 0 && isinf(v));
    /* a bad numeric label is an error */
    CHECK(rosa_score_response(rosa_task_find_builtin("gsm8k"), "", "1", "seven", &a) < 0);
}

TEST(eval_custom_commonsense_labels_from_answer_format) {
    rosa_task_list l = {0};
    REQUIRE(rosa_tasks_add_custom(&l, "mine=/tmp/x.json", "commonsense") == 0);
    const rosa_task *t = rosa_tasks_find(&l, "mine");
    REQUIRE(t && t->rule == ROSA_RULE_LABELS && !t->labels && t->custom);
    const char *ins = "Which?\n\nOption: a b\n\nAnswer format: yes/no/maybe";
    rosa_answer a;
    REQUIRE(rosa_score_response(t, ins, "maybe yes", "maybe", &a) == 0);
    CHECK(a.correct && strcmp(a.text, "maybe") == 0);
    rosa_answer_free(&a);
    REQUIRE(rosa_score_response(t, ins, "noyes", "yes", &a) == 0);
    CHECK(!a.correct && strcmp(a.text, "no") == 0);
    rosa_answer_free(&a);
    REQUIRE(rosa_score_response(t, ins, "perhaps", "yes", &a) == 0);
    CHECK(!a.extracted && !a.correct);
    rosa_answer_free(&a);
    CHECK(rosa_score_response(t, "no format line", "yes", "yes", &a) < 0);
    /* winogrande's layout: no newline before "Answer format:" */
    char **labels;
    int n = rosa_answer_format_labels("Sarah or Maria?\n\nOption1: Sarah Option2: Maria Answer format: option1/option2",
                                      &labels);
    REQUIRE(n == 2);
    CHECK_STR(labels[0], "option1");
    CHECK_STR(labels[1], "option2");
    rosa_free_labels(labels, n);
    /* a custom math task scores numbers; a built-in name keeps its rules */
    REQUIRE(rosa_tasks_add_custom(&l, "sums=/tmp/y.json", "math") == 0);
    CHECK(rosa_tasks_find(&l, "sums")->rule == ROSA_RULE_NUMBER);
    REQUIRE(rosa_tasks_add_custom(&l, "aqua=/tmp/z.json", NULL) == 0);
    CHECK(rosa_tasks_find(&l, "AQuA")->rule == ROSA_RULE_LETTER);
    CHECK(rosa_tasks_add_custom(&l, "other=/tmp/z.json", NULL) < 0);
    CHECK(rosa_tasks_add_custom(&l, "other=/tmp/z.json", "physics") < 0);
    CHECK(rosa_tasks_add_custom(&l, "noequals", "math") < 0);
    rosa_task_list_free(&l);
}

TEST(eval_task_groups) {
    rosa_task_list l = {0};
    REQUIRE(rosa_tasks_add_list(&l, "commonsense", "D") == 0);
    CHECK_EQ_INT(l.n, 8);
    REQUIRE(rosa_tasks_add_list(&l, "math,boolq,GSM8K", "D") == 0);
    CHECK_EQ_INT(l.n, 15);
    CHECK_STR(l.t[0].name, "boolq");
    CHECK_STR(l.t[8].name, "MultiArith");
    CHECK_STR(l.t[14].name, "mawps");
    CHECK_STR(l.t[5].file, "D/ARC-Easy/test.json");
    rosa_task_list_free(&l);
    REQUIRE(rosa_tasks_add_list(&l, "all", "D") == 0);
    CHECK_EQ_INT(l.n, 15);
    CHECK(rosa_tasks_add_list(&l, "boolq,nope", "D") < 0);
    CHECK_ERROR_HAS("nope");
    rosa_task_list_free(&l);
}

TEST(eval_response_and_strip_like_python) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"<s> Below is x\n### Response:\n  the correct answer is true</s>", "the correct answer is true</s>"},
        {"A ### Response: x ### Response: y", "x"},
        {"### Response:\xe3\x80\x80 hi \xc2\xa0\x1c", "hi"}, /* U+3000, U+00A0, U+001C are str.isspace() */
        {"### Response:\xe2\x80\x8b hi", "\xe2\x80\x8b hi"},  /* U+200B is not */
        {"### Response:", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int found;
        char *r = rosa_response_from_text(cases[i].text, strlen(cases[i].text), &found);
        CHECK(found);
        CHECK_STR(r, cases[i].want);
        free(r);
    }
    int found;
    CHECK(rosa_response_from_text("no marker", 9, &found) == NULL && !found);
}

TEST(eval_prompt_template_is_llm_adapters) {
    /* commonsense_evaluate.py / evaluate.py generate_prompt(instruction) (input
     * None): the evaluation template, whose whitespace differs from training's */
    rosa_record r = {0};
    r.instruction = "Please answer the following question with true or false, question: is it?\n\nAnswer format: true/false";
    r.input = "ignored context";
    r.output = "the correct answer is true";
    char *p = rosa_prompt_eval(&r);
    CHECK_STR(p, "Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request. \n\n                ### Instruction:\n                Please answer the following "
                 "question with true or false, question: is it?\n\nAnswer format: true/false\n\n                ### "
                 "Response:\n                ");
    free(p);
}

/* ------------------------------------------------------------ end to end */

static int sh(const char *cmd, char **out) { return run_capture(cmd, 1, out); }

static const char *stories(void) { return shared_path("models/stories260K"); }
static const char *data_dir(void) { return shared_path("data/llm-adapters"); }

static int count_lines(const char *path) {
    size_t len;
    char *t = rosa_read_file(path, &len);
    if (!t) return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++) n += t[i] == '\n';
    free(t);
    return n;
}

static const cJSON *task_of(const cJSON *rep, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "tasks"), name);
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Every task n, correct, accuracy = correct / n; groups: macro = mean of the
 * task accuracies, micro = correct / n over the group. */
static void check_report(const cJSON *rep, int n_tasks, int per_task) {
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(rep, "tasks");
    REQUIRE(cJSON_IsObject(tasks));
    CHECK_EQ_INT(cJSON_GetArraySize(tasks), n_tasks);
    const char *groups[] = {"commonsense", "math", "all"};
    for (int g = 0; g < 3; g++) {
        const cJSON *gr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "groups"), groups[g]);
        if (!gr) continue;
        double acc_sum = 0;
        int n = 0, correct = 0, k = 0;
        for (const cJSON *t = tasks->child; t; t = t->next) {
            const char *grp = cJSON_GetObjectItemCaseSensitive(t, "group")->valuestring;
            if (g < 2 && strcmp(grp, groups[g]) != 0) continue;
            int tn = (int)num(t, "n"), tc = (int)num(t, "correct");
            CHECK_EQ_INT(tn, per_task);
            CHECK(tc >= 0 && tc <= tn && num(t, "no_answer") >= 0 && num(t, "no_answer") <= tn);
            CHECK(fabs(num(t, "accuracy") - (double)tc / tn) < 1e-12);
            acc_sum += (double)tc / tn;
            n += tn;
            correct += tc;
            k++;
        }
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(gr, "tasks")), k);
        CHECK_EQ_INT((int)num(gr, "n"), n);
        CHECK_EQ_INT((int)num(gr, "correct"), correct);
        CHECK(fabs(num(gr, "macro_accuracy") - acc_sum / k) < 1e-12);
        CHECK(fabs(num(gr, "micro_accuracy") - (double)correct / n) < 1e-12);
    }
}

TEST(eval_cli_all_tasks_end_to_end) {
    char cmd[4096], *out = NULL;
    const char *rep = test_tmp_path("all.json"), *pred = test_tmp_path("all.jsonl");
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data-dir %s --tasks all --limit 3 --max-new-tokens 8 --threads 1 "
             "--quiet --output %s --predictions %s", rosa_bin(), stories(), data_dir(), rep, pred);
    int rc = run_capture(cmd, 0, &out);
    CHECK_MSG(rc == 0, "rosa eval failed (%d): %s", rc, out);
    /* the table: every task, percent with two decimals, the three groups */
    static const char *names[] = {"boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "ARC-Easy",
                                  "ARC-Challenge", "openbookqa", "MultiArith", "gsm8k", "AddSub", "AQuA",
                                  "SingleEq", "SVAMP", "mawps"};
    for (int i = 0; i < 15; i++) CHECK_MSG(strstr(out, names[i]) != NULL, "table lacks %s", names[i]);
    CHECK(strstr(out, "commonsense (8)") && strstr(out, "math (7)") && strstr(out, "all (15)"));
    CHECK(strstr(out, "macro avg") && strstr(out, "micro avg") && strstr(out, "accuracy"));
    /* percentages with two decimals, e.g. "33.33%" */
    int pct = 0;
    for (const char *q = strchr(out, '%'); q; q = strchr(q + 1, '%'))
        pct += q - out >= 4 && q[-3] == '.' && q[-1] >= '0' && q[-1] <= '9' && q[-2] >= '0' && q[-2] <= '9';
    CHECK_EQ_INT(pct, 15 + 6);
    printf("%s", out);
    free(out);
    cJSON *j = rosa_json_load(rep);
    REQUIRE(j);
    check_report(j, 15, 3);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "mode")->valuestring, "generate");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decoding");
    CHECK_EQ_INT((int)num(dec, "num_beams"), 4);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(dec, "beam_rule")->valuestring, "llm-adapters");
    /* predictions: the header, then one line per example with the required fields */
    CHECK_EQ_INT(count_lines(pred), 1 + 45);
    size_t len;
    char *text = rosa_read_file(pred, &len);
    REQUIRE(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *l = cJSON_Parse(line);
        CHECK(l);
        if (!l) continue;
        if (lines == 0) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(l, "format");
            CHECK(cJSON_IsString(f) && strcmp(f->valuestring, "rosa-predictions/1") == 0);
            CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "model_digest")));
            CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "options_digest")));
            cJSON_Delete(l);
            continue;
        }
        static const char *keys[] = {"task", "index", "instruction", "response", "prediction", "label", "correct"};
        for (int k = 0; k < 7; k++) CHECK_MSG(cJSON_GetObjectItemCaseSensitive(l, keys[k]), "line %d lacks %s", lines, keys[k]);
        const cJSON *t = task_of(j, cJSON_GetObjectItemCaseSensitive(l, "task")->valuestring);
        CHECK(t != NULL);
        cJSON_Delete(l);
    }
    free(text);
    cJSON_Delete(j);
}

TEST(eval_cli_score_predictions_reproduces_the_report) {
    char cmd[4096], *out = NULL;
    const char *rep = test_tmp_path("all.json"), *pred = test_tmp_path("all.jsonl"), *rescored = test_tmp_path("rescored.json");
    if (!rosa_file_exists(pred)) {
        snprintf(cmd, sizeof cmd, "%s eval --model %s --data-dir %s --tasks all --limit 3 --max-new-tokens 8 "
                 "--threads 1 --quiet --output %s --predictions %s", rosa_bin(), stories(), data_dir(), rep, pred);
        REQUIRE(run_capture(cmd, 1, &out) == 0);
        free(out);
    }
    snprintf(cmd, sizeof cmd, "%s eval --data-dir %s --score-predictions %s --output %s", rosa_bin(), data_dir(), pred,
             rescored);
    int rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    cJSON *a = rosa_json_load(rep), *b = rosa_json_load(rescored);
    REQUIRE(a && b);
    check_report(b, 15, 3);
    for (const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "tasks")->child; t; t = t->next) {
        const cJSON *u = task_of(b, t->string);
        REQUIRE(u);
        CHECK(num(t, "correct") == num(u, "correct") && num(t, "n") == num(u, "n") &&
              num(t, "no_answer") == num(u, "no_answer"));
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* LLM-Adapters' own output file: a JSON array with output_pred and answer
     * (no task: --tasks names it) */
    const char *la = test_tmp_path("llm-adapters-gsm8k.json");
    FILE *f = fopen(la, "w");
    REQUIRE(f);
    fprintf(f, "[\n {\"instruction\": \"q\", \"answer\": \"72.0\", \"output_pred\": \"so 48 + 24 = 72\", \"flag\": true},\n"
               " {\"instruction\": \"q\", \"answer\": \"5\", \"output_pred\": \"no idea\"},\n"
               " {\"instruction\": \"q\", \"answer\": \"1,5\", \"output_pred\": \"15\"},\n"
               " {\"instruction\": \"q\", \"answer\": \"-3.0\", \"output_pred\": \"The answer is -3\"}\n]");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s eval --data-dir %s --tasks gsm8k --score-predictions %s --output %s", rosa_bin(),
             data_dir(), la, rescored);
    rc = sh(cmd, &out);
    /* "1,5" is not a number for float(): an error naming the line */
    CHECK(rc != 0 && strstr(out, "line 3") && strstr(out, "not a number"));
    free(out);
    f = fopen(la, "w");
    REQUIRE(f);
    fprintf(f, "[\n {\"instruction\": \"q\", \"answer\": \"72.0\", \"output_pred\": \"so 48 + 24 = 72\", \"flag\": true},\n"
               " {\"instruction\": \"q\", \"answer\": \"5\", \"output_pred\": \"no idea\"},\n"
               " {\"instruction\": \"q\", \"answer\": \"-3.0\", \"output_pred\": \"The answer is -3\"}\n]");
    fclose(f);
    rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    b = rosa_json_load(rescored);
    REQUIRE(b);
    const cJSON *g = task_of(b, "gsm8k");
    CHECK(num(g, "n") == 3 && num(g, "correct") == 2 && num(g, "no_answer") == 1);
    cJSON_Delete(b);
    /* labels by index into the test file, and an unknown task */
    f = fopen(la, "w");
    REQUIRE(f);
    fprintf(f, "{\"task\": \"boolq\", \"index\": 0, \"response\": \"the correct answer is false\"}\n"
               "{\"task\": \"BoolQ\", \"index\": 1, \"response\": \"the correct answer is false\"}\n");
    fclose(f);
    rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    b = rosa_json_load(rescored);
    REQUIRE(b);
    g = task_of(b, "boolq"); /* boolq test records 0 and 1 are false and true */
    CHECK(num(g, "n") == 2 && num(g, "correct") == 1);
    cJSON_Delete(b);
    f = fopen(la, "w");
    REQUIRE(f);
    fprintf(f, "{\"task\": \"nope\", \"response\": \"x\", \"label\": \"y\"}\n");
    fclose(f);
    rc = sh(cmd, &out);
    CHECK(rc != 0 && strstr(out, "unknown task"));
    free(out);
}

TEST(eval_cli_resume_from_predictions) {
    char cmd[8192], base[4096], *out = NULL;
    const char *full = test_tmp_path("resume-full.jsonl"), *part = test_tmp_path("resume-part.jsonl");
    const char *rep_full = test_tmp_path("resume-full.json"), *rep_part = test_tmp_path("resume-part.json");
    snprintf(base, sizeof base, "%s eval --model %s --data-dir %s --tasks boolq,AQuA --limit 4 --max-new-tokens 6 "
             "--threads 1 --quiet --batch-size 3", rosa_bin(), stories(), data_dir());
    snprintf(cmd, sizeof cmd, "%s --predictions %s --output %s", base, full, rep_full);
    REQUIRE(sh(cmd, &out) == 0);
    free(out);
    CHECK_EQ_INT(count_lines(full), 1 + 8);
    /* an interrupted run: the header, three complete lines and half of the fourth */
    size_t len;
    char *t = rosa_read_file(full, &len);
    REQUIRE(t);
    char *p = t;
    for (int i = 0; i < 1 + 3; i++) p = strchr(p, '\n') + 1;
    size_t keep = (size_t)(p - t) + (size_t)(strchr(p, '\n') - p) / 2;
    FILE *f = fopen(part, "w");
    REQUIRE(f);
    fwrite(t, 1, keep, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --predictions %s --output %s", base, part, rep_part);
    int rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    CHECK_EQ_INT(count_lines(part), 1 + 8);
    /* the same header, then the same lines in the same (record) order; the
     * beam score may differ in its last digits, as the prompts were batched
     * differently */
    char *u = rosa_read_file(part, &len);
    REQUIRE(u);
    char *sa, *sb;
    char *la = strtok_r(t, "\n", &sa), *lb = strtok_r(u, "\n", &sb);
    CHECK(la && lb && strcmp(la, lb) == 0);
    la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb);
    int n_same = 0;
    for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
        cJSON *x = cJSON_Parse(la), *y = cJSON_Parse(lb);
        REQUIRE(x && y);
        double dx = num(x, "score"), dy = num(y, "score");
        cJSON_DeleteItemFromObject(x, "score");
        cJSON_DeleteItemFromObject(y, "score");
        n_same += cJSON_Compare(x, y, 1) && fabs(dx - dy) < 1e-6;
        cJSON_Delete(x);
        cJSON_Delete(y);
    }
    CHECK_EQ_INT(n_same, 8);
    free(u);
    free(t);
    cJSON *a = rosa_json_load(rep_full), *b = rosa_json_load(rep_part);
    REQUIRE(a && b);
    int resumed = 0;
    for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, "tasks")->child; x; x = x->next) {
        const cJSON *y = task_of(b, x->string);
        REQUIRE(y);
        CHECK(num(x, "correct") == num(y, "correct") && num(x, "n") == num(y, "n"));
        resumed += (int)num(y, "resumed");
    }
    CHECK_EQ_INT(resumed, 3);
    CHECK_EQ_INT((int)num(b, "new_examples"), 5);
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* resuming with other decoding options is refused */
    snprintf(cmd, sizeof cmd, "%s --predictions %s --num-beams 2", base, part);
    rc = sh(cmd, &out);
    CHECK(rc != 0 && strstr(out, "other options"));
    free(out);
}

TEST(eval_cli_loglik_mode) {
    char cmd[4096], *out = NULL;
    const char *rep = test_tmp_path("loglik.json"), *pred = test_tmp_path("loglik.jsonl");
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data-dir %s --tasks boolq,social_i_qa,gsm8k --limit 2 --mode loglik "
             "--threads 1 --quiet --output %s --predictions %s", rosa_bin(), stories(), data_dir(), rep, pred);
    int rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    CHECK(strstr(out, "commonsense tasks only")); /* gsm8k is skipped with a note */
    free(out);
    cJSON *j = rosa_json_load(rep);
    REQUIRE(j);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "mode")->valuestring, "loglik");
    CHECK(num(task_of(j, "boolq"), "n") == 2 && num(task_of(j, "social_i_qa"), "n") == 2);
    CHECK(num(task_of(j, "boolq"), "no_answer") == 0);
    cJSON_Delete(j);
    size_t len;
    char *t = rosa_read_file(pred, &len);
    REQUIRE(t);
    char *first = strchr(t, '\n') + 1; /* after the header */
    char *nl = strchr(first, '\n');
    REQUIRE(nl);
    *nl = 0;
    cJSON *l = cJSON_Parse(first);
    REQUIRE(l);
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(l, "option_logprobs");
    CHECK(cJSON_GetArraySize(lp) == 2 && cJSON_GetObjectItemCaseSensitive(lp, "true") &&
          cJSON_GetObjectItemCaseSensitive(lp, "false"));
    /* the prediction is the option with the larger sum */
    double lt = num(lp, "true"), lf = num(lp, "false");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(l, "prediction")->valuestring, lt >= lf ? "true" : "false");
    cJSON_Delete(l);
    free(t);
    /* social_i_qa record 0 offers three options (answer1..answer3) */
    t = rosa_read_file(pred, &len);
    char *line3 = strchr(strchr(strchr(t, '\n') + 1, '\n') + 1, '\n') + 1; /* after the header */
    *strchr(line3, '\n') = 0;
    l = cJSON_Parse(line3);
    REQUIRE(l);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "option_logprobs")), 3);
    cJSON_Delete(l);
    free(t);
}

TEST(eval_loglik_scores_equal_full_forward) {
    one_thread();
    rosa_model *m = rosa_model_load(stories());
    REQUIRE(m);
    const rosa_tokenizer *tok = rosa_model_tokenizer(m);
    rosa_record r = {0};
    r.instruction = "Is the sky blue?\n\nAnswer format: true/false/maybe";
    char *prompt = rosa_prompt_eval(&r);
    const char *opts[] = {"true", "false", "maybe"};
    double got[3];
    REQUIRE(rosa_loglik_options(m, prompt, opts, 3, got) == 0);
    int V = m->cfg.vocab_size;
    int32_t *pids;
    size_t np;
    REQUIRE(rosa_tokenizer_encode(tok, prompt, strlen(prompt), 1, &pids, &np) == 0);
    for (int o = 0; o < 3; o++) {
        char text[2048];
        snprintf(text, sizeof text, "%sthe correct answer is %s", prompt, opts[o]);
        int32_t *ids;
        size_t n;
        REQUIRE(rosa_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n) == 0);
        size_t s = 0;
        while (s < n && s < np && ids[s] == pids[s]) s++;
        rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, (int)n);
        float *lg = malloc(sizeof(float) * n * (size_t)V);
        REQUIRE(rosa_forward(m, kv, (int)n, ids, NULL, lg, 1) == 0);
        double want = 0;
        for (size_t t = s; t < n; t++) {
            const float *x = lg + (t - 1) * (size_t)V;
            double mx = x[0], z = 0;
            for (int v = 1; v < V; v++) mx = fmax(mx, x[v]);
            for (int v = 0; v < V; v++) z += exp(x[v] - mx);
            want += x[ids[t]] - mx - log(z);
        }
        CHECK_MSG(fabs(got[o] - want) < 1e-4, "option %s: %.6f, full forward %.6f", opts[o], got[o], want);
        CHECK(n - s >= 5); /* "the correct answer is" and the option are scored */
        free(lg);
        free(ids);
        rosa_kv_cache_free(kv);
    }
    free(pids);
    free(prompt);
    rosa_model_free(m);
    restore_threads();
}

TEST(eval_cli_errors) {
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data-dir %s --tasks boolq,nope", rosa_bin(), stories(), data_dir());
    CHECK(sh(cmd, &out) != 0 && strstr(out, "unknown task \"nope\""));
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --tasks boolq --beam-rule hf4", rosa_bin(), stories());
    CHECK(sh(cmd, &out) != 0 && strstr(out, "--beam-rule"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --task mine=%s --tasks boolq", rosa_bin(), stories(), test_tmp_path("x.json"));
    CHECK(sh(cmd, &out) != 0 && strstr(out, "--task-type"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data-dir /nonexistent --tasks boolq --quiet", rosa_bin(), stories());
    CHECK(sh(cmd, &out) != 0 && strstr(out, "boolq") && strstr(out, "/nonexistent"));
    free(out);
}

TEST(eval_cli_custom_task) {
    /* a custom commonsense file (labels from "Answer format:") and a custom math one */
    const char *cs = test_tmp_path("custom-cs.json"), *mf = test_tmp_path("custom-math.jsonl"), *rep = test_tmp_path("custom.json");
    FILE *f = fopen(cs, "w");
    REQUIRE(f);
    fprintf(f, "[{\"instruction\": \"Is the cat big?\\n\\nAnswer format: yes/no\", \"input\": \"\", \"output\": "
               "\"the correct answer is yes\", \"answer\": \"yes\"},\n {\"instruction\": \"Is the sun red?\\n\\nAnswer "
               "format: yes/no\", \"input\": \"\", \"output\": \"the correct answer is no\", \"answer\": \"no\"}]");
    fclose(f);
    f = fopen(mf, "w");
    REQUIRE(f);
    fprintf(f, "{\"instruction\": \"Tom has 2 cats and 3 dogs. How many pets?\", \"input\": \"\", \"output\": \"\", "
               "\"answer\": \"5\"}\n");
    fclose(f);
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s eval --model %s --task pets=%s --task-type commonsense --task sums=%s --task-type math "
             "--max-new-tokens 4 --threads 1 --quiet --output %s", rosa_bin(), stories(), cs, mf, rep);
    int rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    cJSON *j = rosa_json_load(rep);
    REQUIRE(j);
    CHECK(num(task_of(j, "pets"), "n") == 2 && num(task_of(j, "sums"), "n") == 1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(task_of(j, "sums"), "group")->valuestring, "math");
    cJSON_Delete(j);
    /* loglik on the custom commonsense task picks between its own options */
    snprintf(cmd, sizeof cmd, "%s eval --model %s --task pets=%s --task-type commonsense --mode loglik --threads 1 "
             "--quiet --predictions %s", rosa_bin(), stories(), cs, test_tmp_path("custom-loglik.jsonl"));
    rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    char *t = rosa_read_file(test_tmp_path("custom-loglik.jsonl"), NULL);
    REQUIRE(t);
    CHECK(strstr(t, "\"option_logprobs\":{\"yes\":") != NULL);
    free(t);
}

TEST(eval_cli_adapter_equals_merged_model) {
    /* --adapter applies the adapter: the same responses as the merged model */
    char cmd[8192], *out = NULL;
    const char *ad = test_tmp_path("lora"), *merged = test_tmp_path("merged"), *p1 = test_tmp_path("ad.jsonl"), *p2 = test_tmp_path("merged.jsonl");
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s --method lora --rank 4 --alpha 8 "
             "--target-modules q_proj,v_proj,down_proj --b-std 0.3 --seed 4 --out %s", stories(), ad);
    REQUIRE(sh(cmd, &out) == 0);
    free(out);
    snprintf(cmd, sizeof cmd, "%s merge --model %s --adapter %s --output %s --overwrite", rosa_bin(), stories(), ad, merged);
    REQUIRE(sh(cmd, &out) == 0);
    free(out);
    const char *common = "--tasks boolq,gsm8k --limit 2 --max-new-tokens 6 --quiet --threads 1";
    snprintf(cmd, sizeof cmd, "%s eval --model %s --adapter %s --data-dir %s %s --predictions %s", rosa_bin(), stories(),
             ad, data_dir(), common, p1);
    int rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data-dir %s %s --predictions %s", rosa_bin(), merged, data_dir(),
             common, p2);
    rc = sh(cmd, &out);
    CHECK_MSG(rc == 0, "%s", out);
    free(out);
    char *a = rosa_read_file(p1, NULL), *b = rosa_read_file(p2, NULL);
    REQUIRE(a && b);
    /* the same responses, line by line (after the headers, which differ: another model, no adapter) */
    char *sa, *sb;
    int same = 0, lines = 0;
    strtok_r(a, "\n", &sa), strtok_r(b, "\n", &sb);
    for (char *la = strtok_r(NULL, "\n", &sa), *lb = strtok_r(NULL, "\n", &sb); la && lb;
         la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb), lines++) {
        cJSON *x = cJSON_Parse(la), *y = cJSON_Parse(lb);
        REQUIRE(x && y);
        same += strcmp(cJSON_GetObjectItem(x, "response")->valuestring, cJSON_GetObjectItem(y, "response")->valuestring) == 0;
        cJSON_Delete(x);
        cJSON_Delete(y);
    }
    CHECK_EQ_INT(lines, 4);
    CHECK_EQ_INT(same, 4);
    free(a);
    free(b);
}
