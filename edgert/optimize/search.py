"""Budget-driven search: find the smallest/fastest model that fits a target and keeps its accuracy.

Candidates are the product of

* a **format**: float16, dynamic-range int8, full int8, int16x8 (only those the
  target can run: an MCU or the Edge TPU runs full-integer models only),
* a **model variant**: the teacher, distilled students (width multipliers), and
  each of those magnitude-pruned or structurally pruned at several levels, plus
  a quantization-aware fine-tuned variant whenever post-training int8 loses more
  than the budget.

Every candidate is converted for real, checked against the target with
:func:`edgert.fit.check_fit`, evaluated on held-out data with the TFLite
interpreter and timed on the host. Cheap tests run first so expensive ones are
skipped: a variant whose untrained (already narrowed) int8 model does not fit an
MCU is never trained, and larger pruning levels are not tried once a smaller one
has blown the accuracy budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgert.errors import ConversionError, EdgertError, InputDataError
from edgert.files import atomic_write
from edgert.interrupt import checkpoint, deferred_interrupts
from edgert.optimize.data import Dataset, check_classifier_data, load_dataset, split_dataset
from edgert.optimize.foreign import TORCH_MODES, foreign_route, keras_only_reason, load_foreign
from edgert.progress import report
from edgert.runtime.micro import MicroError, micro_available
from edgert.targets import Target, load_target
from edgert.targets.base import ALL_FORMATS, FORMAT_TEXT

__all__ = [
    "ALL_MODES",
    "SearchSpace",
    "Candidate",
    "OptimizeResult",
    "VariantCache",
    "modes_for_target",
    "optimize",
    "host_latency_ms",
    "choose_best",
    "ForeignSearch",
]

log = logging.getLogger("edgert.optimize")

#: Formats in the order they are tried (cheapest to convert first).
ALL_MODES = ALL_FORMATS
_MODE_TEXT = FORMAT_TEXT
_CALIBRATION_SAMPLES = 200


def modes_for_target(target: Target) -> tuple[list[str], dict[str, str]]:
    """Formats the target can run, and a reason for each one it cannot.

    The target's runtime family decides: TFLite Micro and the Edge TPU run
    full-integer models only (float16 and dynamic-range models keep float
    kernels they do not have).
    """
    runtime = target.runtime
    allowed = [m for m in ALL_MODES if m in runtime.formats]
    skipped = {m: runtime.format_refusal(m, target) for m in ALL_MODES if m not in runtime.formats}
    return allowed, skipped


@dataclass
class SearchSpace:
    """What to try.

    Attributes:
        modes: Formats to consider (intersected with what the target runs); None = all.
        sparsities: Magnitude-pruning target sparsities (fractions of zero weights).
        filter_fractions: Structured-pruning fractions of filters removed per layer.
        students: Width multipliers of distilled students (empty = no distillation).
        qat: Try quantization-aware fine-tuning when post-training int8 loses more than the budget.
        prune_students: Also prune the students (the full product); False prunes the teacher only.
        epochs_prune, epochs_structured, epochs_distill, epochs_qat: Fine-tuning lengths.
        temperature, alpha: Distillation softmax temperature and hard-label weight.
        batch_size: Training batch size (data must hold at least one batch).
    """

    modes: list[str] | None = None
    sparsities: list[float] = field(default_factory=lambda: [0.5, 0.75])
    filter_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    students: list[float] = field(default_factory=lambda: [0.5])
    qat: bool = True
    prune_students: bool = True
    epochs_prune: int = 4
    epochs_structured: int = 8
    epochs_distill: int = 40
    epochs_qat: int = 3
    batch_size: int = 32
    temperature: float = 2.0
    alpha: float = 0.5


@dataclass
class Candidate:
    """One measured (or skipped) candidate; the rows of ``candidates.json``.

    Attributes:
        name: ``variant/format``, e.g. ``student0.5+structured50/int8``.
        variant: The Keras model it came from (``teacher``, ``structured50``, ``student0.5+qat`` ...).
        technique: Human description (format + techniques).
        mode: Converter format: ``float16``, ``dynamic``, ``int8`` or ``int16x8``.
        status: ``passed`` (fits and within budget), ``failed`` (measured; ``reason`` says why) or
            ``skipped`` (not converted: the target cannot run the format, it was predicted not to fit,
            or a gentler level already blew the budget).
        reason: Why it failed or was skipped (or a note, e.g. the gzip size of a magnitude-pruned model).
        size_bytes: The .tflite file size; ``gzip_bytes`` its compressed size.
        parameters, sparsity: Weight count of the variant and its fraction of zero kernel weights.
        arena_bytes: Tensor arena on the target (fit's ``arena_bytes``: measured there or planned for its
            core; None when unknown).
        flash_bytes: What the fit check counted against flash.
        target_latency_ms: Estimated latency on the target (from the profile's cost model).
        host_latency_ms: Measured median invoke time on this host (one thread).
        accuracy: Top-1 on the held-out data (0..1); ``accuracy_drop`` in points below the float teacher.
        evaluated_with: ``tflite-micro`` (MCU targets: the device's interpreter) or ``interpreter``.
        fits: Whether :func:`edgert.fit.check_fit` passed; ``failed_checks`` names the checks that did not.
        sha256: Of the measured bytes (the winner in ``best/`` also carries metadata, so its hash differs).
        chosen: The winner.
    """

    name: str
    variant: str
    technique: str
    mode: str
    status: str = "pending"          # "passed" | "failed" | "skipped"
    reason: str = ""
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    parameters: int | None = None
    sparsity: float | None = None
    arena_bytes: int | None = None
    flash_bytes: int | None = None
    target_latency_ms: float | None = None
    host_latency_ms: float | None = None
    accuracy: float | None = None
    accuracy_drop: float | None = None  # percentage points below the float teacher
    evaluated_with: str | None = None   # "tflite-micro" on MCU targets (the device's interpreter), else "interpreter"
    fits: bool | None = None
    failed_checks: list[str] = field(default_factory=list)
    sha256: str | None = None
    chosen: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def measured(self) -> bool:
        return self.size_bytes is not None and self.accuracy is not None

    def measured_accuracy(self) -> tuple[float, float]:
        """(accuracy, accuracy_drop) of a measured candidate (measure() sets both at once)."""
        assert self.accuracy is not None and self.accuracy_drop is not None, f"{self.name} was not measured"
        return self.accuracy, self.accuracy_drop

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


@dataclass
class OptimizeResult:
    """What :func:`optimize` found.

    Attributes:
        target: Target name.
        budget: Allowed top-1 drop in percentage points.
        baseline: The float teacher: ``accuracy``, ``size_bytes``, ``host_latency_ms``, ``parameters``.
        candidates: Every candidate, measured or skipped, in the order tried.
        best: The chosen candidate, or None when none meets the budget.
        closest: With no winner, the candidate that came closest (fits, least accuracy lost).
        output_dir: Where candidates.json, pareto.png and best/ were written.
        interrupted: True when Ctrl-C stopped the search early.
        best_model: The winner's Keras model (in memory only).
        best_tflite: The winner's .tflite bytes.
    """

    target: str
    budget: float
    baseline: dict[str, Any]
    candidates: list[Candidate]
    best: Candidate | None
    closest: Candidate | None
    output_dir: Path | None
    interrupted: bool = False
    best_model: Any = None
    best_tflite: bytes | None = None
    data: dict[str, int] = field(default_factory=dict)
    prefer: str = "size"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "budget_points": self.budget,
            "prefer": self.prefer,
            "baseline": self.baseline,
            "data": self.data,
            "chosen": self.best.name if self.best else None,
            "closest": self.closest.name if self.closest else None,
            "interrupted": self.interrupted,
            "output_dir": str(self.output_dir) if self.output_dir else None,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def host_latency_ms(data: bytes, x: np.ndarray, runs: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median single-sample invoke time (ms) of ``data`` on this host's interpreter (one thread).

    Only for models our own converter just produced (loaded as trusted).
    """
    from edgert.runtime import load_model

    model = load_model(data, trusted=True, threads=threads)
    sample = x[:1]
    model.set_input(0, sample)
    for _ in range(warmup):
        model.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


class VariantCache:
    """Trained model variants and conversions shared across targets (the demo optimizes one model for four).

    Keys are independent of the target, so a variant trained while optimizing for
    one profile is reused for the next; conversions are keyed by format, I/O
    types and full-integer setting, evaluations by the bytes' sha256. Use one
    cache per teacher, training data and :class:`SearchSpace`: variants are
    keyed by name only.
    """

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}
        self.extras: dict[str, dict] = {}
        self.tflite: dict[tuple, bytes] = {}
        self.scores: dict[str, tuple[float, float]] = {}


@dataclass
class _Variant:
    name: str
    kind: str        # "teacher" | "student" | "magnitude" | "structured" | "qat"
    amount: float
    base: str | None
    technique: str


def _variants(space: SearchSpace) -> list[_Variant]:
    """Variants in the order they are tried: teacher, students, then pruning levels from gentle to aggressive."""
    bases = [_Variant("teacher", "teacher", 0.0, None, "teacher")]
    for w in space.students:
        bases.append(_Variant(f"student{w:g}", "student", w, "teacher", f"distilled student (width ×{w:g})"))
    out = list(bases)
    for base in bases if space.prune_students else bases[:1]:
        prefix = "" if base.kind == "teacher" else f"{base.name}+"
        what = "" if base.kind == "teacher" else f"{base.technique} + "
        for f in sorted(space.filter_fractions):
            out.append(_Variant(f"{prefix}structured{int(round(f * 100))}", "structured", f, base.name,
                                f"{what}structured pruning {f:.0%} of filters"))
        for s in sorted(space.sparsities):
            out.append(_Variant(f"{prefix}magnitude{int(round(s * 100))}", "magnitude", s, base.name,
                                f"{what}magnitude pruning {s:.0%} sparsity"))
    return out


def _load_inputs(model: Any, data: Dataset | str | Path | tuple, batch_size: int):
    from edgert.optimize._keras import keras

    k = keras()
    if not isinstance(model, k.Model):
        from edgert.convert import load_keras_model

        model = load_keras_model(model)
    input_shape = tuple(model.inputs[0].shape)
    if isinstance(data, tuple):
        data = Dataset(np.asarray(data[0], np.float32), None if data[1] is None else np.asarray(data[1], np.int64))
    elif not isinstance(data, Dataset):
        data = load_dataset(data, input_shape)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputDataError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs",
                             "optimize handles single-input, single-output classifiers")
    check_classifier_data(data, int(np.prod(model.outputs[0].shape[1:])))
    if len(data) < 2 * batch_size:
        raise InputDataError(
            f"only {len(data)} samples: smaller than a training batch plus held-out data ({2 * batch_size} at least)",
            "give more labeled data (a few hundred samples per class is typical)",
        )
    return model, data


def resolve_prefer(prefer: str, target: Target) -> str:
    """``"auto"`` → what the target's runtime family minimizes: ``"size"`` on MCUs and the Edge TPU
    (flash and SRAM are the limit), ``"latency"`` elsewhere."""
    if prefer != "auto":
        return prefer
    return target.runtime.prefer


def choose_best(candidates: Iterable[Candidate], prefer: str = "size") -> Candidate | None:
    """The passing candidate with the smallest file (``prefer="size"``) or estimated latency (``"latency"``).

    Ties break on the other criterion, then on accuracy.
    """
    passed = [c for c in candidates if c.passed]
    if not passed:
        return None

    def lat(c: Candidate) -> float:
        return c.target_latency_ms if c.target_latency_ms is not None else (c.host_latency_ms or 0.0)

    if prefer == "latency":
        return min(passed, key=lambda c: (lat(c), c.size_bytes, -c.measured_accuracy()[0]))
    return min(passed, key=lambda c: (c.size_bytes, lat(c), -c.measured_accuracy()[0]))


def _closest(candidates: list[Candidate]) -> Candidate | None:
    measured = [c for c in candidates if c.measured]
    if not measured:
        return None
    fitting = [c for c in measured if c.fits]
    pool = fitting or measured
    if fitting:
        return min(pool, key=lambda c: (c.accuracy_drop, c.size_bytes))
    return min(pool, key=lambda c: (c.size_bytes, c.accuracy_drop))


class _Search:
    """One optimize run (state shared by the steps; see :func:`optimize`)."""

    def __init__(self, model, target: Target, train: Dataset, test: Dataset, budget: float, space: SearchSpace,
                 cache: VariantCache, progress, seed: int) -> None:
        self.teacher, self.target, self.train, self.test = model, target, train, test
        if train.y is None or test.y is None:
            raise InputDataError("the data has no labels", "optimize measures accuracy: give integer class labels (y)")
        self.train_y, self.test_y = train.y, test.y
        self.budget, self.space, self.cache, self.progress, self.seed = budget, space, cache, progress, seed
        self.calibration = train.x[:_CALIBRATION_SAMPLES]
        allowed, self.skipped_modes = modes_for_target(target)
        wanted = space.modes or list(ALL_MODES)
        for m in wanted:
            if m not in ALL_MODES and m != "float32":
                raise InputDataError(f"unknown format {m!r}", f"choose from {', '.join(ALL_MODES)}")
        self.modes = [m for m in wanted if m in allowed]
        self.candidates: list[Candidate] = []
        self.baseline: dict[str, Any] = {}
        self.base_accuracy = 0.0
        self.predicted_misfits: set[str] = set()
        # Candidates for TFLite Micro are predicted, measured and evaluated the way its firmware runs them.
        self.mcu = target.runtime.interpreter == "tflm"
        # Accuracy on an MCU is measured under TensorFlow Lite Micro when it is installed (convert extra).
        self.micro = self.mcu and micro_available()
        if self.mcu and not self.micro:
            log.warning("tflite_micro is not installed: MCU candidates are evaluated with the host interpreter")

    # -- conversions and measurements -------------------------------------------------
    def io_types(self, mode: str) -> tuple[str | None, str | None]:
        if mode != "int8":
            return None, None
        return self.target.input_dtype, self.target.output_dtype

    def convert(self, key: str, model: Any, mode: str) -> bytes:
        from edgert.convert import convert_keras

        in_t, out_t = self.io_types(mode)
        # Full-integer targets (MCU, Edge TPU) must not get float fallback kernels.
        full = bool(getattr(self.target, "full_int8", False)) and mode == "int8"
        ck = (key, mode, in_t, out_t, full)
        if ck not in self.cache.tflite:
            rep = self.calibration if mode in ("int8", "int16x8") else None
            self.cache.tflite[ck] = convert_keras(model, mode=mode, representative_data=rep,
                                                   input_dtype=in_t, output_dtype=out_t, full_int8=full)
        return self.cache.tflite[ck]

    def score(self, data: bytes, micro: bool) -> tuple[float, float]:
        """(top-1 accuracy 0..1, host latency ms), cached by content.

        On an MCU target the accuracy is measured under TensorFlow Lite Micro itself (the interpreter the
        device runs, with its own reference kernels), not the host interpreter.
        """
        from edgert.convert import evaluate

        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest}:{'tflm' if micro else 'host'}"
        if key not in self.cache.scores:
            if micro:
                from edgert.optimize.micro_eval import micro_top1

                acc = float(micro_top1(data, self.test.x, self.test_y)["top1"])
            else:
                acc = float(evaluate(data, self.test.x, self.test_y)["top1"])
            self.cache.scores[key] = (acc, host_latency_ms(data, self.test.x))
        return self.cache.scores[key]

    def fit(self, data: bytes, measure: bool):
        from edgert.fit import check_fit

        return check_fit(data, self.target, measure_micro=measure and self.mcu)

    # -- variants ---------------------------------------------------------------------------
    def variant_model(self, v: _Variant, models: dict[str, Any], train: bool = True) -> Any:
        """Build (and with ``train`` fine-tune) a variant; trained ones are cached across targets."""
        from edgert.optimize.distill import distill, width_student
        from edgert.optimize.pruning import magnitude_prune, structured_prune

        if v.kind == "teacher":
            return self.teacher
        if train and v.name in self.cache.models:
            return self.cache.models[v.name]
        base = models[v.base] if v.base else self.teacher
        sp, x, y, bs = self.space, self.train.x, self.train_y, self.space.batch_size
        if not train:
            if v.kind == "student":
                return width_student(base, v.amount, seed=self.seed)
            if v.kind == "structured":
                return structured_prune(base, fraction=v.amount, epochs=0).model
            return base
        if v.kind == "student":
            distilled = distill(base, v.amount, x, y, epochs=sp.epochs_distill, batch_size=bs, progress=self.progress,
                                temperature=sp.temperature, alpha=sp.alpha,
                                seed=self.seed, eval_data=(self.test.x, self.test_y))
            model, extra = distilled.student, distilled.to_dict()
        elif v.kind == "structured":
            pruned = structured_prune(base, x, y, fraction=v.amount, epochs=sp.epochs_structured, batch_size=bs,
                                      progress=self.progress, seed=self.seed)
            model, extra = pruned.model, pruned.to_dict()
        elif v.kind == "magnitude":
            pruned = magnitude_prune(base, x, y, sparsity=v.amount, epochs=sp.epochs_prune, batch_size=bs,
                                     progress=self.progress, seed=self.seed)
            model, extra = pruned.model, pruned.to_dict()
        else:
            raise ValueError(v.kind)
        self.cache.models[v.name], self.cache.extras[v.name] = model, extra
        return model

    def record(self, c: Candidate, on_candidate) -> Candidate:
        self.candidates.append(c)
        if on_candidate is not None:
            on_candidate(self)
        checkpoint()  # a Ctrl-C stops the search here, with this candidate already on disk
        return c

    def model_stats(self, model: Any, data: bytes) -> tuple[int, float | None]:
        """(parameters, fraction of zero kernel weights) of the variant ``data`` was converted from."""
        from edgert.optimize._keras import parameter_count
        from edgert.optimize.pruning import kernel_sparsity

        return parameter_count(model), round(kernel_sparsity(model), 4)

    def measure(self, v: _Variant, model: Any, mode: str, on_candidate) -> Candidate:
        from edgert.optimize.pruning import gzip_size

        name = f"{v.name}/{mode}"
        c = Candidate(name, v.name, f"{_MODE_TEXT[mode]} + {v.technique}" if v.kind != "teacher" else _MODE_TEXT[mode], mode)
        try:
            data = self.convert(v.name, model, mode)
        except EdgertError as e:
            c.status, c.reason = "failed", f"conversion failed: {e}"
            return self.record(c, on_candidate)
        fit = self.fit(data, measure=True)
        try:
            acc, host = self.score(data, micro=self.micro)
        except MicroError as e:
            c.size_bytes, c.fits = len(data), False
            c.status, c.reason = "failed", f"TensorFlow Lite Micro cannot run it: {e}"
            return self.record(c, on_candidate)
        c.size_bytes, c.gzip_bytes = len(data), gzip_size(data)
        c.parameters, c.sparsity = self.model_stats(model, data)
        c.arena_bytes = fit.arena_bytes  # the arena on the target (None when fit cannot say)
        c.flash_bytes, c.target_latency_ms = fit.flash_bytes, fit.latency_ms
        c.host_latency_ms, c.accuracy = round(host, 4), round(acc, 4)
        c.evaluated_with = "tflite-micro" if self.micro else "interpreter"
        c.accuracy_drop = round(100.0 * (self.base_accuracy - acc), 2) + 0.0  # + 0.0: no "-0.0"
        c.fits, c.sha256 = bool(fit.fits), hashlib.sha256(data).hexdigest()
        c.failed_checks = [ch.name for ch in fit.checks if not ch.ok]
        reasons = []
        if not fit.fits:
            details = "; ".join(f"{ch.name}: {ch.detail}" if ch.detail else ch.name for ch in fit.checks if not ch.ok)
            reasons.append(f"does not fit {self.target.name} ({details})")
        if c.accuracy_drop > self.budget:
            reasons.append(f"loses {c.accuracy_drop:.2f} points (budget {self.budget:g})")
        if v.kind == "magnitude":
            reasons_note = f"sparsity {c.sparsity:.0%}: file unchanged, gzip {c.gzip_bytes} bytes"
        else:
            reasons_note = ""
        c.status = "failed" if reasons else "passed"
        c.reason = "; ".join(reasons) if reasons else (reasons_note or "fits and within budget")
        if reasons and reasons_note:
            c.reason += f" ({reasons_note})"
        return self.record(c, on_candidate)

    def skip(self, v: _Variant, mode: str, reason: str, on_candidate) -> None:
        technique = _MODE_TEXT[mode] if v.kind == "teacher" else f"{_MODE_TEXT[mode]} + {v.technique}"
        self.record(Candidate(f"{v.name}/{mode}", v.name, technique, mode, status="skipped", reason=reason), on_candidate)

    def predicted_misfit(self, v: _Variant, models: dict[str, Any]) -> str | None:
        """For an MCU: convert the untrained (already narrowed) variant and check the fit before paying for training."""
        if not self.mcu or v.kind not in ("student", "structured") or "int8" not in self.modes:
            return None
        if v.base and v.base not in models:
            return None
        untrained = self.variant_model(v, models, train=False)
        fit = self.fit(self.convert(f"{v.name}#untrained", untrained, "int8"), measure=False)
        if fit.fits:
            return None
        failed = ", ".join(ch.name for ch in fit.checks if not ch.ok)
        self.predicted_misfits.add(v.name)
        return f"predicted before training: the int8 model would not fit {self.target.name} ({failed})"

    def run(self, on_candidate=None) -> None:
        from edgert.optimize._keras import parameter_count
        from edgert.optimize.qat import quantization_aware_fine_tune

        float_bytes = self.convert("teacher", self.teacher, "float32")
        # The baseline runs on the host interpreter: TensorFlow Lite Micro targets are integer-only.
        acc, host = self.score(float_bytes, micro=False)
        self.base_accuracy = acc
        self.baseline = {"accuracy": round(acc, 4), "size_bytes": len(float_bytes), "host_latency_ms": round(host, 4),
                         "parameters": parameter_count(self.teacher), "format": "float32"}
        for m in ALL_MODES:
            if m in self.skipped_modes and (self.space.modes is None or m in self.space.modes):
                self.skip(_Variant("teacher", "teacher", 0, None, "teacher"), m, self.skipped_modes[m], on_candidate)
        variants = _variants(self.space)
        models: dict[str, Any] = {}
        blown: set[tuple[str | None, str]] = set()   # (base, kind) whose gentler level already exceeded the budget
        total = len(variants) * max(1, len(self.modes))
        done = 0
        for v in variants:
            checkpoint()
            report(self.progress, done, total, f"optimize {self.target.name}")
            if v.base is not None and v.base not in models:
                for m in self.modes:
                    self.skip(v, m, f"its base model {v.base} was not built", on_candidate)
                done += len(self.modes)
                continue
            if (v.base, v.kind) in blown:
                for m in self.modes:
                    self.skip(v, m, f"a gentler {v.kind} level already lost more than {self.budget:g} points", on_candidate)
                done += len(self.modes)
                continue
            model, applies = None, True
            try:
                misfit = self.predicted_misfit(v, models)
                if misfit is None and v.kind == "magnitude" and self._never_fits(v.base):
                    misfit = (f"magnitude pruning keeps the file and arena of {v.base}, which does not fit "
                              f"{self.target.name} in any format")
                model = None if misfit else self.variant_model(v, models)
            except ConversionError as e:
                # e.g. a residual network: channel surgery cannot follow branches; the other techniques still apply.
                misfit, applies = f"{v.technique} does not apply to this model: {e}", False
            if misfit:
                for m in self.modes:
                    self.skip(v, m, misfit, on_candidate)
                done += len(self.modes)
                if applies and v.kind == "student" and any(w.base == v.name for w in variants):
                    # Too big itself, but its pruned versions may fit: train it as their starting point.
                    models[v.name] = self.variant_model(v, models)
                continue
            models[v.name] = model
            results = []
            for m in self.modes:
                results.append(self.measure(v, model, m, on_candidate))
                done += 1
                report(self.progress, done, total, f"optimize {self.target.name}")
            measured = [c for c in results if c.measured]
            all_over_budget = measured and all(c.measured_accuracy()[1] > self.budget for c in measured)
            if v.kind in ("structured", "magnitude") and all_over_budget:
                blown.add((v.base, v.kind))
            int8 = next((c for c in results if c.mode == "int8" and c.measured), None)
            # QAT changes accuracy, not size: only worth it for an int8 model that fits but loses too much.
            if self.space.qat and int8 is not None and int8.fits and int8.measured_accuracy()[1] > self.budget:
                float_drop = self._float_drop(v, model)
                if float_drop is not None and float_drop <= self.budget:
                    name = f"{v.name}+qat"
                    if name not in self.cache.models:
                        self.cache.models[name] = quantization_aware_fine_tune(
                            model, self.train.x, self.train_y, epochs=self.space.epochs_qat,
                            batch_size=self.space.batch_size, progress=self.progress, seed=self.seed)
                    qv = _Variant(name, "qat", 0, v.name, f"{v.technique} + quantization-aware fine-tuning"
                                  if v.kind != "teacher" else "quantization-aware fine-tuning")
                    self.measure(qv, self.cache.models[name], "int8", on_candidate)
        report(self.progress, total, total, f"optimize {self.target.name}")

    def _never_fits(self, variant: str | None) -> bool:
        """True when every measured candidate of ``variant`` failed the fit check."""
        if variant in self.predicted_misfits:
            return True
        measured = [c for c in self.candidates if c.variant == variant and c.fits is not None]
        return bool(measured) and not any(c.fits for c in measured)

    def _float_drop(self, v: _Variant, model: Any) -> float | None:
        """Points the float variant itself loses: QAT only helps when the loss is the quantization's."""
        from edgert.optimize._keras import evaluate_keras

        acc = evaluate_keras(model, self.test.x, self.test_y)
        return 100.0 * (self.base_accuracy - acc)


class ForeignSearch(_Search):
    """The search for an ONNX/PyTorch model (:mod:`edgert.optimize.foreign`): every format the target and
    route allow, nothing trained; the Keras-only techniques of the space are listed as skipped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.route = str(self.teacher.route)
        if self.route == "torch":
            for m in [m for m in self.modes if m not in TORCH_MODES]:
                self.modes.remove(m)
                self.skipped_modes[m] = (f"{m} is not available for PyTorch models: litert-torch writes "
                                         f"{' or '.join(TORCH_MODES)} (export to ONNX for the other formats)")

    def convert(self, key: str, model: Any, mode: str) -> bytes:
        from edgert.convert.converter import convert_source
        from edgert.convert.settings import settings_for

        in_t, out_t = self.io_types(mode)
        ck = (key, mode, in_t, out_t, self.target.name)
        if ck not in self.cache.tflite:
            settings = settings_for(self.target, mode, in_t, out_t)
            samples = self.calibration if settings.needs_calibration else None
            if self.route == "torch":
                data = model.convert_to_tflite(settings, samples, progress=self.progress)
            else:
                data = convert_source(model, settings, samples, progress=self.progress)
            self.cache.tflite[ck] = data
        return self.cache.tflite[ck]

    def model_stats(self, model: Any, data: bytes) -> tuple[int, float | None]:
        from edgert.model import read_model

        return read_model(data).parameters, None  # nothing pruned: no sparsity to report

    def run(self, on_candidate=None) -> None:
        from edgert.model import read_model

        # The baseline is the original float model (torch / onnxruntime); the float32 .tflite gives size and speed.
        float_bytes = self.convert("teacher", self.teacher, "float32")
        float_pred = self.teacher.predict(self.test.x)
        acc = float(np.mean(np.argmax(float_pred.reshape(len(float_pred), -1), axis=1) == self.test_y))
        _, host = self.score(float_bytes, micro=False)
        self.base_accuracy = acc
        self.baseline = {"accuracy": round(acc, 4), "size_bytes": len(float_bytes), "host_latency_ms": round(host, 4),
                         "parameters": read_model(float_bytes).parameters, "format": "float32",
                         "reference": "torch" if self.route == "torch" else "onnxruntime"}
        teacher = _Variant("teacher", "teacher", 0.0, None, "teacher")
        for m in ALL_MODES:
            if m in self.skipped_modes and (self.space.modes is None or m in self.space.modes):
                self.skip(teacher, m, self.skipped_modes[m], on_candidate)
        results = []
        for i, m in enumerate(self.modes):
            report(self.progress, i, len(self.modes), f"optimize {self.target.name}")
            results.append(self.measure(teacher, self.teacher, m, on_candidate))
        # One row per Keras-only variant (not per format too): each would need a Keras model first.
        listed_mode = "int8" if "int8" in self.modes else (self.modes or ["int8"])[0]
        for v in _variants(self.space)[1:]:
            self.skip(v, listed_mode, keras_only_reason(v.kind, self.route), on_candidate)
        int8 = next((c for c in results if c.mode == "int8" and c.measured), None)
        # Where the Keras search would fine-tune (int8 fits but loses too much), say why it does not.
        if self.space.qat and int8 is not None and int8.fits and int8.measured_accuracy()[1] > self.budget:
            qat = _Variant("teacher+qat", "qat", 0.0, "teacher", "quantization-aware fine-tuning")
            self.skip(qat, "int8", keras_only_reason("qat", self.route), on_candidate)
        report(self.progress, len(self.modes), len(self.modes), f"optimize {self.target.name}")


def optimize(
    model: Any,
    target: Any,
    data: Dataset | str | Path | tuple,
    *,
    max_accuracy_drop: float,
    output_dir: str | Path | None = None,
    space: SearchSpace | None = None,
    prefer: str = "auto",
    test_fraction: float = 0.3,
    test_data: Dataset | None = None,
    labels: list[str] | None = None,
    preprocessing: dict | None = None,
    cache: VariantCache | None = None,
    progress=None,
    seed: int = 0,
    example_inputs: Any = None,
    input_shape: Any = None,
) -> OptimizeResult:
    """Search techniques for the smallest (or fastest) model that fits ``target`` within an accuracy budget.

    Args:
        model: A trained Keras classifier, or a path to a ``.keras``/``.h5``/SavedModel; or an ONNX/PyTorch
            classifier (``.onnx``, ``.pt2``, ``nn.Module``), which gets the post-training formats only: the
            Keras-only techniques of ``space`` are listed as skipped candidates (:mod:`edgert.optimize.foreign`).
        target: A :class:`edgert.targets.Target` or a profile name/path.
        data: Labeled data: a :class:`Dataset`, ``(x, y)``, an ``.npz`` with ``x``/``y`` or a labeled folder.
            Split into fine-tuning and held-out parts unless ``test_data`` is given.
        max_accuracy_drop: Allowed top-1 loss, in percentage points, against the float model.
        output_dir: Where to write ``candidates.json``, ``pareto.png`` and ``best/`` (None = write nothing).
        space: What to try (:class:`SearchSpace`).
        prefer: ``"size"`` (smallest file), ``"latency"`` (fastest estimated on the target) or ``"auto"``
            (size on MCUs and the Edge TPU, latency on CPUs and GPUs) among passing candidates.
        test_fraction: Held-out share of ``data`` when ``test_data`` is not given.
        labels, preprocessing: Stored in the winner's metadata (class names; image preprocessing).
        cache: Share trained variants across calls (:class:`VariantCache`).
        progress: Progress callback.
        example_inputs, input_shape: For PyTorch modules (and dynamic ONNX/.pt2 shapes), as in
            :func:`edgert.convert.convert`.

    Returns:
        :class:`OptimizeResult`; ``best`` is None when no candidate meets the budget (``closest`` says
        which came nearest). A KeyboardInterrupt still writes what was measured, then propagates.

    Raises:
        InputDataError: No labels, fewer samples than a batch, bad budget or option.
        TargetError: Unknown target.
        ConversionError: The model cannot be loaded or converted at all.
    """
    if max_accuracy_drop is None or not np.isfinite(max_accuracy_drop) or max_accuracy_drop < 0:
        raise InputDataError(f"--max-accuracy-drop {max_accuracy_drop} must be a number of points ≥ 0", "e.g. 1.0")
    if prefer not in ("auto", "size", "latency"):
        raise InputDataError(f"prefer={prefer!r}: choose 'auto', 'size' or 'latency'")
    space = space or SearchSpace()
    target = load_target(target)
    prefer = resolve_prefer(prefer, target)
    search_class: type[_Search] = _Search
    if foreign_route(model) is not None:
        # Nothing is fine-tuned: the data only needs samples to calibrate on and to hold out.
        model, dataset = load_foreign(model, data, example_inputs=example_inputs, input_shape=input_shape)
        if test_data is not None:
            test_data = load_foreign(model, test_data)[1]
        search_class = ForeignSearch
    else:
        model, dataset = _load_inputs(model, data, space.batch_size)
    if test_data is None:
        train, test = split_dataset(dataset, test_fraction, seed)
    else:
        train, test = dataset, test_data
    if search_class is _Search and len(train) < space.batch_size:
        raise InputDataError(f"only {len(train)} fine-tuning samples, fewer than one batch of {space.batch_size}",
                             "give more labeled data")
    labels = labels or dataset.labels or None
    search = search_class(model, target, train, test, float(max_accuracy_drop), space, cache or VariantCache(),
                          progress, seed)
    out = Path(output_dir) if output_dir is not None else None

    def snapshot(s: _Search, interrupted: bool = False) -> OptimizeResult:
        best = choose_best(s.candidates, prefer)
        for c in s.candidates:
            c.chosen = c is best
        return OptimizeResult(target.name, float(max_accuracy_drop), dict(s.baseline),
                              list(s.candidates), best, None if best else _closest(s.candidates), out, interrupted,
                              data={"train": len(train), "held_out": len(test)}, prefer=prefer)

    def write_progress(s: _Search) -> None:
        if out is not None and s.baseline:
            atomic_write(out / "candidates.json", json.dumps(snapshot(s).to_dict(), indent=2) + "\n")

    try:
        # Ctrl-C is honoured between steps, never inside the converter's calibration callback where
        # TensorFlow would turn it into a conversion error and the search would carry on (edgert.interrupt).
        with deferred_interrupts():
            search.run(on_candidate=write_progress)
    except KeyboardInterrupt:
        if out is not None and search.baseline:
            result = snapshot(search, interrupted=True)
            _write_outputs(result, out, search, labels, preprocessing, write_best=False)
            log.warning("interrupted: %d candidates written to %s", len(result.candidates), out / "candidates.json")
        raise
    result = snapshot(search)
    if result.best is not None:
        variant_model = model if result.best.variant == "teacher" else search.cache.models[result.best.variant]
        result.best_model = variant_model
        result.best_tflite = search.convert(result.best.variant, variant_model, result.best.mode)
    if out is not None:
        _write_outputs(result, out, search, labels, preprocessing, write_best=True)
    return result


def _write_outputs(result: OptimizeResult, out: Path, search: _Search, labels, preprocessing, write_best: bool) -> None:
    from edgert.optimize.pareto import plot_pareto

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "candidates.json", json.dumps(result.to_dict(), indent=2) + "\n")
    plot_pareto(result, out / "pareto.png")
    if write_best and result.best is not None:
        _write_best(result, out / "best", search, labels, preprocessing)


def _write_best(result: OptimizeResult, best_dir: Path, search: _Search, labels, preprocessing) -> None:
    """The winner through the converter's own pipeline: model.tflite (with metadata), report.json/.md, C source for MCUs."""
    from edgert.convert import convert

    c = result.best
    assert c is not None and c.accuracy is not None, "_write_outputs writes a best model only when one passed"
    conv = convert(
        result.best_model, target=search.target, mode=c.mode, calibration=search.calibration,
        eval_data=(search.test.x, search.test_y), labels=labels, preprocessing=preprocessing,
        output_dir=best_dir, task="classification",
    )
    result.best_tflite = conv.tflite
    report_path = best_dir / "report.json"
    rep = json.loads(report_path.read_text()) if report_path.exists() else dict(conv.report)
    rep["optimize"] = {"candidate": c.to_dict(), "baseline": result.baseline, "budget_points": result.budget,
                       "technique": c.technique, "training": search.cache.extras.get(c.variant.split("+qat")[0])}
    atomic_write(report_path, json.dumps(rep, indent=2, default=str) + "\n")
    md = best_dir / "report.md"
    lines = [
        "", "## Optimization", "",
        f"Chosen: **{c.technique}** ({c.name}) — {c.size_bytes} bytes, top-1 {100 * c.accuracy:.2f}% "
        f"vs float teacher {100 * result.baseline['accuracy']:.2f}% ({c.accuracy_drop:+.2f} points lost, "
        f"budget {result.budget:g}); {len(result.candidates)} candidates in ../candidates.json, picture in ../pareto.png.",
    ]
    atomic_write(md, (md.read_text() if md.exists() else "") + "\n".join(lines) + "\n")
