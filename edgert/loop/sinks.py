"""Where results go, looked up by URL scheme.

==============================  =========================================================
URL                             writes
==============================  =========================================================
``console[?rate=10]``           one line per result, at most ``rate`` lines per second
``jsonl:PATH``                  one JSON object per line (appended, one write per line)
``csv:PATH``                    one row per result (per object for detectors), header once
``snapshots:DIR[?every=N&change=1&format=jpg]``  annotated frames when the result changes / every N
``serial:PORT[?baud=&format=csv|json]``  one line per result back to a microcontroller
==============================  =========================================================

Files are opened with ``O_APPEND`` and each record is one ``write`` call, so a
crash never leaves half a buffer behind and another process can tail the file.
A sink that fails (full disk, unplugged port) raises ``OSError`` from
:meth:`Sink.write`; the pipeline counts it, logs it and keeps running.
Add a sink with :func:`register_sink`.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, TextIO

from edgert.errors import DeviceError, InputDataError
from edgert.loop.postprocess import Result
from edgert.loop.sources import Frame
from edgert.loop.urls import ParsedUrl, bool_option, choice_option, float_option, int_option, open_serial, parse_url

__all__ = [
    "Sink",
    "ConsoleSink",
    "JsonlSink",
    "CsvSink",
    "SnapshotSink",
    "SerialSink",
    "register_sink",
    "open_sink",
    "sink_schemes",
]

log = logging.getLogger("edgert.loop.sinks")


class Sink:
    """Base class of result sinks.

    Subclasses set :attr:`scheme` and :attr:`options` and implement
    :meth:`open`, :meth:`write` and :meth:`close`. :meth:`write` may raise
    ``OSError``/``ValueError``; the pipeline records it and carries on.
    """

    scheme: ClassVar[str] = ""
    options: ClassVar[frozenset[str]] = frozenset()
    passthrough: ClassVar[bool] = False

    def __init__(self, url: ParsedUrl) -> None:
        self.url = url

    @property
    def name(self) -> str:
        """How the sink is named in the run summary."""
        return self.url.url

    def open(self) -> None:
        """Open the file/port. Raises InputDataError/DeviceError with a one-line message."""

    def write(self, result: Result, frame: Frame) -> None:
        """Record one result (``frame`` holds the original image for annotating sinks)."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release (idempotent)."""


_REGISTRY: dict[str, type[Sink]] = {}


def register_sink(scheme: str, cls: type[Sink]) -> None:
    """Make ``scheme:...`` URLs open ``cls(parsed_url)``."""
    if not (isinstance(cls, type) and issubclass(cls, Sink)):
        raise TypeError("a sink must subclass edgert.loop.Sink")
    _REGISTRY[scheme.lower()] = cls


def sink_schemes() -> list[str]:
    """Registered sink schemes."""
    return sorted(_REGISTRY)


def open_sink(url: str, **kwargs: Any) -> Sink:
    """Parse ``url``, construct its sink (extra keyword arguments go to the constructor) and open it.

    Raises:
        InputDataError: Unknown scheme, bad option, unwritable path.
        DeviceError: A serial port that cannot be opened.
    """
    text = url.strip()
    scheme = text.partition(":")[0].partition("?")[0].lower()
    cls = _REGISTRY.get(scheme)
    if cls is None:
        raise InputDataError(f"unknown sink {url!r}", f"use one of: {', '.join(s + ':' for s in sink_schemes())}")
    if text.lower().startswith(scheme + "?"):
        text = scheme + ":" + text[len(scheme):]
    sink = cls(parse_url(text, cls.options, passthrough=cls.passthrough), **kwargs)
    sink.open()
    return sink


# ---- console --------------------------------------------------------------------------
class ConsoleSink(Sink):
    """One line per result on stdout (stderr when the CLI prints ``--json``), rate-limited.

    Option ``rate``: most lines per second (default 10; 0 = every result).
    """

    scheme = "console"
    options = frozenset({"rate"})

    def __init__(self, url: ParsedUrl, stream: TextIO | None = None) -> None:
        super().__init__(url)
        self.rate = float_option(url, "rate", 10.0, 0.0)
        self.stream = stream
        self.suppressed = 0
        self._next = 0.0

    def write(self, result: Result, frame: Frame) -> None:
        now = time.monotonic()
        if self.rate and now < self._next:
            self.suppressed += 1
            return
        self._next = now + (1.0 / self.rate if self.rate else 0.0)
        stream = self.stream or sys.stdout
        stream.write(f"[{result.frame}] {result.name or ''} {result.headline()} ({result.latency_ms:.1f} ms)\n")
        stream.flush()


# ---- files ----------------------------------------------------------------------------
class _AppendFile:
    """A file opened ``O_APPEND``; one ``os.write`` per record (no user-space buffer to lose)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def open(self, scheme: str) -> bool:
        """Open; returns True when the file was empty (a header is due)."""
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            return os.fstat(self.fd).st_size == 0
        except OSError as e:
            raise InputDataError(f"{scheme}: cannot write {self.path}: {e.strerror}") from None

    def write(self, text: str) -> None:
        if self.fd is None:
            raise OSError(errno.EBADF, "sink is closed")
        data = text.encode("utf-8")
        written = os.write(self.fd, data)
        if written != len(data):
            # A short write on a regular file means the disk filled up mid-line.
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def _path(parsed: ParsedUrl) -> Path:
    if not parsed.target:
        raise InputDataError(f"{parsed.scheme}: needs a path", f"e.g. {parsed.scheme}:results.{parsed.scheme}")
    return Path(parsed.target).expanduser()


class JsonlSink(Sink):
    """One JSON object per result (:meth:`Result.to_dict`), appended to ``PATH``."""

    scheme = "jsonl"

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self._file = _AppendFile(_path(url))

    def open(self) -> None:
        self._file.open(self.scheme)

    def write(self, result: Result, frame: Frame) -> None:
        self._file.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


#: CSV columns by task.
CSV_COLUMNS = {
    "classification": ["frame", "name", "time", "latency_ms", "id", "label", "score", "top_k"],
    "detection": ["frame", "name", "time", "latency_ms", "id", "label", "score", "xmin", "ymin", "xmax", "ymax"],
    "anomaly": ["frame", "name", "time", "latency_ms", "score", "threshold", "is_anomaly"],
    "regression": ["frame", "name", "time", "latency_ms", "values"],
}


def csv_rows(result: Result) -> list[list[Any]]:
    """The CSV rows of one result (detectors: one per object, or one empty row)."""
    head = [result.frame, result.name or "", f"{result.time:.3f}", f"{result.latency_ms:.3f}"]
    if result.classes is not None:
        top = result.classes[0] if result.classes else None
        rest = ";".join(f"{c.label if c.label is not None else c.id}:{c.score:.4f}" for c in result.classes)
        return [head + ([top.id, top.label or "", f"{top.score:.6f}"] if top else ["", "", ""]) + [rest]]
    if result.objects is not None:
        if not result.objects:
            return [head + [""] * 7]
        return [head + [o.id, o.label or "", f"{o.score:.6f}"] + [f"{v:.5f}" for v in (o.bbox.xmin, o.bbox.ymin, o.bbox.xmax, o.bbox.ymax)]
                for o in result.objects]
    if result.anomaly is not None:
        a = result.anomaly
        return [head + [f"{a.score:.6g}", "" if a.threshold is None else a.threshold, "" if a.is_anomaly is None else int(a.is_anomaly)]]
    return [head + [" ".join(f"{v:.6g}" for v in result.values or [])]]


class CsvSink(Sink):
    """One CSV row per result appended to ``PATH``; the header is written when the file is new."""

    scheme = "csv"

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self._file = _AppendFile(_path(url))
        self._header_due = False

    def open(self) -> None:
        self._header_due = self._file.open(self.scheme)

    def write(self, result: Result, frame: Frame) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if self._header_due:
            writer.writerow(CSV_COLUMNS[result.task])
        writer.writerows(csv_rows(result))
        self._file.write(buf.getvalue())
        self._header_due = False

    def close(self) -> None:
        self._file.close()


# ---- snapshots ------------------------------------------------------------------------
class SnapshotSink(Sink):
    """Annotated frames (labels, boxes, scores) saved with Pillow into ``DIR``.

    Options: ``change`` (save when the result changes: top class, set of object
    classes or anomaly verdict; default 1), ``every`` (also save every N frames;
    default 0 = off), ``format`` (``jpg`` or ``png``). Frames that are not
    images (sensor windows) are not saved.
    """

    scheme = "snapshots"
    options = frozenset({"every", "change", "format"})

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self.folder = Path(url.target or "snapshots").expanduser()
        self.every = int_option(url, "every", 0, 0)
        self.on_change = bool_option(url, "change", True)
        self.format = choice_option(url, "format", "jpg", ("jpg", "png"))
        self.saved = 0
        self._last_key: tuple | None = None

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputDataError(f"snapshots: cannot create {self.folder}: {e.strerror}") from None

    def write(self, result: Result, frame: Frame) -> None:
        if frame.kind != "image":
            return
        key = result.key()
        changed = self.on_change and key != self._last_key
        self._last_key = key
        if not (changed or (self.every and result.frame % self.every == 0)):
            return
        image = annotate(frame, result)
        final = self.folder / f"frame_{result.frame:08d}.{self.format}"
        tmp = final.with_name("." + final.name + ".tmp")
        # Write-then-rename: a viewer never sees half a JPEG, a full disk leaves no debris.
        try:
            image.save(tmp, format="JPEG" if self.format == "jpg" else "PNG", quality=90)
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.saved += 1


def annotate(frame: Frame, result: Result):
    """A Pillow RGB copy of ``frame`` with the result drawn on it."""
    from PIL import Image, ImageDraw

    data = frame.data
    if isinstance(data, Image.Image):
        image = data.convert("RGB")
    else:
        import numpy as np

        arr = np.asarray(data)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and frame.color == "bgr":
            arr = arr[..., ::-1]
        image = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for obj in result.objects or []:
        box = obj.bbox.scale(width, height)
        draw.rectangle([box.xmin, box.ymin, box.xmax, box.ymax], outline=(255, 0, 0), width=2)
        draw.text((box.xmin + 2, box.ymin + 1), f"{obj.label if obj.label is not None else obj.id} {obj.score:.2f}", fill=(255, 0, 0))
    text = result.headline()
    draw.rectangle([0, 0, width, 12], fill=(0, 0, 0))
    draw.text((2, 1), text, fill=(255, 255, 255))
    return image


# ---- serial ---------------------------------------------------------------------------
def serial_line(result: Result) -> str:
    """The compact line a microcontroller parses.

    ``F,ID,SCORE`` (classification), ``F,N[,ID,SCORE,XMIN,YMIN,XMAX,YMAX]...``
    (detection), ``F,SCORE,FLAG`` (anomaly; FLAG 1/0, ``-`` without threshold),
    ``F,V1,V2,...`` (regression).
    """
    f = str(result.frame)
    if result.classes is not None:
        top = result.classes[0] if result.classes else None
        return f"{f},{top.id},{top.score:.4f}" if top else f"{f},-1,0"
    if result.objects is not None:
        parts = [f, str(len(result.objects))]
        for o in result.objects:
            b = o.bbox
            parts += [str(o.id), f"{o.score:.3f}", f"{b.xmin:.3f}", f"{b.ymin:.3f}", f"{b.xmax:.3f}", f"{b.ymax:.3f}"]
        return ",".join(parts)
    if result.anomaly is not None:
        flag = "-" if result.anomaly.is_anomaly is None else str(int(result.anomaly.is_anomaly))
        return f"{f},{result.anomaly.score:.6g},{flag}"
    return ",".join([f] + [f"{v:.6g}" for v in result.values or []])


class SerialSink(Sink):
    """Results back to a microcontroller (``serial:/dev/ttyACM0?baud=115200&format=csv``).

    ``format=csv`` writes :func:`serial_line`; ``format=json`` the jsonl record.
    After a write error the port is reopened on a later result (at most once a second).
    """

    scheme = "serial"
    options = frozenset({"baud", "format"})
    passthrough = True

    #: Seconds between attempts to reopen a port that failed.
    REOPEN_INTERVAL = 1.0

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        if not url.target:
            raise InputDataError("serial: sink needs a port", "e.g. serial:/dev/ttyACM0?baud=115200")
        self.port = url.target
        self.baud = int_option(url, "baud", 115200, 1)
        self.format = choice_option(url, "format", "csv", ("csv", "json"))
        self._ser = None
        self._retry_at = 0.0

    def open(self) -> None:
        self._ser = open_serial(self.port, baudrate=self.baud, timeout=1.0, write_timeout=1.0)

    def write(self, result: Result, frame: Frame) -> None:
        if self._ser is None:
            if time.monotonic() < self._retry_at:
                raise OSError(errno.ENODEV, f"serial port {self.port} is not connected")
            self._retry_at = time.monotonic() + self.REOPEN_INTERVAL
            try:
                self.open()
            except DeviceError as e:
                raise OSError(errno.ENODEV, str(e)) from None
        line = json.dumps(result.to_dict(), separators=(",", ":")) if self.format == "json" else serial_line(result)
        try:
            self._ser.write((line + "\n").encode("ascii", "replace"))
        except OSError:  # serial.SerialException and SerialTimeoutException are OSErrors
            self.close()
            self._retry_at = time.monotonic() + self.REOPEN_INTERVAL
            raise

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except OSError as e:
                log.debug("closing %s: %s", self.port, e)


for _cls in (ConsoleSink, JsonlSink, CsvSink, SnapshotSink, SerialSink):
    register_sink(_cls.scheme, _cls)
