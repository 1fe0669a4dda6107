/* Checkpoints of a fit: see train_int.h. */
#include "trainer/train_int.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

char *ty_ckpt_path(const ty_tr_t *T) { return ty_xasprintf("%s/checkpoint", T->o->ckpt_dir); }

#define TY_CKPT_MAGIC 0x54594b32u /* TYK2 */

/* What a checkpoint must agree with to be resumed: architecture, task,
 * layer sizes and optimizer (not the learning rate or epochs, which a
 * resumed run may change). */
static uint32_t ty_ckpt_fingerprint(const ty_tr_t *T) {
    const ty_model_t *m = T->m;
    uint32_t head[4] = {(uint32_t)m->arch, (uint32_t)m->classify, m->nlayers, (uint32_t)T->o->adam};
    uLong c = crc32(0, (const Bytef *)head, sizeof head);
    return (uint32_t)crc32(c, (const Bytef *)m->dims, (uInt)((m->nlayers + 1) * sizeof *m->dims));
}

int ty_ckpt_save(ty_tr_t *T, int epoch) {
    ty_buf_t b = {0};
    ty_model_t *m = T->m;
    uint32_t hdr[4] = {TY_CKPT_MAGIC, (uint32_t)epoch, (uint32_t)m->nparams,
                       ty_ckpt_fingerprint(T)};
    ty_buf_append(&b, hdr, sizeof hdr);
    ty_buf_append(&b, &T->t, sizeof T->t);
    ty_buf_append(&b, &T->best_val, sizeof T->best_val);
    ty_buf_append(&b, &T->since_best, sizeof T->since_best);
    ty_buf_append(&b, m->params, m->nparams * sizeof(float));
    ty_buf_append(&b, T->m1, m->nparams * sizeof(float));
    /* SGD on the CPU keeps no second moment, and a run without early
     * stopping no best weights: zeros there, as before */
    float *zeros = T->m2 && T->best ? NULL : ty_xcalloc(m->nparams, sizeof(float));
    ty_buf_append(&b, T->m2 ? T->m2 : zeros, m->nparams * sizeof(float));
    ty_buf_append(&b, T->best ? T->best : zeros, m->nparams * sizeof(float));
    free(zeros);
    ty_buf_append(&b, &T->last, sizeof T->last);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)b.data, (uInt)b.len);
    ty_buf_append(&b, &crc, 4);
    char *path = ty_ckpt_path(T);
    int rc = ty_write_file_atomic(path, b.data, b.len);
    if (rc)
        fprintf(stderr, "trainyard-train: cannot write checkpoint %s: %s\n", path, strerror(-rc));
    free(path);
    ty_buf_free(&b);
    return rc;
}

/* Rank 0 reads the checkpoint and sends it to every rank (a rank on
 * another node may not see rank 0's disk), so all resume from the same
 * state or all start afresh.  Every rank decides the same from the same
 * bytes; rank 0 says what happened. */
int ty_ckpt_load(ty_tr_t *T) {
    char *path = ty_ckpt_path(T);
    ty_buf_t b = {0};
    long long len = -1; /* -1: no checkpoint */
    if (T->rank == 0 && ty_read_file(path, &b) == 0)
        len = (long long)b.len;
    MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    if (len >= 0 && T->rank != 0) {
        b.data = ty_xmalloc((size_t)len + 1);
        b.len = (size_t)len;
    }
    for (long long off = 0; off < len; off += 1 << 30) /* counts are ints */
        MPI_Bcast(b.data + off, (int)(len - off < (1 << 30) ? len - off : 1 << 30), MPI_BYTE, 0,
                  MPI_COMM_WORLD);
    int rc = len < 0 ? -ENOENT : 0, say = T->rank == 0;
    ty_model_t *m = T->m;
    /* (a checkpoint of before the epoch's figures were in it still resumes) */
    size_t old = 16 + 8 + 8 + sizeof(int) + 4 * m->nparams * sizeof(float) + 4,
           want = old + sizeof T->last;
    uint32_t hdr[4] = {0}, crc = 0;
    if (rc == 0 && b.len >= sizeof hdr + 4) {
        memcpy(hdr, b.data, sizeof hdr);
        memcpy(&crc, b.data + b.len - 4, 4);
    }
    if (rc != 0) {
        if (say)
            fprintf(stderr, "trainyard-train: no checkpoint at %s: starting afresh\n", path);
        rc = 1;
    } else if (hdr[0] != TY_CKPT_MAGIC ||
               crc != (uint32_t)crc32(0, (const Bytef *)b.data, (uInt)(b.len - 4))) {
        if (say)
            fprintf(stderr, "trainyard-train: %s is not a checkpoint, or is corrupt\n", path);
        rc = -1;
    } else if ((b.len != want && b.len != old) || hdr[2] != m->nparams ||
               hdr[3] != ty_ckpt_fingerprint(T)) {
        if (say)
            fprintf(stderr,
                    "trainyard-train: %s was written for another model or optimizer "
                    "(--model and --optimizer must match the run that wrote it)\n",
                    path);
        rc = -1;
    } else {
        const char *p = b.data + 16;
        T->start_epoch = (int)hdr[1];
        memcpy(&T->t, p, 8), p += 8;
        memcpy(&T->best_val, p, 8), p += 8;
        memcpy(&T->since_best, p, sizeof(int)), p += sizeof(int);
        size_t nb = m->nparams * sizeof(float);
        memcpy(m->params, p, nb), p += nb;
        memcpy(T->m1, p, nb), p += nb;
        if (T->m2)
            memcpy(T->m2, p, nb);
        p += nb;
        if (T->best)
            memcpy(T->best, p, nb);
        p += nb;
        if (b.len == want)
            memcpy(&T->last, p, sizeof T->last);
        if (say)
            fprintf(stderr, "trainyard-train: resuming after epoch %d from %s\n", T->start_epoch,
                    path);
        rc = 0;
    }
    free(path);
    ty_buf_free(&b);
    return rc;
}
