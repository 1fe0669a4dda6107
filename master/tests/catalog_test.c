/* lineage and gc's referenced set, from the records a core wrote: a run
 * that produced and consumed some content, another that carried it over
 * (a retry), pins, and the cut-off of --keep-days. */
#include "master/catalog.h"
#include "master/tests/core_harness.h"

/* Every record of h's store under prefix, in key order (as a range reads). */
static ty_store_kv_t *h_range(h_t *h, const char *prefix, size_t *n, zlistx_t **keys) {
    *keys = zhashx_keys(h->kv);
    zlistx_set_comparator(*keys, (zlistx_comparator_fn *)strcmp);
    zlistx_sort(*keys);
    ty_store_kv_t *kvs = ty_xcalloc(zlistx_size(*keys) + 1, sizeof *kvs);
    *n = 0;
    for (const char *k = zlistx_first(*keys); k; k = zlistx_next(*keys)) {
        if (strncmp(k, prefix, strlen(prefix)) != 0)
            continue;
        zchunk_t *ch = zhashx_lookup(h->kv, k);
        kvs[(*n)++] = (ty_store_kv_t){k, zchunk_data(ch), zchunk_size(ch)};
    }
    return kvs;
}

int main(void) {
    h_t h;
    h_init(&h, 3);
    h_register(&h, "w1", 8, 0, NULL);
    const char *y = "name: lin\ntasks:\n  - {name: make, command: [t], outputs: [m.bin]}\n"
                    "  - name: use\n    command: [t]\n    inputs: {m: make/m.bin}\n";
    ty_run_t *r1 = h_submit(&h, y);
    h_flush(&h);
    const char *m[] = {"m.bin"};
    h_finish_outputs(&h, T(r1, "make"), m, 1);
    h_flush(&h);
    h_finish(&h, T(r1, "use"), 1); /* fails: a retry carries make over */
    h_flush(&h);
    unsigned char rerun[2];
    char *err = NULL;
    CHECK_EQ_INT(ty_runs_rerun_set(r1, "", rerun, &err), 0);
    CHECK_EQ_INT(h_submit_ev(&h, y, (ty_ev_t){.retry_of = r1, .rerun = rerun}), 0);
    ty_run_t *r2 = h.c->order[h.c->nruns - 1];
    h_flush(&h);
    h_finish(&h, T(r2, "use"), 0);
    h_flush(&h);
    char sha[65];
    snprintf(sha, sizeof sha, "%s", T(r1, "make")->outputs[0]->sha256);

    size_t n = 0;
    zlistx_t *keys = NULL;
    ty_store_kv_t *kvs = h_range(&h, "runs/", &n, &keys);
    ty_store_kv_t pin = {"pins/x", (const uint8_t *)"1", 1};
    ty_catalog_t cat;
    ty_catalog_load(&cat, kvs, n, &pin, 1);
    CHECK_EQ_INT(cat.n, 2);

    Ty__LineageReply lr;
    ty_catalog_lineage(&cat, "aaaa", &lr);
    CHECK_EQ_INT(lr.n_entries, 4); /* made, used, carried, used again */
    int produced = 0, consumed = 0, carried = 0;
    for (size_t i = 0; i < lr.n_entries; i++) {
        const Ty__LineageEntry *e = lr.entries[i];
        CHECK_STR(e->sha256, sha);
        produced += strcmp(e->role, "produced") == 0 && strcmp(e->run_id, r1->id) == 0;
        consumed += strcmp(e->role, "consumed") == 0 && strcmp(e->name, "m") == 0;
        carried += strcmp(e->role, "carried") == 0 && strcmp(e->run_id, r2->id) == 0;
    }
    CHECK(produced == 1 && consumed == 2 && carried == 1);
    ty_catalog_lineage_clear(&lr);
    ty_catalog_lineage(&cat, "bbbb", &lr);
    CHECK_EQ_INT(lr.n_entries, 0);
    ty_catalog_lineage_clear(&lr);

    /* every run in etcd counts without a cut-off; none finished after now */
    zhashx_t *refs = ty_catalog_referenced(&cat, 0);
    CHECK(zhashx_lookup(refs, sha) != NULL);
    zhashx_destroy(&refs);
    refs = ty_catalog_referenced(&cat, h.now.wall_ms + 1);
    CHECK_EQ_INT(zhashx_size(refs), 0);
    zhashx_destroy(&refs);
    zhashx_update(cat.pinned, r1->id, (void *)1); /* pinned: kept */
    refs = ty_catalog_referenced(&cat, h.now.wall_ms + 1);
    CHECK(zhashx_lookup(refs, sha) != NULL);
    zhashx_destroy(&refs);
    CHECK(zhashx_lookup(cat.pinned, "x") != NULL); /* pins/ records read */

    ty_catalog_free(&cat);
    free(kvs);
    zlistx_destroy(&keys);
    h_fini(&h);
    TEST_DONE();
}
