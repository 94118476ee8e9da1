/* usb_host.h -- internals of the desktop side of the USB link that the
 * unit tests check without a device. The backend itself is
 * transport_usb (transport.h); usb_host.c says how it works. */
#ifndef SIMSYNC_USB_HOST_H
#define SIMSYNC_USB_HOST_H

/* Map a libusb result `lrc` (LIBUSB_SUCCESS or a LIBUSB_ERROR_* code) of
 * a transfer that moved `moved` bytes to a SIMSYNC_* code:
 *   success, or a timeout after moving bytes    -> SIMSYNC_OK
 *   a timeout that moved nothing                -> SIMSYNC_ETIMEOUT
 *   NO_DEVICE, PIPE, IO, NOT_FOUND (link gone)  -> SIMSYNC_ECLOSED
 *   OVERFLOW (the peer broke the packet rule)   -> SIMSYNC_EPROTO
 *   INTERRUPTED (a signal: try again)           -> SIMSYNC_EAGAIN
 *   NO_MEM                                      -> SIMSYNC_ENOMEM
 *   anything else                               -> SIMSYNC_EIO */
int usb_host_map_error(int lrc, int moved);

#endif /* SIMSYNC_USB_HOST_H */
