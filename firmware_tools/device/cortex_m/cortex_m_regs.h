/*
 * edgert Cortex-M port: the few architectural registers the port touches.
 *
 * These addresses and bits are fixed by the ARMv7-M and ARMv8-M architecture
 * (System Control Space at 0xE000E000), identical on the M4, M7 and M55, so
 * the port needs no CMSIS device or core header (the TFLM tree carries only
 * part of CMSIS-Core).
 */
#ifndef EDGERT_CORTEX_M_REGS_H
#define EDGERT_CORTEX_M_REGS_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* SysTick */
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SYST_CSR_ENABLE 0x1u
#define SYST_CSR_TICKINT 0x2u
#define SYST_CSR_CLKSOURCE 0x4u /* the processor clock */

/* System control block */
#define SCB_ICSR REG32(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define SCB_ICSR_PENDSTCLR (1u << 25)
#define SCB_AIRCR REG32(0xE000ED0Cu)
#define SCB_AIRCR_RESET (0x05FAu << 16 | 1u << 2) /* VECTKEY | SYSRESETREQ */
#define SCB_CPACR REG32(0xE000ED88u)

/* NVIC: 32 interrupts per register */
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))
#define NVIC_ICPR(n) REG32(0xE000E280u + 4u * (n))

static inline void irq_disable(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void wait_for_interrupt(void) { __asm__ volatile("wfi" ::: "memory"); }
static inline void barrier_dsb(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
static inline void barrier_isb(void) { __asm__ volatile("isb 0xF" ::: "memory"); }

static inline void nvic_enable(unsigned irq)
{
    NVIC_ICPR(irq / 32u) = 1u << (irq % 32u);
    NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

static inline __attribute__((noreturn)) void system_reset(void)
{
    barrier_dsb();
    SCB_AIRCR = SCB_AIRCR_RESET;
    barrier_dsb();
    for (;;) {
    }
}

#endif /* EDGERT_CORTEX_M_REGS_H */
