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
recording (see :func:`claim`).

There is one recording per architecture (``data/litert_reference_<machine>.npz``): on a machine
with its own recording the optimized kernels are held to bit-identity, and the recordings of two
architectures are compared with each other as :func:`claim` says (``test_predict.py``).
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

#: Float outputs that are not claimed bit-identical agree within this share of the output's largest magnitude.
FLOAT_RELATIVE = 1e-2

#: What is equal to what, and how exactly (README, "Equal results"); the tests assert exactly this.
#: Each claim is (integer LSB bound, floats bit-identical): 0 LSB is the same integers; where the bound is above 0
#: the top-1 is equal too. Measured with ai-edge-litert 2.3 and tflite-runtime 2.14 on the conformance models, on
#: x86-64 and on an emulated Pi 4 (tools/aarch64_lane.py).
#:
#: Same backend build, same CPU architecture: the same bits, every kernel set.
SAME_BUILD_SAME_ARCH = (0, True)
#: One backend build (ai-edge-litert 2.3), x86-64 vs aarch64, per kernel set. XNNPACK's int8 kernels are built to
#: match one scalar reference on every CPU: the same integers. TFLite's builtin optimized kernels take other SIMD
#: paths: 11 LSB on ResNet-8, 0 on the other models. The reference kernels: the same integers. Floats: below 1e-6.
CROSS_ARCH = {"auto": (0, False), "builtin": (11, False), "reference": (0, False)}
#: tflite-runtime 2.14 vs ai-edge-litert 2.3 on one architecture, per kernel set. tflite-runtime 2.14 does not hand
#: some int8 models to XNNPACK, so its default ("auto") is compared with both of ai-edge-litert's recordings (default
#: and builtin). On x86-64 the builtin kernels of both builds give the same bits; on aarch64 they differ like two
#: architectures do (11 LSB on ResNet-8). Their reference kernels round 2 LSB apart on the AD01 autoencoder.
CROSS_BUILD = {
    "x86_64": {"auto": (0, False), "builtin": (0, True), "reference": (2, False)},
    "aarch64": {"auto": (11, False), "builtin": (11, False), "reference": (2, False)},
}


def claim(kernels: str, *, same_build: bool, recorded_on: str) -> tuple[int, bool]:
    """(integer LSB bound, floats bit-identical) for this machine's ``kernels`` outputs against a recording."""
    same_arch = recorded_on == machine()
    if same_build and same_arch:
        return SAME_BUILD_SAME_ARCH
    if same_build:
        return CROSS_ARCH[kernels]
    if same_arch:
        return CROSS_BUILD[machine()][kernels]
    raise AssertionError(f"no claim for another build on another architecture: record {machine()} (reference.py)")


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


def assert_as_claimed(got: np.ndarray, recorded: list[np.ndarray], claimed: tuple[int, bool]) -> None:
    """Assert ``got`` equals one of the ``recorded`` outputs as ``claimed`` (see :func:`claim`).

    Args:
        got: A raw output tensor.
        recorded: The recorded outputs it may equal (e.g. XNNPACK's and the builtin kernels').
        claimed: (integer LSB bound, floats bit-identical). Floats not claimed bit-identical agree within
            :data:`FLOAT_RELATIVE` of their largest magnitude; integers off by more than 0 LSB keep the top-1.
    """
    lsb, float_exact = claimed
    want = recorded[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype.kind == "f":
        if float_exact:
            assert any(got.tobytes() == r.tobytes() for r in recorded)
        else:
            scale = FLOAT_RELATIVE * float(np.abs(want).max())
            assert any(np.allclose(got, r, rtol=0, atol=scale) for r in recorded)
        return
    close = [r for r in recorded if int(np.abs(got.astype(np.int64) - r.astype(np.int64)).max(initial=0)) <= lsb]
    assert close, f"more than {lsb} LSB from every recorded output"
    if lsb and got.ndim and got.size > 1:
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
