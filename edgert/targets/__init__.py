"""Target profiles (data, from ``targets/*.toml``) and the runtime families that run them.

A profile describes one device: memory, clock, cost model, converter settings.
Its op set decides its runtime family (:attr:`Target.runtime`), one module each:

* :mod:`edgert.targets.tflm` — TensorFlow Lite Micro on microcontrollers,
* :mod:`edgert.targets.edgetpu` — the Coral Edge TPU and its host CPU,
* :mod:`edgert.targets.delegate` — LiteRT on a CPU, with the XNNPACK or GPU delegate.

Each family answers the same questions: which formats it runs, which ops it
cannot run and why (:class:`~edgert.targets.problems.Problem` codes, with their
fixes keyed by code), how much RAM a model takes, how long and how much energy
an inference costs. :func:`edgert.fit.check_fit` asks them.

This package sits above :mod:`edgert.model` and below convert/optimize, and
imports no TensorFlow: it loads on a Raspberry Pi with only the runtime.
"""

from edgert.targets.base import ALL_FORMATS, OpAssessment, RamUse, Runtime, Target, runtime_for, runtimes

# The family modules register themselves (once each) when imported; import them all here so
# that every profile's op set has its family whatever a caller imports first.
from edgert.targets.delegate import CpuDelegate
from edgert.targets.edgetpu import EdgeTPU
from edgert.targets.problems import FIXES, Code, Problem, fixes_for
from edgert.targets.profile import KERNEL_FAMILIES, KINDS, OP_SETS, list_targets, load_target, target_names
from edgert.targets.tflm import TFLiteMicro

__all__ = [
    "ALL_FORMATS",
    "Code",
    "CpuDelegate",
    "EdgeTPU",
    "FIXES",
    "KERNEL_FAMILIES",
    "KINDS",
    "OP_SETS",
    "OpAssessment",
    "Problem",
    "RamUse",
    "Runtime",
    "TFLiteMicro",
    "Target",
    "fixes_for",
    "list_targets",
    "load_target",
    "runtime_for",
    "runtimes",
    "target_names",
]
