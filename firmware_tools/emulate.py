"""Run the edgert firmware on an emulated Cortex-M board (QEMU) with its UART on a pseudo-terminal.

``edgert device emulate --target cortex-m4-256k`` builds the firmware (cached,
see :mod:`firmware_tools.firmware`), starts ``qemu-system-arm`` with UART 0 on
``-serial pty``, waits for the firmware's banner on that pty and prints the
port: the same serial path a board on ``/dev/ttyACM0`` gives, so ``edgert
flash --port`` / ``device validate`` / smpclient talk to it unchanged.

- Flash: a host file (``--flash-image``) the firmware reads and writes through
  ARM semihosting; it survives QEMU being killed, which is how power-loss tests
  cut power (:meth:`Emulator.kill`) and restart on the same image.
  ``--model`` (:meth:`Emulator.program`) writes a model into it before boot,
  as a debug probe programs a board: the UART upload is the slow part.
- Time: ``-icount shift=0`` makes one guest instruction one virtual nanosecond,
  so the firmware's SysTick around an invoke counts instructions
  deterministically (QEMU models no cycle counter: these are instructions).
- QEMU starts paused (``-S``); the pty is opened before the CPU runs, so the
  banner cannot be lost, then ``cont`` goes to QEMU's monitor on stdin. Stopping
  sends ``quit`` to the monitor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_tools.firmware import APT_TOOLCHAIN, Board, FirmwareBuild, FirmwareBuildError, ToolchainMissingError, build_firmware
from firmware_tools.flash_image import PRELOADED_NAME, program_model

__all__ = ["Emulator", "EmulatorError", "find_qemu", "BOOT_TIMEOUT_S", "BANNER", "run"]

#: The line the firmware prints when it serves SMP.
BANNER = b"edgert firmware: ready"
#: How long to wait for QEMU to open its pty and the firmware to boot (generous: a busy 2-core machine).
BOOT_TIMEOUT_S = 120.0
#: How long QEMU gets to quit after the monitor's ``quit`` before it is killed.
QUIT_TIMEOUT_S = 10.0

_PTY_LINE = re.compile(r"char device redirected to (/dev/pts/\d+)")


class EmulatorError(FirmwareBuildError):
    """QEMU did not start, or the firmware did not boot on it."""


def find_qemu() -> str:
    """Path of ``qemu-system-arm``; :class:`ToolchainMissingError` with the apt command when missing."""
    path = shutil.which("qemu-system-arm")
    if path is None:
        raise ToolchainMissingError("qemu-system-arm not found: the Cortex-M emulator is not installed",
                                    f"sudo apt-get install -y {APT_TOOLCHAIN}")
    return path


class Emulator:
    """One QEMU board running a built firmware.

    Args:
        firmware: The :class:`FirmwareBuild` to run.
        flash_image: Host file backing the board's flash (created erased when missing); None for a
            temporary one removed on :meth:`stop`.
        icount: Run with ``-icount shift=0`` (deterministic instruction counts).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, firmware: FirmwareBuild, flash_image: str | os.PathLike | None = None, *,
                 icount: bool = True) -> None:
        self.firmware = firmware
        self.board: Board = firmware.board
        self.icount = icount
        self._temp_dir: tempfile.TemporaryDirectory | None = None
        if flash_image is None:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="edgert-emulate-")
            flash_image = Path(self._temp_dir.name) / "flash.bin"
        self.flash_image = Path(flash_image).resolve()
        self.port: str | None = None
        self.boot_log = b""
        self._proc: subprocess.Popen | None = None
        self._stderr_lines: list[str] = []
        self._pty_found = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The qemu-system-arm command line."""
        args = ["edgert", *(["icount=0"] if self.icount else []), f"flash={self.flash_image}"]
        semihosting = ",".join(["enable=on", "target=native", *(f"arg={a}" for a in args)])
        cmd = [find_qemu(), "-M", self.board.machine, "-display", "none", "-nodefaults", "-S",
               "-monitor", "stdio", "-serial", "pty", "-semihosting-config", semihosting,
               "-kernel", str(self.firmware.elf)]
        if self.icount:
            cmd += ["-icount", "shift=0"]
        return cmd

    def program(self, model: bytes, name: str = PRELOADED_NAME) -> None:
        """Program ``model`` into the flash image as the active model before :meth:`start`, as a debug probe would.

        The board then boots with the model loaded: no upload over the emulated UART (about 10 KB/s).
        The image is replaced whole (atomically); what it held before is gone.

        Raises:
            EmulatorError: QEMU runs (change a running board's model with ``edgert flash --port``).
            ModelTooLargeError: The model is larger than a model slot of the board.
        """
        if self.running():
            raise EmulatorError("cannot program the flash image while the board runs",
                                "stop it first, or flash the running board over SMP: edgert flash MODEL --port PORT")
        program_model(self.flash_image, model, flash_bytes=self.firmware.flash_bytes, name=name)

    def start(self, timeout: float = BOOT_TIMEOUT_S) -> str:
        """Start QEMU, wait for the firmware's banner, and return the serial port (a pty path).

        Raises:
            ToolchainMissingError: qemu-system-arm is not installed.
            EmulatorError: QEMU exited or the firmware did not print its banner within ``timeout``.
        """
        if "," in str(self.flash_image):
            raise EmulatorError(f"the flash image path {self.flash_image} contains a comma",
                                "QEMU's -semihosting-config cannot carry it: choose another path")
        self.flash_image.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
        # With the monitor on stdio QEMU announces the pty there; warnings and errors go to stderr.
        for stream in (self._proc.stdout, self._proc.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True, name="qemu-output").start()
        deadline = time.monotonic() + timeout
        while not self._pty_found.wait(0.2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail("QEMU did not open its serial pty")
        pts = next(m.group(1) for m in map(_PTY_LINE.search, self._stderr_lines) if m)
        fd = os.open(pts, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd, termios.TCSANOW)  # no echo: our own output must never come back as input
            self._monitor("cont")  # the CPU runs only now, so the banner cannot be missed
            self.boot_log = self._wait_banner(fd, deadline)
        finally:
            os.close(fd)
        self.port = pts
        return pts

    def _wait_banner(self, fd: int, deadline: float) -> bytes:
        import select

        assert self._proc is not None  # start() launched QEMU before waiting for its banner
        seen = b""
        while BANNER not in seen:
            if self._proc.poll() is not None:
                self._fail("QEMU exited before the firmware booted", seen)
            if time.monotonic() > deadline:
                self._fail("the firmware did not print its banner", seen)
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except BlockingIOError:
                    pass
                except OSError:
                    time.sleep(0.05)  # EIO while QEMU (re)attaches the master side: retry
        return seen

    def _monitor(self, command: str) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(command.encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def _drain(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self._stderr_lines.append(line)
            del self._stderr_lines[:-50]
            if _PTY_LINE.search(line):
                self._pty_found.set()

    def _fail(self, what: str, log: bytes = b"") -> None:
        detail = "; ".join(ln for ln in self._stderr_lines[-3:] if ln and not _PTY_LINE.search(ln))
        text = log.decode(errors="replace").strip().splitlines()
        if text:
            detail = (detail + "; " if detail else "") + f"firmware said: {text[-1][:160]}"
        self.stop()
        raise EmulatorError(f"{what} ({self.board.machine}{': ' + detail if detail else ''})",
                            "run it by hand: " + " ".join(self.command()[:6]) + " ...")

    @property
    def pid(self) -> int | None:
        """QEMU's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def running(self) -> bool:
        """True while QEMU runs."""
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Cut power: SIGKILL QEMU at once (the flash image keeps whatever was written before)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.port = None

    def stop(self) -> None:
        """Quit QEMU cleanly (monitor ``quit``, then SIGTERM/SIGKILL) and remove a temporary flash image."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._monitor("quit")
            try:
                proc.wait(QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(QUIT_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        self.port = None
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def describe(self) -> dict[str, Any]:
        """The announcement ``edgert device emulate --json`` prints."""
        fw = self.firmware
        return {"port": self.port, "pts": self.port, "target": fw.target, "board": self.board.machine,
                "core": self.board.core.name, "kernels": fw.kernels, "flash": str(self.flash_image),
                "flash_bytes": fw.flash_bytes, "ram": fw.arena_bytes, "elf": str(fw.elf), "icount": self.icount,
                "pid": self.pid}

    def __enter__(self) -> Emulator:
        if self.port is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run(args: argparse.Namespace, announce: Callable[[dict[str, Any]], None]) -> int:
    """``edgert device emulate``: build, boot, announce the port, serve until SIGINT/SIGTERM."""
    from edgert.model import read_model

    model = read_model(args.model).data if args.model is not None else None  # a bad file fails before the build
    fw = build_firmware(args.target, kernels=args.kernels, jobs=args.jobs)
    emulator = Emulator(fw, args.flash_image, icount=not args.no_icount)
    if model is not None:
        emulator.program(model)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        emulator.start()
        for line in emulator.boot_log.decode(errors="replace").splitlines():
            if "warning:" in line:  # e.g. the flash image could not be opened: say so, it changes what persists
                sys.stderr.write(f"edgert device emulate: {line.strip()}\n")
        announce(emulator.describe())
        while not stop.wait(0.5):
            if not emulator.running():
                sys.stderr.write("edgert device emulate: QEMU exited\n")
                return 2
    finally:
        emulator.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0
