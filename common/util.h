/* Small helpers used everywhere: allocation that aborts on out-of-memory
 * (DESIGN: OOM aborts), clocks, base64 and a growable byte buffer. */
#ifndef TY_COMMON_UTIL_H
#define TY_COMMON_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void *ty_xmalloc(size_t n);
void *ty_xcalloc(size_t n, size_t size);
void *ty_xrealloc(void *p, size_t n);
char *ty_xstrdup(const char *s);
char *ty_xstrndup(const char *s, size_t n);
/* printf into a new heap string. */
char *ty_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *ty_xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Milliseconds since the epoch (wall clock) and a monotonic clock. */
int64_t ty_now_ms(void);
int64_t ty_mono_ms(void);
/* RFC 3339 UTC ("2026-01-02T03:04:05.678Z") into buf (>= 32 bytes); "" for 0. */
void ty_fmt_time(int64_t ms, char *buf, size_t n);

/* Base64 (standard alphabet, padded). encode returns a heap string;
 * decode returns 0 and a heap buffer (NUL-terminated for convenience) or TY_EPARSE. */
char *ty_b64_encode(const void *data, size_t len);
int ty_b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen);

/* Growable byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} ty_buf_t;
void ty_buf_append(ty_buf_t *b, const void *data, size_t n);
void ty_buf_printf(ty_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ty_buf_consume(ty_buf_t *b, size_t n);
void ty_buf_free(ty_buf_t *b);

/* Read a whole file into *out (appended, NUL-terminated).  0 or -errno. */
int ty_read_file(const char *path, ty_buf_t *out);
/* Write data to path atomically: a temporary file beside it, fsync, rename.
 * A reader sees the old file or the whole new one.  0 or -errno. */
int ty_write_file_atomic(const char *path, const void *data, size_t len);
/* Write all n bytes (at off: pwrite), through short writes and EINTR: 0 or
 * a negated errno. */
int ty_write_all(int fd, const void *data, size_t n);
int ty_pwrite_all(int fd, const void *data, size_t n, uint64_t off);
/* The same for a file written as a stream: ty_atomic_open makes the
 * temporary (*f, named *tmp); ty_atomic_close(f, tmp, path, keep) flushes,
 * syncs and renames it over path when keep, else removes it, and frees tmp.
 * Each returns 0 or -errno; after a failure path is as it was.  A path that
 * is a special file (/dev/null, a FIFO, a terminal) is written in place,
 * never replaced: *tmp is NULL then.  ty_write_file_atomic does the same. */
int ty_atomic_open(const char *path, FILE **f, char **tmp);
/* The temporary's name for path (the caller frees it), or NULL for a
 * special file, written in place: for writers that open files themselves. */
char *ty_atomic_tmp_path(const char *path);
int ty_atomic_close(FILE *f, char *tmp, const char *path, int keep);
/* The last part of ty_atomic_close, for writers that close their file
 * themselves: renames tmp over path when keep, else removes it; frees tmp.
 * NULL tmp (a special file, written in place) does nothing.  0 or -errno. */
int ty_atomic_finish(char *tmp, const char *path, int keep);
/* Whether path could be written that way now (its directory exists and
 * takes a new file; path is not a directory): a command checks before
 * hours of work, not after.  0 or -errno. */
int ty_check_writable(const char *path);
/* Both exist and are one file (the same inode, by whatever names). */
int ty_same_file(const char *a, const char *b);
/* path exists and is neither a regular file nor a directory. */
int ty_is_special_file(const char *path);
/* mkdir -p with mode 0755.  0 or -errno. */
int ty_mkdirs(const char *path);

/* Strict numbers from text (flags, YAML scalars): the whole string, no
 * blanks, finite, within [lo, hi].  0, or TY_EINVAL leaving *out alone. */
int ty_parse_f64(const char *s, double lo, double hi, double *out);
int ty_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out); /* decimal */
/* A point in time as `runs --since` takes it: an age ("30m": s, m, h, d
 * before now_ms) or a UTC time (2026-12-01T08:00:00[Z]); ms since the
 * epoch.  -1 when it is neither. */
int ty_parse_since(const char *s, int64_t now_ms, int64_t *out);
/* Whether s can stand in mpirun's host list and options (a host name, an
 * IPv4 address, an interface name): 1 to 253 of letters, digits, '.', '-'
 * and '_'. */
int ty_host_token_ok(const char *s);

/* The next number of a splitmix64 sequence whose state is *state: for
 * code that must be repeatable from a seed (the master's core, the
 * simulator). */
uint64_t ty_splitmix64(uint64_t *state);

/* Fill buf with n random bytes from the kernel; aborts on failure. */
void ty_random_bytes(void *buf, size_t n);

#endif
