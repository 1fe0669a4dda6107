#include "common/wire.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Unknown fields dropped, in m and every message within it: nothing reads
 * them, and protobuf-c keeps some (a field numbered 0) in a form it packs
 * again but cannot read back, which broke every copy made by packing
 * (ty_pb_dup, a request held for the store; the client_msg fuzzer). */
static void ty_wire_strip(ProtobufCMessage *m) {
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        free(m->unknown_fields[i].data);
    free(m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        char *base = (char *)m;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(uint32_t *)(base + f->quantifier_offset) != f->id)
            continue; /* another member of its oneof is set */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)(base + f->quantifier_offset);
            ProtobufCMessage **arr = *(ProtobufCMessage ***)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (arr[k])
                    ty_wire_strip(arr[k]);
        } else {
            ProtobufCMessage *sub = *(ProtobufCMessage **)(base + f->offset);
            if (sub)
                ty_wire_strip(sub);
        }
    }
}

int ty_wire_decode(const void *data, size_t len, size_t max, Ty__Envelope **out) {
    if (len > max)
        return TY_ETOOBIG;
    Ty__Envelope *env = ty__envelope__unpack(NULL, len, data);
    if (!env)
        return TY_EPROTO;
    if (env->version != TY_WIRE_VERSION || env->body_case == TY__ENVELOPE__BODY__NOT_SET) {
        ty__envelope__free_unpacked(env, NULL);
        return TY_EPROTO;
    }
    ty_wire_strip(&env->base);
    *out = env;
    return 0;
}

void ty_wire_free(Ty__Envelope **env) {
    if (env && *env) {
        ty__envelope__free_unpacked(*env, NULL);
        *env = NULL;
    }
}

zframe_t *ty_wire_encode(Ty__Envelope *env) {
    env->version = TY_WIRE_VERSION;
    size_t n = ty__envelope__get_packed_size(env);
    zframe_t *f = zframe_new(NULL, n);
    ty__envelope__pack(env, zframe_data(f));
    return f;
}

int ty_wire_send_frame(zframe_t **f, zsock_t *sock, int more) {
    int flags = ZFRAME_DONTWAIT | (more ? ZFRAME_MORE : 0);
    /* a signal (SIGCHLD from a finished task) interrupts zmq_send: try again */
    while (zframe_send(f, sock, flags) != 0) {
        if (zmq_errno() != EINTR) {
            zframe_destroy(f);
            return TY_EIO;
        }
    }
    return 0;
}

int ty_wire_send(zsock_t *sock, zframe_t *identity, Ty__Envelope *env) {
    zframe_t *f = ty_wire_encode(env);
    if (identity) {
        zframe_t *id = zframe_dup(identity);
        if (ty_wire_send_frame(&id, sock, 1) != 0) {
            zframe_destroy(&f);
            return TY_EIO;
        }
    }
    return ty_wire_send_frame(&f, sock, 0);
}

int ty_wire_recv(zsock_t *sock, int router, size_t max, zframe_t **identity, Ty__Envelope **env) {
    return ty_wire_recv_as(sock, router, max, identity, env, NULL);
}

static void ty_meta_copy(zframe_t *f, const char *prop, char *out, size_t n) {
    const char *v = zframe_meta(f, prop);
    snprintf(out, n, "%s", v ? v : "");
}

int ty_wire_recv_as(zsock_t *sock, int router, size_t max, zframe_t **identity, Ty__Envelope **env,
                    ty_wire_peer_t *peer) {
    if (peer)
        memset(peer, 0, sizeof *peer);
    if (!(zsock_events(sock) & ZMQ_POLLIN))
        return TY_ENOENT;
    zmsg_t *msg = zmsg_recv_nowait(sock);
    if (!msg)
        return TY_ENOENT;
    int rc = TY_EPROTO;
    zframe_t *id = router ? zmsg_pop(msg) : NULL;
    zframe_t *payload = zmsg_pop(msg);
    /* exactly one payload frame; anything else is malformed */
    if (payload && zmsg_size(msg) == 0 && (!router || id))
        rc = ty_wire_decode(zframe_data(payload), zframe_size(payload), max, env);
    if (payload && peer) {
        ty_meta_copy(payload, "User-Id", peer->user, sizeof peer->user);
        ty_meta_copy(payload, "X-Key", peer->key, sizeof peer->key);
        ty_meta_copy(payload, "Peer-Address", peer->addr, sizeof peer->addr);
    }
    if (payload && zframe_size(payload) > max)
        rc = TY_ETOOBIG;
    zframe_destroy(&payload);
    zmsg_destroy(&msg);
    if (identity)
        *identity = id;
    else
        zframe_destroy(&id);
    return rc;
}

struct ty_wire_poll {
    uv_poll_t poll;
    uv_idle_t idle;
    zsock_t *sock;
    ty_wire_readable_cb cb;
    void *arg;
    int closing, closed;
};

static void ty_wire_idle_cb(uv_idle_t *h);

/* At most this many messages a loop iteration: a flood on one socket must
 * not starve the rest of the loop (the end-of-tick commit, etcd's answers,
 * the other socket). */
#define TY_WIRE_BUDGET 256

static void ty_wire_drain(ty_wire_poll_t *p) {
    /* The callback takes one message; ask again in case a send inside it
     * reset the edge while more input arrived. */
    for (int n = 0; !p->closing && (zsock_events(p->sock) & ZMQ_POLLIN); n++) {
        if (n == TY_WIRE_BUDGET) { /* the rest on the next iteration */
            uv_idle_start(&p->idle, ty_wire_idle_cb);
            return;
        }
        p->cb(p->arg);
    }
}

static void ty_wire_poll_cb(uv_poll_t *h, int status, int events) {
    (void)status;
    (void)events;
    ty_wire_drain(h->data);
}

static void ty_wire_idle_cb(uv_idle_t *h) {
    ty_wire_poll_t *p = h->data;
    uv_idle_stop(h);
    ty_wire_drain(p);
}

int ty_wire_poll_create(ty_wire_poll_t **out, uv_loop_t *loop, zsock_t *sock,
                        ty_wire_readable_cb cb, void *arg) {
    ty_wire_poll_t *p = ty_xcalloc(1, sizeof *p);
    p->sock = sock;
    p->cb = cb;
    p->arg = arg;
    if (uv_poll_init(loop, &p->poll, zsock_fd(sock)) != 0) {
        free(p);
        return TY_EIO;
    }
    uv_idle_init(loop, &p->idle);
    p->poll.data = p->idle.data = p;
    uv_poll_start(&p->poll, UV_READABLE, ty_wire_poll_cb);
    ty_wire_poll_kick(p);
    *out = p;
    return 0;
}

void ty_wire_poll_kick(ty_wire_poll_t *p) {
    if (p && !p->closing)
        uv_idle_start(&p->idle, ty_wire_idle_cb);
}

static void ty_wire_poll_closed(uv_handle_t *h) {
    ty_wire_poll_t *p = h->data;
    if (++p->closed == 2)
        free(p);
}

void ty_wire_poll_destroy(ty_wire_poll_t **pp) {
    ty_wire_poll_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->poll, ty_wire_poll_closed);
    uv_close((uv_handle_t *)&p->idle, ty_wire_poll_closed);
}

int ty_wire_reconnect(zsock_t *sock, char **connected, const char *ep) {
    if (*connected && strcmp(*connected, ep) == 0)
        return 0; /* already there: a disconnect and connect would lose what is queued */
    if (*connected) {
        zsock_disconnect(sock, "%s", *connected);
        free(*connected);
        *connected = NULL;
    }
    if (zsock_connect(sock, "%s", ep) < 0)
        return TY_EINVAL;
    *connected = ty_xstrdup(ep);
    return 0;
}

int ty_wire_endpoint_ok(const char *ep) {
    static const char *const schemes[] = {"tcp://", "ipc://", "inproc://"};
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(ep, schemes[i], n) == 0 && ep[n] && !strpbrk(ep, " \t,"))
            return 1;
    }
    return 0;
}

int ty_wire_loopback(const char *ep) {
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return 1;
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;
    const char *h = ep + 6;
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "[::1]:", 6) == 0 ||
           strncmp(h, "localhost:", 10) == 0;
}

int ty_wire_connectable(const char *ep) {
    return ep && *ep && !strchr(ep, '*') && !strstr(ep, "0.0.0.0");
}
