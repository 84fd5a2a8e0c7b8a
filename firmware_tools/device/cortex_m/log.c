/*
 * edgert Cortex-M port: TFLM's log hooks (DebugLog, DebugVsnprintf) on the UART.
 *
 * newlib's vsnprintf can reach malloc (its float conversion allocates), and
 * this device has no heap, so a small formatter serves TFLM's messages:
 * %d %i %u %x %X %p %c %s %%, the l/ll/z/h length modifiers and %f (fixed, 4 decimals).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

typedef struct {
    char *buf;
    size_t cap;
    size_t len; /* would-be length, as vsnprintf reports it */
} out_t;

static void put(out_t *o, char c)
{
    if (o->len + 1 < o->cap) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void put_str(out_t *o, const char *s)
{
    if (s == NULL) {
        s = "(null)";
    }
    while (*s) {
        put(o, *s++);
    }
}

static void put_uint(out_t *o, unsigned long long v, unsigned base, int upper, int width, char pad)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0 && n < (int)sizeof(tmp));
    while (width-- > n) {
        put(o, pad);
    }
    while (n > 0) {
        put(o, tmp[--n]);
    }
}

int port_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    out_t o = {buf, cap, 0};

    while (*fmt) {
        int lng = 0;
        int width = 0;
        char pad = ' ';
        char c = *fmt++;
        if (c != '%') {
            put(&o, c);
            continue;
        }
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        if (*fmt == '.') { /* precision: accepted, ignored (fixed 4 decimals for %f) */
            fmt++;
            while (*fmt >= '0' && *fmt <= '9') {
                fmt++;
            }
        }
        for (;;) {
            if (*fmt == 'l') {
                lng++;
            } else if (*fmt == 'z') {
                lng = sizeof(size_t) > sizeof(long) ? 2 : 1;
            } else if (*fmt != 'h') {
                break;
            }
            fmt++;
        }
        c = *fmt ? *fmt++ : '\0';
        switch (c) {
        case 'd':
        case 'i': {
            long long v = lng >= 2 ? va_arg(ap, long long) : lng == 1 ? va_arg(ap, long) : va_arg(ap, int);
            unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            if (v < 0) {
                put(&o, '-');
            }
            put_uint(&o, mag, 10, 0, width, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v = lng >= 2 ? va_arg(ap, unsigned long long)
                                   : lng == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
            put_uint(&o, v, c == 'u' ? 10u : 16u, c == 'X', width, pad);
            break;
        }
        case 'p':
            put_str(&o, "0x");
            put_uint(&o, (uintptr_t)va_arg(ap, void *), 16, 0, 8, '0');
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 's':
            put_str(&o, va_arg(ap, const char *));
            break;
        case 'f':
        case 'g':
        case 'e': {
            double v = va_arg(ap, double);
            unsigned long long whole;
            if (v != v) {
                put_str(&o, "nan");
                break;
            }
            if (v < 0) {
                put(&o, '-');
                v = -v;
            }
            if (v > 1e18) {
                put_str(&o, "inf");
                break;
            }
            whole = (unsigned long long)v;
            put_uint(&o, whole, 10, 0, 0, ' ');
            put(&o, '.');
            put_uint(&o, (unsigned long long)((v - (double)whole) * 10000.0), 10, 0, 4, '0');
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '%');
            if (c) {
                put(&o, c);
            }
            break;
        }
    }
    if (cap > 0) {
        o.buf[o.len < cap ? o.len : cap - 1] = '\0';
    }
    return (int)o.len;
}

int DebugVsnprintf(char *buffer, size_t buf_size, const char *format, va_list vlist)
{
    return port_vsnprintf(buffer, buf_size, format, vlist);
}

void DebugLog(const char *format, va_list args)
{
    char line[160];
    port_vsnprintf(line, sizeof(line), format, args);
    port_log(line);
}
