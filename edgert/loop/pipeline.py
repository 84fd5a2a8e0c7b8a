"""The offline loop: source -> preprocess -> invoke -> postprocess -> sinks.

The capture thread reads the source and prepares the input tensor (decode,
resize, colour, normalise, quantize) into a bounded queue; the calling thread
invokes the model, postprocesses and writes to the sinks. So capture and
preprocessing of frame N+1 overlap inference of frame N. Frames of OpenCV
sources are resized by OpenCV where that gives Pillow's result (see
:mod:`edgert.loop.resize`).

Finite image sources (image folders, videos) are usually bound by decoding and
resizing, not by the model: there the capture thread only reads, and
``prepare_threads`` threads (default: one per core but two, at most 3) decode and
prepare frames side by side (Pillow and OpenCV release the GIL). Frame ``i``
goes to prepare thread ``i % n`` and the loop takes results back in the same
rotation, so order is kept without sorting. When the loop thread finds its next
frame still being prepared, it prepares the earliest frame still waiting in an
inbox itself (kept aside until its turn) instead of sitting idle: where decoding
is the bottleneck, the model's core does the share of decoding it has time for;
where the model is, the next frame is always ready and the loop never does.

- Live sources (cameras, sensors): the queue holds ``queue_size`` frames (1 for
  cameras, 16 windows for a bursty serial sensor) and a new frame pushes out the
  oldest, counted in ``dropped``; the loop always works on a fresh frame, so
  latency stays bounded.
- Finite sources (video, images, npy, stdin): the reader waits for room
  (back-pressure); every frame is predicted exactly once, in order.

A live source that fails, unplugs, stalls (no frame for ``stall_timeout``
seconds) or repeats stale frames is reopened with back-off. A sink that fails
is counted and logged, never fatal. :meth:`Pipeline.stop` (what SIGINT/SIGTERM
call) ends the run within a fraction of a second with the summary.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgert.errors import EdgertError, InputDataError
from edgert.loop.postprocess import Postprocessor, Result
from edgert.loop.resize import opencv_resizer
from edgert.loop.sinks import Sink, open_sink
from edgert.loop.sources import EndOfSource, Frame, Source, SourceLost, open_source
from edgert.loop.systemd import SystemdNotifier
from edgert.runtime.preprocess import ImagePreprocess, image_preprocess_for
from edgert.runtime.tensors import dequantize, to_input_dtype

__all__ = ["Pipeline", "RunSummary", "FrameQueue", "default_prepare_threads", "RETRY_DELAYS", "LATENCY_WINDOW"]

log = logging.getLogger("edgert.loop")

#: Seconds between attempts to reopen a lost live source (the last value repeats).
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
#: Latency percentiles are over the most recent this-many frames (bounded memory on long runs).
LATENCY_WINDOW = 10000
#: Seconds the consumer waits for a frame before checking stop/watchdog.
_POLL = 0.1
#: Sink errors are logged the first time and then every this-many times.
_SINK_LOG_EVERY = 100


@dataclass
class RunSummary:
    """What a run did (the ``edgert run`` exit report).

    Attributes:
        frames: Frames predicted.
        dropped: Live frames replaced by newer ones before inference.
        fps: Frames predicted per second of run time.
        latency_ms: ``{"p50", "p99"}`` milliseconds per result. Live sources:
            capture -> result, queue wait included (how old a prediction is).
            Finite sources (files), which are read ahead of the model: the
            frame's own work (read, decode, preprocess, inference, postprocess),
            without the time it waited in a queue for its turn.
        skipped: Frames the source could not read (corrupt files) or prepare.
        malformed: Malformed sensor lines skipped.
        reopens: Times a live source was reopened.
        sink_errors: ``{sink: {"count", "last"}}`` for sinks that failed.
        seconds: Run time.
        stopped_by: ``"end"`` (finite source exhausted), ``"max_frames"``, ``"stop"``
            (signal or :meth:`Pipeline.stop`) or ``"error"``.
        error: The fatal error, when ``stopped_by == "error"``.
        source: The source URL.
        task: The postprocessing task.
        max_queue: Largest queue depth seen (live: never above the queue size).
        max_lag: Most frames captured after a frame by the time its inference
            started (how stale a prediction can be; live: at most the queue size).
        stages_ms: Mean milliseconds per frame of each stage. Capture side
            (the capture thread and the prepare threads, per frame captured):
            ``read`` (capture; video decode), ``decode`` (decoding a file read
            as bytes), ``preprocess`` (resize, colour, normalise, quantize).
            Loop thread: ``wait`` (for the next frame), ``set_input``,
            ``invoke``, ``outputs`` (read and dequantize), ``postprocess``
            (results), ``sinks``, and ``stolen``: reading and preparing later
            frames itself while its next one was still being prepared (that
            work is also in the capture-side stages, which count it per frame captured).
    """

    frames: int = 0
    dropped: int = 0
    fps: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=lambda: {"p50": None, "p99": None})
    skipped: int = 0
    malformed: int = 0
    reopens: int = 0
    sink_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: str = "end"
    error: str | None = None
    source: str = ""
    task: str = ""
    max_queue: int = 0
    max_lag: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (``frames, dropped, fps, latency_ms{p50,p99}`` first)."""
        return asdict(self)

    def text(self) -> str:
        """One human line."""
        lat = self.latency_ms
        parts = [
            f"{self.frames} frames",
            f"{self.dropped} dropped",
            f"{self.fps:.1f} fps",
            f"latency p50 {_fmt(lat.get('p50'))} ms, p99 {_fmt(lat.get('p99'))} ms",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.malformed:
            parts.append(f"{self.malformed} malformed lines")
        if self.reopens:
            parts.append(f"{self.reopens} reopens")
        for name, err in self.sink_errors.items():
            parts.append(f"sink {name}: {err['count']} errors ({err['last']})")
        parts.append(f"stopped by {self.stopped_by}" + (f": {self.error}" if self.error else ""))
        return ", ".join(parts)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def default_prepare_threads(source: Source) -> int:
    """Prepare threads for ``source`` when the caller does not say: one per core but two, at most 3.

    Only finite sources with :attr:`~edgert.loop.Source.heavy_frames` get them
    (image folders, video files: decoding or resizing a picture can cost more
    than invoking a small model). Live sources, and light frames (npy rows,
    sensor windows: a hand-off to another thread costs more than preparing
    them), are prepared on the capture thread. Two cores are left to the capture
    thread and the model's thread, which both prepare frames as well when the
    model waits (the loop thread reads and prepares the next frame itself when its
    own is not ready). Measured on 2 cores with VWW int8
    (``benchmarks/loop_throughput.py``, XNNPACK): with both cores free, none
    beats one in 9 of 12 runs (video 3 of 4, video with the OpenCV shrink 4 of 4,
    image folders 2 of 4, within ~10 % either way); on the same host shared with
    a busy neighbour, in 13 of 14 (0.6-1.3 instead of 2-3.5 thread switches per
    frame, each costing ~20 us of CPU on that virtual machine), and in 5 of 6
    where the model is the bottleneck (builtin kernels).
    """
    if source.live or not source.heavy_frames:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores - 2, 3))


class FrameQueue:
    """A bounded hand-off between the capture thread and the loop.

    Args:
        maxsize: Capacity.
        drop_oldest: Live mode: a put on a full queue discards the oldest item
            (counted in :attr:`dropped`); else a put waits for room.

    Each side wakes the other only when it is actually waiting, and a reader
    blocked on a full (finite) queue resumes only once the queue has drained to
    half: one wake-up then refills several frames, instead of a thread switch
    and a GIL hand-over on every frame while the loop thread is busy.
    """

    def __init__(self, maxsize: int, drop_oldest: bool) -> None:
        self.maxsize = max(1, maxsize)
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self.max_depth = 0
        self._items: collections.deque = collections.deque()
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self._getters = 0
        self._putters = 0
        self._low_water = self.maxsize // 2
        self._closed = False

    def put(self, item: Any, stop: threading.Event) -> bool:
        """Add ``item``; False when stopped/closed before there was room."""
        with self._not_full:
            items = self._items
            if self.drop_oldest:
                while len(items) >= self.maxsize:
                    items.popleft()
                    self.dropped += 1
            elif len(items) >= self.maxsize:
                self._putters += 1
                try:
                    while len(items) > self._low_water:
                        if stop.is_set() or self._closed:
                            return False
                        self._not_full.wait(_POLL)
                finally:
                    self._putters -= 1
            items.append(item)
            if len(items) > self.max_depth:
                self.max_depth = len(items)
            if self._getters:
                self._not_empty.notify()
            return True

    def get(self, timeout: float) -> Any | None:
        """The oldest item, or None after ``timeout`` seconds without one (``0``: never waits)."""
        with self._not_empty:
            items = self._items
            if not items and not self._wait_for_items(timeout):
                return None
            item = items.popleft()
            if self._putters and len(items) <= self._low_water:
                self._not_full.notify()
            return item

    def peek(self) -> Any | None:
        """The oldest item without taking it (a hint: another thread may take it first), or None."""
        items = self._items
        try:
            return items[0]
        except IndexError:
            return None

    def get_all(self, timeout: float) -> list:
        """Every queued item, oldest first (one lock round for many frames); [] after ``timeout`` without one.

        Only for a queue that never drops (finite sources): items taken out can no
        longer be replaced by fresher ones.
        """
        with self._not_empty:
            items = self._items
            if not items and not self._wait_for_items(timeout):
                return []
            taken = list(items)
            items.clear()
            if self._putters:
                self._not_full.notify()
            return taken

    def _wait_for_items(self, timeout: float) -> bool:
        """(Lock held, queue empty) wait up to ``timeout``; True when an item arrived."""
        if self._closed or timeout <= 0:
            return False
        self._getters += 1
        try:
            self._not_empty.wait(timeout)
        finally:
            self._getters -= 1
        return bool(self._items)

    @property
    def finished(self) -> bool:
        """Closed and drained: nothing more will come out."""
        with self._not_full:
            return self._closed and not self._items

    def close(self) -> None:
        """Wake everyone up; puts stop waiting."""
        with self._not_full:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def __len__(self) -> int:
        with self._not_full:
            return len(self._items)


class Pipeline:
    """Run a model on a stream of frames until the source ends or :meth:`stop` is called.

    Args:
        model: A loaded :class:`~edgert.runtime.Model` (or a path, loaded with
            :func:`~edgert.runtime.load_model`).
        source: A :class:`~edgert.loop.Source` or a source URL (``"video:clip.mp4"``).
        sinks: Sinks or sink URLs (``"console"``, ``"jsonl:out.jsonl"``).
        task: Force the postprocessing task (else metadata, else inferred).
        top_k: Classes per result.
        threshold: Score threshold (classification/detection) or anomaly threshold.
        labels: Class names for a model whose metadata has none.
        max_frames: Stop after this many predictions.
        queue_size: Frames buffered between capture and inference (default: the
            source's :attr:`~edgert.loop.Source.queue_size`: 1 for cameras, 16 for
            bursty serial windows, 8 for finite sources).
        stall_timeout: Seconds without a frame from a live source before the watchdog reopens it.
        retry_delays: Back-off between reopen attempts (seconds; the last repeats).
        notifier: sd_notify sender (default: from the environment; inert outside systemd).
        on_result: Called with each :class:`~edgert.loop.postprocess.Result` (after the sinks).
        opencv_shrink: Also shrink frames of OpenCV sources (cameras, videos)
            with ``cv2.resize(INTER_AREA)`` instead of Pillow: several times
            cheaper, but the model input differs from
            :func:`~edgert.runtime.preprocess.prepare_image`'s (mean ~1 pixel
            level, scores can move; see :mod:`edgert.loop.resize`). Enlarging and
            ``nearest`` use OpenCV always (same result within 1 level).
        prepare_threads: Threads that decode and prepare frames of a finite
            source while the capture thread reads on (default:
            :func:`default_prepare_threads`); 0 prepares on the capture thread.
            Live sources always prepare on the capture thread (one fresh frame).

    Raises:
        InputDataError: The source cannot feed the model (an audio/feature model on
            a camera, a window of the wrong size, a multi-input model).

    Source and sink objects must already be open (:func:`~edgert.loop.open_source`
    and :func:`~edgert.loop.open_sink` open them; URLs are opened here). The
    pipeline owns them and closes them when :meth:`run` ends; run it once.
    """

    def __init__(
        self,
        model,
        source: Source | str,
        sinks: Iterable[Sink | str] = (),
        *,
        task: str | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        labels: Sequence[str] | None = None,
        max_frames: int | None = None,
        queue_size: int | None = None,
        stall_timeout: float = 5.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        notifier: SystemdNotifier | None = None,
        on_result: Callable[[Result], None] | None = None,
        opencv_shrink: bool = False,
        prepare_threads: int | None = None,
    ) -> None:
        if not hasattr(model, "invoke"):
            from edgert.runtime import load_model

            model = load_model(model)
        self.model = model
        opened: list = []
        try:
            self.source = open_source(source) if isinstance(source, str) else source
            opened.append(self.source)
            self.sinks: list[Sink] = []
            for s in sinks:
                sink = open_sink(s) if isinstance(s, str) else s
                self.sinks.append(sink)
                opened.append(sink)
            self._setup(task, top_k, threshold, labels, opencv_shrink)
            for sink in self.sinks:  # e.g. a CSV file of another task's rows: refused before the first frame
                sink.start(self.post.task)
            self.prepare_threads = self._check_prepare_threads(prepare_threads)
        except BaseException:
            for thing in opened:
                thing.close()
            raise
        prepare_threads = self.prepare_threads
        self.max_frames = max_frames
        live = self.source.live
        size = queue_size or self.source.queue_size
        if prepare_threads:
            # Frame i travels inbox[i % n] -> prepare thread -> outbox[i % n]; together they buffer ~``size`` frames.
            per_thread = max(1, -(-size // (2 * prepare_threads)))
            self._inboxes = [FrameQueue(per_thread, drop_oldest=False) for _ in range(prepare_threads)]
            self._outboxes = [FrameQueue(per_thread, drop_oldest=False) for _ in range(prepare_threads)]
        else:
            self._inboxes = []
            self._outboxes = [FrameQueue(size, drop_oldest=live)]
        self.stall_timeout = stall_timeout
        self.retry_delays = tuple(retry_delays) or RETRY_DELAYS
        self.notifier = notifier or SystemdNotifier()
        self.on_result = on_result
        self._stop = threading.Event()
        self._capture_done = threading.Event()
        self._heartbeat = time.monotonic()  # last read that returned (stall detection)
        self._alive = self._heartbeat  # last sign of life of the capture thread (systemd watchdog)
        self._reopening = False
        self._captured = 0
        self._read_lock = threading.Lock()  # reading and numbering a frame (capture thread, or the loop thread)
        self._source_ended = False
        self._reopens = 0
        self._fatal: str | None = None
        # Capture-side seconds and skipped frames, one dict per thread (no shared counters): [reader, *preparers].
        self._capture_stats: list[dict[str, float]] = [
            dict.fromkeys(("read", "decode", "preprocess", "skipped"), 0) for _ in range(2 + prepare_threads)
        ]
        self._thread: threading.Thread | None = None
        self._preparers: list[threading.Thread] = []

    # -- setup --------------------------------------------------------------------------
    def _setup(self, task: str | None, top_k: int | None, threshold: float | None, labels: Sequence[str] | None,
               opencv_shrink: bool) -> None:
        model = self.model
        if len(model.inputs) != 1:
            raise InputDataError(f"the loop feeds one input; this model takes {len(model.inputs)}",
                                 "use edgert predict with one .npy per input")
        self.spec = spec = model.inputs[0]
        metadata = model.metadata
        plan: ImagePreprocess | None = None
        if self.source.kind == "image":
            try:
                plan = image_preprocess_for(spec, metadata)
            except InputDataError as e:
                raise InputDataError(f"{self.source.describe()} gives images, but {e.message}", e.hint) from None
        self.source.configure(spec, plan)
        self.frame_kind = self.source.frame_kind
        if self.frame_kind == "image" and plan is None:
            plan = image_preprocess_for(spec, metadata)
        self.plan = plan
        # OpenCV frames are resized by OpenCV (far cheaper than a round trip through Pillow).
        use_cv2 = self.source.opencv_frames
        self._resize = opencv_resizer(plan, shrink=opencv_shrink) if plan is not None and use_cv2 else None
        self.post = Postprocessor(model.inputs, model.outputs, metadata, task=task, top_k=top_k, threshold=threshold,
                                  labels=labels, model_file=getattr(model, "file", None))

    def _check_prepare_threads(self, requested: int | None) -> int:
        if requested is None:
            return default_prepare_threads(self.source)
        if not isinstance(requested, int) or requested < 0:
            raise InputDataError(f"prepare_threads must be 0 or more, got {requested!r}")
        if requested and self.source.live:
            raise InputDataError(f"{self.source.describe()} is live: its frames are prepared on the capture thread",
                                 "drop --prepare-threads (it applies to video files, image folders, npy and stdin)")
        return requested

    def _prepare(self, frame: Frame) -> None:
        """Fill ``frame.tensor`` (capture or prepare thread)."""
        if frame.kind == "image":
            pixels = frame.data if self._resize is None else self._resize(frame.data)
            frame.tensor = self.plan(pixels, frame.color)  # type: ignore[misc]
            return
        values = np.asarray(frame.data)
        if values.size != self.spec.num_elements:
            raise InputDataError(f"frame has {values.size} values, the model input takes {self.spec.num_elements}")
        # The same rules as edgert predict: floats quantized, integers cast only when they fit.
        frame.tensor = to_input_dtype(values.reshape(self.spec.shape), self.spec, frame.name or f"frame {frame.index}")

    # -- control --------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end (safe from signal handlers and other threads)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    # -- capture thread -----------------------------------------------------------------
    def _capture_loop(self) -> None:
        """Read frames; prepare them here (live sources) or hand them to the prepare threads in rotation."""
        source, stop, stats = self.source, self._stop, self._capture_stats[0]
        inboxes = self._inboxes
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                self._alive = time.monotonic()
                try:
                    with self._read_lock:  # the loop thread may read a frame too (see _steal_read)
                        if self._source_ended:
                            break
                        frame = source.read()
                        if frame is not None:
                            frame.index = self._captured
                            self._captured += 1
                except EndOfSource:
                    self._source_ended = True
                    break
                except (SourceLost, OSError) as e:
                    if not source.live:
                        self._fatal = f"{source.describe()}: {e}"
                        break
                    if not self._reopen(e):
                        break
                    continue
                self._heartbeat = time.monotonic()
                if frame is None:
                    continue
                frame.timestamp = self._heartbeat
                frame.work = time.perf_counter() - t0
                stats["read"] += frame.work
                if inboxes:
                    if not inboxes[frame.index % len(inboxes)].put(frame, stop):
                        break
                    continue
                if not self._decode_and_prepare(frame, stats):
                    if source.live:
                        continue
                    frame.tensor = None  # finite: it still goes through, so the loop's turns stay in step (it skips it)
                if not self._outboxes[0].put(frame, stop):
                    break
                if not source.live and self.max_frames is not None and self._captured >= self.max_frames:
                    break
        except EdgertError as e:
            self._fatal = str(e)
        except Exception as e:  # a driver/decoder bug: end the run with it in the summary, not a silent dead thread
            log.exception("capture thread failed")
            self._fatal = f"{source.describe()}: {type(e).__name__}: {e}"
        finally:
            self._capture_done.set()
            for queue in inboxes or self._outboxes:
                queue.close()

    def _prepare_loop(self, inbox: FrameQueue, outbox: FrameQueue, stats: dict[str, float]) -> None:
        """A prepare thread: decode and prepare the frames of one inbox, in order, into its outbox.

        A frame that cannot be prepared still goes through, with ``tensor`` None,
        so the loop's rotation over the outboxes stays in step (it skips it).
        """
        stop = self._stop
        try:
            while True:
                frame = inbox.get(_POLL)
                if frame is None:
                    if stop.is_set() or inbox.finished:
                        break
                    continue
                if not self._decode_and_prepare(frame, stats):
                    frame.tensor = None
                if not outbox.put(frame, stop):
                    break
        except EdgertError as e:
            self._fatal = str(e)
            stop.set()
        except Exception as e:  # a decoder bug: end the run with it in the summary
            log.exception("prepare thread failed")
            self._fatal = f"{self.source.describe()}: {type(e).__name__}: {e}"
            stop.set()
        finally:
            outbox.close()

    def _decode_and_prepare(self, frame: Frame, stats: dict[str, float]) -> bool:
        """Decode and prepare one frame, timing both; False (counted, logged) when it cannot be used."""
        t0 = time.perf_counter()
        try:
            self.source.decode(frame)
            t1 = time.perf_counter()
            self._prepare(frame)
        except (InputDataError, ValueError, OSError) as e:
            stats["skipped"] += 1
            log.warning("skipping frame %s: %s", frame.name or frame.index, e)
            return False
        t2 = time.perf_counter()
        stats["decode"] += t1 - t0
        stats["preprocess"] += t2 - t1
        frame.work += t2 - t0
        return True

    def _steal(self, stolen: dict[int, Frame], stats: dict[str, float]) -> bool:
        """(Loop thread, its next frame still being prepared) prepare the earliest frame still waiting in an inbox.

        Instead of sitting idle while the prepare threads decode, the loop thread
        does a share of the decoding itself whenever it runs out of frames: on few
        cores that share is what the model leaves of its core. Where the model is
        the bottleneck the next frame is always ready, so it never steals. The
        frame is kept in ``stolen`` until its turn comes (one at a time). False when no frame is waiting.
        """
        best: FrameQueue | None = None
        first = -1
        for inbox in self._inboxes:
            head = inbox.peek()
            if head is not None and (best is None or head.index < first):
                best, first = inbox, head.index
        frame = best.get(0.0) if best is not None else None
        if frame is None:
            return False
        self._prepare_stolen(frame, stolen, stats)
        return True

    def _steal_read(self, stolen: dict[int, Frame], stats: dict[str, float]) -> bool:
        """(Loop thread, no prepare threads, its next frame still being prepared) read and prepare the next one itself.

        Like :meth:`_steal`, for a heavy finite source prepared on the capture
        thread: the loop reads the following frame (after the capture thread's read
        in progress, if any) and prepares it, instead of waiting. False when it did not.
        """
        lock = self._read_lock
        # The capture thread may be reading (a video frame: ~0.1 ms): wait for it, then read the next one.
        if not lock.acquire(timeout=_POLL):
            return False
        try:
            if self._source_ended or self._stop.is_set() or (
                    self.max_frames is not None and self._captured >= self.max_frames):
                return False
            t0 = time.perf_counter()
            try:
                frame = self.source.read()
            except EndOfSource:
                self._source_ended = True
                return False
            except (SourceLost, OSError) as e:  # a finite source: as on the capture thread, the end of the run
                self._fatal = f"{self.source.describe()}: {e}"
                self._stop.set()
                return False
            if frame is None:
                return False
            frame.index = self._captured
            self._captured += 1
        except Exception as e:  # a reader bug: end the run with it in the summary, as on the capture thread
            log.exception("reading a frame on the loop thread failed")
            self._fatal = f"{self.source.describe()}: {type(e).__name__}: {e}"
            self._stop.set()
            return False
        finally:
            lock.release()
        frame.timestamp = self._heartbeat = time.monotonic()
        frame.work = time.perf_counter() - t0
        stats["read"] += frame.work
        self._prepare_stolen(frame, stolen, stats)
        return True

    def _prepare_stolen(self, frame: Frame, stolen: dict[int, Frame], stats: dict[str, float]) -> None:
        """Prepare a frame on the loop thread and keep it for its turn (errors as on a prepare thread)."""
        try:
            if not self._decode_and_prepare(frame, stats):
                frame.tensor = None
        except EdgertError as e:
            self._fatal = str(e)
            self._stop.set()
        except Exception as e:  # a decoder bug: end the run with it in the summary, as on a prepare thread
            log.exception("preparing a frame on the loop thread failed")
            self._fatal = f"{self.source.describe()}: {type(e).__name__}: {e}"
            self._stop.set()
        stolen[frame.index] = frame

    def _reopen(self, reason: Exception) -> bool:
        """Reopen a lost live source with back-off; False when stopped first."""
        self._reopening = True
        try:
            return self._reopen_with_backoff(reason)
        finally:
            self._reopening = False
            self._heartbeat = time.monotonic()

    def _reopen_with_backoff(self, reason: Exception) -> bool:
        attempt = 0
        while not self._stop.is_set():
            self._alive = time.monotonic()
            delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
            log.warning("%s: %s; reopening in %.1f s", self.source.describe(), reason, delay)
            self.source.close()
            if self._stop.wait(delay):
                return False
            try:
                self.source.reopen()
            except (EdgertError, OSError) as e:
                reason = e
                attempt += 1
                continue
            self._reopens += 1
            log.info("%s: reopened", self.source.describe())
            return True
        return False

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run to the end of the source, ``max_frames`` or :meth:`stop`; returns the summary."""
        model, post, spec = self.model, self.post, self.spec
        n_out = len(model.outputs)
        latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        sink_errors: dict[str, dict[str, Any]] = {}
        stages = dict.fromkeys(("wait", "stolen", "set_input", "invoke", "outputs", "postprocess", "sinks"), 0.0)
        frames = max_lag = 0
        stopped_by = "end"
        need_float_input = post.task == "anomaly"
        live = self.source.live
        outboxes = self._outboxes
        turn = 0  # frame i comes out of outboxes[i % n]
        # Finite sources: frames already taken out of outboxes[k], in order (drained a whole queue at a time).
        taken: list[collections.deque] | None = None if self.source.live else [collections.deque() for _ in outboxes]
        # With prepare threads, frames the loop thread prepared itself while it waited ("stolen"), by index.
        inboxes = self._inboxes
        stolen: dict[int, Frame] = {}
        loop_stats = self._capture_stats[-1]
        # Heavy finite frames only: a light frame is never worth it, and such sources never block in read().
        may_steal = not self.source.live and (bool(inboxes) or self.source.heavy_frames)
        self._thread = threading.Thread(target=self._capture_loop, name="edgert-capture", daemon=True)
        self._preparers = [
            threading.Thread(target=self._prepare_loop, args=(inbox, outbox, stats), name=f"edgert-prepare-{k}", daemon=True)
            for k, (inbox, outbox, stats) in enumerate(zip(self._inboxes, outboxes, self._capture_stats[1:], strict=False))
        ]
        start = time.monotonic()
        self._heartbeat = start
        self._thread.start()
        for thread in self._preparers:
            thread.start()
        self.notifier.ready(f"running {self.source.describe()}")
        log.info("running %s on %s (%s)", getattr(model.file, "path", None) or "model", self.source.describe(), post.task)
        try:
            while True:
                if self._stop.is_set():
                    stopped_by = "stop"
                    break
                t_wait = time.perf_counter()
                queue = outboxes[turn % len(outboxes)]
                if taken is None:
                    frame = queue.get(_POLL)
                else:
                    frame = stolen.pop(turn, None) if stolen else None
                    if frame is None:
                        mine = taken[turn % len(outboxes)]
                        if not mine and may_steal and not stolen:  # one frame ahead at most: enough to fill the wait
                            mine.extend(queue.get_all(0.0))
                            if not mine and (self._steal(stolen, loop_stats) if inboxes
                                             else self._steal_read(stolen, loop_stats)):
                                stages["stolen"] += time.perf_counter() - t_wait
                                continue  # prepared a later frame while its own was still being prepared
                        if not mine:
                            mine.extend(queue.get_all(_POLL))
                        frame = mine.popleft() if mine else None
                if frame is None:
                    if self._stop.is_set():
                        stopped_by = "stop"
                        break
                    if queue.finished:
                        break
                    self._watchdog()
                    continue
                turn += 1
                if frame.tensor is None:  # a prepare thread could not use it (counted there)
                    continue
                t0 = time.perf_counter()
                max_lag = max(max_lag, self._captured - 1 - frame.index)
                model.set_input(0, frame.tensor)
                t1 = time.perf_counter()
                model.invoke()
                t2 = time.perf_counter()
                outputs = [model.get_output(i) for i in range(n_out)]
                t3 = time.perf_counter()
                model_input = None
                if need_float_input:
                    float_tensor = frame.kind == "tensor" and np.asarray(frame.data).dtype.kind == "f"
                    model_input = frame.data if float_tensor else dequantize(frame.tensor, spec)
                fields = post(outputs, model_input)
                if live:  # how old the prediction is: capture -> now
                    latency = (time.monotonic() - frame.timestamp) * 1000.0
                else:  # read ahead: the frame's own work, not its wait for a turn
                    latency = (frame.work + time.perf_counter() - t0) * 1000.0
                result = Result(frame.index, frame.name, post.task, latency, time=time.time(), **fields)
                t4 = time.perf_counter()
                for sink in self.sinks:
                    try:
                        sink.write(result, frame)
                    except (OSError, ValueError, EdgertError) as e:
                        self._sink_failed(sink, e, sink_errors)
                if self.on_result is not None:
                    self.on_result(result)
                t5 = time.perf_counter()
                stages["wait"] += t0 - t_wait
                stages["set_input"] += t1 - t0
                stages["invoke"] += t2 - t1
                stages["outputs"] += t3 - t2
                stages["postprocess"] += t4 - t3
                stages["sinks"] += t5 - t4
                latencies.append(latency)
                frames += 1
                self.notifier.watchdog()
                if self.max_frames is not None and frames >= self.max_frames:
                    stopped_by = "max_frames"
                    break
        except EdgertError as e:
            stopped_by, self._fatal = "error", str(e)
        except (RuntimeError, ValueError) as e:  # the interpreter failing mid-run
            stopped_by, self._fatal = "error", f"{type(e).__name__}: {e}"
        except KeyboardInterrupt:  # Ctrl-C without signal handlers installed: still a clean stop
            stopped_by = "stop"
        finally:
            elapsed = time.monotonic() - start
            self._shutdown()
        if self._fatal and stopped_by != "error":
            stopped_by = "error"
        lat = np.asarray(latencies, np.float64)
        per_frame = {k: round(v * 1000.0 / max(frames, 1), 4) for k, v in stages.items()}
        capture = {k: sum(stats[k] for stats in self._capture_stats) for k in ("read", "decode", "preprocess")}
        per_capture = {k: round(v * 1000.0 / max(self._captured, 1), 4) for k, v in capture.items()}
        summary = RunSummary(
            frames=frames,
            dropped=sum(q.dropped for q in outboxes),
            fps=round(frames / elapsed, 3) if elapsed > 0 else 0.0,
            latency_ms={"p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                        "p99": round(float(np.percentile(lat, 99)), 3) if lat.size else None},
            skipped=self.source.skipped + sum(int(stats["skipped"]) for stats in self._capture_stats),
            malformed=self.source.malformed,
            reopens=self._reopens,
            sink_errors=sink_errors,
            seconds=round(elapsed, 3),
            stopped_by=stopped_by,
            error=self._fatal,
            source=self.source.url.url,
            task=post.task,
            max_queue=max(q.max_depth for q in outboxes),
            max_lag=max_lag,
            stages_ms={**per_capture, **per_frame},
        )
        log.debug("summary: %s", summary.text())  # the caller prints it (edgert run does)
        return summary

    def _watchdog(self) -> None:
        """Idle tick: ping systemd while capture is alive; reset a live source whose read stalled.

        Waiting for an unplugged camera to come back is healthy (pings go on);
        a read stuck in a driver is not: it is interrupted after ``stall_timeout``
        and, if that does not help, systemd's WatchdogSec restarts the process.
        """
        now = time.monotonic()
        if now - self._alive < self.stall_timeout + max(self.retry_delays):
            self.notifier.watchdog()
        idle = now - self._heartbeat
        if idle >= self.stall_timeout and self.source.live and not self._reopening and not self._capture_done.is_set():
            log.warning("%s: no frame for %.1f s; resetting it", self.source.describe(), idle)
            self._heartbeat = time.monotonic()  # one interrupt per stall period
            # Closing the device makes a read blocked in the driver return, so the
            # capture thread sees SourceLost and reopens with back-off.
            self.source.interrupt()

    def _sink_failed(self, sink: Sink, error: Exception, errors: dict[str, dict[str, Any]]) -> None:
        entry = errors.setdefault(sink.name, {"count": 0, "last": ""})
        entry["count"] += 1
        entry["last"] = f"{type(error).__name__}: {error}"
        if entry["count"] == 1 or entry["count"] % _SINK_LOG_EVERY == 0:
            log.error("sink %s failed (%d times): %s", sink.name, entry["count"], entry["last"])

    def _shutdown(self) -> None:
        self._stop.set()
        for queue in self._inboxes + self._outboxes:
            queue.close()
        for thread in self._preparers:  # each finishes the frame in hand (a decode takes milliseconds at most)
            thread.join(timeout=1.0)
        if self._thread is not None:
            # A camera read returns within a frame period; give it that before
            # closing the device under it (OpenCV captures are not thread-safe).
            self._thread.join(timeout=0.5)
            if self._thread.is_alive():
                # Blocked in a driver/stdin read: closing the source releases it; the thread is a daemon.
                self.source.interrupt()
                self._thread.join(timeout=0.4)
        self.source.close()
        for sink in self.sinks:
            try:
                sink.close()
            except OSError as e:
                log.error("closing sink %s: %s", sink.name, e)
        self.notifier.stopping()
