/* rfcomm.h -- the Bluetooth RFCOMM backend (transport_rfcomm, rfcomm.c).
 *
 * Internal to transports/. The backend's addresses are the part of a link
 * address after "rfcomm:" (link.h):
 *
 *   connect  BDADDR[:CHANNEL]   the peer's adapter, e.g. 00:1A:7D:DA:71:13;
 *                               without a channel, the one its SDP record
 *                               for the simsync service names
 *   listen   [BDADDR:]CHANNEL   channel 1-30, or 0 for a free one; on the
 *                               adapter BDADDR, or on every adapter
 *
 * The parser is apart from the sockets so that it can be tested on a
 * machine without Bluetooth; it knows nothing of BlueZ's types. */
#ifndef SIMSYNC_RFCOMM_H
#define SIMSYNC_RFCOMM_H

#include <stddef.h>

#include "link.h"

#define RFCOMM_CHANNEL_MAX 30 /* RFCOMM server channels are 1..30 */
#define RFCOMM_BDADDR_LEN 17  /* "XX:XX:XX:XX:XX:XX" */

/* The simsync service class UUID its SDP record carries (docs/links.md). */
#define RFCOMM_SERVICE_UUID "6838da12-a526-486d-af8a-7be1a58050dd"

/* A parsed RFCOMM address. */
struct rfcomm_addr {
    char bdaddr[RFCOMM_BDADDR_LEN + 1]; /* upper case; "" when none given */
    int channel; /* 1..30; 0: listen on a free one; -1: find it by SDP */
};

/* Parse the backend part of an RFCOMM address for `use`. Returns
 * SIMSYNC_OK, or SIMSYNC_EINVAL with one sentence in `why` (may be NULL)
 * saying what is wrong. */
int rfcomm_addr_parse(const char *s, enum link_use use, struct rfcomm_addr *out,
                      char *why, size_t why_len);

#endif /* SIMSYNC_RFCOMM_H */
