/* svg.c: scales, nice ticks, escaping, line / bar / heatmap charts as inline SVG. */
#include "svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif"
#define AXIS_COLOR "#555"
#define GRID_COLOR "#e6e6e6"
#define TEXT_COLOR "#333"
#define MISSING_COLOR "#dcdcdc"

/* ------------------------------------------------------------------ output */

void svg_put(svg_buf *o, const char *s) {
    if (!o->failed && rosa_buf_append(&o->b, s, strlen(s)) < 0) o->failed = 1;
}

void svg_printf(svg_buf *o, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        if (!o->failed && rosa_buf_append(&o->b, small, (size_t)n) < 0) o->failed = 1;
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        o->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (!o->failed && rosa_buf_append(&o->b, big, (size_t)n) < 0) o->failed = 1;
    free(big);
}

void svg_buf_free(svg_buf *o) {
    rosa_buf_free(&o->b);
    o->failed = 0;
}

/* Length of the valid UTF-8 sequence at s[0..n) and its code point, or 0. */
static int utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) return *cp = c, 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

void svg_escape_n(svg_buf *o, const char *s, size_t n) {
    if (!s) return;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* bytes [i - run, i) wait to be copied as they are */
#define FLUSH()                                                                                   \
    do {                                                                                          \
        if (run && !o->failed && rosa_buf_append(&o->b, p + i - run, run) < 0) o->failed = 1;      \
        run = 0;                                                                                  \
    } while (0)
    while (i < n) {
        uint32_t cp;
        int len = utf8_seq(p + i, n - i, &cp);
        const char *rep = NULL;
        if (len == 0) rep = "\xef\xbf\xbd", len = 1;
        else if (cp == '&') rep = "&amp;";
        else if (cp == '<') rep = "&lt;";
        else if (cp == '>') rep = "&gt;";
        else if (cp == '"') rep = "&quot;";
        else if (cp == '\'') rep = "&#39;";
        else if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f || cp == 0xfffe || cp == 0xffff) rep = "";
        if (rep) {
            FLUSH();
            svg_put(o, rep);
            i += (size_t)len;
        } else {
            i += (size_t)len;
            run += (size_t)len;
        }
    }
    FLUSH();
#undef FLUSH
}

void svg_escape(svg_buf *o, const char *s) {
    if (s) svg_escape_n(o, s, strlen(s));
}

/* Display width of a label in pixels (a rough estimate: UTF-8 characters
 * times the average advance of a sans-serif font). */
static double text_width(const char *s, double font_size) {
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; s && *p; p++)
        if ((*p & 0xc0) != 0x80) chars++;
    return (double)chars * font_size * 0.58;
}

static void text(svg_buf *o, double x, double y, const char *anchor, double size, const char *extra, const char *s) {
    svg_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%g\"%s%s>", x, y, anchor, size,
               extra && *extra ? " " : "", extra ? extra : "");
    svg_escape(o, s);
    svg_put(o, "</text>");
}

/* ------------------------------------------------------------ scales, ticks */

double svg_nice_num(double x, int round) {
    if (!(x > 0) || !isfinite(x)) return 1.0;
    double e = floor(log10(x)), f = x / pow(10.0, e), nf;
    if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10.0, e);
}

double svg_nice_domain(double *lo, double *hi, int target) {
    double a = *lo, b = *hi;
    if (!isfinite(a) || !isfinite(b)) a = 0, b = 1;
    if (a > b) {
        double t = a;
        a = b, b = t;
    }
    if (a == b) {
        double pad = a == 0 ? 1.0 : fabs(a) * 0.1;
        a -= pad, b += pad;
    }
    if (target < 1) target = 1;
    double step = svg_nice_num(svg_nice_num(b - a, 0) / target, 1);
    double nlo = floor(a / step + 1e-9) * step, nhi = ceil(b / step - 1e-9) * step;
    if (nhi <= nlo) nhi = nlo + step;
    *lo = nlo, *hi = nhi;
    return step;
}

double svg_nice_step(double lo, double hi, int target) {
    if (!isfinite(lo) || !isfinite(hi) || hi == lo) return svg_nice_num(fabs(hi) > 0 && isfinite(hi) ? fabs(hi) / 5 : 0.2, 1);
    if (target < 1) target = 1;
    return svg_nice_num(svg_nice_num(fabs(hi - lo), 0) / target, 1);
}

int svg_ticks(double lo, double hi, double step, double *ticks, int cap) {
    if (!(step > 0) || !isfinite(lo) || !isfinite(hi) || hi < lo) return 0;
    int n = 0;
    double first = ceil(lo / step - 1e-9);
    for (double k = first; n < cap; k += 1.0) {
        double v = k * step;
        if (v > hi + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0.0;
        ticks[n++] = v;
    }
    return n;
}

int svg_log_ticks(double lo, double hi, double *ticks, int cap) {
    if (!(lo > 0) || !(hi >= lo) || !isfinite(hi)) return 0;
    int e0 = (int)floor(log10(lo) + 1e-9), e1 = (int)ceil(log10(hi) - 1e-9);
    int few = e1 - e0 < 3;
    static const double mult[] = {1, 2, 5};
    int n = 0;
    for (int e = e0; e <= e1 && n < cap; e++)
        for (int k = 0; k < (few ? 3 : 1) && n < cap; k++) {
            double v = mult[k] * pow(10.0, e);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks[n++] = v;
        }
    return n;
}

/* Trims trailing zeros of a decimal ("2.50" -> "2.5", "3.00" -> "3"). */
static void trim_zeros(char *s) {
    char *dot = strchr(s, '.');
    if (!dot) return;
    char *e = s + strlen(s) - 1;
    while (e > dot && *e == '0') *e-- = 0;
    if (e == dot) *e = 0;
}

void svg_format_tick(char *buf, size_t n, double v, double step) {
    if (!isfinite(v)) {
        snprintf(buf, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    double mag = step > 0 ? step : fabs(v);
    double av = fabs(v);
    if (av >= 1e3 && (step > 0 ? step >= 100 : av >= 1e4)) { /* SI suffixes */
        static const char *suf[] = {"k", "M", "G", "T"};
        double div = 1e3;
        int k = 0;
        while (k < 3 && av >= div * 1e3) div *= 1e3, k++;
        int dec = 0;
        for (double s = mag / div; dec < 3 && s < 0.999; s *= 10) dec++;
        char num[64];
        snprintf(num, sizeof num, "%.*f", dec, v / div);
        trim_zeros(num);
        snprintf(buf, n, "%s%s", num, suf[k]);
        return;
    }
    if (mag < 1e-3 || av < 1e-4) { /* scientific: mantissa digits from the step */
        int e = (int)floor(log10(av) + 1e-9);
        double m = v / pow(10.0, e);
        int dec = 0;
        if (step > 0) {
            double rel = step / pow(10.0, e);
            while (dec < 4 && rel < 0.999) rel *= 10, dec++;
        } else dec = 2;
        char num[64];
        snprintf(num, sizeof num, "%.*f", dec, m);
        trim_zeros(num);
        if (strcmp(num, "10") == 0 || strcmp(num, "-10") == 0) { /* rounding carried */
            snprintf(num, sizeof num, "%s1", v < 0 ? "-" : "");
            e++;
        }
        snprintf(buf, n, "%se%d", num, e);
        return;
    }
    int dec = 0;
    if (step > 0) {
        double s = step;
        while (dec < 8 && s < 0.999) s *= 10, dec++;
        /* 0.25 needs two decimals although its magnitude needs one */
        char num[64];
        snprintf(num, sizeof num, "%.*f", dec + 2, step);
        trim_zeros(num);
        const char *dot = strchr(num, '.');
        int need = dot ? (int)strlen(dot + 1) : 0;
        if (need > dec) dec = need;
    } else {
        dec = av >= 100 ? 0 : av >= 10 ? 1 : av >= 1 ? 2 : 3;
    }
    snprintf(buf, n, "%.*f", dec, v);
    if (step <= 0) trim_zeros(buf);
}

double svg_scale_map(const svg_scale *s, double v) {
    double a = s->d0, b = s->d1, t;
    if (s->log) {
        if (!(v > 0)) return NAN;
        t = (log10(v) - log10(a)) / (log10(b) - log10(a));
    } else {
        t = b != a ? (v - a) / (b - a) : 0.5;
    }
    return s->r0 + t * (s->r1 - s->r0);
}

const char *svg_palette(int i) {
    static const char *p[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1",
                              "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"};
    if (i < 0) i = -i;
    return p[i % 10];
}

void svg_viridis(double t, char buf[8]) {
    static const unsigned char stops[][3] = {
        {68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},   {42, 120, 142}, {33, 145, 140},
        {34, 168, 132}, {68, 191, 112}, {122, 209, 81}, {189, 223, 38}, {253, 231, 37}};
    if (!isfinite(t)) t = 0;
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double x = t * 10;
    int i = (int)x;
    if (i >= 10) i = 9;
    double f = x - i;
    int rgb[3];
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
    snprintf(buf, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* ------------------------------------------------------------- common parts */

static int clip_counter;

static void svg_open(svg_buf *o, int W, int H, const char *title) {
    svg_printf(o,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
               "font-family=\"" FONT "\" fill=\"" TEXT_COLOR "\" role=\"img\"",
               W, H, W, H);
    if (title) {
        svg_put(o, " aria-label=\"");
        svg_escape(o, title);
        svg_put(o, "\"");
    }
    svg_put(o, ">");
    if (title) {
        svg_put(o, "<title>");
        svg_escape(o, title);
        svg_put(o, "</title>");
        text(o, 12, 20, "start", 14, "font-weight=\"600\"", title);
    }
}

/* A legend entry: kind 0 line, 1 filled box, 2 dashed line, 3 markers only. */
typedef struct {
    const char *label, *color;
    int kind;
    double opacity;
} legend_item;

/* Lays legend items left to right from x0 within width w, starting at y;
 * returns the height used.  Draws only when draw is set. */
static double legend(svg_buf *o, const legend_item *it, int n, double x0, double y, double w, int draw) {
    if (n == 0) return 0;
    double x = x0, line = 0;
    for (int i = 0; i < n; i++) {
        double iw = 22 + text_width(it[i].label, 12) + 16;
        if (x > x0 && x + iw > x0 + w) x = x0, line += 18;
        if (draw) {
            double cy = y + line;
            const char *c = it[i].color;
            if (it[i].kind == 1)
                svg_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\" fill-opacity=\"%g\"/>",
                           x, cy - 9, c, it[i].opacity > 0 ? it[i].opacity : 1);
            else if (it[i].kind == 3)
                svg_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>", x + 8, cy - 4, c);
            else
                svg_printf(o,
                           "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s "
                           "stroke-opacity=\"%g\"/>",
                           x, cy - 4, x + 16, cy - 4, c, it[i].kind == 2 ? " stroke-dasharray=\"5 3\"" : "",
                           it[i].opacity > 0 ? it[i].opacity : 1);
            text(o, x + 21, cy, "start", 12, NULL, it[i].label);
        }
        x += iw;
    }
    return line + 18;
}

typedef struct {
    double x0, y0, x1, y1; /* plot area: left, top, right, bottom */
} box;

/* Axis ticks, labels and grid.  which: 0 = x axis (bottom), 1 = y axis (left). */
static void axis(svg_buf *o, const box *pb, const svg_scale *s, int which, double step, const char *label, int grid) {
    double t[64];
    int n = s->log ? svg_log_ticks(s->d0, s->d1, t, 64) : svg_ticks(s->d0, s->d1, step, t, 64);
    char buf[64];
    for (int i = 0; i < n; i++) {
        double p = svg_scale_map(s, t[i]);
        if (!isfinite(p)) continue;
        if (s->log) {
            double e = log10(t[i]);
            if (fabs(e - round(e)) < 1e-9 && (fabs(e) >= 4)) snprintf(buf, sizeof buf, "1e%d", (int)round(e));
            else svg_format_tick(buf, sizeof buf, t[i], 0);
        } else {
            svg_format_tick(buf, sizeof buf, t[i], step);
        }
        if (which == 0) {
            if (grid)
                svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" GRID_COLOR "\"/>", p,
                           pb->y0, p, pb->y1);
            svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" AXIS_COLOR "\"/>", p, pb->y1,
                       p, pb->y1 + 4);
            text(o, p, pb->y1 + 17, "middle", 11, NULL, buf);
        } else {
            if (grid)
                svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" GRID_COLOR "\"/>",
                           pb->x0, p, pb->x1, p);
            svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" AXIS_COLOR "\"/>",
                       pb->x0 - 4, p, pb->x0, p);
            text(o, pb->x0 - 7, p + 4, "end", 11, NULL, buf);
        }
    }
    if (label && *label) {
        if (which == 0) text(o, (pb->x0 + pb->x1) / 2, pb->y1 + 36, "middle", 12, NULL, label);
        else {
            char tr[96];
            double cx = pb->x0 - 50, cy = (pb->y0 + pb->y1) / 2;
            snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\"", cx, cy);
            text(o, cx, cy, "middle", 12, tr, label);
        }
    }
}

static void frame(svg_buf *o, const box *pb) {
    svg_printf(o,
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" AXIS_COLOR "\"/>"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" AXIS_COLOR "\"/>",
               pb->x0, pb->y1, pb->x1, pb->y1, pb->x0, pb->y0, pb->x0, pb->y1);
}

static void empty_note(svg_buf *o, const box *pb, const char *msg) {
    text(o, (pb->x0 + pb->x1) / 2, (pb->y0 + pb->y1) / 2, "middle", 13, "fill=\"#888\"", msg ? msg : "no data");
}

/* ----------------------------------------------------------------- line chart */

void svg_line_chart_render(svg_buf *o, const svg_line_chart *c) {
    int W = c->width > 0 ? c->width : 640, H = c->height > 0 ? c->height : 300;
    svg_open(o, W, H, c->title);
    /* Legend entries. */
    legend_item items[32];
    int n_items = 0;
    for (int s = 0; s < c->n_series && n_items < 32; s++) {
        const svg_series *se = &c->series[s];
        if (!se->label) continue;
        items[n_items++] = (legend_item){se->label, se->color ? se->color : svg_palette(s),
                                         se->no_line ? 3 : se->dash ? 2 : 0, se->opacity};
    }
    if (c->xband_label && c->n_xbands > 0 && n_items < 32) items[n_items++] = (legend_item){c->xband_label, "#e15759", 1, 0.18};
    double top = c->title ? 32 : 10;
    double lh = legend(o, items, n_items, 64, top + 10, W - 80, 0);
    box pb = {64, top + lh + 8, W - 18, H - 46};
    /* Domains. */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int any = 0;
    for (int s = 0; s < c->n_series; s++) {
        const svg_series *se = &c->series[s];
        for (int i = 0; i < se->n; i++) {
            double x = se->x ? se->x[i] : i, y = se->y[i];
            if (!isfinite(x) || !isfinite(y) || (c->ylog && !(y > 0))) continue;
            any = 1;
            if (x < xlo) xlo = x;
            if (x > xhi) xhi = x;
            if (y < ylo) ylo = y;
            if (y > yhi) yhi = y;
        }
    }
    if (!any) {
        frame(o, &pb);
        empty_note(o, &pb, c->empty_text);
        svg_put(o, "</svg>");
        return;
    }
    if (c->fix_x) xlo = c->xmin, xhi = c->xmax;
    if (c->fix_y) ylo = c->ymin, yhi = c->ymax;
    if (c->y_from_zero && !c->ylog) {
        if (ylo > 0) ylo = 0;
        if (yhi < 0) yhi = 0;
    }
    int xt = (int)((pb.x1 - pb.x0) / 70), yt = (int)((pb.y1 - pb.y0) / 45);
    if (!c->fix_x && xlo > 0 && xlo <= (xhi - xlo) * 0.1) xlo = 0; /* step axes start at 0 */
    if (xhi <= xlo) {
        double pad = xlo == 0 ? 1.0 : fabs(xlo) * 0.1;
        xlo -= pad, xhi += pad;
    }
    double xstep = svg_nice_step(xlo, xhi, xt < 2 ? 2 : xt);
    if (c->x_integer && xstep < 1) xstep = 1;
    double ystep = 0;
    if (c->ylog) {
        ylo = pow(10.0, floor(log10(ylo) + 1e-9));
        yhi = pow(10.0, ceil(log10(yhi) - 1e-9));
        if (yhi <= ylo) yhi = ylo * 10;
    } else {
        ystep = svg_nice_domain(&ylo, &yhi, yt < 2 ? 2 : yt);
    }
    svg_scale sx = {xlo, xhi, pb.x0, pb.x1, 0}, sy = {ylo, yhi, pb.y1, pb.y0, c->ylog};
    axis(o, &pb, &sx, 0, xstep, c->xlabel, 1);
    axis(o, &pb, &sy, 1, ystep, c->ylabel, 1);
    for (int i = 0; i < c->n_xbands; i++) {
        double a = svg_scale_map(&sx, c->xbands[2 * i]), b = svg_scale_map(&sx, c->xbands[2 * i + 1]);
        if (!isfinite(a) || !isfinite(b)) continue;
        if (a < pb.x0) a = pb.x0;
        if (b > pb.x1) b = pb.x1;
        if (b > a)
            svg_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#e15759\" fill-opacity=\"0.13\"/>",
                       a, pb.y0, b - a, pb.y1 - pb.y0);
    }
    frame(o, &pb);
    for (int i = 0; i < c->n_vlines; i++) {
        double p = svg_scale_map(&sx, c->vlines[i]);
        if (isfinite(p) && p >= pb.x0 && p <= pb.x1)
            svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"3 3\"/>",
                       p, pb.y0, p, pb.y1);
    }
    int clip = ++clip_counter;
    svg_printf(o, "<clipPath id=\"rosa-clip-%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>",
               clip, pb.x0 - 4, pb.y0 - 4, pb.x1 - pb.x0 + 8, pb.y1 - pb.y0 + 8);
    svg_printf(o, "<g clip-path=\"url(#rosa-clip-%d)\">", clip);
    for (int s = 0; s < c->n_series; s++) {
        const svg_series *se = &c->series[s];
        const char *col = se->color ? se->color : svg_palette(s);
        double wdt = se->width > 0 ? se->width : 2, op = se->opacity > 0 ? se->opacity : 1;
        if (!se->no_line) {
            int open = 0;
            for (int i = 0; i <= se->n; i++) {
                double x = i < se->n ? (se->x ? se->x[i] : i) : NAN, y = i < se->n ? se->y[i] : NAN;
                double px = svg_scale_map(&sx, x), py = svg_scale_map(&sy, y);
                int ok = isfinite(px) && isfinite(py);
                if (ok && !open) {
                    svg_printf(o,
                               "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" stroke-opacity=\"%g\" "
                               "stroke-linejoin=\"round\" stroke-linecap=\"round\"%s points=\"",
                               col, wdt, op, se->dash ? " stroke-dasharray=\"6 4\"" : "");
                    open = 1;
                } else if (ok) svg_put(o, " ");
                if (ok) svg_printf(o, "%.1f,%.1f", px, py);
                else if (open) {
                    svg_put(o, "\"/>");
                    open = 0;
                }
            }
        }
        if (se->markers || se->no_line) {
            svg_printf(o, "<g fill=\"%s\" fill-opacity=\"%g\">", col, op);
            for (int i = 0; i < se->n; i++) {
                double px = svg_scale_map(&sx, se->x ? se->x[i] : i), py = svg_scale_map(&sy, se->y[i]);
                if (isfinite(px) && isfinite(py))
                    svg_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>", px, py, wdt + 1.5);
            }
            svg_put(o, "</g>");
        }
    }
    svg_put(o, "</g>");
    legend(o, items, n_items, 64, top + 10, W - 80, 1);
    svg_put(o, "</svg>");
}

/* ------------------------------------------------------------------ bar chart */

void svg_bar_chart_render(svg_buf *o, const svg_bar_chart *c) {
    int W = c->width > 0 ? c->width : 640, H = c->height > 0 ? c->height : 300;
    int ns = c->n_series > 0 ? c->n_series : 1;
    svg_open(o, W, H, c->title);
    legend_item items[40];
    int n_items = 0;
    if (c->series_labels && (ns > 1 || c->highlight_label))
        for (int s = 0; s < ns && n_items < 32; s++)
            if (c->series_labels[s])
                items[n_items++] =
                    (legend_item){c->series_labels[s], c->colors ? c->colors[s] : svg_palette(s), 1, 1};
    for (int i = 0; i < c->n_hlines && n_items < 33; i++)
        if (c->hline_labels && c->hline_labels[i]) items[n_items++] = (legend_item){c->hline_labels[i], "#333", 2, 1};
    if (c->highlight && c->highlight_label) {
        if (n_items == 0 && c->base_label)
            items[n_items++] = (legend_item){c->base_label, c->colors ? c->colors[0] : svg_palette(0), 1, 1};
        items[n_items++] = (legend_item){c->highlight_label, c->highlight_color ? c->highlight_color : "#e15759", 1, 1};
    }
    double top = c->title ? 32 : 10;
    double lh = legend(o, items, n_items, 64, top + 10, W - 80, 0);
    /* Category labels: all of them (turned when they do not fit) with label_every 1, else as many as fit. */
    double maxw = 0;
    for (int k = 0; k < c->n_cat; k++) {
        double w = text_width(c->categories[k], 11);
        if (w > maxw) maxw = w;
    }
    double band0 = c->n_cat > 0 ? (W - 18 - 64.0) / c->n_cat : 1;
    int turn = c->label_every == 1 && maxw + 6 > band0;
    double drop = turn ? maxw * 0.57 + 4 : 0;
    if (drop > H * 0.35) drop = H * 0.35;
    box pb = {64, top + lh + 8 + (c->value_format ? 10 : 0), W - 18, H - 46 - drop};
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < ns * c->n_cat; i++)
        if (isfinite(c->values[i])) {
            if (c->values[i] < lo) lo = c->values[i];
            if (c->values[i] > hi) hi = c->values[i];
        }
    if (c->n_cat == 0 || !isfinite(lo)) {
        frame(o, &pb);
        empty_note(o, &pb, NULL);
        svg_put(o, "</svg>");
        return;
    }
    for (int i = 0; i < c->n_hlines; i++)
        if (isfinite(c->hlines[i])) {
            if (c->hlines[i] > hi) hi = c->hlines[i];
            if (c->hlines[i] < lo) lo = c->hlines[i];
        }
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (c->fix_y) lo = c->ymin, hi = c->ymax;
    int yt = (int)((pb.y1 - pb.y0) / 45);
    double step = svg_nice_domain(&lo, &hi, yt < 2 ? 2 : yt);
    svg_scale sy = {lo, hi, pb.y1, pb.y0, 0};
    axis(o, &pb, &sy, 1, step, c->ylabel, 1);
    double band = (pb.x1 - pb.x0) / c->n_cat, inner = band * (c->n_cat > 40 ? 0.9 : 0.78), bw = inner / ns;
    double zero = svg_scale_map(&sy, 0);
    for (int s = 0; s < ns; s++) {
        const char *col = c->colors ? c->colors[s] : svg_palette(s);
        for (int k = 0; k < c->n_cat; k++) {
            double v = c->values[s * c->n_cat + k];
            if (!isfinite(v)) continue;
            double x = pb.x0 + k * band + (band - inner) / 2 + s * bw, y = svg_scale_map(&sy, v);
            const char *fill = c->highlight && c->highlight[k] ? (c->highlight_color ? c->highlight_color : "#e15759") : col;
            svg_printf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\">", x, v >= 0 ? y : zero,
                       bw > 1.2 ? bw - (ns > 1 ? 1 : 0) : bw, fabs(zero - y), fill);
            svg_put(o, "<title>");
            if (c->series_labels && c->series_labels[s]) {
                svg_escape(o, c->series_labels[s]);
                svg_put(o, ", ");
            }
            svg_escape(o, c->categories[k]);
            svg_printf(o, ": %.6g</title></rect>", v * (c->value_scale != 0 ? c->value_scale : 1));
            if (c->value_format) {
                char lab[64];
                snprintf(lab, sizeof lab, c->value_format, v * (c->value_scale != 0 ? c->value_scale : 1));
                double fs = bw < 26 ? 9 : 10.5;
                if (text_width(lab, fs) <= bw + band * 0.2 || ns == 1)
                    text(o, x + bw / 2, (v >= 0 ? y : zero) - 4, "middle", fs, NULL, lab);
            }
        }
    }
    for (int i = 0; i < c->n_vsep; i++) {
        double x = pb.x0 + (c->vsep[i] + 1) * band;
        svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>", x,
                   pb.y0, x, pb.y1);
    }
    for (int i = 0; i < c->n_hlines; i++) {
        double y = svg_scale_map(&sy, c->hlines[i]);
        if (!isfinite(y)) continue;
        svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" stroke-dasharray=\"5 3\"/>",
                   pb.x0, y, pb.x1, y);
    }
    int every = c->label_every > 0 ? c->label_every : 1;
    while (c->label_every <= 0 && every * band < maxw + 6 && every < c->n_cat) every *= 2;
    for (int k = 0; k < c->n_cat; k += every) {
        double x = pb.x0 + (k + 0.5) * band;
        if (turn) {
            char tr[96];
            snprintf(tr, sizeof tr, "transform=\"rotate(-35 %.1f %.1f)\"", x + 3, pb.y1 + 12);
            text(o, x + 3, pb.y1 + 12, "end", 11, tr, c->categories[k]);
        } else {
            text(o, x, pb.y1 + 16, "middle", 11, NULL, c->categories[k]);
        }
    }
    if (c->xlabel) text(o, (pb.x0 + pb.x1) / 2, pb.y1 + 36 + drop, "middle", 12, NULL, c->xlabel);
    frame(o, &pb);
    legend(o, items, n_items, 64, top + 10, W - 80, 1);
    svg_put(o, "</svg>");
}

/* ------------------------------------------------------------------- heatmap */

static void marker(svg_buf *o, int kind, double x, double y) {
    if (kind == 0)
        svg_printf(o, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"#222\"/>", x - 5, y - 5, x + 5, y - 5, x, y + 4);
    else if (kind == 1)
        svg_printf(o, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"#fff\" stroke=\"#d35400\" "
                      "stroke-width=\"2\"/>",
                   x, y - 6, x + 5, y - 1, x, y + 4, x - 5, y - 1);
    else
        svg_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x, y - 1, svg_palette(kind));
}

void svg_heatmap_render(svg_buf *o, const svg_heatmap *h) {
    int W = h->width > 0 ? h->width : 800, H = h->height > 0 ? h->height : 300;
    svg_open(o, W, H, h->title);
    /* Legend: swatches and markers, in one row under the title. */
    double top = h->title ? 32 : 10, x = 64, ly = top + 12;
    char mid[8];
    svg_viridis(0.6, mid);
    const char *sw_label[3] = {h->full_label, h->faded_label, h->missing_label};
    for (int i = 0; i < 3; i++) {
        if (!sw_label[i]) continue;
        const char *fill = i == 2 ? MISSING_COLOR : mid;
        svg_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\" fill-opacity=\"%s\"/>", x, ly - 9,
                   fill, i == 1 ? "0.22" : "1");
        text(o, x + 19, ly, "start", 12, NULL, sw_label[i]);
        x += 19 + text_width(sw_label[i], 12) + 16;
    }
    for (int k = 0; k < h->n_marker_kinds; k++) {
        marker(o, k, x + 6, ly - 3);
        text(o, x + 16, ly, "start", 12, NULL, h->marker_labels ? h->marker_labels[k] : "");
        x += 16 + text_width(h->marker_labels ? h->marker_labels[k] : "", 12) + 16;
    }
    int has_legend = h->full_label || h->faded_label || h->missing_label || h->n_marker_kinds;
    /* Row label width. */
    double lw = 0;
    char num[32];
    for (int r = 0; r < h->rows; r++) {
        const char *s = h->row_labels ? h->row_labels[r] : (snprintf(num, sizeof num, "%d", r), num);
        double w = text_width(s, 11);
        if (w > lw) lw = w;
    }
    double mtop = top + (has_legend ? 22 : 4) + (h->n_markers ? 16 : 0);
    box pb = {(h->ylabel ? 30 : 8) + lw + 8, mtop, W - 86, H - 46};
    if (h->rows <= 0 || h->cols <= 0 || !h->col_edges) {
        frame(o, &pb);
        empty_note(o, &pb, NULL);
        svg_put(o, "</svg>");
        return;
    }
    double vmin = h->vmin, vmax = h->vmax;
    if (!h->fix_v) {
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < h->rows * h->cols; i++)
            if (isfinite(h->values[i])) {
                if (h->values[i] < lo) lo = h->values[i];
                if (h->values[i] > hi) hi = h->values[i];
            }
        vmin = isfinite(lo) ? lo : 0;
        vmax = isfinite(hi) ? hi : 1;
    }
    if (!(vmax > vmin)) vmax = vmin + (vmin == 0 ? 1 : fabs(vmin) * 0.1);
    svg_scale sx = {h->col_edges[0], h->col_edges[h->cols], pb.x0, pb.x1, 0};
    double rh = (pb.y1 - pb.y0) / h->rows;
    svg_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\"/>", pb.x0, pb.y0,
               pb.x1 - pb.x0, pb.y1 - pb.y0);
    for (int r = 0; r < h->rows; r++) {
        double y = pb.y0 + r * rh;
        int c0 = 0;
        while (c0 < h->cols) {
            double v = h->values[(size_t)r * h->cols + c0];
            int fd = h->faded ? h->faded[(size_t)r * h->cols + c0] : 0;
            char col[8];
            if (isfinite(v)) svg_viridis((v - vmin) / (vmax - vmin), col);
            else snprintf(col, sizeof col, "%s", MISSING_COLOR);
            int c1 = c0 + 1; /* merge equal neighbours into one rectangle */
            while (c1 < h->cols) {
                double v2 = h->values[(size_t)r * h->cols + c1];
                int fd2 = h->faded ? h->faded[(size_t)r * h->cols + c1] : 0;
                char col2[8];
                if (isfinite(v2)) svg_viridis((v2 - vmin) / (vmax - vmin), col2);
                else snprintf(col2, sizeof col2, "%s", MISSING_COLOR);
                if (fd2 != fd || strcmp(col, col2) != 0) break;
                c1++;
            }
            double xa = svg_scale_map(&sx, h->col_edges[c0]), xb = svg_scale_map(&sx, h->col_edges[c1]);
            svg_printf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"%s/>", xa, y, xb - xa,
                       rh, col, fd ? " fill-opacity=\"0.22\"" : "");
            c0 = c1;
        }
        if (rh >= 6 && r > 0)
            svg_printf(o, "<line x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\" stroke=\"#fff\" stroke-width=\"1\"/>",
                       pb.x0, y, pb.x1, y);
    }
    /* Row labels. */
    int every = 1;
    while (rh * every < 12 && every < h->rows) every++;
    for (int r = 0; r < h->rows; r += every) {
        const char *s = h->row_labels ? h->row_labels[r] : (snprintf(num, sizeof num, "%d", r), num);
        text(o, pb.x0 - 6, pb.y0 + (r + 0.5) * rh + 4, "end", 11, NULL, s);
    }
    if (h->ylabel) {
        char tr[96];
        double cx = 16, cy = (pb.y0 + pb.y1) / 2;
        snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\"", cx, cy);
        text(o, cx, cy, "middle", 12, tr, h->ylabel);
    }
    /* Markers above the map and their boundary lines. */
    for (int i = 0; i < h->n_markers; i++) {
        double px = svg_scale_map(&sx, h->marker_x[i]);
        if (!isfinite(px)) continue;
        if (h->marker_lines)
            svg_printf(o, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"#fff\" stroke-width=\"1.5\"/>",
                       px, pb.y0, px, pb.y1);
        marker(o, h->marker_kind ? h->marker_kind[i] : 0, px, pb.y0 - 8);
    }
    /* x axis: integer-friendly nice ticks. */
    double lo = h->col_edges[0], hi = h->col_edges[h->cols], step = svg_nice_num(svg_nice_num(hi - lo, 0) / 8, 1);
    if (step < 1 && hi - lo >= 4) step = 1;
    svg_scale sx2 = sx;
    double t[64];
    int nt = svg_ticks(lo, hi, step, t, 64);
    for (int i = 0; i < nt; i++) {
        double p = svg_scale_map(&sx2, t[i]);
        char buf[32];
        svg_format_tick(buf, sizeof buf, t[i], step);
        svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" AXIS_COLOR "\"/>", p, pb.y1, p,
                   pb.y1 + 4);
        text(o, p, pb.y1 + 17, "middle", 11, NULL, buf);
    }
    if (h->xlabel) text(o, (pb.x0 + pb.x1) / 2, pb.y1 + 36, "middle", 12, NULL, h->xlabel);
    svg_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"" AXIS_COLOR "\"/>",
               pb.x0, pb.y0, pb.x1 - pb.x0, pb.y1 - pb.y0);
    /* Colour bar. */
    double cbx = pb.x1 + 14, cbw = 12, cbh = pb.y1 - pb.y0;
    int steps = 48;
    for (int i = 0; i < steps; i++) {
        char col[8];
        svg_viridis((i + 0.5) / steps, col);
        svg_printf(o, "<rect x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" height=\"%.2f\" fill=\"%s\"/>", cbx,
                   pb.y1 - (i + 1) * cbh / steps, cbw, cbh / steps + 0.3, col);
    }
    svg_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"" AXIS_COLOR "\"/>",
               cbx, pb.y0, cbw, cbh);
    double clo = vmin, chi = vmax, cstep = svg_nice_num(svg_nice_num(chi - clo, 0) / 4, 1);
    double ct[32];
    int nc = svg_ticks(clo, chi, cstep, ct, 32);
    svg_scale sc = {vmin, vmax, pb.y1, pb.y0, 0};
    for (int i = 0; i < nc; i++) {
        double p = svg_scale_map(&sc, ct[i]);
        char buf[32];
        svg_format_tick(buf, sizeof buf, ct[i], cstep);
        svg_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" AXIS_COLOR "\"/>", cbx + cbw, p,
                   cbx + cbw + 3, p);
        text(o, cbx + cbw + 5, p + 4, "start", 10.5, NULL, buf);
    }
    if (h->colorbar_label) {
        char tr[96];
        double cx = W - 8, cy = (pb.y0 + pb.y1) / 2;
        snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\"", cx, cy);
        text(o, cx, cy, "middle", 11, tr, h->colorbar_label);
    }
    svg_put(o, "</svg>");
}
