/* The CLI's request/reply: a reply is matched by req_id (a late reply to an
 * earlier request is skipped), and a silent master is a timeout. */
#include "cli/client.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <pthread.h>

static zsock_t *server;

/* Answers one request twice: first with a stale req_id, then correctly. */
static void *serve(void *arg) {
    (void)arg;
    zframe_t *id = NULL;
    Ty__Envelope *req = NULL;
    zsock_set_rcvtimeo(server, 5000);
    zmsg_t *m = zmsg_recv(server);
    if (!m)
        return NULL;
    id = zmsg_pop(m);
    zframe_t *f = zmsg_pop(m);
    if (ty_wire_decode(zframe_data(f), zframe_size(f), 1 << 20, &req) == 0) {
        Ty__InfoReply ir = TY__INFO_REPLY__INIT;
        Ty__Envelope out = TY__ENVELOPE__INIT;
        out.body_case = TY__ENVELOPE__BODY_INFO_REPLY;
        out.info_reply = &ir;
        ir.epoch = 1;
        out.req_id = req->req_id - 1; /* late answer to something else */
        ty_wire_send(server, id, &out);
        ir.epoch = 42;
        out.req_id = req->req_id;
        ty_wire_send(server, id, &out);
        ty_wire_free(&req);
    }
    zframe_destroy(&f);
    zframe_destroy(&id);
    zmsg_destroy(&m);
    return NULL;
}

int main(void) {
    ty_client_t *c = NULL;
    CHECK_EQ_INT(ty_client_create(&c, "tcp://127.0.0.1:1"), 0); /* nobody there */
    Ty__InfoRequest ir = TY__INFO_REQUEST__INIT;
    Ty__Envelope req = TY__ENVELOPE__INIT;
    req.body_case = TY__ENVELOPE__BODY_INFO;
    req.info = &ir;
    Ty__Envelope *rep = NULL;
    int64_t t0 = ty_mono_ms();
    CHECK_EQ_INT(ty_client_call(c, &req, 200, &rep), TY_ETIMEOUT);
    CHECK(ty_mono_ms() - t0 >= 190);
    CHECK(rep == NULL);
    ty_client_destroy(&c);
    CHECK(c == NULL);
    CHECK_EQ_INT(ty_client_create(&c, "not an endpoint"), TY_EINVAL);

    server = zsock_new_router("tcp://127.0.0.1:*");
    CHECK_EQ_INT(ty_client_create(&c, zsock_endpoint(server)), 0);
    pthread_t th;
    pthread_create(&th, NULL, serve, NULL);
    CHECK_EQ_INT(ty_client_call(c, &req, 5000, &rep), 0);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_INFO_REPLY && rep->info_reply->epoch == 42);
    ty_wire_free(&rep);
    pthread_join(th, NULL);
    ty_client_destroy(&c);
    zsock_destroy(&server);
    TEST_DONE();
}
