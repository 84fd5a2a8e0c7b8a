"""Reading and writing user files safely.

Nothing a user had is lost or half-written: every report, model, cache record
and generated source goes through :func:`atomic_write`. User arrays are read by
:func:`load_numpy`, which never unpickles and names what is wrong with a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "load_numpy"]

#: First bytes of the two NumPy file formats: .npy, and .npz (a zip archive).
_NUMPY_MAGIC = {b"\x93NUMPY": ".npy", b"PK\x03\x04": ".npz"}


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
        raise InputDataError(f"{path}: not a readable NumPy file ({str(e).splitlines()[0]})", "write it again with numpy.save") from None
    except (OSError, EOFError) as e:
        raise InputDataError(f"{path}: not a readable NumPy file ({e})", "write it again with numpy.save") from None
