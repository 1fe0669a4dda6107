/* The HTTP API's decisions (master/http_route.c): a request made of the
 * input (method, path, query arguments, body) routed; the log stream fed
 * the input as a log's bytes; the input as a --http-tokens file. */
#include "fuzz/fuzz_common.h"
#include "master/http_route.h"

#include "common/wire.h"

#include <string.h>

typedef struct {
    char *k[8], *v[8];
    int n;
} args_t;

static const char *arg(void *ctx, const char *name) {
    args_t *a = ctx;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->k[i], name) == 0)
            return a->v[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = ty_xstrndup((const char *)data, size); /* up to a NUL, if any */
    static const char *const methods[] = {"GET", "POST", "HEAD", "DELETE"};
    const char *method = methods[size ? data[0] % 4 : 0];
    char *path = size ? s + 1 : s, *body = strstr(path, "\n\n"), *q = strchr(path, '\n');
    if (body)
        *body = '\0', body += 2;
    args_t a = {.n = 0};
    if (q) { /* lines of name=value after the path */
        *q++ = '\0';
        for (char *line = q; line && *line && a.n < 8;) {
            char *next = strchr(line, '\n'), *eq = strchr(line, '=');
            if (next)
                *next++ = '\0';
            if (eq) {
                *eq = '\0';
                a.k[a.n] = line;
                a.v[a.n++] = eq + 1;
            }
            line = next;
        }
    }
    ty_route_t r;
    ty_http_route(method, path, arg, &a, body, body ? strlen(body) : 0, 1800000000000LL, &r);
    if (r.view == TY_VIEW_LOGS) {
        ty_logstream_t *ls = ty_logstream_new(&r);
        Ty__Envelope *req = ty_logstream_next(ls);
        ty_wire_free(&req);
        Ty__LogsReply lr = TY__LOGS_REPLY__INIT;
        lr.data.data = (uint8_t *)data;
        lr.data.len = size;
        lr.next_offset = size;
        lr.attempt = 1;
        lr.done = size % 2;
        ty_buf_t out = {0};
        ty_logstream_feed(ls, &lr, &out);
        ty_buf_free(&out);
        ty_logstream_free(&ls);
    } else if (r.view != TY_VIEW_NONE) {
        Ty__Envelope rep = TY__ENVELOPE__INIT;
        Ty__ErrorReply er = TY__ERROR_REPLY__INIT;
        er.code = -(int)size;
        er.message = s;
        rep.body_case = TY__ENVELOPE__BODY_ERROR;
        rep.error = &er;
        char *out = NULL;
        ty_http_render(&r, &rep, &out);
        free(out);
    }
    ty_route_clear(&r);
    free(s);
    s = ty_xstrndup((const char *)data, size);
    ty_http_tokens_t *t = NULL;
    char *why = NULL;
    if (ty_http_tokens_parse(s, &t, &why) == 0) {
        int admin;
        (void)ty_http_tokens_user(t, s, &admin);
        ty_http_tokens_free(&t);
    }
    free(why);
    free(s);
    return 0;
}
