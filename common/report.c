#include "common/report.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Split off the next space-separated word; returns its length (0 at end). */
static size_t ty_word(const char **p, const char *end, const char **w) {
    while (*p < end && isspace((unsigned char)**p))
        (*p)++;
    *w = *p;
    while (*p < end && !isspace((unsigned char)**p))
        (*p)++;
    return (size_t)(*p - *w);
}

static int ty_num(const char *w, size_t n, double *out) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, w, n);
    tmp[n] = '\0';
    return ty_parse_f64(tmp, -DBL_MAX, DBL_MAX, out) == 0 ? 0 : -1;
}

static char *ty_rest(const char *p, const char *end) {
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    return ty_xstrndup(p, (size_t)(end - p));
}

int ty_report_parse(const char *line, size_t len, Ty__ReportItem *item) {
    ty__report_item__init(item);
    if (len > TY_REPORT_LINE_MAX || memchr(line, '\0', len))
        return TY_EPARSE;
    const char *p = line, *end = line + len, *w;
    size_t n = ty_word(&p, end, &w);
    const char *name;
    size_t nn;
    double v;
    if (n == 6 && memcmp(w, "metric", 6) == 0) {
        nn = ty_word(&p, end, &name);
        n = ty_word(&p, end, &w);
        if (nn == 0 || ty_num(w, n, &v) < 0)
            return TY_EPARSE;
        item->value = v;
        n = ty_word(&p, end, &w);
        if (n > 0) {
            double step;
            if (ty_num(w, n, &step) < 0 || step != floor(step) || fabs(step) > 9e15)
                return TY_EPARSE;
            item->step = (int64_t)step;
        }
        if (ty_word(&p, end, &w) > 0)
            return TY_EPARSE;
        item->kind = TY_REPORT_METRIC;
        item->name = ty_xstrndup(name, nn);
        return 0;
    }
    if (n == 8 && memcmp(w, "progress", 8) == 0) {
        n = ty_word(&p, end, &w);
        if (ty_num(w, n, &v) < 0 || v < 0 || v > 1)
            return TY_EPARSE;
        item->kind = TY_REPORT_PROGRESS;
        item->value = v;
        item->text = ty_rest(p, end);
        return 0;
    }
    if ((n == 3 && memcmp(w, "tag", 3) == 0) || (n == 8 && memcmp(w, "artifact", 8) == 0) ||
        (n == 8 && memcmp(w, "register", 8) == 0)) {
        int kind = n == 3 ? TY_REPORT_TAG : w[0] == 'a' ? TY_REPORT_ARTIFACT : TY_REPORT_REGISTER;
        nn = ty_word(&p, end, &name);
        char *rest = ty_rest(p, end);
        if (nn == 0 || !*rest) {
            free(rest);
            return TY_EPARSE;
        }
        item->kind = (uint32_t)kind;
        item->name = ty_xstrndup(name, nn);
        item->text = rest;
        return 0;
    }
    return TY_EPARSE;
}

void ty_report_item_clear(Ty__ReportItem *item) {
    if (item->name != protobuf_c_empty_string)
        free(item->name);
    if (item->text != protobuf_c_empty_string)
        free(item->text);
    ty__report_item__init(item);
}
