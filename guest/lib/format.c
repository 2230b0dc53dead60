/*
 * A small vsnprintf: %d %i %u %x %X %s %c %p %%, flags '0' and '-', a
 * field width (digits or '*'), and the length modifiers l, ll, z.
 * Always NUL-terminates; returns the number of characters stored.
 */
#include "rt.h"

typedef struct Out {
    char *buf;
    size_t size, len;
} Out;

static void out_char(Out *o, char ch)
{
    if (o->len + 1 < o->size) {
        o->buf[o->len++] = ch;
    }
}

static void out_padded(Out *o, const char *s, size_t n, unsigned width,
                       bool left, char pad)
{
    size_t fill = width > n ? width - n : 0;

    if (!left) {
        /* Zero padding goes after a sign. */
        if (pad == '0' && n && *s == '-') {
            out_char(o, *s++);
            n--;
        }
        while (fill--) {
            out_char(o, pad);
        }
        fill = 0;
    }
    while (n--) {
        out_char(o, *s++);
    }
    while (fill--) {
        out_char(o, ' ');
    }
}

static size_t utoa(char *tmp, uint64_t v, unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char rev[24];
    size_t n = 0, i;

    do {
        rev[n++] = digits[v % base];
        v /= base;
    } while (v);
    for (i = 0; i < n; i++) {
        tmp[i] = rev[n - 1 - i];
    }
    return n;
}

int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    Out o = {buf, size, 0};

    for (; *fmt; fmt++) {
        char tmp[24], pad = ' ';
        bool left = false;
        unsigned width = 0, lng = 0;
        size_t n;

        if (*fmt != '%') {
            out_char(&o, *fmt);
            continue;
        }
        fmt++;
        for (;; fmt++) {
            if (*fmt == '0') {
                pad = '0';
            } else if (*fmt == '-') {
                left = true;
            } else {
                break;
            }
        }
        if (*fmt == '*') {
            width = va_arg(ap, int);
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
            n = 0;
            if (v < 0) {
                tmp[n++] = '-';
            }
            n += utoa(tmp + n, u, 10, false);
            out_padded(&o, tmp, n, width, left, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            n = utoa(tmp, v, *fmt == 'u' ? 10 : 16, *fmt == 'X');
            out_padded(&o, tmp, n, width, left, pad);
            break;
        }
        case 'p':
            tmp[0] = '0';
            tmp[1] = 'x';
            n = 2 + utoa(tmp + 2, (uintptr_t)va_arg(ap, void *), 16, false);
            out_padded(&o, tmp, n, width, left, pad);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) {
                s = "(null)";
            }
            out_padded(&o, s, strlen(s), width, left, ' ');
            break;
        }
        case 'c':
            tmp[0] = (char)va_arg(ap, int);
            out_padded(&o, tmp, 1, width, left, ' ');
            break;
        case '%':
            out_char(&o, '%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            out_char(&o, '%');
            out_char(&o, *fmt);
            break;
        }
    }
    if (size) {
        o.buf[o.len] = '\0';
    }
    return (int)o.len;
}

int rt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = rt_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
