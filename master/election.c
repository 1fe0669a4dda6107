/* Leader election through etcd.  The leader key holds this master's node id
 * under a lease; its create revision is the fencing epoch that every dispatch
 * carries and every state txn compares.  A standby watches the key and tries
 * again when it disappears.  A master restarted with the same node id removes
 * the key of its previous life at once instead of waiting for the lease. */
#include "master/master.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static void ty_election_try(ty_master_t *m);

static void ty_election_retry_cb(uv_timer_t *h) { ty_election_try(h->data); }

static void ty_reclaim_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    (void)status;
    (void)resp;
    ty_election_try(arg);
}

static void ty_keepalive_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_master_t *m = arg;
    if (status == 0 && resp->ttl == 0) {
        ty_master_lost_lead(m, "leader lease expired");
        return;
    }
    if (status != 0)
        ty_warn("leader lease keep-alive failed: %s", ty_strerror(status));
}

static void ty_keepalive_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    ty_etcd_lease_keepalive(m->etcd, m->lease_id, ty_keepalive_done, m);
}

static void ty_leader_watch_cb(int status, const ty_etcd_event_t *ev, size_t n, int64_t rev,
                               void *arg) {
    ty_master_t *m = arg;
    (void)rev;
    ty_debug("leader watch: status %d, %zu events", status, n);
    int gone = status != 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].type == TY_ETCD_EVENT_DELETE)
            gone = 1;
    if (gone && !m->leader) {
        ty_etcd_watch_cancel(&m->leader_watch);
        ty_election_try(m);
    }
}

static void ty_campaign_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_master_t *m = arg;
    if (status != 0) {
        ty_warn("election: etcd unavailable (%s); retrying", ty_strerror(status));
        uv_timer_start(&m->keepalive, ty_election_retry_cb, 1000, 0);
        return;
    }
    if (resp->succeeded) {
        m->epoch = (uint64_t)resp->revision;
        m->leader = 1;
        ty_info("elected leader as %s, epoch %llu", m->o.node_id, (unsigned long long)m->epoch);
        uint64_t every = (uint64_t)m->o.leader_ttl_s * 1000 / 3;
        uv_timer_start(&m->keepalive, ty_keepalive_cb, every, every);
        m->elected(m);
        return;
    }
    if (resp->nkvs == 0) { /* deleted between compare and read */
        ty_election_try(m);
        return;
    }
    const ty_etcd_kv_t *kv = &resp->kvs[0];
    char *key = ty_xasprintf("%sleader", m->o.prefix);
    if (kv->value_len == strlen(m->o.node_id) &&
        memcmp(kv->value, m->o.node_id, kv->value_len) == 0) {
        /* our own key from before a restart: take it back now */
        ty_info("election: removing the leader key of this node's previous run");
        ty_etcd_txn_t *t = NULL;
        ty_etcd_txn_create(&t);
        ty_etcd_txn_compare(t, key, strlen(key), TY_ETCD_TGT_MOD, TY_ETCD_CMP_EQUAL,
                            kv->mod_revision);
        ty_etcd_txn_delete(t, 1, key, strlen(key), NULL, 0);
        ty_etcd_txn_commit(m->etcd, &t, ty_reclaim_done, m);
    } else {
        ty_info("election: %.*s leads; standing by", (int)kv->value_len, (const char *)kv->value);
        ty_etcd_watch(m->etcd, key, strlen(key), NULL, 0, kv->mod_revision + 1, ty_leader_watch_cb,
                      m, &m->leader_watch);
    }
    free(key);
}

static void ty_grant_done(int status, const ty_etcd_resp_t *resp, void *arg) {
    ty_master_t *m = arg;
    if (status != 0 || resp->lease_id == 0) {
        ty_warn("election: cannot get a lease (%s); retrying", ty_strerror(status));
        uv_timer_start(&m->keepalive, ty_election_retry_cb, 1000, 0);
        return;
    }
    m->lease_id = resp->lease_id;
    ty_election_try(m);
}

static void ty_election_try(ty_master_t *m) {
    if (m->lease_id == 0) {
        ty_etcd_lease_grant(m->etcd, m->o.leader_ttl_s, ty_grant_done, m);
        return;
    }
    char *key = ty_xasprintf("%sleader", m->o.prefix);
    ty_etcd_txn_t *t = NULL;
    ty_etcd_txn_create(&t);
    ty_etcd_txn_compare(t, key, strlen(key), TY_ETCD_TGT_CREATE, TY_ETCD_CMP_EQUAL, 0);
    ty_etcd_txn_put(t, 1, key, strlen(key), m->o.node_id, strlen(m->o.node_id), m->lease_id);
    ty_etcd_txn_range(t, 0, key, strlen(key), NULL, 0);
    ty_etcd_txn_commit(m->etcd, &t, ty_campaign_done, m);
    free(key);
}

void ty_election_start(ty_master_t *m, void (*elected)(ty_master_t *m)) {
    m->elected = elected;
    m->keepalive.data = m;
    ty_election_try(m);
}

void ty_election_stop(ty_master_t *m) {
    ty_etcd_watch_cancel(&m->leader_watch);
    uv_timer_stop(&m->keepalive);
}

void ty_master_lost_lead(ty_master_t *m, const char *why) {
    if (m->exit_code == 3)
        return;
    ty_error("%s: epoch %llu no longer leads; exiting so a standby can take over", why,
             (unsigned long long)m->epoch);
    m->exit_code = 3;
    uv_stop(m->loop);
}
