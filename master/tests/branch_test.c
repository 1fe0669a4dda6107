/* Branches in the core: an exit code in skip_exit_codes settles the task
 * skipped (no retry) and all_success skips what follows, the run still
 * succeeds; an exit code in fail_exit_codes is not retried; a when:
 * condition on upstream metrics runs or skips a task, and one that names
 * a metric never reported fails it with that name. */
#include "master/tests/core_harness.h"

static void test_skip_and_fail_exit_codes(void) {
    h_t h;
    h_init(&h, 3);
    h_register(&h, "w1", 8, 0, NULL);
    ty_run_t *r = h_submit(&h, "name: b\ntasks:\n"
                               "  - {name: check, command: [t], skip_exit_codes: [3], retries: 2}\n"
                               "  - {name: train, command: [t], depends_on: [check]}\n"
                               "  - {name: after, command: [t], depends_on: [train],\n"
                               "     trigger_rule: all_done}\n");
    h_flush(&h);
    h_finish(&h, T(r, "check"), 3);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "check")->state, TY_TASK_SKIPPED);
    CHECK_EQ_INT(T(r, "check")->attempt, 1); /* not retried */
    CHECK_STR(T(r, "check")->reason, "skipped: exit code 3");
    CHECK_EQ_INT(T(r, "train")->state, TY_TASK_SKIPPED); /* all_success */
    CHECK_EQ_INT(T(r, "after")->state, TY_TASK_RUNNING); /* all_done: runs */
    h_finish(&h, T(r, "after"), 0);
    h_flush(&h);
    CHECK_EQ_INT(r->state, TY_RUN_SUCCEEDED); /* only skips happened */

    ty_run_t *f = h_submit(&h, "name: f\ntasks:\n"
                               "  - {name: a, command: [t], fail_exit_codes: [2], retries: 3}\n");
    h_flush(&h);
    h_finish(&h, T(f, "a"), 2);
    h_flush(&h);
    CHECK_EQ_INT(T(f, "a")->state, TY_TASK_FAILED);
    CHECK_EQ_INT(T(f, "a")->attempt, 1);
    CHECK_STR(T(f, "a")->reason, "exit code 2 (not retried: fail_exit_codes)");
    CHECK_EQ_INT(f->state, TY_RUN_FAILED);
    /* another code is retried as before */
    ty_run_t *g = h_submit(&h, "name: g\ntasks:\n"
                               "  - {name: a, command: [t], fail_exit_codes: [2], retries: 3}\n");
    h_flush(&h);
    h_finish(&h, T(g, "a"), 1);
    h_flush(&h);
    CHECK_EQ_INT(T(g, "a")->state, TY_TASK_RUNNING);
    CHECK_EQ_INT(T(g, "a")->attempt, 2);
    h_fini(&h);
}

static const char *const drift_yaml =
    "name: d\ntasks:\n"
    "  - {name: drift, command: [t], metrics: [psi_max, ks_p]}\n"
    "  - {name: retrain, command: [t], when: \"drift.psi_max > 0.2 or drift.ks_p < 0.01\"}\n"
    "  - {name: promote, command: [t], depends_on: [retrain]}\n";

static void test_when(void) {
    h_t h;
    h_init(&h, 3);
    h_register(&h, "w1", 8, 0, NULL);
    /* no drift: the branch is skipped, the run succeeds */
    ty_run_t *r = h_submit(&h, drift_yaml);
    h_flush(&h);
    h_metric(&h, T(r, "drift"), "psi_max", 0.05);
    h_metric(&h, T(r, "drift"), "ks_p", 0.5);
    h_finish(&h, T(r, "drift"), 0);
    h_flush(&h);
    CHECK_EQ_INT(T(r, "retrain")->state, TY_TASK_SKIPPED);
    CHECK_STR(T(r, "retrain")->reason, "skipped: when drift.psi_max > 0.2 or drift.ks_p < 0.01 "
                                       "(drift.psi_max = 0.05, drift.ks_p = 0.5) is false");
    CHECK_EQ_INT(T(r, "promote")->state, TY_TASK_SKIPPED);
    CHECK_EQ_INT(r->state, TY_RUN_SUCCEEDED);
    /* drift: it runs */
    ty_run_t *s = h_submit(&h, drift_yaml);
    h_flush(&h);
    h_metric(&h, T(s, "drift"), "psi_max", 0.4);
    h_metric(&h, T(s, "drift"), "ks_p", 0.5);
    h_finish(&h, T(s, "drift"), 0);
    h_flush(&h);
    CHECK_EQ_INT(T(s, "retrain")->state, TY_TASK_RUNNING);
    /* a metric never reported: the task fails, naming it */
    ty_run_t *u = h_submit(&h, drift_yaml);
    h_flush(&h);
    h_metric(&h, T(u, "drift"), "psi_max", 0.1);
    h_finish(&h, T(u, "drift"), 0);
    h_flush(&h);
    CHECK_EQ_INT(T(u, "retrain")->state, TY_TASK_FAILED);
    CHECK_STR(T(u, "retrain")->reason, "when: drift.ks_p was not reported");
    CHECK_EQ_INT(u->state, TY_RUN_FAILED);
    h_fini(&h);
}

int main(void) {
    test_skip_and_fail_exit_codes();
    test_when();
    TEST_DONE();
}
