/* main.c: the rosa command-line tool: dispatch to subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "config_file.h"
#include "rosa.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"generate", cmd_generate, "generate text from a prompt (greedy or sampled)"},
    {"info", cmd_info, "describe a model directory"},
    {"tokenize", cmd_tokenize, "encode text to token ids, or decode ids; show what training sees"},
    {"train", cmd_train, "fine-tune an adapter (LoRA, RoAE or RoSA) on a frozen model"},
    {"loss", cmd_loss, "mean loss of a data set, with or without an adapter"},
    {"merge", cmd_merge, "fold a LoRA adapter into the model's weights"},
    {"eval", cmd_eval, "accuracy on the LLM-Adapters benchmarks (commonsense, math)"},
    {"report", cmd_report, "an HTML report of training runs (curves, DLS, config, evaluation)"},
    {"analyze", cmd_analyze, "RoPE frequency analysis: Q/K norms per head dimension (Figure 1)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: rosa <command> [options]   (rosa <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nrosa %s: RoPE-aware Selective Adaptation (RoSA) and LoRA fine-tuning on the CPU.\n", ROSA_VERSION);
}

/* OpenMP threads that wait at a barrier spin for a long while by default;
 * when the machine is shared that time is stolen from the thread being
 * waited for, and a training step gets several times slower.  libgomp reads
 * its settings when it loads, so rosa sets a short spin and re-executes
 * itself once; an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT is respected. */
static void tune_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("GOMP_SPINCOUNT", "10000", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the defaults */
}

int main(int argc, char **argv) {
    tune_openmp(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || (strcmp(argv[1], "help") == 0 && argc == 2)) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) { /* rosa help CMD = rosa CMD --help */
        static char help[] = "--help";
        argv[1] = argv[2];
        argv[2] = help;
        argc = 3;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("rosa %s\n", ROSA_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int n = argc - 2;
            char **args = argv + 2;
            if (config_expand(argv[1], &n, &args) < 0) return 2;
            return commands[i].run(n, args);
        }
    die_msg("unknown command \"%s\" (see rosa --help)", argv[1]);
    return 2;
}
