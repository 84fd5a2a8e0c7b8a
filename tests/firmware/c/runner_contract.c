/*
 * A test runner that checks the device core's side of edgert_runner.h.
 *
 * It is linked into the POSIX reference device by tests/firmware/test_c_device.py
 * (make RUNNER_SRCS=...) in place of runner_none.c, so the core's INVOKE,
 * TENSOR_WRITE and TENSOR_READ run against a runner with tensors of known
 * sizes and a known function, under AddressSanitizer:
 *
 *   input 0:  min(model length / 2, 3000) bytes; input 1: 7 bytes
 *   output 0: input0[i] ^ input1[i % 7]      (as long as input 0)
 *   output 1: CRC32 of the model bytes the core mapped (little-endian u32),
 *             then the sum of all input bytes (little-endian u32)
 *
 * The contract the core must keep: the model bytes stay mapped and unchanged
 * between runner_load and runner_unload. runner_invoke re-checks the CRC and
 * fails when they changed, so a core that lets flash move under a loaded
 * model is caught by the tests. Models shorter than 64 bytes are refused
 * ("cannot run it here"), which exercises the core's load-failure path.
 */
#include <string.h>

#include "crc.h"
#include "edgert_runner.h"

#define MAX_IN0 3000u
#define IN1_SIZE 7u
#define OUT1_SIZE 8u
#define MIN_MODEL 64u

static const uint8_t *g_model;
static uint32_t g_model_len;
static uint32_t g_model_crc;
static uint32_t g_in0_size;
static uint8_t g_in0[MAX_IN0];
static uint8_t g_in1[IN1_SIZE];
static uint8_t g_out0[MAX_IN0];
static uint8_t g_out1[OUT1_SIZE];

int runner_available(void)
{
    return 1;
}

const char *runner_kernels(void)
{
    return "contract-test";
}

int runner_load(const uint8_t *model, uint32_t len)
{
    g_model = NULL;
    if (model == NULL || len < MIN_MODEL) {
        return -1;
    }
    g_model = model;
    g_model_len = len;
    g_model_crc = crc32_ieee(0, model, len);
    g_in0_size = len / 2 < MAX_IN0 ? len / 2 : MAX_IN0;
    /* Poison the tensors: a test that reads an output it did not produce sees garbage, not zeros. */
    memset(g_in0, 0xa5, sizeof(g_in0));
    memset(g_in1, 0xa5, sizeof(g_in1));
    memset(g_out0, 0x5a, sizeof(g_out0));
    memset(g_out1, 0x5a, sizeof(g_out1));
    return 0;
}

void runner_unload(void)
{
    g_model = NULL;
}

uint32_t runner_input_count(void)
{
    return g_model != NULL ? 2u : 0u;
}

uint32_t runner_output_count(void)
{
    return g_model != NULL ? 2u : 0u;
}

/* Tensor index of inputs (in0, in1) or outputs (out0, out1): index 0 is as long as input 0, index 1 fixed. */
static int tensor(uint32_t index, uint8_t *first, uint8_t *second, uint32_t second_size, edgert_tensor *t)
{
    if (g_model == NULL || index > 1) {
        return -1;
    }
    t->data = index == 0 ? first : second;
    t->size = index == 0 ? g_in0_size : second_size;
    return 0;
}

int runner_input(uint32_t index, edgert_tensor *t)
{
    return tensor(index, g_in0, g_in1, IN1_SIZE, t);
}

int runner_output(uint32_t index, edgert_tensor *t)
{
    return tensor(index, g_out0, g_out1, OUT1_SIZE, t);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int runner_invoke(uint32_t *us, uint64_t *instructions)
{
    uint32_t sum = 0;
    uint32_t i;

    *us = 0;
    *instructions = 0;
    if (g_model == NULL || crc32_ieee(0, g_model, g_model_len) != g_model_crc) {
        return -1; /* the model's bytes changed while loaded: the core broke the contract */
    }
    for (i = 0; i < g_in0_size; i++) {
        g_out0[i] = (uint8_t)(g_in0[i] ^ g_in1[i % IN1_SIZE]);
        sum += g_in0[i];
    }
    for (i = 0; i < IN1_SIZE; i++) {
        sum += g_in1[i];
    }
    put_le32(g_out1, g_model_crc);
    put_le32(g_out1 + 4, sum);
    *us = 1;
    *instructions = (uint64_t)g_in0_size * 3u; /* a figure the test can predict: "insns" must carry it */
    return 0;
}

uint32_t runner_arena_used(void)
{
    return g_model != NULL ? 2u * g_in0_size + IN1_SIZE + OUT1_SIZE : 0u;
}
