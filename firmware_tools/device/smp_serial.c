/* SMP serial framing: line reassembly on receive, line splitting on send. */
#include "smp_serial.h"

#include <string.h>

#include "crc.h"
#include "edgert_hal.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int base64_decode(const uint8_t *text, size_t len, uint8_t *out, size_t cap)
{
    size_t i;
    size_t n = 0;

    if (len % 4 != 0) {
        return -1;
    }
    for (i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        size_t k;
        uint32_t bits;

        for (k = 0; k < 4; k++) {
            if (text[i + k] == '=') {
                /* Padding only in the last quantum, only in its last two places, and only trailing. */
                if (i + 4 != len || k < 2) {
                    return -1;
                }
                pad++;
                v[k] = 0;
            } else {
                if (pad) {
                    return -1;
                }
                v[k] = b64_value(text[i + k]);
                if (v[k] < 0) {
                    return -1;
                }
            }
        }
        bits = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        if ((size_t)(3 - pad) > cap - n) {
            return -1;
        }
        out[n++] = (uint8_t)(bits >> 16);
        if (pad < 2) {
            out[n++] = (uint8_t)(bits >> 8);
        }
        if (pad < 1) {
            out[n++] = (uint8_t)bits;
        }
    }
    return (int)n;
}

size_t base64_encode(const uint8_t *data, size_t len, uint8_t *out)
{
    size_t i;
    size_t n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t bits = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8) | data[i + 2];
        out[n++] = (uint8_t)b64_alphabet[(bits >> 18) & 63];
        out[n++] = (uint8_t)b64_alphabet[(bits >> 12) & 63];
        out[n++] = (uint8_t)b64_alphabet[(bits >> 6) & 63];
        out[n++] = (uint8_t)b64_alphabet[bits & 63];
    }
    if (i < len) {
        uint32_t bits = (uint32_t)data[i] << 16;
        if (i + 1 < len) {
            bits |= (uint32_t)data[i + 1] << 8;
        }
        out[n++] = (uint8_t)b64_alphabet[(bits >> 18) & 63];
        out[n++] = (uint8_t)b64_alphabet[(bits >> 12) & 63];
        out[n++] = (i + 1 < len) ? (uint8_t)b64_alphabet[(bits >> 6) & 63] : (uint8_t)'=';
        out[n++] = '=';
    }
    return n;
}

void smp_rx_init(smp_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
}

static void drop_frame(smp_rx *rx)
{
    if (rx->frame_open) {
        rx->dropped_frames++;
    }
    rx->frame_open = 0;
    rx->frame_len = 0;
}

/* A complete line arrived: decode it into the frame; 1 when the frame is complete and valid. */
static int end_line(smp_rx *rx, uint32_t now_ms, const uint8_t **packet, size_t *packet_len)
{
    int n;
    size_t total;
    uint16_t want_crc;

    if (rx->line_kind == 1) {
        drop_frame(rx);
        rx->frame_open = 1;
    } else if (!rx->frame_open) {
        return 0; /* a continuation with no first line: noise */
    }
    if (rx->line_bad) {
        drop_frame(rx);
        return 0;
    }
    n = base64_decode(rx->line, rx->line_len, rx->frame + rx->frame_len, sizeof(rx->frame) - rx->frame_len);
    if (n < 0) {
        drop_frame(rx);
        return 0;
    }
    rx->frame_len += (size_t)n;
    rx->frame_ms = now_ms;
    if (rx->frame_len < 2) {
        return 0;
    }
    total = 2u + (((size_t)rx->frame[0] << 8) | rx->frame[1]);
    /* The length covers an 8-byte SMP header and the CRC at least, and must fit the buffer. */
    if (total < 2u + 8u + 2u || total > sizeof(rx->frame) || rx->frame_len > total) {
        drop_frame(rx);
        return 0;
    }
    if (rx->frame_len < total) {
        return 0;
    }
    want_crc = (uint16_t)(((uint16_t)rx->frame[total - 2] << 8) | rx->frame[total - 1]);
    if (crc16_xmodem(0, rx->frame + 2, total - 4) != want_crc) {
        drop_frame(rx);
        return 0;
    }
    rx->frame_open = 0;
    rx->frame_len = 0;
    *packet = rx->frame + 2;
    *packet_len = total - 4;
    return 1;
}

int smp_rx_feed(smp_rx *rx, uint8_t byte, uint32_t now_ms, const uint8_t **packet, size_t *packet_len)
{
    uint8_t prev = rx->prev;

    rx->prev = byte;
    /* Base64 text never contains 0x04 or 0x06, so a marker pair starts a new line wherever it appears. */
    if ((prev == 0x06 && byte == 0x09) || (prev == 0x04 && byte == 0x14)) {
        if (rx->line_kind == 2 || (rx->line_kind == 1 && rx->line_len > 0)) {
            drop_frame(rx); /* the previous line of this frame was cut short */
        }
        rx->line_kind = (byte == 0x09) ? 1 : 2;
        rx->line_len = 0;
        rx->line_bad = 0;
        rx->prev = 0; /* the marker's bytes must not pair with what follows */
        return 0;
    }
    if (rx->line_kind == 0) {
        return 0;
    }
    if (prev == 0x06 || prev == 0x04) {
        rx->line_bad = 1; /* a lone 0x04/0x06 inside a line: not base64 */
    }
    if (byte == '\n') {
        int done = end_line(rx, now_ms, packet, packet_len);
        rx->line_kind = 0;
        rx->line_len = 0;
        return done;
    }
    if (byte == '\r') {
        return 0;
    }
    if (byte == 0x06 || byte == 0x04) {
        return 0; /* may be the first half of a marker; judged with the next byte */
    }
    if (rx->line_len >= sizeof(rx->line) || (byte != '=' && b64_value(byte) < 0)) {
        rx->line_bad = 1;
        return 0;
    }
    rx->line[rx->line_len++] = byte;
    return 0;
}

void smp_rx_tick(smp_rx *rx, uint32_t now_ms)
{
    if (rx->frame_open && (uint32_t)(now_ms - rx->frame_ms) > SMP_FRAME_TIMEOUT_MS) {
        drop_frame(rx);
        rx->line_kind = 0;
        rx->line_len = 0;
    }
}

int smp_tx_packet(const uint8_t *packet, size_t len)
{
    /* 93 decoded bytes per line = 124 base64 characters: each line decodes on its own. */
    enum { CHUNK = (SMP_LINE_BODY_MAX / 4) * 3 };
    uint8_t part[CHUNK];
    uint8_t line[SMP_LINE_MAX];
    uint8_t head[2];
    uint8_t tail[2];
    size_t total = len + 4;
    size_t off;
    uint16_t crc;

    if (total > SMP_SERIAL_BUF_SIZE) {
        return -1;
    }
    crc = crc16_xmodem(0, packet, len);
    head[0] = (uint8_t)((len + 2) >> 8);
    head[1] = (uint8_t)(len + 2);
    tail[0] = (uint8_t)(crc >> 8);
    tail[1] = (uint8_t)crc;
    /* The frame is length | packet | CRC; gather each line's slice of it instead of copying the whole frame. */
    for (off = 0; off < total; off += CHUNK) {
        size_t take = total - off < CHUNK ? total - off : CHUNK;
        size_t i;
        size_t n;

        for (i = 0; i < take; i++) {
            size_t at = off + i;
            part[i] = at < 2 ? head[at] : at < 2 + len ? packet[at - 2] : tail[at - 2 - len];
        }
        line[0] = off == 0 ? 0x06 : 0x04;
        line[1] = off == 0 ? 0x09 : 0x14;
        n = base64_encode(part, take, line + 2);
        line[2 + n] = '\n';
        if (hal_serial_write(line, n + 3) != 0) {
            return -1;
        }
    }
    return 0;
}
