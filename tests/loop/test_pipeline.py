"""The loop on real models: image folders, live back-pressure, watchdog, sinks, no network, sd_notify."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from edgert.loop import Frame, Pipeline, Source, SourceLost, open_sink, register_source
from edgert.loop.sources import EndOfSource
from edgert.runtime.preprocess import prepare_image

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, scene_images):
    """Six real pictures (PNG and JPEG, different sizes) plus one corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        img = Image.fromarray(scene_images[i % 2]).resize((96 + 16 * i, 96 + 8 * i))
        img.save(folder / f"img_{i:02d}.{'png' if i % 2 else 'jpg'}")
    (folder / "img_03_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_image_folder_sorted_every_file_once_corrupt_one_skipped(vww_model, photo_dir):
    results = []
    summary = Pipeline(vww_model, f"images:{photo_dir}", on_result=results.append).run()
    names = sorted(p.name for p in photo_dir.glob("img_*") if "broken" not in p.name)
    assert summary.frames == 6 and summary.skipped == 1 and summary.dropped == 0
    assert [r.name for r in results] == names
    for r in results:
        with Image.open(photo_dir / r.name) as img:
            img.draft("RGB", (96, 96))
            expected = vww_model.predict(prepare_image(img.convert("RGB"), vww_model.inputs[0]))[0][0]
        assert r.classes[0].id == int(np.argmax(expected))
        assert r.classes[0].score == pytest.approx(float(expected.max()))


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_prepare_threads_keep_order_and_the_inline_answers(vww_model, photo_dir, threads):
    # 40 files through n prepare threads: the rotation hands every frame back once, in
    # file order, with the same scores as preparing on the capture thread.
    inline = []
    Pipeline(vww_model, f"images:{photo_dir}", on_result=inline.append, prepare_threads=0).run()
    results = []
    pipeline = Pipeline(vww_model, f"images:{photo_dir}", on_result=results.append, prepare_threads=threads, queue_size=2)
    summary = pipeline.run()
    assert summary.frames == 6 and summary.skipped == 1 and summary.stopped_by == "end"
    assert [(r.frame, r.name) for r in results] == [(r.frame, r.name) for r in inline]
    assert [r.classes[0].score for r in results] == [r.classes[0].score for r in inline]
    assert summary.stages_ms["decode"] > 0 and summary.max_queue <= 2
    assert not any(t.is_alive() for t in pipeline._preparers)


class _Slides(Source):
    """A finite image source of ``count`` frames named 0, 1, ...; frame i holds ``picture(i)``."""

    live, kind, count = False, "image", 0

    def __init__(self, url) -> None:
        super().__init__(url)
        self.i = 0

    def picture(self, i: int):
        raise NotImplementedError

    def read(self):
        if self.i >= self.count:
            raise EndOfSource()
        self.i += 1
        return Frame(self.picture(self.i - 1), "image", "rgb", name=str(self.i - 1))


def test_prepare_threads_stop_early_and_surface_a_decoder_crash(vww_model, scene_images):
    class Slides(_Slides):
        scheme, count = "test-crashing-slides", 1000

        def picture(self, i: int):
            return i  # decoded by decode(), on a prepare thread

        def decode(self, frame):
            if frame.data == 30:
                raise RuntimeError("decoder bug")
            frame.data = scene_images[frame.data % 2]

    register_source("test-crashing-slides", Slides)
    results = []
    pipeline = Pipeline(vww_model, "test-crashing-slides:", on_result=results.append, prepare_threads=2)
    summary = pipeline.run()
    assert summary.stopped_by == "error" and "RuntimeError: decoder bug" in summary.error
    assert [r.frame for r in results] == list(range(len(results))) and len(results) <= 30
    assert not pipeline._thread.is_alive() and not any(t.is_alive() for t in pipeline._preparers)
    # A stop from the consumer side ends a run with prepare threads just as cleanly.
    results = []
    stopper = Pipeline(vww_model, "test-crashing-slides:", prepare_threads=2)
    stopper.on_result = lambda r: (results.append(r), r.frame == 9 and stopper.stop())
    summary = stopper.run()
    assert summary.stopped_by == "stop" and [r.frame for r in results] == list(range(10))


def _slides_holding_frame_0(scheme: str, scene_images, heavy: bool) -> dict[int, str]:
    """Register 12 slides whose frame 0 is held off the loop thread until the loop thread has decoded a
    frame itself (so it must have found frame 0 missing and prepared a later one); returns who decoded which."""
    loop_decoded = threading.Event()
    decoded_by: dict[int, str] = {}

    class Slides(_Slides):
        count, heavy_frames = 12, heavy

        def picture(self, i: int):
            return i

        def decode(self, frame):
            i = frame.data
            decoded_by[i] = threading.current_thread().name
            if threading.current_thread() is threading.main_thread():
                loop_decoded.set()
            elif i == 0:
                assert loop_decoded.wait(10.0)
            frame.data = scene_images[i % 2]

    Slides.scheme = scheme
    register_source(scheme, Slides)
    return decoded_by


def _decoded_on_the_loop_thread(decoded_by: dict[int, str]) -> list[int]:
    return sorted(i for i, name in decoded_by.items() if name == threading.main_thread().name)


def test_the_loop_thread_prepares_frames_itself_while_its_next_one_is_not_ready(vww_model, scene_images):
    # With a prepare thread: the order and the scores stay those of preparing everything on the capture thread.
    decoded_by = _slides_holding_frame_0("test-stolen-slides", scene_images, heavy=False)
    results, inline = [], []
    summary = Pipeline(vww_model, "test-stolen-slides:", on_result=results.append, prepare_threads=1).run()
    assert summary.frames == 12 and summary.stopped_by == "end"
    stolen = _decoded_on_the_loop_thread(decoded_by)
    assert stolen and 0 not in stolen and len(decoded_by) == 12
    Pipeline(vww_model, "test-stolen-slides:", on_result=inline.append, prepare_threads=0).run()
    assert [r.frame for r in results] == list(range(12))
    assert [r.classes[0].score for r in results] == [r.classes[0].score for r in inline]


def test_without_prepare_threads_the_loop_thread_reads_and_prepares_the_next_frame_itself(vww_model, scene_images):
    # The same for a heavy finite source prepared on the capture thread: the capture thread holds
    # frame 0 until the loop thread has read and decoded a later frame itself.
    decoded_by = _slides_holding_frame_0("test-read-stolen-slides", scene_images, heavy=True)
    results = []
    summary = Pipeline(vww_model, "test-read-stolen-slides:", on_result=results.append, prepare_threads=0).run()
    assert summary.frames == 12 and summary.stopped_by == "end" and summary.skipped == 0
    stolen = _decoded_on_the_loop_thread(decoded_by)
    assert stolen and 0 not in stolen and len(decoded_by) == 12
    assert [r.frame for r in results] == list(range(12))
    assert [r.name for r in results] == [str(i) for i in range(12)]


def test_prepare_threads_only_for_finite_sources(vww_model, monkeypatch):
    from edgert.errors import InputDataError
    from edgert.loop.pipeline import default_prepare_threads
    from edgert.loop.urls import parse_url

    url = parse_url("test-burst:", frozenset())
    camera = _Burst(url)
    camera.close = lambda: setattr(camera, "closed", True)
    with pytest.raises(InputDataError, match="is live"):
        Pipeline(vww_model, camera, prepare_threads=2)
    assert camera.closed  # the pipeline owned it: closed on the way out
    with pytest.raises(InputDataError, match="0 or more"):
        Pipeline(vww_model, _Burst(url), prepare_threads=-1)
    folder, rows = Source(url), Source(url)
    folder.heavy_frames = True
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    camera = _Burst(url)
    camera.heavy_frames = True  # heavy, but live: frames stay on the capture thread to stay fresh
    assert default_prepare_threads(folder) == 3 and default_prepare_threads(camera) == 0
    assert default_prepare_threads(rows) == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert default_prepare_threads(folder) == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})  # the capture and loop threads share the work
    assert default_prepare_threads(folder) == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert default_prepare_threads(folder) == 0


class _Burst(Source):
    """A live source that produces frames much faster than the loop consumes them."""

    scheme = "test-burst"
    live = True
    kind = "image"
    queue_size = 1
    pictures: list = []

    def __init__(self, url) -> None:
        super().__init__(url)
        self.produced = 0

    def read(self):
        time.sleep(0.0005)  # a fast camera, not a busy loop
        self.produced += 1
        return Frame(self.pictures[self.produced % 2], "image", "rgb", name=f"burst {self.produced - 1}")


def test_live_source_faster_than_inference_drops_old_frames(vww_model, scene_images):
    _Burst.pictures = scene_images
    register_source("test-burst", _Burst)
    seen = []

    def slow_consumer(result):  # a slow sink: inference + sinks far slower than capture
        seen.append(result.frame)
        time.sleep(0.004)

    pipeline = Pipeline(vww_model, "test-burst:", max_frames=25, on_result=slow_consumer)
    summary = pipeline.run()
    assert summary.frames == 25 and summary.stopped_by == "max_frames"
    assert summary.dropped > 0
    assert summary.max_queue == 1  # the queue never grows
    assert summary.max_lag <= 1  # each prediction starts on the newest frame (or the one before)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[-1] - seen[0] + 1 > len(seen)  # frames were skipped, not queued
    assert pipeline.source.produced >= summary.frames + summary.dropped


class _Hangs(Source):
    """A live source whose driver blocks forever after three frames until the device is closed."""

    scheme = "test-hang"
    live = True
    kind = "image"
    queue_size = 1
    picture = None

    def __init__(self, url) -> None:
        super().__init__(url)
        self.opens = 0
        self.count = 0
        self._closed = threading.Event()

    def open(self) -> None:
        self.opens += 1
        self.count = 0
        self._closed = threading.Event()

    def read(self):
        if self.count >= 3:
            self._closed.wait()
            raise SourceLost("device closed under a blocked read")
        self.count += 1
        return Frame(self.picture, "image", "rgb")

    def interrupt(self) -> None:
        self._closed.set()

    def close(self) -> None:
        self._closed.set()


def test_watchdog_reopens_a_stalled_live_source(vww_model, scene_images):
    _Hangs.picture = scene_images[0]
    register_source("test-hang", _Hangs)
    pipeline = Pipeline(vww_model, "test-hang:", max_frames=7, stall_timeout=0.2, retry_delays=(0.01,))
    summary = pipeline.run()
    assert summary.frames == 7
    assert summary.reopens >= 2 and pipeline.source.opens >= 3


def test_file_sinks_and_a_full_disk(vww_model, photo_dir, tmp_path):
    jsonl, csv_path, shots = tmp_path / "out" / "preds.jsonl", tmp_path / "out.csv", tmp_path / "shots"
    jsonl.parent.mkdir()
    jsonl.write_text('{"earlier": "run"}\n')  # appended to, never truncated
    sinks = [f"jsonl:{jsonl}", f"csv:{csv_path}", f"snapshots:{shots}?every=4", "jsonl:/dev/full"]
    results = []
    summary = Pipeline(vww_model, f"images:{photo_dir}", sinks, top_k=2, on_result=results.append).run()
    assert summary.frames == 6
    # /dev/full answers every write with ENOSPC: reported, the loop carried on.
    assert summary.sink_errors["jsonl:/dev/full"]["count"] == 6
    assert "No space left" in summary.sink_errors["jsonl:/dev/full"]["last"]
    assert len(summary.sink_errors) == 1
    lines = jsonl.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": "run"}
    records = [json.loads(line) for line in lines[1:]]
    # Frame numbers count what the source delivered: the broken file (5th by name) leaves a gap.
    in_folder = sorted(p.name for p in photo_dir.glob("img_*"))
    assert [r["frame"] for r in records] == [in_folder.index(r["name"]) for r in records] == [0, 1, 2, 3, 5, 6]
    assert all(len(r["classes"]) == 2 for r in records)
    assert records[0]["classes"][0]["id"] == results[0].classes[0].id
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "frame,name,time,latency_ms,id,label,score,top_k" and len(rows) == 7
    changes = sum(1 for i, r in enumerate(results) if i == 0 or r.classes[0].id != results[i - 1].classes[0].id)
    saved = sorted(p.name for p in shots.iterdir())
    expected = {r.frame for i, r in enumerate(results)
                if r.frame % 4 == 0 or i == 0 or r.classes[0].id != results[i - 1].classes[0].id}
    run_id = saved[0].partition("_frame_")[0]  # the run's start, UTC: 20261125-214300
    assert saved == [f"{run_id}_frame_{i:08d}.jpg" for i in sorted(expected)] and len(saved) >= changes
    with Image.open(shots / saved[0]) as img:
        assert img.size == (96, 96) and img.mode == "RGB"


def test_serial_sink_writes_results_back_to_a_microcontroller(vww_model, photo_dir, pty_pair):
    sink = open_sink(f"serial:{pty_pair.name}?baud=115200")
    results = []
    Pipeline(vww_model, f"images:{photo_dir}", [sink], on_result=results.append).run()
    lines = pty_pair.read_lines(6)
    assert [line.decode().split(",")[:2] for line in lines] == [[str(r.frame), str(r.classes[0].id)] for r in results]


def test_no_network_the_loop_opens_no_socket(vww_model, ad01_model, ad01_frames, photo_dir, tmp_path, monkeypatch, pty_pair):
    from tests.loop.conftest import csv_line

    def forbidden(*args, **kwargs):
        raise AssertionError("the loop tried to open a socket")

    for name in ("socket", "create_connection", "socketpair", "getaddrinfo", "fromfd"):
        monkeypatch.setattr(socket, name, forbidden)
    sinks = [f"jsonl:{tmp_path / 'a.jsonl'}", f"csv:{tmp_path / 'a.csv'}", f"snapshots:{tmp_path / 's'}"]
    summary = Pipeline(vww_model, f"images:{photo_dir}", sinks).run()
    assert summary.frames == 6 and not summary.sink_errors
    stop_after_two = []

    def on_result(result):
        stop_after_two.append(result)
        if len(stop_after_two) == 2:
            pipeline.stop()

    pipeline = Pipeline(ad01_model, f"serial:{pty_pair.name}?hop=128", on_result=on_result)
    for row in ad01_frames[:6]:  # after the port is open: opening a port flushes its input
        pty_pair.write(csv_line(row))
    summary = pipeline.run()
    assert summary.frames == 2 and summary.stopped_by == "stop"


def test_sd_notify_ready_watchdog_stopping(vww_model, photo_dir, tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1")  # ping as often as allowed
    try:
        Pipeline(vww_model, f"images:{photo_dir}").run()
        messages = []
        server.setblocking(False)
        while True:
            try:
                messages.append(server.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        server.close()
    assert messages[0].startswith("READY=1")
    assert messages[-1].startswith("STOPPING=1")
    assert messages.count("WATCHDOG=1") >= 1


def test_custom_finite_source_back_pressure_keeps_every_frame(vww_model, scene_images):
    class Slides(_Slides):
        scheme, queue_size, count = "test-slides", 2, 40

        def picture(self, i: int):
            return scene_images[(i + 1) % 2]

    register_source("test-slides", Slides)
    results = []
    summary = Pipeline(vww_model, "test-slides:", on_result=lambda r: (results.append(r), time.sleep(0.001))).run()
    assert summary.frames == 40 and summary.dropped == 0 and summary.max_queue <= 2
    assert [r.name for r in results] == [str(i) for i in range(40)]


def test_file_frames_read_ahead_report_their_own_latency_not_their_queue_wait(vww_model, photo_dir):
    # The consumer holds the first result for 2 s while the reader runs ahead: every later file waits
    # behind it. Its latency is its own read, decode, preprocess and inference, so it stays below
    # the hold, however slow the machine (a latency that counted the wait would exceed it).
    results, held = [], []

    def consume(result):
        results.append(result)
        if len(results) == 1:
            started = time.monotonic()
            time.sleep(2.0)
            held.append(1000 * (time.monotonic() - started))

    summary = Pipeline(vww_model, f"images:{photo_dir}", queue_size=8, prepare_threads=0, on_result=consume).run()
    assert summary.frames == 6 and summary.max_queue >= 3  # the reader ran ahead
    assert all(r.latency_ms > 0 for r in results)
    assert max(r.latency_ms for r in results[1:]) < held[0], ([r.latency_ms for r in results], held)


def _full_queue_with_a_blocked_reader():
    """A finite FrameQueue holding 0..3 and a reader thread blocked putting 4 (``done`` is set once it got in)."""
    from edgert.loop.pipeline import FrameQueue

    queue, stop = FrameQueue(4, drop_oldest=False), threading.Event()
    for i in range(4):
        assert queue.put(i, stop)
    done = threading.Event()
    reader = threading.Thread(target=lambda: queue.put(4, stop) and done.set())
    reader.start()
    return queue, done, reader


def test_frame_queue_back_pressure_keeps_order_and_refills_from_half():
    queue, done, reader = _full_queue_with_a_blocked_reader()
    assert queue.get(0) == 0
    # One free slot does not wake the reader (no thread switch per frame) ...
    assert not done.wait(0.3) and len(queue) == 3
    assert queue.get(0) == 1
    # ... draining to half does.
    assert done.wait(5.0)
    reader.join()
    assert [queue.get(0) for _ in range(4)] == [2, 3, 4, None]
    assert queue.dropped == 0 and queue.max_depth == 4


def test_frame_queue_live_mode_drops_oldest_and_close_releases_a_blocked_put():
    from edgert.loop.pipeline import FrameQueue

    live = FrameQueue(2, drop_oldest=True)
    for i in range(5):
        assert live.put(i, threading.Event())
    assert live.dropped == 3 and [live.get(0), live.get(0), live.get(0)] == [3, 4, None]
    finite, stop = FrameQueue(1, drop_oldest=False), threading.Event()
    assert finite.put("a", stop)
    result: list[bool] = []
    blocked = threading.Thread(target=lambda: result.append(finite.put("b", stop)))
    blocked.start()
    finite.close()
    blocked.join(2.0)
    assert result == [False] and finite.get(0) == "a"


def test_frame_queue_get_all_drains_in_order_and_wakes_the_reader():
    queue, done, reader = _full_queue_with_a_blocked_reader()
    assert queue.get_all(0) == [0, 1, 2, 3]  # one lock round for the whole queue ...
    assert done.wait(5.0)  # ... and the blocked reader refills at once
    reader.join()
    assert queue.get_all(0) == [4]
    started = time.monotonic()
    assert queue.get_all(0.2) == [] and time.monotonic() - started >= 0.15  # waited for the timeout
    queue.close()
    started = time.monotonic()
    assert queue.get_all(5.0) == [] and queue.finished and time.monotonic() - started < 5.0  # closed: not its timeout
