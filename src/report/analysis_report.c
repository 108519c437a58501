/* analysis_report.c: JSON, HTML and text output of the RoPE frequency analysis. */
#include "analysis_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static void json_str(svg_buf *o, const char *s) {
    if (!s) {
        svg_put(o, "null");
        return;
    }
    svg_put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') svg_put(o, "\\\"");
        else if (*p == '\\') svg_put(o, "\\\\");
        else if (*p < 0x20) svg_printf(o, "\\u%04x", *p);
        else {
            char c[2] = {(char)*p, 0};
            svg_put(o, c);
        }
    }
    svg_put(o, "\"");
}

static void json_arr(svg_buf *o, const double *v, int n) {
    svg_put(o, "[");
    for (int i = 0; i < n; i++) svg_printf(o, "%s%.10g", i ? ", " : "", v[i]);
    svg_put(o, "]");
}

/* Means over layers of [L][n] rows. */
static double *layer_mean(const double *v, int L, int n) {
    double *m = rosa_calloc((size_t)(n > 0 ? n : 1), sizeof(double), "analysis means");
    if (!m) return NULL;
    for (int l = 0; l < L; l++)
        for (int j = 0; j < n; j++) m[j] += v[(size_t)l * n + j] / L;
    return m;
}

int rosa_analysis_json(const rosa_analysis *a, const rosa_analysis_meta *meta, svg_buf *o) {
    int hd = a->hd, hb = hd / 2;
    svg_put(o, "{\"format\": \"rosa-analyze/1\", \"model\": ");
    json_str(o, meta->model);
    svg_put(o, ", \"adapter\": ");
    json_str(o, meta->adapter);
    svg_put(o, ", \"data\": ");
    json_str(o, meta->data);
    svg_put(o, ", \"template\": ");
    json_str(o, meta->template_name);
    svg_printf(o, ", \"cutoff_len\": %d, \"records\": %d, \"tokens\": %lld", meta->cutoff_len, a->n_records, a->n_tokens);
    svg_printf(o, ", \"num_layers\": %d, \"num_heads\": %d, \"num_kv_heads\": %d, \"head_dim\": %d, \"rope_theta\": %.10g",
               a->L, a->Hq, a->Hkv, hd, meta->rope_theta);
    svg_printf(o, ", \"r_low\": %.9g, \"m\": %d, \"selected_dims\": [", (double)a->r_low, a->m);
    for (int i = 0; i < 2 * a->m; i++) svg_printf(o, "%s%d", i ? ", " : "", a->dims[i]);
    svg_put(o, "], \"inv_freq\": ");
    json_arr(o, a->inv_freq, hb);
    svg_put(o, ", \"wavelength\": [");
    for (int i = 0; i < hb; i++) svg_printf(o, "%s%.10g", i ? ", " : "", 2 * M_PI / a->inv_freq[i]);
    svg_put(o, "], \"definition\": \"norm[j] = mean over heads of sqrt(mean over tokens of Z[t,h,j]^2); band[i] = mean over "
               "heads of sqrt(mean over tokens of Z[t,h,i]^2 + Z[t,h,i+d/2]^2); selected_share = sum of Z^2 over the "
               "selected dims / sum over all dims; Z = Q or K after RoPE (and after RoAE modulation when an adapter is "
               "given)\", \"layers\": [");
    for (int l = 0; l < a->L; l++) {
        svg_printf(o, "%s{\"layer\": %d, \"inv_freq\": ", l ? ", " : "", l);
        json_arr(o, a->layer_inv_freq + (size_t)l * hb, hb);
        svg_put(o, ", \"q_norm\": ");
        json_arr(o, a->q_norm + (size_t)l * hd, hd);
        svg_put(o, ", \"k_norm\": ");
        json_arr(o, a->k_norm + (size_t)l * hd, hd);
        svg_put(o, ", \"q_band\": ");
        json_arr(o, a->q_band + (size_t)l * hb, hb);
        svg_put(o, ", \"k_band\": ");
        json_arr(o, a->k_band + (size_t)l * hb, hb);
        svg_printf(o, ", \"q_selected_share\": %.10g, \"k_selected_share\": %.10g}", a->q_share[l], a->k_share[l]);
    }
    svg_put(o, "], \"mean_over_layers\": {");
    double *m[6] = {layer_mean(a->q_norm, a->L, hd), layer_mean(a->k_norm, a->L, hd), layer_mean(a->q_band, a->L, hb),
                    layer_mean(a->k_band, a->L, hb), layer_mean(a->q_share, a->L, 1), layer_mean(a->k_share, a->L, 1)};
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= m[i] != NULL;
    if (ok) {
        svg_put(o, "\"q_norm\": ");
        json_arr(o, m[0], hd);
        svg_put(o, ", \"k_norm\": ");
        json_arr(o, m[1], hd);
        svg_put(o, ", \"q_band\": ");
        json_arr(o, m[2], hb);
        svg_put(o, ", \"k_band\": ");
        json_arr(o, m[3], hb);
        svg_printf(o, ", \"q_selected_share\": %.10g, \"k_selected_share\": %.10g, \"uniform_share\": %.10g", m[4][0],
                   m[5][0], 2.0 * a->m / hd);
    } else o->failed = 1;
    svg_put(o, "}}\n");
    for (int i = 0; i < 6; i++) free(m[i]);
    return o->failed ? rosa_fail("analyze: out of memory") : 0;
}

void rosa_analysis_print(const rosa_analysis *a, FILE *f) {
    fprintf(f, "records %d, tokens %lld, head_dim %d, r_low %g: m = %d, D = {", a->n_records, a->n_tokens, a->hd,
            (double)a->r_low, a->m);
    for (int i = 0; i < 2 * a->m; i++) fprintf(f, "%s%d", i ? ", " : "", a->dims[i]);
    fprintf(f, "}\nshare of the squared norm in D (uniform would be %.3f):\n", 2.0 * a->m / a->hd);
    fprintf(f, "  layer   Q in D   K in D   largest Q dims\n");
    for (int l = 0; l < a->L; l++) {
        const double *q = a->q_norm + (size_t)l * a->hd;
        int top[3] = {-1, -1, -1};
        for (int k = 0; k < 3 && k < a->hd; k++) {
            int best = -1;
            for (int j = 0; j < a->hd; j++) {
                if (j == top[0] || j == top[1]) continue;
                if (best < 0 || q[j] > q[best]) best = j;
            }
            top[k] = best;
        }
        fprintf(f, "  %5d   %6.3f   %6.3f   ", l, a->q_share[l], a->k_share[l]);
        for (int k = 0; k < 3 && top[k] >= 0; k++) fprintf(f, "%s%d", k ? " " : "", top[k]);
        fputc('\n', f);
    }
}

/* ------------------------------------------------------------------- HTML */

static const char *CSS =
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f5f6f8;color:#222;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,"
    "'DejaVu Sans',Arial,sans-serif}"
    "main{max-width:1200px;margin:0 auto;padding:24px 28px 40px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid #dde1e6}"
    ".sub{color:#5a6270;margin:0 0 14px}.sub code{background:#e9ecf0;padding:1px 5px;border-radius:4px}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:12px 0}"
    ".card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 14px}"
    ".card .k{color:#5a6270;font-size:12px;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:20px;font-weight:600;margin-top:2px}.card .d{color:#5a6270;font-size:12px}"
    ".panel{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px;margin:10px 0}"
    ".panel svg{display:block;max-width:100%;height:auto}"
    ".grid2{display:grid;grid-template-columns:repeat(2,1fr);gap:10px}"
    ".grid3{display:grid;grid-template-columns:repeat(3,1fr);gap:10px}"
    ".grid2 .panel,.grid3 .panel{margin:0}"
    "@media(max-width:900px){.grid2,.grid3{grid-template-columns:1fr}}"
    "table{border-collapse:collapse;background:#fff;border:1px solid #e1e4e8;margin:8px 0;font-size:13px}"
    "th,td{padding:4px 12px;border-bottom:1px solid #eceff2;text-align:right;font-variant-numeric:tabular-nums}"
    "th{background:#f0f2f5}p{max-width:900px}.muted{color:#6a7280}summary{cursor:pointer;color:#3a5a8c}"
    "code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12.5px}"
    "footer{margin-top:36px;color:#6a7280;font-size:12px;border-top:1px solid #dde1e6;padding-top:10px}";

static void card(svg_buf *o, const char *k, const char *v, const char *d) {
    svg_put(o, "<div class=\"card\"><div class=\"k\">");
    svg_escape(o, k);
    svg_put(o, "</div><div class=\"v\">");
    svg_escape(o, v);
    svg_put(o, "</div><div class=\"d\">");
    svg_escape(o, d);
    svg_put(o, "</div></div>");
}

/* Per-dimension bars of one state, selected dims highlighted. */
static void dim_bars(svg_buf *o, const rosa_analysis *a, const double *v, const char *title, int W, int H,
                     char **cats) {
    unsigned char *hl = rosa_calloc((size_t)a->hd, 1, "analysis chart");
    if (!hl) {
        o->failed = 1;
        return;
    }
    for (int i = 0; i < 2 * a->m; i++) hl[a->dims[i]] = 1;
    double sep = a->hd / 2 - 1;
    const char *labels[1] = {"other dimensions"};
    svg_bar_chart bc = {.width = W, .height = H, .title = title,
                        .xlabel = "head dimension j (pairs j, j + d/2 rotate together)", .ylabel = "mean L2 norm",
                        .categories = (const char *const *)cats, .n_cat = a->hd, .values = v, .series_labels = labels,
                        .n_series = 1, .highlight = hl, .highlight_color = "#e15759",
                        .highlight_label = "selected by --r-low (RoAE's D)", .base_label = "other dimensions",
                        .vsep = &sep, .n_vsep = 1};
    svg_bar_chart_render(o, &bc);
    free(hl);
}

static void heat(svg_buf *o, const rosa_analysis *a, const double *v, const char *title, int W) {
    int L = a->L, hd = a->hd;
    double *norm = rosa_calloc((size_t)L * hd, sizeof(double), "analysis heatmap");
    double *edges = rosa_calloc((size_t)hd + 1, sizeof(double), "analysis heatmap");
    double *mx = rosa_calloc(2 * (size_t)a->m, sizeof(double), "analysis heatmap");
    char **labels = rosa_calloc((size_t)L, sizeof(char *), "analysis heatmap");
    if (!norm || !edges || !mx || !labels) {
        o->failed = 1;
        goto done;
    }
    for (int l = 0; l < L; l++) {
        double best = 0;
        for (int j = 0; j < hd; j++)
            if (v[(size_t)l * hd + j] > best) best = v[(size_t)l * hd + j];
        for (int j = 0; j < hd; j++) norm[(size_t)l * hd + j] = best > 0 ? v[(size_t)l * hd + j] / best : 0;
        char buf[32];
        snprintf(buf, sizeof buf, "layer %d", l);
        labels[l] = rosa_strdup(buf);
        if (!labels[l]) o->failed = 1;
    }
    for (int j = 0; j <= hd; j++) edges[j] = j - 0.5;
    for (int i = 0; i < 2 * a->m; i++) mx[i] = a->dims[i];
    static const char *mlab[] = {"selected by --r-low"};
    int Hh = 110 + L * 18;
    if (Hh > 640) Hh = 640;
    if (Hh < 180) Hh = 180;
    if (!o->failed) {
        svg_heatmap hm = {.width = W, .height = Hh, .title = title, .xlabel = "head dimension j", .rows = L,
                          .cols = hd, .values = norm, .row_labels = (const char *const *)labels, .col_edges = edges,
                          .fix_v = 1, .vmin = 0, .vmax = 1, .colorbar_label = "norm / layer maximum",
                          .marker_x = mx, .n_markers = 2 * a->m, .marker_labels = mlab, .n_marker_kinds = 1};
        svg_heatmap_render(o, &hm);
    }
done:
    if (labels)
        for (int l = 0; l < L; l++) free(labels[l]);
    free(labels);
    free(norm);
    free(edges);
    free(mx);
}

int rosa_analysis_html(const rosa_analysis *a, const rosa_analysis_meta *meta, svg_buf *o) {
    int hd = a->hd, hb = hd / 2, L = a->L;
    double *qm = layer_mean(a->q_norm, L, hd), *km = layer_mean(a->k_norm, L, hd), *qb = layer_mean(a->q_band, L, hb),
           *kb = layer_mean(a->k_band, L, hb), *qs = layer_mean(a->q_share, L, 1), *ks = layer_mean(a->k_share, L, 1);
    char **cats = rosa_calloc((size_t)hd, sizeof(char *), "analysis page");
    double *xs = rosa_calloc((size_t)hd, sizeof(double), "analysis page");
    if (!qm || !km || !qb || !kb || !qs || !ks || !cats || !xs) {
        o->failed = 1;
        goto done;
    }
    for (int j = 0; j < hd; j++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", j);
        cats[j] = rosa_strdup(buf);
        if (!cats[j]) o->failed = 1;
        xs[j] = j;
    }
    if (o->failed) goto done;
    svg_put(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
               "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>rosa analyze: ");
    svg_escape(o, meta->model);
    svg_printf(o, "</title><style>%s</style></head><body><main>\n<h1>RoPE frequency analysis</h1><p class=\"sub\">"
                  "<code>",
               CSS);
    svg_escape(o, meta->model);
    svg_put(o, "</code>");
    if (meta->adapter) {
        svg_put(o, " with adapter <code>");
        svg_escape(o, meta->adapter);
        svg_put(o, "</code>");
        if (meta->adapter_kind) {
            svg_put(o, " (");
            svg_escape(o, meta->adapter_kind);
            svg_put(o, ")");
        }
    }
    svg_put(o, " · data <code>");
    svg_escape(o, meta->data);
    svg_printf(o, "</code> · %s prompts</p>\n", strcmp(meta->template_name, "eval") == 0 ? "evaluation" : "training");
    char v[128], d[160];
    svg_put(o, "<div class=\"cards\">");
    snprintf(v, sizeof v, "%d", a->n_records);
    snprintf(d, sizeof d, "%lld tokens", a->n_tokens);
    card(o, "records", v, d);
    snprintf(v, sizeof v, "%d × %d / %d", L, a->Hq, a->Hkv);
    snprintf(d, sizeof d, "head_dim %d, rope_theta %g", hd, meta->rope_theta);
    card(o, "layers × heads q/kv", v, d);
    snprintf(v, sizeof v, "%g", (double)a->r_low);
    snprintf(d, sizeof d, "m = %d per half: %d of %d dims", a->m, 2 * a->m, hd);
    card(o, "r_low", v, d);
    snprintf(v, sizeof v, "%.1f%%", 100 * qs[0]);
    snprintf(d, sizeof d, "of Q's squared norm in D (uniform: %.1f%%)", 200.0 * a->m / hd);
    card(o, "Q energy in D", v, d);
    snprintf(v, sizeof v, "%.1f%%", 100 * ks[0]);
    snprintf(d, sizeof d, "of K's squared norm in D (uniform: %.1f%%)", 200.0 * a->m / hd);
    card(o, "K energy in D", v, d);
    svg_put(o, "</div>\n");
    svg_put(o, "<p>Dimensions <i>j</i> and <i>j</i> + d/2 of a head form one rotary pair turning with frequency "
               "θ<sup>−2j/d</sup>: the larger <i>j</i> within a half, the lower the frequency. The RoSA paper observes "
               "that the RoPE-rotated queries and keys concentrate their magnitude in the low-frequency dimensions; "
               "RoAE adapts exactly those (red). Norms are taken ");
    svg_put(o, meta->adapter ? "after RoPE and after the adapter's modulation, i.e. the states attention uses.</p>\n"
                             : "after RoPE, i.e. the states attention uses.</p>\n");
    svg_put(o, "<h2>Mean L2 norm per head dimension (mean over layers)</h2><div class=\"grid2\"><div class=\"panel\">");
    dim_bars(o, a, qm, "Queries (Q)", 560, 300, cats);
    svg_put(o, "</div><div class=\"panel\">");
    dim_bars(o, a, km, "Keys (K)", 560, 300, cats);
    svg_put(o, "</div></div>\n<h2>Per layer</h2><div class=\"grid2\"><div class=\"panel\">");
    heat(o, a, a->q_norm, "Q norm by layer and dimension", 560);
    svg_put(o, "</div><div class=\"panel\">");
    heat(o, a, a->k_norm, "K norm by layer and dimension", 560);
    svg_put(o, "</div></div>\n");
    /* share per layer */
    {
        char **lc = rosa_calloc((size_t)L, sizeof(char *), "analysis chart");
        double *sv = rosa_calloc(2 * (size_t)L, sizeof(double), "analysis chart");
        if (!lc || !sv) o->failed = 1;
        for (int l = 0; lc && sv && l < L; l++) {
            char buf[16];
            snprintf(buf, sizeof buf, "%d", l);
            lc[l] = rosa_strdup(buf);
            if (!lc[l]) o->failed = 1;
            sv[l] = 100 * a->q_share[l];
            sv[L + l] = 100 * a->k_share[l];
        }
        if (!o->failed) {
            const char *sl[2] = {"Q", "K"}, *cl[2] = {"#4e79a7", "#f28e2b"};
            double uni = 200.0 * a->m / hd;
            char ulab[64];
            snprintf(ulab, sizeof ulab, "uniform share (%.1f%%)", uni);
            const char *ul[1] = {ulab};
            svg_put(o, "<div class=\"panel\">");
            svg_bar_chart bc = {.width = 1140, .height = 280,
                                .title = "Share of the squared norm in the selected dimensions D, per layer",
                                .xlabel = "layer", .ylabel = "share (%)", .categories = (const char *const *)lc,
                                .n_cat = L, .values = sv, .series_labels = sl, .n_series = 2, .colors = cl,
                                .value_format = L <= 24 ? "%.0f" : NULL, .hlines = &uni, .hline_labels = ul,
                                .n_hlines = 1};
            svg_bar_chart_render(o, &bc);
            svg_put(o, "</div>\n");
        }
        for (int l = 0; lc && l < L; l++) free(lc[l]);
        free(lc);
        free(sv);
    }
    /* bands */
    svg_put(o, "<h2>Mean activation per rotary frequency band</h2><p>Band <i>i</i> is the pair (<i>i</i>, <i>i</i> + d/2), "
               "frequency inv_freq[<i>i</i>], wavelength 2π / inv_freq[<i>i</i>] tokens; its value is the mean over heads "
               "of sqrt(mean over tokens of Z<sub>i</sub>² + Z<sub>i+d/2</sub>²), which RoPE's rotation does not change. "
               "Faint lines: single layers; bold: mean over layers.</p><div class=\"grid2\">");
    for (int w = 0; w < 2; w++) {
        const double *band = w ? a->k_band : a->q_band;
        svg_series *s = rosa_calloc((size_t)L + 1, sizeof(svg_series), "analysis chart");
        double *bx = rosa_calloc((size_t)hb, sizeof(double), "analysis chart");
        if (!s || !bx) {
            o->failed = 1;
            free(s);
            free(bx);
            break;
        }
        for (int i = 0; i < hb; i++) bx[i] = i;
        for (int l = 0; l < L; l++)
            s[l] = (svg_series){NULL, bx, band + (size_t)l * hb, hb, w ? "#f28e2b" : "#4e79a7", 1.2, 0.3, 0, 0, 0};
        s[L] = (svg_series){"mean over layers", bx, w ? kb : qb, hb, w ? "#b35c00" : "#1f4e79", 2.5, 1, 0, hb <= 32, 0};
        double xb[2] = {hb - a->m - 0.5, hb - 0.5};
        svg_line_chart lc = {.width = 560, .height = 300, .title = w ? "Keys (K) per band" : "Queries (Q) per band",
                             .xlabel = "band i (0 = highest frequency)", .ylabel = "mean L2 norm of the pair",
                             .y_from_zero = 1, .series = s, .n_series = L + 1, .xbands = xb, .n_xbands = 1,
                             .xband_label = "bands of D", .x_integer = 1};
        svg_put(o, "<div class=\"panel\">");
        svg_line_chart_render(o, &lc);
        svg_put(o, "</div>");
        free(s);
        free(bx);
    }
    svg_put(o, "</div>\n<details><summary>Band table</summary><table><tr><th>band</th><th>dims</th><th>inv_freq</th>"
               "<th>wavelength (tokens)</th><th>Q</th><th>K</th></tr>");
    for (int i = 0; i < hb; i++)
        svg_printf(o, "<tr><td>%d%s</td><td>%d, %d</td><td>%.4g</td><td>%.4g</td><td>%.4f</td><td>%.4f</td></tr>", i,
                   i >= hb - a->m ? " (D)" : "", i, i + hb, a->inv_freq[i], 2 * M_PI / a->inv_freq[i], qb[i], kb[i]);
    svg_put(o, "</table></details>\n");
    /* small multiples */
    svg_put(o, "<h2>Each layer</h2><div class=\"grid3\">");
    for (int l = 0; l < L; l++) {
        svg_series s[2] = {{"Q", xs, a->q_norm + (size_t)l * hd, hd, "#4e79a7", 1.8, 1, 0, hd <= 32, 0},
                           {"K", xs, a->k_norm + (size_t)l * hd, hd, "#f28e2b", 1.8, 1, 0, hd <= 32, 0}};
        double xb[4] = {hb - a->m - 0.5, hb - 0.5, hd - a->m - 0.5, hd - 0.5};
        char title[32];
        snprintf(title, sizeof title, "Layer %d", l);
        svg_line_chart lc = {.width = 370, .height = 240, .title = title, .xlabel = "head dimension j",
                             .ylabel = "mean L2 norm", .fix_x = 1, .xmin = -0.5, .xmax = hd - 0.5, .y_from_zero = 1,
                             .series = s, .n_series = 2, .xbands = xb, .n_xbands = 2, .xband_label = "D",
                             .x_integer = 1};
        svg_put(o, "<div class=\"panel\">");
        svg_line_chart_render(o, &lc);
        svg_put(o, "</div>");
    }
    svg_printf(o, "</div>\n<footer>Generated by rosa %s (<code>rosa analyze</code>). norm[j] = mean over heads of "
                  "sqrt(mean over tokens of Z[t,h,j]²), with Z the RoPE-rotated query or key state (K before grouped-query "
                  "repetition), over every token of every record, each record alone from position 0. D = the last m "
                  "dimensions of each half, m = max(1, floor(d·r_low/2 + 0.5)), as RoAE selects them. See "
                  "docs/report.md.</footer>\n</main></body></html>\n",
               ROSA_VERSION);
done:
    if (cats)
        for (int j = 0; j < hd; j++) free(cats[j]);
    free(cats);
    free(xs);
    free(qm);
    free(km);
    free(qb);
    free(kb);
    free(qs);
    free(ks);
    return o->failed ? rosa_fail("analyze: out of memory") : 0;
}

int rosa_analysis_write(const rosa_analysis *a, const rosa_analysis_meta *meta, const char *path) {
    size_t n = strlen(path);
    int json = n >= 5 && strcmp(path + n - 5, ".json") == 0;
    svg_buf out = {0};
    int rc = json ? rosa_analysis_json(a, meta, &out) : rosa_analysis_html(a, meta, &out);
    if (rc == 0) rc = rosa_write_file_atomic(path, out.b.data, out.b.len);
    svg_buf_free(&out);
    return rc;
}
