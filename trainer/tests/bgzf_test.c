/* BGZF: what the writer makes is ordinary gzip to zlib, the index finds
 * every block without decompressing, a stream opened at any offset starts
 * at the right block, and non-BGZF files are told apart. */
#include "trainer/bgzf.h"

#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <errno.h>
#include <unistd.h>

static char dir[] = "/tmp/ty-bgzf-testXXXXXX";

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    char *err = NULL, *p = ty_xasprintf("%s/d.gz", dir);
    /* 5000 lines, 100-byte blocks: many blocks, lines across block edges */
    ty_buf_t want = {0};
    for (int i = 0; i < 5000; i++)
        ty_buf_printf(&want, "%d,%d\n", i, i * 7);
    ty_bgzf_writer_t *w = NULL;
    CHECK_EQ_INT(ty_bgzf_writer_create(&w, p, 100, -1, &err), 0);
    for (size_t off = 0; off < want.len; off += 37) /* odd-sized writes */
        CHECK_EQ_INT(ty_bgzf_write(w, want.data + off, want.len - off < 37 ? want.len - off : 37),
                     0);
    CHECK_EQ_INT(ty_bgzf_writer_close(&w, &err), 0);
    CHECK(w == NULL);

    /* plain zlib reads it whole */
    gzFile f = gzopen(p, "rb");
    char *got = ty_xmalloc(want.len + 16);
    CHECK_EQ_INT(gzread(f, got, (unsigned)want.len + 16), want.len);
    CHECK(memcmp(got, want.data, want.len) == 0);
    gzclose(f);

    ty_bgzf_index_t *ix = NULL;
    CHECK_EQ_INT(ty_bgzf_index_create(&ix, p), 0);
    if (ix) {
        CHECK_EQ_INT(ty_bgzf_size(ix), want.len);
        CHECK_EQ_INT(ty_bgzf_blocks(ix), (want.len + 99) / 100);
        uint64_t probes[] = {0, 1, 99, 100, 101, 12345, want.len - 1};
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            uint64_t base = 99999999, u = probes[k];
            f = ty_bgzf_open_at(ix, p, u, &base);
            CHECK(f != NULL);
            if (!f)
                continue;
            CHECK_EQ_INT(base, u / 100 * 100); /* the block holding u */
            char c;
            CHECK_EQ_INT(gzseek(f, (z_off_t)(u - base), SEEK_SET), u - base);
            CHECK_EQ_INT(gzread(f, &c, 1), 1);
            CHECK(c == want.data[u]);
            CHECK_EQ_INT(gztell(f) + (z_off_t)base, u + 1);
            gzclose(f);
        }
    }
    ty_bgzf_index_destroy(&ix);
    CHECK(ix == NULL);

    /* plain gzip and plain text are not BGZF */
    char *q = ty_xasprintf("%s/plain.gz", dir);
    f = gzopen(q, "wb");
    gzwrite(f, want.data, (unsigned)want.len);
    gzclose(f);
    CHECK_EQ_INT(ty_bgzf_index_create(&ix, q), TY_EPARSE);
    f = gzopen(q, "wbT");
    gzwrite(f, want.data, (unsigned)want.len);
    gzclose(f);
    CHECK_EQ_INT(ty_bgzf_index_create(&ix, q), TY_EPARSE);
    /* a BGZF file cut mid-block is not a whole BGZF file */
    CHECK(truncate(p, 500) == 0);
    CHECK_EQ_INT(ty_bgzf_index_create(&ix, p), TY_EPARSE);
    CHECK(ix == NULL);
    /* an empty data set: only the end-of-file block */
    CHECK_EQ_INT(ty_bgzf_writer_create(&w, q, 0, 9, &err), 0);
    CHECK_EQ_INT(ty_bgzf_writer_close(&w, &err), 0);
    CHECK_EQ_INT(ty_bgzf_index_create(&ix, q), 0);
    if (ix)
        CHECK_EQ_INT(ty_bgzf_size(ix), 0);
    ty_bgzf_index_destroy(&ix);
    /* random bytes do not compress: full blocks still fit (deflate stores
     * them) and read back, at any level; one stream serves every block */
    unsigned char *rnd = ty_xmalloc(200000);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        rnd[i] = (unsigned char)x;
    }
    int levels[] = {0, 1, 9};
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(ty_bgzf_writer_create(&w, q, 0, levels[k], &err), 0);
        CHECK_EQ_INT(ty_bgzf_write(w, rnd, 200000), 0);
        CHECK_EQ_INT(ty_bgzf_writer_close(&w, &err), 0);
        CHECK_EQ_INT(ty_bgzf_index_create(&ix, q), 0);
        if (ix)
            CHECK_EQ_INT(ty_bgzf_blocks(ix), 4);
        ty_bgzf_index_destroy(&ix);
        unsigned char *back = ty_xmalloc(200001);
        f = gzopen(q, "rb");
        CHECK_EQ_INT(gzread(f, back, 200001), 200000);
        CHECK(memcmp(back, rnd, 200000) == 0);
        gzclose(f);
        free(back);
    }
    free(rnd);
    CHECK_EQ_INT(ty_bgzf_writer_create(&w, q, 0, 10, &err), TY_EINVAL);
    CHECK_CONTAINS(err, "level -1 to 9");
    free(err);
    err = NULL;
    CHECK_EQ_INT(ty_bgzf_writer_create(&w, "/nonexistent/x.gz", 0, -1, &err), -ENOENT);
    CHECK_CONTAINS(err, "/nonexistent/x.gz");
    free(err);

    free(got);
    free(p);
    free(q);
    ty_buf_free(&want);
    char *cmd = ty_xasprintf("rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    TEST_DONE();
}
