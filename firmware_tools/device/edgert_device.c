/* SMP dispatch and handlers of the edgert reference device. */
#include "edgert_device.h"

#include <string.h>

#include "cbor.h"
#include "edgert_hal.h"
#include "edgert_protocol.h"
#include "edgert_runner.h"
#include "model_store.h"
#include "smp_serial.h"

/*
 * Under AddressSanitizer the bytes of the static frame buffer after the packet
 * are poisoned while a handler runs, so a read past the end of the request is
 * reported even though it stays inside the (larger) static buffer.
 */
#if defined(__SANITIZE_ADDRESS__)
#define EDGERT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGERT_ASAN 1
#endif
#endif
#ifdef EDGERT_ASAN
#include <sanitizer/asan_interface.h>
#define GUARD_BYTES(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNGUARD_BYTES(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define GUARD_BYTES(p, n) ((void)(p), (void)(n))
#define UNGUARD_BYTES(p, n) ((void)(p), (void)(n))
#endif

#define SMP_HEADER_SIZE 8u
#define SMP_VERSION_2 1u

/*
 * A handler returns 0 after writing its response map, or an error:
 * ERR_SMP(rc) for an SMP-level {"rc": rc}, ERR_GROUP(rc) for {"err": {"group": <this group>, "rc": rc}}.
 */
#define ERR_SMP(rc) (-(rc))
#define ERR_GROUP(rc) (rc)

typedef struct {
    uint8_t op;
    uint8_t version;
    uint16_t group;
    uint8_t seq;
    uint8_t id;
    const uint8_t *payload;
    size_t payload_len;
} smp_request;

typedef int (*smp_handler)(const smp_request *req, cbor_writer *w);

static edgert_device_config g_config;
static int g_reset_requested;

static smp_rx g_rx;
static uint8_t g_rsp[SMP_PACKET_MAX];

/* Most inputs a model may have for staged writes (a counter each); models with more run inline only. */
#define EDGERT_MAX_STAGED_INPUTS 16u

/* The runner's view of the active model; RAM state, rebuilt at boot, ACTIVATE and ROLLBACK. */
static struct {
    int loaded;                                   /* runner_load accepted the active model */
    int outputs_valid;                            /* the last INVOKE succeeded: TENSOR_READ may read */
    uint32_t held[EDGERT_MAX_STAGED_INPUTS];      /* input bytes staged by TENSOR_WRITE, from offset 0 */
} g_run;

/* Parse the request payload into fields: malformed CBOR and wrong types are both EINVAL. */
static int parse(const smp_request *req, cbor_field *fields, size_t count)
{
    return cbor_parse_map(req->payload, req->payload_len, fields, count) == CBOR_PARSE_OK ? 0 : -1;
}

static int text_equals(const cbor_field *field, const char *text)
{
    size_t n = strlen(text);
    return field->present && field->bytes_len == n && memcmp(field->bytes, text, n) == 0;
}

/* Write the one-entry response map {key: value}; a handler's success return. */
static int reply_uint(cbor_writer *w, const char *key, uint64_t value)
{
    cbor_put_map(w, 1);
    cbor_put_tstr(w, key);
    cbor_put_uint(w, value);
    return 0;
}

/* ---- OS group ---------------------------------------------------------------------------- */

static int os_echo(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {{"d", CBOR_FIELD_TSTR, 0, 0, NULL, 0}};

    if (parse(req, f, 1) != 0 || !f[0].present) {
        return ERR_SMP(MGMT_ERR_EINVAL);
    }
    cbor_put_map(w, 1);
    cbor_put_tstr(w, "r");
    cbor_put_tstrn(w, (const char *)f[0].bytes, f[0].bytes_len);
    return 0;
}

static int os_reset(const smp_request *req, cbor_writer *w)
{
    (void)req;
    g_reset_requested = 1; /* after the response is sent, like Zephyr's delayed reset */
    cbor_put_map(w, 0);
    return 0;
}

static int os_params(const smp_request *req, cbor_writer *w)
{
    (void)req;
    cbor_put_map(w, 2);
    cbor_put_tstr(w, "buf_size");
    cbor_put_uint(w, SMP_SERIAL_BUF_SIZE);
    cbor_put_tstr(w, "buf_count");
    cbor_put_uint(w, 1);
    return 0;
}

/* ---- File group ---------------------------------------------------------------------------- */

/* The files this device exposes, as slot + size. 0 when present, else an FS error. */
static int lookup_file(const cbor_field *name, uint8_t *slot, uint32_t *size)
{
    const store_model *m = NULL;

    if (text_equals(name, EDGERT_STAGED_NAME)) {
        if (!store_stage_is_open()) {
            return ERR_GROUP(FS_ERR_FILE_NOT_FOUND);
        }
        *slot = store_stage_slot();
        *size = store_stage_held();
        return 0;
    }
    if (text_equals(name, EDGERT_ACTIVE_NAME)) {
        m = store_active();
    } else if (text_equals(name, EDGERT_PREVIOUS_NAME)) {
        m = store_previous();
    } else {
        return ERR_GROUP(FS_ERR_FILE_INVALID_NAME);
    }
    if (!m->valid) {
        return ERR_GROUP(FS_ERR_FILE_NOT_FOUND);
    }
    *slot = m->slot;
    *size = m->size;
    return 0;
}

static int file_upload(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {
        {"off", CBOR_FIELD_UINT, 0, 0, NULL, 0},
        {"data", CBOR_FIELD_BSTR, 0, 0, NULL, 0},
        {"name", CBOR_FIELD_TSTR, 0, 0, NULL, 0},
        {"len", CBOR_FIELD_UINT, 0, 0, NULL, 0},
    };
    uint64_t off;
    size_t data_len;

    if (parse(req, f, 4) != 0 || !f[0].present || !f[1].present || !f[2].present) {
        return ERR_SMP(MGMT_ERR_EINVAL);
    }
    if (text_equals(&f[2], EDGERT_ACTIVE_NAME) || text_equals(&f[2], EDGERT_PREVIOUS_NAME)) {
        return ERR_GROUP(FS_ERR_READ_ONLY_FILESYSTEM);
    }
    if (!text_equals(&f[2], EDGERT_STAGED_NAME)) {
        return ERR_GROUP(FS_ERR_FILE_INVALID_NAME);
    }
    off = f[0].uint_value;
    data_len = f[1].bytes_len;
    if (off == 0) {
        /* Offset 0 always starts a new upload (Zephyr fs_mgmt semantics); it must say how long the file is. */
        int rc;
        if (!f[3].present) {
            return ERR_SMP(MGMT_ERR_EINVAL);
        }
        if (f[3].uint_value > store_slot_size()) {
            return ERR_SMP(MGMT_ERR_ENOMEM); /* PROTOCOL.md: a file that cannot fit the slot */
        }
        rc = store_stage_begin((uint32_t)f[3].uint_value);
        if (rc != STORE_OK) {
            return ERR_GROUP(FS_ERR_FILE_WRITE_FAILED);
        }
    } else if (!store_stage_is_open() || off != store_stage_held()) {
        /* Not where we are: tell the host what we hold so it re-syncs (resume after a disconnect). */
        return reply_uint(w, "off", store_stage_is_open() ? store_stage_held() : 0);
    }
    if (data_len > store_stage_declared() - store_stage_held()) {
        return ERR_SMP(MGMT_ERR_EINVAL); /* data beyond the announced len */
    }
    if (store_stage_write(store_stage_held(), f[1].bytes, (uint32_t)data_len) != STORE_OK) {
        return ERR_GROUP(FS_ERR_FILE_WRITE_FAILED);
    }
    return reply_uint(w, "off", store_stage_held());
}

static int file_status(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {{"name", CBOR_FIELD_TSTR, 0, 0, NULL, 0}};
    uint8_t slot;
    uint32_t size;
    int rc;

    if (parse(req, f, 1) != 0 || !f[0].present) {
        return ERR_SMP(MGMT_ERR_EINVAL);
    }
    if (text_equals(&f[0], EDGERT_STAGED_NAME) && !store_stage_is_open()) {
        /* PROTOCOL.md: no upload in progress reads as an empty staged file, so a host simply starts at 0. */
        return reply_uint(w, "len", 0);
    }
    rc = lookup_file(&f[0], &slot, &size);
    if (rc != 0) {
        return rc;
    }
    return reply_uint(w, "len", size);
}

static int file_hash(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {
        {"name", CBOR_FIELD_TSTR, 0, 0, NULL, 0},
        {"type", CBOR_FIELD_TSTR, 0, 0, NULL, 0},
        {"off", CBOR_FIELD_UINT, 0, 0, NULL, 0},
        {"len", CBOR_FIELD_UINT, 0, 0, NULL, 0},
    };
    uint8_t slot;
    uint32_t size;
    uint32_t off;
    uint32_t len;
    int use_crc;
    int rc;

    if (parse(req, f, 4) != 0 || !f[0].present) {
        return ERR_SMP(MGMT_ERR_EINVAL);
    }
    if (!f[1].present || text_equals(&f[1], "sha256")) {
        use_crc = 0; /* sha256 is this device's default: models are verified with it */
    } else if (text_equals(&f[1], "crc32")) {
        use_crc = 1;
    } else {
        return ERR_GROUP(FS_ERR_CHECKSUM_HASH_NOT_FOUND);
    }
    rc = lookup_file(&f[0], &slot, &size);
    if (rc != 0) {
        return rc;
    }
    if (f[2].uint_value > size) {
        return ERR_GROUP(FS_ERR_FILE_OFFSET_LARGER_THAN_FILE);
    }
    off = (uint32_t)f[2].uint_value;
    len = size - off;
    if (f[3].present && f[3].uint_value < len) {
        len = (uint32_t)f[3].uint_value;
    }
    if (len == 0) {
        return ERR_GROUP(FS_ERR_FILE_EMPTY);
    }
    cbor_put_map(w, 4);
    cbor_put_tstr(w, "type");
    cbor_put_tstr(w, use_crc ? "crc32" : "sha256");
    cbor_put_tstr(w, "off");
    cbor_put_uint(w, off);
    cbor_put_tstr(w, "len");
    cbor_put_uint(w, len);
    cbor_put_tstr(w, "output");
    if (use_crc) {
        uint32_t crc;
        if (store_crc32(slot, off, len, &crc) != 0) {
            return ERR_GROUP(FS_ERR_FILE_READ_FAILED);
        }
        cbor_put_uint(w, crc);
    } else {
        uint8_t digest[SHA256_DIGEST_SIZE];
        if (store_sha256(slot, off, len, digest) != 0) {
            return ERR_GROUP(FS_ERR_FILE_READ_FAILED);
        }
        cbor_put_bstr(w, digest, sizeof(digest));
    }
    return 0;
}

/* ---- edgert group ---------------------------------------------------------------------------- */

static void put_model(cbor_writer *w, const store_model *m)
{
    if (!m->valid) {
        cbor_put_null(w);
        return;
    }
    cbor_put_map(w, 3);
    cbor_put_tstr(w, "name");
    cbor_put_tstrn(w, m->name, m->name_len);
    cbor_put_tstr(w, "size");
    cbor_put_uint(w, m->size);
    cbor_put_tstr(w, "sha");
    cbor_put_bstr(w, m->sha, SHA256_DIGEST_SIZE);
}

static int edgert_info(const smp_request *req, cbor_writer *w)
{
    const char *kernels = runner_kernels();

    if (parse(req, NULL, 0) != 0) {
        return ERR_SMP(MGMT_ERR_EINVAL);
    }
    cbor_put_map(w, kernels != NULL ? 10 : 9);
    cbor_put_tstr(w, "active");
    put_model(w, store_active());
    cbor_put_tstr(w, "previous");
    put_model(w, store_previous());
    cbor_put_tstr(w, "slot_size");
    cbor_put_uint(w, store_slot_size());
    cbor_put_tstr(w, "ram");
    cbor_put_uint(w, g_config.ram_bytes);
    cbor_put_tstr(w, "target");
    cbor_put_tstr(w, g_config.target);
    cbor_put_tstr(w, "invoke");
    cbor_put_bool(w, runner_available());
    cbor_put_tstr(w, "sign");
    cbor_put_bool(w, 0);
    /* TENSOR_WRITE/READ exist in this core; without a runner they answer NOT_SUPPORTED like INVOKE. */
    cbor_put_tstr(w, "tensor_io");
    cbor_put_bool(w, 1);
    cbor_put_tstr(w, "arena_used");
    cbor_put_uint(w, g_run.loaded ? runner_arena_used() : 0);
    if (kernels != NULL) {
        cbor_put_tstr(w, "kernels");
        cbor_put_tstr(w, kernels);
    }
    return 0;
}

/* Forget staged inputs and outputs: a stale tensor is never silently reused. */
static void reset_tensors(void)
{
    memset(g_run.held, 0, sizeof(g_run.held));
    g_run.outputs_valid = 0;
}

/* Hand the active model to the runner (boot, ACTIVATE, ROLLBACK). Without a mapping or a runner, nothing runs. */
static void load_active(void)
{
    const store_model *m = store_active();
    const uint8_t *bytes;

    reset_tensors();
    g_run.loaded = 0;
    if (!runner_available() || !m->valid) {
        return;
    }
    bytes = hal_flash_map(store_slot_offset(m->slot), m->size);
    g_run.loaded = bytes != NULL && runner_load(bytes, m->size) == 0;
}

/* Called before anything may write the flash the runner executes from (the record switch of ACTIVATE/ROLLBACK). */
static void unload_active(void)
{
    if (g_run.loaded) {
        runner_unload();
    }
    g_run.loaded = 0;
    reset_tensors();
}

static void put_active(cbor_writer *w)
{
    cbor_put_map(w, 1);
    cbor_put_tstr(w, "active");
    put_model(w, store_active());
}

static int edgert_activate(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {
        {"name", CBOR_FIELD_TSTR, 0, 0, NULL, 0},
        {"sha", CBOR_FIELD_BSTR, 0, 0, NULL, 0},
    };
    int rc;

    if (parse(req, f, 2) != 0 || !f[0].present || !f[1].present || f[1].bytes_len != SHA256_DIGEST_SIZE ||
        f[0].bytes_len > STORE_NAME_MAX) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    /* "name" says what to activate: this device stages models only as a file ("img:N" needs the Image group). */
    if (f[0].bytes_len >= 4 && memcmp(f[0].bytes, "img:", 4) == 0) {
        return ERR_GROUP(EDGERT_ERR_NOT_SUPPORTED);
    }
    if (!text_equals(&f[0], EDGERT_STAGED_NAME)) {
        return ERR_GROUP(EDGERT_ERR_NO_MODEL);
    }
    unload_active();
    rc = store_activate((const char *)f[0].bytes, f[0].bytes_len, f[1].bytes);
    load_active(); /* the new model, or the old one again when nothing changed */
    if (rc != EDGERT_OK) {
        return ERR_GROUP(rc);
    }
    put_active(w);
    return 0;
}

static int edgert_rollback(const smp_request *req, cbor_writer *w)
{
    int rc;

    if (parse(req, NULL, 0) != 0) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    unload_active();
    rc = store_rollback();
    load_active();
    if (rc != EDGERT_OK) {
        return ERR_GROUP(rc);
    }
    put_active(w);
    return 0;
}

/*
 * What every tensor command checks first, in this order: an interpreter in this build, an active model,
 * and a runner that accepted it (an op it lacks, an arena too small: it cannot run here).
 */
static int runner_ready(void)
{
    if (!runner_available()) {
        return ERR_GROUP(EDGERT_ERR_NOT_SUPPORTED); /* INFO says "invoke": false */
    }
    if (!store_active()->valid) {
        return ERR_GROUP(EDGERT_ERR_NO_MODEL);
    }
    return g_run.loaded ? 0 : ERR_GROUP(EDGERT_ERR_INVOKE_FAILED);
}

/*
 * Copy the inline inputs of an INVOKE ({"inputs": [bstr, ...]}) into the runner's input tensors.
 * Every element is checked before the first byte is copied, so a bad request changes nothing.
 */
static int copy_inline_inputs(const cbor_field *inputs)
{
    cbor_reader r;
    cbor_item item;
    edgert_tensor t;
    uint32_t pass;
    uint32_t i;

    if (inputs->uint_value != runner_input_count()) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    for (pass = 0; pass < 2; pass++) {
        cbor_reader_init(&r, inputs->bytes, inputs->bytes_len);
        if (cbor_read_head(&r, &item) != 0) { /* the array head; parse_map validated the whole array */
            return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
        }
        for (i = 0; i < (uint32_t)inputs->uint_value; i++) {
            if (cbor_read_head(&r, &item) != 0 || item.major != CBOR_MAJOR_BSTR || runner_input(i, &t) != 0 ||
                item.arg != t.size) {
                return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
            }
            if (pass == 1 && t.size > 0) {
                memcpy(t.data, item.str, t.size);
            }
        }
    }
    return 0;
}

/* Staged INVOKE ({}): every input must have been written completely with TENSOR_WRITE. */
static int check_staged_inputs(void)
{
    edgert_tensor t;
    uint32_t i;
    uint32_t n = runner_input_count();

    if (n > EDGERT_MAX_STAGED_INPUTS) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    for (i = 0; i < n; i++) {
        if (runner_input(i, &t) != 0 || g_run.held[i] != t.size) {
            return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
        }
    }
    return 0;
}

/* The INVOKE reply; with_data includes "outputs" (the caller retries without when it overflows). */
static void put_invoke_reply(cbor_writer *w, uint32_t us, uint64_t insns, int with_data)
{
    edgert_tensor t;
    uint32_t n = runner_output_count();
    uint32_t i;

    cbor_put_map(w, 2u + (insns != 0) + (with_data != 0));
    cbor_put_tstr(w, "us");
    cbor_put_uint(w, us);
    if (insns != 0) {
        cbor_put_tstr(w, "insns");
        cbor_put_uint(w, insns);
    }
    cbor_put_tstr(w, "sizes");
    cbor_put_array(w, n);
    for (i = 0; i < n; i++) {
        cbor_put_uint(w, runner_output(i, &t) == 0 ? t.size : 0);
    }
    if (with_data) {
        cbor_put_tstr(w, "outputs");
        cbor_put_array(w, n);
        for (i = 0; i < n; i++) {
            if (runner_output(i, &t) == 0) {
                cbor_put_bstr(w, t.data, t.size);
            } else {
                cbor_put_bstr(w, NULL, 0);
            }
        }
    }
}

static int edgert_invoke(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {{"inputs", CBOR_FIELD_ARRAY, 0, 0, NULL, 0}};
    uint32_t us = 0;
    uint64_t insns = 0;
    int rc = runner_ready();

    if (rc != 0) {
        return rc;
    }
    if (parse(req, f, 1) != 0) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    rc = f[0].present ? copy_inline_inputs(&f[0]) : check_staged_inputs();
    /* After any INVOKE the staged inputs start over and old outputs are gone, success or not. */
    reset_tensors();
    if (rc != 0) {
        return rc;
    }
    if (runner_invoke(&us, &insns) != 0) {
        return ERR_GROUP(EDGERT_ERR_INVOKE_FAILED);
    }
    g_run.outputs_valid = 1;
    put_invoke_reply(w, us, insns, 1);
    if (w->overflow) {
        /* The outputs do not fit one reply: send sizes only, the host reads them with TENSOR_READ. */
        cbor_writer_init(w, w->buf, w->cap);
        put_invoke_reply(w, us, insns, 0);
    }
    return 0;
}

static int edgert_tensor_write(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {
        {"index", CBOR_FIELD_UINT, 0, 0, NULL, 0},
        {"off", CBOR_FIELD_UINT, 0, 0, NULL, 0},
        {"data", CBOR_FIELD_BSTR, 0, 0, NULL, 0},
    };
    edgert_tensor t;
    uint32_t index;
    uint64_t off;
    int rc = runner_ready();

    if (rc != 0) {
        return rc;
    }
    if (parse(req, f, 3) != 0 || !f[0].present || !f[1].present || !f[2].present) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    if (f[0].uint_value >= EDGERT_MAX_STAGED_INPUTS || runner_input((uint32_t)f[0].uint_value, &t) != 0) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    index = (uint32_t)f[0].uint_value;
    off = f[1].uint_value;
    if (off == 0) {
        g_run.held[index] = 0; /* offset 0 restarts this input, like an upload */
    } else if (off != g_run.held[index]) {
        /* Not where we are: store nothing and say what we hold, so the host re-syncs. */
        return reply_uint(w, "off", g_run.held[index]);
    }
    if (f[2].bytes_len > t.size - g_run.held[index]) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT); /* past the tensor's end */
    }
    if (f[2].bytes_len > 0) {
        memcpy(t.data + g_run.held[index], f[2].bytes, f[2].bytes_len);
    }
    g_run.held[index] += (uint32_t)f[2].bytes_len;
    return reply_uint(w, "off", g_run.held[index]);
}

/* Bytes of a CBOR head for a length or value (what cbor_put_* will write). */
static size_t cbor_head_size(uint64_t arg)
{
    return arg < 24 ? 1u : arg <= 0xffu ? 2u : arg <= 0xffffu ? 3u : arg <= 0xffffffffu ? 5u : 9u;
}

static int edgert_tensor_read(const smp_request *req, cbor_writer *w)
{
    cbor_field f[] = {
        {"index", CBOR_FIELD_UINT, 0, 0, NULL, 0},
        {"off", CBOR_FIELD_UINT, 0, 0, NULL, 0},
    };
    edgert_tensor t;
    size_t room;
    uint32_t off;
    uint32_t n;
    int rc = runner_ready();

    if (rc != 0) {
        return rc;
    }
    if (parse(req, f, 2) != 0 || !f[0].present) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    if (!g_run.outputs_valid || f[0].uint_value >= runner_output_count() ||
        runner_output((uint32_t)f[0].uint_value, &t) != 0 || f[1].uint_value > t.size) {
        return ERR_GROUP(EDGERT_ERR_BAD_INPUT);
    }
    off = (uint32_t)f[1].uint_value;
    cbor_put_map(w, 3);
    cbor_put_tstr(w, "off");
    cbor_put_uint(w, off);
    cbor_put_tstr(w, "len");
    cbor_put_uint(w, t.size);
    cbor_put_tstr(w, "data");
    /* As many bytes as this reply still holds, after the bstr head (sized for the largest count that fits). */
    room = w->overflow ? 0 : w->cap - w->pos;
    room = room > cbor_head_size(room) ? room - cbor_head_size(room) : 0;
    n = t.size - off;
    if (n > room) {
        n = (uint32_t)room;
    }
    cbor_put_bstr(w, t.data + off, n);
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef struct {
    uint16_t group;
    uint8_t id;
    uint8_t op;
    smp_handler handler;
} route;

static const route g_routes[] = {
    {SMP_GROUP_OS, OS_ECHO, SMP_OP_WRITE, os_echo},
    {SMP_GROUP_OS, OS_RESET, SMP_OP_WRITE, os_reset},
    {SMP_GROUP_OS, OS_MCUMGR_PARAMS, SMP_OP_READ, os_params},
    {SMP_GROUP_FILE, FILE_UPLOAD, SMP_OP_WRITE, file_upload},
    {SMP_GROUP_FILE, FILE_STATUS, SMP_OP_READ, file_status},
    {SMP_GROUP_FILE, FILE_HASH, SMP_OP_READ, file_hash},
    {SMP_GROUP_EDGERT, EDGERT_INFO, SMP_OP_READ, edgert_info},
    {SMP_GROUP_EDGERT, EDGERT_ACTIVATE, SMP_OP_WRITE, edgert_activate},
    {SMP_GROUP_EDGERT, EDGERT_ROLLBACK, SMP_OP_WRITE, edgert_rollback},
    {SMP_GROUP_EDGERT, EDGERT_INVOKE, SMP_OP_WRITE, edgert_invoke},
    {SMP_GROUP_EDGERT, EDGERT_TENSOR_WRITE, SMP_OP_WRITE, edgert_tensor_write},
    {SMP_GROUP_EDGERT, EDGERT_TENSOR_READ, SMP_OP_READ, edgert_tensor_read},
};

static void put_error(cbor_writer *w, const smp_request *req, int err)
{
    if (err < 0 || req->version < SMP_VERSION_2) {
        /* SMP-level errors, and every error of an SMP v1 request, are a bare "rc". */
        (void)reply_uint(w, "rc", (uint64_t)(err < 0 ? -err : err));
        return;
    }
    cbor_put_map(w, 1);
    cbor_put_tstr(w, "err");
    cbor_put_map(w, 2);
    cbor_put_tstr(w, "group");
    cbor_put_uint(w, req->group);
    cbor_put_tstr(w, "rc");
    cbor_put_uint(w, (uint64_t)err);
}

int edgert_device_init(const edgert_device_config *config)
{
    g_config = *config;
    if (g_config.target == NULL) {
        g_config.target = "c-reference";
    }
    g_reset_requested = 0;
    smp_rx_init(&g_rx);
    unload_active(); /* a soft reboot re-reads the records: the runner starts over too */
    if (store_init(config->slot_size) != STORE_OK) {
        return -1;
    }
    load_active();
    return 0;
}

size_t edgert_device_handle(const uint8_t *req_buf, size_t req_len, uint8_t *rsp, size_t rsp_cap)
{
    smp_request req;
    cbor_writer w;
    smp_handler handler = NULL;
    int err;
    size_t i;
    size_t payload;

    if (req_len < SMP_HEADER_SIZE || rsp_cap < SMP_HEADER_SIZE) {
        return 0;
    }
    req.op = (uint8_t)(req_buf[0] & 0x07);
    req.version = (uint8_t)((req_buf[0] >> 3) & 0x03);
    req.group = (uint16_t)(((uint16_t)req_buf[4] << 8) | req_buf[5]);
    req.seq = req_buf[6];
    req.id = req_buf[7];
    req.payload = req_buf + SMP_HEADER_SIZE;
    req.payload_len = req_len - SMP_HEADER_SIZE;
    if (req.op != SMP_OP_READ && req.op != SMP_OP_WRITE) {
        return 0; /* responses (or nonsense) from the other side are not answered */
    }
    cbor_writer_init(&w, rsp + SMP_HEADER_SIZE, rsp_cap - SMP_HEADER_SIZE);
    if (req.version > SMP_VERSION_2) {
        err = ERR_SMP(MGMT_ERR_UNSUPPORTED_TOO_NEW);
    } else if ((((size_t)req_buf[2] << 8) | req_buf[3]) != req.payload_len) {
        err = ERR_SMP(MGMT_ERR_EINVAL); /* header length disagrees with the frame */
    } else {
        for (i = 0; i < sizeof(g_routes) / sizeof(g_routes[0]); i++) {
            if (g_routes[i].group == req.group && g_routes[i].id == req.id) {
                if (g_routes[i].op == req.op) {
                    handler = g_routes[i].handler;
                }
            }
        }
        err = handler ? handler(&req, &w) : ERR_SMP(MGMT_ERR_ENOTSUP);
    }
    if (err == 0 && w.overflow) {
        err = ERR_SMP(MGMT_ERR_ENOMEM); /* the response does not fit the transport buffer */
    }
    if (err != 0) {
        cbor_writer_init(&w, rsp + SMP_HEADER_SIZE, rsp_cap - SMP_HEADER_SIZE);
        put_error(&w, &req, err);
        if (w.overflow) {
            return 0; /* not even the error fits: say nothing rather than send half a map */
        }
    }
    payload = w.pos;
    rsp[0] = (uint8_t)(((req.version > SMP_VERSION_2 ? SMP_VERSION_2 : req.version) << 3) | (req.op + 1u));
    rsp[1] = 0;
    rsp[2] = (uint8_t)(payload >> 8);
    rsp[3] = (uint8_t)payload;
    rsp[4] = (uint8_t)(req.group >> 8);
    rsp[5] = (uint8_t)req.group;
    rsp[6] = req.seq;
    rsp[7] = req.id;
    return SMP_HEADER_SIZE + payload;
}

int edgert_device_reset_pending(void)
{
    return g_reset_requested;
}

int edgert_device_run(void)
{
    static uint8_t chunk[256];

    for (;;) {
        int n = hal_serial_read(chunk, sizeof(chunk), 100);
        uint32_t now = hal_time_ms();
        int i;

        if (n < 0) {
            return 0;
        }
        smp_rx_tick(&g_rx, now);
        for (i = 0; i < n; i++) {
            const uint8_t *packet;
            size_t packet_len;
            size_t rsp_len;
            size_t tail;

            if (!smp_rx_feed(&g_rx, chunk[i], now, &packet, &packet_len)) {
                continue;
            }
            tail = (size_t)((g_rx.frame + sizeof(g_rx.frame)) - (packet + packet_len));
            GUARD_BYTES(packet + packet_len, tail);
            rsp_len = edgert_device_handle(packet, packet_len, g_rsp, sizeof(g_rsp));
            UNGUARD_BYTES(packet + packet_len, tail);
            if (rsp_len > 0) {
                (void)smp_tx_packet(g_rsp, rsp_len);
            }
            if (g_reset_requested) {
                /* A reset drops RAM state (an open upload) and re-reads the records, as a reboot would. */
                (void)edgert_device_init(&g_config);
            }
        }
    }
}
