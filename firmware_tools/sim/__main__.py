"""``python -m firmware_tools.sim`` (also ``edgert device simulate``): run an emulated board until stopped."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any, Callable

__all__ = ["add_arguments", "describe", "run", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The simulator's options (shared by both entry points)."""
    p.add_argument("--target", default="cortex-m4-256k", help="target profile name or .toml (sizes flash and RAM)")
    p.add_argument("--baud", type=int, default=115200, help="emulated line rate in bits/s (0 = unpaced)")
    p.add_argument("--flash", default=None, help="flash file to keep the board's contents across runs")
    p.add_argument("--require-signature", action="store_true", help="accept only MCUboot images signed by --trust-key")
    p.add_argument("--trust-key", action="append", default=[], help="PEM key the device trusts (repeatable)")
    p.add_argument("--slot-size", type=int, default=None, help="override the model slot size in bytes")
    p.add_argument("--ram", type=int, default=None, help="override the RAM for the tensor arena in bytes")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault: flip@N, drop@N:L, dup@N:L, drop-frame@K, dup-frame@K, silent@N, "
                        "disconnect@N, powerloss@N, wrong-hash, noise (repeatable)")


def describe(sim) -> dict[str, Any]:
    """The ``--json`` object announcing a running simulator."""
    return {
        "port": sim.port,
        "pts": sim.pts,
        "target": sim.target.name,
        "baudrate": sim.baudrate,
        "flash": str(sim.flash_path),
        "slot_size": sim.slot_size,
        "ram": sim.ram,
        "sign": sim.require_signature,
    }


def run(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> int:
    """Start the simulator, announce it with ``emit``, serve until SIGINT/SIGTERM."""
    from firmware_tools.sim.device import Faults, Simulator

    sim = Simulator(args.target, flash_path=args.flash, baudrate=args.baud, faults=Faults.parse(args.fault),
                    require_signature=args.require_signature, trust_keys=args.trust_key,
                    slot_size=args.slot_size, ram=args.ram)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sim.start()
        emit(describe(sim))
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m firmware_tools.sim``."""
    import logging

    from edgert.errors import EdgertError

    p = argparse.ArgumentParser(prog="python -m firmware_tools.sim", description="An emulated SMP board on a pseudo-terminal.")
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="announce the port as one JSON object on stdout")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)

    def emit(info: dict[str, Any]) -> None:
        if args.json:
            sys.stdout.write(json.dumps(info) + "\n")
        else:
            sys.stdout.write(f"{info['port']}\n")
            sys.stderr.write(f"simulating {info['target']} on {info['port']} ({info['pts']}), {info['baudrate']} baud; "
                             "Ctrl-C to stop\n")
        sys.stdout.flush()

    try:
        return run(args, emit)
    except EdgertError as e:
        sys.stderr.write(f"simulate: error: {e}\n")
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
