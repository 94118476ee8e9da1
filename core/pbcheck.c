/* pbcheck.c -- walk a decoded protobuf-c message through its descriptor;
 * unpack with an allocator that tells out-of-memory from malformed. */
#include "pbcheck.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "simsync.h"

#define PB_MAX_DEPTH 64
#define PB_MAX_FIELD 536870911u /* 2^29 - 1 */

static int
walk(const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;

    if (depth > PB_MAX_DEPTH)
        return 0;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0 ||
            m->unknown_fields[i].tag > PB_MAX_FIELD)
            return 0;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + fd->quantifier_offset);
            ProtobufCMessage *const *v =
                *(ProtobufCMessage *const *const *)(base + fd->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k] != NULL && !walk(v[k], depth + 1))
                    return 0;
            continue;
        }
        /* A oneof member shares its storage with the others: read it only
         * when it is the one set. */
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
            continue;
        const ProtobufCMessage *sub =
            *(const ProtobufCMessage *const *)(base + fd->offset);
        if (sub != NULL && !walk(sub, depth + 1))
            return 0;
    }
    return 1;
}

int
pb_decoded_ok(const ProtobufCMessage *m)
{
    return m != NULL && walk(m, 0);
}

/* The C library's allocator (what protobuf-c uses when given NULL, so
 * free_unpacked(m, NULL) frees what this allocated), counting failures in
 * the unpack it serves: allocator_data points at the caller's counter. */
static void *
pb_alloc(void *data, size_t size)
{
    void *p = malloc(size);

    if (p == NULL)
        (*(unsigned *)data)++;
    return p;
}

static void
pb_free(void *data, void *p)
{
    (void)data;
    free(p);
}

void *
pb_unpack(const ProtobufCMessageDescriptor *desc, size_t len, const void *data,
          int *err)
{
    unsigned failed = 0;
    ProtobufCAllocator a = {pb_alloc, pb_free, &failed};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len, data);

    if (m == NULL && err != NULL)
        *err = failed > 0 ? SIMSYNC_ENOMEM : SIMSYNC_EPROTO;
    return m;
}
