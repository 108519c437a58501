/* fuzz_args: the command line's numbers: the option parser of every
 * subcommand (cli/args.c: integers, unsigned, floats, doubles, flags, sizes,
 * booleans), the id lists of --prompt-ids and --layers
 * (rosa_parse_int_list), and a PEFT method's own flags
 * (rosa_peft_set_option on LoRA's and RoAE's tables).
 *
 * Input: arguments, one per line (--help and -h left out).  The parser's
 * usage errors go to stderr, into the target's log.  Properties: an accepted value is what
 * its text says and is in its type's range (an int fits, a float and a size
 * are finite, a size is positive, a boolean is 0 or 1, an id list holds
 * non-negative ints); a refused one leaves a message. */
#include <math.h>

#include "fuzz_common.h"
#include "../cli/args.h"
#include "peft/peft.h"

#define MAX_ARGS 64

static void check_specs(int argc, char **argv) {
    int i_val = 7, flag = 0;
    float f_val = 0.5f;
    double d_val = 0.25;
    uint64_t u_val = 3;
    const char *s_val = NULL, *size_text = NULL, *bool_text = NULL;
    arg_spec specs[] = {
        {"int", ARG_INT, &i_val, "N", "", 0, 0, "integer"}, {"float", ARG_FLOAT, &f_val, "X", "", 0, 0, "x"},
        {"u64", ARG_U64, &u_val, "S", "", 0, 0, NULL},     {"str", ARG_STR, &s_val, "S", "", 0, 0, "s"},
        {"flag", ARG_FLAG, &flag, NULL, "", 0, 0, "f"},    {"size", ARG_STR, &size_text, "SIZE", "", 0, 0, NULL},
        {"bool", ARG_STR, &bool_text, "BOOL", "", 0, 0, NULL}, {"double", ARG_DOUBLE, &d_val, "X", "", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"fuzz", "", "", specs, NULL, NULL, NULL};
    int rc = args_parse(&p, argc, argv);
    FUZZ_ASSERT(rc >= -1 && rc <= 1, "args_parse returned %d", rc);
    if (rc != 0) return;
    FUZZ_ASSERT(isfinite(f_val), "--float accepted a non-finite value");
    FUZZ_ASSERT(isfinite(d_val), "--double accepted a non-finite value");
    FUZZ_ASSERT(flag == 0 || flag == 1, "--flag %d", flag);
    if (size_text) {
        double bytes = -1;
        if (arg_parse_size("size", size_text, &bytes) == 0)
            FUZZ_ASSERT(isfinite(bytes) && bytes > 0, "--size \"%s\" gave %g", size_text, bytes);
    }
    if (bool_text) {
        int b = -1;
        if (arg_parse_bool("bool", bool_text, &b) == 0) FUZZ_ASSERT(b == 0 || b == 1, "--bool gave %d", b);
    }
}

static void check_int_list(const char *s) {
    int32_t *ids = NULL;
    int n = -1;
    if (rosa_parse_int_list(s, &ids, &n) == 0) {
        FUZZ_ASSERT(n >= 0, "count %d", n);
        for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0, "id %d of \"%s\" is %d", i, s, ids[i]);
    } else {
        fuzz_refused();
    }
    free(ids);
}

static void check_method_flags(const char *flag, const char *value) {
    for (int k = 0; rosa_peft_at(k); k++) {
        const rosa_peft_method *m = rosa_peft_at(k);
        void *opts = rosa_peft_opts_new(m, NULL);
        if (!opts) return;
        int rc = rosa_peft_set_option(m, opts, flag, value);
        FUZZ_ASSERT(rc >= -1 && rc <= 1, "set_option returned %d", rc);
        if (rc < 0) fuzz_refused();
        for (const rosa_peft_option *o = m->options; rc == 0 && o->flag; o++)
            if (o->type == PEFT_OPT_FLOAT && strcmp(o->flag, flag) == 0)
                FUZZ_ASSERT(isfinite(*(float *)((char *)opts + o->offset)), "--%s accepted \"%s\"", flag, value);
        rosa_peft_opts_free(m, opts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *save = NULL, *w = strtok_r(text, "\n", &save); w && argc < MAX_ARGS; w = strtok_r(NULL, "\n", &save))
        if (strcmp(w, "--help") && strcmp(w, "-h")) argv[argc++] = w; /* no help pages on stdout */
    check_specs(argc, argv);
    for (int i = 0; i < argc; i++) check_int_list(argv[i]);
    for (int i = 0; i + 1 < argc; i += 2)
        if (strncmp(argv[i], "--", 2) == 0) check_method_flags(argv[i] + 2, argv[i + 1]);
    free(text);
    return 0;
}
