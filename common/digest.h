/* Content digests for artifacts: SHA-256 through OpenSSL's libcrypto (which
 * uses the CPU's SHA instructions: about 10x coreutils' sha256sum here),
 * CRC-32 of transfer chunks through zlib, and the rule for output paths. */
#ifndef TY_COMMON_DIGEST_H
#define TY_COMMON_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define TY_SHA256_HEX 65 /* 64 hex digits and the NUL */

typedef struct ty_sha256 ty_sha256_t;

void ty_sha256_create(ty_sha256_t **out);
void ty_sha256_destroy(ty_sha256_t **h);
void ty_sha256_update(ty_sha256_t *h, const void *data, size_t len);
/* The digest of everything updated so far, as lower-case hex; h starts over. */
void ty_sha256_final(ty_sha256_t *h, char hex[TY_SHA256_HEX]);
/* A file's digest and size, reading it in 1 MiB blocks: 0 or a negated errno. */
int ty_sha256_file(const char *path, char hex[TY_SHA256_HEX], uint64_t *size);
/* Whether s is 64 lower-case hex digits. */
int ty_sha256_hex_ok(const char *s);

uint32_t ty_crc32(const void *data, size_t len);
/* CRC-32C (Castagnoli), with the CPU's crc32 instruction where there is
 * one (SSE 4.2: several GB/s; zlib's CRC-32 does about 2 here): what
 * checks each upload chunk. */
uint32_t ty_crc32c(const void *data, size_t len);

/* An output path or glob as a task declares it, or an artifact's name: NULL
 * when it is relative, at most 1024 bytes, without empty, "." or ".."
 * components and without control characters; otherwise why not. */
const char *ty_output_path_problem(const char *p);

#endif
