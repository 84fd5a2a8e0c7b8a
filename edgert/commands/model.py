"""``edgert inspect`` / ``predict`` / ``bench``."""

from __future__ import annotations

from edgert.cli import emit


def register(sub, add_common) -> None:
    """Add inspect, predict and bench."""
    p = sub.add_parser("inspect", help="show what a .tflite model is")
    p.add_argument("model", help="path to a .tflite file")
    add_common(p)
    p.set_defaults(handler=_inspect)


def _inspect(args) -> int:
    from edgert.model import read_model

    info = read_model(args.model).to_dict()
    emit(args, info, _inspect_text)
    return 0


def _inspect_text(info: dict) -> str:
    lines = [f"{info['path']}: {info['size_bytes']} bytes, sha256 {info['sha256'][:16]}…"]
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = f" scale={t['scale']:.6g} zero_point={t['zero_point']}" if t["scale"] is not None else ""
            lines.append(f"  {kind[:-1]:6} {t['name']}: {t['dtype']}{t['shape']}{q}")
    lines.append("  ops: " + ", ".join(f"{k}×{v}" for k, v in info["ops"].items()))
    lines.append(f"  parameters: {info['parameters']:,}  MACs: {info['macs']:,}")
    lines.append(f"  metadata: {'edgert' if info['metadata'] else 'none'}")
    return "\n".join(lines)
