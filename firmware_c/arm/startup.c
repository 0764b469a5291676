/* Start-up of the ARM build on one core: the vector table, the reset handler (zero .bss, enable the
 * FPU), the idle loop every handler returns to and the fault loop. The host loads the whole image
 * into SRAM, so .data needs no copy. A board build would add its interrupt handlers here, calling
 * fw_on_* with the arena at __arena_start; the instruction-set simulator calls them directly
 * (emulator/runners/iss.py). */
#include <stdint.h>

extern uint32_t __bss_start, __bss_end, __stack_top;

void fw_reset(void);
void fw_idle(void);
void fw_fault(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL (0xFu << 20)

__attribute__((section(".vectors"), used))
static const uintptr_t vectors[] = {
    (uintptr_t)&__stack_top,
    (uintptr_t)fw_reset,
    (uintptr_t)fw_fault,  /* NMI */
    (uintptr_t)fw_fault,  /* HardFault */
    (uintptr_t)fw_fault,  /* MemManage */
    (uintptr_t)fw_fault,  /* BusFault */
    (uintptr_t)fw_fault,  /* UsageFault: e.g. a VFP instruction with the FPU off */
};

void fw_reset(void)
{
    for (uint32_t *p = &__bss_start; p < &__bss_end; ++p) *p = 0u;
    CPACR |= CPACR_CP10_CP11_FULL;  /* the FPU: every handler uses single-precision floats */
    __asm volatile("dsb\n\tisb" ::: "memory");
    fw_idle();
}

/* waits for the next interrupt; every handler returns here */
__attribute__((noreturn)) void fw_idle(void)
{
    for (;;) __asm volatile("wfi");
}

/* a fault stops the core here, where a debugger (or the simulator) finds it */
__attribute__((noreturn)) void fw_fault(void)
{
    for (;;) __asm volatile("bkpt #0");
}
