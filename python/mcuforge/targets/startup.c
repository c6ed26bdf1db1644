/* Minimal Cortex-M start-up for running mcuforge models under QEMU (MPS2/MPS3
 * machines): vector table, .data copy, .bss clear, FPU enable, SysTick as a
 * deterministic tick counter (virtual time under -icount), semihosting exit. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top__;
int main(void);

void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) const vector_t mcuforge_vectors[16] = {
    (vector_t)(uintptr_t)&__stack_top__, /* initial stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    SysTick_Handler,
};

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)

static volatile uint32_t mcuforge_systick_wraps;

void SysTick_Handler(void)
{
    mcuforge_systick_wraps++;
}

/* SysTick ticks since start-up (processor clock, 24-bit counter + wraps). */
uint64_t mcuforge_ticks(void)
{
    uint32_t wraps, value;
    do {
        wraps = mcuforge_systick_wraps;
        value = SYST_CVR;
    } while (wraps != mcuforge_systick_wraps);
    return ((uint64_t)wraps << 24) + (0xFFFFFFu - value);
}

void Fault_Handler(void)
{
    sh_puts("mcuforge: fault (HardFault/BusFault/UsageFault) on the target\n");
    sh_exit(70);
}

void Reset_Handler(void)
{
    uint32_t *src = &__data_load__, *dst = &__data_start__;
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__; dst++) {
        *dst = 0;
    }
#if defined(__ARM_FP)
    CPACR |= 0xFu << 20; /* CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
    while (SYST_CVR == 0) {
        /* the first tick loads the reload value */
    }
    sh_exit(main());
}
