/* keyboard: keys through IRQ1 and PS/2 mouse packets through IRQ12, echoed
 * on COM1.  Scan code set 1 is decoded with Shift, Ctrl and Caps Lock
 * (E0-prefixed keys are reported as <E0xx>); each mouse packet prints a line
 * "mouse dx dy buttons".  'q' typed on the keyboard ends the session.
 *
 * The controller is set up by polling, with both IRQs masked: the command
 * byte is written (not read back, so a key already in the output buffer is
 * not mistaken for the reply), then the mouse gets 0xF4 (enable reporting)
 * through 0xD4; key bytes that arrive while waiting for its ACK are kept. */
#include "guest.h"

#define KBD_DATA 0x60
#define KBD_STATUS 0x64
#define STAT_OBF 0x01
#define STAT_IBF 0x02
#define STAT_AUXB 0x20

#define RING_SIZE 256u /* power of two */

/* Bytes from the IRQ handlers: bit 8 set = from the mouse. */
static volatile uint16_t ring[RING_SIZE];
static volatile uint32_t ring_head;
static volatile uint32_t ring_tail;
volatile uint32_t keys_seen;    /* key bytes received (for debuggers) */
volatile uint32_t packets_seen; /* mouse packets received */

static void push(uint16_t v)
{
    if (ring_head - ring_tail < RING_SIZE) {
        ring[ring_head % RING_SIZE] = v;
        ring_head++;
    }
}

static void wait_write(void)
{
    while (inb(KBD_STATUS) & STAT_IBF)
        ;
}

static void controller_command(uint8_t cmd)
{
    wait_write();
    outb(KBD_STATUS, cmd);
}

static void data_write(uint8_t v)
{
    wait_write();
    outb(KBD_DATA, v);
}

/* Poll until the mouse answers; keyboard bytes meanwhile go to the ring. */
static uint8_t mouse_reply(void)
{
    for (;;) {
        uint8_t status = inb(KBD_STATUS);
        if (!(status & STAT_OBF))
            continue;
        uint8_t b = inb(KBD_DATA);
        if (status & STAT_AUXB)
            return b;
        push(b);
    }
}

static void kbd_irq(struct regs *r)
{
    (void)r;
    while ((inb(KBD_STATUS) & (STAT_OBF | STAT_AUXB)) == STAT_OBF)
        push(inb(KBD_DATA));
}

static void mouse_irq(struct regs *r)
{
    (void)r;
    while ((inb(KBD_STATUS) & (STAT_OBF | STAT_AUXB)) == (STAT_OBF | STAT_AUXB))
        push(0x100 | inb(KBD_DATA));
}

static const char normal[0x3A] =
    "\0\0331234567890-=\b\tqwertyuiop[]\n\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
static const char shifted[0x3A] =
    "\0\033!@#$%^&*()_+\b\tQWERTYUIOP{}\n\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";

static int shift, ctrl, caps, e0;

/* One scan code byte; returns 1 when 'q' ends the session. */
static int key_byte(uint8_t b)
{
    keys_seen++;
    if (b == 0xE0) {
        e0 = 1;
        return 0;
    }
    int up = b & 0x80;
    uint8_t code = b & 0x7F;
    if (e0) {
        e0 = 0;
        if (code == 0x1D)
            ctrl = !up;
        if (!up)
            printk("<E0%X>", code);
        return 0;
    }
    if (code == 0x2A || code == 0x36) {
        shift = !up;
        return 0;
    }
    if (code == 0x1D) {
        ctrl = !up;
        return 0;
    }
    if (code == 0x3A) {
        if (!up)
            caps = !caps;
        return 0;
    }
    if (up || code >= sizeof normal)
        return 0;
    char c = shift ? shifted[code] : normal[code];
    if (caps && c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    else if (caps && c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    if (!c)
        return 0;
    if (c == 'q' && !ctrl)
        return 1;
    if (ctrl && c >= 'a' && c <= 'z') {
        printk("^%c", c - 'a' + 'A');
        return 0;
    }
    serial_putc(c);
    return 0;
}

static uint8_t packet[3];
static unsigned packet_len;

static void mouse_byte(uint8_t b)
{
    if (packet_len == 0 && !(b & 0x08))
        return; /* out of sync: wait for a first byte */
    packet[packet_len++] = b;
    if (packet_len < 3)
        return;
    packet_len = 0;
    packets_seen++;
    int dx = packet[1] - ((packet[0] & 0x10) ? 256 : 0);
    int dy = packet[2] - ((packet[0] & 0x20) ? 256 : 0);
    printk("mouse %d %d %d%s\n", dx, dy, packet[0] & 7,
           (packet[0] & 0xC0) ? " overflow" : "");
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    isr_register(PIC1_VECTOR + 1, kbd_irq);
    isr_register(PIC2_VECTOR + 4, mouse_irq);

    /* Translate to set 1, system flag, both interfaces and IRQs enabled. */
    controller_command(0x60);
    data_write(0x47);
    controller_command(0xA8);
    controller_command(0xD4);
    data_write(0xF4);
    uint8_t ack = mouse_reply();
    serial_puts(ack == 0xFA ? "keyboard: type, q quits\n" : "keyboard: no mouse\n");

    pic_unmask(1);
    pic_unmask(12);
    for (;;) {
        if (ring_tail == ring_head) {
            sti_hlt_cli();
            continue;
        }
        uint16_t v = ring[ring_tail % RING_SIZE];
        ring_tail++;
        if (v & 0x100)
            mouse_byte((uint8_t)v);
        else if (key_byte((uint8_t)v))
            break;
    }
    pic_mask(1);
    pic_mask(12);
    printk("\nbye: %u key bytes, %u packets\n", keys_seen, packets_seen);
    return 0;
}
