/* args.c: the option parser shared by every subcommand. */
#include "args.h"

#include "config_file.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void die_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rosa: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A usage error about argument `arg`: "rosa: error: rosa CMD: [run.yaml:3
 * (key lr): ]message", so that a value from a config file names its line. */
static void __attribute__((format(printf, 3, 4))) arg_error(const arg_parser *p, const char *arg, const char *fmt, ...) {
    const char *origin = arg ? config_origin(arg) : NULL;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rosa: error: rosa %s: %s%s", p->command, origin ? origin : "", origin ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* "-m" or "--learning-rate": the alias as typed. */
static const char *alias_flag(const arg_spec *a, char *buf, size_t size) {
    snprintf(buf, size, "%s%s", a->alias[1] ? "--" : "-", a->alias);
    return buf;
}

void args_print_help(const arg_parser *p) {
    printf("usage: rosa %s %s\n\n%s\n\n%s", p->command, p->usage, p->summary, p->sections ? "" : "options:\n");
    for (const arg_spec *a = p->args; a->name; a++) {
        for (const struct arg_section *s = p->sections; s && s->first; s++)
            if (strcmp(s->first, a->name) == 0) printf("%s%s:\n", a == p->args ? "" : "\n", s->title);
        char left[256], alias[72] = "";
        if (a->alias) alias_flag(a, alias, sizeof alias);
        int is_short = a->alias && !a->alias[1];
        snprintf(left, sizeof left, "%s%s--%s%s%s%s%s", is_short ? alias : "", is_short ? ", " : "", a->name,
                 a->metavar ? " " : "", a->metavar ? a->metavar : "", a->alias && !is_short ? ", " : "",
                 is_short ? "" : alias);
        if (strlen(left) > 26) printf("  %s\n  %-26s %s%s\n", left, "", a->help, a->required ? " (required)" : "");
        else printf("  %-26s %s%s\n", left, a->help, a->required ? " (required)" : "");
    }
    printf("  %-26s %s\n", "--config FILE", "read options from a YAML file (key: value); flags given here override it");
    printf("  %-26s %s\n", "--help", "show this help and exit");
}

int args_name_eq(const char *name, const char *s, size_t n) {
    if (strlen(name) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (name[i] != (s[i] == '_' ? '-' : s[i])) return 0;
    return 1;
}

/* Levenshtein distance between name and s[0..n), '_' read as '-';
 * SIZE_MAX for names too long to be worth comparing. */
static size_t edit_distance(const char *name, const char *s, size_t n) {
    size_t m = strlen(name), row[64];
    if (m >= 64 || n >= 64) return SIZE_MAX;
    for (size_t j = 0; j <= n; j++) row[j] = j;
    for (size_t i = 1; i <= m; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= n; j++) {
            char c = s[j - 1] == '_' ? '-' : s[j - 1];
            size_t up = row[j], best = diag + (name[i - 1] != c);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[n];
}

const char *args_suggest(const arg_spec *args, const char *s, size_t n) {
    const char *best = NULL;
    size_t best_d = 3;
    for (const arg_spec *a = args; a->name; a++) {
        const char *names[2] = {a->name, a->alias && a->alias[1] ? a->alias : NULL};
        for (int k = 0; k < 2 && names[k]; k++) {
            size_t d = edit_distance(names[k], s, n);
            if (d < best_d && 2 * d < strlen(names[k])) best = names[k], best_d = d;
        }
    }
    return best;
}

static int parse_value(arg_parser *p, arg_spec *a, const char *arg, const char *flag, const char *v) {
    char *end;
    errno = 0;
    switch (a->type) {
    case ARG_STR:
        *(const char **)a->dest = v;
        return 0;
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (*v == 0 || *end || errno || x < INT_MIN || x > INT_MAX) break;
        *(int *)a->dest = (int)x;
        return 0;
    }
    case ARG_U64: {
        if (*v == '-') break;
        unsigned long long x = strtoull(v, &end, 10);
        if (*v == 0 || *end || errno) break;
        *(uint64_t *)a->dest = x;
        return 0;
    }
    case ARG_FLOAT: {
        float x = strtof(v, &end);
        if (*v == 0 || *end || errno || !isfinite(x)) break;
        *(float *)a->dest = x;
        return 0;
    }
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (*v == 0 || *end || errno || !isfinite(x)) break;
        *(double *)a->dest = x;
        return 0;
    }
    case ARG_FLAG:
        break;
    }
    arg_error(p, arg, "%s expects %s, got \"%s\"", flag, a->type == ARG_FLOAT || a->type == ARG_DOUBLE ? "a number" : "an integer", v);
    return -1;
}

/* A boolean in any case (HF's --bf16 True): 1, 0, or -1. */
static int bool_value(const char *v) {
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes")) return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no")) return 0;
    return -1;
}

int args_parse(arg_parser *p, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            args_print_help(p);
            return 1;
        }
        arg_spec *a = NULL;
        int by = ARG_SEEN_NAME;
        if (s[0] == '-' && s[1] && s[1] != '-' && !s[2])
            for (arg_spec *b = p->args; b->name && !a; b++)
                if (b->alias && b->alias[0] == s[1] && !b->alias[1]) a = b, by = ARG_SEEN_ALIAS;
        if (!a && strncmp(s, "--", 2) != 0) {
            if (p->positional && !*p->positional_dest) {
                *p->positional_dest = s;
                continue;
            }
            arg_error(p, s, "unexpected argument \"%s\" (see rosa %s --help)", s, p->command);
            return -1;
        }
        const char *name = s + 2, *eq = a ? NULL : strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        for (arg_spec *b = p->args; b->name && !a; b++) {
            if (args_name_eq(b->name, name, n)) a = b, by = ARG_SEEN_NAME;
            else if (b->alias && b->alias[1] && args_name_eq(b->alias, name, n)) a = b, by = ARG_SEEN_ALIAS;
        }
        if (!a) {
            const char *near = args_suggest(p->args, name, n);
            if (near) arg_error(p, s, "unknown option --%.*s (did you mean --%s?)", (int)n, name, near);
            else arg_error(p, s, "unknown option --%.*s (see rosa %s --help)", (int)n, name, p->command);
            return -1;
        }
        /* The command line overrides a config file: forget what the file said. */
        int from_file = config_origin(s) != NULL;
        if ((a->seen & ARG_SEEN_FILE) && !from_file) a->seen = 0;
        a->seen |= by | (from_file ? ARG_SEEN_FILE : 0);
        char flag[72], alias[72];
        snprintf(flag, sizeof flag, "--%s", a->name);
        if ((a->seen & ARG_SEEN_BOTH) == ARG_SEEN_BOTH) {
            arg_error(p, s, "%s and %s are the same option: give one", flag, alias_flag(a, alias, sizeof alias));
            return -1;
        }
        if (by == ARG_SEEN_ALIAS) alias_flag(a, flag, sizeof flag);
        if (a->type == ARG_FLAG) {
            int b = eq ? bool_value(eq + 1) : 1;
            if (b < 0) {
                arg_error(p, s, "%s takes no value, or true or false (any case), got \"%s\"", flag, eq + 1);
                return -1;
            }
            *(int *)a->dest = b;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            arg_error(p, s, "%s needs a value (%s)", flag, a->metavar);
            return -1;
        }
        if (parse_value(p, a, s, flag, v) < 0) return -1;
    }
    for (const arg_spec *a = p->args; a->name; a++)
        if (a->required && !a->seen) {
            die_msg("rosa %s: --%s is required (see rosa %s --help)", p->command, a->name, p->command);
            return -1;
        }
    return 0;
}

int arg_seen(const arg_spec *specs, const char *name) {
    for (const arg_spec *a = specs; a->name; a++)
        if (strcmp(a->name, name) == 0) return a->seen;
    return 0;
}

int arg_parse_bool(const char *flag, const char *v, int *out) {
    *out = bool_value(v);
    if (*out < 0) {
        die_msg("--%s expects true or false, got \"%s\"", flag, v);
        return -1;
    }
    return 0;
}

int arg_parse_size(const char *flag, const char *s, double *out) {
    char *end;
    double v = strtod(s, &end), mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824.0, end++;
    else if (*end == 'T' || *end == 't') mul = 1099511627776.0, end++;
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (end == s || *end || !(v > 0) || !isfinite(v * mul)) {
        die_msg("--%s expects a size like 8G or 512M, got \"%s\"", flag, s);
        return -1;
    }
    *out = v * mul;
    return 0;
}
