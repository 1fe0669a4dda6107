/* Class labels of trainyard-train: CSV targets may be class names ("cat",
 * "setosa") as well as class indexes 0..C-1.  Each rank's shard sees some of
 * the names (trainer/data.h); the ranks pack theirs, exchange them, and all
 * agree on one list (sorted, so the order does not depend on the rank
 * count), or on the list the user gave with --class-names.  Every shard's
 * targets are then renumbered into that list.  No MPI here: train.c moves
 * the packed bytes. */
#ifndef TY_TRAINER_LABELS_H
#define TY_TRAINER_LABELS_H

#include "trainer/data.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **names;
    size_t n;
} ty_labels_t;

void ty_labels_free(ty_labels_t *l);

/* "a,b,c" (--class-names): trimmed, non-empty, distinct.  0 or TY_EINVAL
 * with *err set. */
int ty_labels_parse(const char *list, ty_labels_t *out, char **err);

/* d's class names as NUL-terminated strings one after another (a heap
 * buffer of *len bytes; NULL and 0 when there are none). */
char *ty_labels_pack(const ty_data_t *d, size_t *len);
/* Adds the packed names of buf to l, then sorts l and drops duplicates. */
void ty_labels_merge(ty_labels_t *l, const char *buf, size_t len);

/* Renumbers d's targets (indexes into d->classes) into l.  0, or TY_EINVAL
 * with *err naming the first class that l lacks. */
int ty_labels_remap(ty_data_t *d, const ty_labels_t *l, const char *what, char **err);

/* Numeric targets: whole numbers in [0, TY_DATA_MAX_CLASSES).  0 with *max the largest
 * (0 when there are no rows), or TY_EINVAL with *err naming the first
 * offending value. */
int ty_labels_numeric(const ty_data_t *d, uint32_t *max, char **err);

#endif
