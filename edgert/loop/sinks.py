"""Where results go, looked up by URL scheme.

=====================================================  ==================================================
URL (options with their defaults)                      writes
=====================================================  ==================================================
``console[?rate=10]``                                  one line per result, at most ``rate`` lines per second
``jsonl:PATH``                                         one JSON object per line (appended, one write per line)
``csv:PATH``                                           one row per result (per object for detectors), header once
``snapshots:[DIR][?change=1&every=0&format=jpg]``      annotated frames, new files only (``DIR``: ``./snapshots``)
``serial:PORT[?baud=115200&format=csv]``               one line per result back to a microcontroller
=====================================================  ==================================================

Nothing a user had is overwritten. Files are opened with ``O_APPEND`` and each
record is one ``write`` call, so a crash never leaves half a buffer behind and
another process can tail the file; a file whose last line was cut off gets a
newline before the first new record. A CSV file that starts with any other
header than the one this run writes is refused. Snapshots are new files named by
the run's start and the frame number, created without replacing anything.

Every file sink checks at :meth:`Sink.open` that it can write, and raises
:class:`~edgert.errors.InputDataError` (one line) when it cannot. A sink that
fails later (full disk, unplugged port) raises ``OSError`` from
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
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from edgert.errors import DeviceError, InputDataError
from edgert.files import write_new_file
from edgert.loop.postprocess import Result
from edgert.loop.sources import Frame
from edgert.loop.urls import ParsedUrl, bool_option, choice_option, float_option, int_option, open_serial, parse_url

if TYPE_CHECKING:
    import serial

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

    def start(self, task: str) -> None:
        """Check that this sink can take results of ``task`` (called before the first result of that task).

        Raises:
            InputDataError: The sink cannot take them (one line, as from :meth:`open`).
        """

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
def _cannot_write(scheme: str, path: Path, error: OSError, what: str = "path") -> InputDataError:
    """The one-line error of a file sink that cannot write where it was told to."""
    return InputDataError(f"{scheme}: cannot write {path}: {error.strerror or error}", f"choose a {what} you can write")


class _AppendFile:
    """A file opened ``O_APPEND``; one ``os.write`` per record (no user-space buffer to lose)."""

    #: Bytes of an existing file read at open (its first line, for the CSV header check).
    HEAD_BYTES = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self._prefix = b""  # written before the first record: a newline after a cut-off last line

    def open(self, scheme: str) -> bytes:
        """Open; returns the first bytes the file already holds (``b""``: empty, or not a regular file)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            info = os.fstat(self.fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0:  # /dev/stdout, a FIFO, a new file
                return b""
            with open(self.path, "rb") as f:
                head = f.read(self.HEAD_BYTES)
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    # The last record was cut off (crash, full disk): ours start on a line of their own.
                    self._prefix = b"\n"
            return head
        except OSError as e:
            self.close()
            raise _cannot_write(scheme, self.path, e) from None

    def write(self, text: str) -> None:
        if self.fd is None:
            raise OSError(errno.EBADF, "sink is closed")
        data = self._prefix + text.encode("utf-8")
        written = os.write(self.fd, data)
        if written != len(data):
            # A short write on a regular file means the disk filled up mid-line.
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
        self._prefix = b""

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
        return [head + [o.id, o.label or "", f"{o.score:.6f}"]
                + [f"{v:.5f}" for v in (o.bbox.xmin, o.bbox.ymin, o.bbox.xmax, o.bbox.ymax)]
                for o in result.objects]
    if result.anomaly is not None:
        a = result.anomaly
        return [head + [f"{a.score:.6g}", "" if a.threshold is None else a.threshold,
                        "" if a.is_anomaly is None else int(a.is_anomaly)]]
    return [head + [" ".join(f"{v:.6g}" for v in result.values or [])]]


#: The header line of each task's CSV file.
_CSV_HEADERS = {",".join(columns): task for task, columns in CSV_COLUMNS.items()}
#: What to do about a CSV file that holds something else.
_CSV_ELSEWHERE = "write to another csv: path, or move the old file away"


class CsvSink(Sink):
    """One CSV row per result appended to ``PATH``; the header is written when the file is new.

    An existing file must start with the header this run writes (:data:`CSV_COLUMNS`
    of the task): a file with any other first line is refused at :meth:`open`, and
    one holding another task's rows at :meth:`start` (or the first result), so no
    row ever lands under the wrong columns.
    """

    scheme = "csv"

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self._file = _AppendFile(_path(url))
        self._header: str | None = None  # the file's first line; None while the file is empty
        self._task: str | None = None  # the task checked against the header

    def open(self) -> None:
        head = self._file.open(self.scheme)
        if not head:
            return
        # A spreadsheet that saved the file may have added a byte-order mark and CRLF: same header.
        self._header = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").removeprefix("\ufeff")
        if self._header not in _CSV_HEADERS:
            self._file.close()
            shown = self._header if len(self._header) <= 60 else self._header[:57] + "..."
            raise InputDataError(f"csv: {self._file.path} starts with {shown!r}, not an edgert results header", _CSV_ELSEWHERE)

    def start(self, task: str) -> None:
        header = ",".join(CSV_COLUMNS[task])
        if self._header is not None and self._header != header:
            raise InputDataError(f"csv: {self._file.path} holds {_CSV_HEADERS[self._header]} rows; this run writes {task} rows",
                                 _CSV_ELSEWHERE)
        self._task = task

    def write(self, result: Result, frame: Frame) -> None:
        if result.task != self._task:
            self.start(result.task)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        columns = CSV_COLUMNS[result.task]
        if self._header is None:
            writer.writerow(columns)
        writer.writerows(csv_rows(result))
        self._file.write(buf.getvalue())
        self._header = ",".join(columns)

    def close(self) -> None:
        self._file.close()


# ---- snapshots ------------------------------------------------------------------------
class SnapshotSink(Sink):
    """Annotated frames (labels, boxes, scores) saved with Pillow into ``DIR``.

    ``snapshots:`` without a folder saves into ``./snapshots`` (relative to the
    working directory, created if missing). Options: ``change`` (save when the
    result changes: top class, set of object classes or anomaly verdict;
    default 1), ``every`` (also save every N-th frame; default 0 = off),
    ``format`` (``jpg`` or ``png``; default ``jpg``).

    Files are named ``RUN_frame_NNNNNNNN.jpg``, ``RUN`` being the run's start
    in UTC (:attr:`run_id`, ``20261125-214300``), so names sort by run and then
    frame. A file is never replaced: a name that is taken (another run started in
    the same second, a clock set back) gets ``-1``, ``-2``, ... before the
    extension. Frames that are not images (sensor windows) are not saved; the
    first one logs a warning.
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
        self.run_id = ""
        self._last_key: tuple | None = None
        self._warned = False

    def open(self) -> None:
        # Create and remove a probe file: a folder that exists but takes no files fails now, not on every frame.
        if self.folder.exists() and not self.folder.is_dir():
            raise InputDataError(f"snapshots: {self.folder} is a file, not a folder", "choose a folder for the snapshots")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".edgert-probe-", suffix=".tmp", dir=self.folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise _cannot_write(self.scheme, self.folder, e, "folder") from None
        self.run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime())

    def write(self, result: Result, frame: Frame) -> None:
        if frame.kind != "image":
            if not self._warned:
                self._warned = True
                log.warning("snapshots: frames from %s are not images; nothing will be saved", frame.name or "this source")
            return
        key = result.key()
        changed = self.on_change and key != self._last_key
        self._last_key = key
        if not (changed or (self.every and result.frame % self.every == 0)):
            return
        buf = io.BytesIO()
        annotate(frame, result).save(buf, format="JPEG" if self.format == "jpg" else "PNG", quality=90)
        write_new_file(self.folder, f"{self.run_id}_frame_{result.frame:08d}", f".{self.format}", buf.getvalue())
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
        name = obj.label if obj.label is not None else obj.id
        draw.text((box.xmin + 2, box.ymin + 1), f"{name} {obj.score:.2f}", fill=(255, 0, 0))
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
        self._ser: serial.SerialBase | None = None
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
            assert self._ser is not None  # open() returned, so the port is open
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
