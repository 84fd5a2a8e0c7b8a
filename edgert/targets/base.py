"""Target profiles and runtime families: the one place that knows how each kind of device runs a model.

A target profile (:class:`~edgert.targets.Target`) names its op set; the op set
decides its :class:`Runtime` family — TensorFlow Lite Micro, the Edge TPU, or
LiteRT's CPU with its XNNPACK/GPU delegates. Every family answers the same
questions (which formats it runs, which ops it cannot run and why, how much RAM
a model takes, how long an inference lasts), so ``check_fit``, the converter
and the optimizer ask ``target.runtime`` instead of comparing profile strings.

Families register once, like esptool's chip classes: a subclass decorated with
:func:`register` claims its op sets. :class:`Target` and :class:`Runtime`
refer to each other, so they live in this one module; it imports no family and
not the TOML loader (:mod:`edgert.targets.profile`), so both can import it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgert.targets.problems import Code, Problem

__all__ = [
    "ALL_FORMATS",
    "FORMAT_TEXT",
    "OpAssessment",
    "RamUse",
    "Runtime",
    "Target",
    "computes_in_float",
    "dynamic_dims",
    "latency_ms",
    "register",
    "runtime_for",
    "runtimes",
]

#: Converter formats, in the order the optimizer tries them (cheapest to convert first).
ALL_FORMATS = ("float16", "dynamic", "int8", "int16x8")
#: How reports and skip reasons name each format.
FORMAT_TEXT = {"float16": "float16", "dynamic": "dynamic-range int8", "int8": "full int8", "int16x8": "int16x8",
               "float32": "float32"}


@dataclass(frozen=True)
class Target:
    """One device profile.

    Attributes:
        name: Profile name (``cortex-m4-256k``).
        description: One line for humans.
        kind: ``"mcu"``, ``"cpu"``, ``"edgetpu"`` or ``"gpu"`` (descriptive; must be one its
            runtime family runs — ask :attr:`runtime`, not this, how the device behaves).
        ram_bytes: RAM available to the model (tensor arena + I/O buffers on an MCU).
        flash_bytes: Flash/storage available for the model file.
        quantization: The mode the converter uses for this target.
        input_dtype: Input tensor dtype the target wants.
        output_dtype: Output tensor dtype the target wants.
        op_set: Which op table decides support (``tflm``, ``xnnpack``, ``edgetpu``, ``gpu``, ``tflite``);
            it decides the runtime family (:attr:`runtime`).
        threads: Interpreter threads.
        delegate: Delegate name (``"xnnpack"``, ``"gpu"``, ``"edgetpu"``) or None.
        clock_hz: Clock of the unit that runs the kernels.
        cycles_per_mac: Cycles per unit of work per kernel family (MACs for conv,
            depthwise and fully connected; elements for pool, elementwise, other).
        active_power_mw: Power while inferring.
        idle_power_mw: Power between inferences (sleep/idle).
        cycles_per_output: Extra cycles per output element per kernel family
            (requantization, stores); families not listed cost nothing extra.
        op_overhead_cycles: Fixed cycles per op invocation (dispatch, setup).
        invoke_overhead_ms: Fixed time per inference (e.g. USB transfer to an accelerator).
        static_shapes: The target needs every tensor shape fixed at conversion.
        full_int8: Every op must be integer-quantized (no float fallback on the device).
        param_cache_bytes: On-chip parameter memory (Edge TPU); weights beyond it stream per inference.
        arena: True when RAM is a TFLite Micro tensor arena (derived from the runtime family).
        core: The processor and TFLite Micro build the arena is planned for (a name in
            :data:`edgert.model.memory.ARENA_CONFIGS`, e.g. ``"cortex-m4"``), None when unknown.
        calibration: Which published result the latency/energy numbers were calibrated on.
        source: Where the profile was loaded from.
        inherits: The profile this one extends, if any.
    """

    name: str
    description: str
    kind: str
    ram_bytes: int
    flash_bytes: int
    quantization: str
    input_dtype: str
    output_dtype: str
    op_set: str
    threads: int
    delegate: str | None
    clock_hz: int
    cycles_per_mac: dict[str, float]
    active_power_mw: float
    idle_power_mw: float
    cycles_per_output: dict[str, float] = field(default_factory=dict)
    op_overhead_cycles: float = 0.0
    invoke_overhead_ms: float = 0.0
    static_shapes: bool = False
    full_int8: bool = False
    param_cache_bytes: int | None = None
    arena: bool = False
    core: str | None = None
    calibration: str = ""
    source: str = ""
    inherits: str | None = None

    @property
    def runtime(self) -> Runtime:
        """The runtime family that runs this profile's models, derived from :attr:`op_set`.

        Every "which runtime is this?" question (formats, ops, RAM, latency, converter
        settings, firmware) is asked here, never through ``kind``/``op_set`` strings.
        """
        return runtime_for(self.op_set)

    def to_dict(self) -> dict[str, Any]:
        """The profile fields as plain JSON values (``edgert targets --json``)."""
        return dataclasses.asdict(self)


def computes_in_float(op, tensors) -> bool:
    """True when an op computes in float (a non-constant float tensor in or out)."""
    idx = [i for i in (*op.inputs, *op.outputs) if 0 <= i < len(tensors)]
    return any(tensors[i].dtype in ("float32", "float16") and not tensors[i].is_constant for i in idx)


def dynamic_dims(t) -> list[int]:
    """Dimensions only known at run time, ignoring the batch dimension: Keras exports batch as -1
    in ``shape_signature``, and every runtime (TFLM, the Edge TPU compiler) then uses batch 1."""
    if not t.shape_signature:
        return []
    return [i for i, d in enumerate(t.shape_signature) if d < 0 and i > 0]


@dataclass
class OpAssessment:
    """What a family found about a model's ops (the ``ops`` check and the family's extras).

    Attributes:
        unsupported: ``{op name: count}`` of ops the target cannot run.
        problems: The first :class:`Problem` of each unsupported op name.
        measured_arena: The arena the real TFLite Micro wheel allocated on this 64-bit host
            (TFLite Micro family), else None.
        arena: The TFLite Micro family's :class:`~edgert.targets.tflm.TargetArena` (the arena on
            the target itself), else None.
        edgetpu: The Edge TPU partition prediction (``fit --json``'s ``edgetpu``), else None.
        delegate: XNNPACK/GPU delegate coverage (``name, delegated_ops, cpu_ops``), else None.
        host_op_ids: ``(subgraph, op index)`` of ops a host CPU runs beside an accelerator.
    """

    unsupported: dict[str, int] = field(default_factory=dict)
    problems: dict[str, Problem] = field(default_factory=dict)
    measured_arena: int | None = None
    arena: Any = None
    edgetpu: dict[str, Any] | None = None
    delegate: dict[str, Any] | None = None
    host_op_ids: set[tuple[int, int]] = field(default_factory=set)

    def add(self, op_name: str, problem: Problem) -> None:
        """Count one op the target cannot run (the first problem of an op name is kept)."""
        self.unsupported[op_name] = self.unsupported.get(op_name, 0) + 1
        self.problems.setdefault(op_name, problem)

    def reason_lines(self) -> list[str]:
        """``"OP_A, OP_B: why"`` lines, ops sharing a reason on one line (op names sorted)."""
        by_reason: dict[str, list[str]] = {}
        for name, problem in sorted(self.problems.items()):
            by_reason.setdefault(problem.text, []).append(name)
        return [f"{', '.join(names)}: {why}" for why, names in by_reason.items()]


@dataclass(frozen=True)
class RamUse:
    """The RAM check of one family.

    Attributes:
        used: Bytes the model needs.
        limit: Bytes the target has for it.
        detail: What was counted.
        code: Failure code when ``used`` exceeds ``limit``.
        over_note: Set when exceeding the limit only slows inference: this note is reported
            instead of a failure.
    """

    used: int
    limit: int
    detail: str
    code: Code
    over_note: str | None = None


def _cycles(op, macs: int, family: str, tensors, target: Target) -> float:
    out_elems = sum(tensors[i].num_elements for i in op.outputs if 0 <= i < len(tensors))
    work = macs if macs > 0 else out_elems  # data movement: one unit per element written
    return (
        target.cycles_per_mac.get(family, target.cycles_per_mac["other"]) * work
        + target.cycles_per_output.get(family, 0.0) * out_elems
        + target.op_overhead_cycles
    )


def latency_ms(model, target: Target, costs, host_op_ids: set[tuple[int, int]] | None = None,
               host: Target | None = None) -> float:
    """Estimated milliseconds of one inference from the profile's cost model.

    Args:
        model: The :class:`~edgert.model.ModelFile`.
        target: The profile whose clock and cycles per MAC cost each op.
        costs: :func:`edgert.model.op_costs` of the ops to cost.
        host_op_ids: Ops costed on ``host`` instead (an accelerator's CPU fallback).
        host: The profile of the host CPU.
    """
    total_ms = target.invoke_overhead_ms
    for cost in costs:
        op = cost.op
        tensors = model.tensors(op.subgraph)
        on_host = host is not None and host_op_ids is not None and (op.subgraph, op.index) in host_op_ids
        unit = host if on_host and host is not None else target
        total_ms += _cycles(op, cost.macs, cost.family, tensors, unit) / unit.clock_hz * 1e3
    return total_ms


class Runtime(ABC):
    """One runtime family. Subclasses set the class attributes and answer the questions below.

    Attributes:
        name: Family key (``"tflm"``, ``"edgetpu"``, ``"delegate"``).
        title: How messages name it.
        op_sets: Profile ``op_set`` values this family runs.
        kinds: Profile ``kind`` values a device of this family may have.
        interpreter: The interpreter that loads the file: ``"tflm"`` or ``"litert"``
            (the runtime keys of :class:`edgert.model.checker.RuntimeQuirk`).
        formats: Converter formats it runs.
        integer_only: Runs fully integer-quantized graphs only (no float fallback kernels).
        arena: RAM is a TFLite Micro tensor arena (input/output tensors inside it).
        c_source: Firmware compiles the model in: conversion also writes ``model_data.{h,cc}``.
        compiler: Command that compiles the converted model for the device, if any.
        prefer: What the optimizer minimizes by default: ``"size"`` or ``"latency"``.
        refused_io_dtypes: Input/output dtypes its interpreter cannot take.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    op_sets: ClassVar[tuple[str, ...]]
    kinds: ClassVar[tuple[str, ...]]
    interpreter: ClassVar[str] = "litert"
    formats: ClassVar[tuple[str, ...]] = ALL_FORMATS
    integer_only: ClassVar[bool] = False
    arena: ClassVar[bool] = False
    c_source: ClassVar[bool] = False
    compiler: ClassVar[str | None] = None
    prefer: ClassVar[str] = "latency"
    refused_io_dtypes: ClassVar[tuple[str, ...]] = ()
    #: What the converter notes for this family (shown in the conversion report).
    converter_note: ClassVar[str] = ""

    def __repr__(self) -> str:
        return f"<runtime {self.name}: {self.title}>"

    # -- formats -------------------------------------------------------------------------------
    def format_refusal(self, mode: str, target: Target) -> str:
        """Why ``target`` cannot run converter format ``mode`` (a format outside :attr:`formats`)."""
        return f"{FORMAT_TEXT[mode]} does not run on {target.name}"

    # -- ops -----------------------------------------------------------------------------------
    @abstractmethod
    def op_problem(self, model, op, tensors, target: Target) -> Problem | None:
        """Why this family cannot run ``op`` (None when it can)."""

    def assess(self, model, target: Target, *, notes: list[str], measure: bool = True,
               step: Callable[[str], None] | None = None) -> OpAssessment:
        """Which ops the target cannot run, plus what the family measures or predicts about them.

        Args:
            model: The :class:`~edgert.model.ModelFile`.
            target: The profile.
            notes: Remarks for the report are appended here.
            measure: Also ask the real runtime when the family can (TFLite Micro's arena).
            step: Progress callback taking a label, called before a slow step.
        """
        found = OpAssessment()
        for s in range(model.num_subgraphs):
            tensors = model.tensors(s)
            for op in model.operators(s):
                problem = self.op_problem(model, op, tensors, target)
                if problem is not None:
                    found.add(op.name, problem)
        found.unsupported = dict(sorted(found.unsupported.items()))
        return found

    def converts_at_edge(self, model, op, tensors) -> bool:
        """True for a QUANTIZE/DEQUANTIZE at the edge of the graph, which integer-only targets allow."""
        return op.subgraph == 0 and op.name in ("QUANTIZE", "DEQUANTIZE")

    def fix_params(self) -> dict[str, Any]:
        """Family values the fix templates of :data:`~edgert.targets.problems.FIXES` use."""
        return {}

    # -- memory, time, energy --------------------------------------------------------------------
    @abstractmethod
    def ram(self, model, target: Target, plan, ops: OpAssessment) -> RamUse:
        """The RAM the model takes on ``target`` (``plan``: :func:`edgert.model.memory.plan_arena`)."""

    def latency_energy(self, model, target: Target, costs, ops: OpAssessment,
                       notes: list[str]) -> tuple[float, float]:
        """``(milliseconds, microjoules)`` of one inference (``costs``: :func:`edgert.model.op_costs`)."""
        latency = latency_ms(model, target, costs)
        return latency, target.active_power_mw * latency  # mW x ms = uJ


_RUNTIMES: dict[str, Runtime] = {}


def register(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: make ``cls`` the family of its :attr:`Runtime.op_sets` (once each)."""
    instance = cls()
    for op_set in cls.op_sets:
        if op_set in _RUNTIMES:
            raise ValueError(f"op set {op_set!r} is claimed by {_RUNTIMES[op_set]!r} and {instance!r}")
        _RUNTIMES[op_set] = instance
    return cls


def runtime_for(op_set: str) -> Runtime:
    """The family that runs ``op_set``.

    Raises:
        KeyError: No registered family claims it.
    """
    return _RUNTIMES[op_set]


def runtimes() -> Sequence[Runtime]:
    """Every registered family, once each, in registration order."""
    return tuple(dict.fromkeys(_RUNTIMES.values()))
