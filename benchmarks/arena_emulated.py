"""The tensor arena TFLite Micro really takes on emulated Cortex-M boards, against edgert's plan.

For every int8 model of ``../shared/conformance/models`` and every emulated board (Cortex-M4, M7 and
M55 with CMSIS-NN), the script boots our firmware in QEMU with the model programmed into its flash
image (``Emulator.program``: no UART upload), reads the device's INFO (``arena_used`` = TFLM's
``arena_used_bytes()`` on the 32-bit core) and runs one INVOKE (``insns``: instructions QEMU
retired, never cycles). Beside each figure it prints edgert's plan for
that core and, as the baseline, the arena the 64-bit ``tflite-micro`` wheel reports on the host.

Prints one JSON object on stdout: ``{"rows": [{model, target, measured, planned, plan_error,
host_wheel, wheel_vs_target, instructions}], "max_abs_plan_error"}`` (ratios, not bare numbers).

Usage::

    python benchmarks/arena_emulated.py [--targets cortex-m4-256k,cortex-m55] [--models kws,vww]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgert.errors import EdgertError  # noqa: E402
from edgert.model import read_model  # noqa: E402
from edgert.model.memory import plan_arena  # noqa: E402

CONFORMANCE = ROOT.parent / "shared" / "conformance" / "models"
#: Board profiles and the arena config their firmware is (firmware_tools.firmware.PROFILE_BOARDS).
TARGETS = {"cortex-m4-256k": "cortex-m4", "cortex-m7-stm32h7": "cortex-m7", "cortex-m55": "cortex-m55"}


def int8_models() -> list[Path]:
    """Conformance models whose activations are all integer (what TFLM on the firmware runs)."""
    out = []
    for p in sorted(CONFORMANCE.glob("*.tflite")):
        m = read_model(p)
        if all(not t.dtype.startswith("float") for t in m.tensors(0) if not t.is_constant):
            out.append(p)
    return out


def measure(target: str, models: list[Path]) -> list[dict]:
    """Boot the target's firmware with each model that fits its flash and RAM, and measure it."""
    from firmware_tools.firmware import build_firmware
    from firmware_tools.flash_image import slot_bytes
    from firmware_tools.measure import measure_on_emulated

    fw = build_firmware(target, progress=None)
    rows = []
    for path in models:
        model = read_model(path)
        plan = plan_arena(model, TARGETS[target])
        row = {"model": path.stem, "target": target, "planned": plan.total_bytes, "plan_complete": plan.complete}
        if model.size_bytes > slot_bytes(fw.flash_bytes) or plan.total_bytes > fw.arena_bytes:
            row["skipped"] = f"does not fit the board ({model.size_bytes:,} B model, arena {fw.arena_bytes:,} B)"
            rows.append(row)
            continue
        try:
            got = measure_on_emulated(model, target)
        except EdgertError as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        row["measured"] = got.arena_bytes
        row["instructions"] = got.instructions
        if got.arena_bytes:
            row["plan_error"] = round((plan.total_bytes - got.arena_bytes) / got.arena_bytes, 5)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--models", default="", help="comma-separated substrings of model file names")
    args = parser.parse_args(argv)
    models = int8_models()
    if args.models:
        wanted = args.models.split(",")
        models = [p for p in models if any(w in p.name for w in wanted)]
    from edgert.runtime.micro import micro_arena_bytes, micro_available

    host = {p.stem: micro_arena_bytes(p.read_bytes()) if micro_available() else None for p in models}
    rows = []
    for target in args.targets.split(","):
        for row in measure(target, models):
            wheel = host.get(row["model"])
            row["host_wheel"] = wheel
            if wheel and row.get("measured"):
                row["wheel_vs_target"] = round(wheel / row["measured"], 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    errors = [abs(r["plan_error"]) for r in rows if "plan_error" in r]
    print(json.dumps({"rows": rows, "max_abs_plan_error": max(errors) if errors else None}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
