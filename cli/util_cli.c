/* util_cli.c: small helpers shared by the subcommands. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"

int parse_id_list(const char *s, int32_t **ids, int *n) {
    int cap = 16, k = 0;
    int32_t *a = malloc(sizeof(int32_t) * (size_t)cap);
    if (!a) return -1;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffffL) {
            free(a);
            return -1;
        }
        if (k == cap) {
            cap *= 2;
            int32_t *b = realloc(a, sizeof(int32_t) * (size_t)cap);
            if (!b) {
                free(a);
                return -1;
            }
            a = b;
        }
        a[k++] = (int32_t)v;
        p = end;
    }
    *ids = a;
    *n = k;
    return 0;
}

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
