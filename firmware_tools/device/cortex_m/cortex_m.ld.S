/*
 * edgert Cortex-M port: linker script, run through the C preprocessor by
 * firmware_tools/firmware.py with the board's memory map:
 *   CODE_ORIGIN/CODE_LENGTH  where the core fetches its vector table at reset, and the code
 *   RAM_ORIGIN/RAM_LENGTH    data, bss (flash mirror, tensor arena), stack
 */
MEMORY
{
    CODE (rx)  : ORIGIN = CODE_ORIGIN, LENGTH = CODE_LENGTH
    RAM  (rwx) : ORIGIN = RAM_ORIGIN, LENGTH = RAM_LENGTH
}

ENTRY(Reset_Handler)

SECTIONS
{
    .text :
    {
        KEEP(*(.isr_vector))
        *(.text*)
        KEEP(*(.init))
        KEEP(*(.fini))
        *(.rodata*)
        . = ALIGN(4);
    } > CODE

    .ARM.extab : { *(.ARM.extab* .gnu.linkonce.armextab.*) } > CODE
    .ARM.exidx : { __exidx_start = .; *(.ARM.exidx* .gnu.linkonce.armexidx.*) __exidx_end = .; } > CODE

    .init_array :
    {
        . = ALIGN(4);
        PROVIDE_HIDDEN(__preinit_array_start = .);
        KEEP(*(.preinit_array*))
        PROVIDE_HIDDEN(__preinit_array_end = .);
        PROVIDE_HIDDEN(__init_array_start = .);
        KEEP(*(SORT(.init_array.*)))
        KEEP(*(.init_array*))
        PROVIDE_HIDDEN(__init_array_end = .);
        PROVIDE_HIDDEN(__fini_array_start = .);
        KEEP(*(SORT(.fini_array.*)))
        KEEP(*(.fini_array*))
        PROVIDE_HIDDEN(__fini_array_end = .);
        . = ALIGN(4);
    } > CODE

    __data_load__ = LOADADDR(.data);
    .data : ALIGN(4)
    {
        __data_start__ = .;
        *(.data*)
        . = ALIGN(4);
        __data_end__ = .;
    } > RAM AT > CODE

    .bss (NOLOAD) : ALIGN(16)
    {
        __bss_start__ = .;
        *(.bss*)
        *(COMMON)
        . = ALIGN(4);
        __bss_end__ = .;
    } > RAM

    .stack (NOLOAD) : ALIGN(8)
    {
        . += STACK_SIZE;
        __stack_top__ = .;
    } > RAM

    /* newlib's reentrancy data wants these symbols even though _sbrk never grows a heap */
    end = __bss_end__;
    _end = __bss_end__;
}
