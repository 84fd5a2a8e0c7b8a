/*
 * The runner of a build without an interpreter (the POSIX reference device):
 * the device stores, hashes and activates models, INFO says "invoke": false
 * and INVOKE / TENSOR_WRITE / TENSOR_READ answer NOT_SUPPORTED. A firmware
 * with TensorFlow Lite Micro links its own runner instead (edgert_runner.h).
 */
#include "edgert_runner.h"

int runner_available(void)
{
    return 0;
}

const char *runner_kernels(void)
{
    return NULL;
}

int runner_load(const uint8_t *model, uint32_t len)
{
    (void)model;
    (void)len;
    return -1; /* nothing here can run a model */
}

void runner_unload(void)
{
}

uint32_t runner_input_count(void)
{
    return 0;
}

uint32_t runner_output_count(void)
{
    return 0;
}

int runner_input(uint32_t index, edgert_tensor *t)
{
    (void)index;
    (void)t;
    return -1;
}

int runner_output(uint32_t index, edgert_tensor *t)
{
    (void)index;
    (void)t;
    return -1;
}

int runner_invoke(uint32_t *us, uint64_t *instructions)
{
    *us = 0;
    *instructions = 0;
    return -1;
}

uint32_t runner_arena_used(void)
{
    return 0;
}
