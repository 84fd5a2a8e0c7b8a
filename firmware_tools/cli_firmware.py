"""``edgert device firmware`` and ``edgert device emulate``: build the Cortex-M firmware, run it in QEMU.

Registered by :func:`firmware_tools.cli.register` under ``edgert device``. Like
every edgert command, ``--json`` prints exactly one JSON object on stdout and
progress goes to stderr; a missing toolchain is a one-line exit 2 naming the
apt command.
"""

from __future__ import annotations

import sys

from edgert.commands import positive_int

__all__ = ["register_firmware"]


def register_firmware(dsub, add_common) -> None:
    """Add ``firmware`` and ``emulate`` to the ``edgert device`` subparsers."""
    from firmware_tools.firmware import KERNEL_SETS, PROFILE_BOARDS

    boards = ", ".join(PROFILE_BOARDS)
    f = dsub.add_parser("firmware", help="build the TFLite Micro + CMSIS-NN firmware for a board (elf, bin, map)")
    f.add_argument("--target", required=True, help=f"target profile name or .toml ({boards}, or one inheriting them)")
    f.add_argument("-o", "--output", required=True, help="output directory")
    f.add_argument("--kernels", choices=KERNEL_SETS, default="cmsis-nn",
                   help="kernel set: CMSIS-NN, or TFLM's reference kernels (a benchmark baseline)")
    f.add_argument("--jobs", type=positive_int, default=2, help="parallel compiler processes")
    add_common(f)
    f.set_defaults(handler=_firmware)

    e = dsub.add_parser("emulate", help="boot the firmware on an emulated Cortex-M board (QEMU); prints its serial port")
    e.add_argument("--target", default="cortex-m4-256k", help=f"target profile ({boards}, or one inheriting them)")
    e.add_argument("--flash-image", default=None,
                   help="host file backing the board's flash (kept across runs and power cuts; default: temporary)")
    e.add_argument("--model", default=None,
                   help="program this .tflite into the flash image before boot, as a debug probe would (the board "
                        "starts with it active; replaces what the image held)")
    e.add_argument("--kernels", choices=KERNEL_SETS, default="cmsis-nn", help="kernel set of the firmware")
    e.add_argument("--jobs", type=positive_int, default=2, help="parallel compiler processes for a first build")
    e.add_argument("--no-icount", action="store_true",
                   help="run QEMU without -icount (faster; the device then reports no instruction counts)")
    add_common(e)
    e.set_defaults(handler=_emulate)


def _firmware(args) -> int:
    from edgert.commands.output import emit
    from firmware_tools.firmware import build_firmware

    fw = build_firmware(args.target, args.output, kernels=args.kernels, jobs=args.jobs)
    emit(args, fw.to_dict(), lambda r: (f"wrote {r['elf']}, {r['bin']} and {r['map']} "
                                        f"({r['board']}, {r['core']}, {r['kernels']}, {r['text_bytes']} B code, "
                                        f"arena {r['arena_bytes']} B)"))
    return 0


def _emulate(args) -> int:
    from edgert.commands.output import emit
    from firmware_tools.emulate import run

    def announce(info: dict) -> None:
        emit(args, info, lambda i: f"{i['port']}")
        sys.stderr.write(f"emulating {info['target']} on {info['board']} ({info['core']}, {info['kernels']}) at "
                         f"{info['port']}, flash {info['flash']}; Ctrl-C to stop\n")
        sys.stderr.flush()

    return run(args, announce)
