/* clock: read the CMOS RTC and the TSC.  Output is not deterministic (it
 * shows the host's wall clock and timing), so there is no expected file. */
#include "guest.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71

#define RTC_SEC 0x00
#define RTC_MIN 0x02
#define RTC_HOUR 0x04
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_STATUS_A 0x0A
#define RTC_STATUS_B 0x0B
#define RTC_CENTURY 0x32

#define STATUS_A_UIP 0x80   /* update in progress */
#define STATUS_B_24H 0x02   /* 24-hour mode */
#define STATUS_B_BINARY 0x04 /* binary (not BCD) */

struct rtc_time {
    uint8_t sec, min, hour, day, month, year, century;
};

static uint8_t cmos_read(uint8_t reg)
{
    outb(CMOS_INDEX, reg); /* bit 7 clear: NMI stays enabled */
    return inb(CMOS_DATA);
}

static void rtc_read_raw(struct rtc_time *t)
{
    while (cmos_read(RTC_STATUS_A) & STATUS_A_UIP)
        ;
    t->sec = cmos_read(RTC_SEC);
    t->min = cmos_read(RTC_MIN);
    t->hour = cmos_read(RTC_HOUR);
    t->day = cmos_read(RTC_DAY);
    t->month = cmos_read(RTC_MONTH);
    t->year = cmos_read(RTC_YEAR);
    t->century = cmos_read(RTC_CENTURY);
}

static int rtc_same(const struct rtc_time *a, const struct rtc_time *b)
{
    return a->sec == b->sec && a->min == b->min && a->hour == b->hour &&
           a->day == b->day && a->month == b->month && a->year == b->year &&
           a->century == b->century;
}

static uint8_t bcd(uint8_t v)
{
    return (uint8_t)((v >> 4) * 10 + (v & 0x0F));
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Keeps the loop between the two RDTSCs from being optimised away. */
volatile uint32_t spin_sink;

int guest_main(uint32_t mbi)
{
    (void)mbi;
    struct rtc_time t, again;

    /* Read until two consecutive reads agree (no update in between). */
    rtc_read_raw(&t);
    for (;;) {
        rtc_read_raw(&again);
        if (rtc_same(&t, &again))
            break;
        t = again;
    }

    uint8_t status_b = cmos_read(RTC_STATUS_B);
    int pm = 0;
    if (!(status_b & STATUS_B_24H)) {
        pm = t.hour & 0x80; /* 12-hour mode: bit 7 of the hour is PM */
        t.hour &= 0x7F;
    }
    if (!(status_b & STATUS_B_BINARY)) {
        t.sec = bcd(t.sec);
        t.min = bcd(t.min);
        t.hour = bcd(t.hour);
        t.day = bcd(t.day);
        t.month = bcd(t.month);
        t.year = bcd(t.year);
        t.century = bcd(t.century);
    }
    if (!(status_b & STATUS_B_24H)) {
        if (t.hour == 12)
            t.hour = 0;
        if (pm)
            t.hour += 12;
    }
    uint32_t century = t.century ? t.century : 20;
    printk("rtc: %04u-%02u-%02u %02u:%02u:%02u\n", century * 100 + t.year,
           t.month, t.day, t.hour, t.min, t.sec);

    uint64_t t0 = rdtsc();
    for (uint32_t i = 0; i < 1000; i++)
        spin_sink += i;
    uint64_t t1 = rdtsc();
    serial_puts("tsc delta: ");
    serial_put_u64(t1 - t0);
    serial_puts("\n");
    printk("tsc monotonic: %s\n", t1 > t0 ? "yes" : "no");
    return 0;
}
