#include "common/util.h"

#include "common/err.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void ty_oom(void) {
    fputs("trainyard: out of memory\n", stderr);
    abort();
}

void *ty_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        ty_oom();
    return p;
}

void *ty_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        ty_oom();
    return p;
}

void *ty_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q)
        ty_oom();
    return q;
}

char *ty_xstrdup(const char *s) { return ty_xstrndup(s, strlen(s)); }

char *ty_xstrndup(const char *s, size_t n) {
    char *p = ty_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ty_xvasprintf(const char *fmt, va_list ap) {
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        ty_oom();
    return s;
}

char *ty_xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

int64_t ty_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ty_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ty_fmt_time(int64_t ms, char *buf, size_t n) {
    if (ms <= 0) {
        if (n)
            buf[0] = '\0';
        return;
    }
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(ms % 1000));
}

static const char ty_b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ty_b64_encode(const void *data, size_t len) {
    const unsigned char *in = data;
    char *out = ty_xmalloc(4 * ((len + 2) / 3) + 1), *o = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = ty_b64_alpha[v >> 18];
        *o++ = ty_b64_alpha[(v >> 12) & 63];
        *o++ = ty_b64_alpha[(v >> 6) & 63];
        *o++ = ty_b64_alpha[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = ty_b64_alpha[v >> 18];
        *o++ = ty_b64_alpha[(v >> 12) & 63];
        *o++ = i + 1 < len ? ty_b64_alpha[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int ty_b64_val(char c) {
    const char *p = c ? strchr(ty_b64_alpha, c) : NULL;
    return p ? (int)(p - ty_b64_alpha) : -1;
}

int ty_b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen) {
    while (slen > 0 && s[slen - 1] == '=')
        slen--;
    if (slen % 4 == 1)
        return TY_EPARSE;
    unsigned char *buf = ty_xmalloc(slen * 3 / 4 + 1);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = ty_b64_val(s[i]);
        if (v < 0) {
            free(buf);
            return TY_EPARSE;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}

void ty_buf_append(ty_buf_t *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = ty_xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ty_buf_printf(ty_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    ty_buf_append(b, s, strlen(s));
    free(s);
}

void ty_buf_consume(ty_buf_t *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void ty_buf_free(ty_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int ty_read_file(const char *path, ty_buf_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ty_buf_append(out, chunk, n);
    int rc = ferror(f) ? -EIO : 0;
    fclose(f);
    ty_buf_append(out, "", 0); /* NUL-terminate even when empty */
    return rc;
}

int ty_is_special_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

char *ty_atomic_tmp_path(const char *path) {
    if (ty_is_special_file(path)) /* /dev/null, a FIFO: written in place, never replaced */
        return NULL;
    return ty_xasprintf("%s.tmp.%d", path, (int)getpid());
}

int ty_atomic_open(const char *path, FILE **f, char **tmp) {
    *tmp = ty_atomic_tmp_path(path);
    int fd = *tmp ? open(*tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                  : open(path, O_WRONLY | O_CLOEXEC); /* a special file: in place */
    *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (*f)
        return 0;
    int rc = -errno;
    if (fd >= 0) {
        close(fd);
        ty_atomic_finish(*tmp, path, 0); /* removes the temporary made */
    } else {
        free(*tmp);
    }
    *tmp = NULL;
    return rc;
}

int ty_atomic_finish(char *tmp, const char *path, int keep) {
    if (!tmp)
        return 0;
    int rc = keep && rename(tmp, path) != 0 ? -errno : 0;
    if (!keep || rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int ty_atomic_close(FILE *f, char *tmp, const char *path, int keep) {
    int rc = 0;
    errno = 0; /* a failed write leaves its data buffered: the flush fails the same way */
    if (keep && (fflush(f) != 0 || ferror(f) || (tmp && fsync(fileno(f)) != 0)))
        rc = -(errno ? errno : EIO);
    if (fclose(f) != 0 && rc == 0)
        rc = -(errno ? errno : EIO);
    int frc = ty_atomic_finish(tmp, path, keep && rc == 0);
    return rc ? rc : frc;
}

int ty_write_file_atomic(const char *path, const void *data, size_t len) {
    FILE *f;
    char *tmp;
    int rc = ty_atomic_open(path, &f, &tmp);
    if (rc != 0)
        return rc;
    errno = 0;
    int wrote = fwrite(data, 1, len, f) == len, werr = wrote ? 0 : -(errno ? errno : EIO);
    rc = ty_atomic_close(f, tmp, path, wrote);
    return werr ? werr : rc;
}

int ty_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int ty_check_writable(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            return -EISDIR;
        return access(path, W_OK) == 0 ? 0 : -errno; /* special: a FIFO's open would wait */
    }
    FILE *f;
    char *tmp;
    int rc = ty_atomic_open(path, &f, &tmp);
    return rc != 0 ? rc : ty_atomic_close(f, tmp, path, 0);
}

int ty_mkdirs(const char *path) {
    char *d = ty_xstrdup(path);
    int rc = 0;
    for (char *s = d + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(d, 0755) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (!c)
            break;
    }
    free(d);
    return rc;
}

void ty_random_bytes(void *buf, size_t n) {
    if (getrandom(buf, n, 0) != (ssize_t)n)
        abort();
}

int ty_parse_f64(const char *s, double lo, double hi, double *out) {
    if (!s || !*s || isspace((unsigned char)*s))
        return TY_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi)
        return TY_EINVAL;
    *out = v;
    return 0;
}

int ty_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s || isspace((unsigned char)*s))
        return TY_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return TY_EINVAL;
    *out = (int64_t)v;
    return 0;
}

uint64_t ty_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int ty_write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int ty_pwrite_all(int fd, const void *data, size_t n, uint64_t off) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

int ty_host_token_ok(const char *s) {
    size_t n = s ? strnlen(s, 254) : 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i]))
            return 0;
    return 1;
}

int ty_parse_since(const char *s, int64_t now_ms, int64_t *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    if (end && end != s && v >= 0 && end[0] && !end[1])
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (*end == units[i].unit) {
                *out = now_ms - (int64_t)(v * (double)units[i].ms);
                return 0;
            }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end && strcmp(end, "Z") != 0))
        return -1;
    *out = (int64_t)timegm(&tm) * 1000;
    return 0;
}
