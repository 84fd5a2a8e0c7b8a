/*
 * edgert Cortex-M port: what the port offers the runner and the TFLM glue
 * besides edgert_hal.h (a tick counter for measuring an invoke, log output).
 *
 * Board facts arrive as -D macros from firmware_tools/firmware.py (one table of
 * boards there): EDGERT_UART_BASE, EDGERT_UART_RX_IRQ, EDGERT_SYSCLK_HZ,
 * EDGERT_FLASH_BYTES, EDGERT_ARENA_BYTES, EDGERT_TARGET, EDGERT_BOARD.
 */
#ifndef EDGERT_CORTEX_M_PORT_H
#define EDGERT_CORTEX_M_PORT_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Restart the measuring clock: aligns the SysTick phase so that equal work gives equal counts. */
void port_measure_start(void);
/* SysTick clock ticks since port_measure_start(). */
uint64_t port_measure_ticks(void);
/* Ticks of the measuring clock per second (the board's SysTick clock). */
uint32_t port_ticks_per_second(void);
/* 1 when QEMU runs with -icount shift=0 (told on the semihosting command line): one instruction = 1 ns. */
int port_icount(void);

/* Write text to the UART (log lines between SMP frames, which hosts ignore). */
void port_log(const char *text);

/* A small vsnprintf without heap or floating-point formatting state (TFLM's DebugVsnprintf). */
int port_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif

#endif /* EDGERT_CORTEX_M_PORT_H */
