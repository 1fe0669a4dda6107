#include "master/strikes.h"

#include "common/util.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint32_t count;
    int64_t window_start, banned_until, last;
} ty_strike_t;

struct ty_strikes {
    zhashx_t *peers; /* name -> ty_strike_t* */
};

int ty_strikes_create(ty_strikes_t **out) {
    ty_strikes_t *s = ty_xcalloc(1, sizeof *s);
    s->peers = zhashx_new();
    zhashx_set_destructor(s->peers, (zhashx_destructor_fn *)zstr_free);
    *out = s;
    return 0;
}

void ty_strikes_destroy(ty_strikes_t **p) {
    ty_strikes_t *s = p ? *p : NULL;
    if (!s)
        return;
    zhashx_destroy(&s->peers);
    free(s);
    *p = NULL;
}

/* Room for one more: the peer seen longest ago goes (not a banned one). */
static void ty_strikes_make_room(ty_strikes_t *s, int64_t now_ms) {
    if (zhashx_size(s->peers) < TY_STRIKES_PEERS)
        return;
    const char *oldest = NULL;
    int64_t when = INT64_MAX;
    for (ty_strike_t *t = zhashx_first(s->peers); t; t = zhashx_next(s->peers))
        if (t->banned_until <= now_ms && t->last < when) {
            when = t->last;
            oldest = zhashx_cursor(s->peers);
        }
    if (oldest) {
        char *k = ty_xstrdup(oldest);
        zhashx_delete(s->peers, k);
        free(k);
    }
}

int ty_strikes_add(ty_strikes_t *s, const char *peer, int64_t now_ms) {
    ty_strike_t *t = zhashx_lookup(s->peers, peer);
    if (!t) {
        ty_strikes_make_room(s, now_ms);
        if (zhashx_size(s->peers) >= TY_STRIKES_PEERS)
            return 0; /* every one remembered is banned: nothing to forget */
        t = ty_xcalloc(1, sizeof *t);
        t->window_start = now_ms;
        zhashx_insert(s->peers, peer, t);
    }
    t->last = now_ms;
    if (t->banned_until > now_ms)
        return 0;
    if (now_ms - t->window_start > TY_STRIKES_WINDOW_MS) {
        t->window_start = now_ms;
        t->count = 0;
    }
    if (++t->count < TY_STRIKES_MAX)
        return 0;
    t->banned_until = now_ms + TY_STRIKES_BAN_MS;
    t->count = 0;
    t->window_start = t->banned_until;
    return 1;
}

int ty_strikes_banned(const ty_strikes_t *s, const char *peer, int64_t now_ms) {
    const ty_strike_t *t = zhashx_lookup(s->peers, peer);
    return t && t->banned_until > now_ms;
}

size_t ty_strikes_count_banned(const ty_strikes_t *s, int64_t now_ms) {
    size_t n = 0;
    for (ty_strike_t *t = zhashx_first(s->peers); t; t = zhashx_next(s->peers))
        n += t->banned_until > now_ms;
    return n;
}

void ty_strikes_peer(char out[160], const char *key, const uint8_t *id, size_t id_len) {
    if (key && *key) {
        snprintf(out, 160, "key:%.64s", key);
        return;
    }
    size_t n = id_len > 64 ? 64 : id_len, o = (size_t)snprintf(out, 160, "id:");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, 160 - o, "%02x", id[i]);
}
