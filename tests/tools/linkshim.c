/* linkshim.c -- a TCP proxy that damages the link on purpose, for tests.
 *
 * Integration tests put it between a terminal and the hub to throttle, cut,
 * fragment and delay their traffic. It is a standalone program: C11 and
 * POSIX sockets only, no use of the simsync library.
 *
 * Usage:
 *   linkshim --listen HOST:PORT --to HOST:PORT [--port-file FILE]
 *            [--rate BYTES_PER_SEC] [--cut-after BYTES]
 *            [--cut-dir up|down|both] [--cut-all] [--cut-step BYTES] [--fragment N]
 *            [--delay-ms MS] [--once] [--log FILE] [--record PREFIX]
 *
 *   --listen HOST:PORT    accept clients here; port 0 picks a free port.
 *   --to HOST:PORT        every accepted client gets its own connection to
 *                         this server. "up" is client to server, "down" is
 *                         server to client.
 *   --port-file FILE      once listening, write the bound port (decimal and
 *                         a newline) to FILE, atomically (FILE.PID.tmp, then
 *                         rename), so a script can wait for FILE to appear.
 *   --rate BYTES_PER_SEC  pace each direction of each connection to about
 *                         this many bytes per second (token bucket refilled
 *                         continuously, at most 50 ms of burst).
 *   --cut-after BYTES     once exactly BYTES bytes have been delivered, reset
 *                         both sockets of the connection (SO_LINGER 0: RST).
 *                         The last counted byte is delivered, nothing after
 *                         it: the reset waits (at most 2 s) until the peer
 *                         has acknowledged that byte.
 *   --cut-dir up|down|both  bytes that count for --cut-after; "both" (the
 *                         default) counts the sum of the two directions.
 *   --cut-all             cut every connection; otherwise only the first.
 *   --cut-step BYTES      with --cut-all: connection N (1, 2, ...) is cut
 *                         after --cut-after + (N - 1) * BYTES bytes, so one
 *                         shim serves a sweep over offsets.
 *   --fragment N          write at most N bytes per write (1: byte by byte).
 *   --delay-ms MS         hold each piece of data for MS milliseconds after
 *                         it was read before it may be sent (latency). The
 *                         bytes held count against the 64 KiB ring, so a
 *                         direction carries at most about 64 KiB per MS, as
 *                         a real link with that window would.
 *   --once                stop accepting after the first client and exit
 *                         when that connection ends.
 *   --log FILE            append "conn N up BYTES down BYTES cut yes|no" to
 *                         FILE when connection N ends (BYTES: delivered).
 *   --record PREFIX       write the bytes relayed on connection N to
 *                         PREFIX.N.up and PREFIX.N.down (appended as they
 *                         are delivered), e.g. to replay a session later.
 *   -h, --help            print the usage and exit 0.
 *
 *   "linkshim: listening on HOST:PORT" goes to stderr when ready. Exit
 *   status: 0 after --once or on SIGTERM/SIGINT, 1 when something fails at
 *   run time (bind, resolve, poll), 2 on bad arguments.
 *
 * Design: one thread and one poll() loop that waits, runs the ready work and
 * expires timers. Each connection owns two fixed ring buffers of 64 KiB, one
 * per direction; a direction stops reading while its ring is full, so memory
 * stays bounded whatever the peers do. The bytes of one read wait in the
 * ring as a "chunk" stamped with the time it may leave (--delay-ms); a token
 * bucket per direction paces the writes (--rate). A half-close is passed on:
 * when one side sends FIN, the other side gets shutdown(SHUT_WR) once the
 * buffered bytes are out. A read or write error on either side resets both.
 * At most 512 connections are relayed at once; later clients wait in the
 * listen backlog until one ends.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS 1000000LL
#define NS_PER_SEC 1000000000LL

#define RING_SIZE (64 * 1024) /* bytes buffered per direction */
#define CHUNK_MAX 128         /* chunks (reads) queued per direction */
#define CONN_MAX 512          /* connections relayed at once */
#define HOST_MAX 256          /* longest host name accepted */
#define PORT_MAX 8            /* "65535" and its terminator, with room */
#define CUT_DRAIN_NS (2 * NS_PER_SEC)     /* longest wait for the last ACK */
#define CUT_SETTLE_NS (200 * NS_PER_MS)   /* wait where the ACK is unknown */
#define ACCEPT_PAUSE_NS (100 * NS_PER_MS) /* after accept runs out of fds */
#define DELAY_MAX_MS 3600000ULL

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Direction indexes. A direction reads from fd[d] and writes to fd[1 - d],
 * so UP == CLIENT and DOWN == SERVER. */
enum { UP = 0, DOWN = 1 };
enum { CLIENT = 0, SERVER = 1 };

enum cut_dir { CUT_BOTH, CUT_UP, CUT_DOWN };

struct options {
    char listen_host[HOST_MAX]; /* --listen, host part */
    char listen_port[PORT_MAX]; /* --listen, port part */
    char to_host[HOST_MAX];     /* --to, host part */
    char to_port[PORT_MAX];     /* --to, port part */
    const char *port_file;      /* --port-file, or NULL; borrowed from argv */
    const char *log_file;       /* --log, or NULL; borrowed from argv */
    const char *record;         /* --record prefix, or NULL; borrowed */
    uint64_t rate;              /* --rate in bytes/s; 0: unlimited */
    bool cut;                   /* --cut-after was given */
    uint64_t cut_after;         /* --cut-after */
    enum cut_dir cut_dir;       /* --cut-dir */
    bool cut_all;               /* --cut-all */
    uint64_t cut_step;          /* --cut-step */
    size_t fragment;            /* --fragment; 0: no limit */
    int64_t delay_ns;           /* --delay-ms, in ns */
    bool once;                  /* --once */
};

/* Bytes of one read (or of several close together), and when they may go. */
struct chunk {
    size_t len;  /* bytes of the ring this chunk covers, from the head */
    int64_t due; /* monotonic ns before which they are held */
};

/* One direction of one connection. */
struct dir {
    unsigned char ring[RING_SIZE]; /* bytes read, not yet written */
    size_t head;                   /* ring offset of the oldest byte */
    size_t used;                   /* bytes in the ring */
    struct chunk chunk[CHUNK_MAX]; /* circular queue covering `used` */
    size_t chunk_head;             /* index of the oldest chunk */
    size_t chunk_count;            /* chunks queued */
    double tokens;                 /* --rate budget, in bytes */
    int64_t refilled;              /* when `tokens` was last topped up */
    uint64_t relayed;              /* bytes written to the destination */
    bool eof;                      /* the source sent FIN */
    bool shut;                     /* FIN passed on to the destination */
};

enum conn_state {
    CONN_CONNECTING, /* client accepted, server connect in progress */
    CONN_OPEN,       /* relaying */
    CONN_CUTTING,    /* cut reached: waiting for the last ACK, then RST */
    CONN_DONE        /* sockets closed; to be logged and freed */
};

/* One client and its server connection. Owned by the shim's table. */
struct conn {
    unsigned long id;          /* 1 for the first client accepted */
    int fd[2];                 /* CLIENT, SERVER sockets; -1: none */
    int pidx[2];               /* their slots in the poll set; -1: none */
    short revents[2];          /* poll results of the last round */
    enum conn_state state;     /* see enum conn_state */
    const struct addrinfo *ai; /* server address being tried; borrowed
                                * from struct shim.to */
    bool cut_armed;            /* --cut-after applies to this one */
    uint64_t cut_at;           /* its cut offset (--cut-after, --cut-step) */
    bool was_cut;              /* it ended by the cut */
    int cut_fd;                /* fd index that got the last byte; -1 */
    int64_t cut_deadline;      /* reset at the latest then */
    int64_t cut_settle;        /* reset then where ACKs are unknown */
    struct dir dir[2];         /* UP, DOWN */
};

struct shim {
    struct options opt;          /* parsed command line */
    struct addrinfo *to;         /* resolved --to; owned */
    int listen_fd;               /* -1 once closed */
    int sig_pipe[2];             /* self-pipe written by the signal handler */
    FILE *log;                   /* --log stream, or NULL; owned */
    struct conn *conn[CONN_MAX]; /* live connections; owned */
    size_t nconn;                /* entries used in `conn` */
    unsigned long next_id;       /* id of the last connection accepted */
    int64_t accept_resume;       /* accept paused until then */
    bool stop;                   /* leave the loop */
};

/* The signal handler only knows this descriptor: the write end of the
 * self-pipe. It is the one global, as a handler can reach nothing else. */
static volatile sig_atomic_t sig_write_fd = -1;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void vsay(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/* Print "linkshim: MESSAGE" on stderr. Nothing sensible remains to be done
 * when stderr itself fails, so those results are dropped on purpose. */
static void
vsay(const char *fmt, va_list ap)
{
    (void)fputs("linkshim: ", stderr);
    (void)vfprintf(stderr, fmt, ap);
    (void)fputc('\n', stderr);
}

static void
say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

static int64_t
clock_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        say("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
        exit(EXIT_RUNTIME);
    }
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void
lower(int64_t *wake, int64_t when)
{
    if (when < *wake)
        *wake = when;
}

static size_t
min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- command line ---------------------------------------------------- */

static const char usage_text[] =
    "Usage: linkshim --listen HOST:PORT --to HOST:PORT [--port-file FILE]\n"
    "                [--rate BYTES_PER_SEC] [--cut-after BYTES] [--cut-step BYTES]\n"
    "                [--cut-dir up|down|both] [--cut-all] [--fragment N]\n"
    "                [--delay-ms MS] [--once] [--log FILE] [--record PREFIX]\n"
    "\n"
    "A TCP proxy that damages the link on purpose, for tests. Each client\n"
    "accepted on --listen gets its own connection to --to; \"up\" is client\n"
    "to server, \"down\" is server to client.\n"
    "\n"
    "  --listen HOST:PORT    accept clients here; port 0 picks a free port\n"
    "  --to HOST:PORT        the real server\n"
    "  --port-file FILE      write the bound port (and a newline) to FILE,\n"
    "                        atomically, once listening\n"
    "  --rate BYTES_PER_SEC  pace each direction to about this rate\n"
    "  --cut-after BYTES     after exactly BYTES delivered bytes, reset both\n"
    "                        sockets (RST); that last byte is delivered,\n"
    "                        nothing after it\n"
    "  --cut-dir up|down|both  bytes that count for --cut-after (default\n"
    "                        both: the sum of the two directions)\n"
    "  --cut-all             cut every connection, not only the first\n"
    "  --cut-step BYTES      with --cut-all: connection N is cut BYTES later\n"
    "                        than connection N-1\n"
    "  --fragment N          write at most N bytes per write\n"
    "  --delay-ms MS         hold each piece of data MS ms before sending it\n"
    "  --once                serve one client; exit when it is done\n"
    "  --log FILE            append \"conn N up BYTES down BYTES cut yes|no\"\n"
    "                        to FILE as each connection ends\n"
    "  --record PREFIX       write connection N's relayed bytes to\n"
    "                        PREFIX.N.up and PREFIX.N.down\n"
    "  -h, --help            show this help\n"
    "\n"
    "Prints \"linkshim: listening on HOST:PORT\" on stderr when ready.\n"
    "Exit status: 0 after --once or SIGTERM/SIGINT, 1 on a run-time failure,\n"
    "2 on bad arguments.\n";

/* Report a bad command line. Returns -1. */
static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    say("try 'linkshim --help'");
    return -1;
}

/* A decimal number in [0, max] in *out, from all of `text`. */
static bool
to_number(const char *text, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* Parse the value of option `name` as a decimal number in [0, max]. */
static int
parse_number(const char *name, const char *text, uint64_t max, uint64_t *out)
{
    if (to_number(text, max, out))
        return 0;
    return usage_error("%s: expected a whole number from 0 to %llu, got '%s'",
                       name, (unsigned long long)max, text);
}

/* Split "HOST:PORT" or "[HOST]:PORT" into host and port strings. */
static int
parse_hostport(const char *name, const char *text, char *host, char *port)
{
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t hlen;
    uint64_t num;

    if (colon == NULL)
        return usage_error("%s: expected HOST:PORT, got '%s'", name, text);
    hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= HOST_MAX)
        return usage_error("%s: bad host in '%s'", name, text);
    if (!to_number(colon + 1, 65535, &num))
        return usage_error("%s: bad port in '%s'", name, text);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (snprintf(port, PORT_MAX, "%u", (unsigned)num) < 0)
        return -1;
    return 0;
}

enum opt_id {
    OPT_LISTEN,
    OPT_TO,
    OPT_PORT_FILE,
    OPT_RATE,
    OPT_CUT_AFTER,
    OPT_CUT_DIR,
    OPT_CUT_ALL,
    OPT_CUT_STEP,
    OPT_FRAGMENT,
    OPT_DELAY,
    OPT_ONCE,
    OPT_LOG,
    OPT_RECORD,
    OPT_HELP
};

struct opt_spec {
    const char *name; /* as typed, dashes included */
    enum opt_id id;
    bool has_value; /* takes "--name VALUE" or "--name=VALUE" */
};

static const struct opt_spec opt_specs[] = {
    {"--listen", OPT_LISTEN, true},
    {"--to", OPT_TO, true},
    {"--port-file", OPT_PORT_FILE, true},
    {"--rate", OPT_RATE, true},
    {"--cut-after", OPT_CUT_AFTER, true},
    {"--cut-dir", OPT_CUT_DIR, true},
    {"--cut-all", OPT_CUT_ALL, false},
    {"--cut-step", OPT_CUT_STEP, true},
    {"--fragment", OPT_FRAGMENT, true},
    {"--delay-ms", OPT_DELAY, true},
    {"--once", OPT_ONCE, false},
    {"--log", OPT_LOG, true},
    {"--record", OPT_RECORD, true},
    {"--help", OPT_HELP, false},
    {"-h", OPT_HELP, false},
};

/* Apply one option. Returns 0, -1 on a bad value, 1 for --help. */
static int
apply_option(struct options *o, const struct opt_spec *spec, const char *val,
             bool *cut_extra)
{
    uint64_t num;

    switch (spec->id) {
    case OPT_LISTEN:
        return parse_hostport(spec->name, val, o->listen_host, o->listen_port);
    case OPT_TO:
        if (parse_hostport(spec->name, val, o->to_host, o->to_port) != 0)
            return -1;
        if (strcmp(o->to_port, "0") == 0)
            return usage_error("%s: port 0 cannot be connected to: '%s'",
                               spec->name, val);
        return 0;
    case OPT_PORT_FILE:
        o->port_file = val;
        return 0;
    case OPT_LOG:
        o->log_file = val;
        return 0;
    case OPT_RECORD:
        o->record = val;
        return 0;
    case OPT_RATE:
        if (parse_number(spec->name, val, UINT64_MAX / 2, &num) != 0)
            return -1;
        if (num == 0)
            return usage_error("%s: must be at least 1, got '%s'", spec->name,
                               val);
        o->rate = num;
        return 0;
    case OPT_CUT_AFTER:
        if (parse_number(spec->name, val, UINT64_MAX / 2, &num) != 0)
            return -1;
        o->cut = true;
        o->cut_after = num;
        return 0;
    case OPT_CUT_DIR:
        if (strcmp(val, "up") == 0)
            o->cut_dir = CUT_UP;
        else if (strcmp(val, "down") == 0)
            o->cut_dir = CUT_DOWN;
        else if (strcmp(val, "both") == 0)
            o->cut_dir = CUT_BOTH;
        else
            return usage_error("%s: expected up, down or both, got '%s'",
                               spec->name, val);
        *cut_extra = true;
        return 0;
    case OPT_CUT_ALL:
        o->cut_all = true;
        *cut_extra = true;
        return 0;
    case OPT_CUT_STEP:
        if (parse_number(spec->name, val, 1u << 30, &num) != 0)
            return -1;
        o->cut_step = num;
        *cut_extra = true;
        return 0;
    case OPT_FRAGMENT:
        if (parse_number(spec->name, val, RING_SIZE, &num) != 0)
            return -1;
        if (num == 0)
            return usage_error("%s: must be at least 1, got '%s'", spec->name,
                               val);
        o->fragment = (size_t)num;
        return 0;
    case OPT_DELAY:
        if (parse_number(spec->name, val, DELAY_MAX_MS, &num) != 0)
            return -1;
        o->delay_ns = (int64_t)num * NS_PER_MS;
        return 0;
    case OPT_ONCE:
        o->once = true;
        return 0;
    case OPT_HELP:
        return 1;
    }
    return -1;
}

/* Fill `o` from argv. Returns 0, 1 for --help, -1 on bad arguments (already
 * reported). */
static int
parse_args(int argc, char **argv, struct options *o)
{
    bool cut_extra = false;
    int i;

    memset(o, 0, sizeof(*o));
    o->cut_dir = CUT_BOTH;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const struct opt_spec *spec = NULL;
        const char *val = NULL;
        size_t k;
        int rc;

        for (k = 0; k < sizeof(opt_specs) / sizeof(opt_specs[0]); k++) {
            if (strlen(opt_specs[k].name) == nlen &&
                strncmp(opt_specs[k].name, arg, nlen) == 0) {
                spec = &opt_specs[k];
                break;
            }
        }
        if (spec == NULL)
            return usage_error("unknown argument '%s'", arg);
        if (spec->has_value) {
            if (eq != NULL)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_error("%s needs a value", spec->name);
        } else if (eq != NULL) {
            return usage_error("%s takes no value, got '%s'", spec->name,
                               eq + 1);
        }
        rc = apply_option(o, spec, val, &cut_extra);
        if (rc != 0)
            return rc;
    }
    if (o->listen_host[0] == '\0')
        return usage_error("--listen HOST:PORT is required");
    if (o->to_host[0] == '\0')
        return usage_error("--to HOST:PORT is required");
    if (cut_extra && !o->cut)
        return usage_error("--cut-dir, --cut-all and --cut-step need "
                           "--cut-after");
    return 0;
}

/* ---- sockets --------------------------------------------------------- */

static int
set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* No Nagle: a proxy must not add latency of its own, and --fragment wants
 * each write to leave as it is. A failure only costs timing, so warn. */
static void
set_nodelay(int fd, unsigned long id)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        say("conn %lu: TCP_NODELAY: %s", id, strerror(errno));
}

static void
close_fd(int fd, unsigned long id)
{
    if (fd >= 0 && close(fd) != 0)
        say("conn %lu: close: %s", id, strerror(errno));
}

/* Close `fd` with SO_LINGER 0, which makes the kernel send RST. */
static void
reset_fd(int fd, unsigned long id)
{
    struct linger lg;

    if (fd < 0)
        return;
    lg.l_onoff = 1;
    lg.l_linger = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        say("conn %lu: SO_LINGER: %s", id, strerror(errno));
    close_fd(fd, id);
}

/* Bytes written to `fd` that its peer has not acknowledged yet, in *out.
 * Returns 0, or -1 where the system cannot tell. */
static int
unacked_bytes(int fd, int *out)
{
#if defined(__linux__) && defined(TIOCOUTQ)
    /* On a TCP socket Linux answers TIOCOUTQ (SIOCOUTQ) with the bytes
     * between the oldest unacknowledged one and the last written. */
    if (ioctl(fd, TIOCOUTQ, out) == 0)
        return 0;
    return -1;
#else
    (void)fd;
    *out = 0;
    return -1;
#endif
}

/* ---- one direction --------------------------------------------------- */

static bool
dir_can_read(const struct dir *dr)
{
    return !dr->eof && dr->used < RING_SIZE && dr->chunk_count < CHUNK_MAX;
}

/* Account `n` new bytes at the ring's tail, held until `due`. Reads close
 * in time share a chunk so that a stream of small reads cannot fill the
 * queue: all of them with no delay, else those within 1/100 of the delay
 * (at least 1 ms); the chunk then leaves at the later time, never early. */
static void
dir_queue(struct dir *dr, size_t n, int64_t due, int64_t delay)
{
    int64_t window = delay / 100 > NS_PER_MS ? delay / 100 : NS_PER_MS;

    dr->used += n;
    if (dr->chunk_count > 0) {
        struct chunk *tail =
            &dr->chunk[(dr->chunk_head + dr->chunk_count - 1) % CHUNK_MAX];
        if (delay == 0 || due - tail->due < window) {
            tail->len += n;
            tail->due = due;
            return;
        }
    }
    dr->chunk[(dr->chunk_head + dr->chunk_count) % CHUNK_MAX].len = n;
    dr->chunk[(dr->chunk_head + dr->chunk_count) % CHUNK_MAX].due = due;
    dr->chunk_count++;
}

/* Drop `n` written bytes from the ring's head (n <= the head chunk). */
static void
dir_consume(struct dir *dr, size_t n)
{
    struct chunk *ch = &dr->chunk[dr->chunk_head];

    dr->head = (dr->head + n) % RING_SIZE;
    dr->used -= n;
    ch->len -= n;
    if (ch->len == 0) {
        dr->chunk_head = (dr->chunk_head + 1) % CHUNK_MAX;
        dr->chunk_count--;
    }
}

/* The token bucket: smallest write worth waking for (5 ms of rate, at least
 * one byte) and the most it may hold (50 ms of rate, at least one write). */
static double
bucket_quantum(const struct options *o)
{
    double q = (double)o->rate / 200.0;

    return q < 1.0 ? 1.0 : q;
}

static double
bucket_burst(const struct options *o)
{
    double b = (double)o->rate / 20.0;
    double q = bucket_quantum(o);

    return b < q ? q : b;
}

static void
bucket_refill(const struct options *o, struct dir *dr, int64_t now)
{
    double burst = bucket_burst(o);

    if (now > dr->refilled) {
        dr->tokens +=
            (double)(now - dr->refilled) * (double)o->rate / (double)NS_PER_SEC;
        dr->refilled = now;
    }
    if (dr->tokens > burst)
        dr->tokens = burst;
}

/* Bytes still allowed in direction `d` before the cut; SIZE_MAX: no cut. */
static size_t
cut_room(const struct shim *s, const struct conn *c, int d)
{
    const struct options *o = &s->opt;
    uint64_t counted;

    if (!c->cut_armed)
        return SIZE_MAX;
    if (o->cut_dir == CUT_UP && d != UP)
        return SIZE_MAX;
    if (o->cut_dir == CUT_DOWN && d != DOWN)
        return SIZE_MAX;
    counted = o->cut_dir == CUT_BOTH ? c->dir[UP].relayed + c->dir[DOWN].relayed
                                     : c->dir[d].relayed;
    if (counted >= c->cut_at)
        return 0;
    if (c->cut_at - counted > SIZE_MAX)
        return SIZE_MAX;
    return (size_t)(c->cut_at - counted);
}

static bool
cut_reached(const struct shim *s, const struct conn *c)
{
    return c->cut_armed &&
           (cut_room(s, c, UP) == 0 || cut_room(s, c, DOWN) == 0);
}

static void
cut_begin(struct conn *c, int fd_index, int64_t now)
{
    c->state = CONN_CUTTING;
    c->cut_fd = fd_index;
    c->cut_deadline = now + CUT_DRAIN_NS;
    c->cut_settle = now + CUT_SETTLE_NS;
}

/* How many bytes direction `d` may write now: 0 when none. When only time
 * stands in the way (a held chunk, an empty bucket), *wake is lowered to
 * the moment that changes. Tops up the bucket as a side effect. */
static size_t
dir_sendable(const struct shim *s, struct conn *c, int d, int64_t now,
             int64_t *wake)
{
    const struct options *o = &s->opt;
    struct dir *dr = &c->dir[d];
    const struct chunk *ch;
    size_t n;

    if (c->state != CONN_OPEN || dr->used == 0)
        return 0;
    ch = &dr->chunk[dr->chunk_head];
    if (ch->due > now) {
        lower(wake, ch->due);
        return 0;
    }
    n = min_size(ch->len, RING_SIZE - dr->head);
    if (o->fragment != 0)
        n = min_size(n, o->fragment);
    n = min_size(n, cut_room(s, c, d));
    if (o->rate != 0 && n > 0) {
        double need =
            (double)n < bucket_quantum(o) ? (double)n : bucket_quantum(o);

        bucket_refill(o, dr, now);
        if (dr->tokens < need) {
            lower(wake, now +
                            (int64_t)((need - dr->tokens) * (double)NS_PER_SEC /
                                      (double)o->rate) +
                            1);
            return 0;
        }
        if ((double)n > dr->tokens)
            n = (size_t)dr->tokens;
    }
    return n;
}

/* Read what the source of direction `d` has, while there is room.
 * Returns 0, or -1 when the source failed (reported). */
static int
dir_fill(struct shim *s, struct conn *c, int d, int64_t now)
{
    struct dir *dr = &c->dir[d];

    while (dir_can_read(dr)) {
        size_t tail = (dr->head + dr->used) % RING_SIZE;
        size_t room = min_size(RING_SIZE - dr->used, RING_SIZE - tail);
        ssize_t r = recv(c->fd[d], dr->ring + tail, room, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            say("conn %lu: read from %s: %s", c->id,
                d == UP ? "client" : "server", strerror(errno));
            return -1;
        }
        if (r == 0) {
            dr->eof = true;
            return 0;
        }
        dir_queue(dr, (size_t)r, now + s->opt.delay_ns, s->opt.delay_ns);
    }
    return 0;
}

/* --record: append the `n` bytes at `buf`, just delivered in direction `d`
 * of connection c, to PREFIX.ID.up|down. A failure is reported and the
 * relay goes on. */
static void
record_bytes(const struct shim *s, const struct conn *c, int d,
             const unsigned char *buf, size_t n)
{
    char path[4096];
    FILE *f;

    if (s->opt.record == NULL || n == 0)
        return;
    if (snprintf(path, sizeof(path), "%s.%lu.%s", s->opt.record, c->id,
                 d == UP ? "up" : "down") >= (int)sizeof(path)) {
        say("--record %s: name too long", s->opt.record);
        return;
    }
    f = fopen(path, "ab");
    if (f == NULL || fwrite(buf, 1, n, f) != n)
        say("--record %s: %s", path, strerror(errno));
    if (f != NULL && fclose(f) != 0)
        say("--record %s: %s", path, strerror(errno));
}

/* Write what direction `d` may write now; pass a FIN on when the source is
 * finished and the ring empty; start the cut when its count is reached.
 * Returns 0, or -1 when the destination failed (reported). */
static int
dir_flush(struct shim *s, struct conn *c, int d, int64_t now)
{
    struct dir *dr = &c->dir[d];
    int to = 1 - d;
    int64_t ignored = INT64_MAX;
    size_t n;

    while ((n = dir_sendable(s, c, d, now, &ignored)) > 0) {
        ssize_t w = send(c->fd[to], dr->ring + dr->head, n, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            say("conn %lu: write to %s: %s", c->id,
                to == SERVER ? "server" : "client", strerror(errno));
            return -1;
        }
        record_bytes(s, c, d, dr->ring + dr->head, (size_t)w);
        dir_consume(dr, (size_t)w);
        if (s->opt.rate != 0)
            dr->tokens -= (double)w;
        dr->relayed += (uint64_t)w;
        if (cut_reached(s, c)) {
            cut_begin(c, to, now);
            return 0;
        }
    }
    if (c->state == CONN_OPEN && dr->eof && dr->used == 0 && !dr->shut) {
        if (shutdown(c->fd[to], SHUT_WR) != 0) {
            say("conn %lu: shutdown toward %s: %s", c->id,
                to == SERVER ? "server" : "client", strerror(errno));
            return -1;
        }
        dr->shut = true;
    }
    return 0;
}

/* ---- one connection -------------------------------------------------- */

/* Reset both sockets: the connection ends abruptly for both peers. */
static void
conn_reset(struct conn *c)
{
    reset_fd(c->fd[CLIENT], c->id);
    reset_fd(c->fd[SERVER], c->id);
    c->fd[CLIENT] = -1;
    c->fd[SERVER] = -1;
    c->state = CONN_DONE;
}

/* Close both sockets normally. */
static void
conn_close(struct conn *c)
{
    close_fd(c->fd[CLIENT], c->id);
    close_fd(c->fd[SERVER], c->id);
    c->fd[CLIENT] = -1;
    c->fd[SERVER] = -1;
    c->state = CONN_DONE;
}

static void
conn_opened(struct shim *s, struct conn *c, int64_t now)
{
    int d;

    set_nodelay(c->fd[SERVER], c->id);
    c->state = CONN_OPEN;
    for (d = UP; d <= DOWN; d++) {
        c->dir[d].tokens = s->opt.rate != 0 ? bucket_burst(&s->opt) : 0.0;
        c->dir[d].refilled = now;
    }
    if (cut_reached(s, c)) /* --cut-after 0 */
        cut_begin(c, -1, now);
}

/* Start connecting to the next server address in c->ai. On a final
 * failure the client is reset and the connection is done. */
static void
conn_connect(struct shim *s, struct conn *c, int64_t now, int last_err)
{
    while (c->ai != NULL) {
        const struct addrinfo *ai = c->ai;
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);

        c->ai = ai->ai_next;
        if (fd < 0) {
            last_err = errno;
            continue;
        }
        if (set_nonblock(fd) != 0) {
            last_err = errno;
            close_fd(fd, c->id);
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd[SERVER] = fd;
            conn_opened(s, c, now);
            return;
        }
        if (errno == EINPROGRESS || errno == EINTR) {
            c->fd[SERVER] = fd;
            c->state = CONN_CONNECTING;
            return;
        }
        last_err = errno;
        close_fd(fd, c->id);
    }
    say("conn %lu: cannot connect to %s:%s: %s", c->id, s->opt.to_host,
        s->opt.to_port, strerror(last_err));
    conn_reset(c);
}

/* The server socket of a connecting connection reported an event. */
static void
conn_connected(struct shim *s, struct conn *c, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd[SERVER], SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0) {
        conn_opened(s, c, now);
        return;
    }
    close_fd(c->fd[SERVER], c->id);
    c->fd[SERVER] = -1;
    conn_connect(s, c, now, err);
}

/* A cut connection is reset once the peer that got the last byte has
 * acknowledged it, or at the deadline, whichever comes first. */
static void
conn_cut_check(struct conn *c, int64_t now)
{
    int outq = 0;
    bool acked;

    if (c->cut_fd < 0)
        acked = true;
    else if (unacked_bytes(c->fd[c->cut_fd], &outq) == 0)
        acked = outq == 0;
    else
        acked = now >= c->cut_settle;
    if (acked || now >= c->cut_deadline) {
        conn_reset(c);
        c->was_cut = true;
    }
}

/* Poll events wanted on the two sockets; timers lower *wake. */
static void
conn_events(struct shim *s, struct conn *c, int64_t now, short ev[2],
            int64_t *wake)
{
    int d;

    ev[CLIENT] = 0;
    ev[SERVER] = 0;
    switch (c->state) {
    case CONN_CONNECTING:
        ev[SERVER] = POLLOUT;
        if (dir_can_read(&c->dir[UP]))
            ev[CLIENT] = POLLIN;
        break;
    case CONN_OPEN:
        for (d = UP; d <= DOWN; d++) {
            if (dir_can_read(&c->dir[d]))
                ev[d] |= POLLIN;
            if (dir_sendable(s, c, d, now, wake) > 0)
                ev[1 - d] |= POLLOUT;
        }
        break;
    case CONN_CUTTING:
        lower(wake, now + NS_PER_MS);
        break;
    case CONN_DONE:
        break;
    }
}

/* Run the work that is ready for `c` after a poll round. */
static void
conn_service(struct shim *s, struct conn *c, int64_t now)
{
    const short readable = POLLIN | POLLHUP | POLLERR;
    int d;

    if (c->state == CONN_CONNECTING && c->revents[SERVER] != 0)
        conn_connected(s, c, now);
    for (d = UP; d <= DOWN; d++) {
        bool may_read =
            c->state == CONN_OPEN || (c->state == CONN_CONNECTING && d == UP);

        if (may_read && (c->revents[d] & readable) != 0 &&
            dir_fill(s, c, d, now) != 0) {
            conn_reset(c);
            return;
        }
    }
    for (d = UP; d <= DOWN && c->state == CONN_OPEN; d++) {
        if (dir_flush(s, c, d, now) != 0) {
            conn_reset(c);
            return;
        }
    }
    if (c->state == CONN_OPEN && c->dir[UP].shut && c->dir[DOWN].shut)
        conn_close(c);
    if (c->state == CONN_CUTTING)
        conn_cut_check(c, now);
}

/* ---- the shim -------------------------------------------------------- */

static void
shim_log_conn(struct shim *s, const struct conn *c)
{
    if (s->log == NULL)
        return;
    if (fprintf(s->log, "conn %lu up %llu down %llu cut %s\n", c->id,
                (unsigned long long)c->dir[UP].relayed,
                (unsigned long long)c->dir[DOWN].relayed,
                c->was_cut ? "yes" : "no") < 0 ||
        fflush(s->log) != 0)
        say("%s: cannot append: %s", s->opt.log_file, strerror(errno));
}

/* Accept the clients waiting on the listener. */
static void
shim_accept(struct shim *s, int64_t now)
{
    while (s->listen_fd >= 0 && s->nconn < CONN_MAX) {
        int fd = accept(s->listen_fd, NULL, NULL);
        struct conn *c;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            say("accept: %s; retrying in 100 ms", strerror(errno));
            s->accept_resume = now + ACCEPT_PAUSE_NS;
            return;
        }
        s->next_id++;
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            say("conn %lu: out of memory; refusing the client", s->next_id);
            reset_fd(fd, s->next_id);
            continue;
        }
        c->id = s->next_id;
        c->fd[CLIENT] = fd;
        c->fd[SERVER] = -1;
        c->cut_fd = -1;
        c->pidx[CLIENT] = -1;
        c->pidx[SERVER] = -1;
        c->cut_armed = s->opt.cut && (c->id == 1 || s->opt.cut_all);
        c->cut_at = s->opt.cut_after + (c->id - 1) * s->opt.cut_step;
        c->ai = s->to;
        s->conn[s->nconn++] = c;
        if (set_nonblock(fd) != 0) {
            say("conn %lu: O_NONBLOCK: %s", c->id, strerror(errno));
            conn_reset(c);
        } else {
            set_nodelay(fd, c->id);
            conn_connect(s, c, now, ECONNREFUSED);
        }
        if (s->opt.once) {
            close_fd(s->listen_fd, 0);
            s->listen_fd = -1;
        }
    }
}

/* Log and free the connections that are done. */
static void
shim_reap(struct shim *s)
{
    size_t i = 0;

    while (i < s->nconn) {
        struct conn *c = s->conn[i];

        if (c->state != CONN_DONE) {
            i++;
            continue;
        }
        shim_log_conn(s, c);
        free(c);
        s->conn[i] = s->conn[--s->nconn];
    }
    if (s->opt.once && s->listen_fd < 0 && s->nconn == 0)
        s->stop = true;
}

/* One round: build the poll set, wait, run what is ready. Returns 0, or -1
 * when poll itself failed (reported). */
static int
shim_round(struct shim *s)
{
    struct pollfd pfd[2 + 2 * CONN_MAX];
    nfds_t nfds = 0;
    int listen_idx = -1;
    int64_t now = clock_now();
    int64_t wake = INT64_MAX;
    int timeout;
    size_t i;
    int k;

    pfd[nfds].fd = s->sig_pipe[0];
    pfd[nfds].events = POLLIN;
    nfds++;
    if (s->listen_fd >= 0 && s->nconn < CONN_MAX) {
        if (now >= s->accept_resume) {
            listen_idx = (int)nfds;
            pfd[nfds].fd = s->listen_fd;
            pfd[nfds].events = POLLIN;
            nfds++;
        } else {
            lower(&wake, s->accept_resume);
        }
    }
    for (i = 0; i < s->nconn; i++) {
        struct conn *c = s->conn[i];
        short ev[2];

        conn_events(s, c, now, ev, &wake);
        for (k = CLIENT; k <= SERVER; k++) {
            c->pidx[k] = -1;
            c->revents[k] = 0;
            if (ev[k] != 0) {
                c->pidx[k] = (int)nfds;
                pfd[nfds].fd = c->fd[k];
                pfd[nfds].events = ev[k];
                nfds++;
            }
        }
    }
    for (i = 0; i < nfds; i++)
        pfd[i].revents = 0;

    if (wake == INT64_MAX)
        timeout = -1;
    else if (wake <= now)
        timeout = 0;
    else if ((wake - now) / NS_PER_MS >= INT_MAX)
        timeout = INT_MAX;
    else
        timeout = (int)((wake - now + NS_PER_MS - 1) / NS_PER_MS);

    if (poll(pfd, nfds, timeout) < 0) {
        if (errno == EINTR)
            return 0;
        say("poll: %s", strerror(errno));
        return -1;
    }
    if (pfd[0].revents != 0) {
        unsigned char junk[16];

        if (read(s->sig_pipe[0], junk, sizeof(junk)) < 0 && errno != EAGAIN)
            say("signal pipe: %s", strerror(errno));
        s->stop = true;
        return 0;
    }
    now = clock_now();
    if (listen_idx >= 0 && pfd[listen_idx].revents != 0)
        shim_accept(s, now);
    for (i = 0; i < s->nconn; i++) {
        struct conn *c = s->conn[i];

        for (k = CLIENT; k <= SERVER; k++)
            if (c->pidx[k] >= 0)
                c->revents[k] = pfd[c->pidx[k]].revents;
        conn_service(s, c, now);
        c->revents[CLIENT] = 0;
        c->revents[SERVER] = 0;
        c->pidx[CLIENT] = -1;
        c->pidx[SERVER] = -1;
    }
    shim_reap(s);
    return 0;
}

static void
on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;

    /* A failed write means the pipe is full: a wakeup is already pending,
     * nothing is lost, and a handler has no one to tell anyway. */
    if (write(sig_write_fd, &b, 1) < 0)
        errno = saved;
    errno = saved;
}

static int
shim_signals(struct shim *s)
{
    struct sigaction sa;
    int i;

    if (pipe(s->sig_pipe) != 0) {
        say("pipe: %s", strerror(errno));
        return -1;
    }
    for (i = 0; i < 2; i++) {
        if (set_nonblock(s->sig_pipe[i]) != 0 ||
            fcntl(s->sig_pipe[i], F_SETFD, FD_CLOEXEC) != 0) {
            say("signal pipe: %s", strerror(errno));
            return -1;
        }
    }
    sig_write_fd = s->sig_pipe[1];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0) {
        say("sigaction: %s", strerror(errno));
        return -1;
    }
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        say("sigaction(SIGPIPE): %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Write the bound port to the --port-file: a temporary file, then rename,
 * so a reader sees either no file or the whole number. */
static int
write_port_file(const char *path, const char *port)
{
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    FILE *f;
    int rc = -1;

    if (tmp == NULL) {
        say("%s: out of memory", path);
        return -1;
    }
    if (snprintf(tmp, len, "%s.%ld.tmp", path, (long)getpid()) < 0) {
        say("%s: cannot name the temporary file", path);
        free(tmp);
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        say("%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fprintf(f, "%s\n", port) < 0) {
        say("%s: %s", tmp, strerror(errno));
        (void)fclose(f); /* already failing; the write error is reported */
    } else if (fclose(f) != 0) {
        say("%s: %s", tmp, strerror(errno));
    } else if (rename(tmp, path) != 0) {
        say("rename %s to %s: %s", tmp, path, strerror(errno));
    } else {
        rc = 0;
    }
    if (rc != 0 && unlink(tmp) != 0)
        say("%s: cannot remove: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
}

/* Bind the listener, announce it, write the port file. */
static int
shim_listen(struct shim *s)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    const struct addrinfo *ai;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    int last_err = 0;
    int one = 1;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(s->opt.listen_host, s->opt.listen_port, &hints, &res);
    if (rc != 0) {
        say("--listen %s: %s", s->opt.listen_host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && s->listen_fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);

        if (fd < 0) {
            last_err = errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, SOMAXCONN) != 0 || set_nonblock(fd) != 0) {
            last_err = errno;
            close_fd(fd, 0);
            continue;
        }
        s->listen_fd = fd;
    }
    freeaddrinfo(res);
    if (s->listen_fd < 0) {
        say("cannot listen on %s:%s: %s", s->opt.listen_host,
            s->opt.listen_port, strerror(last_err));
        return -1;
    }
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sslen) != 0) {
        say("getsockname: %s", strerror(errno));
        return -1;
    }
    rc = getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), port,
                     sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        say("getnameinfo: %s", gai_strerror(rc));
        return -1;
    }
    if (s->opt.port_file != NULL && write_port_file(s->opt.port_file, port))
        return -1;
    if (ss.ss_family == AF_INET6)
        say("listening on [%s]:%s", host, port);
    else
        say("listening on %s:%s", host, port);
    return 0;
}

static int
shim_resolve_to(struct shim *s)
{
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(s->opt.to_host, s->opt.to_port, &hints, &s->to);
    if (rc != 0) {
        say("--to %s: %s", s->opt.to_host, gai_strerror(rc));
        s->to = NULL;
        return -1;
    }
    return 0;
}

/* Release everything; connections still open are closed normally. */
static void
shim_close(struct shim *s)
{
    size_t i;

    for (i = 0; i < s->nconn; i++) {
        if (s->conn[i]->state != CONN_DONE)
            conn_close(s->conn[i]);
    }
    shim_reap(s);
    close_fd(s->listen_fd, 0);
    s->listen_fd = -1;
    if (s->to != NULL)
        freeaddrinfo(s->to);
    s->to = NULL;
    if (s->log != NULL && fclose(s->log) != 0)
        say("%s: %s", s->opt.log_file, strerror(errno));
    s->log = NULL;
    sig_write_fd = -1;
    close_fd(s->sig_pipe[0], 0);
    close_fd(s->sig_pipe[1], 0);
    s->sig_pipe[0] = -1;
    s->sig_pipe[1] = -1;
}

int
main(int argc, char **argv)
{
    struct shim shim;
    struct shim *s = &shim;
    int rc;

    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
    s->sig_pipe[0] = -1;
    s->sig_pipe[1] = -1;
    rc = parse_args(argc, argv, &s->opt);
    if (rc == 1) {
        if (fputs(usage_text, stdout) == EOF || fflush(stdout) != 0)
            return EXIT_RUNTIME;
        return 0;
    }
    if (rc != 0)
        return EXIT_USAGE;

    rc = shim_signals(s);
    if (rc == 0 && s->opt.log_file != NULL) {
        s->log = fopen(s->opt.log_file, "a");
        if (s->log == NULL) {
            say("--log %s: %s", s->opt.log_file, strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0)
        rc = shim_resolve_to(s);
    if (rc == 0)
        rc = shim_listen(s);
    while (rc == 0 && !s->stop)
        rc = shim_round(s);
    shim_close(s);
    return rc == 0 ? 0 : EXIT_RUNTIME;
}
