/* daemon.h -- internals of the terminal daemon, shared by its files:
 *
 *   daemon.c         the event loop: waits in poll(), turns what happened
 *                    into policy events, carries out the policy's decisions
 *                    on a worker thread, and keeps the hub's control
 *                    connection (hub-initiated backups, restore jobs)
 *   daemon_events.c  where events come from: inotify on the data folder and
 *                    on the home, the battery, the control socket's
 *                    listening side, the one-daemon-per-home lock
 *   daemon_log.c     the decision log, <home>/daemon.log
 *   daemon_ctl.c     the stored policy (<home>/policy) and the control
 *                    socket's client side (sim remove, policy confirm ...)
 *
 * The control socket speaks lines of text, one request per connection:
 *   client: "sync" | "upload" | "download"  -> "ok ..." | "error ..."
 *   client: "confirm yes" | "confirm no"    -> "ok ..." | "error ..."
 *   client: "reload"                        -> "ok ..." | "error ..."
 *   client: "sim-removing"  -> "wait TEXT"... then "ready TEXT"; the client
 *           removes the SIM, then says "sim-removed" -> "ok"; a client that
 *           goes before that leaves the SIM in (the removal is undone).
 * See docs/daemon.md. */
#ifndef SIMSYNC_DAEMON_H
#define SIMSYNC_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "policy.h"
#include "simsync.h"

/* Files in the node's home. */
#define DAEMON_SOCK "daemon.sock" /* the control socket (mode 0600) */
#define DAEMON_LOCK "daemon.lock" /* locked by the running daemon */
#define DAEMON_LOG "daemon.log"   /* decision log; daemon.log.1 before it */
#define DAEMON_POLICY "policy"    /* the keys `policy set` changed */
#define DAEMON_SIM "sim"          /* written by `sim insert` (node.c) */

#define DAEMON_LOG_MAX (1u << 20) /* the log rotates past this size */
#define DAEMON_LINE_MAX 512       /* longest control-socket line */

/* ---------------------------------------------------------- daemon_ctl.c */

/* Read <home>/policy into *cfg: the defaults, with the keys stored there.
 * Returns SIMSYNC_OK (also when there is no file), SIMSYNC_EIO, or the
 * error of policy_cfg_parse() with the reason in err (errlen bytes). *cfg
 * is written only on success. */
int daemon_ctl_policy_load(const char *home, struct policy_cfg *cfg, char *err,
                           size_t errlen);
/* Store the keys of cfg that differ from the defaults, atomically. Returns
 * SIMSYNC_OK, SIMSYNC_EIO or SIMSYNC_ENOSPC. */
int daemon_ctl_policy_save(const char *home, const struct policy_cfg *cfg);

/* The control socket's address in home into *sa. A home too long for
 * sun_path is reached through /proc/self/fd: *dirfd is then a descriptor
 * of home that the caller closes once bind() or connect() returned; else
 * -1. Returns SIMSYNC_OK or SIMSYNC_EIO. */
int daemon_ctl_addr(const char *home, struct sockaddr_un *sa, int *dirfd);

/* ---------------------------------------------------------- daemon_log.c */

struct daemon_log; /* the log, open for appending (one writer) */

/* Open (create) <home>/daemon.log. Returns SIMSYNC_OK, SIMSYNC_ENOMEM or
 * SIMSYNC_EIO. */
int daemon_log_open(const char *home, struct daemon_log **out);
void daemon_log_close(struct daemon_log *l); /* NULL-safe */
/* Append e (time_ms 0: now); past DAEMON_LOG_MAX the file becomes
 * daemon.log.1 first. A failure is returned and changes nothing else: the
 * daemon goes on without its log. */
int daemon_log_append(struct daemon_log *l, const struct simsync_log_entry *e);

/* ------------------------------------------------------- daemon_events.c */

/* Take the one-daemon-per-home lock into *fd (held until closed).
 * SIMSYNC_EBUSY when another daemon holds it, SIMSYNC_EIO. */
int daemon_events_lock(const char *home, int *fd);

/* Listen on the control socket (a stale one is replaced: call with the
 * lock held). *fd is non-blocking. Returns SIMSYNC_OK or SIMSYNC_EIO. */
int daemon_events_listen(const char *home, int *fd);

/* What changed since the last look. */
struct daemon_changes {
    int data;   /* something under the data folder */
    int sim;    /* <home>/sim was written or removed */
    int policy; /* <home>/policy was written */
};

struct daemon_watch; /* inotify: the home, and the data folder's tree */

/* Watch home (its sim and policy files) and data_dir with every directory
 * below it, new ones included. A data folder that does not exist yet is
 * watched once it does (daemon_events_watch_retry). Returns SIMSYNC_OK,
 * SIMSYNC_ENOMEM or SIMSYNC_EIO (no inotify). */
int daemon_events_watch_open(const char *home, const char *data_dir,
                             struct daemon_watch **out);
void daemon_events_watch_close(struct daemon_watch *w); /* NULL-safe */
/* The descriptor to poll for POLLIN. */
int daemon_events_watch_fd(const struct daemon_watch *w);
/* Read what is pending (non-blocking) and add it to *ch. */
void daemon_events_watch_read(struct daemon_watch *w,
                              struct daemon_changes *ch);
/* Watch the data folder again if it was missing or directories moved
 * (sets ch->data when more is watched now). */
void daemon_events_watch_retry(struct daemon_watch *w,
                               struct daemon_changes *ch);
/* Why changes may go unseen ("" when everything is watched); valid until
 * the next call on w. */
const char *daemon_events_watch_problem(const struct daemon_watch *w);

/* The battery under a power-supply directory (the layout of Linux's
 * /sys/class/power_supply): the lowest capacity among entries of type
 * Battery (-1: none, e.g. a desktop), and whether that one is on external
 * power (status Charging or Full). */
void daemon_events_battery(const char *dir, int *level, int *charging);
/* The latest user input (ns since 1970, 0: unknown) on the terminal
 * devices below dev_dir (default /dev): the access times of tty[0-9]* and
 * pts/N, as w(1) reads idle time. */
int64_t daemon_events_activity(const char *dev_dir);

#endif /* SIMSYNC_DAEMON_H */
