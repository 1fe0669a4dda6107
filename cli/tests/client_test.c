/* The CLI's request/reply: a reply is matched by req_id (a late reply to an
 * earlier request is skipped), a silent master is a timeout, a standby's
 * Redirect is followed, and a silent address is left for the next one. */
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

static zsock_t *standby;

/* A standby: answers one request with a Redirect to the server. */
static void *redirect(void *arg) {
    const char *to = arg;
    zsock_set_rcvtimeo(standby, 5000);
    zmsg_t *m = zmsg_recv(standby);
    if (!m)
        return NULL;
    zframe_t *id = zmsg_pop(m);
    zframe_t *f = zmsg_pop(m);
    Ty__Envelope *req = NULL;
    if (ty_wire_decode(zframe_data(f), zframe_size(f), 1 << 20, &req) == 0) {
        Ty__Redirect rd = TY__REDIRECT__INIT;
        rd.leader = "m2";
        rd.client_ep = (char *)to;
        Ty__Envelope out = TY__ENVELOPE__INIT;
        out.body_case = TY__ENVELOPE__BODY_REDIRECT;
        out.redirect = &rd;
        out.req_id = req->req_id;
        ty_wire_send(standby, id, &out);
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
    /* given longer: no connection within the connect timeout says so */
    ty_client_set_connect_ms(c, 300);
    t0 = ty_mono_ms();
    CHECK_EQ_INT(ty_client_call(c, &req, 5000, &rep), TY_EUNREACH);
    CHECK(ty_mono_ms() - t0 >= 290 && ty_mono_ms() - t0 < 2000);
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

    /* two addresses, the first a standby: its Redirect leads to the leader */
    standby = zsock_new_router("tcp://127.0.0.1:*");
    char *list = ty_xasprintf("%s, %s", zsock_endpoint(standby), "tcp://127.0.0.1:1");
    char *leader = ty_xstrdup(zsock_endpoint(server));
    CHECK_EQ_INT(ty_client_create(&c, list), 0);
    CHECK_STR(ty_client_list(c), list);
    pthread_t th2;
    pthread_create(&th, NULL, serve, NULL);
    pthread_create(&th2, NULL, redirect, leader);
    CHECK_EQ_INT(ty_client_call(c, &req, 5000, &rep), 0);
    CHECK(rep && rep->body_case == TY__ENVELOPE__BODY_INFO_REPLY && rep->info_reply->epoch == 42);
    CHECK_STR(ty_client_endpoint(c), leader);
    ty_wire_free(&rep);
    pthread_join(th, NULL);
    pthread_join(th2, NULL);
    ty_client_destroy(&c);
    free(list);

    /* the first address takes no connection: after its share of the connect
     * timeout (1 s of 2), the next one answers */
    list = ty_xasprintf("tcp://127.0.0.1:1,%s", leader);
    CHECK_EQ_INT(ty_client_create(&c, list), 0);
    pthread_create(&th, NULL, serve, NULL);
    t0 = ty_mono_ms();
    CHECK_EQ_INT(ty_client_call(c, &req, 8000, &rep), 0);
    CHECK(ty_mono_ms() - t0 >= 900 && ty_mono_ms() - t0 < 2400);
    CHECK(rep && rep->info_reply->epoch == 42);
    ty_wire_free(&rep);
    pthread_join(th, NULL);
    ty_client_destroy(&c);
    free(list);
    free(leader);
    zsock_destroy(&standby);
    zsock_destroy(&server);
    TEST_DONE();
}
