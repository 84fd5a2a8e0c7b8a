/*
 * Minimal CBOR (RFC 8949) for SMP payloads: definite-length items only.
 *
 * The reader never trusts a length from the wire: every item is checked
 * against the bytes that remain before it is touched, nesting is bounded,
 * text fields must be valid UTF-8,
 * and indefinite lengths, reserved encodings and truncated input fail.
 */
#ifndef EDGERT_CBOR_H
#define EDGERT_CBOR_H

#include <stddef.h>
#include <stdint.h>

#define CBOR_MAX_DEPTH 16

enum {
    CBOR_MAJOR_UINT = 0,
    CBOR_MAJOR_NINT = 1,
    CBOR_MAJOR_BSTR = 2,
    CBOR_MAJOR_TSTR = 3,
    CBOR_MAJOR_ARRAY = 4,
    CBOR_MAJOR_MAP = 5,
    CBOR_MAJOR_TAG = 6,
    CBOR_MAJOR_SIMPLE = 7
};

enum { CBOR_SIMPLE_FALSE = 20, CBOR_SIMPLE_TRUE = 21, CBOR_SIMPLE_NULL = 22 };

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} cbor_reader;

/* One decoded item head; for strings, str/arg point at / count the payload. */
typedef struct {
    uint8_t major;
    uint64_t arg;       /* value, string length, element count, tag or simple value */
    const uint8_t *str; /* bstr/tstr payload inside the reader's buffer */
} cbor_item;

void cbor_reader_init(cbor_reader *r, const uint8_t *buf, size_t len);
/* Read one item head (and a string's payload). 0 on success, -1 on malformed input. */
int cbor_read_head(cbor_reader *r, cbor_item *item);
/* Skip one complete item including nested content. 0 on success, -1 on malformed input. */
int cbor_skip(cbor_reader *r);

/* What a request field must be. */
enum cbor_field_type { CBOR_FIELD_UINT, CBOR_FIELD_BSTR, CBOR_FIELD_TSTR, CBOR_FIELD_BOOL, CBOR_FIELD_ARRAY };

typedef struct {
    const char *key;
    enum cbor_field_type type;
    int present;
    uint64_t uint_value;  /* UINT; BOOL as 0/1; ARRAY element count */
    const uint8_t *bytes; /* BSTR/TSTR payload; ARRAY: the encoded array */
    size_t bytes_len;
} cbor_field;

enum { CBOR_PARSE_OK = 0, CBOR_PARSE_MALFORMED = -1, CBOR_PARSE_WRONG_TYPE = -2 };

/*
 * Parse buf as exactly one map with text keys, filling the fields whose keys
 * it names (unknown keys are skipped; an empty buffer is an empty map).
 * Returns CBOR_PARSE_OK, CBOR_PARSE_MALFORMED or CBOR_PARSE_WRONG_TYPE.
 */
int cbor_parse_map(const uint8_t *buf, size_t len, cbor_field *fields, size_t field_count);

/* A bounded writer: once it overflows it stops writing and stays overflowed. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    int overflow;
} cbor_writer;

void cbor_writer_init(cbor_writer *w, uint8_t *buf, size_t cap);
void cbor_put_uint(cbor_writer *w, uint64_t value);
void cbor_put_bstr(cbor_writer *w, const uint8_t *data, size_t len);
void cbor_put_tstr(cbor_writer *w, const char *text);
void cbor_put_tstrn(cbor_writer *w, const char *text, size_t len);
void cbor_put_bool(cbor_writer *w, int value);
void cbor_put_null(cbor_writer *w);
void cbor_put_array(cbor_writer *w, size_t count);
void cbor_put_map(cbor_writer *w, size_t count);

#endif /* EDGERT_CBOR_H */
