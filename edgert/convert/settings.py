"""Which converter settings a target needs (pure Python; no TensorFlow here).

A target profile names a quantization mode, input/output dtypes and an op set;
:func:`settings_for` turns that plus the user's overrides into a
:class:`ConverterSettings` that :mod:`edgert.convert.converter` applies to
``tf.lite.TFLiteConverter``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from edgert.errors import InputDataError
from edgert.targets import Runtime

__all__ = [
    "MODES",
    "MODE_ALIASES",
    "ConversionTarget",
    "ConverterSettings",
    "normalize_mode",
    "requires_full_int8",
    "settings_for",
]

#: Conversion modes: float32, float16 weights, dynamic-range int8 weights,
#: full-integer int8 (activations too) and int16 activations with int8 weights.
MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
#: Spellings users type for the same modes.
MODE_ALIASES = {
    "float": "float32",
    "fp32": "float32",
    "fp16": "float16",
    "dynamic-range": "dynamic",
    "dynamic_range": "dynamic",
    "full-int8": "int8",
    "full_int8": "int8",
    "uint8": "int8",
    "int16": "int16x8",
    "16x8": "int16x8",
}
#: Input/output dtypes each mode can produce.
_IO_DTYPES = {
    "float32": ("float32",),
    "float16": ("float32",),
    "dynamic": ("float32",),
    "int8": ("int8", "uint8", "float32"),
    "int16x8": ("int16", "float32"),
}


class ConversionTarget(Protocol):
    """What the settings read from a target: a :class:`edgert.targets.Target`, or the converter's
    stand-in when the caller states the settings directly."""

    @property
    def name(self) -> str | None: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def full_int8(self) -> bool: ...

    @property
    def quantization(self) -> str: ...

    @property
    def input_dtype(self) -> str: ...

    @property
    def output_dtype(self) -> str: ...


def requires_full_int8(target: ConversionTarget) -> bool:
    """True for targets that only run fully integer-quantized graphs: the profile says so, or its
    runtime family has integer kernels only (the Edge TPU compiler maps nothing that is not int8,
    and TFLite Micro builds budget for int8 kernels)."""
    return target.full_int8 or target.runtime.integer_only


@dataclass(frozen=True)
class ConverterSettings:
    """Everything the converter needs to know, decided from the target and the user's overrides.

    Attributes:
        mode: One of :data:`MODES`.
        input_dtype: Model input dtype (``"int8"``, ``"uint8"``, ``"int16"``, ``"float32"``).
        output_dtype: Model output dtype.
        supported_ops: ``tf.lite.OpsSet`` member names, in order.
        full_int8: Only integer kernels allowed (no float fallback ops).
        allow_keep_float: Whether named layers may stay in float (``--keep-float``).
        per_channel_dense: Quantize FULLY_CONNECTED weights per output channel
            (TensorFlow's default since 2.16); False = one scale per tensor.
        batch: Static batch size of the converted graph (always 1 on devices).
        target: Target profile name.
        notes: Why each non-obvious setting was chosen (shown in the report).
    """

    mode: str
    input_dtype: str
    output_dtype: str
    supported_ops: tuple[str, ...]
    full_int8: bool
    allow_keep_float: bool
    per_channel_dense: bool = True
    batch: int = 1
    target: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_calibration(self) -> bool:
        """True when activations are quantized, so a representative dataset is required."""
        return self.mode in ("int8", "int16x8")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["supported_ops"] = list(self.supported_ops)
        d["notes"] = list(self.notes)
        return d


def normalize_mode(mode: str) -> str:
    """Canonical mode name for ``mode`` (aliases accepted).

    Raises:
        InputDataError: Unknown mode.
    """
    m = str(mode).strip().lower()
    m = MODE_ALIASES.get(m, m)
    if m not in MODES:
        raise InputDataError(f"unknown conversion mode {mode!r}", f"use one of {', '.join(MODES)}")
    return m


def _target_mode(target: ConversionTarget) -> str:
    quant = target.quantization or "int8"
    try:
        return normalize_mode(quant)
    except InputDataError:
        return "int8"


def _pick_dtype(which: str, user: str | None, target_value: str | None, mode: str, strict: bool) -> str:
    allowed = _IO_DTYPES[mode]
    if strict and mode == "int8":
        allowed = ("int8", "uint8")
    if user is not None:
        dt = str(user).strip().lower()
        if dt not in allowed:
            raise InputDataError(
                f"--{which}-dtype {user} is not possible in mode {mode}",
                f"use one of {', '.join(allowed)}",
            )
        return dt
    if target_value in allowed:
        return str(target_value)
    return allowed[0]


def settings_for(
    target: ConversionTarget,
    mode: str | None = None,
    input_dtype: str | None = None,
    output_dtype: str | None = None,
) -> ConverterSettings:
    """Converter settings for ``target`` with the user's overrides applied.

    Args:
        target: A :class:`edgert.targets.Target` (read: ``name``, ``runtime``, ``full_int8``,
            ``quantization``, ``input_dtype``, ``output_dtype``).
        mode: Override of the target's quantization mode.
        input_dtype: Override of the model input dtype.
        output_dtype: Override of the model output dtype.

    Raises:
        InputDataError: Unknown mode, or a dtype the mode cannot produce.
    """
    strict = requires_full_int8(target)
    m = normalize_mode(mode) if mode else _target_mode(target)
    in_dt = _pick_dtype("input", input_dtype, target.input_dtype, m, strict)
    out_dt = _pick_dtype("output", output_dtype, target.output_dtype, m, strict)
    notes: list[str] = []
    if m == "int8":
        if strict:
            ops: tuple[str, ...] = ("TFLITE_BUILTINS_INT8",)
            notes.append("integer-only kernels: every op must quantize (no float fallback) for this target")
        else:
            ops = ("TFLITE_BUILTINS_INT8", "TFLITE_BUILTINS")
            notes.append("int8 kernels first; ops without an int8 kernel may fall back to float on this CPU target")
    elif m == "int16x8":
        ops = ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",)
        if not strict:
            ops += ("TFLITE_BUILTINS",)
    else:
        ops = ("TFLITE_BUILTINS",)
    if target.runtime.converter_note:
        notes.append(target.runtime.converter_note)
    # Per-channel FULLY_CONNECTED weights are recent (TF 2.16 made them the default):
    # edgetpu_compiler 16 predates them, and TFLite Micro before late 2024 ran them
    # with wrong scales (tflite-micro PR 2602/2673), so firmware in the field needs per-tensor.
    per_channel_dense = not target.runtime.integer_only
    if not per_channel_dense and m in ("int8", "int16x8"):
        notes.append("dense layers quantized per-tensor: edgetpu_compiler and older TFLite Micro lack "
                     "per-channel FULLY_CONNECTED")
    notes.append("static batch 1: device interpreters and the Edge TPU compiler need fixed shapes")
    return ConverterSettings(
        mode=m,
        input_dtype=in_dt,
        output_dtype=out_dt,
        supported_ops=ops,
        full_int8=strict,
        # The debugger's selective quantization only handles int8 (16x8 fails on the
        # float input it leaves behind), and integer-only targets cannot run float layers.
        allow_keep_float=not strict and m == "int8",
        per_channel_dense=per_channel_dense,
        batch=1,
        target=target.name,
        notes=tuple(notes),
    )
