/* usbpipe -- exercise the USB transports on a real kernel (the VM tests).
 *
 *   usbpipe echo [UDC] [SESSIONS]
 *       the handset: listen on usb-gadget[:UDC], echo every byte of each
 *       session back, and end after SESSIONS sessions (0: never).
 *       Prints "usbpipe: listening on UDC" once the gadget is bound and
 *       "usbpipe: session N: M bytes" after each.
 *   usbpipe send [VID:PID|-] NBYTES [BLOCK]
 *       the desktop: connect over libusb, send NBYTES of a pattern in
 *       writes of up to BLOCK bytes (default 5000, odd on purpose), read
 *       the echo back and compare. Prints the time and rate.
 *
 * Exit codes: 0 done and every byte matched, 1 a transfer failed or the
 * echo differed, 2 usage, 4 no handset or link lost (as simsync). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport.h"

static unsigned char
pattern(unsigned long long off)
{
    return (unsigned char)(off * 131u + (off >> 9) + 7u);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
link_exit(int rc)
{
    return rc == SIMSYNC_ECLOSED || rc == SIMSYNC_ECONNECT ||
                   rc == SIMSYNC_ETIMEOUT
               ? 4
               : 1;
}

static int
run_echo(const char *udc, long sessions)
{
    struct listener *l;
    unsigned char buf[8192];
    char addr[128];
    long done = 0;
    int rc;

    rc = transport_usb_gadget.listen(udc, &l);
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "usbpipe: %s: %s\n", simsync_strerror(rc),
                transport_error());
        return link_exit(rc);
    }
    listener_addr(l, addr, sizeof(addr));
    printf("usbpipe: listening on %s\n", addr);
    fflush(stdout);
    while (sessions == 0 || done < sessions) {
        struct conn *c;
        unsigned long long total = 0;
        size_t n;

        rc = listener_accept(l, &c);
        if (rc == SIMSYNC_EAGAIN) {
            struct timespec ts = {0, 20000000L};

            nanosleep(&ts, NULL);
            continue;
        }
        if (rc != SIMSYNC_OK)
            break;
        conn_set_timeout(c, 30000);
        for (;;) {
            rc = conn_recv(c, buf, sizeof(buf), &n);
            if (rc != SIMSYNC_OK)
                break;
            rc = conn_send_all(c, buf, n);
            if (rc != SIMSYNC_OK)
                break;
            total += n;
        }
        conn_close(c);
        done++;
        printf("usbpipe: session %ld: %llu bytes (%s)\n", done, total,
               simsync_strerror(rc));
        fflush(stdout);
    }
    listener_close(l);
    return 0;
}

static int
run_send(const char *addr, unsigned long long nbytes, size_t block)
{
    struct conn *c;
    unsigned char *out, *in;
    unsigned long long sent = 0, got = 0;
    double t0 = now_s(), t;
    int rc;

    out = malloc(block);
    in = malloc(block);
    if (out == NULL || in == NULL)
        return 1;
    rc = transport_usb.connect(addr, &c);
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "usbpipe: %s: %s\n", simsync_strerror(rc),
                transport_error());
        return link_exit(rc);
    }
    conn_set_timeout(c, 30000);
    while (got < nbytes) {
        size_t n = nbytes - sent < block ? (size_t)(nbytes - sent) : block;
        size_t i;

        for (i = 0; i < n; i++)
            out[i] = pattern(sent + i);
        rc = conn_send_all(c, out, n);
        if (rc != SIMSYNC_OK)
            break;
        sent += n;
        rc = conn_recv_all(c, in, n);
        if (rc != SIMSYNC_OK)
            break;
        for (i = 0; i < n; i++) {
            if (in[i] != pattern(got + i)) {
                fprintf(stderr, "usbpipe: echo differs at byte %llu\n",
                        got + i);
                conn_close(c);
                return 1;
            }
        }
        got += n;
    }
    t = now_s() - t0;
    conn_close(c);
    free(out);
    free(in);
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "usbpipe: link failed after %llu bytes: %s\n", got,
                simsync_strerror(rc));
        return link_exit(rc);
    }
    printf("usbpipe: %llu bytes echoed in %.3f s (%.2f MiB/s each way)\n",
           got, t, t > 0 ? (double)got / 1048576.0 / t : 0.0);
    return 0;
}

int
main(int argc, char **argv)
{
    char *end;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "echo") == 0 && argc <= 4) {
        long sessions = argc == 4 ? strtol(argv[3], &end, 10) : 0;

        return run_echo(argc >= 3 && strcmp(argv[2], "-") != 0 ? argv[2]
                                                                : "",
                        sessions);
    }
    if (argc >= 4 && strcmp(argv[1], "send") == 0 && argc <= 5) {
        unsigned long long n = strtoull(argv[3], &end, 10);
        size_t block = argc == 5 ? strtoul(argv[4], &end, 10) : 5000;

        if (block == 0)
            block = 5000;
        return run_send(strcmp(argv[2], "-") == 0 ? "" : argv[2], n, block);
    }
    fprintf(stderr, "usage: usbpipe echo [UDC|-] [SESSIONS]\n"
                    "       usbpipe send VID:PID|- NBYTES [BLOCK]\n");
    return 2;
}
