/* usb_host.c -- the desktop side of the USB link (scheme "usb"), on libusb.
 *
 * connect("") finds the first device showing the simsync interface of a
 * handset that waits to be dialled (usb_wire.h: vendor class, simsync
 * subclass, USB_WIRE_PROTOCOL); connect("VID:PID") only looks at devices
 * with those IDs. listen("") and listen("VID:PID") do the same for
 * handsets that dial (USB_WIRE_PROTOCOL_DIAL): the listener looks at the
 * bus at a steady pace and accept returns each such handset as a conn,
 * with this side answering the secure channel. Both claim the
 * interface (detaching a kernel driver if one holds it), send the OPEN
 * request that starts a session on the handset, and then move the byte
 * stream over the interface's bulk OUT and bulk IN endpoints. close sends
 * CLOSE, so the handset reads end of stream, and releases everything.
 *
 * Waiting for the device: a handset plugged in after the call started
 * still counts. Debian's libusb learns of new devices only from udev
 * events, and without a running udevd it never sees a device that came
 * after libusb_init(), so each poll makes a fresh libusb context.
 * connect waits up to USB_WIRE_WAIT_MS, or $SIMSYNC_USB_WAIT_MS; a
 * listener waits for ever.
 *
 * Reads: a bulk IN transfer may carry more than the caller asked for, so
 * every read asks for a whole USB_WIRE_XFER_MAX buffer and the rest waits
 * in the conn's ring. One read stays posted (libusb's asynchronous API)
 * whenever the ring has room, also while a send waits, so the handset can
 * write while we write (usb_wire.h, "Buffering"). Writes follow
 * usb_wire_send_len() (never a multiple of 64 bytes), so each transfer
 * ends with a short packet the handset sees.
 *
 * Errors: a detached device, a stalled pipe or an I/O error end the link
 * for good (SIMSYNC_ECLOSED on this and every later call, once the bytes
 * already received are read); a call that moves nothing within the conn's
 * timeout (conn_set_timeout) gives SIMSYNC_ETIMEOUT; a send cut by the
 * timeout after some bytes reports those bytes. The conn has no fd to poll
 * (conn_pollfd is -1): calls block, bounded by the timeout. Only this file
 * includes libusb.
 *
 * Why connect failed is left in transport_error() for the caller's
 * message. One thread at a time per conn. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <libusb.h>

#include "transport.h"
#include "usb_host.h"
#include "usb_wire.h"

#define USB_HOST_POLL_MS 200     /* between two looks */
#define USB_HOST_SETTLE_MS 3000  /* a listener looks this long after a change */
#define USB_HOST_RELOOK_MS 2000  /* and anyway this often */
#define USB_HOST_SYSFS_DEVICES "/sys/bus/usb/devices"
#define USB_HOST_CONTROL_MS 5000 /* OPEN and CLOSE requests */

struct usb_host_conn {
    struct conn base; /* must be first */
    libusb_context *ctx;         /* owned */
    libusb_device_handle *dev;   /* owned */
    int iface;                   /* claimed interface number */
    unsigned char ep_in;         /* bulk IN endpoint address */
    unsigned char ep_out;        /* bulk OUT endpoint address */
    int dead;                    /* the link is gone: every call fails */
    struct libusb_transfer *rd;  /* the read kept posted, owned */
    struct libusb_transfer *wr;  /* the write of a send, owned */
    int rd_busy, wr_busy;        /* submitted, callback not run yet */
    unsigned char stage[USB_WIRE_XFER_MAX]; /* target of rd */
    struct usb_wire_ring ring;   /* received, not yet taken */
};

/* The simsync interface of `dev`'s active configuration with the given
 * protocol byte (usb_wire.h, "Who dials"): its number and bulk endpoints.
 * Returns 1 if found, else 0. */
static int
find_interface(libusb_device *dev, uint8_t protocol, int *iface,
               unsigned char *ep_in, unsigned char *ep_out)
{
    struct libusb_config_descriptor *cfg;
    int found = 0;
    int i, a, e;

    if (libusb_get_active_config_descriptor(dev, &cfg) != LIBUSB_SUCCESS)
        return 0;
    for (i = 0; i < cfg->bNumInterfaces && !found; i++) {
        const struct libusb_interface *it = &cfg->interface[i];

        for (a = 0; a < it->num_altsetting && !found; a++) {
            const struct libusb_interface_descriptor *d = &it->altsetting[a];
            unsigned char in = 0, out = 0;

            if (d->bInterfaceClass != USB_WIRE_CLASS ||
                d->bInterfaceSubClass != USB_WIRE_SUBCLASS ||
                d->bInterfaceProtocol != protocol)
                continue;
            for (e = 0; e < d->bNumEndpoints; e++) {
                const struct libusb_endpoint_descriptor *ep = &d->endpoint[e];

                if ((ep->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
                    continue;
                if (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN)
                    in = ep->bEndpointAddress;
                else
                    out = ep->bEndpointAddress;
            }
            if (in != 0 && out != 0) {
                *iface = d->bInterfaceNumber;
                *ep_in = in;
                *ep_out = out;
                found = 1;
            }
        }
    }
    libusb_free_config_descriptor(cfg);
    return found;
}

/* What one look at the bus searches for, and what it found. */
struct usb_host_look {
    int vid, pid;        /* only this device (-1: any) */
    uint8_t protocol;    /* USB_WIRE_PROTOCOL or USB_WIRE_PROTOCOL_DIAL */
    int skip_bus;        /* a device to pass over (-1: none) ... */
    int skip_addr;       /* ... by bus number and device address */
    int skip_seen;       /* [out] that device is still on the bus */
    int bus, addr;       /* [out] the device opened */
};

/* One look at the bus with a fresh context. Returns SIMSYNC_OK with the
 * device opened and claimed in *uc, SIMSYNC_EAGAIN if no matching device
 * is there (yet), or an error with transport_error() set. */
static int
try_open(struct usb_host_conn *uc, struct usb_host_look *look)
{
    libusb_device **list = NULL;
    ssize_t n, i;
    int lrc, rc = SIMSYNC_EAGAIN;

    look->skip_seen = 0;
    lrc = libusb_init(&uc->ctx);
    if (lrc != LIBUSB_SUCCESS) {
        uc->ctx = NULL;
        transport_set_error("cannot start libusb: %s",
                            libusb_strerror(lrc));
        return SIMSYNC_EIO;
    }
    n = libusb_get_device_list(uc->ctx, &list);
    for (i = 0; i < n && rc == SIMSYNC_EAGAIN; i++) {
        struct libusb_device_descriptor dd;
        int bus = libusb_get_bus_number(list[i]);
        int addr = libusb_get_device_address(list[i]);

        if (bus == look->skip_bus && addr == look->skip_addr) {
            look->skip_seen = 1;
            continue;
        }
        if (libusb_get_device_descriptor(list[i], &dd) != LIBUSB_SUCCESS)
            continue;
        if (look->vid >= 0 &&
            (dd.idVendor != look->vid || dd.idProduct != look->pid))
            continue;
        if (!find_interface(list[i], look->protocol, &uc->iface, &uc->ep_in,
                            &uc->ep_out))
            continue;
        lrc = libusb_open(list[i], &uc->dev);
        if (lrc != LIBUSB_SUCCESS) {
            uc->dev = NULL;
            transport_set_error("cannot open the USB device %04x:%04x: %s%s",
                                dd.idVendor, dd.idProduct,
                                libusb_strerror(lrc),
                                lrc == LIBUSB_ERROR_ACCESS
                                    ? " (give this user access to the "
                                      "device, e.g. with a udev rule)"
                                    : "");
            rc = lrc == LIBUSB_ERROR_ACCESS ? SIMSYNC_EIO : SIMSYNC_ECONNECT;
            break;
        }
        (void)libusb_set_auto_detach_kernel_driver(uc->dev, 1);
        lrc = libusb_claim_interface(uc->dev, uc->iface);
        if (lrc != LIBUSB_SUCCESS) {
            transport_set_error("cannot claim the simsync interface of "
                                "%04x:%04x: %s%s",
                                dd.idVendor, dd.idProduct,
                                libusb_strerror(lrc),
                                lrc == LIBUSB_ERROR_BUSY
                                    ? " (another program holds it)"
                                    : "");
            libusb_close(uc->dev);
            uc->dev = NULL;
            rc = SIMSYNC_ECONNECT;
            break;
        }
        look->bus = bus;
        look->addr = addr;
        rc = SIMSYNC_OK;
    }
    if (list != NULL)
        libusb_free_device_list(list, 1);
    if (rc != SIMSYNC_OK) {
        libusb_exit(uc->ctx);
        uc->ctx = NULL;
    }
    return rc;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void usb_host_close(struct conn *c);

static struct usb_host_conn *
new_conn(void)
{
    struct usb_host_conn *uc = calloc(1, sizeof(*uc));

    if (uc == NULL)
        return NULL;
    conn_init(&uc->base, &transport_usb);
    /* The secure channel lets the peer have no more bulk bytes in flight
     * towards us than our ring holds (usb_wire.h, "Buffering"). */
    uc->base.link_window = USB_WIRE_RING;
    return uc;
}

/* With the device of uc claimed: set up the transfers and send OPEN.
 * Returns SIMSYNC_OK, or an error after closing uc. */
static int
start_session(struct usb_host_conn *uc)
{
    int lrc;

    uc->rd = libusb_alloc_transfer(0);
    uc->wr = libusb_alloc_transfer(0);
    if (uc->rd == NULL || uc->wr == NULL) {
        uc->dead = 1;
        usb_host_close(&uc->base);
        return SIMSYNC_ENOMEM;
    }
    lrc = libusb_control_transfer(uc->dev, USB_WIRE_REQTYPE,
                                  USB_WIRE_REQ_OPEN, 0, (uint16_t)uc->iface,
                                  NULL, 0, USB_HOST_CONTROL_MS);
    if (lrc < 0) {
        transport_set_error("the handset did not start a session (%s): is "
                            "simsync running on it?",
                            libusb_strerror(lrc));
        uc->dead = 1; /* no CLOSE for a session that never began */
        usb_host_close(&uc->base);
        return SIMSYNC_ECONNECT;
    }
    return SIMSYNC_OK;
}

static int
usb_host_connect(const char *addr, struct conn **out)
{
    struct usb_host_conn *uc;
    struct usb_host_look look;
    int vid, pid, waited = 0, limit, rc;

    *out = NULL;
    transport_set_error("%s", "");
    if (usb_wire_parse_host_addr(addr, &vid, &pid) != 0) {
        transport_set_error("bad USB address \"%s\": expected usb or "
                            "usb:VID:PID (hex, e.g. usb:1d6b:0104)",
                            addr);
        return SIMSYNC_EINVAL;
    }
    uc = new_conn();
    if (uc == NULL)
        return SIMSYNC_ENOMEM;
    memset(&look, 0, sizeof(look));
    look.vid = vid;
    look.pid = pid;
    look.protocol = USB_WIRE_PROTOCOL; /* a handset that waits for us */
    look.skip_bus = look.skip_addr = -1;
    limit = usb_wire_wait_ms(getenv("SIMSYNC_USB_WAIT_MS"));
    for (;;) {
        rc = try_open(uc, &look);
        if (rc != SIMSYNC_EAGAIN || waited >= limit)
            break;
        sleep_ms(USB_HOST_POLL_MS);
        waited += USB_HOST_POLL_MS;
    }
    if (rc == SIMSYNC_EAGAIN) {
        if (vid >= 0)
            transport_set_error("no handset with the simsync interface at "
                                "USB %04x:%04x (waited %d s)",
                                vid, pid, limit / 1000);
        else
            transport_set_error("no USB device with the simsync interface "
                                "(waited %d s): plug the handset in and "
                                "run 'simsync listen usb-gadget' on it",
                                limit / 1000);
        rc = SIMSYNC_ECONNECT;
    }
    if (rc != SIMSYNC_OK) {
        free(uc);
        return rc;
    }
    rc = start_session(uc);
    if (rc == SIMSYNC_OK)
        *out = &uc->base;
    return rc;
}

/* --- the desktop accepting handsets ------------------------------------ */

/* A desktop listening on "usb[:VID:PID]": there is nothing to listen on
 * in USB, so the listener looks at the bus (its poll fd is a timer that
 * fires every USB_HOST_POLL_MS) for a handset whose gadget dials
 * (USB_WIRE_PROTOCOL_DIAL), and accept claims it and sends OPEN. A tick
 * starts libusb only when the bus changed lately (time_to_look), so an
 * idle listener costs one read of a sysfs folder per tick.
 * The device of the last session is passed over for as long as it stays
 * on the bus, so a session that ended is not started again with the same
 * attachment; a handset that dials again makes a new gadget, which the
 * bus numbers afresh, and a detached and re-attached one is new too. */
struct usb_host_listener {
    struct listener base; /* must be first */
    int vid, pid;         /* only this device (-1: any) */
    int timer_fd;         /* listener_pollfd: readable every poll period */
    int last_bus;         /* the device of the last session (-1: none) */
    int last_addr;
    uint64_t bus_print;   /* bus_fingerprint() at the last tick */
    long long look_until; /* look at every tick until then (ms) */
    long long next_look;  /* look at the latest then, whatever changed */
    char addr[16];        /* "VID:PID" as given, or "" */
};

static long long now_ms(void);

/* A cheap fingerprint of the USB devices present, so that an idle
 * listener does not start libusb five times a second: the names and
 * kernfs node numbers of the entries of /sys/bus/usb/devices. A device
 * that comes, goes or is enumerated again makes new entries with new
 * node numbers. 0 when the folder cannot be read (then every tick
 * looks). */
static uint64_t
bus_fingerprint(void)
{
    DIR *d = opendir(USB_HOST_SYSFS_DEVICES);
    struct dirent *e;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        const unsigned char *p = (const unsigned char *)e->d_name;
        uint64_t ino = (uint64_t)e->d_ino;
        uint64_t part = 1469598103934665603ULL;
        int i;

        for (; *p != '\0'; p++)
            part = (part ^ *p) * 1099511628211ULL;
        for (i = 0; i < 8; i++, ino >>= 8)
            part = (part ^ (ino & 0xff)) * 1099511628211ULL;
        h += part; /* readdir order does not matter */
    }
    closedir(d);
    return h != 0 ? h : 1;
}

/* Whether this tick should look at the bus with libusb: while the bus
 * changed in the last USB_HOST_SETTLE_MS (a new device is configured a
 * moment after it appears), or after a look found a handset it could not
 * start, and anyway every USB_HOST_RELOOK_MS. */
static int
time_to_look(struct usb_host_listener *hl)
{
    uint64_t print = bus_fingerprint();
    long long now = now_ms();

    if (print == 0 || print != hl->bus_print)
        hl->look_until = now + USB_HOST_SETTLE_MS;
    hl->bus_print = print;
    if (now < hl->look_until || now >= hl->next_look) {
        hl->next_look = now + USB_HOST_RELOOK_MS;
        return 1;
    }
    return 0;
}

static int
usb_host_listen(const char *addr, struct listener **out)
{
    struct usb_host_listener *hl;
    struct itimerspec its;
    int vid, pid;

    *out = NULL;
    transport_set_error("%s", "");
    if (usb_wire_parse_host_addr(addr, &vid, &pid) != 0) {
        transport_set_error("bad USB address \"%s\": expected usb or "
                            "usb:VID:PID (hex, e.g. usb:1d6b:0104)",
                            addr);
        return SIMSYNC_EINVAL;
    }
    hl = calloc(1, sizeof(*hl));
    if (hl == NULL)
        return SIMSYNC_ENOMEM;
    hl->base.ops = &transport_usb;
    hl->vid = vid;
    hl->pid = pid;
    hl->last_bus = hl->last_addr = -1;
    hl->bus_print = bus_fingerprint(); /* the first tick looks anyway */
    if (vid >= 0)
        snprintf(hl->addr, sizeof(hl->addr), "%04x:%04x", vid, pid);
    hl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    memset(&its, 0, sizeof(its));
    its.it_value.tv_nsec = 1000000L; /* look at once, then every period */
    its.it_interval.tv_nsec = USB_HOST_POLL_MS * 1000000L;
    if (hl->timer_fd < 0 || timerfd_settime(hl->timer_fd, 0, &its, NULL) != 0) {
        transport_set_error("cannot start the USB poll timer: %s",
                            strerror(errno));
        if (hl->timer_fd >= 0)
            close(hl->timer_fd);
        free(hl);
        return SIMSYNC_EIO;
    }
    *out = &hl->base;
    return SIMSYNC_OK;
}

/* SIMSYNC_EAGAIN while no dialling handset is on the bus; SIMSYNC_OK with
 * a conn whose session has begun; SIMSYNC_EIO when libusb cannot start or
 * the device may not be opened by this user (transport_error says so). A
 * handset that cannot be claimed or does not take OPEN is tried again at
 * the next look (SIMSYNC_EAGAIN now). */
static int
usb_host_accept(struct listener *base, struct conn **out)
{
    struct usb_host_listener *hl = (struct usb_host_listener *)base;
    struct usb_host_conn *uc;
    struct usb_host_look look;
    uint64_t ticks;
    int rc;

    *out = NULL;
    (void)read(hl->timer_fd, &ticks, sizeof(ticks));
    if (!time_to_look(hl))
        return SIMSYNC_EAGAIN;
    uc = new_conn();
    if (uc == NULL)
        return SIMSYNC_ENOMEM;
    memset(&look, 0, sizeof(look));
    look.vid = hl->vid;
    look.pid = hl->pid;
    look.protocol = USB_WIRE_PROTOCOL_DIAL; /* a handset that dials us */
    look.skip_bus = hl->last_bus;
    look.skip_addr = hl->last_addr;
    rc = try_open(uc, &look);
    if (!look.skip_seen && rc != SIMSYNC_EIO)
        hl->last_bus = hl->last_addr = -1; /* it left the bus */
    if (rc != SIMSYNC_OK) {
        free(uc);
        if (rc == SIMSYNC_ECONNECT) /* there but not claimed: again */
            hl->look_until = now_ms() + USB_HOST_SETTLE_MS;
        return rc == SIMSYNC_EIO || rc == SIMSYNC_ENOMEM ? rc
                                                         : SIMSYNC_EAGAIN;
    }
    rc = start_session(uc);
    if (rc != SIMSYNC_OK) {
        hl->look_until = now_ms() + USB_HOST_SETTLE_MS;
        return rc == SIMSYNC_ENOMEM ? rc : SIMSYNC_EAGAIN;
    }
    hl->last_bus = look.bus;
    hl->last_addr = look.addr;
    *out = &uc->base;
    return SIMSYNC_OK;
}

static int
usb_host_listener_pollfd(struct listener *base)
{
    return ((struct usb_host_listener *)base)->timer_fd;
}

/* "" for any handset (link_listener_addr then says "usb"), else
 * "VID:PID". */
static int
usb_host_listener_addr(struct listener *base, char *buf, size_t len)
{
    struct usb_host_listener *hl = (struct usb_host_listener *)base;

    if ((size_t)snprintf(buf, len, "%s", hl->addr) >= len)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

static void
usb_host_listener_close(struct listener *base)
{
    struct usb_host_listener *hl = (struct usb_host_listener *)base;

    if (hl == NULL)
        return;
    if (hl->timer_fd >= 0)
        close(hl->timer_fd);
    free(hl);
}

int
usb_host_map_status(int status)
{
    switch (status) {
    case LIBUSB_TRANSFER_COMPLETED:
        return SIMSYNC_OK;
    case LIBUSB_TRANSFER_TIMED_OUT:
    case LIBUSB_TRANSFER_CANCELLED:
        return SIMSYNC_ETIMEOUT;
    case LIBUSB_TRANSFER_OVERFLOW:
        return SIMSYNC_EPROTO;
    default: /* NO_DEVICE, STALL, ERROR */
        return SIMSYNC_ECLOSED;
    }
}

static void LIBUSB_CALL
read_done(struct libusb_transfer *t)
{
    struct usb_host_conn *uc = t->user_data;

    uc->rd_busy = 0;
    if (t->actual_length > 0)
        usb_wire_ring_put(&uc->ring, uc->stage, (size_t)t->actual_length);
    if (t->status != LIBUSB_TRANSFER_COMPLETED &&
        t->status != LIBUSB_TRANSFER_CANCELLED &&
        t->status != LIBUSB_TRANSFER_TIMED_OUT)
        uc->dead = 1;
}

static void LIBUSB_CALL
write_done(struct libusb_transfer *t)
{
    struct usb_host_conn *uc = t->user_data;

    uc->wr_busy = 0;
    if (usb_host_map_status(t->status) == SIMSYNC_ECLOSED)
        uc->dead = 1;
}

/* Keep a read posted while the ring has room for a whole transfer. */
static void
post_read(struct usb_host_conn *uc)
{
    if (uc->rd_busy || uc->dead || !usb_wire_ring_has_room(&uc->ring))
        return;
    libusb_fill_bulk_transfer(uc->rd, uc->dev, uc->ep_in, uc->stage,
                              (int)sizeof(uc->stage), read_done, uc, 0);
    if (libusb_submit_transfer(uc->rd) == LIBUSB_SUCCESS)
        uc->rd_busy = 1;
    else
        uc->dead = 1;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run libusb's events until *flag is 0 or the deadline (timeout_ms <= 0:
 * none) passes. Returns 0, or SIMSYNC_ETIMEOUT. */
static int
run_until(struct usb_host_conn *uc, const int *flag, int timeout_ms,
          long long deadline)
{
    while (*flag) {
        struct timeval tv = {0, 200000};
        int completed = 0;

        if (timeout_ms > 0) {
            long long left = deadline - now_ms();

            if (left <= 0)
                return SIMSYNC_ETIMEOUT;
            if (left < 200)
                tv.tv_usec = (long)left * 1000;
        }
        (void)libusb_handle_events_timeout_completed(uc->ctx, &tv,
                                                     &completed);
    }
    return SIMSYNC_OK;
}

/* Cancel a posted transfer and wait for its callback. */
static void
cancel_transfer(struct usb_host_conn *uc, struct libusb_transfer *t,
                const int *busy)
{
    if (!*busy)
        return;
    (void)libusb_cancel_transfer(t);
    while (*busy) {
        struct timeval tv = {1, 0};

        if (libusb_handle_events_timeout(uc->ctx, &tv) != 0)
            break;
    }
}

static int
usb_host_send(struct conn *c, const void *buf, size_t len, size_t *nsent)
{
    struct usb_host_conn *uc = (struct usb_host_conn *)c;
    int want = (int)usb_wire_send_len(len);
    long long deadline = now_ms() + c->timeout_ms;
    int rc;

    *nsent = 0;
    if (uc->dead)
        return SIMSYNC_ECLOSED;
    if (want == 0)
        return SIMSYNC_OK;
    libusb_fill_bulk_transfer(uc->wr, uc->dev, uc->ep_out,
                              (unsigned char *)(uintptr_t)buf, want,
                              write_done, uc, 0);
    if (libusb_submit_transfer(uc->wr) != LIBUSB_SUCCESS) {
        uc->dead = 1;
        return SIMSYNC_ECLOSED;
    }
    uc->wr_busy = 1;
    post_read(uc); /* the handset may be writing too: take it in */
    rc = run_until(uc, &uc->wr_busy, c->timeout_ms, deadline);
    if (rc == SIMSYNC_ETIMEOUT)
        cancel_transfer(uc, uc->wr, &uc->wr_busy);
    if (uc->wr_busy) { /* libusb lost track of it: give the link up */
        uc->dead = 1;
        return SIMSYNC_ECLOSED;
    }
    if (uc->wr->actual_length > 0) {
        *nsent = (size_t)uc->wr->actual_length;
        return SIMSYNC_OK;
    }
    rc = usb_host_map_status(uc->wr->status);
    return rc == SIMSYNC_OK ? SIMSYNC_ECLOSED : rc;
}

static int
usb_host_recv(struct conn *c, void *buf, size_t len, size_t *nread)
{
    struct usb_host_conn *uc = (struct usb_host_conn *)c;
    long long deadline = now_ms() + c->timeout_ms;

    *nread = 0;
    for (;;) {
        if (uc->ring.len > 0) {
            *nread = usb_wire_ring_take(&uc->ring, buf, len);
            post_read(uc);
            return SIMSYNC_OK;
        }
        if (uc->dead)
            return SIMSYNC_ECLOSED;
        post_read(uc);
        if (run_until(uc, &uc->rd_busy, c->timeout_ms, deadline) != 0)
            return SIMSYNC_ETIMEOUT; /* the read stays posted */
    }
}

static int
usb_host_pollfd(struct conn *c)
{
    (void)c;
    return -1; /* libusb's fds do not say "bytes to read": calls block */
}

static void
usb_host_close(struct conn *c)
{
    struct usb_host_conn *uc = (struct usb_host_conn *)c;

    if (uc == NULL)
        return;
    if (uc->rd != NULL)
        cancel_transfer(uc, uc->rd, &uc->rd_busy);
    if (uc->dev != NULL) {
        if (!uc->dead)
            (void)libusb_control_transfer(uc->dev, USB_WIRE_REQTYPE,
                                          USB_WIRE_REQ_CLOSE, 0,
                                          (uint16_t)uc->iface, NULL, 0,
                                          USB_HOST_CONTROL_MS);
        (void)libusb_release_interface(uc->dev, uc->iface);
        libusb_close(uc->dev);
    }
    if (!uc->rd_busy)
        libusb_free_transfer(uc->rd);
    if (!uc->wr_busy)
        libusb_free_transfer(uc->wr);
    if (uc->ctx != NULL)
        libusb_exit(uc->ctx);
    free(uc);
}

const struct transport_ops transport_usb = {
    .version = 1,
    .scheme = "usb",
    .connect = usb_host_connect,
    .listen = usb_host_listen,
    .accept = usb_host_accept,
    .send = usb_host_send,
    .recv = usb_host_recv,
    .pollfd = usb_host_pollfd,
    .close = usb_host_close,
    .listener_pollfd = usb_host_listener_pollfd,
    .listener_addr = usb_host_listener_addr,
    .listener_close = usb_host_listener_close,
};
