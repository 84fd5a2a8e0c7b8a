"""Loading target profiles: what a device can hold and run, from ``targets/*.toml``.

Profiles are data. The ones shipped with edgert are installed as package data
(``edgert.target_profiles``, read with :mod:`importlib.resources`, never from the
source tree); a user describes their own board in a TOML file and passes its
path wherever a target name is accepted. A profile may start from another one
with ``inherits = "other-profile"`` and override only what differs (nested
tables such as ``cycles_per_mac`` are merged key by key).

Every number that drives an estimate (clock, cycles per MAC, power) carries a
comment in its TOML file saying which datasheet figure or published benchmark
it comes from.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edgert.errors import TargetError
from edgert.model.macs import KERNEL_FAMILIES  # the families the latency model distinguishes
from edgert.targets.base import Target, runtime_for

__all__ = ["load_target", "list_targets", "target_names", "KERNEL_FAMILIES", "KINDS", "OP_SETS", "QUANTIZATIONS"]

#: Kinds of device a profile can describe.
KINDS = ("mcu", "cpu", "edgetpu", "gpu")
#: Op sets a profile can allow; each one is run by one runtime family (``Target.runtime``).
OP_SETS = ("tflm", "xnnpack", "edgetpu", "gpu", "tflite")
#: Quantization modes the converter knows.
QUANTIZATIONS = ("int8", "float16", "dynamic", "int16x8", "float32")
_DTYPES = ("int8", "uint8", "int16", "float16", "float32")

_PACKAGE = "edgert.target_profiles"
_MAX_INHERIT_DEPTH = 8


# ---- field schema: name -> (types, required) ------------------------------------------
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "description": ((str,), True),
    "kind": ((str,), True),
    "ram_bytes": ((int,), True),
    "flash_bytes": ((int,), True),
    "quantization": ((str,), True),
    "input_dtype": ((str,), True),
    "output_dtype": ((str,), True),
    "op_set": ((str,), True),
    "threads": ((int,), True),
    "delegate": ((str,), True),
    "clock_hz": ((int,), True),
    "cycles_per_mac": ((dict,), True),
    "active_power_mw": ((int, float), True),
    "idle_power_mw": ((int, float), True),
    "cycles_per_output": ((dict,), False),
    "op_overhead_cycles": ((int, float), False),
    "invoke_overhead_ms": ((int, float), False),
    "static_shapes": ((bool,), False),
    "full_int8": ((bool,), False),
    "param_cache_bytes": ((int,), False),
    "arena": ((bool,), False),
    "core": ((str,), False),
    "calibration": ((str,), False),
    "inherits": ((str,), False),
}
_CHOICES = {
    "kind": KINDS,
    "op_set": OP_SETS,
    "quantization": QUANTIZATIONS,
    "input_dtype": _DTYPES,
    "output_dtype": _DTYPES,
}


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli  # the same parser, as a package for Python 3.10
    except ImportError:
        raise TargetError("reading target profiles needs Python 3.11+ or the 'tomli' package", "pip install tomli") from None
    return tomli


def _builtin_files() -> dict[str, Any]:
    from importlib.resources import files

    root = files(_PACKAGE)
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".toml")}


def target_names() -> list[str]:
    """Names of the profiles shipped with edgert, sorted."""
    return sorted(_builtin_files())


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        return _toml().loads(text)
    except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError
        raise TargetError(f"{where}: malformed TOML: {str(e).splitlines()[0]}", "fix the file's syntax") from None


def _raw(name_or_path: str | Path, depth: int = 0) -> tuple[dict[str, Any], str]:
    """The merged (inheritance resolved) table of a profile and where it came from."""
    if depth > _MAX_INHERIT_DEPTH:
        raise TargetError(f"{name_or_path}: key 'inherits': inheritance chain deeper than {_MAX_INHERIT_DEPTH} (a cycle?)")
    text_name = str(name_or_path)
    path = Path(text_name)
    builtin = _builtin_files()
    if text_name in builtin and not (path.suffix == ".toml" and path.exists()):
        where = f"{text_name}.toml"
        text = builtin[text_name].read_text(encoding="utf-8")
        base_dir = None
    elif path.suffix == ".toml" or path.exists() or "/" in text_name or "\\" in text_name:
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TargetError(f"{where}: no such target file", "check the path of your board's .toml") from None
        except (OSError, UnicodeDecodeError) as e:
            raise TargetError(f"{where}: cannot read target file ({e})") from None
        base_dir = path.parent
    else:
        raise TargetError(
            f"unknown target {text_name!r}",
            f"use one of {', '.join(sorted(builtin))}, listed by edgert targets, or a path to a .toml file",
        )
    table = _parse(text, where)
    parent = table.get("inherits")
    if parent is None:
        return table, where
    if not isinstance(parent, str):
        raise TargetError(f"{where}: key 'inherits': expected a profile name, got {type(parent).__name__}")
    if parent not in builtin and base_dir is not None and (base_dir / f"{parent}.toml").exists():
        parent = str(base_dir / f"{parent}.toml")
    try:
        base, _ = _raw(parent, depth + 1)
    except TargetError as e:
        raise TargetError(f"{where}: key 'inherits': {e.message}", e.hint) from None
    merged = dict(base)
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged["inherits"] = table["inherits"]
    return merged, where


def _build(table: dict[str, Any], where: str) -> Target:
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise TargetError(f"{where}: key {unknown[0]!r}: unknown field", f"known fields: {', '.join(_FIELDS)}")
    values: dict[str, Any] = {}
    for key, (types, required) in _FIELDS.items():
        if key not in table:
            if required:
                raise TargetError(f"{where}: key {key!r}: missing", "every profile states it (see targets/*.toml)")
            continue
        value = table[key]
        if isinstance(value, bool) and bool not in types:
            value = None  # TOML booleans are ints in Python; never accept them as numbers
        if value is None or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise TargetError(f"{where}: key {key!r}: expected {want}, got {table[key]!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise TargetError(f"{where}: key {key!r}: {value!r} is not one of {', '.join(_CHOICES[key])}")
        values[key] = value
    for key in ("ram_bytes", "flash_bytes", "threads", "clock_hz"):
        if values[key] <= 0:
            raise TargetError(f"{where}: key {key!r}: must be positive, got {values[key]}")
    for key in ("cycles_per_mac", "cycles_per_output"):
        table_value = values.get(key, {})
        for fam, v in table_value.items():
            if fam not in KERNEL_FAMILIES:
                raise TargetError(f"{where}: key '{key}.{fam}': unknown kernel family", f"use {', '.join(KERNEL_FAMILIES)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise TargetError(f"{where}: key '{key}.{fam}': expected a non-negative number, got {v!r}")
        values[key] = {k: float(v) for k, v in table_value.items()}
    missing = [f for f in KERNEL_FAMILIES if f not in values["cycles_per_mac"]]
    if missing:
        raise TargetError(f"{where}: key 'cycles_per_mac.{missing[0]}': missing", "give a figure for every kernel family")
    if values["active_power_mw"] < 0 or values["idle_power_mw"] < 0:
        raise TargetError(f"{where}: key 'active_power_mw': power cannot be negative")
    # The op set decides the runtime family; the kind and the arena flag must agree with it,
    # so no code has to decide which of the three to believe.
    runtime = runtime_for(values["op_set"])
    if values["kind"] not in runtime.kinds:
        raise TargetError(f"{where}: key 'kind': {values['kind']!r} does not run op_set {values['op_set']!r} "
                          f"({runtime.title})", f"use kind {' or '.join(repr(k) for k in runtime.kinds)}")
    if values.setdefault("arena", runtime.arena) != runtime.arena:
        raise TargetError(f"{where}: key 'arena': {runtime.title} {'uses' if runtime.arena else 'has no'} "
                          "tensor arena", f"set arena = {str(runtime.arena).lower()} or leave it out")
    delegate = values.pop("delegate")
    values["delegate"] = None if delegate in ("", "none") else delegate
    for key in ("active_power_mw", "idle_power_mw", "op_overhead_cycles", "invoke_overhead_ms"):
        if key in values:
            values[key] = float(values[key])
    return Target(source=where, **values)


def load_target(name_or_path: str | Path | Target) -> Target:
    """Load a profile by name (shipped with edgert) or from a ``.toml`` path.

    Args:
        name_or_path: ``"coral-usb"``, ``"path/to/board.toml"`` or an existing :class:`Target`.

    Returns:
        The frozen :class:`Target`.

    Raises:
        TargetError: unknown name, unreadable or malformed file, missing or
            invalid field — one line naming the file, the key and the problem.
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    table, where = _raw(name_or_path)
    return _build(table, where)


def list_targets() -> list[Target]:
    """All profiles shipped with edgert, sorted by name."""
    return [load_target(n) for n in target_names()]
