"""Reading and writing user files safely.

Nothing a user had is lost or half-written: every report, model, cache record
and generated source goes through :func:`atomic_write`; files that must never
replace another (snapshots of a loop that restarts) through :func:`write_new_file`. User arrays are read by
:func:`load_numpy`, which never unpickles and names what is wrong with a file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "write_new_file", "load_numpy", "exclusive_lock"]

#: First bytes of the two NumPy file formats: .npy, and .npz (a zip archive).
_NUMPY_MAGIC = {b"\x93NUMPY": ".npy", b"PK\x03\x04": ".npz"}


def _temporary_file(folder: Path, name: str) -> tuple[int, str]:
    """A new hidden file ``folder/.name.XXXX.tmp`` opened for writing: ``(fd, path)``.

    Unlike ``tempfile.mkstemp`` (always 0600) it gets the permissions any new
    file gets (0666 less the umask), so what it becomes is readable as usual.
    """
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Replace ``path`` with ``data`` atomically (temporary file in the same directory + rename).

    A reader sees either the old file or the complete new one, never a partial
    write, and an interrupted write leaves the old file untouched. Missing
    parent directories are created.

    Returns:
        The path written.

    Raises:
        OSError: the directory cannot be created or written (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = _temporary_file(path.parent, path.name)
    try:
        try:  # a replaced file keeps its permissions
            os.fchmod(fd, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


#: ``os.link`` errors of filesystems without hard links (vfat/exFAT USB sticks and SD cards, some FUSE).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
#: Numbered variants (``-1``, ``-2``, ...) tried when a snapshot's name is taken.
_MAX_VARIANTS = 1000


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created when missing) for the ``with`` block.

    Another process (or test worker) asking for the same lock waits until this one leaves: use it
    around "build it unless it is cached" so the work is done once. The lock dies with its process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _claim(tmp: str, final: Path) -> bool:
    """Give the complete file ``tmp`` the name ``final`` unless that name exists (then False); never replaces."""
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
    # No hard links here: reserve the name exclusively, then rename the complete file over our own
    # reservation (the empty placeholder is visible only between these two calls).
    try:
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    try:
        os.replace(tmp, final)
    except OSError:
        final.unlink(missing_ok=True)
        raise
    return True


def write_new_file(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write ``data`` to a new file ``folder/{stem}{suffix}`` (``{stem}-1{suffix}``, ... when taken); returns its path.

    Unlike :func:`atomic_write` this never replaces a file: the
    bytes go to a temporary file in ``folder`` that is then linked under the
    first free name (``O_EXCL`` semantics), so neither an existing file nor a
    concurrent writer is overwritten, and no reader sees a partial file. No
    fsync: on an SD card it would stall the loop for every picture.

    Raises:
        OSError: ``folder`` cannot be written, or every variant of the name is taken.
    """
    fd, tmp = _temporary_file(folder, stem)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        for n in range(_MAX_VARIANTS):
            final = folder / f"{stem}{f'-{n}' if n else ''}{suffix}"
            if _claim(tmp, final):
                return final
        raise FileExistsError(errno.EEXIST, f"{stem}{suffix} and {_MAX_VARIANTS - 1} numbered variants exist", str(folder))
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_numpy(path: str | Path, expect: str, *, mmap: bool = False):
    """A user's ``.npy`` array or ``.npz`` archive, never unpickled (pickles can run code).

    Args:
        path: The file.
        expect: ``".npy"`` (one array) or ``".npz"`` (an archive of arrays).
        mmap: Map a ``.npy`` read-only instead of reading it whole.

    Returns:
        An ``ndarray`` (.npy) or an ``NpzFile`` (.npz; use it as a context manager).

    Raises:
        InputDataError: Not a NumPy file, the other NumPy format, truncated, or
            holding Python objects.
    """
    import numpy as np

    from edgert.errors import InputDataError

    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise InputDataError(f"{path}: cannot read it ({e.strerror or e})", "check the path and its permissions") from None
    writer = {".npy": "numpy.save", ".npz": "numpy.savez"}[expect]
    found = next((kind for magic, kind in _NUMPY_MAGIC.items() if head.startswith(magic)), None)
    if found is None:
        raise InputDataError(f"{path}: not a NumPy {expect} file (no NumPy header)", f"write it with {writer}")
    if found != expect:
        raise InputDataError(f"{path}: is a {found} file where a {expect} is needed", f"write it with {writer}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):
            raise InputDataError(f"{path}: holds Python objects (pickled), which edgert never loads",
                                 "save a numeric array, e.g. numpy.save(path, numpy.asarray(x, numpy.float32))") from None
        raise InputDataError(f"{path}: not a readable NumPy file ({str(e).splitlines()[0]})",
                             "write it again with numpy.save") from None
    except (OSError, EOFError) as e:
        raise InputDataError(f"{path}: not a readable NumPy file ({e})", "write it again with numpy.save") from None
