/* Rank prefixes in MPI steps' logs: see tagout.h. */
#include "worker/tagout.h"

#include <string.h>

#define TY_TAGOUT_MAX 65536

/* One line (with its end, if any) into out, its prefix rewritten. */
static void ty_tag_line(const char *s, size_t n, ty_buf_t *out) {
    /* "[" digits "," digits "]<" word ">:" */
    size_t i = 1, r0, r1;
    if (n < 2 || s[0] != '[')
        goto plain;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 1 || i >= n || s[i] != ',')
        goto plain;
    r0 = ++i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    r1 = i;
    if (r1 == r0 || i + 1 >= n || s[i] != ']' || s[i + 1] != '<')
        goto plain;
    i += 2;
    while (i < n && s[i] >= 'a' && s[i] <= 'z')
        i++;
    if (i + 1 >= n || s[i] != '>' || s[i + 1] != ':')
        goto plain;
    ty_buf_append(out, "[rank ", 6);
    ty_buf_append(out, s + r0, r1 - r0);
    ty_buf_append(out, "] ", 2);
    ty_buf_append(out, s + i + 2, n - i - 2);
    return;
plain:
    ty_buf_append(out, s, n);
}

void ty_tagout_feed(ty_tagout_t *t, const char *data, size_t n, int final, ty_buf_t *out) {
    ty_buf_append(&t->part, data, n);
    size_t start = 0;
    for (size_t i = 0; i < t->part.len; i++)
        if (t->part.data[i] == '\n') {
            ty_tag_line(t->part.data + start, i + 1 - start, out);
            start = i + 1;
        }
    size_t left = t->part.len - start;
    if (left && (final || left > TY_TAGOUT_MAX)) { /* the rest as it is */
        ty_tag_line(t->part.data + start, left, out);
        start = t->part.len;
        left = 0;
    }
    if (start)
        ty_buf_consume(&t->part, start);
}

void ty_tagout_free(ty_tagout_t *t) { ty_buf_free(&t->part); }
