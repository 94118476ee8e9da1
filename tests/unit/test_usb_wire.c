/* test_usb_wire.c -- the USB link without USB hardware: addresses, the
 * FunctionFS descriptor and string blobs, the short-packet rule, the
 * handset's session state driven by ep0 events, the receive ring, the
 * libusb status mapping,
 * the scheme table, and the clear failures of both backends on a machine
 * with no handset and no gadget support. The real link runs in the VM
 * (tests/vm/guest/tests/40-usb-sync.sh, 41-usb-unplug.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "transport.h"
#include "usb_host.h"
#include "usb_wire.h"

/* libusb's transfer status values (enum libusb_transfer_status in
 * libusb.h; part of its stable ABI). The test does not include libusb:
 * only usb_host.c does. */
enum {
    T_COMPLETED = 0,
    T_ERROR = 1,
    T_TIMED_OUT = 2,
    T_CANCELLED = 3,
    T_STALL = 4,
    T_NO_DEVICE = 5,
    T_OVERFLOW = 6
};

static unsigned
le16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

/* ---- addresses --------------------------------------------------------- */

static void
host_addr_forms(void **state)
{
    int vid, pid;

    (void)state;
    assert_int_equal(usb_wire_parse_host_addr("", &vid, &pid), 0);
    assert_int_equal(vid, -1);
    assert_int_equal(pid, -1);
    assert_int_equal(usb_wire_parse_host_addr(NULL, &vid, &pid), 0);
    assert_int_equal(vid, -1);
    assert_int_equal(usb_wire_parse_host_addr("1d6b:0104", &vid, &pid), 0);
    assert_int_equal(vid, 0x1d6b);
    assert_int_equal(pid, 0x0104);
    assert_int_equal(usb_wire_parse_host_addr("AbCd:1", &vid, &pid), 0);
    assert_int_equal(vid, 0xabcd);
    assert_int_equal(pid, 1);
}

static void
host_addr_rejects_malformed(void **state)
{
    static const char *bad[] = {"1d6b",      "1d6b:",   ":0104",
                                "1d6b:0104:", "12345:1", "1:12345",
                                "xyz:0104",  "1d6b 0104", "-1:2",
                                "0x1d6b:0x0104"};
    size_t i;
    int vid, pid;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(usb_wire_parse_host_addr(bad[i], &vid, &pid),
                         SIMSYNC_EINVAL);
        assert_int_equal(vid, -1);
        assert_int_equal(pid, -1);
    }
}

static void
gadget_addr_forms(void **state)
{
    char udc[32];

    (void)state;
    assert_int_equal(usb_wire_parse_gadget_addr("", udc, sizeof(udc)), 0);
    assert_string_equal(udc, "");
    assert_int_equal(
        usb_wire_parse_gadget_addr("dummy_udc.0", udc, sizeof(udc)), 0);
    assert_string_equal(udc, "dummy_udc.0");
    assert_int_equal(
        usb_wire_parse_gadget_addr("fe980000.usb", udc, sizeof(udc)), 0);
    assert_string_equal(udc, "fe980000.usb");
    /* No path tricks, nothing that does not fit. */
    assert_int_equal(usb_wire_parse_gadget_addr("..", udc, sizeof(udc)),
                     SIMSYNC_EINVAL);
    assert_int_equal(usb_wire_parse_gadget_addr("a/b", udc, sizeof(udc)),
                     SIMSYNC_EINVAL);
    assert_int_equal(usb_wire_parse_gadget_addr("a b", udc, sizeof(udc)),
                     SIMSYNC_EINVAL);
    assert_int_equal(usb_wire_parse_gadget_addr("0123456789", udc, 10),
                     SIMSYNC_EINVAL);
    assert_string_equal(udc, "");
}

/* ---- the short-packet rule -------------------------------------------- */

static void
send_len_never_ends_on_a_packet_boundary(void **state)
{
    size_t len;

    (void)state;
    assert_int_equal(usb_wire_send_len(0), 0);
    assert_int_equal(usb_wire_send_len(1), 1);
    assert_int_equal(usb_wire_send_len(63), 63);
    assert_int_equal(usb_wire_send_len(64), 63);
    assert_int_equal(usb_wire_send_len(65), 65);
    assert_int_equal(usb_wire_send_len(512), 511);
    assert_int_equal(usb_wire_send_len(1000000), USB_WIRE_XFER_MAX - 1);
    for (len = 1; len <= 3 * USB_WIRE_XFER_MAX; len++) {
        size_t n = usb_wire_send_len(len);

        assert_true(n >= 1 && n <= len && n <= USB_WIRE_XFER_MAX);
        assert_true(n % 64 != 0); /* so also not of 512 or 1024 */
        assert_true(n >= len - 1 || n == USB_WIRE_XFER_MAX - 1);
    }
    assert_int_equal(USB_WIRE_XFER_MAX % 1024, 0);
}

/* ---- the receive ring ---------------------------------------------- */

static void
ring_keeps_order_and_room(void **state)
{
    static struct usb_wire_ring r;
    unsigned char in[USB_WIRE_XFER_MAX], out[USB_WIRE_XFER_MAX];
    unsigned long long put = 0, took = 0;
    size_t i, n, k;

    (void)state;
    memset(&r, 0, sizeof(r));
    /* Fill to the last whole transfer, then take odd amounts and put
     * again, forcing the bytes to move to the front many times. */
    for (k = 0; k < 200; k++) {
        while (usb_wire_ring_has_room(&r)) {
            n = 1 + (k * 7919 + put) % USB_WIRE_XFER_MAX;
            for (i = 0; i < n; i++)
                in[i] = (unsigned char)((put + i) * 13);
            usb_wire_ring_put(&r, in, n);
            put += n;
        }
        assert_true(r.len > USB_WIRE_RING - USB_WIRE_XFER_MAX);
        n = usb_wire_ring_take(&r, out, 1 + (k * 104729) % sizeof(out));
        for (i = 0; i < n; i++)
            assert_int_equal(out[i], (unsigned char)((took + i) * 13));
        took += n;
    }
    while ((n = usb_wire_ring_take(&r, out, sizeof(out))) > 0) {
        for (i = 0; i < n; i++)
            assert_int_equal(out[i], (unsigned char)((took + i) * 13));
        took += n;
    }
    assert_true(took == put);
    assert_int_equal(r.len, 0);
}

/* ---- FunctionFS blobs ---------------------------------------------- */

/* Check one interface + two endpoints (+ companions for SuperSpeed). */
static const uint8_t *
check_speed(const uint8_t *p, unsigned packet, int ss, uint8_t protocol)
{
    int e;

    assert_int_equal(p[0], 9);
    assert_int_equal(p[1], 4); /* interface */
    assert_int_equal(p[4], 2); /* two endpoints */
    assert_int_equal(p[5], USB_WIRE_CLASS);
    assert_int_equal(p[6], USB_WIRE_SUBCLASS);
    assert_int_equal(p[7], protocol);
    assert_int_equal(p[8], 1); /* named by string 1 */
    p += 9;
    for (e = 0; e < 2; e++) {
        assert_int_equal(p[0], 7);
        assert_int_equal(p[1], 5); /* endpoint */
        assert_int_equal(p[2], e == 0 ? USB_WIRE_EP_OUT : USB_WIRE_EP_IN);
        assert_int_equal(p[3], 2); /* bulk */
        assert_int_equal(le16(p + 4), packet);
        p += 7;
        if (ss) {
            assert_int_equal(p[0], 6);
            assert_int_equal(p[1], 0x30); /* SS endpoint companion */
            p += 6;
        }
    }
    return p;
}

static void
check_descriptors(uint8_t protocol)
{
    uint8_t buf[256];
    size_t n = usb_wire_ffs_descriptors(protocol, buf, sizeof(buf));
    const uint8_t *p;

    assert_true(n > 24);
    assert_int_equal(le32(buf), 3);       /* FUNCTIONFS_DESCRIPTORS_MAGIC_V2 */
    assert_int_equal(le32(buf + 4), n);   /* length */
    assert_int_equal(le32(buf + 8), 7);   /* FS | HS | SS */
    assert_int_equal(le32(buf + 12), 3);  /* fs_count */
    assert_int_equal(le32(buf + 16), 3);  /* hs_count */
    assert_int_equal(le32(buf + 20), 5);  /* ss_count */
    p = check_speed(buf + 24, 64, 0, protocol);
    p = check_speed(p, 512, 0, protocol);
    p = check_speed(p, 1024, 1, protocol);
    assert_int_equal((size_t)(p - buf), n);
    /* Too small a buffer: nothing claimed. */
    assert_int_equal(usb_wire_ffs_descriptors(protocol, buf, n - 1), 0);
    assert_int_equal(usb_wire_ffs_descriptors(protocol, buf, n), n);
}

static void
descriptors_blob_is_well_formed(void **state)
{
    (void)state;
    check_descriptors(USB_WIRE_PROTOCOL);
}

/* A handset that dials says so in the protocol byte, and only there. */
static void
dialling_gadget_differs_in_the_protocol_byte_only(void **state)
{
    uint8_t a[256], b[256];
    size_t na = usb_wire_ffs_descriptors(USB_WIRE_PROTOCOL, a, sizeof(a));
    size_t nb = usb_wire_ffs_descriptors(USB_WIRE_PROTOCOL_DIAL, b, sizeof(b));
    size_t i, differ = 0;

    (void)state;
    assert_true(USB_WIRE_PROTOCOL != USB_WIRE_PROTOCOL_DIAL);
    check_descriptors(USB_WIRE_PROTOCOL_DIAL);
    assert_int_equal(na, nb);
    for (i = 0; i < na; i++)
        differ += a[i] != b[i];
    assert_int_equal(differ, 3); /* one interface per speed */
}

/* $SIMSYNC_USB_WAIT_MS: a plain number of milliseconds, else the
 * default. */
static void
wait_ms_from_the_environment(void **state)
{
    (void)state;
    assert_int_equal(usb_wire_wait_ms(NULL), USB_WIRE_WAIT_MS);
    assert_int_equal(usb_wire_wait_ms(""), USB_WIRE_WAIT_MS);
    assert_int_equal(usb_wire_wait_ms("0"), 0);
    assert_int_equal(usb_wire_wait_ms("500"), 500);
    assert_int_equal(usb_wire_wait_ms("3600000"), 3600000);
    assert_int_equal(usb_wire_wait_ms("3600001"), USB_WIRE_WAIT_MS);
    assert_int_equal(usb_wire_wait_ms("-1"), USB_WIRE_WAIT_MS);
    assert_int_equal(usb_wire_wait_ms("5s"), USB_WIRE_WAIT_MS);
    assert_int_equal(usb_wire_wait_ms("99999999999"), USB_WIRE_WAIT_MS);
}

static void
strings_blob_is_well_formed(void **state)
{
    uint8_t buf[64];
    size_t n = usb_wire_ffs_strings(buf, sizeof(buf));

    (void)state;
    assert_int_equal(le32(buf), 2);     /* FUNCTIONFS_STRINGS_MAGIC */
    assert_int_equal(le32(buf + 4), n);
    assert_int_equal(le32(buf + 8), 1); /* one string */
    assert_int_equal(le32(buf + 12), 1); /* one language */
    assert_int_equal(le16(buf + 16), 0x0409);
    assert_string_equal((const char *)buf + 18, "simsync");
    assert_int_equal(n, 18 + sizeof("simsync"));
    assert_int_equal(usb_wire_ffs_strings(buf, n - 1), 0);
}

/* ---- sessions on the handset ----------------------------------------- */

static enum usb_wire_reply
ev(struct usb_wire_link *l, int type)
{
    return usb_wire_link_event(l, type, 0, 0, 0);
}

static enum usb_wire_reply
req(struct usb_wire_link *l, uint8_t request)
{
    return usb_wire_link_event(l, USB_WIRE_EV_SETUP, USB_WIRE_REQTYPE,
                               request, 0);
}

static void
open_gives_one_conn_and_close_ends_it(void **state)
{
    struct usb_wire_link l;
    unsigned s1, s2;

    (void)state;
    memset(&l, 0, sizeof(l));
    assert_int_equal(ev(&l, USB_WIRE_EV_BIND), USB_WIRE_REPLY_NONE);
    assert_int_equal(ev(&l, USB_WIRE_EV_ENABLE), USB_WIRE_REPLY_NONE);
    assert_false(usb_wire_link_accept(&l, &s1)); /* enabled is not open */
    assert_int_equal(req(&l, USB_WIRE_REQ_OPEN), USB_WIRE_REPLY_ACK);
    assert_true(usb_wire_link_accept(&l, &s1));
    assert_false(usb_wire_link_accept(&l, &s2)); /* one OPEN, one conn */
    assert_true(usb_wire_link_alive(&l, s1));
    assert_int_equal(ev(&l, USB_WIRE_EV_SUSPEND), USB_WIRE_REPLY_NONE);
    assert_true(usb_wire_link_alive(&l, s1));
    assert_int_equal(req(&l, USB_WIRE_REQ_CLOSE), USB_WIRE_REPLY_ACK);
    assert_false(usb_wire_link_alive(&l, s1));
    /* The next session on the same attachment is a new conn. */
    assert_int_equal(req(&l, USB_WIRE_REQ_OPEN), USB_WIRE_REPLY_ACK);
    assert_true(usb_wire_link_accept(&l, &s2));
    assert_int_not_equal(s1, s2);
    assert_true(usb_wire_link_alive(&l, s2));
    assert_false(usb_wire_link_alive(&l, s1));
}

static void
new_open_ends_the_running_session(void **state)
{
    struct usb_wire_link l;
    unsigned s1, s2;

    (void)state;
    memset(&l, 0, sizeof(l));
    ev(&l, USB_WIRE_EV_BIND);
    ev(&l, USB_WIRE_EV_ENABLE);
    req(&l, USB_WIRE_REQ_OPEN);
    assert_true(usb_wire_link_accept(&l, &s1));
    /* The desktop process died without CLOSE; a new one opens. */
    req(&l, USB_WIRE_REQ_OPEN);
    assert_false(usb_wire_link_alive(&l, s1));
    assert_true(usb_wire_link_accept(&l, &s2));
    assert_true(usb_wire_link_alive(&l, s2));
}

static void
detach_and_unbind_end_the_session_and_reattach_recovers(void **state)
{
    struct usb_wire_link l;
    unsigned s1, s2, s3;

    (void)state;
    memset(&l, 0, sizeof(l));
    ev(&l, USB_WIRE_EV_BIND);
    ev(&l, USB_WIRE_EV_ENABLE);
    req(&l, USB_WIRE_REQ_OPEN);
    assert_true(usb_wire_link_accept(&l, &s1));
    ev(&l, USB_WIRE_EV_DISABLE); /* cable pulled */
    assert_false(usb_wire_link_alive(&l, s1));
    assert_false(usb_wire_link_accept(&l, &s2));
    ev(&l, USB_WIRE_EV_ENABLE); /* plugged in again */
    req(&l, USB_WIRE_REQ_OPEN);
    assert_true(usb_wire_link_accept(&l, &s2));
    assert_true(usb_wire_link_alive(&l, s2));
    ev(&l, USB_WIRE_EV_UNBIND); /* controller unbound */
    assert_false(usb_wire_link_alive(&l, s2));
    ev(&l, USB_WIRE_EV_BIND);
    ev(&l, USB_WIRE_EV_ENABLE);
    assert_false(usb_wire_link_accept(&l, &s3)); /* waits for OPEN */
    req(&l, USB_WIRE_REQ_OPEN);
    assert_true(usb_wire_link_accept(&l, &s3));
    assert_true(usb_wire_link_alive(&l, s3));
    /* A reset re-enables without DISABLE: the session is over too. */
    ev(&l, USB_WIRE_EV_ENABLE);
    assert_false(usb_wire_link_alive(&l, s3));
}

static void
open_before_enable_or_lost_in_detach_gives_nothing(void **state)
{
    struct usb_wire_link l;
    unsigned s;

    (void)state;
    memset(&l, 0, sizeof(l));
    ev(&l, USB_WIRE_EV_BIND);
    ev(&l, USB_WIRE_EV_ENABLE);
    req(&l, USB_WIRE_REQ_OPEN);
    ev(&l, USB_WIRE_EV_DISABLE); /* gone before accept */
    ev(&l, USB_WIRE_EV_ENABLE);
    assert_false(usb_wire_link_accept(&l, &s));
}

static void
foreign_requests_are_stalled(void **state)
{
    struct usb_wire_link l, before;

    (void)state;
    memset(&l, 0, sizeof(l));
    ev(&l, USB_WIRE_EV_BIND);
    ev(&l, USB_WIRE_EV_ENABLE);
    before = l;
    /* Unknown request, a class request, one with a data stage, an IN. */
    assert_int_equal(req(&l, 0x7f), USB_WIRE_REPLY_STALL);
    assert_int_equal(usb_wire_link_event(&l, USB_WIRE_EV_SETUP, 0x21,
                                         USB_WIRE_REQ_OPEN, 0),
                     USB_WIRE_REPLY_STALL);
    assert_int_equal(usb_wire_link_event(&l, USB_WIRE_EV_SETUP,
                                         USB_WIRE_REQTYPE,
                                         USB_WIRE_REQ_OPEN, 4),
                     USB_WIRE_REPLY_STALL);
    assert_int_equal(usb_wire_link_event(&l, USB_WIRE_EV_SETUP, 0xc1,
                                         USB_WIRE_REQ_OPEN, 0),
                     USB_WIRE_REPLY_STALL);
    assert_memory_equal(&l, &before, sizeof(l)); /* nothing changed */
}

/* ---- the desktop side ------------------------------------------------ */

static void
libusb_status_maps_to_link_codes(void **state)
{
    (void)state;
    assert_int_equal(usb_host_map_status(T_COMPLETED), SIMSYNC_OK);
    assert_int_equal(usb_host_map_status(T_TIMED_OUT), SIMSYNC_ETIMEOUT);
    assert_int_equal(usb_host_map_status(T_CANCELLED), SIMSYNC_ETIMEOUT);
    assert_int_equal(usb_host_map_status(T_NO_DEVICE), SIMSYNC_ECLOSED);
    assert_int_equal(usb_host_map_status(T_STALL), SIMSYNC_ECLOSED);
    assert_int_equal(usb_host_map_status(T_ERROR), SIMSYNC_ECLOSED);
    assert_int_equal(usb_host_map_status(T_OVERFLOW), SIMSYNC_EPROTO);
    assert_int_equal(usb_host_map_status(99), SIMSYNC_ECLOSED);
}

static void
schemes_are_registered(void **state)
{
    (void)state;
    assert_ptr_equal(transport_find("usb"), &transport_usb);
    assert_ptr_equal(transport_find("usb-gadget"), &transport_usb_gadget);
    assert_string_equal(transport_usb.scheme, "usb");
    assert_string_equal(transport_usb_gadget.scheme, "usb-gadget");
}

static void
host_connect_bad_address_says_the_form(void **state)
{
    struct conn *c = (struct conn *)1;

    (void)state;
    assert_int_equal(transport_usb.connect("usb:1d6b", &c), SIMSYNC_EINVAL);
    assert_null(c);
    assert_non_null(strstr(transport_error(), "usb:VID:PID"));
}

static void
host_connect_without_a_handset_fails_clearly(void **state)
{
    struct conn *c = (struct conn *)1;
    int rc;

    (void)state;
    /* Nothing on this machine shows the simsync interface: no wait. */
    setenv("SIMSYNC_USB_WAIT_MS", "0", 1);
    rc = transport_usb.connect("", &c);
    unsetenv("SIMSYNC_USB_WAIT_MS");
    assert_null(c);
    if (rc == SIMSYNC_EIO) /* no USB at all here: libusb cannot start */
        assert_non_null(strstr(transport_error(), "libusb"));
    else {
        assert_int_equal(rc, SIMSYNC_ECONNECT);
        assert_non_null(strstr(transport_error(), "simsync interface"));
    }
}

/* Both sides go both ways now; a malformed address is still refused
 * with the form, and a handset that dials without gadget support says
 * what to load. */
static void
both_sides_dial_and_listen(void **state)
{
    struct listener *l = (struct listener *)1;
    struct conn *c = (struct conn *)1;
    int rc;

    (void)state;
    assert_int_equal(transport_usb.listen("1d6b", &l), SIMSYNC_EINVAL);
    assert_null(l);
    assert_non_null(strstr(transport_error(), "usb:VID:PID"));
    assert_int_equal(transport_usb.listen("", &l), SIMSYNC_OK);
    assert_non_null(l);
    transport_usb.listener_close(l);
    assert_int_equal(transport_usb_gadget.connect("../x", &c),
                     SIMSYNC_EINVAL);
    assert_null(c);
    assert_non_null(strstr(transport_error(), "usb-gadget:UDC"));
    c = (struct conn *)1;
    setenv("SIMSYNC_USB_CONFIGFS", "/nonexistent-simsync-configfs", 1);
    rc = transport_usb_gadget.connect("", &c);
    unsetenv("SIMSYNC_USB_CONFIGFS");
    assert_int_equal(rc, SIMSYNC_EIO);
    assert_null(c);
    assert_true(strstr(transport_error(), "modprobe libcomposite") != NULL ||
                strstr(transport_error(), "needs root") != NULL);
}

/* ---- the handset side, where it cannot work ------------------------- */

static void
gadget_listen_bad_address(void **state)
{
    struct listener *l = (struct listener *)1;

    (void)state;
    assert_int_equal(transport_usb_gadget.listen("../x", &l),
                     SIMSYNC_EINVAL);
    assert_null(l);
    assert_non_null(strstr(transport_error(), "usb-gadget:UDC"));
}

static void
gadget_listen_without_configfs_says_what_to_load(void **state)
{
    struct listener *l = (struct listener *)1;
    int rc;

    (void)state;
    setenv("SIMSYNC_USB_CONFIGFS", "/nonexistent-simsync-configfs", 1);
    rc = transport_usb_gadget.listen("", &l);
    unsetenv("SIMSYNC_USB_CONFIGFS");
    assert_int_equal(rc, SIMSYNC_EIO);
    assert_null(l);
    /* Root is told what is missing; anyone else that root is needed. */
    assert_true(strstr(transport_error(), "modprobe libcomposite") != NULL ||
                strstr(transport_error(), "needs root") != NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_addr_forms),
        cmocka_unit_test(host_addr_rejects_malformed),
        cmocka_unit_test(gadget_addr_forms),
        cmocka_unit_test(send_len_never_ends_on_a_packet_boundary),
        cmocka_unit_test(ring_keeps_order_and_room),
        cmocka_unit_test(descriptors_blob_is_well_formed),
        cmocka_unit_test(dialling_gadget_differs_in_the_protocol_byte_only),
        cmocka_unit_test(wait_ms_from_the_environment),
        cmocka_unit_test(strings_blob_is_well_formed),
        cmocka_unit_test(open_gives_one_conn_and_close_ends_it),
        cmocka_unit_test(new_open_ends_the_running_session),
        cmocka_unit_test(
            detach_and_unbind_end_the_session_and_reattach_recovers),
        cmocka_unit_test(open_before_enable_or_lost_in_detach_gives_nothing),
        cmocka_unit_test(foreign_requests_are_stalled),
        cmocka_unit_test(libusb_status_maps_to_link_codes),
        cmocka_unit_test(schemes_are_registered),
        cmocka_unit_test(host_connect_bad_address_says_the_form),
        cmocka_unit_test(host_connect_without_a_handset_fails_clearly),
        cmocka_unit_test(both_sides_dial_and_listen),
        cmocka_unit_test(gadget_listen_bad_address),
        cmocka_unit_test(gadget_listen_without_configfs_says_what_to_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
