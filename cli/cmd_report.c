/* cmd_report.c: `rosa report RUN_DIR [--compare RUN_DIR ...] [--output FILE.html]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "rosa.h"
#include "rosa_train.h"

int cmd_report(int argc, char **argv) {
    const char *output = NULL, *compare_help = NULL;
    arg_spec specs[] = {
        {"compare", ARG_STR, &compare_help, "RUN_DIR ...", "more runs to show side by side (up to 8 runs in all)", 0, 0, NULL},
        {"output", ARG_STR, &output, "FILE.html", "where to write the report (default RUN_DIR/report.html)", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"report", "RUN_DIR [--compare RUN_DIR ...] [--output FILE.html]",
                    "Writes one self-contained HTML file (inline SVG, no network, no script) with the run's loss, "
                    "learning rate, gradient norm and tokens/s, the DLS heatmap and selection counts, configuration, "
                    "parameters, memory, wall time and evaluation results (eval*.json in RUN_DIR).",
                    specs, NULL, NULL, NULL};
    const char *dirs[8];
    int n = 0, in_compare = 0;
    /* Not args_parse, as --compare takes several values; the same spellings
     * ('_' for '-', --option=value) and the same suggestions. */
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            args_print_help(&p);
            return 0;
        }
        const char *name = s + 2, *eq = strncmp(s, "--", 2) == 0 ? strchr(name, '=') : NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (strncmp(s, "--", 2) == 0 && args_name_eq("output", name, len)) {
            in_compare = 0;
            if (eq) output = eq + 1;
            else if (i + 1 < argc) output = argv[++i];
            else return die_msg("rosa report: --output needs a value (FILE.html)"), 2;
            continue;
        }
        if (strncmp(s, "--", 2) == 0 && args_name_eq("compare", name, len)) {
            in_compare = 1;
            if (eq) s = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) s = argv[++i];
            else return die_msg("rosa report: --compare needs a run directory"), 2;
        } else if (strncmp(s, "--", 2) == 0) {
            const char *near = args_suggest(specs, name, len);
            if (near) return die_msg("rosa report: unknown option --%.*s (did you mean --%s?)", (int)len, name, near), 2;
            return die_msg("rosa report: unknown option --%.*s (see rosa report --help)", (int)len, name), 2;
        } else if (n > 0 && !in_compare) {
            return die_msg("rosa report: unexpected argument \"%s\": give more runs with --compare", s), 2;
        }
        if (n == 8) return die_msg("rosa report: at most 8 runs side by side"), 2;
        dirs[n++] = s;
    }
    if (n == 0) return die_msg("rosa report: a run directory is required (see rosa report --help)"), 2;
    char *def = NULL;
    if (!output) {
        def = rosa_path_join(dirs[0], "report.html");
        if (!def) return die_msg("%s", rosa_last_error()), 1;
        output = def;
    }
    int rc = rosa_report_write(dirs, n, output);
    if (rc < 0) die_msg("%s", rosa_last_error());
    else printf("report written to %s\n", output);
    free(def);
    return rc < 0 ? 1 : 0;
}
