"""``report.md``: the conversion report as human tables."""

from __future__ import annotations

from typing import Any

from edgert.units import format_bytes

__all__ = ["render_markdown"]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _bytes_both(n: Any) -> str:
    return "–" if n is None else f"{int(n):,} B ({format_bytes(int(n))})"


def _size_row(model: dict[str, Any]) -> str:
    if model.get("size_ratio") is None:  # the PyTorch route makes no float32 .tflite
        return f"| size | {_bytes_both(model.get('size_bytes'))} |"
    return (
        f"| size | {_bytes_both(model.get('size_bytes'))} = {model['size_ratio']:.2f}× float32 "
        f"({_bytes_both(model.get('float32_size_bytes'))}) |"
    )


def _verification_md(checks: list[dict[str, Any]]) -> list[str]:
    lines = ["## Verification against the original float model", "", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |" for c in checks]
    return lines


def _accuracy_md(acc: dict[str, Any]) -> list[str]:
    lines = ["## Accuracy (float vs converted)", ""]
    if acc.get("task") == "classification":
        lines += [
            "| samples | float top-1 | converted top-1 | drop (points) | agreement |",
            "|---:|---:|---:|---:|---:|",
            f"| {acc['samples']} | {acc['float_top1']:.2%} | {acc['converted_top1']:.2%} | "
            f"{acc['drop_points']:.2f} | {acc['agreement']:.2%} |",
        ]
    else:
        lines += [
            "| samples | float MSE | converted MSE | output MSE (converted vs float) |",
            "|---:|---:|---:|---:|",
            f"| {acc['samples']} | {_fmt(acc['float_mse'])} | {_fmt(acc['converted_mse'])} | {_fmt(acc['output_mse'])} |",
        ]
    layers = acc.get("layers") or {}
    rows = layers.get("layers") or []
    if rows:
        methods = {
            "quantization_debugger": "each op's quantized output against the float op on the same inputs "
                                     "(TFLite QuantizationDebugger)",
            "tensor_compare": "each intermediate tensor against the float32 model's (error accumulated from the input)",
        }
        how = methods.get(layers.get("method") or "", "")
        lines += [
            "",
            f"### Layers with the most quantization error ({layers.get('samples')} samples; {how})",
            "",
            "| layer | op | SNR (dB) | relative error | max abs error |",
            "|---|---|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| `{r['layer']}` | {r['op']} | {_fmt(r['snr_db'], 3)} | {_fmt(r['relative_error'], 3)} "
                f"| {_fmt(r['max_abs_error'], 3)} |"
            )
    if layers.get("note"):
        lines += ["", f"_{layers['note']}_"]
    return lines


def _edgetpu_md(info: dict[str, Any]) -> list[str]:
    lines = ["## Edge TPU compiler", ""]
    if not info.get("available"):
        lines += [f"{info.get('note', 'edgetpu_compiler was not run.')}", "", "```", info.get("command", ""), "```"]
        return lines
    lines.append(f"`{info['command']}` → {'compiled' if info.get('compiled') else 'FAILED'}")
    lines += [
        "",
        "| subgraphs | ops on Edge TPU | ops on CPU | on-chip cache | off-chip |",
        "|---:|---:|---:|---:|---:|",
        f"| {_fmt(info.get('subgraphs'))} | {_fmt(info.get('ops_on_edgetpu'))} | {_fmt(info.get('ops_on_cpu'))} | "
        f"{_bytes_both(info.get('on_chip_cache_bytes'))} | {_bytes_both(info.get('off_chip_bytes'))} |",
    ]
    if info.get("operators"):
        lines += ["", "| operator | count | status |", "|---|---:|---|"]
        lines += [f"| {o['op']} | {o['count']} | {o['status']} |" for o in info["operators"]]
    for err in info.get("errors", []):
        lines.append(f"- {err}")
    return lines


def render_markdown(report: dict[str, Any], fit: Any = None) -> str:
    """The human report: summary, fit tables (``edgert.fit.fit_markdown``), accuracy, layers, outputs."""
    model = report.get("model", {})
    conv = report.get("converter", {})
    lines = [
        f"# Conversion report: {report.get('target')}",
        "",
        "| | |",
        "|---|---|",
        f"| fits | **{'yes' if report.get('fits') else 'NO'}** |",
        f"| source | {report.get('source', {}).get('path') or 'in-memory model'} ({report.get('source', {}).get('format')}) |",
        *([f"| input layout | {report['source']['input_layout']} in the source, "
           f"{report['source']['converted_input_layout']} in the converted model |"]
          if report.get("source", {}).get("input_layout") else []),
        f"| mode | {conv.get('mode')} (input {conv.get('input_dtype')}, output {conv.get('output_dtype')}) |",
        f"| op sets | {', '.join(conv.get('supported_ops', []))} |",
        _size_row(model),
        f"| latency / inference | {_fmt(report.get('latency_ms'))} ms (estimate) |",
        f"| energy / inference | {_fmt(report.get('energy_uj'))} µJ (estimate) |",
        f"| TensorFlow | {conv.get('tensorflow')} |",
    ]
    if conv.get("keep_float"):
        lines.append(f"| kept in float | {', '.join(conv['keep_float'])} |")
    cal = report.get("calibration")
    if cal:
        lines.append(f"| calibration | {cal['samples']} samples from {cal['source']} "
                     f"(range {cal['min']:.3g}..{cal['max']:.3g}) |")
    for note in conv.get("notes", []):
        lines.append(f"| note | {note} |")
    if fit is not None:
        from edgert.fit import fit_markdown

        lines += ["", fit_markdown(fit).rstrip()]
    if report.get("verification"):
        lines += [""] + _verification_md(report["verification"])
    if report.get("accuracy"):
        lines += [""] + _accuracy_md(report["accuracy"])
    if "edgetpu_compiler" in report:
        lines += [""] + _edgetpu_md(report["edgetpu_compiler"])
    c = report.get("c_source")
    if c:
        lines += ["", "## C source for firmware", ""]
        if c.get("error"):
            lines.append(f"not written: {c['error']}")
        else:
            lines.append(
                f"`{c.get('header')}` / `{c.get('source')}`: "
                f"arena on the target {c.get('arena_bytes')} B ({c.get('arena_source')}), "
                f"reserve {c.get('arena_reserved_bytes')} B"
            )
    if report.get("timing_s"):
        lines += ["", "## Timing", "", "| step | seconds |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in report["timing_s"].items()]
    return "\n".join(lines) + "\n"
