/* The pipeline loader (YAML, the master's limits) and, for what loads,
 * resolving its params into a run's commands. */
#include "common/dag.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Ty__PipelineSpec *spec = NULL;
    char *err = NULL;
    ty_dag_limits_t lim = TY_DAG_LIMITS_DEFAULT;
    if (ty_dag_load_string_lim((const char *)data, size, "fuzz.yaml", &lim, &spec, &err) != 0) {
        free(err);
        return 0;
    }
    Ty__PipelineSpec *resolved = NULL;
    Ty__KV **params = NULL;
    size_t np = 0;
    if (ty_dag_resolve(spec, NULL, 0, &resolved, &params, &np, &err) == 0) {
        ty_dag_free(&resolved);
        ty_dag_kvs_free(params, np);
    }
    free(err);
    ty_dag_free(&spec);
    return 0;
}
