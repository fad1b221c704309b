/* The minikernel's ring-3 program: the shell (MODE_SHELL) and the jobs it
 * spawns (MODE_SUM, MODE_FAULT).  It talks to the kernel only through
 * int 0x80; every process runs its own copy in its own address space. */
#include <stdint.h>
#include "syscall.h"

struct user_header {
    uint32_t magic, data, bss, end, entry;
};

extern char __user_data[], __user_bss[], __user_end[];
void user_entry(void);

__attribute__((section(".user_header"), used))
static const struct user_header header = {
    0x5553524Du /* "MRSU" */, (uint32_t)__user_data, (uint32_t)__user_bss,
    (uint32_t)__user_end, (uint32_t)user_entry,
};

static inline uint32_t sys2(uint32_t n, uint32_t a, uint32_t b)
{
    uint32_t ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(n), "b"(a), "c"(b) : "memory");
    return ret;
}
static inline uint32_t sys1(uint32_t n, uint32_t a) { return sys2(n, a, 0); }
static inline uint32_t sys0(uint32_t n) { return sys2(n, 0, 0); }

/* ---- tiny libc ------------------------------------------------------ */
static uint32_t slen(const char *s)
{
    uint32_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void puts_(const char *s) { sys2(SYS_WRITE, (uint32_t)s, slen(s)); }

static void put_hex(uint32_t v)
{
    char buf[11] = "0x";
    for (int i = 0; i < 8; i++)
        buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 0xF];
    buf[10] = 0;
    puts_(buf);
}

static void put_dec(uint32_t v)
{
    char buf[11];
    int n = 10;
    buf[n] = 0;
    do {
        buf[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    puts_(buf + n);
}

static int word_is(const char *line, const char *word, const char **rest)
{
    uint32_t n = slen(word);
    for (uint32_t i = 0; i < n; i++)
        if (line[i] != word[i])
            return 0;
    if (line[n] != 0 && line[n] != ' ')
        return 0;
    const char *p = line + n;
    while (*p == ' ')
        p++;
    *rest = p;
    return 1;
}

/* Decimal number, or -1 if there is none or it does not fit 31 bits. */
static int32_t parse_u(const char *s)
{
    uint32_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint32_t)(*s++ - '0');
        if (v > 0x7FFFFFFFu)
            return -1;
    }
    return *s == 0 || *s == ' ' ? (int32_t)v : -1;
}

/* ---- jobs ----------------------------------------------------------- */
/* A value both processes of `run` keep at the same virtual address. */
static volatile uint32_t job_result;

/* MODE_SUM: a register-only loop of `turns` steps (xorshift32 mixed into a sum). */
static uint32_t sum_job(uint32_t seed, uint32_t turns)
{
    uint32_t x = seed, sum = 0;
    for (uint32_t i = 0; i < turns; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        sum += x ^ i;
    }
    job_result = sum;
    return sum;
}

/* `crc N`: the standard CRC-32 (bitwise, no table) of a 4 KiB xorshift32
 * buffer repeated N times, i.e. zlib.crc32(buf * N), with two system calls a
 * pass (getpid and uptime) so that the kernel entry path is exercised too. */
static uint32_t crc_buf[1024];

static uint32_t crc_job(uint32_t passes)
{
    uint32_t x = 0x2545F491u;
    for (int i = 0; i < 1024; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        crc_buf[i] = x;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (uint32_t p = 0; p < passes; p++) {
        const uint8_t *b = (const uint8_t *)crc_buf;
        for (int i = 0; i < 4096; i++) {
            crc ^= b[i];
            for (int k = 0; k < 8; k++)
                crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1u));
        }
        sys0(SYS_GETPID);
        sys0(SYS_UPTIME);
    }
    return ~crc;
}

/* ---- shell ---------------------------------------------------------- */
static void cmd_run(void)
{
    uint32_t turns = 2000000;
    uint32_t pid = sys2(SYS_SPAWN, MODE_SUM, turns);
    if (pid == (uint32_t)-1) {
        puts_("run: no free process slot\n");
        return;
    }
    uint32_t before = sys1(SYS_INFO, INFO_PREEMPTIONS);
    uint32_t mine = sum_job(1, turns);
    uint32_t theirs = sys1(SYS_WAIT, pid);
    uint32_t after = sys1(SYS_INFO, INFO_PREEMPTIONS);
    puts_("run: pid ");
    put_dec(sys0(SYS_GETPID));
    puts_(" sum ");
    put_hex(mine);
    puts_(", pid ");
    put_dec(pid);
    puts_(" sum ");
    put_hex(theirs);
    puts_("\nrun: isolated ");
    puts_(job_result == mine ? "yes" : "NO");
    puts_(", preempted ");
    puts_(after - before >= 2 ? "yes\n" : "NO\n");
}

static void cmd_crc(const char *arg)
{
    int32_t n = parse_u(arg);
    if (n < 0) {
        puts_("usage: crc N\n");
        return;
    }
    uint32_t crc = crc_job((uint32_t)n);
    puts_("crc ");
    put_dec((uint32_t)n);
    puts_(": ");
    put_hex(crc);
    puts_("\n");
}

static uint8_t sector[512];

/* Sector 0 of the IDE slave: "MINIDISK" then a 32-bit counter (little endian)
 * that each `disk` increments; a sector without the magic starts at 0. */
static void cmd_disk(void)
{
    static const char magic[8] = "MINIDISK";
    if (sys2(SYS_DISK_READ, 0, (uint32_t)sector) != 0) {
        puts_("disk: read failed\n");
        return;
    }
    uint32_t *counter = (uint32_t *)(sector + 8);
    int ok = 1;
    for (int i = 0; i < 8; i++)
        ok &= sector[i] == (uint8_t)magic[i];
    if (!ok) {
        for (int i = 0; i < 8; i++)
            sector[i] = (uint8_t)magic[i];
        *counter = 0;
    }
    uint32_t value = *counter + 1;
    *counter = value;
    if (sys2(SYS_DISK_WRITE, 0, (uint32_t)sector) != 0) {
        puts_("disk: write failed\n");
        return;
    }
    *counter = 0;
    if (sys2(SYS_DISK_READ, 0, (uint32_t)sector) != 0 || *counter != value) {
        puts_("disk: read back failed\n");
        return;
    }
    puts_("disk: counter ");
    put_dec(value);
    puts_("\n");
}

static void cmd_key(void)
{
    char line[80];
    puts_("key: type a line on the keyboard\n");
    uint32_t n = sys2(SYS_KEYLINE, (uint32_t)line, sizeof(line) - 1);
    if (n == (uint32_t)-1) {
        puts_("key: no keyboard\n");
        return;
    }
    line[n] = 0;
    puts_("key: got '");
    puts_(line);
    puts_("'\n");
}

static void cmd_fault(void)
{
    uint32_t pid = sys2(SYS_SPAWN, MODE_FAULT, 0);
    if (pid == (uint32_t)-1) {
        puts_("fault: no free process slot\n");
        return;
    }
    uint32_t status = sys1(SYS_WAIT, pid);
    puts_("fault: pid ");
    put_dec(pid);
    puts_(" exited with status ");
    put_hex(status);
    puts_("\n");
}

static void cmd_help(void)
{
    puts_("commands:\n"
          "  help      this list\n"
          "  ps        the process table\n"
          "  run       two ring-3 processes share the CPU (timer preemption)\n"
          "  crc N     CRC-32 of a 4 KiB buffer N times (2 syscalls a pass)\n"
          "  disk      increment the counter in sector 0 of the IDE slave\n"
          "  key       read a line from the PS/2 keyboard\n"
          "  fault     a process stores to an unmapped page and is killed\n"
          "  uptime    LAPIC timer ticks since boot\n"
          "  exit [N]  stop the machine with exit code N (default 0)\n");
}

static void shell(void)
{
    char line[128];
    puts_("minikernel shell, pid ");
    put_dec(sys0(SYS_GETPID));
    puts_(": type help\n");
    for (;;) {
        puts_("$ ");
        uint32_t n = sys2(SYS_READLINE, (uint32_t)line, sizeof(line) - 1);
        line[n] = 0;
        const char *p = line, *rest;
        while (*p == ' ')
            p++;
        if (*p == 0)
            continue;
        if (word_is(p, "help", &rest))
            cmd_help();
        else if (word_is(p, "ps", &rest))
            sys0(SYS_PS);
        else if (word_is(p, "run", &rest))
            cmd_run();
        else if (word_is(p, "crc", &rest))
            cmd_crc(rest);
        else if (word_is(p, "disk", &rest))
            cmd_disk();
        else if (word_is(p, "key", &rest))
            cmd_key();
        else if (word_is(p, "fault", &rest))
            cmd_fault();
        else if (word_is(p, "uptime", &rest)) {
            puts_("uptime: ");
            put_dec(sys0(SYS_UPTIME));
            puts_(" ticks\n");
        } else if (word_is(p, "exit", &rest)) {
            int32_t code = *rest ? parse_u(rest) : 0;
            if (code < 0 || code > 255) {
                puts_("usage: exit [0-255]\n");
                continue;
            }
            sys1(SYS_HALT, (uint32_t)code);
        } else {
            puts_("unknown command: ");
            puts_(p);
            puts_("\n");
        }
    }
}

/* Every process starts here with the mode in EAX and its argument in EBX. */
uint32_t user_main(uint32_t mode, uint32_t arg);
uint32_t user_main(uint32_t mode, uint32_t arg)
{
    switch (mode) {
    case MODE_SHELL:
        shell();
        return 0;
    case MODE_SUM:
        return sum_job(sys0(SYS_GETPID), arg);
    case MODE_FAULT:
        *(volatile uint32_t *)USER_UNMAPPED = 0xDEAD;
        return 1;
    default:
        return 2;
    }
}

__asm__(".text\n"
        ".globl user_entry\n"
        "user_entry:\n"
        "    pushl %ebx\n"
        "    pushl %eax\n"
        "    call user_main\n"
        "    movl %eax, %ebx\n"
        "    movl $" "5" ", %eax\n" /* SYS_EXIT */
        "    int $0x80\n"
        "    ud2\n");
