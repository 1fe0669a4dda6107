/* The pipeline's graph, checked once every task is parsed: unique names,
 * dependencies that exist, templates that name params and inputs, inputs
 * that name an output their task declares (and imply the dependency),
 * conditions (`when:`) that name upstream metrics, and no cycle. */
#include "common/dag_int.h"

#include "common/cond.h"
#include "common/tmpl.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- the graph: names, dependencies, templates, cycles ---- */

typedef struct {
    ty_sorted_t *by_name; /* sorted by name, then position */
    size_t n;
} ty_names_t;

static int ty_names_find(const ty_names_t *ix, const char *name) {
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ix->by_name[mid].s, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ix->n && strcmp(ix->by_name[lo].s, name) == 0 ? (int)ix->by_name[lo].i : -1;
}

/* Report a template of no known namespace in s, every {{ params.X }} that
 * names no param, and every {{ inputs.K }} that names none of t's inputs. */
static void ty_check_templates(ty_dag_ctx_t *c, yaml_node_t *where, const Ty__TaskSpec *t,
                               const char *s, const ty_dag_params_t *params) {
    char *missing = ty_tmpl_unknown(s);
    if (missing) {
        ty_dag_err(c, where,
                   "task '%s' uses unknown template '%s' (a template names params.NAME, "
                   "inputs.NAME, run.id, task.name or task.attempt)",
                   t->name, missing);
        free(missing);
    }
    char *r = ty_dag_render_ix(s, TY_TMPL_RAW, params, &missing);
    free(r);
    if (missing) {
        ty_dag_err(c, where, "task '%s' uses undefined param '%s'", t->name, missing);
        free(missing);
    }
    r = ty_dag_render_inputs(s, TY_TMPL_RAW, t, &missing);
    free(r);
    if (missing) {
        ty_dag_err(c, where, "task '%s' uses undefined input '%s' (declare it under inputs:)",
                   t->name, missing);
        free(missing);
    }
}

/* inputs: KEY: TASK/OUTPUT, an output TASK declares; TASK becomes a
 * dependency when it is not one already. */
static void ty_check_inputs(ty_dag_ctx_t *c, yaml_node_t *tn, Ty__PipelineSpec *spec, size_t i,
                            const ty_names_t *ix) {
    Ty__TaskSpec *t = spec->tasks[i];
    for (size_t k = 0; k < t->n_inputs; k++) {
        const Ty__KV *kv = t->inputs[k];
        const char *slash = strchr(kv->value, '/');
        if (!ty_dag_valid_name(kv->key, 0)) {
            ty_dag_err(c, tn, "task '%s': input name '%s' must be [a-z0-9][a-z0-9_.-]*", t->name,
                       kv->key);
            continue;
        }
        if (!slash || !slash[1]) {
            ty_dag_err(c, tn, "task '%s': input '%s' must name TASK/OUTPUT, got '%s'", t->name,
                       kv->key, kv->value);
            continue;
        }
        char *task = ty_xstrndup(kv->value, (size_t)(slash - kv->value));
        int j = ty_names_find(ix, task);
        if (j < 0)
            ty_dag_err(c, tn, "task '%s': input '%s' names unknown task '%s'", t->name, kv->key,
                       task);
        else if ((size_t)j == i)
            ty_dag_err(c, tn, "task '%s': input '%s' names the task itself", t->name, kv->key);
        else if (!ty_dag_declares_output(spec->tasks[j], slash + 1))
            ty_dag_err(c, tn, "task '%s': input '%s': task '%s' declares no output '%s'", t->name,
                       kv->key, task, slash + 1);
        else {
            size_t d = 0;
            while (d < t->n_depends_on && strcmp(t->depends_on[d], task) != 0)
                d++;
            if (d == t->n_depends_on) { /* an input implies the dependency */
                t->depends_on =
                    ty_xrealloc(t->depends_on, (t->n_depends_on + 1) * sizeof *t->depends_on);
                t->depends_on[t->n_depends_on++] = task;
                task = NULL;
            }
        }
        free(task);
    }
}

/* Adds dep to t's dependencies unless it is one already (takes dep). */
static void ty_add_dep(Ty__TaskSpec *t, char *dep) {
    for (size_t d = 0; d < t->n_depends_on; d++)
        if (strcmp(t->depends_on[d], dep) == 0) {
            free(dep);
            return;
        }
    t->depends_on = ty_xrealloc(t->depends_on, (t->n_depends_on + 1) * sizeof *t->depends_on);
    t->depends_on[t->n_depends_on++] = dep;
}

/* when: each TASK.METRIC names another task and a metric it declares
 * under metrics:; TASK becomes a dependency.  An exit code may not be
 * both skipped and failed. */
static void ty_check_branches(ty_dag_ctx_t *c, yaml_node_t *tn, Ty__PipelineSpec *spec, size_t i,
                              const ty_names_t *ix) {
    Ty__TaskSpec *t = spec->tasks[i];
    for (size_t a = 0; a < t->n_skip_exit_codes; a++)
        for (size_t b = 0; b < t->n_fail_exit_codes; b++)
            if (t->skip_exit_codes[a] == t->fail_exit_codes[b])
                ty_dag_err(c, tn,
                           "task '%s': exit code %d is in both skip_exit_codes and "
                           "fail_exit_codes",
                           t->name, t->skip_exit_codes[a]);
    if (!t->when || !*t->when)
        return;
    ty_cond_t *cond = NULL;
    char *why = NULL;
    if (ty_cond_parse(t->when, &cond, &why) != 0) {
        ty_dag_err(c, tn, "task '%s': when: %s", t->name, why);
        free(why);
        return;
    }
    const char *const *names;
    size_t n = ty_cond_names(cond, &names);
    for (size_t k = 0; k < n; k++) {
        const char *dot = strchr(names[k], '.');
        char *task = ty_xstrndup(names[k], (size_t)(dot - names[k]));
        const char *metric = dot + 1;
        int j = ty_names_find(ix, task);
        const Ty__TaskSpec *u = j >= 0 ? spec->tasks[j] : NULL;
        size_t m = 0;
        while (u && m < u->n_metrics && strcmp(u->metrics[m], metric) != 0)
            m++;
        if (!u)
            ty_dag_err(c, tn, "task '%s': when: unknown task '%s' in %s", t->name, task, names[k]);
        else if ((size_t)j == i)
            ty_dag_err(c, tn, "task '%s': when: %s names the task itself", t->name, names[k]);
        else if (u->n_metrics == 0)
            ty_dag_err(c, tn,
                       "task '%s': when: task '%s' declares no metrics (list what it "
                       "reports under metrics:)",
                       t->name, task);
        else if (m == u->n_metrics)
            ty_dag_err(c, tn, "task '%s': when: task '%s' declares no metric '%s'", t->name, task,
                       metric);
        else {
            ty_add_dep(t, task); /* a condition implies the dependency */
            task = NULL;
        }
        free(task);
    }
    ty_cond_destroy(&cond);
}

static void ty_report_cycle(ty_dag_ctx_t *c, Ty__PipelineSpec *spec, yaml_node_t *tasks,
                            const int *indeg, const ty_names_t *ix) {
    size_t n = spec->n_tasks;
    /* Walk dependencies among the leftovers until a task repeats. */
    int *seen = ty_xcalloc(n, sizeof *seen);
    int cur = -1;
    for (size_t i = 0; i < n && cur < 0; i++)
        if (indeg[i] > 0)
            cur = (int)i;
    int step = 1;
    while (!seen[cur]) {
        seen[cur] = step++;
        Ty__TaskSpec *t = spec->tasks[cur];
        for (size_t d = 0; d < t->n_depends_on; d++) {
            int j = ty_names_find(ix, t->depends_on[d]);
            if (indeg[j] > 0) {
                cur = j;
                break;
            }
        }
    }
    ty_buf_t path = {0};
    int start = cur;
    do {
        ty_buf_printf(&path, "%s -> ", spec->tasks[cur]->name);
        Ty__TaskSpec *t = spec->tasks[cur];
        for (size_t d = 0; d < t->n_depends_on; d++) {
            int j = ty_names_find(ix, t->depends_on[d]);
            if (indeg[j] > 0 && seen[j]) {
                cur = j;
                break;
            }
        }
    } while (cur != start);
    ty_dag_err(c, ty_dag_node(c, tasks->data.sequence.items.start[start]),
               "dependency cycle: %s%s (each depends on the next)", path.data,
               spec->tasks[start]->name);
    ty_buf_free(&path);
    free(seen);
}

void ty_dag_validate_graph(ty_dag_ctx_t *c, Ty__PipelineSpec *spec, yaml_node_t *tasks) {
    size_t n = spec->n_tasks;
    ty_names_t ix = {ty_xcalloc(n, sizeof(ty_sorted_t)), n};
    for (size_t i = 0; i < n; i++)
        ix.by_name[i] = (ty_sorted_t){spec->tasks[i]->name, i};
    qsort(ix.by_name, n, sizeof *ix.by_name, ty_dag_sorted_cmp);
    for (size_t j = 1; j < n; j++)
        if (strcmp(ix.by_name[j].s, ix.by_name[j - 1].s) == 0) {
            size_t first = j - 1;
            while (first > 0 && strcmp(ix.by_name[first - 1].s, ix.by_name[j].s) == 0)
                first--;
            Ty__TaskSpec *t = spec->tasks[ix.by_name[j].i];
            ty_dag_err(c, ty_dag_node(c, tasks->data.sequence.items.start[ix.by_name[j].i]),
                       "duplicate task name '%s' (first defined at line %u)", t->name,
                       spec->tasks[ix.by_name[first].i]->line);
        }
    ty_dag_params_t *params = ty_dag_params_index(spec->params, spec->n_params);
    size_t nedges = 0;
    for (size_t i = 0; i < n; i++) {
        Ty__TaskSpec *t = spec->tasks[i];
        yaml_node_t *tn = ty_dag_node(c, tasks->data.sequence.items.start[i]);
        ty_check_inputs(c, tn, spec, i, &ix);
        ty_check_branches(c, tn, spec, i, &ix);
        for (size_t d = 0; d < t->n_depends_on; d++) {
            if (strcmp(t->depends_on[d], t->name) == 0)
                ty_dag_err(c, tn, "task '%s' depends on itself", t->name);
            else if (ty_names_find(&ix, t->depends_on[d]) < 0)
                ty_dag_err(c, tn, "task '%s' depends on unknown task '%s'", t->name,
                           t->depends_on[d]);
        }
        nedges += t->n_depends_on;
        for (size_t a = 0; a < t->n_argv; a++)
            ty_check_templates(c, tn, t, t->argv[a], params);
        if (t->shell && *t->shell)
            ty_check_templates(c, tn, t, t->shell, params);
        for (size_t e = 0; e < t->n_env; e++)
            ty_check_templates(c, tn, t, t->env[e]->value, params);
    }
    ty_dag_params_free(params);
    if (c->nerr) {
        free(ix.by_name);
        return;
    }
    /* Kahn's algorithm over adjacency lists (dependents of each task);
     * whatever is left sits on or behind a cycle. */
    size_t *first = ty_xcalloc(n + 1, sizeof *first), *fill = ty_xcalloc(n + 1, sizeof *fill);
    int *adj = ty_xcalloc(nedges ? nedges : 1, sizeof *adj);
    int *indeg = ty_xcalloc(n ? n : 1, sizeof *indeg),
        *queue = ty_xcalloc(n ? n : 1, sizeof *queue);
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < spec->tasks[i]->n_depends_on; d++)
            first[ty_names_find(&ix, spec->tasks[i]->depends_on[d]) + 1]++;
    for (size_t i = 0; i < n; i++)
        first[i + 1] += first[i];
    memcpy(fill, first, (n + 1) * sizeof *fill);
    for (size_t i = 0; i < n; i++) {
        indeg[i] = (int)spec->tasks[i]->n_depends_on;
        for (size_t d = 0; d < spec->tasks[i]->n_depends_on; d++)
            adj[fill[ty_names_find(&ix, spec->tasks[i]->depends_on[d])]++] = (int)i;
    }
    size_t qh = 0, qt = 0;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            queue[qt++] = (int)i;
    while (qh < qt) {
        int done = queue[qh++];
        for (size_t e = first[done]; e < first[done + 1]; e++)
            if (--indeg[adj[e]] == 0)
                queue[qt++] = adj[e];
    }
    if (qt < n)
        ty_report_cycle(c, spec, tasks, indeg, &ix);
    free(first);
    free(fill);
    free(adj);
    free(indeg);
    free(queue);
    free(ix.by_name);
}
