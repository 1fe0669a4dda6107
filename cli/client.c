#include "cli/client.h"

#include "common/err.h"
#include "common/util.h"

#include <stdlib.h>

struct ty_client {
    zsock_t *sock;
    char *endpoint;
    uint64_t next_req;
};

int ty_client_create(ty_client_t **out, const char *endpoint) {
    zsys_init();
    zsys_set_linger(0);
    zsys_handler_set(NULL);
    ty_client_t *c = ty_xcalloc(1, sizeof *c);
    c->sock = zsock_new(ZMQ_DEALER);
    if (!c->sock || zsock_connect(c->sock, "%s", endpoint) < 0) {
        zsock_destroy(&c->sock);
        free(c);
        return TY_EINVAL;
    }
    c->endpoint = ty_xstrdup(endpoint);
    ty_random_bytes(&c->next_req, sizeof c->next_req);
    c->next_req = (c->next_req >> 16) + 1;
    *out = c;
    return 0;
}

void ty_client_destroy(ty_client_t **pc) {
    ty_client_t *c = pc ? *pc : NULL;
    if (!c)
        return;
    zsock_destroy(&c->sock);
    free(c->endpoint);
    free(c);
    *pc = NULL;
}

const char *ty_client_endpoint(const ty_client_t *c) { return c->endpoint; }

int ty_client_call(ty_client_t *c, Ty__Envelope *req, int timeout_ms, Ty__Envelope **reply) {
    req->req_id = c->next_req++;
    zframe_t *f = ty_wire_encode(req);
    if (zframe_send(&f, c->sock, 0) != 0) {
        zframe_destroy(&f);
        return TY_EIO;
    }
    int64_t deadline = ty_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - ty_mono_ms();
        if (left <= 0)
            return TY_ETIMEOUT;
        zsock_set_rcvtimeo(c->sock, (int)left);
        zframe_t *in = zframe_recv(c->sock);
        if (!in)
            return TY_ETIMEOUT;
        Ty__Envelope *env = NULL;
        int rc = ty_wire_decode(zframe_data(in), zframe_size(in), 256u << 20, &env);
        zframe_destroy(&in);
        if (rc != 0)
            return rc;
        if (env->req_id == req->req_id) {
            *reply = env;
            return 0;
        }
        ty_wire_free(&env); /* a late reply to an earlier request */
    }
}
