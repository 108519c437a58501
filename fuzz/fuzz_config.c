/* fuzz_config: config.json (rosa_config_parse), then what the model loader
 * derives from an accepted config before touching any weights (RoPE
 * frequencies).  An accepted config must respect the documented limits, so
 * that nothing sized from it can be absurd. */
#include <math.h>

#include "fuzz_common.h"
#include "arch/config.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    rosa_config c;
    if (rosa_config_parse(text, size, "config.json", &c) == 0) {
        FUZZ_ASSERT(c.vocab_size >= 1 && c.vocab_size <= (1 << 22), "vocab %d", c.vocab_size);
        FUZZ_ASSERT(c.hidden_size >= 1 && c.hidden_size <= (1 << 16), "hidden %d", c.hidden_size);
        FUZZ_ASSERT(c.num_layers >= 1 && c.num_layers <= 1024, "layers %d", c.num_layers);
        FUZZ_ASSERT(c.num_heads >= 1 && c.num_kv_heads >= 1 && c.num_heads % c.num_kv_heads == 0, "heads %d/%d",
                    c.num_heads, c.num_kv_heads);
        FUZZ_ASSERT(c.head_dim >= 2 && c.head_dim % 2 == 0 && c.head_dim <= 4096, "head_dim %d", c.head_dim);
        FUZZ_ASSERT(c.n_eos >= 0 && c.n_eos <= 8, "n_eos %d", c.n_eos);
        FUZZ_ASSERT(c.rms_norm_eps > 0 && isfinite(c.rope_theta) && c.rope_theta > 1, "eps/theta");
        double *inv = malloc(sizeof(double) * (size_t)(c.head_dim / 2));
        if (inv) {
            rosa_rope_inv_freq(&c, inv);
            for (int i = 0; i < c.head_dim / 2; i++) FUZZ_ASSERT(!isnan(inv[i]), "inv_freq[%d] is NaN", i);
            free(inv);
        }
    } else {
        fuzz_refused();
    }
    free(text);
    return 0;
}
