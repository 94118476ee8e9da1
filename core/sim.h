/* sim.h -- SIM access: the subscriber ID, behind a PIN, through one ops table.
 *
 * A terminal learns whose data it holds by reading the subscriber ID
 * (IMSI-like) from its SIM, which releases it only once the card holder's
 * PIN (CHV1) was verified. Every SIM backend fills a `struct sim_ops`;
 * backends embed `struct sim` as the first member of their handle. Callers
 * use the sim_* wrappers below, never s->ops->x, so that tracing and fault
 * injection have one place to hook in.
 *
 * Backends: "file" (a virtual SIM stored in a file, for development and
 * tests; see "File backend" below). Later: "pcsc" (smart-card readers) and
 * "modem" (AT+CPIN / AT+CIMI). sim_open() picks the backend from the
 * location: "SCHEME:rest" for a registered scheme, anything else is a file
 * path ("file:PATH" spells it out; use "./a:b" for a file named "a:b").
 *
 * Card rules, which every backend enforces itself (PIN checks happen inside
 * the backend, never by a caller comparing strings):
 *  - PIN: 4..8 ASCII digits, 3 tries. A wrong PIN costs a try; the right
 *    PIN restores all 3. The call that uses the last try returns
 *    SIMSYNC_EBLOCKED (not SIMSYNC_EPIN): the PIN is then blocked, and even
 *    the right PIN is refused with SIMSYNC_EBLOCKED until unblocked.
 *  - PUK: exactly 8 ASCII digits, 10 tries. sim_unblock() with the right
 *    PUK sets a new PIN, restores both counters and counts as a verified
 *    PIN for this session; it works whether or not the PIN is blocked (it
 *    is also how a forgotten PIN is replaced). A wrong PUK costs a try; the
 *    call that uses the 10th returns SIMSYNC_EBLOCKED and the SIM is dead
 *    for good: every PIN and PUK is refused with SIMSYNC_EBLOCKED.
 *  - Verified state belongs to the session (from sim_open to sim_close, as
 *    a real card forgets it at power-off) and is never stored. Any PIN or
 *    PUK attempt that fails ends the session's verified state.
 *  - Try counters are persisted before the result of a check is known, so
 *    cutting power (killing the process) mid-check never gives extra tries.
 *  - Malformed input (SIMSYNC_EINVAL) never costs a try.
 *
 * File backend: a small text file, mode 0600, replaced atomically on each
 * change (temp file in the same directory, fsync, rename, fsync directory),
 * under an exclusive flock(2) so that concurrent processes cannot both
 * spend the same try. The path must name a regular file, not a symlink
 * (which the rename would replace): else SIMSYNC_EINVAL. Format, version
 * 1: exactly these lines in this order, each ending in "\n", no others:
 *
 *      simsync-vsim=1
 *      subscriber=001010123456789        5..15 decimal digits, in clear
 *      pin_salt=<32 hex>                 16 random bytes
 *      pin_hash=<64 hex>                 BLAKE2b-256, key = pin_salt,
 *                                        input = "simsync-vsim-pin" || PIN
 *      puk_salt=<32 hex>
 *      puk_hash=<64 hex>                 same, with "simsync-vsim-puk" || PUK
 *      pin_tries=3                       0..3
 *      puk_tries=10                      0..10 (0 = dead)
 *      check=<64 hex>                    BLAKE2b-256 of every byte above,
 *                                        keyed with a fixed public constant
 *
 * A file that breaks any rule above, or whose check does not match, is
 * refused with SIMSYNC_EPROTO; a missing file is SIMSYNC_ENOSIM. Hex is
 * lower case. Neither PIN nor PUK is ever written in clear.
 *
 * Caveats:
 *  - The check line detects corruption and hand edits (such as raising a
 *    try counter); it is keyed with a public constant, so it cannot stop
 *    someone who reads this header and recomputes it. Nor can a file stop
 *    its reader from copying it and guessing PINs offline (a 4-digit PIN
 *    falls in a moment). The file backend relies on file permissions; the
 *    tamper resistance a real card has in hardware belongs to the pcsc and
 *    modem backends.
 *  - If the file is replaced by a different SIM (another subscriber) while
 *    a session is open, the next PIN or PUK call fails with SIMSYNC_ENOSIM:
 *    close and open again, as after a card swap.
 *  - A handle is not safe for use by several threads at once; separate
 *    handles (in one or several processes) on the same file are.
 */
#ifndef SIMSYNC_SIM_H
#define SIMSYNC_SIM_H

#include <stddef.h>
#include "simsync.h"

#define SIM_OPS_VERSION 1
#define SIM_PIN_TRIES 3       /* PIN tries on a fresh or unblocked SIM */
#define SIM_PUK_TRIES 10      /* PUK tries before the SIM is dead */
#define SIM_SUBSCRIBER_MIN 5  /* digits */
#define SIM_SUBSCRIBER_MAX 15 /* digits (an IMSI has at most 15) */
#define SIM_SUBSCRIBER_BUF 16 /* SIM_SUBSCRIBER_MAX + terminating NUL */
#define SIM_PIN_MIN 4         /* digits */
#define SIM_PIN_MAX 8         /* digits */
#define SIM_PUK_LEN 8         /* digits, exactly */

struct sim;

/* What a SIM reports about itself; see sim_status(). */
struct sim_status {
    int pin_tries_left; /* 0..SIM_PIN_TRIES; 0 when blocked */
    int puk_tries_left; /* 0..SIM_PUK_TRIES; 0 when dead */
    int pin_verified;   /* 1 when this session verified the PIN */
    int blocked;        /* 1 when the PIN is blocked (PUK needed), or dead */
    int dead;           /* 1 when the PUK is used up: unusable for good */
};

/* A SIM backend. Members are only ever appended; `version` says how many
 * this table fills. Contracts are those of the sim_* wrappers below. */
struct sim_ops {
    int version;      /* SIM_OPS_VERSION */
    const char *name; /* the scheme it answers to: "file", later "pcsc" */
    /* Power the SIM at `path` (the location without "name:") on; *out is
     * returned to the caller, who passes it to close. */
    int (*open)(const char *path, struct sim **out);
    int (*verify_pin)(struct sim *s, const char *pin);
    int (*unblock)(struct sim *s, const char *puk, const char *new_pin);
    /* Optional (may be NULL): replace the PIN, given the current one. */
    int (*change_pin)(struct sim *s, const char *old_pin, const char *new_pin);
    int (*subscriber)(struct sim *s, char *buf, size_t len);
    int (*status)(struct sim *s, struct sim_status *st);
    void (*close)(struct sim *s); /* never given NULL by the wrapper */
};

/* Base of every backend's handle: backends embed it as first member and
 * call sim_init() on it. */
struct sim {
    const struct sim_ops *ops;
    int last_errno; /* errno of the last failed system call, 0 if none:
                     * what to tell a person after SIMSYNC_EIO */
    /* Fault injection (see sim_fault_after_persist): when non-NULL, the
     * backend calls fault_fn(fault_arg) each time it has persisted a spent
     * try and has not yet compared the PIN or PUK. */
    void (*fault_fn)(void *arg);
    void *fault_arg;
};

/* The file backend's ops. */
extern const struct sim_ops sim_file_ops;

/* The ops for a scheme name ("file"), or NULL if none is registered. */
const struct sim_ops *sim_find(const char *scheme);

/* Initialise the base fields of a freshly allocated handle. */
void sim_init(struct sim *s, const struct sim_ops *ops);

/* Power on the SIM at `location` ("file:PATH", "PATH", later
 * "pcsc:READER"). On success *out is returned to the caller, who closes it
 * with sim_close(); on failure *out is NULL. No PIN is verified yet.
 * Returns SIMSYNC_OK; SIMSYNC_EINVAL for a NULL argument, an empty
 * location, an unknown scheme, or (file) a path that is not a regular
 * file; SIMSYNC_ENOSIM when there is no SIM there; SIMSYNC_EPROTO when
 * the SIM's data is malformed or corrupted; SIMSYNC_ENOMEM; SIMSYNC_EIO
 * when it cannot be read (errno is left as the failing call set it). */
int sim_open(const char *location, struct sim **out) SIMSYNC_MUST_CHECK;

/* Verify the PIN (CHV1) for this session. Returns SIMSYNC_OK (tries
 * restored to SIM_PIN_TRIES); SIMSYNC_EPIN for a wrong PIN with tries
 * left; SIMSYNC_EBLOCKED when this call used the last try, when the PIN
 * was already blocked, or when the SIM is dead; SIMSYNC_EINVAL for a
 * malformed PIN (no try spent); SIMSYNC_EPROTO if the SIM's data turned
 * out corrupted; SIMSYNC_ENOSIM if the SIM went away or was swapped;
 * SIMSYNC_EIO / SIMSYNC_ENOSPC if the spent try could not be stored (then
 * nothing was compared). */
int sim_verify_pin(struct sim *s, const char *pin) SIMSYNC_MUST_CHECK;

/* Unblock with the PUK and set `new_pin`. Returns SIMSYNC_OK (PIN set,
 * both counters restored, session verified); SIMSYNC_EPIN for a wrong PUK
 * with tries left; SIMSYNC_EBLOCKED when this call used the last PUK try
 * or the SIM was already dead; SIMSYNC_EINVAL for a malformed PUK or new
 * PIN (no try spent); otherwise as sim_verify_pin(). */
int sim_unblock(struct sim *s, const char *puk,
                const char *new_pin) SIMSYNC_MUST_CHECK;

/* Replace the PIN, proving the current one; a wrong `old_pin` costs a try
 * exactly as in sim_verify_pin(), and success verifies the session.
 * Returns as sim_verify_pin(), or SIMSYNC_EREFUSED when the backend
 * cannot change PINs. */
int sim_change_pin(struct sim *s, const char *old_pin,
                   const char *new_pin) SIMSYNC_MUST_CHECK;

/* Copy the subscriber ID (digits, NUL-terminated) into buf[len]; a buffer
 * of SIM_SUBSCRIBER_BUF bytes always suffices. `buf` is zeroed first (up
 * to len). Returns SIMSYNC_OK; SIMSYNC_EREFUSED when this session has not
 * verified the PIN; SIMSYNC_EINVAL for a NULL argument or a buffer too
 * small for this subscriber ID. */
int sim_subscriber(struct sim *s, char *buf, size_t len) SIMSYNC_MUST_CHECK;

/* Fill *st (zeroed first) with the SIM's current counters, read afresh.
 * Returns SIMSYNC_OK, SIMSYNC_EINVAL, or an error of sim_open() when the
 * SIM's data can no longer be read. */
int sim_status(struct sim *s, struct sim_status *st) SIMSYNC_MUST_CHECK;

/* Power the SIM off: the verified state is forgotten. NULL-safe. */
void sim_close(struct sim *s);

/* Fault injection for tests: call fn(arg) after each persisted try and
 * before the comparison (fn may end the process, to prove a spent try
 * stays spent). NULL turns it off. */
void sim_fault_after_persist(struct sim *s, void (*fn)(void *arg), void *arg);

/* Make a new virtual SIM file at `path` (mode 0600) holding `subscriber`
 * (5..15 digits), `pin` (4..8 digits) and `puk` (8 digits), with full try
 * counters. The file appears whole or not at all. Returns SIMSYNC_OK;
 * SIMSYNC_EEXIST when `path` already exists (it is left untouched);
 * SIMSYNC_EINVAL for malformed arguments; SIMSYNC_ENOTFOUND when the
 * directory does not exist; SIMSYNC_ENOSPC; SIMSYNC_EIO. */
int sim_file_create(const char *path, const char *subscriber, const char *pin,
                    const char *puk) SIMSYNC_MUST_CHECK;

#endif /* SIMSYNC_SIM_H */
