"""The offline runtime loop: camera, video, images and serial sensors in, local predictions out.

``Pipeline(model, source, sinks).run()`` reads frames from a source (looked up
by URL scheme: ``camera:0``, ``video:clip.mp4``, ``images:dir/``, ``npy:x.npy``,
``serial:/dev/ttyUSB0?...``, ``stdin``, ``picamera2``), prepares each one for
the model, runs it, turns the outputs into results and hands them to sinks
(``console``, ``jsonl:``, ``csv:``, ``snapshots:``, ``serial:``). Add your own
with :func:`register_source` / :func:`register_sink`.

Imports on a Raspberry Pi with only tflite-runtime, numpy, Pillow and pyserial:
OpenCV is imported only by the sources that need it; nothing opens a network socket.
"""

from edgert.loop.pipeline import FrameQueue, Pipeline, RunSummary
from edgert.loop.postprocess import Anomaly, BBox, Class, Object, Postprocessor, Result, infer_task
from edgert.loop.sinks import Sink, open_sink, register_sink, sink_schemes
from edgert.loop.sources import EndOfSource, Frame, Source, SourceLost, open_source, register_source, source_schemes
from edgert.loop.systemd import SystemdNotifier
from edgert.loop.windows import WindowAssembler

__all__ = [
    "Anomaly",
    "BBox",
    "Class",
    "EndOfSource",
    "Frame",
    "FrameQueue",
    "Object",
    "Pipeline",
    "Postprocessor",
    "Result",
    "RunSummary",
    "Sink",
    "Source",
    "SourceLost",
    "SystemdNotifier",
    "WindowAssembler",
    "infer_task",
    "open_sink",
    "open_source",
    "register_sink",
    "register_source",
    "sink_schemes",
    "source_schemes",
]
