/* Error codes for the whole tree (libuv style): 0 on success, a negative
 * TY_E* code on failure.  One X-macro list so names and messages stay in
 * step.  Out-of-memory is not an error code: allocation failure aborts. */
#ifndef TY_COMMON_ERR_H
#define TY_COMMON_ERR_H

#define TY_ERRNO_MAP(X)                                                                            \
    X(INVAL, "invalid argument")                                                                   \
    X(NOENT, "no such entry")                                                                      \
    X(EXIST, "already exists")                                                                     \
    X(IO, "input/output error")                                                                    \
    X(PARSE, "parse error")                                                                        \
    X(PROTO, "protocol error")                                                                     \
    X(TOOBIG, "message too large")                                                                 \
    X(CYCLE, "dependency cycle")                                                                   \
    X(ETCD, "etcd request failed")                                                                 \
    X(CONFLICT, "revision conflict")                                                               \
    X(TIMEOUT, "timed out")                                                                        \
    X(UNREACH, "peer unreachable")                                                                 \
    X(STATE, "invalid state for this operation")                                                   \
    X(NORES, "no worker can satisfy the resources")                                                \
    X(SPAWN, "cannot start process")                                                               \
    X(STALE, "stale epoch or attempt")                                                             \
    X(NOTSUP, "not supported by this build")                                                       \
    X(NODEV, "no usable device")                                                                   \
    X(UNAVAIL, "the state store (etcd) is not answering")                                          \
    X(PERM, "permission denied")

enum {
#define TY_ERR_IDX(name, msg) TY_ERR_IDX_##name,
    TY_ERRNO_MAP(TY_ERR_IDX)
#undef TY_ERR_IDX
        TY_ERR_COUNT
};

/* Codes start at -1001 so that a negated errno (-1 .. -999) stays distinct. */
#define TY_ERR_BASE 1001
enum {
    TY_OK = 0,
#define TY_ERR_CODE(name, msg) TY_E##name = -(TY_ERR_BASE + TY_ERR_IDX_##name),
    TY_ERRNO_MAP(TY_ERR_CODE)
#undef TY_ERR_CODE
};

/* Message for a code (0, a negative TY_E* code, or a negated errno). Never NULL. */
const char *ty_strerror(int code);
/* Name of a code, e.g. "TY_EINVAL". Never NULL. */
const char *ty_err_name(int code);

#endif
