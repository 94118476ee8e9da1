/* daemon.c -- the terminal daemon's side of hub-initiated backups (seed
 * 000 FIG 5) and of terminal-initiated ones (FIG 6, the pending-size
 * trigger).
 *
 * One control connection to the hub, kept open and re-opened with
 * exponential backoff. The hub sends BackupRequests on it; the daemon
 * answers BUSY (a backup is being built, the user is operating the
 * terminal, the battery is low) or OK, and then backs up on a worker
 * thread over a connection of its own, reporting the result here.
 * Restore jobs pushed by the hub run on the same worker.
 *
 * Threads: the worker uses the node (its store is thread-safe; its error
 * text is not). While the worker runs, the main thread only moves frames
 * on the control channel and writes to the store; anything that could set
 * the node's error waits until the worker is joined. */
#define _GNU_SOURCE /* nftw's FTW_PHYS */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "folder.h"
#include "node.h"
#include "transport.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define PING_EVERY_MS 20000

struct daemon {
    struct simsync_node *n;
    struct simsync_daemon_opts o;
    volatile int *stop;
    /* The worker. */
    pthread_t th;
    int running;
    atomic_int done;
    int kind; /* WORK_BACKUP, WORK_JOBS */
    uint64_t job;
    int rc;
    struct simsync_backup_report rep;
    char err[512];
    size_t jobs_ran;
    /* When to look for restore jobs (0: nothing new since the last look):
     * at connect, when one is pushed, and 30 s after a failed run. */
    uint64_t jobs_check_at;
};

enum { WORK_BACKUP, WORK_JOBS };

static void dlog(struct daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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

/* Sleep up to ms, waking early when asked to stop. */
static void
nap(volatile int *stop, unsigned ms)
{
    for (unsigned t = 0; t < ms && !*stop; t += 50)
        usleep(50000);
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

    d->n->err[0] = '\0';
    if (d->kind == WORK_BACKUP) {
        struct simsync_backup_opts bo = {0, d->job, 0};
        d->rc = simsync_backup_run(d->n, &bo, &d->rep);
    } else {
        d->rc = simsync_jobs_run(d->n, NULL, NULL, &d->jobs_ran);
    }
    snprintf(d->err, sizeof(d->err), "%s",
             d->n->err[0] ? d->n->err : simsync_strerror(d->rc));
    atomic_store(&d->done, 1);
    return NULL;
}

static int
worker_start(struct daemon *d, int kind, uint64_t job)
{
    d->kind = kind;
    d->job = job;
    d->rc = SIMSYNC_OK;
    d->jobs_ran = 0;
    memset(&d->rep, 0, sizeof(d->rep));
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

/* The worker finished: report, and tell the hub about its backup. */
static int
worker_reap(struct daemon *d, struct chan *ch)
{
    Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
    Simsync__BackupResult res = SIMSYNC__BACKUP_RESULT__INIT;

    worker_join(d);
    if (d->kind == WORK_JOBS) {
        dlog(d, "restore jobs: %zu run%s%s", d->jobs_ran,
             d->rc ? ", then: " : "", d->rc ? d->err : "");
        if (d->rc != SIMSYNC_OK)
            d->jobs_check_at = node_now_ms() + 30000;
        return SIMSYNC_OK;
    }
    if (d->rc == SIMSYNC_OK)
        dlog(d, "backup%s: generation %llu, %llu items, %llu chunk bytes sent",
             d->job ? " for the hub" : " (pending changes)",
             (unsigned long long)d->rep.gen, (unsigned long long)d->rep.items,
             (unsigned long long)d->rep.chunk_bytes_sent);
    else
        dlog(d, "backup failed: %s", d->err);
    if (d->job == 0 || ch == NULL)
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
    return node_send_env(ch, &env);
}

/* ------------------------------------------------------------ control */

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
    return node_send_env(ch, &env);
}

static int
on_request(struct daemon *d, struct chan *ch, const Simsync__BackupRequest *q)
{
    char why[256] = "";
    int rc;

    if (d->running) {
        snprintf(why, sizeof(why), "building a backup already");
    } else {
        rc = simsync_busy_reason(d->n, &d->o, why, sizeof(why));
        if (rc != SIMSYNC_OK)
            return rc;
    }
    if (why[0] != '\0') {
        dlog(d, "backup request %u: BUSY, %s (retry after %us)", q->attempt,
             why, d->o.retry_after_s);
        return answer(ch, q->job, 0, why, d->o.retry_after_s);
    }
    dlog(d, "backup request %u: OK, backing up", q->attempt);
    rc = answer(ch, q->job, 1, NULL, 0);
    if (rc == SIMSYNC_OK)
        rc = worker_start(d, WORK_BACKUP, q->job);
    return rc;
}

/* The pending-size trigger (only while no worker runs). */
static int
check_pending(struct daemon *d)
{
    struct replica r;
    struct scan_stats ss;
    uint64_t items, bytes;
    int rc = replica_setup(d->n, &r);

    if (rc != SIMSYNC_OK)
        return rc;
    rc = folder_scan(&r, d->n->classes, 0, &ss);
    keys_wipe(&r.keys);
    if (rc != SIMSYNC_OK && rc != SIMSYNC_EMASSDEL)
        return rc;
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

static int
control_loop(struct daemon *d, struct link *l)
{
    uint64_t last_ping = node_now_ms(), last_check = 0;
    int rc = SIMSYNC_OK;

    while (rc == SIMSYNC_OK && !*d->stop) {
        struct pollfd pfd = {conn_pollfd(l->conn), POLLIN, 0};
        uint64_t now;

        if (poll(&pfd, 1, 200) > 0) {
            Simsync__Envelope *in = NULL;
            rc = node_recv_env(l->ch, (void **)&in);
            if (rc != SIMSYNC_OK)
                break;
            switch (in->msg_case) {
            case SIMSYNC__ENVELOPE__MSG_BACKUP_REQUEST:
                rc = on_request(d, l->ch, in->backup_request);
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
            case SIMSYNC__ENVELOPE__MSG_RESTORE_JOB:
                dlog(d, "restore job %llu from terminal %s",
                     (unsigned long long)in->restore_job->id,
                     in->restore_job->from_terminal);
                rc = node_job_store(d->n, in->restore_job);
                d->jobs_check_at = node_now_ms();
                break;
            default:
                rc = SIMSYNC_EPROTO;
            }
            simsync__envelope__free_unpacked(in, NULL);
            if (rc != SIMSYNC_OK)
                break;
        }
        if (d->running && atomic_load(&d->done)) {
            rc = worker_reap(d, l->ch);
            if (rc != SIMSYNC_OK)
                break;
        }
        now = node_now_ms();
        if (now - last_ping >= PING_EVERY_MS) {
            Simsync__Envelope env = SIMSYNC__ENVELOPE__INIT;
            Simsync__Ping p = SIMSYNC__PING__INIT;
            p.t = now;
            env.msg_case = SIMSYNC__ENVELOPE__MSG_PING;
            env.ping = &p;
            rc = node_send_env(l->ch, &env);
            last_ping = now;
        }
        if (rc == SIMSYNC_OK && !d->running) {
            /* Jobs first (delivered at connect or pushed), then the
             * pending-size trigger. */
            size_t njobs = 0;
            if (d->jobs_check_at != 0 && now >= d->jobs_check_at) {
                d->jobs_check_at = 0;
                if (node_jobs_waiting(d->n, &njobs) == SIMSYNC_OK && njobs > 0)
                    rc = worker_start(d, WORK_JOBS, 0);
            } else if (d->o.backup_pending_bytes > 0 &&
                       now - last_check >= (uint64_t)d->o.check_every_s * 1000) {
                last_check = now;
                int prc = check_pending(d);
                if (prc != SIMSYNC_OK)
                    dlog(d, "pending-size check failed: %s",
                         d->n->err[0] ? d->n->err : simsync_strerror(prc));
            }
        }
    }
    return rc;
}

int
simsync_daemon(struct simsync_node *n, const struct simsync_daemon_opts *o,
               volatile int *stop)
{
    struct daemon d;
    unsigned backoff = BACKOFF_MIN_MS;

    memset(&d, 0, sizeof(d));
    d.n = n;
    d.o = *o;
    d.stop = stop;
    if (d.o.check_every_s == 0)
        d.o.check_every_s = 10;
    if (d.o.retry_after_s == 0)
        d.o.retry_after_s = 60;
    if (strcmp(n->role, "hub") == 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "the daemon runs on terminals; a hub serves with "
                         "'simsync hub serve'");
    if (!n->bound)
        return node_fail(n, SIMSYNC_ESTATE,
                         "this terminal is not registered; run 'simsync "
                         "register' first");
    while (!*stop) {
        struct link l = {0};
        uint32_t mask;
        int rc = check_sim_binding(n);

        if (rc == SIMSYNC_OK)
            rc = link_open(n, n->hub_addr, n->hub_pk, NULL, &l);
        if (rc == SIMSYNC_OK)
            rc = node_hello(n, &l, SIMSYNC__OP__OP_CONTROL, n->classes, &mask);
        if (rc != SIMSYNC_OK) {
            dlog(&d, "no control connection: %s; again in %us",
                 n->err[0] ? n->err : simsync_strerror(rc), backoff / 1000);
            link_close(&l);
            nap(stop, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                   : backoff * 2;
            continue;
        }
        backoff = BACKOFF_MIN_MS;
        dlog(&d, "connected to the hub at %s", n->hub_addr);
        d.jobs_check_at = node_now_ms(); /* the HelloReply may bring some */
        rc = control_loop(&d, &l);
        link_close(&l);
        if (d.running) {
            /* The backup has its own connection: let it finish, then
             * reconnect (the hub counts the lost request as failed). */
            worker_join(&d);
            (void)worker_reap(&d, NULL);
        }
        if (!*stop)
            dlog(&d, "control connection lost: %s",
                 simsync_strerror(rc));
    }
    worker_join(&d);
    return SIMSYNC_OK;
}
