"""Reference outputs of ai-edge-litert on the conformance models, for comparing other backends.

The tflite-runtime venv has no ai-edge-litert, so its check against ai-edge-litert
uses outputs recorded here. Inputs are an exact integer pattern (no RNG, no libm),
identical under any numpy. Two outputs per model are recorded: the default
interpreter (XNNPACK applied) and the builtin kernels alone
(``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``), because XNNPACK's int8
kernels round differently from the builtin ones (up to a few LSB on deep int8
models) and tflite-runtime 2.14 does not hand those models to XNNPACK.
Regenerate (in the main venv) with::

    .venv/bin/python tests/runtime/reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).with_name("data") / "litert_reference.npz"


def pattern_input(spec) -> np.ndarray:
    """A deterministic input covering the whole int8/uint8 range (floats: exact multiples of 1/128 in [-1, 1))."""
    n = int(np.prod(spec.shape, dtype=np.int64))
    codes = (np.arange(n, dtype=np.int64) * 37 + 11) % 256  # 37 is coprime with 256: every code appears
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        values = (codes.astype(np.float32) - 128) / np.float32(128)
    elif dtype == np.uint8:
        values = codes
    else:
        values = codes - 128
    return values.astype(dtype).reshape(spec.shape)


def write_reference(corpus: Path, out: Path = REFERENCE) -> dict:
    """Record ai-edge-litert's raw outputs (one thread) on :func:`pattern_input` for every model."""
    from edgert.runtime import load_model

    arrays, info = {}, {}
    for path in sorted((corpus / "models").glob("*.tflite")):
        model = load_model(path, backend="ai_edge_litert", threads=1)
        inputs = [pattern_input(s) for s in model.inputs]
        outputs = model.predict(*inputs, dequantize_output=False)
        builtin = load_model(path, backend="ai_edge_litert", threads=1, kernels="builtin")
        for i, (o, b) in enumerate(zip(outputs, builtin.predict(*inputs, dequantize_output=False))):
            arrays[f"{path.stem}/{i}"] = o
            arrays[f"{path.stem}/{i}/builtin"] = b
        info[path.stem] = {"sha256": model.file.sha256, "outputs": len(outputs)}
        backend = model.backend
    arrays["__info__"] = np.frombuffer(
        json.dumps({"backend": backend.name, "version": backend.version, "models": info}).encode(), np.uint8
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return info


def read_reference(path: Path = REFERENCE) -> tuple[dict, dict[str, np.ndarray]]:
    """(info, {"<model stem>/<output index>[/builtin]": raw output})."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    info = json.loads(arrays.pop("__info__").tobytes().decode())
    return info, arrays


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "conformance"
    print(json.dumps(write_reference(corpus), indent=1))
