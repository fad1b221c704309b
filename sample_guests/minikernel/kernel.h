/* Declarations shared by the minikernel's C files. */
#ifndef MINIKERNEL_H
#define MINIKERNEL_H

#include "guest.h"
#include "syscall.h"

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)
#define TSS_SEL 0x28

/* Interrupt vectors: ISA IRQ n arrives through the IOAPIC at IRQ_VECTOR + n;
 * the (masked) 8259s are remapped to 0x20-0x2F so that their spurious IRQs
 * 7 and 15 cannot be mistaken for anything else. */
#define PIC_VECTOR 0x20
#define IRQ_VECTOR 0x30
#define TIMER_VECTOR 0x40
#define LAPIC_ERROR_VECTOR 0x41
#define SPURIOUS_VECTOR 0xFF

#define IRQ_KBD 1
#define IRQ_COM1 4
#define IRQ_IDE 14

#define PAGE_SIZE 4096u

/* ---- mp.c: MP table, LAPIC, IOAPIC ------------------------------------ */
struct mp_info {
    uint32_t lapic;       /* physical address of the local APIC */
    uint32_t ioapic;      /* physical address of the (first) IOAPIC */
    uint32_t ioapic_id;
    uint32_t cpus;
    uint8_t isa_pin[16];  /* IOAPIC input of each ISA IRQ */
};
extern struct mp_info mp;
int mp_find(void);                 /* 0, or -1 with no valid MP table */
void lapic_init(uint32_t timer_initial_count);
void lapic_eoi(void);
uint32_t lapic_id(void);
uint32_t ioapic_pins(void);
uint32_t ioapic_id(void);         /* from its ID register */
void ioapic_route(uint32_t isa_irq, uint8_t vector, uint32_t apic_id);

/* ---- dev.c: COM1 receive, i8042 keyboard, IDE slave ------------------- */
#define LINE_MAX 127
void uart_rx_init(void);
void uart_irq(void);               /* drains RBR into the line buffer (echoed) */
int uart_take_line(char *dst, uint32_t max); /* length, or -1 if no line yet */
int kbd_init(void);                /* 0, or -1 with no controller */
void kbd_irq(void);
int kbd_take_line(char *dst, uint32_t max);
int kbd_present(void);
int ide_init(void);                /* 0 if the slave answers */
void ide_irq(void);
int ide_slave_rw(uint32_t lba, void *buf, int write); /* 0 or -1; IF must be 1 */
extern volatile uint32_t ide_irqs;

/* ---- main.c --------------------------------------------------------- */
void wake_readers(void);           /* a line became available somewhere */
void panic(const char *why) __attribute__((noreturn));

#endif
