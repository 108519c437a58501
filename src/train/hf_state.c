/* hf_state.c: trainer_state.json as HF Trainer writes it (hf_state.h). */
#include "train/hf_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/json.h"
#include "train/metrics.h"

typedef struct {
    cJSON *history;
    const rosa_checkpoint_state *st;
    double tokens;
} history_ctx;

static double epoch_at(const rosa_checkpoint_state *st, double step) {
    return st->steps_per_epoch > 0 ? step / (double)st->steps_per_epoch : 0.0;
}

/* HF's log_history entries: {"epoch", "grad_norm", "learning_rate", "loss",
 * "step"} per logged step, {"epoch", "eval_loss", "step"} per evaluation. */
static int add_line(const rosa_metrics_line *l, void *user) {
    history_ctx *h = user;
    if (!l->have_step || l->step > (double)h->st->step || l->step < 1) return 0;
    if (l->kind != ROSA_METRICS_STEP && l->kind != ROSA_METRICS_VAL) return 0;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "epoch", epoch_at(h->st, l->step));
    if (l->kind == ROSA_METRICS_STEP) {
        if (isfinite(l->grad_norm)) cJSON_AddNumberToObject(e, "grad_norm", l->grad_norm);
        if (isfinite(l->lr)) cJSON_AddNumberToObject(e, "learning_rate", l->lr);
        cJSON_AddNumberToObject(e, "loss", l->loss);
        if (isfinite(l->tokens)) h->tokens += l->tokens;
    } else {
        cJSON_AddNumberToObject(e, "eval_loss", l->val_loss);
    }
    cJSON_AddNumberToObject(e, "step", l->step);
    cJSON_AddItemToArray(h->history, e);
    return 0;
}

char *rosa_hf_state_json(const rosa_checkpoint_state *st, const char *out_dir) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return rosa_fail("out of memory"), NULL;
    history_ctx h = {cJSON_CreateArray(), st, 0.0};
    if (st->metrics_path && rosa_metrics_read(st->metrics_path, add_line, &h) < 0) {
        cJSON_Delete(h.history);
        cJSON_Delete(j);
        return NULL;
    }
    /* Keys in HF's order (it writes them sorted). */
    char best[4096];
    snprintf(best, sizeof best, "%s/checkpoint-%lld", out_dir, (long long)st->best_step);
    cJSON_AddNumberToObject(j, "best_global_step", (double)st->best_step);
    cJSON_AddItemToObject(j, "best_metric", st->has_best ? cJSON_CreateNumber(st->best_metric) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "best_model_checkpoint", st->best_step > 0 ? cJSON_CreateString(best) : cJSON_CreateNull());
    cJSON_AddNumberToObject(j, "epoch", epoch_at(st, (double)st->step));
    cJSON_AddNumberToObject(j, "eval_steps", st->eval_steps);
    cJSON_AddNumberToObject(j, "global_step", (double)st->step);
    cJSON_AddBoolToObject(j, "is_hyper_param_search", 0);
    cJSON_AddBoolToObject(j, "is_local_process_zero", 1);
    cJSON_AddBoolToObject(j, "is_world_process_zero", 1);
    cJSON_AddItemToObject(j, "log_history", h.history);
    cJSON_AddNumberToObject(j, "logging_steps", 1); /* every step is in metrics.jsonl */
    cJSON_AddNumberToObject(j, "max_steps", (double)st->total_steps);
    cJSON_AddNumberToObject(j, "num_input_tokens_seen", h.tokens);
    cJSON_AddNumberToObject(j, "num_train_epochs",
                            st->steps_per_epoch > 0 ? ceil((double)st->total_steps / (double)st->steps_per_epoch) : 0);
    cJSON_AddNumberToObject(j, "save_steps", st->save_steps);
    cJSON_AddObjectToObject(j, "stateful_callbacks");
    cJSON_AddNumberToObject(j, "train_batch_size", st->train_batch_size);
    cJSON_AddNullToObject(j, "trial_name");
    cJSON_AddNullToObject(j, "trial_params");
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) rosa_fail("out of memory");
    return text;
}

int rosa_hf_state_read_best(const char *path, rosa_checkpoint_state *st) {
    cJSON *j = rosa_json_load(path);
    if (!j) return -1;
    int rc = -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "best_metric"),
                *g = cJSON_GetObjectItemCaseSensitive(j, "best_global_step"),
                *c = cJSON_GetObjectItemCaseSensitive(j, "best_model_checkpoint");
    if (!cJSON_IsObject(j)) rosa_fail("%s: not a JSON object", path);
    else if (m && !cJSON_IsNull(m) && !(cJSON_IsNumber(m) && isfinite(m->valuedouble)))
        rosa_fail("%s: best_metric: must be a finite number or null", path);
    else if (g && !cJSON_IsNull(g) &&
             !(cJSON_IsNumber(g) && g->valuedouble >= 0 && g->valuedouble <= (double)st->step &&
               g->valuedouble == floor(g->valuedouble)))
        rosa_fail("%s: best_global_step: must be an integer in [0, %lld] (a checkpoint of this run)", path,
                  (long long)st->step);
    else if (c && !cJSON_IsNull(c) && !cJSON_IsString(c))
        rosa_fail("%s: best_model_checkpoint: must be a string or null", path);
    else {
        st->has_best = cJSON_IsNumber(m);
        st->best_metric = st->has_best ? m->valuedouble : NAN;
        st->best_step = cJSON_IsNumber(g) ? (int64_t)g->valuedouble : 0;
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}
