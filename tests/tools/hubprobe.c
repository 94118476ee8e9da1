/* hubprobe.c -- a misbehaving client or server, for the abuse tests.
 *
 * It speaks just enough of the protocol to try what a real node never
 * does, and reports what the other side did, so a test can check that the
 * attempt was refused. It links libsimsync and uses its internal headers.
 *
 * Usage:
 *   hubprobe handshake ADDR [--prologue-version N]
 *       Connect to ADDR with a fresh key and run the Noise XX handshake as
 *       the initiator, with the protocol version byte N in the prologue
 *       (default: this build's version).
 *   hubprobe hello ADDR --subscriber ID --terminal ID [--proto N] [--op OP]
 *       Handshake with a fresh key (right version), then send a Hello with
 *       protocol version N (default: this build's) for operation OP (sync,
 *       backup, generations, control; default sync).
 *   hubprobe impostor --listen HOST:PORT [--port-file FILE]
 *       Play a hub with its own fresh key: accept one connection, run the
 *       handshake as the responder and, if a Hello arrives, answer it and
 *       send a BackupRequest.
 *   hubprobe cycles ADDR --count N [--every K]
 *       N connections, one after the other, each closed at once after:
 *       connection i with i % K == 0, a whole handshake; == 1, the first
 *       handshake message only; == 2, a handshake and a Hello (subscriber
 *       "00000", refused after the hub looked it up); else nothing. K
 *       defaults to 10; "result: N cycles, H handshakes, P partial,
 *       E hellos" on success (exit 0), exit 1 if any cycle failed.
 *
 * Each mode prints one line "result: WHAT" on stdout and exits 0 when the
 * other side went along with the attempt (handshake completed, HelloReply
 * received, Hello received by the impostor), 3 when it refused or gave up
 * (a failed handshake, an Error frame, a closed link), 2 on bad arguments
 * and 1 when something local failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "crypt.h"
#include "frame.h"
#include "node.h"
#include "noise.h"
#include "simsync.pb-c.h"
#include "transport.h"

#define EXIT_WENT_ALONG 0
#define EXIT_LOCAL 1
#define EXIT_USAGE 2
#define EXIT_REFUSED 3

static int
usage(void)
{
    fprintf(stderr,
            "usage: hubprobe handshake ADDR [--prologue-version N]\n"
            "       hubprobe hello ADDR --subscriber ID --terminal ID "
            "[--proto N] [--op sync|backup|generations|control]\n"
            "       hubprobe impostor --listen HOST:PORT [--port-file FILE]\n"
            "       hubprobe cycles ADDR --count N [--every K]\n");
    return EXIT_USAGE;
}

/* The value after option `name` in argv, or NULL. */
static const char *
opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static int
fresh_identity(struct chan_identity *id)
{
    return crypt_init() == SIMSYNC_OK &&
                   crypt_sign_keypair(id->sign_pk, id->sign_sk) == SIMSYNC_OK
               ? 0
               : -1;
}

/* Refused (3) or went along (0), with the reason printed. */
static int
report(int rc, const char *what)
{
    printf("result: %s: %s\n", what, simsync_strerror(rc));
    return rc == SIMSYNC_OK ? EXIT_WENT_ALONG : EXIT_REFUSED;
}

/* Send one handshake message in a frame. */
static int
hs_send(struct conn *c, struct noise_hs *hs)
{
    uint8_t msg[FRAME_HEADER_BYTES + 256];
    size_t len;
    int rc;

    rc = noise_hs_write_message(hs, NULL, 0, msg + FRAME_HEADER_BYTES,
                                sizeof(msg) - FRAME_HEADER_BYTES, &len);
    if (rc == SIMSYNC_OK)
        rc = frame_header_encode(msg, len);
    if (rc == SIMSYNC_OK)
        rc = conn_send_all(c, msg, FRAME_HEADER_BYTES + len);
    return rc;
}

/* The XX handshake's first two messages with prologue "simsync/1" + ver:
 * message 2 only opens when both sides used the same prologue. */
static int
mode_handshake(int argc, char **argv)
{
    uint8_t prologue[sizeof(CHAN_PROLOGUE)], hdr[FRAME_HEADER_BYTES];
    uint8_t msg[NOISE_MAX_MSG], payload[NOISE_MAX_MSG], xsk[32];
    const char *v = opt(argc, argv, "--prologue-version");
    struct chan_identity id;
    struct noise_hs *hs = NULL;
    struct conn *c = NULL;
    size_t n, plen;
    int rc;

    if (argc < 3 || fresh_identity(&id) != 0)
        return argc < 3 ? usage() : EXIT_LOCAL;
    memcpy(prologue, CHAN_PROLOGUE, sizeof(CHAN_PROLOGUE) - 1);
    prologue[sizeof(prologue) - 1] =
        (uint8_t)(v ? strtoul(v, NULL, 10) : SIMSYNC_PROTO_VERSION);
    if (crypt_sign_sk_to_x25519(xsk, id.sign_sk) != SIMSYNC_OK ||
        noise_hs_new(&hs, 1, prologue, sizeof(prologue), xsk) != SIMSYNC_OK)
        return EXIT_LOCAL;
    rc = transport_tcp.connect(argv[2], &c);
    if (rc != SIMSYNC_OK) {
        noise_hs_free(hs);
        fprintf(stderr, "hubprobe: cannot connect to %s\n", argv[2]);
        return EXIT_LOCAL;
    }
    conn_set_timeout(c, 10000);
    rc = hs_send(c, hs);
    if (rc == SIMSYNC_OK)
        rc = conn_recv_all(c, hdr, sizeof(hdr));
    if (rc == SIMSYNC_OK)
        rc = frame_header_check(hdr, NOISE_MAX_MSG, &n);
    if (rc == SIMSYNC_OK)
        rc = conn_recv_all(c, msg, n);
    if (rc == SIMSYNC_OK)
        rc = noise_hs_read_message(hs, msg, n, payload, sizeof(payload), &plen);
    if (rc == SIMSYNC_OK)
        rc = hs_send(c, hs);
    noise_hs_free(hs);
    conn_close(c);
    return report(rc, "handshake");
}

static int
op_of(const char *name, int *op)
{
    static const struct {
        const char *name;
        int op;
    } ops[] = {{"sync", SIMSYNC__OP__OP_SYNC},
               {"backup", SIMSYNC__OP__OP_BACKUP},
               {"generations", SIMSYNC__OP__OP_GENERATIONS},
               {"control", SIMSYNC__OP__OP_CONTROL}};

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(name, ops[i].name) == 0) {
            *op = ops[i].op;
            return 0;
        }
    return -1;
}

static int
mode_hello(int argc, char **argv)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__Hello hello = SIMSYNC__HELLO__INIT;
    const char *sub = opt(argc, argv, "--subscriber");
    const char *tid = opt(argc, argv, "--terminal");
    const char *proto = opt(argc, argv, "--proto");
    const char *opname = opt(argc, argv, "--op");
    struct chan_identity id;
    struct conn *c = NULL;
    struct chan *ch = NULL;
    int rc, op = SIMSYNC__OP__OP_SYNC;

    if (argc < 3 || sub == NULL || tid == NULL ||
        (opname != NULL && op_of(opname, &op) != 0))
        return usage();
    if (fresh_identity(&id) != 0)
        return EXIT_LOCAL;
    rc = transport_tcp.connect(argv[2], &c);
    if (rc != SIMSYNC_OK) {
        fprintf(stderr, "hubprobe: cannot connect to %s\n", argv[2]);
        return EXIT_LOCAL;
    }
    conn_set_timeout(c, 10000);
    rc = chan_handshake(c, 1, &id, NULL, &ch);
    if (rc != SIMSYNC_OK) {
        conn_close(c);
        return report(rc, "handshake");
    }
    hello.proto =
        proto ? (uint32_t)strtoul(proto, NULL, 10) : SIMSYNC_PROTO_VERSION;
    hello.role = SIMSYNC__ROLE__ROLE_TERMINAL;
    hello.subscriber = (char *)sub;
    hello.terminal_id = (char *)tid;
    hello.op = op;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO;
    env.hello = &hello;
    rc = node_send_env(ch, &env);
    if (rc == SIMSYNC_OK)
        rc = node_recv_env(ch, (void **)&in);
    if (rc == SIMSYNC_OK && in->msg_case != SIMSYNC__ENVELOPE__MSG_HELLO_REPLY)
        rc = SIMSYNC_EPROTO;
    if (in != NULL)
        simsync__envelope__free_unpacked(in, NULL);
    chan_free(ch);
    conn_close(c);
    return report(rc, "hello");
}

static int
mode_impostor(int argc, char **argv)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__HelloReply rep = SIMSYNC__HELLO_REPLY__INIT;
    Simsync__BackupRequest req = SIMSYNC__BACKUP_REQUEST__INIT;
    const char *addr = opt(argc, argv, "--listen");
    const char *port_file = opt(argc, argv, "--port-file");
    struct chan_identity id;
    struct listener *l = NULL;
    struct conn *c = NULL;
    struct chan *ch = NULL;
    char bound[128];
    int rc;

    if (addr == NULL)
        return usage();
    if (fresh_identity(&id) != 0 ||
        transport_tcp.listen(addr, &l) != SIMSYNC_OK ||
        listener_addr(l, bound, sizeof(bound)) != SIMSYNC_OK) {
        listener_close(l);
        fprintf(stderr, "hubprobe: cannot listen on %s\n", addr);
        return EXIT_LOCAL;
    }
    if (port_file != NULL) {
        char tmp[4096];
        FILE *f;
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%s\n", bound) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            listener_close(l);
            return EXIT_LOCAL;
        }
    }
    fprintf(stderr, "hubprobe: impostor listening on %s\n", bound);
    rc = listener_accept(l, &c);
    listener_close(l);
    if (rc != SIMSYNC_OK)
        return EXIT_LOCAL;
    conn_set_timeout(c, 30000);
    rc = chan_handshake(c, 0, &id, NULL, &ch);
    if (rc == SIMSYNC_OK)
        rc = node_recv_kind(ch, SIMSYNC__ENVELOPE__MSG_HELLO, (void **)&in);
    if (rc == SIMSYNC_OK) {
        /* The peer took us for its hub: answer and ask for a backup. */
        printf("result: got a hello from terminal %s\n",
               in->hello->terminal_id);
        rep.proto = SIMSYNC_PROTO_VERSION;
        env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO_REPLY;
        env.hello_reply = &rep;
        if (node_send_env(ch, &env) == SIMSYNC_OK) {
            req.job = 1;
            req.attempt = 1;
            simsync__envelope__init(&env);
            env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_REQUEST;
            env.backup_request = &req;
            (void)node_send_env(ch, &env);
        }
        simsync__envelope__free_unpacked(in, NULL);
        chan_free(ch);
        conn_close(c);
        return EXIT_WENT_ALONG;
    }
    chan_free(ch);
    conn_close(c);
    return report(rc, "impostor");
}

/* One cycle of kind k (see the usage). Returns SIMSYNC_OK when the
 * connection went as planned. */
static int
cycle(const char *addr, const struct chan_identity *id, int k)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT, *in = NULL;
    Simsync__Hello hello = SIMSYNC__HELLO__INIT;
    uint8_t prologue[sizeof(CHAN_PROLOGUE)], xsk[32];
    struct noise_hs *hs = NULL;
    struct conn *c = NULL;
    struct chan *ch = NULL;
    int rc = transport_tcp.connect(addr, &c);

    if (rc != SIMSYNC_OK)
        return rc;
    conn_set_timeout(c, 10000);
    switch (k) {
    case 0:
        rc = chan_handshake(c, 1, id, NULL, &ch);
        break;
    case 1:
        memcpy(prologue, CHAN_PROLOGUE, sizeof(CHAN_PROLOGUE) - 1);
        prologue[sizeof(prologue) - 1] = (uint8_t)SIMSYNC_PROTO_VERSION;
        rc = crypt_sign_sk_to_x25519(xsk, id->sign_sk);
        if (rc == SIMSYNC_OK)
            rc = noise_hs_new(&hs, 1, prologue, sizeof(prologue), xsk);
        if (rc == SIMSYNC_OK)
            rc = hs_send(c, hs);
        noise_hs_free(hs);
        break;
    case 2:
        rc = chan_handshake(c, 1, id, NULL, &ch);
        hello.proto = SIMSYNC_PROTO_VERSION;
        hello.role = SIMSYNC__ROLE__ROLE_TERMINAL;
        hello.subscriber = "00000";
        hello.terminal_id = "nobody";
        env.msg_case = SIMSYNC__ENVELOPE__MSG_HELLO;
        env.hello = &hello;
        if (rc == SIMSYNC_OK)
            rc = node_send_env(ch, &env);
        if (rc == SIMSYNC_OK)
            rc = node_recv_env(ch, (void **)&in);
        /* The refusal is what this cycle expects. */
        if (rc == SIMSYNC_EREFUSED)
            rc = SIMSYNC_OK;
        else if (rc == SIMSYNC_OK)
            rc = SIMSYNC_EPROTO;
        if (in != NULL)
            simsync__envelope__free_unpacked(in, NULL);
        break;
    default:
        break;
    }
    chan_free(ch);
    conn_close(c);
    return rc;
}

static int
mode_cycles(int argc, char **argv)
{
    const char *count = opt(argc, argv, "--count");
    const char *every = opt(argc, argv, "--every");
    long n = count ? strtol(count, NULL, 10) : 0;
    long k = every ? strtol(every, NULL, 10) : 10;
    long done[4] = {0}, failed = 0;
    struct chan_identity id;

    if (argc < 3 || n <= 0 || k < 3)
        return usage();
    if (fresh_identity(&id) != 0)
        return EXIT_LOCAL;
    for (long i = 0; i < n; i++) {
        int kind = (int)(i % k) < 3 ? (int)(i % k) : 3;
        int rc = cycle(argv[2], &id, kind);
        if (rc == SIMSYNC_OK) {
            done[kind]++;
        } else if (failed++ < 5) {
            fprintf(stderr, "hubprobe: cycle %ld (kind %d): %s\n", i, kind,
                    simsync_strerror(rc));
        }
    }
    printf("result: %ld cycles, %ld handshakes, %ld partial, %ld hellos, "
           "%ld failed\n",
           n, done[0] + done[2], done[1], done[2], failed);
    return failed == 0 ? EXIT_WENT_ALONG : EXIT_LOCAL;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "handshake") == 0)
        return mode_handshake(argc, argv);
    if (strcmp(argv[1], "hello") == 0)
        return mode_hello(argc, argv);
    if (strcmp(argv[1], "impostor") == 0)
        return mode_impostor(argc, argv);
    if (strcmp(argv[1], "cycles") == 0)
        return mode_cycles(argc, argv);
    return usage();
}
