"""``edgert run``: the offline loop (edgert.loop)."""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

from edgert.commands import add_kernels_option, add_no_cache_option, finite_float, non_negative_int, positive_float, positive_int
from edgert.commands.output import emit
from edgert.model.metadata import TASKS

__all__ = ["register"]

_EPILOG = """\
sources (options with their defaults):
  camera:0  camera:/dev/video0[?width=&height=&fps=&stale=50]   live (USB/V4L2 camera through OpenCV)
  picamera2[:N][?width=640&height=480]                          live (Raspberry Pi CSI camera)
  video:clip.mp4   images:photos/   npy:inputs.npy              finite, every frame once, in order
  serial:/dev/ttyUSB0[?baud=115200&format=csv|binary&window=&hop=&columns=&dtype=float32&timeout=0.2]
  stdin[?format=csv|binary&window=&hop=&columns=&dtype=float32]
  (window: values per model input, default the input's size; hop: values between windows, default window;
   columns: values per csv line, default learned; dtype of binary samples: float32|int8|uint8|int16|int32;
   timeout: seconds a serial read waits for bytes)
  a '?' or '%' in a path is written %3F / %25; serial:PORT takes only these options unless PORT is a
  pyserial URL (rfc2217://, spy://, socket://, loop://)
sinks (options with their defaults):
  console[?rate=10 lines a second, 0 = all]   jsonl:PATH   csv:PATH   serial:PORT[?baud=115200&format=csv|json]
  snapshots:[DIR][?change=1&every=0&format=jpg|png]   (DIR defaults to ./snapshots)
  jsonl and csv append (a csv must start with this run's header); snapshots are saved when the
  result changes and every N-th frame (every=N, 0 = off) as new files RUNSTART_frame_N.jpg (UTC)
on exit (also on SIGINT/SIGTERM) prints: frames, dropped, fps, latency_ms{p50,p99}
  latency: live sources capture -> result; files: each frame's own read, decode, inference
exit status: 0 done; 1 the run stopped on an error or a sink lost results; 2 bad model, source, sink or option
"""


def register(sub, add_common) -> None:
    """Add ``edgert run``."""
    import argparse

    p = sub.add_parser(
        "run",
        help="run a model on a camera, video, images or a serial sensor, offline",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="path to a .tflite file")
    p.add_argument("--source", required=True, metavar="URL", help="where frames come from (see below)")
    p.add_argument("--sink", action="append", default=[], metavar="URL", help="where results go (repeatable; default: console)")
    p.add_argument("--max-frames", type=positive_int, default=None, metavar="N", help="stop after N predictions")
    p.add_argument("--top-k", type=positive_int, default=None, metavar="K", help="classes per result (classification)")
    p.add_argument("--threshold", type=finite_float, default=None, metavar="T",
                   help="score threshold, or the anomaly threshold for anomaly models")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="class names, one per line (for models without edgert metadata)")
    p.add_argument("--task", choices=TASKS, default=None,
                   help="postprocessing (default: from metadata, else from output shapes)")
    p.add_argument("--backend", default=None, help="interpreter backend: ai_edge_litert or tflite_runtime")
    p.add_argument("--threads", type=positive_int, default=None, help="interpreter threads")
    add_kernels_option(p)
    add_no_cache_option(p)
    p.add_argument("--queue", type=positive_int, default=None, metavar="N", help="frames buffered between capture and inference")
    p.add_argument("--opencv-shrink", action="store_true",
                   help="shrink camera/video frames with OpenCV INTER_AREA (faster; not bit-equal to edgert predict)")
    p.add_argument("--prepare-threads", type=non_negative_int, default=None, metavar="N",
                   help="threads decoding/preparing frames of a video or image folder side by side "
                   "(default: one per core but two, at most 3; 0: on the capture thread)")
    p.add_argument("--stall-timeout", type=positive_float, default=5.0, metavar="S",
                   help="seconds a live source's read may hang before the device is reset and reopened with back-off "
                   "(default 5; a quiet serial sensor is simply waited for)")
    add_common(p)
    p.set_defaults(handler=_run)


@contextmanager
def _stop_on_signals(stop):
    """SIGINT/SIGTERM call ``stop()`` instead of killing the process, so the summary is printed."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args) -> int:
    from edgert.loop import Pipeline, open_sink
    from edgert.model import read_labels
    from edgert.runtime import load_model

    labels = read_labels(args.labels) if args.labels else None
    model = load_model(args.model, backend=args.backend, threads=args.threads, kernels=args.kernels,
                       use_cache=not args.no_cache)
    sinks = []
    try:
        for url in args.sink or ["console"]:
            # stdout carries exactly one JSON object with --json: console lines go to stderr then.
            extra = {"stream": sys.stderr} if args.json and url.strip().lower().startswith("console") else {}
            sinks.append(open_sink(url, **extra))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    pipeline = Pipeline(
        model,
        args.source,
        sinks,
        task=args.task,
        top_k=args.top_k,
        threshold=args.threshold,
        labels=labels,
        max_frames=args.max_frames,
        queue_size=args.queue,
        stall_timeout=args.stall_timeout,
        opencv_shrink=args.opencv_shrink,
        prepare_threads=args.prepare_threads,
    )
    with _stop_on_signals(pipeline.stop):
        summary = pipeline.run()
    emit(args, summary.to_dict(), lambda _: summary.text())
    # Lost results are a failure, so a supervisor (systemd Restart=on-failure) sees it.
    return 1 if summary.stopped_by == "error" or summary.sink_errors else 0
