#include "common/config.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ty_config {
    char **keys, **vals;
    size_t n;
};

static char *ty_trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int ty_config_read(ty_config_t **out, FILE *f, const char *path, char **errmsg) {
    ty_config_t *c = ty_xcalloc(1, sizeof *c);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        const char *why = NULL;
        if (got > 4096)
            why = "a line longer than 4096 bytes";
        else if (strlen(line) != (size_t)got)
            why = "a NUL byte";
        char *s = ty_trim(line);
        if (!why && (*s == '\0' || *s == '#'))
            continue;
        char *eq = why ? NULL : strchr(s, '=');
        if (!eq || eq == s) {
            if (errmsg)
                *errmsg =
                    ty_xasprintf("%s:%d: %s", path, lineno, why ? why : "expected 'key = value'");
            ty_config_destroy(&c);
            free(line);
            return TY_EPARSE;
        }
        *eq = '\0';
        c->keys = ty_xrealloc(c->keys, (c->n + 1) * sizeof(char *));
        c->vals = ty_xrealloc(c->vals, (c->n + 1) * sizeof(char *));
        c->keys[c->n] = ty_xstrdup(ty_trim(s));
        c->vals[c->n] = ty_xstrdup(ty_trim(eq + 1));
        c->n++;
    }
    free(line);
    *out = c;
    return 0;
}

int ty_config_load(ty_config_t **out, const char *path, char **errmsg) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? TY_ENOENT : TY_EIO;
    int rc = ty_config_read(out, f, path, errmsg);
    fclose(f);
    return rc;
}

int ty_config_parse(ty_config_t **out, const char *text, size_t len, const char *name,
                    char **errmsg) {
    *out = NULL;
    FILE *f = fmemopen((void *)text, len, "r");
    if (!f)
        return TY_EIO;
    int rc = ty_config_read(out, f, name, errmsg);
    fclose(f);
    return rc;
}

void ty_config_destroy(ty_config_t **pc) {
    ty_config_t *c = pc ? *pc : NULL;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->keys[i]);
        free(c->vals[i]);
    }
    free(c->keys);
    free(c->vals);
    free(c);
    *pc = NULL;
}

const char *ty_config_get(const ty_config_t *c, const char *key) {
    const char *v = NULL;
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0)
            v = c->vals[i]; /* the last one wins */
    return v;
}
