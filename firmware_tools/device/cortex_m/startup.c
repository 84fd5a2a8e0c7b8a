/*
 * edgert Cortex-M port: vector table, reset handler, fault handlers and the
 * few C library hooks newlib needs. Works unchanged on ARMv7-M (M4, M7) and
 * ARMv8.1-M (M55, which QEMU's mps3-an547 starts in Secure state).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cortex_m_regs.h"

#include "port.h"

#ifndef EDGERT_EXTERNAL_IRQS
#define EDGERT_EXTERNAL_IRQS 128
#endif

extern uint32_t __data_load__;
extern uint32_t __data_start__;
extern uint32_t __data_end__;
extern uint32_t __bss_start__;
extern uint32_t __bss_end__;
extern uint32_t __stack_top__;

extern int main(void);
extern void __libc_init_array(void);
extern void edgert_uart_isr(void);
void SysTick_Handler(void);

/* Plain word loops the compiler must not turn into memcpy/memset calls: .data/.bss are not set up yet. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static void init_memory(void)
{
    uint32_t *src = &__data_load__;
    uint32_t *dst = &__data_start__;
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__; dst++) {
        *dst = 0;
    }
}

__attribute__((noreturn)) void Reset_Handler(void)
{
    /* Full access to CP10/CP11 (FPU, and MVE on the M55) before any code can touch them. */
    SCB_CPACR |= (3UL << 20) | (3UL << 22);
    barrier_dsb();
    barrier_isb();
    init_memory();
    __libc_init_array(); /* C++ static constructors (none allocate: no heap on this device) */
    (void)main();
    for (;;) {
    }
}

/* A fault is a bug: say so on the serial line (hosts skip text between frames) and reboot. */
static void fault(const char *what)
{
    port_log("\r\nedgert firmware: fault: ");
    port_log(what);
    port_log(", rebooting\r\n");
    system_reset();
}

void HardFault_Handler(void) { fault("hard fault"); }
void MemManage_Handler(void) { fault("memory management fault"); }
void BusFault_Handler(void) { fault("bus fault"); }
void UsageFault_Handler(void) { fault("usage fault"); }
void NMI_Handler(void) { fault("NMI"); }
void Default_Handler(void) { }

/*
 * Every external interrupt goes to the UART handler: it only acts when UART 0
 * holds a byte, and UART 0's receive interrupt is the only one enabled.
 */
typedef void (*vector)(void);
__attribute__((section(".isr_vector"), used)) const vector g_vectors[16 + EDGERT_EXTERNAL_IRQS] = {
    (vector)(uintptr_t)&__stack_top__,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    HardFault_Handler, /* SecureFault (ARMv8-M) */
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    [16 ... 16 + EDGERT_EXTERNAL_IRQS - 1] = edgert_uart_isr,
};

/* ---- newlib hooks: no heap, no files -------------------------------------------------- */

/* Nothing may allocate on this device: refusing here makes any malloc fail visibly instead. */
void *_sbrk(ptrdiff_t incr)
{
    (void)incr;
    errno = ENOMEM;
    return (void *)-1;
}

int _write(int fd, const char *buf, int len)
{
    (void)fd;
    (void)buf;
    return len;
}
int _read(int fd, char *buf, int len) { (void)fd; (void)buf; (void)len; return 0; }
int _close(int fd) { (void)fd; return -1; }
int _lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; return 0; }
int _fstat(int fd, struct stat *st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
__attribute__((noreturn)) void _exit(int status)
{
    (void)status;
    system_reset();
}

/* crti/crtn are not linked (-nostartfiles): __libc_init_array calls these, constructors run from .init_array. */
void _init(void) { }
void _fini(void) { }
