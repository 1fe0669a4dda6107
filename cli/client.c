#include "cli/client.h"

#include "common/err.h"
#include "common/keys.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TY_TRY_MS 2500         /* a master that says nothing this long: try the next one */
#define TY_HOLD_TRY_MS 8000    /* ... for a long-poll, which the master holds up to 5 s */
#define TY_UNAVAIL_WAIT_MS 250 /* between submits the leader refused while etcd is silent */

struct ty_client {
    zsock_t *sock;
    zsock_t *mon;       /* the socket's connection events (a ZeroMQ monitor) */
    int handshook;      /* a connection to a master is up (its handshake done) */
    int64_t connect_ms; /* how long to wait for one (ty_client_set_connect_ms) */
    int64_t connect_by; /* monotonic ms: no connection by then, and the call fails */
    size_t tried;       /* addresses that took no connection in this call */
    int answered;       /* a master took a connection during this call */
    char **eps;         /* the addresses given */
    size_t neps, cur;
    char *endpoint; /* the one connected: one of eps, or where a standby sent us */
    char *list;     /* as given */
    char *reason;   /* the last standby's word on why no master leads */
    uint64_t next_req;
    ty_client_retry_fn on_retry;
    void *retry_arg;
};

void ty_client_on_retry(ty_client_t *c, ty_client_retry_fn fn, void *arg) {
    c->on_retry = fn;
    c->retry_arg = arg;
}

/* The first time a call asks again: tell whoever wants to know. */
static void ty_client_retrying(ty_client_t *c, int *told, const char *why, int64_t deadline) {
    if (!c->on_retry || *told)
        return;
    *told = 1;
    c->on_retry(c->retry_arg, why, ty_now_ms() + (deadline - ty_mono_ms()));
}

static char *ty_trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Connected to ep (another address, or where a standby sent us): its
 * share of the connect timeout starts now. */
static int ty_client_connect(ty_client_t *c, const char *ep) {
    c->handshook = 0;
    c->connect_by = ty_mono_ms() + c->connect_ms / (int64_t)(c->neps ? c->neps : 1);
    return ty_wire_reconnect(c->sock, &c->endpoint, ep);
}

/* What the monitor said since: a handshake done, or a connection gone. */
static void ty_client_events(ty_client_t *c) {
    zmsg_t *m;
    while (c->mon && (zsock_events(c->mon) & ZMQ_POLLIN) && (m = zmsg_recv_nowait(c->mon))) {
        zframe_t *f = zmsg_first(m);
        if (f && zframe_size(f) == 6) {
            uint16_t ev;
            memcpy(&ev, zframe_data(f), 2);
            if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                c->handshook = c->answered = 1;
            else if (ev == ZMQ_EVENT_DISCONNECTED)
                c->handshook = 0;
        }
        zmsg_destroy(&m);
    }
}

void ty_client_set_connect_ms(ty_client_t *c, int64_t ms) { c->connect_ms = ms > 0 ? ms : 1; }

static void ty_client_next(ty_client_t *c);

/* A frame on the socket before until (monotonic ms), or NULL: the time is
 * up, or (*unreachable) the address asked took no connection within its
 * share of connect_ms. */
static zframe_t *ty_client_recv(ty_client_t *c, int64_t until, int *unreachable) {
    *unreachable = 0;
    for (;;) {
        ty_client_events(c);
        int64_t now = ty_mono_ms();
        if (!c->handshook && now >= c->connect_by) {
            *unreachable = 1;
            return NULL;
        }
        if (now >= until)
            return NULL;
        int64_t wait = until - now;
        if (!c->handshook && c->connect_by - now < wait)
            wait = c->connect_by - now;
        zmq_pollitem_t items[2] = {{zsock_resolve(c->sock), 0, ZMQ_POLLIN, 0},
                                   {c->mon ? zsock_resolve(c->mon) : NULL, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, c->mon ? 2 : 1, (long)(wait < 50 ? wait : 50));
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            return zframe_recv_nowait(c->sock);
    }
}

/* The address asked took no connection: 1 when it was the last one to ask
 * in this call, else the next one is asked, with its share of the time.
 * Once some master took a connection in this call (a standby that names
 * no leader yet, a master that then went away to restart), the call waits
 * for its own deadline instead, as for a master that answers late. */
static int ty_client_unreachable(ty_client_t *c) {
    if (!c->answered && ++c->tried >= c->neps)
        return 1;
    if (c->neps > 1)
        ty_client_next(c);
    else
        c->connect_by = ty_mono_ms() + c->connect_ms;
    return 0;
}

/* A call starts: a connection must come within connect_ms (when none is up). */
static void ty_client_begin(ty_client_t *c) {
    ty_client_events(c);
    c->tried = 0;
    c->answered = c->handshook;
    if (!c->handshook)
        c->connect_by = ty_mono_ms() + c->connect_ms / (int64_t)(c->neps ? c->neps : 1);
}

int ty_client_create(ty_client_t **out, const char *endpoints) {
    zsys_init();
    zsys_set_linger(0);
    zsys_handler_set(NULL);
    ty_client_t *c = ty_xcalloc(1, sizeof *c);
    c->list = ty_xstrdup(endpoints ? endpoints : "");
    char *list = ty_xstrdup(endpoints ? endpoints : "");
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *ep = ty_trim(tok);
        if (!*ep)
            continue;
        c->eps = ty_xrealloc(c->eps, (c->neps + 1) * sizeof *c->eps);
        c->eps[c->neps++] = ty_xstrdup(ep);
    }
    free(list);
    c->sock = zsock_new(ZMQ_DEALER);
    c->connect_ms = 2000;
    int rc = c->sock && c->neps ? 0 : TY_EINVAL;
    if (rc == 0) { /* connections and handshakes, to say soon when none comes */
        char mon[64];
        snprintf(mon, sizeof mon, "inproc://trainyard-cli-%p", (void *)c);
        if (zmq_socket_monitor(zsock_resolve(c->sock), mon,
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0) {
            c->mon = zsock_new(ZMQ_PAIR);
            if (c->mon && zsock_connect(c->mon, "%s", mon) != 0)
                zsock_destroy(&c->mon);
        }
    }
    for (size_t i = 0; rc == 0 && i < c->neps; i++)
        if (!ty_wire_endpoint_ok(c->eps[i]))
            rc = TY_EINVAL;
    /* connected to one at a time (the next only when this one fails), at
     * the first call: keys are applied before anything connects */
    if (rc != 0) {
        ty_client_destroy(&c);
        return TY_EINVAL;
    }
    ty_random_bytes(&c->next_req, sizeof c->next_req);
    c->next_req = (c->next_req >> 16) + 1;
    *out = c;
    return 0;
}

void ty_client_destroy(ty_client_t **pc) {
    ty_client_t *c = pc ? *pc : NULL;
    if (!c)
        return;
    if (c->mon) {
        zmq_socket_monitor(zsock_resolve(c->sock), NULL, 0);
        zsock_destroy(&c->mon);
    }
    zsock_destroy(&c->sock);
    for (size_t i = 0; i < c->neps; i++)
        free(c->eps[i]);
    free(c->eps);
    free(c->endpoint);
    free(c->list);
    free(c->reason);
    free(c);
    *pc = NULL;
}

const char *ty_client_endpoint(const ty_client_t *c) {
    return c->endpoint ? c->endpoint : c->eps[c->cur];
}

int ty_client_use_keys(ty_client_t *c, const char *key, const char *master_key, char **why) {
    return ty_keys_client(c->sock, key, master_key, why); /* before the first connect */
}

/* The first call connects. */
static int ty_client_start(ty_client_t *c) {
    return c->endpoint || ty_client_connect(c, c->eps[c->cur]) == 0 ? 0 : TY_EINVAL;
}

const char *ty_client_list(const ty_client_t *c) { return c->list; }

const char *ty_client_reason(const ty_client_t *c) { return c->reason; }

static void ty_sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void ty_client_next(ty_client_t *c) {
    c->cur = (c->cur + 1) % c->neps;
    ty_client_connect(c, c->eps[c->cur]);
}

static int ty_long_poll(const Ty__Envelope *req) {
    return (req->body_case == TY__ENVELOPE__BODY_STATUS && req->status->wait_after) ||
           (req->body_case == TY__ENVELOPE__BODY_LOGS && req->logs->wait);
}

int ty_client_call(ty_client_t *c, Ty__Envelope *req, int timeout_ms, Ty__Envelope **reply) {
    if (ty_client_start(c) != 0)
        return TY_EINVAL;
    ty_client_begin(c);
    req->req_id = c->next_req++;
    int64_t deadline = ty_mono_ms() + timeout_ms;
    int64_t try_ms = ty_long_poll(req) ? TY_HOLD_TRY_MS : TY_TRY_MS;
    int told = 0;
    for (;;) {
        zframe_t *f = ty_wire_encode(req);
        if (zframe_send(&f, c->sock, 0) != 0) {
            zframe_destroy(&f);
            return TY_EIO;
        }
        int64_t now = ty_mono_ms();
        int64_t try_end = now + try_ms < deadline ? now + try_ms : deadline;
        Ty__Envelope *env = NULL;
        int unreachable = 0;
        for (;;) {
            zframe_t *in = ty_client_recv(c, try_end, &unreachable);
            if (!in)
                break;
            int rc = ty_wire_decode(zframe_data(in), zframe_size(in), 256u << 20, &env);
            zframe_destroy(&in);
            if (rc != 0)
                return rc;
            if (env->req_id == req->req_id)
                break;
            ty_wire_free(&env); /* a late reply to an earlier request */
        }
        if (unreachable) { /* ask again, at the next address; none left: say so */
            if (ty_client_unreachable(c))
                return TY_EUNREACH;
            continue;
        }
        if (env && env->body_case == TY__ENVELOPE__BODY_ERROR && env->error->code == TY_EUNAVAIL &&
            ty_mono_ms() + TY_UNAVAIL_WAIT_MS < deadline) {
            /* the leader refused it, storing nothing, while etcd does not
             * answer: ask again; the last refusal is the answer at the deadline */
            free(c->reason);
            c->reason = ty_xstrdup(env->error->message);
            ty_client_retrying(c, &told, c->reason, deadline);
            ty_wire_free(&env);
            ty_sleep_ms(TY_UNAVAIL_WAIT_MS);
            continue;
        }
        if (env && env->body_case != TY__ENVELOPE__BODY_REDIRECT) {
            *reply = env;
            return 0;
        }
        if (ty_mono_ms() >= deadline) {
            if (!env && c->neps > 1)
                ty_client_next(c); /* a caller that asks again asks the next one */
            ty_wire_free(&env);
            return TY_ETIMEOUT;
        }
        if (!env) { /* no answer: ask again, at the next address if there is one */
            ty_client_retrying(c, &told, "no answer from the master yet", deadline);
            if (c->neps > 1)
                ty_client_next(c);
            continue;
        }
        /* a standby names the leader; a leader still rebuilding asks for a moment */
        const Ty__Redirect *rd = env->redirect;
        free(c->reason);
        c->reason = *rd->reason ? ty_xstrdup(rd->reason) : NULL;
        if (rd->starting) {
            ty_sleep_ms(100);
        } else if (ty_wire_connectable(rd->client_ep) && strcmp(rd->client_ep, c->endpoint) != 0) {
            if (ty_client_connect(c, rd->client_ep) != 0)
                ty_client_next(c);
        } else {
            ty_client_retrying(c, &told, c->reason ? c->reason : "no master leads yet", deadline);
            ty_sleep_ms(200); /* no leader known yet: an election is on */
            if (c->neps > 1)
                ty_client_next(c);
        }
        ty_wire_free(&env);
    }
}

int ty_client_batch(ty_client_t *c, Ty__Envelope **reqs, size_t n, int timeout_ms,
                    Ty__Envelope **replies) {
    if (ty_client_start(c) != 0)
        return TY_EINVAL;
    ty_client_begin(c);
    c->tried = c->neps; /* one address: the batch is not sent again elsewhere */
    uint64_t first = c->next_req;
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
        reqs[i]->req_id = c->next_req++;
        zframe_t *f = ty_wire_encode(reqs[i]);
        if (zframe_send(&f, c->sock, 0) != 0) {
            zframe_destroy(&f);
            return TY_EIO;
        }
    }
    int64_t deadline = ty_mono_ms() + timeout_ms;
    size_t got = 0;
    while (got < n) {
        int unreachable = 0;
        zframe_t *in = ty_client_recv(c, deadline, &unreachable);
        if (!in)
            return unreachable ? TY_EUNREACH : TY_ETIMEOUT;
        Ty__Envelope *env = NULL;
        int rc = ty_wire_decode(zframe_data(in), zframe_size(in), 256u << 20, &env);
        zframe_destroy(&in);
        if (rc != 0)
            return rc;
        uint64_t k = env->req_id - first;
        if (env->req_id >= first && k < n && !replies[k]) {
            replies[k] = env;
            got++;
        } else {
            ty_wire_free(&env); /* a late reply to an earlier request */
        }
    }
    return 0;
}
