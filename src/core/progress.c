/* progress.c: step/total, loss, lr, grad norm, tokens/s, elapsed and ETA. */
#include "core/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "core/util.h"

/* The line currently drawn on the terminal, so that notes can clear it. */
static rosa_progress *active;

static void clock_str(char *buf, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

void rosa_progress_start(rosa_progress *p, const char *what, int64_t total, int64_t start, int quiet, int plain) {
    p->what = what;
    p->total = total;
    p->start = start;
    p->t0 = rosa_now();
    p->last_print = 0;
    p->tokens = 0;
    p->quiet = quiet;
    p->tty = !plain && isatty(2);
    p->open_line = 0;
    active = quiet ? NULL : p;
}

void rosa_progress_update(rosa_progress *p, int64_t done, double loss, double lr, double grad_norm, long long tokens) {
    char extra[96];
    snprintf(extra, sizeof extra, "loss %.4f lr %.3g gnorm %.3g", loss, lr, grad_norm);
    rosa_progress_update_rate(p, done, tokens, "tok/s", extra);
}

void rosa_progress_update_rate(rosa_progress *p, int64_t done, long long items, const char *unit, const char *extra) {
    if (p->quiet) return;
    p->tokens += items;
    double now = rosa_now(), elapsed = now - p->t0;
    int last = done >= p->total;
    if (!p->tty && !last && now - p->last_print < 1.0) return;
    p->last_print = now;
    double rate = elapsed > 0 ? (double)(done - p->start) / elapsed : 0.0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : 0.0;
    char el[32], et[32];
    clock_str(el, sizeof el, elapsed);
    clock_str(et, sizeof et, eta);
    char bar[21];
    int filled = p->total > 0 ? (int)(20 * done / p->total) : 20;
    for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "%s%s [%s] %lld/%lld %s%s%.0f %s %s eta %s%s", p->tty ? "\r" : "", p->what, bar, (long long)done,
            (long long)p->total, extra ? extra : "", extra && *extra ? " " : "",
            elapsed > 0 ? p->tokens / elapsed : 0.0, unit ? unit : "items/s", el, et, p->tty ? "\033[K" : "\n");
    p->open_line = p->tty;
    fflush(stderr);
}

void rosa_progress_end(rosa_progress *p) {
    if (p->open_line) fputc('\n', stderr);
    p->open_line = 0;
    active = NULL;
}

void rosa_progress_clear(void) {
    if (active && active->open_line) {
        fputs("\r\033[K", stderr);
        active->open_line = 0;
    }
}
