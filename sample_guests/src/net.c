/* net: an NE2000 (io 0x300, IRQ 9) host at 10.0.2.15 that answers ARP
 * requests and ICMP echo requests, counts every frame it receives in
 * `frames_received`, prints one line per frame on COM1, and exits on a UDP
 * datagram to port 7777 (or after MAX_FRAMES frames).
 *
 * Startup: reset the card, read the MAC from its PROM, set up the receive ring
 * (pages 0x46-0x7F; transmit buffer at 0x40), announce itself with a
 * gratuitous ARP (so a peer learns where it is), then sleep until IRQ 9.
 * The receive handler runs in the IRQ handler: ack ISR, then take every frame
 * between BNRY+1 and CURR (Linux-8390 convention: BNRY trails one page). */
#include "guest.h"

#define NE_BASE 0x300
#define NE_CR (NE_BASE + 0x00)
#define NE_PSTART (NE_BASE + 0x01)
#define NE_PSTOP (NE_BASE + 0x02)
#define NE_BNRY (NE_BASE + 0x03)
#define NE_TPSR (NE_BASE + 0x04)
#define NE_TBCR0 (NE_BASE + 0x05)
#define NE_TBCR1 (NE_BASE + 0x06)
#define NE_ISR (NE_BASE + 0x07)
#define NE_RSAR0 (NE_BASE + 0x08)
#define NE_RSAR1 (NE_BASE + 0x09)
#define NE_RBCR0 (NE_BASE + 0x0A)
#define NE_RBCR1 (NE_BASE + 0x0B)
#define NE_RCR (NE_BASE + 0x0C)
#define NE_TCR (NE_BASE + 0x0D)
#define NE_DCR (NE_BASE + 0x0E)
#define NE_IMR (NE_BASE + 0x0F)
#define NE_PAR0 (NE_BASE + 0x01) /* page 1 */
#define NE_CURR (NE_BASE + 0x07) /* page 1 */
#define NE_DATA (NE_BASE + 0x10)
#define NE_RESET (NE_BASE + 0x1F)
#define NE_IRQ 9

#define CR_STP 0x01
#define CR_STA 0x02
#define CR_TXP 0x04
#define CR_RREAD 0x08
#define CR_RWRITE 0x10
#define CR_NODMA 0x20
#define CR_PAGE1 0x40

#define ISR_PRX 0x01
#define ISR_PTX 0x02
#define ISR_OVW 0x10
#define ISR_RDC 0x40
#define ISR_RST 0x80

#define TX_PAGE 0x40
#define RX_START 0x46
#define RX_STOP 0x80

#define MAX_FRAMES 1000u
#define QUIT_PORT 7777

static const uint8_t my_ip[4] = { 10, 0, 2, 15 };
static uint8_t my_mac[6];

volatile uint32_t frames_received;
volatile uint32_t replies_sent;
static volatile int quit;

static uint8_t rx_buf[1536];
static uint8_t tx_buf[1536];

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* ---- remote DMA (word mode: lengths rounded up to even) ------------------ */

static void dma_setup(uint16_t addr, uint16_t len, uint8_t cmd)
{
    outb(NE_RSAR0, (uint8_t)addr);
    outb(NE_RSAR1, (uint8_t)(addr >> 8));
    outb(NE_RBCR0, (uint8_t)len);
    outb(NE_RBCR1, (uint8_t)(len >> 8));
    outb(NE_CR, cmd | CR_STA);
}

static void dma_done(void)
{
    while (!(inb(NE_ISR) & ISR_RDC))
        ;
    outb(NE_ISR, ISR_RDC);
}

static void card_read(uint16_t addr, uint8_t *dst, uint16_t len)
{
    uint16_t words = (uint16_t)((len + 1) / 2);
    dma_setup(addr, (uint16_t)(words * 2), CR_RREAD);
    for (uint16_t i = 0; i < words; i++) {
        uint16_t w = inw(NE_DATA);
        dst[2 * i] = (uint8_t)w;
        if (2 * i + 1 < len)
            dst[2 * i + 1] = (uint8_t)(w >> 8);
    }
    dma_done();
}

static void card_write(uint16_t addr, const uint8_t *src, uint16_t len)
{
    uint16_t words = (uint16_t)((len + 1) / 2);
    dma_setup(addr, (uint16_t)(words * 2), CR_RWRITE);
    for (uint16_t i = 0; i < words; i++) {
        uint16_t hi = (2 * i + 1 < len) ? src[2 * i + 1] : 0;
        outw(NE_DATA, (uint16_t)(src[2 * i] | hi << 8));
    }
    dma_done();
}

/* ---- the card -------------------------------------------------------------- */

static void ne_init(void)
{
    outb(NE_RESET, inb(NE_RESET));
    while (!(inb(NE_ISR) & ISR_RST))
        ;
    outb(NE_ISR, 0xFF);
    outb(NE_CR, CR_NODMA | CR_STP);
    outb(NE_DCR, 0x49); /* word transfers, normal mode, FIFO 8 bytes */
    outb(NE_RBCR0, 0);
    outb(NE_RBCR1, 0);
    outb(NE_RCR, 0x04); /* our address and broadcast */
    outb(NE_TCR, 0x02); /* loopback while setting up */
    outb(NE_PSTART, RX_START);
    outb(NE_PSTOP, RX_STOP);
    outb(NE_BNRY, RX_START);
    outb(NE_ISR, 0xFF);
    outb(NE_IMR, 0x00);

    uint8_t prom[32];
    card_read(0x0000, prom, sizeof(prom));
    for (int i = 0; i < 6; i++)
        my_mac[i] = prom[2 * i];

    outb(NE_CR, CR_NODMA | CR_PAGE1 | CR_STP);
    for (int i = 0; i < 6; i++)
        outb((uint16_t)(NE_PAR0 + i), my_mac[i]);
    outb(NE_CURR, RX_START + 1);
    outb(NE_CR, CR_NODMA | CR_STA);
    outb(NE_ISR, 0xFF);
    outb(NE_IMR, ISR_PRX | ISR_OVW);
    outb(NE_TCR, 0x00);
}

static void ne_send(const uint8_t *frame, uint16_t len)
{
    if (len < 60) {
        for (uint16_t i = len; i < 60; i++)
            tx_buf[i] = 0;
        len = 60;
    }
    card_write(TX_PAGE << 8, frame, len);
    outb(NE_TPSR, TX_PAGE);
    outb(NE_TBCR0, (uint8_t)len);
    outb(NE_TBCR1, (uint8_t)(len >> 8));
    outb(NE_CR, CR_NODMA | CR_TXP | CR_STA);
    while (!(inb(NE_ISR) & ISR_PTX))
        ;
    outb(NE_ISR, ISR_PTX);
    replies_sent++;
}

/* ---- protocols ----------------------------------------------------------------- */

static uint16_t ip_checksum(const uint8_t *p, uint32_t len)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i + 1 < len; i += 2)
        sum += be16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

static void print_ip(const uint8_t *ip)
{
    printk("%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
}

static void copy(uint8_t *dst, const uint8_t *src, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static int same(const uint8_t *a, const uint8_t *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* An ARP packet (request or reply) from us, to `dst_mac`/`dst_ip`. */
static void send_arp(uint16_t op, const uint8_t *dst_mac, const uint8_t *dst_ip)
{
    uint8_t *f = tx_buf;
    for (int i = 0; i < 6; i++)
        f[i] = op == 1 ? 0xFF : dst_mac[i];
    copy(f + 6, my_mac, 6);
    put_be16(f + 12, 0x0806);
    put_be16(f + 14, 1);      /* Ethernet */
    put_be16(f + 16, 0x0800); /* IPv4 */
    f[18] = 6;
    f[19] = 4;
    put_be16(f + 20, op);
    copy(f + 22, my_mac, 6);
    copy(f + 28, my_ip, 4);
    copy(f + 32, dst_mac, 6);
    copy(f + 38, dst_ip, 4);
    ne_send(f, 42);
}

static void handle_arp(const uint8_t *f, uint16_t len)
{
    if (len < 42 || be16(f + 14) != 1 || be16(f + 16) != 0x0800) {
        printk("arp: malformed\n");
        return;
    }
    uint16_t op = be16(f + 20);
    printk("arp %s ", op == 1 ? "who-has" : "reply");
    print_ip(f + 38);
    printk(" tell ");
    print_ip(f + 28);
    if (op == 1 && same(f + 38, my_ip, 4)) {
        printk(" -> reply\n");
        send_arp(2, f + 22, f + 28);
    } else {
        printk("\n");
    }
}

static void handle_ipv4(const uint8_t *f, uint16_t len)
{
    const uint8_t *ip = f + 14;
    uint32_t ihl = (uint32_t)(ip[0] & 0x0F) * 4;
    if (len < 34 || (ip[0] >> 4) != 4 || ihl < 20 || 14 + ihl > len) {
        printk("ipv4: malformed\n");
        return;
    }
    uint32_t total = be16(ip + 2);
    if (total < ihl || 14 + total > len)
        total = len - 14;
    const uint8_t *payload = ip + ihl;
    uint32_t plen = total - ihl;
    if (!same(ip + 16, my_ip, 4)) {
        printk("ipv4 to another host\n");
        return;
    }
    if (ip[9] == 17 && plen >= 8 && be16(payload + 2) == QUIT_PORT) {
        printk("udp to port %u: quit\n", QUIT_PORT);
        quit = 1;
        return;
    }
    if (ip[9] != 1 || plen < 8 || payload[0] != 8) {
        printk("ipv4 protocol %u ignored\n", ip[9]);
        return;
    }
    printk("icmp echo request from ");
    print_ip(ip + 12);
    printk(" id %u seq %u, %u bytes -> reply\n", be16(payload + 4), be16(payload + 6), plen - 8);

    uint8_t *r = tx_buf;
    uint32_t rlen = 14 + total;
    copy(r, f + 6, 6);
    copy(r + 6, my_mac, 6);
    put_be16(r + 12, 0x0800);
    copy(r + 14, ip, total);
    uint8_t *rip = r + 14;
    copy(rip + 12, my_ip, 4);
    copy(rip + 16, ip + 12, 4);
    rip[8] = 64; /* TTL */
    put_be16(rip + 10, 0);
    put_be16(rip + 10, ip_checksum(rip, ihl));
    uint8_t *icmp = rip + ihl;
    icmp[0] = 0; /* echo reply */
    put_be16(icmp + 2, 0);
    put_be16(icmp + 2, ip_checksum(icmp, plen));
    ne_send(r, (uint16_t)rlen);
}

/* One received frame: count it, say what it is, answer it. */
__attribute__((noinline)) void handle_frame(const uint8_t *f, uint16_t len)
{
    frames_received++;
    printk("frame %u: %u bytes from %02x:%02x:%02x:%02x:%02x:%02x: ", frames_received, len,
           f[6], f[7], f[8], f[9], f[10], f[11]);
    uint16_t type = be16(f + 12);
    if (type == 0x0806)
        handle_arp(f, len);
    else if (type == 0x0800)
        handle_ipv4(f, len);
    else
        printk("ethertype 0x%04x ignored\n", type);
    if (frames_received >= MAX_FRAMES)
        quit = 1;
}

/* Take every frame in the ring (BNRY + 1 .. CURR). */
static void ne_receive_all(void)
{
    for (;;) {
        outb(NE_CR, CR_NODMA | CR_PAGE1 | CR_STA);
        uint8_t curr = inb(NE_CURR);
        outb(NE_CR, CR_NODMA | CR_STA);
        uint8_t next = (uint8_t)(inb(NE_BNRY) + 1);
        if (next >= RX_STOP)
            next = RX_START;
        if (next == curr)
            return;
        uint8_t hdr[4];
        card_read((uint16_t)(next << 8), hdr, 4);
        uint16_t count = (uint16_t)(hdr[2] | hdr[3] << 8);
        uint16_t len = count >= 4 ? (uint16_t)(count - 4) : 0;
        if (hdr[1] < RX_START || hdr[1] >= RX_STOP || len < 14 || len > sizeof(rx_buf)) {
            printk("ring damaged (next %u, count %u): resetting it\n", hdr[1], count);
            outb(NE_BNRY, (uint8_t)(curr == RX_START ? RX_STOP - 1 : curr - 1));
            return;
        }
        card_read((uint16_t)((next << 8) + 4), rx_buf, len);
        handle_frame(rx_buf, len);
        outb(NE_BNRY, (uint8_t)(hdr[1] == RX_START ? RX_STOP - 1 : hdr[1] - 1));
    }
}

static void ne_irq(struct regs *r)
{
    (void)r;
    uint8_t isr = inb(NE_ISR);
    outb(NE_ISR, isr & (ISR_PRX | ISR_OVW));
    if (isr & ISR_OVW)
        printk("receive ring overflow: frames were missed\n");
    ne_receive_all();
}

int guest_main(uint32_t mbi)
{
    (void)mbi;
    idt_init();
    pic_remap();
    ne_init();
    printk("net: ne2000 at 0x%x irq %u, mac %02x:%02x:%02x:%02x:%02x:%02x, ip ", NE_BASE,
           NE_IRQ, my_mac[0], my_mac[1], my_mac[2], my_mac[3], my_mac[4], my_mac[5]);
    print_ip(my_ip);
    printk("\n");
    isr_register(PIC2_VECTOR + (NE_IRQ - 8), ne_irq);
    pic_unmask(NE_IRQ);
    send_arp(1, (const uint8_t *)"\0\0\0\0\0\0", my_ip); /* gratuitous ARP */

    while (!quit)
        sti_hlt_cli();
    pic_mask(NE_IRQ);
    printk("net done: %u frames received, %u sent\n", frames_received, replies_sent);
    return 0;
}
