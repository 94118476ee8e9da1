/* link.h -- link addresses: which transport a peer address names.
 *
 * A link address is "SCHEME:REST", where REST is what the backend's
 * connect or listen takes:
 *
 *   tcp:HOST:PORT            TCP (also plain HOST:PORT and [V6]:PORT)
 *   rfcomm:BDADDR[:CHANNEL]  Bluetooth RFCOMM, connecting: the channel is
 *                            looked up by SDP when it is left out
 *   rfcomm:[BDADDR:]CHANNEL  Bluetooth RFCOMM, listening (on the adapter
 *                            BDADDR, or on every adapter); channel 0 takes
 *                            a free one
 *   usb[:VID:PID]            USB, the desktop side: the handset with the
 *                            simsync interface, or the device VID:PID;
 *                            connecting dials a handset that listens,
 *                            listening accepts handsets that dial
 *   usb-gadget[:UDC]         USB, the handset side: a gadget on the USB
 *                            device controller UDC (default: the first);
 *                            listening waits for the desktop to dial,
 *                            connecting dials a desktop that listens
 *
 * An address without a known scheme is TCP, as it always was, so a host
 * named like a scheme must be written "tcp:rfcomm:7000". A scheme that is
 * known but has no backend in this build is refused with SIMSYNC_EINVAL
 * and a message saying so.
 *
 * Callers that accept a peer address (pair, sync --peer, serve, listen,
 * the daemon) go through link_connect and link_listen instead of naming a
 * backend; a new backend is one row in link.c's table. */
#ifndef SIMSYNC_LINK_H
#define SIMSYNC_LINK_H

#include <stddef.h>

#include "transport.h"

#define LINK_ADDR_MAX 256 /* longest link address, with its NUL */

/* A link address split into its backend and the backend's own part. */
struct link_addr {
    const struct transport_ops *ops; /* the backend (a static table) */
    const char *scheme;              /* "tcp", "rfcomm", ... (static) */
    char rest[LINK_ADDR_MAX];        /* what ops->connect/listen take */
};

/* Which way an address is used: the forms differ (rfcomm). */
enum link_use {
    LINK_CONNECT = 0,
    LINK_LISTEN = 1
};

/* Parse and check `addr` for `use`. On success *out names the backend and
 * its part of the address. Returns SIMSYNC_OK or SIMSYNC_EINVAL; then
 * `why` (may be NULL) holds one sentence saying what is wrong and which
 * form is expected. Nothing is resolved or opened. */
int link_addr_parse(const char *addr, enum link_use use, struct link_addr *out,
                    char *why, size_t why_len);

/* Why the last link_connect or link_listen in this thread failed, for a
 * message: the backend's own sentence (transport_error) when it left one,
 * else strerror(err). */
const char *link_strerror(int err);

/* Connect to the link address `addr`. *out returned to the caller (close
 * with conn_close). Returns what the backend's connect returns:
 * SIMSYNC_OK, SIMSYNC_EINVAL (malformed address, or a scheme without a
 * backend here), SIMSYNC_ECONNECT (unreachable), SIMSYNC_EIO or
 * SIMSYNC_ENOMEM. */
int link_connect(const char *addr, struct conn **out);

/* Listen on the link address `addr`. *out returned to the caller (close
 * with listener_close). Returns SIMSYNC_OK, SIMSYNC_EINVAL, SIMSYNC_EIO
 * (in use, no adapter, ...) or SIMSYNC_ENOMEM. */
int link_listen(const char *addr, struct listener **out);

/* The full link address a listener is bound to, with its scheme
 * ("127.0.0.1:7000" for TCP, as before; "rfcomm:BDADDR:CHANNEL"; "usb"
 * for a backend that gives no address of its own), into
 * buf. Returns SIMSYNC_OK, SIMSYNC_EINVAL (buf too small) or SIMSYNC_EIO. */
int link_listener_addr(struct listener *l, char *buf, size_t len);

#endif /* SIMSYNC_LINK_H */
