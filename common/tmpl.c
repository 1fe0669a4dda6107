#include "common/tmpl.h"

#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Where a shell script is at a given byte: the innermost quoting. */
enum { SH_UNQ, SH_SQ, SH_DQ, SH_BQ };
#define SH_DEPTH 32

typedef struct {
    unsigned char kind[SH_DEPTH];
    unsigned paren[SH_DEPTH]; /* open "(" inside a $( ... ) */
    int top;
    int escaped; /* the previous byte was an unquoted or "..." backslash */
    int comment; /* inside a # comment, to the end of the line */
    int wordgap; /* the previous byte ends a word: a # here starts a comment */
} ty_sh_ctx_t;

static void ty_sh_push(ty_sh_ctx_t *c, unsigned char k) {
    if (c->top + 1 < SH_DEPTH) {
        c->top++;
        c->kind[c->top] = k;
        c->paren[c->top] = 0;
    }
}

static void ty_sh_pop(ty_sh_ctx_t *c) {
    if (c->top > 0)
        c->top--;
}

/* Advance c over s[0..len): returns how many bytes it took (2 for "$("). */
static size_t ty_sh_step(ty_sh_ctx_t *c, const char *s, size_t len) {
    char ch = s[0];
    int gap = c->wordgap;
    c->wordgap = 0;
    if (c->comment) {
        if (ch == '\n') {
            c->comment = 0;
            c->wordgap = 1;
        }
        return 1;
    }
    if (c->escaped) {
        c->escaped = 0;
        return 1;
    }
    unsigned char k = c->kind[c->top];
    if (k == SH_SQ) {
        if (ch == '\'')
            ty_sh_pop(c);
        return 1;
    }
    if (ch == '\\') {
        c->escaped = 1;
        return 1;
    }
    if (ch == '$' && len > 1 && s[1] == '(') {
        ty_sh_push(c, SH_UNQ);
        c->wordgap = 1;
        return 2;
    }
    if (k == SH_DQ) {
        if (ch == '"')
            ty_sh_pop(c);
        else if (ch == '`')
            ty_sh_push(c, SH_BQ);
        return 1;
    }
    switch (ch) { /* outside quotes, in $( ... ) or in `...` */
    case '\'':
        ty_sh_push(c, SH_SQ);
        break;
    case '"':
        ty_sh_push(c, SH_DQ);
        break;
    case '`':
        if (k == SH_BQ)
            ty_sh_pop(c);
        else
            ty_sh_push(c, SH_BQ);
        break;
    case '(':
        c->paren[c->top]++;
        c->wordgap = 1;
        break;
    case ')':
        if (c->paren[c->top])
            c->paren[c->top]--;
        else
            ty_sh_pop(c); /* the end of a $( ... ) */
        break;
    case '#':
        if (gap)
            c->comment = 1;
        break;
    default:
        c->wordgap = isspace((unsigned char)ch) || strchr(";&|", ch) != NULL;
    }
    return 1;
}

/* Bytes that mean nothing to a shell in any quoting. */
static int ty_sh_plain(const char *v) {
    if (!*v)
        return 0;
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_./:=,+@%^-", *p))
            return 0;
    return 1;
}

static void ty_sh_append(ty_buf_t *out, const char *v, unsigned char k) {
    if (ty_sh_plain(v)) {
        ty_buf_append(out, v, strlen(v));
        return;
    }
    if (k == SH_DQ) { /* "...": only $ ` " \ mean something */
        for (const char *p = v; *p; p++) {
            if (strchr("$`\"\\", *p))
                ty_buf_append(out, "\\", 1);
            ty_buf_append(out, p, 1);
        }
        return;
    }
    if (k != SH_SQ) /* a word of its own: '...' */
        ty_buf_append(out, "'", 1);
    for (const char *p = v; *p; p++) {
        if (*p == '\'')
            ty_buf_append(out, "'\\''", 4); /* close, a quoted ', reopen */
        else
            ty_buf_append(out, p, 1);
    }
    if (k != SH_SQ)
        ty_buf_append(out, "'", 1);
}

char *ty_tmpl_shell_quote(const char *v) {
    ty_buf_t out = {0};
    ty_buf_append(&out, "", 0);
    ty_sh_append(&out, v, SH_UNQ);
    return out.data;
}

char *ty_tmpl_render(const char *tmpl, ty_tmpl_mode_t mode, const char *prefix,
                     ty_tmpl_lookup_fn lookup, const void *arg, char **missing) {
    ty_buf_t out = {0};
    ty_sh_ctx_t sh = {.wordgap = 1};
    size_t pl = strlen(prefix);
    *missing = NULL;
    const char *p = tmpl;
    ty_buf_append(&out, "", 0);
    for (;;) {
        const char *open = strstr(p, "{{"), *close = open ? strstr(open + 2, "}}") : NULL;
        if (!close) {
            ty_buf_append(&out, p, strlen(p));
            break;
        }
        ty_buf_append(&out, p, (size_t)(open - p));
        if (mode == TY_TMPL_SHELL)
            for (const char *q = p; q < open;)
                q += ty_sh_step(&sh, q, (size_t)(open - q));
        const char *a = open + 2, *b = close;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        int ours = (size_t)(b - a) > pl && strncmp(a, prefix, pl) == 0;
        char *v = ours ? lookup(arg, a + pl, (size_t)(b - a) - pl) : NULL;
        if (v) {
            if (mode == TY_TMPL_SHELL && !sh.comment)
                ty_sh_append(&out, v, sh.kind[sh.top]);
            else
                ty_buf_append(&out, v, strlen(v));
            free(v);
            sh.wordgap = sh.escaped = 0;
        } else {
            if (ours && !*missing)
                *missing = ty_xstrndup(a + pl, (size_t)(b - a) - pl);
            ty_buf_append(&out, open, (size_t)(close + 2 - open)); /* kept */
            if (mode == TY_TMPL_SHELL) /* scanned again by a later pass */
                for (const char *q = open; q < close + 2;)
                    q += ty_sh_step(&sh, q, (size_t)(close + 2 - q));
        }
        p = close + 2;
    }
    return out.data;
}

int ty_tmpl_argv_is_shell(char *const *argv, size_t n, size_t i) {
    if (n < 3 || i < 2 || i >= n)
        return 0;
    const char *sh = strrchr(argv[0], '/');
    sh = sh ? sh + 1 : argv[0];
    static const char *const shells[] = {"sh", "bash", "dash", "ksh", "zsh"};
    int known = 0;
    for (size_t k = 0; k < sizeof shells / sizeof shells[0]; k++)
        known |= strcmp(sh, shells[k]) == 0;
    if (!known)
        return 0;
    int c = 0;
    size_t j = 1;
    for (; j < n && argv[j][0] == '-' && argv[j][1] && argv[j][1] != '-'; j++)
        c |= strchr(argv[j] + 1, 'c') != NULL;
    return c && j == i;
}

static int ty_tmpl_ident(const char *a, const char *b) {
    if (a == b || !(isalpha((unsigned char)*a) || *a == '_'))
        return 0;
    for (const char *p = a; p < b; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
            return 0;
    return 1;
}

char *ty_tmpl_unknown(const char *s) {
    static const char *const known[] = {"params.", "inputs."};
    static const char *const exact[] = {"run.id", "task.name", "task.attempt"};
    for (const char *p = s;;) {
        const char *open = strstr(p, "{{"), *close = open ? strstr(open + 2, "}}") : NULL;
        if (!close)
            return NULL;
        const char *a = open + 2, *b = close;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        size_t len = (size_t)(b - a);
        int ok = !ty_tmpl_ident(a, b);
        for (size_t k = 0; !ok && k < 2; k++)
            ok = len > strlen(known[k]) && strncmp(a, known[k], strlen(known[k])) == 0;
        for (size_t k = 0; !ok && k < 3; k++)
            ok = len == strlen(exact[k]) && strncmp(a, exact[k], len) == 0;
        if (!ok)
            return ty_xasprintf("{{ %.*s }}", (int)len, a);
        p = close + 2;
    }
}
