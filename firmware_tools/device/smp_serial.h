/*
 * SMP serial transport ("SMP over console", what Zephyr's UART/shell transports
 * and smpclient's SMPSerialTransport speak).
 *
 * A frame on the wire is one or more lines: 0x06 0x09 (first) or 0x04 0x14
 * (continuation), base64 text, '\n'; at most SMP_LINE_MAX bytes per line.
 * The decoded body is: length (big-endian u16, counts packet + CRC), the SMP
 * packet, CRC16-CCITT XMODEM of the packet (big-endian).
 *
 * Anything else on the link (boot logs, noise, torn lines) is ignored: a
 * marker anywhere restarts line parsing, and a bad line drops the frame.
 */
#ifndef EDGERT_SMP_SERIAL_H
#define EDGERT_SMP_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#ifndef SMP_SERIAL_BUF_SIZE
/* Decoded reassembly buffer: length + packet + CRC (advertised as MCUmgr buf_size). */
#define SMP_SERIAL_BUF_SIZE 2048
#endif

/* Longest line including the 2-byte marker and '\n' (Zephyr's console line). */
#define SMP_LINE_MAX 127
#define SMP_LINE_BODY_MAX (SMP_LINE_MAX - 3)
/* A frame whose next line does not arrive within this time is dropped. */
#define SMP_FRAME_TIMEOUT_MS 3000u
/* Largest SMP packet (header + CBOR) that fits the reassembly buffer. */
#define SMP_PACKET_MAX (SMP_SERIAL_BUF_SIZE - 4)

typedef struct {
    uint8_t line[SMP_LINE_BODY_MAX];
    size_t line_len;
    int line_kind; /* 0: outside a line, 1: first line, 2: continuation line */
    int line_bad;  /* the current line cannot be part of a frame */
    uint8_t prev;
    uint8_t frame[SMP_SERIAL_BUF_SIZE];
    size_t frame_len;
    int frame_open;
    uint32_t frame_ms;
    uint32_t dropped_frames; /* diagnostics: frames discarded (bad CRC, base64, size) */
} smp_rx;

void smp_rx_init(smp_rx *rx);
/*
 * Feed one received byte. Returns 1 and sets *packet and *packet_len (pointing
 * into rx, valid until the next call) when a complete, CRC-valid packet ends
 * with this byte; 0 otherwise.
 */
int smp_rx_feed(smp_rx *rx, uint8_t byte, uint32_t now_ms, const uint8_t **packet, size_t *packet_len);
/* Drop a partial frame that has been idle for longer than SMP_FRAME_TIMEOUT_MS. */
void smp_rx_tick(smp_rx *rx, uint32_t now_ms);

/* Frame packet into lines and send them with hal_serial_write. 0 on success. */
int smp_tx_packet(const uint8_t *packet, size_t len);

/* Base64 (RFC 4648, padded). Decode returns the byte count or -1 on invalid input / no room. */
int base64_decode(const uint8_t *text, size_t len, uint8_t *out, size_t cap);
size_t base64_encode(const uint8_t *data, size_t len, uint8_t *out);

#endif /* EDGERT_SMP_SERIAL_H */
