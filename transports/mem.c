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
 * SIMSYNC_ECLOSED on recv (after any data still queued) and on send.
 *
 * Each end is a sock_conn (sock.h): send, recv, poll fd and close are the
 * shared socket ones; only the pairing is ours. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock.h"
#include "transport.h"

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
    .send = sock_send,
    .recv = sock_recv,
    .pollfd = sock_pollfd,
    .close = sock_close,
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
    int fds[2];
    int rc;

    if (a != NULL)
        *a = NULL;
    if (b != NULL)
        *b = NULL;
    if (a == NULL || b == NULL)
        return SIMSYNC_EINVAL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return SIMSYNC_EIO;
    /* sock_conn_new owns its fd from the call on, even when it fails. */
    rc = sock_conn_new(&transport_mem, fds[0], a);
    if (rc != SIMSYNC_OK) {
        int saved = errno; /* ENOMEM, from sock_conn_new */

        (void)close(fds[1]);
        errno = saved;
        return rc;
    }
    rc = sock_conn_new(&transport_mem, fds[1], b);
    if (rc != SIMSYNC_OK) {
        sock_close(*a); /* keeps errno */
        *a = NULL;
        return rc;
    }
    return SIMSYNC_OK;
}
