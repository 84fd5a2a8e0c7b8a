"""Small, checked edits of a converted flatbuffer: I/O types and layout transposes.

litert-torch writes int8 inputs and int8 or float outputs; Coral's profile wants
uint8 on both ends and microcontrollers int8, so the model's I/O is rewritten
here the way ``TFLiteConverter`` does it itself (a QUANTIZE op uint8<->int8 at
the edge, same scale, zero point + 128). A 1-D (NCL) PyTorch model comes out
with TRANSPOSE/RESHAPE chains that only move size-1 axes, and with a
TRANSPOSE in front of a MEAN that does not care about the order: both are
folded into one RESHAPE / one MEAN, so no TRANSPOSE is left around convolutions.

Every edit is followed by a comparison of the edited and the original model
on real inputs by the caller (:mod:`edgert.convert.verify`).
"""

from __future__ import annotations

import logging

import numpy as np

from edgert.errors import ConversionError

__all__ = ["set_io_types", "fold_layout_transposes"]

log = logging.getLogger("edgert.convert")


def _schema():
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.python import util

    return fb, util


def _load(data: bytes):
    fb, util = _schema()
    return util._convert_model_from_bytearray_to_object(bytearray(data))


def _dump(model) -> bytes:
    _, util = _schema()
    return bytes(util._convert_model_from_object_to_bytearray(model))


def _opcode(model, builtin: int) -> int:
    fb, _ = _schema()
    from tensorflow.lite.python import schema_util

    for i, code in enumerate(model.operatorCodes):
        if schema_util.get_builtin_code_from_operator_code(code) == builtin:
            return i
    code = fb.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _builtin(model, op) -> int:
    from tensorflow.lite.python import schema_util

    return schema_util.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])


def _quant(scale: float, zero_point: int):
    fb, _ = _schema()
    q = fb.QuantizationParametersT()
    q.scale = [float(scale)]
    q.zeroPoint = [int(zero_point)]
    return q


def _new_tensor(model, subgraph, like, dtype: int, quant, name: str) -> int:
    fb, _ = _schema()
    t = fb.TensorT()
    t.shape = np.array(like.shape, np.int32) if like.shape is not None else None
    t.shapeSignature = like.shapeSignature
    t.type = dtype
    t.name = name.encode() if isinstance(name, str) else name
    t.quantization = quant
    model.buffers.append(fb.BufferT())
    t.buffer = len(model.buffers) - 1
    subgraph.tensors.append(t)
    return len(subgraph.tensors) - 1


def _new_op(opcode: int, inputs: list[int], outputs: list[int]):
    fb, _ = _schema()
    op = fb.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = np.array(inputs, np.int32)
    op.outputs = np.array(outputs, np.int32)
    return op


def _retarget_signature(model, old: int, new: int, which: str) -> None:
    for sig in model.signatureDefs or []:
        for t in getattr(sig, which) or []:
            if t.tensorIndex == old:
                t.tensorIndex = new


def _name(t) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def _edge_tensor(model, subgraph, t, dtype: int) -> int:
    """A new I/O tensor of ``dtype`` beside int8 tensor ``t`` (which keeps its data, renamed ``*_int8``)."""
    fb, _ = _schema()
    q = t.quantization
    quant = _quant(q.scale[0], q.zeroPoint[0] + 128) if dtype == fb.TensorType.UINT8 else None
    new = _new_tensor(model, subgraph, t, dtype, quant, _name(t))
    t.name = (_name(t) + "_int8").encode()
    return new


def set_io_types(data: bytes, input_dtype: str, output_dtype: str) -> bytes:
    """Rewrite a quantized model's input and output types to ``int8``, ``uint8`` or ``float32``.

    Handles both shapes converters leave: a float edge with QUANTIZE/DEQUANTIZE
    (made integer by removing or retyping that op) and an int8 edge (uint8 by a
    new QUANTIZE op). Scales are unchanged; uint8 zero points are int8's + 128.

    Raises:
        ConversionError: An edge is neither (e.g. a float tensor computed in float).
    """
    fb, util = _schema()
    T = fb.TensorType  # noqa: N806 (the schema's enum, named as TensorFlow's own util names it)
    want = {"int8": T.INT8, "uint8": T.UINT8, "float32": T.FLOAT32}
    if input_dtype not in want or output_dtype not in want:
        raise ConversionError(f"I/O type {input_dtype}/{output_dtype} is not possible here", "use int8, uint8 or float32")
    model = _load(data)
    quantize, dequantize = fb.BuiltinOperator.QUANTIZE, fb.BuiltinOperator.DEQUANTIZE
    removed: set[int] = set()
    for sg in model.subgraphs:
        tensors, ops = sg.tensors, sg.operators
        for pos, idx in enumerate(list(sg.inputs)):
            t = tensors[idx]
            target = want[input_dtype]
            if t.type == target:
                continue
            consumers = [op for op in ops if idx in list(op.inputs)]
            if t.type == T.FLOAT32 and len(consumers) == 1 and _builtin(model, consumers[0]) == quantize:
                op = consumers[0]
                q_idx = int(op.outputs[0])
                qt = tensors[q_idx]
                if qt.type != T.INT8:
                    raise ConversionError(f"input {_name(t)!r} is quantized to {qt.type}, not int8")
                if target == T.UINT8:
                    t.type = T.UINT8
                    t.quantization = _quant(qt.quantization.scale[0], qt.quantization.zeroPoint[0] + 128)
                elif target == T.INT8:
                    sg.inputs[pos] = q_idx
                    _retarget_signature(model, idx, q_idx, "inputs")
                    ops.remove(op)
                    removed.add(idx)
                else:
                    raise ConversionError(f"input {_name(t)!r} is float already")
            elif t.type == T.INT8 and target in (T.UINT8, T.FLOAT32):
                new = _edge_tensor(model, sg, t, target)
                ops.insert(0, _new_op(_opcode(model, quantize), [new], [idx]))  # QUANTIZE takes float or uint8
                sg.inputs[pos] = new
                _retarget_signature(model, idx, new, "inputs")
            else:
                raise ConversionError(f"input {_name(t)!r} of type {t.type} cannot be made {input_dtype}")
        for pos, idx in enumerate(list(sg.outputs)):
            t = tensors[idx]
            target = want[output_dtype]
            if t.type == target:
                continue
            producers = [op for op in ops if idx in list(op.outputs)]
            op = producers[0] if producers else None
            if t.type == T.FLOAT32 and op is not None and _builtin(model, op) == dequantize:
                q_idx = int(op.inputs[0])
                qt = tensors[q_idx]
                if qt.type != T.INT8:
                    raise ConversionError(f"output {_name(t)!r} is dequantized from {qt.type}, not int8")
                if target == T.UINT8:
                    op.opcodeIndex = _opcode(model, quantize)
                    t.type = T.UINT8
                    t.quantization = _quant(qt.quantization.scale[0], qt.quantization.zeroPoint[0] + 128)
                else:
                    sg.outputs[pos] = q_idx
                    _retarget_signature(model, idx, q_idx, "outputs")
                    ops.remove(op)
                    removed.add(idx)
            elif t.type == T.INT8 and target in (T.UINT8, T.FLOAT32):
                new = _edge_tensor(model, sg, t, target)
                ops.append(_new_op(_opcode(model, quantize if target == T.UINT8 else dequantize), [idx], [new]))
                sg.outputs[pos] = new
                _retarget_signature(model, idx, new, "outputs")
            else:
                raise ConversionError(
                    f"output {_name(t)!r} of type {t.type} is computed in float",
                    "its last op has no int8 kernel here: end the model on a quantizable op (linear, conv, softmax)",
                )
    if removed:
        util._remove_tensors_from_model(model, removed)
    return _dump(model)


# --- layout transposes -------------------------------------------------------------------------


def _const(model, t) -> np.ndarray | None:
    buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
    if buf is None or len(buf) == 0:
        return None
    return np.frombuffer(bytes(bytearray(buf)), np.int32)


def _shape(t) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def _apply(index: np.ndarray, model, op, tensors) -> np.ndarray | None:
    """Apply a TRANSPOSE/RESHAPE to an index array, or None when the op is not one of those."""
    fb, _ = _schema()
    code = _builtin(model, op)
    out_shape = _shape(tensors[op.outputs[0]])
    if code == fb.BuiltinOperator.TRANSPOSE:
        perm = _const(model, tensors[op.inputs[1]])
        return None if perm is None else np.transpose(index, perm)
    if code == fb.BuiltinOperator.RESHAPE:
        return index.reshape(out_shape)
    return None


def _same_quant(a, b) -> bool:
    qa, qb = a.quantization, b.quantization
    if a.type != b.type:
        return False
    if qa is None or qa.scale is None or qb is None or qb.scale is None:
        return (qa is None or qa.scale is None) and (qb is None or qb.scale is None)
    return list(qa.scale) == list(qb.scale) and list(qa.zeroPoint) == list(qb.zeroPoint)


def _compose(model, chain, tensors, src_shape: tuple[int, ...]) -> np.ndarray | None:
    """Where each source element ends up after the chain (an index array), or None for another op."""
    index: np.ndarray | None = np.arange(int(np.prod(src_shape))).reshape(src_shape)
    for op in chain:
        index = _apply(index, model, op, tensors) if index is not None else None
    return index


def _consumers(ops, idx: int) -> list:
    return [op for op in ops if idx in list(op.inputs)]


def _chain(model, sg, start) -> list:
    """The longest run of TRANSPOSE/RESHAPE ops from ``start``, each the only consumer of the last."""
    fb, _ = _schema()
    kinds = (fb.BuiltinOperator.TRANSPOSE, fb.BuiltinOperator.RESHAPE)
    chain = [start]
    while True:
        out = int(chain[-1].outputs[0])
        if out in list(sg.outputs):
            break
        nxt = _consumers(sg.operators, out)
        if len(nxt) != 1 or _builtin(model, nxt[0]) not in kinds:
            break
        chain.append(nxt[0])
    return chain


def _reshape_op(model, sg, src: int, dst: int):
    fb, _ = _schema()
    shape = np.array(_shape(sg.tensors[dst]), np.int32)
    t = fb.TensorT()
    t.shape = np.array([len(shape)], np.int32)
    t.type = fb.TensorType.INT32
    t.name = (_name(sg.tensors[dst]) + "/edgert_shape").encode()
    buf = fb.BufferT()
    buf.data = np.frombuffer(shape.tobytes(), np.uint8)
    model.buffers.append(buf)
    t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    op = _new_op(_opcode(model, fb.BuiltinOperator.RESHAPE), [src, len(sg.tensors) - 1], [dst])
    op.builtinOptionsType = fb.BuiltinOptions.ReshapeOptions
    opts = fb.ReshapeOptionsT()
    opts.newShape = shape
    op.builtinOptions = opts
    return op


def _axes_tensor(model, sg, axes: list[int], name: str) -> int:
    fb, _ = _schema()
    arr = np.array(axes, np.int32)
    t = fb.TensorT()
    t.shape = np.array([len(arr)], np.int32)
    t.type = fb.TensorType.INT32
    t.name = name.encode()
    buf = fb.BufferT()
    buf.data = np.frombuffer(arr.tobytes(), np.uint8)
    model.buffers.append(buf)
    t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _mean_axes(model, sg, chain, mean_op) -> list[int] | None:
    """Axes of the chain's input a MEAN after the chain reduces, when they give the same result in order."""
    tensors = sg.tensors
    src_shape = _shape(tensors[chain[0].inputs[0]])
    index = _compose(model, chain, tensors, src_shape)
    raw_axes = _const(model, tensors[mean_op.inputs[1]])
    if index is None or raw_axes is None:
        return None
    axes = [int(a) % index.ndim for a in raw_axes]
    kept = [a for a in range(index.ndim) if a not in axes]
    groups = np.transpose(index, kept + axes).reshape(int(np.prod([index.shape[a] for a in kept] or [1])), -1)
    # group g of the output holds these source elements; find the source axes they span.
    flat_groups = np.empty(int(np.prod(src_shape)), np.int64)
    flat_groups[groups.reshape(-1)] = np.repeat(np.arange(len(groups)), groups.shape[1])
    src_groups = flat_groups.reshape(src_shape)
    reduced = [a for a in range(len(src_shape)) if src_shape[a] > 1 and np.all(np.diff(src_groups, axis=a) == 0)]
    keep_src = [a for a in range(len(src_shape)) if a not in reduced]
    first = src_groups[tuple(slice(None) if a in keep_src else 0 for a in range(len(src_shape)))]
    if not np.array_equal(first.reshape(-1), np.arange(len(groups))):
        return None  # the output order would change: the transpose is needed
    if int(np.prod([src_shape[a] for a in reduced] or [1])) != groups.shape[1]:
        return None
    return reduced


def fold_layout_transposes(data: bytes) -> tuple[bytes, int]:
    """Fold TRANSPOSE chains that only reorder size-1 axes, or that only feed a MEAN.

    Returns:
        ``(model bytes, number of TRANSPOSE ops removed)``; the bytes are unchanged when none was.
    """
    fb, util = _schema()
    model = _load(data)
    removed_ops = 0
    for sg in model.subgraphs:
        changed = True
        while changed:
            changed = False
            for op in list(sg.operators):
                if _builtin(model, op) != fb.BuiltinOperator.TRANSPOSE:
                    continue
                if op in sg.operators and sg.operators.index(op) > 0:
                    prev = [p for p in sg.operators if int(op.inputs[0]) in list(p.outputs)]
                    single = prev and len(_consumers(sg.operators, int(prev[0].outputs[0]))) == 1
                    if single and _builtin(model, prev[0]) == fb.BuiltinOperator.RESHAPE:
                        continue  # handled from the start of the chain
                chain = _chain(model, sg, op)
                n_transposes = sum(1 for c in chain if _builtin(model, c) == fb.BuiltinOperator.TRANSPOSE)
                src, dst = int(chain[0].inputs[0]), int(chain[-1].outputs[0])
                src_shape = _shape(sg.tensors[src])
                index = _compose(model, chain, sg.tensors, src_shape)
                if index is None or not _same_quant(sg.tensors[src], sg.tensors[dst]):
                    continue  # a requantizing reshape is not a pure layout move
                pos = sg.operators.index(chain[0])
                if np.array_equal(index.reshape(-1), np.arange(index.size)):
                    for c in chain:
                        sg.operators.remove(c)
                    sg.operators.insert(pos, _reshape_op(model, sg, src, dst))
                    removed_ops += n_transposes
                    changed = True
                    break
                nxt = _consumers(sg.operators, dst)
                if len(nxt) == 1 and _builtin(model, nxt[0]) == fb.BuiltinOperator.MEAN and dst not in list(sg.outputs):
                    mean = nxt[0]
                    axes = _mean_axes(model, sg, chain, mean)
                    if axes is None:
                        continue
                    keep = bool(getattr(mean.builtinOptions, "keepDims", False))
                    if keep:
                        continue
                    mean_out = int(mean.outputs[0])
                    for c in chain:
                        sg.operators.remove(c)
                    axes_idx = _axes_tensor(model, sg, axes, _name(sg.tensors[mean_out]) + "/edgert_axes")
                    mean.inputs = np.array([src, axes_idx], np.int32)
                    # MEAN(keep_dims=False) over the source axes drops them; the old output shape may differ.
                    reduced_shape = tuple(d for a, d in enumerate(src_shape) if a not in axes)
                    if reduced_shape != _shape(sg.tensors[mean_out]):
                        mid = _new_tensor(
                            model,
                            sg,
                            sg.tensors[mean_out],
                            sg.tensors[mean_out].type,
                            sg.tensors[mean_out].quantization,
                            _name(sg.tensors[mean_out]) + "/edgert_mean",
                        )
                        sg.tensors[mid].shape = np.array(reduced_shape, np.int32)
                        sg.tensors[mid].shapeSignature = None
                        mean.outputs = np.array([mid], np.int32)
                        sg.operators.insert(sg.operators.index(mean) + 1, _reshape_op(model, sg, mid, mean_out))
                    removed_ops += n_transposes
                    changed = True
                    break
    if not removed_ops:
        return data, 0
    log.info("folded %d layout TRANSPOSE op(s) into RESHAPE/MEAN", removed_ops)
    return _dump(model), removed_ops
