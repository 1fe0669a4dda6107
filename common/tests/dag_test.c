#include "common/dag.h"
#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <stdio.h>

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

static void expect_lim(const char *y, const ty_dag_limits_t *lim, int code, const char *want) {
    Ty__PipelineSpec *s = NULL;
    char *err = NULL;
    CHECK_EQ_INT(ty_dag_load_string_lim(y, strlen(y), "p.yaml", lim, &s, &err), code);
    CHECK(s == NULL);
    CHECK_CONTAINS(err, want);
    free(err);
}

/* n tasks, each depending on the one before; the loader must take them in
 * (a graph check that was quadratic took 3.5 s for 20,000). */
static void big_chain(unsigned n) {
    ty_buf_t y = {0};
    ty_buf_printf(&y, "name: chain\ntasks:\n");
    for (unsigned i = 0; i < n; i++) {
        ty_buf_printf(&y, "  - name: t%u\n    command: [\"true\"]\n", i);
        if (i)
            ty_buf_printf(&y, "    depends_on: [t%u]\n", i - 1);
    }
    Ty__PipelineSpec *s = NULL;
    char *err = NULL;
    CHECK_EQ_INT(ty_dag_load_string(y.data, y.len, "big.yaml", &s, &err), 0);
    if (s) {
        CHECK_EQ_INT(s->n_tasks, n);
        CHECK_STR(s->tasks[n - 1]->depends_on[0], "t19998");
    }
    free(err);
    ty_dag_free(&s);
    ty_buf_free(&y);
}

/* Mutations of a valid file (bytes flipped, cut, repeated) must load or fail
 * cleanly; the debug build runs this under ASan and LeakSanitizer. */
static void fuzz(const char *base, unsigned rounds) {
    uint64_t seed = 42;
    size_t blen = strlen(base);
    unsigned ok = 0, failed = 0;
    const char *alphabet = "-:[]{}&*!|>'\"#,? \n\tab0.";
    for (unsigned r = 0; r < rounds; r++) {
        char *y = ty_xmalloc(blen * 2 + 1);
        memcpy(y, base, blen + 1);
        size_t len = blen;
        unsigned edits = 1 + (unsigned)(ty_splitmix64(&seed) % 4);
        for (unsigned e = 0; e < edits && len > 0; e++) {
            size_t at = (size_t)(ty_splitmix64(&seed) % len);
            switch (ty_splitmix64(&seed) % 4) {
            case 0: /* replace a byte */
                y[at] = alphabet[ty_splitmix64(&seed) % strlen(alphabet)];
                break;
            case 1: /* cut the rest */
                len = at;
                break;
            case 2: { /* repeat a span */
                size_t span = (size_t)(ty_splitmix64(&seed) % 24);
                if (at + span > len)
                    span = len - at;
                if (len + span > blen * 2)
                    break;
                memmove(y + at + span, y + at, len - at);
                len += span;
                break;
            }
            default: /* delete a byte */
                memmove(y + at, y + at + 1, len - at - 1);
                len--;
                break;
            }
        }
        y[len] = '\0';
        Ty__PipelineSpec *s = NULL;
        char *err = NULL;
        int rc = ty_dag_load_string(y, len, "fuzz.yaml", &s, &err);
        if (rc == 0) {
            ok++;
            CHECK(s != NULL && err == NULL);
        } else {
            failed++;
            CHECK(s == NULL && err != NULL && strncmp(err, "fuzz.yaml:", 10) == 0);
        }
        ty_dag_free(&s);
        free(err);
        free(y);
    }
    CHECK(ok > 0 && failed > 0); /* both paths were exercised */
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
    /* inputs name an output another task declares; they imply the dependency */
    {
        Ty__PipelineSpec *sp = NULL, *res = NULL;
        char *msg = NULL;
        const char *y = "name: x\ntasks:\n  - name: train\n    command: [t]\n"
                        "    outputs: [m.bin, \"plots/*.png\"]\n"
                        "  - name: eval\n    command: [e, \"{{ inputs.model }}\"]\n"
                        "    inputs: {model: train/m.bin, loss: train/plots/loss.png}\n"
                        "    env: {PLOT: \"{{inputs.loss}}\"}\n";
        CHECK_EQ_INT(load(y, &sp, &msg), 0);
        CHECK(sp && sp->tasks[1]->n_depends_on == 1 &&
              strcmp(sp->tasks[1]->depends_on[0], "train") == 0);
        Ty__KV **params = NULL;
        size_t np = 0;
        CHECK_EQ_INT(ty_dag_resolve(sp, NULL, 0, &res, &params, &np, &msg), 0);
        CHECK_STR(res->tasks[1]->argv[1], "inputs/model/m.bin");
        CHECK_STR(res->tasks[1]->env[0]->value, "inputs/loss/loss.png");
        ty_dag_free(&res);
        ty_dag_kvs_free(params, np);
        ty_dag_free(&sp);
    }
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    outputs: [m]\n"
               "  - name: b\n    command: [t]\n    inputs: {m: a/other}\n",
               TY_EINVAL, "p.yaml:6: task 'b': input 'm': task 'a' declares no output 'other'");
    expect_err("name: x\ntasks:\n  - name: b\n    command: [t]\n    inputs: {m: zz/m}\n", TY_EINVAL,
               "input 'm' names unknown task 'zz'");
    expect_err("name: x\ntasks:\n  - name: b\n    command: [t]\n    outputs: [m]\n"
               "    inputs: {m: b/m}\n",
               TY_EINVAL, "input 'm' names the task itself");
    expect_err("name: x\ntasks:\n  - name: b\n    command: [t]\n    inputs: {m: nothing}\n",
               TY_EINVAL, "input 'm' must name TASK/OUTPUT");
    expect_err("name: x\ntasks:\n  - name: b\n    command: [t, \"{{ inputs.nope }}\"]\n", TY_EINVAL,
               "task 'b' uses undefined input 'nope'");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    outputs: [\"p/*\"]\n"
               "  - name: b\n    command: [t]\n    inputs: {m: \"a/p/*\"}\n",
               TY_EINVAL, "task 'a' declares no output 'p/*'");
    /* empty strings (a param's default, an env value, an argument) resolve */
    {
        Ty__PipelineSpec *sp = NULL, *res = NULL;
        char *msg = NULL;
        const char *y = "name: x\nparams: {m: \"\"}\ntasks:\n"
                        "  - {name: a, command: [t, \"\", \"{{ params.m }}\"], env: {E: \"\"}}\n";
        CHECK_EQ_INT(load(y, &sp, &msg), 0);
        Ty__PipelineSpec *again = NULL; /* as the master has it: through the wire */
        size_t len = ty__pipeline_spec__get_packed_size(sp);
        uint8_t *buf = malloc(len ? len : 1);
        ty__pipeline_spec__pack(sp, buf);
        again = ty__pipeline_spec__unpack(NULL, len, buf);
        free(buf);
        Ty__KV **params = NULL;
        size_t np = 0;
        CHECK_EQ_INT(ty_dag_resolve(again, NULL, 0, &res, &params, &np, &msg), 0);
        CHECK_STR(res->tasks[0]->argv[1], "");
        CHECK_STR(res->tasks[0]->argv[2], "");
        CHECK_STR(res->tasks[0]->env[0]->value, "");
        CHECK_STR(res->params[0]->value, "");
        ty_dag_free(&res);
        ty_dag_kvs_free(params, np);
        ty_dag_free(&again);
        ty_dag_free(&sp);
    }
    /* branches: exit codes, conditions naming declared upstream metrics
     * (which imply the dependency), the pipeline's schedule: key */
    {
        Ty__PipelineSpec *sp = NULL;
        char *msg = NULL;
        const char *y = "name: x\ntasks:\n  - name: drift\n    command: [t]\n"
                        "    metrics: [psi_max, ks_p]\n    skip_exit_codes: [3]\n"
                        "    fail_exit_codes: [2, 4]\n"
                        "  - name: train\n    command: [t]\n"
                        "    when: \"drift.psi_max > 0.2 or drift.ks_p < 0.01\"\n";
        CHECK_EQ_INT(load(y, &sp, &msg), 0);
        CHECK(sp && sp->tasks[0]->n_skip_exit_codes == 1 && sp->tasks[0]->skip_exit_codes[0] == 3);
        CHECK(sp && sp->tasks[0]->n_fail_exit_codes == 2 && sp->tasks[0]->fail_exit_codes[1] == 4);
        CHECK(sp && sp->tasks[1]->n_depends_on == 1 &&
              strcmp(sp->tasks[1]->depends_on[0], "drift") == 0);
        CHECK_STR(sp ? sp->tasks[1]->when : NULL, "drift.psi_max > 0.2 or drift.ks_p < 0.01");
        ty_dag_free(&sp);
    }
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    when: \"zz.m > 1\"\n",
               TY_EINVAL, "p.yaml:3: task 'a': when: unknown task 'zz' in zz.m");
    expect_err("name: x\ntasks:\n  - {name: d, command: [t]}\n"
               "  - {name: a, command: [t], when: \"d.psi > 1\"}\n",
               TY_EINVAL, "p.yaml:4: task 'a': when: task 'd' declares no metrics");
    expect_err("name: x\ntasks:\n  - {name: d, command: [t], metrics: [psi_max]}\n"
               "  - {name: a, command: [t], when: \"d.psi > 1\"}\n",
               TY_EINVAL, "task 'a': when: task 'd' declares no metric 'psi'");
    expect_err("name: x\ntasks:\n  - {name: a, command: [t], when: \"d.psi >\"}\n", TY_EINVAL,
               "p.yaml:3: when: condition 'd.psi >': unexpected end at column 8");
    expect_err("name: x\ntasks:\n  - {name: a, command: [t], skip_exit_codes: [0]}\n", TY_EINVAL,
               "p.yaml:3: skip_exit_codes must be an integer in 1..255, got '0'");
    expect_err("name: x\ntasks:\n  - {name: a, command: [t], fail_exit_codes: 2}\n", TY_EINVAL,
               "fail_exit_codes must be a list of exit codes");
    expect_err("name: x\ntasks:\n  - {name: a, command: [t], skip_exit_codes: [3], "
               "fail_exit_codes: [3]}\n",
               TY_EINVAL, "exit code 3 is in both skip_exit_codes and fail_exit_codes");
    expect_err("name: x\nschedule: \"0 0 31 2 *\"\ntasks:\n  - {name: a, command: [t]}\n",
               TY_EINVAL, "p.yaml:2: schedule: cron expression '0 0 31 2 *' never fires");
    expect_err("name: x\nschedule: {cron: \"@daily\", tz: Nowhere/City}\n"
               "tasks:\n  - {name: a, command: [t]}\n",
               TY_EINVAL, "schedule.tz: unknown time zone 'Nowhere/City'");
    expect_err("name: x\nschedule: {tz: UTC}\ntasks:\n  - {name: a, command: [t]}\n", TY_EINVAL,
               "schedule needs cron");
    /* cache: a task's own, or the pipeline's default */
    {
        Ty__PipelineSpec *sp = NULL;
        char *msg = NULL;
        const char *y = "name: x\ntasks:\n  - {name: a, command: [t]}\n"
                        "  - {name: b, command: [t], cache: false}\ncache: true\n";
        CHECK_EQ_INT(load(y, &sp, &msg), 0);
        CHECK(sp && sp->tasks[0]->cache && !sp->tasks[1]->cache);
        ty_dag_free(&sp);
    }
    expect_err("name: x\ntasks:\n  - {name: a, command: [t], cache: maybe}\n", TY_EINVAL,
               "p.yaml:3: cache must be true or false, got 'maybe'");
    /* outputs stay inside the attempt directory, each named once */
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    outputs:\n      - ok.bin\n"
               "      - ../escape\n",
               TY_EINVAL, "p.yaml:7: output '../escape' has a . or .. component");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    outputs: [/etc/passwd]\n",
               TY_EINVAL, "p.yaml:5: output '/etc/passwd' is absolute");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    outputs: [m, m]\n", TY_EINVAL,
               "output 'm' is declared twice");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    outputs: m\n", TY_EINVAL,
               "outputs must be a list");
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

    /* names: never "..", never a leading punctuation character */
    const char *badnames[] = {"..", "...", ".a", "-a", "a..b", "_x"};
    for (size_t i = 0; i < sizeof badnames / sizeof *badnames; i++) {
        char y[160];
        snprintf(y, sizeof y, "name: x\ntasks:\n  - name: '%s'\n    command: [t]\n", badnames[i]);
        expect_err(y, TY_EINVAL, "p.yaml:3: task name");
        snprintf(y, sizeof y, "name: '%s'\ntasks:\n  - name: a\n    command: [t]\n", badnames[i]);
        expect_err(y, TY_EINVAL, "p.yaml:1: pipeline name");
    }
    CHECK(ty_dag_valid_name("train.v2-final_3", 0));
    CHECK(ty_dag_valid_name("Train.A", 1));
    CHECK(!ty_dag_valid_name("Train", 0));

    /* duplicate keys, in every kind of mapping, with both lines */
    expect_err("name: x\nname: y\ntasks:\n  - name: a\n    command: [t]\n", TY_EINVAL,
               "p.yaml:2: duplicate key 'name' in pipeline (first at line 1)");
    expect_err("name: x\ntasks:\n  - name: a\n    name: b\n    command: [t]\n", TY_EINVAL,
               "p.yaml:4: duplicate key 'name' in task (first at line 3)");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    command: u\n", TY_EINVAL,
               "p.yaml:5: duplicate key 'command' in task");
    expect_err("name: x\nparams: {a: 1, b: 2, a: 3}\ntasks:\n  - name: a\n    command: [t]\n",
               TY_EINVAL, "p.yaml:2: duplicate key 'a' in params");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    env: {X: 1, X: 2}\n", TY_EINVAL,
               "duplicate key 'X' in env");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n"
               "    resources: {cpus: 1, cpus: 2}\n",
               TY_EINVAL, "duplicate key 'cpus' in resources");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n"
               "    resources: {labels: {z: a, z: b}}\n",
               TY_EINVAL, "duplicate key 'z' in resources.labels");
    expect_err("name: x\ntasks:\n  - name: a\n    command: [t]\n    [k]: v\n", TY_EINVAL,
               "p.yaml:5: task: keys must be scalars");

    /* limits, each named in its message */
    ty_dag_limits_t lim = TY_DAG_LIMITS_DEFAULT;
    const char *ok2 = "name: x\ntasks:\n  - name: a\n    command: [t]\n  - name: b\n"
                      "    command: [t]\n";
    lim.max_bytes = 20;
    expect_lim(ok2, &lim, TY_ETOOBIG,
               "p.yaml:1: 73 bytes, more than 20 (limit max-pipeline-bytes)");
    lim = (ty_dag_limits_t)TY_DAG_LIMITS_DEFAULT;
    lim.max_tasks = 1;
    expect_lim(ok2, &lim, TY_ETOOBIG, "p.yaml:3: 2 tasks, more than 1 (limit max-pipeline-tasks)");
    lim = (ty_dag_limits_t)TY_DAG_LIMITS_DEFAULT;
    lim.max_keys = 2;
    expect_lim("name: x\nparams: {a: 1, b: 2, c: 3}\ntasks:\n  - name: a\n    command: [t]\n", &lim,
               TY_ETOOBIG, "p.yaml:2: mapping has more than 2 keys (limit max-mapping-keys)");
    lim = (ty_dag_limits_t)TY_DAG_LIMITS_DEFAULT;
    {
        /* 200 KB of nesting: refused at the limit, without reading it all */
        size_t depth = 100000;
        char *deep = ty_xmalloc(2 * depth + 64);
        size_t n = (size_t)sprintf(deep, "name: x\ntasks: ");
        for (size_t i = 0; i < depth; i++)
            deep[n++] = '[';
        for (size_t i = 0; i < depth; i++)
            deep[n++] = ']';
        deep[n] = '\0';
        expect_lim(deep, NULL, TY_ETOOBIG, "p.yaml:2: nesting deeper than 32 levels");
        free(deep);
    }
    /* a billion laughs: each level doubles what aliases expand to */
    {
        ty_buf_t y = {0};
        ty_buf_printf(&y, "name: x\nl0: &l0 [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n");
        for (int i = 1; i < 30; i++)
            ty_buf_printf(&y, "l%d: &l%d [*l%d, *l%d]\n", i, i, i - 1, i - 1);
        expect_lim(y.data, NULL, TY_ETOOBIG,
                   "aliases expand the pipeline by more than 4194304 bytes");
        ty_buf_free(&y);
    }
    /* aliases within the limits still work */
    {
        const char *y = "name: x\ncommon: &env {A: '1'}\ntasks:\n  - name: a\n"
                        "    command: [t]\n    env: *env\n";
        Ty__PipelineSpec *ps = NULL;
        char *err2 = NULL;
        CHECK_EQ_INT(ty_dag_load_string(y, strlen(y), "p.yaml", &ps, &err2), TY_EINVAL);
        CHECK_CONTAINS(err2, "unknown key 'common'"); /* no free-form keys at the top */
        free(err2);
        y = "name: x\ntasks:\n  - name: a\n    command: [t]\n    env: &env {A: '1'}\n"
            "  - name: b\n    command: [t]\n    env: *env\n";
        err2 = NULL;
        CHECK_EQ_INT(ty_dag_load_string(y, strlen(y), "p.yaml", &ps, &err2), 0);
        if (ps)
            CHECK_STR(ps->tasks[1]->env[0]->value, "1");
        ty_dag_free(&ps);
        free(err2);
    }
    big_chain(20000);
    fuzz(diamond, 3000);

    char *missing = NULL;
    char *r = ty_dag_render("a {{ other }} b", NULL, 0, &missing);
    CHECK_STR(r, "a {{ other }} b");
    CHECK(missing == NULL);
    free(r);
    TEST_DONE();
}
