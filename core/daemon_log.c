/* daemon_log.c -- the daemon's decision log: what came in, what the policy
 * decided and why, how each sync ended. One writer (the daemon) appends to
 * <home>/daemon.log; any process reads it (simsync_log_read), also while
 * it grows and across its rotation to daemon.log.1.
 *
 * Format: one entry per line, fields separated by tabs, text fields with
 * tabs, newlines and other control characters turned into spaces:
 *
 *   v1 TIME_MS KIND ACTION TRIGGER TRIGGERS RESULT SENT_ITEMS SENT_BYTES
 *      RECV_ITEMS RECV_BYTES PENDING_BYTES MS TEXT
 *
 * Empty fields are empty strings. A line is appended with one write() on a
 * descriptor opened with O_APPEND, so a reader sees whole lines, or a last
 * line without its newline yet, which it leaves for its next read. Lines
 * of another version are skipped. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "node.h"

#define FIELDS 14
#define LINE_MAX_BYTES 2048

struct daemon_log {
    char path[PATH_MAX];     /* <home>/daemon.log */
    char old_path[PATH_MAX]; /* <home>/daemon.log.1 */
    int fd;
};

static int
log_paths(const char *home, char *path, char *old_path)
{
    if (snprintf(path, PATH_MAX, "%s/%s", home, DAEMON_LOG) >= PATH_MAX ||
        snprintf(old_path, PATH_MAX, "%s/%s.1", home, DAEMON_LOG) >= PATH_MAX)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

static int
open_append(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
                0600);
}

int
daemon_log_open(const char *home, struct daemon_log **out)
{
    struct daemon_log *l;

    *out = NULL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return SIMSYNC_ENOMEM;
    if (log_paths(home, l->path, l->old_path) != SIMSYNC_OK) {
        free(l);
        return SIMSYNC_EINVAL;
    }
    l->fd = open_append(l->path);
    if (l->fd < 0) {
        free(l);
        return SIMSYNC_EIO;
    }
    *out = l;
    return SIMSYNC_OK;
}

void
daemon_log_close(struct daemon_log *l)
{
    if (l == NULL)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

/* Append s to buf at *at as one field: control characters become spaces,
 * and the field is cut to fit. */
static void
put_field(char *buf, size_t len, size_t *at, const char *s, int last)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*at + 2 >= len)
            break;
        buf[(*at)++] = (char)(*p < 0x20 || *p == 0x7f ? ' ' : *p);
    }
    if (*at + 1 < len)
        buf[(*at)++] = last ? '\n' : '\t';
}

static void
put_u64(char *buf, size_t len, size_t *at, uint64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRIu64, v);
    put_field(buf, len, at, num, 0);
}

int
daemon_log_append(struct daemon_log *l, const struct simsync_log_entry *e)
{
    char line[LINE_MAX_BYTES];
    size_t at = 0;
    uint64_t t = e->time_ms;
    struct stat st;
    ssize_t w;

    if (l == NULL || l->fd < 0)
        return SIMSYNC_EINVAL;
    if (t == 0)
        t = node_now_ms();
    put_field(line, sizeof(line), &at, "v1", 0);
    put_u64(line, sizeof(line), &at, t);
    put_field(line, sizeof(line), &at, e->kind, 0);
    put_field(line, sizeof(line), &at, e->action, 0);
    put_field(line, sizeof(line), &at, e->trigger, 0);
    put_field(line, sizeof(line), &at, e->triggers, 0);
    put_field(line, sizeof(line), &at, e->result, 0);
    put_u64(line, sizeof(line), &at, e->sent_items);
    put_u64(line, sizeof(line), &at, e->sent_bytes);
    put_u64(line, sizeof(line), &at, e->recv_items);
    put_u64(line, sizeof(line), &at, e->recv_bytes);
    put_u64(line, sizeof(line), &at, e->pending_bytes);
    put_u64(line, sizeof(line), &at, e->ms);
    put_field(line, sizeof(line), &at, e->text, 1);
    if (line[at - 1] != '\n')
        line[at - 1] = '\n'; /* cut short: still one line */
    if (fstat(l->fd, &st) == 0 &&
        (uint64_t)st.st_size + at > (uint64_t)DAEMON_LOG_MAX) {
        /* Rotate: the current file becomes the old one, whole. */
        int fd;
        if (rename(l->path, l->old_path) != 0)
            return SIMSYNC_EIO;
        fd = open_append(l->path);
        if (fd < 0)
            return SIMSYNC_EIO;
        close(l->fd);
        l->fd = fd;
    }
    w = write(l->fd, line, at);
    if (w != (ssize_t)at)
        return errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    return SIMSYNC_OK;
}

/* ----------------------------------------------------------------- reading */

static void
copy_field(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
}

static uint64_t
num_field(const char *s)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    return errno != 0 || *end != '\0' ? 0 : (uint64_t)v;
}

/* Parse one line (without its newline, NUL-terminated, modified). 0 when it
 * is an entry of this version. */
static int
parse_line(char *line, struct simsync_log_entry *e)
{
    char *f[FIELDS];
    size_t n = 0;
    char *p = line;

    memset(e, 0, sizeof(*e));
    while (n < FIELDS) {
        char *tab = strchr(p, '\t');
        f[n++] = p;
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    if (n != FIELDS || strcmp(f[0], "v1") != 0)
        return -1;
    e->time_ms = num_field(f[1]);
    copy_field(e->kind, sizeof(e->kind), f[2]);
    copy_field(e->action, sizeof(e->action), f[3]);
    copy_field(e->trigger, sizeof(e->trigger), f[4]);
    copy_field(e->triggers, sizeof(e->triggers), f[5]);
    copy_field(e->result, sizeof(e->result), f[6]);
    e->sent_items = num_field(f[7]);
    e->sent_bytes = num_field(f[8]);
    e->recv_items = num_field(f[9]);
    e->recv_bytes = num_field(f[10]);
    e->pending_bytes = num_field(f[11]);
    e->ms = num_field(f[12]);
    copy_field(e->text, sizeof(e->text), f[13]);
    return 0;
}

/* The identity of an open file (never 0). */
static uint64_t
file_id(int fd)
{
    struct stat st;
    uint64_t id;

    if (fstat(fd, &st) != 0)
        return 0;
    id = ((uint64_t)st.st_dev << 40) ^ (uint64_t)st.st_ino;
    return id != 0 ? id : 1;
}

/* Read the complete lines of fd from *off on, calling fn for each entry;
 * *off moves past every complete line. */
static int
read_from(int fd, uint64_t *off,
          int (*fn)(void *arg, const struct simsync_log_entry *e), void *arg)
{
    char *buf = malloc(LINE_MAX_BYTES * 8);
    size_t have = 0, cap = LINE_MAX_BYTES * 8;
    int rc = SIMSYNC_OK;

    if (buf == NULL)
        return SIMSYNC_ENOMEM;
    if (lseek(fd, (off_t)*off, SEEK_SET) < 0) {
        free(buf);
        return SIMSYNC_EIO;
    }
    for (;;) {
        ssize_t r = read(fd, buf + have, cap - have - 1);
        size_t start = 0;

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = SIMSYNC_EIO;
            break;
        }
        if (r == 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);
            struct simsync_log_entry e;
            size_t len;

            if (nl == NULL)
                break;
            *nl = '\0';
            len = (size_t)(nl - (buf + start)) + 1;
            if (parse_line(buf + start, &e) == 0 && fn != NULL &&
                (rc = fn(arg, &e)) != 0) {
                *off += len;
                free(buf);
                return rc;
            }
            *off += len;
            start += len;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == cap - 1) {
            /* A line longer than any we write: skip it. */
            *off += have;
            have = 0;
        }
    }
    free(buf);
    return rc;
}

static int
open_read(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int
simsync_log_read(struct simsync_node *n, struct simsync_log_pos *pos,
                 int (*fn)(void *arg, const struct simsync_log_entry *e),
                 void *arg)
{
    char path[PATH_MAX], old_path[PATH_MAX];
    int cur, old, rc = SIMSYNC_OK;
    uint64_t cur_id, old_id;

    if (n == NULL || pos == NULL ||
        log_paths(n->home, path, old_path) != SIMSYNC_OK)
        return SIMSYNC_EINVAL;
    /* The old file first: after a rotation the current one may be new. */
    old = open_read(old_path);
    cur = open_read(path);
    old_id = old >= 0 ? file_id(old) : 0;
    cur_id = cur >= 0 ? file_id(cur) : 0;
    if (pos->file != 0 && pos->file == cur_id) {
        rc = read_from(cur, &pos->off, fn, arg);
    } else {
        /* Starting, or the file we read was rotated away: finish it (it is
         * now the old one), else start over with the old one. */
        if (old >= 0 && (pos->file == 0 || pos->file == old_id)) {
            uint64_t off = pos->file == old_id ? pos->off : 0;
            rc = read_from(old, &off, fn, arg);
            pos->file = old_id;
            pos->off = off;
        }
        if (rc == SIMSYNC_OK && cur >= 0) {
            pos->file = cur_id;
            pos->off = 0;
            rc = read_from(cur, &pos->off, fn, arg);
        }
    }
    if (old >= 0)
        close(old);
    if (cur >= 0)
        close(cur);
    return rc;
}
