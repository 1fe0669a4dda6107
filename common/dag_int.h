/* Shared between the pipeline loader (dag_load.c) and the rest of the
 * pipeline model (dag.c); not for other modules. */
#ifndef TY_COMMON_DAG_INT_H
#define TY_COMMON_DAG_INT_H

#include "common/dag.h"
#include "trainyard.pb-c.h"

#include "common/util.h"

#include <stddef.h>
#include <yaml.h>

Ty__KV *ty_dag_kv_new(const char *k, const char *v);

/* Params indexed by key for templates; borrows the KVs. */
typedef struct ty_dag_params ty_dag_params_t;
ty_dag_params_t *ty_dag_params_index(Ty__KV *const *params, size_t n);
void ty_dag_params_free(ty_dag_params_t *ix);
/* mode: a ty_tmpl_mode_t (common/tmpl.h) */
char *ty_dag_render_ix(const char *tmpl, int mode, const ty_dag_params_t *params, char **missing);

/* The YAML events of yaml checked against lim (depth, keys per mapping, at
 * most 256 anchors, what aliases add at most max_bytes): 0, or TY_ETOOBIG
 * with the line and a heap message naming the limit. */
int ty_dag_scan(const char *yaml, size_t len, const ty_dag_limits_t *lim, unsigned long *err_line,
                char **err);

/* The loader's state (dag_load.c), shared with the graph checks (dag_graph.c). */
typedef struct {
    yaml_document_t *doc;
    const char *file;
    const ty_dag_limits_t *lim;
    ty_buf_t err;
    int nerr;
    int toobig; /* a limit was hit: TY_ETOOBIG, not TY_EINVAL */
} ty_dag_ctx_t;

/* An error at n's line ("FILE:LINE: ..."), at most 20 kept. */
void ty_dag_err(ty_dag_ctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
yaml_node_t *ty_dag_node(ty_dag_ctx_t *c, int idx);

typedef struct {
    const char *s;
    size_t i;
} ty_sorted_t;
int ty_dag_sorted_cmp(const void *a, const void *b); /* by s, then i */

void ty_dag_validate_graph(ty_dag_ctx_t *c, Ty__PipelineSpec *spec, yaml_node_t *tasks);

#endif
