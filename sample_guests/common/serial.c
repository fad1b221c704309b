/* Polled COM1 output and a tiny printk. */
#include "guest.h"

void serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);     /* no interrupts */
    outb(COM1 + UART_LCR, 0x80);     /* DLAB on */
    outb(COM1 + 0, 0x01);            /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + UART_LCR, 0x03);     /* 8N1, DLAB off */
    outb(COM1 + UART_FCR, 0xC7);     /* FIFOs on and cleared, 14-byte trigger */
    outb(COM1 + UART_MCR, 0x0B);     /* DTR, RTS, OUT2 */
}

void serial_putc(char c)
{
    while (!(inb(COM1 + UART_LSR) & LSR_THRE))
        ;
    outb(COM1 + UART_THR, (uint8_t)c);
}

void serial_write(const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        serial_putc(s[i]);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

/* 64-bit unsigned to decimal without libgcc: divide by 10 with DIVL on
 * 32-bit halves (the high remainder is < 10, so EDX:EAX / 10 fits). */
static uint32_t divmod10_u64(uint64_t *v)
{
    uint32_t hi = (uint32_t)(*v >> 32), lo = (uint32_t)*v;
    uint32_t qhi = hi / 10, rem = hi % 10, qlo;
    __asm__("divl %4" : "=a"(qlo), "=d"(rem) : "a"(lo), "d"(rem), "rm"(10u));
    *v = ((uint64_t)qhi << 32) | qlo;
    return rem;
}

void serial_put_u64(uint64_t v)
{
    char buf[21];
    int n = 0;
    do {
        buf[n++] = (char)('0' + divmod10_u64(&v));
    } while (v);
    while (n)
        serial_putc(buf[--n]);
}

static void put_num(uint32_t v, uint32_t base, int upper, int width, char pad,
                    int neg)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[12];
    int n = 0;
    do {
        buf[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg) {
        if (pad == '0') {
            serial_putc('-');
            width--;
        } else {
            buf[n++] = '-';
        }
    }
    while (width-- > n)
        serial_putc(pad);
    while (n)
        serial_putc(buf[--n]);
}

void printk(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            serial_putc(*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            serial_puts(s ? s : "(null)");
            break;
        }
        case 'c':
            serial_putc((char)va_arg(ap, int));
            break;
        case 'd': {
            int32_t v = va_arg(ap, int32_t);
            put_num(v < 0 ? -(uint32_t)v : (uint32_t)v, 10, 0, width, pad, v < 0);
            break;
        }
        case 'u':
            put_num(va_arg(ap, uint32_t), 10, 0, width, pad, 0);
            break;
        case 'x':
            put_num(va_arg(ap, uint32_t), 16, 0, width, pad, 0);
            break;
        case 'X':
            put_num(va_arg(ap, uint32_t), 16, 1, width, pad, 0);
            break;
        case 'p':
            serial_puts("0x");
            put_num(va_arg(ap, uint32_t), 16, 0, 8, '0', 0);
            break;
        case '%':
            serial_putc('%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            serial_putc('%');
            serial_putc(*fmt);
            break;
        }
    }
    va_end(ap);
}
