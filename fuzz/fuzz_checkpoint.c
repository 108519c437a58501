/* fuzz_checkpoint: what `rosa train --resume` reads of a checkpoint besides
 * its adapter (rosa_checkpoint_load): rosa_state.json and
 * optimizer.safetensors, for a fixed LoRA adapter (rank 1 on q_proj of a
 * 2-layer model) in a run of 4 steps resuming from checkpoint-2 (its HF
 * trainer_state.json is "{}": no best checkpoint).  Input:
 * rosa_state.json, FUZZ_SEP, optimizer.safetensors.  An input whose state
 * mentions "dls" is read with layer selection on (2 layers, k 1).
 *
 * Properties: an accepted checkpoint is at step 2 of at most 4 steps; its
 * moments are finite, second moments >= 0, step counts in [0, 2]; its DLS
 * counts are in [0, 2], its scores finite and >= 0; and it is one the saver
 * writes: saved and loaded again it gives the same state bit for bit. */
#include <math.h>

#include "fuzz_common.h"
#include "arch/config.h"
#include "peft/lora.h"
#include "train/checkpoint.h"

static const char ck_config_json[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 16, \"hidden_size\": 8, \"intermediate_size\": 12,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1}";
static rosa_config ck_cfg;
static rosa_adapter *ck_adapter;
static char ck_run[PATH_MAX], ck_copy[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 1;
    o.targets = 1u << PROJ_Q;
    char dir[PATH_MAX + 32];
    snprintf(ck_run, sizeof ck_run, "%s", fuzz_path("run"));
    snprintf(ck_copy, sizeof ck_copy, "%s", fuzz_path("copy"));
    snprintf(dir, sizeof dir, "%s/checkpoint-2", ck_run);
    mkdir(ck_run, 0755);
    mkdir(ck_copy, 0755);
    if (rosa_config_parse(ck_config_json, sizeof ck_config_json - 1, "fuzz config", &ck_cfg) < 0 ||
        !(ck_adapter = rosa_adapter_new_lora(&ck_cfg, &o, 1)) || rosa_adapter_save(ck_adapter, dir, "fuzz") < 0) {
        fprintf(stderr, "fuzz: %s\n", rosa_last_error());
        abort();
    }
    return 0;
}

static int ck_dls_options(rosa_dls *d) {
    rosa_dls_options o;
    rosa_dls_options_default(&o);
    o.enabled = 1;
    o.interval = o.warmup = 1;
    return rosa_dls_init(d, &o, ck_cfg.num_layers);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sj, *op;
    size_t nsj, nop;
    fuzz_split(data, size, &sj, &nsj, &op, &nop);
    fuzz_write("run/checkpoint-2/rosa_state.json", sj, nsj);
    fuzz_write("run/checkpoint-2/trainer_state.json", (const uint8_t *)"{}", 2);
    if (op) fuzz_write("run/checkpoint-2/optimizer.safetensors", op, nop);
    else fuzz_remove("run/checkpoint-2/optimizer.safetensors");
    int with_dls = nsj >= 5 && memmem(sj, nsj, "\"dls\"", 5) != NULL;
    rosa_adamw opt;
    rosa_dls dls = {0};
    if (rosa_adamw_init(&opt, ck_adapter) < 0 || (with_dls && ck_dls_options(&dls) < 0)) abort();
    rosa_checkpoint_state st = {.dls = with_dls ? &dls : NULL, .run_steps = 4};
    if (rosa_checkpoint_load(ck_run, 2, &ck_cfg, ck_adapter, &opt, &st) < 0) {
        fuzz_refused();
        rosa_adamw_free(&opt);
        rosa_dls_free(&dls);
        return 0;
    }
    FUZZ_ASSERT(st.step == 2 && st.total_steps >= 2, "step %lld of %lld", (long long)st.step,
                (long long)st.total_steps);
    for (size_t k = 0; k < opt.n_floats; k++)
        FUZZ_ASSERT(isfinite(opt.m[k]) && isfinite(opt.v[k]) && opt.v[k] >= 0, "moment %zu: %g %g", k,
                    (double)opt.m[k], (double)opt.v[k]);
    for (int i = 0; i < opt.n_params; i++) FUZZ_ASSERT(opt.step[i] >= 0 && opt.step[i] <= 2, "step count %d", i);
    for (int l = 0; with_dls && l < dls.L; l++)
        FUZZ_ASSERT(dls.counts[l] >= 0 && dls.counts[l] <= 2 && isfinite(dls.scores[l]) && dls.scores[l] >= 0,
                    "dls layer %d", l);
    /* what was accepted is what the saver writes: a round trip changes nothing */
    FUZZ_ASSERT(rosa_checkpoint_save(ck_copy, ck_adapter, &opt, &st, "fuzz") == 0, "save: %s", rosa_last_error());
    rosa_adamw back;
    rosa_dls dback = {0};
    if (rosa_adamw_init(&back, ck_adapter) < 0 || (with_dls && ck_dls_options(&dback) < 0)) abort();
    rosa_checkpoint_state st2 = {.dls = with_dls ? &dback : NULL, .run_steps = 4};
    FUZZ_ASSERT(rosa_checkpoint_load(ck_copy, 2, &ck_cfg, ck_adapter, &back, &st2) == 0,
                "a saved checkpoint does not load: %s", rosa_last_error());
    FUZZ_ASSERT(st2.step == st.step && st2.total_steps == st.total_steps && st2.seed == st.seed &&
                    memcmp(opt.m, back.m, sizeof(float) * opt.n_floats) == 0 &&
                    memcmp(opt.v, back.v, sizeof(float) * opt.n_floats) == 0 &&
                    memcmp(opt.step, back.step, sizeof(int64_t) * (size_t)opt.n_params) == 0,
                "save + load changed the optimizer state");
    if (with_dls)
        FUZZ_ASSERT(memcmp(dls.rng.s, dback.rng.s, sizeof dls.rng.s) == 0 && dls.have_scores == dback.have_scores &&
                        memcmp(dls.scores, dback.scores, sizeof(float) * (size_t)dls.L) == 0 &&
                        memcmp(dls.active, dback.active, (size_t)dls.L) == 0 &&
                        memcmp(dls.counts, dback.counts, sizeof(int64_t) * (size_t)dls.L) == 0,
                    "save + load changed the DLS state");
    rosa_adamw_free(&back);
    rosa_dls_free(&dback);
    rosa_adamw_free(&opt);
    rosa_dls_free(&dls);
    return 0;
}
