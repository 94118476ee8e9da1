/* conn.c -- the wrappers every caller uses instead of c->ops->x.
 *
 * This is the single door all transport bytes go through, so it is where the
 * byte counters live and where tests inject faults: cut the link once N bytes
 * have passed (conn_fault_cut_after), fail the Nth call of the process
 * (conn_fault_fail_nth), force short reads and writes
 * (conn_fault_max_chunk), and bound each call with an inactivity timeout
 * (conn_set_timeout). Backends know nothing of any of this.
 *
 * A cut is made real with shutdown(2) on the conn's poll fd, so the peer sees
 * end of stream as it would on a real loss. Backends whose poll fd is not a
 * socket only see the local effect (every later call fails). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "transport.h"

/* Schemes transport_find() knows, in no particular order. */
static const struct transport_ops *const known_transports[] = {
    &transport_tcp,
    &transport_mem,
    &transport_usb,
    &transport_usb_gadget,
    &transport_rfcomm,
};

const struct transport_ops *
transport_find(const char *scheme)
{
    size_t i;

    if (scheme == NULL)
        return NULL;
    for (i = 0; i < sizeof(known_transports) / sizeof(known_transports[0]);
         i++) {
        if (strcmp(known_transports[i]->scheme, scheme) == 0)
            return known_transports[i];
    }
    return NULL;
}

static _Thread_local char last_error[256];

const char *
transport_error(void)
{
    return last_error;
}

void
transport_set_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
}

void
conn_init(struct conn *c, const struct transport_ops *ops)
{
    assert(c != NULL);
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->cut_after = -1;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the conn's fd reports `events` (or a hangup/error, which the
 * backend call that follows will turn into the right code). timeout_ms < 0
 * waits forever. Returns SIMSYNC_OK, SIMSYNC_ETIMEOUT or SIMSYNC_EIO. A conn
 * without a poll fd is reported ready at once: its backend call blocks. */
static int
wait_ready(struct conn *c, short events, int timeout_ms)
{
    struct pollfd pfd;
    long long deadline = now_ms() + timeout_ms;
    int left = timeout_ms;
    int n;

    pfd.fd = conn_pollfd(c);
    if (pfd.fd < 0)
        return SIMSYNC_OK;
    pfd.events = events;
    for (;;) {
        pfd.revents = 0;
        n = poll(&pfd, 1, left);
        if (n > 0)
            return SIMSYNC_OK;
        if (n == 0)
            return SIMSYNC_ETIMEOUT;
        if (errno != EINTR) {
            c->last_errno = errno;
            return SIMSYNC_EIO;
        }
        if (timeout_ms >= 0) {
            long long rest = deadline - now_ms();

            left = rest > 0 ? (int)rest : 0;
        }
    }
}

/* Make a cut visible to the peer: no more data either way. */
static void
cut_link(struct conn *c)
{
    int fd = conn_pollfd(c);
    int saved = errno;

    if (fd >= 0)
        (void)shutdown(fd, SHUT_RDWR);
    errno = saved;
}

static atomic_long fault_countdown;

void
conn_fault_fail_nth(long n)
{
    atomic_store(&fault_countdown, n);
}

long
conn_fault_pending(void)
{
    return atomic_load(&fault_countdown);
}

/* Is this call the armed one? */
static int
fault_hit(void)
{
    long n = atomic_load(&fault_countdown);

    while (n > 0)
        if (atomic_compare_exchange_weak(&fault_countdown, &n, n - 1))
            return n == 1;
    return 0;
}

static int
cut_reached(const struct conn *c)
{
    return c->cut_after >= 0 && c->bytes_sent + c->bytes_received >=
                                    (unsigned long long)c->cut_after;
}

/* Apply the fault settings to a request of *len bytes: fail if the link is
 * already cut, otherwise shrink *len to what the faults allow. */
static int
limit_request(struct conn *c, size_t *len)
{
    if (c->cut_after >= 0) {
        unsigned long long total = c->bytes_sent + c->bytes_received;
        unsigned long long limit = (unsigned long long)c->cut_after;

        if (total >= limit) {
            cut_link(c);
            return SIMSYNC_ECLOSED;
        }
        if (*len > limit - total)
            *len = (size_t)(limit - total);
    }
    if (c->max_chunk > 0 && *len > c->max_chunk)
        *len = c->max_chunk;
    return SIMSYNC_OK;
}

/* One backend send under the conn's timeout. Room in the socket buffer
 * does not mean room for all of `len`, and a blocking send waits for all of
 * it, so the write itself runs with O_NONBLOCK set for the call; a wake-up
 * with no room after all goes back to waiting until the deadline. If the
 * caller made the fd non-blocking, SIMSYNC_EAGAIN is theirs to handle. */
static int
send_timed(struct conn *c, const void *buf, size_t len, size_t *n)
{
    long long deadline = now_ms() + c->timeout_ms;
    int fd = conn_pollfd(c);
    int flags;
    int rc;

    if (fd < 0)
        return c->ops->send(c, buf, len, n);
    flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        c->last_errno = errno;
        return SIMSYNC_EIO;
    }
    for (;;) {
        long long left = deadline - now_ms();

        rc = wait_ready(c, POLLOUT, left > 0 ? (int)left : 0);
        if (rc != SIMSYNC_OK)
            return rc;
        if (flags & O_NONBLOCK)
            return c->ops->send(c, buf, len, n);
        if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
            c->last_errno = errno;
            return SIMSYNC_EIO;
        }
        rc = c->ops->send(c, buf, len, n);
        (void)fcntl(fd, F_SETFL, flags);
        if (rc != SIMSYNC_EAGAIN)
            return rc;
    }
}

/* Send up to len bytes; *nsent is set to what went out. len == 0 returns
 * SIMSYNC_OK with *nsent == 0 and touches nothing. */
int
conn_send(struct conn *c, const void *buf, size_t len, size_t *nsent)
{
    size_t want = len;
    size_t n = 0;
    int rc;

    if (nsent != NULL)
        *nsent = 0;
    if (c == NULL || c->ops == NULL || nsent == NULL ||
        (buf == NULL && len > 0))
        return SIMSYNC_EINVAL;
    rc = limit_request(c, &want);
    if (rc != SIMSYNC_OK || want == 0)
        return rc;
    if (fault_hit()) {
        cut_link(c);
        c->last_errno = EIO;
        return SIMSYNC_EIO;
    }
    if (c->timeout_ms > 0)
        rc = send_timed(c, buf, want, &n);
    else
        rc = c->ops->send(c, buf, want, &n);
    if (rc != SIMSYNC_OK)
        return rc;
    c->bytes_sent += n;
    *nsent = n;
    if (cut_reached(c))
        cut_link(c);
    return SIMSYNC_OK;
}

/* Receive up to len bytes; *nread is set to what arrived. len == 0 returns
 * SIMSYNC_OK with *nread == 0 and touches nothing. */
int
conn_recv(struct conn *c, void *buf, size_t len, size_t *nread)
{
    size_t want = len;
    size_t n = 0;
    int rc;

    if (nread != NULL)
        *nread = 0;
    if (c == NULL || c->ops == NULL || nread == NULL ||
        (buf == NULL && len > 0))
        return SIMSYNC_EINVAL;
    rc = limit_request(c, &want);
    if (rc != SIMSYNC_OK || want == 0)
        return rc;
    if (fault_hit()) {
        cut_link(c);
        c->last_errno = EIO;
        return SIMSYNC_EIO;
    }
    if (c->timeout_ms > 0) {
        rc = wait_ready(c, POLLIN, c->timeout_ms);
        if (rc != SIMSYNC_OK)
            return rc;
    }
    rc = c->ops->recv(c, buf, want, &n);
    if (rc != SIMSYNC_OK)
        return rc;
    c->bytes_received += n;
    *nread = n;
    if (cut_reached(c))
        cut_link(c);
    return SIMSYNC_OK;
}

/* After SIMSYNC_EAGAIN inside a _all loop: wait for the fd, honouring the
 * conn's timeout. A conn with nothing to poll cannot be waited on, so the
 * EAGAIN goes back to the caller. */
static int
wait_after_again(struct conn *c, short events)
{
    if (conn_pollfd(c) < 0)
        return SIMSYNC_EAGAIN;
    return wait_ready(c, events, c->timeout_ms > 0 ? c->timeout_ms : -1);
}

int
conn_send_all(struct conn *c, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t done = 0;
    size_t n;
    int rc;

    if (c == NULL || (buf == NULL && len > 0))
        return SIMSYNC_EINVAL;
    while (done < len) {
        rc = conn_send(c, p + done, len - done, &n);
        if (rc == SIMSYNC_EAGAIN)
            rc = wait_after_again(c, POLLOUT);
        else
            done += n;
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_OK;
}

int
conn_recv_all(struct conn *c, void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t done = 0;
    size_t n;
    int rc;

    if (c == NULL || (buf == NULL && len > 0))
        return SIMSYNC_EINVAL;
    while (done < len) {
        rc = conn_recv(c, p + done, len - done, &n);
        if (rc == SIMSYNC_EAGAIN)
            rc = wait_after_again(c, POLLIN);
        else
            done += n;
        if (rc != SIMSYNC_OK)
            return rc;
    }
    return SIMSYNC_OK;
}

int
conn_pollfd(struct conn *c)
{
    if (c == NULL || c->ops == NULL || c->ops->pollfd == NULL)
        return -1;
    return c->ops->pollfd(c);
}

void
conn_close(struct conn *c)
{
    if (c == NULL || c->ops == NULL || c->ops->close == NULL)
        return;
    c->ops->close(c);
}

/* `after` counts all bytes moved on this conn since it was made
 * (bytes_sent + bytes_received), not bytes from now on. */
void
conn_fault_cut_after(struct conn *c, long long after)
{
    if (c != NULL)
        c->cut_after = after < 0 ? -1 : after;
}

void
conn_fault_max_chunk(struct conn *c, size_t n)
{
    if (c != NULL)
        c->max_chunk = n;
}

void
conn_set_timeout(struct conn *c, int ms)
{
    if (c != NULL)
        c->timeout_ms = ms > 0 ? ms : 0;
}

/* *out is returned to the caller (conn_close); NULL on failure. */
int
listener_accept(struct listener *l, struct conn **out)
{
    if (out != NULL)
        *out = NULL;
    if (l == NULL || out == NULL || l->ops == NULL || l->ops->accept == NULL)
        return SIMSYNC_EINVAL;
    return l->ops->accept(l, out);
}

int
listener_pollfd(struct listener *l)
{
    if (l == NULL || l->ops == NULL || l->ops->listener_pollfd == NULL)
        return -1;
    return l->ops->listener_pollfd(l);
}

/* Writes the bound address, NUL-terminated, into buf (borrowed). */
int
listener_addr(struct listener *l, char *buf, size_t len)
{
    if (buf != NULL && len > 0)
        buf[0] = '\0';
    if (l == NULL || buf == NULL || len == 0 || l->ops == NULL ||
        l->ops->listener_addr == NULL)
        return SIMSYNC_EINVAL;
    return l->ops->listener_addr(l, buf, len);
}

void
listener_close(struct listener *l)
{
    if (l == NULL || l->ops == NULL || l->ops->listener_close == NULL)
        return;
    l->ops->listener_close(l);
}
