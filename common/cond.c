/* Conditions (see cond.h): a recursive-descent parser into a node array,
 * evaluated over it.
 *   or   := and ("or" and)*
 *   and  := not ("and" not)*
 *   not  := "not" not | "(" or ")" | cmp
 *   cmp  := operand OP operand        OP: < <= > >= == !=
 *   operand := number | TASK.METRIC */
#include "common/cond.h"

#include "common/err.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { N_NUM, N_VAR, N_CMP, N_AND, N_OR, N_NOT };
enum { C_LT, C_LE, C_GT, C_GE, C_EQ, C_NE };

typedef struct {
    int kind, op;
    double num;
    size_t var;
    int l, r;
} ty_node_t;

struct ty_cond {
    ty_node_t *nodes;
    size_t n, cap;
    char **names;
    size_t nnames;
    int root;
};

typedef struct {
    ty_cond_t *c;
    const char *s, *p;
    char *why;
} ty_parser_t;

static void ty_skip(ty_parser_t *ps) {
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static int ty_fail(ty_parser_t *ps, const char *what) {
    if (!ps->why)
        ps->why = ty_xasprintf("condition '%.200s': %s at column %d", ps->s, what,
                               (int)(ps->p - ps->s) + 1);
    return -1;
}

static int ty_add(ty_parser_t *ps, ty_node_t n) {
    ty_cond_t *c = ps->c;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->nodes = ty_xrealloc(c->nodes, c->cap * sizeof *c->nodes);
    }
    c->nodes[c->n] = n;
    return (int)c->n++;
}

/* A word at p (letters, digits, _ . -), its length; 0 when none. */
static size_t ty_word(const char *p) {
    size_t n = 0;
    if (!isalpha((unsigned char)*p) && *p != '_')
        return 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '.' || p[n] == '-')
        n++;
    return n;
}

static int ty_keyword(ty_parser_t *ps, const char *kw) {
    ty_skip(ps);
    size_t n = ty_word(ps->p);
    if (n == strlen(kw) && strncmp(ps->p, kw, n) == 0) {
        ps->p += n;
        return 1;
    }
    return 0;
}

static int ty_operand(ty_parser_t *ps) {
    ty_skip(ps);
    const char *p = ps->p;
    if (isdigit((unsigned char)*p) ||
        ((*p == '-' || *p == '+' || *p == '.') && (isdigit((unsigned char)p[1]) || p[1] == '.'))) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p)
            return ty_fail(ps, "a bad number");
        ps->p = end;
        return ty_add(ps, (ty_node_t){.kind = N_NUM, .num = v, .l = -1, .r = -1});
    }
    size_t n = ty_word(p);
    if (n == 0)
        return ty_fail(ps, *p ? "expected a number or TASK.METRIC" : "unexpected end");
    const char *dot = memchr(p, '.', n);
    if (!dot || dot == p || dot == p + n - 1)
        return ty_fail(ps, "expected TASK.METRIC (a task's name, a dot, a metric's name)");
    char *name = ty_xstrndup(p, n);
    ps->p += n;
    ty_cond_t *c = ps->c;
    size_t i = 0;
    while (i < c->nnames && strcmp(c->names[i], name) != 0)
        i++;
    if (i == c->nnames) {
        c->names = ty_xrealloc(c->names, (c->nnames + 1) * sizeof *c->names);
        c->names[c->nnames++] = name;
    } else {
        free(name);
    }
    return ty_add(ps, (ty_node_t){.kind = N_VAR, .var = i, .l = -1, .r = -1});
}

static int ty_or(ty_parser_t *ps);

static int ty_cmp(ty_parser_t *ps) {
    int l = ty_operand(ps);
    if (l < 0)
        return -1;
    ty_skip(ps);
    static const struct {
        const char *s;
        int op;
    } ops[] = {{"<=", C_LE}, {">=", C_GE}, {"==", C_EQ}, {"!=", C_NE}, {"<", C_LT}, {">", C_GT}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strncmp(ps->p, ops[i].s, strlen(ops[i].s)) == 0) {
            ps->p += strlen(ops[i].s);
            int r = ty_operand(ps);
            if (r < 0)
                return -1;
            return ty_add(ps, (ty_node_t){.kind = N_CMP, .op = ops[i].op, .l = l, .r = r});
        }
    return ty_fail(ps, "expected a comparison (< <= > >= == !=)");
}

static int ty_not(ty_parser_t *ps) {
    if (ty_keyword(ps, "not")) {
        int x = ty_not(ps);
        return x < 0 ? -1 : ty_add(ps, (ty_node_t){.kind = N_NOT, .l = x, .r = -1});
    }
    ty_skip(ps);
    if (*ps->p == '(') {
        ps->p++;
        int x = ty_or(ps);
        if (x < 0)
            return -1;
        ty_skip(ps);
        if (*ps->p != ')')
            return ty_fail(ps, "expected ')'");
        ps->p++;
        return x;
    }
    return ty_cmp(ps);
}

static int ty_and(ty_parser_t *ps) {
    int l = ty_not(ps);
    while (l >= 0 && ty_keyword(ps, "and")) {
        int r = ty_not(ps);
        l = r < 0 ? -1 : ty_add(ps, (ty_node_t){.kind = N_AND, .l = l, .r = r});
    }
    return l;
}

static int ty_or(ty_parser_t *ps) {
    int l = ty_and(ps);
    while (l >= 0 && ty_keyword(ps, "or")) {
        int r = ty_and(ps);
        l = r < 0 ? -1 : ty_add(ps, (ty_node_t){.kind = N_OR, .l = l, .r = r});
    }
    return l;
}

int ty_cond_parse(const char *text, ty_cond_t **out, char **why) {
    *out = NULL;
    ty_parser_t ps = {.c = ty_xcalloc(1, sizeof(ty_cond_t)), .s = text ? text : "", .p = NULL};
    ps.p = ps.s;
    if (strlen(ps.s) > 4096) {
        *why = ty_xstrdup("condition longer than 4096 characters");
        ty_cond_destroy(&ps.c);
        return TY_EINVAL;
    }
    int root = ty_or(&ps);
    ty_skip(&ps);
    if (root >= 0 && *ps.p)
        root = ty_fail(&ps, "unexpected text (want and, or, or the end)");
    if (root < 0) {
        *why = ps.why;
        ty_cond_destroy(&ps.c);
        return TY_EINVAL;
    }
    ps.c->root = root;
    *out = ps.c;
    return 0;
}

void ty_cond_destroy(ty_cond_t **c) {
    if (!c || !*c)
        return;
    for (size_t i = 0; i < (*c)->nnames; i++)
        free((*c)->names[i]);
    free((*c)->names);
    free((*c)->nodes);
    free(*c);
    *c = NULL;
}

size_t ty_cond_names(const ty_cond_t *c, const char *const **names) {
    *names = (const char *const *)c->names;
    return c->nnames;
}

typedef struct {
    const ty_cond_t *c;
    ty_cond_lookup_fn lookup;
    void *arg;
    const char *missing;
} ty_eval_t;

static int ty_value(ty_eval_t *e, int i, double *v) {
    const ty_node_t *n = &e->c->nodes[i];
    if (n->kind == N_NUM) {
        *v = n->num;
        return 0;
    }
    if (e->lookup(e->arg, e->c->names[n->var], v) == 0)
        return 0;
    if (!e->missing)
        e->missing = e->c->names[n->var];
    return -1;
}

static int ty_eval(ty_eval_t *e, int i) {
    const ty_node_t *n = &e->c->nodes[i];
    double a, b;
    int x, y;
    switch (n->kind) {
    case N_CMP:
        if (ty_value(e, n->l, &a) || ty_value(e, n->r, &b))
            return -1;
        switch (n->op) {
        case C_LT:
            return a < b;
        case C_LE:
            return a <= b;
        case C_GT:
            return a > b;
        case C_GE:
            return a >= b;
        case C_EQ:
            return a == b;
        default:
            return a != b;
        }
    case N_NOT:
        x = ty_eval(e, n->l);
        return x < 0 ? -1 : !x;
    case N_AND: /* a missing name is an error even where the other side decides */
        x = ty_eval(e, n->l);
        y = ty_eval(e, n->r);
        return x < 0 || y < 0 ? -1 : x && y;
    case N_OR:
        x = ty_eval(e, n->l);
        y = ty_eval(e, n->r);
        return x < 0 || y < 0 ? -1 : x || y;
    default:
        return -1;
    }
}

int ty_cond_eval(const ty_cond_t *c, ty_cond_lookup_fn lookup, void *arg, const char **missing) {
    ty_eval_t e = {.c = c, .lookup = lookup, .arg = arg};
    int r = ty_eval(&e, c->root);
    if (missing)
        *missing = e.missing;
    return r;
}
