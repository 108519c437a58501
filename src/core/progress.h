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

#include "rosa_train.h"

/* rosa_progress and its functions are public (rosa_train.h). */

/* Clears the progress line drawn on the terminal, if any, so that a message
 * can take the row (it is redrawn by the next update); rosa_log calls it. */
void rosa_progress_clear(void);

#endif
