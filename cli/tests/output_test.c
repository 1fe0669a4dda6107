/* Table rendering of master replies, and colours (the JSON: render_test). */
#include "cli/output.h"

#include "common/dag.h"
#include "common/tests/ty_test.h"

#include <string.h>

int main(void) {
    Ty__RunRecord run = TY__RUN_RECORD__INIT;
    run.run_id = "p-1";
    run.pipeline = "p";
    run.state = TY_RUN_FAILED;
    run.created_ms = 1767323045678LL;
    run.started_ms = run.created_ms + 1;
    run.finished_ms = run.created_ms + 2500;
    Ty__KV kv = TY__KV__INIT, *kvp = &kv;
    kv.key = "epochs";
    kv.value = "3";
    run.params = &kvp;
    run.n_params = 1;
    Ty__TaskRecord a = TY__TASK_RECORD__INIT, b = TY__TASK_RECORD__INIT;
    a.name = "a";
    a.state = TY_TASK_FAILED;
    a.attempt = 2;
    a.worker = "w1";
    a.exit_code = 3;
    a.started_ms = run.started_ms;
    a.finished_ms = run.finished_ms;
    a.reason = "exit code 3";
    Ty__Metric m = TY__METRIC__INIT, *mp = &m;
    m.name = "loss";
    m.value = 0.5;
    m.step = 4;
    a.metrics = &mp;
    a.n_metrics = 1;
    b.name = "b";
    b.state = TY_TASK_UPSTREAM_FAILED;
    Ty__TaskRecord *tasks[] = {&a, &b};
    Ty__RunStatus st = TY__RUN_STATUS__INIT;
    st.run = &run;
    st.tasks = tasks;
    st.n_tasks = 2;
    st.version = 9;

    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ty_out_status_table(f, &st);
    fclose(f);
    CHECK_CONTAINS(buf, "run p-1  pipeline p  state failed");
    CHECK_CONTAINS(buf, "exit code 3");
    CHECK_CONTAINS(buf, "metrics: loss=0.5");
    CHECK_CONTAINS(buf, "2.5s");
    CHECK(strchr(buf, '\033') == NULL); /* colours are off unless turned on */
    free(buf);

    /* colours: a terminal only, NO_COLOR (set and not empty) and TERM=dumb
     * turn them off */
    CHECK(ty_out_colour_wanted(1, NULL, "xterm"));
    CHECK(ty_out_colour_wanted(1, "", "xterm"));
    CHECK(!ty_out_colour_wanted(0, NULL, "xterm"));
    CHECK(!ty_out_colour_wanted(1, "1", "xterm"));
    CHECK(!ty_out_colour_wanted(1, NULL, "dumb"));
    CHECK_STR(ty_out_state_sgr("failed"), "31");
    CHECK_STR(ty_out_state_sgr("succeeded"), "32");
    CHECK(ty_out_state_sgr("waiting") == NULL);
    ty_out_set_colour(1);
    f = open_memstream(&buf, &n);
    ty_out_status_table(f, &st);
    fclose(f);
    /* the state coloured, padded to its column as without colour */
    CHECK_CONTAINS(buf, "state \033[31mfailed\033[0m  owner");
    CHECK_CONTAINS(buf, "\033[31mfailed          \033[0m 2 ");
    CHECK_CONTAINS(buf, "upstream_failed \033[0m");
    free(buf);
    ty_out_set_colour(0);
    TEST_DONE();
}
