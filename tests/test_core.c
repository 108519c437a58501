/* test_core.c: src/core/ conventions: the log channel (rosa_log and
 * rosa_set_log_callback), the fault-injection point (ROSA_FAULT) and the
 * printf-style buffer. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"
#include "model/model.h"
#include "test.h"

typedef struct {
    int n;
    rosa_log_level level[8];
    char msg[8][4096];
} captured;

static void capture(rosa_log_level level, const char *msg, void *user) {
    captured *c = user;
    if (c->n < 8) {
        c->level[c->n] = level;
        snprintf(c->msg[c->n], sizeof c->msg[0], "%s", msg);
    }
    c->n++;
}

TEST(log_callback_receives_messages_without_prefix) {
    captured c = {0};
    rosa_set_log_callback(capture, &c);
    rosa_log(ROSA_LOG_WARN, "records of %d tokens", 7);
    rosa_log(ROSA_LOG_INFO, "adapter saved in %s", "out");
    char longer[3000];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    rosa_log(ROSA_LOG_INFO, "%s!", longer); /* past rosa_log's own buffer */
    rosa_set_log_callback(NULL, NULL);
    CHECK_EQ_INT(c.n, 3);
    CHECK(c.level[0] == ROSA_LOG_WARN && c.level[1] == ROSA_LOG_INFO);
    CHECK_STR(c.msg[0], "records of 7 tokens");
    CHECK_STR(c.msg[1], "adapter saved in out");
    CHECK_EQ_INT(strlen(c.msg[2]), sizeof longer);
    CHECK(c.msg[2][sizeof longer - 1] == '!');
}

/* The default sink is the stderr lines the CLI always printed. */
TEST(log_default_sink_prints_rosa_lines_on_stderr) {
    const char *path = test_tmp_path("log-stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    rosa_log(ROSA_LOG_WARN, "%s: skipped %d bad records", "d.json", 2);
    rosa_log(ROSA_LOG_INFO, "resuming from %s/checkpoint-%d", "out", 3);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = rosa_read_file(path, NULL);
    CHECK_STR(text, "rosa: warning: d.json: skipped 2 bad records\nrosa: resuming from out/checkpoint-3\n");
    free(text);
}

/* A library warning (the forward past max_position_embeddings) reaches the
 * callback, once per model. */
TEST(log_callback_receives_library_warnings) {
    rosa_model *m = rosa_model_load(shared_path("models/stories260K"));
    REQUIRE(m);
    m->cfg.max_position_embeddings = 4;
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, 16);
    REQUIRE(kv);
    int32_t ids[6] = {1, 5, 6, 7, 8, 9};
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    REQUIRE(logits);
    captured c = {0};
    rosa_set_log_callback(capture, &c);
    int rc = rosa_forward(m, kv, 6, ids, NULL, logits, 0);
    int rc2 = rosa_forward(m, kv, 1, ids, NULL, logits, 0);
    rosa_set_log_callback(NULL, NULL);
    CHECK(rc == 0 && rc2 == 0);
    CHECK_EQ_INT(c.n, 1);
    CHECK(c.level[0] == ROSA_LOG_WARN);
    CHECK_MSG(strstr(c.msg[0], "sequence length 6 is past max_position_embeddings (4)") == c.msg[0], "got: %s",
              c.msg[0]);
    free(logits);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

TEST(fault_point_reads_rosa_fault_name_and_arg) {
    const char *old = getenv("ROSA_FAULT");
    char *saved = old ? rosa_strdup(old) : NULL;
    unsetenv("ROSA_FAULT");
    CHECK(ROSA_FAULT("nan-step") == NULL);
    setenv("ROSA_FAULT", "nan-step:3", 1);
    CHECK_STR(ROSA_FAULT("nan-step"), "3");
    CHECK(ROSA_FAULT("nan") == NULL);           /* a prefix of the name set is another name */
    CHECK(ROSA_FAULT("nan-step-two") == NULL);
    CHECK(ROSA_FAULT("other") == NULL);
    setenv("ROSA_FAULT", "nan-step", 1);
    CHECK_STR(ROSA_FAULT("nan-step"), ""); /* on, without an argument */
    setenv("ROSA_FAULT", "nan-stepx:3", 1);
    CHECK(ROSA_FAULT("nan-step") == NULL);
    if (saved) setenv("ROSA_FAULT", saved, 1);
    else unsetenv("ROSA_FAULT");
    free(saved);
}

TEST(buf_printf_appends_and_stays_terminated) {
    rosa_buf b = {0};
    CHECK(rosa_buf_printf(&b, "layers:") == 0);
    for (int l = 0; l < 3; l++) CHECK(rosa_buf_printf(&b, " %d:%d", l, 10 * l) == 0);
    CHECK_STR(b.data, "layers: 0:0 1:10 2:20");
    char big[1000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(rosa_buf_printf(&b, "%s", big) == 0); /* past its own small buffer */
    CHECK_EQ_INT(b.len, strlen("layers: 0:0 1:10 2:20") + sizeof big - 1);
    CHECK(b.data[b.len] == 0 && b.data[b.len - 1] == 'y');
    rosa_buf_free(&b);
}
