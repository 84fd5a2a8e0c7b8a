/* Power-safe A/B model storage; the invariants are described in model_store.h. */
#include "model_store.h"

#include <string.h>

#include "crc.h"
#include "edgert_hal.h"
#include "edgert_protocol.h"

#define RECORD_MAGIC 0x52474445u /* "EDGR" little-endian */
#define RECORD_FORMAT 1u
#define ENTRY_SIZE 88u
#define RECORD_CRC_OFFSET (12u + 2u * ENTRY_SIZE)
#define NO_AREA (-1)

static struct {
    uint32_t sector;
    uint32_t slot_size;
    uint32_t seq;
    int area; /* area holding the record in force, NO_AREA when flash has none */
    store_model active;
    store_model previous;
} g_store;

static struct {
    int open;
    uint8_t slot;
    uint32_t declared;
    uint32_t held;
    uint32_t erased; /* bytes of the slot erased since the upload began */
} g_stage;

static uint8_t g_io[256]; /* flash read buffer for digests */

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t slot_base(uint8_t slot)
{
    return 2u * g_store.sector + (uint32_t)slot * g_store.slot_size;
}

uint32_t store_slot_offset(uint8_t slot)
{
    return slot_base(slot);
}

static void encode_entry(uint8_t *p, const store_model *m)
{
    memset(p, 0, ENTRY_SIZE);
    if (!m->valid) {
        return;
    }
    p[0] = 1;
    p[1] = m->slot;
    p[2] = m->name_len;
    put_le32(p + 4, m->size);
    memcpy(p + 8, m->sha, SHA256_DIGEST_SIZE);
    memcpy(p + 40, m->name, m->name_len);
}

/* 0 when the entry is well-formed (a CRC-valid record from a buggy writer must still not be trusted). */
static int decode_entry(const uint8_t *p, store_model *m)
{
    memset(m, 0, sizeof(*m));
    if (p[0] == 0) {
        return 0;
    }
    if (p[0] != 1 || p[1] > 1 || p[2] > STORE_NAME_MAX) {
        return -1;
    }
    m->valid = 1;
    m->slot = p[1];
    m->name_len = p[2];
    m->size = get_le32(p + 4);
    memcpy(m->sha, p + 8, SHA256_DIGEST_SIZE);
    memcpy(m->name, p + 40, m->name_len);
    if (m->size == 0 || m->size > g_store.slot_size) {
        return -1;
    }
    return 0;
}

static int read_record(int area, uint32_t *seq, store_model *active, store_model *previous)
{
    uint8_t rec[STORE_RECORD_SIZE];

    if (hal_flash_read((uint32_t)area * g_store.sector, rec, sizeof(rec)) != 0) {
        return -1;
    }
    if (get_le32(rec) != RECORD_MAGIC || get_le32(rec + 4) != RECORD_FORMAT ||
        crc32_ieee(0, rec, RECORD_CRC_OFFSET) != get_le32(rec + RECORD_CRC_OFFSET)) {
        return -1;
    }
    *seq = get_le32(rec + 8);
    if (decode_entry(rec + 12, active) != 0 || decode_entry(rec + 12 + ENTRY_SIZE, previous) != 0) {
        return -1;
    }
    if (active->valid && previous->valid && active->slot == previous->slot) {
        return -1;
    }
    return 0;
}

/* Write a new record into the area not in force; the old record stays valid until this one is complete. */
static int commit(const store_model *active, const store_model *previous)
{
    uint8_t rec[STORE_RECORD_SIZE];
    int area = g_store.area == 0 ? 1 : 0;
    uint32_t seq = g_store.seq + 1u;

    memset(rec, 0xff, sizeof(rec));
    put_le32(rec, RECORD_MAGIC);
    put_le32(rec + 4, RECORD_FORMAT);
    put_le32(rec + 8, seq);
    encode_entry(rec + 12, active);
    encode_entry(rec + 12 + ENTRY_SIZE, previous);
    put_le32(rec + RECORD_CRC_OFFSET, crc32_ieee(0, rec, RECORD_CRC_OFFSET));
    if (hal_flash_erase((uint32_t)area * g_store.sector, g_store.sector) != 0 ||
        hal_flash_write((uint32_t)area * g_store.sector, rec, sizeof(rec)) != 0) {
        return STORE_ERR_IO;
    }
    g_store.area = area;
    g_store.seq = seq;
    g_store.active = *active;
    g_store.previous = *previous;
    return STORE_OK;
}

int store_init(uint32_t slot_size)
{
    uint32_t size = hal_flash_size();
    uint32_t sector = hal_flash_sector_size();
    int area;

    memset(&g_store, 0, sizeof(g_store));
    memset(&g_stage, 0, sizeof(g_stage));
    g_store.area = NO_AREA;
    if (sector < STORE_RECORD_SIZE || (sector & (sector - 1u)) != 0 || size < 4u * sector) {
        return STORE_ERR_LAYOUT;
    }
    if (slot_size == 0) {
        slot_size = ((size - 2u * sector) / 2u) / sector * sector;
    }
    if (slot_size == 0 || slot_size % sector != 0 || slot_size > (size - 2u * sector) / 2u) {
        return STORE_ERR_LAYOUT;
    }
    g_store.sector = sector;
    g_store.slot_size = slot_size;
    for (area = 0; area < 2; area++) {
        uint32_t seq;
        store_model active;
        store_model previous;

        if (read_record(area, &seq, &active, &previous) != 0) {
            continue;
        }
        /* Serial-number comparison, so the sequence may wrap. */
        if (g_store.area == NO_AREA || (int32_t)(seq - g_store.seq) > 0) {
            g_store.area = area;
            g_store.seq = seq;
            g_store.active = active;
            g_store.previous = previous;
        }
    }
    return STORE_OK;
}

uint32_t store_slot_size(void)
{
    return g_store.slot_size;
}

uint32_t store_sequence(void)
{
    return g_store.seq;
}

const store_model *store_active(void)
{
    return &g_store.active;
}

const store_model *store_previous(void)
{
    return &g_store.previous;
}

int store_stage_begin(uint32_t total_len)
{
    uint8_t slot = g_store.active.valid ? (uint8_t)(1u - g_store.active.slot) : 0u;

    g_stage.open = 0;
    if (total_len > g_store.slot_size) {
        return STORE_ERR_TOO_LARGE;
    }
    if (g_store.previous.valid && g_store.previous.slot == slot) {
        /* The upload overwrites the previous model: forget it first so ROLLBACK can never pick a torn slot. */
        store_model none;
        memset(&none, 0, sizeof(none));
        if (commit(&g_store.active, &none) != STORE_OK) {
            return STORE_ERR_IO;
        }
    }
    g_stage.open = 1;
    g_stage.slot = slot;
    g_stage.declared = total_len;
    g_stage.held = 0;
    g_stage.erased = 0;
    return STORE_OK;
}

int store_stage_write(uint32_t off, const uint8_t *data, uint32_t len)
{
    if (!g_stage.open || off != g_stage.held || len > g_stage.declared - off) {
        return STORE_ERR_IO;
    }
    /* Erase lazily, one sector ahead of the data, so a large slot costs no up-front erase time. */
    while (g_stage.erased < off + len) {
        if (hal_flash_erase(slot_base(g_stage.slot) + g_stage.erased, g_store.sector) != 0) {
            g_stage.open = 0;
            return STORE_ERR_IO;
        }
        g_stage.erased += g_store.sector;
    }
    if (len > 0 && hal_flash_write(slot_base(g_stage.slot) + off, data, len) != 0) {
        g_stage.open = 0;
        return STORE_ERR_IO;
    }
    g_stage.held += len;
    return STORE_OK;
}

int store_stage_is_open(void)
{
    return g_stage.open;
}

uint32_t store_stage_held(void)
{
    return g_stage.held;
}

uint32_t store_stage_declared(void)
{
    return g_stage.declared;
}

uint8_t store_stage_slot(void)
{
    return g_stage.slot;
}

typedef void (*digest_fn)(void *state, const uint8_t *data, size_t len);

static int digest_range(uint8_t slot, uint32_t off, uint32_t len, digest_fn update, void *state)
{
    if (slot > 1 || off > g_store.slot_size || len > g_store.slot_size - off) {
        return -1;
    }
    while (len > 0) {
        uint32_t take = len < sizeof(g_io) ? len : (uint32_t)sizeof(g_io);
        if (hal_flash_read(slot_base(slot) + off, g_io, take) != 0) {
            return -1;
        }
        update(state, g_io, take);
        off += take;
        len -= take;
    }
    return 0;
}

static void sha_update(void *state, const uint8_t *data, size_t len)
{
    sha256_update((sha256_ctx *)state, data, len);
}

static void crc_update(void *state, const uint8_t *data, size_t len)
{
    uint32_t *crc = (uint32_t *)state;
    *crc = crc32_ieee(*crc, data, len);
}

int store_sha256(uint8_t slot, uint32_t off, uint32_t len, uint8_t digest[SHA256_DIGEST_SIZE])
{
    sha256_ctx ctx;

    sha256_init(&ctx);
    if (digest_range(slot, off, len, sha_update, &ctx) != 0) {
        return -1;
    }
    sha256_final(&ctx, digest);
    return 0;
}

int store_crc32(uint8_t slot, uint32_t off, uint32_t len, uint32_t *crc)
{
    *crc = 0;
    return digest_range(slot, off, len, crc_update, crc);
}

int store_activate(const char *name, size_t name_len, const uint8_t sha[SHA256_DIGEST_SIZE])
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    store_model next;
    store_model prev;

    if (name_len > STORE_NAME_MAX) {
        return EDGERT_ERR_BAD_INPUT;
    }
    if (!g_stage.open || g_stage.held == 0 || g_stage.held != g_stage.declared) {
        return EDGERT_ERR_NO_MODEL;
    }
    if (store_sha256(g_stage.slot, 0, g_stage.held, digest) != 0) {
        return EDGERT_ERR_UNKNOWN;
    }
    if (memcmp(digest, sha, SHA256_DIGEST_SIZE) != 0) {
        return EDGERT_ERR_HASH_MISMATCH;
    }
    memset(&next, 0, sizeof(next));
    next.valid = 1;
    next.slot = g_stage.slot;
    next.size = g_stage.held;
    memcpy(next.sha, digest, SHA256_DIGEST_SIZE);
    next.name_len = (uint8_t)name_len;
    memcpy(next.name, name, name_len);
    prev = g_store.active;
    if (commit(&next, &prev) != STORE_OK) {
        return EDGERT_ERR_UNKNOWN;
    }
    g_stage.open = 0;
    return EDGERT_OK;
}

int store_rollback(void)
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    store_model next;
    store_model prev;

    if (!g_store.previous.valid) {
        return EDGERT_ERR_NO_PREVIOUS;
    }
    /* Only roll back to bytes that still hash to what was activated. */
    if (store_sha256(g_store.previous.slot, 0, g_store.previous.size, digest) != 0 ||
        memcmp(digest, g_store.previous.sha, SHA256_DIGEST_SIZE) != 0) {
        return EDGERT_ERR_NO_PREVIOUS;
    }
    next = g_store.previous;
    prev = g_store.active;
    if (commit(&next, &prev) != STORE_OK) {
        return EDGERT_ERR_UNKNOWN;
    }
    g_stage.open = 0;
    return EDGERT_OK;
}
