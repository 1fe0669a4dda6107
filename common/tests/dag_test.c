#include "common/dag.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

static int load(const char *y, Ty__PipelineSpec **s, char **err) {
    return ty_dag_load_string(y, strlen(y), "p.yaml", s, err);
}

/* Expect a validation failure whose message contains `want`. */
static void expect_err(const char *y, int code, const char *want) {
    Ty__PipelineSpec *s = NULL;
    char *err = NULL;
    int rc = load(y, &s, &err);
    CHECK_EQ_INT(rc, code);
    CHECK(s == NULL);
    CHECK_CONTAINS(err, want);
    free(err);
}

int main(void) {
    const char *diamond = "name: diamond\n"
                          "params: {n: 3, who: world}\n"
                          "tasks:\n"
                          "  - name: a\n"
                          "    command: [echo, 'hello {{ params.who }}']\n"
                          "  - name: b\n"
                          "    depends_on: [a]\n"
                          "    command: \"sleep {{params.n}}\"\n"
                          "    resources: {cpus: 0.5, mem_mb: 256, gpus: 1, labels: {zone: a}}\n"
                          "    retries: 2\n"
                          "    retry_backoff_s: 1.5\n"
                          "    timeout_s: 30\n"
                          "    priority: 7\n"
                          "  - name: c\n"
                          "    depends_on: a\n"
                          "    command: [\"true\"]\n"
                          "    env: {X: '{{ params.n }}'}\n"
                          "  - name: d\n"
                          "    depends_on: [b, c]\n"
                          "    trigger_rule: all_done\n"
                          "    kind: mpi\n"
                          "    np: 2\n"
                          "    command: [\"true\"]\n";
    Ty__PipelineSpec *s = NULL;
    char *err = NULL;
    CHECK_EQ_INT(load(diamond, &s, &err), 0);
    CHECK(err == NULL);
    if (s) {
        CHECK_STR(s->name, "diamond");
        CHECK_EQ_INT(s->n_tasks, 4);
        Ty__TaskSpec *b = s->tasks[1];
        CHECK_STR(b->shell, "sleep {{params.n}}");
        CHECK(b->resources->cpus == 0.5);
        CHECK_EQ_INT(b->resources->mem_mb, 256);
        CHECK_EQ_INT(b->resources->gpus, 1);
        CHECK_EQ_INT(b->resources->n_labels, 1);
        CHECK_EQ_INT(b->retries, 2);
        CHECK(b->retry_backoff_s == 1.5);
        CHECK(b->timeout_s == 30);
        CHECK_EQ_INT(b->priority, 7);
        CHECK_EQ_INT(b->line, 6);
        CHECK_EQ_INT(s->tasks[2]->n_depends_on, 1); /* scalar depends_on */
        CHECK_EQ_INT(s->tasks[3]->trigger_rule, TY_TRIGGER_ALL_DONE);
        CHECK_EQ_INT(s->tasks[3]->kind, TY_KIND_MPI);
        CHECK(s->tasks[0]->resources->cpus == 1); /* default */
        CHECK_EQ_INT(ty_dag_task_index(s, "d"), 3);
        CHECK_EQ_INT(ty_dag_task_index(s, "zz"), -1);

        Ty__KV ov = TY__KV__INIT, *ovp = &ov;
        ov.key = "n";
        ov.value = "9";
        Ty__PipelineSpec *r = NULL;
        Ty__KV **params = NULL;
        size_t np = 0;
        CHECK_EQ_INT(ty_dag_resolve(s, &ovp, 1, &r, &params, &np, &err), 0);
        if (r) {
            CHECK_STR(r->tasks[0]->argv[1], "hello world");
            CHECK_STR(r->tasks[1]->shell, "sleep 9");
            CHECK_STR(r->tasks[2]->env[0]->value, "9");
            CHECK_EQ_INT(np, 2);
        }
        ty_dag_kvs_free(params, np);
        ty_dag_free(&r);
        CHECK(r == NULL);
        ov.key = "nn";
        CHECK_EQ_INT(ty_dag_resolve(s, &ovp, 1, &r, &params, &np, &err), TY_EINVAL);
        CHECK_CONTAINS(err, "unknown param 'nn'");
        free(err);
    }
    ty_dag_free(&s);
    ty_dag_free(&s); /* NULL is fine */

    expect_err("name: x\ntasks:\n  - name: a\n    depends_on: [b]\n    command: [t]\n"
               "  - name: b\n    depends_on: [c]\n    command: [t]\n"
               "  - name: c\n    depends_on: [a]\n    command: [t]\n",
               TY_EINVAL, "dependency cycle: ");
    expect_err("name: x\ntasks:\n  - name: a\n    depends_on: [a]\n    command: [t]\n", TY_EINVAL,
               "p.yaml:3: task 'a' depends on itself");
    expect_err("name: x\ntasks:\n  - name: a\n    depends_on: [zz]\n    command: [t]\n", TY_EINVAL,
               "p.yaml:3: task 'a' depends on unknown task 'zz'");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n  - name: a\n    command: [t]\n",
               TY_EINVAL, "p.yaml:5: duplicate task name 'a' (first defined at line 3)");
    expect_err("name: x\ntasks:\n  - name: a\n    comand: [t]\n", TY_EINVAL,
               "p.yaml:4: unknown task key 'comand'");
    expect_err("name: x\nretries: 3\ntasks:\n  - name: a\n    command: [t]\n", TY_EINVAL,
               "p.yaml:2: unknown key 'retries'");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    resources: {cpus: -1}\n",
               TY_EINVAL, "p.yaml:5: resources.cpus must be a number > 0");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    resources: {gpus: many}\n",
               TY_EINVAL, "resources.gpus must be an integer");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    resources: {disk: 1}\n",
               TY_EINVAL, "unknown key 'resources.disk'");
    expect_err("name: x\ntasks: []\n", TY_EINVAL, "p.yaml:1: pipeline has no tasks");
    expect_err("", TY_EINVAL, "empty pipeline file");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t\n", TY_EPARSE, "YAML syntax error");
    expect_err("name: Bad Name\ntasks:\n  - name: a\n    command: [t]\n", TY_EINVAL,
               "pipeline name 'Bad Name'");
    expect_err("name: x\ntasks:\n  - name: a\n    command: 'echo {{ params.nope }}'\n", TY_EINVAL,
               "uses undefined param 'nope'");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    trigger_rule: sometimes\n",
               TY_EINVAL, "trigger_rule must be");
    expect_err("name: x\ntasks:\n  - name: a\n", TY_EINVAL, "has no command");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    np: 2\n", TY_EINVAL,
               "np needs kind: mpi");

    CHECK_STR(ty_task_state_name(TY_TASK_UPSTREAM_FAILED), "upstream_failed");
    CHECK_STR(ty_run_state_name(TY_RUN_CANCELLED), "cancelled");
    CHECK(ty_task_state_terminal(TY_TASK_SKIPPED));
    CHECK(!ty_task_state_terminal(TY_TASK_RUNNING));

    char *missing = NULL;
    char *r = ty_dag_render("a {{ other }} b", NULL, 0, &missing);
    CHECK_STR(r, "a {{ other }} b");
    CHECK(missing == NULL);
    free(r);
    TEST_DONE();
}
