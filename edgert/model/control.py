"""A known-good model built in code: the control that tells a broken runtime from a bad file.

When the interpreter crashes on a user's model, the model may be at fault, or
the runtime may crash on *every* model (a wheel built for another CPU, qemu-user
showing the guest an x86 ``/proc/cpuinfo``). Running this one-op model in the
same way separates the two: if it crashes too, the platform is broken and no
verdict about the user's file may be remembered.

The model is written with the schema's own flatbuffers builder, so it needs no
converter and exists on a Raspberry Pi without TensorFlow.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["control_model"]


@lru_cache(maxsize=1)
def control_model() -> bytes:
    """A valid float32 model ``y = relu(x)`` with x of shape [1, 4] (a few hundred bytes)."""
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(512)

    def int_vector(start, values):
        start(b, len(values))
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def table_vector(start, offsets):
        start(b, len(offsets))
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tensors = []
    for name in ("x", "y"):
        text = b.CreateString(name)
        shape = int_vector(tflite.TensorStartShapeVector, [1, 4])
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, 0)  # buffer 0: the empty sentinel, no constant data
        tflite.TensorAddName(b, text)
        tensors.append(tflite.TensorEnd(b))
    op_inputs = int_vector(tflite.OperatorStartInputsVector, [0])
    op_outputs = int_vector(tflite.OperatorStartOutputsVector, [1])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, op_inputs)
    tflite.OperatorAddOutputs(b, op_outputs)
    relu = tflite.OperatorEnd(b)

    tensor_vec = table_vector(tflite.SubGraphStartTensorsVector, tensors)
    sg_inputs = int_vector(tflite.SubGraphStartInputsVector, [0])
    sg_outputs = int_vector(tflite.SubGraphStartOutputsVector, [1])
    op_vec = table_vector(tflite.SubGraphStartOperatorsVector, [relu])
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, op_vec)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.RELU)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.RELU)
    tflite.OperatorCodeAddVersion(b, 1)
    code = tflite.OperatorCodeEnd(b)

    tflite.BufferStart(b)
    sentinel = tflite.BufferEnd(b)

    codes = table_vector(tflite.ModelStartOperatorCodesVector, [code])
    subgraphs = table_vector(tflite.ModelStartSubgraphsVector, [subgraph])
    buffers = table_vector(tflite.ModelStartBuffersVector, [sentinel])
    description = b.CreateString("edgert control model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddBuffers(b, buffers)
    tflite.ModelAddDescription(b, description)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
