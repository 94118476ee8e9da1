/* pbcheck.h -- what protobuf-c accepts but simsync must not, and why it
 * refused a message.
 *
 * protobuf-c keeps the fields of a message it does not know, and writes
 * them back when the message is packed again. It accepts an unknown field
 * numbered 0 (a tag written with a redundant varint byte), which no
 * protobuf encoder makes and which its own decoder then refuses: a hub
 * that stored such a version as it came would store a record it cannot
 * read back. Every message from the wire is checked here at the door. */
#ifndef SIMSYNC_PBCHECK_H
#define SIMSYNC_PBCHECK_H

#include <protobuf-c/protobuf-c.h>

/* 1 when `m` and every message inside it hold only unknown fields with a
 * valid number (1 .. 2^29-1), and nest at most 64 deep; else 0. */
int pb_decoded_ok(const ProtobufCMessage *m);

/* Unpack one message described by `desc` (e.g.
 * &simsync__item_record__descriptor) from len bytes at data, as
 * simsync__*__unpack(NULL, ...) does; free it with the type's
 * free_unpacked(m, NULL). On failure NULL, and *err (may be NULL) says
 * why: SIMSYNC_ENOMEM when an allocation failed during the unpack (the
 * bytes may be fine), else SIMSYNC_EPROTO (they are not such a message).
 * protobuf-c itself returns NULL for both. */
void *pb_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                const void *data, int *err);

#endif /* SIMSYNC_PBCHECK_H */
