/* Prometheus' text format: families, escaped labels, values, and a
 * histogram's cumulative buckets with +Inf equal to its count. */
#include "common/prom.h"

#include "common/tests/ty_test.h"

#include <math.h>
#include <string.h>

int main(void) {
    ty_buf_t b = {0};
    ty_prom_family(&b, "trainyard_tasks", "gauge", "tasks by state\nsecond \\ line");
    const char *l[] = {"state", "run\"ning\\\n", NULL};
    ty_prom_sample(&b, "trainyard_tasks", l, 3);
    ty_prom_sample(&b, "trainyard_up", NULL, 1);
    ty_prom_sample(&b, "trainyard_x", NULL, 0.25);
    ty_prom_sample(&b, "trainyard_y", NULL, NAN);
    ty_prom_sample(&b, "trainyard_z", NULL, -INFINITY);
    ty_buf_append(&b, "", 1);
    CHECK_STR(b.data, "# HELP trainyard_tasks tasks by state\\nsecond \\\\ line\n"
                      "# TYPE trainyard_tasks gauge\n"
                      "trainyard_tasks{state=\"run\\\"ning\\\\\\n\"} 3\n"
                      "trainyard_up 1\ntrainyard_x 0.25\ntrainyard_y NaN\ntrainyard_z -Inf\n");
    b.len = 0;

    ty_hist_t h;
    memset(&h, 0, sizeof h);
    ty_hist_observe(&h, 0.0005); /* le 0.001 */
    ty_hist_observe(&h, 0.001);  /* le 0.001: bounds are inclusive */
    ty_hist_observe(&h, 0.3);    /* le 0.5 */
    ty_hist_observe(&h, 7200);   /* past the last bound: +Inf only */
    ty_hist_observe(&h, -2);     /* another host's clock: 0 */
    CHECK_EQ_INT(h.count, 5);
    const char *w[] = {"worker", "w1", NULL};
    ty_prom_hist(&b, "trainyard_d_seconds", w, &h);
    ty_buf_append(&b, "", 1);
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_bucket{worker=\"w1\",le=\"0.001\"} 3\n");
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_bucket{worker=\"w1\",le=\"0.25\"} 3\n");
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_bucket{worker=\"w1\",le=\"0.5\"} 4\n");
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_bucket{worker=\"w1\",le=\"3600\"} 4\n");
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_bucket{worker=\"w1\",le=\"+Inf\"} 5\n");
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_sum{worker=\"w1\"} 7200.3015\n");
    CHECK_CONTAINS(b.data, "trainyard_d_seconds_count{worker=\"w1\"} 5\n");
    b.len = 0;
    ty_prom_hist(&b, "trainyard_e_seconds", NULL, &h);
    ty_buf_append(&b, "", 1);
    CHECK_CONTAINS(b.data, "trainyard_e_seconds_bucket{le=\"+Inf\"} 5\n");
    CHECK_CONTAINS(b.data, "trainyard_e_seconds_count 5\n");
    ty_buf_free(&b);
    TEST_DONE();
}
