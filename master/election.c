/* Leader election through the store (etcd in production).  The leader key
 * holds this master's node id under a lease; its create revision is the
 * fencing epoch that every dispatch carries and every state txn compares.
 * A standby watches the key and tries again when it disappears.  A master
 * restarted with the same node id removes the key of its previous life at
 * once instead of waiting for the lease. */
#include "master/master.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static void ty_election_try(ty_master_t *m);

static void ty_election_retry_cb(uv_timer_t *h) { ty_election_try(h->data); }

static void ty_election_retry(ty_master_t *m) {
    uv_timer_start(&m->retry, ty_election_retry_cb, 1000, 0);
}

static void ty_reclaim_done(int status, void *arg) {
    (void)status;
    ty_election_try(arg);
}

char *ty_master_leader_value(const ty_master_t *m) {
    return ty_xasprintf("%s\n%s\n%s", m->o.node_id, m->o.client_ep, m->o.worker_ep);
}

/* The lease is kept alive whether this master leads or stands by, so that a
 * standby campaigns with a live lease the moment the leader key goes. */
static void ty_keepalive_done(int status, int64_t lease, int64_t ttl, void *arg) {
    ty_master_t *m = arg;
    if (!m->lease_id || (lease && lease != m->lease_id))
        return; /* an answer about a lease given up since */
    if (status == 0 && ttl > 0) {
        m->lease_ok_mono = m->lease_ka_sent; /* renewed no earlier than it was asked */
        return;
    }
    if (status == 0 && ttl == 0) {
        if (m->leader) {
            ty_master_lost_lead(m, "leader lease expired");
        } else {
            ty_info("election: the standby lease expired; a new one at the next campaign");
            m->lease_id = 0;
            uv_timer_stop(&m->keepalive);
        }
        return;
    }
    ty_warn("lease keep-alive failed: %s", ty_strerror(status));
}

static void ty_keepalive_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    m->lease_ka_sent = ty_mono_ms();
    if (m->lease_id &&
        m->store->ops->lease_keepalive(m->store, m->lease_id, ty_keepalive_done, m) != 0)
        ty_warn("lease keep-alive could not be sent");
}

static void ty_keepalive_start(ty_master_t *m) {
    uint64_t every = (uint64_t)m->o.leader_ttl_s * 1000 / 3;
    uv_timer_start(&m->keepalive, ty_keepalive_cb, every ? every : 1, every ? every : 1);
}

static void ty_leader_gone(int status, void *arg) {
    ty_master_t *m = arg;
    ty_debug("leader watch: the key went (status %d)", status);
    if (!m->leader) {
        m->store->ops->watch_cancel(m->store, &m->leader_watch);
        free(m->holder);
        m->holder = NULL;
        ty_election_try(m);
    }
}

/* Whether the leader key's value (node id first) names this node. */
static int ty_holder_is_me(const ty_master_t *m, const char *holder, size_t len) {
    size_t n = strlen(m->o.node_id);
    return len >= n && memcmp(holder, m->o.node_id, n) == 0 && (len == n || holder[n] == '\n');
}

static void ty_campaign_done(int status, const ty_store_campaign_t *r, void *arg) {
    ty_master_t *m = arg;
    if (m->stopping)
        return; /* the master is going: it takes no leadership now */
    if (status != 0) {
        /* etcd unavailable, or the lease ran out while standing by: start
         * again with a new lease (a grant that fails waits a second) */
        ty_warn("election: campaign failed (%s); trying again with a new lease",
                ty_strerror(status));
        snprintf(m->election_error, sizeof m->election_error, "etcd at %s: %s", m->o.etcd,
                 ty_strerror(status));
        m->lease_id = 0;
        uv_timer_stop(&m->keepalive);
        ty_election_retry(m);
        return;
    }
    m->election_error[0] = '\0';
    if (r->won) {
        m->epoch = r->epoch;
        m->leader = 1;
        m->lease_ok_mono = ty_mono_ms();
        free(m->holder);
        m->holder = NULL;
        ty_info("elected leader as %s, epoch %llu", m->o.node_id, (unsigned long long)m->epoch);
        m->elected(m);
        return;
    }
    if (!r->holder_rev) { /* deleted between compare and read */
        ty_election_try(m);
        return;
    }
    if (ty_holder_is_me(m, r->holder, r->holder_len)) {
        /* our own key from before a restart: take it back now */
        ty_info("election: removing the leader key of this node's previous run");
        if (m->store->ops->resign(m->store, r->holder_rev, ty_reclaim_done, m) != 0)
            ty_election_retry(m);
    } else {
        free(m->holder);
        m->holder = ty_xstrndup(r->holder, r->holder_len);
        size_t nlen = strcspn(m->holder, "\n");
        ty_info("election: %.*s leads; standing by", (int)nlen, m->holder);
        if (m->store->ops->watch_leader(m->store, r->holder_rev + 1, ty_leader_gone, m,
                                        &m->leader_watch) != 0)
            ty_election_retry(m);
    }
}

static void ty_grant_done(int status, int64_t lease, int64_t ttl, void *arg) {
    ty_master_t *m = arg;
    (void)ttl;
    if (status != 0 || lease == 0) {
        ty_warn("election: cannot get a lease (%s); retrying", ty_strerror(status));
        snprintf(m->election_error, sizeof m->election_error, "etcd at %s: %s", m->o.etcd,
                 ty_strerror(status));
        ty_election_retry(m);
        return;
    }
    m->lease_id = lease;
    m->lease_ok_mono = ty_mono_ms();
    ty_keepalive_start(m);
    ty_election_try(m);
}

static void ty_election_try(ty_master_t *m) {
    int rc;
    if (m->lease_id == 0) {
        rc = m->store->ops->lease_grant(m->store, m->o.leader_ttl_s, ty_grant_done, m);
    } else {
        char *value = ty_master_leader_value(m);
        rc = m->store->ops->campaign(m->store, value, m->lease_id, ty_campaign_done, m);
        free(value);
    }
    if (rc != 0)
        ty_election_retry(m);
}

void ty_election_start(ty_master_t *m, void (*elected)(ty_master_t *m)) {
    m->elected = elected;
    m->keepalive.data = m->retry.data = m->stepdown.data = m;
    ty_election_try(m);
}

void ty_election_stop(ty_master_t *m) {
    if (m->store)
        m->store->ops->watch_cancel(m->store, &m->leader_watch);
    uv_timer_stop(&m->keepalive);
    uv_timer_stop(&m->retry);
    uv_timer_stop(&m->stepdown);
}

static void ty_lease_revoked(int status, void *arg) {
    (void)status;
    (void)arg;
}

/* Leadership ended (a fenced write, the lease gone or not confirmed, the
 * state not loadable): nothing more is decided or sent from this core; it
 * is torn down on the next loop turn (not inside the callback that found
 * out), and this master stands by and campaigns again with a new lease. */
static void ty_stepdown_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    ty_api_destroy(&m->api);
    ty_core_destroy(&m->core);
    m->load_stage = 0;
    m->info.epoch = 0;
    ty_election_try(m);
}

void ty_master_lost_lead(ty_master_t *m, const char *why) {
    if (!m->leader)
        return;
    ty_error("%s: epoch %llu no longer leads; standing by to campaign again", why,
             (unsigned long long)m->epoch);
    m->leader = 0;
    m->term++;
    snprintf(m->election_error, sizeof m->election_error, "%s; etcd at %s", why, m->o.etcd);
    uv_timer_stop(&m->keepalive);
    uv_timer_stop(&m->deadline);
    if (m->lease_id) /* the key goes with it, if it is still ours */
        m->store->ops->lease_revoke(m->store, m->lease_id, ty_lease_revoked, NULL);
    m->lease_id = 0;
    uv_timer_start(&m->stepdown, ty_stepdown_cb, 0, 0);
}
