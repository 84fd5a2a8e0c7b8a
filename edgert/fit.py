"""Does a model fit a target? Size, RAM, ops, shapes, types, latency and energy.

:func:`check_fit` works on any ``.tflite`` (ours or foreign) and a
:class:`~edgert.targets.Target`. It never runs the model on the target; it
reads the flatbuffer, plans the tensor arena (:mod:`edgert.model.memory`),
and on microcontroller targets also asks the real TensorFlow Lite Micro (when
installed) what arena it allocates, which the RAM check then uses.

What differs between devices (which ops run, what counts as RAM, how an
inference is costed) is asked of the target's runtime family
(:attr:`Target.runtime <edgert.targets.Target.runtime>`, :mod:`edgert.targets`);
this module only runs the checks common to all of them, in order.

Every failed check's ``detail`` says how to fix it, the fix chosen by the
failure's code (:data:`edgert.targets.problems.FIXES`). Unsupported ops are
reported by name (``unsupported_ops``), never raised.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from edgert.errors import InputDataError
from edgert.model import op_costs, read_model
from edgert.model.checker import RUNTIME_NAMES
from edgert.model.memory import plan_arena
from edgert.progress import report as report_progress
from edgert.targets import Code, OpAssessment, RamUse, Runtime, Target, fixes_for, load_target
from edgert.targets.base import computes_in_float, dynamic_dims
from edgert.units import format_bytes

__all__ = ["Check", "FitReport", "TargetMeasurement", "check_fit", "fit_markdown", "parse_rate"]

log = logging.getLogger("edgert.fit")


@dataclass(frozen=True)
class Check:
    """One fit check.

    Attributes:
        name: ``flash``, ``loads``, ``ram``, ``ops``, ``static_shapes``, ``full_int8``, ``io_dtype``, ``rate``.
        ok: Whether the model passes.
        value: What the model needs (bytes, count, ...).
        limit: What the target allows.
        detail: One line: what was checked, and when it failed, how to fix it.
    """

    name: str
    ok: bool
    value: Any
    limit: Any
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``name, ok, value, limit, detail``)."""
        return {"name": self.name, "ok": self.ok, "value": self.value, "limit": self.limit, "detail": self.detail}


@dataclass
class FitReport:
    """The result of :func:`check_fit`; :meth:`to_dict` gives the ``edgert fit --json`` object.

    Attributes:
        target: Profile name.
        fits: True when every check passed.
        checks: All checks, in order.
        arena_bytes: The tensor arena TFLite Micro takes on the target (TFLite Micro targets: measured on
            the target when given, else planned for the target's core and kernels; None when unknown,
            see ``arena_source``); on other targets edgert's plan of the 64-bit host build.
        micro_arena_bytes: Arena the ``tflite-micro`` wheel allocated on this 64-bit host (reference
            kernels; MCU targets, when installed), else None. It checks the planner; it is not the target's.
        arena_source: Where ``arena_bytes`` comes from (:data:`~edgert.targets.tflm.ARENA_SOURCES`).
        arena_plan_bytes: The planner's figure for the target's build (None when it cannot plan it).
        arena: Details (config, host figures, breakdown, unknown ops, warnings), None on other targets.
        instructions: Instructions the emulated board retired for one invoke (``--measure-on emulated``;
            QEMU counts instructions, not cycles), else None.
        measured_on: The board that measured ``instructions`` / the arena, else None.
        flash_bytes: Model file size.
        ram_bytes: RAM the RAM check counted.
        latency_ms: Estimated latency of one inference on the target.
        energy_uj: Estimated energy of one inference.
        unsupported_ops: ``{op name: count}`` of ops the target cannot run.
        edgetpu: Edge TPU partition prediction (``cpu_ops``, ``subgraphs``, ...), None on other targets.
        delegate: XNNPACK/GPU delegate coverage (``name``, ``delegated_ops``, ``cpu_ops``), None elsewhere.
        macs: Estimated MACs per inference.
        rate_hz: Inference rate used for power, None when not given.
        average_power_mw: Average power at ``rate_hz``.
        battery_hours: Battery life at ``rate_hz`` on the given battery.
        model: Path (or None) and sha256 of the model.
        notes: Extra remarks (estimate caveats, TFLM messages).
        warnings: Quirks of the file that one runtime refuses (``{runtime, message}``),
            whatever the target; the ``loads`` check fails only when it is the target's runtime.
    """

    target: str
    fits: bool
    checks: list[Check]
    arena_bytes: int | None
    micro_arena_bytes: int | None
    flash_bytes: int
    ram_bytes: int
    latency_ms: float
    energy_uj: float
    unsupported_ops: dict[str, int]
    edgetpu: dict[str, Any] | None = None
    delegate: dict[str, Any] | None = None
    macs: int = 0
    rate_hz: float | None = None
    average_power_mw: float | None = None
    battery_hours: float | None = None
    model: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    arena_source: str = "planned"
    arena_plan_bytes: int | None = None
    arena: dict[str, Any] | None = None
    instructions: int | None = None
    measured_on: str | None = None

    def check(self, name: str) -> Check | None:
        """The check called ``name``, or None."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Contract keys (``target, fits, checks[], arena_bytes, flash_bytes, latency_ms, energy_uj,
        unsupported_ops{}``, ``edgetpu{cpu_ops{}, subgraphs}`` on Edge TPU) plus the extras."""
        out = {
            "target": self.target,
            "fits": self.fits,
            "checks": [c.to_dict() for c in self.checks],
            "arena_bytes": self.arena_bytes,
            "micro_arena_bytes": self.micro_arena_bytes,
            "arena_source": self.arena_source,
            "arena_plan_bytes": self.arena_plan_bytes,
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "latency_ms": round(self.latency_ms, 4),
            "energy_uj": round(self.energy_uj, 3),
            "unsupported_ops": dict(self.unsupported_ops),
            "macs": self.macs,
            "rate_hz": self.rate_hz,
            "average_power_mw": None if self.average_power_mw is None else round(self.average_power_mw, 6),
            "battery_hours": None if self.battery_hours is None else round(self.battery_hours, 3),
            "model": dict(self.model),
            "notes": list(self.notes),
            "warnings": [dict(w) for w in self.warnings],
        }
        if self.arena is not None:
            out["arena"] = dict(self.arena)
        if self.instructions is not None or self.measured_on is not None:
            out["instructions"] = self.instructions
            out["measured_on"] = self.measured_on
        if self.edgetpu is not None:
            out["edgetpu"] = dict(self.edgetpu)
        if self.delegate is not None:
            out["delegate"] = dict(self.delegate)
        return out


@dataclass(frozen=True)
class TargetMeasurement:
    """What the target itself measured for the model (e.g. our firmware on an emulated board).

    Attributes:
        arena_bytes: TFLite Micro's ``arena_used_bytes()`` on the target, None when not reported.
        instructions: Instructions retired by one invoke (QEMU ``-icount``: instructions, not cycles).
        board: Which board measured it (``"mps2-an386 (cortex-m4)"``).
    """

    arena_bytes: int | None = None
    instructions: int | None = None
    board: str = ""


def parse_rate(text: str | float) -> float:
    """Inference rate in Hz from ``"5/s"``, ``"1/min"``, ``"0.2"`` or ``"2/h"``.

    Raises:
        InputDataError: unparseable or non-positive.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(?:/\s*(s|sec|min|h|hr|hour))?\s*", str(text))
        if not m:
            raise InputDataError(f"rate {text!r} is not understood", "write it like 1/s, 5/s, 10/min or 0.2")
        per = {"s": 1, "sec": 1, "min": 60, "h": 3600, "hr": 3600, "hour": 3600}[m.group(2) or "s"]
        value = float(m.group(1)) / per
    if not value > 0:
        raise InputDataError(f"rate {text!r} must be positive")
    return value


# ---- the checks: each returns one Check; fixes come from FIXES by code --------------------------
def _failed(detail: str, code: Code, target: Target, runtime: Runtime) -> str:
    """``detail`` and, after a dash, the fix for ``code``."""
    fix = fixes_for([code], target=target.name, op_set=target.op_set, input_dtype=target.input_dtype,
                    **runtime.fix_params())
    return f"{detail} — {fix}"


def _flash_check(model, target: Target) -> Check:
    size, limit = model.size_bytes, target.flash_bytes
    detail = f"model file {size:,} B of {limit:,} B"
    if size > limit:
        detail = _failed(detail, Code.FLASH, target, target.runtime)
    return Check("flash", size <= limit, size, limit, detail)


def _loads_check(model, target: Target) -> Check:
    """Whether the target's interpreter accepts the file's quirks (:attr:`ModelFile.warnings`)."""
    interpreter = target.runtime.interpreter
    refused = [w for w in model.warnings if w.runtime == interpreter]
    name = RUNTIME_NAMES[interpreter]
    if not refused:
        others = [w for w in model.warnings if w.runtime != interpreter]
        detail = f"{name} loads this file" + (
            f" (only {', '.join(sorted({RUNTIME_NAMES[w.runtime] for w in others}))} refuses it: see warnings)"
            if others else "")
        return Check("loads", True, 0, 0, detail)
    detail = f"{name} refuses this file: " + "; ".join(w.message for w in refused)
    return Check("loads", False, len(refused), 0, _failed(detail, Code.LOADS, target, target.runtime))


def _ops_check(model, target: Target, ops: OpAssessment) -> Check:
    runtime = target.runtime
    n_ops = sum(model.ops.values())
    if ops.unsupported:
        fix = fixes_for((p.code for p in ops.problems.values()), target=target.name, op_set=target.op_set,
                        input_dtype=target.input_dtype, **runtime.fix_params())
        detail = (f"{sum(ops.unsupported.values())} of {n_ops} ops cannot run on {target.op_set}: "
                  + "; ".join(ops.reason_lines()) + f" — {fix}")
    else:
        detail = f"all {n_ops} ops run on {target.op_set}"
    fallback = ops.delegate["cpu_ops"] if ops.delegate else {}
    if fallback:
        detail += (f"; {sum(fallback.values())} op(s) not taken by the {target.delegate} delegate run on the CPU: "
                   + ", ".join(sorted(fallback)))
    return Check("ops", not ops.unsupported, sum(ops.unsupported.values()), 0, detail)


def _static_shapes_check(model, target: Target) -> Check:
    dynamic = [t.name for s in range(model.num_subgraphs) for t in model.tensors(s) if dynamic_dims(t)]
    if not dynamic:
        return Check("static_shapes", True, 0, 0, "all tensor shapes are fixed")
    detail = f"{len(dynamic)} tensor(s) with dynamic dimensions (e.g. {dynamic[0]!r})"
    return Check("static_shapes", False, len(dynamic), 0, _failed(detail, Code.STATIC_SHAPES, target, target.runtime))


def _full_int8_check(model, target: Target) -> Check:
    runtime = target.runtime
    float_ops: dict[str, int] = {}
    for s in range(model.num_subgraphs):
        tensors = model.tensors(s)
        for op in model.operators(s):
            if op.name in ("QUANTIZE", "DEQUANTIZE") and runtime.converts_at_edge(model, op, tensors):
                continue  # float<->int conversion at the edge of the graph is allowed
            if computes_in_float(op, tensors):
                float_ops[op.name] = float_ops.get(op.name, 0) + 1
    if not float_ops:
        return Check("full_int8", True, 0, 0, "every op computes in integer")
    detail = f"{sum(float_ops.values())} op(s) compute in float ({', '.join(sorted(float_ops))})"
    return Check("full_int8", False, sum(float_ops.values()), 0, _failed(detail, Code.FULL_INT8, target, runtime))


def _io_dtype_check(model, target: Target) -> Check:
    runtime = target.runtime
    io = list(model.inputs) + list(model.outputs)
    dtypes = sorted({t.dtype for t in io})
    wanted = {target.input_dtype, target.output_dtype}
    refused = sorted({t.dtype for t in io if t.dtype in runtime.refused_io_dtypes})
    if refused:
        detail = f"{'/'.join(refused)} input/output cannot run on {runtime.title}"
        return Check("io_dtype", False, dtypes, sorted(wanted), _failed(detail, Code.IO_UINT8, target, runtime))
    differs = sorted({t.dtype for t in io if t.dtype not in wanted})
    detail = (f"input/output are {', '.join(differs)}; {target.name} prefers {'/'.join(sorted(wanted))} "
              "(the runtime converts at the edges)" if differs else
              f"input/output dtypes match ({'/'.join(sorted(wanted))})")
    return Check("io_dtype", True, dtypes, sorted(wanted), detail)


def _ram_check(ram: RamUse, target: Target, notes: list[str]) -> Check:
    over = ram.used > ram.limit
    if over and ram.over_note:
        notes.append(ram.over_note)
    detail = _failed(ram.detail, ram.code, target, target.runtime) if over else ram.detail
    return Check("ram", not over or ram.over_note is not None, ram.used, ram.limit, detail)


def _rate_check(rate_hz: float, latency: float, target: Target) -> Check:
    duty = latency / 1e3 * rate_hz
    if duty <= 1:
        return Check("rate", True, round(duty, 6), 1.0,
                     f"{rate_hz:g} inferences/s keep the device busy {duty:.1%} of the time")
    detail = f"{rate_hz:g} inferences/s need {duty:.2f}x the time available"
    return Check("rate", False, round(duty, 6), 1.0, _failed(detail, Code.RATE, target, target.runtime))


def check_fit(
    model,
    target: Target | str,
    *,
    rate_hz: float | None = None,
    battery_mwh: float | None = None,
    measure_micro: bool = True,
    measured: TargetMeasurement | None = None,
    progress=None,
) -> FitReport:
    """Check ``model`` against ``target``.

    The checks common to every target (flash, loads, ops, shapes, types, RAM, rate)
    ask the target's runtime family (:attr:`Target.runtime`) what differs: which ops
    it cannot run, what counts as RAM, how an inference is costed.

    Args:
        model: A :class:`~edgert.model.ModelFile`, a path or the model's bytes.
        target: A :class:`~edgert.targets.Target`, a profile name or a ``.toml`` path.
        rate_hz: Inferences per second, for duty-cycled average power and battery life.
        battery_mwh: Battery energy in mWh (``mAh x V``), for battery life at ``rate_hz``.
        measure_micro: On TFLite Micro targets, also load the model in the ``tflite-micro`` wheel
            (when installed): its 64-bit arena checks the plan for the target's core.
        measured: What the target itself measured (arena, instructions), e.g. on an emulated board;
            its arena is then ``arena_bytes`` (``arena_source`` ``"measured-target"``).
        progress: Optional ``progress(done, total, label)`` callback.

    Returns:
        The :class:`FitReport`. Unsupported ops make ``fits`` False; they never raise.

    Raises:
        TargetError: unknown or malformed target.
        InvalidModelError / InputDataError: the model cannot be read.
    """
    target = load_target(target)
    model = read_model(model)
    runtime = target.runtime
    steps = 4
    report_progress(progress, 0, steps, "plan arena")
    plan = plan_arena(model)
    notes: list[str] = []
    checks = [_flash_check(model, target), _loads_check(model, target)]

    report_progress(progress, 1, steps, "op support")
    ops = runtime.assess(model, target, notes=notes, measure=measure_micro,
                         step=lambda label: report_progress(progress, 2, steps, label))
    checks.append(_ops_check(model, target, ops))
    if target.static_shapes:
        checks.append(_static_shapes_check(model, target))
    if target.full_int8:
        checks.append(_full_int8_check(model, target))
    checks.append(_io_dtype_check(model, target))

    report_progress(progress, 3, steps, "RAM and latency")
    arena = None
    if runtime.arena:
        from edgert.targets.tflm import target_arena

        arena = ops.arena = target_arena(model, target, host_measured=ops.measured_arena,
                                         target_measured=measured.arena_bytes if measured else None)
    ram = runtime.ram(model, target, plan, ops)
    checks.append(_ram_check(ram, target, notes))
    latency, energy = runtime.latency_energy(model, target, op_costs(model), ops, notes)

    avg_power = battery_hours = None
    if rate_hz is not None:
        rate_hz = parse_rate(rate_hz)
        checks.append(_rate_check(rate_hz, latency, target))
        duty = latency / 1e3 * rate_hz
        avg_power = energy * rate_hz / 1e3 + target.idle_power_mw * max(0.0, 1.0 - duty)
        if battery_mwh is not None:
            if not battery_mwh > 0:
                raise InputDataError(f"battery energy {battery_mwh} mWh must be positive")
            battery_hours = battery_mwh / avg_power if avg_power > 0 else float("inf")
    elif battery_mwh is not None:
        notes.append("battery life needs a rate (--rate)")

    report_progress(progress, 4, steps, "done")
    result = FitReport(
        target=target.name,
        fits=all(c.ok for c in checks),
        checks=checks,
        arena_bytes=arena.bytes if arena is not None else plan.total_bytes,
        arena_source=arena.source if arena is not None else "planned",
        arena_plan_bytes=arena.plan_bytes if arena is not None else plan.total_bytes,
        arena=arena.to_dict() if arena is not None else None,
        instructions=measured.instructions if measured else None,
        measured_on=measured.board if measured else None,
        micro_arena_bytes=ops.measured_arena,
        flash_bytes=model.size_bytes,
        ram_bytes=ram.used,
        latency_ms=latency,
        energy_uj=energy,
        unsupported_ops=ops.unsupported,
        edgetpu=ops.edgetpu,
        delegate=ops.delegate,
        macs=model.macs,
        rate_hz=rate_hz,
        average_power_mw=avg_power,
        battery_hours=battery_hours,
        model={"path": model.path, "sha256": model.sha256},
        notes=notes,
        warnings=[w.to_dict() for w in model.warnings]
        + [{"runtime": "tflm", "message": m} for m in (arena.warnings if arena is not None else ())],
    )
    log.debug("fit %s on %s: fits=%s", model.path, target.name, result.fits)
    return result


def fit_markdown(report: FitReport | dict[str, Any]) -> str:
    """A human Markdown summary of a fit report (checks table, then estimates).

    Args:
        report: A :class:`FitReport` or its :meth:`~FitReport.to_dict`.
    """
    d = report.to_dict() if isinstance(report, FitReport) else report
    lines = [
        f"### Fit on `{d['target']}`: {'fits' if d['fits'] else 'does NOT fit'}",
        "",
        "| check | ok | value | limit | detail |",
        "|---|---|---|---|---|",
    ]
    for c in d["checks"]:
        fmt = format_bytes if c["name"] in ("flash", "ram") else str
        detail = str(c["detail"]).replace("|", "\\|")
        lines.append(f"| {c['name']} | {'yes' if c['ok'] else '**no**'} | {fmt(c['value'])} | {fmt(c['limit'])} | {detail} |")
    source = d.get("arena_source", "planned")
    arena = "unknown" if d["arena_bytes"] is None else format_bytes(d["arena_bytes"])
    if d.get("arena") is None:  # not a TFLite Micro target: the plan of the 64-bit host build, for reference
        lines += ["", f"- tensor arena (edgert plan, TFLite Micro on a 64-bit host): {arena}"]
    else:
        lines += ["", f"- tensor arena on the target: {arena} ({source}, {d['arena'].get('config') or 'no arena model'})"]
    if d.get("arena_plan_bytes") is not None and source != "planned":
        lines.append(f"- tensor arena (edgert plan for the target): {format_bytes(d['arena_plan_bytes'])}")
    if d.get("micro_arena_bytes") is not None:
        lines.append(f"- tensor arena (TFLite Micro wheel, 64-bit host): {format_bytes(d['micro_arena_bytes'])}")
    lines.append(f"- model file: {format_bytes(d['flash_bytes'])}, {d.get('macs', 0):,} MACs")
    lines.append(f"- latency (estimate): {d['latency_ms']:.3g} ms, energy: {d['energy_uj']:.4g} µJ per inference")
    if d.get("instructions") is not None:
        lines.append(f"- measured on {d.get('measured_on')}: {d['instructions']:,} instructions per invoke "
                     "(emulated: instructions, not cycles)")
    if d.get("rate_hz"):
        lines.append(f"- at {d['rate_hz']:g}/s: average power {d['average_power_mw']:.4g} mW")
        if d.get("battery_hours") is not None:
            lines.append(f"- battery life: {d['battery_hours']:.4g} h ({d['battery_hours'] / 24:.3g} days)")
    if d["unsupported_ops"]:
        lines.append("- unsupported ops: " + ", ".join(f"{k}×{v}" for k, v in d["unsupported_ops"].items()))
    tpu = d.get("edgetpu")
    if tpu:
        cpu = ", ".join(f"{k}×{v}" for k, v in tpu["cpu_ops"].items()) or "none"
        lines.append(f"- Edge TPU: {tpu['mapped_ops']} op(s) mapped in {tpu['subgraphs']} subgraph(s); on the CPU: {cpu}")
        if tpu.get("first_unsupported"):
            f = tpu["first_unsupported"]
            lines.append(f"  - mapping stops at op {f['index']} {f['op']}: {f['reason']}")
        lines.append(f"  - compile: `{tpu['compiler']}`")
    dlg = d.get("delegate")
    if dlg:
        cpu = ", ".join(f"{k}×{v}" for k, v in dlg["cpu_ops"].items()) or "none"
        lines.append(f"- {dlg['name']} delegate: {dlg['delegated_ops']} op(s) delegated; on the CPU: {cpu}")
    for n in d.get("notes", []):
        lines.append(f"- note: {n}")
    for w in d.get("warnings", []):
        lines.append(f"- warning: {w['message']}")
    return "\n".join(lines) + "\n"
