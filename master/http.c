/* The master's HTTP server on its libuv loop (http.h). */
#include "master/http.h"
#include "master/http_route.h"
#include "master/ui.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/wire.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <microhttpd.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TY_HTTP_BODY_MAX (16 * 1024 * 1024) /* a submitted pipeline, as the socket's frames */
#define TY_HTTP_PEER_TAG "\0http"
#define TY_HTTP_PEER_TAG_LEN 5
#define TY_HTTP_PEER_LEN (TY_HTTP_PEER_TAG_LEN + 8)

enum { TY_HC_NEW, TY_HC_WAITING, TY_HC_READY, TY_HC_STREAM_START, TY_HC_STREAMING };

typedef struct ty_hconn {
    ty_http_t *h;
    struct MHD_Connection *c;
    uint64_t id;
    char key[24]; /* id in hex: its entry in h->conns */
    ty_buf_t body;
    int too_big;
    int state;
    int suspended;
    ty_route_t route;
    char *user; /* the token's, or NULL */
    int admin;
    char addr[96];
    int status; /* READY */
    char *resp; /* READY: the JSON body */
    int fd;     /* READY: an artifact's file to send instead (-1: none) */
    uint64_t fd_size;
    /* a log (VIEW_LOGS) */
    ty_logstream_t *ls;
    ty_buf_t out; /* what is yet to be sent */
    int inflight; /* a LogsRequest is out */
    int ended;    /* the last of it is in out */
} ty_hconn_t;

struct ty_http {
    uv_loop_t *loop;
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    int closing;
    ty_http_hooks_t hooks;
    char *tokens_file;
    ty_http_tokens_t *tokens;
    int loopback, insecure;
    ty_buf_t cert, key; /* HTTPS: PEM text, kept while the daemon runs */
    uint64_t next_id;
    zhashx_t *conns; /* key -> ty_hconn_t* */
    int need_effects;
    int port;
};

int ty_http_is_peer(const uint8_t *peer, size_t len) {
    return len == TY_HTTP_PEER_LEN && memcmp(peer, TY_HTTP_PEER_TAG, TY_HTTP_PEER_TAG_LEN) == 0;
}

int ty_http_port(const ty_http_t *h) { return h->port; }

int ty_http_tls(const ty_http_t *h) { return h->cert.len > 0; }

static void ty_http_kick(ty_http_t *h);
static enum MHD_Result ty_queue_file(ty_hconn_t *hc);

static void ty_hc_suspend(ty_hconn_t *hc) {
    if (!hc->suspended) {
        MHD_suspend_connection(hc->c);
        hc->suspended = 1;
    }
}

static void ty_hc_resume(ty_hconn_t *hc) {
    if (hc->suspended) {
        MHD_resume_connection(hc->c);
        hc->suspended = 0;
        ty_http_kick(hc->h);
    }
}

/* Hand req to the handler as from hc; 0, or -1 when this master has no
 * handler (it stands by). */
static int ty_hc_send(ty_hconn_t *hc, const Ty__Envelope *req) {
    uint8_t peer[TY_HTTP_PEER_LEN];
    memcpy(peer, TY_HTTP_PEER_TAG, TY_HTTP_PEER_TAG_LEN);
    memcpy(peer + TY_HTTP_PEER_TAG_LEN, &hc->id, 8);
    ty_caller_t who = {.user = hc->user ? hc->user : "", .addr = hc->addr, .admin = hc->admin};
    if (hc->h->hooks.request(hc->h->hooks.arg, peer, sizeof peer, req, &who) != 0)
        return -1;
    hc->h->need_effects = 1;
    return 0;
}

static enum MHD_Result ty_queue(ty_hconn_t *hc, int status, const char *ctype, const char *body,
                                size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(hc->c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result ty_queue_ui(ty_hconn_t *hc, const ty_ui_asset_t *a) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    char type[64];
    snprintf(type, sizeof type, "%s; charset=utf-8", a->type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    /* its own scripts and styles only: nothing from elsewhere, nothing inline */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(hc->c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result ty_queue_json(ty_hconn_t *hc, int status, const char *json) {
    return ty_queue(hc, status, "application/json", json, strlen(json));
}

static enum MHD_Result ty_queue_error(ty_hconn_t *hc, int status, const char *msg) {
    char *b = ty_http_error_body(msg);
    enum MHD_Result rc = ty_queue_json(hc, status, b);
    free(b);
    return rc;
}

/* A log's body as it comes: what is in out, then (suspended) the next
 * reply's. */
static ssize_t ty_log_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    ty_hconn_t *hc = cls;
    if (hc->out.len) {
        size_t n = hc->out.len < max ? hc->out.len : max;
        memcpy(buf, hc->out.data, n);
        ty_buf_consume(&hc->out, n);
        return (ssize_t)n;
    }
    if (hc->ended)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (!hc->inflight) {
        Ty__Envelope *req = ty_logstream_next(hc->ls);
        int rc = req ? ty_hc_send(hc, req) : -1;
        ty_wire_free(&req);
        if (rc != 0) /* the lead went: what was sent stays sent */
            return MHD_CONTENT_READER_END_WITH_ERROR;
        hc->inflight = 1;
    }
    ty_hc_suspend(hc);
    return 0;
}

static enum MHD_Result ty_start_stream(ty_hconn_t *hc) {
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, ty_log_reader, hc, NULL);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            hc->route.follow ? "text/event-stream" : "text/plain; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    hc->state = TY_HC_STREAMING;
    enum MHD_Result rc = MHD_queue_response(hc->c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static const char *ty_arg(void *ctx, const char *name) {
    struct MHD_Connection *c = ctx;
    if (strcmp(name, "Last-Event-ID") == 0)
        return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static void ty_peer_addr(ty_hconn_t *hc) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(hc->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?", port[16] = "?";
    if (ci && ci->client_addr)
        getnameinfo(ci->client_addr,
                    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in),
                    host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(hc->addr, sizeof hc->addr, "http://%s:%s", host, port);
}

/* The request is whole: decide, then answer or hand it on. */
static enum MHD_Result ty_begin(ty_hconn_t *hc, const char *url, const char *method) {
    ty_http_t *h = hc->h;
    if (hc->too_big)
        return ty_queue_error(hc, 413, "the body is larger than 16 MiB");
    const char *auth = MHD_lookup_connection_value(hc->c, MHD_HEADER_KIND, "Authorization");
    const char *user = ty_http_tokens_user(h->tokens, auth, &hc->admin);
    if (auth && !user)
        return ty_queue_error(hc, 401, "the token is not one of this master's (--http-tokens)");
    hc->user = user ? ty_xstrdup(user) : NULL;
    ty_peer_addr(hc);
    const char *why = NULL;
    for (size_t i = 0; i < ty_ui_nassets; i++) /* the UI's files: no data in them */
        if (strcmp(url, ty_ui_assets[i].path) == 0 &&
            (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
            return ty_queue_ui(hc, &ty_ui_assets[i]);
    if (strcmp(url, "/metrics") == 0) { /* Prometheus scrapes it: read as the API's reads */
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return ty_queue_error(hc, 405, "/metrics takes GET");
        int st = ty_http_allow(user != NULL, 0, h->loopback, h->insecure, &why);
        if (st)
            return ty_queue_error(hc, st, why);
        ty_buf_t text = {0};
        h->hooks.metrics(h->hooks.arg, &text);
        enum MHD_Result rc = ty_queue(hc, 200, "text/plain; version=0.0.4; charset=utf-8",
                                      text.data ? text.data : "", text.len);
        ty_buf_free(&text);
        return rc;
    }
    ty_http_route(method, url, ty_arg, hc->c, hc->body.data, hc->body.len, ty_now_ms(), &hc->route);
    if (hc->route.view == TY_VIEW_NONE)
        return ty_queue_json(hc, hc->route.status, hc->route.body);
    int st = ty_http_allow(user != NULL, hc->route.write, h->loopback, h->insecure, &why);
    if (st)
        return ty_queue_error(hc, st, why);
    if (hc->route.write &&
        !ty_http_origin_ok(MHD_lookup_connection_value(hc->c, MHD_HEADER_KIND, "Origin"),
                           MHD_lookup_connection_value(hc->c, MHD_HEADER_KIND, "Host")))
        return ty_queue_error(hc, 403, "a page of another site may not change anything here");
    Ty__Envelope *req = hc->route.view == TY_VIEW_LOGS
                            ? ty_logstream_next(hc->ls = ty_logstream_new(&hc->route))
                            : NULL;
    int rc = ty_hc_send(hc, req ? req : hc->route.req);
    ty_wire_free(&req);
    if (rc != 0)
        return ty_queue_error(
            hc, 503, "this master stands by: the leader answers (trainyard info names it)");
    hc->inflight = hc->ls != NULL;
    hc->state = TY_HC_WAITING;
    ty_hc_suspend(hc);
    return MHD_YES;
}

static enum MHD_Result ty_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls) {
    (void)version;
    ty_http_t *h = cls;
    ty_hconn_t *hc = *con_cls;
    if (!hc) {
        hc = ty_xcalloc(1, sizeof *hc);
        hc->h = h;
        hc->c = c;
        hc->id = ++h->next_id;
        hc->fd = -1;
        snprintf(hc->key, sizeof hc->key, "%llx", (unsigned long long)hc->id);
        zhashx_insert(h->conns, hc->key, hc);
        *con_cls = hc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (hc->body.len + *upload_size > TY_HTTP_BODY_MAX)
            hc->too_big = 1;
        else
            ty_buf_append(&hc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    switch (hc->state) {
    case TY_HC_NEW:
        return ty_begin(hc, url, method);
    case TY_HC_READY:
        hc->state = TY_HC_STREAMING; /* answered: nothing more comes */
        if (hc->fd >= 0)
            return ty_queue_file(hc);
        return ty_queue_json(hc, hc->status, hc->resp);
    case TY_HC_STREAM_START:
        return ty_start_stream(hc);
    default:
        return MHD_YES;
    }
}

static void ty_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    ty_http_t *h = cls;
    ty_hconn_t *hc = *con_cls;
    if (!hc)
        return;
    zhashx_delete(h->conns, hc->key);
    ty_buf_free(&hc->body);
    ty_buf_free(&hc->out);
    ty_route_clear(&hc->route);
    ty_logstream_free(&hc->ls);
    free(hc->user);
    free(hc->resp);
    if (hc->fd >= 0)
        close(hc->fd);
    free(hc);
    *con_cls = NULL;
}

/* An artifact's content: its blob's file, opened now (sent by MHD,
 * with sendfile where it can), or the error. */
static void ty_hc_artifact(ty_hconn_t *hc, const Ty__Envelope *rep) {
    char *sha = NULL;
    uint64_t size = 0;
    hc->status = ty_http_artifact(&hc->route, rep, &sha, &size, &hc->resp);
    if (hc->status != 200)
        return;
    char *path = hc->h->hooks.blob_path ? hc->h->hooks.blob_path(hc->h->hooks.arg, sha) : NULL;
    hc->fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (hc->fd < 0) {
        hc->status = 404;
        hc->resp = ty_http_error_body("its content is not in the artifact store (collected?)");
    }
    hc->fd_size = size;
    free(path);
    free(sha);
}

static enum MHD_Result ty_queue_file(ty_hconn_t *hc) {
    struct MHD_Response *r = MHD_create_response_from_fd64(hc->fd_size, hc->fd);
    hc->fd = -1; /* MHD closes it */
    const char *base = strrchr(hc->route.name, '/');
    char file[256], disp[300];
    snprintf(file, sizeof file, "%s", base ? base + 1 : hc->route.name);
    for (char *p = file; *p; p++) /* no quote or control character in the header */
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = '_';
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", file);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
    enum MHD_Result rc = MHD_queue_response(hc->c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

void ty_http_deliver(ty_http_t *h, const uint8_t *peer, size_t len, const uint8_t *data, size_t n) {
    if (!h || !ty_http_is_peer(peer, len))
        return;
    uint64_t id;
    memcpy(&id, peer + TY_HTTP_PEER_TAG_LEN, 8);
    char key[24];
    snprintf(key, sizeof key, "%llx", (unsigned long long)id);
    ty_hconn_t *hc = zhashx_lookup(h->conns, key);
    Ty__Envelope *rep = NULL;
    if (!hc || ty_wire_decode(data, n, n, &rep) != 0)
        return; /* its client went */
    if (hc->ls && rep->body_case == TY__ENVELOPE__BODY_LOGS_REPLY) {
        hc->inflight = 0;
        hc->ended = ty_logstream_feed(hc->ls, rep->logs_reply, &hc->out);
        if (hc->state == TY_HC_WAITING)
            hc->state = TY_HC_STREAM_START;
    } else if (hc->state == TY_HC_WAITING && hc->route.view == TY_VIEW_ARTIFACT) {
        ty_hc_artifact(hc, rep);
        hc->state = TY_HC_READY;
    } else if (hc->state == TY_HC_WAITING) {
        hc->status = ty_http_render(&hc->route, rep, &hc->resp);
        hc->state = TY_HC_READY;
    } else { /* an error in the middle of a log: it ends there */
        hc->inflight = 0;
        hc->ended = 1;
    }
    ty_wire_free(&rep);
    ty_hc_resume(hc);
}

static void ty_http_timer_cb(uv_timer_t *t);

/* MHD's work, then the core's effects of what it handed in, until both
 * rest; then the timer for MHD's next timeout. */
static void ty_http_run(ty_http_t *h) {
    for (int i = 0; i < 8; i++) {
        MHD_run(h->d);
        if (!h->need_effects)
            break;
        h->need_effects = 0;
        h->hooks.effects(h->hooks.arg);
    }
    MHD_UNSIGNED_LONG_LONG to = 0;
    if (h->closing)
        return;
    if (MHD_get_timeout(h->d, &to) == MHD_YES)
        uv_timer_start(&h->timer, ty_http_timer_cb, to, 0);
    else
        uv_timer_stop(&h->timer);
}

static void ty_http_timer_cb(uv_timer_t *t) { ty_http_run(t->data); }

static void ty_http_poll_cb(uv_poll_t *p, int status, int events) {
    (void)status;
    (void)events;
    ty_http_run(p->data);
}

/* A connection resumed: MHD runs again on the next turn of the loop. */
static void ty_http_kick(ty_http_t *h) {
    if (!h->closing)
        uv_timer_start(&h->timer, ty_http_timer_cb, 0, 0);
}

static int ty_load_tokens(ty_http_t *h, char **why) {
    ty_buf_t text = {0};
    int rc = ty_read_file(h->tokens_file, &text);
    if (rc != 0) {
        *why = ty_xasprintf("--http-tokens %s: %s", h->tokens_file, ty_strerror(rc));
        ty_buf_free(&text);
        return rc;
    }
    ty_buf_append(&text, "", 1);
    ty_http_tokens_t *t = NULL;
    char *err = NULL;
    rc = ty_http_tokens_parse(text.data, &t, &err);
    ty_buf_free(&text);
    if (rc != 0) {
        *why = ty_xasprintf("--http-tokens %s: %s", h->tokens_file, err);
        free(err);
        return rc;
    }
    ty_http_tokens_free(&h->tokens);
    h->tokens = t;
    return 0;
}

void ty_http_reload(ty_http_t *h) {
    char *why = NULL;
    if (h && h->tokens_file && ty_load_tokens(h, &why) != 0) {
        ty_warn("%s; the tokens read before stay", why);
        free(why);
    }
}

static int ty_is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 0;
}

__attribute__((format(printf, 2, 0))) static void ty_mhd_log(void *cls, const char *fmt,
                                                             va_list ap) {
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    ty_debug("http: %s", buf);
}

int ty_http_create(ty_http_t **out, uv_loop_t *loop, const ty_http_opts_t *o,
                   const ty_http_hooks_t *hooks, char **why) {
    *why = NULL;
    const char *colon = strrchr(o->bind, ':');
    if (!colon || colon == o->bind || !colon[1]) {
        *why = ty_xasprintf("--http-bind wants HOST:PORT, got '%s'", o->bind);
        return TY_EINVAL;
    }
    char *host = ty_xstrndup(o->bind, (size_t)(colon - o->bind));
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int64_t port = 0;
    if (ty_parse_i64(colon + 1, 0, 65535, &port) != 0 ||
        getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai) {
        *why = ty_xasprintf("--http-bind %s: not an address and port of this host", o->bind);
        free(host);
        return TY_EINVAL;
    }
    free(host);
    ty_http_t *h = ty_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->hooks = *hooks;
    h->insecure = o->insecure;
    h->loopback = ty_is_loopback(ai->ai_addr);
    h->conns = zhashx_new();
    int rc = 0;
    if (o->insecure && !h->loopback) {
        *why = ty_xasprintf("--insecure binds loopback addresses only (127.0.0.0/8, ::1), not "
                            "--http-bind %s",
                            o->bind);
        rc = TY_EPERM;
    } else if (!h->loopback && (!o->tokens_file || !o->cert)) {
        *why = ty_xasprintf("--http-bind %s is not a loopback address: give --http-tokens FILE "
                            "and --http-cert/--http-key (requests then need one of its tokens, "
                            "over TLS)",
                            o->bind);
        rc = TY_EPERM;
    } else if (!o->cert != !o->key) {
        *why = ty_xstrdup("--http-cert and --http-key go together");
        rc = TY_EINVAL;
    } else if (o->tokens_file) {
        h->tokens_file = ty_xstrdup(o->tokens_file);
        rc = ty_load_tokens(h, why);
    }
    if (rc == 0 && o->cert) {
        const char *bad = ty_read_file(o->cert, &h->cert) != 0 ? o->cert
                          : ty_read_file(o->key, &h->key) != 0 ? o->key
                                                               : NULL;
        if (bad) {
            *why = ty_xasprintf("cannot read %s", bad);
            rc = TY_EIO;
        }
        ty_buf_append(&h->cert, "", 1);
        ty_buf_append(&h->key, "", 1);
    }
    if (rc == 0) {
        unsigned tls = o->cert ? MHD_USE_TLS : 0;
        h->d = MHD_start_daemon(
            MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | tls |
                (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
            0, NULL, NULL, ty_access, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
            MHD_OPTION_NOTIFY_COMPLETED, ty_completed, h, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)512, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_EXTERNAL_LOGGER,
            ty_mhd_log, NULL,
            /* (ignored without MHD_USE_TLS) */
            MHD_OPTION_HTTPS_MEM_KEY, tls ? h->key.data : NULL, MHD_OPTION_HTTPS_MEM_CERT,
            tls ? h->cert.data : NULL, MHD_OPTION_END);
        if (!h->d) {
            *why = ty_xasprintf("--http-bind %s: cannot listen there (in use, or not this "
                                "host's%s)",
                                o->bind,
                                o->cert ? "; or --http-cert and --http-key are not a certificate "
                                          "and its key"
                                        : "");
            rc = TY_EIO;
        }
    }
    freeaddrinfo(ai);
    if (rc != 0) {
        ty_http_tokens_free(&h->tokens);
        ty_buf_free(&h->cert);
        ty_buf_free(&h->key);
        free(h->tokens_file);
        zhashx_destroy(&h->conns);
        free(h);
        return rc;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (int)port;
    di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(loop, &h->poll, di->epoll_fd);
    uv_timer_init(loop, &h->timer);
    h->poll.data = h->timer.data = h;
    uv_poll_start(&h->poll, UV_READABLE, ty_http_poll_cb);
    *out = h;
    return 0;
}

static void ty_http_closed(uv_handle_t *hd) {
    ty_http_t *h = hd->data;
    if (--h->closing == 1) { /* both handles closed */
        zhashx_destroy(&h->conns);
        ty_buf_free(&h->cert);
        ty_buf_free(&h->key);
        free(h);
    }
}

void ty_http_destroy(ty_http_t **hp) {
    if (!hp || !*hp)
        return;
    ty_http_t *h = *hp;
    *hp = NULL;
    /* MHD stops only with no connection suspended */
    for (ty_hconn_t *hc = zhashx_first(h->conns); hc; hc = zhashx_next(h->conns))
        if (hc->suspended) {
            MHD_resume_connection(hc->c);
            hc->suspended = 0;
        }
    h->closing = 3;
    uv_poll_stop(&h->poll);
    uv_timer_stop(&h->timer);
    MHD_stop_daemon(h->d); /* each connection's completion frees it */
    ty_http_tokens_free(&h->tokens);
    free(h->tokens_file);
    uv_close((uv_handle_t *)&h->poll, ty_http_closed);
    uv_close((uv_handle_t *)&h->timer, ty_http_closed);
}
