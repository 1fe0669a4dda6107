#include "common/etcd.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TY_ETCD_REQ_PLAIN, TY_ETCD_REQ_WATCH };

typedef struct ty_etcd_req {
    ty_etcd_t *e;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    ty_buf_t resp;
    int kind;
    ty_etcd_cb cb;
    void *arg;
    ty_etcd_watch_t *watch;
    struct ty_etcd_req *prev, *next;
} ty_etcd_req_t;

struct ty_etcd_watch {
    ty_etcd_req_t *req; /* NULL once the stream ended */
    ty_etcd_watch_cb cb;
    void *arg;
    int failed;
    int in_cb;     /* inside cb: cancel must not free the watch */
    int cancelled; /* cancelled from inside cb; freed once cb returns */
};

struct ty_etcd {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char **endpoints;
    size_t nendpoints, cur;
    ty_etcd_req_t *reqs; /* in flight */
    size_t npending;
    int handles; /* open uv handles; the struct is freed when it drops to 0 */
    int closing;
    char *cacert, *cert, *key; /* TLS (ty_etcd_set_tls), or NULL */
};

typedef struct {
    uv_poll_t poll;
    curl_socket_t fd;
    ty_etcd_t *e;
} ty_etcd_sock_t;

struct ty_etcd_txn {
    json_t *compare, *success, *failure;
};

static void ty_etcd_release(ty_etcd_t *e) {
    if (--e->handles > 0)
        return;
    for (size_t i = 0; i < e->nendpoints; i++)
        free(e->endpoints[i]);
    free(e->endpoints);
    free(e->cacert);
    free(e->cert);
    free(e->key);
    free(e);
}

static void ty_etcd_handle_closed(uv_handle_t *h) {
    ty_etcd_t *e = h->data;
    if (h->type == UV_POLL)
        free(h); /* the poll handle is the first member of ty_etcd_sock_t */
    ty_etcd_release(e);
}

/* ---- JSON helpers ---- */

static int64_t ty_json_i64(json_t *o, const char *name) {
    json_t *v = json_object_get(o, name);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return 0;
}

static json_t *ty_json_b64(const void *data, size_t len) {
    char *s = ty_b64_encode(data, len);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static void ty_etcd_kv_parse(json_t *j, ty_etcd_kv_t *kv) {
    memset(kv, 0, sizeof *kv);
    json_t *k = json_object_get(j, "key"), *v = json_object_get(j, "value");
    if (json_is_string(k) &&
        ty_b64_decode(json_string_value(k), json_string_length(k), &kv->key, &kv->key_len) < 0)
        kv->key = NULL;
    if (json_is_string(v) &&
        ty_b64_decode(json_string_value(v), json_string_length(v), &kv->value, &kv->value_len) < 0)
        kv->value = NULL;
    if (!kv->key) {
        kv->key = ty_xcalloc(1, 1);
        kv->key_len = 0;
    }
    if (!kv->value) {
        kv->value = ty_xcalloc(1, 1);
        kv->value_len = 0;
    }
    kv->create_revision = ty_json_i64(j, "create_revision");
    kv->mod_revision = ty_json_i64(j, "mod_revision");
    kv->version = ty_json_i64(j, "version");
    kv->lease = ty_json_i64(j, "lease");
}

static void ty_etcd_kvs_free(ty_etcd_kv_t *kvs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kvs[i].key);
        free(kvs[i].value);
    }
    free(kvs);
}

static void ty_etcd_parse_kvs(json_t *arr, ty_etcd_resp_t *r) {
    size_t n = json_array_size(arr);
    if (n == 0)
        return;
    r->kvs = ty_xcalloc(n, sizeof *r->kvs);
    r->nkvs = n;
    for (size_t i = 0; i < n; i++)
        ty_etcd_kv_parse(json_array_get(arr, i), &r->kvs[i]);
}

/* ---- requests ---- */

static size_t ty_etcd_write_cb(char *ptr, size_t size, size_t nmemb, void *ud);

static void ty_etcd_req_free(ty_etcd_req_t *r) {
    ty_etcd_t *e = r->e;
    if (r->prev)
        r->prev->next = r->next;
    else
        e->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    e->npending--;
    curl_multi_remove_handle(e->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    ty_buf_free(&r->resp);
    free(r);
}

static ty_etcd_req_t *ty_etcd_req_start(ty_etcd_t *e, const char *path, json_t *body, int kind) {
    ty_etcd_req_t *r = ty_xcalloc(1, sizeof *r);
    r->e = e;
    r->kind = kind;
    r->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!r->body)
        abort();
    r->easy = curl_easy_init();
    if (!r->easy)
        abort();
    char url[512];
    snprintf(url, sizeof url, "%s%s", e->endpoints[e->cur], path);
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, ty_etcd_write_cb);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(r->easy, CURLOPT_TCP_NODELAY, 1L);
    if (e->cert) { /* https only: never plaintext once TLS is asked for */
        curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, e->cacert);
        curl_easy_setopt(r->easy, CURLOPT_SSLCERT, e->cert);
        curl_easy_setopt(r->easy, CURLOPT_SSLKEY, e->key);
        curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 2L);
    } else {
        curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    }
    if (kind == TY_ETCD_REQ_PLAIN)
        curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 15000L);
    else
        curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    r->next = e->reqs;
    if (e->reqs)
        e->reqs->prev = r;
    e->reqs = r;
    e->npending++;
    curl_multi_add_handle(e->multi, r->easy);
    return r;
}

static int ty_etcd_call(ty_etcd_t *e, const char *path, json_t *body, ty_etcd_cb cb, void *arg) {
    if (e->closing) {
        json_decref(body);
        return TY_ESTATE;
    }
    ty_etcd_req_t *r = ty_etcd_req_start(e, path, body, TY_ETCD_REQ_PLAIN);
    r->cb = cb;
    r->arg = arg;
    return 0;
}

/* Parse a complete (non-stream) response and call the user's callback. */
static void ty_etcd_complete(ty_etcd_req_t *r, CURLcode cc) {
    ty_etcd_resp_t resp;
    memset(&resp, 0, sizeof resp);
    int status = 0;
    long http = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    json_t *root = NULL;
    if (cc != CURLE_OK) {
        status = TY_EUNREACH;
        ty_warn("etcd: %s", curl_easy_strerror(cc));
        r->e->cur = (r->e->cur + 1) % r->e->nendpoints;
    } else if (!(root = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, NULL))) {
        status = TY_EETCD;
    } else if (http != 200 || json_object_get(root, "error")) {
        json_t *msg = json_object_get(root, "message");
        if (!msg)
            msg = json_object_get(root, "error");
        ty_warn("etcd: HTTP %ld: %s", http, json_is_string(msg) ? json_string_value(msg) : "?");
        status = TY_EETCD;
    } else {
        json_t *res = json_object_get(root, "result"); /* keep-alive wraps in "result" */
        json_t *o = res ? res : root;
        resp.revision = ty_json_i64(json_object_get(o, "header"), "revision");
        resp.succeeded = json_is_true(json_object_get(o, "succeeded"));
        resp.count = ty_json_i64(o, "count");
        resp.deleted = ty_json_i64(o, "deleted");
        resp.lease_id = ty_json_i64(o, "ID");
        resp.ttl = ty_json_i64(o, "TTL");
        ty_etcd_parse_kvs(json_object_get(o, "kvs"), &resp);
        json_t *rs = json_object_get(o, "responses");
        for (size_t i = 0; i < json_array_size(rs) && !resp.kvs; i++) {
            json_t *rr = json_object_get(json_array_get(rs, i), "response_range");
            if (rr)
                ty_etcd_parse_kvs(json_object_get(rr, "kvs"), &resp);
        }
    }
    ty_etcd_cb cb = r->cb;
    void *arg = r->arg;
    ty_etcd_req_free(r);
    if (cb)
        cb(status, &resp, arg);
    ty_etcd_kvs_free(resp.kvs, resp.nkvs);
    json_decref(root);
}

/* Deliver each complete JSON object of a watch stream. */
static void ty_etcd_watch_deliver(ty_etcd_watch_t *w, json_t *root) {
    json_t *res = json_object_get(root, "result");
    if (!res) {
        w->failed = 1;
        w->cb(TY_EETCD, NULL, 0, 0, w->arg);
        return;
    }
    int64_t rev = ty_json_i64(json_object_get(res, "header"), "revision");
    if (json_is_true(json_object_get(res, "canceled"))) {
        w->failed = 1;
        w->cb(TY_EETCD, NULL, 0, rev, w->arg);
        return;
    }
    json_t *evs = json_object_get(res, "events");
    size_t n = json_array_size(evs);
    ty_etcd_event_t *ev = n ? ty_xcalloc(n, sizeof *ev) : NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *je = json_array_get(evs, i);
        json_t *t = json_object_get(je, "type");
        ev[i].type = json_is_string(t) && strcmp(json_string_value(t), "DELETE") == 0
                         ? TY_ETCD_EVENT_DELETE
                         : TY_ETCD_EVENT_PUT;
        ty_etcd_kv_parse(json_object_get(je, "kv"), &ev[i].kv);
    }
    if (n > 0 || json_is_true(json_object_get(res, "created")))
        w->cb(0, ev, n, rev, w->arg);
    for (size_t i = 0; i < n; i++) {
        free(ev[i].kv.key);
        free(ev[i].kv.value);
    }
    free(ev);
}

/* Length of the first complete top-level JSON object in buf, or 0. */
static size_t ty_json_object_len(const char *buf, size_t len) {
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{') {
            depth++;
        } else if (c == '}' && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

static size_t ty_etcd_write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
    ty_etcd_req_t *r = ud;
    size_t n = size * nmemb;
    if (r->kind == TY_ETCD_REQ_WATCH && (r->watch->failed || r->watch->cancelled))
        return 0; /* aborts the transfer */
    /* watch events are delivered after curl returns (ty_etcd_pump_watches):
     * libcurl refuses new requests from inside its callbacks */
    ty_buf_append(&r->resp, ptr, n);
    return n;
}

/* Deliver the complete JSON objects buffered by watch streams.  Runs outside
 * curl's callbacks, so user callbacks may issue requests and cancel watches. */
static void ty_etcd_pump_watches(ty_etcd_t *e) {
    for (;;) {
        ty_etcd_req_t *r = e->reqs;
        size_t olen = 0;
        for (; r; r = r->next) {
            if (r->kind != TY_ETCD_REQ_WATCH || r->watch->failed || r->watch->cancelled)
                continue;
            size_t skip = 0;
            while (skip < r->resp.len && r->resp.data[skip] != '{')
                skip++;
            ty_buf_consume(&r->resp, skip);
            if ((olen = ty_json_object_len(r->resp.data, r->resp.len)) > 0)
                break;
        }
        if (!r)
            return;
        ty_etcd_watch_t *w = r->watch;
        json_t *root = json_loadb(r->resp.data, olen, 0, NULL);
        ty_buf_consume(&r->resp, olen);
        if (root) {
            w->in_cb = 1;
            ty_etcd_watch_deliver(w, root);
            w->in_cb = 0;
            json_decref(root);
        }
        if (w->cancelled) { /* cancelled from its own callback */
            ty_etcd_req_free(r);
            free(w);
        } else if (w->failed) { /* the stream reported an error: end the transfer */
            w->req = NULL;
            ty_etcd_req_free(r);
        }
    }
}

static void ty_etcd_check_info(ty_etcd_t *e) {
    CURLMsg *msg;
    int left;
    ty_etcd_pump_watches(e);
    while ((msg = curl_multi_info_read(e->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        ty_etcd_req_t *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode cc = msg->data.result;
        if (r->kind == TY_ETCD_REQ_WATCH) {
            ty_etcd_watch_t *w = r->watch;
            w->req = NULL;
            if (w->cancelled) {
                ty_etcd_req_free(r);
                free(w);
                continue;
            }
            int report = !w->failed;
            w->failed = 1;
            ty_etcd_req_free(r);
            if (report)
                w->cb(cc == CURLE_OK ? TY_EETCD : TY_EUNREACH, NULL, 0, 0, w->arg);
        } else {
            ty_etcd_complete(r, cc);
        }
    }
}

static void ty_etcd_poll_cb(uv_poll_t *p, int status, int events) {
    ty_etcd_sock_t *s = (ty_etcd_sock_t *)p;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    ty_etcd_t *e = s->e;
    int running;
    curl_multi_socket_action(e->multi, s->fd, flags, &running);
    ty_etcd_check_info(e);
}

static int ty_etcd_socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp) {
    (void)easy;
    ty_etcd_t *e = userp;
    ty_etcd_sock_t *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, ty_etcd_handle_closed);
            curl_multi_assign(e->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = ty_xcalloc(1, sizeof *s);
        s->fd = fd;
        s->e = e;
        if (uv_poll_init_socket(e->loop, &s->poll, fd) != 0)
            abort();
        s->poll.data = e;
        e->handles++;
        curl_multi_assign(e->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, ty_etcd_poll_cb);
    return 0;
}

static void ty_etcd_timer_cb(uv_timer_t *t) {
    ty_etcd_t *e = t->data;
    int running;
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    ty_etcd_check_info(e);
}

static int ty_etcd_timer_fn(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    ty_etcd_t *e = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&e->timer);
    else
        uv_timer_start(&e->timer, ty_etcd_timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

int ty_etcd_create(ty_etcd_t **out, uv_loop_t *loop, const char *endpoints) {
    if (!endpoints || !*endpoints)
        return TY_EINVAL;
    static int curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    ty_etcd_t *e = ty_xcalloc(1, sizeof *e);
    e->loop = loop;
    char *list = ty_xstrdup(endpoints), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t n = strlen(tok);
        while (n > 0 && tok[n - 1] == '/')
            tok[--n] = '\0';
        if (n == 0)
            continue;
        e->endpoints = ty_xrealloc(e->endpoints, (e->nendpoints + 1) * sizeof(char *));
        e->endpoints[e->nendpoints++] =
            strstr(tok, "://") ? ty_xstrdup(tok) : ty_xasprintf("http://%s", tok);
    }
    free(list);
    if (e->nendpoints == 0) {
        free(e->endpoints);
        free(e);
        return TY_EINVAL;
    }
    e->multi = curl_multi_init();
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, ty_etcd_socket_fn);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, ty_etcd_timer_fn);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    uv_timer_init(loop, &e->timer);
    e->timer.data = e;
    e->handles = 1; /* the timer */
    *out = e;
    return 0;
}

int ty_etcd_set_tls(ty_etcd_t *e, const char *cacert, const char *cert, const char *key,
                    char **why) {
    *why = NULL;
    if (!cacert || !cert || !key) {
        *why = ty_xstrdup("etcd TLS needs a CA certificate, a client certificate and its key");
        return TY_EINVAL;
    }
    const char *files[3] = {cacert, cert, key};
    for (int i = 0; i < 3; i++)
        if (access(files[i], R_OK) != 0) {
            *why = ty_xasprintf("cannot read %s: %s", files[i], strerror(errno));
            return TY_EINVAL;
        }
    for (size_t i = 0; i < e->nendpoints; i++)
        if (strncmp(e->endpoints[i], "https://", 8) != 0) {
            *why = ty_xasprintf("etcd endpoint %s is not https:// (with TLS settings the master "
                                "never talks plaintext to etcd)",
                                e->endpoints[i]);
            return TY_EINVAL;
        }
    e->cacert = ty_xstrdup(cacert);
    e->cert = ty_xstrdup(cert);
    e->key = ty_xstrdup(key);
    return 0;
}

void ty_etcd_destroy(ty_etcd_t **pe) {
    ty_etcd_t *e = pe ? *pe : NULL;
    if (!e)
        return;
    *pe = NULL;
    e->closing = 1;
    while (e->reqs) {
        ty_etcd_req_t *r = e->reqs;
        if (r->watch)
            r->watch->req = NULL;
        ty_etcd_req_free(r);
    }
    curl_multi_cleanup(e->multi); /* closes sockets through ty_etcd_socket_fn */
    uv_timer_stop(&e->timer);
    uv_close((uv_handle_t *)&e->timer, ty_etcd_handle_closed);
}

size_t ty_etcd_pending(const ty_etcd_t *e) { return e->npending; }

unsigned char *ty_etcd_prefix_end(const void *key, size_t klen, size_t *rlen) {
    unsigned char *end = ty_xmalloc(klen + 1);
    memcpy(end, key, klen);
    size_t n = klen;
    while (n > 0) {
        if (end[n - 1] < 0xff) {
            end[n - 1]++;
            break;
        }
        n--;
    }
    if (n == 0) { /* all 0xff: every key from key on */
        end[0] = 0;
        n = 1;
    }
    *rlen = n;
    return end;
}

static json_t *ty_etcd_range_obj(const void *key, size_t klen, const void *end, size_t rlen) {
    json_t *o = json_object();
    json_object_set_new(o, "key", ty_json_b64(key, klen));
    if (end)
        json_object_set_new(o, "range_end", ty_json_b64(end, rlen));
    return o;
}

int ty_etcd_range(ty_etcd_t *e, const void *key, size_t klen, const void *range_end, size_t rlen,
                  ty_etcd_cb cb, void *arg) {
    return ty_etcd_call(e, "/v3/kv/range", ty_etcd_range_obj(key, klen, range_end, rlen), cb, arg);
}

int ty_etcd_range_keys(ty_etcd_t *e, const void *key, size_t klen, const void *range_end,
                       size_t rlen, int64_t limit, ty_etcd_cb cb, void *arg) {
    json_t *o = ty_etcd_range_obj(key, klen, range_end, rlen);
    json_object_set_new(o, "keys_only", json_true());
    if (limit > 0)
        json_object_set_new(o, "limit", json_integer(limit));
    return ty_etcd_call(e, "/v3/kv/range", o, cb, arg);
}

static json_t *ty_etcd_put_obj(const void *key, size_t klen, const void *val, size_t vlen,
                               int64_t lease) {
    json_t *o = json_object();
    json_object_set_new(o, "key", ty_json_b64(key, klen));
    json_object_set_new(o, "value", ty_json_b64(val, vlen));
    if (lease)
        json_object_set_new(o, "lease", json_integer(lease));
    return o;
}

int ty_etcd_put(ty_etcd_t *e, const void *key, size_t klen, const void *val, size_t vlen,
                int64_t lease, ty_etcd_cb cb, void *arg) {
    return ty_etcd_call(e, "/v3/kv/put", ty_etcd_put_obj(key, klen, val, vlen, lease), cb, arg);
}

int ty_etcd_delete(ty_etcd_t *e, const void *key, size_t klen, const void *range_end, size_t rlen,
                   ty_etcd_cb cb, void *arg) {
    return ty_etcd_call(e, "/v3/kv/deleterange", ty_etcd_range_obj(key, klen, range_end, rlen), cb,
                        arg);
}

int ty_etcd_txn_create(ty_etcd_txn_t **out) {
    ty_etcd_txn_t *t = ty_xcalloc(1, sizeof *t);
    t->compare = json_array();
    t->success = json_array();
    t->failure = json_array();
    *out = t;
    return 0;
}

void ty_etcd_txn_destroy(ty_etcd_txn_t **pt) {
    ty_etcd_txn_t *t = pt ? *pt : NULL;
    if (!t)
        return;
    json_decref(t->compare);
    json_decref(t->success);
    json_decref(t->failure);
    free(t);
    *pt = NULL;
}

void ty_etcd_txn_compare(ty_etcd_txn_t *t, const void *key, size_t klen, ty_etcd_target_t target,
                         ty_etcd_cmp_t op, int64_t value) {
    static const char *const ops[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
    static const char *const targets[] = {"VERSION", "CREATE", "MOD", "LEASE"};
    static const char *const fields[] = {"version", "create_revision", "mod_revision", "lease"};
    json_t *c = json_object();
    json_object_set_new(c, "key", ty_json_b64(key, klen));
    json_object_set_new(c, "result", json_string(ops[op]));
    json_object_set_new(c, "target", json_string(targets[target]));
    json_object_set_new(c, fields[target], json_integer(value));
    json_array_append_new(t->compare, c);
}

static void ty_etcd_txn_add(ty_etcd_txn_t *t, int on_success, const char *kind, json_t *o) {
    json_t *op = json_object();
    json_object_set_new(op, kind, o);
    json_array_append_new(on_success ? t->success : t->failure, op);
}

void ty_etcd_txn_put(ty_etcd_txn_t *t, int on_success, const void *key, size_t klen,
                     const void *val, size_t vlen, int64_t lease) {
    ty_etcd_txn_add(t, on_success, "request_put", ty_etcd_put_obj(key, klen, val, vlen, lease));
}

void ty_etcd_txn_delete(ty_etcd_txn_t *t, int on_success, const void *key, size_t klen,
                        const void *range_end, size_t rlen) {
    ty_etcd_txn_add(t, on_success, "request_delete_range",
                    ty_etcd_range_obj(key, klen, range_end, rlen));
}

void ty_etcd_txn_range(ty_etcd_txn_t *t, int on_success, const void *key, size_t klen,
                       const void *range_end, size_t rlen) {
    ty_etcd_txn_add(t, on_success, "request_range", ty_etcd_range_obj(key, klen, range_end, rlen));
}

size_t ty_etcd_txn_ops(const ty_etcd_txn_t *t) {
    size_t a = json_array_size(t->success), b = json_array_size(t->failure);
    return a > b ? a : b;
}

int ty_etcd_txn_commit(ty_etcd_t *e, ty_etcd_txn_t **pt, ty_etcd_cb cb, void *arg) {
    ty_etcd_txn_t *t = *pt;
    json_t *o = json_object();
    json_object_set(o, "compare", t->compare);
    json_object_set(o, "success", t->success);
    json_object_set(o, "failure", t->failure);
    ty_etcd_txn_destroy(pt);
    return ty_etcd_call(e, "/v3/kv/txn", o, cb, arg);
}

int ty_etcd_lease_grant(ty_etcd_t *e, int64_t ttl_s, ty_etcd_cb cb, void *arg) {
    json_t *o = json_object();
    json_object_set_new(o, "TTL", json_integer(ttl_s));
    return ty_etcd_call(e, "/v3/lease/grant", o, cb, arg);
}

int ty_etcd_lease_keepalive(ty_etcd_t *e, int64_t id, ty_etcd_cb cb, void *arg) {
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_integer(id));
    return ty_etcd_call(e, "/v3/lease/keepalive", o, cb, arg);
}

int ty_etcd_lease_revoke(ty_etcd_t *e, int64_t id, ty_etcd_cb cb, void *arg) {
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_integer(id));
    return ty_etcd_call(e, "/v3/kv/lease/revoke", o, cb, arg);
}

int ty_etcd_compact(ty_etcd_t *e, int64_t revision, ty_etcd_cb cb, void *arg) {
    json_t *o = json_object();
    json_object_set_new(o, "revision", json_integer(revision));
    return ty_etcd_call(e, "/v3/kv/compaction", o, cb, arg);
}

int ty_etcd_watch(ty_etcd_t *e, const void *key, size_t klen, const void *range_end, size_t rlen,
                  int64_t start_rev, ty_etcd_watch_cb cb, void *arg, ty_etcd_watch_t **out) {
    if (e->closing)
        return TY_ESTATE;
    json_t *cr = ty_etcd_range_obj(key, klen, range_end, rlen);
    if (start_rev > 0)
        json_object_set_new(cr, "start_revision", json_integer(start_rev));
    json_t *o = json_object();
    json_object_set_new(o, "create_request", cr);
    ty_etcd_watch_t *w = ty_xcalloc(1, sizeof *w);
    w->cb = cb;
    w->arg = arg;
    w->req = ty_etcd_req_start(e, "/v3/watch", o, TY_ETCD_REQ_WATCH);
    w->req->watch = w;
    *out = w;
    return 0;
}

void ty_etcd_watch_cancel(ty_etcd_watch_t **pw) {
    ty_etcd_watch_t *w = pw ? *pw : NULL;
    if (!w)
        return;
    *pw = NULL;
    if (w->in_cb) { /* its callback is running: ty_etcd_pump_watches frees it */
        w->cancelled = 1;
        return;
    }
    if (w->req)
        ty_etcd_req_free(w->req);
    free(w);
}
