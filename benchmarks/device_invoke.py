"""Instructions per invoke on emulated Cortex-M4/M7/M55 boards, CMSIS-NN vs a baseline (prints JSON).

For each board (``firmware_tools.firmware.PROFILE_BOARDS``) the edgert firmware
boots in QEMU with ``-icount shift=0``, so an invoke's instruction count is
deterministic and measured by the firmware's SysTick (QEMU models no cycle
counter: these are instructions, not cycles). Each int8 conformance model is
flashed over SMP and invoked on one fixed input.

Baselines, measured in the same run:

* ``reference``: the same firmware built with TFLM's portable reference kernels
  instead of CMSIS-NN (``speedup_vs_reference`` = reference / CMSIS-NN
  instructions). It needs a TFLM tree that carries the reference kernels (one
  generated without ``OPTIMIZED_KERNEL_DIR``): ``--reference-tree`` or
  ``$EDGERT_TFLM_REFERENCE_TREE``. Without one the entry says why and is null.
* ``vs_cortex_m4``: each core's CMSIS-NN count against the Cortex-M4's.
* Flash throughput to each board against its measured UART byte rate (64 KiB
  of line noise the firmware skips, then an SMP echo), with SMP serial's
  base64 ceiling of 3/4 of the line.

Usage: .venv/bin/python benchmarks/device_invoke.py [--models kws,ic] [--reference-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgert.errors import EdgertError  # noqa: E402
from edgert.model import read_model  # noqa: E402
from firmware_tools.emulate import Emulator  # noqa: E402
from firmware_tools.firmware import PROFILE_BOARDS, build_firmware  # noqa: E402
from firmware_tools.flash import connect, flash_model, invoke, read_info  # noqa: E402
from firmware_tools.protocol import make_packet  # noqa: E402

MODELS_DIR = Path(os.environ.get("EDGERT_CONFORMANCE", ROOT.parent / "shared" / "conformance")) / "models"
MODELS = {
    "hello": "tflm__hello_world_int8",
    "micro_speech": "tflm__micro_speech_quantized",
    "kws": "keyword_spotting__kws_ref_model",
    "ic": "image_classification__pretrainedResnet_quant",
    "vww": "visual_wake_words__vww_96_int8",
    "ad": "anomaly_detection__ad01_int8",
}
NOISE_BYTES = 64 * 1024


def _log(msg: str) -> None:
    sys.stderr.write(f"device_invoke: {msg}\n")
    sys.stderr.flush()


def _uart_rate(port: str) -> float:
    """Bytes/s the emulated UART delivers into the firmware: noise it skips, then an echo it answers."""
    link = connect(port)
    try:
        noise = (b"x" * 63 + b"\n") * (NOISE_BYTES // 64)
        link.port.write_timeout = None  # the pty holds a few KiB; block until the UART has taken them all
        started = time.monotonic()
        link.port.write(noise)
        body = link.request(lambda s: make_packet(2, 0, 0, s, {"d": "rate"}), "echo", extra_seconds=120.0)
        elapsed = time.monotonic() - started
        assert body.get("r") == "rate"
        return NOISE_BYTES / elapsed
    finally:
        link.close()


def _measure(fw, models: dict[str, Path], rng_seed: int = 1) -> dict:
    out: dict = {}
    with Emulator(fw) as em:
        out["uart_bytes_per_s"] = round(_uart_rate(em.port), 1)
        for key, path in models.items():
            model = read_model(path)
            result = flash_model(em.port, path)
            if not result.ok:
                out[key] = {"error": result.error}
                continue
            rng = np.random.default_rng(rng_seed)
            inputs = [rng.integers(-128, 128, size=int(np.prod(t.shape)), dtype=np.int8).tobytes()
                      for t in model.inputs]
            link = connect(em.port)
            try:
                info = read_info(link)
                runs = [invoke(link, inputs, info=info) for _ in range(2)]
            finally:
                link.close()
            out[key] = {"instructions": runs[0].instructions, "deterministic": runs[0].instructions == runs[1].instructions,
                        "arena_used": info.arena_used, "flash_bytes_per_s": round(result.bytes / result.seconds, 1)
                        if result.seconds else None}
            _log(f"{fw.board.machine} {fw.kernels} {key}: {runs[0].instructions} instructions")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="hello,micro_speech,kws,ic", help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--targets", default=",".join(PROFILE_BOARDS), help="comma list of target profiles")
    p.add_argument("--reference-tree", default=os.environ.get("EDGERT_TFLM_REFERENCE_TREE"),
                   help="TFLM tree with reference kernels for the baseline")
    args = p.parse_args(argv)
    models = {k: MODELS_DIR / f"{MODELS[k]}.tflite" for k in args.models.split(",")}
    report: dict = {"unit": "instructions per invoke (QEMU -icount shift=0)", "targets": {}}
    for target in args.targets.split(","):
        fw = build_firmware(target)
        entry: dict = {"board": fw.board.machine, "core": fw.board.core.name, "cmsis_nn": _measure(fw, models)}
        try:
            ref = build_firmware(target, kernels="reference", tflm_tree=args.reference_tree)
            entry["reference"] = _measure(ref, models)
        except EdgertError as e:
            entry["reference"] = None
            entry["reference_missing"] = str(e)
        for key in models:
            cm, ref_m = entry["cmsis_nn"].get(key, {}), (entry["reference"] or {}).get(key, {})
            if cm.get("instructions") and ref_m.get("instructions"):
                cm["speedup_vs_reference"] = round(ref_m["instructions"] / cm["instructions"], 2)
            fbps = cm.get("flash_bytes_per_s")
            if fbps:
                cm["flash_vs_base64_line"] = round(fbps / (entry["cmsis_nn"]["uart_bytes_per_s"] * 3 / 4), 3)
        report["targets"][target] = entry
    base = report["targets"].get("cortex-m4-256k", {}).get("cmsis_nn", {})
    for entry in report["targets"].values():
        for key in models:
            m4, here = base.get(key, {}).get("instructions"), entry["cmsis_nn"].get(key, {}).get("instructions")
            if m4 and here:
                entry["cmsis_nn"][key]["vs_cortex_m4"] = round(here / m4, 3)
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
