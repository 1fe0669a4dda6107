#include "master/catalog.h"

#include "common/util.h"

#include <stdlib.h>
#include <string.h>

void ty_catalog_load(ty_catalog_t *cat, const ty_store_kv_t *runs, size_t nruns,
                     const ty_store_kv_t *pins, size_t npins) {
    memset(cat, 0, sizeof *cat);
    cat->pinned = zhashx_new();
    for (size_t i = 0; i < npins; i++) /* pins/<run> = "1" */
        if (pins[i].len == 1 && pins[i].val[0] == '1' && strncmp(pins[i].key, "pins/", 5) == 0)
            zhashx_update(cat->pinned, pins[i].key + 5, (void *)1);
    ty_run_t *r = NULL;
    size_t rlen = 0;
    for (size_t i = 0; i < nruns; i++) { /* runs/<id> sorts before runs/<id>/tasks/... */
        const char *k = runs[i].key;
        if (strncmp(k, "runs/", 5) != 0)
            continue;
        const char *slash = strchr(k + 5, '/');
        if (!slash) {
            r = ty_persist_decode_run(runs[i].val, runs[i].len);
            if (r) {
                cat->runs = ty_xrealloc(cat->runs, (cat->n + 1) * sizeof *cat->runs);
                cat->runs[cat->n++] = r;
                rlen = strlen(r->id);
            }
        } else if (r && (size_t)(slash - k - 5) == rlen && strncmp(k + 5, r->id, rlen) == 0 &&
                   strncmp(slash, "/tasks/", 7) == 0) {
            ty_persist_decode_task(r, slash + 7, runs[i].val, runs[i].len);
        }
    }
}

void ty_catalog_free(ty_catalog_t *cat) {
    for (size_t i = 0; i < cat->n; i++)
        ty_runs_free(cat->runs[i]);
    free(cat->runs);
    zhashx_destroy(&cat->pinned);
    memset(cat, 0, sizeof *cat);
}

static void ty_add(Ty__LineageReply *out, const char *sha, const char *run, const char *task,
                   const char *role, const char *name, uint64_t size, int64_t at) {
    Ty__LineageEntry *e = ty_xmalloc(sizeof *e);
    ty__lineage_entry__init(e);
    e->sha256 = ty_xstrdup(sha);
    e->run_id = ty_xstrdup(run);
    e->task = ty_xstrdup(task);
    e->role = (char *)role; /* static */
    e->name = ty_xstrdup(name);
    e->size = size;
    e->at_ms = at;
    out->entries = ty_xrealloc(out->entries, (out->n_entries + 1) * sizeof *out->entries);
    out->entries[out->n_entries++] = e;
}

void ty_catalog_lineage(const ty_catalog_t *cat, const char *prefix, Ty__LineageReply *out) {
    ty__lineage_reply__init(out);
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < cat->n; i++) {
        const ty_run_t *r = cat->runs[i];
        for (size_t k = 0; k < r->ntasks; k++) {
            const ty_task_t *t = &r->tasks[k];
            for (size_t o = 0; o < t->noutputs; o++)
                if (strncmp(t->outputs[o]->sha256, prefix, pl) == 0)
                    ty_add(out, t->outputs[o]->sha256, r->id, t->spec->name,
                           t->state == TY_TASK_CACHED ? "carried" : "produced", t->outputs[o]->name,
                           t->outputs[o]->size, t->finished_ms);
            if (!t->started_ms || t->state == TY_TASK_CACHED)
                continue; /* consumed only by an attempt that started */
            for (size_t n = 0; n < t->spec->n_inputs; n++) {
                const Ty__ArtifactRef *a = ty_runs_find_output(r, t->spec->inputs[n]->value);
                if (a && strncmp(a->sha256, prefix, pl) == 0)
                    ty_add(out, a->sha256, r->id, t->spec->name, "consumed",
                           t->spec->inputs[n]->key, a->size, t->started_ms);
            }
        }
    }
}

void ty_catalog_lineage_clear(Ty__LineageReply *r) {
    for (size_t i = 0; i < r->n_entries; i++) {
        free(r->entries[i]->sha256);
        free(r->entries[i]->run_id);
        free(r->entries[i]->task);
        free(r->entries[i]->name);
        free(r->entries[i]);
    }
    free(r->entries);
    ty__lineage_reply__init(r);
}

zhashx_t *ty_catalog_referenced(const ty_catalog_t *cat, int64_t cutoff_ms) {
    zhashx_t *refs = zhashx_new();
    for (size_t i = 0; i < cat->n; i++) {
        const ty_run_t *r = cat->runs[i];
        int done = r->state != TY_RUN_PENDING && r->state != TY_RUN_RUNNING;
        if (done && r->finished_ms < cutoff_ms && !zhashx_lookup(cat->pinned, r->id))
            continue;
        for (size_t k = 0; k < r->ntasks; k++)
            for (size_t o = 0; o < r->tasks[k].noutputs; o++)
                zhashx_update(refs, r->tasks[k].outputs[o]->sha256, (void *)1);
    }
    return refs;
}
