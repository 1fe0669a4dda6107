/* A failed run of two tasks (a failed at attempt 2 with a metric, b
 * upstream_failed), shared by the tests of its renderings: render_test
 * (JSON) and output_test (tables). */
#ifndef TY_TESTS_STATUS_FIXTURE_H
#define TY_TESTS_STATUS_FIXTURE_H

#include "common/dag.h"
#include "trainyard.pb-c.h"

typedef struct {
    Ty__RunRecord run;
    Ty__KV kv, *kvp;
    Ty__TaskRecord a, b, *tasks[2];
    Ty__Metric m, *mp;
    Ty__RunStatus st;
} ty_status_fixture_t;

static inline void ty_status_fixture(ty_status_fixture_t *f) {
    ty__run_record__init(&f->run);
    f->run.run_id = "p-1";
    f->run.pipeline = "p";
    f->run.state = TY_RUN_FAILED;
    f->run.created_ms = 1767323045678LL;
    f->run.started_ms = f->run.created_ms + 1;
    f->run.finished_ms = f->run.created_ms + 2500;
    ty__kv__init(&f->kv);
    f->kv.key = "epochs";
    f->kv.value = "3";
    f->kvp = &f->kv;
    f->run.params = &f->kvp;
    f->run.n_params = 1;
    ty__task_record__init(&f->a);
    ty__task_record__init(&f->b);
    f->a.name = "a";
    f->a.state = TY_TASK_FAILED;
    f->a.attempt = 2;
    f->a.worker = "w1";
    f->a.exit_code = 3;
    f->a.started_ms = f->run.started_ms;
    f->a.finished_ms = f->run.finished_ms;
    f->a.reason = "exit code 3";
    ty__metric__init(&f->m);
    f->m.name = "loss";
    f->m.value = 0.5;
    f->m.step = 4;
    f->mp = &f->m;
    f->a.metrics = &f->mp;
    f->a.n_metrics = 1;
    f->b.name = "b";
    f->b.state = TY_TASK_UPSTREAM_FAILED;
    f->tasks[0] = &f->a;
    f->tasks[1] = &f->b;
    ty__run_status__init(&f->st);
    f->st.run = &f->run;
    f->st.tasks = f->tasks;
    f->st.n_tasks = 2;
    f->st.version = 9;
}

#endif
