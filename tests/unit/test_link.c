/* test_link.c -- link addresses (link.h) and the RFCOMM backend's parts
 * that need no Bluetooth hardware: which backend an address names, every
 * malformed form refused with a sentence, dialling and listening through
 * the link layer over TCP loopback, the 8 KiB cap on RFCOMM writes, and an
 * unreachable RFCOMM peer. Real RFCOMM links are tested in tests/vm. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link.h"
#include "rfcomm.h"
#include "sock.h"

static void
parses_to(const char *addr, enum link_use use, const char *scheme,
          const char *rest)
{
    struct link_addr a;
    char why[256];
    int rc = link_addr_parse(addr, use, &a, why, sizeof(why));

    if (rc != SIMSYNC_OK)
        fail_msg("'%s' refused: %s", addr, why);
    assert_string_equal(a.scheme, scheme);
    assert_string_equal(a.rest, rest);
    assert_ptr_equal(a.ops, transport_find(scheme));
}

static void
refused(const char *addr, enum link_use use, const char *says)
{
    struct link_addr a;
    char why[256];
    int rc = link_addr_parse(addr, use, &a, why, sizeof(why));

    if (rc != SIMSYNC_EINVAL)
        fail_msg("'%s' (%s) accepted", addr,
                 use == LINK_LISTEN ? "listen" : "connect");
    assert_null(a.ops);
    if (strstr(why, says) == NULL)
        fail_msg("'%s': the reason '%s' does not say '%s'", addr, why, says);
}

static void
tcp_forms(void **state)
{
    (void)state;
    parses_to("127.0.0.1:7000", LINK_CONNECT, "tcp", "127.0.0.1:7000");
    parses_to("hub.example:7000", LINK_CONNECT, "tcp", "hub.example:7000");
    parses_to("[::1]:7000", LINK_CONNECT, "tcp", "[::1]:7000");
    parses_to("tcp:127.0.0.1:7000", LINK_CONNECT, "tcp", "127.0.0.1:7000");
    parses_to("tcp:[::1]:7", LINK_CONNECT, "tcp", "[::1]:7");
    /* A host named like a scheme, written with tcp: in front. */
    parses_to("tcp:rfcomm:7000", LINK_CONNECT, "tcp", "rfcomm:7000");
    parses_to(":0", LINK_LISTEN, "tcp", ":0");
    parses_to("0.0.0.0:0", LINK_LISTEN, "tcp", "0.0.0.0:0");
    refused("127.0.0.1:0", LINK_CONNECT, "not a port number");
    refused(":7000", LINK_CONNECT, "no host");
    refused("127.0.0.1", LINK_CONNECT, "not HOST:PORT");
    refused("::1:7000", LINK_CONNECT, "not HOST:PORT");
    refused("127.0.0.1:65536", LINK_LISTEN, "not a port number");
    refused("127.0.0.1:7x", LINK_CONNECT, "not a port number");
    refused("tcp:", LINK_CONNECT, "not HOST:PORT");
    refused("", LINK_CONNECT, "needed");
}

static void
rfcomm_forms(void **state)
{
    (void)state;
    parses_to("rfcomm:00:1A:7D:DA:71:13", LINK_CONNECT, "rfcomm",
              "00:1A:7D:DA:71:13");
    parses_to("rfcomm:00:1a:7d:da:71:13:3", LINK_CONNECT, "rfcomm",
              "00:1a:7d:da:71:13:3");
    parses_to("rfcomm:3", LINK_LISTEN, "rfcomm", "3");
    parses_to("rfcomm:0", LINK_LISTEN, "rfcomm", "0");
    parses_to("rfcomm:30", LINK_LISTEN, "rfcomm", "30");
    parses_to("rfcomm:00:1A:7D:DA:71:13:12", LINK_LISTEN, "rfcomm",
              "00:1A:7D:DA:71:13:12");
    refused("rfcomm:", LINK_CONNECT, "Bluetooth address");
    refused("rfcomm:", LINK_LISTEN, "needs a channel");
    refused("rfcomm:3", LINK_CONNECT, "does not start with a Bluetooth");
    refused("rfcomm:00:1A:7D:DA:71", LINK_CONNECT, "Bluetooth address");
    refused("rfcomm:00:1A:7D:DA:71:1G", LINK_CONNECT, "Bluetooth address");
    refused("rfcomm:001A:7D:DA:71:13:99", LINK_CONNECT, "Bluetooth address");
    refused("rfcomm:00:1A:7D:DA:71:13:", LINK_CONNECT, "not an RFCOMM channel");
    refused("rfcomm:00:1A:7D:DA:71:13:0", LINK_CONNECT, "(1-30)");
    refused("rfcomm:00:1A:7D:DA:71:13:31", LINK_CONNECT, "not an RFCOMM");
    refused("rfcomm:00:1A:7D:DA:71:13:3:4", LINK_CONNECT, "not an RFCOMM");
    refused("rfcomm:31", LINK_LISTEN, "(0-30)");
    refused("rfcomm:-1", LINK_LISTEN, "not an RFCOMM channel");
    refused("rfcomm:+3", LINK_LISTEN, "not an RFCOMM channel");
    refused("rfcomm:3x", LINK_LISTEN, "not an RFCOMM channel");
    refused("rfcomm:007", LINK_LISTEN, "not an RFCOMM channel");
    refused("rfcomm:00:1A:7D:DA:71:13", LINK_LISTEN, "names no channel");
}

static void
rfcomm_parser_fields(void **state)
{
    struct rfcomm_addr a;

    (void)state;
    assert_int_equal(rfcomm_addr_parse("00:1a:7d:da:71:13", LINK_CONNECT, &a,
                                       NULL, 0),
                     SIMSYNC_OK);
    assert_string_equal(a.bdaddr, "00:1A:7D:DA:71:13");
    assert_int_equal(a.channel, -1); /* by SDP */
    assert_int_equal(rfcomm_addr_parse("00:1A:7D:DA:71:13:7", LINK_CONNECT,
                                       &a, NULL, 0),
                     SIMSYNC_OK);
    assert_int_equal(a.channel, 7);
    assert_int_equal(rfcomm_addr_parse("0", LINK_LISTEN, &a, NULL, 0),
                     SIMSYNC_OK);
    assert_string_equal(a.bdaddr, "");
    assert_int_equal(a.channel, 0);
    assert_int_equal(rfcomm_addr_parse(NULL, LINK_LISTEN, &a, NULL, 0),
                     SIMSYNC_EINVAL);
    assert_int_equal(a.channel, -1);
}

static void
usb_addresses(void **state)
{
    (void)state;
    parses_to("usb", LINK_CONNECT, "usb", "");
    parses_to("usb:1d6b:0104", LINK_CONNECT, "usb", "1d6b:0104");
    parses_to("usb-gadget", LINK_LISTEN, "usb-gadget", "");
    parses_to("usb-gadget:dummy_udc.0", LINK_LISTEN, "usb-gadget",
              "dummy_udc.0");
    refused("usb:1d6b", LINK_CONNECT, "usb:VID:PID");
    refused("usb:1d6b:01045", LINK_CONNECT, "usb:VID:PID");
    refused("usb-gadget:../x", LINK_LISTEN, "USB device controller");
    /* Not a scheme: a TCP host that happens to start with "usb". */
    parses_to("usbhost:7000", LINK_CONNECT, "tcp", "usbhost:7000");
}

/* Both USB forms work both ways: the desktop accepts handsets that dial
 * ("listen usb") and the handset dials a desktop ("usb-gadget" to
 * connect), with the same checks as the other way round. */
static void
usb_addresses_both_ways(void **state)
{
    (void)state;
    parses_to("usb", LINK_LISTEN, "usb", "");
    parses_to("usb:1d6b:0104", LINK_LISTEN, "usb", "1d6b:0104");
    parses_to("usb:1D6B:0104", LINK_LISTEN, "usb", "1D6B:0104");
    parses_to("usb-gadget", LINK_CONNECT, "usb-gadget", "");
    parses_to("usb-gadget:dummy_udc.0", LINK_CONNECT, "usb-gadget",
              "dummy_udc.0");
    refused("usb:1d6b", LINK_LISTEN, "usb:VID:PID");
    refused("usb:zz:0104", LINK_LISTEN, "usb:VID:PID");
    refused("usb:1d6b:0104:7", LINK_LISTEN, "usb:VID:PID");
    refused("usb-gadget:../x", LINK_CONNECT, "USB device controller");
    refused("usb-gadget:a/b", LINK_CONNECT, "USB device controller");
    refused("usb-gadget:..", LINK_CONNECT, "USB device controller");
    /* Not schemes: TCP hosts whose names start like one. */
    parses_to("usb-gadgets:7000", LINK_LISTEN, "tcp", "usb-gadgets:7000");
    parses_to("usbhost:7000", LINK_LISTEN, "tcp", "usbhost:7000");
}

/* A desktop listening for handsets has a bare "usb" address when it takes
 * any handset, and "usb:VID:PID" for one device; with no handset on the
 * bus it accepts nothing. */
static void
usb_listener_names_its_address(void **state)
{
    struct listener *l = NULL;
    struct conn *c = (struct conn *)1;
    char addr[64];
    int rc;

    (void)state;
    assert_int_equal(link_listen("usb", &l), SIMSYNC_OK);
    assert_int_equal(link_listener_addr(l, addr, sizeof(addr)), SIMSYNC_OK);
    assert_string_equal(addr, "usb");
    assert_true(listener_pollfd(l) >= 0);
    rc = listener_accept(l, &c);
    assert_null(c);
    /* No handset dials this machine: nothing yet, or no USB at all. */
    assert_true(rc == SIMSYNC_EAGAIN || rc == SIMSYNC_EIO);
    listener_close(l);
    assert_int_equal(link_listen("usb:1d6b:0104", &l), SIMSYNC_OK);
    assert_int_equal(link_listener_addr(l, addr, sizeof(addr)), SIMSYNC_OK);
    assert_string_equal(addr, "usb:1d6b:0104");
    listener_close(l);
    assert_int_equal(link_listen("usb:1d6b", &l), SIMSYNC_EINVAL);
    assert_null(l);
}

static void
dial_and_listen_through_links(void **state)
{
    struct listener *l = NULL;
    struct conn *a = NULL, *b = NULL;
    char addr[LINK_ADDR_MAX], dial[LINK_ADDR_MAX + 8];
    char got = 0;

    (void)state;
    assert_int_equal(link_listen("tcp:127.0.0.1:0", &l), SIMSYNC_OK);
    assert_ptr_equal(l->ops, &transport_tcp);
    assert_int_equal(link_listener_addr(l, addr, sizeof(addr)), SIMSYNC_OK);
    assert_int_equal(strncmp(addr, "127.0.0.1:", 10), 0); /* no "tcp:" */
    snprintf(dial, sizeof(dial), "tcp:%s", addr);
    assert_int_equal(link_connect(dial, &a), SIMSYNC_OK);
    assert_int_equal(listener_accept(l, &b), SIMSYNC_OK);
    assert_int_equal(conn_send_all(a, "x", 1), SIMSYNC_OK);
    assert_int_equal(conn_recv_all(b, &got, 1), SIMSYNC_OK);
    assert_int_equal(got, 'x');
    conn_close(a);
    conn_close(b);
    /* The plain form dials the same listener. */
    assert_int_equal(link_connect(addr, &a), SIMSYNC_OK);
    conn_close(a);
    listener_close(l);

    a = (struct conn *)1;
    assert_int_equal(link_connect("rfcomm:nowhere", &a), SIMSYNC_EINVAL);
    assert_null(a);
    assert_int_equal(link_connect("usb:zz", &a), SIMSYNC_EINVAL);
    assert_int_equal(link_listen("rfcomm:99", &l), SIMSYNC_EINVAL);
    assert_null(l);
    assert_int_equal(link_connect(NULL, &a), SIMSYNC_EINVAL);
}

/* On Linux 6.1 an RFCOMM write of 16 KiB can stall for ever: every send
 * of the backend moves at most 8 KiB, and send_all still sends it all. */
static void
rfcomm_writes_at_most_8k(void **state)
{
    static char buf[20000], in[20000];
    struct conn *c, *peer;
    size_t sent = 0, got = 0;
    int fds[2];

    (void)state;
    assert_ptr_equal(transport_find("rfcomm"), &transport_rfcomm);
    assert_int_equal(transport_rfcomm.version, 1);
    memset(buf, 'r', sizeof(buf));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(sock_conn_new(&transport_rfcomm, fds[0], &c),
                     SIMSYNC_OK);
    assert_int_equal(sock_conn_new(&transport_mem, fds[1], &peer),
                     SIMSYNC_OK);
    assert_int_equal(conn_send(c, buf, sizeof(buf), &sent), SIMSYNC_OK);
    assert_int_equal(sent, 8192);
    assert_int_equal(conn_recv_all(peer, in, sent), SIMSYNC_OK);
    assert_int_equal(conn_send(c, buf, 100, &sent), SIMSYNC_OK);
    assert_int_equal(sent, 100);
    assert_int_equal(conn_recv_all(peer, in, sent), SIMSYNC_OK);
    assert_int_equal(conn_send_all(c, buf, sizeof(buf)), SIMSYNC_OK);
    assert_int_equal(conn_recv_all(peer, in, sizeof(in)), SIMSYNC_OK);
    assert_memory_equal(in, buf, sizeof(buf));
    got = c->bytes_sent;
    assert_int_equal(got, 8192 + 100 + sizeof(buf));
    conn_close(c);
    conn_close(peer);
}

/* This machine has no controller that can reach 00:11:22:33:44:55 (or no
 * Bluetooth at all): a peer that cannot be reached, not a bad address. */
static void
rfcomm_unreachable(void **state)
{
    struct conn *c = (struct conn *)1;

    (void)state;
    assert_int_equal(transport_rfcomm.connect("00:11:22:33:44:55:1", &c),
                     SIMSYNC_ECONNECT);
    assert_null(c);
    assert_int_equal(link_connect("rfcomm:00:11:22:33:44:55:1", &c),
                     SIMSYNC_ECONNECT);
    assert_int_equal(transport_rfcomm.connect("00:11:22:33:44:55:0", &c),
                     SIMSYNC_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_forms),
        cmocka_unit_test(rfcomm_forms),
        cmocka_unit_test(rfcomm_parser_fields),
        cmocka_unit_test(usb_addresses),
        cmocka_unit_test(usb_addresses_both_ways),
        cmocka_unit_test(usb_listener_names_its_address),
        cmocka_unit_test(dial_and_listen_through_links),
        cmocka_unit_test(rfcomm_writes_at_most_8k),
        cmocka_unit_test(rfcomm_unreachable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
