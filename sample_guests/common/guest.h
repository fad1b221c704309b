/* Shared declarations for the rdebug sample guests (freestanding i386). */
#ifndef GUEST_H
#define GUEST_H

#include <stdint.h>
#include <stdarg.h>

/* ---- port I/O ------------------------------------------------------- */
static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline void io_wait(void) { outb(0x80, 0); }

static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
/* Enable interrupts and halt atomically (STI shadow covers HLT), then
 * disable them again once woken up. */
static inline void sti_hlt_cli(void)
{
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}

/* ---- exit (isa-debug-exit at 0xF4: status = (code << 1) | 1) -------- */
#define EXIT_PORT 0xF4
void guest_exit(uint8_t code) __attribute__((noreturn));

/* ---- COM1 serial ---------------------------------------------------- */
#define COM1 0x3F8
#define UART_RBR 0 /* receive buffer (read) */
#define UART_THR 0 /* transmit holding (write) */
#define UART_IER 1
#define UART_IIR 2
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR   0x01 /* data ready */
#define LSR_THRE 0x20 /* transmit holding register empty */

void serial_init(void);
void serial_putc(char c);
void serial_write(const char *s, uint32_t len);
void serial_puts(const char *s);
void serial_put_u64(uint64_t v);
/* Minimal printf: %s %c %d %u %x %X %p %%, optional '0' flag and width. */
void printk(const char *fmt, ...);

/* ---- interrupts ----------------------------------------------------- */
/* Frame built by the common stubs in isr.S (lowest address first). */
struct regs {
    uint32_t gs, fs, es, ds;
    uint32_t edi, esi, ebp, esp_dummy, ebx, edx, ecx, eax;
    uint32_t vector, err;
    uint32_t eip, cs, eflags;
    uint32_t user_esp, user_ss; /* only valid when (cs & 3) != 0 */
};

typedef void (*isr_handler_t)(struct regs *r);

#define GATE_INT  0x8E /* present, DPL0, 32-bit interrupt gate */
#define GATE_TRAP 0x8F /* present, DPL0, 32-bit trap gate */
#define GATE_DPL3 0x60 /* OR into the type to allow INT n from ring 3 */

/* Install stubs for vectors 0..47 (interrupt gates, DPL 0) and load the IDT. */
void idt_init(void);
void idt_set_gate(uint8_t vec, uint32_t handler, uint16_t sel, uint8_t type);
void isr_register(uint8_t vec, isr_handler_t h);
extern uint32_t isr_stub_table[]; /* stub addresses, vectors 0..47 */
extern void isr_stub_0x80(void);

/* ---- 8259A PIC ------------------------------------------------------ */
#define PIC1_VECTOR 0x20
#define PIC2_VECTOR 0x28
void pic_remap(void);          /* remap to 0x20/0x28, mask all lines */
void pic_unmask(uint8_t irq);
void pic_mask(uint8_t irq);
void pic_eoi(uint8_t irq);

/* ---- GDT ------------------------------------------------------------ */
struct gdt_ptr {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));
/* Load a GDT and reload CS (far jump) and all data segment registers. */
void gdt_load(const struct gdt_ptr *p, uint32_t code_sel, uint32_t data_sel);

/* Linker-script symbols. */
extern char __kernel_start[], __kernel_end[];

#endif
