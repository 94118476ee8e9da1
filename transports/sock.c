/* sock.c -- send, recv, poll fd and close for a conn that is one socket.
 *
 * Shared by every backend whose link is a single connected stream socket
 * (see sock.h). Nothing here knows how the socket was made: the backend
 * dials, accepts or pairs it, sets its own options, and hands the fd over to
 * sock_conn_new(). */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock.h"

/* io_result's "interrupted, call again": positive, so never a SIMSYNC code. */
#define IO_RETRY 1

int
sock_conn_new(const struct transport_ops *ops, int fd, struct conn **out)
{
    struct sock_conn *s;

    if (out != NULL)
        *out = NULL;
    if (out == NULL || ops == NULL || fd < 0) {
        if (fd >= 0)
            (void)close(fd);
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        (void)close(fd);
        errno = ENOMEM;
        return SIMSYNC_ENOMEM;
    }
    conn_init(&s->base, ops);
    s->fd = fd;
    *out = &s->base;
    return SIMSYNC_OK;
}

/* The peer, or every path to it, is gone: a later call would fail the same
 * way, so these all read as end of stream. */
int
sock_io_error(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return SIMSYNC_EAGAIN;
    case EPIPE:
    case ECONNRESET:
    case ECONNABORTED:
    case ENOTCONN:
    case ESHUTDOWN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
        return SIMSYNC_ECLOSED;
    default:
        return SIMSYNC_EIO;
    }
}

/* The outcome of one send(2) or recv(2) that returned n, read before any
 * other call can touch errno: SIMSYNC_OK with *moved set, IO_RETRY after
 * EINTR, or an error code with the errno kept in c->last_errno. A stream
 * socket returns 0 only from recv, at end of stream. */
static int
io_result(struct conn *c, ssize_t n, size_t *moved)
{
    if (n > 0) {
        *moved = (size_t)n;
        return SIMSYNC_OK;
    }
    if (n == 0)
        return SIMSYNC_ECLOSED;
    if (errno == EINTR)
        return IO_RETRY;
    c->last_errno = errno;
    return sock_io_error(errno);
}

int
sock_send(struct conn *c, const void *buf, size_t len, size_t *nsent)
{
    int fd = ((struct sock_conn *)c)->fd;
    int rc;

    do
        rc = io_result(c, send(fd, buf, len, MSG_NOSIGNAL), nsent);
    while (rc == IO_RETRY);
    return rc;
}

int
sock_recv(struct conn *c, void *buf, size_t len, size_t *nread)
{
    int fd = ((struct sock_conn *)c)->fd;
    int rc;

    do
        rc = io_result(c, recv(fd, buf, len, 0), nread);
    while (rc == IO_RETRY);
    return rc;
}

int
sock_pollfd(struct conn *c)
{
    return ((struct sock_conn *)c)->fd;
}

void
sock_close(struct conn *c)
{
    struct sock_conn *s = (struct sock_conn *)c;
    int saved = errno;

    if (s == NULL)
        return;
    if (s->fd >= 0)
        (void)close(s->fd);
    free(s);
    errno = saved;
}

int
sock_connect(int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct pollfd pfd;
    int err = 0;
    socklen_t err_len = sizeof(err);

    if (connect(fd, sa, salen) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    pfd.fd = fd;
    pfd.events = POLLOUT;
    while (poll(&pfd, 1, -1) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int
sock_accept(int lfd, int *fd, int *last_errno)
{
    int nfd;

    for (;;) {
        nfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (nfd >= 0)
            break;
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENETUNREACH:
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case ENONET:
        case ENOPROTOOPT:
            continue;
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return SIMSYNC_EAGAIN;
        default:
            *last_errno = errno;
            return SIMSYNC_EIO;
        }
    }
    *fd = nfd;
    return SIMSYNC_OK;
}

void
sock_close_keep_errno(int fd)
{
    int saved = errno;

    (void)close(fd);
    errno = saved;
}
