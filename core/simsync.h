/* simsync.h -- the public contract of libsimsync.
 *
 * simsync keeps one SIM owner's personal data consistent across several
 * terminals and a home hub. This header is everything the `simsync` program
 * uses; internal modules have headers of their own next to their sources.
 *
 * Conventions (see docs/architecture.md):
 *  - 0 is success, negative values are SIMSYNC_E* codes below;
 *    simsync_strerror() names them. SIMSYNC_EAGAIN means "not ready, call
 *    again" and is not a failure.
 *  - Pointer parameters are borrowed for the call unless a comment says the
 *    callee owns them or returns them to the caller.
 *  - Every _close/_free accepts NULL.
 */
#ifndef SIMSYNC_H
#define SIMSYNC_H

#include <stddef.h>
#include <stdint.h>

#define SIMSYNC_PROTO_VERSION 1

#if defined(__GNUC__)
#define SIMSYNC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SIMSYNC_MUST_CHECK
#endif

/* Error codes. The comment after each says which exit code the program maps
 * it to (0 ok, 1 error, 2 usage, 3 refused, 4 peer unreachable / link lost,
 * 5 integrity failure). */
enum simsync_err {
    SIMSYNC_OK = 0,
    SIMSYNC_EINVAL = -1,     /* invalid argument or usage       -> 2 */
    SIMSYNC_ENOMEM = -2,     /* out of memory                   -> 1 */
    SIMSYNC_EIO = -3,        /* file or store I/O failed        -> 1 */
    SIMSYNC_ENOSPC = -4,     /* disk or map full                -> 1 */
    SIMSYNC_ENOTFOUND = -5,  /* no such item, key or file       -> 1 */
    SIMSYNC_EAGAIN = -6,     /* not ready, call again           -> - */
    SIMSYNC_EPROTO = -7,     /* malformed or unexpected message -> 5 */
    SIMSYNC_ECRYPTO = -8,    /* authentication tag or key check -> 5 */
    SIMSYNC_EREFUSED = -9,   /* not allowed (binding, key)      -> 3 */
    SIMSYNC_EPIN = -10,      /* wrong PIN or PUK                -> 3 */
    SIMSYNC_EBLOCKED = -11,  /* SIM blocked (PIN or PUK)        -> 3 */
    SIMSYNC_ECLOSED = -12,   /* link closed or lost             -> 4 */
    SIMSYNC_ETOOBIG = -13,   /* over a size cap                 -> 5 */
    SIMSYNC_EEXIST = -14,    /* already exists                  -> 1 */
    SIMSYNC_ECONNECT = -15,  /* peer unreachable                -> 4 */
    SIMSYNC_ENOSIM = -16,    /* no SIM inserted / unreadable    -> 3 */
    SIMSYNC_EPASSWORD = -17, /* wrong terminal password         -> 3 */
    SIMSYNC_EMASSDEL = -18,  /* mass deletion needs confirming  -> 3 */
    SIMSYNC_ESTATE = -19,    /* not initialised / wrong role    -> 1 */
    SIMSYNC_ETIMEOUT = -20,  /* peer did not answer in time     -> 4 */
};

/* A short, fixed English description of `err`. Never NULL. */
const char *simsync_strerror(int err);

/* The process exit code documented for `err` (table above). */
int simsync_exit_code(int err);

#endif /* SIMSYNC_H */
