/* commands.h: the rosa subcommands; each returns the process exit status. */
#ifndef ROSA_COMMANDS_H
#define ROSA_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "rosa.h"

int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_loss(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_analyze(int argc, char **argv);

/* --threads N (given: N >= 1; absent: 0, all cores) for the library; prints
 * its usage error itself. */
int take_threads(const arg_spec *specs, int threads);

/* "fp32" or "bf16" for --dtype; prints the error itself. */
int parse_dtype(const char *v, rosa_dtype *out);
/* "none" or "int8" for --quantize, which takes --dtype fp32 only (compute);
 * prints the error itself. */
int parse_quantize(const char *v, rosa_dtype compute, rosa_quant *out);

/* The help line of --quantize. */
#define QUANTIZE_HELP "int8: the frozen projections as int8 blocks of 32 with an FP32 scale (Q8_0), FP32 products (default none)"

/* Writes s as a JSON string literal (quotes included). */
void print_json_string(const char *s, size_t len);
/* Writes x with 9 significant digits, or null when it is not finite. */
void print_json_number(double x);

#endif
