/* svg.h: a small SVG plotting module for the run report and the RoPE analysis:
 * linear and log scales with "nice" ticks, line charts with a legend, grouped
 * bar charts, heatmaps with a colour bar and markers, and XML/HTML escaping.
 *
 * Everything renders into an svg_buf as inline SVG (an <svg> element with a
 * viewBox, so it scales with the page).  Every string that reaches the output
 * goes through svg_escape.  Non-finite values are skipped (a line breaks at
 * them); empty or degenerate data gives a chart with axes and a "no data"
 * note instead of an error. */
#ifndef ROSA_SVG_H
#define ROSA_SVG_H

#include <stddef.h>

#include "core/util.h"

/* An output buffer that remembers an allocation failure (checked once, at the end). */
typedef struct {
    rosa_buf b;
    int failed;
} svg_buf;

void svg_put(svg_buf *o, const char *s);
void svg_printf(svg_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s escaped for XML text and attribute values (also valid HTML):
 * & < > " ' become entities; control characters other than tab and newline
 * are dropped (XML 1.0 forbids them); a byte that is not part of valid UTF-8
 * becomes U+FFFD.  NULL appends nothing. */
void svg_escape(svg_buf *o, const char *s);
void svg_escape_n(svg_buf *o, const char *s, size_t n);
void svg_buf_free(svg_buf *o);

/* ------------------------------------------------------------ scales, ticks */

/* The "nice" number (1, 2, 5 or 10 times a power of ten) nearest to x
 * (round) or not below it (!round); Heckbert's rule. */
double svg_nice_num(double x, int round);

/* Extends [*lo, *hi] to multiples of a nice step giving about `target`
 * intervals, and returns that step.  Non-finite bounds become [0, 1]; an empty
 * range (lo == hi) is widened around the value first. */
double svg_nice_domain(double *lo, double *hi, int target);

/* The nice step for about `target` intervals over [lo, hi], without
 * extending the range (x axes keep the data's exact extent). */
double svg_nice_step(double lo, double hi, int target);

/* The ticks lo, lo + step, ... <= hi (within rounding), at most cap of them;
 * returns their count.  Values within step * 1e-9 of zero are exactly 0. */
int svg_ticks(double lo, double hi, double step, double *ticks, int cap);

/* Powers of ten (and 2x, 5x when the range spans fewer than 3 decades) in
 * [lo, hi], for a log scale (lo > 0).  Returns the count. */
int svg_log_ticks(double lo, double hi, double *ticks, int cap);

/* A tick label with just enough decimals for `step`: 0.25 -> "0.25",
 * 12000 -> "12k", 2.5e-4 -> "2.5e-4".  step <= 0: a %g-like short form. */
void svg_format_tick(char *buf, size_t n, double v, double step);

typedef struct {
    double d0, d1; /* domain */
    double r0, r1; /* range (pixels) */
    int log;       /* log10 scale (domain > 0) */
} svg_scale;

double svg_scale_map(const svg_scale *s, double v);

/* Colours: a 10-colour categorical palette, and a sequential colour map
 * (viridis, t in [0, 1]) written as "#rrggbb" into buf[8]. */
const char *svg_palette(int i);
void svg_viridis(double t, char buf[8]);

/* Charts are described by structs meant for designated initializers: every
 * field left out is zero, which is its default. */

/* ----------------------------------------------------------------- line chart */

typedef struct {
    const char *label;  /* legend text; NULL = not in the legend */
    const double *x, *y;
    int n;
    const char *color;  /* NULL = palette colour of the series index */
    double width;       /* stroke width, 0 = 2 */
    double opacity;     /* 0 = 1 */
    int dash;           /* dashed line */
    int markers;        /* a circle at every point */
    int no_line;        /* markers only */
} svg_series;

typedef struct {
    int width, height;          /* 0 = 640 x 300 */
    const char *title, *xlabel, *ylabel;
    int fix_x, fix_y;           /* use xmin/xmax, ymin/ymax instead of the data's range */
    double xmin, xmax, ymin, ymax;
    int ylog;                   /* log10 y axis; non-positive values are skipped */
    int y_from_zero;            /* include 0 in the automatic y domain */
    const svg_series *series;
    int n_series;
    const char *empty_text;     /* NULL = "no data" */
    const double *vlines;       /* optional vertical reference lines (x values) */
    int n_vlines;
    const double *xbands;       /* optional shaded x intervals: [n_xbands][2] */
    int n_xbands;
    const char *xband_label;    /* legend text of the shading (NULL = none) */
    int x_integer;              /* x ticks at whole numbers only (steps) */
} svg_line_chart;

void svg_line_chart_render(svg_buf *o, const svg_line_chart *c);

/* ------------------------------------------------------------------ bar chart */

typedef struct {
    int width, height;
    const char *title, *xlabel, *ylabel;
    const char *const *categories; /* [n_cat] */
    int n_cat;
    const double *values;          /* [n_series][n_cat]; NAN = no bar */
    const char *const *series_labels; /* [n_series]; legend when n_series > 1 or highlight_label */
    int n_series;
    const char *const *colors;     /* [n_series] or NULL (palette) */
    const unsigned char *highlight; /* [n_cat] or NULL: these categories use highlight_color (single series) */
    const char *highlight_color, *highlight_label, *base_label;
    int fix_y;                     /* use ymin/ymax (else from 0 to the data, nice-rounded) */
    double ymin, ymax;
    const char *value_format;      /* printf format of a value label above each bar, or NULL */
    double value_scale;            /* value labels print value * scale (0 = 1) */
    int label_every;               /* category label every k bars (0 = automatic) */
    const double *hlines;          /* optional horizontal reference lines (y values) */
    const char *const *hline_labels;
    int n_hlines;
    const double *vsep;            /* optional separators between categories: after index vsep[i] */
    int n_vsep;
} svg_bar_chart;

void svg_bar_chart_render(svg_buf *o, const svg_bar_chart *c);

/* ------------------------------------------------------------------- heatmap */

typedef struct {
    int width, height;
    const char *title, *xlabel, *ylabel;
    int rows, cols;
    const double *values;         /* [rows][cols], NAN = no value (drawn grey) */
    const unsigned char *faded;   /* [rows][cols] or NULL: 1 = drawn faded */
    const char *const *row_labels; /* [rows] or NULL (row index) */
    const double *col_edges;      /* [cols + 1] x positions of column edges (increasing) */
    int fix_v;                    /* use vmin/vmax as the colour domain (else the data's range) */
    double vmin, vmax;
    const char *colorbar_label;
    const char *full_label, *faded_label, *missing_label; /* legend swatches (NULL = none) */
    /* Markers above the map at x positions, one style per kind. */
    const double *marker_x;
    const int *marker_kind;
    int n_markers;
    const char *const *marker_labels; /* [n_kinds] legend text */
    int n_marker_kinds;
    int marker_lines;             /* also a white line through the map at each marker */
} svg_heatmap;

void svg_heatmap_render(svg_buf *o, const svg_heatmap *h);

#endif
