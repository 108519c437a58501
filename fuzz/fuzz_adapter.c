/* fuzz_adapter: the adapter loader (adapter_config.json +
 * adapter_model.safetensors: LoRA with DoRA and patterns, ROSA, SHiRA with
 * and without its saved indices, FourierFT) against a fixed tiny model
 * config.  Input: adapter_config.json, FUZZ_SEP, adapter_model.safetensors.
 *
 * Properties: an accepted adapter has finite values and a table that fits its
 * buffers; saving it and loading it again gives the same values bit for bit. */
#include <math.h>

#include "fuzz_common.h"
#include "arch/config.h"
#include "peft/lora.h"
#include "peft/roae.h"

/* 2 layers, hidden 8, 2 query heads and 1 KV head of 4, MLP 12. */
static const char config_json[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 16, \"hidden_size\": 8, \"intermediate_size\": 12,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1}";
static rosa_config model_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (rosa_config_parse(config_json, sizeof config_json - 1, "fuzz config", &model_cfg) < 0) {
        fprintf(stderr, "fuzz: %s\n", rosa_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *cj, *st;
    size_t ncj, nst;
    fuzz_split(data, size, &cj, &ncj, &st, &nst);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", fuzz_path("adapter"));
    mkdir(dir, 0755);
    fuzz_write("adapter/adapter_config.json", cj, ncj);
    if (st) fuzz_write("adapter/adapter_model.safetensors", st, nst);
    else fuzz_remove("adapter/adapter_model.safetensors");
    rosa_adapter *a = rosa_adapter_load(dir, &model_cfg);
    if (!a) {
        fuzz_refused();
        return 0;
    }
    FUZZ_ASSERT(a->n_params >= 1, "no tensors");
    size_t end = 0;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        FUZZ_ASSERT(p->offset == end && p->rows >= 1 && p->cols >= 1, "table entry %d", i);
        end += (size_t)p->rows * (size_t)p->cols;
    }
    FUZZ_ASSERT(end == a->n_floats, "table covers %zu of %zu values", end, a->n_floats);
    for (size_t k = 0; k < a->n_floats; k++) FUZZ_ASSERT(isfinite(a->w[k]), "value %zu is not finite", k);
    char dir2[PATH_MAX];
    snprintf(dir2, sizeof dir2, "%s", fuzz_path("saved"));
    FUZZ_ASSERT(rosa_adapter_save(a, dir2, "fuzz") == 0, "save: %s", rosa_last_error());
    rosa_adapter *b = rosa_adapter_load(dir2, &model_cfg);
    FUZZ_ASSERT(b != NULL, "a saved adapter does not load again: %s", rosa_last_error());
    FUZZ_ASSERT(b->method == a->method && b->n_params == a->n_params && b->n_floats == a->n_floats &&
                    memcmp(a->w, b->w, sizeof(float) * a->n_floats) == 0,
                "save + load changed the adapter");
    rosa_adapter_free(b);
    rosa_adapter_free(a);
    return 0;
}
