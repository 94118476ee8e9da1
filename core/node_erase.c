/* node_erase.c -- collective erase (seed 003 FIG 20): before a terminal
 * changes hands, check that the inserted SIM is the bound subscriber's,
 * upload what is pending, make sure the hub acknowledged every change this
 * terminal made, then wipe the class folders, the store and the keys.
 *
 * The wipe is made restartable by a marker, <home>/erase.pending, written
 * and synced before the first deletion. While it is there the node does
 * not open: simsync_node_open and simsync_init finish the wipe first. The
 * wipe only removes things, each step accepts that an earlier, interrupted
 * run already removed its part, and the marker goes last. Before the
 * marker, erase has done nothing a sync would not do, so a crash leaves the
 * terminal as it was. docs/erase.md has the whole design.
 *
 * Only what simsync owns is removed: the eight class folders under the
 * data folder (and the data folder itself when it is the default
 * <home>/data and ends up empty), <home>/store, and the node's own files in
 * <home>. Walks go through openat with O_NOFOLLOW, fstatat with
 * AT_SYMLINK_NOFOLLOW and unlinkat: a symlink is removed as a link and
 * never followed, and a file system mounted inside a class folder is not
 * entered. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "folder.h"
#include "node.h"
#include "session.h"

#define MARKER "erase.pending"
#define MARKER_TMP "erase.pending.tmp"
#define MARKER_MAGIC "simsync-erase 1\n"
#define MARKER_MAX (PATH_MAX + 64)
#define ERASE_ROUNDS 3  /* syncs while edits keep arriving */
#define ERASE_DEPTH 128 /* deepest folder the wipe goes into */

/* Key material: overwritten, synced, then unlinked (with the temp files
 * an interrupted atomic write may have left). */
static const char *const key_files[] = {
    "node.key",        "node.key.tmp", "datakey.box",
    "datakey.box.tmp", "password",     "password.tmp",
};
/* The node's other files in its home. config goes last: until then the
 * home still reads as a node (which the marker keeps from opening). */
static const char *const node_files[] = {
    "binding",     "binding.tmp", "sim",         "sim.tmp",
    "backup.lock", "daemon.lock", "daemon.sock", "daemon.log",
    "daemon.log.1", "policy",     "policy.tmp",  "erase.unregistering",
    "password.guard", "config.tmp", "config",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ test hook */

/* Kill points for tests: with SIMSYNC_TEST_ERASE_KILL_AT=K the process
 * kills itself with SIGKILL on reaching step K, exactly as kill -9 would
 * there. Steps: 1 SIM checked, 2 the hub acknowledged everything, 3 the
 * marker is durable, then one per removal. */
struct hook {
    unsigned long at;    /* 0: never */
    unsigned long steps; /* reached so far */
};

static void
hook_init(struct hook *h, unsigned long steps)
{
    const char *s = getenv("SIMSYNC_TEST_ERASE_KILL_AT");
    char *end;

    h->at = 0;
    h->steps = steps;
    if (s != NULL && *s != '\0') {
        unsigned long v = strtoul(s, &end, 10);
        if (*end == '\0')
            h->at = v;
    }
}

static void
hook_step(struct hook *h)
{
    if (++h->steps == h->at)
        raise(SIGKILL);
}

/* ------------------------------------------------------------ wipe */

struct wipe {
    int homefd;
    struct hook *hook;
    struct simsync_erase_report *rep;
    char path[PATH_MAX]; /* what is being removed, for messages */
    char *err;           /* the message on failure (errlen bytes) */
    size_t errlen;
};

static int
errno_code(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return SIMSYNC_ENOSPC;
    case ENOMEM:
        return SIMSYNC_ENOMEM;
    default:
        return SIMSYNC_EIO;
    }
}

/* Say what failed on w->path and return the code for errno `e`. */
static int
wipe_fail(struct wipe *w, int e, const char *what)
{
    if (w->err != NULL && w->errlen > 0)
        snprintf(w->err, w->errlen, "cannot %s %s: %s", what, w->path,
                 strerror(e));
    return errno_code(e);
}

/* Append "/name" to w->path; returns the length to go back to. A path too
 * long is cut: it only names things in messages. */
static size_t
path_push(struct wipe *w, const char *name)
{
    size_t len = strlen(w->path);

    snprintf(w->path + len, sizeof(w->path) - len, "/%s", name);
    return len;
}

static void
path_pop(struct wipe *w, size_t len)
{
    w->path[len] = '\0';
}

static int remove_dir(struct wipe *w, int at, const char *name, dev_t dev,
                      int depth, int top);

/* Remove the entry `name` of the folder `at` (w->path names it) below a folder
 * on device `dev`: anything but a folder is unlinked (a symlink as a link), a
 * folder is emptied and removed. Gone already is fine. */
static int
remove_entry(struct wipe *w, int at, const char *name, dev_t dev, int depth)
{
    struct stat st;

    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? SIMSYNC_OK : wipe_fail(w, errno, "look at");
    if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != dev) {
            if (w->err != NULL && w->errlen > 0)
                snprintf(w->err, w->errlen,
                         "%s is another file system mounted inside a class "
                         "folder; it is not erased: unmount it",
                         w->path);
            return SIMSYNC_EIO;
        }
        if (depth >= ERASE_DEPTH)
            return wipe_fail(w, ENAMETOOLONG, "go deeper into");
        return remove_dir(w, at, name, dev, depth, 0);
    }
    if (unlinkat(at, name, 0) != 0)
        return errno == ENOENT ? SIMSYNC_OK : wipe_fail(w, errno, "remove");
    w->rep->removed_files++;
    if (S_ISREG(st.st_mode))
        w->rep->removed_bytes += (uint64_t)st.st_size;
    hook_step(w->hook);
    return SIMSYNC_OK;
}

/* Empty the folder `name` in the folder `at`, then remove it. A top folder (a
 * class folder, the store) may be a mount point of its own: it is emptied and,
 * when the system will not remove it (EBUSY), left empty. */
static int
remove_dir(struct wipe *w, int at, const char *name, dev_t dev, int depth,
           int top)
{
    struct dirent *e;
    DIR *d;
    int fd, rc = SIMSYNC_OK, again = 1;

    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? SIMSYNC_OK : wipe_fail(w, errno, "open");
    d = fdopendir(fd);
    if (d == NULL) {
        int err = errno;
        close(fd);
        return wipe_fail(w, err, "read");
    }
    /* Removing entries while reading the folder may hide some from this
     * pass: read it again until a pass finds nothing. */
    while (rc == SIMSYNC_OK && again) {
        again = 0;
        rewinddir(d);
        while (rc == SIMSYNC_OK && (e = readdir(d)) != NULL) {
            size_t len;
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            len = path_push(w, e->d_name);
            rc = remove_entry(w, dirfd(d), e->d_name, dev, depth + 1);
            path_pop(w, len);
            again = 1;
        }
    }
    closedir(d);
    if (rc != SIMSYNC_OK)
        return rc;
    if (unlinkat(at, name, AT_REMOVEDIR) != 0) {
        if (errno == ENOENT || (top && errno == EBUSY))
            return SIMSYNC_OK;
        return wipe_fail(w, errno, "remove the folder");
    }
    w->rep->removed_dirs++;
    hook_step(w->hook);
    return SIMSYNC_OK;
}

/* Remove `name` in the folder `at`, whatever it is; a folder may be a mount
 * point. */
static int
remove_top(struct wipe *w, int at, const char *name)
{
    struct stat st;
    size_t len = path_push(w, name);
    int rc;

    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = errno == ENOENT ? SIMSYNC_OK : wipe_fail(w, errno, "look at");
    else if (S_ISDIR(st.st_mode))
        rc = remove_dir(w, at, name, st.st_dev, 0, 1);
    else
        rc = remove_entry(w, at, name, st.st_dev, 0);
    path_pop(w, len);
    return rc;
}

/* Overwrite a key file of the home with zeros and sync it, then remove
 * it. The overwrite is best effort (a file we cannot open for writing is
 * still removed); only a regular file is written to, never through a
 * symlink (O_NOFOLLOW) or into a FIFO (O_NONBLOCK, S_ISREG). */
static int
shred_file(struct wipe *w, const char *name)
{
    static const unsigned char zero[4096];
    struct stat st;
    int fd;

    fd =
        openat(w->homefd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return SIMSYNC_OK;
    if (fd >= 0) {
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            off_t off = 0;
            while (off < st.st_size) {
                size_t chunk = sizeof(zero);
                ssize_t k;
                if ((off_t)chunk > st.st_size - off)
                    chunk = (size_t)(st.st_size - off);
                k = pwrite(fd, zero, chunk, off);
                if (k <= 0)
                    break;
                off += k;
            }
            (void)fsync(fd);
        }
        close(fd);
    }
    return remove_top(w, w->homefd, name);
}

/* Sync a folder's entries to disk (the removals in it). */
static int
sync_dir(struct wipe *w, int fd)
{
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        return wipe_fail(w, errno, "sync");
    return SIMSYNC_OK;
}

/* Write the marker atomically and durably: temp file, fsync, rename,
 * fsync of the home. `data_dir` NULL records the default <home>/data. */
static int
marker_write(struct wipe *w, const char *data_dir)
{
    char text[MARKER_MAX];
    size_t len, off = 0;
    int fd, n, rc = SIMSYNC_OK;

    n = snprintf(text, sizeof(text), "%s%s%s%s", MARKER_MAGIC,
                 data_dir != NULL ? "data=" : "",
                 data_dir != NULL ? data_dir : "",
                 data_dir != NULL ? "\n" : "");
    if (n < 0 || (size_t)n >= sizeof(text))
        return wipe_fail(w, ENAMETOOLONG, "write the erase marker in");
    len = (size_t)n;
    (void)unlinkat(w->homefd, MARKER_TMP, 0);
    fd = openat(w->homefd, MARKER_TMP,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return wipe_fail(w, errno, "write the erase marker in");
    while (rc == SIMSYNC_OK && off < len) {
        ssize_t k = write(fd, text + off, len - off);
        if (k <= 0)
            rc = wipe_fail(w, k < 0 ? errno : EIO, "write the erase marker in");
        else
            off += (size_t)k;
    }
    if (rc == SIMSYNC_OK && fsync(fd) != 0)
        rc = wipe_fail(w, errno, "sync the erase marker in");
    close(fd);
    if (rc == SIMSYNC_OK &&
        renameat(w->homefd, MARKER_TMP, w->homefd, MARKER) != 0)
        rc = wipe_fail(w, errno, "write the erase marker in");
    if (rc == SIMSYNC_OK)
        rc = sync_dir(w, w->homefd);
    if (rc != SIMSYNC_OK) {
        /* Not durable: take it back, so nothing reads as begun. */
        (void)unlinkat(w->homefd, MARKER, 0);
        (void)unlinkat(w->homefd, MARKER_TMP, 0);
    }
    return rc;
}

/* Read the marker: *own 1 for the default data folder, else the folder's
 * path in data. SIMSYNC_EPROTO if it is not a marker we wrote. */
static int
marker_read(int homefd, char *data, size_t len, int *own)
{
    char text[MARKER_MAX + 1];
    const char *p;
    ssize_t r;
    int fd = openat(homefd, MARKER, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return errno_code(errno);
    r = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (r < 0)
        return SIMSYNC_EIO;
    text[r] = '\0';
    if (strncmp(text, MARKER_MAGIC, strlen(MARKER_MAGIC)) != 0)
        return SIMSYNC_EPROTO;
    p = text + strlen(MARKER_MAGIC);
    *own = 1;
    data[0] = '\0';
    if (strncmp(p, "data=", 5) == 0) {
        const char *v = p + 5, *end = strchr(v, '\n');
        size_t n = end != NULL ? (size_t)(end - v) : 0;
        if (end == NULL || n == 0 || n >= len || v[0] != '/')
            return SIMSYNC_EPROTO;
        memcpy(data, v, n);
        data[n] = '\0';
        *own = 0;
    }
    return SIMSYNC_OK;
}

/* The wipe proper, from keys to marker (see the file comment). w->path
 * holds the home's path. */
static int
wipe_run(struct wipe *w, int own_data, const char *data_dir)
{
    char home[PATH_MAX];
    int rc = SIMSYNC_OK, datafd;

    snprintf(home, sizeof(home), "%s", w->path);
    for (size_t i = 0; rc == SIMSYNC_OK && i < NELEM(key_files); i++)
        rc = shred_file(w, key_files[i]);
    if (rc == SIMSYNC_OK)
        rc = remove_top(w, w->homefd, "store");
    if (rc != SIMSYNC_OK)
        return rc;

    /* The data folder is reached as configured (like the sync does); the
     * class folders in it are never followed. */
    if (own_data) {
        snprintf(w->path, sizeof(w->path), "%s", home);
        (void)path_push(w, "data");
        datafd = openat(w->homefd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        snprintf(w->path, sizeof(w->path), "%s", data_dir);
        datafd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (datafd < 0 && errno != ENOENT)
        return wipe_fail(w, errno, "open the data folder");
    for (int c = 0; datafd >= 0 && rc == SIMSYNC_OK && c < CLS_COUNT; c++)
        rc = remove_top(w, datafd, class_name(c));
    if (datafd >= 0) {
        if (rc == SIMSYNC_OK)
            rc = sync_dir(w, datafd);
        close(datafd);
    }
    if (rc != SIMSYNC_OK)
        return rc;
    snprintf(w->path, sizeof(w->path), "%s", home);
    if (own_data) {
        if (unlinkat(w->homefd, "data", AT_REMOVEDIR) == 0) {
            w->rep->removed_dirs++;
            hook_step(w->hook);
        } else if (errno == ENOTDIR) {
            /* <home>/data was a symlink to the real folder: the link. */
            rc = remove_top(w, w->homefd, "data");
        } else if (errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
            /* Not empty: files simsync does not own stay. */
            size_t len = path_push(w, "data");
            rc = wipe_fail(w, errno, "remove the folder");
            path_pop(w, len);
        }
    }
    if (rc != SIMSYNC_OK)
        return rc;

    snprintf(w->path, sizeof(w->path), "%s", home);
    for (size_t i = 0; rc == SIMSYNC_OK && i < NELEM(node_files); i++)
        rc = remove_top(w, w->homefd, node_files[i]);
    if (rc == SIMSYNC_OK)
        rc = sync_dir(w, w->homefd);
    /* Everything is gone and that is on disk: the marker can go. */
    if (rc == SIMSYNC_OK)
        (void)unlinkat(w->homefd, MARKER_TMP, 0);
    if (rc == SIMSYNC_OK && unlinkat(w->homefd, MARKER, 0) != 0 &&
        errno != ENOENT)
        rc = wipe_fail(w, errno, "remove the erase marker in");
    if (rc == SIMSYNC_OK)
        rc = sync_dir(w, w->homefd);
    return rc;
}

int
simsync_erase_pending(const char *home)
{
    char path[PATH_MAX];
    struct stat st;
    int n;

    if (home == NULL)
        return 0;
    n = snprintf(path, sizeof(path), "%s/%s", home, MARKER);
    if (n < 0 || (size_t)n >= sizeof(path))
        return 0;
    return lstat(path, &st) == 0;
}

int
simsync_erase_resume(const char *home, struct simsync_erase_report *rep,
                     char *err, size_t errlen)
{
    struct simsync_erase_report local;
    struct hook h;
    struct wipe w;
    char data[PATH_MAX];
    int own = 1, rc;

    if (rep == NULL)
        rep = &local;
    memset(rep, 0, sizeof(*rep));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!simsync_erase_pending(home))
        return SIMSYNC_OK;
    rep->resumed = 1;
    memset(&w, 0, sizeof(w));
    hook_init(&h, 3); /* the marker is there: step 3 was reached */
    w.hook = &h;
    w.rep = rep;
    w.err = err;
    w.errlen = errlen;
    snprintf(w.path, sizeof(w.path), "%s", home);
    w.homefd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w.homefd < 0)
        return wipe_fail(&w, errno, "open the home");
    rc = marker_read(w.homefd, data, sizeof(data), &own);
    if (rc != SIMSYNC_OK) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     "the erase marker %s/%s is not one simsync wrote (%s); "
                     "remove it only if no erase was started",
                     home, MARKER, simsync_strerror(rc));
    } else {
        rc = wipe_run(&w, own, data);
    }
    close(w.homefd);
    return rc;
}

/* ------------------------------------------------------------ checks */

/* Changes this replica made that the hub has not acknowledged: per class,
 * the journal entries of origin `self` above the hub's acknowledgement
 * slot. Entries of other origins came from the hub or are resolutions
 * every node derives from versions the hub holds. */
struct unacked {
    struct store_txn *txn;
    const uint8_t *sub;
    int cls;
    uint64_t self;
    uint64_t items, bytes;         /* live items count their size */
    uint64_t per_class[CLS_COUNT]; /* items */
};

static int
unacked_fn(const struct dot *d, const uint8_t id[ITEM_ID_BYTES], void *arg)
{
    struct unacked *u = arg;
    Simsync__ItemRecord *rec = NULL;

    if (d->replica != u->self)
        return 0;
    u->items++;
    u->per_class[u->cls]++;
    if (item_get(u->txn, u->sub, u->cls, id, &rec) == SIMSYNC_OK &&
        rec->n_versions == 1 && !rec->versions[0]->deleted)
        u->bytes += rec->versions[0]->size;
    item_record_free(rec);
    return 0;
}

static int
count_unacked(struct simsync_node *n, const struct replica *r,
              struct unacked *u)
{
    uint64_t slot = session_ack_peer(node_peer_of(n->hub_pk));
    struct vv hubk = VV_INIT;
    struct store_txn *txn;
    int rc;

    memset(u, 0, sizeof(*u));
    u->sub = r->sub;
    u->self = n->replica;
    rc = store_txn_begin(n->st, 1, &txn);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot read the store: %s",
                         simsync_strerror(rc));
    u->txn = txn;
    for (int c = 0; rc == SIMSYNC_OK && c < CLS_COUNT; c++) {
        u->cls = c;
        rc = journal_knowledge_get(txn, r->sub, c, slot, &hubk);
        if (rc == SIMSYNC_OK)
            rc = journal_scan(txn, r->sub, c, &hubk, unacked_fn, u);
    }
    store_txn_abort(txn);
    vv_free(&hubk);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot read the journal: %s",
                         simsync_strerror(rc));
    return SIMSYNC_OK;
}

/* Record what changed in the class folders since the last scan, then
 * count what the hub lacks. Deletions the mass-delete guard withholds
 * count as changes the hub lacks. */
static int
rescan_count(struct simsync_node *n, struct replica *r, struct unacked *u)
{
    struct scan_stats scan;
    int rc;

    r->now_ms = node_now_ms();
    rc = folder_scan(r, n->classes, 0, &scan);
    if (rc != SIMSYNC_OK && rc != SIMSYNC_EMASSDEL)
        return node_fail(n, rc, "scanning %s failed: %s", n->data_dir,
                         simsync_strerror(rc));
    rc = count_unacked(n, r, u);
    if (rc == SIMSYNC_OK)
        u->items += scan.guarded;
    return rc;
}

/* "contacts 2, pim 1" for the classes with pending changes. */
static void
format_per_class(const struct unacked *u, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (int c = 0; c < CLS_COUNT && off < len; c++) {
        int k;
        if (u->per_class[c] == 0)
            continue;
        k = snprintf(buf + off, len - off, "%s%s %llu", off ? ", " : "",
                     class_name(c), (unsigned long long)u->per_class[c]);
        if (k < 0)
            break;
        off += (size_t)k;
    }
}

/* Files in the class folders this terminal does not sync: never uploaded,
 * so the wipe would lose them. Names the classes in `names`. */
static void
count_unsynced(struct simsync_node *n, struct simsync_erase_report *rep,
               char *names, size_t len)
{
    node_unsynced_files(n, &rep->unsynced_files, &rep->unsynced_bytes, names,
                        len);
}

/* <home>/erase.unregistering: written (and synced) before the hub is
 * asked to forget this terminal, after the acknowledgement check. A kill
 * after the hub forgot it and before the marker leaves an intact terminal
 * the hub refuses; the next erase finds this note and goes on without the
 * hub when nothing was changed since (the local record of what the hub
 * acknowledged says so). */
#define UNREG_NOTE "erase.unregistering"

static int
unreg_note_write(struct simsync_node *n)
{
    char path[PATH_MAX];
    int fd, dfd, rc = SIMSYNC_OK;

    if (snprintf(path, sizeof(path), "%s/%s", n->home, UNREG_NOTE) >=
        (int)sizeof(path))
        return SIMSYNC_EINVAL;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0)
        return SIMSYNC_EIO;
    if (fsync(fd) != 0)
        rc = SIMSYNC_EIO;
    close(fd);
    dfd = open(n->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        rc = SIMSYNC_EIO;
    if (dfd >= 0)
        close(dfd);
    return rc;
}

static int
unreg_note_present(const struct simsync_node *n)
{
    char path[PATH_MAX];
    struct stat st;

    return snprintf(path, sizeof(path), "%s/%s", n->home, UNREG_NOTE) <
               (int)sizeof(path) &&
           lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Errors that mean the hub could not be used (as opposed to a local
 * problem): a forced erase goes on without it. */
static int
hub_unusable(int rc)
{
    return rc == SIMSYNC_ECONNECT || rc == SIMSYNC_ECLOSED ||
           rc == SIMSYNC_ETIMEOUT || rc == SIMSYNC_EREFUSED ||
           rc == SIMSYNC_EPROTO || rc == SIMSYNC_ECRYPTO ||
           rc == SIMSYNC_ETOOBIG;
}

/* Sync until the hub acknowledged every change made here (step 2). A
 * forced erase turns a hub it cannot use, or changes that stay
 * unacknowledged, into losses in rep instead of an error. */
static int
settle(struct simsync_node *n, struct replica *r, int force,
       struct simsync_erase_report *rep)
{
    char why[sizeof(n->err)], classes[128];
    struct unacked u;
    int rc = SIMSYNC_OK;

    memset(&u, 0, sizeof(u));
    for (int round = 0; round < ERASE_ROUNDS; round++) {
        /* Upload only: what the hub has and this terminal lacks is about
         * to be wiped here anyway, so a terminal far behind does not
         * download everything first. */
        struct node_sync_opts o = {.dir = NODE_SYNC_UPLOAD};
        struct simsync_sync_report sr;
        rc = node_sync(n, &o, &sr);
        rep->sync_rounds++;
        rep->sent_items += sr.sent_items;
        rep->sent_bytes += sr.sent_bytes;
        rep->recv_items += sr.recv_items;
        if (rc != SIMSYNC_OK)
            break;
        /* The sync raised the hub's acknowledgement to what it sent;
         * files changed meanwhile are recorded now and count as well. */
        rc = rescan_count(n, r, &u);
        if (rc != SIMSYNC_OK)
            return rc;
        if (u.items == 0)
            return SIMSYNC_OK;
    }
    if (rc == SIMSYNC_OK) {
        format_per_class(&u, classes, sizeof(classes));
        if (!force)
            return node_fail(
                n, SIMSYNC_EREFUSED,
                "after %d syncs the hub still has not acknowledged %llu "
                "change%s made here (%s); nothing was erased. Stop editing "
                "the class folders, check 'simsync status', then erase "
                "again (or erase with --force, losing them)",
                ERASE_ROUNDS, (unsigned long long)u.items,
                u.items == 1 ? "" : "s", classes);
        rep->lost_items = u.items;
        rep->lost_bytes = u.bytes;
        return SIMSYNC_OK;
    }
    if (rc == SIMSYNC_EMASSDEL)
        return node_fail(n, rc,
                         "the class folders lack many files the hub has, so "
                         "the sync stopped and nothing was erased. If those "
                         "deletions are meant, run 'simsync sync "
                         "--allow-delete', then erase again");
    snprintf(why, sizeof(why), "%s",
             n->err[0] != '\0' ? n->err : simsync_strerror(rc));
    if (rc == SIMSYNC_EREFUSED && unreg_note_present(n)) {
        /* An earlier erase had the hub forget this terminal, then was cut
         * short: what the hub acknowledged before is still recorded here,
         * so anything made since shows as unacknowledged. */
        int crc = rescan_count(n, r, &u);
        if (crc != SIMSYNC_OK)
            return crc;
        if (u.items == 0) {
            rep->unregistered = 1;
            n->err[0] = '\0';
            return SIMSYNC_OK;
        }
        if (!force)
            return node_fail(n, rc,
                             "an earlier erase had the hub forget this "
                             "terminal, but %llu change%s made since %s not "
                             "on the hub; nothing was erased. Copy what you "
                             "need, then erase with --force",
                             (unsigned long long)u.items,
                             u.items == 1 ? "" : "s",
                             u.items == 1 ? "is" : "are");
    }
    if (!hub_unusable(rc))
        return node_fail(n, rc, "%s; nothing was erased", why);
    /* The hub cannot be used: what would an erase without it lose? The
     * failed sync scanned already; scan again for a fresh count. */
    {
        int crc = rescan_count(n, r, &u);
        if (crc != SIMSYNC_OK)
            return crc;
    }
    if (!force)
        return node_fail(n, rc,
                         "%s. Nothing was erased: %llu local change%s (%llu "
                         "bytes) %s not acknowledged by the hub. Erase when "
                         "the hub can be reached, or erase without it with "
                         "'simsync erase --force', losing %s",
                         why, (unsigned long long)u.items,
                         u.items == 1 ? "" : "s", (unsigned long long)u.bytes,
                         u.items == 1 ? "is" : "are",
                         u.items == 1 ? "it" : "them");
    rep->offline = 1;
    snprintf(rep->offline_why, sizeof(rep->offline_why), "%s", why);
    rep->lost_items = u.items;
    rep->lost_bytes = u.bytes;
    n->err[0] = '\0';
    return SIMSYNC_OK;
}

/* Ask the hub to forget this terminal. The hub has just acknowledged
 * everything made here (settle). If an earlier erase already asked it,
 * and was killed before the hub got to the request, the hub may forget
 * the terminal between that settle and this request, and then refuses
 * it: with the note of the earlier request present, that refusal means
 * the work is done. */
static int
unregister(struct simsync_node *n, struct simsync_erase_report *rep)
{
    Simsync__Envelope *in = NULL;
    int earlier = unreg_note_present(n);
    int rc = unreg_note_write(n);

    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot write %s/%s", n->home, UNREG_NOTE);
    rc = node_request(n, SIMSYNC__OP__OP_UNREGISTER, NULL,
                      SIMSYNC__ENVELOPE__MSG_UNREGISTER_DONE, (void **)&in);
    if (rc == SIMSYNC_EREFUSED && earlier) {
        rep->unregistered = 1;
        n->err[0] = '\0';
        return SIMSYNC_OK;
    }
    if (rc != SIMSYNC_OK)
        return rc;
    rep->unregistered = 1;
    rep->jobs_dropped = in->unregister_done->jobs_dropped;
    simsync__envelope__free_unpacked(in, NULL);
    return SIMSYNC_OK;
}

/* Steps 3 and 4: the marker, then the wipe. */
static int
wipe_node(struct simsync_node *n, struct hook *h,
          struct simsync_erase_report *rep)
{
    char def[PATH_MAX + 8], msg[sizeof(n->err)];
    struct wipe w;
    int own, rc;

    snprintf(def, sizeof(def), "%s/data", n->home);
    own = strcmp(def, n->data_dir) == 0;
    if (!own && n->data_dir[0] != '/')
        return node_fail(n, SIMSYNC_ESTATE,
                         "the data folder %s is not an absolute path; "
                         "nothing was erased",
                         n->data_dir);
    memset(&w, 0, sizeof(w));
    w.hook = h;
    w.rep = rep;
    w.err = msg;
    w.errlen = sizeof(msg);
    msg[0] = '\0';
    snprintf(w.path, sizeof(w.path), "%s", n->home);
    w.homefd = open(n->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w.homefd < 0) {
        (void)wipe_fail(&w, errno, "open the home");
        return node_fail(n, SIMSYNC_EIO, "%s; nothing was erased", msg);
    }
    rc = marker_write(&w, own ? NULL : n->data_dir);
    if (rc != SIMSYNC_OK) {
        close(w.homefd);
        return node_fail(n, rc, "%s; nothing was erased", msg);
    }
    hook_step(h);
    /* From here on the node is being taken apart. */
    store_close(n->st);
    n->st = NULL;
    n->bound = 0;
    rc = wipe_run(&w, own, n->data_dir);
    close(w.homefd);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc,
                         "the wipe began but stopped: %s. Fix that, then run "
                         "'simsync erase' (or any simsync command) to finish "
                         "it; the hub has everything this terminal made",
                         msg);
    return SIMSYNC_OK;
}

int
simsync_erase(struct simsync_node *n, const struct simsync_erase_opts *o,
              struct simsync_erase_report *rep)
{
    static const struct simsync_erase_opts none;
    char classes[128];
    struct replica r;
    struct hook h;
    int rc, force;

    if (n == NULL || rep == NULL)
        return SIMSYNC_EINVAL;
    memset(rep, 0, sizeof(*rep));
    n->err[0] = '\0';
    if (o == NULL)
        o = &none;
    force = o->force != 0;
    if (force && o->confirm == NULL)
        return node_fail(n, SIMSYNC_EINVAL,
                         "a forced erase needs a confirmation callback");
    if (strcmp(n->role, "hub") == 0)
        return node_fail(n, SIMSYNC_ESTATE,
                         "a hub is not erased this way; only terminals and "
                         "desktops are");
    hook_init(&h, 0);
    /* Step 1 (FIG 20 S82-S83): the SIM must be the bound subscriber's. */
    rc = check_sim_binding(n);
    if (rc != SIMSYNC_OK) {
        char why[sizeof(n->err)];
        snprintf(why, sizeof(why), "%s", n->err);
        return node_fail(n, rc, "%s; nothing was erased", why);
    }
    if (node_daemon_running(n->home))
        return node_fail(n, SIMSYNC_EBUSY,
                         "the daemon runs on this terminal and would sync "
                         "while it is wiped; nothing was erased. Stop the "
                         "daemon, then erase");
    if (node_backup_running(n))
        return node_fail(n, SIMSYNC_EBUSY,
                         "a backup of this terminal is running; nothing was "
                         "erased. Erase when it has finished");
    count_unsynced(n, rep, classes, sizeof(classes));
    if (rep->unsynced_files > 0 && !force)
        return node_fail(n, SIMSYNC_EREFUSED,
                         "%llu file%s (%llu bytes) in %s, which this "
                         "terminal does not sync, would be lost; nothing was "
                         "erased. Add the class with 'simsync classes', or "
                         "move the files away, then erase again (or erase "
                         "with --force, losing them)",
                         (unsigned long long)rep->unsynced_files,
                         rep->unsynced_files == 1 ? "" : "s",
                         (unsigned long long)rep->unsynced_bytes, classes);
    rc = replica_setup(n, &r);
    if (rc != SIMSYNC_OK)
        return rc;
    hook_step(&h);
    /* Step 2 (S84-S85): upload, and confirm the upload completed. */
    rc = settle(n, &r, force, rep);
    keys_wipe(&r.keys);
    if (rc != SIMSYNC_OK)
        return rc;
    /* The SIM may have been swapped while the hub was busy. */
    rc = check_sim_binding(n);
    if (rc != SIMSYNC_OK) {
        char why[sizeof(n->err)];
        snprintf(why, sizeof(why), "%s", n->err);
        return node_fail(n, rc, "%s; nothing was erased", why);
    }
    hook_step(&h);
    if (force &&
        (rep->offline || rep->lost_items > 0 || rep->unsynced_files > 0) &&
        !o->confirm(o->confirm_arg, rep))
        return node_fail(n, SIMSYNC_EREFUSED,
                         "the erase was not confirmed; nothing was erased");
    /* Step 3: the hub forgets this terminal. After this the terminal can
     * no longer sync, but the hub has acknowledged everything made here
     * (unless a forced erase goes on regardless). */
    if (!rep->offline && !rep->unregistered) {
        rc = unregister(n, rep);
        if (rc != SIMSYNC_OK && !(force && hub_unusable(rc))) {
            char why[sizeof(n->err)];
            snprintf(why, sizeof(why), "%s",
                     n->err[0] != '\0' ? n->err : simsync_strerror(rc));
            return node_fail(n, rc,
                             "the hub could not remove this terminal's "
                             "registration: %s; nothing was erased. Erase "
                             "again when the hub can be reached (or with "
                             "--force, leaving the registration on the hub)",
                             why);
        }
        n->err[0] = '\0';
    }
    /* Steps 3-4 (S86). */
    return wipe_node(n, &h, rep);
}
