/* link.c -- from a link address to its backend (see link.h).
 *
 * One table row per scheme: its name, its backend (NULL while it has none
 * in this build) and a checker for the backend's part of the address, so
 * that a bad address is refused with a precise sentence before anything
 * is opened. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "link.h"
#include "rfcomm.h"
#include "usb_wire.h"

typedef int (*check_fn)(const char *rest, enum link_use use, char *why,
                        size_t why_len);

struct scheme {
    const char *name;                /* "tcp", "rfcomm", ... */
    const struct transport_ops *ops; /* NULL: no backend in this build */
    check_fn check;                  /* checks the part after "name:" */
    int bare;                        /* may be written without ":REST" */
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

/* A decimal number of at most 5 digits in [min, max]; -1 if not. */
static long
parse_num(const char *s, long min, long max)
{
    long v = 0;
    size_t i;

    if (s[0] == '\0' || strlen(s) > 5)
        return -1;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < min || v > max ? -1 : v;
}

/* HOST:PORT or [V6]:PORT; the host may be empty only to listen. */
static int
check_tcp(const char *rest, enum link_use use, char *why, size_t why_len)
{
    const char *colon = NULL;
    size_t host_len;
    long min_port = use == LINK_LISTEN ? 0 : 1;

    if (rest[0] == '[') {
        const char *end = strchr(rest, ']');

        if (end != NULL && end != rest + 1 && end[1] == ':')
            colon = end + 1;
        host_len = end != NULL ? (size_t)(end - rest - 1) : 0;
    } else {
        colon = strrchr(rest, ':');
        if (colon != NULL && memchr(rest, ':', (size_t)(colon - rest)))
            colon = NULL; /* an IPv6 literal needs brackets */
        host_len = colon != NULL ? (size_t)(colon - rest) : 0;
    }
    if (colon == NULL) {
        say(why, why_len,
            "'%s' is not HOST:PORT (e.g. 127.0.0.1:7000, [::1]:7000, "
            "rfcomm:00:1A:7D:DA:71:13)",
            rest);
        return SIMSYNC_EINVAL;
    }
    if (host_len == 0 && use == LINK_CONNECT) {
        say(why, why_len, "'%s' names no host to connect to", rest);
        return SIMSYNC_EINVAL;
    }
    if (host_len >= 256) {
        say(why, why_len, "the host name in '%s' is too long", rest);
        return SIMSYNC_EINVAL;
    }
    if (parse_num(colon + 1, min_port, 65535) < 0) {
        say(why, why_len, "'%s' is not a port number (%ld-65535)", colon + 1,
            min_port);
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

static int
check_rfcomm(const char *rest, enum link_use use, char *why, size_t why_len)
{
    struct rfcomm_addr a;

    return rfcomm_addr_parse(rest, use, &a, why, why_len);
}

/* usb[:VID:PID]: two 4-digit hex numbers; the desktop dials a handset
 * that waits, or listens for handsets that dial (docs/usb.md). */
static int
check_usb(const char *rest, enum link_use use, char *why, size_t why_len)
{
    size_t i;

    (void)use;
    if (rest[0] == '\0')
        return SIMSYNC_OK;
    for (i = 0; i < 9; i++) {
        int hex = (rest[i] >= '0' && rest[i] <= '9') ||
                  (rest[i] >= 'a' && rest[i] <= 'f') ||
                  (rest[i] >= 'A' && rest[i] <= 'F');
        if (i == 4 ? rest[i] != ':' : !hex)
            break;
    }
    if (i != 9 || rest[9] != '\0') {
        say(why, why_len, "'usb:%s' is not usb:VID:PID (e.g. usb:1d6b:0104)",
            rest);
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

/* usb-gadget[:UDC]: the handset waits for the desktop, or dials it. */
static int
check_usb_gadget(const char *rest, enum link_use use, char *why,
                 size_t why_len)
{
    char udc[128];

    (void)use;
    if (usb_wire_parse_gadget_addr(rest, udc, sizeof(udc)) != 0) {
        say(why, why_len,
            "'usb-gadget:%s' does not name a USB device controller (a name "
            "in /sys/class/udc, e.g. usb-gadget:dummy_udc.0)",
            rest);
        return SIMSYNC_EINVAL;
    }
    return SIMSYNC_OK;
}

/* Longest names first is not needed: a scheme matches only up to its
 * ':' or the end of the address. */
static const struct scheme schemes[] = {
    {"tcp", &transport_tcp, check_tcp, 0},
    {"rfcomm", &transport_rfcomm, check_rfcomm, 0},
    {"usb", &transport_usb, check_usb, 1},
    {"usb-gadget", &transport_usb_gadget, check_usb_gadget, 1},
};

int
link_addr_parse(const char *addr, enum link_use use, struct link_addr *out,
                char *why, size_t why_len)
{
    const struct scheme *sc = &schemes[0]; /* no scheme: TCP */
    const char *rest = addr;
    size_t i;
    int rc;

    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (out == NULL)
        return SIMSYNC_EINVAL;
    memset(out, 0, sizeof(*out));
    if (addr == NULL || addr[0] == '\0') {
        say(why, why_len, "an address is needed");
        return SIMSYNC_EINVAL;
    }
    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].name);

        if (strncmp(addr, schemes[i].name, n) != 0)
            continue;
        if (addr[n] == ':' || (addr[n] == '\0' && schemes[i].bare)) {
            sc = &schemes[i];
            rest = addr[n] == ':' ? addr + n + 1 : addr + n;
            break;
        }
    }
    if (strlen(rest) >= sizeof(out->rest)) {
        say(why, why_len, "the address '%.40s...' is too long", addr);
        return SIMSYNC_EINVAL;
    }
    rc = sc->check(rest, use, why, why_len);
    if (rc != SIMSYNC_OK)
        return rc;
    if (sc->ops == NULL) {
        say(why, why_len,
            "'%s' links are not built into this simsync; use tcp: or rfcomm:",
            sc->name);
        return SIMSYNC_EINVAL;
    }
    out->ops = sc->ops;
    out->scheme = sc->name;
    memcpy(out->rest, rest, strlen(rest) + 1);
    return SIMSYNC_OK;
}

const char *
link_strerror(int err)
{
    const char *why = transport_error();

    return why[0] != '\0' ? why : strerror(err);
}

int
link_connect(const char *addr, struct conn **out)
{
    struct link_addr a;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (link_addr_parse(addr, LINK_CONNECT, &a, NULL, 0) != SIMSYNC_OK) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    transport_set_error("%s", "");
    return a.ops->connect(a.rest, out);
}

int
link_listen(const char *addr, struct listener **out)
{
    struct link_addr a;

    if (out == NULL)
        return SIMSYNC_EINVAL;
    *out = NULL;
    if (link_addr_parse(addr, LINK_LISTEN, &a, NULL, 0) != SIMSYNC_OK) {
        errno = EINVAL;
        return SIMSYNC_EINVAL;
    }
    transport_set_error("%s", "");
    return a.ops->listen(a.rest, out);
}

int
link_listener_addr(struct listener *l, char *buf, size_t len)
{
    size_t n;
    int rc;

    if (l == NULL || buf == NULL || len == 0)
        return SIMSYNC_EINVAL;
    buf[0] = '\0';
    if (l->ops == &transport_tcp)
        return listener_addr(l, buf, len); /* plain HOST:PORT, as always */
    n = strlen(l->ops->scheme);
    if (n + 2 > len)
        return SIMSYNC_EINVAL;
    memcpy(buf, l->ops->scheme, n);
    buf[n] = ':';
    rc = listener_addr(l, buf + n + 1, len - n - 1);
    if (rc != SIMSYNC_OK)
        buf[0] = '\0';
    else if (buf[n + 1] == '\0')
        buf[n] = '\0'; /* a bare scheme: "usb" */
    return rc;
}
