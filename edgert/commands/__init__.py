"""Subcommand registrations for :mod:`edgert.cli`, one module per area.

Each module has ``register(subparsers, add_common)`` that adds its subcommands
and sets ``handler`` to a function ``(args) -> exit code``. Handlers parse
options, make one library call, and print through :func:`edgert.commands.output.emit`.

The argparse ``type=`` helpers below are shared by every area's options, so a
bad number is the same one-line usage error (exit 2) on every subcommand.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "add_input_shape_option",
    "add_kernels_option",
    "add_no_cache_option",
    "choice_list",
    "float_list",
    "positive_int",
    "non_negative_int",
    "finite_float",
    "positive_float",
    "non_negative_float",
    "open_fraction",
    "unit_fraction",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _checked(parse: Callable[[str], Any], ok: Callable[[Any], bool], rule: str, doc: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``parse`` the text, then refuse values outside ``rule`` in one line."""

    def check(text: str):
        value = parse(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    check.__doc__ = doc
    return check


positive_int = _checked(_int, lambda v: v >= 1, "must be at least 1", "``type=`` for counts and sizes that must be at least 1.")
non_negative_int = _checked(_int, lambda v: v >= 0, "must be 0 or more", "``type=`` for counts where 0 means none (or off).")
finite_float = _checked(_float, lambda v: True, "", "``type=`` for a number that may take any finite value (not nan, not inf).")
positive_float = _checked(_float, lambda v: v > 0, "must be above 0",
                          "``type=`` for durations, capacities, temperatures: above 0.")
non_negative_float = _checked(_float, lambda v: v >= 0, "must be 0 or more", "``type=`` for budgets where 0 means none allowed.")
open_fraction = _checked(_float, lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)",
                         "``type=`` for a share strictly between 0 and 1 (a held-out part of the data).")
unit_fraction = _checked(_float, lambda v: 0 <= v <= 1, "must be from 0 to 1", "``type=`` for a weight from 0 to 1 inclusive.")


def float_list(text: str) -> list[float]:
    """``type=`` for ``"0.5,0.75"``; ``"none"``, ``"off"`` or empty gives ``[]``."""
    if text.strip().lower() in ("", "none", "off"):
        return []
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}") from None


def choice_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """``type=`` for ``"int8,float16"``: each item one of ``choices``; an unknown one is a one-line usage error."""

    def parse(text: str) -> list[str]:
        items = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad) or 'empty list'}; choose from {','.join(choices)}")
        return items

    parse.__doc__ = f"comma-separated subset of {', '.join(choices)}"
    return parse


def input_shape(text: str) -> tuple[int, ...] | None:
    """``--input-shape`` N,C,H,W (the convert package is imported only when the option is used)."""
    from edgert.convert.layout import parse_input_shape

    return parse_input_shape(text)


def add_input_shape_option(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--input-shape``: the input shape with the batch, for ONNX/.pt2 models with dynamic dimensions."""
    parser.add_argument("--input-shape", metavar="N,C,H,W", type=input_shape,
                        help=f"{what}input shape with the batch, in the model's own layout "
                        "(fixes dynamic ONNX/.pt2 dimensions)")


def add_no_cache_option(parser: argparse.ArgumentParser) -> None:
    """``--no-cache``: check a foreign model in a child process again and remember nothing."""
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="check the model in a child process even if it was checked before, and remember nothing "
        "(forget everything: edgert cache clear)",
    )


def add_kernels_option(parser: argparse.ArgumentParser) -> None:
    """``--kernels``: which kernel set the interpreter runs (predict, bench, run)."""
    parser.add_argument(
        "--kernels",
        choices=("auto", "builtin", "reference"),
        default="auto",
        help="auto: the backend's (XNNPACK); builtin: without XNNPACK, the same results on every backend; "
        "reference: TFLite's reference kernels (slow; for checking a kernel)",
    )
