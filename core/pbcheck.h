/* pbcheck.h -- what protobuf-c accepts but simsync must not.
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

#endif /* SIMSYNC_PBCHECK_H */
