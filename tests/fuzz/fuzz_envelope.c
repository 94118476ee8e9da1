/* fuzz_envelope.c -- the wire message decoder: any bytes either decode
 * into an Envelope or are refused; a decoded one validates its version
 * vectors without harm and packs back into bytes that decode again. */
#include "msgcheck.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Simsync__Envelope *e = simsync__envelope__unpack(NULL, size, data);

    if (e == NULL)
        return 0;
    if (!pb_decoded_ok(&e->base)) {
        simsync__envelope__free_unpacked(e, NULL);
        return 0;
    }
    if (e->msg_case == SIMSYNC__ENVELOPE__MSG_BATCH && e->batch != NULL)
        for (size_t i = 0; i < e->batch->n_changes; i++)
            check_version(e->batch->changes[i]->version);
    check_repack(&e->base, &simsync__envelope__descriptor);
    simsync__envelope__free_unpacked(e, NULL);
    return 0;
}
