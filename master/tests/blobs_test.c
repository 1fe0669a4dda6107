/* The artifact store on a real loop, thread pool and disk: an upload in
 * chunks with flow control, resumed, a chunk with a flipped byte, content
 * that does not match its digest, one copy of equal content, range reads,
 * the size limit, and no temporary file left behind. */
#include "master/blobs.h"

#include "common/digest.h"
#include "common/err.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SENT 256

typedef struct {
    Ty__Envelope *env[MAX_SENT];
    int client[MAX_SENT];
    size_t n;
} sent_t;

static sent_t S;

static void on_send(void *arg, int client, const uint8_t *peer, size_t peer_len, uint64_t req_id,
                    Ty__Envelope *env) {
    (void)arg;
    (void)peer;
    (void)peer_len;
    env->req_id = req_id;
    size_t len = ty__envelope__get_packed_size(env);
    uint8_t *buf = ty_xmalloc(len ? len : 1);
    ty__envelope__pack(env, buf);
    if (S.n < MAX_SENT) {
        S.client[S.n] = client;
        S.env[S.n++] = ty__envelope__unpack(NULL, len, buf);
    }
    free(buf);
}

static void clear_sent(void) {
    for (size_t i = 0; i < S.n; i++)
        ty__envelope__free_unpacked(S.env[i], NULL);
    S.n = 0;
}

/* Run the loop until n messages were sent (bounded). */
static void wait_sent(uv_loop_t *loop, size_t n) {
    int64_t end = ty_mono_ms() + 10000;
    while (S.n < n && ty_mono_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    CHECK(S.n >= n);
}

static Ty__Envelope *last(void) { return S.n ? S.env[S.n - 1] : NULL; }

static void begin(ty_blobs_t *b, const char *peer, const char *name, const char *sha,
                  uint64_t size) {
    Ty__UploadBegin ub = TY__UPLOAD_BEGIN__INIT;
    ub.name = (char *)name;
    ub.sha256 = (char *)sha;
    ub.size = size;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_UPLOAD_BEGIN;
    env.upload_begin = &ub;
    ty_blobs_on_msg(b, 0, (const uint8_t *)peer, strlen(peer), &env);
}

static void chunk(ty_blobs_t *b, const char *peer, const char *sha, const uint8_t *data,
                  uint64_t off, size_t len, int flip) {
    uint8_t *copy = ty_xmalloc(len);
    memcpy(copy, data + off, len);
    Ty__UploadChunk uc = TY__UPLOAD_CHUNK__INIT;
    uc.sha256 = (char *)sha;
    uc.offset = off;
    uc.crc32 = ty_crc32c(copy, len);
    if (flip)
        copy[len / 2] ^= 0x20; /* damaged on the way, after its CRC was taken */
    uc.data.data = copy;
    uc.data.len = len;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_UPLOAD_CHUNK;
    env.upload_chunk = &uc;
    ty_blobs_on_msg(b, 0, (const uint8_t *)peer, strlen(peer), &env);
    free(copy);
}

static void begin_whole(ty_blobs_t *b, const char *peer, const char *sha, const uint8_t *data,
                        size_t len, int flip) {
    uint8_t *copy = ty_xmalloc(len ? len : 1);
    memcpy(copy, data, len);
    Ty__UploadBegin ub = TY__UPLOAD_BEGIN__INIT;
    ub.name = "small.txt";
    ub.sha256 = (char *)sha;
    ub.size = len;
    ub.whole = 1;
    ub.crc32 = ty_crc32c(copy, len);
    if (flip)
        copy[0] ^= 1;
    ub.data.data = copy;
    ub.data.len = len;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_UPLOAD_BEGIN;
    env.upload_begin = &ub;
    ty_blobs_on_msg(b, 0, (const uint8_t *)peer, strlen(peer), &env);
    free(copy);
}

static void sha_of(const uint8_t *data, size_t len, char sha[TY_SHA256_HEX]) {
    ty_sha256_t *h;
    ty_sha256_create(&h);
    ty_sha256_update(h, data, len);
    ty_sha256_final(h, sha);
    ty_sha256_destroy(&h);
}

static size_t count_files(const char *dir) {
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = ty_xmalloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static const char *missing_seen;
static int checks_done;
static void on_check(void *arg, const char *missing) {
    (void)arg;
    missing_seen = missing ? "some" : NULL;
    checks_done++;
}

int main(void) {
    char dir[] = "/tmp/ty-blobs-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    ty_blobs_opts_t o;
    ty_blobs_opts_default(&o);
    char *store = ty_xasprintf("%s/store", dir);
    o.dir = store;
    o.chunk = 1000;
    o.window = 4;
    o.max_artifact = 100000;
    ty_blobs_t *b = NULL;
    CHECK_EQ_INT(ty_blobs_create(&b, &loop, &o, on_send, NULL), 0);
    char *tmpdir = ty_xasprintf("%s/tmp", store);

    /* 3,500 bytes: chunks of 1,000 */
    size_t n = 3500;
    uint8_t *data = ty_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    char sha[TY_SHA256_HEX];
    ty_sha256_t *h;
    ty_sha256_create(&h);
    ty_sha256_update(h, data, n);
    ty_sha256_final(h, sha);
    ty_sha256_destroy(&h);

    begin(b, "w1", "model.bin", sha, n);
    wait_sent(&loop, 1);
    CHECK(last()->body_case == TY__ENVELOPE__BODY_UPLOAD_READY);
    CHECK_EQ_INT(last()->upload_ready->offset, 0);
    CHECK(!last()->upload_ready->stored);
    CHECK_EQ_INT(last()->upload_ready->chunk, 1000);
    CHECK_EQ_INT(last()->upload_ready->window, 4);
    clear_sent();

    chunk(b, "w1", sha, data, 0, 1000, 0);
    chunk(b, "w1", sha, data, 1000, 1000, 1); /* flipped: rejected, asked again from 1000 */
    int64_t end = ty_mono_ms() + 10000;
    int rejected = 0;
    while (!rejected && ty_mono_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        for (size_t i = 0; i < S.n; i++)
            if (S.env[i]->body_case == TY__ENVELOPE__BODY_UPLOAD_ACK &&
                S.env[i]->upload_ack->rejected) {
                rejected = 1;
                CHECK_EQ_INT(S.env[i]->upload_ack->offset, 1000);
            }
    }
    CHECK(rejected);
    size_t before = S.n;
    chunk(b, "w1", sha, data, 2000, 1000, 0); /* out of order: rejected, from 1000 */
    wait_sent(&loop, before + 1);
    CHECK(last()->upload_ack->rejected);
    CHECK_EQ_INT(last()->upload_ack->offset, 1000);
    ty_blobs_stats_t st;
    ty_blobs_stats(b, &st);
    CHECK_EQ_INT(st.rejected_chunks, 1);
    CHECK_EQ_INT(st.active, 1);
    clear_sent();

    /* the connection dropped: Begin again, go on from what was accepted */
    begin(b, "w1", "model.bin", sha, n);
    wait_sent(&loop, 1);
    CHECK(S.env[0]->body_case == TY__ENVELOPE__BODY_UPLOAD_READY);
    CHECK_EQ_INT(S.env[0]->upload_ready->offset, 1000);
    clear_sent();
    chunk(b, "w1", sha, data, 1000, 1000, 0);
    chunk(b, "w1", sha, data, 1000, 1000, 0); /* a duplicate: ignored */
    chunk(b, "w1", sha, data, 2000, 1000, 0);
    chunk(b, "w1", sha, data, 3000, 500, 0);
    end = ty_mono_ms() + 10000;
    int stored = 0;
    while (!stored && ty_mono_ms() < end) {
        uv_run(&loop, UV_RUN_ONCE);
        stored = last() && last()->body_case == TY__ENVELOPE__BODY_UPLOAD_ACK &&
                 last()->upload_ack->stored;
    }
    CHECK(stored);
    CHECK_EQ_INT(last()->upload_ack->offset, n);
    CHECK_STR(last()->upload_ack->error, "");
    for (size_t i = 0; i + 1 < S.n; i++) /* acks only ever go forward */
        CHECK(S.env[i]->upload_ack->offset <= S.env[i + 1]->upload_ack->offset);
    clear_sent();
    char *path = ty_blobs_path(b, sha);
    size_t got_len = 0;
    char *got = read_all(path, &got_len);
    CHECK(got && got_len == n && memcmp(got, data, n) == 0);
    free(got);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_EQ_INT(count_files(tmpdir), 0);

    /* the same content again, from another worker: stored already */
    begin(b, "w2", "copy.bin", sha, n);
    wait_sent(&loop, 1);
    CHECK(last()->upload_ready->stored);
    clear_sent();

    /* content that is not what its digest says: refused, nothing kept */
    char other[TY_SHA256_HEX];
    memcpy(other, sha, sizeof other);
    other[0] = other[0] == 'a' ? 'b' : 'a';
    begin(b, "w1", "lie.bin", other, 1000);
    wait_sent(&loop, 1);
    clear_sent();
    chunk(b, "w1", other, data, 0, 1000, 0);
    end = ty_mono_ms() + 10000;
    while (!(last() && *last()->upload_ack->error) && ty_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(last() && strstr(last()->upload_ack->error, "not") != NULL);
    CHECK(!last()->upload_ack->stored);
    clear_sent();
    char *lie = ty_blobs_path(b, other);
    CHECK(access(lie, F_OK) != 0);
    free(lie);

    /* over the size limit; a bad name */
    begin(b, "w1", "huge.bin", other, 100001);
    wait_sent(&loop, 1);
    CHECK(strstr(last()->upload_ready->error, "over the master's --max-artifact-bytes") != NULL);
    begin(b, "w1", "../up.bin", other, 10);
    wait_sent(&loop, 2);
    CHECK(strstr(last()->upload_ready->error, "artifact name '../up.bin'") != NULL);
    clear_sent();

    /* ranges back, from a client; an unknown digest */
    Ty__BlobRead br = TY__BLOB_READ__INIT;
    br.sha256 = sha;
    br.offset = 3000;
    br.length = 1000;
    Ty__Envelope env = TY__ENVELOPE__INIT;
    env.body_case = TY__ENVELOPE__BODY_BLOB_READ;
    env.blob_read = &br;
    env.req_id = 9;
    ty_blobs_on_msg(b, 1, (const uint8_t *)"cli", 3, &env);
    wait_sent(&loop, 1);
    CHECK(S.client[0]);
    CHECK_EQ_INT(last()->req_id, 9);
    CHECK(last()->body_case == TY__ENVELOPE__BODY_BLOB_DATA);
    CHECK_EQ_INT(last()->blob_data->size, n);
    CHECK_EQ_INT(last()->blob_data->data.len, 500);
    CHECK(memcmp(last()->blob_data->data.data, data + 3000, 500) == 0);
    br.sha256 = other;
    ty_blobs_on_msg(b, 1, (const uint8_t *)"cli", 3, &env);
    wait_sent(&loop, 2);
    CHECK(last()->body_case == TY__ENVELOPE__BODY_ERROR);
    CHECK_EQ_INT(last()->error->code, TY_ENOENT);
    clear_sent();

    /* a result's outputs are checked against the store */
    char *shas[2] = {sha, other};
    ty_blobs_check(b, shas, 1, on_check, NULL);
    CHECK_EQ_INT(checks_done, 1); /* known: answered at once */
    CHECK(missing_seen == NULL);
    ty_blobs_check(b, shas, 2, on_check, NULL);
    end = ty_mono_ms() + 10000;
    while (checks_done < 2 && ty_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(missing_seen != NULL);

    /* an upload left half done is dropped with its file when idle, and by a reset */
    begin(b, "w3", "half.bin", other, n);
    wait_sent(&loop, 1);
    chunk(b, "w3", other, data, 0, 1000, 0);
    wait_sent(&loop, 2);
    CHECK_EQ_INT(count_files(tmpdir), 1);
    ty_blobs_reset(b);
    end = ty_mono_ms() + 10000;
    while (count_files(tmpdir) > 0 && ty_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(count_files(tmpdir), 0);
    ty_blobs_stats(b, &st);
    CHECK_EQ_INT(st.active, 0);
    CHECK_EQ_INT(st.stored, 1);
    clear_sent();

    /* small files whole with their Begin: the ones that arrive while a
     * group is in the pool go together in the next; each is answered
     * stored only once it is in place */
    enum { NW = 5 };
    uint8_t small[NW][100];
    char ssha[NW][TY_SHA256_HEX];
    for (int k = 0; k < NW; k++) {
        for (size_t i = 0; i < sizeof small[k]; i++)
            small[k][i] = (uint8_t)(k * 31 + i);
        sha_of(small[k], sizeof small[k], ssha[k]);
        begin_whole(b, k % 2 ? "w1" : "w2", ssha[k], small[k], sizeof small[k], 0);
    }
    wait_sent(&loop, NW);
    for (int k = 0; k < NW; k++) {
        CHECK(S.env[k]->body_case == TY__ENVELOPE__BODY_UPLOAD_READY);
        CHECK(S.env[k]->upload_ready->stored);
        CHECK_STR(S.env[k]->upload_ready->error, "");
        char *p = ty_blobs_path(b, ssha[k]);
        size_t len = 0;
        char *bytes = read_all(p, &len);
        CHECK(bytes && len == sizeof small[k] && memcmp(bytes, small[k], len) == 0);
        free(bytes);
        unlink(p);
        free(p);
    }
    CHECK_EQ_INT(count_files(tmpdir), 0);
    ty_blobs_stats(b, &st);
    CHECK_EQ_INT(st.stored, 1 + NW);
    CHECK_EQ_INT(st.groups, 2); /* the first alone, the other four together */
    clear_sent();
    /* stored already (known): answered at once */
    begin_whole(b, "w1", ssha[0], small[0], sizeof small[0], 0);
    CHECK_EQ_INT(S.n, 1);
    CHECK(last()->upload_ready->stored);
    clear_sent();
    /* damaged on the way: not taken, the worker is asked for chunks */
    uint8_t fresh[100];
    char fsha[TY_SHA256_HEX];
    memset(fresh, 'q', sizeof fresh);
    sha_of(fresh, sizeof fresh, fsha);
    begin_whole(b, "w1", fsha, fresh, sizeof fresh, 1);
    wait_sent(&loop, 1);
    CHECK(!last()->upload_ready->stored);
    CHECK_EQ_INT(last()->upload_ready->offset, 0);
    CHECK_STR(last()->upload_ready->error, "");
    clear_sent();
    chunk(b, "w1", fsha, fresh, 0, sizeof fresh, 0);
    end = ty_mono_ms() + 10000;
    while (!(last() && last()->body_case == TY__ENVELOPE__BODY_UPLOAD_ACK &&
             last()->upload_ack->stored) &&
           ty_mono_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(last() && last()->upload_ack->stored);
    clear_sent();
    /* not what its digest says: refused with the reason, nothing kept */
    char *fp = ty_blobs_path(b, fsha);
    unlink(fp);
    free(fp);
    char wrong[TY_SHA256_HEX];
    sha_of(small[1], sizeof small[1], wrong);
    wrong[5] = wrong[5] == '0' ? '1' : '0';
    begin_whole(b, "w2", wrong, small[1], sizeof small[1], 0);
    wait_sent(&loop, 1);
    CHECK(!last()->upload_ready->stored);
    CHECK(strstr(last()->upload_ready->error, "as declared") != NULL);
    char *wp = ty_blobs_path(b, wrong);
    CHECK(access(wp, F_OK) != 0);
    free(wp);
    CHECK_EQ_INT(count_files(tmpdir), 0);
    clear_sent();

    ty_blobs_destroy(&b);
    uv_loop_close(&loop);
    unlink(path);
    free(path);
    free(data);
    free(tmpdir);
    free(store);
    char *cmd = ty_xasprintf("rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
    free(cmd);
    TEST_DONE();
}
