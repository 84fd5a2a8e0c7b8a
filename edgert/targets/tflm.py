"""TensorFlow Lite Micro: microcontrollers that run the model from a tensor arena.

Ops are those TFLite Micro's op resolver registers (:data:`TFLM_OPS`); RAM is
the tensor arena (input and output tensors live inside it) on the target
itself: :func:`target_arena` gives the best figure for the target's core and
kernel set (``Target.core``): measured on the target when a measurement is
given (our firmware on an emulated board), else planned by
:mod:`edgert.model.memory` for that core. The ``tflite-micro`` wheel is a
64-bit host build with reference kernels: its figure checks the planner, it is
never the target's arena.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgert.targets.base import (
    FORMAT_TEXT,
    OpAssessment,
    RamUse,
    Runtime,
    Target,
    computes_in_float,
    latency_ms,
    register,
)
from edgert.targets.problems import Code, Problem

__all__ = ["TFLM_OPS", "TFLM_CUSTOM_OPS", "TFLiteMicro", "TargetArena", "ARENA_SOURCES", "target_arena"]

#: Builtin ops registered by TFLite Micro's op resolver (tflite-micro wheel, 2025-2026 builds).
#: The Python package does not expose its resolver's list: ``tests/targets`` checks this table
#: against the ``Register_*`` symbols of the installed ``_runtime`` library.
TFLM_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL",
    "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CONCATENATION",
    "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV",
    "EMBEDDING_LOOKUP", "ELU", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD",
    "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF",
    "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOG_SOFTMAX",
    "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE",
    "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND",
    "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE", "WHILE", "ZEROS_LIKE",
})
#: Custom ops TFLite Micro registers by name.
TFLM_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "ETHOSU"})


#: What ``arena_bytes`` is: measured by TFLite Micro on the target, planned for the target's core
#: (``planned-corrected``: the plan plus what the 64-bit wheel measured beyond the plan of the wheel's
#: own build), or unknown (an op or core the planner does not model: no number rather than a low one).
ARENA_SOURCES = ("measured-target", "planned", "planned-corrected", "unknown")
#: Relative gap between the wheel's measurement and the plan of the wheel's build above which the
#: planner is said to miss something for this model.
PLAN_TOLERANCE = 0.02


@dataclass(frozen=True)
class TargetArena:
    """The tensor arena of one model on one target, and where the figure comes from.

    Attributes:
        bytes: The arena TFLite Micro takes on the target (None when ``source`` is ``"unknown"``).
        source: One of :data:`ARENA_SOURCES`.
        plan_bytes: The planner's figure for the target's core and kernels (None without a plan).
        plan: The :class:`~edgert.model.memory.ArenaPlan` for the target's build, None when the
            core has no arena model.
        config: The arena config planned for (``"cortex-m4"``), None when unknown.
        host_measured: What the 64-bit ``tflite-micro`` wheel measured, None when not run.
        host_plan_bytes: The plan of the wheel's own build (what ``host_measured`` checks).
        target_measured: ``arena_used_bytes()`` reported by the target (emulated board), else None.
        warnings: Why the figure is missing or corrected.
    """

    bytes: int | None
    source: str
    plan_bytes: int | None = None
    plan: Any = None
    config: str | None = None
    host_measured: int | None = None
    host_plan_bytes: int | None = None
    target_measured: int | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``fit --json``'s ``arena`` object."""
        return {
            "bytes": self.bytes, "source": self.source, "plan_bytes": self.plan_bytes, "config": self.config,
            "host_measured_bytes": self.host_measured, "host_plan_bytes": self.host_plan_bytes,
            "target_measured_bytes": self.target_measured,
            "unknown_ops": dict(self.plan.unknown_ops) if self.plan is not None else {},
            "breakdown": dict(self.plan.breakdown) if self.plan is not None else {},
            "warnings": list(self.warnings),
        }


def target_arena(model, target: Target, *, host_measured: int | None = None,
                 target_measured: int | None = None) -> TargetArena:
    """The best arena figure for ``target``: measured on it, else planned for its core.

    Args:
        model: A :class:`~edgert.model.ModelFile`.
        target: A TFLite Micro profile; ``target.core`` picks the arena config.
        host_measured: The ``tflite-micro`` wheel's figure on this host, when it was run: it checks
            the planner (a plan of the wheel's build that falls short of it is corrected by the gap).
        target_measured: ``arena_used_bytes()`` the target reported (e.g. our firmware in QEMU).

    Returns:
        The :class:`TargetArena`. Never a figure below what is known to be needed: when the core or
        an op has no arena model and nothing was measured on the target, ``bytes`` is None.
    """
    from edgert.model.memory import ARENA_CONFIGS, HOST_CONFIG, plan_arena

    warnings: list[str] = []
    config = ARENA_CONFIGS.get(target.core or "")
    plan = plan_arena(model, config) if config is not None else None
    host_plan = plan_arena(model, HOST_CONFIG) if host_measured is not None else None
    common: dict[str, Any] = dict(
        plan=plan, config=config.name if config else None, host_measured=host_measured,
        host_plan_bytes=host_plan.total_bytes if host_plan else None, target_measured=target_measured,
        plan_bytes=plan.total_bytes if plan is not None and plan.complete else None,
    )
    if target_measured is not None:
        return TargetArena(target_measured, "measured-target", **common)
    if config is None:
        warnings.append(f"no arena model for core {target.core!r} of {target.name}: the tensor arena on the "
                        "target is unknown" + (f" (the 64-bit TFLite Micro wheel, reference kernels, measured "
                                               f"{host_measured:,} B: not this target's figure)" if host_measured else ""))
        return TargetArena(None, "unknown", warnings=tuple(warnings), **common)
    assert plan is not None  # planned whenever the core has an arena config
    if not plan.complete:
        ops = ", ".join(f"{k}×{v}" for k, v in plan.unknown_ops.items())
        warnings.append(f"the arena planner does not model {ops} on {config.name}: the tensor arena on the target "
                        "is unknown (measure it on the device: edgert fit --measure-on emulated)")
        return TargetArena(None, "unknown", warnings=tuple(warnings), **common)
    gap = 0  # host_plan exists exactly when host_measured does
    if host_measured is not None and host_plan is not None and host_plan.complete:
        gap = host_measured - host_plan.total_bytes
    if host_measured is not None and host_plan is not None and gap > PLAN_TOLERANCE * host_measured:
        warnings.append(f"the 64-bit TFLite Micro wheel measured {host_measured:,} B where its build was planned at "
                        f"{host_plan.total_bytes:,} B: the {gap:,} B the planner misses are added to the target's plan")
        return TargetArena(plan.total_bytes + gap, "planned-corrected", warnings=tuple(warnings), **common)
    return TargetArena(plan.total_bytes, "planned", **common)


@register
class TFLiteMicro(Runtime):
    """TensorFlow Lite Micro on a microcontroller (int8 kernels, tensor arena, firmware-linked model)."""

    name = "tflm"
    title = "TFLite Micro"
    op_sets = ("tflm",)
    kinds = ("mcu",)
    interpreter = "tflm"
    formats = ("int8", "int16x8")
    integer_only = True
    arena = True
    c_source = True
    prefer = "size"
    refused_io_dtypes = ("uint8",)

    def format_refusal(self, mode: str, target: Target) -> str:
        """Float16 and dynamic-range models keep float kernels an MCU build does not budget for."""
        return f"{FORMAT_TEXT[mode]} keeps float kernels; TFLite Micro on {target.name} runs integer models"

    def op_problem(self, model, op, tensors, target: Target) -> Problem | None:
        """Float compute (on full-int8 profiles), missing kernels, and uint8 tensors."""
        if target.full_int8 and computes_in_float(op, tensors) and not (
                op.subgraph == 0 and op.name in ("QUANTIZE", "DEQUANTIZE")):
            return Problem(Code.FLOAT_COMPUTE, "computes in float (this target runs int8 kernels only)")
        if op.custom:
            if op.name not in TFLM_CUSTOM_OPS:
                return Problem(Code.CUSTOM_OP, "custom op without a TFLite Micro kernel")
        elif op.name not in TFLM_OPS:
            return Problem(Code.NO_KERNEL, "no TFLite Micro kernel")
        if any(tensors[i].dtype == "uint8" and not tensors[i].is_constant
               for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)):
            return Problem(Code.UINT8_TENSOR, "uint8 tensors (TFLite Micro has int8 kernels only)")
        return None

    def assess(self, model, target: Target, *, notes: list[str], measure: bool = True,
               step: Callable[[str], None] | None = None) -> OpAssessment:
        """The op table's verdict, then the real TFLite Micro's: its arena, and any op it refused."""
        found = super().assess(model, target, notes=notes)
        if not measure:
            return found
        if step is not None:
            step("TFLite Micro arena")
        from edgert.errors import EdgertError
        from edgert.runtime import micro

        if not micro.micro_available():
            notes.append("tflite_micro not installed: RAM check uses edgert's arena plan only")
            return found
        try:
            found.measured_arena = micro.micro_arena_bytes(model.data)
        except EdgertError as e:
            notes.append(f"TFLite Micro refused the model: {e.message}")
            # Ops TFLite Micro named when it refused the model, beyond what the op table predicted.
            refused = e.refused_ops if isinstance(e, micro.MicroError) else ()
            for name in refused:
                if name not in found.unsupported and name in model.ops:
                    found.unsupported[name] = model.ops[name]
                    found.problems[name] = Problem(Code.TFLM_REFUSED, "TFLite Micro refused it (see notes)")
        return found

    def ram(self, model, target: Target, plan, ops: OpAssessment) -> RamUse:
        """The tensor arena on the target (:func:`target_arena`); when it is unknown, the largest
        figure at hand (the 64-bit wheel's or a partial plan), said to be a lower bound."""
        arena = ops.arena if ops.arena is not None else target_arena(
            model, target, host_measured=ops.measured_arena)
        if arena.bytes is not None:
            what = {"measured-target": "measured by TFLite Micro on the target",
                    "planned": f"planned for {arena.config}",
                    "planned-corrected": f"planned for {arena.config}, corrected by the 64-bit wheel's measurement",
                    }[arena.source]
            extra = f"; TFLite Micro wheel on this 64-bit host {arena.host_measured:,} B" if arena.host_measured else ""
            return RamUse(arena.bytes, target.ram_bytes,
                          f"tensor arena {arena.bytes:,} B ({what}; input/output tensors live inside it{extra})",
                          Code.RAM_ARENA)
        known = [b for b in (arena.host_measured, arena.plan.total_bytes if arena.plan is not None else None,
                             plan.total_bytes) if b]
        used = max(known)
        return RamUse(used, target.ram_bytes,
                      f"tensor arena unknown on {target.name} (about {used:,} B by the 64-bit TFLite Micro "
                      "wheel or a partial plan, not the target's figure; see warnings)", Code.RAM_ARENA)

    def latency_energy(self, model, target: Target, costs, ops: OpAssessment,
                       notes: list[str]) -> tuple[float, float]:
        """The profile's cost model; ops without a TFLite Micro kernel have no calibrated cost."""
        if any(c.family != "other" and c.op.name not in TFLM_OPS for c in costs):
            notes.append("latency of ops TFLite Micro lacks is a guess")
        latency = latency_ms(model, target, costs)
        return latency, target.active_power_mw * latency
