/* Metric histories read back: series per task, attempt and name in arrival
 * order, task names with dots, a line cut by a crash skipped, the task
 * filter, and what is refused. */
#include "master/metrics.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <stdlib.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text) {
    char *p = ty_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    free(p);
}

int main(void) {
    char dir[] = "/tmp/ty-metrics-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char *run = ty_xasprintf("%s/logs/r1", dir);
    CHECK_EQ_INT(ty_mkdirs(run), 0);
    put(run, "train.1.metrics",
        "1000\t0\t0.9\tloss\n1001\t0\t0.5\tacc\n1002\t1\t0.7\tloss\n"
        "1003\t2\t0.6"); /* cut: no name, no newline */
    put(run, "train.2.metrics", "2000\t0\t0.8\tloss\n");
    put(run, "prep.v2.1.metrics", "3000\t5\t1e-3\trows.per_s\n"); /* a task name with a dot */
    put(run, "train.1.log", "not metrics\n");

    Ty__MetricsReply r;
    CHECK_EQ_INT(ty_metrics_read(dir, "r1", "", &r), 0);
    CHECK_EQ_INT(r.n_series, 4);
    CHECK(!r.truncated);
    const Ty__MetricSeries *loss1 = NULL, *prep = NULL;
    for (size_t i = 0; i < r.n_series; i++) {
        const Ty__MetricSeries *s = r.series[i];
        if (strcmp(s->task, "train") == 0 && s->attempt == 1 && strcmp(s->name, "loss") == 0)
            loss1 = s;
        if (strcmp(s->task, "prep.v2") == 0)
            prep = s;
    }
    CHECK(loss1 && loss1->n_points == 2);
    if (loss1 && loss1->n_points == 2) {
        CHECK_EQ_INT(loss1->points[0]->step, 0);
        CHECK_EQ_INT(loss1->points[1]->step, 1);
        CHECK(loss1->points[1]->value == 0.7 && loss1->points[1]->t_ms == 1002);
    }
    CHECK(prep && prep->attempt == 1 && strcmp(prep->name, "rows.per_s") == 0 &&
          prep->points[0]->value == 1e-3);
    ty_metrics_clear(&r);

    CHECK_EQ_INT(ty_metrics_read(dir, "r1", "train", &r), 0);
    CHECK_EQ_INT(r.n_series, 3); /* loss and acc of attempt 1, loss of 2 */
    ty_metrics_clear(&r);
    CHECK_EQ_INT(ty_metrics_read(dir, "nope", "", &r), TY_ENOENT);
    ty_metrics_clear(&r);
    CHECK_EQ_INT(ty_metrics_read(dir, "../etc", "", &r), TY_EINVAL);
    ty_metrics_clear(&r);
    CHECK_EQ_INT(ty_metrics_read(dir, "a/b", "", &r), TY_EINVAL);
    ty_metrics_clear(&r);

    char *cmd = ty_xasprintf("rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
    free(cmd);
    free(run);
    TEST_DONE();
}
