/* BGZF, the "blocked gzip" of bgzip/htslib: a gzip file made of independent
 * members of at most 64 KiB, each recording its compressed size in an extra
 * field ("BC") and its uncompressed size in its trailer.  Any gzip reader
 * reads it whole; a reader that knows the blocks can start at any of them,
 * so an MPI rank decompresses only the blocks of its own shard.
 * `trainyard-train gen` writes .gz files this way; bgzip makes them from
 * other data. */
#ifndef TY_TRAINER_BGZF_H
#define TY_TRAINER_BGZF_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* ---- writing ---- */

typedef struct ty_bgzf_writer ty_bgzf_writer_t;

/* block: uncompressed bytes per block, 1 to 65280 (0 = 65280, as bgzip);
 * level: zlib's 0 to 9, or -1 for its default (6, as bgzip).  Returns 0, or
 * TY_EINVAL / a negative errno with *err set. */
int ty_bgzf_writer_create(ty_bgzf_writer_t **out, const char *path, size_t block, int level,
                          char **err);
/* Returns 0 or a negative errno (also remembered for close). */
int ty_bgzf_write(ty_bgzf_writer_t *w, const void *data, size_t n);
/* Writes what is buffered and the end-of-file block, closes, frees; returns
 * 0 or the first error (negative errno) with *err set. */
int ty_bgzf_writer_close(ty_bgzf_writer_t **w, char **err);

/* ---- reading ---- */

typedef struct ty_bgzf_index ty_bgzf_index_t;

/* Walks the block headers and trailers (a few bytes per block, no
 * decompression).  Returns 0, TY_EPARSE when the file is not entirely BGZF
 * (plain gzip, say: read it as a stream), or TY_EIO. */
int ty_bgzf_index_create(ty_bgzf_index_t **out, const char *path);
void ty_bgzf_index_destroy(ty_bgzf_index_t **ix);
uint64_t ty_bgzf_size(const ty_bgzf_index_t *ix); /* uncompressed bytes */
size_t ty_bgzf_blocks(const ty_bgzf_index_t *ix); /* data blocks (not the EOF block) */

/* A gzip stream of the file from the start of the block that holds
 * uncompressed offset u, reading on to the end; *base receives that block's
 * uncompressed offset (gztell() + *base is the offset in the file).  NULL
 * with errno set on failure.  The caller gzclose()s it. */
gzFile ty_bgzf_open_at(const ty_bgzf_index_t *ix, const char *path, uint64_t u, uint64_t *base);

#endif
