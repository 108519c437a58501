/* cmd_model.c: `rosa generate` and `rosa info`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "rosa.h"
#include "rosa_train.h"

typedef struct {
    rosa_detok *detok;
    int quiet_text;
} stream_state;

static int on_token(int32_t id, void *user) {
    stream_state *s = user;
    if (!s->detok) return 0;
    size_t n;
    const char *piece = rosa_detok_push(s->detok, id, &n);
    if (piece && !s->quiet_text) {
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
    }
    return 0;
}

/* The prompt's ids: --prompt-ids as given, else the tokenizer's encoding with
 * its special tokens; an empty encoding falls back to BOS alone. */
static int prompt_ids(const rosa_model *m, const char *prompt, const char *ids_text, int32_t **ids, int *n) {
    const rosa_tokenizer *tok = rosa_model_tokenizer(m);
    const rosa_config *c = rosa_model_config(m);
    if (ids_text) {
        if (rosa_parse_int_list(ids_text, ids, n) < 0) {
            die_msg("--prompt-ids: expected a list of token ids like \"1,2,3\"");
            return -1;
        }
    } else {
        if (!tok) {
            die_msg("the model directory has no tokenizer.json: pass --prompt-ids");
            return -1;
        }
        size_t nn;
        if (rosa_tokenizer_encode(tok, prompt, strlen(prompt), 1, ids, &nn) < 0) {
            die_msg("--prompt: %s", rosa_last_error());
            return -1;
        }
        *n = (int)nn;
    }
    if (*n == 0) {
        int32_t bos = tok ? rosa_tokenizer_bos_id(tok) : -1;
        if (bos < 0) bos = c->bos_token_id;
        if (bos < 0) {
            die_msg("the prompt is empty and the model has no BOS token to start from");
            return -1;
        }
        int32_t *one = realloc(*ids, sizeof(int32_t));
        if (!one) return -1;
        one[0] = bos;
        *ids = one;
        *n = 1;
    }
    return 0;
}

/* The memory plan of a generation, from the headers, before the model is
 * loaded: refused above the memory available.  The prompt's tokens are
 * bounded by its bytes (plus BOS and EOS) or counted from --prompt-ids. */
static int check_generate_plan(const char *model_dir, rosa_dtype compute, rosa_quant quant, const char *ids_text,
                               const char *prompt, int max_new) {
    rosa_model_info mi;
    if (rosa_model_inspect(model_dir, &mi) < 0) return die_msg("%s", rosa_last_error()), -1;
    int n_prompt = 2 + (int)strlen(prompt);
    if (ids_text) {
        n_prompt = 1;
        for (const char *c = ids_text; *c; c++) n_prompt += *c == ',';
    }
    rosa_memory_plan p;
    rosa_plan_generate(&mi, compute, quant, 1, n_prompt, n_prompt + max_new, &p);
    int64_t avail = rosa_mem_available();
    if (avail <= 0 || p.total <= avail) return 0;
    rosa_memory_plan q; /* what would fit: int8, the other dtype, or a shorter generation */
    char fit[96] = "";
    if (!quant) {
        rosa_plan_generate(&mi, ROSA_DTYPE_F32, ROSA_QUANT_INT8, 1, n_prompt, n_prompt + max_new, &q);
        if (q.total <= avail) snprintf(fit, sizeof fit, "; --quantize int8 fits (%.1f MiB)", q.total / 1048576.0);
    }
    rosa_dtype other = compute == ROSA_DTYPE_BF16 || quant ? ROSA_DTYPE_F32 : ROSA_DTYPE_BF16;
    rosa_plan_generate(&mi, other, ROSA_QUANT_NONE, 1, n_prompt, n_prompt + max_new, &q);
    if (!fit[0] && q.total <= avail)
        snprintf(fit, sizeof fit, "; --dtype %s%s fits (%.1f MiB)", other == ROSA_DTYPE_BF16 ? "bf16" : "fp32",
                 quant ? " without --quantize" : "", q.total / 1048576.0);
    rosa_plan_generate(&mi, compute, quant, 1, n_prompt, n_prompt + 1, &q);
    if (!fit[0] && q.total <= avail) snprintf(fit, sizeof fit, "; fewer --max-new-tokens would fit");
    die_msg("generation needs about %.1f MiB (weights %.1f MiB, KV cache of %d positions %.1f MiB, scratch %.1f MiB), "
            "more than the memory available (MemAvailable %.1f MiB)%s", p.total / 1048576.0, p.weights / 1048576.0,
            n_prompt + max_new, p.kv_cache / 1048576.0, p.scratch / 1048576.0, avail / 1048576.0,
            fit[0] ? fit : "; nothing fits: a smaller model, or a machine with more memory");
    return -1;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = "", *ids_text = NULL, *adapter_dir = NULL, *dtype = "fp32",
               *quantize = "none";
    rosa_gen_params gp;
    rosa_gen_params_default(&gp);
    int threads = 0, json = 0, quiet = 0, ignore_eos = 0;
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "Hugging Face model directory", 1, 0, "m"},
        {"adapter", ARG_STR, &adapter_dir, "DIR", "apply this adapter (PEFT LoRA directory)", 0, 0, NULL},
        {"prompt", ARG_STR, &prompt, "TEXT", "prompt text (default: empty, i.e. BOS alone)", 0, 0, "p"},
        {"prompt-ids", ARG_STR, &ids_text, "IDS", "prompt as token ids \"1,2,3\" instead of text", 0, 0, NULL},
        {"max-new-tokens", ARG_INT, &gp.max_new_tokens, "N", "tokens to generate at most (default 256; 0 to 1048576)", 0,
         0, "n"},
        {"temperature", ARG_FLOAT, &gp.temperature, "T", "0 = greedy (default); > 0 samples", 0, 0, NULL},
        {"top-k", ARG_INT, &gp.top_k, "K", "sample among the K most likely tokens (0 = off)", 0, 0, NULL},
        {"top-p", ARG_FLOAT, &gp.top_p, "P", "nucleus sampling mass (1 = off)", 0, 0, NULL},
        {"seed", ARG_U64, &gp.seed, "S", "random seed for sampling (default 0)", 0, 0, "s"},
        {"dtype", ARG_STR, &dtype, "fp32|bf16", "matrix products of the frozen model (default fp32)", 0, 0, NULL},
        {"quantize", ARG_STR, &quantize, "none|int8", QUANTIZE_HELP, 0, 0, NULL},
        {"threads", ARG_INT, &threads, "N", "threads (default: all cores)", 0, 0, "t"},
        {"ignore-eos", ARG_FLAG, &ignore_eos, NULL, "do not stop at EOS", 0, 0, NULL},
        {"json", ARG_FLAG, &json, NULL, "print one JSON object with ids, text and speed", 0, 0, NULL},
        {"quiet", ARG_FLAG, &quiet, NULL, "no statistics on stderr", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"generate", "--model DIR [--prompt TEXT] [options]",
                    "Generates a continuation of the prompt, streaming it to stdout.", specs, NULL, NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (arg_seen(specs, "prompt") && arg_seen(specs, "prompt-ids"))
        return die_msg("--prompt and --prompt-ids do not go together: give one"), 2;
    if (gp.max_new_tokens < 0 || gp.max_new_tokens > ROSA_MAX_NEW_TOKENS)
        return die_msg("--max-new-tokens must be in [0, %d], got %d", ROSA_MAX_NEW_TOKENS, gp.max_new_tokens), 2;
    if (gp.temperature < 0) return die_msg("--temperature must be >= 0"), 2;
    if (gp.top_k < 0) return die_msg("--top-k must be >= 0"), 2;
    if (!(gp.top_p > 0 && gp.top_p <= 1)) return die_msg("--top-p must be in (0, 1]"), 2;
    /* transformers warns the same way: these shape sampling only. */
    if (gp.temperature == 0 && (arg_seen(specs, "top-k") || arg_seen(specs, "top-p")))
        fprintf(stderr, "rosa: warning: --%s has no effect with greedy decoding (--temperature 0): give --temperature > 0 "
                        "to sample\n", arg_seen(specs, "top-k") ? "top-k" : "top-p");
    gp.stop_at_eos = !ignore_eos;
    rosa_dtype compute;
    rosa_quant quant;
    if (parse_dtype(dtype, &compute) < 0 || parse_quantize(quantize, compute, &quant) < 0) return 2;
    if (take_threads(specs, threads) < 0) return 2;
    if (check_generate_plan(model_dir, compute, quant, ids_text, prompt, gp.max_new_tokens) < 0) return 1;

    rosa_model *m = rosa_model_load(model_dir);
    if (!m) return die_msg("%s", rosa_last_error()), 1;
    if (rosa_model_quantize(m, quant) < 0) { /* before the adapter: on int8 it is attached, not merged */
        die_msg("%s", rosa_last_error());
        rosa_model_free(m);
        return 1;
    }
    rosa_adapter *a = NULL; /* attached to m when not merged: freed after it */
    if (adapter_dir) {
        a = rosa_adapter_load(adapter_dir, rosa_model_config(m));
        int rc = a ? rosa_adapter_apply(m, a) : -1;
        if (rc < 0) {
            die_msg("%s", rosa_last_error());
            rosa_model_free(m);
            rosa_adapter_free(a);
            return 1;
        }
    }
    if (rosa_model_set_compute_inference(m, compute) < 0) { /* after the adapter: merged weights get packed */
        die_msg("%s", rosa_last_error());
        rosa_model_free(m);
        rosa_adapter_free(a);
        return 1;
    }
    int32_t *ids = NULL, *out = NULL;
    int n_ids = 0, n_out = 0, status = 1;
    if (prompt_ids(m, prompt, ids_text, &ids, &n_ids) < 0) goto done;
    out = rosa_malloc(sizeof(int32_t) * ((size_t)gp.max_new_tokens + 1), "generated ids");
    if (!out) {
        die_msg("%s", rosa_last_error());
        goto done;
    }
    const rosa_tokenizer *tok = rosa_model_tokenizer(m);
    stream_state st = {tok ? rosa_detok_new(tok, 1) : NULL, json};
    double t0 = rosa_now();
    int rc = rosa_generate(m, ids, n_ids, &gp, on_token, &st, out, &n_out);
    double dt = rosa_now() - t0;
    if (st.detok && !json) {
        size_t n;
        const char *tail = rosa_detok_finish(st.detok, &n);
        if (tail) fwrite(tail, 1, n, stdout);
        putchar('\n');
    }
    rosa_detok_free(st.detok);
    if (rc < 0) {
        die_msg("%s", rosa_last_error());
        goto done;
    }
    if (json) {
        printf("{\"prompt_ids\": [");
        for (int i = 0; i < n_ids; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("], \"ids\": [");
        for (int i = 0; i < n_out; i++) printf("%s%d", i ? ", " : "", out[i]);
        printf("], \"text\": ");
        size_t len = 0;
        char *text = tok ? rosa_tokenizer_decode(tok, out, (size_t)n_out, 1, &len) : NULL;
        if (text) print_json_string(text, len);
        else printf("null");
        free(text);
        printf(", \"seconds\": %.4f, \"tokens_per_second\": %.2f}\n", dt, dt > 0 ? n_out / dt : 0.0);
    } else if (!quiet) {
        fprintf(stderr, "rosa: %d prompt + %d new tokens in %.2f s (%.1f tokens/s, %d threads)\n", n_ids, n_out, dt,
                dt > 0 ? n_out / dt : 0.0, rosa_get_threads());
    }
    status = 0;
done:
    free(ids);
    free(out);
    rosa_model_free(m);
    rosa_adapter_free(a);
    return status;
}

static const char *rope_name(rosa_rope_type t) {
    return t == ROSA_ROPE_LLAMA3 ? "llama3" : t == ROSA_ROPE_LINEAR ? "linear" : "default";
}

static const char *dtype_name(rosa_dtype d) {
    return d == ROSA_DTYPE_F16 ? "F16" : d == ROSA_DTYPE_BF16 ? "BF16" : "F32";
}

/* The plans info prints: a default train run and generation, in FP32, BF16
 * and int8 (FP32 products of int8 weights). */
enum { INFO_TRAIN_MICRO = 4, INFO_TRAIN_LEN = 256, INFO_GEN_CTX = 2048, INFO_MODES = 3 };
static const char *const info_keys[INFO_MODES] = {"fp32", "bf16", "int8"};
static const char *const info_flags[INFO_MODES] = {"--dtype fp32   ", "--dtype bf16   ", "--quantize int8"};

static int info_plans(const rosa_model_info *mi, rosa_memory_plan train[INFO_MODES], rosa_memory_plan gen[INFO_MODES]) {
    rosa_train_options o;
    rosa_train_options_default(&o);
    o.method = rosa_peft_find("lora", NULL);
    o.micro_batch_size = INFO_TRAIN_MICRO;
    for (int k = 0; k < INFO_MODES; k++) {
        o.compute = k == 1 ? ROSA_DTYPE_BF16 : ROSA_DTYPE_F32;
        o.quantize = k == 2 ? ROSA_QUANT_INT8 : ROSA_QUANT_NONE;
        if (rosa_plan_train(mi, &o, NULL, INFO_TRAIN_LEN, &train[k]) < 0) return -1;
        rosa_plan_generate(mi, o.compute, o.quantize, 1, INFO_GEN_CTX, INFO_GEN_CTX, &gen[k]);
    }
    return 0;
}

static void print_plan_json(const char *key, const rosa_memory_plan *p) {
    printf("\"%s\": {\"total_bytes\": %lld, \"weights_bytes\": %lld, \"load_extra_bytes\": %lld, "
           "\"activations_bytes\": %lld, \"adapter_bytes\": %lld, \"optimizer_bytes\": %lld, \"kv_cache_bytes\": %lld, "
           "\"scratch_bytes\": %lld, \"process_bytes\": %lld, \"libraries_bytes\": %lld}",
           key, (long long)p->total, (long long)p->weights, (long long)p->load_extra, (long long)p->activations,
           (long long)p->adapter, (long long)p->optimizer, (long long)p->kv_cache, (long long)p->scratch,
           (long long)p->process, (long long)p->libraries);
}

/* b in MiB below a GiB, else in GiB, into one of two rotating buffers. */
static const char *size_str(int64_t b) {
    static char buf[4][32];
    static int k;
    char *s = buf[k++ % 4];
    if (b < (1LL << 30)) snprintf(s, sizeof buf[0], "%.1f MiB", (double)b / 1048576.0);
    else snprintf(s, sizeof buf[0], "%.2f GiB", (double)b / 1073741824.0);
    return s;
}

int cmd_info(int argc, char **argv) {
    const char *model_dir = NULL;
    int json = 0;
    arg_spec specs[] = {
        {"model", ARG_STR, &model_dir, "DIR", "Hugging Face model directory", 1, 0, NULL},
        {"json", ARG_FLAG, &json, NULL, "print JSON", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"info", "--model DIR [--json]",
                    "Describes a model from config.json and the safetensors headers alone (no tensor is read): "
                    "architecture, sizes, parameters, and the memory plans of train and generate.",
                    specs, NULL, NULL, NULL};
    int r = args_parse(&p, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    rosa_model_info mi;
    rosa_memory_plan train[INFO_MODES], gen[INFO_MODES];
    if (rosa_model_inspect(model_dir, &mi) < 0 || info_plans(&mi, train, gen) < 0)
        return die_msg("%s", rosa_last_error()), 1;
    const rosa_config *c = &mi.cfg;
    long long params = (long long)mi.n_params, wbytes = (long long)mi.stored_bytes;
    /* KV cache: keys and values, fp32, per token. */
    long long kv_per_token = 2LL * c->num_layers * c->num_kv_heads * c->head_dim * 4;
    int sliding = 0;
    for (int l = 0; c->sliding_window > 0 && l < c->num_layers; l++) sliding += c->sliding_layers[l / 8] >> (l % 8) & 1;
    if (mi.data_missing)
        fprintf(stderr, "rosa: warning: %s: the safetensors headers describe %lld bytes that the files do not hold "
                        "(truncated or partial download): the model cannot be loaded\n",
                model_dir, (long long)mi.data_missing);
    if (json) {
        printf("{\"architecture\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, "
               "\"num_layers\": %d, \"num_heads\": %d, \"num_kv_heads\": %d, \"head_dim\": %d, "
               "\"max_position_embeddings\": %d, \"rope_theta\": %g, \"rope_type\": \"%s\", "
               "\"tie_word_embeddings\": %s, \"weight_dtype\": \"%s\", \"parameters\": %lld, "
               "\"weight_bytes\": %lld, \"weight_files\": %d, \"missing_bytes\": %lld, \"kv_cache_bytes_per_token\": %lld, "
               "\"sliding_window\": %d, \"sliding_layers\": %d, "
               "\"tokenizer\": %s, \"plans\": {\"train\": {\"micro_batch\": %d, \"tokens\": %d, ",
               c->architecture, c->vocab_size, c->hidden_size, c->intermediate_size, c->num_layers, c->num_heads,
               c->num_kv_heads, c->head_dim, c->max_position_embeddings, c->rope_theta, rope_name(c->rope_type),
               c->tie_word_embeddings ? "true" : "false", dtype_name(c->weight_dtype), params, wbytes, mi.n_files,
               (long long)mi.data_missing, kv_per_token, sliding ? c->sliding_window : 0, sliding,
               mi.has_tokenizer ? "\"tokenizer.json\"" : "null", INFO_TRAIN_MICRO, INFO_TRAIN_LEN);
        for (int k = 0; k < INFO_MODES; k++) {
            if (k) printf(", ");
            print_plan_json(info_keys[k], &train[k]);
        }
        printf("}, \"generate\": {\"tokens\": %d, ", INFO_GEN_CTX);
        for (int k = 0; k < INFO_MODES; k++) {
            if (k) printf(", ");
            print_plan_json(info_keys[k], &gen[k]);
        }
        printf("}}}\n");
    } else {
        printf("model         %s\n", model_dir);
        printf("architecture  %s\n", c->architecture);
        printf("layers        %d\n", c->num_layers);
        printf("hidden        %d (intermediate %d)\n", c->hidden_size, c->intermediate_size);
        printf("heads         %d query, %d key/value, head_dim %d\n", c->num_heads, c->num_kv_heads, c->head_dim);
        printf("vocab         %d%s\n", c->vocab_size, c->tie_word_embeddings ? " (tied embeddings)" : "");
        printf("positions     %d (RoPE theta %g, %s scaling)\n", c->max_position_embeddings, c->rope_theta,
               rope_name(c->rope_type));
        if (sliding) {
            printf("attention     window of %d tokens on %d of %d layers", c->sliding_window, sliding, c->num_layers);
            if (c->rope_local_theta > 0) printf(" (their RoPE theta %g, unscaled)", c->rope_local_theta);
            printf("\n");
        }
        printf("parameters    %lld (%.2f M)\n", params, params / 1e6);
        printf("weights       %s, %s in %d file%s\n", dtype_name(c->weight_dtype), size_str(wbytes), mi.n_files,
               mi.n_files == 1 ? "" : "s");
        printf("kv cache      %.1f KiB per token\n", kv_per_token / 1024.0);
        printf("tokenizer     %s\n", mi.has_tokenizer ? "tokenizer.json" : "none");
        printf("memory plan   (peak resident memory; docs/memory.md)\n");
        for (int k = 0; k < INFO_MODES; k++)
            printf("  train %s     %s (weights %s, %s more while loading; LoRA, micro-batch %d x %d "
                   "tokens: activations %s)\n",
                   info_flags[k], size_str(train[k].total), size_str(train[k].weights),
                   size_str(train[k].load_extra), INFO_TRAIN_MICRO, INFO_TRAIN_LEN, size_str(train[k].activations));
        for (int k = 0; k < INFO_MODES; k++)
            printf("  generate %s  %s (weights %s, KV cache of %d tokens %s)\n", info_flags[k],
                   size_str(gen[k].total), size_str(gen[k].weights), INFO_GEN_CTX, size_str(gen[k].kv_cache));
    }
    return 0;
}
