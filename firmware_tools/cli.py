"""``edgert flash``, ``edgert device info|validate|simulate`` and ``edgert export-c``.

Each handler is one library call; the CLI only parses options, draws the
progress bar and prints the result (``--json``: exactly one JSON object).
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgert.commands import non_negative_int, positive_int

__all__ = ["register", "add_simulator_arguments", "run_simulator", "simulator_banner"]


def register(sub, add_common) -> None:
    """Add this area's subcommands to the ``edgert`` parser."""
    p = sub.add_parser("flash", help="send a model to devices over SMP serial (verified, resumable)")
    p.add_argument("model", help="the .tflite model")
    p.add_argument("--port", action="append", required=True,
                   help="serial port path or pyserial URL (repeat to flash several devices in parallel)")
    p.add_argument("--sign", metavar="KEY.pem", default=None,
                   help="send a signed MCUboot image (imgtool key: ed25519 or ECDSA P-256)")
    p.add_argument("--target", default=None, help="refuse unless the model fits this target profile")
    p.add_argument("--baud", type=positive_int, default=115200, help="line rate in bits/s")
    p.add_argument("--force", action="store_true", help="upload even when the device already runs this model")
    add_common(p)
    p.set_defaults(handler=_flash)

    dev = sub.add_parser("device", help="talk to a device, validate a model on it, or emulate one")
    dsub = dev.add_subparsers(dest="device_command", metavar="ACTION")
    q = dsub.add_parser("info", help="what the device holds: active model, slot size, RAM")
    q.add_argument("--port", required=True, help="serial port path or pyserial URL")
    q.add_argument("--baud", type=positive_int, default=115200, help="line rate in bits/s")
    add_common(q)
    q.set_defaults(handler=_info)

    v = dsub.add_parser("validate", help="run samples on the device and compare with the host interpreter")
    v.add_argument("model", help="the .tflite model (uploaded when the device does not run it)")
    v.add_argument("--port", required=True, help="serial port path or pyserial URL")
    v.add_argument("--data", required=True, help=".npz (array 'x') or .npy of input samples")
    v.add_argument("--limit", type=positive_int, default=None, help="use at most this many samples")
    v.add_argument("--baud", type=positive_int, default=115200, help="line rate in bits/s")
    add_common(v)
    v.set_defaults(handler=_validate)

    s = dsub.add_parser("simulate", help="emulate a board on a pseudo-terminal; prints its serial port")
    add_simulator_arguments(s)
    add_common(s)
    s.set_defaults(handler=_simulate)
    from firmware_tools.cli_firmware import register_firmware  # device firmware / device emulate (QEMU)

    register_firmware(dsub, add_common)
    dev.set_defaults(handler=lambda args: _device_usage(dev))

    e = sub.add_parser("export-c", help="write the model as an aligned C array + header for firmware")
    e.add_argument("model", help="the .tflite model")
    e.add_argument("-o", "--output", required=True, help="output directory")
    e.add_argument("--name", default="model_data", help="base name of the files and C symbols")
    e.add_argument("--arena", type=positive_int, default=None,
                   help="tensor arena bytes to reserve (default: planned for --target's core and kernels)")
    e.add_argument("--target", metavar="NAME|TOML", default=None,
                   help="MCU profile the arena is planned for (default: the 64-bit tflite-micro build's plan)")
    add_common(e)
    e.set_defaults(handler=_export_c)


def add_simulator_arguments(p) -> None:
    """The simulator's options, shared by ``edgert device simulate`` and ``python -m firmware_tools.sim``.

    Kept here, free of heavy imports, so registering the CLI never needs the SMP libraries.
    """
    p.add_argument("--target", default="cortex-m4-256k", help="target profile name or .toml (sizes flash and RAM)")
    p.add_argument("--baud", type=non_negative_int, default=115200, help="emulated line rate in bits/s (0 = unpaced)")
    p.add_argument("--flash", default=None, help="flash file to keep the board's contents across runs")
    p.add_argument("--require-signature", action="store_true", help="accept only MCUboot images signed by --trust-key")
    p.add_argument("--trust-key", action="append", default=[], help="PEM key the device trusts (repeatable)")
    p.add_argument("--slot-size", type=positive_int, default=None, help="override the model slot size in bytes")
    p.add_argument("--ram", type=non_negative_int, default=None,
                   help="override the RAM for the tensor arena in bytes (0 = unknown: the host skips its arena check)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault: flip@N, drop@N:L, dup@N:L, drop-frame@K, dup-frame@K, silent@N, "
                        "disconnect@N, powerloss@N, wrong-hash, noise (repeatable)")
    p.add_argument("--no-tensor-io", dest="tensor_io", action="store_false",
                   help="emulate firmware from before TENSOR_WRITE/TENSOR_READ: INVOKE inline only, INFO without tensor_io")


def run_simulator(args, announce) -> int:
    """Start the simulator the options describe, ``announce(describe(sim))``, serve until SIGINT/SIGTERM (exit 0).

    Shared by ``edgert device simulate`` and ``python -m firmware_tools.sim``; the signal handlers are the
    process's, so they live on the command-line side, not in the library.
    """
    import signal
    import threading

    from firmware_tools.sim import Faults, Simulator, describe

    sim = Simulator(args.target, flash_path=args.flash, baudrate=args.baud, faults=Faults.parse(args.fault),
                    require_signature=args.require_signature, trust_keys=args.trust_key,
                    slot_size=args.slot_size, ram=args.ram, tensor_io=args.tensor_io)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sim.start()
        announce(describe(sim))
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def simulator_banner(info: dict) -> str:
    """The stderr line saying what a running simulator emulates and where."""
    return f"simulating {info['target']} on {info['port']} ({info['pts']}), {info['baudrate']} baud; Ctrl-C to stop\n"


def _device_usage(parser) -> int:
    sys.stderr.write(f"{parser.prog}: error: no action given: info, validate, simulate, firmware or emulate "
                     f"(see: {parser.prog} --help)\n")
    return 2


def _progress():
    from edgert.commands.output import progress_bar

    return progress_bar()


def _flash(args) -> int:
    from edgert.commands.output import emit
    from edgert.model import read_model
    from firmware_tools.flash import flash_many

    model = read_model(args.model)  # an invalid model is a one-line exit 2 before any port is touched
    if args.sign is not None and not Path(args.sign).is_file():
        from firmware_tools.errors import SignatureError

        raise SignatureError(f"signing key {args.sign} not found", "generate one: imgtool keygen -k key.pem -t ed25519")
    results = flash_many(args.port, model.data, progress=_progress(), sign_key=args.sign, target=args.target,
                         baudrate=args.baud, force=args.force)
    ok = all(r.ok for r in results)
    summary = {"ok": ok, "model": str(args.model), "sha256": model.sha256, "ports": [r.to_dict() for r in results]}
    for r in results:
        if not r.ok:
            sys.stderr.write(f"edgert flash: error: {r.port}: {r.error}\n")
    emit(args, summary, _flash_text)
    return 0 if ok else 2


def _flash_text(s: dict) -> str:
    lines = []
    for r in s["ports"]:
        if r["ok"]:
            how = "already active" if r["already_active"] else f"{r['bytes']} bytes in {r['seconds']:.1f}s"
            extra = f", resumed from {r['resumed_from']}" if r["resumed_from"] is not None else ""
            lines.append(f"{r['port']}: ok ({how}{extra}), sha256 {r['sha256'][:16]}…")
        else:
            lines.append(f"{r['port']}: FAILED")
    lines.append(f"{sum(r['ok'] for r in s['ports'])}/{len(s['ports'])} device(s) flashed")
    return "\n".join(lines)


def _info(args) -> int:
    from edgert.commands.output import emit
    from firmware_tools.flash import device_info

    info = device_info(args.port, baudrate=args.baud).to_dict()
    info["port"] = args.port
    emit(args, info, _info_text)
    return 0


def _info_text(i: dict) -> str:
    def model(m):
        return f"{m['name']} ({m['size']} bytes, sha256 {m['sha256'][:16]}…)" if m else "none"

    return "\n".join([
        f"{i['port']}: target {i['target'] or '?'}",
        f"  active:    {model(i['active'])}",
        f"  previous:  {model(i['previous'])}",
        f"  slot size: {i['slot_size']} bytes, RAM for the arena: {i['ram']} bytes",
        f"  invoke: {'yes' if i['invoke'] else 'no'}, signed images required: {'yes' if i['sign'] else 'no'}",
        f"  tensor I/O: {'yes' if i['tensor_io'] else 'no'}, kernels: {i['kernels'] or '-'}, "
        f"arena used: {'-' if i['arena_used'] is None else i['arena_used']} bytes",
    ])


def _validate(args) -> int:
    from edgert.commands.output import emit
    from firmware_tools.validate import validate_on_device

    result = validate_on_device(args.port, args.model, args.data, limit=args.limit, progress=_progress(),
                                baudrate=args.baud)
    emit(args, result, _validate_text)
    return 0 if result["ok"] else 1


def _validate_text(r: dict) -> str:
    verdict = "agree" if r["ok"] else "DISAGREE"
    exact = {True: ", bit-exact with TFLite Micro", False: ", NOT bit-exact with TFLite Micro", None: ""}[r["bit_exact"]]
    insns = f", {r['instructions_mean']:,.0f} instructions/invoke" if r["instructions_mean"] is not None else ""
    return (f"device and host {verdict}: top-1 equal on {round(r['top1_agreement'] * r['samples'])}/{r['samples']} samples, "
            f"max abs error {r['max_abs_error']:.6g}{exact}, device {r['device_us_mean'] / 1000:.1f} ms/invoke{insns} "
            f"(inputs {r['input_transfer']})")


def _simulate(args) -> int:
    from edgert.commands.output import emit

    def announce(info: dict) -> None:
        emit(args, info, lambda i: f"{i['port']}")
        sys.stderr.write(simulator_banner(info))
        sys.stderr.flush()

    return run_simulator(args, announce)


def _export_c(args) -> int:
    from edgert.commands.output import emit
    from edgert.model import read_model
    from edgert.model.c_source import write_c_source

    model = read_model(args.model)
    arena = args.arena
    if arena is None and args.target is not None:
        from edgert.targets import load_target
        from edgert.targets.tflm import target_arena

        arena = target_arena(model, load_target(args.target)).bytes  # None: unknown, the header says to measure
    elif arena is None:
        from edgert.model.memory import plan_arena

        arena = plan_arena(model).total_bytes
    header, source = write_c_source(model.data, args.output, name=args.name, arena_bytes=arena, ops=model.ops)
    result = {"header": str(header), "source": str(source), "bytes": model.size_bytes, "sha256": model.sha256,
              "arena_bytes": arena, "name": args.name}
    emit(args, result, lambda r: f"wrote {r['header']} and {r['source']} ({r['bytes']} bytes, arena {r['arena_bytes']})")
    return 0
