/* mem.c -- an in-memory link for tests: two conns joined back to back.
 *
 * Each pair is a socketpair(AF_UNIX, SOCK_STREAM), so both ends have a real
 * fd to poll, the kernel does the buffering and locking, and the two ends can
 * be driven from different threads. There is nothing to dial or listen on:
 * connect, listen and accept return SIMSYNC_EINVAL, and transport_mem_pair()
 * is the only way to make one.
 *
 * Ends block by default; set O_NONBLOCK on conn_pollfd() with fcntl(2) to
 * get SIMSYNC_EAGAIN instead. Closing one end makes the other see
 * SIMSYNC_ECLOSED on recv (after any data still queued) and on send. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

struct mem_conn {
    struct conn base; /* must be first */
    int fd;           /* our end of the socketpair, owned */
};

static int
mem_connect(const char *addr, struct conn **out)
{
    (void)addr;
    if (out != NULL)
        *out = NULL;
    return SIMSYNC_EINVAL;
}

static int
mem_listen(const char *addr, struct listener **out)
{
    (void)addr;
    if (out != NULL)
        *out = NULL;
    return SIMSYNC_EINVAL;
}

static int
mem_accept(struct listener *l, struct conn **out)
{
    (void)l;
    if (out != NULL)
        *out = NULL;
    return SIMSYNC_EINVAL;
}

/* Map a send/recv errno to our codes. */
static int
io_error(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return SIMSYNC_EAGAIN;
    case EPIPE:
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN:
        return SIMSYNC_ECLOSED;
    default:
        return SIMSYNC_EIO;
    }
}

static int
mem_send(struct conn *c, const void *buf, size_t len, size_t *nsent)
{
    struct mem_conn *m = (struct mem_conn *)c;
    ssize_t n;

    for (;;) {
        n = send(m->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            *nsent = (size_t)n;
            return SIMSYNC_OK;
        }
        if (n == 0) /* not seen on stream sockets */
            return SIMSYNC_ECLOSED;
        if (errno != EINTR)
            break;
    }
    c->last_errno = errno;
    return io_error(errno);
}

static int
mem_recv(struct conn *c, void *buf, size_t len, size_t *nread)
{
    struct mem_conn *m = (struct mem_conn *)c;
    ssize_t n;

    for (;;) {
        n = recv(m->fd, buf, len, 0);
        if (n > 0) {
            *nread = (size_t)n;
            return SIMSYNC_OK;
        }
        if (n == 0)
            return SIMSYNC_ECLOSED;
        if (errno != EINTR)
            break;
    }
    c->last_errno = errno;
    return io_error(errno);
}

static int
mem_pollfd(struct conn *c)
{
    return ((struct mem_conn *)c)->fd;
}

static void
mem_close(struct conn *c)
{
    struct mem_conn *m = (struct mem_conn *)c;
    int saved = errno;

    if (m == NULL)
        return;
    if (m->fd >= 0)
        (void)close(m->fd);
    free(m);
    errno = saved;
}

/* No mem listener can exist; these only keep the ops table complete. */
static int
mem_listener_pollfd(struct listener *l)
{
    (void)l;
    return -1;
}

static int
mem_listener_addr(struct listener *l, char *buf, size_t len)
{
    (void)l;
    (void)buf;
    (void)len;
    return SIMSYNC_EINVAL;
}

static void
mem_listener_close(struct listener *l)
{
    (void)l;
}

const struct transport_ops transport_mem = {
    .version = 1,
    .scheme = "mem",
    .connect = mem_connect,
    .listen = mem_listen,
    .accept = mem_accept,
    .send = mem_send,
    .recv = mem_recv,
    .pollfd = mem_pollfd,
    .close = mem_close,
    .listener_pollfd = mem_listener_pollfd,
    .listener_addr = mem_listener_addr,
    .listener_close = mem_listener_close,
};

/* Both ends are returned to the caller, who closes each with conn_close.
 * Returns SIMSYNC_OK, SIMSYNC_EINVAL, SIMSYNC_ENOMEM or SIMSYNC_EIO (no
 * socketpair: see errno). On failure *a and *b are NULL. */
int
transport_mem_pair(struct conn **a, struct conn **b)
{
    struct mem_conn *ma;
    struct mem_conn *mb;
    int fds[2];

    if (a != NULL)
        *a = NULL;
    if (b != NULL)
        *b = NULL;
    if (a == NULL || b == NULL)
        return SIMSYNC_EINVAL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return SIMSYNC_EIO;
    ma = calloc(1, sizeof(*ma));
    mb = calloc(1, sizeof(*mb));
    if (ma == NULL || mb == NULL) {
        free(ma);
        free(mb);
        (void)close(fds[0]);
        (void)close(fds[1]);
        errno = ENOMEM;
        return SIMSYNC_ENOMEM;
    }
    conn_init(&ma->base, &transport_mem);
    conn_init(&mb->base, &transport_mem);
    ma->fd = fds[0];
    mb->fd = fds[1];
    *a = &ma->base;
    *b = &mb->base;
    return SIMSYNC_OK;
}
