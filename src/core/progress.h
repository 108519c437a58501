/* progress.h: the progress line of long commands, on stderr: one updating
 * line on a terminal, plain lines otherwise (or with plain set). */
#ifndef ROSA_PROGRESS_H
#define ROSA_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *what;
    int64_t total, start;
    double t0, last_print;
    long long tokens;
    int quiet, tty, open_line;
} rosa_progress;

void rosa_progress_start(rosa_progress *p, const char *what, int64_t total, int64_t start, int quiet, int plain);
void rosa_progress_update(rosa_progress *p, int64_t done, double loss, double lr, double grad_norm, long long tokens);
/* The same line for commands that count items rather than optimizer steps:
 * bar, done/total, `extra` (e.g. "loss 1.2345", may be NULL), the rate of
 * `items` (accumulated like tokens) per second in `unit` (e.g. "tok/s",
 * "ex/s"), elapsed and ETA. */
void rosa_progress_update_rate(rosa_progress *p, int64_t done, long long items, const char *unit, const char *extra);
void rosa_progress_end(rosa_progress *p);
/* A message on a line of its own (the progress line is redrawn after it). */
void rosa_progress_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
