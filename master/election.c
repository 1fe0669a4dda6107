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
    uv_timer_start(&m->keepalive, ty_election_retry_cb, 1000, 0);
}

static void ty_reclaim_done(int status, void *arg) {
    (void)status;
    ty_election_try(arg);
}

static void ty_keepalive_done(int status, int64_t lease, int64_t ttl, void *arg) {
    ty_master_t *m = arg;
    (void)lease;
    if (status == 0 && ttl == 0) {
        ty_master_lost_lead(m, "leader lease expired");
        return;
    }
    if (status != 0)
        ty_warn("leader lease keep-alive failed: %s", ty_strerror(status));
}

static void ty_keepalive_cb(uv_timer_t *h) {
    ty_master_t *m = h->data;
    if (m->store->ops->lease_keepalive(m->store, m->lease_id, ty_keepalive_done, m) != 0)
        ty_warn("leader lease keep-alive could not be sent");
}

static void ty_leader_gone(int status, void *arg) {
    ty_master_t *m = arg;
    ty_debug("leader watch: the key went (status %d)", status);
    if (!m->leader) {
        m->store->ops->watch_cancel(m->store, &m->leader_watch);
        ty_election_try(m);
    }
}

static void ty_campaign_done(int status, const ty_store_campaign_t *r, void *arg) {
    ty_master_t *m = arg;
    if (status != 0) {
        /* etcd unavailable, or the lease ran out while standing by: start
         * again with a new lease at once (a grant that fails waits a second) */
        ty_warn("election: campaign failed (%s); trying again with a new lease",
                ty_strerror(status));
        m->lease_id = 0;
        ty_election_try(m);
        return;
    }
    if (r->won) {
        m->epoch = r->epoch;
        m->leader = 1;
        ty_info("elected leader as %s, epoch %llu", m->o.node_id, (unsigned long long)m->epoch);
        uint64_t every = (uint64_t)m->o.leader_ttl_s * 1000 / 3;
        uv_timer_start(&m->keepalive, ty_keepalive_cb, every, every);
        m->elected(m);
        return;
    }
    if (!r->holder_rev) { /* deleted between compare and read */
        ty_election_try(m);
        return;
    }
    if (r->holder_len == strlen(m->o.node_id) &&
        memcmp(r->holder, m->o.node_id, r->holder_len) == 0) {
        /* our own key from before a restart: take it back now */
        ty_info("election: removing the leader key of this node's previous run");
        if (m->store->ops->resign(m->store, r->holder_rev, ty_reclaim_done, m) != 0)
            ty_election_retry(m);
    } else {
        ty_info("election: %.*s leads; standing by", (int)r->holder_len, r->holder);
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
        ty_election_retry(m);
        return;
    }
    m->lease_id = lease;
    ty_election_try(m);
}

static void ty_election_try(ty_master_t *m) {
    int rc;
    if (m->lease_id == 0)
        rc = m->store->ops->lease_grant(m->store, m->o.leader_ttl_s, ty_grant_done, m);
    else
        rc = m->store->ops->campaign(m->store, m->o.node_id, m->lease_id, ty_campaign_done, m);
    if (rc != 0)
        ty_election_retry(m);
}

void ty_election_start(ty_master_t *m, void (*elected)(ty_master_t *m)) {
    m->elected = elected;
    m->keepalive.data = m;
    ty_election_try(m);
}

void ty_election_stop(ty_master_t *m) {
    if (m->store)
        m->store->ops->watch_cancel(m->store, &m->leader_watch);
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
