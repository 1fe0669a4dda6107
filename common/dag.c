#include "common/dag.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *const ty_run_names[] = {"pending", "running", "succeeded", "failed",
                                           "cancelled"};
static const char *const ty_task_names[] = {"waiting", "queued",          "running", "succeeded",
                                            "failed",  "upstream_failed", "skipped", "cancelled"};
static const char *const ty_trigger_names[] = {"all_success", "all_done", "one_failed",
                                               "none_failed"};

const char *ty_run_state_name(unsigned s) { return s < TY_RUN_NSTATES ? ty_run_names[s] : "?"; }
const char *ty_task_state_name(unsigned s) { return s < TY_TASK_NSTATES ? ty_task_names[s] : "?"; }
const char *ty_trigger_name(unsigned t) { return t < 4 ? ty_trigger_names[t] : "?"; }
int ty_task_state_terminal(unsigned s) { return s >= TY_TASK_SUCCEEDED && s < TY_TASK_NSTATES; }

/* ---- loader ---- */

typedef struct {
    yaml_document_t *doc;
    const char *file;
    ty_buf_t err;
    int nerr;
} ty_dag_ctx_t;

static void ty_dag_err(ty_dag_ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ty_dag_err(ty_dag_ctx_t *c, const yaml_node_t *n, const char *fmt, ...) {
    if (c->nerr++ >= 20)
        return;
    ty_buf_printf(&c->err, "%s:%lu: ", c->file, n ? (unsigned long)n->start_mark.line + 1 : 1UL);
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    ty_buf_printf(&c->err, "%s\n", s);
    free(s);
}

static yaml_node_t *ty_node(ty_dag_ctx_t *c, int idx) {
    return yaml_document_get_node(c->doc, idx);
}

static const char *ty_scalar(ty_dag_ctx_t *c, yaml_node_t *n, const char *what) {
    if (n->type != YAML_SCALAR_NODE) {
        ty_dag_err(c, n, "%s must be a scalar", what);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* Integer in [lo, hi]; reports an error and returns -1 otherwise. */
static int ty_int_in(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, long long lo, long long hi,
                     long long *out) {
    const char *s = ty_scalar(c, n, what);
    if (!s)
        return -1;
    int64_t v;
    if (ty_parse_i64(s, lo, hi, &v) != 0) {
        ty_dag_err(c, n, "%s must be an integer in %lld..%lld, got '%s'", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int ty_num_in(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, double lo, double hi,
                     int lo_open, double *out) {
    const char *s = ty_scalar(c, n, what);
    if (!s)
        return -1;
    if (ty_parse_f64(s, lo, hi, out) != 0 || (lo_open && *out <= lo)) {
        ty_dag_err(c, n, "%s must be a number %s %g (at most %g), got '%s'", what,
                   lo_open ? ">" : ">=", lo, hi, s);
        return -1;
    }
    return 0;
}

static int ty_valid_name(const char *s, int allow_upper_dot) {
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (islower(ch) || isdigit(ch) || ch == '_' || ch == '-')
            continue;
        if (allow_upper_dot && (isupper(ch) || ch == '.'))
            continue;
        return 0;
    }
    return 1;
}

static Ty__KV *ty_kv_new(const char *k, const char *v) {
    Ty__KV *kv = ty_xmalloc(sizeof *kv);
    ty__kv__init(kv);
    kv->key = ty_xstrdup(k);
    kv->value = ty_xstrdup(v);
    return kv;
}

/* A mapping of scalar -> scalar into a KV array. */
static void ty_parse_kvs(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, Ty__KV ***out,
                         size_t *nout) {
    if (n->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, n, "%s must be a mapping", what);
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ty_node(c, p->key), *v = ty_node(c, p->value);
        const char *ks = ty_scalar(c, k, what), *vs = ty_scalar(c, v, what);
        if (!ks || !vs)
            continue;
        for (size_t i = 0; i < *nout; i++)
            if (strcmp((*out)[i]->key, ks) == 0)
                ty_dag_err(c, k, "duplicate key '%s' in %s", ks, what);
        *out = ty_xrealloc(*out, (*nout + 1) * sizeof **out);
        (*out)[(*nout)++] = ty_kv_new(ks, vs);
    }
}

/* A sequence of scalars (or one scalar when allow_scalar). */
static void ty_parse_strs(ty_dag_ctx_t *c, yaml_node_t *n, const char *what, int allow_scalar,
                          char ***out, size_t *nout) {
    if (n->type == YAML_SCALAR_NODE && allow_scalar) {
        *out = ty_xrealloc(*out, (*nout + 1) * sizeof **out);
        (*out)[(*nout)++] = ty_xstrdup((const char *)n->data.scalar.value);
        return;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        ty_dag_err(c, n, "%s must be a list", what);
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const char *s = ty_scalar(c, ty_node(c, *it), what);
        if (!s)
            continue;
        *out = ty_xrealloc(*out, (*nout + 1) * sizeof **out);
        (*out)[(*nout)++] = ty_xstrdup(s);
    }
}

static void ty_parse_resources(ty_dag_ctx_t *c, yaml_node_t *n, Ty__Resources *r) {
    if (n->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, n, "resources must be a mapping");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ty_node(c, p->key), *v = ty_node(c, p->value);
        const char *key = ty_scalar(c, k, "key");
        long long iv;
        if (!key)
            continue;
        if (strcmp(key, "cpus") == 0) {
            ty_num_in(c, v, "resources.cpus", 0, 4096, 1, &r->cpus);
        } else if (strcmp(key, "mem_mb") == 0) {
            if (ty_int_in(c, v, "resources.mem_mb", 0, 1LL << 40, &iv) == 0)
                r->mem_mb = (uint64_t)iv;
        } else if (strcmp(key, "gpus") == 0) {
            if (ty_int_in(c, v, "resources.gpus", 0, 64, &iv) == 0)
                r->gpus = (uint32_t)iv;
        } else if (strcmp(key, "labels") == 0) {
            ty_parse_kvs(c, v, "resources.labels", &r->labels, &r->n_labels);
        } else {
            ty_dag_err(c, k, "unknown key 'resources.%s' (expected cpus, mem_mb, gpus, labels)",
                       key);
        }
    }
}

static int ty_lookup(const char *const *names, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

static Ty__TaskSpec *ty_parse_task(ty_dag_ctx_t *c, yaml_node_t *n) {
    if (n->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, n, "each task must be a mapping");
        return NULL;
    }
    Ty__TaskSpec *t = ty_xmalloc(sizeof *t);
    ty__task_spec__init(t);
    t->line = (uint32_t)n->start_mark.line + 1;
    t->resources = ty_xmalloc(sizeof *t->resources);
    ty__resources__init(t->resources);
    t->resources->cpus = 1;
    t->np = 1;
    int have_cmd = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ty_node(c, p->key), *v = ty_node(c, p->value);
        const char *key = ty_scalar(c, k, "key");
        long long iv;
        double dv;
        if (!key)
            continue;
        if (strcmp(key, "name") == 0) {
            const char *s = ty_scalar(c, v, "task name");
            if (s && !ty_valid_name(s, 1))
                ty_dag_err(c, v, "task name '%s' must match [A-Za-z0-9_.-]{1,63}", s);
            else if (s)
                t->name = ty_xstrdup(s);
        } else if (strcmp(key, "command") == 0) {
            have_cmd = 1;
            if (v->type == YAML_SCALAR_NODE) {
                t->shell = ty_xstrdup((const char *)v->data.scalar.value);
                if (!*t->shell)
                    ty_dag_err(c, v, "command must not be empty");
            } else {
                ty_parse_strs(c, v, "command", 0, &t->argv, &t->n_argv);
                if (t->n_argv == 0)
                    ty_dag_err(c, v, "command must not be empty");
            }
        } else if (strcmp(key, "env") == 0) {
            ty_parse_kvs(c, v, "env", &t->env, &t->n_env);
        } else if (strcmp(key, "depends_on") == 0) {
            ty_parse_strs(c, v, "depends_on", 1, &t->depends_on, &t->n_depends_on);
        } else if (strcmp(key, "outputs") == 0) {
            ty_parse_strs(c, v, "outputs", 0, &t->outputs, &t->n_outputs);
        } else if (strcmp(key, "kind") == 0) {
            static const char *const kinds[] = {"command", "mpi"};
            const char *s = ty_scalar(c, v, "kind");
            int k2 = s ? ty_lookup(kinds, 2, s) : -1;
            if (s && k2 < 0)
                ty_dag_err(c, v, "kind must be command or mpi, got '%s'", s);
            else if (s)
                t->kind = (uint32_t)k2;
        } else if (strcmp(key, "np") == 0) {
            if (ty_int_in(c, v, "np", 1, 4096, &iv) == 0)
                t->np = (uint32_t)iv;
        } else if (strcmp(key, "resources") == 0) {
            ty_parse_resources(c, v, t->resources);
        } else if (strcmp(key, "retries") == 0) {
            if (ty_int_in(c, v, "retries", 0, 100, &iv) == 0)
                t->retries = (uint32_t)iv;
        } else if (strcmp(key, "retry_backoff_s") == 0) {
            if (ty_num_in(c, v, "retry_backoff_s", 0, 86400, 0, &dv) == 0)
                t->retry_backoff_s = dv;
        } else if (strcmp(key, "timeout_s") == 0) {
            if (ty_num_in(c, v, "timeout_s", 0, 30 * 86400, 1, &dv) == 0)
                t->timeout_s = dv;
        } else if (strcmp(key, "priority") == 0) {
            if (ty_int_in(c, v, "priority", -1000000, 1000000, &iv) == 0)
                t->priority = (int32_t)iv;
        } else if (strcmp(key, "trigger_rule") == 0) {
            const char *s = ty_scalar(c, v, "trigger_rule");
            int r = s ? ty_lookup(ty_trigger_names, 4, s) : -1;
            if (s && r < 0)
                ty_dag_err(c, v,
                           "trigger_rule must be all_success, all_done, one_failed or "
                           "none_failed, got '%s'",
                           s);
            else if (s)
                t->trigger_rule = (uint32_t)r;
        } else {
            ty_dag_err(c, k,
                       "unknown task key '%s' (expected name, command, env, depends_on, kind, "
                       "np, resources, retries, retry_backoff_s, timeout_s, priority, "
                       "trigger_rule, outputs)",
                       key);
        }
    }
    if (!*t->name && !c->nerr)
        ty_dag_err(c, n, "task has no name");
    if (!have_cmd)
        ty_dag_err(c, n, "task '%s' has no command", *t->name ? t->name : "?");
    if (t->np > 1 && t->kind != TY_KIND_MPI)
        ty_dag_err(c, n, "task '%s': np needs kind: mpi", *t->name ? t->name : "?");
    return t;
}

/* Report every {{ params.X }} in s that names no param. */
static void ty_check_templates(ty_dag_ctx_t *c, yaml_node_t *where, const char *task, const char *s,
                               const Ty__PipelineSpec *spec) {
    char *missing = NULL;
    char *r = ty_dag_render(s, spec->params, spec->n_params, &missing);
    free(r);
    if (missing) {
        ty_dag_err(c, where, "task '%s' uses undefined param '%s'", task, missing);
        free(missing);
    }
}

static yaml_node_t *ty_task_node(ty_dag_ctx_t *c, yaml_node_t *tasks, size_t i) {
    return ty_node(c, tasks->data.sequence.items.start[i]);
}

/* Duplicate names, unknown dependencies, templates and cycles. */
static void ty_validate_graph(ty_dag_ctx_t *c, Ty__PipelineSpec *spec, yaml_node_t *tasks) {
    size_t n = spec->n_tasks;
    for (size_t i = 0; i < n; i++) {
        Ty__TaskSpec *t = spec->tasks[i];
        yaml_node_t *tn = ty_task_node(c, tasks, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->tasks[j]->name, t->name) == 0)
                ty_dag_err(c, tn, "duplicate task name '%s' (first defined at line %u)", t->name,
                           spec->tasks[j]->line);
        for (size_t d = 0; d < t->n_depends_on; d++) {
            if (strcmp(t->depends_on[d], t->name) == 0)
                ty_dag_err(c, tn, "task '%s' depends on itself", t->name);
            else if (ty_dag_task_index(spec, t->depends_on[d]) < 0)
                ty_dag_err(c, tn, "task '%s' depends on unknown task '%s'", t->name,
                           t->depends_on[d]);
        }
        for (size_t a = 0; a < t->n_argv; a++)
            ty_check_templates(c, tn, t->name, t->argv[a], spec);
        if (t->shell && *t->shell)
            ty_check_templates(c, tn, t->name, t->shell, spec);
        for (size_t e = 0; e < t->n_env; e++)
            ty_check_templates(c, tn, t->name, t->env[e]->value, spec);
    }
    if (c->nerr)
        return;
    /* Kahn's algorithm; whatever is left sits on or behind a cycle. */
    int *indeg = ty_xcalloc(n, sizeof *indeg), *queue = ty_xcalloc(n, sizeof *queue);
    for (size_t i = 0; i < n; i++)
        indeg[i] = (int)spec->tasks[i]->n_depends_on;
    size_t qh = 0, qt = 0;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            queue[qt++] = (int)i;
    while (qh < qt) {
        const char *done = spec->tasks[queue[qh++]]->name;
        for (size_t i = 0; i < n; i++)
            for (size_t d = 0; d < spec->tasks[i]->n_depends_on; d++)
                if (strcmp(spec->tasks[i]->depends_on[d], done) == 0 && --indeg[i] == 0)
                    queue[qt++] = (int)i;
    }
    if (qt < n) {
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
                int j = ty_dag_task_index(spec, t->depends_on[d]);
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
                int j = ty_dag_task_index(spec, t->depends_on[d]);
                if (indeg[j] > 0 && seen[j]) {
                    cur = j;
                    break;
                }
            }
        } while (cur != start);
        ty_dag_err(c, ty_task_node(c, tasks, (size_t)start),
                   "dependency cycle: %s%s (each depends on the next)", path.data,
                   spec->tasks[start]->name);
        ty_buf_free(&path);
        free(seen);
    }
    free(indeg);
    free(queue);
}

static Ty__PipelineSpec *ty_parse_root(ty_dag_ctx_t *c, yaml_node_t *root) {
    if (!root) {
        ty_dag_err(c, NULL, "empty pipeline file");
        return NULL;
    }
    if (root->type != YAML_MAPPING_NODE) {
        ty_dag_err(c, root, "a pipeline must be a mapping");
        return NULL;
    }
    Ty__PipelineSpec *spec = ty_xmalloc(sizeof *spec);
    ty__pipeline_spec__init(spec);
    yaml_node_t *tasks = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = ty_node(c, p->key), *v = ty_node(c, p->value);
        const char *key = ty_scalar(c, k, "key");
        if (!key)
            continue;
        if (strcmp(key, "name") == 0) {
            const char *s = ty_scalar(c, v, "name");
            if (s && !ty_valid_name(s, 0))
                ty_dag_err(c, v, "pipeline name '%s' must match [a-z0-9_-]{1,63}", s);
            else if (s)
                spec->name = ty_xstrdup(s);
        } else if (strcmp(key, "params") == 0) {
            ty_parse_kvs(c, v, "params", &spec->params, &spec->n_params);
        } else if (strcmp(key, "schedule") == 0) {
            const char *s = ty_scalar(c, v, "schedule");
            if (s)
                spec->schedule = ty_xstrdup(s);
        } else if (strcmp(key, "description") == 0) {
            ty_scalar(c, v, "description");
        } else if (strcmp(key, "tasks") == 0) {
            if (v->type != YAML_SEQUENCE_NODE) {
                ty_dag_err(c, v, "tasks must be a list");
                continue;
            }
            tasks = v;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                Ty__TaskSpec *t = ty_parse_task(c, ty_node(c, *it));
                if (!t) {
                    tasks = NULL; /* positions no longer match */
                    continue;
                }
                spec->tasks = ty_xrealloc(spec->tasks, (spec->n_tasks + 1) * sizeof(void *));
                spec->tasks[spec->n_tasks++] = t;
            }
        } else {
            ty_dag_err(c, k,
                       "unknown key '%s' (expected name, params, schedule, description, tasks)",
                       key);
        }
    }
    if (!*spec->name && !c->nerr)
        ty_dag_err(c, root, "pipeline has no name");
    if (spec->n_tasks == 0 && !c->nerr)
        ty_dag_err(c, root, "pipeline has no tasks");
    if (!c->nerr && tasks)
        ty_validate_graph(c, spec, tasks);
    return spec;
}

int ty_dag_load_string(const char *yaml, size_t len, const char *filename, Ty__PipelineSpec **out,
                       char **errmsg) {
    ty_dag_ctx_t c = {.file = filename ? filename : "<input>"};
    yaml_parser_t parser;
    yaml_document_t doc;
    *out = NULL;
    if (errmsg)
        *errmsg = NULL;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        char *m = ty_xasprintf("%s:%lu: YAML syntax error: %s%s%s\n", c.file,
                               (unsigned long)parser.problem_mark.line + 1,
                               parser.problem ? parser.problem : "invalid document",
                               parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        if (errmsg)
            *errmsg = m;
        else
            free(m);
        return TY_EPARSE;
    }
    c.doc = &doc;
    Ty__PipelineSpec *spec = ty_parse_root(&c, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (c.nerr) {
        ty_dag_free(&spec);
        if (c.nerr > 20)
            ty_buf_printf(&c.err, "%s: %d more errors\n", c.file, c.nerr - 20);
        if (errmsg)
            *errmsg = c.err.data;
        else
            ty_buf_free(&c.err);
        return TY_EINVAL;
    }
    *out = spec;
    return 0;
}

int ty_dag_load_file(const char *path, Ty__PipelineSpec **out, char **errmsg) {
    ty_buf_t b = {0};
    *out = NULL;
    int rc = ty_read_file(path, &b);
    if (rc != 0) {
        if (errmsg)
            *errmsg = ty_xasprintf("%s: %s\n", path, strerror(-rc));
        ty_buf_free(&b);
        return TY_EIO;
    }
    rc = ty_dag_load_string(b.data, b.len, path, out, errmsg);
    ty_buf_free(&b);
    return rc;
}

void ty_dag_free(Ty__PipelineSpec **spec) {
    if (spec && *spec) {
        /* Everything was allocated with malloc, as protobuf-c's unpacker does. */
        ty__pipeline_spec__free_unpacked(*spec, NULL);
        *spec = NULL;
    }
}

void ty_dag_kvs_free(Ty__KV **kvs, size_t n) {
    for (size_t i = 0; i < n; i++)
        ty__kv__free_unpacked(kvs[i], NULL);
    free(kvs);
}

int ty_dag_task_index(const Ty__PipelineSpec *spec, const char *name) {
    for (size_t i = 0; i < spec->n_tasks; i++)
        if (strcmp(spec->tasks[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static const char *ty_param_get(Ty__KV *const *params, size_t n, const char *name, size_t nlen) {
    for (size_t i = 0; i < n; i++)
        if (strlen(params[i]->key) == nlen && strncmp(params[i]->key, name, nlen) == 0)
            return params[i]->value;
    return NULL;
}

char *ty_dag_render(const char *tmpl, Ty__KV *const *params, size_t n, char **missing) {
    ty_buf_t out = {0};
    *missing = NULL;
    const char *p = tmpl;
    ty_buf_append(&out, "", 0);
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            ty_buf_append(&out, p, strlen(p));
            break;
        }
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            ty_buf_append(&out, p, strlen(p));
            break;
        }
        const char *a = open + 2, *b = close;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        ty_buf_append(&out, p, (size_t)(open - p));
        if ((size_t)(b - a) > 7 && strncmp(a, "params.", 7) == 0) {
            const char *v = ty_param_get(params, n, a + 7, (size_t)(b - a - 7));
            if (!v) {
                if (!*missing)
                    *missing = ty_xstrndup(a + 7, (size_t)(b - a - 7));
            } else {
                ty_buf_append(&out, v, strlen(v));
            }
        } else {
            ty_buf_append(&out, open, (size_t)(close + 2 - open)); /* not ours: keep */
        }
        p = close + 2;
    }
    return out.data;
}

static void ty_render_in_place(char **s, Ty__KV *const *params, size_t n) {
    char *missing = NULL;
    char *r = ty_dag_render(*s, params, n, &missing);
    free(missing); /* validated at load time */
    free(*s);
    *s = r;
}

int ty_dag_resolve(const Ty__PipelineSpec *spec, Ty__KV *const *overrides, size_t n,
                   Ty__PipelineSpec **out, Ty__KV ***params_out, size_t *nparams_out,
                   char **errmsg) {
    *errmsg = NULL;
    for (size_t i = 0; i < n; i++)
        if (!ty_param_get(spec->params, spec->n_params, overrides[i]->key,
                          strlen(overrides[i]->key))) {
            ty_buf_t b = {0};
            ty_buf_printf(&b, "unknown param '%s' (pipeline '%s' defines:", overrides[i]->key,
                          spec->name);
            for (size_t j = 0; j < spec->n_params; j++)
                ty_buf_printf(&b, " %s", spec->params[j]->key);
            ty_buf_printf(&b, "%s)", spec->n_params ? "" : " none");
            *errmsg = b.data;
            return TY_EINVAL;
        }
    size_t np = spec->n_params;
    Ty__KV **params = ty_xcalloc(np, sizeof *params);
    for (size_t i = 0; i < np; i++) {
        const char *v = spec->params[i]->value;
        for (size_t j = 0; j < n; j++)
            if (strcmp(overrides[j]->key, spec->params[i]->key) == 0)
                v = overrides[j]->value; /* last one wins */
        params[i] = ty_kv_new(spec->params[i]->key, v);
    }
    /* Deep copy through the wire format. */
    size_t len = ty__pipeline_spec__get_packed_size(spec);
    uint8_t *buf = ty_xmalloc(len);
    ty__pipeline_spec__pack(spec, buf);
    Ty__PipelineSpec *copy = ty__pipeline_spec__unpack(NULL, len, buf);
    free(buf);
    if (!copy)
        abort();
    for (size_t t = 0; t < copy->n_tasks; t++) {
        Ty__TaskSpec *ts = copy->tasks[t];
        for (size_t a = 0; a < ts->n_argv; a++)
            ty_render_in_place(&ts->argv[a], params, np);
        if (ts->shell && *ts->shell)
            ty_render_in_place(&ts->shell, params, np);
        for (size_t e = 0; e < ts->n_env; e++)
            ty_render_in_place(&ts->env[e]->value, params, np);
    }
    for (size_t i = 0; i < copy->n_params; i++) {
        free(copy->params[i]->value);
        copy->params[i]->value = ty_xstrdup(params[i]->value);
    }
    *out = copy;
    *params_out = params;
    *nparams_out = np;
    return 0;
}
