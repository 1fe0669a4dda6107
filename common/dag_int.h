/* Shared between the pipeline loader (dag_load.c) and the rest of the
 * pipeline model (dag.c); not for other modules. */
#ifndef TY_COMMON_DAG_INT_H
#define TY_COMMON_DAG_INT_H

#include "trainyard.pb-c.h"

#include <stddef.h>

Ty__KV *ty_dag_kv_new(const char *k, const char *v);

/* Params indexed by key for templates; borrows the KVs. */
typedef struct ty_dag_params ty_dag_params_t;
ty_dag_params_t *ty_dag_params_index(Ty__KV *const *params, size_t n);
void ty_dag_params_free(ty_dag_params_t *ix);
char *ty_dag_render_ix(const char *tmpl, const ty_dag_params_t *params, char **missing);

#endif
