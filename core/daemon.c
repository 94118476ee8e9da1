/* daemon.c -- the terminal daemon (docs/daemon.md).
 *
 * One event loop. It only waits in poll(), gathers what happened, feeds it
 * to the trigger policy (policy.h) and carries out what the policy
 * decides:
 *
 *   where from (daemon_events.c)            policy event
 *   inotify on the data folder, then a scan  DATA_CHANGED, pending bytes
 *   inotify on <home>/sim, control socket    SIM_INSERTED, SIM_REMOVING,
 *                                            SIM_REMOVED
 *   the battery, read every 2 s              BATTERY
 *   the control socket                       COMMAND_*, CONFIRM_*
 *   time passing (the decision's wake_at)    (any decide)
 *   a sync that ended                        SYNC_DONE
 *   the daemon starting                      START
 *
 * Syncs, backups and restore jobs run one at a time on a worker thread, so
 * the loop keeps answering the hub, the battery and local requests
 * meanwhile. Every decision that starts something, every sync's outcome,
 * and why nothing starts when something waits go to the decision log
 * (daemon_log.c), which `simsync log` reads.
 *
 * With --listen the daemon also serves the subscriber's paired nodes
 * (peer.h): the server accepts and runs their sessions on a thread of its
 * own, because a session blocks on its link for its whole length; this
 * loop only starts and stops it. What a peer's session applies is not a
 * local change of this node (it carries the peer's dots), so the server
 * tells the loop through the wake pipe, and the loop hands the policy a
 * data change: it goes on to the hub by the usual triggers.
 *
 * The hub's side (seed 000 FIG 5/6) is as before: one control connection
 * (re-opened with exponential backoff while a SIM is in), BackupRequests
 * answered BUSY (a backup is being built, the user is operating the
 * terminal, the battery is low, a sync runs) or OK, restore jobs, and the
 * pending-size backup trigger.
 *
 * Threads: the worker uses the node (its store is thread-safe; its error
 * text is not). While the worker runs, the main thread moves frames on the
 * control channel, writes notices to the store, reads small files and
 * feeds the policy; anything that could set the node's error (scans,
 * connecting, deciding and starting work) waits until the worker is
 * joined. */
#define _GNU_SOURCE /* nftw's FTW_PHYS, pipe2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "folder.h"
#include "node.h"
#include "peer.h"
#include "transport.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define PING_EVERY_MS 20000
#define JOBS_RETRY_MS 30000
#define POLL_EVERY_MS 2000 /* the battery, and watches that failed */
#define SETTLE_MS 300      /* scan once changes pause this long ... */
#define SETTLE_MAX_MS 2000 /* ... or this long after the first one */
#define TICK_MS 1000       /* longest sleep in poll() */
#define MAX_CLIENTS 8

enum work { WORK_BACKUP, WORK_JOBS, WORK_SYNC };
enum dsim { DSIM_OUT, DSIM_IN, DSIM_LEAVING }; /* as the policy was told */

/* A local process on the control socket. */
struct client {
    int fd; /* -1: a free slot */
    char in[DAEMON_LINE_MAX];
    size_t have;
    int remover;                /* asked "sim-removing" and waits for "ready" */
    int ready;                  /* was told "ready" */
    char said[DAEMON_LINE_MAX]; /* the last "wait" line it got */
};

struct daemon {
    struct simsync_node *n;
    struct simsync_daemon_opts o;
    const char *psdir;
    const char *ttydir;  /* terminal devices, for user activity */
    int64_t activity_ns; /* latest input seen on them */
    volatile int *stop;
    /* The worker. */
    pthread_t th;
    int running;
    atomic_int done;
    enum work kind;
    uint64_t job; /* the hub's request a backup answers (0: none) */
    int rc;
    struct simsync_backup_report rep;
    struct node_sync_opts sync;
    struct simsync_sync_report srep;
    struct node_pending after; /* pending once the work ended */
    int after_rc;
    char err[512];
    size_t jobs_ran;
    uint64_t started_ms; /* wall clock, for the log */
    int wake[2];         /* the worker writes a byte here when done */
    /* The hub's control connection. */
    struct link l;
    int connected;
    uint64_t connect_at; /* next attempt (monotonic ms) */
    unsigned backoff;
    uint64_t last_ping, last_check;
    uint64_t jobs_check_at; /* 0: nothing new since the last look */
    /* The policy. */
    struct policy pol;
    struct policy_cfg cfg;
    struct policy_decision flight; /* the decision of the running sync */
    int64_t wake_at;               /* the last decision's */
    char said[POLICY_REASON_MAX];  /* the last wait logged */
    unsigned notices;              /* notice flags already told */
    char remove_result[512];       /* how the sim-remove upload ended */
    /* What the loop knows. */
    enum dsim sim;
    int level, charging;
    uint64_t polled_at;
    int dirty, force_scan;
    uint64_t dirty_first, dirty_last;
    uint64_t counter, pending; /* as last looked at */
    int massdel_said;
    char watch_said[256];
    /* Sources. */
    int lock_fd, listen_fd;
    struct peer_server *srv; /* serving paired peers (--listen), or NULL */
    atomic_uint_fast64_t peer_applied; /* versions its sessions applied */
    struct daemon_watch *w;
    struct client cl[MAX_CLIENTS];
    struct daemon_log *log;
};

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dlog(struct daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A line for the daemon's own output (stderr, or JSON with --json). */
static void
dlog(struct daemon *d, const char *fmt, ...)
{
    char line[768];
    va_list ap;

    if (d->o.log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    d->o.log(d->o.log_arg, line);
}

/* An entry of the decision log, echoed to the daemon's output. */
static void
record(struct daemon *d, const struct simsync_log_entry *e)
{
    if (d->log != NULL && daemon_log_append(d->log, e) != SIMSYNC_OK) {
        dlog(d, "cannot write the decision log %s/%s; going on without it",
             d->n->home, DAEMON_LOG);
        daemon_log_close(d->log);
        d->log = NULL;
    }
    if (strcmp(e->kind, "done") == 0)
        dlog(d, "%s %s (%s): %s", e->action, e->result, e->trigger, e->text);
    else if (e->action[0] != '\0')
        dlog(d, "%s %s (%s): %s", e->kind, e->action, e->trigger, e->text);
    else
        dlog(d, "%s: %s", e->kind, e->text);
}

static void record_event(struct daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
record_event(struct daemon *d, const char *fmt, ...)
{
    struct simsync_log_entry e;
    va_list ap;

    memset(&e, 0, sizeof(e));
    snprintf(e.kind, sizeof(e.kind), "event");
    e.pending_bytes = d->pending;
    va_start(ap, fmt);
    vsnprintf(e.text, sizeof(e.text), fmt, ap);
    va_end(ap);
    record(d, &e);
}

/* Hand one event to the policy. It refuses only events that make no sense
 * in its state (an answer with no question): those are dropped. */
static void
give(struct daemon *d, const struct policy_event *ev)
{
    if (policy_event(&d->pol, ev) != SIMSYNC_OK)
        dlog(d, "the policy ignored an event of type %d", (int)ev->type);
}

static void
feed(struct daemon *d, enum policy_event_type type, uint64_t pending)
{
    struct policy_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.now = (int64_t)mono_ms();
    ev.pending_bytes = pending;
    ev.battery_level = d->level;
    ev.charging = d->charging;
    give(d, &ev);
}

/* ------------------------------------------------------------ busy */

static int
read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r;

    if (fd < 0)
        return -1;
    r = read(fd, buf, len - 1);
    close(fd);
    if (r < 0)
        return -1;
    buf[r] = '\0';
    while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == ' '))
        buf[--r] = '\0';
    return 0;
}

/* The lowest capacity of a discharging battery under dir, or -1. */
static int
battery_low(const char *dir, unsigned below, int *capacity)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    int low = 0;

    *capacity = -1;
    if (dh == NULL)
        return 0; /* no power-supply class: a desktop */
    while ((e = readdir(dh)) != NULL) {
        char path[4096], type[32], cap[16], status[32];
        long c;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/type", dir, e->d_name);
        if (read_small(path, type, sizeof(type)) != 0 ||
            strcmp(type, "Battery") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s/capacity", dir, e->d_name);
        if (read_small(path, cap, sizeof(cap)) != 0)
            continue;
        c = strtol(cap, NULL, 10);
        snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
        if (read_small(path, status, sizeof(status)) != 0)
            status[0] = '\0';
        if (c >= 0 && c < (long)below && strcmp(status, "Charging") != 0 &&
            strcmp(status, "Full") != 0) {
            if (*capacity < 0 || c < *capacity)
                *capacity = (int)c;
            low = 1;
        }
    }
    closedir(dh);
    return low;
}

static _Thread_local int64_t newest_ns;

static int
newest_fn(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    int64_t t = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;

    (void)path;
    (void)flag;
    (void)f;
    if (t > newest_ns)
        newest_ns = t;
    return 0;
}

/* Newest modification time (ns) of anything under dir; 0 when empty. */
static int64_t
newest_change(const char *dir)
{
    newest_ns = 0;
    if (nftw(dir, newest_fn, 16, FTW_PHYS) != 0)
        return 0;
    return newest_ns;
}

int
simsync_busy_reason(struct simsync_node *n, const struct simsync_daemon_opts *o,
                    char *why, size_t len)
{
    const char *psdir = o->power_supply_dir ? o->power_supply_dir
                                            : "/sys/class/power_supply";
    int cap;

    why[0] = '\0';
    if (node_backup_running(n)) {
        snprintf(why, len, "building a backup already");
        return SIMSYNC_OK;
    }
    if (o->battery_below > 0 && battery_low(psdir, o->battery_below, &cap)) {
        snprintf(why, len, "battery at %d%% (below %u%%) and not charging", cap,
                 o->battery_below);
        return SIMSYNC_OK;
    }
    if (o->busy_after_edit_s > 0) {
        struct timespec now;
        int64_t newest = newest_change(n->data_dir), age;
        clock_gettime(CLOCK_REALTIME, &now);
        age = ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec - newest) /
              1000000000;
        if (newest > 0 && age < (int64_t)o->busy_after_edit_s) {
            snprintf(why, len,
                     "the user is operating the terminal (a data file "
                     "changed %llds ago)",
                     (long long)(age < 0 ? 0 : age));
            return SIMSYNC_OK;
        }
    }
    return SIMSYNC_OK;
}

/* ------------------------------------------------------------ worker */

static void *
worker_main(void *arg)
{
    struct daemon *d = arg;
    char one = 1;

    d->n->err[0] = '\0';
    if (d->kind == WORK_BACKUP) {
        struct simsync_backup_opts bo = {0, d->job, 0};
        d->rc = simsync_backup_run(d->n, &bo, &d->rep);
    } else if (d->kind == WORK_JOBS) {
        d->rc = simsync_jobs_run(d->n, NULL, NULL, &d->jobs_ran);
    } else {
        d->rc = node_sync(d->n, &d->sync, &d->srep);
    }
    snprintf(d->err, sizeof(d->err), "%s",
             d->n->err[0] ? d->n->err : simsync_strerror(d->rc));
    /* What is left to upload now, and whether local changes were recorded
     * meanwhile (a restore, or the sync's own scan). */
    d->after_rc = node_pending_up(d->n, 0, NULL, &d->after);
    atomic_store(&d->done, 1);
    if (write(d->wake[1], &one, 1) < 0) {
        /* The loop looks at `done` at least once a second anyway. */
    }
    return NULL;
}

static int
worker_start(struct daemon *d, enum work kind, uint64_t job)
{
    d->kind = kind;
    d->job = job;
    d->rc = SIMSYNC_OK;
    d->jobs_ran = 0;
    d->started_ms = node_now_ms();
    memset(&d->rep, 0, sizeof(d->rep));
    memset(&d->srep, 0, sizeof(d->srep));
    atomic_store(&d->done, 0);
    if (pthread_create(&d->th, NULL, worker_main, d) != 0)
        return SIMSYNC_ENOMEM;
    d->running = 1;
    return SIMSYNC_OK;
}

static void
worker_join(struct daemon *d)
{
    if (d->running) {
        pthread_join(d->th, NULL);
        d->running = 0;
    }
}

/* Local changes were recorded since the last look (by a scan, a restore,
 * ...): tell the policy, with what is pending now. */
static void
saw_counter(struct daemon *d, const struct node_pending *p, int tell)
{
    if (p->counter > d->counter && tell)
        feed(d, POLICY_EV_DATA_CHANGED, p->bytes);
    if (p->counter > d->counter)
        d->counter = p->counter;
    d->pending = p->bytes;
}

/* ------------------------------------------------------------ clients */

static void
client_say(struct daemon *d, struct client *c, const char *word,
           const char *text)
{
    char line[DAEMON_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%s%s%s\n", word, text[0] ? " " : "",
                     text);

    if (n < 0 || (size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    /* A client that does not read is dropped rather than waited for. */
    if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        (void)d;
        shutdown(c->fd, SHUT_RDWR);
    }
}

static struct client *
remover(struct daemon *d)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (d->cl[i].fd >= 0 && d->cl[i].remover)
            return &d->cl[i];
    return NULL;
}

enum sim_file { SIMF_NONE, SIMF_OURS, SIMF_FOREIGN };

/* What <home>/sim says: no SIM, the bound subscriber's, or another one's.
 * Read here from the "subscriber=" line `sim insert` writes (node.c), not
 * through the node, whose error text the worker may be using. */
static enum sim_file
sim_file(const struct daemon *d)
{
    char path[PATH_MAX + 16], text[PATH_MAX + 128];
    const char *p;
    size_t n;
    ssize_t r;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", d->n->home, DAEMON_SIM);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return SIMF_NONE;
    r = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (r < 0)
        return SIMF_NONE;
    text[r] = '\0';
    p = strncmp(text, "subscriber=", 11) == 0 ? text
                                              : strstr(text, "\nsubscriber=");
    if (p == NULL)
        return SIMF_FOREIGN; /* unreadable: not one to sync with */
    p += *p == '\n' ? 12 : 11;
    n = strcspn(p, "\n");
    return n == strlen(d->n->subscriber) && strncmp(p, d->n->subscriber, n) == 0
               ? SIMF_OURS
               : SIMF_FOREIGN;
}

static void
link_drop(struct daemon *d, const char *why)
{
    if (!d->connected)
        return;
    link_close(&d->l);
    d->connected = 0;
    d->connect_at = mono_ms() + BACKOFF_MIN_MS;
    dlog(d, "control connection closed: %s", why);
}

/* The SIM file says in or out: tell the policy when that is news. A SIM
 * of another subscriber counts as none: this terminal neither uploads nor
 * downloads with it. written: the file was just written (a SIM inserted,
 * maybe over another). */
static void
sim_settle(struct daemon *d, int written)
{
    enum sim_file f = sim_file(d);
    struct client *r = remover(d);

    if (f == SIMF_OURS && (d->sim != DSIM_IN || written)) {
        if (d->sim == DSIM_LEAVING && !written)
            record_event(d, "SIM removal cancelled: the SIM stays in");
        else
            record_event(d, "SIM inserted");
        d->sim = DSIM_IN;
        feed(d, POLICY_EV_SIM_INSERTED, 0);
        d->backoff = BACKOFF_MIN_MS;
        d->connect_at = mono_ms();
        return;
    }
    if (f == SIMF_FOREIGN && (d->sim != DSIM_OUT || written))
        record_event(d, "a SIM of another subscriber is in: this terminal "
                        "does not sync with it");
    else if (f == SIMF_NONE && d->sim != DSIM_OUT)
        record_event(d, "SIM removed");
    if (f != SIMF_OURS && d->sim != DSIM_OUT) {
        d->sim = DSIM_OUT;
        feed(d, POLICY_EV_SIM_REMOVED, 0);
        link_drop(d, "no SIM of this subscriber is in");
        if (r != NULL && !r->ready) {
            client_say(d, r, "ready", "the SIM is out already");
            r->ready = 1;
        }
    }
}

static void
client_close(struct daemon *d, struct client *c)
{
    int was_remover = c->remover;

    close(c->fd);
    c->fd = -1;
    c->remover = 0;
    /* A removal the client gave up on, or finished: the SIM file says
     * which. */
    if (was_remover && d->sim == DSIM_LEAVING)
        sim_settle(d, 0);
}

static void
reload_policy(struct daemon *d, char *msg, size_t len)
{
    struct policy_cfg cfg;
    char err[300], changes[400] = "";
    size_t at = 0;

    if (daemon_ctl_policy_load(d->n->home, &cfg, err, sizeof(err)) !=
        SIMSYNC_OK) {
        snprintf(msg, len,
                 "the stored policy is not valid, the daemon keeps "
                 "the one it has: %s",
                 err);
        record_event(d, "%s", msg);
        return;
    }
    for (size_t i = 0; policy_cfg_key(i) != NULL; i++) {
        const char *key = policy_cfg_key(i)->name;
        char a[32], b[32];
        if (policy_cfg_get(&d->cfg, key, a, sizeof(a)) == SIMSYNC_OK &&
            policy_cfg_get(&cfg, key, b, sizeof(b)) == SIMSYNC_OK &&
            strcmp(a, b) != 0 && at < sizeof(changes))
            at += (size_t)snprintf(changes + at, sizeof(changes) - at,
                                   "%s%s %s", at ? ", " : "", key, b);
    }
    if (at == 0) {
        snprintf(msg, len, "policy unchanged");
        return;
    }
    if (policy_reconfig(&d->pol, &cfg) != SIMSYNC_OK) {
        snprintf(msg, len, "the new policy was refused");
        return;
    }
    d->cfg = cfg;
    snprintf(msg, len, "policy changed: %s", changes);
    record_event(d, "%s", msg);
}

static void
on_sim_removing(struct daemon *d, struct client *c)
{
    if (remover(d) != NULL) {
        client_say(d, c, "error", "a SIM removal is waiting already");
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    c->remover = 1;
    if (d->sim == DSIM_OUT || sim_file(d) != SIMF_OURS) {
        client_say(d, c, "ready",
                   "no SIM of this terminal's subscriber is in: nothing to "
                   "upload for it");
        c->ready = 1;
        return;
    }
    record_event(d, "SIM about to be removed");
    d->sim = DSIM_LEAVING;
    d->remove_result[0] = '\0';
    feed(d, POLICY_EV_SIM_REMOVING, 0);
    d->force_scan = 1; /* edits not scanned yet must count */
    if (d->running)
        client_say(d, c, "wait",
                   d->kind == WORK_SYNC
                       ? "a sync is running; the upload for the SIM removal "
                         "follows it"
                       : "a backup or restore job is running; the upload for "
                         "the SIM removal follows it");
}

static void
on_request(struct daemon *d, struct client *c, const char *line)
{
    static const struct {
        const char *word;
        enum policy_event_type ev;
        const char *what;
    } cmds[] = {
        {"sync", POLICY_EV_COMMAND_SYNC, "sync both ways"},
        {"upload", POLICY_EV_COMMAND_UPLOAD, "upload"},
        {"download", POLICY_EV_COMMAND_DOWNLOAD, "download"},
    };
    char msg[DAEMON_LINE_MAX];

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(line, cmds[i].word) == 0) {
            record_event(d, "user command: %s", cmds[i].what);
            feed(d, cmds[i].ev, 0);
            snprintf(msg, sizeof(msg),
                     "the daemon will %s now; 'simsync log' shows how it "
                     "ends",
                     cmds[i].what);
            client_say(d, c, "ok", msg);
            shutdown(c->fd, SHUT_WR);
            return;
        }
    }
    if (strcmp(line, "confirm yes") == 0 || strcmp(line, "confirm no") == 0) {
        int yes = line[8] == 'y';
        struct policy_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = yes ? POLICY_EV_CONFIRM_YES : POLICY_EV_CONFIRM_NO;
        ev.now = (int64_t)mono_ms();
        if (policy_event(&d->pol, &ev) != SIMSYNC_OK) {
            client_say(d, c, "error", "the daemon asked nothing to answer");
        } else {
            record_event(d, "the user answered %s", yes ? "yes" : "no");
            client_say(d, c, "ok",
                       yes ? "the sync starts now"
                           : "the daemon asks again when something new is "
                             "due");
        }
        shutdown(c->fd, SHUT_WR);
        return;
    }
    if (strcmp(line, "reload") == 0) {
        reload_policy(d, msg, sizeof(msg));
        client_say(d, c, "ok", msg);
        shutdown(c->fd, SHUT_WR);
        return;
    }
    if (strcmp(line, "sim-removing") == 0) {
        on_sim_removing(d, c);
        return;
    }
    if (strcmp(line, "sim-removed") == 0 && c->remover) {
        sim_settle(d, 0);
        client_say(d, c, "ok", "");
        shutdown(c->fd, SHUT_WR);
        return;
    }
    snprintf(msg, sizeof(msg), "unknown request '%.60s'", line);
    client_say(d, c, "error", msg);
    shutdown(c->fd, SHUT_WR);
}

static void
client_read(struct daemon *d, struct client *c)
{
    ssize_t r =
        recv(c->fd, c->in + c->have, sizeof(c->in) - c->have, MSG_DONTWAIT);
    char *nl;

    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        client_close(d, c);
        return;
    }
    c->have += (size_t)r;
    while (c->fd >= 0 && (nl = memchr(c->in, '\n', c->have)) != NULL) {
        size_t n = (size_t)(nl - c->in);
        char line[DAEMON_LINE_MAX];
        memcpy(line, c->in, n);
        line[n] = '\0';
        memmove(c->in, nl + 1, c->have - n - 1);
        c->have -= n + 1;
        on_request(d, c, line);
    }
    if (c->fd >= 0 && c->have == sizeof(c->in)) {
        client_say(d, c, "error", "request too long");
        client_close(d, c);
    }
}

static void
client_accept(struct daemon *d)
{
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (d->cl[i].fd < 0) {
            memset(&d->cl[i], 0, sizeof(d->cl[i]));
            d->cl[i].fd = fd;
            return;
        }
    }
    close(fd); /* too many at once: the client sees the link closed */
}

/* ------------------------------------------------------------ decisions */

static void
triggers_text(uint32_t mask, char *buf, size_t len)
{
    size_t at = 0;

    buf[0] = '\0';
    for (int t = 1; t < POLICY_TRIG_COUNT && at < len; t++)
        if (mask & POLICY_TRIG_BIT(t))
            at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "",
                                   policy_trigger_name((enum policy_trigger)t));
}

static void
entry_from(struct simsync_log_entry *e, const char *kind,
           const struct policy_decision *dec)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->action, sizeof(e->action), "%s",
             policy_action_name(dec->action == POLICY_ASK ? dec->then
                                                          : dec->action));
    snprintf(e->trigger, sizeof(e->trigger), "%s",
             policy_trigger_name(dec->trigger));
    triggers_text(dec->triggers, e->triggers, sizeof(e->triggers));
}

static void
limits_text(const struct policy_limits *l, char *buf, size_t len)
{
    static const char *const names[] = {
        "max bytes",          "max seconds",        "upload max bytes",
        "upload max seconds", "download max bytes", "download max seconds"};
    const uint64_t v[] = {l->max_bytes,      l->max_seconds,
                          l->up_max_bytes,   l->up_max_seconds,
                          l->down_max_bytes, l->down_max_seconds};
    size_t at = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < 6 && at < len; i++)
        if (v[i] > 0)
            at += (size_t)snprintf(buf + at, len - at, "%s%s %" PRIu64,
                                   at ? ", " : " (limits: ", names[i], v[i]);
    if (at > 0 && at < len)
        snprintf(buf + at, len - at, ")");
}

static void
start_sync(struct daemon *d, const struct policy_decision *dec)
{
    struct simsync_log_entry e;
    const struct policy_limits *l = &dec->limits;
    char lim[200];

    memset(&d->sync, 0, sizeof(d->sync));
    d->sync.dir = dec->action == POLICY_UPLOAD     ? NODE_SYNC_UPLOAD
                  : dec->action == POLICY_DOWNLOAD ? NODE_SYNC_DOWNLOAD
                                                   : NODE_SYNC_BOTH;
    d->sync.max_bytes = l->max_bytes;
    d->sync.max_ms = l->max_seconds * 1000;
    d->sync.up_max_bytes = l->up_max_bytes;
    d->sync.up_max_ms = l->up_max_seconds * 1000;
    d->sync.down_max_bytes = l->down_max_bytes;
    d->sync.down_max_ms = l->down_max_seconds * 1000;
    d->flight = *dec;
    d->said[0] = '\0';
    entry_from(&e, "start", dec);
    e.pending_bytes = d->pending;
    limits_text(l, lim, sizeof(lim));
    snprintf(e.text, sizeof(e.text), "%.255s%.140s", dec->reason, lim);
    record(d, &e);
    if (worker_start(d, WORK_SYNC, 0) != SIMSYNC_OK) {
        struct policy_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = POLICY_EV_SYNC_DONE;
        ev.now = (int64_t)mono_ms();
        ev.result = POLICY_RESULT_FAILED;
        ev.pending_bytes = d->pending;
        give(d, &ev);
        record_event(d, "cannot start a worker thread for the sync");
    }
}

/* The sync on the worker ended: tell the policy and the log. */
static void
sync_reaped(struct daemon *d)
{
    const struct simsync_sync_report *r = &d->srep;
    struct policy_event ev;
    struct simsync_log_entry e;
    int up = d->flight.action != POLICY_DOWNLOAD;

    memset(&ev, 0, sizeof(ev));
    ev.type = POLICY_EV_SYNC_DONE;
    ev.now = (int64_t)mono_ms();
    ev.result = d->rc == SIMSYNC_OK       ? POLICY_RESULT_OK
                : d->rc == SIMSYNC_EAGAIN ? POLICY_RESULT_PARTIAL
                                          : POLICY_RESULT_FAILED;
    ev.bytes_up = r->sent_bytes;
    ev.bytes_down = r->recv_bytes;
    ev.pending_bytes = d->after_rc == SIMSYNC_OK ? d->after.bytes : d->pending;
    give(d, &ev);
    /* Changes the sync's own scan recorded went up with it, unless it only
     * downloaded or did not finish. */
    if (d->after_rc == SIMSYNC_OK)
        saw_counter(d, &d->after, !(up && d->rc == SIMSYNC_OK));
    entry_from(&e, "done", &d->flight);
    snprintf(e.result, sizeof(e.result), "%s",
             ev.result == POLICY_RESULT_OK        ? "ok"
             : ev.result == POLICY_RESULT_PARTIAL ? "partial"
                                                  : "failed");
    e.sent_items = r->sent_items;
    e.sent_bytes = r->sent_bytes;
    e.recv_items = r->recv_items;
    e.recv_bytes = r->recv_bytes;
    e.pending_bytes = d->pending;
    e.ms = node_now_ms() - d->started_ms;
    if (d->rc == SIMSYNC_OK || d->rc == SIMSYNC_EAGAIN)
        snprintf(e.text, sizeof(e.text),
                 "%ssent %" PRIu64 " item%s (%" PRIu64
                 " bytes), received %" PRIu64 " item%s (%" PRIu64
                 " bytes); %" PRIu64 " bytes left to upload",
                 d->rc == SIMSYNC_EAGAIN ? "stopped at its limit, to be "
                                           "continued: "
                                         : "",
                 r->sent_items, r->sent_items == 1 ? "" : "s", r->sent_bytes,
                 r->recv_items, r->recv_items == 1 ? "" : "s", r->recv_bytes,
                 d->pending);
    else
        snprintf(e.text, sizeof(e.text), "%.399s", d->err);
    record(d, &e);
    if (d->flight.triggers & POLICY_TRIG_BIT(POLICY_TRIG_SIM_REMOVE))
        snprintf(d->remove_result, sizeof(d->remove_result), "upload %s: %s",
                 e.result, e.text);
    d->jobs_check_at = mono_ms(); /* the HelloReply may have brought some */
}

/* The worker finished: report, and tell the hub about its backup. */
static int
worker_reap(struct daemon *d)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__BackupResult res = SIMSYNC__BACKUP_RESULT__INIT;

    worker_join(d);
    if (d->kind == WORK_SYNC) {
        sync_reaped(d);
        return SIMSYNC_OK;
    }
    /* A restore writes local changes: they are news for the policy. */
    if (d->after_rc == SIMSYNC_OK)
        saw_counter(d, &d->after, 1);
    if (d->kind == WORK_JOBS) {
        dlog(d, "restore jobs: %zu run%s%s", d->jobs_ran,
             d->rc ? ", then: " : "", d->rc ? d->err : "");
        if (d->rc != SIMSYNC_OK)
            d->jobs_check_at = mono_ms() + JOBS_RETRY_MS;
        return SIMSYNC_OK;
    }
    if (d->rc == SIMSYNC_OK)
        dlog(d, "backup%s: generation %llu, %llu items, %llu chunk bytes sent",
             d->job ? " for the hub" : " (pending changes)",
             (unsigned long long)d->rep.gen, (unsigned long long)d->rep.items,
             (unsigned long long)d->rep.chunk_bytes_sent);
    else
        dlog(d, "backup failed: %s", d->err);
    if (d->job == 0 || !d->connected)
        return SIMSYNC_OK;
    res.job = d->job;
    res.gen = d->rep.gen;
    res.items = d->rep.items;
    res.bytes = d->rep.bytes;
    if (d->rc == SIMSYNC_OK) {
        res.digest.data = d->rep.digest;
        res.digest.len = sizeof(d->rep.digest);
    }
    res.code = d->rc;
    res.text = d->rc ? d->err : "";
    env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_RESULT;
    env.backup_result = &res;
    return node_send_env(d->l.ch, &env);
}

/* Scan the class folders: local changes become DATA_CHANGED. Only while
 * the worker is idle. */
static void
scan(struct daemon *d)
{
    struct node_pending p;
    struct scan_stats ss;
    int rc = node_pending_up(d->n, 1, &ss, &p);

    d->dirty = 0;
    d->force_scan = 0;
    if (rc == SIMSYNC_EMASSDEL) {
        if (!d->massdel_said)
            record_event(d,
                         "the class folders would lose %" PRIu64
                         " items at once: nothing syncs until 'simsync "
                         "sync --allow-delete' confirms it",
                         ss.guarded);
        d->massdel_said = 1;
        return;
    }
    d->massdel_said = 0;
    if (rc != SIMSYNC_OK) {
        record_event(d, "scanning the class folders failed: %s",
                     d->n->err[0] ? d->n->err : simsync_strerror(rc));
        return;
    }
    if (p.counter > d->counter)
        record_event(
            d,
            "data changed: %" PRIu64 " added, %" PRIu64 " edited, %" PRIu64
            " deleted, %" PRIu64 " renamed; %" PRIu64 " bytes in %" PRIu64
            " items to upload",
            ss.added, ss.edited, ss.deleted, ss.renamed, p.bytes, p.items);
    saw_counter(d, &p, 1);
}

/* The text of a wait, without its numbers: "retry in 4 s" and "retry in
 * 3 s" are the same wait. */
static void
shape(const char *s, char *out, size_t len)
{
    size_t at = 0;

    for (; *s != '\0' && at + 1 < len; s++)
        if (*s < '0' || *s > '9')
            out[at++] = *s;
    out[at] = '\0';
}

static void
log_wait(struct daemon *d, const struct policy_decision *dec)
{
    char a[POLICY_REASON_MAX], b[POLICY_REASON_MAX];
    struct simsync_log_entry e;

    if (strcmp(dec->reason, "nothing due") == 0 ||
        strncmp(dec->reason, "a sync (", 8) == 0)
        return;
    shape(dec->reason, a, sizeof(a));
    shape(d->said, b, sizeof(b));
    if (strcmp(a, b) == 0)
        return;
    snprintf(d->said, sizeof(d->said), "%s", dec->reason);
    memset(&e, 0, sizeof(e));
    snprintf(e.kind, sizeof(e.kind), "wait");
    e.pending_bytes = d->pending;
    snprintf(e.text, sizeof(e.text), "%s", dec->reason);
    record(d, &e);
}

static void
ask(struct daemon *d, const struct policy_decision *dec)
{
    struct simsync_log_entry e;

    entry_from(&e, "ask", dec);
    e.pending_bytes = d->pending;
    snprintf(e.text, sizeof(e.text), "%s", dec->reason);
    record(d, &e);
    if (node_notice_local(d->n,
                          "confirm sync: the daemon would %s (%s). Answer "
                          "with 'simsync policy confirm yes' or 'simsync "
                          "policy confirm no'",
                          policy_action_name(dec->then),
                          dec->reason) != SIMSYNC_OK)
        record_event(d, "cannot store the question as a notice");
}

static void
notices(struct daemon *d, const struct policy_decision *dec)
{
    unsigned rising = dec->notices & ~d->notices;

    if ((rising & POLICY_NOTICE_UNSYNCED) &&
        node_notice_local(d->n,
                          "local changes (%" PRIu64 " bytes) have waited for "
                          "upload for over %" PRIu64 " s; 'simsync log' "
                          "shows why",
                          d->pending,
                          d->cfg.notice_unsynced_seconds) == SIMSYNC_OK)
        record_event(d,
                     "notice: local changes have waited for upload for "
                     "over %" PRIu64 " s",
                     d->cfg.notice_unsynced_seconds);
    if ((rising & POLICY_NOTICE_HUB_CHANGES) &&
        node_notice_local(d->n, "the hub has changes from another terminal "
                                "that are not here yet; 'simsync sync' (or "
                                "'simsync policy run download') brings "
                                "them") == SIMSYNC_OK)
        record_event(d, "notice: the hub has changes not fetched here");
    d->notices = dec->notices;
}

/* Tell a waiting `sim remove` where things are. */
static void
tell_remover(struct daemon *d, const struct policy_decision *dec)
{
    struct client *r = remover(d);
    char text[DAEMON_LINE_MAX];

    if (r == NULL || r->ready)
        return;
    if (dec->remove_ready) {
        snprintf(text, sizeof(text), "%.200s%s%.250s", d->remove_result,
                 d->remove_result[0] ? "; " : "", dec->reason);
        client_say(d, r, "ready", text);
        r->ready = 1;
        return;
    }
    if (dec->action != POLICY_NONE &&
        (dec->triggers & POLICY_TRIG_BIT(POLICY_TRIG_SIM_REMOVE)))
        snprintf(text, sizeof(text), "uploading before the SIM goes: %s",
                 dec->reason);
    else
        snprintf(text, sizeof(text), "%s", dec->reason);
    if (strcmp(text, r->said) != 0) {
        client_say(d, r, "wait", text);
        snprintf(r->said, sizeof(r->said), "%s", text);
    }
}

static void
decide(struct daemon *d)
{
    struct policy_decision dec;

    policy_decide(&d->pol, (int64_t)mono_ms(), &dec);
    d->wake_at = dec.wake_at;
    notices(d, &dec);
    switch (dec.action) {
    case POLICY_UPLOAD:
    case POLICY_DOWNLOAD:
    case POLICY_SYNC:
        start_sync(d, &dec);
        break;
    case POLICY_ASK:
        ask(d, &dec);
        break;
    case POLICY_NONE:
        log_wait(d, &dec);
        break;
    }
    tell_remover(d, &dec);
}

/* ------------------------------------------------------------ hub control */

static int
answer(struct chan *ch, uint64_t job, int ok, const char *reason,
       unsigned retry_after)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__BackupAnswer a = SIMSYNC__BACKUP_ANSWER__INIT;

    a.job = job;
    a.ok = ok;
    a.reason = (char *)(reason ? reason : "");
    a.retry_after_s = ok ? 0 : retry_after;
    env.msg_case = SIMSYNC__ENVELOPE__MSG_BACKUP_ANSWER;
    env.backup_answer = &a;
    /* BUSY or OK never waits behind bulk on a shared link. */
    return node_send_env_urgent(ch, &env);
}

static int
on_backup_request(struct daemon *d, const Simsync__BackupRequest *q)
{
    char why[256] = "";
    int rc;

    if (d->running && d->kind == WORK_BACKUP) {
        snprintf(why, sizeof(why), "building a backup already");
    } else {
        rc = simsync_busy_reason(d->n, &d->o, why, sizeof(why));
        if (rc != SIMSYNC_OK)
            return rc;
        if (why[0] == '\0' && d->running)
            snprintf(why, sizeof(why), "%s",
                     d->kind == WORK_SYNC ? "syncing with the hub"
                                          : "running a restore job");
    }
    if (why[0] != '\0') {
        dlog(d, "backup request %u: BUSY, %s (retry after %us)", q->attempt,
             why, d->o.retry_after_s);
        return answer(d->l.ch, q->job, 0, why, d->o.retry_after_s);
    }
    dlog(d, "backup request %u: OK, backing up", q->attempt);
    rc = answer(d->l.ch, q->job, 1, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = worker_start(d, WORK_BACKUP, q->job);
    return rc;
}

/* One message on the control connection. */
static int
control_in(struct daemon *d)
{
    Simsync__Envelope *in = NULL;
    int rc = node_recv_env(d->l.ch, (void **)&in);

    if (rc != SIMSYNC_OK)
        return rc;
    switch (in->msg_case) {
    case SIMSYNC__ENVELOPE__MSG_BACKUP_REQUEST:
        rc = on_backup_request(d, in->backup_request);
        break;
    case SIMSYNC__ENVELOPE__MSG_PING:
        break;
    case SIMSYNC__ENVELOPE__MSG_NOTICES: {
        struct hello_state hs;
        memset(&hs, 0, sizeof(hs));
        for (size_t i = 0; i < in->notices->n_notices; i++)
            dlog(d, "notice: %s", in->notices->notices[i]->text);
        rc = node_hello_absorb(d->n, &hs, in->notices->notices,
                               in->notices->n_notices, NULL, 0);
        break;
    }
    case SIMSYNC__ENVELOPE__MSG_HUB_CHANGES:
        dlog(d, "the hub has changes from another terminal");
        feed(d, POLICY_EV_HUB_HAS_CHANGES, d->pending);
        break;
    case SIMSYNC__ENVELOPE__MSG_RESTORE_JOB:
        dlog(d, "restore job %llu from terminal %s",
             (unsigned long long)in->restore_job->id,
             in->restore_job->from_terminal);
        rc = node_job_store(d->n, in->restore_job);
        d->jobs_check_at = mono_ms();
        break;
    default:
        rc = SIMSYNC_EPROTO;
    }
    simsync__envelope__free_unpacked(in, NULL);
    return rc;
}

/* Open the control connection (the worker is idle). */
static void
control_open(struct daemon *d)
{
    uint32_t mask;
    int rc = check_sim_binding(d->n);

    if (rc == SIMSYNC_OK)
        rc = link_open(d->n, d->n->hub_addr, d->n->hub_pk, NULL, &d->l);
    if (rc == SIMSYNC_OK)
        rc = node_hello(d->n, &d->l, SIMSYNC__OP__OP_CONTROL, d->n->classes,
                        &mask);
    if (rc != SIMSYNC_OK) {
        dlog(d, "no control connection: %s; again in %us",
             d->n->err[0] ? d->n->err : simsync_strerror(rc),
             d->backoff / 1000);
        link_close(&d->l);
        d->connect_at = mono_ms() + d->backoff;
        d->backoff =
            d->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d->backoff * 2;
        return;
    }
    d->connected = 1;
    d->backoff = BACKOFF_MIN_MS;
    d->last_ping = mono_ms();
    d->jobs_check_at = mono_ms(); /* the HelloReply may bring some */
    dlog(d, "connected to the hub at %s", d->n->hub_addr);
}

/* The pending-size backup trigger (the worker is idle). */
static int
check_pending(struct daemon *d)
{
    uint64_t items, bytes;
    int rc;

    scan(d); /* fresh numbers; changes go to the policy too */
    rc = simsync_backup_pending(d->n, &items, &bytes);
    if (rc != SIMSYNC_OK)
        return rc;
    if (bytes < d->o.backup_pending_bytes)
        return SIMSYNC_OK;
    dlog(d, "%llu bytes in %llu changed items are in no generation "
            "(limit %llu): backing up",
         (unsigned long long)bytes, (unsigned long long)items,
         (unsigned long long)d->o.backup_pending_bytes);
    return worker_start(d, WORK_BACKUP, 0);
}

/* Hub work while connected and idle: restore jobs first, then the
 * pending-size trigger. */
static int
control_idle(struct daemon *d, uint64_t now)
{
    size_t njobs = 0;
    int rc = SIMSYNC_OK;

    if (d->jobs_check_at != 0 && now >= d->jobs_check_at) {
        d->jobs_check_at = 0;
        if (node_jobs_waiting(d->n, &njobs) == SIMSYNC_OK && njobs > 0)
            rc = worker_start(d, WORK_JOBS, 0);
    } else if (d->o.backup_pending_bytes > 0 &&
               now - d->last_check >= (uint64_t)d->o.check_every_s * 1000) {
        d->last_check = now;
        int prc = check_pending(d);
        if (prc != SIMSYNC_OK)
            dlog(d, "pending-size check failed: %s",
                 d->n->err[0] ? d->n->err : simsync_strerror(prc));
    }
    return rc;
}

static int
ping(struct daemon *d, uint64_t now)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__Ping p = SIMSYNC__PING__INIT;

    p.t = node_now_ms();
    env.msg_case = SIMSYNC__ENVELOPE__MSG_PING;
    env.ping = &p;
    d->last_ping = now;
    return node_send_env(d->l.ch, &env);
}

/* A peer's session applied versions (server's thread): wake the loop. */
static void
serve_applied(void *arg, uint64_t count)
{
    struct daemon *d = arg;
    char one = 1;

    atomic_fetch_add(&d->peer_applied, count);
    if (write(d->wake[1], &one, 1) < 0) {
        /* The loop looks at least once a second anyway. */
    }
}

/* What paired peers brought is not a local change of this node, but it
 * must go on to the hub like one: tell the policy that data changed. */
static void
peer_news(struct daemon *d)
{
    uint64_t n = atomic_exchange(&d->peer_applied, 0);

    if (n == 0)
        return;
    record_event(d,
                 "a paired node's sync brought %" PRIu64 " change%s; they "
                 "go on to the hub",
                 n, n == 1 ? "" : "s");
    feed(d, POLICY_EV_DATA_CHANGED, d->pending);
}

/* ------------------------------------------------------------ the loop */

/* Someone typed on a terminal since the last look: USER_ACTIVITY. */
static void
poll_activity(struct daemon *d)
{
    int64_t t = daemon_events_activity(d->ttydir);

    if (t > d->activity_ns) {
        int first = d->activity_ns == 0;
        d->activity_ns = t;
        if (!first)
            feed(d, POLICY_EV_USER_ACTIVITY, d->pending);
    }
}

static void
poll_battery(struct daemon *d)
{
    int level, charging;

    daemon_events_battery(d->psdir, &level, &charging);
    if (level == d->level && charging == d->charging)
        return;
    d->level = level;
    d->charging = charging;
    if (level >= 0)
        record_event(d, "battery at %d%%, %s", level,
                     charging ? "charging" : "not charging");
    feed(d, POLICY_EV_BATTERY, 0);
}

static void
on_changes(struct daemon *d, const struct daemon_changes *ch, uint64_t now)
{
    const char *problem;

    if (ch->data) {
        if (!d->dirty)
            d->dirty_first = now;
        d->dirty = 1;
        d->dirty_last = now;
    }
    if (ch->sim)
        sim_settle(d, 1);
    if (ch->policy) {
        char msg[DAEMON_LINE_MAX];
        reload_policy(d, msg, sizeof(msg));
    }
    problem = d->w ? daemon_events_watch_problem(d->w) : "";
    if (strcmp(problem, d->watch_said) != 0) {
        if (problem[0] != '\0')
            record_event(d, "%s", problem);
        snprintf(d->watch_said, sizeof(d->watch_said), "%s", problem);
    }
}

static int
min_ms(int a, uint64_t at, uint64_t now)
{
    if (at <= now)
        return 0;
    return at - now < (uint64_t)a ? (int)(at - now) : a;
}

/* How long poll() may sleep. */
static int
sleep_ms(struct daemon *d, uint64_t now)
{
    int t = TICK_MS;

    if (!d->running) {
        if (d->wake_at != POLICY_NEVER && d->wake_at >= 0)
            t = min_ms(t, (uint64_t)d->wake_at, now);
        if (d->dirty)
            t = min_ms(t, d->dirty_last + SETTLE_MS, now);
    }
    t = min_ms(t, d->polled_at + POLL_EVERY_MS, now);
    if (d->connected)
        t = min_ms(t, d->last_ping + PING_EVERY_MS, now);
    return t;
}

/* Work that needs the node, done while the worker is idle. */
static void
idle_work(struct daemon *d, uint64_t now)
{
    if (d->force_scan || (d->dirty && (now - d->dirty_last >= SETTLE_MS ||
                                       now - d->dirty_first >= SETTLE_MAX_MS)))
        scan(d);
    decide(d);
    if (!d->running && d->connected && control_idle(d, now) != SIMSYNC_OK)
        link_drop(d, "cannot start the work the hub asked for");
    if (!d->running && !d->connected && d->sim != DSIM_OUT &&
        now >= d->connect_at)
        control_open(d);
}

static void
loop_once(struct daemon *d)
{
    struct pollfd p[4 + MAX_CLIENTS];
    struct daemon_changes ch = {0, 0, 0};
    uint64_t now = mono_ms();
    int np = 0, i_wake, i_watch = -1, i_listen = -1, i_link = -1;
    int i_cl[MAX_CLIENTS];

    i_wake = np;
    p[np++] = (struct pollfd){d->wake[0], POLLIN, 0};
    if (d->w != NULL) {
        i_watch = np;
        p[np++] = (struct pollfd){daemon_events_watch_fd(d->w), POLLIN, 0};
    }
    if (d->listen_fd >= 0) {
        i_listen = np;
        p[np++] = (struct pollfd){d->listen_fd, POLLIN, 0};
    }
    if (d->connected) {
        i_link = np;
        p[np++] = (struct pollfd){conn_pollfd(d->l.conn), POLLIN, 0};
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        i_cl[i] = -1;
        if (d->cl[i].fd >= 0) {
            i_cl[i] = np;
            p[np++] = (struct pollfd){d->cl[i].fd, POLLIN, 0};
        }
    }
    if (poll(p, (nfds_t)np, sleep_ms(d, now)) < 0 && errno != EINTR)
        usleep(100000);
    now = mono_ms();
    if (p[i_wake].revents & POLLIN) {
        char buf[16];
        while (read(d->wake[0], buf, sizeof(buf)) > 0) {
        }
    }
    if (d->running && atomic_load(&d->done) && worker_reap(d) != SIMSYNC_OK)
        link_drop(d, "cannot report the backup to the hub");
    peer_news(d);
    if (i_watch >= 0 && (p[i_watch].revents & POLLIN))
        daemon_events_watch_read(d->w, &ch);
    if (now - d->polled_at >= POLL_EVERY_MS) {
        d->polled_at = now;
        poll_battery(d);
        poll_activity(d);
        if (d->w != NULL)
            daemon_events_watch_retry(d->w, &ch);
    }
    on_changes(d, &ch, now);
    if (i_listen >= 0 && (p[i_listen].revents & POLLIN))
        client_accept(d);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (i_cl[i] >= 0 && d->cl[i].fd >= 0 &&
            (p[i_cl[i]].revents & (POLLIN | POLLHUP | POLLERR)))
            client_read(d, &d->cl[i]);
    if (i_link >= 0 && d->connected &&
        (p[i_link].revents & (POLLIN | POLLHUP | POLLERR))) {
        int rc = control_in(d);
        if (rc != SIMSYNC_OK)
            link_drop(d, simsync_strerror(rc));
    }
    if (d->connected && now - d->last_ping >= PING_EVERY_MS &&
        ping(d, now) != SIMSYNC_OK)
        link_drop(d, "the ping failed");
    if (!d->running)
        idle_work(d, now);
}

/* Start: what the policy needs to know before the first decision. */
static void
begin(struct daemon *d)
{
    char err[300];
    struct node_pending p;
    struct scan_stats ss;
    enum sim_file f;
    int rc;

    if (daemon_ctl_policy_load(d->n->home, &d->cfg, err, sizeof(err)) !=
        SIMSYNC_OK) {
        policy_cfg_default(&d->cfg);
        record_event(d,
                     "the stored policy is not valid, using the "
                     "defaults: %s",
                     err);
    }
    if (policy_init(&d->pol, &d->cfg, (int64_t)mono_ms()) != SIMSYNC_OK) {
        /* Loaded configurations are checked: only the defaults are left. */
        policy_cfg_default(&d->cfg);
        if (policy_init(&d->pol, &d->cfg, (int64_t)mono_ms()) != SIMSYNC_OK)
            abort();
    }
    d->level = -1;
    d->polled_at = mono_ms();
    poll_battery(d);
    rc = node_pending_up(d->n, 1, &ss, &p);
    if (rc == SIMSYNC_OK) {
        d->counter = p.counter;
        d->pending = p.bytes;
    } else {
        record_event(d, "scanning the class folders failed: %s",
                     d->n->err[0] ? d->n->err : simsync_strerror(rc));
    }
    feed(d, POLICY_EV_START, d->pending);
    f = sim_file(d);
    d->sim = f == SIMF_OURS ? DSIM_IN : DSIM_OUT;
    if (d->sim == DSIM_OUT)
        feed(d, POLICY_EV_SIM_REMOVED, 0);
    record_event(d,
                 "daemon started: %s; %" PRIu64
                 " bytes to upload; 'simsync policy show' lists the policy",
                 f == SIMF_OURS   ? "the subscriber's SIM is in"
                 : f == SIMF_NONE ? "no SIM inserted"
                                  : "a SIM of another subscriber is in",
                 d->pending);
}

/* A line from the peer server's thread: straight to the daemon's output
 * callback, which may then run on two threads at once (the program's
 * writes each line with one stdio call); the decision log stays the main
 * thread's. */
static void
serve_line(void *arg, const char *line)
{
    struct daemon *d = arg;
    char buf[600];

    if (d->o.log == NULL)
        return;
    snprintf(buf, sizeof(buf), "serve: %s", line);
    d->o.log(d->o.log_arg, buf);
}

static void
end(struct daemon *d)
{
    char path[PATH_MAX + 16];

    peer_serve_stop(d->srv); /* a peer's session in flight ends first */
    worker_join(d); /* a sync or backup in flight finishes first */
    if (d->connected)
        link_close(&d->l);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (d->cl[i].fd >= 0)
            close(d->cl[i].fd);
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        snprintf(path, sizeof(path), "%s/%s", d->n->home, DAEMON_SOCK);
        unlink(path);
    }
    record_event(d, "daemon stopped");
    daemon_events_watch_close(d->w);
    daemon_log_close(d->log);
    if (d->wake[0] >= 0) {
        close(d->wake[0]);
        close(d->wake[1]);
    }
    if (d->lock_fd >= 0)
        close(d->lock_fd);
}

int
simsync_daemon(struct simsync_node *n, const struct simsync_daemon_opts *o,
               volatile int *stop)
{
    struct daemon *d;
    int rc;

    if (strcmp(n->role, "hub") == 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "the daemon runs on terminals; a hub serves with "
                         "'simsync hub serve'");
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this terminal is not registered; run 'simsync "
                         "register' first");
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SIMSYNC_ENOMEM;
    d->n = n;
    d->o = *o;
    d->stop = stop;
    d->psdir =
        o->power_supply_dir ? o->power_supply_dir : "/sys/class/power_supply";
    d->ttydir = o->tty_dir ? o->tty_dir : "/dev";
    d->activity_ns = daemon_events_activity(d->ttydir);
    if (d->o.check_every_s == 0)
        d->o.check_every_s = 10;
    if (d->o.retry_after_s == 0)
        d->o.retry_after_s = 60;
    d->backoff = BACKOFF_MIN_MS;
    d->wake[0] = d->wake[1] = -1;
    d->listen_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        d->cl[i].fd = -1;
    rc = daemon_events_lock(n->home, &d->lock_fd);
    if (rc != SIMSYNC_OK) {
        free(d);
        return rc == SIMSYNC_EBUSY
                   ? node_fail(n, rc,
                               "another daemon runs for %s already; stop it "
                               "first",
                               n->home)
                   : node_fail(n, rc, "cannot lock %s/%s", n->home,
                               DAEMON_LOCK);
    }
    if (pipe2(d->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        close(d->lock_fd);
        free(d);
        return node_fail(n, SIMSYNC_EIO, "cannot make a pipe for the daemon");
    }
    if (o->listen != NULL) {
        /* The sessions of paired peers block on their link: they run on
         * the server's own thread, not in this loop (peer_serve.c). */
        struct peer_serve_hooks hooks = {serve_line, serve_applied, d};
        const char *addrs[PEER_SERVE_MAX];
        size_t naddrs = 0;

        addrs[naddrs++] = o->listen;
        for (size_t i = 0; i < o->n_listen_more && naddrs < PEER_SERVE_MAX;
             i++)
            addrs[naddrs++] = o->listen_more[i];
        rc = peer_serve_start(n, addrs, naddrs, &hooks, &d->srv);
        if (rc != SIMSYNC_OK) {
            close(d->wake[0]);
            close(d->wake[1]);
            close(d->lock_fd);
            free(d);
            return rc;
        }
        dlog(d, "serving paired nodes on %s", peer_serve_addr(d->srv));
    }
    if (daemon_log_open(n->home, &d->log) != SIMSYNC_OK)
        dlog(d, "cannot open the decision log %s/%s; going on without it",
             n->home, DAEMON_LOG);
    if (daemon_events_listen(n->home, &d->listen_fd) != SIMSYNC_OK)
        dlog(d,
             "cannot listen on %s/%s: 'sim remove' and 'policy confirm' "
             "will not reach this daemon",
             n->home, DAEMON_SOCK);
    if (daemon_events_watch_open(n->home, n->data_dir, &d->w) != SIMSYNC_OK)
        dlog(d, "no inotify: data changes are found by the periodic sync "
                "only, SIM changes by 'sim insert' are not seen");
    begin(d);
    while (!*stop)
        loop_once(d);
    end(d);
    free(d);
    return SIMSYNC_OK;
}
