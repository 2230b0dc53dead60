/*
 * Console output, one whole line per call. Under godwit a line is one
 * GW_HC_PUTS hypercall; elsewhere it goes to COM1 (0x3f8), polling the
 * line status register before each burst (16 bytes when the FIFO works,
 * else 1). A spinlock keeps lines from different vCPUs apart; it also owns
 * the console's own hypercall block, so printing never touches a vCPU's
 * block.
 */
#include "rt.h"

#define COM1 0x3f8
#define COM1_IER (COM1 + 1)
#define COM1_FCR (COM1 + 2)
#define COM1_IIR (COM1 + 2)
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20

static volatile uint32_t console_lock;
static bool console_godwit;
static unsigned serial_burst = 1;
static GwHcRequest console_req __attribute__((aligned(64)));

void console_init(bool godwit)
{
    console_godwit = godwit;
    if (godwit) {
        return;
    }
    outb(COM1_IER, 0x00);
    outb(COM1_FCR, 0x07); /* enable and clear the FIFOs */
    if ((inb(COM1_IIR) & 0xc0) == 0xc0) {
        serial_burst = 16;
    }
}

static void serial_write(const char *s, size_t len)
{
    while (len) {
        while (!(inb(COM1_LSR) & LSR_THRE)) {
            cpu_relax();
        }
        for (unsigned i = 0; i < serial_burst && len; i++, len--) {
            outb(COM1, (uint8_t)*s++);
        }
    }
}

void console_write(const char *s, size_t len)
{
    while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE)) {
        cpu_relax();
    }
    if (console_godwit) {
        while (len) {
            size_t n = len < GW_HC_PUTS_MAX ? len : GW_HC_PUTS_MAX;
            gw_call(&console_req, GW_HC_PUTS, (uintptr_t)s, n, 0, 0);
            s += n;
            len -= n;
        }
    } else {
        serial_write(s, len);
    }
    __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

void rt_printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = rt_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    console_write(buf, (size_t)n);
}
