"""Validate a model on the device: INVOKE there, compare with the host interpreter.

The device's outputs (TFLite Micro on the board, or in the simulator) are
compared sample by sample with the host's (ai-edge-litert / tflite-runtime):
the top-1 class must be equal; the largest absolute difference of the
dequantized outputs is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import InputDataError
from edgert.progress import report
from firmware_tools.errors import DeviceRejectedError, ProtocolError
from firmware_tools.flash import flash_model, invoke, read_info
from firmware_tools.link import DEFAULT_BAUDRATE, SmpLink, Timeouts

__all__ = ["load_samples", "validate_on_device"]


def load_samples(path: str | Path, spec) -> np.ndarray:
    """Read samples for input ``spec`` from an ``.npz`` (key ``x``, else the first array) or ``.npy``.

    Returns an array of shape ``(N, *spec.shape)``: float samples are left as float (quantized later),
    samples already in the input dtype are used as is.

    Raises:
        InputDataError: Missing file, no arrays, or a shape that does not match the input.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"sample file {p} not found", "pass an .npz with an array 'x' of input samples")
    try:
        loaded = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InputDataError(f"cannot read samples from {p}: {e}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        if not loaded.files:
            raise InputDataError(f"{p} holds no arrays")
        x = loaded["x"] if "x" in loaded.files else loaded[loaded.files[0]]
    else:
        x = loaded
    shape = tuple(spec.shape)
    per = int(np.prod(shape))
    if x.size % per:
        raise InputDataError(f"samples in {p} have shape {x.shape}, which is not a batch of {shape}")
    return x.reshape((-1, *shape))


def _to_input(sample: np.ndarray, spec) -> np.ndarray:
    from edgert.runtime import quantize

    if sample.dtype == np.dtype(spec.dtype):
        return np.ascontiguousarray(sample)
    if spec.quantized:
        return quantize(sample.astype(np.float32), spec)
    return sample.astype(spec.dtype)


def _dequant(raw: np.ndarray, spec) -> np.ndarray:
    from edgert.runtime import dequantize

    return dequantize(raw, spec) if spec.quantized else raw.astype(np.float64)


def validate_on_device(port: str | Any, model: bytes | str | Path, samples: np.ndarray | str | Path, *,
                       limit: int | None = None, progress=None, baudrate: int = DEFAULT_BAUDRATE,
                       timeouts: Timeouts | None = None) -> dict[str, Any]:
    """Upload ``model`` if the device does not already run it, then compare device and host outputs.

    Args:
        port: pyserial URL/path or open port object.
        model: The .tflite bytes or path.
        samples: Array ``(N, *input_shape)`` or a path to an .npz/.npy (see :func:`load_samples`).
        limit: Use at most this many samples.
        progress: ``progress(done, total, label)`` callback.
        baudrate: Line rate.
        timeouts: Retry/timeout policy.

    Returns:
        ``{"ok", "samples", "top1_equal", "top1_agreement", "max_abs_error", "mean_abs_error",
        "flashed", "device_us_mean", "per_sample": [...]}``; ``ok`` is True when every top-1 agrees.

    Raises:
        DeviceRejectedError: The device does not support INVOKE or refused it.
        InputDataError: Samples that do not fit the model's input.
    """
    from edgert.model import read_model
    from edgert.runtime import load_model

    mf = read_model(model)
    if len(mf.inputs) != 1:
        raise InputDataError(f"device validate supports single-input models; this one has {len(mf.inputs)}")
    spec, out_spec = mf.inputs[0], mf.outputs[0]
    x = load_samples(samples, spec) if not isinstance(samples, np.ndarray) else samples.reshape((-1, *spec.shape))
    if limit:
        x = x[:limit]
    if len(x) == 0:
        raise InputDataError("no samples to validate with")
    flashed = flash_model(port, mf.data, progress=progress, baudrate=baudrate, timeouts=timeouts)
    host = load_model(mf.data)
    per_sample = []
    device_us = []
    with SmpLink(port, baudrate=baudrate, timeouts=timeouts) as link:
        info = read_info(link)
        if not info.invoke:
            raise DeviceRejectedError("device does not support INVOKE", "validate needs firmware with the edgert INVOKE command",
                                      group=64, rc=8)
        for i, sample in enumerate(x):
            inp = _to_input(sample, spec)
            host.set_input(0, inp)
            host.invoke()
            host_raw = np.asarray(host.get_output(0, dequantize_output=False))
            outs, us = invoke(link, [inp.tobytes()], reply_wire=2 * out_spec.nbytes + 64)
            if len(outs[0]) != host_raw.nbytes:
                raise ProtocolError(f"device returned {len(outs[0])} output bytes, the model has {host_raw.nbytes}")
            dev_raw = np.frombuffer(outs[0], dtype=out_spec.dtype).reshape(host_raw.shape)
            h, d = _dequant(host_raw, out_spec), _dequant(dev_raw, out_spec)
            err = float(np.max(np.abs(h - d))) if h.size else 0.0
            per_sample.append({"index": i, "host_top1": int(np.argmax(h)), "device_top1": int(np.argmax(d)),
                               "max_abs_error": err, "device_us": us})
            device_us.append(us)
            report(progress, i + 1, len(x), "validate")
    agree = sum(s["host_top1"] == s["device_top1"] for s in per_sample)
    errors = [s["max_abs_error"] for s in per_sample]
    return {
        "ok": agree == len(per_sample),
        "model_sha256": mf.sha256,
        "samples": len(per_sample),
        "top1_equal": agree == len(per_sample),
        "top1_agreement": agree / len(per_sample),
        "max_abs_error": max(errors),
        "mean_abs_error": float(np.mean(errors)),
        "flashed": not flashed.already_active,
        "device_us_mean": float(np.mean(device_us)),
        "per_sample": per_sample,
    }
