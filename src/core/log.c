/* log.c: rosa_log and its sink (log.h). */
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/progress.h"

static rosa_log_fn sink;
static void *sink_user;

void rosa_set_log_callback(rosa_log_fn fn, void *user) {
    sink = fn;
    sink_user = fn ? user : NULL;
}

void rosa_vlog(rosa_log_level lvl, const char *fmt, va_list ap) {
    char small[1024], *msg = small;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= (int)sizeof small) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            msg = big;
        } /* else: the message truncated, rather than none */
    } else if (n < 0) {
        small[0] = 0;
    }
    va_end(ap2);
    /* A message on a line of its own: the progress line, when one is drawn
     * on the terminal, is cleared first (and redrawn by its next update). */
    rosa_progress_clear();
    if (sink) {
        sink(lvl, msg, sink_user);
    } else {
        fprintf(stderr, "rosa: %s%s\n", lvl == ROSA_LOG_WARN ? "warning: " : "", msg);
    }
    if (msg != small) free(msg);
}

void rosa_log(rosa_log_level lvl, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rosa_vlog(lvl, fmt, ap);
    va_end(ap);
}
