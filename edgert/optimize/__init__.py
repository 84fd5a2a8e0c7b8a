"""Make a model smaller and faster within an accuracy budget: pruning, distillation, QAT, search.

Host only. TensorFlow/Keras is imported lazily inside functions, so importing
this package is cheap; attribute access loads the submodule that defines it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "PolynomialSparsity", "magnitude_prune", "structured_prune", "kernel_sparsity", "gzip_size", "fine_tune",
    "PruneResult", "distill", "width_student", "DistillResult", "quantization_aware_fine_tune", "fake_quantize",
    "optimize", "OptimizeResult", "Candidate", "SearchSpace", "VariantCache", "modes_for_target", "choose_best",
    "host_latency_ms", "plot_pareto", "Dataset", "load_dataset", "split_dataset", "digits_dataset", "digits_teacher",
]

_WHERE = {
    "edgert.optimize.pruning": ["PolynomialSparsity", "magnitude_prune", "structured_prune", "kernel_sparsity",
                                "gzip_size", "fine_tune", "PruneResult"],
    "edgert.optimize.distill": ["distill", "width_student", "DistillResult"],
    "edgert.optimize.qat": ["quantization_aware_fine_tune", "fake_quantize"],
    "edgert.optimize.search": ["optimize", "OptimizeResult", "Candidate", "SearchSpace", "VariantCache",
                               "modes_for_target", "choose_best", "host_latency_ms"],
    "edgert.optimize.pareto": ["plot_pareto"],
    "edgert.optimize.data": ["Dataset", "load_dataset", "split_dataset", "digits_dataset"],
    "edgert.optimize.models": ["digits_teacher"],
}
_MODULE_OF = {name: mod for mod, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'edgert.optimize' has no attribute {name!r}")
