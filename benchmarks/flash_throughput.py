"""Flash throughput vs the emulated line rate, and bytes re-sent after an interruption (prints JSON).

For each line rate the simulator runs in its own process (``python -m
firmware_tools.sim``) on a real pseudo-terminal, paced at that rate. The
baseline is measured in the same run on the same line: raw bytes pushed
through the simulator's paced receiver (an SMP echo after 64 KiB of console
noise), which gives the line's real byte rate. SMP serial base64-encodes
frames (4 characters per 3 bytes), so the most payload a line can carry is
3/4 of its byte rate; ``ratio_vs_base64_line`` compares the host's payload
throughput with that (target >= 0.8: the host keeps the link busy).

Usage: .venv/bin/python benchmarks/flash_throughput.py [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_tools.flash import flash_model  # noqa: E402
from firmware_tools.framing import encoded_size  # noqa: E402
from firmware_tools.link import SmpLink  # noqa: E402
from firmware_tools.protocol import make_packet  # noqa: E402

DEFAULT_MODEL = ROOT.parent / "shared" / "conformance" / "models" / "keyword_spotting__kws_ref_model.tflite"
BAUDS = (115200, 921600)
NOISE_BYTES = 64 * 1024
TARGET_RATIO = 0.8
#: Where in a chunk's transmission the line drops (fractions of one chunk's bytes on the wire).
CUT_FRACTIONS = (0.1, 0.5, 0.9, 0.99)


class SimProcess:
    """The simulator in a child process; ``port`` is its announced serial port."""

    def __init__(self, baud: int, flash: Path, faults: list[str] = ()) -> None:
        cmd = [sys.executable, "-m", "firmware_tools.sim", "--json", "--baud", str(baud), "--flash", str(flash)]
        for f in faults:
            cmd += ["--fault", f]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure_line(port: str, baud: int) -> float:
    """Bytes/s the emulated line really moves: console noise then an echo, timed until the echo returns."""
    with SmpLink(port, baudrate=baud) as link:
        link.request(lambda s: make_packet(2, 0, 0, s, {"d": "warm"}), "echo")
        t0 = time.monotonic()
        for _ in range(NOISE_BYTES // 1024):  # not frames: the device reads and skips them at line rate
            link.port.write(b"x" * 1024)
        seq = link.next_seq()
        wire = link.send(make_packet(2, 0, 0, seq, {"d": "go"}))
        while True:
            packet = link.poll(60)
            if packet is None or packet[6] == seq:
                break
        elapsed = time.monotonic() - t0
    return (NOISE_BYTES + wire) / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a .tflite model to flash")
    args = p.parse_args(argv)
    model = Path(args.model)
    if not model.is_file():
        sys.stderr.write(f"model {model} not found (set --model)\n")
        return 2
    data = model.read_bytes()
    results = {"model": model.name, "model_bytes": len(data), "target_ratio": TARGET_RATIO, "rates": [], "interruption": None}
    with tempfile.TemporaryDirectory(prefix="edgert-bench-") as tmp:
        for baud in BAUDS:
            flash = Path(tmp) / f"flash-{baud}.bin"
            with SimProcess(baud, flash) as sim:
                line = measure_line(sim.port, baud)
                r = flash_model(sim.port, data, baudrate=baud)
            payload = len(data) / r.seconds
            results["rates"].append({
                "baud": baud,
                "line_bytes_per_s_nominal": baud / 10,
                "line_bytes_per_s_measured": round(line, 1),
                "payload_bytes_per_s": round(payload, 1),
                "ratio_vs_line": round(payload / line, 3),
                "ratio_vs_base64_line": round(payload / (0.75 * line), 3),
                "seconds": round(r.seconds, 3),
                "chunk_bytes": r.chunk_bytes,
                "window": r.window,
                "meets_target": payload / (0.75 * line) >= TARGET_RATIO,
            })
        # Interruptions: the device hangs up at bytes spread over one chunk's transmission, including its
        # last bytes (the worst case for a pipelined sender).
        baud = BAUDS[-1]
        chunk_wire = encoded_size(2048)
        runs = []
        for frac in CUT_FRACTIONS:
            cut = len(data) // 2 + int(frac * chunk_wire)
            with SimProcess(baud, Path(tmp) / f"flash-cut-{frac}.bin", faults=[f"disconnect@{cut}"]) as sim:
                r = flash_model(sim.port, data, baudrate=baud)
            runs.append({"disconnect_at_byte": cut, "ok": r.ok, "resumed_from": r.resumed_from,
                         "resent_bytes": r.resent_bytes, "chunk_bytes": r.chunk_bytes})
        worst = max(x["resent_bytes"] for x in runs)
        chunk = runs[0]["chunk_bytes"]
        results["interruption"] = {
            "baud": baud,
            "runs": runs,
            "max_resent_bytes": worst,
            "chunk_bytes": chunk,
            "max_resent_chunks": round(worst / chunk, 3),
            "meets_target": worst <= chunk and all(x["ok"] and x["resumed_from"] is not None for x in runs),
        }
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
