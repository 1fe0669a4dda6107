/* trainyard artifacts RUN, trainyard get RUN TASK/NAME [-o PATH]. */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TY_GET_CHUNK (1u << 20)

static void ty_human(char *buf, size_t n, uint64_t bytes) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

int ty_cmd_artifacts(ty_cli_t *cli, ty_client_t *c) {
    if (cli->argc != 2)
        return ty_die("usage: trainyard artifacts RUN [-o json]");
    Ty__Envelope *rep = NULL;
    if (ty_get_status(cli, c, cli->argv[1], 0, &rep) != 0)
        return 1;
    const Ty__RunStatus *st = rep->status_reply->status;
    json_t *all = ty_render_artifacts(st);
    if (cli->json) {
        ty_out_json_print(all);
    } else {
        printf("%-20s %-32s %10s  %s\n", "TASK", "NAME", "SIZE", "SHA256");
        size_t i;
        json_t *a;
        json_array_foreach(all, i, a) {
            char size[32];
            ty_human(size, sizeof size, (uint64_t)json_integer_value(json_object_get(a, "size")));
            printf("%-20s %-32s %10s  %.12s\n", json_string_value(json_object_get(a, "task")),
                   json_string_value(json_object_get(a, "name")), size,
                   json_string_value(json_object_get(a, "sha256")));
        }
        json_decref(all);
    }
    ty_wire_free(&rep);
    return 0;
}

/* The output TASK/NAME of a run (NAME may hold slashes). */
static const Ty__ArtifactRef *ty_find_output(const Ty__RunStatus *st, const char *spec) {
    for (size_t i = 0; i < st->n_tasks; i++) {
        const Ty__TaskRecord *t = st->tasks[i];
        size_t n = strlen(t->name);
        if (strncmp(spec, t->name, n) != 0 || spec[n] != '/')
            continue;
        for (size_t k = 0; k < t->n_outputs; k++)
            if (strcmp(t->outputs[k]->name, spec + n + 1) == 0)
                return t->outputs[k];
    }
    return NULL;
}

#define TY_GET_WINDOW 4 /* ranges asked for at once (the master holds each while it is sent) */

static Ty__Envelope *ty_read_req(Ty__BlobRead *br, const Ty__ArtifactRef *a, uint64_t off) {
    ty__blob_read__init(br);
    br->sha256 = a->sha256;
    br->offset = off;
    br->length = TY_GET_CHUNK;
    Ty__Envelope *env = ty_xmalloc(sizeof *env);
    ty__envelope__init(env);
    env->body_case = TY__ENVELOPE__BODY_BLOB_READ;
    env->blob_read = br;
    return env;
}

/* Fetch a's bytes into fd, TY_GET_WINDOW ranges asked for at a time (one
 * at a time, following a failover, for any that did not come), hashing
 * them; 0 or 1. */
static int ty_fetch(ty_cli_t *cli, ty_client_t *c, const Ty__ArtifactRef *a, int fd,
                    const char *path) {
    int tty = isatty(STDERR_FILENO);
    ty_sha256_t *h;
    ty_sha256_create(&h);
    uint64_t off = 0;
    int64_t t0 = ty_mono_ms(), shown = 0;
    int rc = 0;
    while (rc == 0 && off < a->size) {
        Ty__BlobRead brs[TY_GET_WINDOW];
        Ty__Envelope *reqs[TY_GET_WINDOW], *reps[TY_GET_WINDOW];
        size_t n = 0;
        for (uint64_t o = off; n < TY_GET_WINDOW && o < a->size; o += TY_GET_CHUNK, n++)
            reqs[n] = ty_read_req(&brs[n], a, o);
        ty_client_batch(c, reqs, n, cli->call_ms, reps);
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && (!reps[i] || reps[i]->body_case != TY__ENVELOPE__BODY_BLOB_DATA)) {
                ty_wire_free(&reps[i]); /* ask for it alone, through a failover */
                if (ty_call(c, reqs[i], cli->call_ms, &reps[i], TY__ENVELOPE__BODY_BLOB_DATA) != 0)
                    rc = 1;
            }
            const Ty__BlobData *d = rc == 0 ? reps[i]->blob_data : NULL;
            if (d && (d->offset != off || d->size != a->size || d->data.len == 0))
                rc = ty_die("the master's copy of %s is %llu bytes, not %llu", a->name,
                            (unsigned long long)d->size, (unsigned long long)a->size);
            else if (d && ty_write_all(fd, d->data.data, d->data.len) != 0)
                rc = ty_die("writing %s: %s", path, strerror(errno));
            if (d && rc == 0) {
                ty_sha256_update(h, d->data.data, d->data.len);
                off += d->data.len;
            }
            ty_wire_free(&reps[i]);
            free(reqs[i]);
        }
        int64_t now = ty_mono_ms();
        if (tty && (now - shown >= 200 || off == a->size)) {
            char got[32], all[32];
            ty_human(got, sizeof got, off);
            ty_human(all, sizeof all, a->size);
            double s = (double)(now - t0) / 1000.0;
            fprintf(stderr, "\r%s: %s / %s (%.0f MiB/s)  ", a->name, got, all,
                    s > 0 ? (double)off / 1048576.0 / s : 0.0);
            shown = now;
        }
    }
    if (tty && shown)
        fputc('\n', stderr);
    char hex[TY_SHA256_HEX];
    ty_sha256_final(h, hex);
    ty_sha256_destroy(&h);
    if (rc == 0 && strcmp(hex, a->sha256) != 0)
        rc = ty_die("%s: the bytes received hash to %.12s..., not %.12s...: not saved", a->name,
                    hex, a->sha256);
    return rc;
}

int ty_download(ty_cli_t *cli, ty_client_t *c, const Ty__ArtifactRef *a, const char *out) {
    const char *base = strrchr(a->name, '/') ? strrchr(a->name, '/') + 1 : a->name;
    char *path = ty_xstrdup(out ? out : base);
    char *part = ty_xasprintf("%s.part", path);
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc;
    if (fd < 0) {
        rc = ty_die("cannot create %s: %s", part, strerror(errno));
    } else {
        rc = ty_fetch(cli, c, a, fd, part);
        if (close(fd) != 0 && rc == 0)
            rc = ty_die("writing %s: %s", part, strerror(errno));
        if (rc == 0 && rename(part, path) != 0)
            rc = ty_die("cannot rename %s to %s: %s", part, path, strerror(errno));
        if (rc != 0)
            unlink(part);
    }
    if (rc == 0)
        printf("%s\t%llu bytes\tsha256 %s\n", path, (unsigned long long)a->size, a->sha256);
    free(part);
    free(path);
    return rc;
}

int ty_cmd_get(ty_cli_t *cli, ty_client_t *c) {
    const char *run = NULL, *what = NULL, *out = NULL;
    for (int i = 1; i < cli->argc; i++) {
        if ((strcmp(cli->argv[i], "-o") == 0 || strcmp(cli->argv[i], "--output") == 0) &&
            i + 1 < cli->argc)
            out = cli->argv[++i];
        else if (!run)
            run = cli->argv[i];
        else if (!what)
            what = cli->argv[i];
        else
            return ty_die("get: unexpected argument '%s'", cli->argv[i]);
    }
    if (!run || !what || !strchr(what, '/'))
        return ty_die("usage: trainyard get RUN TASK/NAME [-o PATH]");
    Ty__Envelope *rep = NULL;
    if (ty_get_status(cli, c, run, 0, &rep) != 0)
        return 1;
    const Ty__ArtifactRef *a = ty_find_output(rep->status_reply->status, what);
    if (!a) {
        ty_wire_free(&rep);
        return ty_die("run %s has no output %s (see `trainyard artifacts %s`)", run, what, run);
    }
    int rc = ty_download(cli, c, a, out);
    ty_wire_free(&rep);
    return rc;
}

int ty_cmd_pin(ty_cli_t *cli, ty_client_t *c) {
    const char *run = NULL;
    int unpin = 0;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--unpin") == 0)
            unpin = 1;
        else if (!run)
            run = cli->argv[i];
        else
            return ty_die("pin: unexpected argument '%s'", cli->argv[i]);
    }
    if (!run)
        return ty_die("usage: trainyard pin RUN [--unpin]");
    Ty__PinRequest pr = TY__PIN_REQUEST__INIT;
    pr.run_id = (char *)run;
    pr.unpin = unpin;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_PIN;
    env.pin = &pr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_PIN_REPLY) != 0)
        return 1;
    printf("%s %s\n", rep->pin_reply->run_id, rep->pin_reply->pinned ? "pinned" : "unpinned");
    ty_wire_free(&rep);
    return 0;
}

int ty_cmd_gc(ty_cli_t *cli, ty_client_t *c) {
    Ty__GcRequest gr = TY__GC_REQUEST__INIT;
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--dry-run") == 0) {
            gr.dry_run = 1;
        } else if (strcmp(cli->argv[i], "--keep-days") == 0 && i + 1 < cli->argc) {
            int64_t v;
            if (ty_parse_i64(cli->argv[++i], 0, 100000, &v) != 0)
                return ty_die("gc: --keep-days needs a number of days (0 to 100000), got '%s'",
                              cli->argv[i]);
            gr.keep_days = (uint32_t)v;
            gr.keep_days_set = 1;
        } else {
            return ty_die("gc: unexpected argument '%s'", cli->argv[i]);
        }
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_GC;
    env.gc = &gr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms * 4, &rep, TY__ENVELOPE__BODY_GC_REPLY) != 0)
        return 1;
    const Ty__GcReply *r = rep->gc_reply;
    if (cli->json) {
        json_t *o = json_object(), *del = json_array();
        json_object_set_new(o, "dry_run", json_boolean(r->dry_run));
        json_object_set_new(o, "blobs_deleted", json_integer((json_int_t)r->blobs_deleted));
        json_object_set_new(o, "bytes_freed", json_integer((json_int_t)r->bytes_freed));
        json_object_set_new(o, "blobs_kept", json_integer((json_int_t)r->blobs_kept));
        json_object_set_new(o, "bytes_kept", json_integer((json_int_t)r->bytes_kept));
        for (size_t i = 0; i < r->n_deleted; i++)
            json_array_append_new(del, json_string(r->deleted[i]));
        json_object_set_new(o, "deleted", del);
        ty_out_json_print(o);
    } else {
        char freed[32], kept[32];
        ty_human(freed, sizeof freed, r->bytes_freed);
        ty_human(kept, sizeof kept, r->bytes_kept);
        printf("%s %llu blobs, %s; kept %llu blobs, %s\n", r->dry_run ? "would delete" : "deleted",
               (unsigned long long)r->blobs_deleted, freed, (unsigned long long)r->blobs_kept,
               kept);
    }
    ty_wire_free(&rep);
    return 0;
}

int ty_cmd_lineage(ty_cli_t *cli, ty_client_t *c) {
    if (cli->argc != 2)
        return ty_die("usage: trainyard lineage SHA256-OR-PREFIX [-o json]");
    Ty__LineageRequest lr = TY__LINEAGE_REQUEST__INIT;
    lr.sha256_prefix = cli->argv[1];
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_LINEAGE;
    env.lineage = &lr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms * 4, &rep, TY__ENVELOPE__BODY_LINEAGE_REPLY) != 0)
        return 1;
    const Ty__LineageReply *r = rep->lineage_reply;
    if (cli->json) {
        json_t *all = json_array();
        for (size_t i = 0; i < r->n_entries; i++) {
            const Ty__LineageEntry *e = r->entries[i];
            json_t *o = json_object();
            json_object_set_new(o, "sha256", json_string(e->sha256));
            json_object_set_new(o, "run_id", json_string(e->run_id));
            json_object_set_new(o, "task", json_string(e->task));
            json_object_set_new(o, "role", json_string(e->role));
            json_object_set_new(o, "name", json_string(e->name));
            json_object_set_new(o, "size", json_integer((json_int_t)e->size));
            json_array_append_new(all, o);
        }
        ty_out_json_print(all);
    } else if (r->n_entries == 0) {
        printf("no run produced or consumed content %s...\n", cli->argv[1]);
    } else {
        printf("%-12s %-9s %-28s %-16s %s\n", "SHA256", "ROLE", "RUN", "TASK", "NAME");
        for (size_t i = 0; i < r->n_entries; i++) {
            const Ty__LineageEntry *e = r->entries[i];
            printf("%.12s %-9s %-28s %-16s %s\n", e->sha256, e->role, e->run_id, e->task, e->name);
        }
    }
    ty_wire_free(&rep);
    return 0;
}
