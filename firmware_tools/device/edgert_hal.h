/*
 * edgert reference device: the hardware abstraction layer a port implements.
 *
 * The device core calls only these functions. A port provides them for its
 * board (a UART and an internal or external NOR flash region); hal_posix.c is
 * the POSIX port used by the tests (file-backed flash, a pty or a tty).
 *
 * Flash follows NOR rules: erase sets bytes to 0xFF in whole sectors, a write
 * can only clear bits. The region handed to the core starts at offset 0.
 */
#ifndef EDGERT_HAL_H
#define EDGERT_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Size of the flash region in bytes (a multiple of the sector size). */
uint32_t hal_flash_size(void);
/* Erase unit in bytes (a power of two). */
uint32_t hal_flash_sector_size(void);
/* Read len bytes at off into buf. 0 on success, negative on error. */
int hal_flash_read(uint32_t off, void *buf, uint32_t len);
/* Program len bytes at off (previously erased). 0 on success, negative on error. */
int hal_flash_write(uint32_t off, const void *buf, uint32_t len);
/* Erase [off, off + len); both sector-aligned. 0 on success, negative on error. */
int hal_flash_erase(uint32_t off, uint32_t len);
/*
 * A read-only pointer to the flash bytes [off, off + len) when the flash is
 * memory-mapped (or mirrored in RAM), NULL otherwise (or out of range). The
 * core hands the active model to the runner through it; the pointer stays
 * valid until the next hal_flash_write/erase of those bytes, and the core
 * unloads the runner before it lets anything change them.
 */
const uint8_t *hal_flash_map(uint32_t off, uint32_t len);

/*
 * Read up to cap bytes, waiting at most timeout_ms for the first one.
 * Returns the count (0 on timeout) or a negative value when the link is gone.
 */
int hal_serial_read(uint8_t *buf, size_t cap, uint32_t timeout_ms);
/* Write all len bytes. 0 on success, negative on error. */
int hal_serial_write(const uint8_t *buf, size_t len);

/* A millisecond clock (wraps; only differences are used). */
uint32_t hal_time_ms(void);

#endif /* EDGERT_HAL_H */
