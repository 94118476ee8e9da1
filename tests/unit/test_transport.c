/* test_transport.c -- the transport layer: the mem pair, TCP on loopback,
 * and the fault injection in the conn_* wrappers (cuts, short transfers,
 * timeouts), plus the things that must never happen: SIGPIPE and leaked
 * file descriptors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport.h"

#define ADDR_MAX 128

/* ---- helpers ---------------------------------------------------------- */

static void
fill_pattern(unsigned char *buf, size_t len, unsigned seed)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (unsigned char)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

/* A listener on 127.0.0.1 with a kernel-chosen port; its address in addr. */
static struct listener *
listen_loopback(char *addr, size_t addr_len)
{
    struct listener *l = NULL;

    assert_int_equal(transport_tcp.listen("127.0.0.1:0", &l), SIMSYNC_OK);
    assert_non_null(l);
    assert_int_equal(listener_addr(l, addr, addr_len), SIMSYNC_OK);
    return l;
}

/* A connected TCP pair through `l` (the kernel queues the connection, so
 * connect and accept can run in one thread). Both ends get a generous
 * timeout so that a broken close makes a test fail instead of hang. */
static void
tcp_pair(struct listener *l, const char *addr, struct conn **client,
         struct conn **server)
{
    assert_int_equal(transport_tcp.connect(addr, client), SIMSYNC_OK);
    assert_non_null(*client);
    assert_int_equal(listener_accept(l, server), SIMSYNC_OK);
    assert_non_null(*server);
    conn_set_timeout(*client, 10000);
    conn_set_timeout(*server, 10000);
}

/* ---- registry and wrappers -------------------------------------------- */

static void
transport_find_knows_tcp_and_mem(void **state)
{
    (void)state;
    assert_ptr_equal(transport_find("tcp"), &transport_tcp);
    assert_ptr_equal(transport_find("mem"), &transport_mem);
    assert_null(transport_find("carrier-pigeon"));
    assert_null(transport_find(NULL));
    assert_int_equal(transport_tcp.version, 1);
    assert_int_equal(transport_mem.version, 1);
}

static void
wrappers_reject_null_and_close_accepts_it(void **state)
{
    unsigned char b = 0;
    size_t n = 99;
    struct conn *c = (struct conn *)&n;
    char addr[8];

    (void)state;
    assert_int_equal(conn_send(NULL, &b, 1, &n), SIMSYNC_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(conn_recv(NULL, &b, 1, &n), SIMSYNC_EINVAL);
    assert_int_equal(conn_send_all(NULL, &b, 1), SIMSYNC_EINVAL);
    assert_int_equal(conn_recv_all(NULL, &b, 1), SIMSYNC_EINVAL);
    assert_int_equal(conn_pollfd(NULL), -1);
    assert_int_equal(listener_pollfd(NULL), -1);
    assert_int_equal(listener_accept(NULL, &c), SIMSYNC_EINVAL);
    assert_null(c);
    assert_int_equal(listener_addr(NULL, addr, sizeof(addr)), SIMSYNC_EINVAL);
    conn_close(NULL);
    listener_close(NULL);
    assert_int_equal(transport_mem_pair(NULL, NULL), SIMSYNC_EINVAL);
}

/* ---- mem pair --------------------------------------------------------- */

static void
mem_pair_round_trip_both_ways(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    unsigned char out[5000];
    unsigned char in[5000];

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    assert_ptr_equal(a->ops, &transport_mem);
    assert_true(conn_pollfd(a) >= 0);
    assert_true(conn_pollfd(b) >= 0);

    fill_pattern(out, sizeof(out), 1);
    assert_int_equal(conn_send_all(a, out, sizeof(out)), SIMSYNC_OK);
    memset(in, 0, sizeof(in));
    assert_int_equal(conn_recv_all(b, in, sizeof(in)), SIMSYNC_OK);
    assert_memory_equal(in, out, sizeof(out));

    fill_pattern(out, sizeof(out), 2);
    assert_int_equal(conn_send_all(b, out, sizeof(out)), SIMSYNC_OK);
    memset(in, 0, sizeof(in));
    assert_int_equal(conn_recv_all(a, in, sizeof(in)), SIMSYNC_OK);
    assert_memory_equal(in, out, sizeof(out));

    assert_int_equal(a->bytes_sent, sizeof(out));
    assert_int_equal(a->bytes_received, sizeof(out));
    assert_int_equal(b->bytes_sent, sizeof(out));
    assert_int_equal(b->bytes_received, sizeof(out));
    conn_close(a);
    conn_close(b);
}

static void
mem_cannot_dial_listen_or_accept(void **state)
{
    int sentinel;
    struct conn *c = (struct conn *)&sentinel;
    struct listener *l = (struct listener *)&sentinel;

    (void)state;
    assert_int_equal(transport_mem.connect("anything", &c), SIMSYNC_EINVAL);
    assert_null(c);
    assert_int_equal(transport_mem.listen("anything", &l), SIMSYNC_EINVAL);
    assert_null(l);
    c = (struct conn *)&sentinel;
    assert_int_equal(transport_mem.accept(NULL, &c), SIMSYNC_EINVAL);
    assert_null(c);
}

static void
nonblocking_mem_recv_returns_eagain(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    unsigned char buf[4];
    size_t n = 7;
    int fd;

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    fd = conn_pollfd(b);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    assert_int_equal(conn_recv(b, buf, sizeof(buf), &n), SIMSYNC_EAGAIN);
    assert_int_equal(n, 0);
    /* recv_all waits through EAGAIN once data shows up. */
    assert_int_equal(conn_send_all(a, "abcd", 4), SIMSYNC_OK);
    assert_int_equal(conn_recv_all(b, buf, 4), SIMSYNC_OK);
    assert_memory_equal(buf, "abcd", 4);
    conn_close(a);
    conn_close(b);
}

/* ---- TCP -------------------------------------------------------------- */

struct echo_job {
    struct listener *l;
    int accept_rc; /* result of listener_accept */
    int end_rc;    /* what ended the echo loop */
    size_t echoed; /* bytes sent back */
};

/* Accept one conn and send back whatever arrives until the peer leaves. */
static void *
echo_main(void *arg)
{
    struct echo_job *job = arg;
    struct conn *c = NULL;
    unsigned char buf[1500];
    size_t n;
    int rc;

    job->accept_rc = listener_accept(job->l, &c);
    if (job->accept_rc != SIMSYNC_OK)
        return NULL;
    conn_set_timeout(c, 10000); /* fail rather than hang */
    for (;;) {
        rc = conn_recv(c, buf, sizeof(buf), &n);
        if (rc == SIMSYNC_OK)
            rc = conn_send_all(c, buf, n);
        if (rc != SIMSYNC_OK)
            break;
        job->echoed += n;
    }
    job->end_rc = rc;
    conn_close(c);
    return NULL;
}

static void
tcp_echo_through_thread(void **state)
{
    struct echo_job job;
    pthread_t th;
    struct conn *c = NULL;
    char addr[ADDR_MAX];
    unsigned char out[4096];
    unsigned char in[4096];
    unsigned round;

    (void)state;
    memset(&job, 0, sizeof(job));
    job.l = listen_loopback(addr, sizeof(addr));
    assert_true(strncmp(addr, "127.0.0.1:", 10) == 0);
    assert_string_not_equal(addr, "127.0.0.1:0");

    assert_int_equal(pthread_create(&th, NULL, echo_main, &job), 0);
    assert_int_equal(transport_tcp.connect(addr, &c), SIMSYNC_OK);
    assert_ptr_equal(c->ops, &transport_tcp);
    for (round = 0; round < 64; round++) {
        fill_pattern(out, sizeof(out), round);
        assert_int_equal(conn_send_all(c, out, sizeof(out)), SIMSYNC_OK);
        memset(in, 0, sizeof(in));
        assert_int_equal(conn_recv_all(c, in, sizeof(in)), SIMSYNC_OK);
        assert_memory_equal(in, out, sizeof(out));
    }
    assert_int_equal(c->bytes_sent, 64 * sizeof(out));
    assert_int_equal(c->bytes_received, 64 * sizeof(out));
    conn_close(c);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(job.accept_rc, SIMSYNC_OK);
    assert_int_equal(job.end_rc, SIMSYNC_ECLOSED);
    assert_int_equal(job.echoed, 64 * sizeof(out));
    listener_close(job.l);
}

static void
tcp_ipv6_loopback_reports_brackets(void **state)
{
    struct listener *l = NULL;
    struct conn *c = NULL;
    struct conn *s = NULL;
    char addr[ADDR_MAX];
    unsigned char b = 0;

    (void)state;
    if (transport_tcp.listen("[::1]:0", &l) != SIMSYNC_OK) {
        skip(); /* no IPv6 loopback on this machine */
        return;
    }
    assert_int_equal(listener_addr(l, addr, sizeof(addr)), SIMSYNC_OK);
    assert_true(strncmp(addr, "[::1]:", 6) == 0);
    tcp_pair(l, addr, &c, &s);
    assert_int_equal(conn_send_all(c, "6", 1), SIMSYNC_OK);
    assert_int_equal(conn_recv_all(s, &b, 1), SIMSYNC_OK);
    assert_int_equal(b, '6');
    conn_close(c);
    conn_close(s);
    listener_close(l);
}

static void
listener_addr_rejects_small_buffer(void **state)
{
    struct listener *l;
    char addr[ADDR_MAX];
    char small[6];

    (void)state;
    l = listen_loopback(addr, sizeof(addr));
    assert_int_equal(listener_addr(l, small, sizeof(small)), SIMSYNC_EINVAL);
    assert_string_equal(small, "");
    listener_close(l);
}

static void
tcp_connect_to_closed_port_is_econnect(void **state)
{
    struct listener *l;
    char addr[ADDR_MAX];
    struct conn *c = (struct conn *)addr;

    (void)state;
    /* Learn a port that was free a moment ago, then free it again. */
    l = listen_loopback(addr, sizeof(addr));
    listener_close(l);
    assert_int_equal(transport_tcp.connect(addr, &c), SIMSYNC_ECONNECT);
    assert_null(c);
}

static void
tcp_malformed_addresses_are_einval(void **state)
{
    static const char *const bad[] = {
        "",
        "nohost",
        "1.2.3.4:99999",
        "x:y",
        ":7000",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:-1",
        "127.0.0.1:7o",
        "::1:7000",
        "[::1]7000",
        "[::1",
        "[]:7000",
        "[not-v6]:7000",
        "127.0.0.1:0000070000",
    };
    static const char *const bad_listen[] = {
        "", "nohost", "1.2.3.4:99999", "x:y", "[::1]7000", "::1:0",
    };
    struct conn *c;
    struct listener *l;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = (struct conn *)&i;
        if (transport_tcp.connect(bad[i], &c) != SIMSYNC_EINVAL)
            fail_msg("connect(\"%s\") was not SIMSYNC_EINVAL", bad[i]);
        assert_null(c);
    }
    assert_int_equal(transport_tcp.connect(NULL, &c), SIMSYNC_EINVAL);
    for (i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
        l = (struct listener *)&i;
        if (transport_tcp.listen(bad_listen[i], &l) != SIMSYNC_EINVAL)
            fail_msg("listen(\"%s\") was not SIMSYNC_EINVAL", bad_listen[i]);
        assert_null(l);
    }
}

static void
nonblocking_listener_accept_returns_eagain(void **state)
{
    struct listener *l;
    struct conn *c = NULL;
    struct pollfd pfd;
    char addr[ADDR_MAX];
    struct conn *s = (struct conn *)addr;
    int fd;

    (void)state;

    l = listen_loopback(addr, sizeof(addr));
    fd = listener_pollfd(l);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    assert_int_equal(listener_accept(l, &s), SIMSYNC_EAGAIN);
    assert_null(s);

    assert_int_equal(transport_tcp.connect(addr, &c), SIMSYNC_OK);
    pfd.fd = fd;
    pfd.events = POLLIN;
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_int_equal(listener_accept(l, &s), SIMSYNC_OK);
    assert_non_null(s);
    /* Accepted conns start blocking whatever the listener is. */
    assert_int_equal(fcntl(conn_pollfd(s), F_GETFL) & O_NONBLOCK, 0);
    assert_true(fcntl(conn_pollfd(s), F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(conn_pollfd(c), F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    conn_close(c);
    conn_close(s);
    listener_close(l);
}

/* ---- closes, cuts, chunks, timeouts ----------------------------------- */

static void
peer_close_gives_eclosed(void **state)
{
    struct listener *l;
    struct conn *a = NULL;
    struct conn *b = NULL;
    char addr[ADDR_MAX];
    unsigned char buf[8];
    size_t n = 5;

    (void)state;
    /* mem: queued data is still delivered, then the close shows. */
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_set_timeout(b, 10000);
    assert_int_equal(conn_send_all(a, "xyz", 3), SIMSYNC_OK);
    conn_close(a);
    assert_int_equal(conn_recv_all(b, buf, 3), SIMSYNC_OK);
    assert_memory_equal(buf, "xyz", 3);
    assert_int_equal(conn_recv(b, buf, sizeof(buf), &n), SIMSYNC_ECLOSED);
    assert_int_equal(n, 0);
    conn_close(b);

    /* tcp, both directions of who leaves first. */
    l = listen_loopback(addr, sizeof(addr));
    tcp_pair(l, addr, &a, &b);
    conn_close(b);
    assert_int_equal(conn_recv(a, buf, sizeof(buf), &n), SIMSYNC_ECLOSED);
    conn_close(a);
    tcp_pair(l, addr, &a, &b);
    conn_close(a);
    assert_int_equal(conn_recv_all(b, buf, 1), SIMSYNC_ECLOSED);
    conn_close(b);
    listener_close(l);
}

static void
cut_on_sender_delivers_n_then_both_closed(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    unsigned char out[100];
    unsigned char in[100];
    size_t n = 1;

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    fill_pattern(out, sizeof(out), 3);
    conn_set_timeout(b, 5000); /* a missing close fails, not hangs */
    conn_fault_cut_after(a, 10);
    assert_int_equal(conn_send_all(a, out, sizeof(out)), SIMSYNC_ECLOSED);
    assert_int_equal(a->bytes_sent, 10);
    /* Every later call on the cut end fails too. */
    assert_int_equal(conn_send(a, out, 1, &n), SIMSYNC_ECLOSED);
    assert_int_equal(n, 0);
    assert_int_equal(conn_recv(a, in, 1, &n), SIMSYNC_ECLOSED);

    /* The peer gets the 10 bytes, then sees the link close. */
    memset(in, 0, sizeof(in));
    assert_int_equal(conn_recv_all(b, in, 10), SIMSYNC_OK);
    assert_memory_equal(in, out, 10);
    assert_int_equal(conn_recv(b, in, sizeof(in), &n), SIMSYNC_ECLOSED);
    assert_int_equal(conn_send(b, out, 1, &n), SIMSYNC_ECLOSED);
    conn_close(a);
    conn_close(b);
}

static void
cut_on_receiver_stops_at_n_peer_sees_close(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    unsigned char out[20];
    unsigned char in[20];
    size_t n;

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    fill_pattern(out, sizeof(out), 4);
    conn_set_timeout(a, 5000);
    conn_fault_cut_after(b, 7);
    assert_int_equal(conn_send_all(a, out, sizeof(out)), SIMSYNC_OK);
    memset(in, 0, sizeof(in));
    assert_int_equal(conn_recv_all(b, in, sizeof(in)), SIMSYNC_ECLOSED);
    assert_int_equal(b->bytes_received, 7);
    assert_memory_equal(in, out, 7);
    assert_int_equal(in[7], 0);
    assert_int_equal(conn_send(a, out, 1, &n), SIMSYNC_ECLOSED);
    assert_int_equal(conn_recv(a, in, 1, &n), SIMSYNC_ECLOSED);
    conn_close(a);
    conn_close(b);
}

static void
cut_counts_both_ways_and_zero_cuts_at_once(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    unsigned char buf[16];
    size_t n;

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_fault_cut_after(a, 6);
    assert_int_equal(conn_send_all(a, "abcd", 4), SIMSYNC_OK);
    assert_int_equal(conn_send_all(b, "efgh", 4), SIMSYNC_OK);
    /* 4 sent + 2 received reaches the limit of 6. */
    assert_int_equal(conn_recv(a, buf, sizeof(buf), &n), SIMSYNC_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(buf, "ef", 2);
    assert_int_equal(conn_recv(a, buf, sizeof(buf), &n), SIMSYNC_ECLOSED);
    conn_close(a);
    conn_close(b);

    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_set_timeout(b, 5000);
    conn_fault_cut_after(a, 0);
    assert_int_equal(conn_send(a, "x", 1, &n), SIMSYNC_ECLOSED);
    assert_int_equal(conn_recv(b, buf, 1, &n), SIMSYNC_ECLOSED);
    conn_close(a);
    conn_close(b);
}

static void
cut_after_over_tcp_peer_sees_eclosed(void **state)
{
    struct listener *l;
    struct conn *c = NULL;
    struct conn *s = NULL;
    char addr[ADDR_MAX];
    static unsigned char out[5000];
    static unsigned char in[5000];
    size_t n;

    (void)state;
    l = listen_loopback(addr, sizeof(addr));
    tcp_pair(l, addr, &c, &s);
    fill_pattern(out, sizeof(out), 5);
    conn_set_timeout(s, 5000);
    conn_fault_cut_after(c, 1000);
    assert_int_equal(conn_send_all(c, out, sizeof(out)), SIMSYNC_ECLOSED);
    assert_int_equal(c->bytes_sent, 1000);
    assert_int_equal(conn_recv_all(s, in, 1000), SIMSYNC_OK);
    assert_memory_equal(in, out, 1000);
    assert_int_equal(conn_recv(s, in, sizeof(in), &n), SIMSYNC_ECLOSED);
    conn_close(c);
    conn_close(s);
    listener_close(l);
}

struct send_job {
    struct conn *c;
    const unsigned char *buf;
    size_t len;
    int rc;
};

static void *
send_main(void *arg)
{
    struct send_job *job = arg;

    job->rc = conn_send_all(job->c, job->buf, job->len);
    return NULL;
}

static void
max_chunk_one_still_delivers_everything(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    struct send_job job;
    pthread_t th;
    unsigned char out[3000];
    unsigned char in[3000];
    size_t n = 0;

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_fault_max_chunk(a, 1);
    conn_fault_max_chunk(b, 1);
    assert_int_equal(conn_send(a, "hello", 5, &n), SIMSYNC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(conn_recv(b, in, sizeof(in), &n), SIMSYNC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(in[0], 'h');

    /* One-byte writes fill the socket buffer quickly: send from a thread
     * while this one reads. */
    fill_pattern(out, sizeof(out), 6);
    job.c = a;
    job.buf = out;
    job.len = sizeof(out);
    job.rc = 1;
    assert_int_equal(pthread_create(&th, NULL, send_main, &job), 0);
    memset(in, 0, sizeof(in));
    assert_int_equal(conn_recv_all(b, in, sizeof(in)), SIMSYNC_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(job.rc, SIMSYNC_OK);
    assert_memory_equal(in, out, sizeof(out));
    assert_int_equal(a->bytes_sent, 1 + sizeof(out));
    assert_int_equal(b->bytes_received, 1 + sizeof(out));

    /* With the limit lifted, transfers are whole again. */
    conn_fault_max_chunk(a, 0);
    conn_fault_max_chunk(b, 0);
    assert_int_equal(conn_send(a, "ello", 4, &n), SIMSYNC_OK);
    assert_int_equal(n, 4);
    assert_int_equal(conn_recv(b, in, sizeof(in), &n), SIMSYNC_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(in, "ello", 4);
    conn_close(a);
    conn_close(b);
}

static void
recv_without_data_times_out(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    unsigned char buf[4];
    size_t n = 3;
    long long t0;
    long long waited;

    (void)state;
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_set_timeout(a, 100);
    t0 = now_ms();
    assert_int_equal(conn_recv(a, buf, sizeof(buf), &n), SIMSYNC_ETIMEOUT);
    waited = now_ms() - t0;
    assert_int_equal(n, 0);
    assert_true(waited >= 90);
    assert_true(waited < 5000);
    /* The conn is still usable afterwards. */
    assert_int_equal(conn_send_all(b, "ok", 2), SIMSYNC_OK);
    assert_int_equal(conn_recv_all(a, buf, 2), SIMSYNC_OK);
    assert_memory_equal(buf, "ok", 2);
    conn_close(a);
    conn_close(b);
}

static void
send_to_unread_peer_times_out(void **state)
{
    struct conn *a = NULL;
    struct conn *b = NULL;
    size_t len = 16u << 20;
    unsigned char *big = calloc(1, len);

    (void)state;
    assert_non_null(big);
    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_set_timeout(a, 100);
    assert_int_equal(conn_send_all(a, big, len), SIMSYNC_ETIMEOUT);
    assert_true(a->bytes_sent > 0);
    assert_true(a->bytes_sent < len);
    free(big);
    conn_close(a);
    conn_close(b);
}

static volatile sig_atomic_t sigpipe_count;

static void
on_sigpipe(int sig)
{
    (void)sig;
    sigpipe_count++;
}

static void
send_to_closed_peer_fails_without_sigpipe(void **state)
{
    struct sigaction sa;
    struct sigaction old;
    struct listener *l;
    struct conn *a = NULL;
    struct conn *b = NULL;
    char addr[ADDR_MAX];
    size_t n;
    int rc = SIMSYNC_OK;
    int i;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
    sigpipe_count = 0;

    assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
    conn_close(b);
    assert_int_equal(conn_send(a, "x", 1, &n), SIMSYNC_ECLOSED);
    assert_int_equal(a->last_errno, EPIPE);
    conn_close(a);

    /* TCP: the first write after the close may still be accepted; the
     * reset it provokes makes a later one fail. */
    l = listen_loopback(addr, sizeof(addr));
    tcp_pair(l, addr, &a, &b);
    conn_close(b);
    for (i = 0; i < 200 && rc == SIMSYNC_OK; i++) {
        rc = conn_send(a, "y", 1, &n);
        if (rc == SIMSYNC_OK) {
            struct timespec ts = {0, 5 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(rc, SIMSYNC_ECLOSED);
    assert_true(a->last_errno == EPIPE || a->last_errno == ECONNRESET);
    conn_close(a);
    listener_close(l);

    assert_int_equal(sigpipe_count, 0);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

static void
connect_close_cycles_leak_no_fds(void **state)
{
    struct listener *l;
    struct conn *a;
    struct conn *b;
    char addr[ADDR_MAX];
    unsigned char byte;
    int before;
    int after;
    int i;

    (void)state;
    l = listen_loopback(addr, sizeof(addr));
    before = count_open_fds();
    for (i = 0; i < 200; i++) {
        a = NULL;
        b = NULL;
        tcp_pair(l, addr, &a, &b);
        assert_int_equal(conn_send_all(a, "z", 1), SIMSYNC_OK);
        assert_int_equal(conn_recv_all(b, &byte, 1), SIMSYNC_OK);
        conn_close(a);
        conn_close(b);

        assert_int_equal(transport_mem_pair(&a, &b), SIMSYNC_OK);
        conn_close(b);
        conn_close(a);
    }
    /* Failed connects must not leak either. */
    listener_close(l);
    for (i = 0; i < 20; i++) {
        a = NULL;
        assert_int_equal(transport_tcp.connect(addr, &a), SIMSYNC_ECONNECT);
        assert_null(a);
    }
    after = count_open_fds();
    assert_int_equal(after, before - 1); /* minus the listener */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transport_find_knows_tcp_and_mem),
        cmocka_unit_test(wrappers_reject_null_and_close_accepts_it),
        cmocka_unit_test(mem_pair_round_trip_both_ways),
        cmocka_unit_test(mem_cannot_dial_listen_or_accept),
        cmocka_unit_test(nonblocking_mem_recv_returns_eagain),
        cmocka_unit_test(tcp_echo_through_thread),
        cmocka_unit_test(tcp_ipv6_loopback_reports_brackets),
        cmocka_unit_test(listener_addr_rejects_small_buffer),
        cmocka_unit_test(tcp_connect_to_closed_port_is_econnect),
        cmocka_unit_test(tcp_malformed_addresses_are_einval),
        cmocka_unit_test(nonblocking_listener_accept_returns_eagain),
        cmocka_unit_test(peer_close_gives_eclosed),
        cmocka_unit_test(cut_on_sender_delivers_n_then_both_closed),
        cmocka_unit_test(cut_on_receiver_stops_at_n_peer_sees_close),
        cmocka_unit_test(cut_counts_both_ways_and_zero_cuts_at_once),
        cmocka_unit_test(cut_after_over_tcp_peer_sees_eclosed),
        cmocka_unit_test(max_chunk_one_still_delivers_everything),
        cmocka_unit_test(recv_without_data_times_out),
        cmocka_unit_test(send_to_unread_peer_times_out),
        cmocka_unit_test(send_to_closed_peer_fails_without_sigpipe),
        cmocka_unit_test(connect_close_cycles_leak_no_fds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
