/* progress.h: the progress line of long commands, on stderr: one updating
 * line on a terminal, plain lines otherwise (or with plain set).
 *
 * The one place in the library that writes stderr itself rather than through
 * rosa_log (core/log.h): the line is a terminal display, redrawn in place
 * with "\r" and "\033[K" several times a second, not a message; a log
 * callback could do nothing useful with it.  Callers that must keep stderr
 * clean set quiet (rosa_train_options.quiet, rosa_eval_options.quiet).
 * rosa_log clears the line before each message, so messages and the line
 * never share a row. */
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
/* Clears the progress line drawn on the terminal, if any, so that a message
 * can take the row (it is redrawn by the next update); rosa_log calls it. */
void rosa_progress_clear(void);

#endif
