/* Shared between the pipeline loader (dag_load.c) and the rest of the
 * pipeline model (dag.c); not for other modules. */
#ifndef TY_COMMON_DAG_INT_H
#define TY_COMMON_DAG_INT_H

#include "common/dag.h"
#include "trainyard.pb-c.h"

#include <stddef.h>

Ty__KV *ty_dag_kv_new(const char *k, const char *v);

/* Params indexed by key for templates; borrows the KVs. */
typedef struct ty_dag_params ty_dag_params_t;
ty_dag_params_t *ty_dag_params_index(Ty__KV *const *params, size_t n);
void ty_dag_params_free(ty_dag_params_t *ix);
char *ty_dag_render_ix(const char *tmpl, const ty_dag_params_t *params, char **missing);

/* The YAML events of yaml checked against lim (depth, keys per mapping, at
 * most 256 anchors, what aliases add at most max_bytes): 0, or TY_ETOOBIG
 * with the line and a heap message naming the limit. */
int ty_dag_scan(const char *yaml, size_t len, const ty_dag_limits_t *lim, unsigned long *err_line,
                char **err);

#endif
