/* msgcheck.h -- checks shared by the message fuzz targets: a decoded
 * version's vectors pass (or fail) validation cleanly, and a message that
 * passes the door check (pb_decoded_ok) packs again into bytes that
 * decode to the same size. */
#ifndef SIMSYNC_FUZZ_MSGCHECK_H
#define SIMSYNC_FUZZ_MSGCHECK_H

#include "fuzz.h"
#include "journal.h"
#include "pbcheck.h"
#include "simsync.pb-c.h"
#include "vv.h"

static inline void
check_version(const Simsync__Version *v)
{
    struct vv x = VV_INIT, y = VV_INIT;

    if (v == NULL)
        return;
    if (v->vv != NULL && vv_from_pb(&x, v->vv) == SIMSYNC_OK)
        FUZZ_CHECK(x.n <= v->vv->n_entries);
    vv_free(&x);
    if (vv_from_pb_dots(&y, v->dots, v->n_dots) == SIMSYNC_OK)
        FUZZ_CHECK(y.n <= v->n_dots);
    vv_free(&y);
}

static inline void
check_repack(const ProtobufCMessage *m, const ProtobufCMessageDescriptor *d)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    ProtobufCMessage *again;

    if (buf == NULL)
        return;
    FUZZ_CHECK(protobuf_c_message_pack(m, buf) == len);
    again = protobuf_c_message_unpack(d, NULL, len, buf);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(protobuf_c_message_get_packed_size(again) == len);
    protobuf_c_message_free_unpacked(again, NULL);
    free(buf);
}

#endif /* SIMSYNC_FUZZ_MSGCHECK_H */
