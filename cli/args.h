/* args.h: `--flag value` parsing for the rosa subcommands, with --help text
 * generated from the same table. */
#ifndef ROSA_ARGS_H
#define ROSA_ARGS_H

#include <stddef.h>

/* ARG_FLAG: --flag, or --flag=BOOL (true/false in any case, yes/no, 1/0). */
typedef enum { ARG_STR, ARG_INT, ARG_FLOAT, ARG_DOUBLE, ARG_U64, ARG_FLAG } arg_type;

/* How an option was given: by its name, its alias, from a --config file. */
enum { ARG_SEEN_NAME = 1, ARG_SEEN_ALIAS = 2, ARG_SEEN_BOTH = 3, ARG_SEEN_FILE = 4 };

typedef struct {
    const char *name;    /* without the leading "--" */
    arg_type type;
    void *dest;          /* const char **, int *, float *, double *, uint64_t *, int * */
    const char *metavar; /* NULL for flags */
    const char *help;
    int required;
    int seen;            /* set by the parser: ARG_SEEN_* bits */
    const char *alias;   /* another name writing the same dest ("learning-rate"; one letter: a short flag
                            such as -m), or NULL */
} arg_spec;

typedef struct {
    const char *command; /* e.g. "generate" */
    const char *usage;   /* one line after "rosa <command> " */
    const char *summary; /* a sentence */
    arg_spec *args;      /* terminated by {0} */
    const char *positional; /* metavar of one optional positional argument, or NULL */
    const char **positional_dest;
    /* Optional headings for --help, as HF's argument groups: each starts at the
     * option named first; {NULL} ends the list.  Set after the initialiser. */
    const struct arg_section { const char *first, *title; } *sections;
} arg_parser;

/* Returns 0 on success, 1 when --help was printed (exit 0), -1 on a usage
 * error (message printed as "rosa: error: ..."). */
int args_parse(arg_parser *p, int argc, char **argv);
void args_print_help(const arg_parser *p);
/* Values of the kinds the table has no type for; each prints its usage
 * error ("rosa: error: --flag expects ...") and returns -1.
 * Booleans: true/false, yes/no (any case), 1/0. */
int arg_parse_bool(const char *flag, const char *v, int *out);
/* A positive size: "8G", "512M", "1.5GiB", "100000" (bytes); K, M, G, T
 * are powers of 1024. */
int arg_parse_size(const char *flag, const char *s, double *out);
/* Whether s[0..n) spells the option name; '_' stands for '-', so
 * --learning_rate is --learning-rate. */
int args_name_eq(const char *name, const char *s, size_t n);
/* The option name nearest to s[0..n) when it is near enough to be a typo
 * (at most 2 edits, fewer than half its letters), or NULL. */
const char *args_suggest(const arg_spec *args, const char *s, size_t n);
/* Whether --name was given. */
int arg_seen(const arg_spec *specs, const char *name);

/* "rosa: error: <msg>" on stderr. */
void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
