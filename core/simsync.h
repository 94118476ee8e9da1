/* simsync.h -- the public contract of libsimsync.
 *
 * simsync keeps one SIM owner's personal data consistent across several
 * terminals and a home hub. This header is everything the `simsync` program
 * uses; internal modules have headers of their own next to their sources.
 *
 * Conventions (see docs/architecture.md):
 *  - 0 is success, negative values are SIMSYNC_E* codes below;
 *    simsync_strerror() names them. SIMSYNC_EAGAIN means "not ready, call
 *    again" and is not a failure.
 *  - Pointer parameters are borrowed for the call unless a comment says the
 *    callee owns them or returns them to the caller.
 *  - Every _close/_free accepts NULL.
 */
#ifndef SIMSYNC_H
#define SIMSYNC_H

#include <stddef.h>
#include <stdint.h>

#define SIMSYNC_PROTO_VERSION 3

#if defined(__GNUC__)
#define SIMSYNC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SIMSYNC_MUST_CHECK
#endif

/* Error codes. The comment after each says which exit code the program maps
 * it to (0 ok, 1 error, 2 usage, 3 refused, 4 peer unreachable / link lost,
 * 5 integrity failure). */
enum simsync_err {
    SIMSYNC_OK = 0,
    SIMSYNC_EINVAL = -1,     /* invalid argument or usage       -> 2 */
    SIMSYNC_ENOMEM = -2,     /* out of memory                   -> 1 */
    SIMSYNC_EIO = -3,        /* file or store I/O failed        -> 1 */
    SIMSYNC_ENOSPC = -4,     /* disk or map full                -> 1 */
    SIMSYNC_ENOTFOUND = -5,  /* no such item, key or file       -> 1 */
    SIMSYNC_EAGAIN = -6,     /* not ready, call again           -> - */
    SIMSYNC_EPROTO = -7,     /* malformed or unexpected message -> 5 */
    SIMSYNC_ECRYPTO = -8,    /* authentication tag or key check -> 5 */
    SIMSYNC_EREFUSED = -9,   /* not allowed (binding, key)      -> 3 */
    SIMSYNC_EPIN = -10,      /* wrong PIN or PUK                -> 3 */
    SIMSYNC_EBLOCKED = -11,  /* SIM blocked (PIN or PUK)        -> 3 */
    SIMSYNC_ECLOSED = -12,   /* link closed or lost             -> 4 */
    SIMSYNC_ETOOBIG = -13,   /* over a size cap                 -> 5 */
    SIMSYNC_EEXIST = -14,    /* already exists                  -> 1 */
    SIMSYNC_ECONNECT = -15,  /* peer unreachable                -> 4 */
    SIMSYNC_ENOSIM = -16,    /* no SIM inserted / unreadable    -> 3 */
    SIMSYNC_EPASSWORD = -17, /* wrong terminal password         -> 3 */
    SIMSYNC_EMASSDEL = -18,  /* mass deletion needs confirming  -> 3 */
    SIMSYNC_ESTATE = -19,    /* not initialised / wrong role    -> 1 */
    SIMSYNC_ETIMEOUT = -20,  /* peer did not answer in time     -> 4 */
    SIMSYNC_EBUSY = -21,     /* a backup is running already     -> 3 */
};

/* A short, fixed English description of `err`. Never NULL. */
const char *simsync_strerror(int err);

/* The length (1..4) of the well-formed UTF-8 sequence at the start of
 * s[0..len), 0 when there is none (names are bytes; printers that must
 * emit UTF-8, such as --json, check with this). */
size_t simsync_utf8_seq_len(const char *s, size_t len);

/* The process exit code documented for `err` (table above). */
int simsync_exit_code(int err);

/* ------------------------------------------------------------------ nodes
 *
 * A node lives in a home directory:
 *   config        role, terminal id, data folder
 *   node.key      Ed25519 secret key (0600)
 *   store/        the LMDB environment
 *   sim           the inserted SIM (terminals)
 *   binding       hub address, pinned hub key, subscriber, classes
 *   datakey.box   the subscriber data key, sealed to this node's key
 *   password      Argon2id hash of the terminal password
 *   erase.pending an erase is wiping this home (see simsync_erase)
 *   kiosk.credential, kiosk.audit  a kiosk's credential (0600) and its own
 *                 audit (kiosks only; see simsync_kiosk_register)
 */
struct simsync_node;

/* Create a node in `home`: role "terminal", "desktop", "hub" or "kiosk".
 * terminal_id may be NULL (a random IMEI-like id is made); data_dir NULL
 * means <home>/data. SIMSYNC_EEXIST if home already holds a node. An
 * interrupted erase of home is finished first (simsync_erase_resume). */
int simsync_init(const char *home, const char *role, const char *terminal_id,
                 const char *data_dir) SIMSYNC_MUST_CHECK;

/* Open the node in `home`. If an erase of it was cut short, the wipe is
 * finished first and SIMSYNC_ESTATE returned: the home holds no node. */
int simsync_node_open(const char *home,
                      struct simsync_node **out) SIMSYNC_MUST_CHECK;
void simsync_node_close(struct simsync_node *n); /* NULL-safe */

/* The last error's explanation (what failed, on what, what to do), or
 * "" when there is none. Valid until the next call on the node. */
const char *simsync_node_errmsg(const struct simsync_node *n);

/* The node ID shown to people (fingerprint of the node key). */
int simsync_node_id(struct simsync_node *n, char *buf, size_t len);
const char *simsync_node_role(const struct simsync_node *n);
const char *simsync_node_terminal_id(const struct simsync_node *n);

/* Virtual SIM files. */
int simsync_sim_create(const char *file, const char *subscriber,
                       const char *pin, const char *puk) SIMSYNC_MUST_CHECK;
int simsync_sim_unblock(const char *file, const char *puk,
                        const char *new_pin) SIMSYNC_MUST_CHECK;

struct simsync_sim_info {
    int inserted;        /* a SIM is in this terminal */
    char file[1024];     /* its location */
    char subscriber[16]; /* read at insertion */
    int pin_tries_left, puk_tries_left, blocked;
    int bound;           /* this terminal is registered */
    int matches_binding; /* inserted SIM is the bound subscriber's */
};
/* Insert: the SIM checks the PIN (3 tries, then blocked), like a handset
 * at power-on; the subscriber ID is then read and remembered. */
int simsync_sim_insert(struct simsync_node *n, const char *file,
                       const char *pin) SIMSYNC_MUST_CHECK;
int simsync_sim_remove(struct simsync_node *n) SIMSYNC_MUST_CHECK;
int simsync_sim_info(struct simsync_node *n,
                     struct simsync_sim_info *out) SIMSYNC_MUST_CHECK;

/* Register this terminal for the subscriber of its SIM at the hub.
 * The SIM checks `pin` again; `password` becomes (or must match) the
 * terminal password. The hub is pinned by `hub_id`. A new subscriber gets
 * a data key wrapped under `recovery` (when NULL, a random recovery secret
 * is made and written to recovery_out, which must hold 64 bytes); a known
 * subscriber's key is unwrapped with `recovery`. classes is a list like
 * "contacts,pim" or NULL for all. */
int simsync_register(struct simsync_node *n, const char *hub_addr,
                     const char *hub_id, const char *classes, const char *pin,
                     const char *password, const char *recovery,
                     char *recovery_out,
                     size_t recovery_len) SIMSYNC_MUST_CHECK;

/* Class lists: "contacts,pim" (or "all") to a bit mask (bit = class
 * number) and back. SIMSYNC_EINVAL names the bad word in bad. */
int simsync_classes_parse(const char *list, uint32_t *mask, char *bad,
                          size_t badlen);
void simsync_classes_format(uint32_t mask, char *buf, size_t len);
/* Show or set the classes this terminal syncs ("contacts,pim"). */
int simsync_classes_get(struct simsync_node *n, char *buf, size_t len);
int simsync_classes_set(struct simsync_node *n,
                        const char *list) SIMSYNC_MUST_CHECK;

struct simsync_sync_report {
    uint64_t scanned, unchanged, added, edited, deleted, renamed, guarded;
    uint64_t purged; /* tombstones purged (every terminal has them) */
    uint64_t sent_items, sent_bytes, recv_items, recv_bytes;
    uint64_t chunks_sent, chunks_recv; /* content chunks moved */
    uint64_t applied, conflicts;
    uint64_t wire_sent, wire_recv; /* after the handshake */
    uint64_t handshake_bytes;
    double seconds;
    /* Batches sent or received in the packed form (a paired peer that
     * offers it: docs/protocol.md 11.4). */
    uint64_t packed_batches;
};
/* Scan the class folders, then sync both ways with the hub (hub_addr NULL:
 * the registered one). allow_mass_delete confirms a large deletion. */
int simsync_sync(struct simsync_node *n, const char *hub_addr,
                 int allow_mass_delete,
                 struct simsync_sync_report *rep) SIMSYNC_MUST_CHECK;

/* A sync in one direction only, or within limits. dir: 0 both ways, 1
 * upload only (this terminal's changes to the hub), 2 download only.
 * max_bytes / max_ms (0: none) bound the whole sync: it stops at the first
 * checkpoint both sides committed (an acknowledged or applied batch) once
 * one is reached, and simsync_sync_limited returns SIMSYNC_EAGAIN; the
 * next sync continues from there. */
struct simsync_sync_opts {
    const char *hub_addr; /* NULL: the registered hub */
    int allow_mass_delete;
    int dir;
    uint64_t max_bytes, max_ms;
};
int simsync_sync_limited(struct simsync_node *n,
                         const struct simsync_sync_opts *o,
                         struct simsync_sync_report *rep) SIMSYNC_MUST_CHECK;

struct simsync_class_status {
    const char *name;
    uint64_t items;        /* live items */
    uint64_t pending_up;   /* local changes not yet on the hub */
    uint64_t pending_down; /* changes the hub still had for this terminal
                            * when a sync was cut (0 after a full sync) */
    uint64_t conflicts;    /* entries in the conflict inbox */
    uint64_t tombstones;   /* deletions kept until every terminal has them */
    int selected;          /* synced by this terminal */
};
/* Fill one entry per class (8); *last_sync_ms is 0 when never synced. */
int simsync_status(struct simsync_node *n, struct simsync_class_status *out,
                   size_t cap, size_t *count,
                   uint64_t *last_sync_ms) SIMSYNC_MUST_CHECK;

/* Sync health (issue: "what blocks completion"): the facts behind
 * `simsync status`, and the reasons the terminal is not fully in sync and
 * safely backed up, each one line saying what to do. */
#define SIMSYNC_HEALTH_REASONS 12
struct simsync_health {
    int sim_ok;              /* the bound subscriber's SIM is inserted */
    uint64_t last_sync_ms;   /* last complete sync with the hub (0: never) */
    uint64_t pending_up;     /* local changes the hub has not acknowledged */
    uint64_t pending_down;   /* changes of a cut download still to come */
    uint64_t conflicts;      /* waiting in the conflict inbox */
    uint64_t unsynced_files; /* in class folders this terminal does not sync */
    uint64_t guarded;        /* deletions held back by the mass-delete guard */
    uint64_t backup_gen;     /* newest generation known here (0: none) */
    uint64_t backup_ms;      /* its time */
    int daemon_running;      /* `simsync daemon` holds this home */
    /* The daemon's last finished sync, from its log ("" when none). */
    char daemon_result[16];  /* ok, partial, failed */
    uint64_t daemon_sync_ms; /* when it ended */
    char daemon_waits[400];  /* why it holds back since ("" when it does not) */
    size_t nreasons;
    char reasons[SIMSYNC_HEALTH_REASONS][480];
};
/* Fill *h for this terminal at time now_ms (ms since 1970). With `scan`,
 * the class folders are scanned first (as a sync would), so edits not yet
 * recorded count as pending; otherwise it only reads: the store, the SIM,
 * the unsynced classes' folders and the daemon's log. It never contacts
 * the hub. */
int simsync_health(struct simsync_node *n, int scan, uint64_t now_ms,
                   struct simsync_health *h) SIMSYNC_MUST_CHECK;

/* ------------------------------------------------------------ lazy
 * Lazy classes (seed 000 [0056]): their items arrive as metadata only;
 * contents are fetched on demand, pinned to stay here, evicted to free
 * space. Fetch, pin and evict are not changes: nothing syncs, and an
 * evicted item is deleted nowhere else. */
/* The lazy classes ("none" when none) / set them (a comma list, "all" or
 * "none"; SIMSYNC_EINVAL for an unknown class). A class becomes lazy for
 * versions that arrive from now on; contents already here stay. */
int simsync_lazy_get(struct simsync_node *n, char *buf,
                     size_t len) SIMSYNC_MUST_CHECK;
int simsync_lazy_set(struct simsync_node *n,
                     const char *list) SIMSYNC_MUST_CHECK;
struct simsync_item_info {
    const char *cls, *name; /* borrowed for the callback */
    uint64_t size;
    uint8_t hash[32]; /* keyed content hash */
    int local;        /* the content is in the class folder */
    int pinned;
};
typedef void (*simsync_item_info_fn)(void *arg,
                                     const struct simsync_item_info *it);
/* Every live item of the classes in the mask (0: all), in key order. */
int simsync_items(struct simsync_node *n, uint32_t classes,
                  simsync_item_info_fn fn, void *arg) SIMSYNC_MUST_CHECK;
/* Bring the content of "CLASS/NAME" from the hub into its class folder,
 * checked against its hash (SIMSYNC_ECRYPTO when the hub's copy differs).
 * *was_local: it was here already (nothing done). Needs the bound SIM
 * when it talks to the hub. */
int simsync_fetch(struct simsync_node *n, const char *item,
                  int *was_local) SIMSYNC_MUST_CHECK;
/* Pin (on=1: fetch if needed, then keep it here and up to date) or unpin
 * (on=0) an item. */
int simsync_pin(struct simsync_node *n, const char *item, int on,
                int *was_local) SIMSYNC_MUST_CHECK;
/* Remove the local content of an item, keeping it everywhere else;
 * *freed gets the bytes. SIMSYNC_EREFUSED when it is pinned, changed
 * since the last sync, or holds an edit the hub does not have. */
int simsync_evict(struct simsync_node *n, const char *item,
                  uint64_t *freed) SIMSYNC_MUST_CHECK;

struct simsync_conflict {
    char cls[16];
    char name[512];      /* the item holding the winning content */
    char copy_name[512]; /* the conflict copy */
    int copy_is_mine;    /* the copy holds this terminal's former edit */
};
/* List the conflict inbox; *count set to the total (may exceed cap). */
int simsync_conflicts(struct simsync_node *n, struct simsync_conflict *out,
                      size_t cap, size_t *count) SIMSYNC_MUST_CHECK;
/* Resolve "class/name": keep "mine", "theirs" or "both". */
int simsync_conflict_resolve(struct simsync_node *n, const char *item,
                             const char *keep) SIMSYNC_MUST_CHECK;

/* Serve as the hub on `listen` ("HOST:PORT") until *stop becomes non-zero.
 * If bound_addr is not NULL the real address is written there once
 * listening (useful with port 0). */
/* ---------------------------------------------------------------- backup
 * Generations: immutable, encrypted manifests of the selected classes at
 * one instant, numbered 1, 2, ... per subscriber on the hub. */
struct simsync_backup_report {
    uint64_t gen;          /* the generation made */
    uint64_t items, bytes; /* items in it and their plaintext bytes */
    uint64_t chunks_sent, chunk_bytes_sent; /* chunks the hub lacked */
    uint64_t manifest_bytes;
    uint64_t left_out; /* items changed during the backup, left for the next */
    double seconds;
    uint8_t digest[32]; /* of the sealed manifest */
    /* Of chunks_sent, those sent while the scan cut them (read once). */
    uint64_t chunks_streamed;
};
/* Scan, then back up `classes` (0: this terminal's classes) now. One
 * backup at a time per terminal: SIMSYNC_EBUSY while another runs. */
int simsync_backup_now(struct simsync_node *n, uint32_t classes,
                       struct simsync_backup_report *rep) SIMSYNC_MUST_CHECK;
struct simsync_backup_opts {
    uint32_t classes;    /* 0: this terminal's classes */
    uint64_t job;        /* the hub's request this answers (0: none) */
    uint64_t next_in_ms; /* ask the hub to start the next one then (0: no) */
};
int simsync_backup_run(struct simsync_node *n,
                       const struct simsync_backup_opts *o,
                       struct simsync_backup_report *rep) SIMSYNC_MUST_CHECK;
/* Changes not yet in a generation made by this terminal: the items
 * changed (locally or by sync) since its last backup's snapshot, and their
 * plaintext bytes. Reads the store only (scan first for fresh numbers). */
int simsync_backup_pending(struct simsync_node *n, uint64_t *items,
                           uint64_t *bytes) SIMSYNC_MUST_CHECK;

struct simsync_generation {
    uint64_t gen, created_ms, items, bytes, manifest_bytes;
    char terminal_id[64];
    uint32_t classes;
    int forgotten; /* (hub listing only) contents reclaimed */
};
/* The hub's generations, oldest first; *out returned (free). A hub that
 * lists fewer generations than this terminal has seen, or another digest
 * for one it has seen, fails with SIMSYNC_ECRYPTO. */
int simsync_backup_list(struct simsync_node *n, struct simsync_generation **out,
                        size_t *count) SIMSYNC_MUST_CHECK;

enum simsync_on_conflict {
    SIMSYNC_ON_CONFLICT_ASK,
    SIMSYNC_ON_CONFLICT_OVERWRITE,
    SIMSYNC_ON_CONFLICT_KEEP_BOTH,
    SIMSYNC_ON_CONFLICT_SKIP,
};
struct simsync_restore_opts {
    uint64_t gen;
    uint32_t classes;         /* 0: every class in the generation */
    const char *const *items; /* "class/name" filters (nitems of them) */
    size_t nitems;
    int dry_run; /* list what would change, write nothing */
    enum simsync_on_conflict on_conflict;
    /* ASK: called for an item that exists here and differs; returns one of
     * OVERWRITE, KEEP_BOTH or SKIP. NULL: ASK fails with SIMSYNC_EINVAL. */
    enum simsync_on_conflict (*ask)(void *arg, const char *cls,
                                    const char *name);
    void *ask_arg;
    /* Leave the restore as a job for this other terminal of the
     * subscriber, which runs it at its next contact (NULL: here). ASK is
     * refused for a job (nobody is there to answer). */
    const char *to_terminal;
    int delete_after; /* forget the generation once restored */
};
/* One line per item considered: action is "restore", "overwrite",
 * "keep-both", "skip", "unchanged", "refused" or (show) "item". */
typedef void (*simsync_item_fn)(void *arg, const char *action, const char *cls,
                                const char *name, uint64_t size);
struct simsync_restore_report {
    uint64_t restored, overwritten, kept_both, skipped, unchanged, refused;
    uint64_t chunks_fetched;
    uint64_t job;   /* to_terminal: the job id the hub gave */
    int forgotten;  /* delete_after: the generation was forgotten */
};
/* Restore (part of) a generation into this terminal's class folders.
 * Restored items become new local changes (they sync). Unsafe names
 * ("..", absolute, through or onto a symlink) are refused and counted; the
 * call then fails with SIMSYNC_EREFUSED after restoring the rest. */
int simsync_restore(struct simsync_node *n,
                    const struct simsync_restore_opts *opts, simsync_item_fn fn,
                    void *arg,
                    struct simsync_restore_report *rep) SIMSYNC_MUST_CHECK;
/* List the items of a generation (fn gets "item" lines). */
int simsync_backup_show(struct simsync_node *n, uint64_t gen,
                        simsync_item_fn fn, void *arg) SIMSYNC_MUST_CHECK;

/* Run the restore jobs other terminals left for this one (delivered at
 * the last contact with the hub); *ran counts them. Each ends with a
 * notice. */
int simsync_jobs_run(struct simsync_node *n, simsync_item_fn fn, void *arg,
                     size_t *ran) SIMSYNC_MUST_CHECK;

/* The backup history the hub keeps for the subscriber, oldest first. */
struct simsync_history_event {
    uint64_t seq, time_ms, gen;
    uint32_t attempt;
    char terminal_id[64];
    char event[16]; /* started, retried, accepted, busy, no-answer, failed,
                     * gave-up, completed, forgotten, restore-job */
    char detail[512];
};
int simsync_backup_history(struct simsync_node *n,
                           struct simsync_history_event **out,
                           size_t *count) SIMSYNC_MUST_CHECK;

/* Notices received from the hub (and from restore jobs run here), oldest
 * first; they are kept until cleared. */
struct simsync_notice {
    uint64_t seq, time_ms;
    char text[512];
};
int simsync_notices(struct simsync_node *n, struct simsync_notice **out,
                    size_t *count) SIMSYNC_MUST_CHECK;
int simsync_notices_clear(struct simsync_node *n) SIMSYNC_MUST_CHECK;

/* Retention: keep the newest keep_last generations, the newest of each of
 * the last keep_daily days, keep_weekly ISO weeks and keep_monthly months
 * (local time), plus nothing else; or forget exactly `gens`. The hub then
 * reclaims every chunk no item and no kept generation uses. fn sees
 * "keep" or "forget" for each generation. */
struct simsync_forget_opts {
    uint32_t keep_last, keep_daily, keep_weekly, keep_monthly;
    const uint64_t *gens;
    size_t ngens;
    int dry_run;
};
struct simsync_forget_report {
    uint64_t kept, forgotten, chunks_freed, bytes_freed;
};
typedef void (*simsync_gen_fn)(void *arg, const char *action,
                               const struct simsync_generation *g);
int simsync_backup_forget(struct simsync_node *n,
                          const struct simsync_forget_opts *o,
                          simsync_gen_fn fn, void *arg,
                          struct simsync_forget_report *rep) SIMSYNC_MUST_CHECK;

/* The terminal daemon: syncs when its policy says so (simsync_policy_*;
 * SIM insertion and removal, data changes, the battery, timers, local
 * requests), keeps a control connection to the hub (reconnects with backoff
 * from 1 s to 60 s), answers its backup requests with OK (and backs up) or
 * BUSY, runs restore jobs, and backs up by itself when the pending changes
 * exceed backup_pending_bytes. One daemon per home (SIMSYNC_EBUSY when
 * another runs). Runs until *stop. */
struct simsync_daemon_opts {
    const char *power_supply_dir; /* NULL: /sys/class/power_supply */
    unsigned busy_after_edit_s;   /* BUSY if a data file changed lately */
    unsigned battery_below;       /* BUSY below this percent, discharging */
    uint64_t backup_pending_bytes; /* 0: no pending-size trigger */
    unsigned check_every_s;       /* how often to look (default 10) */
    unsigned retry_after_s;       /* what BUSY asks for (default 60) */
    /* One line per decision (may be NULL). */
    void (*log)(void *arg, const char *line);
    void *log_arg;
    /* Also serve paired peers on this link address (HOST:PORT, rfcomm:CHANNEL, ...) while running, as
     * simsync_serve does (NULL: no). The first log line then names the
     * address it listens on; serving logs from its own thread. */
    const char *listen;
    /* Where terminal devices are, for user activity (the idle trigger
     * waits for no input on them either); NULL: /dev. */
    const char *tty_dir;
    /* More link addresses to serve paired peers on, with listen (may be
     * NULL): e.g. TCP and RFCOMM at once. */
    const char *const *listen_more;
    size_t n_listen_more;
};
int simsync_daemon(struct simsync_node *n, const struct simsync_daemon_opts *o,
                   volatile int *stop) SIMSYNC_MUST_CHECK;

/* ------------------------------------------------------- daemon policy
 * When the daemon syncs by itself: the trigger policy (docs/daemon.md),
 * kept per terminal in <home>/policy; the daemon's control socket; and its
 * decision log, <home>/daemon.log. */

/* The i-th policy key (0, 1, ...): its name, kind ("bool", "duration",
 * "size", "percent", "any|all") and one line of help, all static.
 * SIMSYNC_ENOTFOUND past the last key. */
int simsync_policy_key(size_t i, const char **name, const char **kind,
                       const char **help);
/* Every key's value as "key value\n" lines, in key order, into buf (len
 * bytes; 2048 suffice). */
int simsync_policy_get(struct simsync_node *n, char *buf,
                       size_t len) SIMSYNC_MUST_CHECK;
/* Check and store one key ("sync.every_seconds", "15m"); a running daemon
 * takes it at once. SIMSYNC_ENOTFOUND (unknown key) or SIMSYNC_EINVAL (bad
 * value, or in conflict with another key), the reason in the node's
 * error message. */
int simsync_policy_set(struct simsync_node *n, const char *key,
                       const char *value) SIMSYNC_MUST_CHECK;

/* One request to the daemon running for this node: "sync", "upload",
 * "download" (a user command for the policy), "confirm yes", "confirm no"
 * (the answer to its question), "reload" (the policy). Its one-line answer
 * goes to reply. SIMSYNC_ENOTFOUND when no daemon runs; SIMSYNC_EREFUSED
 * when it refused (reply says why). */
int simsync_daemon_request(struct simsync_node *n, const char *request,
                           char *reply, size_t len) SIMSYNC_MUST_CHECK;

/* Take the SIM out as simsync_sim_remove() does, but when a daemon runs,
 * first let it upload the pending changes (policy upload.on_sim_remove) and
 * wait until it is done or sim.remove_timeout_seconds have passed. progress
 * (may be NULL) sees each thing waited for, and last the outcome, as one
 * line. *daemon (may be NULL) is set to 1 when a daemon was asked. */
int simsync_sim_remove_wait(struct simsync_node *n,
                            void (*progress)(void *arg, const char *line),
                            void *arg, int *daemon) SIMSYNC_MUST_CHECK;

/* One entry of the decision log. */
struct simsync_log_entry {
    uint64_t time_ms;   /* since 1970 */
    char kind[16];      /* "event" (something happened, failures too),
                         * "start" (a sync began), "done" (it ended), "wait"
                         * (nothing starts, and why), "ask" (a question to
                         * the user) */
    char action[16];    /* start, done, ask: "sync", "upload", "download" */
    char trigger[16];   /* start, done, ask: the first trigger served */
    char triggers[160]; /* start, done, ask: every trigger served, "a,b" */
    char result[16];    /* done: "ok", "partial" (a limit), "failed" */
    uint64_t sent_items, sent_bytes, recv_items, recv_bytes; /* done */
    uint64_t pending_bytes; /* done, event: bytes left to upload after it */
    uint64_t ms;            /* done: how long the sync took */
    char text[400];         /* the reason, what happened, or the error */
};
/* Where a reader of the log is: zero it to start at the oldest entry. */
struct simsync_log_pos {
    uint64_t file; /* identity of the file being read (0: none yet) */
    uint64_t off;  /* bytes of it read */
};
/* Call fn for each entry after *pos, oldest first, and move *pos past
 * them; call again later to follow the log (across its rotation). fn
 * returns non-zero to stop, which is returned. No log yet is no entry. */
int simsync_log_read(struct simsync_node *n, struct simsync_log_pos *pos,
                     int (*fn)(void *arg, const struct simsync_log_entry *e),
                     void *arg) SIMSYNC_MUST_CHECK;

/* Why the daemon would answer BUSY now ("" when it would not). */
int simsync_busy_reason(struct simsync_node *n,
                        const struct simsync_daemon_opts *o, char *why,
                        size_t len) SIMSYNC_MUST_CHECK;

/* ----------------------------------------------------------------- erase
 * Collective erase (seed 003 FIG 20): before a terminal changes hands,
 * everything made on it is saved on the hub, then the terminal is left
 * like a new one: no class folders, no store, no keys, no binding.
 * docs/erase.md has the design. */
struct simsync_erase_report {
    int resumed; /* an interrupted wipe was finished (nothing synced) */
    int offline; /* forced: wiped without the hub's acknowledgement */
    char offline_why[512]; /* forced: why the hub could not be used */
    uint32_t sync_rounds;  /* syncs run until the hub had everything */
    uint64_t sent_items, sent_bytes, recv_items; /* over those syncs */
    /* Forced only: what the wipe loses. Local changes (edits, new files,
     * deletions) the hub never acknowledged, with the plaintext bytes of
     * the live ones, and files in class folders this terminal does not
     * sync (never uploaded at all). */
    uint64_t lost_items, lost_bytes;
    uint64_t unsynced_files, unsynced_bytes;
    /* What the wipe removed (this run only, when resumed). */
    uint64_t removed_files, removed_dirs, removed_bytes;
    /* The hub forgot this terminal (registration, schedule, waiting
     * restore jobs), so the same terminal ID can register again; 0 when a
     * forced erase went on without it. */
    int unregistered;
    uint32_t jobs_dropped; /* restore jobs the hub had waiting for it */
};
struct simsync_erase_opts {
    /* Erase even when the hub cannot be used (unreachable, link lost, it
     * refuses or misbehaves), when changes stay unacknowledged, or when
     * class folders this terminal does not sync hold files. */
    int force;
    /* Forced only, and required then: called once, before anything is
     * touched, with the report filled up to the losses, whenever the
     * forced erase goes on without the hub or loses anything. Returns 1
     * to wipe, 0 to stop (simsync_erase then fails with SIMSYNC_EREFUSED
     * and nothing is touched). */
    int (*confirm)(void *arg, const struct simsync_erase_report *rep);
    void *confirm_arg;
};
/* Erase this terminal. In order:
 *  1. the inserted SIM must carry the subscriber the terminal is bound
 *     to (as for a sync); no backup of this terminal may be running;
 *     without `force`, class folders this terminal does not sync must be
 *     empty (their files were never uploaded);
 *  2. sync with the registered hub (a full `simsync_sync`), then scan the
 *     class folders again and check that no change recorded by this
 *     replica lies above what the hub acknowledged having committed; up
 *     to 3 rounds while edits keep arriving;
 *  3. ask the hub to forget this terminal (OP_UNREGISTER: registration,
 *     schedule, restore jobs waiting for it); a forced erase goes on when
 *     the hub cannot be used;
 *     then write and sync the marker <home>/erase.pending, close the store;
 *  4. wipe: overwrite and unlink the key files (node.key, datakey.box,
 *     password), remove <home>/store, the eight class folders (and the
 *     data folder when it is the default <home>/data and is then empty),
 *     then binding, sim, backup.lock and config, sync the folders, and
 *     remove the marker last.
 * Until step 3 a failure or a crash changes nothing a sync would not;
 * from step 3 on the wipe is finished by simsync_erase_resume, which
 * simsync_node_open and simsync_init call.
 *
 * [in] n     an open terminal or desktop node. After SIMSYNC_OK, or after
 *            an error once step 3 was reached (simsync_erase_pending(home)
 *            then says 1), n may only be passed to simsync_node_close.
 * [in] o     options (NULL: not forced).
 * [out] rep  zeroed first, then filled as the erase goes.
 * Returns SIMSYNC_OK, or:
 *  SIMSYNC_EREFUSED  not registered, SIM of another subscriber, files in
 *                    classes not synced, changes the hub still has not
 *                    acknowledged after 3 rounds, a forced erase not
 *                    confirmed (all: nothing touched);
 *  SIMSYNC_ENOSIM, SIMSYNC_EBLOCKED  no usable SIM (nothing touched);
 *  SIMSYNC_EBUSY     a backup of this terminal runs (nothing touched);
 *  SIMSYNC_EMASSDEL  the sync's mass-delete guard stopped it;
 *  SIMSYNC_ESTATE    a hub node;
 *  SIMSYNC_EINVAL    force without a confirm callback;
 *  the sync's errors (SIMSYNC_ECONNECT, _ECLOSED, _ETIMEOUT, _EPROTO,
 *  _ECRYPTO...) when not forced: nothing erased;
 *  SIMSYNC_EIO, _ENOSPC, _ENOMEM: before step 3, nothing erased; after
 *  it, the wipe is pending and the node's message says what stopped it.
 * Caveats: a file written into a class folder after the last check (a
 * fraction of a second before the marker) is wiped unsent. Key files are
 * overwritten in place, which a copy-on-write or journalling file system
 * may not honour; the store is unlinked, not overwritten. The hub keeps
 * this terminal's registration (see docs/erase.md). Test hook: with
 * SIMSYNC_TEST_ERASE_KILL_AT=K in the environment the process kills
 * itself with SIGKILL at step K (1: SIM checked, 2: hub acknowledged,
 * 3: marker written, then one step per removal). */
int simsync_erase(struct simsync_node *n, const struct simsync_erase_opts *o,
                  struct simsync_erase_report *rep) SIMSYNC_MUST_CHECK;
/* 1 if an erase of `home` began wiping and did not finish, else 0. */
int simsync_erase_pending(const char *home);
/* Finish an interrupted wipe of `home` (nothing to do: SIMSYNC_OK with
 * rep->resumed 0). rep may be NULL. On failure err (errlen bytes, may be
 * NULL) says what could not be removed; the marker stays. Returns
 * SIMSYNC_OK, SIMSYNC_EIO, SIMSYNC_ENOSPC, SIMSYNC_ENOMEM or
 * SIMSYNC_EPROTO (an unreadable marker). */
int simsync_erase_resume(const char *home, struct simsync_erase_report *rep,
                         char *err, size_t errlen) SIMSYNC_MUST_CHECK;

/* ----------------------------------------------------------------- peers
 * Trusted nodes of one subscriber (a desktop companion, the handsets)
 * pair once, then sync directly with the same secure channel and sync
 * session as with the hub; knowledge and acknowledgements are kept per
 * peer, so syncing with a peer and with the hub in any order converges.
 * docs/peers.md has the design. */
struct simsync_peer {
    char terminal_id[64];
    char node_id[40];     /* fingerprint of its pinned node key */
    char role[16];        /* "terminal" or "desktop" */
    char addr[256];       /* where it was last reached ("": not known) */
    uint64_t paired_ms;   /* since 1970 */
    uint64_t last_sync_ms; /* last complete session with it (0: none) */
};

/* Check a link address for a peer (docs/links.md): HOST:PORT or
 * tcp:HOST:PORT, rfcomm:BDADDR[:CHANNEL] to connect, rfcomm:[BDADDR:]CHANNEL
 * to listen (`listening` non-zero). Returns SIMSYNC_OK, or SIMSYNC_EINVAL
 * with one sentence in `why` (may be NULL) saying what is wrong. Nothing
 * is opened. */
int simsync_link_check(const char *addr, int listening, char *why,
                       size_t why_len);

struct simsync_pair_opts {
    const char *listen; /* wait for the other node on a link address ... */
    const char *peer;   /* ... or connect to one: exactly one of the two */
    unsigned timeout_s; /* wait at most this long for the other node, and
                         * for its user's answer (0: 300) */
    /* listen: called once listening, with the real address (may be
     * NULL). */
    void (*listening)(void *arg, const char *addr);
    /* Called once both nodes proved they hold the subscriber's key, with
     * the code both nodes show and who the other node is. Returns 1 when
     * the user confirmed that the other node shows the same code, 0 to
     * refuse. Required. */
    int (*confirm)(void *arg, const char *code, const struct simsync_peer *p);
    void *arg;
};
/* Pair this trusted node with another of the same subscriber: each
 * proves it holds the subscriber's data key (the key never travels),
 * both show a 6-digit code made from this connection, and each pins the
 * other's node key and terminal ID once both users confirmed. Pairing the
 * same node again replaces its record.
 * [out] out  the other node (zeroed first; may be NULL).
 * Returns SIMSYNC_OK, or:
 *  SIMSYNC_EREFUSED  the other node holds another subscriber's key, or a
 *                    user did not confirm the code (nothing pinned on
 *                    either node);
 *  SIMSYNC_ESTATE    this node is a hub or not registered;
 *  SIMSYNC_EINVAL    bad options, or the other node is this node;
 *  SIMSYNC_ECRYPTO   the other node's nonce does not match its commitment;
 *  SIMSYNC_ECONNECT, SIMSYNC_ETIMEOUT (nobody came, nobody answered),
 *  SIMSYNC_ECLOSED, SIMSYNC_EPROTO: the link or the other node failed.
 * Caveat: if the link drops after this node sent its confirmation, the
 * other node may have pinned this one while this one pinned nothing;
 * pairing again repairs it. */
int simsync_pair(struct simsync_node *n, const struct simsync_pair_opts *o,
                 struct simsync_peer *out) SIMSYNC_MUST_CHECK;
/* The paired peers, by terminal ID; *out returned (free). */
int simsync_peers(struct simsync_node *n, struct simsync_peer **out,
                  size_t *count) SIMSYNC_MUST_CHECK;
/* Forget the paired peer whose terminal ID or node ID is `id`: its
 * sessions are refused from now on. SIMSYNC_ENOTFOUND when none. */
int simsync_unpair(struct simsync_node *n, const char *id) SIMSYNC_MUST_CHECK;

/* simsync_sync with a paired peer instead of the hub: the peer at `addr`
 * (HOST:PORT; NULL: where `with` was last reached), which must be the
 * paired peer `with` (terminal ID or node ID) when given, else any paired
 * peer. The same rules as with the hub: this node's SIM must be the bound
 * subscriber's; only the classes both sides sync travel. Errors as
 * simsync_sync, plus SIMSYNC_EREFUSED (the peer is not paired here, or
 * does not accept this node) and SIMSYNC_ENOTFOUND (no peer `with`). */
int simsync_sync_peer(struct simsync_node *n, const char *addr,
                      const char *with, int allow_mass_delete,
                      struct simsync_sync_report *rep) SIMSYNC_MUST_CHECK;

struct simsync_serve_opts {
    const char *listen; /* a link address: HOST:PORT, rfcomm:CHANNEL, ... */
    /* Called once listening, with the real address (may be NULL). */
    void (*listening)(void *arg, const char *addr);
    /* One line per connection served, from the server's thread (may be
     * NULL). */
    void (*log)(void *arg, const char *line);
    void *arg;
    /* More link addresses served at the same time (may be NULL); listening
     * is called once per address, listen's first. */
    const char *const *more;
    size_t n_more;
};
/* Serve this trusted node's paired peers until *stop: each session runs
 * as with the hub, this node applying changes by the trusted rules
 * (resolution, conflict copies, tombstones, renames) after a scan of its
 * class folders. Peers not paired here are refused. The node must be a
 * registered terminal or desktop (SIMSYNC_ESTATE otherwise); its SIM is
 * not needed to serve. */
int simsync_serve(struct simsync_node *n, const struct simsync_serve_opts *o,
                  volatile int *stop) SIMSYNC_MUST_CHECK;

/* ----------------------------------------------------------------- kiosk
 * A shop registration kiosk (seed 003 FIG 18/19): the hub issues it a
 * credential; with it the kiosk binds a handset's terminal ID and node key
 * to the subscriber of a SIM whose PIN it checked, without the terminal
 * password. Every registration is signed by the kiosk, audited at the hub
 * and announced to the subscriber's other terminals. The handset then
 * completes its keys at its first contact (simsync_register_kiosk). The
 * kiosk holds no user data and no data key. docs/kiosk.md has the design. */

/* Longest credential text, with its NUL. */
#define SIMSYNC_KIOSK_CRED_MAX 200

/* Hub: issue a credential to kiosk `name` (1-32 of A-Z a-z 0-9 . _ -).
 * The hub keeps only its public key; the text written to cred (len >=
 * SIMSYNC_KIOSK_CRED_MAX) is the only copy of the secret: hand it to the
 * shop. Adding a name that was removed issues a new key. SIMSYNC_EEXIST
 * when an active kiosk has that name; SIMSYNC_EINVAL for a bad name. */
int simsync_hub_kiosk_add(struct simsync_node *n, const char *name,
                          char *cred, size_t len) SIMSYNC_MUST_CHECK;
/* Hub: revoke kiosk `name`; its registrations are refused from now on
 * (bindings it made stay). SIMSYNC_ENOTFOUND when no active kiosk has it. */
int simsync_hub_kiosk_remove(struct simsync_node *n,
                             const char *name) SIMSYNC_MUST_CHECK;
struct simsync_kiosk {
    char name[40];
    char id[40];          /* fingerprint of the credential's key */
    uint64_t added_ms;
    uint64_t removed_ms;  /* 0: active */
    uint64_t registrations;
};
/* Hub: every kiosk ever issued, by name; *out returned (free). */
int simsync_hub_kiosk_list(struct simsync_node *n, struct simsync_kiosk **out,
                           size_t *count) SIMSYNC_MUST_CHECK;
struct simsync_kiosk_audit {
    uint64_t seq, time_ms;
    char kiosk[40];          /* as the request named it */
    char terminal_id[64];
    char node_id[40];        /* of the node key registered ("" if none) */
    char subscriber_tag[20]; /* keyed hash of the subscriber, not the ID */
    int accepted;
    char detail[200];        /* registered, or why it was refused */
};
/* Hub: every kiosk registration and refusal, oldest first; *out returned
 * (free). */
int simsync_hub_audit(struct simsync_node *n, struct simsync_kiosk_audit **out,
                      size_t *count) SIMSYNC_MUST_CHECK;

/* Kiosk: keep the credential text (checked, stored 0600 in the home as
 * kiosk.credential, replacing any earlier one). SIMSYNC_EINVAL when it is
 * not a credential; SIMSYNC_ESTATE when the node is not a kiosk. */
int simsync_kiosk_enroll(struct simsync_node *n,
                         const char *credential) SIMSYNC_MUST_CHECK;

struct simsync_kiosk_request {
    const char *hub_addr;   /* HOST:PORT (not needed with save) */
    const char *hub_id;     /* must be the hub that issued the credential */
    const char *subscriber; /* typed in (may be NULL: read from the SIM) */
    const char *sim_file;   /* the SIM in the kiosk's reader (required) */
    const char *pin;        /* checked by the SIM (3 tries, then blocked) */
    /* The handset: read over a link from `simsync kiosk offer` (PEER:
     * [tcp:]HOST:PORT, or another scheme the transports know) ... */
    const char *terminal_peer;
    /* ... or typed in: terminal ID and node key (64 hex digits). */
    const char *terminal_id, *node_key;
    /* Write the signed request to this file (0600) instead of sending it;
     * simsync_kiosk_send sends it later (within 24 hours). */
    const char *save;
};
struct simsync_kiosk_result {
    char kiosk[40];
    char terminal_id[64];
    char node_id[40];
    char subscriber_masked[20]; /* the last 4 digits only */
    int subscriber_is_new;      /* the handset will create the data key */
    uint32_t notified;          /* other terminals that get a notice */
    int saved;                  /* written to req->save, not sent */
};
/* Kiosk: check the PIN on the SIM (it must carry req->subscriber when
 * given), take the handset's terminal ID and node key, sign the
 * registration with the credential and send it to the hub over the secure
 * channel (or save it). Every outcome is appended to <home>/kiosk.audit.
 * Returns SIMSYNC_OK, or SIMSYNC_EPIN / SIMSYNC_EBLOCKED (the SIM refused
 * the PIN), SIMSYNC_EREFUSED (the hub refused: unknown or removed kiosk,
 * bad signature, replay, terminal ID taken; or the SIM carries another
 * subscriber), SIMSYNC_ESTATE (not a kiosk, no credential), SIMSYNC_EINVAL
 * (bad request), SIMSYNC_ECONNECT / _ECLOSED / _ETIMEOUT (hub or handset
 * unreachable), SIMSYNC_EPROTO (a handset offer that does not match its
 * channel key). */
int simsync_kiosk_register(struct simsync_node *n,
                           const struct simsync_kiosk_request *req,
                           struct simsync_kiosk_result *out) SIMSYNC_MUST_CHECK;
/* Kiosk: its own audit (<home>/kiosk.audit), oldest first: every
 * registration attempt, PIN refusals included; *out returned (free). */
struct simsync_kiosk_attempt {
    uint64_t time_ms;
    char result[16]; /* registered, refused, failed, saved */
    char terminal_id[64];
    char node_id[40];
    char subscriber_masked[20];
    char detail[512];
};
int simsync_kiosk_attempts(struct simsync_node *n,
                           struct simsync_kiosk_attempt **out,
                           size_t *count) SIMSYNC_MUST_CHECK;
/* Kiosk: send a request saved by simsync_kiosk_register. */
int simsync_kiosk_send(struct simsync_node *n, const char *hub_addr,
                       const char *hub_id, const char *file,
                       struct simsync_kiosk_result *out) SIMSYNC_MUST_CHECK;

/* Handset: this node's public key as 64 hex digits (len >= 65). */
int simsync_node_key(struct simsync_node *n, char *buf, size_t len);

struct simsync_offer_opts {
    const char *listen;  /* [tcp:]HOST:PORT */
    unsigned timeout_s;  /* wait this long for a kiosk (0: 300) */
    void (*listening)(void *arg, const char *addr); /* may be NULL */
    void *arg;
};
/* Handset: wait for one kiosk on o->listen and give it this terminal's ID
 * and node key (public data only) over the secure channel. *kiosk_node
 * (40 bytes, may be NULL) gets the reader's node ID. */
int simsync_kiosk_offer(struct simsync_node *n,
                        const struct simsync_offer_opts *o,
                        char *kiosk_node) SIMSYNC_MUST_CHECK;

/* Handset: complete a binding a kiosk made for this terminal: like
 * simsync_register (the SIM checks the PIN, the subscriber's data key is
 * made or unwrapped with the recovery secret) but with no terminal
 * password. SIMSYNC_EREFUSED when the hub holds no kiosk binding for this
 * subscriber, terminal ID and node key. */
int simsync_register_kiosk(struct simsync_node *n, const char *hub_addr,
                           const char *hub_id, const char *classes,
                           const char *pin, const char *recovery,
                           char *recovery_out,
                           size_t recovery_len) SIMSYNC_MUST_CHECK;

/* Hub administration (on the hub's own home, while it serves or not). */
struct simsync_schedule {
    char terminal_id[64];       /* "": any terminal of the subscriber */
    uint64_t every_ms;          /* 0: not periodic */
    int at_minute;              /* minute of the day, local; -1: none */
    uint64_t retry_ms;          /* 0: 15 minutes */
    uint32_t max_attempts;      /* 0: 3 */
    uint64_t answer_timeout_ms; /* 0: 60 s */
    uint64_t next_ms;           /* out: when the next job starts */
    uint32_t attempt;           /* out: attempts of the current job */
};
int simsync_hub_schedule_set(struct simsync_node *n, const char *subscriber,
                             struct simsync_schedule *s) SIMSYNC_MUST_CHECK;
int simsync_hub_schedule_list(struct simsync_node *n, const char *subscriber,
                              struct simsync_schedule **out,
                              size_t *count) SIMSYNC_MUST_CHECK;
int simsync_hub_schedule_remove(struct simsync_node *n, const char *subscriber,
                                const char *terminal_id) SIMSYNC_MUST_CHECK;
/* A subscriber's generations as the hub knows them (metadata only). */
int simsync_hub_generations(struct simsync_node *n, const char *subscriber,
                            struct simsync_generation **out,
                            size_t *count) SIMSYNC_MUST_CHECK;

/* Totals over everything a hub holds (it cannot read any of it). */
struct simsync_hub_stats {
    uint64_t subscribers, terminals;
    uint64_t items;      /* live items */
    uint64_t tombstones; /* deletions not yet acknowledged by every terminal */
    uint64_t siblings;   /* items held as concurrent versions */
    uint64_t chunks, chunk_bytes; /* stored chunk blobs (sealed sizes) */
};
int simsync_hub_stats(struct simsync_node *n,
                      struct simsync_hub_stats *out) SIMSYNC_MUST_CHECK;

/* Hub: close a connection that sends nothing for `seconds` (1..86400), or
 * that has not finished its handshake and first message `seconds` after it
 * was accepted (a client trickling bytes is no exception). Default 120.
 * Returns SIMSYNC_OK or SIMSYNC_EINVAL (out of range). */
int simsync_hub_set_idle_timeout(struct simsync_node *n, unsigned seconds);

int simsync_hub_serve(struct simsync_node *n, const char *listen,
                      volatile int *stop, char *bound_addr,
                      size_t bound_len) SIMSYNC_MUST_CHECK;

#endif /* SIMSYNC_H */
