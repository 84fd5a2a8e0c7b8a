/* CRC16-CCITT (XMODEM) for SMP serial frames and CRC32 (IEEE) for flash records. */
#ifndef EDGERT_CRC_H
#define EDGERT_CRC_H

#include <stddef.h>
#include <stdint.h>

/* CRC16-CCITT XMODEM: poly 0x1021, init crc (0 for a new frame), no reflection. */
uint16_t crc16_xmodem(uint16_t crc, const uint8_t *data, size_t len);
/* CRC32 IEEE 802.3 (zlib's crc32): pass 0 for a new computation. */
uint32_t crc32_ieee(uint32_t crc, const uint8_t *data, size_t len);

#endif /* EDGERT_CRC_H */
