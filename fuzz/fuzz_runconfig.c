/* fuzz_runconfig: `--config FILE` (cli/config_file.c, libyaml underneath),
 * then the option parser on what it made.
 *
 * Input: a YAML file.  Properties: config_expand returns 0 or -1; on 0 every
 * argument it made is "--key=value" with a non-empty key and names the file's
 * line it came from, the command line's own arguments follow in their order,
 * and the parser then accepts or refuses without crashing. */
#include "fuzz_common.h"
#include "../cli/args.h"
#include "../cli/config_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("run.yaml", data, size);
    char flag[] = "--config", file[PATH_MAX], tail[] = "--quiet";
    snprintf(file, sizeof file, "%s", path);
    char *args[] = {flag, file, tail, NULL};
    int argc = 3;
    char **argv = args;
    int rc = config_expand("fuzz", &argc, &argv);
    FUZZ_ASSERT(rc == 0 || rc == -1, "config_expand returned %d", rc);
    if (rc < 0) return 0;
    FUZZ_ASSERT(argc >= 1 && argv[argc - 1] == tail && argv[argc] == NULL, "the command line's argument is lost");
    for (int i = 0; i < argc - 1; i++) {
        const char *origin = config_origin(argv[i]);
        FUZZ_ASSERT(origin && strncmp(origin, path, strlen(path)) == 0, "argument %d has no origin", i);
        FUZZ_ASSERT(strncmp(argv[i], "--", 2) == 0 && argv[i][2] && argv[i][2] != '=' && strchr(argv[i], '='),
                    "made \"%s\"", argv[i]);
    }
    int quiet = 0, n = 0;
    float lr = 0;
    const char *s = NULL;
    arg_spec specs[] = {
        {"quiet", ARG_FLAG, &quiet, NULL, "", 0, 0, NULL}, {"lr", ARG_FLOAT, &lr, "X", "", 0, 0, "learning-rate"},
        {"n", ARG_INT, &n, "N", "", 0, 0, NULL},          {"s", ARG_STR, &s, "S", "", 0, 0, NULL},
        {0},
    };
    arg_parser p = {"fuzz", "", "", specs, NULL, NULL, NULL};
    rc = args_parse(&p, argc, argv);
    FUZZ_ASSERT(rc == 0 || rc == -1, "args_parse returned %d", rc);
    FUZZ_ASSERT(rc < 0 || quiet == 1, "the command line's --quiet was overridden");
    return 0;
}
