/* node_status.c -- sync health: what is pending each way, what blocks a
 * terminal from being in sync and backed up, and for how long. Pure reads;
 * every reason says what would clear it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "folder.h"
#include "node.h"

#define COUNT_DEPTH 32 /* as deep as the scanner looks */
/* A backup older than this is reported. */
#define BACKUP_STALE_MS (7ull * 24 * 3600 * 1000)

static void reason(struct simsync_health *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reason(struct simsync_health *h, const char *fmt, ...)
{
    va_list ap;

    if (h->nreasons == SIMSYNC_HEALTH_REASONS)
        return;
    va_start(ap, fmt);
    vsnprintf(h->reasons[h->nreasons], sizeof(h->reasons[0]), fmt, ap);
    va_end(ap);
    h->nreasons++;
}

/* "3 days", "5 h", "12 min", "40 s". */
static void
age(char *out, size_t len, uint64_t now_ms, uint64_t then_ms)
{
    uint64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;

    if (s >= 2 * 86400)
        snprintf(out, len, "%llu days", (unsigned long long)(s / 86400));
    else if (s >= 3600)
        snprintf(out, len, "%llu h", (unsigned long long)(s / 3600));
    else if (s >= 60)
        snprintf(out, len, "%llu min", (unsigned long long)(s / 60));
    else
        snprintf(out, len, "%llu s", (unsigned long long)s);
}

/* Regular files (and their bytes) below the folder `at` (consumed), as deep as
 * the scanner looks, without following symlinks. */
static void
count_tree(int at, int depth, uint64_t *files, uint64_t *bytes)
{
    DIR *d = fdopendir(at);
    struct dirent *e;

    if (d == NULL) {
        close(at);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strncmp(e->d_name, FOLDER_TMP_PREFIX, strlen(FOLDER_TMP_PREFIX)) ==
                0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            (*files)++;
            *bytes += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode) && depth < COUNT_DEPTH) {
            int sub = openat(dirfd(d), e->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                count_tree(sub, depth + 1, files, bytes);
        }
    }
    closedir(d);
}

void
node_unsynced_files(struct simsync_node *n, uint64_t *files, uint64_t *bytes,
                    char *names, size_t len)
{
    int datafd = open(n->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t off = 0;

    *files = *bytes = 0;
    names[0] = '\0';
    if (datafd < 0)
        return;
    for (int c = 0; c < CLS_COUNT; c++) {
        uint64_t f = 0, b = 0;
        int fd;
        if (n->classes & (1u << c))
            continue;
        fd = openat(datafd, class_name(c),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        count_tree(fd, 0, &f, &b);
        if (f > 0 && off < len) {
            int k = snprintf(names + off, len - off, "%s%s", off ? ", " : "",
                             class_name(c));
            if (k > 0)
                off += (size_t)k;
        }
        *files += f;
        *bytes += b;
    }
    close(datafd);
}

/* The daemon's last finished sync, and the last wait after it. */
static int
log_fn(void *arg, const struct simsync_log_entry *e)
{
    struct simsync_health *h = arg;

    if (strcmp(e->kind, "done") == 0) {
        snprintf(h->daemon_result, sizeof(h->daemon_result), "%s", e->result);
        h->daemon_sync_ms = e->time_ms;
        h->daemon_waits[0] = '\0';
    } else if (strcmp(e->kind, "wait") == 0 || strcmp(e->kind, "ask") == 0) {
        snprintf(h->daemon_waits, sizeof(h->daemon_waits), "%s", e->text);
    } else if (strcmp(e->kind, "start") == 0) {
        h->daemon_waits[0] = '\0';
    }
    return 0;
}

int
node_daemon_running(const char *home)
{
    char path[PATH_MAX];
    int fd, busy;

    /* Probe without creating the lock file: no file, no daemon. */
    if (snprintf(path, sizeof(path), "%s/%s", home, DAEMON_LOCK) >=
        (int)sizeof(path))
        return 0;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

int
simsync_health(struct simsync_node *n, int scan, uint64_t now_ms,
               struct simsync_health *h)
{
    struct simsync_class_status cls[CLS_COUNT];
    struct simsync_log_pos pos = {0, 0};
    char sim_why[sizeof(n->err)], when[32], names[128];
    size_t count = 0;
    int rc;

    if (n == NULL || h == NULL)
        return SIMSYNC_EINVAL;
    memset(h, 0, sizeof(*h));
    if (scan) {
        struct scan_stats ss;
        struct node_pending p;
        rc = node_pending_up(n, 1, &ss, &p);
        /* Held-back deletions are a finding here, not a failure: the
         * rest of the scan was recorded. */
        if (rc == SIMSYNC_EMASSDEL) {
            rc = SIMSYNC_OK;
            n->err[0] = '\0';
        }
        if (rc != SIMSYNC_OK)
            return rc;
        h->guarded = ss.guarded;
    }
    rc = simsync_status(n, cls, CLS_COUNT, &count, &h->last_sync_ms);
    if (rc != SIMSYNC_OK)
        return rc;
    for (size_t i = 0; i < count; i++) {
        h->pending_up += cls[i].pending_up;
        h->pending_down += cls[i].pending_down;
        h->conflicts += cls[i].conflicts;
    }
    rc = check_sim_binding(n);
    h->sim_ok = rc == SIMSYNC_OK;
    snprintf(sim_why, sizeof(sim_why), "%s",
             n->err[0] ? n->err : simsync_strerror(rc));
    n->err[0] = '\0';
    rc = node_backup_newest(n, &h->backup_gen, &h->backup_ms);
    if (rc != SIMSYNC_OK)
        return rc;
    {
        uint64_t bytes;
        node_unsynced_files(n, &h->unsynced_files, &bytes, names,
                            sizeof(names));
    }
    h->daemon_running = node_daemon_running(n->home);
    if (simsync_log_read(n, &pos, log_fn, h) != SIMSYNC_OK)
        h->daemon_result[0] = '\0'; /* no readable log: nothing known */

    if (!h->sim_ok)
        reason(h, "nothing syncs: %s", sim_why);
    if (h->pending_up > 0) {
        if (h->daemon_running)
            reason(h,
                   "%llu local change%s wait%s for the hub; the daemon "
                   "uploads when its policy says ('simsync log' tells why "
                   "it waits, 'simsync policy run upload' uploads now)",
                   (unsigned long long)h->pending_up,
                   h->pending_up == 1 ? "" : "s",
                   h->pending_up == 1 ? "s" : "");
        else
            reason(h,
                   "%llu local change%s %s not on the hub yet: run "
                   "'simsync sync', or 'simsync daemon' to sync by itself",
                   (unsigned long long)h->pending_up,
                   h->pending_up == 1 ? "" : "s",
                   h->pending_up == 1 ? "is" : "are");
    }
    if (h->guarded > 0)
        reason(h,
               "%llu file%s missing from the class folders %s not deleted "
               "anywhere (too many at once): 'simsync sync --allow-delete' "
               "if that is meant",
               (unsigned long long)h->guarded, h->guarded == 1 ? "" : "s",
               h->guarded == 1 ? "is" : "are");
    if (h->pending_down > 0)
        reason(h,
               "a download was cut short: %llu change%s from the hub still "
               "to come; the next sync continues it",
               (unsigned long long)h->pending_down,
               h->pending_down == 1 ? "" : "s");
    if (h->daemon_running && h->daemon_waits[0] != '\0')
        reason(h, "the daemon waits: %s", h->daemon_waits);
    if (strcmp(h->daemon_result, "failed") == 0) {
        age(when, sizeof(when), now_ms, h->daemon_sync_ms);
        reason(h, "the daemon's last sync failed (%s ago); 'simsync log' "
                  "has the error",
               when);
    }
    if (h->conflicts > 0)
        reason(h, "%llu conflict%s wait%s for a decision: 'simsync conflicts'",
               (unsigned long long)h->conflicts, h->conflicts == 1 ? "" : "s",
               h->conflicts == 1 ? "s" : "");
    if (h->unsynced_files > 0)
        reason(h,
               "%llu file%s in %s, which this terminal does not sync, %s "
               "neither synced nor backed up: 'simsync classes' adds a class",
               (unsigned long long)h->unsynced_files,
               h->unsynced_files == 1 ? "" : "s", names,
               h->unsynced_files == 1 ? "is" : "are");
    if (h->last_sync_ms == 0)
        reason(h, "this terminal never completed a sync: 'simsync sync'");
    if (h->backup_gen == 0) {
        reason(h, "no backup generation is known here: 'simsync backup "
                  "now' (or 'simsync backup list' to look at the hub)");
    } else if (now_ms > h->backup_ms &&
               now_ms - h->backup_ms > BACKUP_STALE_MS) {
        age(when, sizeof(when), now_ms, h->backup_ms);
        reason(h, "the newest backup (generation %llu) is %s old: 'simsync "
                  "backup now'",
               (unsigned long long)h->backup_gen, when);
    }
    return SIMSYNC_OK;
}
