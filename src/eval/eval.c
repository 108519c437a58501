/* eval.c: the evaluation driver: prompts, decoding, scoring, predictions
 * (JSON Lines, resumable); the reports are in eval_report.c.
 *
 * Per example, as LLM-Adapters' scripts do: prompt = the evaluation template
 * with the record's instruction (never its input), encoded with the
 * tokenizer's special tokens; the generation is decoded together with the
 * prompt (commonsense skipping special tokens, math keeping them) and the
 * response is the text after the first "### Response:" (up to a second one),
 * stripped. */
#include "eval.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/util.h"
#include "data/data.h"
#include "eval/extract.h"
#include "io/json.h"
#include "model/model.h"

void rosa_eval_options_default(rosa_eval_options *o) {
    memset(o, 0, sizeof *o);
    o->mode = ROSA_EVAL_GENERATE;
    o->num_beams = 4;
    o->rule = ROSA_BEAM_LLM_ADAPTERS;
    o->batch_size = 1;
}

void rosa_eval_report_free(rosa_eval_report *rep) {
    free(rep->r);
    memset(rep, 0, sizeof *rep);
}

/* ------------------------------------------------------------ progress */

/* The shared progress line, counting examples; the task name is its extra field. */
typedef struct {
    rosa_progress line;
    int64_t done;
    int quiet;
} progress;

static void progress_step(progress *p, const char *task) {
    p->done++;
    rosa_progress_update_rate(&p->line, p->done, 1, "ex/s", task);
}

static void note(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(progress *p, const char *fmt, ...) {
    if (p->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    rosa_vlog(ROSA_LOG_INFO, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ predictions */

typedef struct {
    cJSON **lines;
    int n;
} pred_file;

static void pred_file_free(pred_file *f) {
    for (int i = 0; i < f->n; i++) cJSON_Delete(f->lines[i]);
    free(f->lines);
    memset(f, 0, sizeof *f);
}

static int pred_push(pred_file *f, cJSON *j) {
    cJSON **p = rosa_realloc(f->lines, sizeof(cJSON *) * (size_t)(f->n + 1), "predictions");
    if (!p) return -1;
    f->lines = p;
    f->lines[f->n++] = j;
    return 0;
}

/* Reads JSON Lines (or one JSON array).  With `repair`, an unparsable last
 * line without a newline (an interrupted write) is cut off the file. */
static int pred_file_load(const char *path, int repair, pred_file *out, int *repaired) {
    memset(out, 0, sizeof *out);
    if (repaired) *repaired = 0;
    size_t len;
    char *text = rosa_read_file(path, &len);
    if (!text) return -1;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
    if (i < len && text[i] == '[') { /* a JSON array (LLM-Adapters' output files) */
        cJSON *a = rosa_json_parse(text, len, path);
        free(text);
        if (!a) return -1;
        while (a->child) {
            cJSON *e = cJSON_DetachItemViaPointer(a, a->child);
            if (!cJSON_IsObject(e)) {
                cJSON_Delete(e);
                cJSON_Delete(a);
                pred_file_free(out);
                return rosa_fail("%s: the array holds something other than objects", path);
            }
            if (pred_push(out, e) < 0) {
                cJSON_Delete(e);
                cJSON_Delete(a);
                pred_file_free(out);
                return -1;
            }
        }
        cJSON_Delete(a);
        return 0;
    }
    int line_no = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line_no++;
        size_t a = pos, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        if (b > a) {
            cJSON *j = cJSON_ParseWithLength(text + a, b - a);
            if (!j || !cJSON_IsObject(j)) {
                cJSON_Delete(j);
                if (repair && end >= len) { /* the last line, cut short */
                    if (truncate(path, (off_t)pos) != 0) {
                        free(text);
                        pred_file_free(out);
                        return rosa_fail("%s: cannot cut the incomplete last line: %s", path, strerror(errno));
                    }
                    if (repaired) *repaired = 1;
                    break;
                }
                free(text);
                pred_file_free(out);
                return rosa_fail("%s: line %d is not a JSON object", path, line_no);
            }
            if (pred_push(out, j) < 0) {
                cJSON_Delete(j);
                free(text);
                pred_file_free(out);
                return -1;
            }
        }
        pos = end + 1;
    }
    free(text);
    return 0;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return def;
    /* clamped before the cast, which is undefined outside int (found by fuzz_predictions) */
    return v->valuedouble >= INT_MAX ? INT_MAX : v->valuedouble <= INT_MIN ? INT_MIN : (int)v->valuedouble;
}

/* ------------------------------------------------------------ identity */

/* A predictions file starts with a header line naming what made it:
 *   {"format": "rosa-predictions/1", "model": DIR, "model_digest": HEX,
 *    "adapter": DIR|null, "adapter_digest": HEX|null,
 *    "options": {"mode", "num_beams", "beam_rule", "max_new_tokens", "dtype"},
 *    "options_digest": HEX}
 * A resumed run must match it (docs/eval.md): saved responses of another
 * model, adapter or decoding are not this run's results. */
#define PRED_FORMAT "rosa-predictions/1"

/* A 64-bit digest (not cryptographic: it tells files apart, it does not
 * resist forgery), over bytes read 8 at a time, little-endian. */
static void digest_add(uint64_t *h, const void *data, size_t n) {
    const unsigned char *b = data;
    uint64_t x = *h;
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) w = w << 8 | b[k];
        x = (x ^ w) * 0x9E3779B97F4A7C15ull;
        x ^= x >> 32;
    }
    for (; n; b++, n--) x = (x ^ *b) * 0x100000001B3ull;
    *h = x;
}

static void digest_str(uint64_t *h, const char *s) { digest_add(h, s, strlen(s) + 1); }

/* Adds the bytes of dir/name (nothing when it does not exist), streamed. */
static int digest_file(uint64_t *h, const char *dir, const char *name) {
    char *path = rosa_path_join(dir, name);
    if (!path) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int missing = errno == ENOENT;
        if (!missing) rosa_fail("%s: %s", path, strerror(errno));
        free(path);
        return missing ? 0 : -1;
    }
    digest_str(h, name);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) digest_add(h, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) rosa_fail("%s: read error", path);
    free(path);
    return bad ? -1 : 0;
}

/* The digest in hex, after a final mix (splitmix64's) so that every input bit reaches every output bit. */
static void digest_hex(uint64_t h, char out[17]) {
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    snprintf(out, 17, "%016llx", (unsigned long long)(h ^ (h >> 31)));
}

/* The model: its config, generation and tokenizer files, and its weights'
 * table (name, dtype, shape of every tensor) with 3 samples of 4 KiB of each
 * tensor's bytes (start, middle, end): reading every byte of a large model
 * would cost seconds to catch what a mix-up of models already changes. */
static int model_digest(const rosa_model *m, const char *dir, char out[17]) {
    uint64_t h = 0xC0FFEE0DDF00Dull;
    static const char *const files[] = {"config.json", "generation_config.json", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json", NULL};
    for (int i = 0; dir && files[i]; i++)
        if (digest_file(&h, dir, files[i]) < 0) return -1;
    for (int i = 0; i < m->weights.n_tensors; i++) {
        const st_tensor *t = &m->weights.tensors[i];
        digest_str(&h, t->name);
        int64_t meta[2 + ST_MAX_DIMS] = {t->dtype, t->ndim};
        for (int d = 0; d < t->ndim; d++) meta[2 + d] = t->shape[d];
        digest_add(&h, meta, sizeof meta);
        const size_t piece = 4096;
        const unsigned char *b = t->data;
        if (t->nbytes <= 3 * piece) {
            digest_add(&h, b, t->nbytes);
        } else {
            digest_add(&h, b, piece);
            digest_add(&h, b + t->nbytes / 2, piece);
            digest_add(&h, b + t->nbytes - piece, piece);
        }
    }
    digest_hex(h, out);
    return 0;
}

/* The adapter: every byte of its two files. */
static int adapter_digest(const char *dir, char out[17]) {
    uint64_t h = 0xADA97E5ull;
    if (digest_file(&h, dir, "adapter_config.json") < 0 || digest_file(&h, dir, "adapter_model.safetensors") < 0)
        return -1;
    digest_hex(h, out);
    return 0;
}

/* What decides a prediction besides the model and the adapter (not
 * --batch-size, --limit or --seed, which do not change one). */
static cJSON *options_json(const rosa_eval_options *o, const rosa_model *m) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "mode", o->mode == ROSA_EVAL_LOGLIK ? "loglik" : "generate");
    if (o->mode != ROSA_EVAL_LOGLIK) {
        cJSON_AddNumberToObject(j, "num_beams", o->num_beams);
        cJSON_AddStringToObject(j, "beam_rule", rosa_beam_rule_name(o->rule));
        if (o->max_new_tokens > 0) cJSON_AddNumberToObject(j, "max_new_tokens", o->max_new_tokens);
        else cJSON_AddStringToObject(j, "max_new_tokens", "per task");
    }
    cJSON_AddStringToObject(j, "dtype", m->compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32");
    return j;
}

/* This run's header line (malloc'ed, no newline). */
static char *pred_header(const rosa_model *m, const rosa_eval_options *o) {
    char md[17], ad[17], od[17];
    if (model_digest(m, o->model_dir, md) < 0 || (o->adapter_dir && adapter_digest(o->adapter_dir, ad) < 0))
        return NULL;
    cJSON *j = cJSON_CreateObject(), *opts = options_json(o, m);
    char *text = NULL, *otext = opts ? cJSON_PrintUnformatted(opts) : NULL;
    if (j && otext) {
        uint64_t h = 0x0975u;
        digest_str(&h, otext);
        digest_hex(h, od);
        cJSON_AddStringToObject(j, "format", PRED_FORMAT);
        if (o->model_dir) cJSON_AddStringToObject(j, "model", o->model_dir);
        else cJSON_AddNullToObject(j, "model");
        cJSON_AddStringToObject(j, "model_digest", md);
        if (o->adapter_dir) {
            cJSON_AddStringToObject(j, "adapter", o->adapter_dir);
            cJSON_AddStringToObject(j, "adapter_digest", ad);
        } else {
            cJSON_AddNullToObject(j, "adapter");
            cJSON_AddNullToObject(j, "adapter_digest");
        }
        cJSON_AddItemToObject(j, "options", opts);
        opts = NULL;
        cJSON_AddStringToObject(j, "options_digest", od);
        text = cJSON_PrintUnformatted(j);
    }
    if (!text) rosa_fail("out of memory");
    free(otext);
    cJSON_Delete(opts);
    cJSON_Delete(j);
    return text;
}

static int is_header(const cJSON *line) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(line, "format");
    return cJSON_IsString(f) && strncmp(f->valuestring, "rosa-predictions/", 17) == 0;
}

/* A saved file's header against this run's (both parsed); the first
 * difference is named. */
static int check_header(const cJSON *saved, const cJSON *mine, const char *path) {
    const char *fmt = jstr(saved, "format");
    if (!fmt || strcmp(fmt, PRED_FORMAT) != 0)
        return rosa_fail("%s: line 1: format \"%s\" is not " PRED_FORMAT, path, fmt ? fmt : "");
    static const struct {
        const char *key, *name, *what;
    } ids[] = {{"model_digest", "model", "model"}, {"adapter_digest", "adapter", "adapter"}};
    for (int k = 0; k < 2; k++) {
        const char *a = jstr(saved, ids[k].key), *b = jstr(mine, ids[k].key);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
            const char *was = jstr(saved, ids[k].name), *now = jstr(mine, ids[k].name);
            return rosa_fail("%s: line 1: the predictions were made with another %s (%s %s, %s; this run: %s %s, %s): "
                             "give another --predictions file or the same %s", path, ids[k].what, ids[k].name,
                             was ? was : "none", a ? a : "-", ids[k].name, now ? now : "none", b ? b : "-",
                             ids[k].what);
        }
    }
    const char *a = jstr(saved, "options_digest"), *b = jstr(mine, "options_digest");
    if (!a || strcmp(a, b) != 0) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(saved, "options"),
                    *mo = cJSON_GetObjectItemCaseSensitive(mine, "options");
        char *st = so ? cJSON_PrintUnformatted(so) : NULL, *mt = cJSON_PrintUnformatted(mo);
        rosa_fail("%s: line 1: the predictions were made with other options (%s; this run: %s): give another "
                  "--predictions file or the same options", path, st ? st : "none", mt ? mt : "?");
        free(st);
        free(mt);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ one task */

typedef struct {
    rosa_model *m;
    const rosa_tokenizer *tok;
    const rosa_eval_options *o;
    const rosa_task *task;
    const rosa_records *recs;
    rosa_task_result *res;
    const int *todo;         /* record indices */
    int32_t **prompt_ids;    /* [n_todo] */
    int *prompt_len;
    int max_new;
    FILE *pf;                /* predictions, or NULL */
    const char *pf_path;
    progress *prog;
    char **pending;          /* [n_todo] lines finished out of order (generate) */
    int next_write;          /* the first todo position not yet written */
    int cur;                 /* the todo position of the line being made */
} task_run;

/* Writes the lines in record order: a prompt that finishes early waits for
 * those before it. */
static int flush_lines(task_run *tr) {
    while (tr->pending && tr->pending[tr->next_write]) {
        char *s = tr->pending[tr->next_write];
        int ok = fputs(s, tr->pf) >= 0 && fputc('\n', tr->pf) != EOF && fflush(tr->pf) == 0;
        free(s);
        tr->pending[tr->next_write++] = NULL;
        if (!ok) return rosa_fail("%s: write failed: %s", tr->pf_path, strerror(errno));
    }
    return 0;
}

static void count(rosa_task_result *r, const rosa_answer *a) {
    r->n++;
    r->correct += a->correct;
    r->no_answer += !a->extracted;
}

/* One predictions line. */
static int write_prediction(task_run *tr, const rosa_record *rec, const char *response, const rosa_answer *a,
                            int new_tokens, double score, const char *const *options, const double *option_lp,
                            int n_options) {
    if (!tr->pf) return 0;
    cJSON *j = cJSON_CreateObject();
    if (!j) return rosa_fail("out of memory");
    cJSON_AddStringToObject(j, "task", tr->task->name);
    cJSON_AddNumberToObject(j, "index", rec->index);
    cJSON_AddStringToObject(j, "instruction", rec->instruction);
    cJSON_AddStringToObject(j, "response", response);
    if (tr->task->rule == ROSA_RULE_NUMBER) {
        if (a->extracted) cJSON_AddNumberToObject(j, "prediction", a->number);
        else cJSON_AddNullToObject(j, "prediction");
    } else {
        cJSON_AddStringToObject(j, "prediction", a->text);
    }
    cJSON_AddStringToObject(j, "label", rec->answer ? rec->answer : "");
    cJSON_AddBoolToObject(j, "correct", a->correct);
    cJSON_AddBoolToObject(j, "extracted", a->extracted);
    if (tr->o->mode == ROSA_EVAL_LOGLIK) {
        cJSON_AddStringToObject(j, "mode", "loglik");
        cJSON *lp = cJSON_AddObjectToObject(j, "option_logprobs");
        for (int i = 0; lp && i < n_options; i++) cJSON_AddNumberToObject(lp, options[i], option_lp[i]);
    } else {
        cJSON_AddStringToObject(j, "mode", "generate");
        cJSON_AddNumberToObject(j, "num_beams", tr->o->num_beams);
        cJSON_AddStringToObject(j, "beam_rule", rosa_beam_rule_name(tr->o->rule));
        cJSON_AddNumberToObject(j, "max_new_tokens", tr->max_new);
        cJSON_AddNumberToObject(j, "new_tokens", new_tokens);
        cJSON_AddNumberToObject(j, "score", score);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return rosa_fail("out of memory");
    if (tr->pending) {
        tr->pending[tr->cur] = s;
        return flush_lines(tr);
    }
    int ok = fputs(s, tr->pf) >= 0 && fputc('\n', tr->pf) != EOF && fflush(tr->pf) == 0;
    free(s);
    if (!ok) return rosa_fail("%s: write failed: %s", tr->pf_path, strerror(errno));
    return 0;
}

static int on_decoded(int i, const rosa_decode_result *res, void *user) {
    task_run *tr = user;
    const rosa_record *rec = &tr->recs->rec[tr->todo[i]];
    int skip_special = tr->task->type == ROSA_TASK_COMMONSENSE;
    int np = tr->prompt_len[i], n = np + res->n;
    int32_t *ids = rosa_malloc(sizeof(int32_t) * (size_t)n, "decode");
    if (!ids) return -1;
    memcpy(ids, tr->prompt_ids[i], sizeof(int32_t) * (size_t)np);
    memcpy(ids + np, res->ids, sizeof(int32_t) * (size_t)res->n);
    size_t len;
    char *text = rosa_tokenizer_decode(tr->tok, ids, (size_t)n, skip_special, &len);
    free(ids);
    if (!text) return -1;
    int found;
    char *response = rosa_response_from_text(text, len, &found);
    free(text);
    if (!found) { /* the decoded prompt lost its marker: take the new text alone */
        char *gen = rosa_tokenizer_decode(tr->tok, res->ids, (size_t)res->n, skip_special, &len);
        if (!gen) return -1;
        size_t sl;
        const char *s = rosa_py_strip(gen, len, &sl);
        response = rosa_strndup(s, sl);
        free(gen);
    }
    if (!response) return -1;
    rosa_answer a;
    int rc = rosa_score_response(tr->task, rec->instruction, response, rec->answer, &a);
    if (rc < 0) rosa_error_prefix("record %d", rec->index);
    if (rc == 0) {
        count(tr->res, &a);
        tr->cur = i;
        rc = write_prediction(tr, rec, response, &a, res->n, res->score, NULL, NULL, 0);
    }
    rosa_answer_free(&a);
    free(response);
    progress_step(tr->prog, tr->task->name);
    return rc < 0 ? -1 : 0;
}

/* The prompt limit of rosa_eval_options.max_prompt_tokens, as a refusal
 * naming the record. */
static int check_prompt_length(const task_run *tr, const rosa_record *rec, size_t n) {
    int ctx = rosa_model_config(tr->m)->max_position_embeddings;
    int64_t limit = tr->o->max_prompt_tokens > 0 ? tr->o->max_prompt_tokens : 4 * (int64_t)ctx;
    if ((int64_t)n <= limit) return 0;
    return rosa_fail("%s record %d: the prompt has %zu tokens, more than the limit of %lld (%s): rosa refuses it "
                     "rather than decode far past the model's context of %d (LLM-Adapters does not truncate "
                     "prompts either); shorten the instruction or raise --max-prompt-tokens",
                     tr->task->name, rec->index, n, (long long)limit,
                     tr->o->max_prompt_tokens > 0 ? "--max-prompt-tokens" : "4 x max_position_embeddings", ctx);
}

static int run_generate(task_run *tr, int n_todo) {
    rosa_decode_params p;
    rosa_decode_params_default(&p);
    p.num_beams = tr->o->num_beams;
    p.rule = tr->o->rule;
    p.max_new_tokens = tr->max_new;
    int rc = -1;
    tr->prompt_ids = rosa_calloc((size_t)(n_todo ? n_todo : 1), sizeof(int32_t *), "prompts");
    tr->prompt_len = rosa_calloc((size_t)(n_todo ? n_todo : 1), sizeof(int), "prompts");
    if (tr->pf) tr->pending = rosa_calloc((size_t)n_todo + 1, sizeof(char *), "predictions");
    if (!tr->prompt_ids || !tr->prompt_len || (tr->pf && !tr->pending)) goto out;
    for (int i = 0; i < n_todo; i++) {
        char *prompt = rosa_prompt_eval(&tr->recs->rec[tr->todo[i]]);
        if (!prompt) goto out;
        size_t n;
        int e = rosa_tokenizer_encode(tr->tok, prompt, strlen(prompt), 1, &tr->prompt_ids[i], &n);
        free(prompt);
        if (e < 0) goto out;
        if (n == 0) {
            rosa_fail("%s record %d: the prompt encodes to no tokens", tr->task->name, tr->recs->rec[tr->todo[i]].index);
            goto out;
        }
        if (check_prompt_length(tr, &tr->recs->rec[tr->todo[i]], n) < 0) goto out;
        tr->prompt_len[i] = (int)n;
    }
    rc = rosa_decode(tr->m, n_todo, (const int32_t *const *)tr->prompt_ids, tr->prompt_len, &p, tr->o->batch_size,
                     on_decoded, tr);
    if (rc != 0) rc = -1;
out:
    if (tr->pending)
        for (int i = 0; i < n_todo; i++) free(tr->pending[i]);
    free(tr->pending);
    tr->pending = NULL;
    if (tr->prompt_ids)
        for (int i = 0; i < n_todo; i++) free(tr->prompt_ids[i]);
    free(tr->prompt_ids);
    free(tr->prompt_len);
    tr->prompt_ids = NULL;
    tr->prompt_len = NULL;
    return rc;
}

static int run_loglik(task_run *tr, int n_todo) {
    static const char lead[] = "the correct answer is ";
    for (int i = 0; i < n_todo; i++) {
        const rosa_record *rec = &tr->recs->rec[tr->todo[i]];
        char **own = NULL;
        int n = rosa_answer_format_labels(rec->instruction, &own);
        if (n < 0) return -1;
        const char *const *opts = (const char *const *)own;
        if (n == 0) {
            if (!tr->task->labels)
                return rosa_fail("%s record %d: no \"Answer format:\" line to take the options from", tr->task->name,
                                 rec->index);
            opts = tr->task->labels;
            n = tr->task->n_labels;
        }
        char *prompt = rosa_prompt_eval(rec);
        double *lp = rosa_malloc(sizeof(double) * (size_t)n, "loglik");
        int32_t *ids = NULL;
        size_t n_ids = 0;
        int rc = prompt && lp ? rosa_tokenizer_encode(tr->tok, prompt, strlen(prompt), 1, &ids, &n_ids) : -1;
        free(ids);
        if (rc == 0) rc = check_prompt_length(tr, rec, n_ids);
        if (rc == 0) rc = rosa_loglik_options(tr->m, prompt, opts, n, lp);
        free(prompt);
        char *response = NULL;
        rosa_answer a = {0};
        if (rc == 0) {
            int best = 0;
            for (int k = 1; k < n; k++)
                if (lp[k] > lp[best]) best = k; /* ties: the first option */
            response = rosa_malloc(sizeof lead + strlen(opts[best]), "response");
            if (response) {
                memcpy(response, lead, sizeof lead - 1);
                strcpy(response + sizeof lead - 1, opts[best]);
                rc = rosa_score_response(tr->task, rec->instruction, response, rec->answer, &a);
                if (rc < 0) rosa_error_prefix("record %d", rec->index);
                if (rc == 0) {
                    count(tr->res, &a);
                    rc = write_prediction(tr, rec, response, &a, 0, lp[best], opts, lp, n);
                }
            } else {
                rc = -1;
            }
        }
        rosa_answer_free(&a);
        free(response);
        free(lp);
        rosa_free_labels(own, own ? n : 0);
        if (rc < 0) return -1;
        progress_step(tr->prog, tr->task->name);
    }
    return 0;
}

/* Whether a saved line was made with the options of this run. */
static int same_config(const cJSON *line, const rosa_eval_options *o, int max_new, char *why, size_t n) {
    const char *mode = jstr(line, "mode");
    const char *want = o->mode == ROSA_EVAL_LOGLIK ? "loglik" : "generate";
    if (!mode || strcmp(mode, want) != 0) {
        snprintf(why, n, "mode %s, not %s", mode ? mode : "(none)", want);
        return 0;
    }
    if (o->mode == ROSA_EVAL_LOGLIK) return 1;
    const char *rule = jstr(line, "beam_rule");
    if (jint(line, "num_beams", -1) != o->num_beams) {
        snprintf(why, n, "num_beams %d, not %d", jint(line, "num_beams", -1), o->num_beams);
        return 0;
    }
    if (o->num_beams > 1 && (!rule || strcmp(rule, rosa_beam_rule_name(o->rule)) != 0)) {
        snprintf(why, n, "beam_rule %s, not %s", rule ? rule : "(none)", rosa_beam_rule_name(o->rule));
        return 0;
    }
    if (jint(line, "max_new_tokens", -1) != max_new) {
        snprintf(why, n, "max_new_tokens %d, not %d", jint(line, "max_new_tokens", -1), max_new);
        return 0;
    }
    return 1;
}

int rosa_eval_run(rosa_model *m, const rosa_task_list *tasks, const rosa_eval_options *o, rosa_eval_report *rep) {
    memset(rep, 0, sizeof *rep);
    const rosa_tokenizer *tok = rosa_model_tokenizer(m);
    if (!tok) return rosa_fail("eval: the model directory has no tokenizer.json");
    if (o->num_beams < 1) return rosa_fail("eval: --num-beams must be >= 1");
    int nt = tasks->n, rc = -1;
    double t0 = rosa_now();
    rep->r = rosa_calloc((size_t)(nt ? nt : 1), sizeof(rosa_task_result), "report");
    rosa_records *recs = rosa_calloc((size_t)(nt ? nt : 1), sizeof(rosa_records), "records");
    int **todo = rosa_calloc((size_t)(nt ? nt : 1), sizeof(int *), "todo");
    int *n_todo = rosa_calloc((size_t)(nt ? nt : 1), sizeof(int), "todo");
    pred_file saved = {0};
    FILE *pf = NULL;
    char *header = NULL; /* this run's first line of the predictions file */
    cJSON *mine = NULL;
    progress prog = {.quiet = o->quiet};
    if (!rep->r || !recs || !todo || !n_todo) goto out;
    rep->n = nt;
    int resumed_total = 0;
    if (o->predictions && rosa_file_exists(o->predictions)) {
        int repaired;
        if (pred_file_load(o->predictions, 1, &saved, &repaired) < 0) goto out;
        if (repaired) note(&prog, "%s: its last line was incomplete and was removed", o->predictions);
    }
    if (o->predictions) {
        header = pred_header(m, o);
        mine = header ? cJSON_Parse(header) : NULL;
        if (!mine) {
            if (header) rosa_fail("out of memory");
            goto out;
        }
        /* A file without this header cannot tell what made its responses: resuming from it is refused. */
        if (saved.n > 0 && !is_header(saved.lines[0])) {
            rosa_fail("%s: line 1 is not a rosa predictions header (a file of an older rosa or of another tool): "
                      "which model and adapter made it cannot be checked; give another --predictions file "
                      "(--score-predictions still rescores this one)", o->predictions);
            goto out;
        }
        if (saved.n > 0 && check_header(saved.lines[0], mine, o->predictions) < 0) goto out;
    }
    /* Load every task first: the progress line needs the total. */
    int64_t total = 0;
    for (int ti = 0; ti < nt; ti++) {
        const rosa_task *t = &tasks->t[ti];
        rosa_task_result *r = &rep->r[ti];
        r->task = t;
        if (rosa_records_load(t->file, 0, &recs[ti]) < 0) {
            rosa_error_prefix("task %s", t->name);
            goto out;
        }
        if (o->limit > 0 && recs[ti].n > o->limit) rosa_records_truncate(&recs[ti], o->limit);
        int n = recs[ti].n;
        int max_new = o->max_new_tokens > 0 ? o->max_new_tokens : rosa_task_default_max_new_tokens(t->type);
        uint8_t *done = rosa_calloc((size_t)(n ? n : 1), 1, "done");
        todo[ti] = rosa_malloc(sizeof(int) * (size_t)(n ? n : 1), "todo");
        if (!done || !todo[ti]) {
            free(done);
            goto out;
        }
        /* check the labels (and a custom task's "Answer format:" lines) before any decoding */
        for (int k = 0; k < n; k++) {
            const rosa_record *rec = &recs[ti].rec[k];
            rosa_answer a;
            if (rosa_score_response(t, rec->instruction, "", rec->answer, &a) < 0) {
                free(done);
                rosa_error_prefix("task %s: %s record %d", t->name, t->file, rec->index);
                goto out;
            }
            rosa_answer_free(&a);
        }
        /* resume: examples already in the predictions file are rescored from
         * their saved response and not decoded again */
        for (int li = 1; li < saved.n; li++) { /* line 1 is the header */
            const cJSON *line = saved.lines[li];
            const char *name = jstr(line, "task"), *response = jstr(line, "response");
            int idx = jint(line, "index", -1);
            if (!name || strcmp(name, t->name) != 0 || idx < 0 || idx >= n || done[idx]) continue;
            char why[128];
            if (!same_config(line, o, max_new, why, sizeof why)) {
                free(done);
                rosa_fail("%s holds predictions made with other options (%s, line %d); give another "
                          "--predictions file or the same options", o->predictions, why, li + 1);
                goto out;
            }
            if (!response) {
                free(done);
                rosa_fail("%s: line %d has no response", o->predictions, li + 1);
                goto out;
            }
            /* The line must be of this record: a response is scored against the test file's label. */
            const char *instruction = jstr(line, "instruction");
            if (!instruction || strcmp(instruction, recs[ti].rec[idx].instruction) != 0) {
                free(done);
                rosa_fail("%s: line %d: its instruction is not that of record %d of %s (%s): the predictions were "
                          "made for another test file; give another --predictions file", o->predictions, li + 1, idx,
                          t->name, t->file);
                goto out;
            }
            rosa_answer a;
            if (rosa_score_response(t, recs[ti].rec[idx].instruction, response, recs[ti].rec[idx].answer, &a) < 0) {
                free(done);
                rosa_error_prefix("task %s: record %d", t->name, idx);
                goto out;
            }
            count(r, &a);
            rosa_answer_free(&a);
            r->resumed++;
            done[idx] = 1;
        }
        for (int k = 0; k < n; k++)
            if (!done[k]) todo[ti][n_todo[ti]++] = k;
        free(done);
        total += n_todo[ti];
        resumed_total += r->resumed;
    }
    if (o->predictions) {
        pf = fopen(o->predictions, "a+");
        if (!pf) {
            rosa_fail("%s: %s", o->predictions, strerror(errno));
            goto out;
        }
        /* a last line without its newline (edited by hand) must not run into ours */
        if (fseek(pf, 0, SEEK_END) == 0 && ftell(pf) > 0 && fseek(pf, -1, SEEK_END) == 0) {
            int last = fgetc(pf);
            fseek(pf, 0, SEEK_END);
            if (last != '\n' && fputc('\n', pf) == EOF) {
                rosa_fail("%s: %s", o->predictions, strerror(errno));
                goto out;
            }
        }
        if (saved.n == 0 && (fputs(header, pf) < 0 || fputc('\n', pf) == EOF || fflush(pf) != 0)) {
            rosa_fail("%s: write failed: %s", o->predictions, strerror(errno));
            goto out;
        }
    }
    if (resumed_total > 0) note(&prog, "resuming: %d examples already in %s", resumed_total, o->predictions);
    rosa_progress_start(&prog.line, "eval", total, 0, o->quiet, 0);
    for (int ti = 0; ti < nt; ti++) {
        const rosa_task *t = &tasks->t[ti];
        if (n_todo[ti] == 0) continue;
        task_run tr = {0};
        tr.m = m;
        tr.tok = tok;
        tr.o = o;
        tr.task = t;
        tr.recs = &recs[ti];
        tr.res = &rep->r[ti];
        tr.todo = todo[ti];
        tr.max_new = o->max_new_tokens > 0 ? o->max_new_tokens : rosa_task_default_max_new_tokens(t->type);
        tr.pf = pf;
        tr.pf_path = o->predictions;
        tr.prog = &prog;
        int e;
        if (o->mode == ROSA_EVAL_LOGLIK) {
            if (t->type != ROSA_TASK_COMMONSENSE) {
                rosa_log(ROSA_LOG_WARN, "%s: loglik mode scores commonsense tasks only; skipped", t->name);
                prog.line.total -= n_todo[ti];
                continue;
            }
            e = run_loglik(&tr, n_todo[ti]);
        } else {
            e = run_generate(&tr, n_todo[ti]);
        }
        if (e < 0) {
            rosa_error_prefix("task %s", t->name);
            goto out;
        }
        rep->n_new += n_todo[ti];
    }
    rc = 0;
out:
    rosa_progress_end(&prog.line);
    if (pf && fclose(pf) != 0 && rc == 0) rc = rosa_fail("%s: %s", o->predictions, strerror(errno));
    pred_file_free(&saved);
    free(header);
    cJSON_Delete(mine);
    if (recs)
        for (int ti = 0; ti < nt; ti++) rosa_records_free(&recs[ti]);
    free(recs);
    if (todo)
        for (int ti = 0; ti < nt; ti++) free(todo[ti]);
    free(todo);
    free(n_todo);
    rep->seconds = rosa_now() - t0;
    if (rc < 0) rosa_eval_report_free(rep);
    return rc;
}

/* ------------------------------------------------------------ rescoring */

int rosa_eval_score_file(const char *path, const rosa_task_list *known, const char *default_task,
                         rosa_eval_report *rep) {
    memset(rep, 0, sizeof *rep);
    double t0 = rosa_now();
    pred_file f;
    if (pred_file_load(path, 0, &f, NULL) < 0) return -1;
    int nk = known->n, rc = -1;
    rosa_task_result *res = rosa_calloc((size_t)(nk ? nk : 1), sizeof *res, "report");
    rosa_records *recs = rosa_calloc((size_t)(nk ? nk : 1), sizeof *recs, "records");
    uint8_t *loaded = rosa_calloc((size_t)(nk ? nk : 1), 1, "records");
    if (!res || !recs || !loaded) goto out;
    for (int li = 0; li < f.n; li++) {
        const cJSON *line = f.lines[li];
        if (li == 0 && is_header(line)) continue; /* what made the file: nothing to score */
        const char *name = jstr(line, "task");
        if (!name) name = default_task;
        if (!name) {
            rosa_fail("%s: line %d has no \"task\" (give --tasks with one task to score a file of one task)", path,
                      li + 1);
            goto out;
        }
        int ti = -1;
        const rosa_task *b = rosa_task_find_builtin(name);
        for (int k = 0; k < nk && ti < 0; k++)
            if (strcmp(known->t[k].name, name) == 0 || (b && strcmp(known->t[k].name, b->name) == 0)) ti = k;
        if (ti < 0) {
            rosa_fail("%s: line %d: unknown task \"%s\"", path, li + 1, name);
            goto out;
        }
        const rosa_task *t = &known->t[ti];
        const char *response = jstr(line, "response");
        if (!response) response = jstr(line, "output_pred");
        if (!response) {
            rosa_fail("%s: line %d has no \"response\" (or \"output_pred\")", path, li + 1);
            goto out;
        }
        const char *label = jstr(line, "label");
        if (!label) label = jstr(line, "answer");
        char numbuf[64];
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(line, "label");
        if (!cJSON_IsNumber(lv)) lv = cJSON_GetObjectItemCaseSensitive(line, "answer");
        if (!label && cJSON_IsNumber(lv)) {
            snprintf(numbuf, sizeof numbuf, "%.17g", lv->valuedouble);
            label = numbuf;
        }
        const char *instruction = jstr(line, "instruction");
        int idx = jint(line, "index", -1);
        if (!label || (!instruction && !t->labels && t->rule == ROSA_RULE_LABELS)) {
            if (idx < 0) {
                rosa_fail("%s: line %d has no label (\"label\", \"answer\" or \"index\" into the test file)", path,
                          li + 1);
                goto out;
            }
            if (!loaded[ti]) {
                if (rosa_records_load(t->file, 0, &recs[ti]) < 0) goto out;
                loaded[ti] = 1;
            }
            if (idx >= recs[ti].n) {
                rosa_fail("%s: line %d: index %d is past the %d records of %s", path, li + 1, idx, recs[ti].n,
                          t->file);
                goto out;
            }
            if (!label) label = recs[ti].rec[idx].answer;
            if (!instruction) instruction = recs[ti].rec[idx].instruction;
        }
        rosa_answer a;
        if (rosa_score_response(t, instruction, response, label, &a) < 0) {
            rosa_error_prefix("%s: line %d", path, li + 1);
            goto out;
        }
        res[ti].task = t;
        count(&res[ti], &a);
        rosa_answer_free(&a);
    }
    rep->r = rosa_calloc((size_t)(nk ? nk : 1), sizeof(rosa_task_result), "report");
    if (!rep->r) goto out;
    for (int k = 0; k < nk; k++)
        if (res[k].n > 0) rep->r[rep->n++] = res[k];
    rc = 0;
out:
    pred_file_free(&f);
    free(res);
    if (recs)
        for (int k = 0; k < nk; k++) rosa_records_free(&recs[k]);
    free(recs);
    free(loaded);
    rep->seconds = rosa_now() - t0;
    if (rc < 0) rosa_eval_report_free(rep);
    return rc;
}

/* The reports (the table and the JSON report) are in eval_report.c. */
