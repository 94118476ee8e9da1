/* hub_sched.h -- the hub's side of hub-initiated backups (seed 000 FIG 5)
 * and of everything around generations that is not the upload itself:
 *
 *  - schedules (sched db) and the scheduler thread that turns them into
 *    backup jobs: request, wait for OK/BUSY, retry, give up;
 *  - control connections of terminal daemons (OP_CONTROL), which carry the
 *    requests, answers and results, and push notices and restore jobs;
 *  - the backup history and user notices (events db);
 *  - forgetting generations and reclaiming unused chunks (OP_FORGET);
 *  - restore jobs left for another terminal (jobs db, OP_RESTORE_JOB).
 *
 * Threads: the scheduler is one thread; each control connection is served
 * by its connection thread. They meet in a registry of control slots
 * guarded by one mutex; no thread waits for another while it holds a
 * store transaction. */
#ifndef SIMSYNC_HUB_SCHED_H
#define SIMSYNC_HUB_SCHED_H

#include <stdint.h>
#include "chan.h"
#include "journal.h"
#include "simsync.pb-c.h"

struct simsync_node;
struct store;
struct conn;

/* hub.c: the keyed hash of a subscriber ID, and ID validity. */
void hub_sub_key(const struct simsync_node *n, const char *subscriber,
                 uint8_t out[SUB_BYTES]);
int hub_sub_valid(const char *s);
/* Key of (subscriber, terminal ID) in the registry and sched dbs (and the
 * prefix of a terminal's jobs): subscriber | terminal ID. key holds
 * SUB_BYTES + 63 bytes; returns its length. */
size_t hub_tid_key(uint8_t *key, const uint8_t sub[SUB_BYTES], const char *tid);
int hub_tid_valid(const char *s);

/* Start / stop the scheduler thread of a serving hub. */
int hub_sched_start(struct simsync_node *n, volatile int *stop);
void hub_sched_stop(void);

/* Sessions that add chunks (sync, backup) hold the reclaim lock shared;
 * reclaiming holds it exclusively, so it never removes a chunk a running
 * session has just stored and not yet referenced. */
void hub_gc_enter(void);
void hub_gc_leave(void);

/* Append one history line (and, with notice set, a notice) in its own
 * transaction. terminal_id "" means the whole subscriber. */
int hub_event(struct store *st, const uint8_t sub[SUB_BYTES],
              const char *terminal_id, const char *event, uint64_t gen,
              uint32_t attempt, int notice, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* What a HelloReply carries besides the classes: the notices above
 * h->notices_seen and the restore jobs waiting for the terminal (jobs it
 * reports done in h->jobs_done are removed first). Free with
 * hub_hello_extras_free. */
int hub_hello_extras(struct simsync_node *n, const uint8_t sub[SUB_BYTES],
                     const Simsync__Hello *h, Simsync__HelloReply *rep);
void hub_hello_extras_free(Simsync__HelloReply *rep);

/* The operations after Hello (the terminal is authenticated). */
int hub_control(struct simsync_node *n, struct chan *ch, struct conn *c,
                const uint8_t sub[SUB_BYTES], const Simsync__Hello *h,
                uint64_t notices_sent);
int hub_history(struct simsync_node *n, struct chan *ch,
                const uint8_t sub[SUB_BYTES]);
int hub_forget(struct simsync_node *n, struct chan *ch,
               const uint8_t sub[SUB_BYTES], const char *terminal_id);
/* Terminal `from_tid` of `sub` brought changes: tell the subscriber's
 * other terminals that keep a control connection (HubChanges). */
void hub_changes_announce(const uint8_t sub[SUB_BYTES], const char *from_tid);

/* OP_UNREGISTER: forget terminal `terminal_id` of `sub` (registration,
 * its schedule, the jobs waiting for it) in one transaction, then answer
 * UnregisterDone. */
int hub_unregister(struct simsync_node *n, struct chan *ch,
                   const uint8_t sub[SUB_BYTES], const char *terminal_id);
int hub_restore_job(struct simsync_node *n, struct chan *ch,
                    const uint8_t sub[SUB_BYTES], const char *terminal_id);

/* A terminal chose, at the end of its backup, when the next one should
 * start: set (or make, as a one-shot) its schedule's next time. */
int hub_sched_next_in(struct simsync_node *n, const uint8_t sub[SUB_BYTES],
                      const char *terminal_id, uint64_t in_ms);

/* The hub's key of a subscriber for the admin commands: fails unless n
 * is a hub and subscriber a valid ID (with the node's error set). */
int hub_admin_sub(struct simsync_node *n, const char *subscriber,
                  uint8_t sub[SUB_BYTES]);

/* When a schedule fires next after `after_ms` (every: the next multiple
 * of the interval from `base_ms`; at: the next time of day, local time).
 * Exposed for the unit tests. */
uint64_t sched_next(uint64_t base_ms, uint64_t every_ms, int at_minute,
                    uint64_t after_ms);

#endif /* SIMSYNC_HUB_SCHED_H */
