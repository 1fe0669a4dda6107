/* The master's ZAP handler (see zap.h): a REP socket on the ZAP endpoint,
 * read on the loop like the other sockets.  A request is "1.0", request
 * id, domain, address, routing id, mechanism, then the credentials (for
 * CURVE the client's 32-byte public key); the reply is "1.0", request id,
 * status, status text, user id, metadata (here X-Key, the peer's public
 * key, so each message can be checked against the sets as they are now). */
#include "master/zap.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"
#include "master/keyset.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <string.h>
#include <sys/socket.h>

#define TY_ZAP_REFRESH_MS 1000

/* A socket's handshakes, seen through a ZeroMQ monitor. */
typedef struct {
    ty_zap_t *z;
    const char *domain;
    zsock_t *watched;
    zsock_t *pair;
    ty_wire_poll_t *poll;
    char addr[1024][48]; /* by fd: the peer's address when it was accepted */
    int failed;          /* a handshake failed (1: plaintext, 2: malformed, 3: broken off): the next
                            disconnect is that peer's */
} ty_zap_watch_t;

struct ty_zap {
    ty_api_info_t *info; /* counts what is refused */
    zsock_t *sock;
    ty_wire_poll_t *poll;
    ty_keyset_t *clients, *workers, *admins; /* admins: NULL without --admin-keys */
    uv_timer_t timer;
    ty_zap_revoked_fn revoked;
    void *arg;
    ty_zap_watch_t *watch[2];
    char last[300];
};

static char *ty_frame_str(zmsg_t *msg) {
    zframe_t *f = zmsg_pop(msg);
    char *s = f ? ty_xstrndup((const char *)zframe_data(f), zframe_size(f)) : ty_xstrdup("");
    zframe_destroy(&f);
    return s;
}

static void ty_zap_count(ty_zap_t *z, const char *domain, const char *address, const char *why,
                         const char *key) {
    snprintf(z->last, sizeof z->last, "%s %s: %s%s%.12s", domain, address, why, *key ? " " : "",
             key);
    z->info->auth_refused++; /* (the master counts messages of revoked keys there too) */
    z->info->last_auth_refused = z->last;
    ty_warn("refused a %s connection from %s: %s%s%s", domain, address, why, *key ? " " : "", key);
}

/* key: "" on a refusal; else the X-Key property of the peer's messages, in
 * ZMTP's metadata encoding (a name's length in a byte, the name, the
 * value's length in 4 bytes, big-endian, the value). */
static void ty_zap_reply(ty_zap_t *z, const char *req_id, const char *status, const char *text,
                         const char *user, const char *key) {
    zmsg_t *r = zmsg_new();
    zmsg_addstr(r, "1.0");
    zmsg_addstr(r, req_id);
    zmsg_addstr(r, status);
    zmsg_addstr(r, text);
    zmsg_addstr(r, user);
    uint8_t meta[64];
    size_t n = 0, kl = strlen(key);
    if (kl == 40) {
        meta[n++] = 5;
        memcpy(meta + n, "X-Key", 5);
        n += 5;
        meta[n++] = 0;
        meta[n++] = 0;
        meta[n++] = 0;
        meta[n++] = (uint8_t)kl;
        memcpy(meta + n, key, kl);
        n += kl;
    }
    zmsg_addmem(r, meta, n);
    zmsg_send(&r, z->sock);
}

const char *ty_zap_name(const ty_zap_t *z, const char *domain, const char *key, int *admin) {
    const char *name = NULL;
    if (admin)
        *admin = 0;
    if (strcmp(domain, "worker") == 0)
        return ty_keyset_name(z->workers, key);
    if ((name = ty_keyset_name(z->admins, key))) {
        if (admin)
            *admin = 1;
        return name;
    }
    return strcmp(domain, "client") == 0 ? ty_keyset_name(z->clients, key) : NULL;
}

static void ty_zap_request(void *arg) {
    ty_zap_t *z = arg;
    zmsg_t *msg = zmsg_recv_nowait(z->sock);
    if (!msg)
        return;
    char *version = ty_frame_str(msg), *req_id = ty_frame_str(msg), *domain = ty_frame_str(msg),
         *address = ty_frame_str(msg), *identity = ty_frame_str(msg), *mech = ty_frame_str(msg);
    zframe_t *cred = zmsg_pop(msg);
    const char *why = NULL, *name = NULL;
    char key[41] = "";
    if (strcmp(version, "1.0") != 0)
        why = "bad ZAP version";
    else if (strcmp(mech, "CURVE") != 0)
        why = "not CURVE (a plaintext connection)";
    else if (strcmp(domain, "client") != 0 && strcmp(domain, "worker") != 0)
        why = "unknown domain";
    else if (!cred || zframe_size(cred) != 32 || !zmq_z85_encode(key, zframe_data(cred), 32))
        why = "no public key";
    else if (!(name = ty_zap_name(z, domain, key, NULL)) &&
             (ty_zap_reload(z, 0), !(name = ty_zap_name(z, domain, key, NULL))))
        why = "unknown key"; /* (a key added a moment ago is seen: the sets read again) */
    if (why) {
        ty_zap_count(z, domain, address, why, key);
        ty_zap_reply(z, req_id, "400", why, "", "");
    } else {
        ty_zap_reply(z, req_id, "200", "OK", name, key);
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

/* ---- revocation: the sets looked at again ---- */

/* What a reload found gone: "KEY\tNAME" strings. */
static void ty_zap_gone(void *arg, const char *key, const char *name) {
    zlistx_add_end(arg, ty_xasprintf("%s\t%s", key, name));
}

void ty_zap_reload(ty_zap_t *z, int force) {
    struct {
        ty_keyset_t *ks;
        const char *domain;
    } sets[3] = {{z->clients, "client"}, {z->admins, "client"}, {z->workers, "worker"}};
    zlistx_t *gone[3];
    for (int i = 0; i < 3; i++) {
        gone[i] = zlistx_new();
        zlistx_set_destructor(gone[i], (zlistx_destructor_fn *)zstr_free);
        if (sets[i].ks)
            ty_keyset_refresh(sets[i].ks, force, ty_zap_gone, gone[i]);
    }
    /* every set read first: a key gone from one is revoked only when no
     * other holds it (an admin removed from the admins may still be a user) */
    for (int i = 0; i < 3; i++) {
        for (char *s = zlistx_first(gone[i]); s; s = zlistx_next(gone[i])) {
            char *tab = strchr(s, '\t');
            *tab = '\0';
            if (ty_zap_name(z, sets[i].domain, s, NULL))
                continue;
            ty_warn("the key of %s %s (%.12s) was revoked: its messages are refused from now on",
                    sets[i].domain, tab + 1, s);
            if (z->revoked)
                z->revoked(z->arg, sets[i].domain, tab + 1);
        }
        zlistx_destroy(&gone[i]);
    }
    if (force)
        ty_info("keys read again: %zu users, %zu admins, %zu workers", ty_keyset_size(z->clients),
                ty_keyset_size(z->admins), ty_keyset_size(z->workers));
}

static void ty_zap_timer(uv_timer_t *h) { ty_zap_reload(h->data, 0); }

/* ---- handshakes that never reach ZAP (a plaintext peer) ---- */

static void ty_watch_event(void *arg) {
    ty_zap_watch_t *w = arg;
    zmsg_t *msg;
    while ((zsock_events(w->pair) & ZMQ_POLLIN) && (msg = zmsg_recv_nowait(w->pair))) {
        zframe_t *f = zmsg_first(msg);
        if (f && zframe_size(f) == 6) {
            uint16_t ev;
            uint32_t value;
            memcpy(&ev, zframe_data(f), 2);
            memcpy(&value, zframe_data(f) + 2, 4);
            if (ev == ZMQ_EVENT_ACCEPTED && value < 1024) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof sa;
                w->addr[value][0] = '\0';
                if (getpeername((int)value, (struct sockaddr *)&sa, &len) == 0) {
                    void *a = sa.ss_family == AF_INET6
                                  ? (void *)&((struct sockaddr_in6 *)&sa)->sin6_addr
                                  : (void *)&((struct sockaddr_in *)&sa)->sin_addr;
                    if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6)
                        inet_ntop(sa.ss_family, a, w->addr[value], sizeof w->addr[value]);
                }
            } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                w->failed = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? 1 : 2;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                /* the peer went away mid-handshake: a plaintext one that saw
                 * the mismatch first does (so does one killed meanwhile) */
                w->failed = 3;
            } else if (ev == ZMQ_EVENT_DISCONNECTED && w->failed) {
                /* events of one connection come in order from its I/O thread */
                const char *addr = value < 1024 && w->addr[value][0] ? w->addr[value] : "?";
                ty_zap_count(w->z, w->domain, addr,
                             w->failed == 1   ? "a plaintext (NULL) handshake on a CURVE socket"
                             : w->failed == 2 ? "a malformed handshake (a ZMTP protocol error)"
                                              : "a handshake the peer broke off (plaintext, or "
                                                "not ZeroMQ)",
                             "");
                w->failed = 0;
            }
        }
        zmsg_destroy(&msg);
    }
}

int ty_zap_watch(ty_zap_t *z, uv_loop_t *loop, zsock_t *sock, const char *domain) {
    int slot = strcmp(domain, "client") == 0;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://trainyard-monitor-%s-%p", domain, (void *)z);
    if (zmq_socket_monitor(zsock_resolve(sock), ep,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return TY_EIO;
    ty_zap_watch_t *w = ty_xcalloc(1, sizeof *w);
    w->z = z;
    w->domain = slot ? "client" : "worker";
    w->watched = sock;
    w->pair = zsock_new(ZMQ_PAIR);
    if (!w->pair || zsock_connect(w->pair, "%s", ep) != 0) {
        zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
        zsock_destroy(&w->pair);
        free(w);
        return TY_EIO;
    }
    ty_wire_poll_create(&w->poll, loop, w->pair, ty_watch_event, w);
    z->watch[slot] = w;
    return 0;
}

int ty_zap_create(ty_zap_t **out, uv_loop_t *loop, const char *client_dir, const char *worker_dir,
                  const char *admin_dir, ty_api_info_t *info, ty_zap_revoked_fn revoked,
                  void *arg) {
    ty_zap_t *z = ty_xcalloc(1, sizeof *z);
    z->info = info;
    z->revoked = revoked;
    z->arg = arg;
    z->sock = zsock_new(ZMQ_REP);
    if (!z->sock || zsock_bind(z->sock, "inproc://zeromq.zap.01") != 0) {
        ty_error("cannot bind the ZAP handler (inproc://zeromq.zap.01)");
        zsock_destroy(&z->sock);
        free(z);
        return TY_EIO;
    }
    ty_keyset_create(&z->clients, client_dir);
    ty_keyset_create(&z->workers, worker_dir);
    if (admin_dir)
        ty_keyset_create(&z->admins, admin_dir);
    ty_wire_poll_create(&z->poll, loop, z->sock, ty_zap_request, z);
    uv_timer_init(loop, &z->timer);
    z->timer.data = z;
    uv_timer_start(&z->timer, ty_zap_timer, TY_ZAP_REFRESH_MS, TY_ZAP_REFRESH_MS);
    uv_unref((uv_handle_t *)&z->timer);
    *out = z;
    return 0;
}

static void ty_zap_free(uv_handle_t *h) { free(h->data); }

void ty_zap_destroy(ty_zap_t **zp) {
    ty_zap_t *z = zp ? *zp : NULL;
    if (!z)
        return;
    for (int i = 0; i < 2; i++) {
        ty_zap_watch_t *w = z->watch[i];
        if (!w)
            continue;
        zmq_socket_monitor(zsock_resolve(w->watched), NULL, 0);
        ty_wire_poll_destroy(&w->poll);
        zsock_destroy(&w->pair);
        free(w);
    }
    ty_wire_poll_destroy(&z->poll);
    ty_keyset_destroy(&z->clients);
    ty_keyset_destroy(&z->workers);
    ty_keyset_destroy(&z->admins);
    zsock_destroy(&z->sock);
    uv_timer_stop(&z->timer);
    uv_close((uv_handle_t *)&z->timer, ty_zap_free);
    *zp = NULL;
}
