/* analysis_report.h: JSON, HTML and text output of `rosa analyze` (the
 * computation is in model/analyze.h). */
#ifndef ROSA_ANALYSIS_REPORT_H
#define ROSA_ANALYSIS_REPORT_H

#include <stdio.h>

#include "model/analyze.h"
#include "report/svg.h"

/* rosa_analysis_meta, rosa_analysis_write and rosa_analysis_print are
 * public (rosa_train.h). */

/* {"format": "rosa-analyze/1", ..., "layers": [...], "mean_over_layers": {...}} */
int rosa_analysis_json(const rosa_analysis *a, const rosa_analysis_meta *meta, svg_buf *o);
/* A self-contained HTML page with the plots. */
int rosa_analysis_html(const rosa_analysis *a, const rosa_analysis_meta *meta, svg_buf *o);

#endif
