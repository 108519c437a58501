/* test_arch.c: Qwen3 and Gemma 3 end to end (issue 14): 10-step training
 * parity with the PyTorch reference (tools/ref_train.py) for LoRA and RoSA
 * with DLS, and every command on the tiny random models of the reference
 * (tools/make_test_models.py).  Those have no tokenizer: each test gives a
 * copy of the model directory a small SentencePiece-style tokenizer.json
 * built the way Gemma 3's is (Replace normalizer, BPE with byte fallback,
 * <bos> template, Replace/ByteFallback/Fuse decoders, GemmaTokenizerFast's
 * tokenizer_config.json): one token per character, so the records' prompt
 * template makes sequences of about 250 tokens, far past the windows. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/util.h"
#include "arch/arch.h"
#include "arch/config.h"
#include "io/json.h"
#include "model/bf16.h"
#include "model/model.h"
#include "peft/peft.h"
#include "test.h"

static int sh(const char *cmd, char **out) { return run_capture(cmd, 1, out); }

/* A model directory tmp/<label> with the tiny case's config and weights
 * (copied: rosa refuses weights that resolve outside the directory) and a
 * tokenizer of the models' 128 tokens: <pad> <bos> <eos> <unk>, "▁",
 * printable ASCII, "\n", three merges, two byte pieces and <unusedN> pieces. */
static const char *tiny_model(const char *casename, const char *label) {
    static char dirs[4][512];
    static int k;
    char *dir = dirs[k++ & 3];
    snprintf(dir, 512, "%s", test_tmp_path(label));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && for f in config.json generation_config.json model.safetensors; do "
             "cp '%s'/$f '%s/'; done", dir, dir, testdata_path(casename), dir);
    if (system(cmd) != 0) return NULL;
    cJSON *vocab = cJSON_CreateObject();
    static const char *const special[] = {"<pad>", "<bos>", "<eos>", "<unk>"};
    int id = 0;
    for (int i = 0; i < 4; i++) cJSON_AddNumberToObject(vocab, special[i], id++);
    cJSON_AddNumberToObject(vocab, "\xE2\x96\x81", id++);
    for (int c = 33; c < 127; c++) {
        char s[2] = {(char)c, 0};
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    cJSON_AddNumberToObject(vocab, "\n", id++);
    cJSON_AddNumberToObject(vocab, "\xE2\x96\x81t", id++);
    cJSON_AddNumberToObject(vocab, "he", id++);
    cJSON_AddNumberToObject(vocab, "\xE2\x96\x81the", id++);
    /* Byte pieces for "é" (byte fallback); Gemma's vocabulary has <unusedN>
     * pieces, which fill it to 128 so that whatever a random model generates decodes. */
    cJSON_AddNumberToObject(vocab, "<0xC3>", id++);
    cJSON_AddNumberToObject(vocab, "<0xA9>", id++);
    while (id < 128) {
        char s[16];
        snprintf(s, sizeof s, "<unused%d>", id - 103);
        cJSON_AddNumberToObject(vocab, s, id++);
    }
    cJSON *tok = cJSON_Parse(
        "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,"
        " \"added_tokens\": ["
        "  {\"id\": 0, \"content\": \"<pad>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true},"
        "  {\"id\": 1, \"content\": \"<bos>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true},"
        "  {\"id\": 2, \"content\": \"<eos>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true},"
        "  {\"id\": 3, \"content\": \"<unk>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}],"
        " \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xE2\x96\x81\"},"
        " \"pre_tokenizer\": null,"
        " \"post_processor\": {\"type\": \"TemplateProcessing\","
        "  \"single\": [{\"SpecialToken\": {\"id\": \"<bos>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
        "  \"pair\": [{\"SpecialToken\": {\"id\": \"<bos>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
        "           {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}],"
        "  \"special_tokens\": {\"<bos>\": {\"id\": \"<bos>\", \"ids\": [1], \"tokens\": [\"<bos>\"]}}},"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
        "  {\"type\": \"Replace\", \"pattern\": {\"String\": \"\xE2\x96\x81\"}, \"content\": \" \"},"
        "  {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},"
        " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\", \"continuing_subword_prefix\": null,"
        "  \"end_of_word_suffix\": null, \"fuse_unk\": true, \"byte_fallback\": true, \"ignore_merges\": false,"
        "  \"merges\": [\"\xE2\x96\x81 t\", \"h e\", \"\xE2\x96\x81t he\"]}}");
    if (!tok) return NULL;
    cJSON_AddItemToObject(cJSON_GetObjectItem(tok, "model"), "vocab", vocab);
    char *text = cJSON_Print(tok);
    cJSON_Delete(tok);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f) fclose(f);
    free(text);
    /* As Gemma 3's: BOS added, EOS not (training appends it). */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    f = ok ? fopen(path, "w") : NULL;
    ok = f && fputs("{\"tokenizer_class\": \"GemmaTokenizerFast\", \"bos_token\": \"<bos>\", \"eos_token\": \"<eos>\", "
                    "\"pad_token\": \"<pad>\", \"unk_token\": \"<unk>\", \"add_bos_token\": true, "
                    "\"add_eos_token\": false}\n", f) >= 0;
    if (f) fclose(f);
    return ok ? dir : NULL;
}

/* 10 steps of `rosa train` against ref_train.py from the same initial
 * adapter (make_flags: ref_train.py make-adapter's method flags): step
 * losses, DLS selections when ref_flags turn DLS on, and the final adapter. */
static void parity(const char *casename, const char *label, const char *make_flags, const char *rosa_flags,
                   const char *ref_flags) {
    const char *model = tiny_model(casename, label);
    REQUIRE(model);
    char data[512], dump[512], init[512], ref[512], out[512];
    snprintf(data, sizeof data, "%s-data.jsonl", model);
    snprintf(dump, sizeof dump, "%s-dump.json", model);
    snprintf(init, sizeof init, "%s-init", model);
    snprintf(ref, sizeof ref, "%s-ref.json", model);
    snprintf(out, sizeof out, "%s-out", model);
    write_toy_records(data, 16);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --data %s --template train --cutoff-len 256 --json > %s", rosa_bin(),
             model, data, dump);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "rosa tokenize failed (%s): %s", cmd, o);
    free(o);
    REQUIRE(rc == 0);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s %s --seed 3 --out %s", model, make_flags,
             init);
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "make-adapter failed: %s", o);
    free(o);
    REQUIRE(rc == 0);
    const char *hyper = "--max-steps 10 --batch-size 4 --micro-batch-size 2 --lr 1e-2 --warmup-steps 2 "
                        "--max-grad-norm 0.5 --lr-scheduler linear";
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s %s %s -q",
             model, dump, init, ref, hyper, ref_flags);
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "reference failed: %s", o);
    free(o);
    REQUIRE(rc == 0);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s %s %s --cutoff-len 256 "
             "--no-shuffle --dropout 0 --quiet --overwrite --save-steps 0", rosa_bin(), model, data, init, out, hyper,
             rosa_flags);
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "rosa train failed: %s", o);
    free(o);
    REQUIRE(rc == 0);
    cJSON *r = rosa_json_load(ref);
    REQUIRE(r);
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len;
    char *metrics = rosa_read_file(mp, &len);
    REQUIRE(metrics);
    float losses[10];
    int n = 0;
    cJSON *sel = cJSON_CreateArray();
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (j && cJSON_GetObjectItem(j, "loss") && n < 10) losses[n++] = (float)cJSON_GetObjectItem(j, "loss")->valuedouble;
        const cJSON *s = j ? cJSON_GetObjectItem(j, "dls_selection") : NULL;
        if (s) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(cJSON_GetObjectItem(j, "step")->valuedouble - 1));
            cJSON_AddItemToArray(pair, cJSON_Duplicate(cJSON_GetObjectItem(s, "layers"), 1));
            cJSON_AddItemToArray(sel, pair);
        }
        cJSON_Delete(j);
    }
    free(metrics);
    CHECK_EQ_INT(n, 10);
    double el = max_rel_json(losses, cJSON_GetObjectItem(r, "losses"), n);
    CHECK_MSG(el <= 1e-4, "%s: step losses differ by %g", label, el);
    if (strstr(ref_flags, "--dls on")) {
        CHECK_MSG(cJSON_Compare(sel, cJSON_GetObjectItem(r, "dls_selections"), 1), "%s: DLS selections differ", label);
        CHECK(cJSON_GetArraySize(sel) >= 2);
    }
    cJSON_Delete(sel);
    rosa_config c;
    REQUIRE(rosa_config_load(model, &c) == 0);
    rosa_adapter *a = rosa_adapter_load(out, &c);
    REQUIRE(a);
    double worst = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "adapter"), a->params[i].name);
        if (!want) {
            CHECK_MSG(0, "reference lacks %s", a->params[i].name);
            continue;
        }
        worst = fmax(worst, max_rel_json(a->w + a->params[i].offset, want, a->params[i].rows * a->params[i].cols));
    }
    CHECK_MSG(worst <= 1e-4, "%s: adapter differs from the reference by %g", label, worst);
    rosa_adapter_free(a);
    cJSON_Delete(r);
}

#define LORA_ALL "--method lora --rank 4 --alpha 8 --b-std 0.05 " \
                 "--target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
#define ROSA_MAKE "--method roae --rank 4 --alpha 1.5 --r-low 0.5 --targets q,k --b-std 0.3"
#define ROSA_TRAIN "--method rosa --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4"
#define ROSA_REF "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4"

TEST(train_lora_qwen3_matches_reference) { parity("qwen3-tiny", "q3-lora", LORA_ALL, "", ""); }
TEST(train_lora_qwen3_tied_bias_matches_reference) {
    parity("qwen3-tiny-tied-bias", "q3tb-lora", LORA_ALL, "", "");
}
TEST(train_rosa_dls_qwen3_matches_reference) { parity("qwen3-tiny", "q3-rosa", ROSA_MAKE, ROSA_TRAIN, ROSA_REF); }
TEST(train_lora_gemma3_matches_reference) { parity("gemma3-tiny", "g3-lora", LORA_ALL, "", ""); }
TEST(train_rosa_dls_gemma3_matches_reference) { parity("gemma3-tiny", "g3-rosa", ROSA_MAKE, ROSA_TRAIN, ROSA_REF); }
TEST(train_roae_pre_rope_gemma3_mm_matches_reference) {
    parity("gemma3-mm-tiny", "g3mm-roae", ROSA_MAKE " --placement pre-rope --form add",
           "--method roae --roae-placement pre-rope --roae-form add", "");
}
TEST(train_lora_windowed_mistral_matches_reference) {
    parity("mistral-window-tiny", "mw-lora", "--method lora --rank 4 --alpha 8 --b-std 0.05", "", "");
}

/* Every command on a family's tiny model: info, generate, loss (base and
 * adapter), train (LoRA with --recompute, RoSA in --dtype bf16 when the CPU
 * has it), merge (the merged model's loss is the adapter's), eval, analyze. */
static void commands(const char *casename, const char *label) {
    const char *model = tiny_model(casename, label);
    REQUIRE(model);
    char data[512], lora[512], rosa[512], merged[512], *o = NULL;
    snprintf(data, sizeof data, "%s-data.jsonl", model);
    snprintf(lora, sizeof lora, "%s-lora", model);
    snprintf(rosa, sizeof rosa, "%s-rosa", model);
    snprintf(merged, sizeof merged, "%s-merged", model);
    write_toy_records(data, 8);
    const rosa_config *c = NULL;
    rosa_model *m = rosa_model_load(model);
    REQUIRE(m);
    c = rosa_model_config(m);

    REQUIRE(run_shellf(&o, "%s info --model %s", rosa_bin(), model) == 0);
    CHECK_MSG(strstr(o, c->architecture) != NULL, "info does not name %s: %s", c->architecture, o);
    free(o);
    REQUIRE(run_shellf(&o, "%s generate --model %s --prompt 'Is the sun red?' --max-new-tokens 6", rosa_bin(), model) == 0);
    free(o);
    const char *common = "--max-steps 2 --batch-size 2 --micro-batch-size 2 --cutoff-len 64 --save-steps 0 --quiet "
                         "--overwrite";
    int rc = run_shellf(&o, "%s train --model %s --data %s --output %s --method lora --target-modules all "
                        "--recompute %s", rosa_bin(), model, data, lora, common);
    CHECK_MSG(rc == 0, "train lora --recompute: %s", o);
    free(o);
    int bf16 = rosa_bf16_supported();
    rc = run_shellf(&o, "%s train --model %s --data %s --output %s --method rosa --dls-interval 1 --dls-warmup 1 %s %s",
                    rosa_bin(), model, data, rosa, bf16 ? "--dtype bf16" : "", common);
    CHECK_MSG(rc == 0, "train rosa: %s", o);
    free(o);
    /* The LoRA adapter's loss, through the hook and merged into the weights. */
    double l_adapter = 0, l_merged = 0;
    rc = run_shellf(&o, "%s loss --model %s --adapter %s --data %s --cutoff-len 64 --json", rosa_bin(), model, lora, data);
    CHECK_MSG(rc == 0, "loss: %s", o);
    cJSON *j = rc == 0 ? cJSON_Parse(strchr(o, '{')) : NULL;
    if (j) l_adapter = cJSON_GetObjectItem(j, "token_mean_loss") ? cJSON_GetObjectItem(j, "token_mean_loss")->valuedouble : 0;
    cJSON_Delete(j);
    free(o);
    rc = run_shellf(&o, "%s merge --model %s --adapter %s --output %s", rosa_bin(), model, lora, merged);
    CHECK_MSG(rc == 0, "merge: %s", o);
    free(o);
    rc = run_shellf(&o, "%s loss --model %s --data %s --cutoff-len 64 --json", rosa_bin(), merged, data);
    CHECK_MSG(rc == 0, "loss of the merged model: %s", o);
    j = rc == 0 ? cJSON_Parse(strchr(o, '{')) : NULL;
    if (j) l_merged = cJSON_GetObjectItem(j, "token_mean_loss") ? cJSON_GetObjectItem(j, "token_mean_loss")->valuedouble : 0;
    cJSON_Delete(j);
    free(o);
    CHECK_MSG(l_adapter > 0 && fabs(l_adapter - l_merged) < 1e-4 * l_adapter, "%s: loss %g with the adapter, %g merged",
              label, l_adapter, l_merged);
    if (c->arch == ROSA_ARCH_GEMMA3_MM) {
        /* PEFT names the multimodal model's layers under language_model; the
         * same adapter under those names gives the same loss. */
        rc = run_shellf(&o, PY " -c \"import json, struct, sys\n"
                        "p = sys.argv[1] + '/adapter_model.safetensors'; b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
                        "h = json.loads(b[8:8 + n]); pre = 'base_model.model.model.layers.'\n"
                        "h = {('base_model.model.model.language_model.layers.' + k[len(pre):] if k.startswith(pre) else k): v "
                        "for k, v in h.items()}\n"
                        "t = json.dumps(h).encode(); open(p, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])\" %s",
                        lora);
        CHECK_MSG(rc == 0, "renaming: %s", o);
        free(o);
        rc = run_shellf(&o, "%s loss --model %s --adapter %s --data %s --cutoff-len 64 --json", rosa_bin(), model, lora,
                        data);
        CHECK_MSG(rc == 0 && strstr(o, "token_mean_loss"), "loss with PEFT's multimodal names: %s", o);
        j = rc == 0 ? cJSON_Parse(strchr(o, '{')) : NULL;
        double l_peft = j && cJSON_GetObjectItem(j, "token_mean_loss") ? cJSON_GetObjectItem(j, "token_mean_loss")->valuedouble : 0;
        CHECK_MSG(l_peft == l_adapter, "loss %g with PEFT's names, %g with rosa's", l_peft, l_adapter);
        cJSON_Delete(j);
        free(o);
    }
    rc = run_shellf(&o, "%s eval --model %s --adapter %s --data-dir %s --tasks boolq --limit 2 --max-new-tokens 4 --quiet "
                    "--output %s-eval.json", rosa_bin(), model, rosa, shared_path("data/llm-adapters"), model);
    CHECK_MSG(rc == 0, "eval: %s", o);
    free(o);
    rc = run_shellf(&o, "%s analyze --model %s --adapter %s --data %s --limit 4 --output %s-analysis.json", rosa_bin(),
                    model, rosa, data, model);
    CHECK_MSG(rc == 0, "analyze: %s", o);
    free(o);
    /* Each layer reports its own RoPE frequencies: pair 1 turns at
     * base^(-2/hd), divided by the linear factor where scaling applies. */
    char path[600];
    snprintf(path, sizeof path, "%s-analysis.json", model);
    cJSON *an = rosa_json_load(path);
    CHECK(an != NULL);
    for (int l = 0; an && l < c->num_layers; l++) {
        rosa_layer_props p;
        rosa_layer_props_of(c, l, &p);
        double want = pow(p.rope_theta, -2.0 / c->head_dim) / (p.rope_scaling ? c->rope_factor : 1.0);
        const cJSON *f = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(an, "layers"), l), "inv_freq");
        double got = f ? cJSON_GetArrayItem(f, 1)->valuedouble : 0;
        CHECK_MSG(fabs(got - want) <= 1e-6 * want, "%s layer %d: inv_freq[1] %g, expected %g", label, l, got, want);
    }
    cJSON_Delete(an);
    rosa_model_free(m);
}

TEST(commands_work_on_qwen3) { commands("qwen3-tiny", "q3-cmd"); }
TEST(commands_work_on_gemma3) { commands("gemma3-tiny", "g3-cmd"); }
TEST(commands_work_on_gemma3_multimodal) { commands("gemma3-mm-tiny", "g3mm-cmd"); }

/* The Gemma-style tokenizer: the normalizer's "▁", merges, byte fallback,
 * <bos> from the template and no <eos>, and decoding back to the text. */
TEST(gemma_style_tokenizer_round_trip) {
    const char *dir = tiny_model("gemma3-tiny", "g3-tok");
    REQUIRE(dir);
    rosa_tokenizer *tok = rosa_tokenizer_load(dir);
    REQUIRE(tok);
    CHECK_EQ_INT(rosa_tokenizer_bos_id(tok), 1);
    CHECK_EQ_INT(rosa_tokenizer_eos_id(tok), 2);
    const char *text = "so the caf\xC3\xA9";
    int32_t *ids = NULL;
    size_t n = 0;
    REQUIRE(rosa_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n) == 0);
    /* <bos> s o ▁the ▁ c a f <0xC3> <0xA9> */
    CHECK_EQ_INT((int)n, 10);
    CHECK(n == 10 && ids[0] == 1 && ids[3] == 102 && ids[8] == 103 && ids[9] == 104);
    char *back = rosa_tokenizer_decode(tok, ids, n, 1, NULL);
    CHECK_MSG(back && strcmp(back, text) == 0, "decoded \"%s\"", back ? back : "(null)");
    free(back);
    free(ids);
    rosa_tokenizer_free(tok);
}

/* ------------------------------------------------------------ config.json */

static int parse(const char *json, rosa_config *c) { return rosa_config_parse(json, strlen(json), "config.json", c); }

#define GEMMA_TEXT "\"architectures\": [\"Gemma3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 96, " \
                   "\"num_hidden_layers\": 7, \"vocab_size\": 128"

TEST(config_qwen3_and_gemma3_defaults_and_layer_types) {
    rosa_config c;
    /* Qwen3Config's head_dim default is 128, not hidden / heads. */
    REQUIRE(parse("{\"architectures\": [\"Qwen3ForCausalLM\"], \"vocab_size\": 64, \"hidden_size\": 64, "
                  "\"intermediate_size\": 96, \"num_hidden_layers\": 4, \"num_attention_heads\": 4}", &c) == 0);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK(!c.attention_bias && !c.qkv_bias && c.sliding_window == 0);
    /* use_sliding_window: the layers from max_window_layers on slide. */
    REQUIRE(parse("{\"architectures\": [\"Qwen3ForCausalLM\"], \"vocab_size\": 64, \"hidden_size\": 64, "
                  "\"intermediate_size\": 96, \"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"head_dim\": 16, "
                  "\"use_sliding_window\": true, \"sliding_window\": 8, \"max_window_layers\": 2}", &c) == 0);
    CHECK(!rosa_arch_layer_slides(&c, 1) && rosa_arch_layer_slides(&c, 2) && rosa_arch_layer_slides(&c, 3));
    /* Gemma3TextConfig's defaults and sliding_window_pattern 6: layer 5 is global. */
    REQUIRE(parse("{" GEMMA_TEXT "}", &c) == 0);
    CHECK_EQ_INT(c.num_heads, 8);
    CHECK_EQ_INT(c.num_kv_heads, 4);
    CHECK_EQ_INT(c.head_dim, 256);
    CHECK_EQ_INT(c.sliding_window, 4096);
    CHECK(c.tie_word_embeddings && c.rope_theta == 1e6f && c.rope_local_theta == 1e4f && c.attn_scale == 1.0f / 16);
    CHECK_EQ_INT(c.bos_token_id, 2);
    for (int l = 0; l < 7; l++) CHECK(rosa_arch_layer_slides(&c, l) == (l != 5));
    rosa_layer_props p;
    rosa_layer_props_of(&c, 5, &p);
    CHECK(p.window == 0 && p.rope_theta == 1e6f && p.rope_scaling);
    rosa_layer_props_of(&c, 4, &p);
    CHECK(p.window == 4096 && p.rope_theta == 1e4f && !p.rope_scaling);
    /* transformers 5's rope_parameters, per layer type. */
    REQUIRE(parse("{" GEMMA_TEXT ", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", \"factor\": 8.0, "
                  "\"rope_theta\": 500000.0}, \"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 20000.0}}}",
                  &c) == 0);
    CHECK(c.rope_theta == 5e5f && c.rope_local_theta == 2e4f && c.rope_type == ROSA_ROPE_LINEAR && c.rope_factor == 8.0f);
    /* The multimodal checkpoint: text_config over the same defaults. */
    REQUIRE(rosa_config_load(testdata_path("gemma3-mm-tiny"), &c) == 0);
    CHECK(c.arch == ROSA_ARCH_GEMMA3_MM && c.hidden_size == 32 && c.attn_scale == 1.0f / 16 && c.tie_word_embeddings);
    for (int l = 0; l < 6; l++) CHECK(rosa_arch_layer_slides(&c, l) == (l != 5));
}

TEST(config_refuses_what_gemma3_does_not_use) {
    static const struct {
        const char *extra, *msg;
    } bad[] = {
        {"\"attn_logit_softcapping\": 50.0", "attn_logit_softcapping"},
        {"\"final_logit_softcapping\": 30.0", "final_logit_softcapping"},
        {"\"hidden_activation\": \"gelu\"", "hidden_activation"},
        {"\"layer_types\": [\"full_attention\"]", "layer_types"},
        {"\"layer_types\": [\"sliding_attention\", \"x\", \"full_attention\", \"full_attention\", "
         "\"full_attention\", \"full_attention\", \"full_attention\"]", "layer_types[1]"},
        {"\"use_bidirectional_attention\": true", "bidirectional"},
        {"\"query_pre_attn_scalar\": 0", "query_pre_attn_scalar"},
    };
    rosa_config c;
    char json[1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(json, sizeof json, "{" GEMMA_TEXT ", %s}", bad[i].extra);
        CHECK_MSG(parse(json, &c) < 0 && strstr(rosa_last_error(), bad[i].msg), "%s: %s", bad[i].extra, rosa_last_error());
    }
    CHECK(parse("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"vision_config\": {}}", &c) < 0 &&
          strstr(rosa_last_error(), "text_config"));
}
