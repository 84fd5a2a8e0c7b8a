"""ONNX models in: ``.onnx`` -> onnx2tf (its own venv, its own process) -> SavedModel -> our TFLiteConverter.

onnx2tf turns the NCHW graph into an NHWC TensorFlow graph; edgert then runs the
same ``TFLiteConverter`` path as for Keras (representative dataset, target
settings, per-layer report). onnx2tf's own int8 is not used: its per-channel
int8 failed on MobileNetV2 and its uint8 output was silently clamped.

onnx2tf 1.29 pins TensorFlow 2.19 and numpy 1.26, which cannot share a venv
with edgert's TensorFlow 2.21 / numpy 2, so it runs in a separate interpreter:
``$EDGERT_ONNX2TF_PYTHON``, else ``.venv-onnx2tf/bin/python`` in the working
directory or beside the edgert checkout (``make`` builds that venv), else the
current interpreter when it can import onnx2tf.

onnx2tf downloads a sample-image file for any 3-channel input, which fails
offline: edgert writes that file itself (from the calibration samples) into
the child's working directory, and the child runs with proxies pointing nowhere
so nothing else can reach the network either.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgert.convert.layout import channels_last_shape, layout_of, to_channels_first
from edgert.convert.source_model import SourceModel, from_saved_model, sha256_file
from edgert.errors import ConversionError, InputDataError

__all__ = ["OnnxSource", "load_onnx", "onnx2tf_python", "ONNX_SUFFIXES", "ONNX2TF_VERSION"]

log = logging.getLogger("edgert.convert")

#: Files read as ONNX.
ONNX_SUFFIXES = (".onnx",)
#: The onnx2tf release edgert drives (the last for Python 3.11; it pins TF 2.19 / numpy 1.26).
ONNX2TF_VERSION = "1.29.24"
#: Where the separate interpreter is looked for, relative to the working directory and the checkout.
VENV_DIR = ".venv-onnx2tf"
#: The file onnx2tf fetches for 3-channel inputs (utils/common_functions.download_test_image_data).
_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_SAMPLE_SHAPE = (20, 128, 128, 3)
#: onnx2tf on a small CNN takes ~40 s on a loaded 2-core machine; big models minutes.
_TIMEOUT_S = 1800
#: ONNX domains onnx2tf maps (custom domains are refused up front, naming the node).
_DOMAINS = ("", "ai.onnx")
#: onnx2tf results of this process by (file digest, input shape): converting one model for
#: several targets runs onnx2tf once.
_converted: dict[tuple, tuple[SourceModel, Path]] = {}
INSTALL_HINT = (
    f"python3 -m venv {VENV_DIR} && {VENV_DIR}/bin/pip install onnx2tf=={ONNX2TF_VERSION} "
    f"(or `make {VENV_DIR}/.stamp`; point EDGERT_ONNX2TF_PYTHON at another interpreter)"
)


def _import_onnx():
    try:
        import onnx
    except ImportError as e:
        raise ConversionError(f"onnx is not installed ({e})", "pip install 'edgert[onnx]'") from None
    return onnx


def onnx2tf_python() -> str:
    """The interpreter that runs onnx2tf.

    Raises:
        ConversionError: None is found (the message says how to make one).
    """
    env = os.environ.get("EDGERT_ONNX2TF_PYTHON")
    if env:
        if not Path(env).exists():
            raise ConversionError(f"EDGERT_ONNX2TF_PYTHON={env}: no such interpreter", INSTALL_HINT)
        return env
    checkout = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), checkout):
        cand = base / VENV_DIR / "bin" / "python"
        if cand.exists():
            return str(cand)
    import importlib.util

    if importlib.util.find_spec("onnx2tf") is not None:
        return sys.executable
    raise ConversionError("onnx2tf is not installed (ONNX models convert through it)", INSTALL_HINT)


@dataclass
class OnnxSource(SourceModel):
    """An ONNX model: onnx2tf's SavedModel converts, onnxruntime runs the original as the reference.

    Attributes:
        onnx_path: The ``.onnx`` file.
        input_name: Name of the ONNX input.
        source_input_shape: Input shape in the model's own layout (no batch).
        source_layout: ``"NCHW"``, ``"NCL"`` or None.
    """

    onnx_path: str = ""
    input_name: str = ""
    source_input_shape: tuple[int, ...] = ()
    source_layout: str | None = None
    route: str = "onnx"
    _session: Any = None
    _workdir: Any = None

    def predict(self, x: np.ndarray, batch_size: int = 1) -> np.ndarray:
        """Run the original model in onnxruntime on channels-last ``x``; first output, float32."""
        if self._session is None:
            try:
                import onnxruntime as ort
            except ImportError as e:
                raise ConversionError(f"onnxruntime is not installed ({e})", "pip install 'edgert[onnx]'") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # the reference must not depend on the machine's load
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self.onnx_path, opts, providers=["CPUExecutionProvider"])
        outs = []
        for i in range(len(x)):
            chunk = np.asarray(x[i : i + 1], np.float32)
            if self.source_layout:
                chunk = to_channels_first(chunk)
            outs.append(np.asarray(self._session.run(None, {self.input_name: chunk})[0], np.float32))
        return np.concatenate(outs, axis=0)


def _check_graph(model, path: Path, input_shape: Sequence[int] | None) -> tuple[str, tuple[int, ...]]:
    graph = model.graph
    init = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ConversionError(f"{path}: {len(inputs)} inputs; only single-input models are supported")
    inp = inputs[0]
    for node in graph.node:
        if node.domain not in _DOMAINS:
            raise ConversionError(
                f"{path}: node {node.name or node.op_type!r} is op {node.domain}.{node.op_type}, outside the ONNX standard",
                "export without custom ops (torch.onnx.export with standard opsets) or replace that layer",
            )
    dims = inp.type.tensor_type.shape.dim
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != len(dims):
            raise InputDataError(f"--input-shape {list(shape)} has {len(shape)} dimensions, input {inp.name!r} has {len(dims)}")
    else:
        shape_list: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        dynamic = [i for i, d in enumerate(shape_list) if not isinstance(d, int) or d <= 0]
        if any(i > 0 for i in dynamic):
            concrete = ",".join(
                str(d) if isinstance(d, int) and d > 0 else ("1" if i == 0 else "<size>") for i, d in enumerate(shape_list)
            )
            raise ConversionError(
                f"{path}: input {inp.name!r} has dynamic dimension(s) {[shape_list[i] for i in dynamic if i > 0]}",
                f"give the sizes with --input-shape {concrete}",
            )
        shape = tuple(1 if i == 0 else int(d) for i, d in enumerate(shape_list))
    if shape[0] != 1:
        log.info("%s: batch %d -> 1 (devices run one sample at a time)", path, shape[0])
        shape = (1, *shape[1:])
    return inp.name, shape


def _sample_file(workdir: Path, samples: np.ndarray | None, nhwc_shape: tuple[int, ...]) -> None:
    """Write the sample file onnx2tf would download, from our own calibration data (or a gradient)."""
    if samples is not None and len(samples) and len(nhwc_shape) == 3 and nhwc_shape[-1] == 3:
        # onnx2tf resizes these itself; nearest-neighbour to 128x128 keeps their statistics.
        h, w = nhwc_shape[:2]
        rows = (np.arange(128) * h // 128).clip(0, h - 1)
        cols = (np.arange(128) * w // 128).clip(0, w - 1)
        picked = samples[np.arange(_SAMPLE_SHAPE[0]) % len(samples)]
        data = picked[:, rows][:, :, cols].astype(np.float32)
    else:
        yy, xx = np.meshgrid(np.linspace(0, 1, 128, dtype=np.float32), np.linspace(0, 1, 128, dtype=np.float32), indexing="ij")
        data = np.broadcast_to(np.stack([yy, xx, (yy + xx) / 2], -1), _SAMPLE_SHAPE).astype(np.float32)
    np.save(workdir / _SAMPLE_FILE, np.ascontiguousarray(data))


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    # Port 9 (discard) on loopback refuses at once: any download attempt fails fast instead of hanging.
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env[k] = "http://127.0.0.1:9"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _onnx2tf_error(text: str, path: Path, shape: tuple[int, ...]) -> ConversionError:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    node = next((ln for ln in lines if "onnx_op_name:" in ln or "onnx_op_type:" in ln), "")
    err = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "no output")
    if "127.0.0.1:9" in text or "ProxyError" in text:
        return ConversionError(
            f"onnx2tf tried to download a file for {path.name}", "this is an edgert bug: run with --verbose and report it"
        )
    where = f" ({node[:120]})" if node else ""
    hint = (
        f"fix the input size with --input-shape {','.join(map(str, shape))}"
        if any(w in text.lower() for w in ("dynamic", "unknown rank", "none", "shape"))
        else "replace that op in the model, or export with another opset"
    )
    return ConversionError(f"onnx2tf failed on {path.name}{where}: {err[:200]}", hint)


def _run_onnx2tf(path: Path, input_name: str, shape: tuple[int, ...], samples: np.ndarray | None, workdir: Path) -> Path:
    python = onnx2tf_python()
    out = workdir / "saved_model"
    _sample_file(workdir, samples, channels_last_shape(shape[1:]))
    cmd = [
        python,
        "-m",
        "onnx2tf",
        "-i",
        str(path.resolve()),
        "-o",
        str(out),
        "-osd",  # signature defs: our loader reads serving_default
        "-ois",
        f"{input_name}:{','.join(map(str, shape))}",  # static batch 1 (and the user's --input-shape)
        "-v",
        "error",
    ]
    log.info("running onnx2tf: %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=_offline_env(), capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConversionError(
            f"onnx2tf did not finish in {_TIMEOUT_S} s on {path.name}", "try a smaller input size with --input-shape"
        ) from None
    log.debug("onnx2tf output:\n%s\n%s", proc.stdout, proc.stderr)
    if proc.returncode != 0 or not (out / "saved_model.pb").is_file():
        raise _onnx2tf_error(proc.stdout + "\n" + proc.stderr, path, shape)
    return out


def load_onnx(path: str | Path, *, input_shape: Sequence[int] | None = None, samples: np.ndarray | None = None) -> OnnxSource:
    """Load an ``.onnx`` file and convert its graph to an NHWC SavedModel with onnx2tf.

    Args:
        path: The ``.onnx`` file.
        input_shape: Input shape with the batch (fixes dynamic dimensions).
        samples: Calibration samples (channels-last) for onnx2tf's own trial inference.

    Raises:
        ConversionError: Not ONNX, custom-domain ops, a dynamic shape, onnx2tf missing or failing.
    """
    onnx = _import_onnx()
    from google.protobuf.message import DecodeError

    p = Path(path)
    try:
        model = onnx.load(str(p), load_external_data=False)
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, OSError, DecodeError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConversionError(f"{p}: not a valid ONNX model ({first})", "export it with torch.onnx.export or onnx.save") from None
    input_name, shape = _check_graph(model, p, input_shape)
    src_shape = tuple(shape[1:])
    sha = sha256_file(p)
    key = (sha, shape)
    base, workdir = _converted.get(key, (None, None))
    if base is None:
        workdir = Path(tempfile.mkdtemp(prefix="edgert-onnx2tf-"))
        # The SavedModel is read lazily by TensorFlow; the folder goes when the process ends.
        atexit.register(shutil.rmtree, workdir, True)
        try:
            saved = _run_onnx2tf(p, input_name, shape, samples, workdir)
            base = from_saved_model(saved)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        _converted[key] = (base, workdir)
    else:
        log.info("%s: onnx2tf result reused (same file and input shape)", p)
    expected = channels_last_shape(src_shape)
    if tuple(base.input_shape) != tuple(expected):
        log.info("onnx2tf input shape %s (expected %s)", base.input_shape, expected)
    layout = layout_of(src_shape) if tuple(base.input_shape) != src_shape else None
    return OnnxSource(
        format="onnx",
        sha256=sha,
        path=str(p),
        input_shape=tuple(base.input_shape),
        input_dtype=base.input_dtype,
        layer_names=[n.name for n in model.graph.node if n.name],
        _saved=base._saved,
        _signature=base._signature,
        _input_name=base._input_name,
        onnx_path=str(p),
        input_name=input_name,
        source_input_shape=src_shape,
        source_layout=layout,
        _workdir=workdir,
    )
