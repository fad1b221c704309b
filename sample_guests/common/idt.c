/* IDT setup and the C-side interrupt dispatcher. */
#include "guest.h"

struct idt_entry {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t zero;
    uint8_t type;
    uint16_t off_hi;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(8)));
static isr_handler_t handlers[256];

void idt_set_gate(uint8_t vec, uint32_t handler, uint16_t sel, uint8_t type)
{
    idt[vec].off_lo = (uint16_t)handler;
    idt[vec].sel = sel;
    idt[vec].zero = 0;
    idt[vec].type = type;
    idt[vec].off_hi = (uint16_t)(handler >> 16);
}

void idt_init(void)
{
    for (int v = 0; v < 48; v++)
        idt_set_gate((uint8_t)v, isr_stub_table[v], 0x08, GATE_INT);
    struct gdt_ptr p = { sizeof(idt) - 1, (uint32_t)idt };
    __asm__ volatile("lidt %0" : : "m"(p));
}

void isr_register(uint8_t vec, isr_handler_t h)
{
    handlers[vec] = h;
}

void isr_dispatch(struct regs *r)
{
    isr_handler_t h = handlers[r->vector & 0xFF];
    if (h) {
        h(r);
    } else if (r->vector == PIC1_VECTOR + 7 || r->vector == PIC2_VECTOR + 7) {
        return; /* spurious IRQ 7/15: no EOI for the (absent) line */
    } else {
        printk("unexpected interrupt %u err 0x%x at %x:%p\n", r->vector,
               r->err, r->cs, r->eip);
        guest_exit(0x7F);
    }
    if (r->vector >= PIC1_VECTOR && r->vector < PIC2_VECTOR + 8)
        pic_eoi((uint8_t)(r->vector - PIC1_VECTOR));
}
