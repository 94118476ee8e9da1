/* usb_host.h -- internals of the desktop side of the USB link that the
 * unit tests check without a device. The backend itself is
 * transport_usb (transport.h); usb_host.c says how it works. */
#ifndef SIMSYNC_USB_HOST_H
#define SIMSYNC_USB_HOST_H

/* Map the status of a finished transfer (enum libusb_transfer_status) to
 * a SIMSYNC_* code:
 *   COMPLETED                          -> SIMSYNC_OK
 *   TIMED_OUT, CANCELLED (our timeout) -> SIMSYNC_ETIMEOUT
 *   OVERFLOW (the peer broke the rule) -> SIMSYNC_EPROTO
 *   NO_DEVICE, STALL, ERROR, others    -> SIMSYNC_ECLOSED: the link is gone
 * A transfer that moved bytes reports them whatever its status. */
int usb_host_map_status(int status);

#endif /* SIMSYNC_USB_HOST_H */
