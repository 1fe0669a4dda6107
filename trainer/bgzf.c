#include "trainer/bgzf.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TY_BGZF_MAX_IN 65280u /* 0xff00: what bgzip puts in a block */
#define TY_BGZF_MAX_BLOCK 65536u
#define TY_BGZF_HDR 18u
#define TY_BGZF_TRAILER 8u

/* The empty block that ends a BGZF file (SAM/BAM specification). */
static const unsigned char ty_bgzf_eof[28] = {0x1f, 0x8b, 8,   4,   0, 0, 0,    0, 0, 0xff,
                                              6,    0,    'B', 'C', 2, 0, 0x1b, 0, 3, 0,
                                              0,    0,    0,   0,   0, 0, 0,    0};

struct ty_bgzf_writer {
    int fd, err;
    size_t block, len;
    unsigned char *in, *out;
    z_stream z; /* raw deflate at the chosen level, reset for every block */
};

int ty_bgzf_writer_create(ty_bgzf_writer_t **out, const char *path, size_t block, int level,
                          char **err) {
    *out = NULL;
    if (block == 0)
        block = TY_BGZF_MAX_IN;
    if (block > TY_BGZF_MAX_IN || level < -1 || level > 9) {
        *err = ty_xasprintf("BGZF blocks hold at most %u bytes, at level -1 to 9", TY_BGZF_MAX_IN);
        return TY_EINVAL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        *err = ty_xasprintf("%s: %s", path, strerror(e));
        return -e;
    }
    ty_bgzf_writer_t *w = ty_xcalloc(1, sizeof *w);
    w->fd = fd;
    w->block = block;
    w->in = ty_xmalloc(block);
    w->out = ty_xmalloc(TY_BGZF_MAX_BLOCK);
    if (deflateInit2(&w->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort(); /* only out of memory: DESIGN's OOM rule */
    *out = w;
    return 0;
}

static void ty_le16(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void ty_le32(unsigned char *p, uint32_t v) {
    ty_le16(p, v);
    ty_le16(p + 2, v >> 16);
}

/* Deflates the buffered bytes into one block.  At most 65280 bytes in
 * always fit: deflate falls back to stored blocks for data it cannot
 * compress, and deflateBound(65280) is well under the room a block has. */
static int ty_bgzf_flush(ty_bgzf_writer_t *w) {
    if (w->len == 0 || w->err)
        return w->err;
    size_t room = TY_BGZF_MAX_BLOCK - TY_BGZF_HDR - TY_BGZF_TRAILER;
    deflateReset(&w->z);
    w->z.next_in = w->in;
    w->z.avail_in = (uInt)w->len;
    w->z.next_out = w->out + TY_BGZF_HDR;
    w->z.avail_out = (uInt)room;
    if (deflate(&w->z, Z_FINISH) != Z_STREAM_END)
        return w->err = TY_EIO;
    size_t clen = room - w->z.avail_out;
    unsigned char *h = w->out;
    static const unsigned char head[16] = {0x1f, 0x8b, 8, 4, 0,   0,   0, 0,
                                           0,    0xff, 6, 0, 'B', 'C', 2, 0};
    memcpy(h, head, sizeof head);
    size_t total = TY_BGZF_HDR + clen + TY_BGZF_TRAILER;
    ty_le16(h + 16, (uint32_t)(total - 1));
    ty_le32(h + TY_BGZF_HDR + clen, (uint32_t)crc32(0, w->in, (uInt)w->len));
    ty_le32(h + TY_BGZF_HDR + clen + 4, (uint32_t)w->len);
    w->len = 0;
    return w->err = ty_write_all(w->fd, h, total);
}

int ty_bgzf_write(ty_bgzf_writer_t *w, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0 && !w->err) {
        size_t k = w->block - w->len < n ? w->block - w->len : n;
        memcpy(w->in + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == w->block)
            ty_bgzf_flush(w);
    }
    return w->err;
}

int ty_bgzf_writer_close(ty_bgzf_writer_t **pw, char **err) {
    ty_bgzf_writer_t *w = pw ? *pw : NULL;
    if (!w)
        return 0;
    int rc = ty_bgzf_flush(w);
    if (rc == 0)
        rc = ty_write_all(w->fd, ty_bgzf_eof, sizeof ty_bgzf_eof);
    if (close(w->fd) != 0 && rc == 0)
        rc = -errno;
    if (rc != 0)
        *err = ty_xasprintf("cannot write BGZF data: %s", ty_strerror(rc));
    deflateEnd(&w->z);
    free(w->in);
    free(w->out);
    free(w);
    *pw = NULL;
    return rc;
}

/* ---- reading ---- */

struct ty_bgzf_index {
    size_t n;       /* data blocks */
    uint64_t *coff; /* n + 1: compressed offsets; coff[n] = the end of data */
    uint64_t *uoff; /* n + 1: uncompressed offsets; uoff[n] = the size */
};

static int ty_pread_all(int fd, unsigned char *p, size_t n, uint64_t off) {
    ssize_t k = pread(fd, p, n, (off_t)off);
    return k == (ssize_t)n ? 0 : -1;
}

/* The total size of the block at off (its BSIZE + 1), or 0 if there is no
 * BGZF block header there. */
static size_t ty_bgzf_block_size(int fd, uint64_t off) {
    unsigned char h[12], x[256];
    if (ty_pread_all(fd, h, sizeof h, off) != 0 || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 ||
        !(h[3] & 4))
        return 0;
    size_t xlen = (size_t)h[10] | (size_t)h[11] << 8;
    if (xlen < 6 || xlen > sizeof x || ty_pread_all(fd, x, xlen, off + 12) != 0)
        return 0;
    for (size_t i = 0; i + 4 <= xlen;) { /* subfields: SI1 SI2 SLEN(2) data */
        size_t slen = (size_t)x[i + 2] | (size_t)x[i + 3] << 8;
        if (x[i] == 'B' && x[i + 1] == 'C' && slen == 2 && i + 6 <= xlen)
            return ((size_t)x[i + 4] | (size_t)x[i + 5] << 8) + 1;
        i += 4 + slen;
    }
    return 0;
}

int ty_bgzf_index_create(ty_bgzf_index_t **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return -e;
    }
    ty_bgzf_index_t *ix = ty_xcalloc(1, sizeof *ix);
    size_t cap = 0;
    uint64_t c = 0, u = 0, size = (uint64_t)st.st_size;
    int rc = size > 0 ? 0 : TY_EPARSE;
    while (rc == 0 && c < size) {
        size_t bs = ty_bgzf_block_size(fd, c);
        unsigned char t[4];
        if (bs < TY_BGZF_HDR + TY_BGZF_TRAILER || c + bs > size ||
            ty_pread_all(fd, t, 4, c + bs - 4) != 0) {
            rc = TY_EPARSE;
            break;
        }
        uint64_t isize =
            (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
        if (isize > 0) {
            if (ix->n + 2 > cap) {
                cap = cap ? 2 * cap : 256;
                ix->coff = ty_xrealloc(ix->coff, cap * sizeof(uint64_t));
                ix->uoff = ty_xrealloc(ix->uoff, cap * sizeof(uint64_t));
            }
            ix->coff[ix->n] = c;
            ix->uoff[ix->n++] = u;
            u += isize;
        }
        c += bs;
    }
    close(fd);
    if (rc != 0) {
        ty_bgzf_index_destroy(&ix);
        return rc;
    }
    if (ix->n + 1 > cap) {
        ix->coff = ty_xrealloc(ix->coff, (ix->n + 1) * sizeof(uint64_t));
        ix->uoff = ty_xrealloc(ix->uoff, (ix->n + 1) * sizeof(uint64_t));
    }
    ix->coff[ix->n] = c;
    ix->uoff[ix->n] = u;
    *out = ix;
    return 0;
}

void ty_bgzf_index_destroy(ty_bgzf_index_t **pix) {
    ty_bgzf_index_t *ix = pix ? *pix : NULL;
    if (!ix)
        return;
    free(ix->coff);
    free(ix->uoff);
    free(ix);
    *pix = NULL;
}

uint64_t ty_bgzf_size(const ty_bgzf_index_t *ix) { return ix->uoff[ix->n]; }
size_t ty_bgzf_blocks(const ty_bgzf_index_t *ix) { return ix->n; }

gzFile ty_bgzf_open_at(const ty_bgzf_index_t *ix, const char *path, uint64_t u, uint64_t *base) {
    size_t lo = 0, hi = ix->n; /* the last block starting at or before u */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ix->uoff[mid] <= u)
            lo = mid;
        else
            hi = mid;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (lseek(fd, (off_t)ix->coff[lo], SEEK_SET) < 0) {
        close(fd);
        return NULL;
    }
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return NULL;
    }
    *base = ix->uoff[lo];
    return f;
}
