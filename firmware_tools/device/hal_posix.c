/*
 * POSIX port of the edgert reference device: file-backed NOR flash and a tty
 * (a serial device path, or a pseudo-terminal the device creates itself).
 *
 *   edgert-device --flash FILE [--flash-size N] [--sector-size N] [--slot-size N]
 *                 (--pty | --port PATH [--baud N]) [--ram N] [--target NAME]
 *                 [--power-loss-at N] [--link PATH] [--disconnect-at N]
 *
 * With --pty the device prints "PTY <path>" on stdout once it listens there;
 * --link PATH keeps a symlink to the current pty, a stable name for hosts.
 * --disconnect-at N unplugs the link after N received bytes (the rest of that
 * read is lost), and comes back on a fresh pty (the link follows) like a USB
 * serial adapter pulled and re-plugged while the board keeps running.
 * --power-loss-at N cuts the power in the middle of the Nth flash erase or
 * write since start: half of that operation reaches the flash, then the
 * process exits at once with status 75, like a board losing its supply.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "edgert_device.h"
#include "edgert_hal.h"

#define EXIT_POWER_LOSS 75
#define EXIT_USAGE 2
#define WRITE_STALL_MS 2000

static struct {
    int fd;
    uint32_t size;
    uint32_t sector;
    unsigned long steps;         /* flash erases + writes so far */
    unsigned long power_loss_at; /* 0: never */
    const uint8_t *map;          /* the file mapped read-only: writes through pwrite show in it (one page cache) */
} g_flash = {-1, 0, 4096, 0, 0, NULL};

static int g_serial = -1;
static int g_pty_slave = -1;
static const char *g_link;
static unsigned long long g_rx_bytes;
static unsigned long long g_disconnect_at; /* 0: never */

/* ---- flash ---------------------------------------------------------------------------- */

uint32_t hal_flash_size(void)
{
    return g_flash.size;
}

uint32_t hal_flash_sector_size(void)
{
    return g_flash.sector;
}

static int in_region(uint32_t off, uint32_t len)
{
    return off <= g_flash.size && len <= g_flash.size - off;
}

/* pread/pwrite all of [off, off+len), retrying short transfers and EINTR. */
static int transfer_all(int writing, uint32_t off, const uint8_t *buf, uint32_t len)
{
    while (len > 0) {
        /* Casting const away is sound for reads: pread_all passes a writable buffer. */
        ssize_t n = writing ? pwrite(g_flash.fd, buf, len, (off_t)off)
                            : pread(g_flash.fd, (void *)buf, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        off += (uint32_t)n;
        len -= (uint32_t)n;
    }
    return 0;
}

static int pread_all(uint32_t off, uint8_t *buf, uint32_t len)
{
    return transfer_all(0, off, buf, len);
}

static int pwrite_all(uint32_t off, const uint8_t *buf, uint32_t len)
{
    return transfer_all(1, off, buf, len);
}

/* Count a mutating step; true when this step is the one the power dies in. */
static int power_dies_now(const char *what, uint32_t off, uint32_t len)
{
    g_flash.steps++;
    if (g_flash.power_loss_at == 0 || g_flash.steps != g_flash.power_loss_at) {
        return 0;
    }
    fprintf(stderr, "edgert-device: POWER LOSS during flash step %lu (%s off=%lu len=%lu)\n", g_flash.steps, what,
            (unsigned long)off, (unsigned long)len);
    return 1;
}

int hal_flash_read(uint32_t off, void *buf, uint32_t len)
{
    if (!in_region(off, len)) {
        return -1;
    }
    return pread_all(off, (uint8_t *)buf, len);
}

/* NOR programming can only clear bits: emulate it, so a write without an erase corrupts as on hardware. */
static int program(uint32_t off, const uint8_t *data, uint32_t len)
{
    uint8_t cell[512];

    while (len > 0) {
        uint32_t take = len < sizeof(cell) ? len : (uint32_t)sizeof(cell);
        uint32_t i;
        if (pread_all(off, cell, take) != 0) {
            return -1;
        }
        for (i = 0; i < take; i++) {
            cell[i] &= data[i];
        }
        if (pwrite_all(off, cell, take) != 0) {
            return -1;
        }
        off += take;
        data += take;
        len -= take;
    }
    return 0;
}

static int fill_erased(uint32_t off, uint32_t len)
{
    uint8_t ones[512];

    memset(ones, 0xff, sizeof(ones));
    while (len > 0) {
        uint32_t take = len < sizeof(ones) ? len : (uint32_t)sizeof(ones);
        if (pwrite_all(off, ones, take) != 0) {
            return -1;
        }
        off += take;
        len -= take;
    }
    return 0;
}

int hal_flash_write(uint32_t off, const void *buf, uint32_t len)
{
    if (!in_region(off, len)) {
        return -1;
    }
    if (power_dies_now("write", off, len)) {
        (void)program(off, (const uint8_t *)buf, len / 2);
        _exit(EXIT_POWER_LOSS);
    }
    return program(off, (const uint8_t *)buf, len);
}

int hal_flash_erase(uint32_t off, uint32_t len)
{
    if (!in_region(off, len) || off % g_flash.sector != 0 || len % g_flash.sector != 0) {
        return -1;
    }
    if (power_dies_now("erase", off, len)) {
        (void)fill_erased(off, len / 2);
        _exit(EXIT_POWER_LOSS);
    }
    return fill_erased(off, len);
}

const uint8_t *hal_flash_map(uint32_t off, uint32_t len)
{
    if (g_flash.map == NULL || !in_region(off, len)) {
        return NULL;
    }
    return g_flash.map + off;
}

static int open_flash(const char *path, uint32_t size)
{
    struct stat st;

    g_flash.fd = open(path, O_RDWR | O_CREAT, 0644);
    if (g_flash.fd < 0 || fstat(g_flash.fd, &st) != 0) {
        fprintf(stderr, "edgert-device: cannot open flash file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if ((uint64_t)st.st_size > size) {
        fprintf(stderr, "edgert-device: flash file %s is %lld bytes, larger than --flash-size %lu\n", path,
                (long long)st.st_size, (unsigned long)size);
        return -1;
    }
    g_flash.size = size;
    /* A new (or shorter) file is factory-fresh flash: erased. */
    if ((uint64_t)st.st_size < size && fill_erased((uint32_t)st.st_size, size - (uint32_t)st.st_size) != 0) {
        fprintf(stderr, "edgert-device: cannot size flash file %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* Memory-mapped like a microcontroller's internal flash, so a runner can execute the model in place. */
    if (size > 0) {
        void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, g_flash.fd, 0);
        g_flash.map = map == MAP_FAILED ? NULL : (const uint8_t *)map;
    }
    return 0;
}

/* ---- serial ---------------------------------------------------------------------------- */

static int make_raw(int fd, long baud)
{
    struct termios t;
    speed_t speed;

    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    /* The POSIX spelling of cfmakeraw: no echo, no line editing, no CR/LF translation, 8N1. */
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    switch (baud) {
    case 9600: speed = B9600; break;
    case 19200: speed = B19200; break;
    case 38400: speed = B38400; break;
    case 57600: speed = B57600; break;
    default: speed = B115200; break;
    }
    cfsetispeed(&t, speed);
    cfsetospeed(&t, speed);
    return tcsetattr(fd, TCSANOW, &t);
}

static int open_pty(void)
{
    const char *slave_path;
    int slave;
    static char tmp_link[4096];

    g_serial = posix_openpt(O_RDWR | O_NOCTTY);
    if (g_serial < 0 || grantpt(g_serial) != 0 || unlockpt(g_serial) != 0 ||
        (slave_path = ptsname(g_serial)) == NULL) {
        fprintf(stderr, "edgert-device: cannot create a pseudo-terminal: %s\n", strerror(errno));
        return -1;
    }
    /*
     * Hold the slave open ourselves: the link then survives a host closing and
     * reopening the port (as a USB CDC port does), and it starts raw, so the
     * line discipline never echoes our own output back at us.
     */
    slave = open(slave_path, O_RDWR | O_NOCTTY);
    if (slave < 0 || make_raw(slave, 115200) != 0) {
        fprintf(stderr, "edgert-device: cannot open %s: %s\n", slave_path, strerror(errno));
        return -1;
    }
    g_pty_slave = slave;
    (void)fcntl(g_serial, F_SETFL, fcntl(g_serial, F_GETFL) | O_NONBLOCK);
    if (g_link != NULL) {
        /* Replace the link atomically, so a host reopening it never finds it missing. */
        if ((size_t)snprintf(tmp_link, sizeof(tmp_link), "%s.new", g_link) >= sizeof(tmp_link) ||
            (unlink(tmp_link) != 0 && errno != ENOENT) || symlink(slave_path, tmp_link) != 0 ||
            rename(tmp_link, g_link) != 0) {
            fprintf(stderr, "edgert-device: cannot link %s to %s: %s\n", g_link, slave_path, strerror(errno));
            return -1;
        }
    }
    printf("PTY %s\n", slave_path);
    fflush(stdout);
    return 0;
}

/* The cable is pulled and plugged back: the host sees its port fail and must reopen it. */
static int replug_pty(void)
{
    struct timespec pause = {0, 200 * 1000 * 1000};

    fprintf(stderr, "edgert-device: DISCONNECT after %llu received bytes\n", g_rx_bytes);
    /*
     * Drop the name first, as udev does on unplug: the old pty number may be
     * reused by another process at once, and a host must not reopen that.
     */
    if (g_link != NULL) {
        (void)unlink(g_link);
    }
    close(g_serial);
    close(g_pty_slave);
    nanosleep(&pause, NULL); /* re-enumeration time */
    return open_pty();
}

static int open_port(const char *path, long baud)
{
    g_serial = open(path, O_RDWR | O_NOCTTY);
    if (g_serial < 0 || make_raw(g_serial, baud) != 0) {
        fprintf(stderr, "edgert-device: cannot open serial port %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int hal_serial_read(uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    struct pollfd p;
    ssize_t n;
    int rc;

    p.fd = g_serial;
    p.events = POLLIN;
    p.revents = 0;
    rc = poll(&p, 1, (int)timeout_ms);
    if (rc < 0) {
        return errno == EINTR ? 0 : -1;
    }
    if (rc == 0) {
        return 0;
    }
    if (!(p.revents & POLLIN)) {
        return (p.revents & (POLLHUP | POLLERR | POLLNVAL)) ? -1 : 0;
    }
    n = read(g_serial, buf, cap);
    if (n < 0) {
        return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    }
    if (n == 0) {
        return -1;
    }
    if (g_disconnect_at != 0 && g_rx_bytes + (unsigned long long)n >= g_disconnect_at) {
        n = (ssize_t)(g_disconnect_at - g_rx_bytes);
        g_rx_bytes = g_disconnect_at;
        g_disconnect_at = 0;
        if (replug_pty() != 0) {
            return -1;
        }
        return (int)n;
    }
    g_rx_bytes += (unsigned long long)n;
    return (int)n;
}

int hal_serial_write(const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(g_serial, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            /* Nobody reads the port: wait a little, then drop the bytes as a real UART would. */
            struct pollfd p;
            p.fd = g_serial;
            p.events = POLLOUT;
            p.revents = 0;
            if (poll(&p, 1, WRITE_STALL_MS) <= 0) {
                return -1;
            }
            continue;
        }
        return -1;
    }
    return 0;
}

uint32_t hal_time_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* ---- command line ---------------------------------------------------------------------------- */

/* A byte count: decimal, optionally with a k/K (KiB) or m/M (MiB) suffix. */
static int parse_size(const char *text, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v;

    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || text[0] == '-') {
        return -1;
    }
    if (*end == 'k' || *end == 'K') {
        v *= 1024ull;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        v *= 1024ull * 1024ull;
        end++;
    }
    if (*end != '\0' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: edgert-device --flash FILE [--flash-size N] [--sector-size N] [--slot-size N]\n"
            "                     (--pty | --port PATH [--baud N]) [--ram N] [--target NAME]\n"
            "                     [--power-loss-at N] [--link PATH] [--disconnect-at N]\n");
}

int main(int argc, char **argv)
{
    const char *flash_path = NULL;
    const char *port = NULL;
    int use_pty = 0;
    unsigned long long flash_size = 2ull * 1024 * 1024 + 2 * 4096;
    unsigned long long sector = 4096;
    unsigned long long slot_size = 0;
    unsigned long long ram = 256u * 1024u;
    unsigned long long baud = 115200;
    unsigned long long power_loss_at = 0;
    edgert_device_config config;
    static const char banner[] = "\r\n*** edgert reference device (POSIX HAL) ***\r\nboot: reading model records\r\n";
    int i;

    memset(&config, 0, sizeof(config));
    config.target = "c-reference";
    for (i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;

        if (strcmp(opt, "--pty") == 0) {
            use_pty = 1;
            continue;
        }
        if (val == NULL) {
            usage();
            return EXIT_USAGE;
        }
        if (strcmp(opt, "--flash") == 0) {
            flash_path = val;
        } else if (strcmp(opt, "--port") == 0) {
            port = val;
        } else if (strcmp(opt, "--target") == 0) {
            config.target = val;
        } else if (strcmp(opt, "--flash-size") == 0) {
            bad = parse_size(val, 0xffffffffull, &flash_size);
        } else if (strcmp(opt, "--sector-size") == 0) {
            bad = parse_size(val, 1024ull * 1024ull, &sector);
        } else if (strcmp(opt, "--slot-size") == 0) {
            bad = parse_size(val, 0xffffffffull, &slot_size);
        } else if (strcmp(opt, "--ram") == 0) {
            bad = parse_size(val, 0xffffffffull, &ram);
        } else if (strcmp(opt, "--baud") == 0) {
            bad = parse_size(val, 4000000ull, &baud);
        } else if (strcmp(opt, "--power-loss-at") == 0) {
            bad = parse_size(val, 0xffffffffull, &power_loss_at);
        } else if (strcmp(opt, "--disconnect-at") == 0) {
            bad = parse_size(val, 0xffffffffull, &g_disconnect_at);
        } else if (strcmp(opt, "--link") == 0) {
            g_link = val;
        } else {
            bad = -1;
        }
        if (bad != 0) {
            fprintf(stderr, "edgert-device: bad option %s %s\n", opt, val);
            usage();
            return EXIT_USAGE;
        }
        i++;
    }
    if (flash_path == NULL || use_pty == (port != NULL)) {
        usage();
        return EXIT_USAGE;
    }
    g_flash.sector = (uint32_t)sector;
    g_flash.power_loss_at = (unsigned long)power_loss_at;
    config.slot_size = (uint32_t)slot_size;
    config.ram_bytes = (uint32_t)ram;
    if (open_flash(flash_path, (uint32_t)flash_size) != 0) {
        return EXIT_USAGE;
    }
    if (edgert_device_init(&config) != 0) {
        fprintf(stderr,
                "edgert-device: flash layout does not fit: need 2 record sectors + 2 slots "
                "(flash %llu, sector %llu, slot %llu)\n",
                flash_size, sector, slot_size);
        return EXIT_USAGE;
    }
    if ((g_link != NULL || g_disconnect_at != 0) && !use_pty) {
        fprintf(stderr, "edgert-device: --link and --disconnect-at need --pty\n");
        return EXIT_USAGE;
    }
    if ((use_pty ? open_pty() : open_port(port, (long)baud)) != 0) {
        return EXIT_USAGE;
    }
    (void)fcntl(g_serial, F_SETFL, fcntl(g_serial, F_GETFL) | O_NONBLOCK);
    /* Boot text on the link before the first frame, as a real board prints: hosts must skip it. */
    (void)hal_serial_write((const uint8_t *)banner, sizeof(banner) - 1);
    return edgert_device_run();
}
