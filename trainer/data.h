/* Datasets for trainyard-train: CSV (plain or gzip, with or without a
 * header, numeric features, a chosen target column) and IDX image/label
 * pairs (the Fashion-MNIST format, gzip or plain).
 *
 * A dataset is a dense row-major float matrix plus one target per row.  Each
 * MPI rank loads only the rows of its shard: [lo, hi) of the file's rows. */
#ifndef TY_TRAINER_DATA_H
#define TY_TRAINER_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t rows, cols; /* rows held here (the shard) */
    size_t total_rows; /* rows in the whole file */
    size_t first_row;  /* global index of row 0 */
    float *x;          /* rows x cols */
    float *y;          /* rows: a class index or a regression target */
    char **names;      /* cols feature names (CSV header or "f<i>") */
    char *target_name;
} ty_data_t;

/* spec: a CSV path or "idx:IMAGES,LABELS".  target: a column name or index
 * (CSV only; NULL = last column).  Loads the rows [shard*total/nshards,
 * (shard+1)*total/nshards).  Returns 0 or a negative code with *err set. */
int ty_data_load(const char *spec, const char *target, int shard, int nshards, ty_data_t **out,
                 char **err);
void ty_data_destroy(ty_data_t **d);

/* Per-feature standardisation: x = (x - mean) / std (std 0 -> 1). */
void ty_data_standardize(ty_data_t *d, const float *mean, const float *std);

#endif
