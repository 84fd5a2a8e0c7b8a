"""JSON encoding of edgert results: one ``default=`` hook for ``json.dumps``.

Shared by the CLI's ``--json`` output and the report files the library writes,
so a result prints the same way wherever it goes.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["json_default"]


def json_default(value: Any) -> Any:
    """Turn what ``json`` cannot encode into what it can (``json.dumps(x, default=json_default)``).

    numpy scalars become Python numbers, arrays become lists, objects with
    ``to_dict()`` (edgert's result types) their dict, paths their string; anything
    else its ``str()``, so printing a result never fails on one odd field.
    """
    import numpy as np  # lazily: the CLI must start without paying for numpy

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)
