/* JSON views of the master's replies (common/render.h). */
#include "common/render.h"

#include "common/dag.h"
#include "common/tests/status_fixture.h"
#include "common/tests/ty_test.h"

#include <string.h>

int main(void) {
    ty_status_fixture_t f;
    ty_status_fixture(&f);
    Ty__RunRecord *run = &f.run;
    Ty__TaskRecord *a = &f.a;
    Ty__RunStatus *st = &f.st;

    json_t *j = ty_render_status(st);
    CHECK_STR(json_string_value(json_object_get(j, "run_id")), "p-1");
    CHECK_STR(json_string_value(json_object_get(j, "state")), "failed");
    CHECK_STR(json_string_value(json_object_get(j, "created_at")), "2026-01-02T03:04:05.678Z");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "params"), "epochs")), "3");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "version")), 9);
    json_t *ta = json_array_get(json_object_get(j, "tasks"), 0);
    json_t *tb = json_array_get(json_object_get(j, "tasks"), 1);
    CHECK_STR(json_string_value(json_object_get(ta, "state")), "failed");
    CHECK_EQ_INT(json_integer_value(json_object_get(ta, "attempt")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(ta, "exit_code")), 3);
    CHECK_STR(json_string_value(json_object_get(ta, "worker")), "w1");
    CHECK(json_real_value(json_object_get(json_object_get(json_object_get(ta, "metrics"), "loss"),
                                          "value")) == 0.5);
    /* never ran: no worker, no exit code, no times */
    CHECK_STR(json_string_value(json_object_get(tb, "state")), "upstream_failed");
    CHECK(json_is_null(json_object_get(tb, "worker")));
    CHECK(json_is_null(json_object_get(tb, "exit_code")));
    CHECK(json_is_null(json_object_get(tb, "started_at")));
    CHECK(json_object_get(ta, "depends_on") == NULL); /* no spec: not known */
    json_decref(j);

    /* each task's upstreams, from the run's spec */
    Ty__TaskSpec sa = TY__TASK_SPEC__INIT, sb = TY__TASK_SPEC__INIT;
    sa.name = "a";
    sb.name = "b";
    char *deps[] = {"a"};
    sb.depends_on = deps;
    sb.n_depends_on = 1;
    Ty__TaskSpec *specs[] = {&sb, &sa}; /* in another order than the tasks */
    Ty__PipelineSpec ps0 = TY__PIPELINE_SPEC__INIT;
    ps0.tasks = specs;
    ps0.n_tasks = 2;
    run->spec = &ps0;
    j = ty_render_status(st);
    CHECK_EQ_INT(json_array_size(
                     json_object_get(json_array_get(json_object_get(j, "tasks"), 0), "depends_on")),
                 0);
    CHECK_STR(
        json_string_value(json_array_get(
            json_object_get(json_array_get(json_object_get(j, "tasks"), 1), "depends_on"), 0)),
        "a");
    json_decref(j);
    run->spec = NULL;

    /* the outputs of a run's tasks, with the attempt and worker */
    Ty__ArtifactRef out = TY__ARTIFACT_REF__INIT, *outp = &out;
    out.name = "model.onnx";
    out.size = 1234;
    out.sha256 = "ab12";
    a->outputs = &outp;
    a->n_outputs = 1;
    j = ty_render_artifacts(st);
    CHECK_EQ_INT(json_array_size(j), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "task")), "a");
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "name")), "model.onnx");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(j, 0), "size")), 1234);
    json_decref(j);

    /* metric series: each point's step, value and time */
    Ty__MetricPoint pt = TY__METRIC_POINT__INIT, *ptp = &pt;
    pt.step = 7;
    pt.value = 0.25;
    pt.t_ms = 99;
    Ty__MetricSeries se = TY__METRIC_SERIES__INIT, *sep = &se;
    se.task = "a";
    se.attempt = 2;
    se.name = "loss";
    se.points = &ptp;
    se.n_points = 1;
    Ty__MetricsReply mr = TY__METRICS_REPLY__INIT;
    mr.series = &sep;
    mr.n_series = 1;
    j = ty_render_metrics(&mr);
    json_t *p0 = json_array_get(json_object_get(json_array_get(j, 0), "points"), 0);
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "name")), "loss");
    CHECK_EQ_INT(json_integer_value(json_object_get(p0, "step")), 7);
    CHECK(json_real_value(json_object_get(p0, "value")) == 0.25);
    json_decref(j);

    /* pipelines: counts and the last run, or null */
    Ty__PipelineSummary ps = TY__PIPELINE_SUMMARY__INIT, ps2 = TY__PIPELINE_SUMMARY__INIT;
    ps.name = "p";
    ps.runs = 3;
    ps.failed = 1;
    ps.last = run;
    ps2.name = "q";
    Ty__PipelineSummary *pss[] = {&ps, &ps2};
    Ty__PipelinesReply pr = TY__PIPELINES_REPLY__INIT;
    pr.pipelines = pss;
    pr.n_pipelines = 2;
    j = ty_render_pipelines(&pr);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(j, 0), "runs")), 3);
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(j, 0), "last_run"), "run_id")),
              "p-1");
    CHECK(json_is_null(json_object_get(json_array_get(j, 1), "last_run")));
    json_decref(j);
    TEST_DONE();
}
