/* usb_wire.c -- the pure half of the USB link: address parsing, the
 * FunctionFS descriptor and string blobs, the short-packet rule and the
 * handset's session state. See usb_wire.h for the contract.
 *
 * The blobs are written byte by byte in little-endian order rather than
 * through packed structs, so they come out the same on any host and the
 * unit test can check them field by field. */
#include <string.h>

#include "simsync.h"
#include "usb_wire.h"

/* FunctionFS constants (linux/usb/functionfs.h, linux/usb/ch9.h). */
#define FFS_DESCRIPTORS_MAGIC_V2 3
#define FFS_STRINGS_MAGIC 2
#define FFS_HAS_FS_DESC 1
#define FFS_HAS_HS_DESC 2
#define FFS_HAS_SS_DESC 4
#define DT_INTERFACE 4
#define DT_ENDPOINT 5
#define DT_SS_ENDPOINT_COMP 0x30
#define XFER_BULK 2
#define LANG_EN_US 0x0409

#define INTERFACE_NAME "simsync"

size_t
usb_wire_send_len(size_t len)
{
    if (len > USB_WIRE_XFER_MAX)
        len = USB_WIRE_XFER_MAX;
    if (len > 0 && len % USB_WIRE_SHORT_UNIT == 0)
        len--;
    return len;
}

int
usb_wire_ring_has_room(const struct usb_wire_ring *r)
{
    return sizeof(r->buf) - r->len >= USB_WIRE_XFER_MAX;
}

void
usb_wire_ring_put(struct usb_wire_ring *r, const void *data, size_t n)
{
    if (n > sizeof(r->buf) - r->len)
        n = sizeof(r->buf) - r->len; /* misuse: keep what fits */
    if (r->pos + r->len + n > sizeof(r->buf)) {
        memmove(r->buf, r->buf + r->pos, r->len);
        r->pos = 0;
    }
    memcpy(r->buf + r->pos + r->len, data, n);
    r->len += n;
}

size_t
usb_wire_ring_take(struct usb_wire_ring *r, void *out, size_t n)
{
    if (n > r->len)
        n = r->len;
    memcpy(out, r->buf + r->pos, n);
    r->pos += n;
    r->len -= n;
    if (r->len == 0)
        r->pos = 0;
    return n;
}

/* Parse 1 to 4 hex digits from s[0..n) into *out. */
static int
parse_hex16(const char *s, size_t n, int *out)
{
    size_t i;
    int v = 0;

    if (n == 0 || n > 4)
        return SIMSYNC_EINVAL;
    for (i = 0; i < n; i++) {
        char ch = s[i];

        v *= 16;
        if (ch >= '0' && ch <= '9')
            v += ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v += ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v += ch - 'A' + 10;
        else
            return SIMSYNC_EINVAL;
    }
    *out = v;
    return 0;
}

int
usb_wire_parse_host_addr(const char *addr, int *vid, int *pid)
{
    const char *colon;

    if (vid == NULL || pid == NULL)
        return SIMSYNC_EINVAL;
    *vid = -1;
    *pid = -1;
    if (addr == NULL || addr[0] == '\0')
        return 0;
    colon = strchr(addr, ':');
    if (colon == NULL ||
        parse_hex16(addr, (size_t)(colon - addr), vid) != 0 ||
        parse_hex16(colon + 1, strlen(colon + 1), pid) != 0) {
        *vid = -1;
        *pid = -1;
        return SIMSYNC_EINVAL;
    }
    return 0;
}

int
usb_wire_parse_gadget_addr(const char *addr, char *udc, size_t len)
{
    size_t i, n;

    if (udc == NULL || len == 0)
        return SIMSYNC_EINVAL;
    udc[0] = '\0';
    if (addr == NULL || addr[0] == '\0')
        return 0;
    n = strlen(addr);
    if (n >= len || strcmp(addr, ".") == 0 || strcmp(addr, "..") == 0)
        return SIMSYNC_EINVAL;
    for (i = 0; i < n; i++) {
        char ch = addr[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-' || ch == ':'))
            return SIMSYNC_EINVAL;
    }
    memcpy(udc, addr, n + 1);
    return 0;
}

int
usb_wire_wait_ms(const char *env)
{
    long v = 0;
    size_t i;

    if (env == NULL || env[0] == '\0' || strlen(env) > 7)
        return USB_WIRE_WAIT_MS;
    for (i = 0; env[i] != '\0'; i++) {
        if (env[i] < '0' || env[i] > '9')
            return USB_WIRE_WAIT_MS;
        v = v * 10 + (env[i] - '0');
    }
    return v > 3600000 ? USB_WIRE_WAIT_MS : (int)v;
}

/* A bounded little-endian writer: once out of room it only counts. */
struct out {
    uint8_t *buf;
    size_t len;
    size_t pos;
};

static void
put8(struct out *o, unsigned v)
{
    if (o->pos < o->len)
        o->buf[o->pos] = (uint8_t)v;
    o->pos++;
}

static void
put16(struct out *o, unsigned v)
{
    put8(o, v & 0xff);
    put8(o, (v >> 8) & 0xff);
}

static void
put32(struct out *o, uint32_t v)
{
    put16(o, v & 0xffff);
    put16(o, v >> 16);
}

/* Overwrite a little-endian u32 at `at` (only if it fits). */
static void
patch32(struct out *o, size_t at, uint32_t v)
{
    size_t i;

    for (i = 0; i < 4; i++) {
        if (at + i < o->len)
            o->buf[at + i] = (uint8_t)(v >> (8 * i));
    }
}

static void
put_interface(struct out *o, uint8_t protocol)
{
    put8(o, 9); /* bLength */
    put8(o, DT_INTERFACE);
    put8(o, 0); /* bInterfaceNumber (FunctionFS renumbers) */
    put8(o, 0); /* bAlternateSetting */
    put8(o, 2); /* bNumEndpoints */
    put8(o, USB_WIRE_CLASS);
    put8(o, USB_WIRE_SUBCLASS);
    put8(o, protocol);
    put8(o, 1); /* iInterface: the first string */
}

static void
put_endpoint(struct out *o, unsigned address, unsigned max_packet, int ss)
{
    put8(o, 7); /* bLength */
    put8(o, DT_ENDPOINT);
    put8(o, address);
    put8(o, XFER_BULK);
    put16(o, max_packet);
    put8(o, 0); /* bInterval */
    if (ss) {   /* SuperSpeed endpoint companion: no bursts, no streams */
        put8(o, 6);
        put8(o, DT_SS_ENDPOINT_COMP);
        put8(o, 0); /* bMaxBurst */
        put8(o, 0); /* bmAttributes */
        put16(o, 0); /* wBytesPerInterval (bulk: unused) */
    }
}

size_t
usb_wire_ffs_descriptors(uint8_t protocol, uint8_t *buf, size_t len)
{
    struct out o = {buf, buf == NULL ? 0 : len, 0};
    static const unsigned packet[3] = {64, 512, 1024}; /* FS, HS, SS */
    int speed;

    put32(&o, FFS_DESCRIPTORS_MAGIC_V2);
    put32(&o, 0); /* length, patched below */
    put32(&o, FFS_HAS_FS_DESC | FFS_HAS_HS_DESC | FFS_HAS_SS_DESC);
    put32(&o, 3); /* fs_count: interface + 2 endpoints */
    put32(&o, 3); /* hs_count */
    put32(&o, 5); /* ss_count: + 2 companions */
    for (speed = 0; speed < 3; speed++) {
        put_interface(&o, protocol);
        put_endpoint(&o, USB_WIRE_EP_OUT, packet[speed], speed == 2);
        put_endpoint(&o, USB_WIRE_EP_IN, packet[speed], speed == 2);
    }
    if (o.pos > o.len)
        return 0;
    patch32(&o, 4, (uint32_t)o.pos);
    return o.pos;
}

size_t
usb_wire_ffs_strings(uint8_t *buf, size_t len)
{
    struct out o = {buf, buf == NULL ? 0 : len, 0};
    const char *s = INTERFACE_NAME;

    put32(&o, FFS_STRINGS_MAGIC);
    put32(&o, 0); /* length, patched below */
    put32(&o, 1); /* str_count */
    put32(&o, 1); /* lang_count */
    put16(&o, LANG_EN_US);
    do
        put8(&o, (unsigned char)*s);
    while (*s++ != '\0');
    if (o.pos > o.len)
        return 0;
    patch32(&o, 4, (uint32_t)o.pos);
    return o.pos;
}

/* End whatever session is current (accepted or still pending). */
static void
end_session(struct usb_wire_link *link)
{
    link->session++;
    link->pending = 0;
}

enum usb_wire_reply
usb_wire_link_event(struct usb_wire_link *link, int type,
                    uint8_t request_type, uint8_t request, uint16_t length)
{
    switch (type) {
    case USB_WIRE_EV_BIND:
        link->bound = 1;
        return USB_WIRE_REPLY_NONE;
    case USB_WIRE_EV_UNBIND:
        link->bound = 0;
        link->enabled = 0;
        end_session(link);
        return USB_WIRE_REPLY_NONE;
    case USB_WIRE_EV_ENABLE:
        /* A host reset re-enables without a DISABLE in between on some
         * controllers: whatever ran before is gone either way. */
        if (link->enabled)
            end_session(link);
        link->enabled = 1;
        return USB_WIRE_REPLY_NONE;
    case USB_WIRE_EV_DISABLE:
        link->enabled = 0;
        end_session(link);
        return USB_WIRE_REPLY_NONE;
    case USB_WIRE_EV_SETUP:
        if (request_type != USB_WIRE_REQTYPE || length != 0)
            return USB_WIRE_REPLY_STALL;
        if (request == USB_WIRE_REQ_OPEN) {
            end_session(link);
            link->pending = 1;
            return USB_WIRE_REPLY_ACK;
        }
        if (request == USB_WIRE_REQ_CLOSE) {
            end_session(link);
            return USB_WIRE_REPLY_ACK;
        }
        return USB_WIRE_REPLY_STALL;
    default: /* SUSPEND, RESUME and anything newer: no change */
        return USB_WIRE_REPLY_NONE;
    }
}

int
usb_wire_link_accept(struct usb_wire_link *link, unsigned *session)
{
    if (!link->pending || !link->enabled)
        return 0;
    link->pending = 0;
    *session = link->session;
    return 1;
}

int
usb_wire_link_alive(const struct usb_wire_link *link, unsigned session)
{
    return link->enabled && !link->pending && link->session == session;
}
