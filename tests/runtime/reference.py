"""Reference outputs of ai-edge-litert on the conformance models, for comparing other backends.

The tflite-runtime venv has no ai-edge-litert, so its check against ai-edge-litert
uses outputs recorded here. Inputs are an exact integer pattern (no RNG, no libm),
identical under any numpy. Three outputs per model are recorded: the default
interpreter (XNNPACK applied), the builtin kernels alone
(``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``), because XNNPACK's int8
kernels round differently from the builtin ones (up to a few LSB on deep int8
models) and tflite-runtime 2.14 does not hand those models to XNNPACK, and
TFLite's reference kernels (``BUILTIN_REF``), which compute the same integer bits
on every CPU architecture for one backend build. The recording names the architecture it was made on:
what the optimized kernels compute differs between x86-64 and aarch64 (they take
other SIMD paths), so those bits are only claimed on the architecture of the
recording (see :data:`EQUALITY`).

There is one recording per architecture (``data/litert_reference_<machine>.npz``): on a machine
with its own recording the optimized kernels are held to bit-identity, and the recordings of two
architectures are compared with each other as :data:`EQUALITY` claims (``test_predict.py``).
Regenerate this machine's with ai-edge-litert installed (x86-64: the main venv; aarch64: the
ai-edge-litert venv of ``tools/aarch64_lane.py``)::

    .venv/bin/python tests/runtime/reference.py [CORPUS] [--out PATH]
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

RECORDINGS = Path(__file__).with_name("data")

#: What is equal to what, and how exactly (README, "Equal results"); the tests assert exactly this.
EQUALITY = {
    # Same backend build, same CPU architecture: the same bits, every kernel set.
    "same_build_same_arch": "bit-identical",
    # Reference kernels of one backend build: the same integer bits on every architecture.
    "reference_kernels_same_build": "bit-identical",
    # Integer outputs on another architecture, per kernel set: within this many LSB, top-1 equal. Measured with
    # ai-edge-litert 2.3 on x86-64 and on an emulated Pi 4 (cortex-a72): XNNPACK's int8 kernels give the same bits
    # (they are built to match one scalar reference on every CPU); TFLite's builtin optimized kernels take other SIMD
    # paths (11 LSB on ResNet-8, 0 on the other conformance models); the reference kernels are bit-identical.
    "cross_arch_int8_lsb": {"auto": 0, "builtin": 11, "reference": 0},
    # Float outputs on another build or architecture: within this share of the output's largest magnitude.
    "float_relative": 1e-2,
}


def machine() -> str:
    """This CPU architecture as the recording names it (``x86_64``, ``aarch64``)."""
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


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


def recording_path(arch: str) -> Path:
    return RECORDINGS / f"litert_reference_{arch}.npz"


def recorded_architectures() -> list[str]:
    return sorted(p.stem.removeprefix("litert_reference_") for p in RECORDINGS.glob("litert_reference_*.npz"))


def write_reference(corpus: Path, out: Path | None = None) -> dict:
    """Record ai-edge-litert's raw outputs (one thread) on :func:`pattern_input` for every model."""
    from edgert.runtime import load_model

    arrays, info = {}, {}
    for path in sorted((corpus / "models").glob("*.tflite")):
        model = load_model(path, backend="ai_edge_litert", threads=1)
        inputs = [pattern_input(s) for s in model.inputs]
        outputs = model.predict(*inputs, dequantize_output=False)
        builtin = load_model(path, backend="ai_edge_litert", threads=1, kernels="builtin")
        reference = load_model(path, backend="ai_edge_litert", threads=1, kernels="reference")
        for i, (o, b, r) in enumerate(zip(outputs, builtin.predict(*inputs, dequantize_output=False),
                                          reference.predict(*inputs, dequantize_output=False), strict=True)):
            arrays[f"{path.stem}/{i}"] = o
            arrays[f"{path.stem}/{i}/builtin"] = b
            arrays[f"{path.stem}/{i}/reference"] = r
        info[path.stem] = {"sha256": model.file.sha256, "outputs": len(outputs)}
        backend = model.backend
    arrays["__info__"] = np.frombuffer(
        json.dumps({"backend": backend.name, "version": backend.version, "machine": machine(), "models": info}).encode(),
        np.uint8,
    )
    out = out or recording_path(machine())
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return info


def assert_as_claimed(got: np.ndarray, recorded: list[np.ndarray], *, exact: bool, kernels: str = "builtin") -> None:
    """Assert ``got`` equals one of the ``recorded`` outputs as :data:`EQUALITY` claims.

    Args:
        got: A raw output tensor.
        recorded: The recorded outputs it may equal (e.g. XNNPACK's and the builtin kernels').
        exact: The claim is bit-identity (same build and architecture, or reference kernels).
            Otherwise floats agree within ``float_relative`` of their largest magnitude and
            integers within ``cross_arch_int8_lsb[kernels]`` with the same top-1.
        kernels: The kernel set of ``got`` (``auto``, ``builtin``, ``reference``); its cross-architecture bound applies.
    """
    want = recorded[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype.kind == "f":
        if exact:
            assert any(got.tobytes() == r.tobytes() for r in recorded)
        else:
            scale = EQUALITY["float_relative"] * float(np.abs(want).max())
            assert any(np.allclose(got, r, rtol=0, atol=scale) for r in recorded)
        return
    if exact:
        assert got.tobytes() in [r.tobytes() for r in recorded]
        return
    lsb = EQUALITY["cross_arch_int8_lsb"][kernels]
    close = [r for r in recorded if int(np.abs(got.astype(np.int64) - r.astype(np.int64)).max(initial=0)) <= lsb]
    assert close, f"more than {lsb} LSB from every recorded output"
    if got.ndim and got.size > 1:
        assert int(np.argmax(got.reshape(-1))) == int(np.argmax(close[0].reshape(-1))), "top-1 differs"


def read_reference(arch: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(info, {"<model stem>/<output index>[/builtin|/reference]": raw output}) of one architecture's recording.

    Default: this machine's architecture when it has a recording, else x86-64's (``info["machine"]`` says which).
    """
    if arch is None:
        arch = machine() if recording_path(machine()).exists() else "x86_64"
    with np.load(recording_path(arch), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    info = json.loads(arrays.pop("__info__").tobytes().decode())
    return info, arrays


if __name__ == "__main__":
    import argparse

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description="Record ai-edge-litert's outputs on the conformance models.")
    parser.add_argument("corpus", nargs="?", type=Path, default=root.parent / "shared" / "conformance")
    parser.add_argument("--out", type=Path, default=None, help="default: data/litert_reference_<this machine>.npz")
    args = parser.parse_args()
    print(json.dumps(write_reference(args.corpus, args.out), indent=1))
