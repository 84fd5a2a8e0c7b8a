"""Byte sizes for people: the one formatter every report, table and message uses."""

from __future__ import annotations

__all__ = ["format_bytes"]

_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def format_bytes(n: int | float | None, *, exact: bool = False, missing: str = "-") -> str:
    """``n`` bytes in the largest binary unit it reaches: ``"1.5 KiB"``, ``"2.00 MiB"``, ``"512 B"``.

    Args:
        n: A byte count; None (not measured) gives ``missing``.
        exact: Print the number as short as it is exact (``"256 KiB"`` for a profile's RAM)
            instead of with fixed decimals (``"255.9 KiB"`` for a measured size).
        missing: Text for None.
    """
    if n is None:
        return missing
    if not isinstance(n, (int, float)):
        return str(n)
    for unit, div in _UNITS:
        if n >= div:
            if exact:
                return f"{n / div:g} {unit}"
            return f"{n / div:.2f} {unit}" if div > 2**10 else f"{n / div:.1f} {unit}"
    return f"{int(n)} B"
