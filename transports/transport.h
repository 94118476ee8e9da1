/* transport.h -- byte streams behind one ops table.
 *
 * Every link simsync uses (TCP to the hub, Bluetooth RFCOMM, USB, and an
 * in-memory pair for tests) is a `struct conn` whose first member points at
 * its backend's ops. Callers never call c->ops->x directly: they use the
 * conn_* wrappers below, which is where tracing and fault injection (cut the
 * link at byte N, short writes) hook in. Security never relies on the
 * transport: the secure channel (chan.h) runs above it.
 *
 * Blocking model: conn_send/conn_recv block unless the conn was made
 * non-blocking; they return SIMSYNC_EAGAIN for "would block". A recv of 0
 * bytes at end of stream returns SIMSYNC_ECLOSED. */
#ifndef SIMSYNC_TRANSPORT_H
#define SIMSYNC_TRANSPORT_H

#include <stddef.h>
#include "simsync.h"

struct conn;
struct listener;

struct transport_ops {
    int version;        /* 1; members are only ever appended */
    const char *scheme; /* "tcp", "rfcomm", "usb", "mem" */
    /* Connect to `addr` (scheme-specific, e.g. "127.0.0.1:7000"). *out is
     * returned to the caller, who closes it. SIMSYNC_ECONNECT if the peer
     * cannot be reached, SIMSYNC_EINVAL for a malformed address. */
    int (*connect)(const char *addr, struct conn **out);
    /* Listen on `addr`; *out returned to the caller (listener_close). */
    int (*listen)(const char *addr, struct listener **out);
    /* Accept one connection; SIMSYNC_EAGAIN when none is pending on a
     * non-blocking listener. */
    int (*accept)(struct listener *l, struct conn **out);
    /* Send up to len bytes, *nsent set to what was written (>= 1 on OK). */
    int (*send)(struct conn *c, const void *buf, size_t len, size_t *nsent);
    /* Receive up to len bytes, *nread >= 1 on OK; SIMSYNC_ECLOSED at EOF. */
    int (*recv)(struct conn *c, void *buf, size_t len, size_t *nread);
    /* The file descriptor to poll for this conn, or -1. */
    int (*pollfd)(struct conn *c);
    void (*close)(struct conn *c); /* NULL-safe */
    /* Listener helpers: fd to poll, bound address ("HOST:PORT"), close. */
    int (*listener_pollfd)(struct listener *l);
    int (*listener_addr)(struct listener *l, char *buf, size_t len);
    void (*listener_close)(struct listener *l); /* NULL-safe */
};

/* Base of every backend's connection: backends embed it as first member. */
struct conn {
    const struct transport_ops *ops;
    int last_errno; /* errno of the last failed system call, kept here
                     * rather than trusting errno after other calls */
    /* Fault injection and accounting (see conn_fault_*): */
    unsigned long long bytes_sent;
    unsigned long long bytes_received;
    long long cut_after;   /* when >= 0, the link dies after this many
                            * bytes in total have been sent+received */
    size_t max_chunk;      /* when > 0, each send/recv moves at most this */
    int timeout_ms;        /* when > 0, send/recv give SIMSYNC_ETIMEOUT
                            * after this long without progress */
    /* Link character, set by slow backends (0: the defaults of a fast
     * link): the largest piece of a bulk message the secure channel sends
     * at once, and the bulk bytes it lets the peer have in flight towards
     * it (see chan.h "Lanes and credit"). */
    size_t link_frag;
    size_t link_window;
};

struct listener {
    const struct transport_ops *ops;
    int last_errno;
};

/* Backends. */
extern const struct transport_ops transport_tcp;
extern const struct transport_ops transport_mem;
extern const struct transport_ops transport_usb;        /* usb_host.c */
extern const struct transport_ops transport_usb_gadget; /* usb_gadget.c */
extern const struct transport_ops transport_rfcomm; /* rfcomm.c, BlueZ */

/* The ops for a scheme name ("tcp", "mem", "rfcomm"), or NULL. Peer
 * addresses with a scheme in front are link.h's business. */
const struct transport_ops *transport_find(const char *scheme);

/* Why the last connect or listen in this thread failed, as one sentence
 * for a person ("no USB device with the simsync interface ..."), or ""
 * when the backend left none. Backends set it with transport_set_error
 * (printf format); the text stays until the next set in this thread. */
const char *transport_error(void);
void transport_set_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Initialise the base fields of a freshly allocated conn. */
void conn_init(struct conn *c, const struct transport_ops *ops);

/* Wrappers; see struct transport_ops for the contract. */
int conn_send(struct conn *c, const void *buf, size_t len, size_t *nsent);
int conn_recv(struct conn *c, void *buf, size_t len, size_t *nread);
/* Send or receive exactly len bytes (loops; blocking conns only). */
int conn_send_all(struct conn *c, const void *buf, size_t len);
int conn_recv_all(struct conn *c, void *buf, size_t len);
int conn_pollfd(struct conn *c);
void conn_close(struct conn *c); /* NULL-safe */

/* Fault injection for tests: the link fails with SIMSYNC_ECLOSED once
 * `after` bytes (sent + received) have passed; -1 turns it off. */
void conn_fault_cut_after(struct conn *c, long long after);
/* Every send/recv moves at most `n` bytes (0 = no limit). */
void conn_fault_max_chunk(struct conn *c, size_t n);
/* Process-wide, for fault loops: the Nth conn_send or conn_recv call from
 * now (on any conn, any thread) fails with SIMSYNC_EIO and cuts that link,
 * as a dying socket would; 0 disarms. conn_fault_pending() is the calls
 * still to go (0: none armed, or it has fired). */
void conn_fault_fail_nth(long n);
long conn_fault_pending(void);
/* Per-call inactivity timeout in milliseconds (0 = wait forever). */
void conn_set_timeout(struct conn *c, int ms);

int listener_accept(struct listener *l, struct conn **out);
int listener_pollfd(struct listener *l);
int listener_addr(struct listener *l, char *buf, size_t len);
void listener_close(struct listener *l); /* NULL-safe */

/* A connected pair of in-memory conns for tests (both returned to the
 * caller). Data written on one end is read on the other. */
int transport_mem_pair(struct conn **a, struct conn **b);

#endif /* SIMSYNC_TRANSPORT_H */
