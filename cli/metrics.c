/* trainyard metrics RUN [TASK] [--plot], trainyard compare RUN RUN... */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/util.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TY_PLOT_ROWS 10

static int ty_term_width(void) {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int64_t v;
    if (c && ty_parse_i64(c, 20, 10000, &v) == 0)
        return (int)v;
    return 80;
}

/* One series as a line chart TY_PLOT_ROWS high, within width columns:
 * points spread over the columns in their order (several per column:
 * their mean), each column's value joined to the next by a vertical run. */
static void ty_plot(const Ty__MetricSeries *s, int width) {
    int cols = width - 12; /* the axis labels */
    if (cols < 8)
        cols = 8;
    size_t n = s->n_points;
    if ((size_t)cols > n)
        cols = (int)n;
    double lo = DBL_MAX, hi = -DBL_MAX;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, s->points[i]->value);
        hi = fmax(hi, s->points[i]->value);
    }
    printf("%s#%u %s: %zu points, steps %lld..%lld\n", s->task, s->attempt, s->name, n,
           (long long)s->points[0]->step, (long long)s->points[n - 1]->step);
    int *row = ty_xcalloc((size_t)cols, sizeof *row);
    for (int x = 0; x < cols; x++) {
        size_t a = (size_t)x * n / (size_t)cols, b = (size_t)(x + 1) * n / (size_t)cols;
        double sum = 0;
        for (size_t i = a; i < b; i++)
            sum += s->points[i]->value;
        double v = sum / (double)(b - a);
        row[x] = hi > lo ? (int)lround((v - lo) / (hi - lo) * (TY_PLOT_ROWS - 1)) : 0;
    }
    for (int y = TY_PLOT_ROWS - 1; y >= 0; y--) {
        double label = lo + (hi - lo) * y / (TY_PLOT_ROWS - 1);
        printf("%10.4g |", label);
        for (int x = 0; x < cols; x++) {
            int prev = x ? row[x - 1] : row[x];
            int top = prev > row[x] ? prev : row[x], bot = prev > row[x] ? row[x] : prev;
            putchar(row[x] == y ? '*' : (y < top && y > bot) ? '|' : ' ');
        }
        putchar('\n');
    }
    printf("%10s +", "");
    for (int x = 0; x < cols; x++)
        putchar('-');
    printf("\n\n");
    free(row);
}

int ty_cmd_metrics(ty_cli_t *cli, ty_client_t *c) {
    const char *run = NULL, *task = "";
    int plot = 0;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--plot") == 0)
            plot = 1;
        else if (!run)
            run = cli->argv[i];
        else if (!*task)
            task = cli->argv[i];
        else
            return ty_die("metrics: unexpected argument '%s'", cli->argv[i]);
    }
    if (!run)
        return ty_die("usage: trainyard metrics RUN [TASK] [--plot] [-o json]");
    Ty__MetricsRequest mr = TY__METRICS_REQUEST__INIT;
    mr.run_id = (char *)run;
    mr.task = (char *)task;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_METRICS;
    env.metrics = &mr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_METRICS_REPLY) != 0)
        return 1;
    const Ty__MetricsReply *r = rep->metrics_reply;
    if (r->truncated)
        fprintf(stderr, "trainyard: more points than one answer holds; the first ones shown\n");
    if (cli->json) {
        ty_out_json_print(ty_render_metrics(r));
    } else if (plot) {
        int width = ty_term_width();
        for (size_t i = 0; i < r->n_series; i++)
            ty_plot(r->series[i], width);
    } else {
        printf("%-16s %3s %-20s %6s %12s %12s %12s %12s\n", "TASK", "#", "NAME", "POINTS", "FIRST",
               "LAST", "MIN", "MAX");
        for (size_t i = 0; i < r->n_series; i++) {
            const Ty__MetricSeries *s = r->series[i];
            double lo = DBL_MAX, hi = -DBL_MAX;
            for (size_t k = 0; k < s->n_points; k++) {
                lo = fmin(lo, s->points[k]->value);
                hi = fmax(hi, s->points[k]->value);
            }
            printf("%-16s %3u %-20s %6zu %12.6g %12.6g %12.6g %12.6g\n", s->task, s->attempt,
                   s->name, s->n_points, s->points[0]->value, s->points[s->n_points - 1]->value, lo,
                   hi);
        }
    }
    ty_wire_free(&rep);
    return 0;
}

/* ---- compare ---- */

typedef struct {
    char *kind, *name;
    char **values; /* one per run, NULL when that run has none */
} ty_row_t;

static ty_row_t *ty_row(ty_row_t **rows, size_t *n, size_t nruns, const char *kind,
                        const char *name) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*rows)[i].kind, kind) == 0 && strcmp((*rows)[i].name, name) == 0)
            return &(*rows)[i];
    *rows = ty_xrealloc(*rows, (*n + 1) * sizeof **rows);
    ty_row_t *r = &(*rows)[(*n)++];
    r->kind = ty_xstrdup(kind);
    r->name = ty_xstrdup(name);
    r->values = ty_xcalloc(nruns, sizeof *r->values);
    return r;
}

static int ty_row_cmp(const void *a, const void *b) {
    const ty_row_t *x = a, *y = b;
    int k = strcmp(x->kind, y->kind);
    return k ? k : strcmp(x->name, y->name);
}

static int ty_row_differs(const ty_row_t *r, size_t nruns) {
    for (size_t i = 1; i < nruns; i++) {
        const char *a = r->values[0] ? r->values[0] : "", *b = r->values[i] ? r->values[i] : "";
        if (strcmp(a, b) != 0)
            return 1;
    }
    return 0;
}

int ty_cmd_compare(ty_cli_t *cli, ty_client_t *c) {
    size_t nruns = (size_t)cli->argc - 1;
    if (nruns < 2)
        return ty_die("usage: trainyard compare RUN RUN... [-o json]");
    ty_row_t *rows = NULL;
    size_t nrows = 0;
    int rc = 0;
    for (size_t k = 0; k < nruns && rc == 0; k++) {
        Ty__Envelope *rep = NULL;
        if (ty_get_status(cli, c, cli->argv[k + 1], 0, &rep) != 0) {
            rc = 1;
            break;
        }
        const Ty__RunStatus *st = rep->status_reply->status;
        for (size_t i = 0; i < st->run->n_params; i++)
            ty_row(&rows, &nrows, nruns, "param", st->run->params[i]->key)->values[k] =
                ty_xstrdup(st->run->params[i]->value);
        for (size_t t = 0; t < st->n_tasks; t++) {
            const Ty__TaskRecord *tr = st->tasks[t];
            for (size_t i = 0; i < tr->n_tags; i++) {
                char *name = ty_xasprintf("%s.%s", tr->name, tr->tags[i]->key);
                ty_row(&rows, &nrows, nruns, "tag", name)->values[k] =
                    ty_xstrdup(tr->tags[i]->value);
                free(name);
            }
            for (size_t i = 0; i < tr->n_metrics; i++) {
                char *name = ty_xasprintf("%s.%s", tr->name, tr->metrics[i]->name);
                ty_row(&rows, &nrows, nruns, "metric", name)->values[k] =
                    ty_xasprintf("%.6g", tr->metrics[i]->value);
                free(name);
            }
        }
        ty_wire_free(&rep);
    }
    if (rc == 0) {
        qsort(rows, nrows, sizeof *rows, ty_row_cmp);
        if (cli->json) {
            json_t *o = json_object(), *ids = json_array(), *jr = json_array();
            for (size_t k = 0; k < nruns; k++)
                json_array_append_new(ids, json_string(cli->argv[k + 1]));
            for (size_t i = 0; i < nrows; i++) {
                json_t *r = json_object(), *vals = json_array();
                json_object_set_new(r, "kind", json_string(rows[i].kind));
                json_object_set_new(r, "name", json_string(rows[i].name));
                for (size_t k = 0; k < nruns; k++)
                    json_array_append_new(vals, rows[i].values[k] ? json_string(rows[i].values[k])
                                                                  : json_null());
                json_object_set_new(r, "values", vals);
                json_object_set_new(r, "differs", json_boolean(ty_row_differs(&rows[i], nruns)));
                json_array_append_new(jr, r);
            }
            json_object_set_new(o, "runs", ids);
            json_object_set_new(o, "rows", jr);
            ty_out_json_print(o);
        } else {
            printf("  %-7s %-28s", "", "");
            for (size_t k = 0; k < nruns; k++)
                printf(" %-22s", cli->argv[k + 1]);
            putchar('\n');
            for (size_t i = 0; i < nrows; i++) {
                printf("%c %-7s %-28s", ty_row_differs(&rows[i], nruns) ? '*' : ' ', rows[i].kind,
                       rows[i].name);
                for (size_t k = 0; k < nruns; k++)
                    printf(" %-22s", rows[i].values[k] ? rows[i].values[k] : "-");
                putchar('\n');
            }
            printf("(* differs)\n");
        }
    }
    for (size_t i = 0; i < nrows; i++) {
        for (size_t k = 0; k < nruns; k++)
            free(rows[i].values[k]);
        free(rows[i].values);
        free(rows[i].kind);
        free(rows[i].name);
    }
    free(rows);
    return rc;
}
