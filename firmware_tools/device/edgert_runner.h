#ifndef EDGERT_RUNNER_H
#define EDGERT_RUNNER_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct { uint8_t *data; uint32_t size; } edgert_tensor;   /* raw bytes of one tensor */
int runner_available(void);            /* 1 when this build carries an interpreter; 0 -> INFO invoke:false, INVOKE NOT_SUPPORTED */
const char *runner_kernels(void);      /* "cmsis-nn", "reference", ... or NULL */
/* Prepare the model at [model, model + len); the bytes stay valid and unchanged until runner_unload/next load.
   0 ok; negative: cannot run it here (op missing, arena too small, bad file). */
int runner_load(const uint8_t *model, uint32_t len);
void runner_unload(void);
uint32_t runner_input_count(void);
uint32_t runner_output_count(void);
int runner_input(uint32_t index, edgert_tensor *t);    /* 0 ok; -1 bad index / no model */
int runner_output(uint32_t index, edgert_tensor *t);   /* valid after a successful runner_invoke */
/* Run once on the inputs as they are. *us = measured time in microseconds; *instructions = retired
   instructions (QEMU -icount shift=0 makes it deterministic) or 0 when unknown. 0 ok, negative failure. */
int runner_invoke(uint32_t *us, uint64_t *instructions);
uint32_t runner_arena_used(void);      /* arena bytes the loaded model really uses (TFLM arena_used_bytes()), 0 if none */
#ifdef __cplusplus
}
#endif
#endif
