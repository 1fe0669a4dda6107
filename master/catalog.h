/* What `trainyard lineage` and `trainyard gc` compute from every run in
 * etcd (read by the request handler with one range): who produced and
 * consumed some content, and which blobs are still referenced.  No I/O. */
#ifndef TY_MASTER_CATALOG_H
#define TY_MASTER_CATALOG_H

#include "master/core/core_int.h"
#include "master/store.h"

typedef struct {
    ty_run_t **runs;
    size_t n;
    zhashx_t *pinned; /* run id -> 1 */
} ty_catalog_t;

/* Decode the records of a range over runs/ and of one over pins/ (either
 * may be empty).  Undecodable records are skipped. */
void ty_catalog_load(ty_catalog_t *cat, const ty_store_kv_t *runs, size_t nruns,
                     const ty_store_kv_t *pins, size_t npins);
void ty_catalog_free(ty_catalog_t *cat);
/* Every output and input whose sha256 starts with prefix, in run order. */
void ty_catalog_lineage(const ty_catalog_t *cat, const char *prefix, Ty__LineageReply *out);
void ty_catalog_lineage_clear(Ty__LineageReply *r);
/* sha256 -> 1 for each output of a run that is unfinished, pinned, or
 * finished at or after cutoff_ms (0: every run). */
zhashx_t *ty_catalog_referenced(const ty_catalog_t *cat, int64_t cutoff_ms);

#endif
