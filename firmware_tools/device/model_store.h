/*
 * Power-safe model storage on a raw flash region.
 *
 * Layout: [record area 0][record area 1][slot 0][slot 1]; each record area is
 * one sector, each slot slot_size bytes. A record names the active and the
 * previous model (slot, size, SHA-256, name) and carries a sequence number
 * and a CRC32. Records are written alternately into the two areas and boot
 * picks the valid record with the highest sequence, so a power cut at any
 * erase or write leaves either the old or the new record in force. Models are
 * only ever written into the slot no record points at as active.
 */
#ifndef EDGERT_MODEL_STORE_H
#define EDGERT_MODEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

#define STORE_NAME_MAX 48
#define STORE_RECORD_SIZE 192u

typedef struct {
    int valid;
    uint8_t slot;
    uint32_t size;
    uint8_t sha[SHA256_DIGEST_SIZE];
    uint8_t name_len;
    char name[STORE_NAME_MAX];
} store_model;

enum { STORE_OK = 0, STORE_ERR_IO = -1, STORE_ERR_LAYOUT = -2, STORE_ERR_TOO_LARGE = -3 };

/* Compute the layout (slot_size 0 = split the region evenly) and load the newest valid record. */
int store_init(uint32_t slot_size);
uint32_t store_slot_size(void);
/* Flash offset of a model slot (what hal_flash_map takes to hand the active model to the runner). */
uint32_t store_slot_offset(uint8_t slot);
uint32_t store_sequence(void);
const store_model *store_active(void);
const store_model *store_previous(void);

/* Staging: the upload target is the slot that does not hold the active model. */
int store_stage_begin(uint32_t total_len);
int store_stage_write(uint32_t off, const uint8_t *data, uint32_t len);
int store_stage_is_open(void);
uint32_t store_stage_held(void);
uint32_t store_stage_declared(void);
uint8_t store_stage_slot(void);

/* Digests over [off, off + len) of a slot. 0 on success. */
int store_sha256(uint8_t slot, uint32_t off, uint32_t len, uint8_t digest[SHA256_DIGEST_SIZE]);
int store_crc32(uint8_t slot, uint32_t off, uint32_t len, uint32_t *crc);

/* Returns an EDGERT_* code from edgert_protocol.h. */
int store_activate(const char *name, size_t name_len, const uint8_t sha[SHA256_DIGEST_SIZE]);
int store_rollback(void);

#endif /* EDGERT_MODEL_STORE_H */
