"""PyTorch models in: an ``nn.Module`` (Python API) or a ``torch.export`` ``.pt2`` file -> int8 .tflite.

The route is litert-torch's PT2E int8 path, set up the way that gave correct
files in the feasibility run:

* ``torch.export`` with ``strict=True``: a non-strict export silently leaves
  residual ADDs in float (DEQUANTIZE -> ADD -> QUANTIZE);
* ``litert_torch.to_channel_last_io`` so the model takes NHWC (images) / NLC
  (1-D windows), and litert-torch's layout pass removes the transposes;
* a min/max activation observer (litert-torch's default histogram observer is
  2.4x slower and gains nothing on calibration sets of a few hundred samples);
  weights per channel, dense layers per tensor on int8-only targets (Edge TPU
  compiler and older TFLite Micro lack per-channel FULLY_CONNECTED);
* I/O types set afterwards (:func:`edgert.convert.tflite_edit.set_io_types`):
  litert-torch writes int8 only, Coral wants uint8; the edit is verified by
  running both files on the calibration samples.

torch and litert-torch are imported lazily: ``import edgert.convert`` stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgert.convert.layout import channels_last_shape, layout_of, to_channels_first
from edgert.convert.source_model import SourceModel
from edgert.errors import ConversionError, InputDataError
from edgert.progress import report

__all__ = ["TorchSource", "is_torch_module", "load_pt2", "load_torch_module", "TORCH_SUFFIXES"]

log = logging.getLogger("edgert.convert")

#: Files read as a torch.export ExportedProgram.
TORCH_SUFFIXES = (".pt2",)
#: Install line for the route's packages (CPU build of torch: no CUDA download).
INSTALL_HINT = "pip install 'edgert[torch]' (CPU torch: pip install torch --index-url https://download.pytorch.org/whl/cpu first)"
#: Raw litert-torch conversions kept per process: MCU and Coral share one (only their I/O differs), and
#: the float32 twin the per-layer table compares with is one per model.
_CACHE_SIZE = 8
_cache: OrderedDict[tuple, bytes] = OrderedDict()
#: Largest difference, in output quantization steps, the I/O edit may make.
_IO_EDIT_MAX_STEPS = 1
#: Samples the I/O edit is checked on.
_IO_CHECK_SAMPLES = 16


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ConversionError(f"PyTorch is not installed ({e})", INSTALL_HINT) from None
    return torch


def _import_litert_torch():
    from edgert.convert._tf import import_tf
    from edgert.native_output import native_chatter_to_debug

    import_tf()  # TensorFlow first: litert-torch's converter shares its libraries
    try:
        with native_chatter_to_debug():
            import litert_torch
    except ImportError as e:
        raise ConversionError(f"litert-torch is not installed ({e})", INSTALL_HINT) from None
    return litert_torch


def is_torch_module(obj: Any) -> bool:
    """True for a ``torch.nn.Module`` (checked without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


@dataclass
class TorchSource(SourceModel):
    """A PyTorch model with what the litert-torch route needs.

    Attributes:
        module: The original module (``nn.Module``, or the ExportedProgram's module for ``.pt2``).
        source_input_shape: Input shape in the model's own layout, without the batch.
        source_layout: ``"NCHW"``, ``"NCL"`` or None (the converted model is channels-last).
    """

    module: Any = None
    source_input_shape: tuple[int, ...] = ()
    source_layout: str | None = None
    route: str = "torch"

    def make_converter(self):
        """Not used: PyTorch models go through litert-torch, not TFLiteConverter."""
        raise ConversionError("a PyTorch model has no TFLiteConverter", "convert it with edgert.convert.convert()")

    def predict(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Run the original float module on channels-last ``x``; returns the first output, float32."""
        torch = _import_torch()
        if self.format == "pt2":
            batch_size = 1  # an ExportedProgram's module guards the batch size it was exported with
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                chunk = np.asarray(x[i : i + batch_size], np.float32)
                if self.source_layout:
                    chunk = to_channels_first(chunk)
                y = self.module(torch.from_numpy(chunk))
                outs.append(_first_output(y).detach().cpu().numpy().astype(np.float32))
        return np.concatenate(outs, axis=0)

    def convert_to_tflite(self, settings, samples: np.ndarray | None, *, keep_float: Sequence[str] = (), progress=None) -> bytes:
        """Convert with ``settings`` (modes int8 and float32); returns the .tflite bytes, I/O types set.

        Raises:
            ConversionError: Another mode, ``keep_float``, an export failure, a failed I/O edit.
            InputDataError: int8 without calibration samples.
        """
        if keep_float:
            raise ConversionError(
                "--keep-float is not available for PyTorch models", "convert all layers to int8, or use a Keras model"
            )
        if settings.mode not in ("int8", "float32"):
            raise ConversionError(
                f"mode {settings.mode} is not available for PyTorch models", "use --mode int8 (default) or float32"
            )
        if settings.mode == "int8" and (samples is None or len(samples) == 0):
            raise InputDataError(
                "mode int8 needs calibration data", "pass --calibration DIR|FILE.npy with a few hundred typical inputs"
            )
        key = (
            self.sha256,
            self.source_input_shape,
            settings.mode,
            settings.per_channel_dense if settings.mode == "int8" else None,  # float32: one for every target
            _digest(samples) if settings.mode == "int8" else None,
        )
        raw = _cache.get(key)
        if raw is None:
            raw = self._litert_convert(settings, samples, progress)
            _cache[key] = raw
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(key)
            log.info("litert-torch conversion reused (same model, calibration and quantization)")
        if settings.mode == "float32":
            return raw
        from edgert.convert.tflite_edit import fold_layout_transposes, set_io_types
        from edgert.model import read_model

        folded, _ = fold_layout_transposes(raw)
        if settings.full_int8:
            from edgert.convert.verify import refuse_float_ops

            # Say which ops stayed float before the I/O edit trips over a float edge.
            refuse_float_ops(
                read_model(folded),
                settings.target or "this target",
                "these ops have no int8 kernel in litert-torch's PT2E quantizer: replace them, or convert for a CPU target",
            )
        try:
            data = set_io_types(folded, settings.input_dtype, settings.output_dtype)
        except ConversionError as e:
            if settings.full_int8:
                raise
            # A CPU target runs the float edge as it is; the report's float_ops check shows it.
            log.warning("I/O types kept as converted: %s", e)
            data = folded
        _check_same_outputs(raw, data, samples)
        return data

    def _wrapped(self):
        litert_torch = _import_litert_torch()
        if not self.source_layout:
            return self.module
        # The wrapper transposes channels-last inputs back inside the graph; litert-torch's
        # layout pass then cancels them against the convolutions' own NCHW->NHWC moves.
        return litert_torch.to_channel_last_io(self.module, args=[0])

    def _export(self, module, example):
        torch = _import_torch()
        try:
            return torch.export.export(module, (example,), strict=True)
        except _export_errors() as e:
            raise _export_error(e, self.source_input_shape) from None

    def _litert_convert(self, settings, samples, progress) -> bytes:
        torch = _import_torch()
        litert_torch = _import_litert_torch()
        torch.manual_seed(0)
        example = torch.from_numpy(
            np.ascontiguousarray(
                samples[:1] if samples is not None and len(samples) else np.zeros((1, *self.input_shape), np.float32)
            ).astype(np.float32)
        )
        exported = self._export(self._wrapped(), example)
        from edgert.convert._tf import stdout_to_stderr

        try:
            with stdout_to_stderr(capture=True), _root_logging_to_debug():
                if settings.mode == "float32":
                    module = _not_training(exported.module())
                    return bytes(litert_torch.convert(module, (example,), strict_export=True).model_content())
                from litert_torch.quantize.quant_config import QuantConfig
                from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

                quantizer = _quantizer(settings.per_channel_dense)
                graph = prepare_pt2e(exported.module(), quantizer)
                with torch.no_grad():
                    for i in range(len(samples)):
                        graph(torch.from_numpy(np.ascontiguousarray(samples[i : i + 1], np.float32)))
                        report(progress, i + 1, len(samples), "calibrating")
                graph = _not_training(convert_pt2e(graph, fold_quantize=False))
                model = litert_torch.convert(
                    graph, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer), strict_export=True
                )
                return bytes(model.model_content())
        except _export_errors() as e:
            raise _export_error(e, self.source_input_shape, "litert-torch") from None


class _ToDebug(logging.Handler):
    """Forwards root-logger records (litert-torch and absl log there) to edgert's logger at DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s: %s", record.name, record.getMessage())


@contextlib.contextmanager
def _root_logging_to_debug() -> Iterator[None]:
    """While converting, give the root logger a handler of ours.

    litert-torch calls ``logging.warning`` on the root logger; with no handler there,
    that runs ``basicConfig`` bound to the *captured* stream of the moment, which is
    closed afterwards, so every later log line of the process fails ("I/O operation
    on closed file").
    """
    root = logging.getLogger()
    handler = _ToDebug()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def _not_training(module):
    """Mark a traced module as inference (``.eval()`` raises on ExportedProgram modules; the graph is fixed)."""
    for m in module.modules():
        m.training = False
    return module


def _first_output(y):
    if isinstance(y, dict):
        y = y[sorted(y)[0]]
    while isinstance(y, (list, tuple)):
        y = y[0]
    return y


def _digest(samples: np.ndarray | None) -> str | None:
    if samples is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(samples, np.float32).tobytes()).hexdigest()


def _quantizer(per_channel_dense: bool):
    torch = _import_torch()
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e.observer import MinMaxObserver

    def with_minmax(cfg):
        act = dataclasses.replace(cfg.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
        return dataclasses.replace(cfg, input_activation=act, output_activation=act)

    quantizer = pq.PT2EQuantizer().set_global(with_minmax(pq.get_symmetric_quantization_config(is_per_channel=True)))
    if not per_channel_dense:
        quantizer.set_module_type(torch.nn.Linear, with_minmax(pq.get_symmetric_quantization_config(is_per_channel=False)))
    return quantizer


def _export_errors() -> tuple[type[BaseException], ...]:
    # torch.export raises its own classes (UserError, Unsupported) beside the builtin ones.
    errors: list[type[BaseException]] = [
        RuntimeError,
        ValueError,
        TypeError,
        AssertionError,
        NotImplementedError,
        KeyError,
        AttributeError,
    ]
    try:
        from torch._dynamo.exc import TorchDynamoException

        errors.append(TorchDynamoException)
    except ImportError:
        pass
    return tuple(errors)


def _export_error(e: BaseException, shape: tuple[int, ...], stage: str = "torch.export (strict)") -> ConversionError:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else type(e).__name__
    node = next((ln for ln in lines if "node" in ln.lower() or "File " in ln), "")
    where = f" at {node[:120]}" if node and node != first else ""
    if any(w in text.lower() for w in ("dynamic", "symbolic", "guard", "constraint")):
        hint = f"give a fixed input shape, e.g. --input-shape 1,{','.join(map(str, shape))}"
    else:
        hint = "replace the unsupported op or Python control flow in forward(); --verbose shows the full error"
    return ConversionError(f"{stage} failed: {type(e).__name__}: {first[:200]}{where}", hint)


def _check_same_outputs(before: bytes, after: bytes, samples: np.ndarray | None) -> None:
    """The I/O edit must not change what the model computes (the uint8 trap: silently clamped outputs)."""
    if samples is None or len(samples) == 0:
        return
    from edgert.model import read_model
    from edgert.runtime import load_model

    a, b = load_model(before, trusted=True), load_model(after, trusted=True)
    out = read_model(after).outputs[0]
    step = out.scale if out.quantized and out.scale else None
    worst = 0.0
    for s in samples[:_IO_CHECK_SAMPLES]:
        ya = np.asarray(a.predict(s[None])[0], np.float64)
        yb = np.asarray(b.predict(s[None])[0], np.float64)
        worst = max(worst, float(np.max(np.abs(ya - yb))))
    limit = (step or 1e-6) * _IO_EDIT_MAX_STEPS + 1e-9
    if worst > limit:
        raise ConversionError(
            f"setting the model's I/O types changed its outputs by {worst:.4g} (more than {_IO_EDIT_MAX_STEPS} step)",
            "convert with --input-dtype int8 --output-dtype int8 and report the model",
        )


def _sha_module(module) -> str:
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(
            np.ascontiguousarray(
                t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
            ).tobytes()
        )
    return h.hexdigest()


def _source(module, fmt: str, sha: str, path: str | None, shape: tuple[int, ...]) -> TorchSource:
    model_shape = channels_last_shape(shape)
    return TorchSource(
        format=fmt,
        sha256=sha,
        path=path,
        input_shape=model_shape,
        input_dtype="float32",
        layer_names=[n for n, _ in module.named_modules() if n],
        module=module,
        source_input_shape=tuple(shape),
        source_layout=layout_of(tuple(shape)),
    )


def _shape_without_batch(shape: Sequence[int], where: str) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if len(dims) < 2:
        raise InputDataError(
            f"{where}: input shape {list(dims)} has no batch dimension", "give it with the batch, e.g. 1,3,96,96"
        )
    if dims[0] != 1:
        log.info("%s: batch %d -> 1 (devices run one sample at a time)", where, dims[0])
    return dims[1:]


def load_torch_module(
    module, *, example_inputs: Sequence[Any] | None = None, input_shape: Sequence[int] | None = None
) -> TorchSource:
    """Wrap an ``nn.Module`` for conversion.

    Args:
        module: The model; it is put in eval mode.
        example_inputs: ``(x,)``: one example input (its shape, batch included, is used).
        input_shape: Or the input shape with the batch, e.g. ``(1, 3, 96, 96)``.

    Raises:
        ConversionError: Neither is given, or the model takes more than one input.
    """
    torch = _import_torch()
    if input_shape is not None:
        shape = _shape_without_batch(input_shape, "input_shape")
    elif example_inputs is not None:
        args = tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
        if len(args) != 1 or not isinstance(args[0], torch.Tensor):
            raise ConversionError(
                f"example_inputs holds {len(args)} value(s); only single-tensor-input models are supported",
                "pass example_inputs=(x,) with one tensor",
            )
        shape = _shape_without_batch(args[0].shape, "example_inputs")
    else:
        raise ConversionError(
            "a PyTorch module does not say its input shape",
            "pass example_inputs=(torch.rand(1, 3, 96, 96),) or input_shape=(1, 3, 96, 96)",
        )
    module.eval()
    return _source(module, "torch", _sha_module(module), None, shape)


def load_pt2(path: str | Path, *, input_shape: Sequence[int] | None = None) -> TorchSource:
    """Load a ``torch.export`` ExportedProgram saved with ``torch.export.save``.

    Raises:
        ConversionError: Not an ExportedProgram, several inputs, or a dynamic shape without ``input_shape``.
    """
    from edgert.convert.source_model import sha256_file

    torch = _import_torch()
    p = Path(path)
    try:
        ep = torch.export.load(str(p))
    except (RuntimeError, ValueError, OSError, KeyError, EOFError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConversionError(
            f"{p}: not a torch.export program ({first})",
            "save it with torch.export.save(torch.export.export(model, (x,)), 'model.pt2')",
        ) from None
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs]
    if len(placeholders) != 1:
        raise ConversionError(f"{p}: {len(placeholders)} inputs; only single-input models are supported")
    node = placeholders[0]
    val = node.meta.get("val")
    if input_shape is not None:
        shape = _shape_without_batch(input_shape, "--input-shape")
    else:
        dims = list(getattr(val, "shape", ()))
        dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if dynamic:
            concrete = ",".join("1" if i == 0 else (str(d) if isinstance(d, int) else "N") for i, d in enumerate(dims))
            raise ConversionError(
                f"{p}: input {node.name!r} has dynamic dimension(s) {dynamic} ({concrete})",
                f"give the size with --input-shape {concrete.replace('N', '<size>')}",
            )
        shape = _shape_without_batch(dims, str(p))
    return _source(ep.module(), "pt2", sha256_file(p), str(p), shape)
