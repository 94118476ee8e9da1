/* chan.h -- the secure channel: Noise_XX over any transport, then
 * length-prefixed, encrypted, size-capped messages.
 *
 * Every connection on every transport starts with chan_handshake(). Both
 * sides prove possession of their node key: a node's Noise static key is the
 * X25519 form of its Ed25519 node key, and handshake messages 2 (responder)
 * and 3 (initiator) carry the sender's 32-byte Ed25519 public key, which
 * must map onto the static key Noise authenticated. The prologue is
 * "simsync/1" followed by one byte, SIMSYNC_PROTO_VERSION, so peers that
 * speak different protocol versions fail the handshake (no downgrade).
 *
 * On the wire, every message (handshake or not) is a frame: a 4-byte
 * big-endian length, then that many bytes (frame.h). Handshake frames are
 * at most FRAME_MAX_HANDSHAKE bytes; after the handshake each frame holds
 * one AEAD ciphertext (empty associated data) of 1..FRAME_MAX_PLAINTEXT
 * plaintext bytes plus a 16-byte tag. Lengths are checked before any
 * allocation. Nonces count frames, so a replayed, dropped, reordered or
 * altered frame fails with SIMSYNC_ECRYPTO.
 *
 * Ownership: the conn is borrowed. chan_handshake does not close it, even on
 * failure, and chan_free does not close it either: the caller closes the
 * conn after freeing the chan (it may also want to report on the conn).
 * The conn must stay open and unused by others while the chan lives.
 *
 * Blocking: chan uses conn_send_all / conn_recv_all, so the conn must be
 * blocking (a conn timeout, conn_set_timeout, is fine). To wait for traffic
 * without a deadline, poll conn_pollfd() before chan_recv.
 *
 * Failure is final: after any error from chan_send or chan_recv other than
 * SIMSYNC_EINVAL and the size check of chan_send (SIMSYNC_ETOOBIG), the
 * stream is out of step (a frame may be half read or half written, or was
 * forged), and every later chan_send / chan_recv returns SIMSYNC_ECLOSED.
 * The caller frees the chan and closes the conn.
 *
 * Threads: a chan is used by one thread at a time.
 *
 * Caveat: Ed25519 keys P and -P map to the same X25519 key, so only the
 * holder of a node key can present it, but it could present either form;
 * pinning (expect_peer_pk) compares the exact Ed25519 key. */
#ifndef SIMSYNC_CHAN_H
#define SIMSYNC_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include "frame.h"
#include "simsync.h"
#include "transport.h"

#define CHAN_PROLOGUE "simsync/1" /* followed by SIMSYNC_PROTO_VERSION */
#define CHAN_TAG_BYTES 16
/* Largest ciphertext frame body after the handshake. */
#define CHAN_MAX_FRAME (FRAME_MAX_PLAINTEXT + CHAN_TAG_BYTES)

struct chan;

/* A node's identity: its Ed25519 key pair (crypt_sign_keypair). */
struct chan_identity {
    uint8_t sign_pk[32]; /* public key: what peers pin */
    uint8_t sign_sk[64]; /* secret key; its X25519 form is the Noise key */
};

/* Byte counts of one chan, for benchmarks and logs. */
struct chan_stats {
    uint64_t handshake_sent; /* handshake bytes written, headers included */
    uint64_t handshake_recv; /* handshake bytes read, headers included */
    uint64_t plain_sent;     /* application bytes accepted by chan_send */
    uint64_t plain_recv;     /* application bytes returned by chan_recv */
    uint64_t wire_sent;      /* bytes written after the handshake
                              * (headers + ciphertext + tags) */
    uint64_t wire_recv;      /* bytes read after the handshake */
    uint64_t frames_sent;    /* messages sent after the handshake */
    uint64_t frames_recv;    /* messages received after the handshake */
    size_t buffer_bytes;     /* send + receive buffer memory held now */
};

/* Run the Noise_XX handshake on `c` (borrowed; blocking). `initiator` is 1
 * on the side that connected, 0 on the side that accepted. `self` is
 * borrowed for the call. When `expect_peer_pk` is not NULL the peer must
 * present exactly that Ed25519 public key; when NULL any key is accepted and
 * the caller must check chan_peer_key() before trusting the peer.
 * On success *out is returned to the caller (chan_free); on failure *out is
 * NULL and the conn should be closed.
 * Returns:
 *   SIMSYNC_OK
 *   SIMSYNC_EINVAL    NULL argument, or self->sign_pk does not match
 *                     self->sign_sk
 *   SIMSYNC_EREFUSED  the peer's Ed25519 key does not match its Noise static
 *                     key, or differs from expect_peer_pk
 *   SIMSYNC_ECRYPTO   a handshake message failed authentication (tampering,
 *                     another protocol version, a low-order key)
 *   SIMSYNC_EPROTO    a malformed handshake message (bad length, payload)
 *   SIMSYNC_ETOOBIG   a frame header over FRAME_MAX_HANDSHAKE (e.g. a peer
 *                     that speaks something else entirely)
 *   SIMSYNC_ECLOSED, SIMSYNC_ETIMEOUT, SIMSYNC_EIO  from the transport
 *   SIMSYNC_ENOMEM */
int chan_handshake(struct conn *c, int initiator,
                   const struct chan_identity *self,
                   const uint8_t *expect_peer_pk,
                   struct chan **out) SIMSYNC_MUST_CHECK;

/* Encrypt and send one message of `len` bytes (borrowed for the call).
 * Returns SIMSYNC_OK, SIMSYNC_EINVAL (NULL, or len 0), SIMSYNC_ETOOBIG
 * (len > FRAME_MAX_PLAINTEXT; the chan stays usable), SIMSYNC_ECLOSED
 * (link ended, or the chan failed before), SIMSYNC_ETIMEOUT, SIMSYNC_EIO,
 * SIMSYNC_ENOMEM, SIMSYNC_ESTATE (nonce space exhausted). */
int chan_send(struct chan *ch, const void *msg, size_t len) SIMSYNC_MUST_CHECK;

/* Receive and decrypt the next message. *msg points into a buffer owned by
 * the chan, valid until the next chan_recv or chan_free; *len is 1..
 * FRAME_MAX_PLAINTEXT. On failure *msg is NULL and *len 0.
 * Returns SIMSYNC_OK,
 *   SIMSYNC_ECLOSED  the link ended (before or inside a frame), or the chan
 *                    failed before
 *   SIMSYNC_EPROTO   a frame length of 0, or too short to hold a message
 *   SIMSYNC_ETOOBIG  a frame length over CHAN_MAX_FRAME (nothing allocated)
 *   SIMSYNC_ECRYPTO  the frame failed authentication (tampered, replayed,
 *                    reordered, or a frame was lost)
 *   SIMSYNC_ETIMEOUT, SIMSYNC_EIO, SIMSYNC_ENOMEM, SIMSYNC_EINVAL,
 *   SIMSYNC_ESTATE (nonce space exhausted). */
int chan_recv(struct chan *ch, const uint8_t **msg,
              size_t *len) SIMSYNC_MUST_CHECK;

/* The peer's authenticated Ed25519 public key into pk. Returns SIMSYNC_OK
 * or SIMSYNC_EINVAL. */
int chan_peer_key(const struct chan *ch, uint8_t pk[32]);

/* The Noise handshake hash (64 bytes), identical on both ends of one
 * session and unique to it: usable for channel binding (e.g. signing it).
 * Returns SIMSYNC_OK or SIMSYNC_EINVAL. */
int chan_handshake_hash(const struct chan *ch, uint8_t h[64]);

/* Current byte counts into *out (zeroed when ch is NULL). */
void chan_stats(const struct chan *ch, struct chan_stats *out);

/* Wipe keys and buffers, free. Does not close the conn. NULL-safe. */
void chan_free(struct chan *ch);

#endif /* SIMSYNC_CHAN_H */
