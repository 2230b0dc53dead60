/*
 * COM1 (0x3f8): a 16550 UART reduced to what an output-only console needs.
 * Transmit is always ready; bytes written to THR go to the chardev; the
 * guest-settable registers keep their values (and migrate).
 */
#include <glib.h>

#include "godwit/hw.h"
#include "godwit/ioport.h"
#include "migration/register.h"
#include "migration/vmstate.h"

enum {
    UART_RBR_THR = 0, /* DLL when DLAB */
    UART_IER = 1,     /* DLM when DLAB */
    UART_IIR_FCR = 2,
    UART_LCR = 3,
    UART_MCR = 4,
    UART_LSR = 5,
    UART_MSR = 6,
    UART_SCR = 7,
};

#define UART_LCR_DLAB 0x80
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IIR_NO_INT 0x01
#define UART_MSR_DCD_DSR_CTS 0xb0

static struct {
    GMutex lock;
    SerialState st;
    Chardev *chr;
} serial;

static uint32_t serial_read(void *opaque, CPUState *cpu, uint16_t port,
                            unsigned size)
{
    SerialState *st = &serial.st;
    uint32_t v = 0;

    g_mutex_lock(&serial.lock);
    switch (port - SERIAL_COM1_BASE) {
    case UART_RBR_THR:
        v = (st->lcr & UART_LCR_DLAB) ? st->dll : 0; /* no input */
        break;
    case UART_IER:
        v = (st->lcr & UART_LCR_DLAB) ? st->dlm : st->ier;
        break;
    case UART_IIR_FCR:
        v = UART_IIR_NO_INT;
        break;
    case UART_LCR:
        v = st->lcr;
        break;
    case UART_MCR:
        v = st->mcr;
        break;
    case UART_LSR:
        v = UART_LSR_THRE | UART_LSR_TEMT;
        break;
    case UART_MSR:
        v = UART_MSR_DCD_DSR_CTS;
        break;
    case UART_SCR:
        v = st->scr;
        break;
    }
    g_mutex_unlock(&serial.lock);
    return v;
}

static void serial_write(void *opaque, CPUState *cpu, uint16_t port,
                         unsigned size, uint32_t value)
{
    SerialState *st = &serial.st;
    uint8_t b = value;
    bool out = false;

    g_mutex_lock(&serial.lock);
    switch (port - SERIAL_COM1_BASE) {
    case UART_RBR_THR:
        if (st->lcr & UART_LCR_DLAB) {
            st->dll = b;
        } else {
            out = true;
        }
        break;
    case UART_IER:
        if (st->lcr & UART_LCR_DLAB) {
            st->dlm = b;
        } else {
            st->ier = b & 0x0f;
        }
        break;
    case UART_LCR:
        st->lcr = b;
        break;
    case UART_MCR:
        st->mcr = b & 0x1f;
        break;
    case UART_SCR:
        st->scr = b;
        break;
    default:
        break; /* FCR, LSR, MSR: nothing to keep */
    }
    g_mutex_unlock(&serial.lock);
    if (out) {
        chardev_write(serial.chr, &b, 1);
    }
}

static const IOPortOps serial_ops = {
    .name = "serial",
    .read = serial_read,
    .write = serial_write,
};

void serial_init(Chardev *chr)
{
    serial.chr = chr;
    serial.st = (SerialState){.lcr = 0x03}; /* 8N1 after reset */
    ioport_register(SERIAL_COM1_BASE, 8, &serial_ops, NULL);
}

void serial_get_state(SerialState *st)
{
    g_mutex_lock(&serial.lock);
    *st = serial.st;
    g_mutex_unlock(&serial.lock);
}

void serial_set_state(const SerialState *st)
{
    g_mutex_lock(&serial.lock);
    serial.st = *st;
    g_mutex_unlock(&serial.lock);
}

/* ---- migration ----------------------------------------------------------- */

static const VMStateField serial_fields[] = {
    VMSTATE_UINT8("ier", SerialState, ier),
    VMSTATE_UINT8("lcr", SerialState, lcr),
    VMSTATE_UINT8("mcr", SerialState, mcr),
    VMSTATE_UINT8("scr", SerialState, scr),
    VMSTATE_UINT8("dll", SerialState, dll),
    VMSTATE_UINT8("dlm", SerialState, dlm),
    VMSTATE_END,
};

static bool serial_save(QEMUFile *f, void *opaque, GError **errp)
{
    SerialState st;

    serial_get_state(&st);
    vmstate_save(f, serial_fields, &st);
    return qemu_file_check(f, errp);
}

static bool serial_load(QEMUFile *f, void *opaque, uint32_t version_id,
                        GError **errp)
{
    SerialState st;

    if (!vmstate_load(f, serial_fields, &st, errp)) {
        return false;
    }
    serial_set_state(&st);
    return true;
}

static void serial_describe(JsonBuilder *b, void *opaque)
{
    SerialState st;

    serial_get_state(&st);
    vmstate_describe(b, serial_fields, &st);
}

static const SaveStateHandler serial_handler = {
    .idstr = "serial",
    .version_id = 1,
    .save_state = serial_save,
    .load_state = serial_load,
    .describe = serial_describe,
};

void serial_register_vmstate(void)
{
    register_savevm(&serial_handler, 0, NULL);
}
