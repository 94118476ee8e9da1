/* sock.h -- the part of a conn that is only "one connected stream socket".
 *
 * Internal to transports/: backends whose link is a single socket fd (TCP,
 * the in-memory socketpair, later RFCOMM) share the send and recv loops, the
 * errno mapping, the poll fd and close written here, and keep for themselves
 * only what is really theirs (addresses, dialing, listening, pairing). Such a
 * backend makes its conns with sock_conn_new() and puts sock_send,
 * sock_recv, sock_pollfd and sock_close in its transport_ops.
 *
 * Behaviour of those calls: sends use MSG_NOSIGNAL, so a dead peer gives
 * SIMSYNC_ECLOSED instead of SIGPIPE; EINTR is retried; the errno of a failed
 * send or recv is kept in the conn's last_errno. Blocking follows the fd: set
 * O_NONBLOCK on sock_pollfd() with fcntl(2) to get SIMSYNC_EAGAIN instead of
 * waiting. */
#ifndef SIMSYNC_SOCK_H
#define SIMSYNC_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

#include "transport.h"

/* A conn backed by one connected stream socket. */
struct sock_conn {
    struct conn base; /* must be first */
    int fd;           /* the connected socket, owned */
};

/* Wrap the connected socket `fd` in a new conn whose ops are `ops` (borrowed
 * for the conn's life: a static table). `fd` is owned from the call on: on
 * failure it has been closed. *out is returned to the caller, who closes it
 * with conn_close; it is NULL on failure. Returns SIMSYNC_OK, SIMSYNC_EINVAL
 * (out or ops NULL, or fd < 0) or SIMSYNC_ENOMEM (errno is ENOMEM). */
int sock_conn_new(const struct transport_ops *ops, int fd, struct conn **out);

/* transport_ops members for a sock_conn; see transport.h for the contract.
 * sock_send/sock_recv return SIMSYNC_OK, SIMSYNC_EAGAIN, SIMSYNC_ECLOSED
 * (end of stream, or the peer or the path to it is gone) or SIMSYNC_EIO.
 * sock_close is NULL-safe and leaves errno as it found it. */
int sock_send(struct conn *c, const void *buf, size_t len, size_t *nsent);
int sock_recv(struct conn *c, void *buf, size_t len, size_t *nread);
int sock_pollfd(struct conn *c);
void sock_close(struct conn *c);

/* Map the errno of a failed send(2) or recv(2) to SIMSYNC_EAGAIN (would
 * block), SIMSYNC_ECLOSED (the link is gone) or SIMSYNC_EIO (anything
 * else). */
int sock_io_error(int err);

/* connect(2) the socket fd to sa, finishing a connect interrupted by a
 * signal by waiting for the socket to be writable and reading SO_ERROR.
 * Returns 0, or -1 with errno set. */
int sock_connect(int fd, const struct sockaddr *sa, socklen_t salen);

/* accept4(2) one connection on the listening socket lfd (close-on-exec),
 * skipping pending connections that died before they were taken (and, on
 * Linux, network errors of the new socket that surface here). Returns
 * SIMSYNC_OK with *fd set, SIMSYNC_EAGAIN (non-blocking listener, none
 * pending) or SIMSYNC_EIO (e.g. out of fds) with the errno in
 * *last_errno. */
int sock_accept(int lfd, int *fd, int *last_errno);

/* close(2) fd and leave errno as it was, for error paths that report the
 * errno of an earlier call. */
void sock_close_keep_errno(int fd);

#endif /* SIMSYNC_SOCK_H */
