/* Minimal definite-length CBOR reader/writer; see cbor.h for the safety rules. */
#include "cbor.h"

#include <string.h>

void cbor_reader_init(cbor_reader *r, const uint8_t *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
}

int cbor_read_head(cbor_reader *r, cbor_item *item)
{
    uint8_t initial;
    uint8_t info;
    size_t extra;
    size_t i;
    uint64_t arg = 0;

    if (r->pos >= r->len) {
        return -1;
    }
    initial = r->buf[r->pos++];
    item->major = (uint8_t)(initial >> 5);
    item->str = NULL;
    info = (uint8_t)(initial & 0x1f);
    if (info < 24) {
        arg = info;
        extra = 0;
    } else if (info <= 27) {
        extra = (size_t)1 << (info - 24);
    } else {
        /* 28-30 are reserved, 31 is indefinite length: neither is used by SMP. */
        return -1;
    }
    if (extra > r->len - r->pos) {
        return -1;
    }
    for (i = 0; i < extra; i++) {
        arg = (arg << 8) | r->buf[r->pos++];
    }
    item->arg = arg;
    if (item->major == CBOR_MAJOR_BSTR || item->major == CBOR_MAJOR_TSTR) {
        if (arg > (uint64_t)(r->len - r->pos)) {
            return -1;
        }
        item->str = r->buf + r->pos;
        r->pos += (size_t)arg;
    } else if (item->major == CBOR_MAJOR_SIMPLE && info == 24 && arg < 32) {
        /* RFC 8949 3.3: two-byte simple values below 32 are not well-formed. */
        return -1;
    }
    return 0;
}

static int skip_item(cbor_reader *r, int depth)
{
    cbor_item item;
    uint64_t i;
    uint64_t count;

    if (depth > CBOR_MAX_DEPTH || cbor_read_head(r, &item) != 0) {
        return -1;
    }
    switch (item.major) {
    case CBOR_MAJOR_ARRAY:
    case CBOR_MAJOR_MAP:
        count = item.arg;
        /* Every element takes at least one byte: refuse counts the input cannot hold. */
        if (count > (uint64_t)(r->len - r->pos)) {
            return -1;
        }
        if (item.major == CBOR_MAJOR_MAP) {
            if (count > (uint64_t)(r->len - r->pos) / 2) {
                return -1;
            }
            count *= 2;
        }
        for (i = 0; i < count; i++) {
            if (skip_item(r, depth + 1) != 0) {
                return -1;
            }
        }
        return 0;
    case CBOR_MAJOR_TAG:
        return skip_item(r, depth + 1);
    default:
        return 0;
    }
}

int cbor_skip(cbor_reader *r)
{
    return skip_item(r, 0);
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF (RFC 8949 requires valid text). */
static int utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];
        size_t extra;
        uint32_t cp;
        uint32_t min;
        size_t k;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1fu;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0fu;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return 0;
        }
        if (extra > len - i - 1) {
            return 0;
        }
        for (k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffffu || (cp >= 0xd800u && cp <= 0xdfffu)) {
            return 0;
        }
        i += extra + 1;
    }
    return 1;
}

static int key_matches(const cbor_item *key, const char *name)
{
    size_t n = strlen(name);
    return key->arg == n && memcmp(key->str, name, n) == 0;
}

static int take_value(cbor_reader *r, cbor_field *field)
{
    cbor_item value;
    size_t start = r->pos;

    if (cbor_read_head(r, &value) != 0) {
        return CBOR_PARSE_MALFORMED;
    }
    switch (field->type) {
    case CBOR_FIELD_UINT:
        if (value.major != CBOR_MAJOR_UINT) {
            return CBOR_PARSE_WRONG_TYPE;
        }
        field->uint_value = value.arg;
        break;
    case CBOR_FIELD_BSTR:
    case CBOR_FIELD_TSTR:
        if (value.major != (field->type == CBOR_FIELD_BSTR ? CBOR_MAJOR_BSTR : CBOR_MAJOR_TSTR)) {
            return CBOR_PARSE_WRONG_TYPE;
        }
        if (field->type == CBOR_FIELD_TSTR && !utf8_valid(value.str, (size_t)value.arg)) {
            return CBOR_PARSE_MALFORMED;
        }
        field->bytes = value.str;
        field->bytes_len = (size_t)value.arg;
        break;
    case CBOR_FIELD_BOOL:
        if (value.major != CBOR_MAJOR_SIMPLE ||
            (value.arg != CBOR_SIMPLE_FALSE && value.arg != CBOR_SIMPLE_TRUE)) {
            return CBOR_PARSE_WRONG_TYPE;
        }
        field->uint_value = value.arg == CBOR_SIMPLE_TRUE;
        break;
    case CBOR_FIELD_ARRAY:
        if (value.major != CBOR_MAJOR_ARRAY) {
            return CBOR_PARSE_WRONG_TYPE;
        }
        /* Validate the whole array now so handlers can walk it without checks failing late. */
        r->pos = start;
        if (cbor_skip(r) != 0) {
            return CBOR_PARSE_MALFORMED;
        }
        field->uint_value = value.arg;
        field->bytes = r->buf + start;
        field->bytes_len = r->pos - start;
        break;
    }
    field->present = 1;
    return CBOR_PARSE_OK;
}

int cbor_parse_map(const uint8_t *buf, size_t len, cbor_field *fields, size_t field_count)
{
    cbor_reader r;
    cbor_item map;
    cbor_item key;
    uint64_t i;
    size_t f;
    int wrong_type = 0;

    for (f = 0; f < field_count; f++) {
        fields[f].present = 0;
        fields[f].uint_value = 0;
        fields[f].bytes = NULL;
        fields[f].bytes_len = 0;
    }
    if (len == 0) {
        return CBOR_PARSE_OK;
    }
    cbor_reader_init(&r, buf, len);
    if (cbor_read_head(&r, &map) != 0 || map.major != CBOR_MAJOR_MAP) {
        return CBOR_PARSE_MALFORMED;
    }
    if (map.arg > (uint64_t)(len - r.pos) / 2) {
        return CBOR_PARSE_MALFORMED;
    }
    for (i = 0; i < map.arg; i++) {
        size_t key_start = r.pos;
        int matched = 0;

        if (cbor_read_head(&r, &key) != 0) {
            return CBOR_PARSE_MALFORMED;
        }
        if (key.major == CBOR_MAJOR_TSTR) {
            for (f = 0; f < field_count; f++) {
                if (key_matches(&key, fields[f].key)) {
                    int rc = take_value(&r, &fields[f]);
                    if (rc == CBOR_PARSE_MALFORMED) {
                        return rc;
                    }
                    if (rc == CBOR_PARSE_WRONG_TYPE) {
                        /* Keep going: a later malformed byte must still be reported as malformed. */
                        wrong_type = 1;
                        r.pos = key_start;
                        if (cbor_skip(&r) != 0 || cbor_skip(&r) != 0) {
                            return CBOR_PARSE_MALFORMED;
                        }
                    }
                    matched = 1;
                    break;
                }
            }
        } else {
            /* Non-text keys are legal CBOR but never ours: skip the key item itself. */
            r.pos = key_start;
            if (cbor_skip(&r) != 0) {
                return CBOR_PARSE_MALFORMED;
            }
        }
        if (!matched && cbor_skip(&r) != 0) {
            return CBOR_PARSE_MALFORMED;
        }
    }
    if (r.pos != len) {
        return CBOR_PARSE_MALFORMED; /* trailing bytes after the map */
    }
    return wrong_type ? CBOR_PARSE_WRONG_TYPE : CBOR_PARSE_OK;
}

void cbor_writer_init(cbor_writer *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->pos = 0;
    w->overflow = 0;
}

static void put_bytes(cbor_writer *w, const uint8_t *data, size_t len)
{
    if (w->overflow || len > w->cap - w->pos) {
        w->overflow = 1;
        return;
    }
    if (len > 0) {
        memcpy(w->buf + w->pos, data, len);
    }
    w->pos += len;
}

static void put_head(cbor_writer *w, uint8_t major, uint64_t arg)
{
    uint8_t head[9];
    size_t n;
    size_t i;

    if (arg < 24) {
        head[0] = (uint8_t)((major << 5) | arg);
        n = 1;
    } else if (arg <= 0xffu) {
        head[0] = (uint8_t)((major << 5) | 24);
        n = 2;
    } else if (arg <= 0xffffu) {
        head[0] = (uint8_t)((major << 5) | 25);
        n = 3;
    } else if (arg <= 0xffffffffu) {
        head[0] = (uint8_t)((major << 5) | 26);
        n = 5;
    } else {
        head[0] = (uint8_t)((major << 5) | 27);
        n = 9;
    }
    for (i = 1; i < n; i++) {
        head[i] = (uint8_t)(arg >> (8 * (n - 1 - i)));
    }
    put_bytes(w, head, n);
}

void cbor_put_uint(cbor_writer *w, uint64_t value)
{
    put_head(w, CBOR_MAJOR_UINT, value);
}

void cbor_put_bstr(cbor_writer *w, const uint8_t *data, size_t len)
{
    put_head(w, CBOR_MAJOR_BSTR, len);
    put_bytes(w, data, len);
}

void cbor_put_tstrn(cbor_writer *w, const char *text, size_t len)
{
    put_head(w, CBOR_MAJOR_TSTR, len);
    put_bytes(w, (const uint8_t *)text, len);
}

void cbor_put_tstr(cbor_writer *w, const char *text)
{
    cbor_put_tstrn(w, text, strlen(text));
}

void cbor_put_bool(cbor_writer *w, int value)
{
    put_head(w, CBOR_MAJOR_SIMPLE, value ? CBOR_SIMPLE_TRUE : CBOR_SIMPLE_FALSE);
}

void cbor_put_null(cbor_writer *w)
{
    put_head(w, CBOR_MAJOR_SIMPLE, CBOR_SIMPLE_NULL);
}

void cbor_put_array(cbor_writer *w, size_t count)
{
    put_head(w, CBOR_MAJOR_ARRAY, count);
}

void cbor_put_map(cbor_writer *w, size_t count)
{
    put_head(w, CBOR_MAJOR_MAP, count);
}
