/* The worker's session with the master: registration (reporting running
 * attempts and unacknowledged results), heartbeats, master loss, and the
 * messages the master sends. */
#include "worker/usage.h"
#include "worker/worker.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/parts.h"

#include <stdlib.h>
#include <string.h>

void ty_wk_send(ty_wk_t *wk, Ty__Envelope *env) {
    if (ty_wire_send(wk->sock, NULL, env) != 0)
        ty_warn("send to master failed: %s", zmq_strerror(zmq_errno()));
    ty_wire_poll_kick(wk->poll);
}

void ty_wk_result(ty_wk_t *wk, Ty__TaskResult *res) {
    size_t len = ty__task_result__get_packed_size(res);
    uint8_t *buf = ty_xmalloc(len);
    ty__task_result__pack(res, buf);
    ty_unacked_t *u = ty_xcalloc(1, sizeof *u);
    u->res = ty__task_result__unpack(NULL, len, buf);
    free(buf);
    u->next = wk->unacked;
    wk->unacked = u;
    u->sent_at = ty_mono_ms();
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_RESULT;
    env.result = res;
    ty_wk_send(wk, &env);
}

/* Results the master has not acknowledged within three heartbeats go again;
 * the master acknowledges and ignores duplicates. */
static void ty_resend_unacked(ty_wk_t *wk) {
    int64_t now = ty_mono_ms();
    for (ty_unacked_t *u = wk->unacked; u; u = u->next) {
        if (now - u->sent_at < 3 * wk->heartbeat_ms)
            continue;
        u->sent_at = now;
        Ty__Envelope env = TY__ENVELOPE__INIT;
        env.body_case = TY__ENVELOPE__BODY_RESULT;
        env.result = u->res;
        ty_wk_send(wk, &env);
    }
}

static void ty_ack(ty_wk_t *wk, const Ty__TaskRef *ref) {
    for (ty_unacked_t **pp = &wk->unacked; *pp; pp = &(*pp)->next) {
        Ty__TaskRef *r = (*pp)->res->ref;
        if (r && r->attempt == ref->attempt && strcmp(r->run_id, ref->run_id) == 0 &&
            strcmp(r->task, ref->task) == 0) {
            ty_unacked_t *u = *pp;
            *pp = u->next;
            ty__task_result__free_unpacked(u->res, NULL);
            free(u);
            return;
        }
    }
}

static void ty_register(ty_wk_t *wk) {
    Ty__Resources res = TY__RESOURCES__INIT;
    res.cpus = wk->cpus;
    res.mem_mb = wk->mem_mb;
    res.gpus = wk->gpus;
    res.labels = wk->labels;
    res.n_labels = wk->nlabels;
    Ty__Register reg = TY__REGISTER__INIT;
    reg.worker_id = wk->id;
    reg.total = &res;
    reg.hostname = wk->hostname;
    reg.address = wk->address ? wk->address : (char *)"";
    size_t nrun = 0, nun = 0;
    reg.running = ty_exec_refs(wk, &nrun);
    reg.n_running = nrun;
    for (ty_unacked_t *u = wk->unacked; u; u = u->next)
        nun++;
    reg.seen_epoch = wk->seen_epoch;
    reg.seen_seq = wk->seen_seq;
    reg.unacked = ty_xcalloc(nun, sizeof *reg.unacked);
    for (ty_unacked_t *u = wk->unacked; u; u = u->next)
        reg.unacked[reg.n_unacked++] = u->res;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    ty_wk_send(wk, &env);
    free(reg.running);
    free(reg.unacked);
}

/* ---- following the leader ---- */

static int ty_wk_connect_to(ty_wk_t *wk, const char *ep) {
    if (ty_wire_reconnect(wk->sock, &wk->connected, ep) != 0)
        return TY_EINVAL;
    wk->switched_at = ty_mono_ms();
    wk->registered = 0; /* the next heartbeat tick registers there */
    return 0;
}

int ty_wk_connect(ty_wk_t *wk) {
    char *list = ty_xstrdup(wk->master_ep);
    for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        wk->eps = ty_xrealloc(wk->eps, (wk->neps + 1) * sizeof *wk->eps);
        wk->eps[wk->neps++] = ty_xstrdup(tok);
    }
    free(list);
    for (size_t i = 0; i < wk->neps; i++)
        if (!ty_wire_endpoint_ok(wk->eps[i])) {
            ty_error("bad master address '%s' (want tcp://HOST:PORT)", wk->eps[i]);
            return TY_EINVAL;
        }
    if (!wk->neps || ty_wk_connect_to(wk, wk->eps[0]) != 0) {
        ty_error("cannot connect to %s", wk->neps ? wk->eps[0] : "(no master address)");
        return TY_EINVAL;
    }
    return 0;
}

static void ty_wk_next(ty_wk_t *wk, const char *why) {
    wk->cur = (wk->cur + 1) % wk->neps;
    ty_info("%s: trying the master at %s", why, wk->eps[wk->cur]);
    ty_wk_connect_to(wk, wk->eps[wk->cur]);
}

/* A standby's answer: go where it says the leader is (an address a worker
 * can connect to), or to the next address when it knows of none. */
static void ty_on_redirect(ty_wk_t *wk, const Ty__Redirect *rd) {
    const char *ep = rd->worker_ep;
    /* While no master leads (etcd unreachable, an election on) or the new
     * leader rebuilds, nobody can have given this worker's attempts up (that
     * takes a write to etcd by a leader): its tasks keep running. */
    if (rd->starting || !*rd->leader)
        wk->last_master = ty_mono_ms();
    if (rd->starting)
        return; /* the leader, rebuilding: it answers the next heartbeat */
    if (ty_wire_connectable(ep)) {
        if (strcmp(ep, wk->connected) != 0) {
            ty_info("the master at %s stands by; the leader %s is at %s", wk->connected, rd->leader,
                    ep);
            ty_wk_connect_to(wk, ep);
        }
    } else if (wk->neps > 1 && ty_mono_ms() - wk->switched_at > wk->heartbeat_ms) {
        ty_wk_next(wk, "the master stands by and knows no leader yet");
    }
}

void ty_wk_forget_masters(ty_wk_t *wk) {
    for (size_t i = 0; i < wk->neps; i++)
        free(wk->eps[i]);
    free(wk->eps);
    wk->eps = NULL;
    wk->neps = 0;
    free(wk->connected);
    wk->connected = NULL;
}

static void ty_on_message(void *arg) {
    ty_wk_t *wk = arg;
    Ty__Envelope *env = NULL;
    int rc = ty_wire_recv(wk->sock, 0, 64u << 20, NULL, &env);
    if (rc != 0) {
        if (rc != TY_ENOENT)
            ty_warn("bad message from master: %s", ty_strerror(rc));
        return;
    }
    if (env->body_case == TY__ENVELOPE__BODY_REDIRECT) {
        /* a standby's word: a worker cut off from a leader still stops its tasks */
        ty_on_redirect(wk, env->redirect);
        ty_wire_free(&env);
        return;
    }
    wk->last_master = ty_mono_ms();
    if (env->epoch > wk->seen_epoch || (env->epoch == wk->seen_epoch && env->seq > wk->seen_seq)) {
        wk->seen_epoch = env->epoch;
        wk->seen_seq = env->seq;
    }
    switch (env->body_case) {
    case TY__ENVELOPE__BODY_REGISTER_ACK:
        if (!wk->registered)
            ty_info("registered with master %s (epoch %llu)", wk->connected,
                    (unsigned long long)env->register_ack->epoch);
        wk->registered = 1;
        if (env->register_ack->epoch > wk->epoch)
            wk->epoch = env->register_ack->epoch;
        if (env->register_ack->heartbeat_ms &&
            (int64_t)env->register_ack->heartbeat_ms != wk->heartbeat_ms) {
            wk->heartbeat_ms = env->register_ack->heartbeat_ms;
            uv_timer_set_repeat(&wk->hb, (uint64_t)wk->heartbeat_ms);
        }
        if (env->register_ack->lease_ms)
            wk->lease_ms = env->register_ack->lease_ms;
        break;
    case TY__ENVELOPE__BODY_HEARTBEAT_ACK:
        if (env->heartbeat_ack->epoch > wk->epoch)
            wk->epoch = env->heartbeat_ack->epoch;
        break;
    case TY__ENVELOPE__BODY_REREGISTER:
        if (wk->stopping)
            break; /* deregistered: stay gone */
        ty_info("master asks to re-register (epoch %llu)",
                (unsigned long long)env->reregister->epoch);
        wk->registered = 0;
        ty_register(wk);
        break;
    case TY__ENVELOPE__BODY_DISPATCH:
        ty_exec_dispatch(wk, env->dispatch);
        break;
    case TY__ENVELOPE__BODY_PART_LAUNCH:
        if (env->part_launch->ref && env->part_launch->ref->epoch >= wk->epoch)
            ty_parts_launch(wk, env->part_launch);
        break;
    case TY__ENVELOPE__BODY_CANCEL_TASK:
        if (env->cancel_task->ref && env->cancel_task->ref->epoch >= wk->epoch)
            ty_exec_cancel(wk, env->cancel_task->ref, "cancelled by the master");
        break;
    case TY__ENVELOPE__BODY_UPLOAD_READY:
    case TY__ENVELOPE__BODY_UPLOAD_ACK:
        ty_up_on_msg(wk, env);
        break;
    case TY__ENVELOPE__BODY_BLOB_DATA:
    case TY__ENVELOPE__BODY_ERROR:
        ty_fetch_on_msg(wk, env);
        break;
    case TY__ENVELOPE__BODY_RESULT_ACK:
        if (env->result_ack->ref)
            ty_ack(wk, env->result_ack->ref);
        break;
    default:
        ty_warn("unexpected message %d from master", (int)env->body_case);
        break;
    }
    ty_wire_free(&env);
}

static void ty_hb_cb(uv_timer_t *h) {
    ty_wk_t *wk = h->data;
    if (wk->stopping)
        return;
    int64_t silent = ty_mono_ms() - wk->last_master;
    if (silent > wk->lease_ms && ty_exec_running(wk) > 0) {
        /* cut off: the master has re-queued these by now */
        ty_warn("no word from the master for %lld ms: killing %zu task(s)", (long long)silent,
                ty_exec_running(wk));
        ty_exec_kill_all(wk, "worker lost contact with the master");
    }
    /* several masters: one that says nothing for three heartbeats is left
     * for the next address (a standby answers, naming the leader) */
    if (wk->neps > 1 && silent > 3 * wk->heartbeat_ms &&
        ty_mono_ms() - wk->switched_at > 3 * wk->heartbeat_ms)
        ty_wk_next(wk, "no word from the master");
    if (!wk->registered) {
        ty_register(wk);
        return;
    }
    ty_resend_unacked(wk);
    ty_up_tick(wk);
    ty_fetch_tick(wk);
    /* what it runs and what it waits to have acknowledged: the master
     * re-queues an attempt it dispatched here that is in neither (a
     * dispatch lost on the way) */
    Ty__Heartbeat hb = TY__HEARTBEAT__INIT;
    hb.running = (uint32_t)ty_exec_running(wk);
    hb.listed = 1;
    hb.seen_epoch = wk->seen_epoch;
    hb.seen_seq = wk->seen_seq;
    size_t nrun = 0, nun = 0;
    hb.attempts = ty_exec_refs(wk, &nrun);
    hb.n_attempts = nrun;
    ty_usage_t use;
    pid_t *sids = ty_exec_sessions(wk, &nrun);
    ty_usage_sessions(sids, nrun, &use);
    free(sids);
    hb.attempts_cpu_s = use.cpu_s;
    hb.attempts_rss = use.rss_bytes;
    ty_usage_self(&use);
    hb.self_cpu_s = use.cpu_s;
    hb.self_rss = use.rss_bytes;
    for (ty_unacked_t *u = wk->unacked; u; u = u->next)
        nun++;
    hb.unacked = ty_xcalloc(nun ? nun : 1, sizeof *hb.unacked);
    for (ty_unacked_t *u = wk->unacked; u; u = u->next)
        if (u->res->ref)
            hb.unacked[hb.n_unacked++] = u->res->ref;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    ty_wk_send(wk, &env);
    free(hb.attempts);
    free(hb.unacked);
}

void ty_wk_start(ty_wk_t *wk) {
    ty_wire_poll_create(&wk->poll, wk->loop, wk->sock, ty_on_message, wk);
    uv_timer_init(wk->loop, &wk->hb);
    wk->hb.data = wk;
    wk->last_master = ty_mono_ms();
    uv_timer_start(&wk->hb, ty_hb_cb, 0, (uint64_t)wk->heartbeat_ms);
}

void ty_wk_deregister(ty_wk_t *wk, const char *why) {
    if (!wk->registered)
        return;
    Ty__Deregister d = TY__DEREGISTER__INIT;
    d.reason = (char *)why;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &d;
    ty_wk_send(wk, &env); /* the socket's linger gives it time to leave */
}

void ty_wk_clear_unacked(ty_wk_t *wk) {
    while (wk->unacked) {
        ty_unacked_t *u = wk->unacked;
        wk->unacked = u->next;
        ty__task_result__free_unpacked(u->res, NULL);
        free(u);
    }
}
