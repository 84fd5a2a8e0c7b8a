"""``convert()``: a float model in, a target-ready .tflite and its report out.

Steps: load the source model, pick converter settings from the target, read
calibration data, convert, embed edgert metadata, measure accuracy against the
float model, check the fit against the target, then write the model, the
reports and (microcontrollers) the C source — every file replaced atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgert.convert.calibration import (
    calibration_summary,
    default_preprocessing,
    load_calibration,
    load_labeled,
    read_labels,
)
from edgert.convert.layout import adapt_data, layout_record
from edgert.convert.loader import load_source
from edgert.convert.settings import ConverterSettings, settings_for
from edgert.convert.source_model import SourceModel
from edgert.errors import ConversionError, EdgertError, InputDataError
from edgert.files import atomic_write
from edgert.jsonutil import json_default
from edgert.model.c_source import reserved_arena_bytes, write_c_source

__all__ = ["ConversionResult", "convert", "TASKS", "MODEL_FILE", "REPORT_JSON", "REPORT_MD"]

log = logging.getLogger("edgert.convert")

#: Source routes whose files are verified against the original float model (torch, onnxruntime).
FOREIGN_ROUTES = ("torch", "onnx")
#: Task kinds the metadata knows.
TASKS = ("classification", "detection", "anomaly", "regression")
#: Output file names inside ``output_dir``.
MODEL_FILE, REPORT_JSON, REPORT_MD = "model.tflite", "report.json", "report.md"
C_SOURCE_NAME = "model_data"


@dataclass
class ConversionResult:
    """What :func:`convert` produced.

    Attributes:
        tflite: The converted model (metadata embedded).
        path: Where ``model.tflite`` was written (None without ``output_dir``).
        report: The report dict (also ``report.json``).
        fit: The :class:`edgert.fit.FitReport` against the target.
        accuracy: Float vs converted comparison (None without evaluation data).
        files: Name -> path of every file written.
    """

    tflite: bytes
    path: Path | None
    report: dict[str, Any]
    fit: Any
    accuracy: dict[str, Any] | None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        """True when the converted model fits the target."""
        return bool(self.report.get("fits"))


class _Timer:
    """Wall time of each step, logged on stderr and kept for the report."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def done(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = round(now - self._t0, 3)
        log.info("%s: %.2f s", step, now - self._t0)
        self._t0 = now


def _versions() -> dict[str, str]:
    import edgert

    out = {"edgert": edgert.__version__}
    from edgert.convert._tf import import_tf

    out["tensorflow"] = import_tf().__version__
    try:
        import keras

        out["keras"] = keras.__version__
    except ImportError:
        pass
    return out


def _guess_task(task: str | None, labels: list[str] | None, converted) -> str:
    if task:
        if task not in TASKS:
            raise InputDataError(f"unknown task {task!r}", f"use one of {', '.join(TASKS)}")
        return task
    if labels:
        return "classification"
    out = converted.outputs[0]
    return "classification" if len(converted.outputs) == 1 and out.num_elements > 1 else "regression"


def _output_kind(converted) -> str:
    # Walk back over type/shape-only ops (uint8 I/O adds a QUANTIZE after the softmax).
    producer = {o: op for op in converted.operators() for o in op.outputs}
    index = converted.outputs[0].index
    op = producer.get(index)
    while op is not None and op.name in ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE") and op.inputs:
        op = producer.get(op.inputs[0])
    return "probabilities" if op is not None and op.name in ("SOFTMAX", "LOGISTIC") else "logits"


def _labels(labels: Any) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, Path)):
        return read_labels(labels)
    return [str(x) for x in labels]


def _merge_preprocessing(shape: tuple[int, ...], preprocessing: dict | None, mean, std) -> dict | None:
    base = default_preprocessing(shape, mean, std)
    if preprocessing:
        base = {**(base or {}), **preprocessing}
    return base


def _float_settings(settings: ConverterSettings) -> ConverterSettings:
    return ConverterSettings(
        mode="float32",
        input_dtype="float32",
        output_dtype="float32",
        supported_ops=("TFLITE_BUILTINS",),
        full_int8=False,
        allow_keep_float=False,
        target=settings.target,
    )


def _accuracy(source: SourceModel, settings, data: bytes, float_data: bytes | None, samples, x, y, progress) -> dict:
    from edgert.convert.accuracy import compare, layer_errors
    from edgert.runtime.predict import predict_samples

    float_pred = source.predict(x)
    converted_pred = predict_samples(data, x, progress, "evaluating")
    result = compare(float_pred, converted_pred, y)
    if hasattr(source, "convert_to_tflite") and float_data is None:
        # litert-torch quantizes inside PyTorch (no TFLite debugger model), but its float32 conversion of
        # the same module names every op output as the int8 one does: compare the tensors by name.
        try:
            float_data = source.convert_to_tflite(_float_settings(settings), None, progress=progress)
        except EdgertError as e:
            note = f"per-layer error unavailable: litert-torch could not convert the float32 twin ({e})"
            result["layers"] = {"method": None, "samples": 0, "layers": [], "note": note}
            return result
    result["layers"] = layer_errors(source, settings, data, samples, x, float_data=float_data)
    return result


def _check_keep_float(settings: ConverterSettings, keep_float: Sequence[str], target) -> None:
    if keep_float and not settings.allow_keep_float:
        why = (
            f"target {target.name} runs integer kernels only ({target.op_set})"
            if settings.full_int8
            else f"it needs mode int8, not {settings.mode}"
        )
        raise ConversionError(
            f"--keep-float is not possible: {why}",
            "keep layers in float only on CPU targets (e.g. raspberry-pi-4) in mode int8",
        )


def convert(
    model: Any,
    *,
    target: Any,
    mode: str | None = None,
    calibration: Any = None,
    eval_data: Any = None,
    labels: Any = None,
    keep_float: Sequence[str] = (),
    input_dtype: str | None = None,
    output_dtype: str | None = None,
    task: str | None = None,
    preprocessing: dict | None = None,
    output_dir: str | Path | None = None,
    progress=None,
    mean: float | list | None = None,
    std: float | list | None = None,
    measure_micro: bool = True,
    example_inputs: Any = None,
    input_shape: Any = None,
) -> ConversionResult:
    """Convert a float model for ``target`` and prove it fits.

    Args:
        model: ``.keras``/``.h5``/``.onnx``/``.pt2`` path, SavedModel directory, a Keras
            model or a PyTorch ``nn.Module`` (channels-first models become channels-last).
        target: Target name, profile path or :class:`edgert.targets.Target`.
        mode: Override the target's quantization (``float32``, ``float16``,
            ``dynamic``, ``int8``, ``int16x8``).
        calibration: Image folder, ``.npy``/``.npz``, array or iterable (needed for int8/int16x8).
        eval_data: Labeled folder (one subfolder per class), ``.npz`` with x/y, or ``(x, y)``.
        labels: Class names (list) or a labels file (one per line).
        keep_float: Layer (or operator) names to keep in float, CPU targets only.
        input_dtype: Override the model input dtype.
        output_dtype: Override the model output dtype.
        task: ``classification``/``detection``/``anomaly``/``regression`` (guessed when None).
        preprocessing: Overrides of the metadata ``preprocessing`` dict.
        output_dir: Write ``model.tflite``, ``report.json``, ``report.md`` (and
            ``model_data.{h,cc}`` for microcontrollers) here.
        progress: Progress callback.
        mean: Pixel mean (scalar or per channel) for image inputs; default 0.
        std: Pixel std; default 255 (pixels scaled to [0, 1]).
        measure_micro: Let the fit check run TFLite Micro for the real arena.
        example_inputs: PyTorch modules: ``(x,)``, one example input in the model's layout.
        input_shape: Input shape with the batch (PyTorch modules; fixes dynamic ONNX/.pt2 dimensions).

    Raises:
        TargetError: Unknown or malformed target.
        InputDataError: Missing/empty/mis-shaped calibration or evaluation data, bad option.
        ConversionError: Not a model, converter failure, impossible ``keep_float``.
    """
    from edgert.fit import check_fit
    from edgert.model import read_model
    from edgert.model.metadata import embed_metadata
    from edgert.runtime.safe import remember_trusted
    from edgert.targets import load_target

    timer = _Timer()
    tgt = load_target(target)
    settings = settings_for(tgt, mode, input_dtype, output_dtype)
    keep_float = tuple(keep_float or ())
    _check_keep_float(settings, keep_float, tgt)
    if calibration is None and settings.needs_calibration:  # say so before TensorFlow loads
        raise InputDataError(
            f"target {tgt.name} converts in mode {settings.mode}, which needs calibration data",
            "pass --calibration DIR|FILE.npy with a few hundred typical inputs, or --mode dynamic",
        )
    out_dir = _output_dir(output_dir)
    label_list = _labels(labels)
    source = load_source(model, example_inputs=example_inputs, input_shape=input_shape)
    timer.done("load model")
    foreign = source.route in FOREIGN_ROUTES
    prep = _merge_preprocessing(source.input_shape, preprocessing, mean, std)

    samples = None
    if calibration is not None and settings.needs_calibration:
        samples = load_calibration(adapt_data(calibration, source), source.input_shape, progress, preprocessing=prep)
        timer.done("read calibration data")
    elif calibration is not None:
        log.info("mode %s quantizes no activations: calibration data not used", settings.mode)
    eval_x = eval_y = None
    folder_labels = None  # class names from the evaluation folder, used when they match the outputs
    if eval_data is not None:
        eval_x, eval_y, classes = load_labeled(
            adapt_data(eval_data, source, labeled=True), source.input_shape,
            preprocessing=prep, labels=label_list, progress=progress,
        )
        if label_list is None and isinstance(eval_data, (str, Path)) and Path(eval_data).is_dir():
            folder_labels = classes
        timer.done("read evaluation data")

    from edgert.convert.converter import convert_source

    if hasattr(source, "convert_to_tflite"):  # PyTorch: litert-torch, not TFLiteConverter
        raw = source.convert_to_tflite(settings, samples, keep_float=keep_float, progress=progress)
        float_data = raw if settings.mode == "float32" else None
        timer.done(f"convert ({settings.mode}, litert-torch)")
    else:
        raw = convert_source(source, settings, samples, keep_float=keep_float, progress=progress)
        timer.done(f"convert ({settings.mode})")
        float_data = raw if settings.mode == "float32" else convert_source(source, _float_settings(settings))
        if settings.mode != "float32":
            timer.done("convert float32 reference")

    converted = read_model(raw)
    if foreign and settings.full_int8:
        from edgert.convert.verify import refuse_float_ops

        refuse_float_ops(
            converted, tgt.name, "these ops have no int8 kernel here: replace them in the model, or convert for a CPU target"
        )
    label_list = _final_labels(label_list, folder_labels, converted)
    versions = _versions()
    metadata = _metadata(tgt, settings, source, converted, versions, task, label_list, prep, samples, calibration, keep_float)
    data = embed_metadata(raw, metadata)
    mf = read_model(data)
    remember_trusted(mf.sha256)

    accuracy = None
    if eval_x is not None:
        accuracy = _accuracy(source, settings, data, float_data, samples, eval_x, eval_y, progress)
        timer.done("evaluate")

    fit = check_fit(mf, tgt, measure_micro=measure_micro, progress=progress)
    timer.done("fit check")

    report: dict[str, Any] = dict(fit.to_dict())
    if foreign:
        # Every PyTorch/ONNX file is checked against the original float model before it counts.
        from edgert.convert.verify import verify_conversion

        check_x, where = (eval_x, "evaluation samples") if eval_x is not None else (samples, "calibration samples")
        verification = verify_conversion(source, tgt, data, check_x, where=where, progress=progress)
        report["verification"] = verification
        report["checks"] = list(report["checks"]) + verification
        report["fits"] = bool(report["fits"]) and all(c["ok"] for c in verification)
        timer.done("verify")
    report["model"] = {
        "size_bytes": mf.size_bytes,
        "sha256": mf.sha256,
        # None on the PyTorch route, which makes no float32 .tflite to compare with.
        "float32_size_bytes": len(float_data) if float_data is not None else None,
        "size_ratio": round(mf.size_bytes / len(float_data), 4) if float_data is not None else None,
        "inputs": [t.to_dict() for t in mf.inputs],
        "outputs": [t.to_dict() for t in mf.outputs],
        "ops": mf.ops,
        "parameters": mf.parameters,
        "macs": mf.macs,
    }
    report["source"] = {"path": source.path, "format": source.format, "sha256": source.sha256, **layout_record(source)}
    report["converter"] = {**settings.to_dict(), **versions, "keep_float": list(keep_float)}
    report["metadata"] = metadata
    report["calibration"] = metadata.get("calibration")
    report["accuracy"] = accuracy
    files = _write_outputs(out_dir, data, mf, fit, tgt, report, timer)
    path = Path(files["model"]) if "model" in files else None
    return ConversionResult(tflite=data, path=path, report=report, fit=fit, accuracy=accuracy, files=files)


def _output_dir(output_dir: str | Path | None) -> Path | None:
    if output_dir is None:
        return None
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputDataError(f"{out}: output path exists and is not a directory", "pass a directory with -o")
    return out


def _final_labels(user: list[str] | None, from_folder: list[str] | None, converted) -> list[str] | None:
    n_out = converted.outputs[0].num_elements
    single = len(converted.outputs) == 1
    if user and single and len(user) != n_out:
        raise InputDataError(
            f"{len(user)} labels given but the model outputs {n_out} values",
            "give one label per output class, in output order",
        )
    if user is None and from_folder and single and len(from_folder) == n_out:
        return list(from_folder)
    return user


def _metadata(tgt, settings, source, converted, versions, task, labels, prep, samples, calibration, keep_float) -> dict[str, Any]:
    from edgert.model.metadata import METADATA_SCHEMA

    converter = {**versions, "mode": settings.mode, "input_dtype": settings.input_dtype, "output_dtype": settings.output_dtype}
    if keep_float:
        converter["keep_float"] = list(keep_float)
    metadata: dict[str, Any] = {
        "schema": METADATA_SCHEMA,
        "task": _guess_task(task, labels, converted),
        "target": tgt.name,
        "source": {"sha256": source.sha256, "format": source.format, **layout_record(source)},
        "converter": converter,
        "postprocessing": {"output": _output_kind(converted)},
    }
    if labels:
        metadata["labels"] = labels
    if prep:
        metadata["preprocessing"] = prep
    if samples is not None:
        metadata["calibration"] = calibration_summary(samples, calibration)
    return metadata


def _write_outputs(out: Path | None, data: bytes, mf, fit, tgt, report: dict[str, Any], timer: _Timer) -> dict[str, str]:
    """Write the model, C source, Edge TPU compile and reports into ``out``; fills ``report``."""
    files: dict[str, str] = {}
    model_path = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model_path = atomic_write(out / MODEL_FILE, data)
        files["model"] = str(model_path)
    if tgt.runtime.c_source:
        report["c_source"] = _c_source(data, mf, fit, out, files)
    if tgt.runtime.compiler == "edgetpu_compiler":
        from edgert.convert.edgetpu import compile_command, compile_edgetpu

        if model_path is not None and out is not None:  # the model is written only into an output folder
            report["edgetpu_compiler"] = compile_edgetpu(model_path, out)
            timer.done("edgetpu_compiler")
        else:
            report["edgetpu_compiler"] = {"available": None, "command": " ".join(compile_command(MODEL_FILE, "."))}
    report["timing_s"] = dict(timer.steps)
    if out is not None:
        from edgert.convert.report import render_markdown

        files["report_json"] = str(out / REPORT_JSON)
        files["report_md"] = str(out / REPORT_MD)
        report["files"] = dict(files)
        atomic_write(out / REPORT_JSON, json.dumps(report, indent=2, default=json_default) + "\n")
        atomic_write(out / REPORT_MD, render_markdown(report, fit))
    report["files"] = dict(files)
    return files


def _c_source(data: bytes, mf, fit, out: Path | None, files: dict[str, str]) -> dict[str, Any]:
    # The arena on the target (fit's arena_bytes: measured there, or planned for its core), never the
    # 64-bit wheel's figure; None when fit cannot say, and then the header reserves nothing.
    arena = getattr(fit, "arena_bytes", None)
    info: dict[str, Any] = {
        "name": C_SOURCE_NAME,
        "arena_bytes": arena,
        "arena_reserved_bytes": reserved_arena_bytes(int(arena)) if arena else None,
        "arena_source": getattr(fit, "arena_source", "planned"),
        "arena_plan_bytes": getattr(fit, "arena_plan_bytes", None),
    }
    if out is None:
        return info
    try:
        h, cc = write_c_source(data, out, name=C_SOURCE_NAME, arena_bytes=arena, ops=mf.ops)
    except ConversionError as e:
        # The fit report already fails on these ops; the model file is still useful elsewhere.
        info["error"] = str(e)
        return info
    files["c_header"], files["c_source"] = str(h), str(cc)
    info["header"], info["source"] = str(h), str(cc)
    return info
