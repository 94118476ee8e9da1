/* usb_gadget.c -- the handset side of the USB link (scheme "usb-gadget"):
 * a Linux USB gadget whose one function is served from user space.
 *
 * listen("") or listen("UDC") builds, with configfs, a gadget named
 * "simsync" (USB_WIRE_VID:USB_WIRE_PID, English strings, one
 * configuration) whose function is a FunctionFS instance "ffs.simsync";
 * mounts that instance on USB_GADGET_FFS_DIR; writes the descriptors and
 * strings of usb_wire.c to its ep0; opens ep1 (bulk OUT, from the host)
 * and ep2 (bulk IN, to the host); and binds the gadget to the given USB
 * device controller, or to the first one in /sys/class/udc. It needs root,
 * configfs (mounted here if it is not) and the libcomposite and usb_f_fs
 * modules; when one is missing, listen fails with SIMSYNC_EIO (SIMSYNC_EINVAL
 * for a malformed address) and transport_error() says what to do. A gadget
 * "simsync" left unbound by a process that died is removed and made again;
 * one still bound to a controller belongs to a live listener and is left
 * alone (SIMSYNC_EIO). listener_close unbinds and removes everything
 * listen made, once the last conn it accepted is closed too: a conn may
 * outlive its listener (pairing closes the listener as soon as it has
 * its one conn), and the gadget is the conn's link.
 *
 * Sessions (usb_wire.h): ep0 delivers FunctionFS events (BIND, ENABLE,
 * DISABLE, UNBIND, SETUP, ...), which usb_wire_link_event turns into the
 * link state. accept returns a new conn once the host has sent OPEN and
 * SIMSYNC_EAGAIN before that: poll listener_pollfd (an epoll fd that
 * becomes readable on ep0 events and on an OPEN noticed while a conn was
 * busy) and call accept again. A conn ends (SIMSYNC_ECLOSED, after the
 * bytes of its session that already arrived) when the host sends CLOSE or
 * a new OPEN, resets, detaches or the controller is unbound; after a
 * re-attach or rebind the next OPEN gives the next conn from the same
 * listener.
 *
 * connect("") or connect("UDC") dials from the handset: it builds the
 * same gadget with the interface protocol USB_WIRE_PROTOCOL_DIAL, waits
 * up to USB_WIRE_WAIT_MS ($SIMSYNC_USB_WAIT_MS) for a desktop listening
 * on "usb" to OPEN it, and returns that session's conn; the caller starts
 * the secure channel. No desktop in time: SIMSYNC_ECONNECT, with
 * transport_error() saying what to run there. The gadget goes when the
 * conn is closed.
 *
 * I/O: each send and recv is one asynchronous request on ep2 or ep1
 * (Linux AIO, completion signalled on an eventfd) while ep0 is watched for
 * the end of the session; so conn_set_timeout bounds every call even
 * though FunctionFS endpoint files cannot be polled. Reads take whole
 * USB_WIRE_XFER_MAX buffers and keep what the caller did not ask for;
 * writes follow usb_wire_send_len(). A send that times out ends the conn
 * (some of its bytes may have gone). The conn has no poll fd (-1).
 *
 * The listener and its conns are used from one thread at a time. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/usb/functionfs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"
#include "usb_wire.h"

#define USB_GADGET_NAME "simsync"          /* configfs gadget directory */
#define USB_GADGET_FUNC "ffs.simsync"      /* its FunctionFS function */
#define USB_GADGET_FFS_DEV "simsync"       /* FunctionFS instance name */
#define USB_GADGET_FFS_DIR "/dev/usb-ffs/simsync"
#define USB_GADGET_CONFIGFS "/sys/kernel/config"
#define USB_GADGET_UDC_DIR "/sys/class/udc"
#define USB_GADGET_CANCEL_MS 2000 /* wait for a cancelled request */

_Static_assert((int)FUNCTIONFS_BIND == (int)USB_WIRE_EV_BIND &&
                   (int)FUNCTIONFS_UNBIND == (int)USB_WIRE_EV_UNBIND &&
                   (int)FUNCTIONFS_ENABLE == (int)USB_WIRE_EV_ENABLE &&
                   (int)FUNCTIONFS_DISABLE == (int)USB_WIRE_EV_DISABLE &&
                   (int)FUNCTIONFS_SETUP == (int)USB_WIRE_EV_SETUP &&
                   (int)FUNCTIONFS_SUSPEND == (int)USB_WIRE_EV_SUSPEND &&
                   (int)FUNCTIONFS_RESUME == (int)USB_WIRE_EV_RESUME,
               "usb_wire event numbers follow FunctionFS");

struct usb_gadget_listener {
    struct listener base; /* must be first */
    char udc[128];        /* the controller we bound to */
    char gadget[600];     /* configfs directory of the gadget */
    uint8_t protocol;     /* interface protocol: who dials (usb_wire.h) */
    int ep0, ep_out, ep_in;       /* FunctionFS files, owned, or -1 */
    int mounted;                  /* FunctionFS mounted by us */
    int bound;                    /* UDC written by us */
    aio_context_t aio;            /* 0 when not set up */
    int aio_fd;                   /* eventfd: AIO completions */
    int notify_fd;                /* eventfd: an OPEN waits for accept */
    int epoll_fd;                 /* listener_pollfd: ep0 + notify_fd */
    int refs;                     /* the listener, if open, + its conns */
    struct usb_wire_link link;    /* state from ep0 events */
    struct iocb rd, wr;           /* the read kept posted, the write */
    int rd_busy, wr_busy;         /* submitted, completion not seen */
    int rd_failed;                /* the read ended in an error */
    long long wr_res;             /* result of the last write */
    unsigned ring_session;        /* the session the ring's bytes are of */
    unsigned char stage[USB_WIRE_XFER_MAX]; /* target of the read */
    struct usb_wire_ring ring;    /* received, not yet taken */
};

struct usb_gadget_conn {
    struct conn base; /* must be first */
    struct usb_gadget_listener *l; /* shared: one of l->refs */
    unsigned session;              /* the session this conn is */
    int dead;                      /* ended by a send that timed out */
};

static void release(struct usb_gadget_listener *l);

/* --- Linux AIO, by system call (no libaio) -------------------------- */

static int
aio_setup(aio_context_t *ctx)
{
    *ctx = 0;
    return (int)syscall(SYS_io_setup, 4, ctx);
}

static void
aio_destroy(aio_context_t ctx)
{
    if (ctx != 0)
        (void)syscall(SYS_io_destroy, ctx);
}

/* Reap one completion within timeout_ms (0: only look). Returns 1 with
 * *ev filled, 0 if none, -1 on error. (With min_nr 0 io_getevents never
 * waits, so a wait asks for at least one.) */
static int
aio_reap(aio_context_t ctx, struct io_event *ev, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) *
                                                 1000000L};
    long n;

    do
        n = syscall(SYS_io_getevents, ctx, timeout_ms > 0 ? 1 : 0, 1, ev, &ts);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : (int)n;
}

/* --- small file helpers ------------------------------------------------ */

static int
write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;
    size_t len = strlen(s);

    if (fd < 0)
        return -1;
    n = write(fd, s, len);
    if (n < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return (size_t)n == len ? 0 : (errno = EIO, -1);
}

static int
write_attr(const struct usb_gadget_listener *l, const char *rel,
           const char *s)
{
    char path[768];

    snprintf(path, sizeof(path), "%s/%s", l->gadget, rel);
    return write_str(path, s);
}

static int
make_dir(const struct usb_gadget_listener *l, const char *rel)
{
    char path[768];

    snprintf(path, sizeof(path), "%s/%s", l->gadget, rel);
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static void
remove_dir(const struct usb_gadget_listener *l, const char *rel)
{
    char path[768];

    snprintf(path, sizeof(path), "%s%s%s", l->gadget, rel[0] ? "/" : "",
             rel);
    (void)rmdir(path);
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* --- building and removing the gadget ---------------------------------- */

/* Remove the gadget directory tree and the FunctionFS mount, whatever of
 * them exists (configfs wants links and children removed first). */
static void
remove_gadget(struct usb_gadget_listener *l)
{
    (void)umount2(USB_GADGET_FFS_DIR, MNT_DETACH);
    (void)rmdir(USB_GADGET_FFS_DIR);
    {
        char path[768];

        snprintf(path, sizeof(path), "%s/configs/c.1/%s", l->gadget,
                 USB_GADGET_FUNC);
        (void)unlink(path);
    }
    remove_dir(l, "configs/c.1/strings/0x409");
    remove_dir(l, "configs/c.1");
    remove_dir(l, "functions/" USB_GADGET_FUNC);
    remove_dir(l, "strings/0x409");
    remove_dir(l, "");
}

static void
teardown(struct usb_gadget_listener *l)
{
    if (l->bound)
        (void)write_attr(l, "UDC", "\n");
    l->bound = 0;
    aio_destroy(l->aio); /* cancels and waits for what is still posted */
    l->aio = 0;
    close_fd(&l->ep_in);
    close_fd(&l->ep_out);
    close_fd(&l->ep0);
    close_fd(&l->aio_fd);
    close_fd(&l->notify_fd);
    close_fd(&l->epoll_fd);
    if (l->gadget[0] != '\0')
        remove_gadget(l);
    l->mounted = 0;
}

/* The first controller (by name) in /sys/class/udc, into l->udc. */
static int
pick_udc(struct usb_gadget_listener *l)
{
    DIR *d = opendir(USB_GADGET_UDC_DIR);
    struct dirent *e;

    l->udc[0] = '\0';
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (e->d_name[0] == '.' || len >= sizeof(l->udc))
            continue;
        if (l->udc[0] == '\0' || strcmp(e->d_name, l->udc) < 0)
            memcpy(l->udc, e->d_name, len + 1); /* fits: checked above */
    }
    closedir(d);
    return l->udc[0] != '\0' ? 0 : -1;
}

/* Where configfs is: $SIMSYNC_USB_CONFIGFS (tests) or the usual place. */
static const char *
configfs_root(void)
{
    const char *s = getenv("SIMSYNC_USB_CONFIGFS");

    return s != NULL && s[0] != '\0' ? s : USB_GADGET_CONFIGFS;
}

/* Check for configfs and the gadget framework, mounting configfs if it is
 * not mounted yet. */
static int
check_configfs(char *gadgets, size_t len)
{
    const char *root = configfs_root();
    struct stat st;

    snprintf(gadgets, len, "%s/usb_gadget", root);
    if (stat(gadgets, &st) == 0 && S_ISDIR(st.st_mode))
        return SIMSYNC_OK;
    if (stat(root, &st) == 0 && S_ISDIR(st.st_mode))
        (void)mount("none", root, "configfs", 0, NULL);
    if (stat(gadgets, &st) == 0 && S_ISDIR(st.st_mode))
        return SIMSYNC_OK;
    transport_set_error("no USB gadget support at %s: load the kernel "
                        "modules (modprobe libcomposite usb_f_fs) and mount "
                        "configfs there (mount -t configfs none %s)",
                        gadgets, root);
    return SIMSYNC_EIO;
}

/* An existing gadget "simsync": left over (unbound), or in use. */
static int
clear_stale(struct usb_gadget_listener *l)
{
    char path[768], udc[128];
    struct stat st;
    ssize_t n;
    int fd;

    if (stat(l->gadget, &st) != 0)
        return SIMSYNC_OK;
    snprintf(path, sizeof(path), "%s/UDC", l->gadget);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, udc, sizeof(udc) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0 && udc[0] != '\n') {
        udc[n] = '\0';
        udc[strcspn(udc, "\n")] = '\0';
        transport_set_error("a simsync USB gadget is already bound to %s: "
                            "another 'simsync listen usb-gadget' runs here",
                            udc);
        return SIMSYNC_EIO;
    }
    remove_gadget(l);
    return SIMSYNC_OK;
}

static int
make_gadget(struct usb_gadget_listener *l)
{
    char num[16], path[768];

    if (mkdir(l->gadget, 0755) != 0) {
        transport_set_error("cannot create the USB gadget %s: %s",
                            l->gadget, strerror(errno));
        return SIMSYNC_EIO;
    }
    snprintf(num, sizeof(num), "0x%04x", USB_WIRE_VID);
    if (write_attr(l, "idVendor", num) != 0)
        goto fail;
    snprintf(num, sizeof(num), "0x%04x", USB_WIRE_PID);
    if (write_attr(l, "idProduct", num) != 0 ||
        write_attr(l, "bcdDevice", "0x0100") != 0 ||
        write_attr(l, "bcdUSB", "0x0200") != 0 ||
        make_dir(l, "strings/0x409") != 0 ||
        write_attr(l, "strings/0x409/manufacturer", "simsync") != 0 ||
        write_attr(l, "strings/0x409/product", "simsync handset") != 0 ||
        write_attr(l, "strings/0x409/serialnumber", "simsync-1") != 0 ||
        make_dir(l, "configs/c.1") != 0 ||
        make_dir(l, "configs/c.1/strings/0x409") != 0 ||
        write_attr(l, "configs/c.1/strings/0x409/configuration",
                   "simsync") != 0 ||
        write_attr(l, "configs/c.1/MaxPower", "100") != 0)
        goto fail;
    if (make_dir(l, "functions/" USB_GADGET_FUNC) != 0) {
        transport_set_error("cannot create the FunctionFS function: %s "
                            "(load it with 'modprobe usb_f_fs')",
                            strerror(errno));
        return SIMSYNC_EIO;
    }
    snprintf(path, sizeof(path), "%s/configs/c.1/%s", l->gadget,
             USB_GADGET_FUNC);
    {
        char target[768];

        snprintf(target, sizeof(target), "%s/functions/%s", l->gadget,
                 USB_GADGET_FUNC);
        if (symlink(target, path) != 0 && errno != EEXIST)
            goto fail;
    }
    return SIMSYNC_OK;
fail:
    transport_set_error("cannot set up the USB gadget in %s: %s", l->gadget,
                        strerror(errno));
    return SIMSYNC_EIO;
}

/* Mount FunctionFS, write descriptors and strings, open the endpoints. */
static int
start_function(struct usb_gadget_listener *l)
{
    uint8_t blob[256];
    size_t n;
    char path[256];

    (void)mkdir("/dev/usb-ffs", 0755);
    if ((mkdir(USB_GADGET_FFS_DIR, 0700) != 0 && errno != EEXIST) ||
        mount(USB_GADGET_FFS_DEV, USB_GADGET_FFS_DIR, "functionfs", 0,
              NULL) != 0) {
        transport_set_error("cannot mount FunctionFS on %s: %s",
                            USB_GADGET_FFS_DIR, strerror(errno));
        return SIMSYNC_EIO;
    }
    l->mounted = 1;
    l->ep0 = open(USB_GADGET_FFS_DIR "/ep0", O_RDWR | O_CLOEXEC);
    if (l->ep0 < 0)
        goto fail;
    n = usb_wire_ffs_descriptors(l->protocol, blob, sizeof(blob));
    if (n == 0 || write(l->ep0, blob, n) != (ssize_t)n)
        goto fail;
    n = usb_wire_ffs_strings(blob, sizeof(blob));
    if (n == 0 || write(l->ep0, blob, n) != (ssize_t)n)
        goto fail;
    if (fcntl(l->ep0, F_SETFL, fcntl(l->ep0, F_GETFL) | O_NONBLOCK) != 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/ep1", USB_GADGET_FFS_DIR);
    l->ep_out = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    snprintf(path, sizeof(path), "%s/ep2", USB_GADGET_FFS_DIR);
    l->ep_in = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (l->ep_out < 0 || l->ep_in < 0)
        goto fail;
    return SIMSYNC_OK;
fail:
    transport_set_error("cannot start the FunctionFS function in %s: %s",
                        USB_GADGET_FFS_DIR, strerror(errno));
    return SIMSYNC_EIO;
}

static int
start_events(struct usb_gadget_listener *l)
{
    struct epoll_event ev;

    if (aio_setup(&l->aio) != 0)
        goto fail;
    l->aio_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (l->aio_fd < 0 || l->notify_fd < 0 || l->epoll_fd < 0)
        goto fail;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = l->ep0;
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->ep0, &ev) != 0)
        goto fail;
    ev.data.fd = l->notify_fd;
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->notify_fd, &ev) != 0)
        goto fail;
    return SIMSYNC_OK;
fail:
    transport_set_error("cannot set up event handling for USB: %s",
                        strerror(errno));
    return SIMSYNC_EIO;
}

static int
bind_udc(struct usb_gadget_listener *l)
{
    char line[140];

    snprintf(line, sizeof(line), "%s\n", l->udc);
    if (write_attr(l, "UDC", line) != 0) {
        transport_set_error("cannot bind the USB gadget to controller %s: "
                            "%s%s",
                            l->udc, strerror(errno),
                            errno == EBUSY ? " (another gadget uses it)"
                                           : "");
        return SIMSYNC_EIO;
    }
    l->bound = 1;
    return SIMSYNC_OK;
}

static void usb_gadget_listener_close(struct listener *base);

/* Build the gadget and bind it; its interface carries `protocol`. */
static int
gadget_open(const char *addr, uint8_t protocol,
            struct usb_gadget_listener **out)
{
    struct usb_gadget_listener *l;
    char gadgets[512];
    int rc;

    *out = NULL;
    transport_set_error("%s", "");
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return SIMSYNC_ENOMEM;
    l->base.ops = &transport_usb_gadget;
    l->protocol = protocol;
    l->ep0 = l->ep_out = l->ep_in = -1;
    l->aio_fd = l->notify_fd = l->epoll_fd = -1;
    if (usb_wire_parse_gadget_addr(addr, l->udc, sizeof(l->udc)) != 0) {
        transport_set_error("bad USB gadget address \"%s\": expected "
                            "usb-gadget or usb-gadget:UDC (a name in %s)",
                            addr, USB_GADGET_UDC_DIR);
        free(l);
        return SIMSYNC_EINVAL;
    }
    if (geteuid() != 0) {
        transport_set_error("serving USB as a gadget needs root (configfs "
                            "and FunctionFS): run simsync as root");
        free(l);
        return SIMSYNC_EIO;
    }
    rc = check_configfs(gadgets, sizeof(gadgets));
    if (rc == SIMSYNC_OK && l->udc[0] == '\0' && pick_udc(l) != 0) {
        transport_set_error("no USB device controller in %s: this machine "
                            "cannot be a USB device (modprobe dummy_hcd "
                            "gives a virtual one)",
                            USB_GADGET_UDC_DIR);
        rc = SIMSYNC_EIO;
    }
    if (rc != SIMSYNC_OK) {
        free(l);
        return rc;
    }
    if ((size_t)snprintf(l->gadget, sizeof(l->gadget), "%s/%s", gadgets,
                         USB_GADGET_NAME) >= sizeof(l->gadget)) {
        transport_set_error("configfs path too long: %s", gadgets);
        free(l);
        return SIMSYNC_EINVAL;
    }
    rc = clear_stale(l);
    if (rc != SIMSYNC_OK) {
        l->gadget[0] = '\0'; /* not ours: leave it alone */
        free(l);
        return rc;
    }
    rc = make_gadget(l);
    if (rc == SIMSYNC_OK)
        rc = start_function(l);
    if (rc == SIMSYNC_OK)
        rc = start_events(l);
    if (rc == SIMSYNC_OK)
        rc = bind_udc(l);
    if (rc != SIMSYNC_OK) {
        usb_gadget_listener_close(&l->base);
        return rc;
    }
    l->refs = 1;
    *out = l;
    return SIMSYNC_OK;
}

static int
usb_gadget_listen(const char *addr, struct listener **out)
{
    struct usb_gadget_listener *l;
    int rc;

    *out = NULL;
    rc = gadget_open(addr, USB_WIRE_PROTOCOL, &l);
    if (rc == SIMSYNC_OK)
        *out = &l->base;
    return rc;
}

/* --- requests ---------------------------------------------------- */

static int
submit(struct usb_gadget_listener *l, struct iocb *cb, int fd, int opcode,
       void *buf, size_t len)
{
    struct iocb *cbs[1] = {cb};

    memset(cb, 0, sizeof(*cb));
    cb->aio_fildes = (uint32_t)fd;
    cb->aio_lio_opcode = (uint16_t)opcode;
    cb->aio_buf = (uint64_t)(uintptr_t)buf;
    cb->aio_nbytes = len;
    cb->aio_flags = IOCB_FLAG_RESFD;
    cb->aio_resfd = (uint32_t)l->aio_fd;
    return syscall(SYS_io_submit, l->aio, 1, cbs) == 1 ? 0 : -1;
}

/* Account one completion. */
static void
handle_completion(struct usb_gadget_listener *l, const struct io_event *ev)
{
    if (ev->obj == (uint64_t)(uintptr_t)&l->rd) {
        l->rd_busy = 0;
        if (ev->res > 0)
            usb_wire_ring_put(&l->ring, l->stage, (size_t)ev->res);
        else if (ev->res < 0)
            l->rd_failed = 1;
    } else if (ev->obj == (uint64_t)(uintptr_t)&l->wr) {
        l->wr_busy = 0;
        l->wr_res = ev->res;
    }
}

static void
reap_ready(struct usb_gadget_listener *l)
{
    struct io_event ev;
    uint64_t count;

    (void)read(l->aio_fd, &count, sizeof(count));
    while (aio_reap(l->aio, &ev, 0) == 1)
        handle_completion(l, &ev);
}

/* Cancel a request and wait for its completion (which may still bring
 * data). Returns 0, or -1 if it did not complete in time. */
static int
cancel_request(struct usb_gadget_listener *l, struct iocb *cb, int *busy)
{
    struct io_event ev;

    if (!*busy)
        return 0;
    (void)syscall(SYS_io_cancel, l->aio, cb, &ev);
    while (*busy) {
        if (aio_reap(l->aio, &ev, USB_GADGET_CANCEL_MS) != 1)
            return -1;
        handle_completion(l, &ev);
    }
    return 0;
}

/* Keep a read posted while the ring has room for a whole transfer. */
static void
post_read(struct usb_gadget_listener *l)
{
    if (l->rd_busy || l->rd_failed || !usb_wire_ring_has_room(&l->ring))
        return;
    if (submit(l, &l->rd, l->ep_out, IOCB_CMD_PREAD, l->stage,
               sizeof(l->stage)) == 0)
        l->rd_busy = 1;
    else
        l->rd_failed = 1;
}

/* --- ep0 events ------------------------------------------------------- */

/* Read and answer every pending ep0 event. When the session ends, the
 * posted requests are cancelled before the event is answered, so a new
 * session's bytes never land in an old request. An OPEN waiting for accept
 * is signalled on notify_fd so that a caller polling the listener wakes. */
static void
pump_ep0(struct usb_gadget_listener *l)
{
    struct usb_functionfs_event ev[4];
    ssize_t n;
    size_t i;

    for (;;) {
        n = read(l->ep0, ev, sizeof(ev));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (i = 0; i < (size_t)n / sizeof(ev[0]); i++) {
            const struct usb_ctrlrequest *s = &ev[i].u.setup;
            unsigned before = l->link.session;
            enum usb_wire_reply r = usb_wire_link_event(
                &l->link, ev[i].type, s->bRequestType, s->bRequest,
                (uint16_t)le16toh(s->wLength));

            if (l->link.session != before) {
                (void)cancel_request(l, &l->rd, &l->rd_busy);
                (void)cancel_request(l, &l->wr, &l->wr_busy);
            }
            if (r == USB_WIRE_REPLY_ACK)
                (void)read(l->ep0, NULL, 0); /* status stage */
            else if (r == USB_WIRE_REPLY_STALL && (s->bRequestType & 0x80))
                (void)read(l->ep0, NULL, 0); /* wrong way round: stall */
            else if (r == USB_WIRE_REPLY_STALL)
                (void)write(l->ep0, NULL, 0);
        }
    }
    if (l->link.pending) {
        uint64_t one = 1;

        (void)write(l->notify_fd, &one, sizeof(one));
    }
}

/* Wait up to timeout_ms (-1: no limit) for a completion or an ep0 event
 * and handle what came. Returns 0 on a timeout, 1 otherwise. */
static int
wait_events(struct usb_gadget_listener *l, int timeout_ms)
{
    struct pollfd p[2] = {{l->aio_fd, POLLIN, 0}, {l->ep0, POLLIN, 0}};
    int n = poll(p, 2, timeout_ms);

    if (n == 0)
        return 0;
    if (n > 0 && (p[0].revents & POLLIN))
        reap_ready(l);
    if (n > 0 && (p[1].revents & POLLIN))
        pump_ep0(l);
    return 1;
}

static int
usb_gadget_accept(struct listener *base, struct conn **out)
{
    struct usb_gadget_listener *l = (struct usb_gadget_listener *)base;
    struct usb_gadget_conn *gc;
    uint64_t count;
    unsigned session;

    *out = NULL;
    (void)read(l->notify_fd, &count, sizeof(count));
    pump_ep0(l);
    if (!l->link.pending || !l->link.enabled)
        return SIMSYNC_EAGAIN;
    gc = calloc(1, sizeof(*gc));
    if (gc == NULL)
        return SIMSYNC_ENOMEM;
    (void)read(l->notify_fd, &count, sizeof(count));
    (void)usb_wire_link_accept(&l->link, &session);
    conn_init(&gc->base, &transport_usb_gadget);
    gc->base.link_window = USB_WIRE_RING; /* as usb_host.c */
    gc->l = l;
    l->refs++;
    gc->session = session;
    /* Nothing is posted between sessions (pump_ep0 cancelled it), so the
     * ring holds only an earlier session's bytes: not ours. */
    l->ring.pos = l->ring.len = 0;
    l->ring_session = session;
    l->rd_failed = 0;
    *out = &gc->base;
    return SIMSYNC_OK;
}

/* --- conn I/O --------------------------------------------------------- */

static int
alive(const struct usb_gadget_conn *gc)
{
    return !gc->dead && !gc->l->rd_failed &&
           usb_wire_link_alive(&gc->l->link, gc->session);
}

/* Milliseconds left until deadline, or -1 for a conn without timeout. */
static int
left_ms(const struct usb_gadget_conn *gc, long long deadline)
{
    long long left;

    if (gc->base.timeout_ms <= 0)
        return -1;
    left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

static int
usb_gadget_send(struct conn *c, const void *buf, size_t len, size_t *nsent)
{
    struct usb_gadget_conn *gc = (struct usb_gadget_conn *)c;
    struct usb_gadget_listener *l = gc->l;
    size_t want = usb_wire_send_len(len);
    long long deadline = now_ms() + c->timeout_ms;

    *nsent = 0;
    if (!alive(gc))
        return SIMSYNC_ECLOSED;
    if (want == 0)
        return SIMSYNC_OK;
    if (submit(l, &l->wr, l->ep_in, IOCB_CMD_PWRITE, (void *)(uintptr_t)buf,
               want) != 0) {
        c->last_errno = errno;
        return SIMSYNC_ECLOSED;
    }
    l->wr_busy = 1;
    while (l->wr_busy) {
        post_read(l); /* the host may be writing too: take it in */
        if (wait_events(l, left_ms(gc, deadline)) == 0) {
            if (cancel_request(l, &l->wr, &l->wr_busy) != 0 ||
                l->wr_res != (long long)want) {
                gc->dead = 1; /* part of it may have gone */
                return l->wr_res > 0 || l->wr_busy ? SIMSYNC_ECLOSED
                                                   : SIMSYNC_ETIMEOUT;
            }
        } else if (!alive(gc) && l->wr_busy) {
            (void)cancel_request(l, &l->wr, &l->wr_busy);
        }
    }
    if (l->wr_res <= 0 || !usb_wire_link_alive(&l->link, gc->session)) {
        c->last_errno = l->wr_res < 0 ? (int)-l->wr_res : 0;
        return SIMSYNC_ECLOSED;
    }
    *nsent = (size_t)l->wr_res;
    return SIMSYNC_OK;
}

static int
usb_gadget_recv(struct conn *c, void *buf, size_t len, size_t *nread)
{
    struct usb_gadget_conn *gc = (struct usb_gadget_conn *)c;
    struct usb_gadget_listener *l = gc->l;
    long long deadline = now_ms() + c->timeout_ms;

    *nread = 0;
    for (;;) {
        if (l->ring_session == gc->session && l->ring.len > 0) {
            *nread = usb_wire_ring_take(&l->ring, buf, len);
            post_read(l);
            return SIMSYNC_OK;
        }
        if (!alive(gc))
            return SIMSYNC_ECLOSED; /* after every byte of the session */
        post_read(l);
        if (wait_events(l, left_ms(gc, deadline)) == 0) {
            reap_ready(l);
            if (l->ring.len == 0)
                return SIMSYNC_ETIMEOUT;
        }
    }
}

static int
usb_gadget_pollfd(struct conn *c)
{
    (void)c;
    return -1; /* endpoint files cannot be polled: calls block */
}

static void
usb_gadget_close(struct conn *c)
{
    struct usb_gadget_conn *gc = (struct usb_gadget_conn *)c;
    struct usb_gadget_listener *l;

    if (gc == NULL)
        return;
    l = gc->l;
    /* Stop taking the host's bytes for a session nobody reads. */
    if (gc->session == l->ring_session)
        (void)cancel_request(l, &l->rd, &l->rd_busy);
    free(gc);
    release(l);
}

/* Dialling from the handset: the gadget says so in its interface
 * (USB_WIRE_PROTOCOL_DIAL), and the desktop, which listens on "usb", opens
 * the session when it sees it; only the host can. The gadget is the
 * conn's and goes when the conn is closed. */
static int
usb_gadget_connect(const char *addr, struct conn **out)
{
    struct usb_gadget_listener *l;
    long long deadline;
    int rc, limit;

    *out = NULL;
    rc = gadget_open(addr, USB_WIRE_PROTOCOL_DIAL, &l);
    if (rc != SIMSYNC_OK)
        return rc;
    limit = usb_wire_wait_ms(getenv("SIMSYNC_USB_WAIT_MS"));
    deadline = now_ms() + limit;
    for (;;) {
        struct pollfd p = {l->epoll_fd, POLLIN, 0};
        long long left = deadline - now_ms();

        rc = usb_gadget_accept(&l->base, out);
        if (rc != SIMSYNC_EAGAIN || left <= 0)
            break;
        (void)poll(&p, 1, left > 200 ? 200 : (int)left);
    }
    if (rc == SIMSYNC_EAGAIN) {
        transport_set_error("no desktop opened this handset's simsync USB "
                            "function on %s within %d s: plug the cable in "
                            "and run 'simsync listen usb' (or 'simsync "
                            "daemon --listen usb') on the desktop",
                            l->udc, limit / 1000);
        rc = SIMSYNC_ECONNECT;
    }
    usb_gadget_listener_close(&l->base); /* a conn keeps the gadget */
    return rc;
}

static int
usb_gadget_listener_pollfd(struct listener *base)
{
    return ((struct usb_gadget_listener *)base)->epoll_fd;
}

static int
usb_gadget_listener_addr(struct listener *base, char *buf, size_t len)
{
    struct usb_gadget_listener *l = (struct usb_gadget_listener *)base;

    if ((size_t)snprintf(buf, len, "%s", l->udc) >= len)
        return SIMSYNC_EINVAL;
    return SIMSYNC_OK;
}

/* Drop one reference; the last one takes the gadget down. */
static void
release(struct usb_gadget_listener *l)
{
    if (--l->refs > 0)
        return;
    teardown(l);
    free(l);
}

static void
usb_gadget_listener_close(struct listener *base)
{
    struct usb_gadget_listener *l = (struct usb_gadget_listener *)base;

    if (l == NULL)
        return;
    if (l->refs == 0) { /* a listen that failed half-way */
        teardown(l);
        free(l);
        return;
    }
    release(l);
}

const struct transport_ops transport_usb_gadget = {
    .version = 1,
    .scheme = "usb-gadget",
    .connect = usb_gadget_connect,
    .listen = usb_gadget_listen,
    .accept = usb_gadget_accept,
    .send = usb_gadget_send,
    .recv = usb_gadget_recv,
    .pollfd = usb_gadget_pollfd,
    .close = usb_gadget_close,
    .listener_pollfd = usb_gadget_listener_pollfd,
    .listener_addr = usb_gadget_listener_addr,
    .listener_close = usb_gadget_listener_close,
};
