/* Conditions on upstream metrics (a task's `when:`), e.g.
 *   drift.psi_max > 0.2 or (drift.ks_p < 0.01 and not eval.accuracy >= 0.9)
 * Operands are numbers or TASK.METRIC names (split at the first '.');
 * comparisons < <= > >= == !=; and, or, not; parentheses. */
#ifndef TY_COMMON_COND_H
#define TY_COMMON_COND_H

#include <stddef.h>

typedef struct ty_cond ty_cond_t;

/* TY_EINVAL with *why (heap) saying what is wrong and where. */
int ty_cond_parse(const char *text, ty_cond_t **out, char **why);
void ty_cond_destroy(ty_cond_t **c);

/* The TASK.METRIC names it uses, in order of first appearance (borrowed). */
size_t ty_cond_names(const ty_cond_t *c, const char *const **names);

/* A name's value: 0, or -1 when it has none. */
typedef int (*ty_cond_lookup_fn)(void *arg, const char *name, double *value);
/* 1 true, 0 false; -1 when a name has no value (*missing names it). */
int ty_cond_eval(const ty_cond_t *c, ty_cond_lookup_fn lookup, void *arg, const char **missing);

#endif
