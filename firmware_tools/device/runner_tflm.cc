/*
 * edgert runner on TensorFlow Lite Micro (edgert_runner.h), for the Cortex-M
 * firmware: CMSIS-NN kernels by default, TFLM's reference kernels when the
 * build says so (the benchmark baseline).
 *
 * Memory: the tensor arena, the op resolver and the interpreter live in
 * static storage; the interpreter is constructed in place on each load and
 * destroyed on unload, so nothing allocates from a heap after start-up. The
 * model runs in place from flash (hal_flash_map), as TFLM expects.
 *
 * Time: the port's SysTick-based clock around Invoke(). Under QEMU with
 * -icount shift=0 one instruction advances virtual time by 1 ns, so the
 * elapsed ticks give a deterministic instruction count (QEMU models no cycle
 * counter, so these are instructions, not cycles).
 *
 * Build-time settings (-D): EDGERT_ARENA_BYTES (from the target profile's RAM),
 * EDGERT_KERNELS_NAME ("cmsis-nn" or "reference").
 */
#include <new>

#include "edgert_runner.h"
#include "port.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef EDGERT_ARENA_BYTES
#error "EDGERT_ARENA_BYTES (tensor arena size) must be defined by the build"
#endif
#ifndef EDGERT_KERNELS_NAME
#define EDGERT_KERNELS_NAME "cmsis-nn"
#endif

namespace {

// The ops of the conformance models and of typical int8 CNN / DS-CNN / autoencoder models.
constexpr int kMaxOps = 32;
using Resolver = tflite::MicroMutableOpResolver<kMaxOps>;

alignas(16) uint8_t g_arena[EDGERT_ARENA_BYTES];
alignas(Resolver) uint8_t g_resolver_storage[sizeof(Resolver)];
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_storage[sizeof(tflite::MicroInterpreter)];

Resolver *g_resolver = nullptr;
tflite::MicroInterpreter *g_interpreter = nullptr;
bool g_invoked = false;

Resolver &resolver()
{
    if (g_resolver == nullptr) {
        Resolver *r = new (g_resolver_storage) Resolver();
        r->AddAdd();
        r->AddAveragePool2D();
        r->AddConcatenation();
        r->AddConv2D();
        r->AddDepthwiseConv2D();
        r->AddDequantize();
        r->AddExpandDims();
        r->AddFullyConnected();
        r->AddHardSwish();
        r->AddLeakyRelu();
        r->AddLogistic();
        r->AddMaxPool2D();
        r->AddMean();
        r->AddMul();
        r->AddPack();
        r->AddPad();
        r->AddQuantize();
        r->AddRelu();
        r->AddRelu6();
        r->AddReshape();
        r->AddShape();
        r->AddSoftmax();
        r->AddSqueeze();
        r->AddStridedSlice();
        r->AddSub();
        r->AddTanh();
        r->AddTranspose();
        r->AddTransposeConv();
        r->AddUnpack();
        g_resolver = r;
    }
    return *g_resolver;
}

bool tensor_view(TfLiteTensor *tensor, edgert_tensor *t)
{
    if (tensor == nullptr || t == nullptr || tensor->data.raw == nullptr) {
        return false;
    }
    t->data = reinterpret_cast<uint8_t *>(tensor->data.raw);
    t->size = static_cast<uint32_t>(tensor->bytes);
    return true;
}

}  // namespace

extern "C" {

int runner_available(void)
{
    return 1;
}

const char *runner_kernels(void)
{
    return EDGERT_KERNELS_NAME;
}

int runner_load(const uint8_t *model, uint32_t len)
{
    runner_unload();
    if (model == nullptr || len < 8) {
        return -1;
    }
    // The bytes came over the wire: verify the flatbuffer before TFLM follows any offset in it.
    flatbuffers::Verifier verifier(model, len);
    if (!tflite::VerifyModelBuffer(verifier)) {
        MicroPrintf("edgert: the active model is not a valid TFLite flatbuffer");
        return -2;
    }
    const tflite::Model *m = tflite::GetModel(model);
    if (m->version() != TFLITE_SCHEMA_VERSION || m->subgraphs() == nullptr || m->subgraphs()->size() < 1) {
        MicroPrintf("edgert: unsupported model schema version %d", static_cast<int>(m->version()));
        return -3;
    }
    g_interpreter = new (g_interpreter_storage) tflite::MicroInterpreter(m, resolver(), g_arena, sizeof(g_arena));
    if (g_interpreter->AllocateTensors() != kTfLiteOk) {
        // TFLM has logged why (missing op, arena too small); INVOKE then answers INVOKE_FAILED / NO_MODEL.
        runner_unload();
        return -4;
    }
    return 0;
}

void runner_unload(void)
{
    if (g_interpreter != nullptr) {
        g_interpreter->~MicroInterpreter();
        g_interpreter = nullptr;
    }
    g_invoked = false;
}

uint32_t runner_input_count(void)
{
    return g_interpreter ? static_cast<uint32_t>(g_interpreter->inputs_size()) : 0u;
}

uint32_t runner_output_count(void)
{
    return g_interpreter ? static_cast<uint32_t>(g_interpreter->outputs_size()) : 0u;
}

int runner_input(uint32_t index, edgert_tensor *t)
{
    if (g_interpreter == nullptr || index >= g_interpreter->inputs_size()) {
        return -1;
    }
    return tensor_view(g_interpreter->input(index), t) ? 0 : -1;
}

int runner_output(uint32_t index, edgert_tensor *t)
{
    if (g_interpreter == nullptr || !g_invoked || index >= g_interpreter->outputs_size()) {
        return -1;
    }
    return tensor_view(g_interpreter->output(index), t) ? 0 : -1;
}

int runner_invoke(uint32_t *us, uint64_t *instructions)
{
    if (g_interpreter == nullptr) {
        return -1;
    }
    g_invoked = false;
    port_measure_start();
    TfLiteStatus status = g_interpreter->Invoke();
    uint64_t ticks = port_measure_ticks();
    if (status != kTfLiteOk) {
        return -2;
    }
    g_invoked = true;
    uint64_t ns = ticks * 1000000000ull / port_ticks_per_second();
    if (us != nullptr) {
        *us = static_cast<uint32_t>(ns / 1000u);
    }
    if (instructions != nullptr) {
        // Virtual ns are instructions only when QEMU counts them (-icount shift=0); otherwise unknown.
        *instructions = port_icount() ? ns : 0u;
    }
    return 0;
}

uint32_t runner_arena_used(void)
{
    return g_interpreter ? static_cast<uint32_t>(g_interpreter->arena_used_bytes()) : 0u;
}

}  // extern "C"
