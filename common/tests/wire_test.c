#include "common/wire.h"
#include "common/err.h"
#include "common/tests/ty_test.h"

#include <signal.h>
#include <sys/time.h>

typedef struct {
    zsock_t *router;
    int got, rejected;
    uv_loop_t *loop;
} ctx_t;

static void on_router(void *arg) {
    ctx_t *c = arg;
    zframe_t *id = NULL;
    Ty__Envelope *env = NULL;
    int rc = ty_wire_recv(c->router, 1, 1024, &id, &env);
    if (rc == 0) {
        c->got++;
        CHECK_EQ_INT(env->body_case, TY__ENVELOPE__BODY_HEARTBEAT);
        CHECK_EQ_INT(env->heartbeat->running, 7);
        /* reply, which exercises the kick after a send */
        Ty__Envelope out = TY__ENVELOPE__INIT;
        Ty__HeartbeatAck ack = TY__HEARTBEAT_ACK__INIT;
        ack.epoch = 5;
        out.body_case = TY__ENVELOPE__BODY_HEARTBEAT_ACK;
        out.heartbeat_ack = &ack;
        CHECK_EQ_INT(ty_wire_send(c->router, id, &out), 0);
    } else if (rc != TY_ENOENT) {
        c->rejected++;
    }
    ty_wire_free(&env);
    zframe_destroy(&id);
    if (c->got + c->rejected == 3)
        uv_stop(c->loop);
}

static void on_timeout(uv_timer_t *t) { uv_stop(t->loop); }

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
    (void)sig;
    alarms++;
}

/* Sends must survive signals (the worker gets SIGCHLD for every task). */
static void test_send_under_signals(void) {
    zsock_t *pull = zsock_new_pull("inproc://sig-test");
    zsock_t *push = zsock_new_push("inproc://sig-test");
    zsock_set_sndhwm(push, 0);
    zsock_set_rcvhwm(pull, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: calls fail with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 20}, {0, 20}};
    setitimer(ITIMER_REAL, &it, NULL);
    int sent = 0;
    for (int i = 0; i < 20000; i++) {
        zframe_t *f = zframe_new(&i, sizeof i);
        if (ty_wire_send_frame(&f, push, 0) == 0)
            sent++;
        CHECK(f == NULL);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK_EQ_INT(sent, 20000);
    CHECK(alarms > 0);
    int got = 0;
    zsock_set_rcvtimeo(pull, 2000);
    zframe_t *f;
    while (got < sent && (f = zframe_recv(pull))) {
        got++;
        zframe_destroy(&f);
    }
    CHECK_EQ_INT(got, 20000);
    zsock_destroy(&push);
    zsock_destroy(&pull);
}

/* A flood is taken at most 256 messages a loop iteration, and all of it
 * in the end. */
static int flood_got, flood_iterations, flood_most;
static int flood_this;
static zsock_t *flood_sock;
static void on_flood(void *arg) {
    (void)arg;
    zmsg_t *m = zmsg_recv(flood_sock);
    zmsg_destroy(&m);
    flood_got++;
    flood_this++;
}
static void on_check(uv_check_t *h) {
    if (flood_this > flood_most)
        flood_most = flood_this;
    if (flood_this)
        flood_iterations++;
    flood_this = 0;
    if (flood_got == 1000)
        uv_stop(h->loop);
}
static void test_drain_budget(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    flood_sock = zsock_new_pull("inproc://flood");
    zsock_t *push = zsock_new_push("inproc://flood");
    for (int i = 0; i < 1000; i++)
        zstr_send(push, "x");
    ty_wire_poll_t *p = NULL;
    CHECK_EQ_INT(ty_wire_poll_create(&p, &loop, flood_sock, on_flood, NULL), 0);
    uv_check_t check;
    uv_check_init(&loop, &check);
    uv_check_start(&check, on_check);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_timeout, 10000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(flood_got, 1000);
    CHECK_EQ_INT(flood_most, 256);
    CHECK(flood_iterations >= 4);
    ty_wire_poll_destroy(&p);
    uv_close((uv_handle_t *)&check, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    zsock_destroy(&push);
    zsock_destroy(&flood_sock);
}

/* A message with an unknown field numbered 0 inside its body (what the
 * client_msg fuzzer found): it decodes without it, so a copy made by
 * packing it again reads back (protobuf-c cannot read such a field back). */
static void test_unknown_fields(void) {
    static const uint8_t in[] = {0x08, 0x01, 0x92, 0x03, 0x0f, 0x0a, 0x0a, 0x73, 0x2d, 0x30,
                                 0x30, 0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x61};
    Ty__Envelope *env = NULL;
    CHECK_EQ_INT(ty_wire_decode(in, sizeof in, 1024, &env), 0);
    size_t n = ty__envelope__get_packed_size(env);
    uint8_t buf[64];
    CHECK(n <= sizeof buf);
    ty__envelope__pack(env, buf);
    Ty__Envelope *again = ty__envelope__unpack(NULL, n, buf);
    CHECK(again != NULL);
    if (again) {
        CHECK_EQ_INT(again->body_case, env->body_case);
        ty__envelope__free_unpacked(again, NULL);
    }
    ty_wire_free(&env);
}

int main(void) {
    /* encode/decode round trip and rejections */
    Ty__Envelope env = TY__ENVELOPE__INIT;
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.running = 7;
    env.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    zframe_t *f = ty_wire_encode(&env);
    Ty__Envelope *d = NULL;
    CHECK_EQ_INT(ty_wire_decode(zframe_data(f), zframe_size(f), 1024, &d), 0);
    CHECK(d && d->heartbeat->running == 7);
    ty_wire_free(&d);
    CHECK(d == NULL);
    CHECK_EQ_INT(ty_wire_decode(zframe_data(f), zframe_size(f), 2, &d), TY_ETOOBIG);
    CHECK_EQ_INT(ty_wire_decode("\xff\xff\xff\xff", 4, 1024, &d), TY_EPROTO);
    Ty__Envelope empty = TY__ENVELOPE__INIT; /* no body */
    zframe_t *e = ty_wire_encode(&empty);
    CHECK_EQ_INT(ty_wire_decode(zframe_data(e), zframe_size(e), 1024, &d), TY_EPROTO);
    zframe_destroy(&e);

    /* a ROUTER on the libuv loop receives good, garbage and oversize frames */
    zsys_init();
    zsys_set_linger(0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ctx_t c = {.loop = &loop};
    c.router = zsock_new_router("tcp://127.0.0.1:*");
    CHECK(c.router != NULL);
    zsock_t *dealer = zsock_new_dealer(zsock_endpoint(c.router));
    ty_wire_poll_t *p = NULL;
    CHECK_EQ_INT(ty_wire_poll_create(&p, &loop, c.router, on_router, &c), 0);
    zstr_send(dealer, "garbage");
    char big[2048];
    memset(big, 1, sizeof big);
    zsock_send(dealer, "b", big, sizeof big);
    CHECK_EQ_INT(ty_wire_send(dealer, NULL, &env), 0);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_timeout, 10000, 0); /* bounds the test if frames go missing */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(c.got, 1);
    CHECK_EQ_INT(c.rejected, 2);
    /* the reply arrives at the dealer */
    zsock_set_rcvtimeo(dealer, 5000);
    zframe_t *r = zframe_recv(dealer);
    CHECK(r != NULL);
    if (r) {
        CHECK_EQ_INT(ty_wire_decode(zframe_data(r), zframe_size(r), 1024, &d), 0);
        CHECK(d && d->body_case == TY__ENVELOPE__BODY_HEARTBEAT_ACK &&
              d->heartbeat_ack->epoch == 5);
        ty_wire_free(&d);
        zframe_destroy(&r);
    }
    ty_wire_poll_destroy(&p);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    zframe_destroy(&f);
    zsock_destroy(&dealer);
    zsock_destroy(&c.router);
    test_send_under_signals();
    test_drain_budget();
    test_unknown_fields();
    TEST_DONE();
}
