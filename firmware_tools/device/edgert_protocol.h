/* SMP numbers the reference device uses: groups, commands, error codes (see firmware_tools/PROTOCOL.md). */
#ifndef EDGERT_PROTOCOL_H
#define EDGERT_PROTOCOL_H

/* SMP header op codes. */
enum { SMP_OP_READ = 0, SMP_OP_READ_RSP = 1, SMP_OP_WRITE = 2, SMP_OP_WRITE_RSP = 3 };

/* Groups and their commands. */
enum { SMP_GROUP_OS = 0, SMP_GROUP_FILE = 8, SMP_GROUP_EDGERT = 64 };
enum { OS_ECHO = 0, OS_RESET = 5, OS_MCUMGR_PARAMS = 6 };
enum { FILE_UPLOAD = 0, FILE_STATUS = 1, FILE_HASH = 2 };
enum {
    EDGERT_INFO = 0,
    EDGERT_ACTIVATE = 1,
    EDGERT_ROLLBACK = 2,
    EDGERT_INVOKE = 3,
    EDGERT_TENSOR_WRITE = 4, /* stage input bytes by offset (tensors larger than one SMP packet) */
    EDGERT_TENSOR_READ = 5   /* read output bytes by offset */
};

/* SMP-level errors, answered as {"rc": N} (smp.error.MGMT_ERR). */
enum {
    MGMT_ERR_EUNKNOWN = 1,
    MGMT_ERR_ENOMEM = 2,
    MGMT_ERR_EINVAL = 3,
    MGMT_ERR_ENOTSUP = 8,
    MGMT_ERR_UNSUPPORTED_TOO_NEW = 13
};

/* File group errors, answered as {"err": {"group": 8, "rc": N}} (smp.file_management.FS_MGMT_ERR). */
enum {
    FS_ERR_UNKNOWN = 1,
    FS_ERR_FILE_INVALID_NAME = 2,
    FS_ERR_FILE_NOT_FOUND = 3,
    FS_ERR_FILE_READ_FAILED = 7,
    FS_ERR_FILE_WRITE_FAILED = 10,
    FS_ERR_FILE_OFFSET_NOT_VALID = 11,
    FS_ERR_FILE_OFFSET_LARGER_THAN_FILE = 12,
    FS_ERR_CHECKSUM_HASH_NOT_FOUND = 13,
    FS_ERR_READ_ONLY_FILESYSTEM = 15,
    FS_ERR_FILE_EMPTY = 16
};

/* edgert group errors, answered as {"err": {"group": 64, "rc": N}}. */
enum {
    EDGERT_OK = 0,
    EDGERT_ERR_UNKNOWN = 1,
    EDGERT_ERR_NO_MODEL = 2,
    EDGERT_ERR_HASH_MISMATCH = 3,
    EDGERT_ERR_TOO_LARGE = 4,
    EDGERT_ERR_BAD_INPUT = 5,
    EDGERT_ERR_INVOKE_FAILED = 6,
    EDGERT_ERR_NO_PREVIOUS = 7,
    EDGERT_ERR_NOT_SUPPORTED = 8,
    EDGERT_ERR_SIGNATURE_INVALID = 9
};

/* Where the host uploads a model before ACTIVATE; active/previous are read-only views for status/hash. */
#define EDGERT_STAGED_NAME "/edgert/staged.tflite"
#define EDGERT_ACTIVE_NAME "/edgert/active.tflite"
#define EDGERT_PREVIOUS_NAME "/edgert/previous.tflite"

#endif /* EDGERT_PROTOCOL_H */
