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
 * at most FRAME_MAX_HANDSHAKE bytes; after the handshake each frame holds a
 * type byte, in clear but authenticated as the AEAD's associated data, then
 * one AEAD ciphertext of 1..FRAME_MAX_PLAINTEXT plaintext bytes plus a
 * 16-byte tag (or, for pieces already sealed under the data key, those
 * bytes in clear followed by the tag that authenticates them:
 * chan_send_sealed). Lengths are checked before any allocation. Nonces count
 * frames, so a replayed, dropped, reordered or altered frame fails with
 * SIMSYNC_ECRYPTO.
 *
 * Lanes and credit (for slow links: Bluetooth, USB). A message goes either
 * in the bulk lane (chan_send, chan_queue: in order, cut into pieces of at
 * most the link's fragment size, and sent only within the credit the peer
 * granted) or in the urgent lane (chan_send_urgent, chan_queue_urgent:
 * small control messages such as a cancel, BUSY or a ping, sent whole, at
 * the next piece boundary, ahead of any bulk still queued, and outside the
 * credit). Both sides start with CHAN_INITIAL_CREDIT bulk bytes of credit
 * towards each other. A sender out of credit asks for more (an ask frame)
 * and reads from the peer while it waits, keeping what arrives for
 * chan_recv; the receiver answers with a credit frame for what its window
 * (the conn's link_window, default CHAN_DEFAULT_WINDOW) has room for once it
 * has read what came before. So a slow reader holds back a fast sender, the
 * bytes waiting in a slow link's buffers stay few, and credit frames go
 * only to a peer that is reading.
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
 * One exception: when only sending failed (the peer closed after its last
 * message), chan_recv still returns what the peer sent before.
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
#define CHAN_MAX_FRAME (1 + FRAME_MAX_PLAINTEXT + CHAN_TAG_BYTES)
/* Bulk credit each side starts with, before any credit frame. */
#define CHAN_INITIAL_CREDIT (64u << 10)
/* A receiver's window when the link sets none (fast links: TCP). */
#define CHAN_DEFAULT_WINDOW (16u << 20)
/* Largest urgent message. */
#define CHAN_MAX_URGENT 4096u

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
    uint64_t frames_sent;    /* frames sent after the handshake */
    uint64_t frames_recv;    /* frames received after the handshake */
    uint64_t bulk_frames_sent;   /* bulk pieces sent */
    uint64_t credit_frames_sent; /* credit grants sent */
    uint64_t credit_waits;       /* times we waited for the peer's credit */
    uint64_t credit;             /* bulk bytes we may send now */
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

/* Encrypt and send one message of `len` bytes (borrowed for the call) in
 * the bulk lane, after everything queued; returns when all of it is sent
 * (waiting for credit if needed).
 * Returns SIMSYNC_OK, SIMSYNC_EINVAL (NULL, or len 0), SIMSYNC_ETOOBIG
 * (len > FRAME_MAX_PLAINTEXT; the chan stays usable), SIMSYNC_ECLOSED
 * (link ended, or the chan failed before), SIMSYNC_ETIMEOUT, SIMSYNC_EIO,
 * SIMSYNC_ENOMEM, SIMSYNC_ESTATE (nonce space exhausted), SIMSYNC_EPROTO
 * (while waiting for credit: a peer that granted nonsense or sent over
 * its credit or flooded urgent messages). */
int chan_send(struct chan *ch, const void *msg, size_t len) SIMSYNC_MUST_CHECK;

/* chan_send for a message whose last `sealed_tail` bytes are already
 * ciphertext under the subscriber's data key (the blob of a sealed chunk):
 * those bytes go in clear, authenticated by the channel like every frame
 * but not encrypted a second time; the rest is encrypted as by chan_send.
 * Only for bytes an eavesdropper may see as the hub sees them. The peer
 * receives the same message as from chan_send. Same returns as chan_send,
 * and SIMSYNC_EINVAL when sealed_tail > len. */
int chan_send_sealed(struct chan *ch, const void *msg, size_t len,
                     size_t sealed_tail) SIMSYNC_MUST_CHECK;

/* Send one urgent message (at most CHAN_MAX_URGENT bytes) now, ahead of
 * any queued bulk, which stays queued. Same returns as chan_send. */
int chan_send_urgent(struct chan *ch, const void *msg,
                     size_t len) SIMSYNC_MUST_CHECK;

/* Queue a bulk message without sending: `msg` (malloc'ed, len bytes) is
 * owned by the chan from the call on when it returns SIMSYNC_OK; on an
 * error it stays the caller's. */
int chan_queue(struct chan *ch, uint8_t *msg, size_t len) SIMSYNC_MUST_CHECK;
/* Queue an urgent message (copied). */
int chan_queue_urgent(struct chan *ch, const void *msg,
                      size_t len) SIMSYNC_MUST_CHECK;

/* Send what is queued: urgent messages first, then bulk pieces within the
 * credit. Before each bulk piece `stop(arg)` (when not NULL) is asked; if
 * it returns non-zero, chan_flush returns SIMSYNC_EAGAIN with the rest
 * still queued, so the caller can queue something urgent (a cancel) and
 * flush again, or chan_discard the bulk. Other returns as chan_send. */
int chan_flush(struct chan *ch, int (*stop)(void *arg),
               void *arg) SIMSYNC_MUST_CHECK;

/* Drop the queued bulk messages not yet begun (one already half sent is
 * finished by the next flush, so the peer's reassembly stays in step). */
void chan_discard(struct chan *ch);

/* Bytes still queued to send (both lanes). */
size_t chan_queued(const struct chan *ch);

/* Set the largest bulk piece for this link (0: FRAME_MAX_PLAINTEXT). The
 * handshake sets it from the conn's link_frag. */
void chan_set_link(struct chan *ch, size_t frag_bytes);

/* Receive and decrypt the next message (urgent or bulk, whole: pieces are
 * put together here; credit frames are taken in on the way and credit is
 * given back). *msg points into a buffer owned by the chan, valid until the
 * next chan_recv, chan_send, chan_flush or chan_free; *len is 1..
 * FRAME_MAX_PLAINTEXT. On failure *msg is NULL and *len 0.
 * Returns SIMSYNC_OK,
 *   SIMSYNC_ECLOSED  the link ended (before or inside a frame), or the chan
 *                    failed before
 *   SIMSYNC_EPROTO   a frame length of 0, or too short to hold a message,
 *                    an unknown frame type, bulk beyond the credit given
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
