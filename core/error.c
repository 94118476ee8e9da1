/* error.c -- names and exit codes for SIMSYNC_E* values. */
#include "simsync.h"

const char *
simsync_strerror(int err)
{
    switch (err) {
    case SIMSYNC_OK:
        return "success";
    case SIMSYNC_EINVAL:
        return "invalid argument";
    case SIMSYNC_ENOMEM:
        return "out of memory";
    case SIMSYNC_EIO:
        return "input/output error";
    case SIMSYNC_ENOSPC:
        return "no space left";
    case SIMSYNC_ENOTFOUND:
        return "not found";
    case SIMSYNC_EAGAIN:
        return "not ready, try again";
    case SIMSYNC_EPROTO:
        return "malformed or unexpected message";
    case SIMSYNC_ECRYPTO:
        return "authentication failed (tampered data or wrong key)";
    case SIMSYNC_EREFUSED:
        return "refused";
    case SIMSYNC_EPIN:
        return "wrong PIN";
    case SIMSYNC_EBLOCKED:
        return "SIM blocked";
    case SIMSYNC_ECLOSED:
        return "link closed";
    case SIMSYNC_ETOOBIG:
        return "size over limit";
    case SIMSYNC_EEXIST:
        return "already exists";
    case SIMSYNC_ECONNECT:
        return "peer unreachable";
    case SIMSYNC_ENOSIM:
        return "no SIM inserted";
    case SIMSYNC_EPASSWORD:
        return "wrong terminal password";
    case SIMSYNC_EMASSDEL:
        return "mass deletion needs confirmation";
    case SIMSYNC_ESTATE:
        return "wrong state for this operation";
    case SIMSYNC_ETIMEOUT:
        return "timed out";
    case SIMSYNC_EBUSY:
        return "busy: a backup is running already";
    default:
        return "unknown error";
    }
}

int
simsync_exit_code(int err)
{
    switch (err) {
    case SIMSYNC_OK:
        return 0;
    case SIMSYNC_EINVAL:
        return 2;
    case SIMSYNC_EREFUSED:
    case SIMSYNC_EPIN:
    case SIMSYNC_EBLOCKED:
    case SIMSYNC_ENOSIM:
    case SIMSYNC_EPASSWORD:
    case SIMSYNC_EMASSDEL:
    case SIMSYNC_EBUSY:
        return 3;
    case SIMSYNC_ECLOSED:
    case SIMSYNC_ECONNECT:
    case SIMSYNC_ETIMEOUT:
        return 4;
    case SIMSYNC_EPROTO:
    case SIMSYNC_ECRYPTO:
    case SIMSYNC_ETOOBIG:
        return 5;
    default:
        return 1;
    }
}
