/* daemon_events.c -- where the daemon's events come from: inotify on the
 * data folder (every directory below it, new ones included) and on the
 * home (the SIM state file, the stored policy), the battery of a
 * power-supply directory, the control socket's listening side, and the lock
 * that keeps one daemon per home. Nothing here decides anything: daemon.c
 * turns what these report into policy events. */
#define _GNU_SOURCE /* O_DIRECTORY on older libcs */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"

/* What changes a data file or directory; IN_MODIFY too, for programs that
 * keep a file open while they write it. */
#define DATA_MASK                                                              \
    (IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE |          \
     IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |             \
     IN_ONLYDIR | IN_DONT_FOLLOW)
#define HOME_MASK                                                              \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |    \
     IN_ONLYDIR)
#define MAX_DEPTH 64 /* deeper directories are not watched (scans see them) */

/* ------------------------------------------------------------------ lock */

int
daemon_events_lock(const char *home, int *fd)
{
    char path[PATH_MAX];

    *fd = -1;
    if (snprintf(path, sizeof(path), "%s/%s", home, DAEMON_LOCK) >=
        (int)sizeof(path))
        return SIMSYNC_EINVAL;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0)
        return SIMSYNC_EIO;
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(*fd);
        *fd = -1;
        return busy ? SIMSYNC_EBUSY : SIMSYNC_EIO;
    }
    return SIMSYNC_OK;
}

/* --------------------------------------------------------------- socket */

int
daemon_events_listen(const char *home, int *fd)
{
    struct sockaddr_un sa;
    char path[PATH_MAX];
    int dirfd, rc;
    mode_t old;

    *fd = -1;
    if (snprintf(path, sizeof(path), "%s/%s", home, DAEMON_SOCK) >=
            (int)sizeof(path) ||
        daemon_ctl_addr(home, &sa, &dirfd) != SIMSYNC_OK)
        return SIMSYNC_EIO;
    (void)unlink(path); /* left by a daemon that died: we hold the lock */
    *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (*fd < 0) {
        if (dirfd >= 0)
            close(dirfd);
        return SIMSYNC_EIO;
    }
    old = umask(077); /* only the owner may talk to the daemon */
    rc = bind(*fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (dirfd >= 0)
        close(dirfd);
    if (rc != 0 || listen(*fd, 8) != 0) {
        close(*fd);
        *fd = -1;
        return SIMSYNC_EIO;
    }
    return SIMSYNC_OK;
}

/* -------------------------------------------------------------- battery */

/* A small sysfs attribute, without its trailing newline; -1 if absent. */
static int
read_attr(const char *dir, const char *entry, const char *name, char *buf,
          size_t len)
{
    char path[PATH_MAX];
    ssize_t r;
    int fd;

    if (snprintf(path, sizeof(path), "%s/%s/%s", dir, entry, name) >=
        (int)sizeof(path))
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
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

void
daemon_events_battery(const char *dir, int *level, int *charging)
{
    DIR *dh = opendir(dir);
    struct dirent *e;

    *level = -1;
    *charging = 0;
    if (dh == NULL)
        return;
    while ((e = readdir(dh)) != NULL) {
        char type[32], cap[16], status[32], *end;
        long c;

        if (e->d_name[0] == '.' ||
            read_attr(dir, e->d_name, "type", type, sizeof(type)) != 0 ||
            strcmp(type, "Battery") != 0 ||
            read_attr(dir, e->d_name, "capacity", cap, sizeof(cap)) != 0)
            continue;
        errno = 0;
        c = strtol(cap, &end, 10);
        if (errno != 0 || end == cap || *end != '\0' || c < 0 || c > 100)
            continue;
        if (read_attr(dir, e->d_name, "status", status, sizeof(status)) != 0)
            status[0] = '\0';
        if (*level < 0 || c < *level) {
            *level = (int)c;
            *charging =
                strcmp(status, "Charging") == 0 || strcmp(status, "Full") == 0;
        }
    }
    closedir(dh);
}

/* -------------------------------------------------------------- inotify */

struct wdir {
    int wd;
    char *path; /* owned */
};

struct daemon_watch {
    int fd;            /* inotify */
    int home_wd;       /* -1: not watched */
    char *data;        /* the data folder (owned) */
    struct wdir *dirs; /* watched directories of the data tree (owned) */
    size_t n, cap;
    int data_missing; /* the data folder is not watched (yet) */
    int full;         /* a watch failed: the inotify watch limit */
    int rebuild;      /* directories moved, or events were lost */
    char problem[256];
};

int
daemon_events_watch_fd(const struct daemon_watch *w)
{
    return w->fd;
}

const char *
daemon_events_watch_problem(const struct daemon_watch *w)
{
    return w->problem;
}

static struct wdir *
find_wd(struct daemon_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd)
            return &w->dirs[i];
    return NULL;
}

static void
forget_wd(struct daemon_watch *w, int wd)
{
    struct wdir *d = find_wd(w, wd);

    if (d == NULL)
        return;
    free(d->path);
    *d = w->dirs[--w->n];
}

/* Watch one directory. 0 on success or when it is gone already. */
static int
add_dir(struct daemon_watch *w, const char *path)
{
    int wd = inotify_add_watch(w->fd, path, DATA_MASK);
    struct wdir *d;
    char *copy;

    if (wd < 0) {
        if (errno == ENOSPC) {
            w->full = 1;
            return -1;
        }
        return 0; /* ENOENT, ENOTDIR, EACCES: nothing to watch there */
    }
    copy = strdup(path);
    if (copy == NULL)
        return -1;
    d = find_wd(w, wd); /* the same directory, seen again */
    if (d != NULL) {
        free(d->path);
        d->path = copy;
        return 0;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 32;
        struct wdir *nd = realloc(w->dirs, nc * sizeof(*nd));
        if (nd == NULL) {
            free(copy);
            return -1;
        }
        w->dirs = nd;
        w->cap = nc;
    }
    w->dirs[w->n].wd = wd;
    w->dirs[w->n].path = copy;
    w->n++;
    return 0;
}

/* Watch path and every directory below it (symlinks are not followed). */
static void
add_tree(struct daemon_watch *w, const char *path, int depth)
{
    DIR *dh;
    struct dirent *e;

    if (depth > MAX_DEPTH || add_dir(w, path) != 0)
        return;
    dh = opendir(path);
    if (dh == NULL)
        return;
    while ((e = readdir(dh)) != NULL) {
        char sub[PATH_MAX];
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >=
            (int)sizeof(sub))
            continue;
        if (e->d_type == DT_DIR ||
            (e->d_type == DT_UNKNOWN && lstat(sub, &st) == 0 &&
             S_ISDIR(st.st_mode)))
            add_tree(w, sub, depth + 1);
    }
    closedir(dh);
}

static void
drop_tree(struct daemon_watch *w)
{
    for (size_t i = 0; i < w->n; i++) {
        inotify_rm_watch(w->fd, w->dirs[i].wd);
        free(w->dirs[i].path);
    }
    w->n = 0;
}

/* (Re)watch the whole data tree; 1 when the data folder is watched. */
static int
watch_data(struct daemon_watch *w)
{
    struct stat st;

    drop_tree(w);
    w->full = 0;
    w->rebuild = 0;
    w->data_missing = 1;
    w->problem[0] = '\0';
    if (stat(w->data, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    add_tree(w, w->data, 0);
    w->data_missing = w->n == 0;
    if (w->full)
        snprintf(w->problem, sizeof(w->problem),
                 "the inotify watch limit is reached (%zu directories "
                 "watched): some changes are found only by the next sync; "
                 "raise fs.inotify.max_user_watches",
                 w->n);
    return !w->data_missing;
}

int
daemon_events_watch_open(const char *home, const char *data_dir,
                         struct daemon_watch **out)
{
    struct daemon_watch *w;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return SIMSYNC_ENOMEM;
    w->home_wd = -1;
    w->data = strdup(data_dir);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->data == NULL || w->fd < 0) {
        int rc = w->data == NULL ? SIMSYNC_ENOMEM : SIMSYNC_EIO;
        daemon_events_watch_close(w);
        return rc;
    }
    w->home_wd = inotify_add_watch(w->fd, home, HOME_MASK);
    if (w->home_wd < 0) {
        daemon_events_watch_close(w);
        return SIMSYNC_EIO;
    }
    watch_data(w);
    *out = w;
    return SIMSYNC_OK;
}

void
daemon_events_watch_close(struct daemon_watch *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->dirs[i].path);
    free(w->dirs);
    free(w->data);
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}

static void
on_event(struct daemon_watch *w, const struct inotify_event *ev,
         struct daemon_changes *ch)
{
    struct wdir *d;

    if (ev->mask & IN_Q_OVERFLOW) {
        /* Events were lost: assume everything changed. */
        ch->data = ch->sim = ch->policy = 1;
        w->rebuild = 1;
        return;
    }
    if (ev->wd == w->home_wd) {
        if (ev->len == 0)
            return;
        if (strcmp(ev->name, DAEMON_SIM) == 0)
            ch->sim = 1;
        else if (strcmp(ev->name, DAEMON_POLICY) == 0)
            ch->policy = 1;
        return;
    }
    d = find_wd(w, ev->wd);
    if (ev->mask & IN_IGNORED) {
        forget_wd(w, ev->wd); /* its directory is gone */
        if (w->n == 0)
            w->data_missing = 1;
        return;
    }
    if (d == NULL)
        return;
    ch->data = 1;
    if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) ||
        ((ev->mask & IN_ISDIR) && (ev->mask & IN_MOVED_FROM))) {
        /* A directory moved: the paths we keep are stale. */
        w->rebuild = 1;
    } else if ((ev->mask & IN_ISDIR) &&
               (ev->mask & (IN_CREATE | IN_MOVED_TO)) && ev->len > 0) {
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof(sub), "%s/%s", d->path, ev->name) <
            (int)sizeof(sub))
            add_tree(w, sub, 1);
    }
}

void
daemon_events_watch_read(struct daemon_watch *w, struct daemon_changes *ch)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

    for (;;) {
        ssize_t r = read(w->fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            on_event(w, ev, ch);
            p += sizeof(*ev) + ev->len;
        }
    }
    if (w->rebuild && watch_data(w))
        ch->data = 1;
}

void
daemon_events_watch_retry(struct daemon_watch *w, struct daemon_changes *ch)
{
    /* A full watch table stays full: retrying would rebuild it for
     * nothing. */
    if ((w->data_missing || w->rebuild) && watch_data(w))
        ch->data = 1;
}

/* ------------------------------------------------------------- activity */

/* Latest input on any terminal device below dir (/dev/tty[0-9]*,
 * /dev/pts/N): a tty's access time moves when someone types on it, which
 * is how w(1) tells idle time. 0 when none is found. */
static int64_t
newest_atime_in(const char *dir, int pts)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int64_t newest = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        int ok = pts ? (e->d_name[0] >= '0' && e->d_name[0] <= '9')
                     : (strncmp(e->d_name, "tty", 3) == 0 &&
                        e->d_name[3] >= '0' && e->d_name[3] <= '9');
        if (!ok || snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >=
                       (int)sizeof(path))
            continue;
        if (stat(path, &st) == 0) {
            int64_t t = (int64_t)st.st_atim.tv_sec * 1000000000 +
                        st.st_atim.tv_nsec;
            if (t > newest)
                newest = t;
        }
    }
    closedir(d);
    return newest;
}

int64_t
daemon_events_activity(const char *dev_dir)
{
    char pts[PATH_MAX];
    int64_t a = newest_atime_in(dev_dir, 0), b;

    snprintf(pts, sizeof(pts), "%s/pts", dev_dir);
    b = newest_atime_in(pts, 1);
    return a > b ? a : b;
}
