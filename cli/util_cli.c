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

int parse_dtype(const char *v, rosa_dtype *out) {
    if (strcmp(v, "fp32") == 0 || strcmp(v, "f32") == 0) *out = ROSA_DTYPE_F32;
    else if (strcmp(v, "bf16") == 0) *out = ROSA_DTYPE_BF16;
    else {
        die_msg("--dtype expects fp32 or bf16, got \"%s\"", v);
        return -1;
    }
    return 0;
}
