/* usb_wire.h -- what both ends of the simsync USB link agree on.
 *
 * The desktop (usb_host.c, libusb) and the handset (usb_gadget.c, a
 * FunctionFS gadget) share the identifiers, descriptors, control requests
 * and the rules below. Everything here is pure: no libusb, no system
 * calls, so it is unit-tested on any machine (tests/unit/test_usb_wire.c).
 *
 * The link
 * --------
 * The handset shows one vendor-specific interface (class 0xFF, subclass
 * USB_WIRE_SUBCLASS, protocol USB_WIRE_PROTOCOL) with one bulk OUT
 * endpoint (host to handset) and one bulk IN endpoint (handset to host).
 * The desktop finds it by that interface class, or by VID:PID when one is
 * given.
 *
 * Sessions: USB has no connections, so the desktop marks them with two
 * vendor control requests to the interface (no data stage): OPEN starts a
 * session (the handset's gadget then has a new conn) and CLOSE ends it
 * (the handset's conn reads end of stream). A new OPEN, a host reset, a
 * detach or an unbind also ends the current session. The desktop always
 * sends OPEN, whichever end dialled: USB lets only the host start
 * anything.
 *
 * Who dials: the interface's protocol byte says which end starts the
 * secure channel above the link. USB_WIRE_PROTOCOL: the handset waits for
 * the desktop to dial (`listen usb-gadget` on the handset, `--peer usb` on
 * the desktop). USB_WIRE_PROTOCOL_DIAL: the handset dials (`--peer
 * usb-gadget`) and the desktop accepts (`listen usb`). The desktop connects
 * only to the first kind and accepts only the second, so two ends that
 * both wait, or both dial, are never put together.
 *
 * Byte stream over bulk packets: a bulk transfer ends with a short packet,
 * so a reader with a large buffer learns where the writer's transfer ends.
 * Both ends therefore never write a transfer whose length is a multiple of
 * 64 bytes (the full-speed packet size, which divides the high- and
 * SuperSpeed ones): usb_wire_send_len() trims such a write by one byte and
 * the caller sends the rest next time. Readers always read whole
 * USB_WIRE_XFER_MAX buffers, a multiple of every packet size, so no
 * transfer overflows them; the bytes past what the caller asked for wait in
 * the conn for the next read.
 *
 * Buffering: USB moves a bulk transfer only while the other end has a read
 * posted. If both ends wrote at once and neither read, both would wait for
 * ever (a TCP socket buffers; an endpoint does not). So each end keeps one
 * read posted whenever its receive ring (struct usb_wire_ring) has room for
 * a whole transfer, also while it is sending: a peer's write completes as
 * long as USB_WIRE_RING bytes of unread data are not exceeded. Both
 * backends set their conns' link_window to USB_WIRE_RING, so the secure
 * channel's credit never lets a peer send more bulk than that ahead. */
#ifndef SIMSYNC_USB_WIRE_H
#define SIMSYNC_USB_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Default device IDs of the handset gadget: the Linux Foundation's
 * "Multifunction Composite Gadget" pair, meant for configfs gadgets in
 * development. A product ships with its own pair; the desktop finds the
 * handset by its interface class whatever the IDs are. */
#define USB_WIRE_VID 0x1d6b
#define USB_WIRE_PID 0x0104

/* The simsync interface: vendor class, 'S', version 1 of this link with
 * the handset waiting for the desktop (PROTOCOL) or dialling it
 * (PROTOCOL_DIAL); see "Who dials" above. */
#define USB_WIRE_CLASS 0xff
#define USB_WIRE_SUBCLASS 0x53
#define USB_WIRE_PROTOCOL 0x01
#define USB_WIRE_PROTOCOL_DIAL 0x02

/* How long a side waits for the other to appear on the bus, by default
 * (milliseconds); $SIMSYNC_USB_WAIT_MS overrides it (usb_wire_wait_ms). */
#define USB_WIRE_WAIT_MS 10000

/* Endpoint numbers on the handset: ep1 OUT (from the host), ep2 IN. */
#define USB_WIRE_EP_OUT 0x01
#define USB_WIRE_EP_IN 0x82

/* Vendor requests (bmRequestType 0x41: host to device, vendor,
 * interface; wLength 0). */
#define USB_WIRE_REQTYPE 0x41
#define USB_WIRE_REQ_OPEN 0x01
#define USB_WIRE_REQ_CLOSE 0x02

/* Largest transfer either end reads or writes at once; a multiple of 1024
 * (the largest bulk packet). */
#define USB_WIRE_XFER_MAX 16384

/* Bytes each end buffers of what it received and was not asked for yet
 * (a multiple of USB_WIRE_XFER_MAX). */
#define USB_WIRE_RING (4 * USB_WIRE_XFER_MAX)

/* The smallest bulk packet size (full speed); see "Byte stream" above. */
#define USB_WIRE_SHORT_UNIT 64

/* How many bytes of a `len`-byte write to put in one transfer: at most
 * USB_WIRE_XFER_MAX and never a multiple of USB_WIRE_SHORT_UNIT. Returns
 * 0 only for len 0. */
size_t usb_wire_send_len(size_t len);

/* Parse the desktop's address: "" (or NULL) means any device with the
 * simsync interface, "VID:PID" (hex, 1 to 4 digits each, e.g.
 * "1d6b:0104") that device. *vid and *pid are set to -1 for "any".
 * Returns 0, or SIMSYNC_EINVAL for anything else. */
int usb_wire_parse_host_addr(const char *addr, int *vid, int *pid);

/* Parse the handset's listen address: "" (or NULL) means the first USB
 * device controller in /sys/class/udc; otherwise a controller name such as
 * "dummy_udc.0" (letters, digits, '.', '_', '-', ':', at most len - 1
 * bytes, not "." or ".."), copied to udc. Returns 0 or SIMSYNC_EINVAL. */
int usb_wire_parse_gadget_addr(const char *addr, char *udc, size_t len);

/* How long to wait for the other end, in milliseconds, given the value of
 * $SIMSYNC_USB_WAIT_MS (`env`, may be NULL): a decimal number from 0 to
 * 3600000, else USB_WIRE_WAIT_MS. */
int usb_wire_wait_ms(const char *env);

/* FunctionFS blobs written to ep0 (version 2 descriptors with full-, high-
 * and SuperSpeed sets; one string table in English). Each writes at most
 * len bytes into buf and returns the blob's length, or 0 if len is too
 * small. `protocol` is the interface's protocol byte: USB_WIRE_PROTOCOL or
 * USB_WIRE_PROTOCOL_DIAL. */
size_t usb_wire_ffs_descriptors(uint8_t protocol, uint8_t *buf, size_t len);
size_t usb_wire_ffs_strings(uint8_t *buf, size_t len);

/* Received bytes waiting for the caller: buf[pos .. pos + len). */
struct usb_wire_ring {
    size_t pos, len;
    unsigned char buf[USB_WIRE_RING];
};

/* Whether a whole transfer (USB_WIRE_XFER_MAX bytes) fits. */
int usb_wire_ring_has_room(const struct usb_wire_ring *r);

/* Append n bytes (n <= USB_WIRE_XFER_MAX, and usb_wire_ring_has_room was
 * true), moving the waiting bytes to the front when needed. */
void usb_wire_ring_put(struct usb_wire_ring *r, const void *data, size_t n);

/* Move up to n waiting bytes to out; returns how many. */
size_t usb_wire_ring_take(struct usb_wire_ring *r, void *out, size_t n);

/* The handset's view of the link, driven by FunctionFS ep0 events. */
struct usb_wire_link {
    int bound;         /* BIND seen, UNBIND not since */
    int enabled;       /* the host configured us (ENABLE, no DISABLE) */
    unsigned session;  /* bumped whenever the current session ends */
    int pending;       /* an OPEN not accepted yet (session names it) */
};

/* What to answer on ep0 for a SETUP event. */
enum usb_wire_reply {
    USB_WIRE_REPLY_NONE = 0,  /* not a SETUP: nothing to answer */
    USB_WIRE_REPLY_ACK = 1,   /* ours, no data stage: acknowledge */
    USB_WIRE_REPLY_STALL = 2  /* not ours: stall */
};

/* FunctionFS event types (enum usb_functionfs_event_type), repeated here
 * so this header stays free of kernel headers; usb_gadget.c checks that
 * they match. */
enum usb_wire_event {
    USB_WIRE_EV_BIND = 0,
    USB_WIRE_EV_UNBIND = 1,
    USB_WIRE_EV_ENABLE = 2,
    USB_WIRE_EV_DISABLE = 3,
    USB_WIRE_EV_SETUP = 4,
    USB_WIRE_EV_SUSPEND = 5,
    USB_WIRE_EV_RESUME = 6
};

/* Apply one ep0 event to `link`. For SETUP, the request fields are read;
 * otherwise they are ignored. Returns how to answer. Ending a session
 * bumps link->session, so a conn that remembers the session it was
 * accepted in can tell it is over. */
enum usb_wire_reply usb_wire_link_event(struct usb_wire_link *link, int type,
                                        uint8_t request_type, uint8_t request,
                                        uint16_t length);

/* Take the pending OPEN, if the link is up: returns 1 and sets *session
 * to the new session's number, else 0. */
int usb_wire_link_accept(struct usb_wire_link *link, unsigned *session);

/* Whether a conn accepted in `session` is still current. */
int usb_wire_link_alive(const struct usb_wire_link *link, unsigned session);

#endif /* SIMSYNC_USB_WIRE_H */
