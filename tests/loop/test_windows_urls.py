"""Sensor framing (pure bytes -> windows) and URL option splitting."""

from __future__ import annotations

import numpy as np
import pytest

from edgert.errors import InputDataError
from edgert.loop.urls import parse_url
from edgert.loop.windows import WindowAssembler, parse_csv_line

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
    for a, b in zip(whole, split):
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
    assert [w.tolist() for w in asm.feed(b"\n1\n2\n")] == [[1, 2]]


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
