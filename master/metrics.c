#include "master/metrics.h"

#include "common/err.h"
#include "common/util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Ty__MetricSeries *ty_series_for(Ty__MetricsReply *r, const char *task, unsigned attempt,
                                       const char *name) {
    for (size_t i = r->n_series; i-- > 0;) { /* the newest series first: lines come in runs */
        Ty__MetricSeries *s = r->series[i];
        if (s->attempt == attempt && strcmp(s->name, name) == 0 && strcmp(s->task, task) == 0)
            return s;
    }
    Ty__MetricSeries *s = ty_xmalloc(sizeof *s);
    ty__metric_series__init(s);
    s->task = ty_xstrdup(task);
    s->attempt = attempt;
    s->name = ty_xstrdup(name);
    r->series = ty_xrealloc(r->series, (r->n_series + 1) * sizeof *r->series);
    r->series[r->n_series++] = s;
    return s;
}

static size_t ty_read_series(Ty__MetricsReply *r, const char *path, const char *task,
                             unsigned attempt, size_t budget) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4352], name[4200];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        long long t, step;
        double v;
        if (sscanf(line, "%lld\t%lld\t%lf\t%4199s", &t, &step, &v, name) != 4)
            continue; /* a line cut by a crash */
        if (n == budget) {
            r->truncated = 1;
            break;
        }
        Ty__MetricSeries *s = ty_series_for(r, task, attempt, name);
        if (s->n_points % 64 == 0)
            s->points = ty_xrealloc(s->points, (s->n_points + 64) * sizeof *s->points);
        Ty__MetricPoint *p = ty_xmalloc(sizeof *p);
        ty__metric_point__init(p);
        p->step = step;
        p->value = v;
        p->t_ms = t;
        s->points[s->n_points++] = p;
        n++;
    }
    fclose(f);
    return n;
}

static int ty_file_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ty_metrics_read(const char *data_dir, const char *run, const char *task,
                    Ty__MetricsReply *out) {
    ty__metrics_reply__init(out);
    if (!*run || strchr(run, '/') || run[0] == '.')
        return TY_EINVAL;
    char *dir = ty_xasprintf("%s/logs/%s", data_dir, run);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return TY_ENOENT;
    }
    char **names = NULL;
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 8 && strcmp(e->d_name + len - 8, ".metrics") == 0) {
            names = ty_xrealloc(names, (nn + 1) * sizeof *names);
            names[nn++] = ty_xstrdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, nn, sizeof *names, ty_file_cmp);
    size_t budget = TY_METRICS_MAX_POINTS;
    for (size_t i = 0; i < nn; i++) {
        /* <task>.<attempt>.metrics: task names may hold dots, so from the right */
        char *base = ty_xstrndup(names[i], strlen(names[i]) - 8);
        char *dot = strrchr(base, '.');
        char *end = NULL;
        unsigned long attempt = dot ? strtoul(dot + 1, &end, 10) : 0;
        if (dot && end && !*end && attempt > 0) {
            *dot = '\0';
            if (!*task || strcmp(task, base) == 0) {
                char *path = ty_xasprintf("%s/%s", dir, names[i]);
                budget -= ty_read_series(out, path, base, (unsigned)attempt, budget);
                free(path);
            }
        }
        free(base);
        free(names[i]);
    }
    free(names);
    free(dir);
    return 0;
}

void ty_metrics_clear(Ty__MetricsReply *r) {
    for (size_t i = 0; i < r->n_series; i++) {
        Ty__MetricSeries *s = r->series[i];
        for (size_t k = 0; k < s->n_points; k++)
            free(s->points[k]);
        free(s->points);
        free(s->task);
        free(s->name);
        free(s);
    }
    free(r->series);
    ty__metrics_reply__init(r);
}
