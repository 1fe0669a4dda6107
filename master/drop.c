/* Old runs leave etcd, and their logs the data dir: the shell's side of the
 * core's DROP effect.  The pins are read first (pinned runs stay), then the
 * done/ index up to the cut-off, keys only, a page at a time; each page's
 * runs go in fenced deletes of 40 runs. */
#include "master/master.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    ty_master_t *m;
    char *before;
    uint64_t epoch;
    zhashx_t *pinned; /* run ids `trainyard pin` keeps */
} ty_drop_t;

static void ty_dropped(int status, void *arg) {
    (void)arg;
    if (status != 0)
        ty_warn("dropping old runs from etcd failed (%s); the next look tries again",
                ty_strerror(status));
}

#define TY_DROP_PER_TXN 40 /* three operations each: etcd takes 128 a txn */

#define TY_DROP_PAGE 400 /* index keys read at a time */

static void ty_drop_found(int status, const ty_store_kv_t *kvs, size_t n, void *arg) {
    ty_drop_t *d = arg;
    ty_master_t *m = d->m;
    size_t dropped = 0;
    const char *keys[2 * TY_DROP_PER_TXN], *prefixes[TY_DROP_PER_TXN];
    char *owned[3 * TY_DROP_PER_TXN];
    size_t nk = 0, np = 0, no = 0;
    for (size_t i = 0; status == 0 && m->store && i <= n; i++) {
        int last = i == n;
        const char *k = last ? NULL : kvs[i].key;
        const char *id = k ? strchr(k + 5, '/') : NULL; /* done/<t>/<run> */
        if (k && (!id || !*++id))
            continue;
        if (k && zhashx_lookup(d->pinned, id))
            continue; /* pinned: kept, records, logs and outputs */
        if (k) {
            owned[no] = ty_xasprintf("runs/%s", id);
            keys[nk++] = owned[no++];
            owned[no] = ty_xstrdup(k);
            keys[nk++] = owned[no++];
            owned[no] = ty_xasprintf("runs/%s/tasks/", id);
            prefixes[np++] = owned[no++];
            if (m->logw)
                ty_logw_remove(m->logw, id);
            dropped++;
        }
        if (np && (np == TY_DROP_PER_TXN || last)) {
            if (ty_store_del(m->store, d->epoch, keys, nk, prefixes, np, ty_dropped, NULL) != 0)
                ty_warn("cannot drop old runs from etcd now");
            for (size_t j = 0; j < no; j++)
                free(owned[j]);
            nk = np = no = 0;
        }
    }
    if (dropped)
        ty_info("dropping %zu run(s) that ended before the history kept", dropped);
    if (status == 0 && n == TY_DROP_PAGE && m->store) { /* the next page, after the last key */
        char *from = ty_xasprintf("%s\x01", kvs[n - 1].key);
        int rc = ty_store_range_keys(m->store, from, d->before, TY_DROP_PAGE, ty_drop_found, d);
        free(from);
        if (rc == 0)
            return;
    }
    zhashx_destroy(&d->pinned);
    free(d->before);
    free(d);
}

static void ty_pins_found(int status, const ty_store_kv_t *kvs, size_t n, void *arg) {
    ty_drop_t *d = arg;
    for (size_t i = 0; status == 0 && i < n; i++)
        if (kvs[i].len == 1 && kvs[i].val[0] == '1' && strncmp(kvs[i].key, "pins/", 5) == 0)
            zhashx_update(d->pinned, kvs[i].key + 5, (void *)1);
    if (status != 0 || !d->m->store ||
        ty_store_range_keys(d->m->store, "done/", d->before, TY_DROP_PAGE, ty_drop_found, d) != 0)
        ty_drop_found(status ? status : TY_EETCD, NULL, 0, d); /* nothing dropped this time */
}

void ty_master_drop_old(ty_master_t *m, const ty_fx_t *fx) {
    ty_drop_t *d = ty_xcalloc(1, sizeof *d);
    d->m = m;
    d->before = ty_xstrdup(fx->before);
    d->epoch = fx->epoch;
    d->pinned = zhashx_new();
    if (ty_store_range(m->store, "pins/", ty_pins_found, d) != 0)
        ty_drop_found(TY_EETCD, NULL, 0, d);
}
