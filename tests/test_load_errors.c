/* test_load_errors.c: every kind of bad model directory gets a clear error
 * naming the file and what is wrong (and never a crash: run under ASan). */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/config.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"

static char tmp_root[256];

static const char *tmpdir(void) {
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/rosa-test-XXXXXX");
        if (!mkdtemp(tmp_root)) return "/tmp";
    }
    return tmp_root;
}

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir(), name);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* A safetensors file from a header text and `data` zero bytes; hlen_override
 * (when non-zero) replaces the true header length. */
static void write_st(const char *path, const char *header, size_t data, uint64_t hlen_override) {
    size_t h = strlen(header);
    uint64_t hl = hlen_override ? hlen_override : h;
    unsigned char *buf = calloc(1, 8 + h + data);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, header, h);
    write_bytes(path, buf, 8 + h + data);
    free(buf);
}

/* Opens path as a one-file set and expects failure with `needle` in the error. */
static void expect_st_error(const char *path, const char *needle) {
    st_set s = {0};
    CHECK(st_set_add_file(&s, path) < 0);
    CHECK_ERROR_HAS(needle);
    CHECK_ERROR_HAS(path);
    st_set_close(&s);
}

TEST(safetensors_rejects_corrupt_files) {
    const char *p = tmp_path("bad.safetensors");
    write_bytes(p, "abc", 3);
    expect_st_error(p, "too short");
    write_st(p, "{}", 0, 1000);
    expect_st_error(p, "past the end of the file");
    write_st(p, "{}", 0, 1ull << 40);
    expect_st_error(p, "absurd");
    write_st(p, "[1, 2]", 0, 0);
    expect_st_error(p, "not a JSON object");
    write_st(p, "{\"a\": {\"dtype\": \"F32\"", 0, 0);
    expect_st_error(p, "invalid JSON");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, 0);
    expect_st_error(p, "past the end of the data");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             12, 0);
    expect_st_error(p, "overlap");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, 0);
    expect_st_error(p, "needs 12");
    write_st(p, "{\"a\": {\"dtype\": \"Q4_K\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, 0);
    expect_st_error(p, "unknown dtype \"Q4_K\"");
    write_st(p,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
             8, 0);
    expect_st_error(p, "appears twice");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 8, 0);
    expect_st_error(p, "shape[0]");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 4]}}",
             8, 0);
    expect_st_error(p, "overflows");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, 0);
    expect_st_error(p, "invalid data_offsets");
    write_st(p, "{\"a\": 5}", 8, 0);
    expect_st_error(p, "not an object");
    /* A good file still loads, with __metadata__ ignored. */
    write_st(p, "{\"__metadata__\": {\"format\": \"pt\"}, \"a\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 8]}}",
             8, 0);
    st_set s = {0};
    CHECK(st_set_add_file(&s, p) == 0);
    CHECK(s.n_tensors == 1 && st_set_find(&s, "a") && st_numel(st_set_find(&s, "a")) == 4);
    st_set_close(&s);
}

TEST(safetensors_writer_round_trips) {
    const char *p = tmp_path("rt.safetensors");
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {1, 2, 3};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    st_write_entry e[2] = {{"x.weight", ST_F32, 2, sa, a}, {"y", ST_BF16, 1, sb, b}};
    REQUIRE(st_write_file(p, e, 2, "{\"format\": \"pt\"}") == 0);
    st_set s = {0};
    REQUIRE(st_set_add_file(&s, p) == 0);
    const st_tensor *t = st_set_find(&s, "x.weight");
    REQUIRE(t);
    CHECK(t->dtype == ST_F32 && t->ndim == 2 && t->shape[1] == 3 && memcmp(t->data, a, sizeof a) == 0);
    t = st_set_find(&s, "y");
    CHECK(t && t->dtype == ST_BF16 && memcmp(t->data, b, sizeof b) == 0);
    /* The header is padded to 8 bytes so that data stays aligned. */
    CHECK(((const char *)st_set_find(&s, "x.weight")->data - (const char *)s.maps[0].data) % 8 == 0);
    st_set_close(&s);
}

/* Builds a model directory from testdata/llama_gqa with an edited config and,
 * optionally, one tensor dropped or reshaped. */
static const char *make_model(const char *name, const char *config_from, const char *config_to,
                              const char *drop_tensor, const char *reshape_tensor, st_dtype retype) {
    const char *dir = tmp_path(name);
    mkdir(dir, 0755);
    size_t len;
    char *cfg = rosa_read_file(testdata_path("llama_gqa/config.json"), &len);
    if (!cfg) return dir;
    char out[8192];
    char *hit = config_from ? strstr(cfg, config_from) : NULL;
    if (hit)
        snprintf(out, sizeof out, "%.*s%s%s", (int)(hit - cfg), cfg, config_to, hit + strlen(config_from));
    else
        snprintf(out, sizeof out, "%s", cfg);
    free(cfg);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, out);
    st_set s;
    if (st_set_open_dir(&s, testdata_path("llama_gqa")) < 0) return dir;
    st_write_entry *e = calloc((size_t)s.n_tensors, sizeof *e);
    int64_t bad_shape[2] = {3, 5};
    int n = 0;
    for (int i = 0; i < s.n_tensors; i++) {
        const st_tensor *t = &s.tensors[i];
        if (drop_tensor && strcmp(t->name, drop_tensor) == 0) continue;
        e[n] = (st_write_entry){t->name, t->dtype, t->ndim, t->shape, t->data};
        if (reshape_tensor && strcmp(t->name, reshape_tensor) == 0) {
            if (retype != ST_F32) {
                e[n].dtype = retype; /* same byte count: I32 for F32 */
            } else {
                e[n].ndim = 2;
                e[n].shape = bad_shape;
            }
        }
        n++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write_file(path, e, n, NULL);
    free(e);
    st_set_close(&s);
    return dir;
}

static void expect_load_error(const char *dir, const char *needle) {
    rosa_model *m = rosa_model_load(dir);
    CHECK_MSG(m == NULL, "loading %s should fail with \"%s\"", dir, needle);
    CHECK_ERROR_HAS(needle);
    rosa_model_free(m);
}

TEST(model_load_rejects_bad_directories) {
    /* The unmodified copy loads. */
    const char *good = make_model("good", NULL, NULL, NULL, NULL, ST_F32);
    rosa_model *m = rosa_model_load(good);
    CHECK(m != NULL);
    rosa_model_free(m);

    expect_load_error(tmp_path("no-such-dir"), "model directory not found");
    expect_load_error(make_model("missing", NULL, NULL, "model.norm.weight", NULL, ST_F32),
                      "tensor \"model.norm.weight\" is missing");
    expect_load_error(make_model("misshaped", NULL, NULL, NULL, "model.layers.1.mlp.up_proj.weight", ST_F32),
                      "\"model.layers.1.mlp.up_proj.weight\" has shape [3, 5] but config.json implies [72, 64]");
    expect_load_error(make_model("int-weights", NULL, NULL, NULL, "model.norm.weight", ST_I32), "dtype I32");
    expect_load_error(make_model("hidden", "\"hidden_size\": 64", "\"hidden_size\": 32", NULL, NULL, ST_F32),
                      "config.json implies");
    expect_load_error(make_model("layers", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2", NULL, NULL, ST_F32),
                      "num_hidden_layers = 2");
    expect_load_error(make_model("arch", "LlamaForCausalLM", "GPT2LMHeadModel", NULL, NULL, ST_F32),
                      "unsupported architecture \"GPT2LMHeadModel\"");
    expect_load_error(make_model("rope", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}",
                                 NULL, NULL, ST_F32),
                      "unsupported rope_scaling type \"yarn\"");
    expect_load_error(make_model("heads", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", NULL, NULL, ST_F32),
                      "not a multiple");
    expect_load_error(make_model("vocab", "\"vocab_size\": 256", "\"vocab_size\": \"many\"", NULL, NULL, ST_F32),
                      "\"vocab_size\" must be an integer");
    expect_load_error(make_model("huge", "\"vocab_size\": 256", "\"vocab_size\": 1e12", NULL, NULL, ST_F32),
                      "out of range");
    expect_load_error(make_model("act", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", NULL, NULL, ST_F32),
                      "unsupported hidden_act \"gelu\"");
    expect_load_error(make_model("bias", "\"attention_bias\": false", "\"attention_bias\": true", NULL, NULL, ST_F32),
                      "q_proj.bias\" is missing");

    /* config.json that is not an object / not JSON. */
    const char *dir = make_model("notobj", NULL, NULL, NULL, NULL, ST_F32);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "[1, 2, 3]");
    expect_load_error(dir, "not a JSON object");
    write_text(path, "{\"architectures\": [\"LlamaForCausalLM\"], ");
    expect_load_error(dir, "invalid JSON");
    unlink(path);
    expect_load_error(dir, "config.json: cannot open");

    /* No weights at all. */
    dir = make_model("noweights", NULL, NULL, NULL, NULL, ST_F32);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    expect_load_error(dir, "no model.safetensors");
}

TEST(sharded_index_cannot_escape_the_model_directory) {
    const char *dir = make_model("escape", NULL, NULL, NULL, NULL, ST_F32);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    char moved[600];
    snprintf(moved, sizeof moved, "%s/shard.safetensors", dir);
    rename(path, moved);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, "{\"weight_map\": {\"model.norm.weight\": \"../escape/shard.safetensors\"}}");
    expect_load_error(dir, "points outside the model directory");
    write_text(path, "{\"weight_map\": {\"model.norm.weight\": \"/etc/passwd\"}}");
    expect_load_error(dir, "points outside the model directory");
    write_text(path, "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\", \"extra.weight\": \"shard.safetensors\"}}");
    expect_load_error(dir, "\"extra.weight\" is listed but missing");
    write_text(path, "{\"metadata\": {}}");
    expect_load_error(dir, "weight_map");
    write_text(path, "{\"weight_map\": {\"model.norm.weight\": \"nope.safetensors\"}}");
    expect_load_error(dir, "nope.safetensors: cannot open");
}

TEST(config_reads_eos_lists_and_llama3_rope) {
    rosa_config c;
    const char *j = "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 8,"
                    " \"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                    " \"eos_token_id\": [128001, 128008, 128009], \"rope_theta\": 500000.0,"
                    " \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
                    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}";
    REQUIRE(rosa_config_parse(j, strlen(j), "config.json", &c) == 0);
    CHECK_EQ_INT(c.n_eos, 3);
    CHECK_EQ_INT(c.eos_token_ids[2], 128009);
    CHECK_EQ_INT(c.num_kv_heads, 2);
    CHECK_EQ_INT(c.head_dim, 4);
    CHECK(c.rope_type == ROSA_ROPE_LLAMA3 && c.rope_original_max_position == 8192);
    /* head_dim 4: the first frequency (wavelength 2 pi) is kept; the second
     * (wavelength 4443, between 8192/4 and 8192/1) is blended with smooth =
     * (8192/4443 - 1)/3; value computed by hand with transformers' formula. */
    double inv[2];
    rosa_rope_inv_freq(&c, inv);
    CHECK(fabs(inv[0] - 1.0) < 1e-12);
    CHECK(fabs(inv[1] - 0.00042955679655936815) < 1e-15);
    /* A long wavelength is divided by the factor. */
    c.rope_original_max_position = 16;
    rosa_rope_inv_freq(&c, inv);
    CHECK(fabs(inv[1] - 1.0 / sqrt(500000.0) / 32.0) < 1e-15);
}
