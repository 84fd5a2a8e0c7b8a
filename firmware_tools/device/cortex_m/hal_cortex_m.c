/*
 * edgert Cortex-M port: the HAL of edgert_hal.h on Arm's MPS2/MPS3 boards as
 * QEMU emulates them (mps2-an386 Cortex-M4, mps2-an500 Cortex-M7, mps3-an547
 * Cortex-M55), and main().
 *
 * - UART: the board's CMSDK APB UART 0. QEMU's model holds one received byte,
 *   so receive is interrupt driven into a ring buffer and the core sleeps in
 *   WFI between bytes (polling would lose bytes and burn host CPU).
 * - Time: SysTick at the board clock, one interrupt per millisecond.
 * - Flash: the NOR flash the model store needs is a RAM mirror (so a model runs
 *   in place through hal_flash_map) backed by a host file through Arm
 *   semihosting (QEMU -semihosting). Every program/erase is written through to
 *   the file at once, so killing QEMU (a power cut) keeps what was written and
 *   a restart on the same file finds it.
 *
 * No heap: every buffer is static.
 */
#include <stdint.h>
#include <string.h>

#include "cortex_m_regs.h"

#include "edgert_device.h"
#include "edgert_hal.h"
#include "port.h"

#ifndef EDGERT_FLASH_SECTOR
#define EDGERT_FLASH_SECTOR 4096u
#endif
#ifndef EDGERT_RX_RING
#define EDGERT_RX_RING 8192u /* a whole 2 KiB SMP frame in base64 plus slack, while a handler runs */
#endif
#ifndef EDGERT_KERNELS_NAME
#define EDGERT_KERNELS_NAME "none"
#endif

/* ---- CMSDK APB UART ---------------------------------------------------------------- */

typedef struct {
    volatile uint32_t data;
    volatile uint32_t state;     /* bit0 TX full, bit1 RX full, bit2 TX overrun, bit3 RX overrun */
    volatile uint32_t ctrl;      /* bit0 TX enable, bit1 RX enable, bit3 RX interrupt enable */
    volatile uint32_t intstatus; /* write 1 to clear */
    volatile uint32_t bauddiv;
} cmsdk_uart;

#define UART ((cmsdk_uart *)(uintptr_t)EDGERT_UART_BASE)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_STATE_RXOVR 0x8u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u
#define UART_CTRL_RXIRQ 0x8u
#define UART_INT_RX 0x2u
#define UART_INT_RXOVR 0x8u

static uint8_t g_ring[EDGERT_RX_RING];
static volatile uint32_t g_head; /* written by the interrupt */
static volatile uint32_t g_tail; /* written by the main loop */
static volatile uint32_t g_rx_dropped;

/* The receive interrupt: move every byte the UART holds into the ring. */
void edgert_uart_isr(void)
{
    /*
     * Acknowledge first, then drain: a byte that lands after the last RXFULL check raises the
     * interrupt again. (Acknowledging after draining could swallow that byte's interrupt, and
     * since the UART holds one byte, receive would stop for good.)
     */
    UART->intstatus = UART_INT_RX | UART_INT_RXOVR;
    UART->state = UART_STATE_RXOVR; /* write-1-to-clear */
    while (UART->state & UART_STATE_RXFULL) {
        uint8_t byte = (uint8_t)UART->data;
        uint32_t next = (g_head + 1u) % EDGERT_RX_RING;
        if (next == g_tail) {
            g_rx_dropped++; /* the frame this byte belonged to fails its CRC; the host re-sends */
        } else {
            g_ring[g_head] = byte;
            g_head = next;
        }
    }
}

static void uart_init(void)
{
    /* QEMU refuses to run a CMSDK UART whose divider is below 16; the value only matters on hardware. */
    UART->bauddiv = EDGERT_SYSCLK_HZ / 115200u;
    UART->ctrl = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXIRQ;
    nvic_enable(EDGERT_UART_RX_IRQ);
}

int hal_serial_write(const uint8_t *buf, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        while (UART->state & UART_STATE_TXFULL) {
        }
        UART->data = buf[i];
    }
    return 0;
}

int hal_serial_read(uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    uint32_t start = hal_time_ms();
    size_t n = 0;

    for (;;) {
        irq_disable();
        if (g_head != g_tail) {
            irq_enable();
            break;
        }
        if ((uint32_t)(hal_time_ms() - start) >= timeout_ms) {
            irq_enable();
            return 0;
        }
        /* Sleep with interrupts masked: a byte arriving between the check and WFI still wakes us. */
        wait_for_interrupt();
        irq_enable();
    }
    while (n < cap && g_tail != g_head) {
        buf[n++] = g_ring[g_tail];
        g_tail = (g_tail + 1u) % EDGERT_RX_RING;
    }
    return (int)n;
}

void port_log(const char *text)
{
    (void)hal_serial_write((const uint8_t *)text, strlen(text));
}

/* ---- SysTick ------------------------------------------------------------------------- */

#define TICKS_PER_MS (EDGERT_SYSCLK_HZ / 1000u)

static volatile uint32_t g_ms;
static uint32_t g_measure_ms;

void SysTick_Handler(void)
{
    g_ms++;
}

static void systick_init(void)
{
    SYST_RVR = TICKS_PER_MS - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
}

uint32_t hal_time_ms(void)
{
    return g_ms;
}

void port_measure_start(void)
{
    irq_disable();
    /* Writing VAL restarts the count now: the phase of the tick no longer depends on when requests arrived. */
    SYST_CVR = 0;
    SCB_ICSR = SCB_ICSR_PENDSTCLR;
    g_measure_ms = g_ms;
    irq_enable();
}

uint64_t port_measure_ticks(void)
{
    uint32_t ms;
    uint32_t val;

    irq_disable();
    val = SYST_CVR;
    ms = g_ms;
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        /* The counter wrapped but the interrupt has not run yet: count that millisecond. */
        val = SYST_CVR;
        ms++;
    }
    irq_enable();
    /* After the restart the counter reloads on its first tick, so a fresh start reads 0 here. */
    return (uint64_t)(ms - g_measure_ms) * TICKS_PER_MS + (uint64_t)(TICKS_PER_MS - 1u - val);
}

uint32_t port_ticks_per_second(void)
{
    return EDGERT_SYSCLK_HZ;
}

/* ---- Semihosting (host file I/O through QEMU -semihosting) -------------------------- */

#define SYS_OPEN 0x01
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_SEEK 0x0A
#define SYS_FLEN 0x0C
#define SYS_GET_CMDLINE 0x15

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static char g_cmdline[512];
static const char *g_flash_path;
static int g_icount;

/* Command line (QEMU -semihosting-config arg=...): "edgert [icount=0] flash=PATH"; PATH runs to the end. */
static void read_cmdline(void)
{
    struct {
        char *buf;
        int len;
    } block = {g_cmdline, (int)sizeof(g_cmdline) - 1};
    const char *p;

    if (semihost(SYS_GET_CMDLINE, &block) != 0) {
        g_cmdline[0] = '\0';
        return;
    }
    g_cmdline[block.len >= 0 && block.len < (int)sizeof(g_cmdline) ? block.len : 0] = '\0';
    g_icount = strstr(g_cmdline, " icount=0") != NULL;
    p = strstr(g_cmdline, " flash=");
    g_flash_path = p ? p + 7 : NULL;
}

int port_icount(void)
{
    return g_icount;
}

/* ---- Flash: RAM mirror written through to a host file ------------------------------ */

static uint8_t g_flash[EDGERT_FLASH_BYTES] __attribute__((aligned(16)));
static int g_flash_fd = -1;

static int file_write(uint32_t off, const uint8_t *src, uint32_t len)
{
    uint32_t seek[2] = {(uint32_t)g_flash_fd, off};
    uint32_t wr[3] = {(uint32_t)g_flash_fd, (uint32_t)(uintptr_t)src, len};

    if (g_flash_fd < 0) {
        return 0; /* no backing file: a RAM-only board that forgets on restart */
    }
    if (semihost(SYS_SEEK, seek) != 0 || semihost(SYS_WRITE, wr) != 0) {
        return -1;
    }
    return 0;
}

static const char *flash_open(void)
{
    uint32_t open_rw[3];
    uint32_t flen[1];
    int size;

    memset(g_flash, 0xFF, sizeof(g_flash));
    if (g_flash_path == NULL || g_flash_path[0] == '\0') {
        return "no flash= file on the semihosting command line: flash lives in RAM only";
    }
    open_rw[0] = (uint32_t)(uintptr_t)g_flash_path;
    open_rw[1] = 3; /* "r+b" */
    open_rw[2] = (uint32_t)strlen(g_flash_path);
    g_flash_fd = semihost(SYS_OPEN, open_rw);
    if (g_flash_fd < 0) {
        open_rw[1] = 7; /* "w+b": create an erased device */
        g_flash_fd = semihost(SYS_OPEN, open_rw);
        if (g_flash_fd < 0) {
            return "cannot open or create the flash file: flash lives in RAM only";
        }
    }
    flen[0] = (uint32_t)g_flash_fd;
    size = semihost(SYS_FLEN, flen);
    if (size > 0) {
        uint32_t take = (uint32_t)size < sizeof(g_flash) ? (uint32_t)size : (uint32_t)sizeof(g_flash);
        uint32_t seek[2] = {(uint32_t)g_flash_fd, 0};
        uint32_t rd[3] = {(uint32_t)g_flash_fd, (uint32_t)(uintptr_t)g_flash, take};
        if (semihost(SYS_SEEK, seek) != 0 || semihost(SYS_READ, rd) != 0) {
            memset(g_flash, 0xFF, sizeof(g_flash));
            return "cannot read the flash file";
        }
    }
    if (size < (int)sizeof(g_flash)) {
        /* A new or short file: extend it with erased bytes so every offset exists on the host. */
        uint32_t from = size > 0 ? (uint32_t)size : 0u;
        if (file_write(from, g_flash + from, (uint32_t)sizeof(g_flash) - from) != 0) {
            return "cannot extend the flash file";
        }
    }
    return NULL;
}

uint32_t hal_flash_size(void)
{
    return (uint32_t)sizeof(g_flash);
}

uint32_t hal_flash_sector_size(void)
{
    return EDGERT_FLASH_SECTOR;
}

static int in_range(uint32_t off, uint32_t len)
{
    return off <= sizeof(g_flash) && len <= sizeof(g_flash) - off;
}

int hal_flash_read(uint32_t off, void *buf, uint32_t len)
{
    if (!in_range(off, len)) {
        return -1;
    }
    memcpy(buf, g_flash + off, len);
    return 0;
}

int hal_flash_write(uint32_t off, const void *buf, uint32_t len)
{
    const uint8_t *src = (const uint8_t *)buf;
    uint32_t i;

    if (!in_range(off, len)) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        g_flash[off + i] &= src[i]; /* NOR: programming only clears bits */
    }
    return file_write(off, g_flash + off, len);
}

int hal_flash_erase(uint32_t off, uint32_t len)
{
    if (!in_range(off, len) || off % EDGERT_FLASH_SECTOR != 0 || len % EDGERT_FLASH_SECTOR != 0) {
        return -1;
    }
    memset(g_flash + off, 0xFF, len);
    return file_write(off, g_flash + off, len);
}

const uint8_t *hal_flash_map(uint32_t off, uint32_t len)
{
    return in_range(off, len) ? g_flash + off : NULL;
}

/* ---- main ---------------------------------------------------------------------------- */

static void banner(const char *flash_problem)
{
    port_log("\r\nedgert firmware: target " EDGERT_TARGET ", board " EDGERT_BOARD ", kernels " EDGERT_KERNELS_NAME "\r\n");
    if (flash_problem != NULL) {
        port_log("edgert firmware: warning: ");
        port_log(flash_problem);
        port_log("\r\n");
    }
}

int main(void)
{
    const char *flash_problem;
    edgert_device_config cfg;

    systick_init();
    read_cmdline();
    flash_problem = flash_open();
    uart_init();

    memset(&cfg, 0, sizeof(cfg));
    cfg.slot_size = 0; /* split the flash evenly, as the simulator and the POSIX device do */
    cfg.ram_bytes = EDGERT_ARENA_BYTES;
    cfg.target = EDGERT_TARGET;
    if (edgert_device_init(&cfg) != 0) {
        port_log("edgert firmware: error: the flash layout does not fit\r\n");
        for (;;) {
            wait_for_interrupt();
        }
    }
    banner(flash_problem);
    port_log("edgert firmware: ready\r\n");
    (void)edgert_device_run();
    system_reset();
    return 0;
}
