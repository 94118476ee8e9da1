/* kiosk.h -- the shop registration kiosk (seed 003 FIG 18/19), shared by
 * kiosk.c (credentials, the signed request, the kiosk's and the handset's
 * commands) and hub_kiosk.c (the hub: issuing credentials, checking and
 * recording registrations, the audit). docs/kiosk.md has the design and
 * docs/protocol.md section 12 the messages.
 *
 * A credential is one line of text the hub prints once:
 *
 *     simsync-kiosk1:NAME:HUB-ID:SEED
 *
 * NAME is the kiosk's name at the hub, HUB-ID the issuing hub's node ID and
 * SEED 64 hex digits, the seed of the kiosk's Ed25519 signing key. The hub
 * keeps only the public key. */
#ifndef SIMSYNC_KIOSK_H
#define SIMSYNC_KIOSK_H

#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "simsync.pb-c.h"

struct simsync_node;
struct conn;
struct listener;

#define KIOSK_NAME_MAX 32
#define KIOSK_NONCE_BYTES 16
#define KIOSK_HUB_ID_MAX 40 /* a node ID and its NUL */
/* A signed request is accepted up to this long after it was signed ... */
#define KIOSK_MAX_AGE_MS (24ull * 3600 * 1000)
/* ... and not when it claims to be signed this far in the future. */
#define KIOSK_MAX_AHEAD_MS (10ull * 60 * 1000)
/* Largest signed message (kiosk_signed_bytes). */
#define KIOSK_SIGNED_MAX 256

struct kiosk_cred {
    char name[KIOSK_NAME_MAX + 1];
    char hub_id[KIOSK_HUB_ID_MAX];
    uint8_t seed[32]; /* secret: wipe after use */
};

/* 1 if `name` is 1-32 of A-Z a-z 0-9 . _ -, else 0. */
int kiosk_name_valid(const char *name);

/* Write the credential text for c into buf (len bytes). SIMSYNC_EINVAL
 * for a bad name or hub ID, or when buf is too small. */
int kiosk_cred_format(const struct kiosk_cred *c, char *buf, size_t len);
/* Parse a credential text (surrounding blanks and a trailing newline are
 * allowed). SIMSYNC_EINVAL when it is not one; *out zeroed first. */
int kiosk_cred_parse(const char *text, struct kiosk_cred *out);

/* The bytes a kiosk signs for a registration: a fixed label, then hub ID,
 * kiosk name, subscriber and terminal ID each with a one-byte length, the
 * node key, the time (8 bytes big-endian) and the nonce. Returns their
 * length, or 0 when a field is too long for buf (cap bytes). */
size_t kiosk_signed_bytes(const char *hub_id, const char *kiosk,
                          const char *subscriber, const char *terminal_id,
                          const uint8_t node_pk[32], uint64_t time_ms,
                          const uint8_t nonce[KIOSK_NONCE_BYTES], uint8_t *buf,
                          size_t cap);
/* Sign req (its fields other than signature set; signature must point at
 * 64 writable bytes, len set) for hub `hub_id` with credential c. */
int kiosk_request_sign(const struct kiosk_cred *c, const char *hub_id,
                       Simsync__KioskRegister *req);
/* Check req's signature against kiosk key pk for hub `hub_id`.
 * SIMSYNC_OK or SIMSYNC_ECRYPTO (also for malformed fields). */
int kiosk_request_verify(const Simsync__KioskRegister *req, const char *hub_id,
                         const uint8_t pk[32]);

/* Connect to / listen on a link address: "SCHEME:REST" for a scheme the
 * transports know (transport_find), else TCP "HOST:PORT". */
int kiosk_connect(const char *addr, struct conn **out);
int kiosk_listen(const char *addr, struct listener **out);

/* hub_kiosk.c: serve one KioskRegister (the first message of a kiosk's
 * connection): check, record, audit, announce, answer. */
int hub_kiosk_register(struct simsync_node *n, struct chan *ch,
                       const Simsync__KioskRegister *req);

#endif /* SIMSYNC_KIOSK_H */
