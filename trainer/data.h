/* Datasets for trainyard-train: CSV (plain or gzip, with or without a
 * header, numeric features, a chosen target column) and IDX image/label
 * pairs (the Fashion-MNIST format, gzip or plain).
 *
 * A dataset is a dense row-major float matrix plus one target per row.
 * Every row has a position in its file: its row index (IDX), or the byte
 * offset where its line starts (CSV; uncompressed offset for gzip).
 * Positions run over [0, extent): rows, the file size, or for gzip the
 * uncompressed size from the trailer.  Shard s of n holds the rows whose
 * position lies in [ceil(extent*s/n), ceil(extent*(s+1)/n)) (the last shard
 * also anything past the extent, in case a gzip trailer undercounts), so a
 * rank reads only its own part: a plain file is read from its shard's
 * offset to its end (past the first lines, which say whether there is a
 * header), and so is a BGZF file (blocked gzip, trainer/bgzf.h; CSV or
 * IDX), from the block holding its offset; other gzip has no random access, so it is
 * decompressed from the start up to the end of the shard, and parsed only
 * there. */
#ifndef TY_TRAINER_DATA_H
#define TY_TRAINER_DATA_H

#include <stddef.h>
#include <stdint.h>

#define TY_DATA_MAX_CLASSES 100000

typedef struct {
    size_t rows, cols; /* rows held here (the shard) */
    int has_target;    /* 0: the file had no target column (y is all 0) */
    /* CSV targets that are not numbers are class names: then y indexes
     * classes, the names this shard saw, in order of first appearance.  A
     * column mixing numbers and names is an error. */
    char **classes;
    size_t nclasses;
    uint64_t *pos;   /* rows: each row's position in the file */
    uint64_t extent; /* positions lie in [0, extent) */
    float *x;        /* rows x cols */
    float *y;        /* rows: a class index or a regression target */
    char **names;    /* cols feature names (CSV header or "f<i>") */
    char *target_name;
} ty_data_t;

/* spec: a CSV path or "idx:IMAGES,LABELS" ("idx:IMAGES": no targets).  target: a column name or
 * index (CSV only; NULL = last column).  Loads shard `shard` of `nshards`. Returns 0 or a negative
 * code with *err set. */
int ty_data_load(const char *spec, const char *target, int shard, int nshards, ty_data_t **out,
                 char **err);

typedef void (*ty_data_progress_fn)(void *ctx, uint64_t done, uint64_t total);
typedef struct {
    const char *target;      /* a column name or index; NULL: see hint, else the last */
    const char *target_hint; /* target NULL: this column when the header has it */
    size_t nfeatures;        /* > 0: a CSV of exactly this many columns has no target */
    /* called every few thousand rows of a CSV: done of total positions
     * (bytes) of the shard */
    ty_data_progress_fn progress;
    void *ctx;
} ty_data_opts_t;
int ty_data_load_opts(const char *spec, const ty_data_opts_t *o, int shard, int nshards,
                      ty_data_t **out, char **err);
void ty_data_destroy(ty_data_t **d);
/* Whether path (when it exists) is one of the files spec reads: an output
 * about to be written over its own input is refused before it is lost. */
int ty_data_reads(const char *spec, const char *path);
/* Index of name in d->classes, or -1. */
long ty_data_class(const ty_data_t *d, const char *name);

/* Shard `shard` of `nshards` holds positions [*lo, *hi).  With V virtual
 * shards and nshards dividing V, it holds exactly the positions p with
 * p*V/extent in its run of virtual shards. */
void ty_data_shard(uint64_t extent, int shard, int nshards, uint64_t *lo, uint64_t *hi);

/* Per-feature standardisation: x = (x - mean) / std (std 0 -> 1). */
void ty_data_standardize(ty_data_t *d, const float *mean, const float *std);

#endif
