/* tcp.c -- the TCP backend: terminals to the hub, and anything on loopback.
 *
 * Addresses are "HOST:PORT": an IPv4 literal or a name resolved with
 * getaddrinfo ("hub.example:7000"), or "[V6]:PORT" for an IPv6 literal. On
 * listen, an empty host (":7000") means every local address and port 0 picks
 * a free port; listener_addr() tells which.
 *
 * Every fd is close-on-exec, every conn has TCP_NODELAY (our frames are
 * small and answered at once), sends use MSG_NOSIGNAL so a dead peer gives
 * SIMSYNC_ECLOSED instead of SIGPIPE, and EINTR is retried everywhere.
 *
 * Blocking: conns and listeners block by default. To drive one from an event
 * loop, set O_NONBLOCK on its poll fd (conn_pollfd / listener_pollfd) with
 * fcntl(2); send, recv and accept then return SIMSYNC_EAGAIN instead of
 * waiting. Accepted conns always start blocking.
 *
 * A conn is a sock_conn (sock.h), so send, recv, poll fd and close are the
 * shared socket ones; addresses, connect, listen and accept are ours.
 *
 * The errno of a failed system call is kept in last_errno of the conn or
 * listener. When connect or listen fail there is no object to keep it in, so
 * errno is left holding the cause on return. */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock.h"
#include "transport.h"

#define TCP_BACKLOG 512  /* the hub serves 100+ terminals at once */
#define TCP_HOST_MAX 256 /* longest host part we accept */
#define TCP_PORT_MAX 6   /* "65535" and its NUL */

struct tcp_listener {
    struct listener base; /* must be first */
    int fd;               /* listening socket, owned */
};

/* A parsed "HOST:PORT". */
struct tcp_addr {
    char host[TCP_HOST_MAX]; /* may be empty */
    char port[TCP_PORT_MAX]; /* decimal digits only */
    unsigned port_num;       /* 0 .. 65535 */
    int bracketed;           /* host came as "[...]": an IPv6 literal */
};

/* Split `addr` into host and port. Returns SIMSYNC_OK or SIMSYNC_EINVAL.
 * An unbracketed host may not contain ':' (write IPv6 as "[::1]:7000"). */
static int
parse_addr(const char *addr, struct tcp_addr *out)
{
    const char *host;
    const char *port;
    size_t host_len;
    size_t i;

    memset(out, 0, sizeof(*out));
    if (addr == NULL)
        return SIMSYNC_EINVAL;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (close == NULL || close[1] != ':')
            return SIMSYNC_EINVAL;
        host = addr + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
        if (host_len == 0)
            return SIMSYNC_EINVAL;
        out->bracketed = 1;
    } else {
        const char *colon = strrchr(addr, ':');

        if (colon == NULL)
            return SIMSYNC_EINVAL;
        host = addr;
        host_len = (size_t)(colon - addr);
        port = colon + 1;
        if (memchr(host, ':', host_len) != NULL)
            return SIMSYNC_EINVAL;
    }
    if (host_len >= sizeof(out->host))
        return SIMSYNC_EINVAL;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';

    if (port[0] == '\0' || strlen(port) >= sizeof(out->port))
        return SIMSYNC_EINVAL;
    for (i = 0; port[i] != '\0'; i++) {
        if (port[i] < '0' || port[i] > '9')
            return SIMSYNC_EINVAL;
        out->port_num = out->port_num * 10 + (unsigned)(port[i] - '0');
    }
    if (out->port_num > 65535)
        return SIMSYNC_EINVAL;
    memcpy(out->port, port, i + 1);
    return SIMSYNC_OK;
}

/* Resolve a parsed address for a stream socket. `passive` for listen.
 * On failure errno is set to something meaningful for the caller. */
static int
resolve(const struct tcp_addr *a, int passive, struct addrinfo **res)
{
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (passive)
        hints.ai_flags |= AI_PASSIVE;
    if (a->bracketed)
        hints.ai_flags |= AI_NUMERICHOST;
    rc = getaddrinfo(a->host[0] != '\0' ? a->host : NULL, a->port, &hints, res);
    if (rc == 0)
        return SIMSYNC_OK;
    *res = NULL;
    switch (rc) {
    case EAI_MEMORY:
        errno = ENOMEM;
        return SIMSYNC_ENOMEM;
    case EAI_NONAME:
    case EAI_AGAIN:
    case EAI_FAIL:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        /* A literal that does not parse is malformed; a name that does not
         * resolve is a peer we cannot reach. */
        errno = EHOSTUNREACH;
        if (a->bracketed || passive)
            return SIMSYNC_EINVAL;
        return SIMSYNC_ECONNECT;
    case EAI_SYSTEM:
        return passive ? SIMSYNC_EINVAL : SIMSYNC_ECONNECT;
    default:
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
}

/* Wrap a connected fd (owned from here on) in a conn. */
static int
conn_from_fd(int fd, struct conn **out)
{
    int one = 1;

    /* Best effort: a socket that refuses it still works, only slower. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return sock_conn_new(&transport_tcp, fd, out);
}

/* Returns SIMSYNC_OK, SIMSYNC_EINVAL (malformed address or port 0),
 * SIMSYNC_ECONNECT (name unknown, refused, unreachable), SIMSYNC_EIO (no
 * socket could be made) or SIMSYNC_ENOMEM. */
static int
tcp_connect(const char *addr, struct conn **out)
{
    struct tcp_addr a;
    struct addrinfo *res;
    struct addrinfo *ai;
    int fd = -1;
    int err = ECONNREFUSED;
    int rc = SIMSYNC_ECONNECT;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (parse_addr(addr, &a) != SIMSYNC_OK || a.host[0] == '\0' ||
        a.port_num == 0) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    rc = resolve(&a, 0, &res);
    if (rc != SIMSYNC_OK)
        return rc;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            rc = SIMSYNC_EIO;
            continue;
        }
        if (sock_connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        rc = SIMSYNC_ECONNECT;
        (void)close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = err;
        return rc;
    }
    return conn_from_fd(fd, out);
}

/* Returns SIMSYNC_OK, SIMSYNC_EINVAL (malformed or unresolvable address),
 * SIMSYNC_EIO (socket, bind or listen failed, e.g. EADDRINUSE in errno) or
 * SIMSYNC_ENOMEM. */
static int
tcp_listen(const char *addr, struct listener **out)
{
    struct tcp_addr a;
    struct addrinfo *res;
    struct addrinfo *ai;
    struct tcp_listener *l;
    int fd = -1;
    int err = EADDRNOTAVAIL;
    int one = 1;
    int rc;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (parse_addr(addr, &a) != SIMSYNC_OK) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    rc = resolve(&a, 1, &res);
    if (rc != SIMSYNC_OK)
        return rc;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, TCP_BACKLOG) == 0)
            break;
        err = errno;
        (void)close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = err;
        return SIMSYNC_EIO;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        (void)close(fd);
        errno = ENOMEM;
        return SIMSYNC_ENOMEM;
    }
    l->base.ops = &transport_tcp;
    l->fd = fd;
    *out = &l->base;
    return SIMSYNC_OK;
}

/* Returns SIMSYNC_OK, SIMSYNC_EAGAIN (non-blocking listener, none pending),
 * SIMSYNC_EIO (e.g. out of fds: see last_errno) or SIMSYNC_ENOMEM. */
static int
tcp_accept(struct listener *base, struct conn **out)
{
    struct tcp_listener *l = (struct tcp_listener *)base;
    int fd, rc;

    rc = sock_accept(l->fd, &fd, &base->last_errno);
    if (rc != SIMSYNC_OK)
        return rc;
    return conn_from_fd(fd, out);
}

static int
tcp_listener_pollfd(struct listener *l)
{
    return ((struct tcp_listener *)l)->fd;
}

/* "A.B.C.D:PORT" or "[V6]:PORT" of the bound socket into buf. Returns
 * SIMSYNC_OK, SIMSYNC_EINVAL if buf is too small, or SIMSYNC_EIO. */
static int
tcp_listener_addr(struct listener *base, char *buf, size_t len)
{
    struct tcp_listener *l = (struct tcp_listener *)base;
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    int n;

    if (getsockname(l->fd, (struct sockaddr *)&ss, &ss_len) < 0) {
        base->last_errno = errno;
        return SIMSYNC_EIO;
    }
    if (getnameinfo((struct sockaddr *)&ss, ss_len, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return SIMSYNC_EIO;
    if (ss.ss_family == AF_INET6)
        n = snprintf(buf, len, "[%s]:%s", host, port);
    else
        n = snprintf(buf, len, "%s:%s", host, port);
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

static void
tcp_listener_close(struct listener *base)
{
    struct tcp_listener *l = (struct tcp_listener *)base;

    if (l == NULL)
        return;
    if (l->fd >= 0)
        sock_close_keep_errno(l->fd);
    free(l);
}

const struct transport_ops transport_tcp = {
    .version = 1,
    .scheme = "tcp",
    .connect = tcp_connect,
    .listen = tcp_listen,
    .accept = tcp_accept,
    .send = sock_send,
    .recv = sock_recv,
    .pollfd = sock_pollfd,
    .close = sock_close,
    .listener_pollfd = tcp_listener_pollfd,
    .listener_addr = tcp_listener_addr,
    .listener_close = tcp_listener_close,
};
