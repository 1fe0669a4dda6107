#include "common/digest.h"

#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

struct ty_sha256 {
    EVP_MD_CTX *ctx;
};

void ty_sha256_create(ty_sha256_t **out) {
    ty_sha256_t *h = ty_xcalloc(1, sizeof *h);
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory, as everywhere else */
    *out = h;
}

void ty_sha256_destroy(ty_sha256_t **h) {
    if (!h || !*h)
        return;
    EVP_MD_CTX_free((*h)->ctx);
    free(*h);
    *h = NULL;
}

void ty_sha256_update(ty_sha256_t *h, const void *data, size_t len) {
    if (len)
        EVP_DigestUpdate(h->ctx, data, len);
}

void ty_sha256_final(ty_sha256_t *h, char hex[TY_SHA256_HEX]) {
    unsigned char md[32];
    unsigned n = 0;
    EVP_DigestFinal_ex(h->ctx, md, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

int ty_sha256_file(const char *path, char hex[TY_SHA256_HEX], uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ty_sha256_t *h;
    ty_sha256_create(&h);
    enum { BLOCK = 1 << 20 };
    char *buf = ty_xmalloc(BLOCK);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        ty_sha256_update(h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    close(fd);
    free(buf);
    if (rc == 0) {
        ty_sha256_final(h, hex);
        *size = total;
    }
    ty_sha256_destroy(&h);
    return rc;
}

int ty_sha256_hex_ok(const char *s) {
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

uint32_t ty_crc32(const void *data, size_t len) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *p = data;
    while (len > 0) { /* zlib takes a uInt length */
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

/* CRC-32C (Castagnoli), reflected polynomial 0x82f63b78. */
static uint32_t ty_crc32c_table[256];

static void ty_crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        ty_crc32c_table[i] = c;
    }
}

static uint32_t ty_crc32c_soft(uint32_t c, const uint8_t *p, size_t n) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ty_crc32c_init);
    while (n--)
        c = ty_crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t ty_crc32c_hw(uint32_t c, const uint8_t *p,
                                                               size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t ty_crc32c(const void *data, size_t len) {
    uint32_t c = 0xffffffffu;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ty_crc32c_hw(c, data, len) ^ 0xffffffffu;
#endif
    return ty_crc32c_soft(c, data, len) ^ 0xffffffffu;
}

const char *ty_output_path_problem(const char *p) {
    size_t n = p ? strlen(p) : 0;
    if (n == 0)
        return "is empty";
    if (n > 1024)
        return "is longer than 1024 bytes";
    if (p[0] == '/')
        return "is absolute (outputs are relative to the attempt directory)";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return "contains a control character";
    const char *s = p;
    for (;;) { /* each component */
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0)
            return "has an empty component (//, or a trailing /)";
        if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
            return "has a . or .. component (outputs stay inside the attempt directory)";
        if (!e)
            break;
        s = e + 1;
    }
    return NULL;
}
