/*
 * edgert reference device: SMP request handling on top of the HAL.
 *
 * Groups served: OS (echo, reset, MCUmgr parameters), File (upload, status,
 * sha256/crc32 hash) and the edgert group 64 (INFO, ACTIVATE, ROLLBACK,
 * INVOKE -> NOT_SUPPORTED: this device carries no interpreter).
 */
#ifndef EDGERT_DEVICE_H
#define EDGERT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t slot_size; /* bytes per model slot; 0 splits the flash region evenly */
    uint32_t ram_bytes; /* reported in INFO as the tensor arena a firmware can give a model */
    const char *target; /* reported in INFO */
} edgert_device_config;

/* Load the model records from flash. 0 on success, negative when the flash layout does not fit. */
int edgert_device_init(const edgert_device_config *config);

/*
 * Handle one SMP packet (8-byte header + CBOR). Writes the response packet
 * into rsp and returns its length, or 0 when the packet gets no answer
 * (a response from a peer, or too short to carry a header).
 */
size_t edgert_device_handle(const uint8_t *req, size_t req_len, uint8_t *rsp, size_t rsp_cap);

/*
 * True after an OS reset request was answered. edgert_device_run() then
 * re-initialises (a soft reboot: RAM state such as an open upload is lost);
 * a port with its own loop should reset the MCU instead.
 */
int edgert_device_reset_pending(void);

/* Serve the serial link until hal_serial_read reports it gone. Returns 0 then. */
int edgert_device_run(void);

#endif /* EDGERT_DEVICE_H */
