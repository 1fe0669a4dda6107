/* trainyard-master: leader election, rebuild from etcd, then serve workers
 * and clients on one libuv loop. */
#include "master/master.h"
#include "master/http.h"
#include "master/strikes.h"
#include "master/zap.h"

#include "common/err.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ty_time_t ty_master_now(void) { return (ty_time_t){ty_now_ms(), ty_mono_ms()}; }

static void ty_master_effects(ty_master_t *m);

/* One event into the core, then its effects carried out. */
static void ty_master_step(ty_master_t *m, const ty_ev_t *ev) {
    if (!m->leader || !m->core)
        return;
    ty_core_step(m->core, ev, ty_master_now());
    ty_master_effects(m);
}

typedef struct {
    ty_master_t *m;
    uint64_t flight, term;
    int64_t sent; /* monotonic ms */
} ty_txn_ctx_t;

static void ty_txn_cb(int status, void *arg) {
    ty_txn_ctx_t *x = arg;
    ty_hist_observe(&x->m->etcd_txn, (double)(ty_mono_ms() - x->sent) / 1000.0);
    ty_ev_t ev = {.kind = TY_EV_TXN_DONE, .flight = x->flight, .status = status};
    ty_master_t *m = x->m;
    int current = x->term == m->term && m->core;
    free(x);
    if (current) /* else: for a core that is gone with the lead */
        ty_master_step(m, &ev);
}

void ty_master_send(ty_master_t *m, const ty_fx_t *fx) {
    if (fx->peer_kind != TY_PEER_WORKER && ty_http_is_peer(fx->peer, fx->peer_len)) {
        ty_http_deliver(m->http, fx->peer, fx->peer_len, fx->data, fx->len);
        return;
    }
    zsock_t *sock = fx->peer_kind == TY_PEER_WORKER ? m->wsock : m->csock;
    if (!sock)
        return;
    zframe_t *id = zframe_new(fx->peer, fx->peer_len);
    zframe_t *payload = zframe_new(fx->data, fx->len);
    if (ty_wire_send_frame(&id, sock, 1) != 0 || ty_wire_send_frame(&payload, sock, 0) != 0)
        ty_debug("send dropped: peer gone or queue full");
    zframe_destroy(&payload);
    ty_wire_poll_kick(sock == m->wsock ? m->wpoll : m->cpoll);
}

static void ty_deadline_cb(uv_timer_t *h);

static void ty_arm_deadline(ty_master_t *m) {
    int64_t d = ty_core_deadline(m->core), a = m->api ? ty_api_deadline(m->api) : 0;
    if (a && (!d || a < d))
        d = a;
    if (!d) {
        uv_timer_stop(&m->deadline);
        return;
    }
    int64_t wait = d - ty_mono_ms();
    uv_timer_start(&m->deadline, ty_deadline_cb, (uint64_t)(wait > 0 ? wait : 0), 0);
}

static void ty_forgot(int status, void *arg) {
    (void)arg;
    if (status != 0) /* the entry is checked again when hit, and found gone */
        ty_warn("deleting step cache entries from etcd failed (%s)", ty_strerror(status));
}

static void ty_master_effects(ty_master_t *m) {
    ty_fx_t fx;
    while (m->leader && m->core && ty_core_fx_pop(m->core, &fx)) {
        switch (fx.kind) {
        case TY_FX_SEND:
            ty_master_send(m, &fx);
            break;
        case TY_FX_TXN: {
            ty_txn_ctx_t *x = ty_xcalloc(1, sizeof *x);
            x->m = m;
            x->flight = fx.flight;
            x->term = m->term;
            x->sent = ty_mono_ms();
            if (ty_store_txn(m->store, fx.epoch, fx.seq, fx.puts, fx.nputs, ty_txn_cb, x) != 0)
                ty_txn_cb(TY_EETCD, x);
            break;
        }
        case TY_FX_LOG: /* written by the log thread; follows hear when it is on disk */
            if (m->logw)
                ty_logw_append_to(m->logw, fx.run, fx.task, fx.attempt, fx.series, fx.data, fx.len);
            break;
        case TY_FX_NOTIFY:
            if (m->api)
                ty_api_notify(m->api, fx.run, 0, ty_master_now());
            break;
        case TY_FX_FENCED:
            ty_master_lost_lead(m, "etcd rejected a write: another master leads");
            break;
        case TY_FX_DROP:
            ty_master_drop_old(m, &fx);
            break;
        case TY_FX_CHECK: /* a cache hit: are its blobs still stored? */
            ty_master_check_blobs(m, &fx);
            break;
        case TY_FX_FORGET: /* cache entries whose blobs gc collected */
            if (ty_store_del(m->store, fx.epoch, (const char *const *)fx.shas, fx.nshas, NULL, 0,
                             ty_forgot, NULL) != 0)
                ty_forgot(TY_EUNREACH, NULL);
            break;
        }
        ty_fx_clear(&fx);
    }
    if (m->leader && m->core)
        ty_arm_deadline(m);
}

static void ty_master_effects_cb(void *arg) { ty_master_effects(arg); }

/* A leader whose lease has not been confirmed for a TTL (its process was
 * stopped, or etcd did not answer) may have been replaced: it stops acting
 * before it handles anything more. */
static int ty_lease_stale(ty_master_t *m) {
    if (m->leader && ty_mono_ms() - m->lease_ok_mono > m->o.leader_ttl_s * 1000) {
        ty_master_lost_lead(m, "leader lease not confirmed for a TTL");
        return 1;
    }
    return 0;
}

static void ty_deadline_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    if (ty_lease_stale(m) || !m->core)
        return;
    ty_time_t now = ty_master_now();
    if (m->api)
        ty_api_expire(m->api, now);
    ty_ev_t ev = {.kind = TY_EV_TICK};
    ty_master_step(m, &ev);
}

static void ty_flush(ty_master_t *m) {
    if (!m->leader || !m->core || !m->api)
        return; /* not leading and serving yet */
    ty_ev_t ev = {.kind = TY_EV_FLUSH};
    ty_master_step(m, &ev);
}

static void ty_check_cb(uv_check_t *h) { ty_flush(h->data); }
static void ty_prepare_cb(uv_prepare_t *h) { ty_flush(h->data); }

/* A message not heard for who sent it: counted, kept for info, logged (once
 * in 30 s per socket while the reason stays the same) and dropped. */
static void ty_refuse(ty_master_t *m, int client, const char *who, const char *note, zframe_t **id,
                      Ty__Envelope **env) {
    char *last = m->wrong_id[client];
    m->info.auth_refused++;
    if (strcmp(who, last) != 0 || ty_mono_ms() - m->wrong_logged[client] > 30000) {
        ty_warn("refused a message from %s%s (said once in 30 s)", who, note);
        m->wrong_logged[client] = ty_mono_ms();
    }
    snprintf(last, sizeof m->wrong_id[client], "%s", who);
    m->info.last_auth_refused = last;
    ty_wire_free(env);
    zframe_destroy(id);
}

/* A message of a key revoked since its handshake: not heard; a client is
 * told. */
static int ty_revoked_msg(ty_master_t *m, zsock_t *sock, zframe_t **id, Ty__Envelope **env,
                          const ty_wire_peer_t *from) {
    int client = sock == m->csock;
    if (client) {
        char msg[300];
        snprintf(msg, sizeof msg, "the master no longer accepts your key (%s): it was revoked",
                 from->user);
        Ty__ErrorReply e = TY__ERROR_REPLY__INIT;
        e.code = TY_EPERM;
        e.message = msg;
        Ty__Envelope out = TY__ENVELOPE__INIT;
        out.body_case = TY__ENVELOPE__BODY_ERROR;
        out.error = &e;
        ty_master_send_env(m, 1, zframe_data(*id), zframe_size(*id), (*env)->req_id, &out);
    }
    char who[sizeof m->wrong_id[0]];
    snprintf(who, sizeof who, "%s '%.64s' from %.48s: its key was revoked",
             client ? "user" : "worker", from->user, *from->addr ? from->addr : "?");
    ty_refuse(m, client, who, "", id, env);
    return TY_EPERM;
}

/* Receive one message from a ROUTER socket; counts and logs rejected ones.
 * Returns 0 with *id and *env (caller frees), *from (who sent it) and
 * *admin (whether its key is an admin's now), or a negative code. */
/* A malformed message from who (a ZeroMQ peer): a strike; enough of them
 * ban it (master/strikes.h). */
static void ty_strike(ty_master_t *m, zsock_t *sock, const ty_wire_peer_t *from, zframe_t *id) {
    char peer[160];
    ty_strikes_peer(peer, from->key, id ? zframe_data(id) : NULL, id ? zframe_size(id) : 0);
    int64_t now = ty_mono_ms();
    if (ty_strikes_add(m->strikes, peer, now))
        ty_warn("%s socket: %s%s%s from %s sent %d malformed messages within %d s: not heard for "
                "%d s",
                sock == m->wsock ? "worker" : "client", *from->user ? "'" : "", from->user,
                *from->user ? "'" : "a peer", *from->addr ? from->addr : "?", TY_STRIKES_MAX,
                TY_STRIKES_WINDOW_MS / 1000, TY_STRIKES_BAN_MS / 1000);
    m->info.peers_banned = ty_strikes_count_banned(m->strikes, now);
}

static int ty_recv(ty_master_t *m, zsock_t *sock, zframe_t **id, Ty__Envelope **env,
                   ty_wire_peer_t *from, int *admin) {
    int rc = ty_wire_recv_as(sock, 1, m->o.max_frame, id, env, from);
    const char *user = from->user;
    *admin = 0;
    if (rc != TY_ENOENT) { /* a banned peer is not heard at all */
        char peer[160];
        ty_strikes_peer(peer, from->key, *id ? zframe_data(*id) : NULL, *id ? zframe_size(*id) : 0);
        if (ty_strikes_banned(m->strikes, peer, ty_mono_ms())) {
            m->info.banned_dropped++;
            if (rc == 0)
                ty_wire_free(env);
            zframe_destroy(id);
            return TY_EPERM;
        }
    }
    if (rc == 0 && m->zap &&
        !ty_zap_name(m->zap, sock == m->wsock ? "worker" : "client", from->key, admin))
        return ty_revoked_msg(m, sock, id, env, from);
    if (rc == 0 && m->zap && sock == m->wsock &&
        (zframe_size(*id) != strlen(user) || memcmp(zframe_data(*id), user, strlen(user)) != 0)) {
        /* a worker is its key: one that speaks under another worker's id is not heard */
        char who[sizeof m->wrong_id[0]];
        snprintf(who, sizeof who, "worker '%.*s': the key of '%s'",
                 (int)(zframe_size(*id) > 64 ? 64 : zframe_size(*id)),
                 (const char *)zframe_data(*id), user);
        ty_refuse(m, 0, who, ", a worker id that is not its key's name", id, env);
        return TY_EPROTO;
    }
    if (rc == 0)
        return 0;
    if (rc == TY_ETOOBIG)
        m->info.rejected_size++;
    else if (rc == TY_EPROTO)
        m->info.rejected_decode++;
    if (rc != TY_ENOENT) {
        ty_warn("%s socket: rejected a message: %s", sock == m->wsock ? "worker" : "client",
                ty_strerror(rc));
        ty_strike(m, sock, from, *id);
    }
    zframe_destroy(id);
    return rc;
}

/* ---- not serving: standing by, or leading and still rebuilding ---- */

void ty_master_send_env(ty_master_t *m, int client, const uint8_t *peer, size_t peer_len,
                        uint64_t req_id, Ty__Envelope *env) {
    env->req_id = req_id;
    env->version = 1;
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    ty_fx_t fx = {.peer_kind = client ? TY_PEER_CLIENT : TY_PEER_WORKER,
                  .peer = (uint8_t *)peer,
                  .peer_len = peer_len,
                  .data = buf,
                  .len = len};
    ty_master_send(m, &fx);
    free(buf);
}

static void ty_send_env(ty_master_t *m, zsock_t *sock, zframe_t *id, uint64_t req_id,
                        Ty__Envelope *env) {
    ty_master_send_env(m, sock != m->wsock, zframe_data(id), zframe_size(id), req_id, env);
}

/* The holder's value split into its lines (node, client and worker
 * endpoints); empty strings when unknown.  Returns a heap copy to free. */
static char *ty_holder_parts(const char *holder, const char *parts[3]) {
    char *copy = ty_xstrdup(holder ? holder : "");
    char *p = copy;
    for (int i = 0; i < 3; i++) {
        parts[i] = p;
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p += strlen(p);
        }
    }
    return copy;
}

/* A standby names the leader; a leader still rebuilding its state says so. */
static void ty_redirect(ty_master_t *m, zsock_t *sock, zframe_t *id, uint64_t req_id) {
    const char *parts[3];
    char *copy = ty_holder_parts(m->leader ? NULL : m->holder, parts);
    Ty__Redirect rd = TY__REDIRECT__INIT;
    rd.starting = m->leader;
    rd.leader = (char *)(m->leader ? m->o.node_id : parts[0]);
    rd.client_ep = (char *)(m->leader ? m->o.client_ep : parts[1]);
    rd.worker_ep = (char *)(m->leader ? m->o.worker_ep : parts[2]);
    char reason[200];
    if (!m->leader && !*parts[0]) {
        snprintf(reason, sizeof reason, "no master leads yet (%s)",
                 *m->election_error ? m->election_error : "an election is on");
        rd.reason = reason;
    }
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REDIRECT;
    env.redirect = &rd;
    ty_send_env(m, sock, id, req_id, &env);
    free(copy);
}

static void ty_standby_info(ty_master_t *m, zframe_t *id, uint64_t req_id) {
    const char *parts[3];
    char *copy = ty_holder_parts(m->holder, parts);
    Ty__InfoReply ir = TY__INFO_REPLY__INIT;
    ir.node_id = m->o.node_id;
    ir.pid = (uint32_t)getpid();
    ir.leader = m->leader; /* leading, still rebuilding its state */
    ir.leader_node = (char *)(m->leader ? m->o.node_id : parts[0]);
    ir.frames_rejected_size = m->info.rejected_size;
    ir.frames_rejected_decode = m->info.rejected_decode;
    ir.curve = m->info.curve;
    ir.auth_refused = m->info.auth_refused;
    ir.last_auth_refused = (char *)(m->info.last_auth_refused ? m->info.last_auth_refused : "");
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_INFO_REPLY;
    env.info_reply = &ir;
    ty_send_env(m, m->csock, id, req_id, &env);
    free(copy);
}

static int ty_serving(ty_master_t *m) { return m->leader && m->api && !ty_lease_stale(m); }

static void ty_on_worker(void *arg) {
    ty_master_t *m = arg;
    zframe_t *id = NULL;
    Ty__Envelope *env = NULL;
    ty_wire_peer_t from;
    int admin;
    if (ty_recv(m, m->wsock, &id, &env, &from, &admin) != 0)
        return;
    if (!ty_serving(m)) {
        if (!m->leader) /* while rebuilding, the worker's next heartbeat is answered */
            ty_redirect(m, m->wsock, id, env->req_id);
        ty_wire_free(&env);
        zframe_destroy(&id);
        return;
    }
    if (!ty_master_artifact_msg(m, 0, zframe_data(id), zframe_size(id), &env)) {
        ty_core_stats_t before, after; /* a message the core refused is a strike too */
        ty_core_stats(m->core, &before);
        ty_master_worker_msg(m, zframe_data(id), zframe_size(id), env);
        ty_core_stats(m->core, &after);
        if (after.rejected_msgs > before.rejected_msgs)
            ty_strike(m, m->wsock, &from, id);
    }
    ty_wire_free(&env);
    zframe_destroy(&id);
}

void ty_master_core_event(ty_master_t *m, const ty_ev_t *ev) {
    if (ty_serving(m))
        ty_master_step(m, ev);
}

void ty_master_worker_msg(ty_master_t *m, const uint8_t *peer, size_t peer_len,
                          const Ty__Envelope *env) {
    if (!ty_serving(m))
        return;
    ty_ev_t ev = {.kind = TY_EV_WORKER_MSG, .peer = peer, .peer_len = peer_len, .msg = env};
    ty_master_step(m, &ev);
}

static void ty_on_client(void *arg) {
    ty_master_t *m = arg;
    zframe_t *id = NULL;
    Ty__Envelope *env = NULL;
    ty_wire_peer_t from;
    int admin;
    if (ty_recv(m, m->csock, &id, &env, &from, &admin) != 0)
        return;
    if (!ty_serving(m)) {
        if (env->body_case == TY__ENVELOPE__BODY_INFO)
            ty_standby_info(m, id, env->req_id);
        else
            ty_redirect(m, m->csock, id, env->req_id);
        ty_wire_free(&env);
        zframe_destroy(&id);
        return;
    }
    if (ty_master_artifact_msg(m, 1, zframe_data(id), zframe_size(id), &env)) {
        ty_wire_free(&env);
        zframe_destroy(&id);
        return;
    }
    int64_t t0 = ty_mono_ms();
    ty_caller_t who = {.user = from.user, .addr = *from.addr ? from.addr : "local", .admin = admin};
    ty_api_request(m->api, zframe_data(id), zframe_size(id), env, &who, ty_master_now());
    ty_master_effects(m);
    int64_t held = ty_mono_ms() - t0;
    if (held >= 200) /* the loop did nothing else meanwhile (heartbeats, the lease) */
        ty_warn("a %s request held the loop for %lld ms",
                env->body_case == TY__ENVELOPE__BODY_SUBMIT ? "submit" : "client", (long long)held);
    ty_wire_free(&env);
    zframe_destroy(&id);
}

/* The HTTP server's requests go to the same handler as the client socket's. */
static int ty_http_request(void *arg, const uint8_t *peer, size_t peer_len, const Ty__Envelope *req,
                           const ty_caller_t *who) {
    ty_master_t *m = arg;
    if (!ty_serving(m))
        return -1;
    ty_api_request(m->api, peer, peer_len, req, who, ty_master_now());
    return 0;
}

static void ty_http_metrics(void *arg, ty_buf_t *out) { ty_master_expose(arg, out); }

static char *ty_http_blob(void *arg, const char *sha256) {
    ty_master_t *m = arg;
    return m->blobs ? ty_blobs_path(m->blobs, sha256) : NULL;
}

static int ty_http_start(ty_master_t *m) {
    const char *bind = m->o.http_bind ? m->o.http_bind : "127.0.0.1:7080";
    if (strcmp(bind, "off") == 0)
        return 0;
    ty_http_opts_t ho = {bind, m->o.http_tokens, m->o.http_cert, m->o.http_key, m->o.key == NULL};
    ty_http_hooks_t hooks = {ty_http_request, ty_master_effects_cb, ty_http_metrics, ty_http_blob,
                             m};
    char *why = NULL;
    if (ty_http_create(&m->http, m->loop, &ho, &hooks, &why) != 0) {
        int fatal = m->o.http_bind != NULL; /* the default address in use: none, said once */
        if (fatal)
            ty_error("%s", why);
        else
            ty_warn("%s; no HTTP server (give --http-bind HOST:PORT, or off)", why);
        free(why);
        return fatal ? -1 : 0;
    }
    ty_info("http: listening on %s://%.*s:%d/ (the API under /api/v1/)",
            ty_http_tls(m->http) ? "https" : "http", (int)(strrchr(bind, ':') - bind), bind,
            ty_http_port(m->http));
    return 0;
}

static void ty_logs_written(const char *run, void *arg) {
    ty_master_t *m = arg;
    if (!m->leader || !m->api)
        return;
    ty_api_notify(m->api, run, 1, ty_master_now());
    ty_master_effects(m);
}

/* Both sockets are bound from the start: a standby answers too. */
/* CURVE on both sockets, before they bind: the master's certificate, and
 * the ZAP handler that knows whose keys may connect (domains worker and
 * client).  Without a key (--insecure): plaintext, loopback only. */
/* A worker whose key went is lost now, not when its lease runs out. */
static void ty_key_revoked(void *arg, const char *domain, const char *name) {
    ty_master_t *m = arg;
    if (strcmp(domain, "worker") != 0)
        return; /* a user's requests are refused from now on */
    ty_ev_t ev = {.kind = TY_EV_REVOKED, .key = name};
    ty_master_core_event(m, &ev);
    ty_master_effects(m);
}

static int ty_secure(ty_master_t *m) {
    if (!m->o.key) {
        ty_warn("insecure: no keys (--insecure); plaintext on %s and %s, loopback only",
                m->o.worker_ep, m->o.client_ep);
        return 0;
    }
    char *why = NULL;
    zcert_t *cert = ty_keys_load_secret(m->o.key, &why);
    if (!cert) {
        ty_error("%s", why);
        free(why);
        return -1;
    }
    if (ty_zap_create(&m->zap, m->loop, m->o.client_keys, m->o.worker_keys, m->o.admin_keys,
                      &m->info, ty_key_revoked, m) != 0) {
        zcert_destroy(&cert);
        return -1;
    }
    zsock_t *socks[2] = {m->wsock, m->csock};
    const char *domains[2] = {"worker", "client"};
    for (int i = 0; i < 2; i++) {
        zcert_apply(cert, socks[i]);
        zsock_set_curve_server(socks[i], 1);
        zsock_set_zap_domain(socks[i], domains[i]);
    }
    if (ty_zap_watch(m->zap, m->loop, m->wsock, "worker") != 0 ||
        ty_zap_watch(m->zap, m->loop, m->csock, "client") != 0)
        ty_warn("cannot watch the sockets' handshakes: plaintext peers are not counted");
    m->info.curve = 1;
    ty_info("CURVE on both sockets: users' keys from %s, workers' from %s, admins' from %s",
            m->o.client_keys, m->o.worker_keys, m->o.admin_keys ? m->o.admin_keys : "(none)");
    zcert_destroy(&cert);
    return 0;
}

static int ty_bind(ty_master_t *m) {
    m->wsock = zsock_new(ZMQ_ROUTER);
    m->csock = zsock_new(ZMQ_ROUTER);
    if (ty_secure(m) != 0)
        return -1;
    /* a restarted worker takes its id over; with keys, an id is its key's and
     * not handed to a second connection */
    zsock_set_router_handover(m->wsock, m->o.key ? 0 : 1);
    zsock_set_maxmsgsize(m->wsock, (int64_t)m->o.max_frame * 4);
    zsock_set_maxmsgsize(m->csock, (int64_t)m->o.max_frame * 4);
    zsock_set_sndhwm(m->wsock, 100000);
    zsock_set_rcvhwm(m->wsock, 100000);
    if (zsock_bind(m->wsock, "%s", m->o.worker_ep) < 0 ||
        zsock_bind(m->csock, "%s", m->o.client_ep) < 0) {
        ty_error("cannot bind %s / %s: %s", m->o.worker_ep, m->o.client_ep,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    ty_wire_poll_create(&m->wpoll, m->loop, m->wsock, ty_on_worker, m);
    ty_wire_poll_create(&m->cpoll, m->loop, m->csock, ty_on_client, m);
    if (ty_logw_create(&m->logw, m->loop, m->o.data_dir, ty_logs_written, m) != 0) {
        ty_error("cannot start the log writer");
        return -1;
    }
    return 0;
}

/* etcd's silence as the lease keep-alives see it: when the first one after
 * the last confirmed one left (they leave every TTL/3), or 0 while every
 * keep-alive sent was answered. */
static int64_t ty_store_quiet_since(void *arg) {
    ty_master_t *m = arg;
    if (m->lease_ka_sent <= m->lease_ok_mono)
        return 0;
    return m->lease_ok_mono + (int64_t)m->o.leader_ttl_s * 1000 / 3;
}

static void ty_serve(ty_master_t *m) {
    ty_api_shell_t shell = {m->store,
                            ty_master_now,
                            ty_master_effects_cb,
                            m,
                            {(size_t)m->o.max_pl_bytes, (unsigned)m->o.max_pl_depth,
                             (unsigned)m->o.max_pl_tasks, (unsigned)m->o.max_map_keys},
                            m->blobs,
                            m->o.gc_grace_s * 1000,
                            ty_store_quiet_since};
    ty_api_create(&m->api, m->core, m->o.data_dir, &m->info, &shell);
    ty_blobs_reset(m->blobs); /* uploads of an earlier leadership start again */
    ty_ev_t ev = {.kind = TY_EV_SERVE};
    ty_master_step(m, &ev);
    ty_core_stats_t s;
    ty_core_stats(m->core, &s);
    ty_info("state rebuilt: %zu runs, %zu workers known", s.runs, s.workers);
    ty_info("serving workers on %s and clients on %s", m->o.worker_ep, m->o.client_ep);
}

/* Rebuild: the txn chain's number, worker records (running tasks name
 * them), then runs and their tasks (a run's key sorts before its tasks'). */
static void ty_loaded(int status, const ty_store_kv_t *kvs, size_t n, void *arg);

typedef struct {
    ty_master_t *m;
    uint64_t term;
} ty_load_ctx_t;

static void ty_load_step(ty_master_t *m, const char *prefix) {
    ty_load_ctx_t *x = ty_xcalloc(1, sizeof *x);
    x->m = m;
    x->term = m->term;
    if (ty_store_range(m->store, prefix, ty_loaded, x) != 0)
        ty_loaded(TY_EETCD, NULL, 0, x);
}

static void ty_loaded(int status, const ty_store_kv_t *kvs, size_t n, void *arg) {
    ty_load_ctx_t *x = arg;
    ty_master_t *m = x->m;
    int current = x->term == m->term && m->leader && m->core && !m->stopping;
    free(x);
    if (!current)
        return; /* leadership ended meanwhile */
    if (status != 0) {
        ty_master_lost_lead(m, "cannot load state from etcd");
        return;
    }
    ty_time_t now = ty_master_now();
    for (size_t i = 0; i < n; i++) {
        ty_ev_t ev = {.kind = TY_EV_LOAD, .key = kvs[i].key, .data = kvs[i].val, .len = kvs[i].len};
        ty_core_step(m->core, &ev, now);
    }
    static const char *const stages[] = {"workers/", "runs/", "cache/", "models/", "schedules/"};
    if (m->load_stage < 5)
        ty_load_step(m, stages[m->load_stage++]);
    else
        ty_serve(m);
}

static void ty_elected(ty_master_t *m) {
    ty_core_opts_t co;
    ty_core_opts_default(&co);
    co.heartbeat_ms = m->o.heartbeat_ms;
    co.worker_lease_ms = m->o.worker_lease_ms;
    co.store_stall_ms = m->o.store_stall_ms;
    co.lost_limit = m->o.lost_limit;
    co.retain_runs = m->o.retain_runs;
    co.retain_tasks = m->o.retain_tasks;
    co.retain_ms = m->o.retain_s * 1000;
    co.backfill_ms = m->o.backfill_s * 1000;
    co.history_ms = m->o.history_s * 1000;
    if (co.history_ms && co.history_ms < 3600 * 1000)
        co.gc_every_ms = co.history_ms / 2 > 0 ? co.history_ms / 2 : 1; /* short: tests */
    co.epoch = m->epoch;
    ty_random_bytes(&co.seed, sizeof co.seed);
    m->info.epoch = m->epoch;
    if (ty_core_create(&m->core, &co) != 0) {
        ty_error("bad core options");
        m->exit_code = 2;
        uv_stop(m->loop);
        return;
    }
    ty_load_step(m, "leader.seq"); /* the chain of txns carries on from here */
}

static void ty_stop_cb(int status, void *arg) {
    (void)status;
    uv_stop(arg);
}

static void ty_stop_timer_cb(uv_timer_t *h) { uv_stop(h->loop); }

/* SIGHUP: the key directories read again now. */
static void ty_sighup_cb(uv_signal_t *h, int sig) {
    (void)sig;
    ty_master_t *m = h->data;
    ty_http_reload(m->http);
    if (m->zap)
        ty_zap_reload(m->zap, 1);
    else
        ty_info("SIGHUP: no keys to read again (--insecure)");
}

static void ty_signal_cb(uv_signal_t *h, int sig) {
    ty_master_t *m = h->data;
    ty_info("signal %d: shutting down", sig);
    uv_signal_stop(&m->sigint);
    uv_signal_stop(&m->sigterm);
    /* hand leadership over at once; give etcd two seconds */
    uv_timer_start(&m->stop, ty_stop_timer_cb, 2000, 0);
    if (!m->leader || m->store->ops->lease_revoke(m->store, m->lease_id, ty_stop_cb, m->loop) != 0)
        uv_stop(m->loop);
}

static void ty_close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv) {
    ty_master_t m;
    memset(&m, 0, sizeof m);
    ty_log_level_t lvl = TY_LOG_INFO;
    int done = ty_master_opts_parse(&m.o, argc, argv, &lvl);
    if (done >= 0)
        return done;
    ty_log_init("master", lvl);
    char *logs = ty_xasprintf("%s/logs", m.o.data_dir);
    int rc = ty_mkdirs(logs);
    free(logs);
    if (rc != 0) {
        ty_error("cannot create %s/logs: %s", m.o.data_dir, ty_strerror(rc));
        return ty_master_opts_free(&m.o, 1);
    }

    /* Transfer buffers (256 KiB chunks, 1 MiB ranges) are allocated in the
     * thread pool and freed on the loop: a fixed mmap threshold gives each
     * back to the system when freed, instead of letting glibc raise the
     * threshold and keep them in per-thread arenas (RSS during transfers). */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024);
    zsys_init();
    zsys_set_linger(100);
    zsys_handler_set(NULL); /* libuv handles signals */
    m.loop = uv_default_loop();
    if (ty_etcd_create(&m.etcd, m.loop, m.o.etcd) != 0) {
        ty_error("bad --etcd '%s'", m.o.etcd);
        return ty_master_opts_free(&m.o, 2);
    }
    if (m.o.etcd_cacert || m.o.etcd_cert || m.o.etcd_key) {
        char *why = NULL;
        if (ty_etcd_set_tls(m.etcd, m.o.etcd_cacert, m.o.etcd_cert, m.o.etcd_key, &why) != 0) {
            ty_error("%s", why);
            free(why);
            ty_etcd_destroy(&m.etcd);
            uv_run(m.loop, UV_RUN_DEFAULT);
            return ty_master_opts_free(&m.o, 2);
        }
        ty_info("etcd over TLS (client certificate %s)", m.o.etcd_cert);
    }
    if (ty_store_etcd_create(&m.store, m.etcd, m.o.prefix, m.o.compact_every,
                             m.o.compact_every / 10) != 0) {
        ty_error("cannot create the etcd store");
        return ty_master_opts_free(&m.o, 2);
    }
    m.info.node_id = m.o.node_id;
    uv_check_init(m.loop, &m.check);
    uv_prepare_init(m.loop, &m.prepare);
    m.check.data = m.prepare.data = &m;
    uv_check_start(&m.check, ty_check_cb);
    uv_prepare_start(&m.prepare, ty_prepare_cb);
    uv_timer_init(m.loop, &m.deadline);
    uv_timer_init(m.loop, &m.keepalive);
    uv_timer_init(m.loop, &m.stop);
    uv_timer_init(m.loop, &m.stepdown);
    uv_timer_init(m.loop, &m.retry);
    m.deadline.data = m.keepalive.data = m.stop.data = m.stepdown.data = m.retry.data = &m;
    uv_signal_init(m.loop, &m.sigint);
    uv_signal_init(m.loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, ty_signal_cb, SIGINT);
    uv_signal_start(&m.sigterm, ty_signal_cb, SIGTERM);
    uv_signal_init(m.loop, &m.sighup);
    m.sighup.data = &m;
    uv_signal_start(&m.sighup, ty_sighup_cb, SIGHUP);
    uv_unref((uv_handle_t *)&m.sighup);

    if (!m.o.store_dir)
        m.o.store_dir = ty_xasprintf("%s/store", m.o.data_dir);
    ty_info("starting as %s, etcd %s, prefix %s, artifacts in %s", m.o.node_id, m.o.etcd,
            m.o.prefix, m.o.store_dir);
    ty_strikes_create(&m.strikes);
    if (ty_master_blobs_start(&m) != 0)
        m.exit_code = 1;
    else if (ty_bind(&m) != 0 || ty_http_start(&m) != 0)
        m.exit_code = 1;
    else
        ty_election_start(&m, ty_elected);
    if (m.exit_code == 0)
        uv_run(m.loop, UV_RUN_DEFAULT);

    /* teardown */
    ty_election_stop(&m);
    /* from here no callback acts as the leader: reads still out (the state
     * being loaded) are answered unreachable or not current, and nothing
     * follows them, even from the loop turns ty_blobs_destroy runs (a load
     * that completed there used to make a request handler nobody freed) */
    m.stopping = 1;
    m.leader = 0;
    m.term++;
    ty_wire_poll_destroy(&m.wpoll);
    ty_wire_poll_destroy(&m.cpoll);
    ty_http_destroy(&m.http);
    ty_zap_destroy(&m.zap);
    ty_strikes_destroy(&m.strikes);
    ty_logw_destroy(&m.logw); /* what is queued is written first */
    ty_api_destroy(&m.api);
    ty_blobs_destroy(&m.blobs); /* its work in the pool finishes first */
    ty_store_destroy(&m.store);
    ty_etcd_destroy(&m.etcd);
    uv_walk(m.loop, ty_close_walk, NULL);
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_loop_close(m.loop);
    ty_core_destroy(&m.core);
    zsock_destroy(&m.wsock);
    zsock_destroy(&m.csock);
    ty_info("stopped");
    ty_master_opts_free(&m.o, 0);
    free(m.holder);
    return m.exit_code;
}
