/* log.h: the library's one channel for messages that are not errors.
 *
 * Error convention (README, "Error convention"): a function that fails
 * returns -1 (or NULL) and leaves its message in rosa_last_error()
 * (rosa_fail, core/util.h); it never prints the error.  Everything else the
 * library has to say (warnings, training's plan, notes between progress
 * lines) is a rosa_log call: one message, no "rosa: " prefix, no newline.
 * The default sink writes it to stderr as "rosa: MESSAGE\n" or
 * "rosa: warning: MESSAGE\n"; rosa_set_log_callback (rosa.h) replaces it.
 * The one direct writer of stderr is the progress line (core/progress.c). */
#ifndef ROSA_LOG_H
#define ROSA_LOG_H

#include <stdarg.h>

#include "rosa.h"

void rosa_log(rosa_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rosa_vlog(rosa_log_level lvl, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
