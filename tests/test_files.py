"""edgert.files: what users' files look like after edgert wrote them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from edgert.files import atomic_write, exclusive_lock, write_new_file

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


def test_exclusive_lock_excludes_another_process_until_released(tmp_path):
    """Another process cannot take the lock while the block runs, and can once it has left (no timing involved)."""
    lock = tmp_path / "cache" / "lib.lock"
    probe = ("import fcntl, sys\n"
             "with open(sys.argv[1], 'a') as f:\n"
             "    try:\n"
             "        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    except BlockingIOError:\n"
             "        print('held')\n"
             "    else:\n"
             "        print('free')\n")

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True, text=True,
                              check=True).stdout.strip()

    with exclusive_lock(lock):
        assert other_process() == "held"
    assert other_process() == "free"
