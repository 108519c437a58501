/* analysis_report.h: JSON, HTML and text output of `rosa analyze` (the
 * computation is in model/analyze.h). */
#ifndef ROSA_ANALYSIS_REPORT_H
#define ROSA_ANALYSIS_REPORT_H

#include <stdio.h>

#include "model/analyze.h"
#include "report/svg.h"

typedef struct {
    const char *model, *adapter, *data; /* adapter may be NULL */
    const char *template_name;          /* "train" or "eval" */
    int cutoff_len;
    double rope_theta;
    const char *rope_type;
    const char *adapter_kind;           /* e.g. "ROSA post-rope gate", NULL without adapter */
} rosa_analysis_meta;

/* {"format": "rosa-analyze/1", ..., "layers": [...], "mean_over_layers": {...}} */
int rosa_analysis_json(const rosa_analysis *a, const rosa_analysis_meta *meta, svg_buf *o);
/* A self-contained HTML page with the plots. */
int rosa_analysis_html(const rosa_analysis *a, const rosa_analysis_meta *meta, svg_buf *o);
/* A short table for the terminal. */
void rosa_analysis_print(const rosa_analysis *a, FILE *f);

#endif
