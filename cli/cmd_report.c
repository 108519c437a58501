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
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            args_print_help(&p);
            return 0;
        }
        if (strcmp(s, "--output") == 0 || strncmp(s, "--output=", 9) == 0) {
            in_compare = 0;
            if (s[8] == '=') output = s + 9;
            else if (i + 1 < argc) output = argv[++i];
            else return die_msg("rosa report: --output needs a value (FILE.html)"), 2;
            continue;
        }
        if (strcmp(s, "--compare") == 0 || strncmp(s, "--compare=", 10) == 0) {
            in_compare = 1;
            if (s[9] == '=') s = s + 10;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) s = argv[++i];
            else return die_msg("rosa report: --compare needs a run directory"), 2;
        } else if (strncmp(s, "--", 2) == 0) {
            return die_msg("rosa report: unknown option %s (see rosa report --help)", s), 2;
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
