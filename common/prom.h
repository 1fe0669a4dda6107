/* Prometheus' text exposition format (version 0.0.4): metric families with
 * HELP and TYPE, samples with escaped labels, and histograms of durations
 * with fixed buckets (seconds), cumulative as the format wants them. */
#ifndef TY_COMMON_PROM_H
#define TY_COMMON_PROM_H

#include "common/util.h"

#include <stdint.h>

#define TY_HIST_NB 17
/* the buckets' upper bounds, seconds: 1 ms to 1 h */
extern const double ty_hist_bounds[TY_HIST_NB];

typedef struct {
    uint64_t b[TY_HIST_NB]; /* observations in each bucket (not cumulative) */
    uint64_t count;
    double sum;
} ty_hist_t;

/* A duration in seconds (< 0 counts as 0). */
void ty_hist_observe(ty_hist_t *h, double seconds);

/* # HELP and # TYPE (counter, gauge, histogram) of a family; its samples
 * follow. */
void ty_prom_family(ty_buf_t *out, const char *name, const char *type, const char *help);
/* name{k="v",...} value: labels are pairs of name and value, NULL ended
 * (NULL for none); values escaped. */
void ty_prom_sample(ty_buf_t *out, const char *name, const char *const *labels, double v);
/* A histogram's samples: name_bucket{...,le="..."} for each bound and
 * +Inf, name_sum, name_count. */
void ty_prom_hist(ty_buf_t *out, const char *name, const char *const *labels, const ty_hist_t *h);

#endif
