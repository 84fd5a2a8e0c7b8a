"""What ``edgert predict`` reports (run a model once on input files and describe every output), and
running a model over a whole array of samples (what evaluation and conversion checks do)."""

from __future__ import annotations

from typing import Any

from edgert.errors import InputDataError

__all__ = ["TOP_CLASSES", "predict_files", "predict_samples", "top_classes"]

#: Classes listed for a classifier.
TOP_CLASSES = 5


def predict_samples(model: Any, x: Any, progress=None, label: str = "evaluating") -> Any:
    """Run a .tflite model on every sample of ``x`` (one at a time); its first output, dequantized.

    Args:
        model: ``.tflite`` bytes of a model our converter just wrote (loaded as trusted), or a
            loaded :class:`~edgert.runtime.Model`.
        x: Samples, ``(N, *input_shape)``.
        progress: Progress callback.

    Returns:
        ``(N, outputs)`` float32 (an empty array for no samples).
    """
    import numpy as np

    from edgert.progress import report
    from edgert.runtime.interpreter import Model, load_model

    m = model if isinstance(model, Model) else load_model(bytes(model), trusted=True)
    out = []
    for i in range(len(x)):
        out.append(np.asarray(m.predict(x[i : i + 1])[0], np.float32).reshape(-1))
        report(progress, i + 1, len(x), label)
    return np.stack(out) if out else np.zeros((0,), np.float32)


def predict_files(model, paths: list[str]) -> dict[str, Any]:
    """Run ``model`` once on input files and describe the outputs (the ``predict`` contract).

    Args:
        model: A loaded :class:`~edgert.runtime.Model`.
        paths: One input file per model input.

    Returns:
        ``{"model", "backend", "delegate", "inputs", "outputs": [{name, dtype, shape,
        values, raw?}], "top"?}``; ``values`` are dequantized floats, ``raw`` the
        integer tensor when the output is quantized, ``top`` the best classes of a classifier.

    Raises:
        InputDataError: Wrong number of inputs or unusable input files.
    """
    from edgert.runtime.tensors import dequantize, load_input

    if len(paths) != len(model.inputs):
        names = ", ".join(s.name for s in model.inputs)
        raise InputDataError(
            f"the model takes {len(model.inputs)} input(s) ({names}), got {len(paths)} file(s)",
            "pass one file per model input, in order",
        )
    arrays = [load_input(path, spec, model.metadata) for path, spec in zip(paths, model.inputs, strict=True)]
    raw_outputs = model.predict(*arrays, dequantize_output=False)
    outputs = []
    for spec, raw in zip(model.outputs, raw_outputs, strict=True):
        entry: dict[str, Any] = {"name": spec.name, "dtype": spec.dtype, "shape": list(raw.shape)}
        if spec.quantized:
            entry["values"] = dequantize(raw, spec).tolist()
            entry["raw"] = raw.tolist()
        else:
            entry["values"] = raw.tolist()
        outputs.append(entry)
    result: dict[str, Any] = {
        "model": model.file.path,
        "backend": model.backend.name,
        "delegate": model.delegate,
        "inputs": [str(p) for p in paths],
        "outputs": outputs,
    }
    top = top_classes(model, raw_outputs)
    if top is not None:
        result["top"] = top
    return result


def top_classes(model, raw_outputs) -> list[dict[str, Any]] | None:
    """Best classes when the model is a classifier (one vector output), else None."""
    import numpy as np

    from edgert.runtime.tensors import dequantize

    meta = model.metadata or {}
    task = meta.get("task")
    if task not in (None, "classification") or len(raw_outputs) != 1:
        return None
    scores = np.ravel(dequantize(raw_outputs[0], model.outputs[0]))
    squeezed = [d for d in raw_outputs[0].shape if d != 1]
    if len(squeezed) != 1 or scores.size < 2 or scores.dtype.kind != "f":
        return None
    labels = meta.get("labels") if isinstance(meta.get("labels"), list) else None
    order = np.argsort(-scores, kind="stable")[: min(TOP_CLASSES, scores.size)]
    return [
        {
            "index": int(i),
            "label": str(labels[i]) if labels and i < len(labels) else None,
            "score": float(scores[i]),
        }
        for i in order
    ]
