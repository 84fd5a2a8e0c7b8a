"""Validate a model on the device: INVOKE there, compare with the host interpreters.

The device's outputs (TFLite Micro on the board, or in the simulator) are
compared sample by sample with the host's (ai-edge-litert / tflite-runtime):
the top-1 class must be equal; the largest absolute difference of the
dequantized outputs is reported. For 8-bit models the raw output bytes are
also compared with the ``tflite-micro`` wheel run on the host, the same
interpreter firmware links: ``bit_exact`` says whether every byte agreed.

Inputs of any size reach the device: inline when the INVOKE fits the device's
SMP buffer, else in TENSOR_WRITE chunks (:func:`firmware_tools.flash.invoke`);
a device that can do neither is refused before anything is sent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import EdgertError, InputDataError
from edgert.progress import report
from firmware_tools.errors import DeviceRejectedError, ProtocolError
from firmware_tools.flash import flash_model, invoke, invoke_transfer, read_info
from firmware_tools.link import DEFAULT_BAUDRATE, SmpLink, Timeouts
from firmware_tools.protocol import ERR_NOT_SUPPORTED, GROUP_EDGERT

__all__ = ["load_samples", "validate_on_device", "micro_reference"]

log = logging.getLogger("edgert.firmware.validate")


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


def micro_reference(model, inputs: list[np.ndarray]) -> list[list[bytes]] | None:
    """Raw outputs of the ``tflite-micro`` wheel on the host for each input, or None when it cannot say.

    Only 8-bit models are compared byte for byte (float kernels may round differently on a device
    and still be right). None also when the wheel is not installed or TFLM refuses the model
    (uint8 tensors, a missing op): then ``bit_exact`` is unknown, not false.

    Args:
        model: The :class:`edgert.model.ModelFile`.
        inputs: One input array per sample (single-input models).
    """
    from edgert.runtime.micro import run_micro_many

    if not any(t.dtype in ("int8", "uint8") for t in (*model.inputs, *model.outputs)):
        return None
    try:
        runs = run_micro_many(model.data, [[x] for x in inputs])
    except EdgertError as e:
        log.info("no tflite-micro reference for bit_exact: %s", e)
        return None
    return [[np.ascontiguousarray(o).tobytes() for o in outs] for outs in runs]


def validate_on_device(port: str | Any, model: bytes | str | Path, samples: np.ndarray | str | Path, *,
                       limit: int | None = None, progress=None, baudrate: int = DEFAULT_BAUDRATE,
                       timeouts: Timeouts | None = None) -> dict[str, Any]:
    """Upload ``model`` if the device does not already run it, then compare device and host outputs.

    Before anything is sent the device's INFO must offer INVOKE, and an input larger than its SMP
    buffer needs ``tensor_io`` (TENSOR_WRITE chunks); otherwise a typed error says so at once.

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
        "flashed", "device_us_mean", "instructions_mean", "bit_exact", "input_transfer", "per_sample": [...]}``,
        each per-sample entry ``{"index", "host_top1", "device_top1", "max_abs_error", "device_us",
        "instructions", "bit_exact"}``. ``ok`` is True when every top-1 agrees; ``bit_exact`` is True when the
        device's raw outputs equal the tflite-micro wheel's byte for byte on every sample, None when not compared.

    Raises:
        DeviceRejectedError: The device does not support INVOKE or refused it.
        TensorTooLargeError: The input needs chunks and the device cannot take them (nothing was sent).
        InputDataError: Samples that do not fit the model's input.
    """
    from edgert.model import read_model
    from edgert.runtime import load_model

    mf = read_model(model)
    if len(mf.inputs) != 1:
        raise InputDataError(f"device validate supports single-input models; this one has {len(mf.inputs)}")
    spec, out_specs = mf.inputs[0], list(mf.outputs)
    x = load_samples(samples, spec) if not isinstance(samples, np.ndarray) else samples.reshape((-1, *spec.shape))
    if limit:
        x = x[:limit]
    if len(x) == 0:
        raise InputDataError("no samples to validate with")
    inputs = [_to_input(sample, spec) for sample in x]
    with SmpLink(port, baudrate=baudrate, timeouts=timeouts) as link:
        info = read_info(link)
        if not info.invoke:
            raise DeviceRejectedError(f"device on {link.url} does not support INVOKE",
                                      "validate needs firmware with the edgert INVOKE command (INFO invoke: true)",
                                      group=GROUP_EDGERT, rc=ERR_NOT_SUPPORTED)
        transfer = invoke_transfer(info, [spec.nbytes], link.url)  # refuses before the model is sent
        host = load_model(mf.data)
        # The same open port: no second open of a device that may reset on open (USB CDC boards).
        flashed = flash_model(link.port, mf.data, progress=progress, baudrate=baudrate, timeouts=timeouts)
        per_sample: list[dict[str, Any]] = []
        device_raw = []
        for i, inp in enumerate(inputs):
            host.set_input(0, inp)
            host.invoke()
            host_raw = [np.asarray(host.get_output(j, dequantize_output=False)) for j in range(len(out_specs))]
            res = invoke(link, [inp.tobytes()], info=info)
            if [len(o) for o in res.outputs] != [h.nbytes for h in host_raw]:
                raise ProtocolError(f"device returned outputs of {[len(o) for o in res.outputs]} bytes, "
                                    f"the model's are {[h.nbytes for h in host_raw]}")
            pairs = [(_dequant(h_raw, o), _dequant(np.frombuffer(d, dtype=o.dtype).reshape(h_raw.shape), o))
                     for o, h_raw, d in zip(out_specs, host_raw, res.outputs, strict=True)]
            err = max((float(np.max(np.abs(h - d))) for h, d in pairs if h.size), default=0.0)
            top1 = int(np.argmax(pairs[0][0])), int(np.argmax(pairs[0][1]))  # the first output is the classes
            device_raw.append(res.outputs)
            per_sample.append({"index": i, "host_top1": top1[0], "device_top1": top1[1], "max_abs_error": err,
                               "device_us": res.us, "instructions": res.instructions, "bit_exact": None})
            report(progress, i + 1, len(x), "validate")
    reference = micro_reference(mf, inputs)
    if reference is not None:
        for entry, dev, ref in zip(per_sample, device_raw, reference, strict=True):
            entry["bit_exact"] = dev == ref
    agree = sum(s["host_top1"] == s["device_top1"] for s in per_sample)
    errors = [s["max_abs_error"] for s in per_sample]
    instructions = [s["instructions"] for s in per_sample if s["instructions"] is not None]
    return {
        "ok": agree == len(per_sample),
        "model_sha256": mf.sha256,
        "samples": len(per_sample),
        "top1_equal": agree == len(per_sample),
        "top1_agreement": agree / len(per_sample),
        "max_abs_error": max(errors),
        "mean_abs_error": float(np.mean(errors)),
        "flashed": not flashed.already_active,
        "device_us_mean": float(np.mean([s["device_us"] for s in per_sample])),
        "instructions_mean": float(np.mean(instructions)) if len(instructions) == len(per_sample) else None,
        "bit_exact": None if reference is None else all(s["bit_exact"] for s in per_sample),
        "input_transfer": transfer,
        "per_sample": per_sample,
    }
