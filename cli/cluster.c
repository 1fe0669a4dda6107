/* trainyard keygen, keys, workers, info: the cluster's keys and what its
 * masters and workers say of themselves. */
#include "cli/cli.h"
#include "cli/output.h"

#include "common/json.h"
#include "common/keys.h"
#include "common/util.h"
#include "common/wire.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ty_cmd_keygen(ty_cli_t *cli) {
    const char *name = NULL, *dir = ".";
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--dir") == 0 && i + 1 < cli->argc)
            dir = cli->argv[++i];
        else if (!name && cli->argv[i][0] != '-')
            name = cli->argv[i];
        else
            return ty_die("keygen: unexpected argument '%s'", cli->argv[i]);
    }
    if (!name)
        return ty_die("usage: trainyard keygen NAME [--dir DIR]");
    char *why = NULL;
    if (ty_keys_generate(dir, name, &why) != 0) {
        int rc = ty_die("%s", why);
        free(why);
        return rc;
    }
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(name));
        char *p = ty_xasprintf("%s/%s.key", dir, name);
        json_object_set_new(o, "public", json_string(p));
        free(p);
        p = ty_xasprintf("%s/%s.key_secret", dir, name);
        json_object_set_new(o, "secret", json_string(p));
        free(p);
        ty_out_json_print(o);
    } else {
        printf("%s/%s.key\t(public: give it to the master)\n"
               "%s/%s.key_secret\t(secret, mode 0600: keep it)\n",
               dir, name, dir, name);
    }
    return 0;
}

/* The user's request id, or a random one (a call sent again is recognised). */
/* trainyard workers drain|undrain ID */
static int ty_cmd_drain(ty_cli_t *cli, ty_client_t *c) {
    int undo = strcmp(cli->argv[1], "undrain") == 0;
    if (cli->argc != 3 || cli->argv[2][0] == '-')
        return ty_die("usage: trainyard workers %s WORKER", cli->argv[1]);
    Ty__DrainRequest dr = TY__DRAIN_REQUEST__INIT;
    dr.worker_id = cli->argv[2];
    dr.undo = undo;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_DRAIN;
    env.drain = &dr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_DRAIN_REPLY) != 0)
        return 1;
    const Ty__DrainReply *r = rep->drain_reply;
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(r->worker_id));
        json_object_set_new(o, "draining", json_boolean(r->draining));
        json_object_set_new(o, "running", json_integer(r->running));
        ty_out_json_print(o);
    } else if (r->draining) {
        printf("worker %s drains: no new attempts; %u still running\n", r->worker_id, r->running);
    } else {
        printf("worker %s takes attempts again\n", r->worker_id);
    }
    ty_wire_free(&rep);
    return 0;
}

int ty_cmd_workers(ty_cli_t *cli, ty_client_t *c) {
    if (cli->argc > 1 &&
        (strcmp(cli->argv[1], "drain") == 0 || strcmp(cli->argv[1], "undrain") == 0))
        return ty_cmd_drain(cli, c);
    if (cli->argc != 1)
        return ty_die("usage: trainyard workers [drain|undrain WORKER]");
    Ty__WorkersRequest wr = TY__WORKERS_REQUEST__INIT;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_WORKERS;
    env.workers = &wr;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_WORKERS_REPLY) != 0)
        return 1;
    if (cli->json) {
        ty_out_json_print(ty_render_workers(rep->workers_reply));
    } else {
        ty_out_workers_table(stdout, rep->workers_reply);
    }
    ty_wire_free(&rep);
    return 0;
}

int ty_cmd_info(ty_cli_t *cli, ty_client_t *c) {
    Ty__InfoRequest ir = TY__INFO_REQUEST__INIT;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_INFO;
    env.info = &ir;
    Ty__Envelope *rep = NULL;
    if (ty_call(c, &env, cli->call_ms, &rep, TY__ENVELOPE__BODY_INFO_REPLY) != 0)
        return 1;
    Ty__InfoReply *r = rep->info_reply;
    json_t *o = ty_render_info(r);
    json_object_set_new(o, "endpoint", json_string(ty_client_endpoint(c)));
    if (cli->json) {
        ty_out_json_print(o);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
            char *s = ty_json_text(v, 0);
            printf("%-24s %s\n", k, s);
            free(s);
        }
        json_decref(o);
    }
    ty_wire_free(&rep);
    return 0;
}

static int ty_key_cmp(const void *a, const void *b) {
    json_t *const *x = a, *const *y = b;
    return strcmp(json_string_value(json_object_get(*x, "file")),
                  json_string_value(json_object_get(*y, "file")));
}

/* trainyard keys list|revoke --dir DIR: the public keys a master reads. */
int ty_cmd_keys(ty_cli_t *cli) {
    const char *op = cli->argc > 1 ? cli->argv[1] : "", *name = NULL, *dir = NULL;
    for (int i = 2; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--dir") == 0 && i + 1 < cli->argc)
            dir = cli->argv[++i];
        else if (!name && cli->argv[i][0] != '-' && strcmp(op, "revoke") == 0)
            name = cli->argv[i];
        else
            return ty_die("keys %s: unexpected argument '%s'", op, cli->argv[i]);
    }
    if (strcmp(op, "revoke") == 0 && name && dir) {
        char *why = NULL, *moved = NULL;
        if (ty_keys_revoke(dir, name, &moved, &why) != 0) {
            int rc = ty_die("%s", why);
            free(why);
            return rc;
        }
        if (cli->json) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(name));
            json_object_set_new(o, "moved_to", json_string(moved));
            ty_out_json_print(o);
        } else {
            printf("revoked %s: its key is now %s; a master reading %s refuses it within 2 s "
                   "(and drops its sessions)\n",
                   name, moved, dir);
        }
        free(moved);
        return 0;
    }
    if (strcmp(op, "list") != 0 || !dir)
        return ty_die(
            "usage: trainyard keys list --dir DIR | trainyard keys revoke NAME --dir DIR");
    DIR *d = opendir(dir);
    if (!d)
        return ty_die("cannot read %s: %s", dir, strerror(errno));
    json_t *a = json_array();
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *dot = strstr(e->d_name, ".key");
        if (!dot || e->d_name[0] == '.' || strstr(e->d_name, ".key_secret"))
            continue;
        int revoked = strncmp(dot, ".key.revoked", 12) == 0;
        if (!revoked && dot[4])
            continue;
        char *path = ty_xasprintf("%s/%s", dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        if (cert) {
            const char *m = zcert_meta(cert, "name");
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(m && *m ? m : "?"));
            json_object_set_new(o, "public_key", json_string(zcert_public_txt(cert)));
            json_object_set_new(o, "file", json_string(path));
            json_object_set_new(o, "state", json_string(revoked ? "revoked" : "active"));
            json_array_append_new(a, o);
            zcert_destroy(&cert);
        }
        free(path);
    }
    closedir(d);
    size_t n = json_array_size(a);
    json_t **items = ty_xcalloc(n ? n : 1, sizeof *items);
    for (size_t k = 0; k < n; k++)
        items[k] = json_incref(json_array_get(a, k));
    qsort(items, n, sizeof *items, ty_key_cmp);
    json_array_clear(a);
    for (size_t k = 0; k < n; k++)
        json_array_append_new(a, items[k]);
    free(items);
    if (cli->json) {
        ty_out_json_print(a);
        return 0;
    }
    printf("%-24s %-8s %-14s %s\n", "NAME", "STATE", "KEY", "FILE");
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o) {
        printf("%-24s %-8s %.12s.. %s\n", json_string_value(json_object_get(o, "name")),
               json_string_value(json_object_get(o, "state")),
               json_string_value(json_object_get(o, "public_key")),
               json_string_value(json_object_get(o, "file")));
    }
    json_decref(a);
    return 0;
}
