"""File sinks never lose what a user had: snapshots never overwrite, CSV refuses a foreign header,
JSONL never glues a record onto a cut-off line, and unwritable folders fail at start."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgert.cli import main
from edgert.errors import InputDataError
from edgert.loop import Anomaly, Class, Frame, Pipeline, Result, open_sink
from tests.helpers import user_error_line
from tests.loop.conftest import VWW_INT8

pytestmark = pytest.mark.runtime

CLASSIFICATION_HEADER = "frame,name,time,latency_ms,id,label,score,top_k"


def _picture(shade: int = 0) -> Frame:
    return Frame(np.full((32, 48, 3), shade, np.uint8), "image", "rgb", name="pic.png")


def _classified(frame: int, class_id: int = 1) -> Result:
    return Result(frame, "pic.png", "classification", 1.0, classes=[Class(class_id, 0.9, "person")], time=1.0)


def _anomaly(frame: int) -> Result:
    return Result(frame, "window 0", "anomaly", 1.0, anomaly=Anomaly(0.25, 0.5, False), time=1.0)


def _images(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


# ---- snapshots: never overwrite ----------------------------------------------------------
def test_a_second_run_into_the_same_snapshot_folder_keeps_the_first_runs_pictures(vww_model, scene_images, tmp_path):
    np.save(tmp_path / "pics.npy", np.stack(scene_images))
    shots = tmp_path / "shots"
    Pipeline(vww_model, f"npy:{tmp_path / 'pics.npy'}", [f"snapshots:{shots}?every=1"]).run()
    first = _images(shots)
    assert len(first) == 2
    # Restart=on-failure: the same unit, the same folder, frame numbers from 0 again (often within the same second).
    Pipeline(vww_model, f"npy:{tmp_path / 'pics.npy'}", [f"snapshots:{shots}?every=1"]).run()
    after = _images(shots)
    assert len(after) == 4
    assert {name: after[name] for name in first} == first


def test_snapshot_names_sort_by_run_and_frame_and_a_taken_name_gets_a_suffix(tmp_path):
    (tmp_path / "frame_00000000.jpg").write_bytes(b"from an older edgert")
    sink = open_sink(f"snapshots:{tmp_path}?every=1")
    assert len(sink.run_id) == len("20261125-214300") and sink.run_id[8] == "-"
    taken = tmp_path / f"{sink.run_id}_frame_00000000.jpg"
    taken.write_bytes(b"another run started in the same second")
    sink.write(_classified(0), _picture())
    sink.write(_classified(1), _picture())
    assert set(_images(tmp_path)) == {"frame_00000000.jpg", taken.name, f"{sink.run_id}_frame_00000000-1.jpg",
                                      f"{sink.run_id}_frame_00000001.jpg"}
    assert taken.read_bytes() == b"another run started in the same second"
    assert (tmp_path / "frame_00000000.jpg").read_bytes() == b"from an older edgert"
    with Image.open(tmp_path / f"{sink.run_id}_frame_00000000-1.jpg") as img:
        assert img.size == (48, 32) and img.format == "JPEG"
    assert sink.saved == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_snapshots_on_a_filesystem_without_hard_links_still_never_overwrite(tmp_path, monkeypatch):
    def no_links(src, dst):  # what vfat/exFAT (USB sticks, SD cards) answer
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    sink = open_sink(f"snapshots:{tmp_path}?every=1&format=png")
    taken = tmp_path / f"{sink.run_id}_frame_00000000.png"
    taken.write_bytes(b"keep me")
    sink.write(_classified(0), _picture())
    assert taken.read_bytes() == b"keep me"
    with Image.open(tmp_path / f"{sink.run_id}_frame_00000000-1.png") as img:
        assert img.format == "PNG"
    assert set(_images(tmp_path)) == {taken.name, f"{sink.run_id}_frame_00000000-1.png"}


def test_snapshot_options_every_change_and_format_still_apply(tmp_path):
    sink = open_sink(f"snapshots:{tmp_path}?every=3&format=png")
    for i, class_id in enumerate([0, 0, 0, 0, 1, 1, 1]):  # changes at 0 and 4, every 3rd at 0, 3, 6
        sink.write(_classified(i, class_id), _picture(i))
    assert sorted(_images(tmp_path)) == [f"{sink.run_id}_frame_{i:08d}.png" for i in (0, 3, 4, 6)]
    quiet = open_sink(f"snapshots:{tmp_path / 'q'}?change=0")
    for i in range(3):
        quiet.write(_classified(i, i), _picture())
    assert quiet.saved == 0 and not _images(tmp_path / "q")


def test_snapshots_without_a_folder_go_to_snapshots_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = open_sink("snapshots:")
    sink.write(_classified(0), _picture())
    assert list(_images(tmp_path / "snapshots")) == [f"{sink.run_id}_frame_00000000.jpg"]


# ---- snapshots: fail at start, warn once -------------------------------------------------
@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs")
def test_snapshot_folder_that_exists_but_takes_no_files_fails_at_open():
    # sysfs refuses new files even to root: the same as a read-only folder, on any runner.
    with pytest.raises(InputDataError, match=r"^snapshots: cannot write /sys/kernel: .* \(choose a folder you can write") as info:
        open_sink("snapshots:/sys/kernel")
    assert "\n" not in str(info.value)


def test_unwritable_snapshot_folder_exits_2_like_jsonl_and_csv(scene_images, tmp_path, capsys):
    Image.fromarray(scene_images[0]).save(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    blocked = tmp_path / "file"
    for url in (f"snapshots:{blocked / 'sub'}", f"jsonl:{blocked / 'x.jsonl'}", f"csv:{blocked / 'x.csv'}"):
        assert main(["run", str(VWW_INT8), "--source", f"images:{tmp_path}", "--sink", url]) == 2
        line = user_error_line(capsys, alone=False)
        assert f"cannot write {tmp_path / 'file'}" in line and "you can write)" in line, line


def test_snapshots_of_sensor_windows_warn_once_and_save_nothing(ad01_model, ad01_frames, tmp_path, caplog):
    np.save(tmp_path / "w.npy", np.stack([ad01_frames[i : i + 5].reshape(640) for i in range(0, 15, 5)]))
    shots = tmp_path / "shots"
    with caplog.at_level(logging.WARNING, logger="edgert.loop.sinks"):
        summary = Pipeline(ad01_model, f"npy:{tmp_path / 'w.npy'}", [f"snapshots:{shots}?every=1"]).run()
    assert summary.frames == 3 and not summary.sink_errors
    warnings = [r.getMessage() for r in caplog.records if r.name == "edgert.loop.sinks"]
    assert warnings == ["snapshots: frames from w.npy[0] are not images; nothing will be saved"]
    assert not _images(shots)


# ---- csv: one header per file ------------------------------------------------------------
def test_csv_refuses_at_open_a_file_that_starts_with_another_header(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("precious,data\n1,2\n")
    with pytest.raises(InputDataError, match=r"^csv: .*out\.csv .*precious,data.*another csv: path.*move") as info:
        open_sink(f"csv:{path}")
    assert "\n" not in str(info.value)
    assert path.read_text() == "precious,data\n1,2\n"


def test_csv_of_a_classification_run_refuses_anomaly_rows(ad01_model, ad01_frames, tmp_path):
    path = tmp_path / "out.csv"
    earlier = CLASSIFICATION_HEADER + "\n0,a.png,1.000,2.000,1,person,0.900000,person:0.9000\n"
    path.write_text(earlier)
    np.save(tmp_path / "w.npy", ad01_frames[:10].reshape(2, 640))
    # Refused when the loop is set up, before the first frame: nothing lands under the wrong columns.
    with pytest.raises(InputDataError, match="holds classification rows; this run writes anomaly rows"):
        Pipeline(ad01_model, f"npy:{tmp_path / 'w.npy'}", [f"csv:{path}"])
    assert path.read_text() == earlier
    # A sink used on its own refuses every write of another task (the sink starts itself on the first result).
    sink = open_sink(f"csv:{path}")
    with pytest.raises(InputDataError, match="holds classification rows"):
        sink.write(_anomaly(0), None)
    assert path.read_text() == earlier
    sink.close()
    sink = open_sink(f"csv:{path}")
    with pytest.raises(InputDataError,
                       match=r"^csv: .*out\.csv holds classification rows; this run writes anomaly rows \(.*move"):
        sink.start("anomaly")
    sink.start("classification")
    sink.close()


def test_csv_appends_rows_of_the_same_task_under_the_one_header(tmp_path):
    path = tmp_path / "out.csv"
    for _ in range(2):
        sink = open_sink(f"csv:{path}")
        sink.write(_classified(0), _picture())
        sink.close()
    rows = path.read_text().splitlines()
    assert rows[0] == CLASSIFICATION_HEADER and len(rows) == 3 and rows[1] == rows[2]


# ---- jsonl: never glue onto a cut-off line -----------------------------------------------
@pytest.mark.parametrize("scheme", ["jsonl", "csv"])
def test_append_after_a_cut_off_last_line_starts_a_new_line(scheme, tmp_path):
    path = tmp_path / f"out.{scheme}"
    earlier = '{"frame":0}\n{"frame":1,"na' if scheme == "jsonl" else CLASSIFICATION_HEADER + "\n0,a.png,1.0"
    path.write_text(earlier)
    sink = open_sink(f"{scheme}:{path}")
    sink.write(_classified(7), _picture())
    sink.write(_classified(8), _picture())
    sink.close()
    text = path.read_text()
    assert text.startswith(earlier + "\n")
    new = text[len(earlier) + 1 :].splitlines()
    assert len(new) == 2
    if scheme == "jsonl":
        assert [json.loads(line)["frame"] for line in new] == [7, 8]
    else:
        assert [row.split(",")[0] for row in new] == ["7", "8"]


def test_jsonl_append_to_a_complete_file_adds_no_blank_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"earlier":"run"}\n')
    sink = open_sink(f"jsonl:{path}")
    sink.write(_anomaly(0), _picture())
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["anomaly"]["score"] == 0.25


def test_csv_saved_by_a_spreadsheet_with_bom_and_crlf_is_still_ours(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CLASSIFICATION_HEADER.encode() + b"\r\n")
    sink = open_sink(f"csv:{path}")
    sink.write(_classified(3), _picture())
    sink.close()
    assert path.read_bytes().decode("utf-8-sig").splitlines()[1].startswith("3,pic.png,")


def test_snapshots_into_a_file_says_it_is_not_a_folder(tmp_path):
    (tmp_path / "shots").write_text("a file")
    with pytest.raises(InputDataError, match=r"shots is a file, not a folder \(choose a folder"):
        open_sink(f"snapshots:{tmp_path / 'shots'}")
