/* Prometheus' text exposition format (prom.h). */
#include "common/prom.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

const double ty_hist_bounds[TY_HIST_NB] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1,     2.5,    5,     10,   30,    60,   300, 3600};

void ty_hist_observe(ty_hist_t *h, double s) {
    if (!(s > 0)) /* negative (clocks of two hosts) or NaN */
        s = 0;
    size_t i = 0;
    while (i < TY_HIST_NB && s > ty_hist_bounds[i])
        i++;
    if (i < TY_HIST_NB)
        h->b[i]++;
    h->count++;
    h->sum += s;
}

/* text with \ and newline escaped, and " too in a label value */
static void ty_escape(ty_buf_t *out, const char *s, int quote) {
    for (; *s; s++) {
        if (*s == '\\')
            ty_buf_append(out, "\\\\", 2);
        else if (*s == '\n')
            ty_buf_append(out, "\\n", 2);
        else if (*s == '"' && quote)
            ty_buf_append(out, "\\\"", 2);
        else
            ty_buf_append(out, s, 1);
    }
}

void ty_prom_family(ty_buf_t *out, const char *name, const char *type, const char *help) {
    ty_buf_printf(out, "# HELP %s ", name);
    ty_escape(out, help, 0);
    ty_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

static void ty_value(ty_buf_t *out, double v) {
    if (isnan(v))
        ty_buf_printf(out, "NaN");
    else if (isinf(v))
        ty_buf_printf(out, "%sInf", v > 0 ? "+" : "-");
    else if (v == floor(v) && fabs(v) < 1e15)
        ty_buf_printf(out, "%.0f", v);
    else { /* the fewest digits that read back as v */
        char buf[40];
        for (int p = 15; p <= 17; p++) {
            snprintf(buf, sizeof buf, "%.*g", p, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        ty_buf_printf(out, "%s", buf);
    }
}

static void ty_labels(ty_buf_t *out, const char *const *labels, const char *le) {
    if ((!labels || !labels[0]) && !le)
        return;
    ty_buf_append(out, "{", 1);
    int first = 1;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        ty_buf_printf(out, "%s%s=\"", first ? "" : ",", labels[i]);
        ty_escape(out, labels[i + 1], 1);
        ty_buf_append(out, "\"", 1);
        first = 0;
    }
    if (le)
        ty_buf_printf(out, "%sle=\"%s\"", first ? "" : ",", le);
    ty_buf_append(out, "}", 1);
}

void ty_prom_sample(ty_buf_t *out, const char *name, const char *const *labels, double v) {
    ty_buf_printf(out, "%s", name);
    ty_labels(out, labels, NULL);
    ty_buf_append(out, " ", 1);
    ty_value(out, v);
    ty_buf_append(out, "\n", 1);
}

void ty_prom_hist(ty_buf_t *out, const char *name, const char *const *labels, const ty_hist_t *h) {
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i <= TY_HIST_NB; i++) {
        if (i < TY_HIST_NB) {
            cum += h->b[i];
            snprintf(le, sizeof le, "%g", ty_hist_bounds[i]);
        } else {
            cum = h->count;
            snprintf(le, sizeof le, "+Inf");
        }
        ty_buf_printf(out, "%s_bucket", name);
        ty_labels(out, labels, le);
        ty_buf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    ty_buf_printf(out, "%s_sum", name);
    ty_labels(out, labels, NULL);
    ty_buf_append(out, " ", 1);
    ty_value(out, h->sum);
    ty_buf_printf(out, "\n%s_count", name);
    ty_labels(out, labels, NULL);
    ty_buf_printf(out, " %llu\n", (unsigned long long)h->count);
}
