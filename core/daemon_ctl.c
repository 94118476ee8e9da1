/* daemon_ctl.c -- what other processes use to steer the daemon: the stored
 * policy (<home>/policy, read by the daemon at start and whenever it
 * changes) and the client side of the control socket (a request, `sim
 * remove` waiting for the upload). The daemon's side is in daemon.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "node.h"

#define REQUEST_TIMEOUT_MS 10000 /* a one-line answer */
#define REMOVE_GRACE_MS 5000     /* past the removal deadline */
#define POLICY_FILE_MAX 8192

/* ------------------------------------------------------------ the policy */

int
daemon_ctl_policy_load(const char *home, struct policy_cfg *cfg, char *err,
                       size_t errlen)
{
    char path[PATH_MAX], text[POLICY_FILE_MAX];
    ssize_t r;
    size_t have = 0;
    int fd;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (snprintf(path, sizeof(path), "%s/%s", home, DAEMON_POLICY) >=
        (int)sizeof(path))
        return SIMSYNC_EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        policy_cfg_default(cfg);
        return SIMSYNC_OK;
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return SIMSYNC_EIO;
    }
    while ((r = read(fd, text + have, sizeof(text) - 1 - have)) > 0)
        have += (size_t)r;
    close(fd);
    if (r < 0 || have == sizeof(text) - 1) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 r < 0 ? strerror(errno) : "too long");
        return SIMSYNC_EIO;
    }
    text[have] = '\0';
    return policy_cfg_parse(cfg, text, err, errlen);
}

int
daemon_ctl_policy_save(const char *home, const struct policy_cfg *cfg)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], text[POLICY_FILE_MAX];
    struct policy_cfg def;
    size_t at;
    int fd, rc = SIMSYNC_OK;

    if (snprintf(path, sizeof(path), "%s/%s", home, DAEMON_POLICY) >=
            (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return SIMSYNC_EINVAL;
    policy_cfg_default(&def);
    at = (size_t)snprintf(text, sizeof(text),
                          "# simsync policy: the keys changed from their "
                          "defaults ('simsync policy set KEY VALUE').\n");
    for (size_t i = 0; policy_cfg_key(i) != NULL; i++) {
        const char *key = policy_cfg_key(i)->name;
        char v[32], d[32];
        if (policy_cfg_get(cfg, key, v, sizeof(v)) != SIMSYNC_OK ||
            policy_cfg_get(&def, key, d, sizeof(d)) != SIMSYNC_OK)
            return SIMSYNC_EINVAL;
        if (strcmp(v, d) != 0 && at < sizeof(text))
            at += (size_t)snprintf(text + at, sizeof(text) - at, "%s %s\n", key,
                                   v);
    }
    if (at >= sizeof(text))
        return SIMSYNC_ETOOBIG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    if (write(fd, text, at) != (ssize_t)at || fsync(fd) != 0)
        rc = errno == ENOSPC ? SIMSYNC_ENOSPC : SIMSYNC_EIO;
    close(fd);
    if (rc == SIMSYNC_OK && rename(tmp, path) != 0)
        rc = SIMSYNC_EIO;
    if (rc != SIMSYNC_OK)
        unlink(tmp);
    return rc;
}

int
simsync_policy_key(size_t i, const char **name, const char **kind,
                   const char **help)
{
    const struct policy_key *k = policy_cfg_key(i);

    if (k == NULL)
        return SIMSYNC_ENOTFOUND;
    *name = k->name;
    *kind = k->kind;
    *help = k->help;
    return SIMSYNC_OK;
}

static int
load_or_fail(struct simsync_node *n, struct policy_cfg *cfg)
{
    char err[300];
    int rc = daemon_ctl_policy_load(n->home, cfg, err, sizeof(err));

    if (rc != SIMSYNC_OK)
        return node_fail(n, rc,
                         "the stored policy %s/%s is not valid (%s); fix the "
                         "line or remove the file to go back to the defaults",
                         n->home, DAEMON_POLICY, err);
    return SIMSYNC_OK;
}

int
simsync_policy_get(struct simsync_node *n, char *buf, size_t len)
{
    struct policy_cfg cfg;
    int rc = load_or_fail(n, &cfg);

    if (rc != SIMSYNC_OK)
        return rc;
    return policy_cfg_format(&cfg, buf, len);
}

int
simsync_policy_set(struct simsync_node *n, const char *key, const char *value)
{
    struct policy_cfg cfg;
    char err[300], reply[DAEMON_LINE_MAX];
    int rc;

    n->err[0] = '\0';
    rc = load_or_fail(n, &cfg);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = policy_cfg_set(&cfg, key, value, err, sizeof(err));
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "%s", err);
    rc = daemon_ctl_policy_save(n->home, &cfg);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "cannot store the policy in %s/%s: %s", n->home,
                         DAEMON_POLICY, simsync_strerror(rc));
    /* The daemon also sees the file change; asking makes it certain that
     * it has the new value when this returns. */
    if (simsync_daemon_request(n, "reload", reply, sizeof(reply)) != SIMSYNC_OK)
        n->err[0] = '\0'; /* no daemon, or an old one: it reads the file */
    return SIMSYNC_OK;
}

/* ------------------------------------------------------- control socket */

int
daemon_ctl_addr(const char *home, struct sockaddr_un *sa, int *dirfd)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", home,
                 DAEMON_SOCK);
    if (n > 0 && (size_t)n < sizeof(sa->sun_path))
        return SIMSYNC_OK;
    /* Too long for sun_path: name the home by a descriptor instead. */
    *dirfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0)
        return SIMSYNC_EIO;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
             DAEMON_SOCK);
    return SIMSYNC_OK;
}

struct line_conn {
    int fd;
    char buf[DAEMON_LINE_MAX];
    size_t have;
};

/* Connect to the daemon of home. SIMSYNC_ENOTFOUND when none listens. */
static int
line_open(const char *home, struct line_conn *lc)
{
    struct sockaddr_un sa;
    int dirfd, rc;

    memset(lc, 0, sizeof(*lc));
    lc->fd = -1;
    if (daemon_ctl_addr(home, &sa, &dirfd) != SIMSYNC_OK)
        return SIMSYNC_ENOTFOUND;
    lc->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lc->fd < 0) {
        if (dirfd >= 0)
            close(dirfd);
        return SIMSYNC_EIO;
    }
    rc = connect(lc->fd, (struct sockaddr *)&sa, sizeof(sa));
    if (dirfd >= 0)
        close(dirfd);
    if (rc != 0) {
        close(lc->fd);
        lc->fd = -1;
        return SIMSYNC_ENOTFOUND; /* no socket, or nobody behind it */
    }
    return SIMSYNC_OK;
}

static void
line_close(struct line_conn *lc)
{
    if (lc->fd >= 0)
        close(lc->fd);
    lc->fd = -1;
}

static int
line_send(struct line_conn *lc, const char *line)
{
    char buf[DAEMON_LINE_MAX];
    int n = snprintf(buf, sizeof(buf), "%s\n", line);

    if (n < 0 || (size_t)n >= sizeof(buf))
        return SIMSYNC_EINVAL;
    if (send(lc->fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
        return SIMSYNC_ECLOSED;
    return SIMSYNC_OK;
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The next line (without its newline) into out, waiting until deadline
 * (monotonic ms). SIMSYNC_ETIMEOUT, SIMSYNC_ECLOSED, SIMSYNC_ETOOBIG. */
static int
line_recv(struct line_conn *lc, char *out, size_t len, uint64_t deadline)
{
    for (;;) {
        char *nl = memchr(lc->buf, '\n', lc->have);
        struct pollfd p = {lc->fd, POLLIN, 0};
        uint64_t now;
        ssize_t r;

        if (nl != NULL) {
            size_t n = (size_t)(nl - lc->buf);
            snprintf(out, len, "%.*s", (int)n, lc->buf);
            memmove(lc->buf, nl + 1, lc->have - n - 1);
            lc->have -= n + 1;
            return SIMSYNC_OK;
        }
        if (lc->have == sizeof(lc->buf))
            return SIMSYNC_ETOOBIG;
        now = mono_ms();
        if (now >= deadline)
            return SIMSYNC_ETIMEOUT;
        if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            return SIMSYNC_ECLOSED;
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        r = recv(lc->fd, lc->buf + lc->have, sizeof(lc->buf) - lc->have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return SIMSYNC_ECLOSED;
        lc->have += (size_t)r;
    }
}

/* Split "word rest" into the word's end; *rest points after the blank. */
static int
starts_with(const char *line, const char *word, const char **rest)
{
    size_t n = strlen(word);

    if (strncmp(line, word, n) != 0 || (line[n] != ' ' && line[n] != '\0'))
        return 0;
    *rest = line[n] == ' ' ? line + n + 1 : line + n;
    return 1;
}

int
simsync_daemon_request(struct simsync_node *n, const char *request, char *reply,
                       size_t len)
{
    struct line_conn lc;
    char line[DAEMON_LINE_MAX];
    const char *rest;
    int rc;

    if (len > 0)
        reply[0] = '\0';
    if (request == NULL || strchr(request, '\n') != NULL)
        return SIMSYNC_EINVAL;
    rc = line_open(n->home, &lc);
    if (rc != SIMSYNC_OK)
        return rc;
    rc = line_send(&lc, request);
    if (rc == SIMSYNC_OK)
        rc = line_recv(&lc, line, sizeof(line), mono_ms() + REQUEST_TIMEOUT_MS);
    line_close(&lc);
    if (rc != SIMSYNC_OK)
        return node_fail(n, rc, "the daemon did not answer '%s': %s", request,
                         simsync_strerror(rc));
    if (starts_with(line, "ok", &rest)) {
        snprintf(reply, len, "%s", rest);
        return SIMSYNC_OK;
    }
    if (starts_with(line, "error", &rest)) {
        snprintf(reply, len, "%s", rest);
        return node_fail(n, SIMSYNC_EREFUSED, "the daemon refused '%s': %s",
                         request, rest);
    }
    return node_fail(n, SIMSYNC_EPROTO, "the daemon answered '%s' oddly: %s",
                     request, line);
}

static int
sim_present(const struct simsync_node *n)
{
    char path[PATH_MAX + 16];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", n->home, DAEMON_SIM);
    return lstat(path, &st) == 0;
}

static void
say(void (*progress)(void *, const char *), void *arg, const char *line)
{
    if (progress != NULL)
        progress(arg, line);
}

int
simsync_sim_remove_wait(struct simsync_node *n,
                        void (*progress)(void *arg, const char *line),
                        void *arg, int *daemon)
{
    struct policy_cfg cfg;
    struct line_conn lc;
    char line[DAEMON_LINE_MAX], err[300];
    const char *rest;
    uint64_t deadline;
    int rc, ready = 0;

    if (daemon != NULL)
        *daemon = 0;
    if (!sim_present(n) || line_open(n->home, &lc) != SIMSYNC_OK)
        return simsync_sim_remove(n);
    if (daemon != NULL)
        *daemon = 1;
    if (daemon_ctl_policy_load(n->home, &cfg, err, sizeof(err)) != SIMSYNC_OK)
        policy_cfg_default(&cfg);
    /* The daemon keeps the deadline; this one only guards against a daemon
     * that stops answering. */
    deadline = mono_ms() + cfg.remove_timeout_seconds * 1000 + REMOVE_GRACE_MS;
    rc = line_send(&lc, "sim-removing");
    while (rc == SIMSYNC_OK && !ready) {
        rc = line_recv(&lc, line, sizeof(line), deadline);
        if (rc != SIMSYNC_OK)
            break;
        if (starts_with(line, "wait", &rest)) {
            say(progress, arg, rest);
        } else if (starts_with(line, "ready", &rest)) {
            say(progress, arg, rest);
            ready = 1;
        } else if (starts_with(line, "error", &rest)) {
            say(progress, arg, rest);
            rc = SIMSYNC_EREFUSED;
        }
    }
    if (rc == SIMSYNC_ETIMEOUT)
        say(progress, arg,
            "the daemon gave no answer in time; the SIM is removed now, "
            "and pending changes wait for the next sync");
    else if (rc == SIMSYNC_ECLOSED)
        say(progress, arg,
            "the daemon stopped before the upload ended; pending changes "
            "wait for the next sync");
    rc = simsync_sim_remove(n);
    if (ready) {
        /* Tell the daemon the SIM is out now (else it puts it back). */
        if (line_send(&lc, "sim-removed") == SIMSYNC_OK)
            if (line_recv(&lc, line, sizeof(line),
                          mono_ms() + REQUEST_TIMEOUT_MS) != SIMSYNC_OK) {
                /* It sees the SIM file gone anyway. */
            }
    }
    line_close(&lc);
    return rc;
}
