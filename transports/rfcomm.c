/* rfcomm.c -- the Bluetooth RFCOMM backend (BlueZ's libbluetooth).
 *
 * A conn is one RFCOMM stream socket, so send, recv, poll fd and close are
 * the shared ones of sock.c, except that a send moves at most
 * RFCOMM_WRITE_MAX bytes: on Linux 6.1 a 16 KiB write() with the default
 * SO_SNDBUF stalls for ever, 8 KiB ones do not. conn_send_all loops over
 * the short sends.
 *
 * Channels. A listener binds a channel (or takes a free one) and, when
 * bluetoothd is reachable through its local SDP socket (bluetoothd -C),
 * registers an SDP record for it: the simsync service class
 * (RFCOMM_SERVICE_UUID), L2CAP and RFCOMM with the channel, in the public
 * browse group, named "simsync". The record is removed when the listener
 * closes (and by bluetoothd if we die, since it belongs to our SDP
 * connection). Without bluetoothd the listener works all the same; peers
 * then name the channel. A connect without a channel asks the peer's SDP
 * server for the record and uses its channel.
 *
 * Errors: a malformed address is SIMSYNC_EINVAL; a peer that cannot be
 * reached (no adapter here, paging failed, refused, no SDP server or no
 * simsync record there) SIMSYNC_ECONNECT with errno holding the cause;
 * a listener that cannot bind SIMSYNC_EIO. */

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bluetooth/bluetooth.h>
#include <bluetooth/hci.h>
#include <bluetooth/hci_lib.h>
#include <bluetooth/rfcomm.h>
#include <bluetooth/sdp.h>
#include <bluetooth/sdp_lib.h>

#include "rfcomm.h"
#include "sock.h"

#define RFCOMM_WRITE_MAX 8192 /* bytes per write(); see the file comment */
#define RFCOMM_BACKLOG 4      /* one person's terminals */
/* What the secure channel above should do on this slow link (chan.h
 * "Lanes and credit"): bulk in pieces of one write, so an urgent message
 * waits behind at most one, and at most 64 KiB of bulk in flight towards
 * us (a few tenths of a second of a Bluetooth link). */
#define RFCOMM_LINK_FRAG RFCOMM_WRITE_MAX
#define RFCOMM_LINK_WINDOW (64u << 10)

/* RFCOMM_SERVICE_UUID as bytes, most significant first. */
static const uint8_t service_uuid[16] = {
    0x68, 0x38, 0xda, 0x12, 0xa5, 0x26, 0x48, 0x6d,
    0xaf, 0x8a, 0x7b, 0xe1, 0xa5, 0x80, 0x50, 0xdd,
};

struct rfcomm_listener {
    struct listener base;  /* must be first */
    int fd;                /* listening socket, owned */
    bdaddr_t local;        /* the adapter bound, or BDADDR_ANY */
    int channel;           /* the channel bound */
    sdp_session_t *sdp;    /* our connection to bluetoothd, or NULL */
    sdp_record_t *record;  /* the record registered there, or NULL */
};

static void say(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* "XX:XX:XX:XX:XX:XX" at the start of s (hex, either case): 1 or 0. */
/* A conn for the connected RFCOMM socket fd (owned from the call on),
 * marked as a slow link. */
static int
rfcomm_conn_new(int fd, struct conn **out)
{
    int rc = sock_conn_new(&transport_rfcomm, fd, out);

    if (rc == SIMSYNC_OK) {
        (*out)->link_frag = RFCOMM_LINK_FRAG;
        (*out)->link_window = RFCOMM_LINK_WINDOW;
    }
    return rc;
}

static int
is_bdaddr(const char *s)
{
    int i;

    for (i = 0; i < RFCOMM_BDADDR_LEN; i++) {
        char ch = s[i];
        int hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                  (ch >= 'A' && ch <= 'F');

        if (i % 3 == 2 ? ch != ':' : !hex)
            return 0;
    }
    return s[RFCOMM_BDADDR_LEN] == '\0' || s[RFCOMM_BDADDR_LEN] == ':';
}

/* A channel number "0".."30" (no sign, no blanks): the number, or -1. */
static int
parse_channel(const char *s)
{
    int v = 0;
    size_t i;

    if (s[0] == '\0' || strlen(s) > 2)
        return -1;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > RFCOMM_CHANNEL_MAX ? -1 : v;
}

int
rfcomm_addr_parse(const char *s, enum link_use use, struct rfcomm_addr *out,
                  char *why, size_t why_len)
{
    const char *ch = s;
    int i;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    memset(out, 0, sizeof(*out));
    out->channel = -1;
    if (s == NULL || s[0] == '\0') {
        say(why, why_len,
            use == LINK_LISTEN
                ? "rfcomm: needs a channel to listen on (rfcomm:CHANNEL, "
                  "1-30, or 0 for a free one)"
                : "rfcomm: needs the peer's Bluetooth address "
                  "(rfcomm:BDADDR[:CHANNEL])");
        return SIMSYNC_EINVAL;
    }
    if (is_bdaddr(s)) {
        for (i = 0; i < RFCOMM_BDADDR_LEN; i++)
            out->bdaddr[i] = (char)(s[i] >= 'a' && s[i] <= 'f'
                                        ? s[i] - 'a' + 'A'
                                        : s[i]);
        out->bdaddr[RFCOMM_BDADDR_LEN] = '\0';
        ch = s[RFCOMM_BDADDR_LEN] == ':' ? s + RFCOMM_BDADDR_LEN + 1 : NULL;
    } else if (use == LINK_CONNECT) {
        say(why, why_len,
            "'rfcomm:%s' does not start with a Bluetooth address "
            "(rfcomm:BDADDR[:CHANNEL], e.g. rfcomm:00:1A:7D:DA:71:13:3)",
            s);
        return SIMSYNC_EINVAL;
    }
    if (ch == NULL) {
        if (use == LINK_LISTEN) {
            say(why, why_len,
                "'rfcomm:%s' names no channel to listen on "
                "(rfcomm:[BDADDR:]CHANNEL)",
                s);
            return SIMSYNC_EINVAL;
        }
        return SIMSYNC_OK; /* the channel comes from SDP */
    }
    out->channel = parse_channel(ch);
    if (out->channel < 0 || (use == LINK_CONNECT && out->channel == 0)) {
        say(why, why_len,
            "'%s' in 'rfcomm:%s' is not an RFCOMM channel (%d-%d)", ch, s,
            use == LINK_LISTEN ? 0 : 1, RFCOMM_CHANNEL_MAX);
        out->channel = -1;
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

/* --------------------------------------------------------------- SDP */

static void
free_proto_list(void *p)
{
    sdp_list_free(p, NULL);
}

/* The RFCOMM channel of the simsync record on the peer's SDP server:
 * 1..30, or -1 with errno set (ECONNREFUSED when there is none). */
static int
sdp_find_channel(const bdaddr_t *peer)
{
    sdp_session_t *s;
    sdp_list_t *search, *attrs, *rsp = NULL, *r;
    uuid_t svc;
    uint32_t range = 0x0000ffff;
    int channel = -1;

    s = sdp_connect(BDADDR_ANY, peer, SDP_RETRY_IF_BUSY);
    if (s == NULL)
        return -1;
    sdp_uuid128_create(&svc, service_uuid);
    search = sdp_list_append(NULL, &svc);
    attrs = sdp_list_append(NULL, &range);
    if (search == NULL || attrs == NULL ||
        sdp_service_search_attr_req(s, search, SDP_ATTR_REQ_RANGE, attrs,
                                    &rsp) != 0) {
        int err = errno ? errno : EIO;

        sdp_list_free(search, NULL);
        sdp_list_free(attrs, NULL);
        sdp_close(s);
        errno = err;
        return -1;
    }
    for (r = rsp; r != NULL; r = r->next) {
        sdp_record_t *rec = r->data;
        sdp_list_t *protos = NULL;

        if (channel < 0 && sdp_get_access_protos(rec, &protos) == 0) {
            int port = sdp_get_proto_port(protos, RFCOMM_UUID);

            if (port >= 1 && port <= RFCOMM_CHANNEL_MAX)
                channel = port;
            sdp_list_free(protos, free_proto_list);
        }
        sdp_record_free(rec);
    }
    sdp_list_free(rsp, NULL);
    sdp_list_free(search, NULL);
    sdp_list_free(attrs, NULL);
    sdp_close(s);
    if (channel < 0)
        errno = ECONNREFUSED; /* no simsync service there */
    return channel;
}

/* Register the simsync record for l's channel with the local bluetoothd.
 * Best effort: without bluetoothd (or its SDP socket) nothing happens. */
static void
sdp_register(struct rfcomm_listener *l)
{
    sdp_list_t *svc_list, *browse_list, *l2cap_list, *rfcomm_list;
    sdp_list_t *proto_seq, *access;
    sdp_data_t *channel;
    uuid_t svc, browse, l2cap, rfcomm;
    uint8_t ch = (uint8_t)l->channel;
    sdp_record_t *rec;
    sdp_session_t *s;
    int saved = errno;

    s = sdp_connect(BDADDR_ANY, BDADDR_LOCAL, SDP_RETRY_IF_BUSY);
    if (s == NULL) {
        errno = saved;
        return;
    }
    rec = sdp_record_alloc();
    sdp_uuid128_create(&svc, service_uuid);
    sdp_uuid16_create(&browse, PUBLIC_BROWSE_GROUP);
    sdp_uuid16_create(&l2cap, L2CAP_UUID);
    sdp_uuid16_create(&rfcomm, RFCOMM_UUID);
    channel = sdp_data_alloc(SDP_UINT8, &ch);
    svc_list = sdp_list_append(NULL, &svc);
    browse_list = sdp_list_append(NULL, &browse);
    l2cap_list = sdp_list_append(NULL, &l2cap);
    rfcomm_list = sdp_list_append(sdp_list_append(NULL, &rfcomm), channel);
    proto_seq = sdp_list_append(sdp_list_append(NULL, l2cap_list),
                                rfcomm_list);
    access = sdp_list_append(NULL, proto_seq);
    if (rec != NULL && channel != NULL && svc_list != NULL &&
        browse_list != NULL && access != NULL) {
        sdp_set_service_classes(rec, svc_list);
        sdp_set_browse_groups(rec, browse_list);
        sdp_set_access_protos(rec, access);
        sdp_set_info_attr(rec, "simsync", "simsync",
                          "simsync: personal data of one SIM subscriber");
        if (sdp_record_register(s, rec, 0) == 0) {
            l->sdp = s;
            l->record = rec;
            s = NULL;
            rec = NULL;
        }
    }
    sdp_list_free(access, NULL);
    sdp_list_free(proto_seq, NULL);
    sdp_list_free(rfcomm_list, NULL);
    sdp_list_free(l2cap_list, NULL);
    sdp_list_free(browse_list, NULL);
    sdp_list_free(svc_list, NULL);
    sdp_data_free(channel);
    if (rec != NULL)
        sdp_record_free(rec);
    if (s != NULL)
        sdp_close(s);
    errno = saved;
}

/* ------------------------------------------------------------ conns */

/* Returns SIMSYNC_OK, SIMSYNC_EINVAL (malformed address), SIMSYNC_ECONNECT
 * (no Bluetooth here, the peer does not answer or refuses, no simsync SDP
 * record there) or SIMSYNC_ENOMEM. */
static int
rfcomm_connect(const char *addr, struct conn **out)
{
    struct rfcomm_addr a;
    struct sockaddr_rc sa;
    int fd;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (rfcomm_addr_parse(addr, LINK_CONNECT, &a, NULL, 0) != SIMSYNC_OK) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.rc_family = AF_BLUETOOTH;
    if (str2ba(a.bdaddr, &sa.rc_bdaddr) < 0) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    if (a.channel < 0) {
        a.channel = sdp_find_channel(&sa.rc_bdaddr);
        if (a.channel < 0)
            return SIMSYNC_ECONNECT;
    }
    sa.rc_channel = (uint8_t)a.channel;
    fd = socket(AF_BLUETOOTH, SOCK_STREAM | SOCK_CLOEXEC, BTPROTO_RFCOMM);
    if (fd < 0)
        return SIMSYNC_ECONNECT; /* no Bluetooth in this kernel */
    if (sock_connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        sock_close_keep_errno(fd);
        return SIMSYNC_ECONNECT;
    }
    return rfcomm_conn_new(fd, out);
}

/* At most RFCOMM_WRITE_MAX bytes per write (see the file comment). */
static int
rfcomm_send(struct conn *c, const void *buf, size_t len, size_t *nsent)
{
    return sock_send(c, buf, len > RFCOMM_WRITE_MAX ? RFCOMM_WRITE_MAX : len,
                     nsent);
}

/* ------------------------------------------------------------ listeners */

/* Returns SIMSYNC_OK, SIMSYNC_EINVAL (malformed address), SIMSYNC_EIO (no
 * Bluetooth, no such adapter, channel in use: errno tells) or
 * SIMSYNC_ENOMEM. */
static int
rfcomm_listen(const char *addr, struct listener **out)
{
    struct rfcomm_addr a;
    struct sockaddr_rc sa;
    socklen_t sa_len = sizeof(sa);
    struct rfcomm_listener *l;
    int fd;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (rfcomm_addr_parse(addr, LINK_LISTEN, &a, NULL, 0) != SIMSYNC_OK) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.rc_family = AF_BLUETOOTH;
    if (a.bdaddr[0] != '\0' && str2ba(a.bdaddr, &sa.rc_bdaddr) < 0) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    sa.rc_channel = (uint8_t)a.channel;
    fd = socket(AF_BLUETOOTH, SOCK_STREAM | SOCK_CLOEXEC, BTPROTO_RFCOMM);
    if (fd < 0)
        return SIMSYNC_EIO;
    /* Channel 0: the kernel picks a free channel at listen(). */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, RFCOMM_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sa_len) != 0) {
        sock_close_keep_errno(fd);
        return SIMSYNC_EIO;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        (void)close(fd);
        errno = ENOMEM;
        return SIMSYNC_ENOMEM;
    }
    l->base.ops = &transport_rfcomm;
    l->fd = fd;
    bacpy(&l->local, &sa.rc_bdaddr);
    l->channel = sa.rc_channel;
    sdp_register(l);
    *out = &l->base;
    return SIMSYNC_OK;
}

/* Returns SIMSYNC_OK, SIMSYNC_EAGAIN (non-blocking, none pending),
 * SIMSYNC_EIO (see last_errno) or SIMSYNC_ENOMEM. */
static int
rfcomm_accept(struct listener *base, struct conn **out)
{
    struct rfcomm_listener *l = (struct rfcomm_listener *)base;
    int fd, rc;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    rc = sock_accept(l->fd, &fd, &base->last_errno);
    if (rc != SIMSYNC_OK)
        return rc;
    return rfcomm_conn_new(fd, out);
}

static int
rfcomm_listener_pollfd(struct listener *l)
{
    return ((struct rfcomm_listener *)l)->fd;
}

/* "BDADDR:CHANNEL": the adapter bound, or, for a listener on every
 * adapter, the first one up (what a peer would dial); just "CHANNEL" when
 * there is none. */
static int
rfcomm_listener_addr(struct listener *base, char *buf, size_t len)
{
    struct rfcomm_listener *l = (struct rfcomm_listener *)base;
    bdaddr_t ba;
    char text[RFCOMM_BDADDR_LEN + 1];
    int n, dev;

    bacpy(&ba, &l->local);
    if (bacmp(&ba, BDADDR_ANY) == 0) {
        dev = hci_get_route(NULL);
        if (dev < 0 || hci_devba(dev, &ba) < 0)
            bacpy(&ba, BDADDR_ANY);
    }
    if (bacmp(&ba, BDADDR_ANY) == 0) {
        n = snprintf(buf, len, "%d", l->channel);
    } else {
        ba2str(&ba, text);
        n = snprintf(buf, len, "%s:%d", text, l->channel);
    }
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

static void
rfcomm_listener_close(struct listener *base)
{
    struct rfcomm_listener *l = (struct rfcomm_listener *)base;
    int saved = errno;

    if (l == NULL)
        return;
    if (l->sdp != NULL) {
        /* Unregistering frees the record. */
        if (sdp_record_unregister(l->sdp, l->record) != 0)
            sdp_record_free(l->record);
        sdp_close(l->sdp);
    }
    if (l->fd >= 0)
        (void)close(l->fd);
    free(l);
    errno = saved;
}

const struct transport_ops transport_rfcomm = {
    .version = 1,
    .scheme = "rfcomm",
    .connect = rfcomm_connect,
    .listen = rfcomm_listen,
    .accept = rfcomm_accept,
    .send = rfcomm_send,
    .recv = sock_recv,
    .pollfd = sock_pollfd,
    .close = sock_close,
    .listener_pollfd = rfcomm_listener_pollfd,
    .listener_addr = rfcomm_listener_addr,
    .listener_close = rfcomm_listener_close,
};
