"""Where frames come from, looked up by URL scheme.

=============================  =======  ================================================
URL                            kind     notes
=============================  =======  ================================================
``camera:0`` / ``camera:/dev/video0?width=640&height=480&fps=30``  live  OpenCV ``VideoCapture``
``picamera2[:N]?width=&height=``   live     Raspberry Pi CSI camera (python3-picamera2)
``video:clip.mp4``             finite   OpenCV ``VideoCapture`` on a file
``images:photos/``             finite   every image file in the folder, sorted by name (Pillow)
``npy:data.npy``               finite   frames along the first axis
``serial:PORT?baud=&format=csv|binary&window=N&hop=M``  live  pyserial ``serial_for_url``
``stdin?format=csv|binary&window=N&hop=M``  finite  numbers on standard input
=============================  =======  ================================================

A *live* source drops old frames when inference is slower than capture (the
newest frame is what matters); a *finite* source is never dropped from: the
reader waits (back-pressure) so every frame is predicted exactly once, in order.

Add a source with :func:`register_source`; a source class implements
:class:`Source`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgert.errors import DeviceError, InputDataError
from edgert.files import load_numpy
from edgert.loop.urls import ParsedUrl, choice_option, float_option, int_option, open_serial, parse_url
from edgert.loop.windows import BINARY_DTYPES, WindowAssembler
from edgert.runtime.tensors import to_input_dtype

__all__ = [
    "Frame",
    "Source",
    "SourceLost",
    "EndOfSource",
    "CameraSource",
    "Picamera2Source",
    "VideoSource",
    "ImagesSource",
    "NpySource",
    "SerialSource",
    "StdinSource",
    "register_source",
    "open_source",
    "source_schemes",
]

log = logging.getLogger("edgert.loop.sources")

_OPENCV_HINT = "pip install opencv-python-headless (or: sudo apt install python3-opencv)"


class SourceLost(DeviceError):
    """A live source stopped delivering (unplugged, stalled, stale frames); the loop reopens it."""


class EndOfSource(Exception):
    """A finite source has no more frames (not an error)."""


@dataclass
class Frame:
    """One unit of input.

    Attributes:
        data: ``"image"`` frames: a Pillow image or an ``HxW[x3]`` uint8 array
            (or the file's bytes, until :meth:`Source.decode` has run);
            ``"tensor"`` frames: a float32/integer array of model input values.
        kind: ``"image"`` or ``"tensor"``.
        color: Channel order of an array image (``"rgb"`` or ``"bgr"``).
        name: Where it came from (file name, ``clip.mp4#12``, ``window 7``).
        index: Sequence number given by the pipeline (0, 1, ... in reading order).
        timestamp: ``time.monotonic()`` when it was captured.
        tensor: The prepared model input (set by the pipeline).
        work: Seconds spent on this frame before inference: read, decode,
            preprocess (set by the pipeline; queue waits not included).
    """

    data: Any
    kind: str = "image"
    color: str = "rgb"
    name: str | None = None
    index: int = -1
    timestamp: float = 0.0
    tensor: np.ndarray | None = field(default=None, repr=False)
    work: float = 0.0


class Source:
    """Base class of frame sources.

    Subclasses set :attr:`scheme`, :attr:`live`, :attr:`kind`, :attr:`options`
    and implement :meth:`open`, :meth:`read` and :meth:`close`.

    Attributes:
        url: The parsed URL.
        skipped: Frames that could not be read (corrupt image files ...).
        malformed: Malformed sensor lines (stream sources).
    """

    scheme: ClassVar[str] = ""
    #: True: drop old frames when inference lags; False: back-pressure, never drop.
    live: ClassVar[bool] = False
    #: ``"image"`` or ``"tensor"``: what :meth:`read` returns.
    kind: ClassVar[str] = "image"
    #: Option names this source accepts in its URL query.
    options: ClassVar[frozenset[str]] = frozenset()
    #: Pass unknown query options through to the target (pyserial URLs).
    passthrough: ClassVar[bool] = False
    #: Default queue depth: 1 keeps a camera fresh; bursty transports need more slack;
    #: finite sources: 8 lets the reader refill 4 frames per wake-up (measured best for
    #: the loop's throughput, against 4 and 16) for a few MB of decoded frames at most.
    queue_size: ClassVar[int] = 8
    #: True when image frames are OpenCV arrays: the loop then resizes them with OpenCV (see edgert.loop.resize).
    opencv_frames: ClassVar[bool] = False
    #: True when preparing a frame is heavy (decoding a file, resizing a video frame): a finite
    #: source then gets the loop's prepare threads (see edgert.loop.pipeline.default_prepare_threads),
    #: and its frames may be read and prepared on the loop thread too, whenever that thread would
    #: wait (reads are serialised by a lock, so read() runs on one thread at a time but not always
    #: the same one; it must not block for long).
    heavy_frames: ClassVar[bool] = False

    def __init__(self, url: ParsedUrl) -> None:
        self.url = url
        self.skipped = 0

    @property
    def malformed(self) -> int:
        """Malformed input skipped so far (only stream sources parse text, so 0 here)."""
        return 0

    def describe(self) -> str:
        """Short human name for logs: ``serial /dev/ttyUSB0 (baud=9600)``, ``stdin (format=csv, hop=128)``."""
        return self.url.describe()

    def configure(self, spec, plan) -> None:
        """Adapt to the model before the first read.

        Args:
            spec: The model's input :class:`~edgert.model.TensorSpec`.
            plan: Its :class:`~edgert.runtime.preprocess.ImagePreprocess` for image
                sources, else None.

        Raises:
            InputDataError: The source cannot feed this input.
        """

    @property
    def frame_kind(self) -> str:
        """What its frames are once configured: its :attr:`kind`, unless :meth:`configure` found otherwise
        (an ``npy:`` file of 8-bit pictures for a float model delivers images)."""
        return self.kind

    def open(self) -> None:
        """Open the device/file. Raises DeviceError/InputDataError with a one-line message."""

    def read(self) -> Frame | None:
        """The next frame; None when a live source has nothing yet.

        Raises:
            EndOfSource: A finite source is exhausted.
            SourceLost: A live source must be reopened.
        """
        raise NotImplementedError

    def decode(self, frame: Frame) -> None:
        """Finish decoding ``frame.data`` in place (default: :meth:`read` already did).

        Runs on one of the loop's prepare threads, so a finite source whose
        :meth:`read` only fetches encoded bytes has several frames decoded at
        once (decoders release the GIL). Must not touch the source's own state.

        Raises:
            InputDataError: The frame cannot be decoded (skipped and counted).
        """

    def close(self) -> None:
        """Release the device/file (idempotent)."""

    def interrupt(self) -> None:
        """Unblock a :meth:`read` stuck in a driver (called by the watchdog from another thread)."""
        self.close()

    def reopen(self) -> None:
        """Close and open again (after :class:`SourceLost`)."""
        self.close()
        self.open()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_REGISTRY: dict[str, type[Source]] = {}


def register_source(scheme: str, cls: type[Source]) -> None:
    """Make ``scheme:...`` URLs open ``cls(parsed_url)``.

    Example::

        class Mic(Source):
            scheme, live, kind = "mic", True, "tensor"
            def read(self): ...
        register_source("mic", Mic)
    """
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise TypeError("a source must subclass edgert.loop.Source")
    _REGISTRY[scheme.lower()] = cls


def source_schemes() -> list[str]:
    """Registered source schemes."""
    return sorted(_REGISTRY)


def open_source(url: str) -> Source:
    """Parse ``url``, construct its source and open it.

    Raises:
        InputDataError: Unknown scheme, bad option, unreadable file.
        DeviceError: The device is missing or busy.
    """
    scheme = url.strip().partition(":")[0].partition("?")[0].lower()
    cls = _REGISTRY.get(scheme)
    if cls is None:
        raise InputDataError(f"unknown source {url!r}", f"use one of: {', '.join(s + ':' for s in source_schemes())}")
    text = url.strip()
    if text.lower().startswith(scheme + "?"):  # "stdin?format=csv": no target
        text = scheme + ":" + text[len(scheme):]
    source = cls(parse_url(text, cls.options, passthrough=cls.passthrough))
    source.open()
    return source


def _cv2():
    try:
        import cv2
    except ImportError:
        raise InputDataError("this source needs OpenCV, which is not installed", _OPENCV_HINT) from None
    return cv2


def _quiet_capture(cv2, target, params: list[int] | None = None):
    """``VideoCapture(target)`` without OpenCV's multi-line warnings on a missing device (we raise one line)."""
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)

    def capture():
        return cv2.VideoCapture(target, cv2.CAP_ANY, params) if params else cv2.VideoCapture(target)

    if logging_api is None:
        return capture()
    level = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_ERROR)
    try:
        return capture()
    finally:
        logging_api.setLogLevel(level)


#: Video frames of at most this many pixels are decoded on the reading thread alone (see VideoSource.open).
_SINGLE_THREAD_DECODE_PIXELS = 320 * 240


# ---- cameras ------------------------------------------------------------------------
class CameraSource(Source):
    """A V4L2/USB camera through OpenCV ``VideoCapture`` (``camera:0``, ``camera:/dev/video0``).

    Options: ``width``, ``height``, ``fps`` (requested from the driver),
    ``stale`` (identical consecutive frames that count as a stuck camera, default 50).
    A camera that fails a read, unplugs or repeats the same frame raises
    :class:`SourceLost`; the pipeline reopens it with back-off.
    """

    scheme = "camera"
    live = True
    kind = "image"
    queue_size = 1
    opencv_frames = True
    options = frozenset({"width", "height", "fps", "stale"})

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        if not url.target:
            raise InputDataError("camera: needs a device", "e.g. camera:0 or camera:/dev/video0")
        self.device: int | str = int(url.target) if url.target.isdigit() else url.target
        self.width = int_option(url, "width", None, 1)
        self.height = int_option(url, "height", None, 1)
        self.fps = float_option(url, "fps", None, 0.1)
        self.stale_limit = int_option(url, "stale", 50, 2)
        self._cap = None
        self._last_sig: bytes | None = None
        self._repeats = 0

    def open(self) -> None:
        cv2 = _cv2()
        if isinstance(self.device, str) and not self.device.startswith(("/dev/", "v4l2:")) and not Path(self.device).exists():
            raise DeviceError(f"camera {self.device} does not exist", "ls /dev/video* to see the cameras")
        cap = _quiet_capture(cv2, self.device)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(
                f"camera {self.device} could not be opened",
                "check the cable, ls /dev/video*, and that the user is in the 'video' group",
            )
        requested = (
            (cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height), (cv2.CAP_PROP_FPS, self.fps)
        )
        for prop, value in requested:
            if value:
                cap.set(prop, value)
        self._cap = cap
        self._last_sig, self._repeats = None, 0

    def read(self) -> Frame | None:
        cap = self._cap
        if cap is None:
            raise SourceLost(f"camera {self.device} is closed")
        ok, image = cap.read()
        if not ok or image is None:
            raise SourceLost(f"camera {self.device} returned no frame (unplugged or stalled)")
        # A stuck driver hands out the same buffer again; real sensors always have noise.
        sig = hashlib.blake2b(image[::7, ::7].tobytes(), digest_size=8).digest()
        if sig == self._last_sig:
            self._repeats += 1
            if self._repeats >= self.stale_limit:
                raise SourceLost(f"camera {self.device} repeated the same frame {self._repeats} times (stale)")
        else:
            self._last_sig, self._repeats = sig, 0
        return Frame(image, "image", "bgr")

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class Picamera2Source(Source):
    """A Raspberry Pi CSI camera through ``picamera2`` (``picamera2:`` or ``picamera2:1``).

    Options: ``width``, ``height`` (default 640x480). Frames are BGR (picamera2's
    ``RGB888`` is stored B, G, R), like OpenCV's.
    """

    scheme = "picamera2"
    live = True
    kind = "image"
    queue_size = 1
    options = frozenset({"width", "height"})

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self.camera_num = int(url.target) if url.target.isdigit() else 0
        self.size = (int_option(url, "width", 640, 1), int_option(url, "height", 480, 1))
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise DeviceError(
                "picamera2 is not installed",
                "on Raspberry Pi OS: sudo apt install python3-picamera2 (venv with --system-site-packages)",
            ) from None
        try:
            cam = Picamera2(self.camera_num)
            cam.configure(cam.create_video_configuration(main={"size": self.size, "format": "RGB888"}))
            cam.start()
        except (RuntimeError, IndexError, OSError) as e:
            raise DeviceError(f"CSI camera {self.camera_num} could not be started: {e}",
                              "check the ribbon cable and rpicam-hello") from None
        self._cam = cam

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceLost("CSI camera is closed")
        try:
            image = self._cam.capture_array("main")
        except (RuntimeError, OSError) as e:
            raise SourceLost(f"CSI camera stopped delivering: {e}") from None
        return Frame(image, "image", "bgr")

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()


# ---- files --------------------------------------------------------------------------
def _existing_file(parsed: ParsedUrl) -> Path:
    if not parsed.target:
        raise InputDataError(f"{parsed.scheme}: needs a file", f"e.g. {parsed.scheme}:path/to/file")
    path = Path(parsed.target).expanduser()
    if not path.is_file():
        raise InputDataError(f"{parsed.scheme}: {path} does not exist or is not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise InputDataError(f"{parsed.scheme}: cannot read {path}: {e.strerror}") from None
    return path


class VideoSource(Source):
    """A video file decoded by OpenCV (``video:clip.mp4``); finite, frames in order."""

    scheme = "video"
    live = False
    kind = "image"
    opencv_frames = True
    heavy_frames = True

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self.path = _existing_file(url)
        self._cap = None
        self._n = 0

    def open(self) -> None:
        cv2 = _cv2()
        cap = _quiet_capture(cv2, str(self.path))
        if not cap.isOpened():
            cap.release()
            raise InputDataError(f"video: {self.path} cannot be decoded", "is it a video file OpenCV/FFmpeg can read?")
        pixels = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        n_threads = getattr(cv2, "CAP_PROP_N_THREADS", None)
        if n_threads is not None and 0 < pixels <= _SINGLE_THREAD_DECODE_PIXELS:
            # A small frame decodes in ~0.1-0.2 ms: FFmpeg's decoder threads then cost more than they
            # save (~4 thread wake-ups and ~20 % more CPU per 160x120 MJPG frame, measured), CPU the
            # loop's prepare threads and the model need. Same frames (decoding is deterministic).
            single = _quiet_capture(cv2, str(self.path), [n_threads, 1])
            if single.isOpened():
                cap.release()
                cap = single
            else:
                single.release()
        self._cap, self._n = cap, 0

    def read(self) -> Frame | None:
        if self._cap is None:
            raise EndOfSource()
        ok, image = self._cap.read()
        if not ok or image is None:
            raise EndOfSource()
        self._n += 1
        return Frame(image, "image", "bgr", name=f"{self.path.name}#{self._n - 1}")

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class ImagesSource(Source):
    """Every image in a folder, sorted by file name (``images:photos/``); finite.

    :meth:`read` fetches a file's bytes; :meth:`decode` (on the loop's prepare
    threads, several files at once) decodes them with Pillow. Files Pillow
    cannot decode are skipped and counted.
    """

    scheme = "images"
    live = False
    kind = "image"
    heavy_frames = True

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self.folder = Path(url.target or ".").expanduser()
        self._files: list[Path] = []
        self._next = 0
        self._draft: tuple[str, tuple[int, int]] | None = None

    def open(self) -> None:
        from PIL import Image

        if not self.folder.exists():
            raise InputDataError(f"images: {self.folder} does not exist", "give the folder that holds the pictures")
        if not self.folder.is_dir():
            raise InputDataError(f"images: {self.folder} is a file, not a folder", "give the folder that holds the pictures")
        extensions = {ext.lower() for ext in Image.registered_extensions()}
        try:
            self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in extensions and p.is_file())
        except OSError as e:
            raise InputDataError(f"images: cannot list {self.folder}: {e.strerror}") from None
        if not self._files:
            raise InputDataError(f"images: {self.folder} holds no image files", "put .jpg/.png/.bmp files in it")
        self._next = 0

    def configure(self, spec, plan) -> None:
        if plan is not None:
            # JPEG can decode at 1/2, 1/4, 1/8 scale for free: ask for at least the model's size.
            mode = "L" if plan.channels == 1 else "RGB"
            self._draft = (mode, (plan.width, plan.height))

    def __len__(self) -> int:
        return len(self._files)

    def read(self) -> Frame | None:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            try:
                return Frame(path.read_bytes(), "image", "rgb", name=path.name)
            except OSError as e:
                self.skipped += 1
                log.warning("images: skipping %s: %s", path.name, e.strerror or e)
        raise EndOfSource()

    def decode(self, frame: Frame) -> None:
        from PIL import Image

        if not isinstance(frame.data, bytes):
            return
        try:
            with Image.open(io.BytesIO(frame.data)) as img:
                if self._draft is not None and img.format == "JPEG":
                    img.draft(*self._draft)
                img.load()
                frame.data = img if img.mode in ("RGB", "L") else img.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise InputDataError(f"not a readable image ({e})") from None


class NpySource(Source):
    """Arrays from a ``.npy`` file (``npy:inputs.npy``); finite.

    The file holds one input (the model's input shape or its element count) or
    many along the first axis, used as is (floats are quantized for quantized
    inputs). 8-bit pictures (``[N x] H x W [x 3]`` uint8) for a model whose
    input is not uint8 are resized and normalised like any image.
    """

    scheme = "npy"
    live = False
    kind = "tensor"

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self.path = _existing_file(url)
        self._array: np.ndarray | None = None
        self._frames: np.ndarray | None = None
        self._next = 0
        self._frame_kind = "tensor"

    def open(self) -> None:
        self._array = load_numpy(self.path, ".npy", mmap=True)
        if self._array.dtype.kind not in "fiub" or self._array.size == 0:
            raise InputDataError(
                f"npy: {self.path} holds {self._array.dtype} data of shape {list(self._array.shape)}, not numbers"
            )

    def configure(self, spec, plan) -> None:
        arr = self._array
        assert arr is not None, "open() loads the array before the loop configures the source"
        n = spec.num_elements
        if arr.dtype == np.uint8 and spec.dtype != "uint8" and plan is None and arr.ndim in (2, 3, 4):
            # 8-bit pixels for a float/int8 model: they need normalising, not a cast.
            if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3)):
                arr = arr[None]
            if arr.ndim == 3 or arr.shape[-1] in (1, 3):
                self._frames, self._frame_kind = arr, "image"
                return
        if arr.size == n:
            self._frames = arr.reshape(1, n)
        elif arr.ndim >= 2 and int(np.prod(arr.shape[1:])) == n:
            self._frames = arr.reshape(arr.shape[0], n)
        else:
            raise InputDataError(
                f"npy: {self.path.name} has shape {list(arr.shape)}; "
                f"the model input {spec.name!r} takes {list(spec.shape)} ({n} values)",
                "save one input per row: shape (N, ...) with the model's input size",
            )
        if arr.dtype.kind in "biu" and np.dtype(spec.dtype).kind in "iu" and arr.dtype != np.dtype(spec.dtype):
            # Integers of another type: cast once here, refused (before the first frame) if any does not fit.
            self._frames = to_input_dtype(self._frames, spec, f"npy: {self.path.name}")

    @property
    def frame_kind(self) -> str:
        """``"tensor"`` or ``"image"`` (known after :meth:`configure`)."""
        return self._frame_kind

    def read(self) -> Frame | None:
        if self._frames is None or self._next >= len(self._frames):
            raise EndOfSource()
        i = self._next
        self._next += 1
        return Frame(np.asarray(self._frames[i]), self._frame_kind, "rgb", name=f"{self.path.name}[{i}]")

    def close(self) -> None:
        self._array = self._frames = None


# ---- streams of numbers -----------------------------------------------------------
#: Malformed lines without a window after which a stream first says why (then at twice as many).
_FIRST_HINT_AT = 20


class _StreamSource(Source):
    """Shared by serial and stdin: bytes -> :class:`WindowAssembler` -> tensor frames."""

    kind = "tensor"
    options = frozenset({"format", "window", "hop", "columns", "dtype"})

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        self.fmt = choice_option(url, "format", "csv", ("csv", "binary"))
        self.window = int_option(url, "window", None, 1)
        self.hop = int_option(url, "hop", None, 1)
        self.columns = int_option(url, "columns", None, 1)
        self.dtype = choice_option(url, "dtype", "float32", BINARY_DTYPES)
        self.assembler = self._make_assembler(self.window or 1)
        self._ready: collections.deque[np.ndarray] = collections.deque()
        self._windows = 0
        self._told: str | None = None
        self._tell_at = _FIRST_HINT_AT

    def _make_assembler(self, window: int) -> WindowAssembler:
        return WindowAssembler(window, self.hop, self.fmt, self.columns, self.dtype)

    @property
    def malformed(self) -> int:
        return self.assembler.stats.malformed

    def configure(self, spec, plan) -> None:
        n = spec.num_elements
        if self.window is None:
            self.window = n
        elif self.window != n:
            raise InputDataError(
                f"{self.url.scheme}: window={self.window} but the model input {spec.name!r} takes {n} values {list(spec.shape)}",
                f"use window={n}, or leave window out",
            )
        self.assembler = self._make_assembler(self.window)

    def _next_ready(self) -> Frame | None:
        if not self._ready:
            return None
        values = self._ready.popleft()
        self._windows += 1
        return Frame(values, "tensor", name=f"window {self._windows - 1}")

    def _tell_why_no_window(self, ended: bool = False) -> None:
        """Log, once per new finding, why the stream gave no window (every line malformed, too short)."""
        why = self.assembler.diagnosis(ended)
        if why is not None and why != self._told:
            self._told = why
            log.warning("%s: %s", self.describe(), why)

    def _feed(self, chunk: bytes) -> None:
        """Assemble windows from ``chunk``; while none came, say why after 20, 40, 80, ... malformed lines."""
        self._ready.extend(self.assembler.feed(chunk))
        stats = self.assembler.stats
        if not stats.windows and stats.malformed >= self._tell_at:
            self._tell_at = 2 * stats.malformed  # a wrong baud= shows in the journal while it runs, without flooding it
            self._tell_why_no_window()

    def close(self) -> None:
        self._tell_why_no_window()


class SerialSource(_StreamSource):
    """A sensor on a serial port (``serial:/dev/ttyUSB0?baud=115200&format=csv&window=640&hop=128``).

    ``PORT`` is any pyserial URL (``/dev/ttyACM0``, ``COM3``, ``spy://...``,
    ``socket://...``, ``rfc2217://...``); on a ``...://`` URL, options pyserial
    knows stay on it, a plain device path takes only ours. (The last two are
    network transports: the only way the loop ever opens a socket is a user
    asking for one here.)
    ``window`` defaults to the model's input size, ``hop`` to ``window``.
    ``format=csv``: one reading per line, numbers separated by commas/spaces;
    ``format=binary``: raw little-endian samples of ``dtype``. Malformed lines are
    skipped and counted (a port opened mid-line starts with a torn one); while
    every line is malformed, why is logged after 20, 40, 80, ... lines and at the end. A port that disconnects
    raises :class:`SourceLost` and is reopened by the pipeline.
    """

    scheme = "serial"
    live = True
    # A USB-serial driver delivers readings in bursts: slack for a burst of
    # windows, still dropping the oldest when inference falls behind for good.
    queue_size = 16
    options = _StreamSource.options | {"baud", "timeout"}
    passthrough = True

    #: Seconds a read waits for bytes before giving the loop a chance to check for stop.
    READ_TIMEOUT = 0.2

    def __init__(self, url: ParsedUrl) -> None:
        super().__init__(url)
        if not url.target:
            raise InputDataError("serial: needs a port", "e.g. serial:/dev/ttyUSB0?baud=115200")
        self.port = url.target
        self.baud = int_option(url, "baud", 115200, 1)
        self.timeout = float_option(url, "timeout", self.READ_TIMEOUT, 0.001)
        self._ser = None
        self.opened = 0

    def open(self) -> None:
        self._ser = open_serial(self.port, baudrate=self.baud, timeout=self.timeout)
        self.opened += 1
        if self.opened > 1:
            self.assembler.reset()

    def read(self) -> Frame | None:
        import serial

        frame = self._next_ready()
        if frame is not None:
            return frame
        ser = self._ser
        if ser is None:
            raise SourceLost(f"serial port {self.port} is closed")
        try:
            chunk = ser.read(max(1, ser.in_waiting))
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            # TypeError/AttributeError: pyserial's posix read after close() from the watchdog.
            raise SourceLost(f"serial port {self.port} disconnected: {e}") from None
        if chunk:
            self._feed(chunk)
        return self._next_ready()

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            ser.close()
        super().close()


class StdinSource(_StreamSource):
    """Numbers on standard input (``stdin``, ``stdin?format=binary&dtype=int16&window=16000``); finite."""

    scheme = "stdin"
    live = False

    def __init__(self, url: ParsedUrl, stream=None) -> None:
        super().__init__(url)
        self._stream = stream

    def open(self) -> None:
        if self._stream is None:
            self._stream = sys.stdin.buffer

    def read(self) -> Frame | None:
        while True:
            frame = self._next_ready()
            if frame is not None:
                return frame
            chunk = self._stream.readline() if self.fmt == "csv" else self._stream.read1(65536)
            if not chunk:
                self._ready.extend(self.assembler.finish())
                frame = self._next_ready()
                if frame is not None:
                    return frame
                self._tell_why_no_window(ended=True)
                raise EndOfSource()
            self._feed(chunk)


for _cls in (CameraSource, Picamera2Source, VideoSource, ImagesSource, NpySource, SerialSource, StdinSource):
    register_source(_cls.scheme, _cls)
