"""Sensor framing (pure bytes -> windows), URL option splitting and checking, and how sources name themselves."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.loop import open_sink, open_source
from edgert.loop.sources import StdinSource
from edgert.loop.urls import parse_url
from edgert.loop.windows import RELEARN_AFTER, WindowAssembler, parse_csv_line

pytestmark = pytest.mark.runtime


def _stream(rows) -> bytes:
    return b"".join((",".join(str(v) for v in row) + "\n").encode() for row in rows)


def test_windows_do_not_depend_on_how_the_driver_splits_bytes():
    rows = np.arange(60, dtype=np.float32).reshape(20, 3)
    data = _stream(rows.tolist())
    whole = WindowAssembler(window=12, hop=3).feed(data)
    pieces = WindowAssembler(window=12, hop=3)
    split = []
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(data):
        step = int(rng.integers(1, 17))
        split += pieces.feed(data[pos : pos + step])
        pos += step
    assert len(whole) == len(split) == (60 - 12) // 3 + 1
    for a, b in zip(whole, split, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(whole[1], np.arange(3, 15, dtype=np.float32))  # slides one line (3 values)


def test_malformed_lines_are_skipped_and_counted_never_raised():
    asm = WindowAssembler(window=4)
    data = b"# banner from the board\n\n1,2\nhello\n3,4\n5,6,7\nnan,1\n1e400,2\n\xff\xfe\n7;8\n"
    windows = asm.feed(data)
    # good lines: 1,2 / 3,4 / 7;8 -> 6 values -> one window of 4
    assert [w.tolist() for w in windows] == [[1, 2, 3, 4]]
    assert asm.stats.malformed == 5  # hello, 5,6,7 (columns), nan, inf, binary junk
    assert asm.stats.lines == 3


def test_overlong_garbage_without_newline_is_dropped():
    asm = WindowAssembler(window=2)
    assert asm.feed(b"9" * 70000) == []
    assert asm.stats.malformed == 1
    # The rest of that line, up to its newline, is dropped with it (not read as a line of its own).
    assert [w.tolist() for w in asm.feed(b"99\n1\n2\n")] == [[1, 2]]
    assert asm.stats.malformed == 1


def test_hop_larger_than_window_skips_values():
    asm = WindowAssembler(window=2, hop=5, columns=1)
    windows = asm.feed(_stream([[i] for i in range(12)]))
    assert [w.tolist() for w in windows] == [[0, 1], [5, 6], [10, 11]]


def test_binary_int16_samples():
    asm = WindowAssembler(window=4, fmt="binary", dtype="int16")
    raw = np.arange(-4, 6, dtype="<i2").tobytes()
    windows = asm.feed(raw[:7]) + asm.feed(raw[7:])
    assert [w.tolist() for w in windows] == [[-4, -3, -2, -1], [0, 1, 2, 3]]


def test_reset_drops_the_torn_first_line_after_a_reconnect():
    asm = WindowAssembler(window=2, columns=1)
    asm.feed(b"1\n")
    asm.reset()
    assert [w.tolist() for w in asm.feed(b"23\n4\n5\n")] == [[4, 5]]


def test_parse_csv_line():
    assert parse_csv_line(b" 1.5, -2 ;3\t4\r\n") == [1.5, -2.0, 3.0, 4.0]
    assert parse_csv_line(b"x,1") is None
    assert parse_csv_line(b"") == []


def test_serial_url_keeps_pyserial_options_on_the_port():
    parsed = parse_url("serial:spy:///dev/ttyUSB0?file=log.txt&baud=9600&window=640", {"baud", "window"}, passthrough=True)
    assert parsed.scheme == "serial"
    assert parsed.target == "spy:///dev/ttyUSB0?file=log.txt"
    assert parsed.options == {"baud": "9600", "window": "640"}
    plain = parse_url("serial:/dev/ttyACM0", {"baud"}, passthrough=True)
    assert plain.target == "/dev/ttyACM0" and plain.options == {}


def test_unknown_option_is_rejected_for_file_sources():
    with pytest.raises(InputDataError, match="unknown option 'fps'"):
        parse_url("video:clip.mp4?fps=3", set())


# ---- a column count learned from the data ---------------------------------------------
def test_a_line_torn_by_opening_the_port_mid_line_does_not_set_the_column_count():
    asm = WindowAssembler(window=6)
    windows = asm.feed(b"5,6\n1,2,3\n4,5,6\n7,8,9\n")
    # "5,6" is the tail of a line: malformed. "1,2,3" waited for "4,5,6" to confirm its count, then was kept.
    assert [w.tolist() for w in windows] == [[1, 2, 3, 4, 5, 6]]
    assert (asm.columns, asm.stats.malformed, asm.stats.lines) == (3, 1, 3)


def test_reset_forgets_a_learned_column_count_and_keeps_a_given_one():
    learned = WindowAssembler(window=4)
    learned.feed(b"1,2\n3,4\n")
    learned.reset()  # the board came back with another firmware: 3 values a line
    assert [w.tolist() for w in learned.feed(b"9\n1,2,3\n4,5,6\n7,8,9\n")] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert learned.stats.malformed == 0  # "9", the torn first line after the reconnect, is dropped uncounted
    given = WindowAssembler(window=4, columns=2)
    given.reset()
    given.feed(b"torn\n1,2,3\n")
    assert given.columns == 2 and given.stats.malformed == 1


def test_a_learned_count_gives_way_to_a_long_run_of_another_one(caplog):
    asm = WindowAssembler(window=6)
    assert len(asm.feed(b"1,2\n" * 3)) == 1
    # A good line inside the run of 3-value lines starts the count again: no relearning.
    asm.feed(b"7,8,9\n" * (RELEARN_AFTER - 1) + b"0,0\n" + b"7,8,9\n" * (RELEARN_AFTER - 1))
    assert asm.columns == 2 and asm.stats.malformed == 2 * (RELEARN_AFTER - 1)
    windows = asm.feed(b"7,8,9\n" * 2)
    assert asm.columns == 3 and [w.tolist() for w in windows] == [[7, 8, 9, 7, 8, 9]]  # the "0,0" half-window was dropped
    assert [r.getMessage() for r in caplog.records] == [
        "sensor lines now have 3 values, not 2: windows restart from here (columns= pins a count)"
    ]
    pinned = WindowAssembler(window=6, columns=2)
    pinned.feed(b"7,8,9\n" * 3 * RELEARN_AFTER)
    assert pinned.columns == 2 and pinned.stats.malformed == 3 * RELEARN_AFTER


def test_a_lone_line_at_the_end_of_a_stream_is_a_whole_input():
    asm = WindowAssembler(window=3)
    assert asm.feed(b"1,2,3\n") == []  # held: a second line would confirm its count
    assert [w.tolist() for w in asm.finish()] == [[1, 2, 3]]


def test_diagnosis_says_why_a_stream_gave_no_window_and_the_fix():
    wrong_columns = WindowAssembler(window=640, columns=128)
    wrong_columns.feed(b"1,2,3\n" * 5)
    assert wrong_columns.diagnosis() == (
        "all 5 lines were malformed: lines have 3 values, not columns=128; set columns=3 or check baud= and format="
    )
    garbled = WindowAssembler(window=4)  # a wrong baud rate
    garbled.feed(b"\xf0\x8c\x11\xe0\n" * 3)
    assert garbled.diagnosis() == (
        "all 3 lines were malformed: most are not numbers; "
        "check baud= (a wrong rate garbles text) and format= (binary for raw samples)"
    )
    ragged = WindowAssembler(window=640)
    ragged.feed(b"1,2\n1,2,3\n1\n")
    # "1" still waits for a second line
    assert ragged.diagnosis().startswith("all 2 lines were malformed: lines have 2, 3 values, never one count twice in a row")
    short = WindowAssembler(window=27648)
    short.feed(b"1 2 3\n4 5 6\n")
    short.finish()
    assert short.diagnosis() is None  # a live stream may still fill the window
    assert short.diagnosis(ended=True) == "ended after 6 values, a window needs 27648; send at least one whole model input"
    fine = WindowAssembler(window=2)
    fine.feed(b"x\n1\n2\n")
    assert fine.diagnosis(ended=True) is None


# ---- URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "serial:{pty}?timeout=nan", "serial:{pty}?timeout=0", "serial:{pty}?timeout=inf", "serial:{pty}?baud=0",
    "serial:{pty}?baud=-9600", "serial:{pty}?window=0", "serial:{pty}?hop=-1", "serial:{pty}?columns=0",
    "stdin?window=0", "camera:0?fps=nan", "camera:0?fps=0", "camera:0?width=0", "camera:0?stale=1", "picamera2?height=-1",
])
def test_numeric_source_options_refuse_zero_negative_and_nan(url, pty_pair):
    with pytest.raises(InputDataError) as err:
        open_source(url.format(pty=pty_pair.name))
    assert re.fullmatch(r"\w+: option \w+=\S+ (must be at least [\d.]+|is not a finite number)", str(err.value))


@pytest.mark.parametrize("url", ["console?rate=nan", "console?rate=-1", "snapshots:{tmp}?every=-1", "serial:{pty}?baud=0"])
def test_numeric_sink_options_refuse_negative_and_nan(url, pty_pair, tmp_path):
    with pytest.raises(InputDataError, match=r"^\w+: option \w+=\S+ (must be at least|is not a finite number)"):
        open_sink(url.format(pty=pty_pair.name, tmp=tmp_path))


def test_a_question_mark_or_percent_in_a_path_is_percent_encoded(tmp_path):
    from PIL import Image

    folder = tmp_path / "what?100%"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "a.png")
    source = open_source(f"images:{tmp_path}/what%3F100%25")
    assert source.folder == folder and len(source) == 1
    np.save(tmp_path / "clip?.npy", np.zeros((2, 3), np.float32))
    assert open_source(f"npy:{tmp_path}/clip%3F.npy").path.name == "clip?.npy"
    with pytest.raises(InputDataError, match=r"unknown option 'dir/'.*write a '\?' in a path as %3F"):
        open_source(f"images:{tmp_path}/what?dir/")
    with pytest.raises(InputDataError, match=r"unknown option '.mp4'"):
        open_source(f"video:{tmp_path}/clip?.mp4")


def test_a_serial_device_path_refuses_unknown_options_and_a_pyserial_url_keeps_its_own(pty_pair):
    for opener in (open_source, open_sink):
        with pytest.raises(InputDataError, match=r"serial: unknown option 'frob'.*options for serial: baud"):
            opener(f"serial:{pty_pair.name}?frob=1")
    # pyserial's loop:// reads back what is written; logging= is its own option, baud= and window= are ours.
    source = open_source("serial:loop://?logging=warning&baud=9600&window=4")
    try:
        assert source.port == "loop://?logging=warning" and source.baud == 9600
        source._ser.write(b"1,2\n3,4\n")
        frame = None
        for _ in range(20):  # each read waits at most the read timeout for bytes
            frame = source.read()
            if frame is not None:
                break
        assert frame.data.tolist() == [1, 2, 3, 4]
    finally:
        source.close()


def test_sources_describe_themselves_readably(pty_pair, tmp_path):
    stdin = StdinSource(parse_url("stdin:?format=csv&hop=128", StdinSource.options), stream=io.BytesIO())
    assert stdin.describe() == "stdin (format=csv, hop=128)"
    serial = open_source(f"serial:{pty_pair.name}?baud=9600&hop=128")
    try:
        assert serial.describe() == f"serial {pty_pair.name} (baud=9600, hop=128)"
    finally:
        serial.close()
    np.save(tmp_path / "clip?.npy", np.zeros((2, 3), np.float32))
    assert open_source(f"npy:{tmp_path}/clip%3F.npy").describe() == f"npy {tmp_path}/clip?.npy"
