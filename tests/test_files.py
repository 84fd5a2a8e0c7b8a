"""edgert.files: what users' files look like after edgert wrote them."""

from __future__ import annotations

import os
import stat

import pytest

from edgert.files import atomic_write, write_new_file

pytestmark = pytest.mark.runtime


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_get_the_usual_permissions_not_private_temp_ones(tmp_path, umask_022):
    # Reports, models and snapshots are read by others (a web server, another user): 0644 under umask 022.
    assert _mode(atomic_write(tmp_path / "report.json", "{}")) == 0o644
    assert _mode(write_new_file(tmp_path, "shot", ".jpg", b"jpeg")) == 0o644


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask_022):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]  # no temporary file left


def test_write_new_file_never_replaces(tmp_path):
    first = write_new_file(tmp_path, "shot", ".jpg", b"one")
    second = write_new_file(tmp_path, "shot", ".jpg", b"two")
    assert (first.name, second.name) == ("shot.jpg", "shot-1.jpg")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
