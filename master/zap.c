/* The master's ZAP handler (see zap.h): a REP socket on the ZAP endpoint,
 * read on the loop like the other sockets.  A request is "1.0", request
 * id, domain, address, routing id, mechanism, then the credentials (for
 * CURVE the client's 32-byte public key); the reply is "1.0", request id,
 * status, status text, user id, metadata. */
#include "master/zap.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"

#include <czmq.h>
#include <string.h>

struct ty_zap {
    ty_api_info_t *info; /* counts what is refused */
    zsock_t *sock;
    ty_wire_poll_t *poll;
    zcertstore_t *clients, *workers, *admins; /* admins: NULL without --admin-keys */
    uint64_t refused;
    char last[300];
};

static char *ty_frame_str(zmsg_t *msg) {
    zframe_t *f = zmsg_pop(msg);
    char *s = f ? ty_xstrndup((const char *)zframe_data(f), zframe_size(f)) : ty_xstrdup("");
    zframe_destroy(&f);
    return s;
}

/* role: "" for none; else the X-Role property of the peer's messages, in
 * ZMTP's metadata encoding (a name's length in a byte, the name, the
 * value's length in 4 bytes, big-endian, the value). */
static void ty_zap_reply(ty_zap_t *z, const char *req_id, const char *status, const char *text,
                         const char *user, const char *role) {
    zmsg_t *r = zmsg_new();
    zmsg_addstr(r, "1.0");
    zmsg_addstr(r, req_id);
    zmsg_addstr(r, status);
    zmsg_addstr(r, text);
    zmsg_addstr(r, user);
    uint8_t meta[64];
    size_t n = 0, rl = strlen(role);
    if (rl && rl < 32) {
        meta[n++] = 6;
        memcpy(meta + n, "X-Role", 6);
        n += 6;
        meta[n++] = 0;
        meta[n++] = 0;
        meta[n++] = 0;
        meta[n++] = (uint8_t)rl;
        memcpy(meta + n, role, rl);
        n += rl;
    }
    zmsg_addmem(r, meta, n);
    zmsg_send(&r, z->sock);
}

static void ty_zap_request(void *arg) {
    ty_zap_t *z = arg;
    zmsg_t *msg = zmsg_recv_nowait(z->sock);
    if (!msg)
        return;
    char *version = ty_frame_str(msg), *req_id = ty_frame_str(msg), *domain = ty_frame_str(msg),
         *address = ty_frame_str(msg), *identity = ty_frame_str(msg), *mech = ty_frame_str(msg);
    zframe_t *cred = zmsg_pop(msg);
    const char *why = NULL;
    zcertstore_t *store = strcmp(domain, "client") == 0   ? z->clients
                          : strcmp(domain, "worker") == 0 ? z->workers
                                                          : NULL;
    zcert_t *cert = NULL;
    char key[41] = "";
    if (strcmp(version, "1.0") != 0)
        why = "bad ZAP version";
    else if (strcmp(mech, "CURVE") != 0)
        why = "not CURVE (a plaintext connection)";
    else if (!store)
        why = "unknown domain";
    else if (!cred || zframe_size(cred) != 32)
        why = "no public key";
    else if (!zmq_z85_encode(key, zframe_data(cred), 32))
        why = "unknown key";
    int admin = store == z->clients && z->admins && *key && zcertstore_lookup(z->admins, key);
    if (!why && !(cert = admin ? zcertstore_lookup(z->admins, key) : zcertstore_lookup(store, key)))
        why = "unknown key";
    if (why) {
        z->refused++;
        snprintf(z->last, sizeof z->last, "%s %s: %s%s%.12s", domain, address, why, *key ? " " : "",
                 key);
        z->info->auth_refused = z->refused;
        z->info->last_auth_refused = z->last;
        ty_warn("refused a %s connection from %s: %s%s%s", domain, address, why, *key ? " " : "",
                key);
        ty_zap_reply(z, req_id, "400", why, "", "");
    } else {
        const char *name = zcert_meta(cert, "name");
        ty_zap_reply(z, req_id, "200", "OK", name && *name ? name : key,
                     store != z->clients ? ""
                     : admin             ? "admin"
                                         : "user");
    }
    zframe_destroy(&cred);
    free(version);
    free(req_id);
    free(domain);
    free(address);
    free(identity);
    free(mech);
    zmsg_destroy(&msg);
}

int ty_zap_create(ty_zap_t **out, uv_loop_t *loop, const char *client_dir, const char *worker_dir,
                  const char *admin_dir, ty_api_info_t *info) {
    ty_zap_t *z = ty_xcalloc(1, sizeof *z);
    z->info = info;
    z->sock = zsock_new(ZMQ_REP);
    if (!z->sock || zsock_bind(z->sock, "inproc://zeromq.zap.01") != 0) {
        ty_error("cannot bind the ZAP handler (inproc://zeromq.zap.01)");
        zsock_destroy(&z->sock);
        free(z);
        return TY_EIO;
    }
    z->clients = zcertstore_new(client_dir);
    z->workers = zcertstore_new(worker_dir);
    z->admins = admin_dir ? zcertstore_new(admin_dir) : NULL;
    ty_wire_poll_create(&z->poll, loop, z->sock, ty_zap_request, z);
    *out = z;
    return 0;
}

void ty_zap_destroy(ty_zap_t **zp) {
    ty_zap_t *z = zp ? *zp : NULL;
    if (!z)
        return;
    ty_wire_poll_destroy(&z->poll);
    zcertstore_destroy(&z->clients);
    zcertstore_destroy(&z->workers);
    zcertstore_destroy(&z->admins);
    zsock_destroy(&z->sock);
    free(z);
    *zp = NULL;
}
