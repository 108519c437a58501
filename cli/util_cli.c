/* util_cli.c: small helpers shared by the subcommands. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"

void print_json_string(const char *s, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (c < 0x20) printf("\\u%04x", c);
            else putchar(c);
        }
    }
    putchar('"');
}

void print_json_number(double x) {
    if (isfinite(x)) printf("%.9g", x);
    else fputs("null", stdout);
}

int take_threads(const arg_spec *specs, int threads) {
    if (arg_seen(specs, "threads") && threads < 1) {
        die_msg("--threads must be >= 1, got %d (leave it out for all cores)", threads);
        return -1;
    }
    rosa_set_threads(threads);
    return 0;
}

int parse_dtype(const char *v, rosa_dtype *out) {
    if (strcmp(v, "fp32") == 0 || strcmp(v, "f32") == 0) *out = ROSA_DTYPE_F32;
    else if (strcmp(v, "bf16") == 0) *out = ROSA_DTYPE_BF16;
    else {
        die_msg("--dtype expects fp32 or bf16, got \"%s\"", v);
        return -1;
    }
    return 0;
}

int parse_quantize(const char *v, rosa_dtype compute, rosa_quant *out) {
    if (strcmp(v, "none") == 0) *out = ROSA_QUANT_NONE;
    else if (strcmp(v, "int8") == 0) *out = ROSA_QUANT_INT8;
    else {
        die_msg("--quantize expects none or int8, got \"%s\"", v);
        return -1;
    }
    if (*out && compute != ROSA_DTYPE_F32) {
        die_msg("--quantize int8 and --dtype bf16 do not go together: int8 weights are dequantised and multiplied in "
                "FP32 (give --dtype fp32)");
        return -1;
    }
    return 0;
}
