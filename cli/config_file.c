/* config_file.c: `--config FILE` (YAML, read with libyaml's event parser). */
#include "config_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "args.h"

/* The arguments made from the file and where each came from.  They live until
 * the process ends: argv points into them. */
#define MAX_KEYS 256
static struct {
    char *arg;
    char origin[320];
} made[MAX_KEYS];
static int n_made;

const char *config_origin(const char *arg) {
    for (int i = 0; i < n_made; i++)
        if (made[i].arg == arg) return made[i].origin;
    return NULL;
}

static const char *event_name(yaml_event_type_t t) {
    switch (t) {
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "this";
    }
}

/* YAML 1.1's spellings of null (an empty plain scalar included). */
static int is_null(const yaml_event_t *e) {
    const char *v = (const char *)e->data.scalar.value;
    return e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*v || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0);
}

typedef struct {
    const char *path;
    yaml_parser_t parser;
    yaml_event_t ev;
    int have_ev;
} reader;

/* The next event into r->ev; -1 after printing the parser's error. */
static int next(reader *r, const char *command) {
    if (r->have_ev) yaml_event_delete(&r->ev);
    r->have_ev = 0;
    if (!yaml_parser_parse(&r->parser, &r->ev)) {
        die_msg("rosa %s: %s:%zu:%zu: not valid YAML: %s", command, r->path, r->parser.problem_mark.line + 1,
                r->parser.problem_mark.column + 1, r->parser.problem ? r->parser.problem : "syntax error");
        return -1;
    }
    r->have_ev = 1;
    return 0;
}

static size_t line_of(const reader *r) { return r->ev.start_mark.line + 1; }

/* "--key=value" with a list's items joined by commas; NULL (and *skip) for a
 * null value. */
static char *read_value(reader *r, const char *command, const char *key, size_t line, int *skip) {
    *skip = 0;
    if (next(r, command) < 0) return NULL;
    if (r->ev.type == YAML_SCALAR_EVENT) {
        if (is_null(&r->ev)) {
            *skip = 1;
            return NULL;
        }
        const char *v = (const char *)r->ev.data.scalar.value;
        size_t n = strlen(key) + strlen(v) + 4;
        char *arg = malloc(n);
        if (arg) snprintf(arg, n, "--%s=%s", key, v);
        return arg;
    }
    if (r->ev.type != YAML_SEQUENCE_START_EVENT) {
        die_msg("rosa %s: %s:%zu: key %s: expected a value or a list of values, got %s", command, r->path, line, key,
                event_name(r->ev.type));
        return NULL;
    }
    size_t cap = strlen(key) + 4, len;
    char *arg = malloc(cap);
    if (!arg) return NULL;
    len = (size_t)snprintf(arg, cap, "--%s=", key);
    for (int k = 0;; k++) {
        if (next(r, command) < 0) return free(arg), NULL;
        if (r->ev.type == YAML_SEQUENCE_END_EVENT) break;
        if (r->ev.type != YAML_SCALAR_EVENT) {
            die_msg("rosa %s: %s:%zu: key %s: a list of values may not hold %s", command, r->path, line_of(r), key,
                    event_name(r->ev.type));
            return free(arg), NULL;
        }
        const char *v = (const char *)r->ev.data.scalar.value;
        size_t need = len + strlen(v) + 2;
        if (need > cap) {
            char *bigger = realloc(arg, cap = 2 * need);
            if (!bigger) return free(arg), NULL;
            arg = bigger;
        }
        len += (size_t)snprintf(arg + len, cap - len, "%s%s", k ? "," : "", v);
    }
    return arg;
}

/* The file's options into made[] (from index *first on); 0 or -1. */
static int read_file(const char *command, const char *path, int *first) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        die_msg("rosa %s: --config %s: cannot open the file", command, path);
        return -1;
    }
    /* One file per process in the tool; the fuzz target calls this again and again. */
    for (int i = 0; i < n_made; i++) free(made[i].arg);
    n_made = 0;
    reader r = {.path = path};
    yaml_parser_initialize(&r.parser);
    yaml_parser_set_input_file(&r.parser, f);
    int rc = -1;
    *first = n_made;
    /* stream start, then a document holding one mapping (or nothing at all) */
    if (next(&r, command) < 0 || next(&r, command) < 0) goto done;
    if (r.ev.type == YAML_STREAM_END_EVENT) {
        rc = 0; /* an empty file: no options */
        goto done;
    }
    if (next(&r, command) < 0) goto done;
    if (r.ev.type == YAML_SCALAR_EVENT && is_null(&r.ev)) {
        rc = 0; /* a document holding nothing */
        goto done;
    }
    if (r.ev.type != YAML_MAPPING_START_EVENT) {
        die_msg("rosa %s: %s:%zu: expected a mapping of options (key: value), got %s", command, path, line_of(&r),
                r.ev.type == YAML_SCALAR_EVENT ? "a single value" : event_name(r.ev.type));
        goto done;
    }
    for (;;) {
        if (next(&r, command) < 0) goto done;
        if (r.ev.type == YAML_MAPPING_END_EVENT) break;
        if (r.ev.type != YAML_SCALAR_EVENT) {
            die_msg("rosa %s: %s:%zu: a key must be an option name, not %s", command, path, line_of(&r),
                    event_name(r.ev.type));
            goto done;
        }
        size_t line = line_of(&r);
        char key[256];
        const char *k = (const char *)r.ev.data.scalar.value;
        k += strspn(k, "-"); /* "--lr:" reads as "lr:" */
        if (!*k || strlen(k) >= sizeof key || strcspn(k, "= \t") != strlen(k)) {
            die_msg("rosa %s: %s:%zu: \"%s\" is not an option name", command, path, line, k);
            goto done;
        }
        snprintf(key, sizeof key, "%s", k);
        if (strcmp(key, "config") == 0) {
            die_msg("rosa %s: %s:%zu: a config file cannot name another (--config)", command, path, line);
            goto done;
        }
        for (int i = 0; i < n_made; i++) { /* YAML leaves a repeated key to the reader: refused */
            size_t kl = strlen(key);
            if (strncmp(made[i].arg + 2, key, kl) == 0 && made[i].arg[2 + kl] == '=') {
                die_msg("rosa %s: %s:%zu: key %s given twice (first at %s)", command, path, line, key, made[i].origin);
                goto done;
            }
        }
        int skip;
        char *arg = read_value(&r, command, key, line, &skip);
        if (skip) continue;
        if (!arg) goto done;
        if (n_made == MAX_KEYS) {
            free(arg);
            die_msg("rosa %s: %s: more than %d options", command, path, MAX_KEYS);
            goto done;
        }
        made[n_made].arg = arg;
        snprintf(made[n_made].origin, sizeof made[n_made].origin, "%s:%zu (key %s)", path, line, key);
        n_made++;
    }
    if (next(&r, command) < 0 || next(&r, command) < 0) goto done; /* document end, then stream end */
    if (r.ev.type != YAML_STREAM_END_EVENT) {
        die_msg("rosa %s: %s:%zu: one document expected, found another", command, path, line_of(&r));
        goto done;
    }
    rc = 0;
done:
    if (r.have_ev) yaml_event_delete(&r.ev);
    yaml_parser_delete(&r.parser);
    fclose(f);
    return rc;
}

int config_expand(const char *command, int *argc, char ***argv) {
    int at = -1;
    const char *path = NULL;
    for (int i = 0; i < *argc; i++) {
        const char *s = (*argv)[i];
        if (strncmp(s, "--", 2) != 0 || !args_name_eq("config", s + 2, strcspn(s + 2, "="))) continue;
        const char *v = s[8] == '=' ? s + 9 : i + 1 < *argc ? (*argv)[i + 1] : NULL;
        if (!v) {
            die_msg("rosa %s: --config needs a value (FILE.yaml)", command);
            return -1;
        }
        if (at >= 0) {
            die_msg("rosa %s: --config given twice: give one file", command);
            return -1;
        }
        at = i, path = v;
    }
    if (at < 0) return 0;
    int first;
    if (read_file(command, path, &first) < 0) return -1;
    int n_file = n_made - first, n_flag = strchr((*argv)[at], '=') ? 1 : 2;
    static char **out; /* argv from here on, until exit */
    free(out);
    out = malloc(sizeof(char *) * (size_t)(*argc - n_flag + n_file + 1));
    if (!out) {
        die_msg("out of memory");
        return -1;
    }
    int n = 0;
    for (int i = first; i < n_made; i++) out[n++] = made[i].arg;
    for (int i = 0; i < *argc; i++)
        if (i < at || i >= at + n_flag) out[n++] = (*argv)[i];
    out[n] = NULL;
    *argc = n;
    *argv = out;
    return 0;
}
