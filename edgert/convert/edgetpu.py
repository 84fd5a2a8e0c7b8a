"""Run Google's ``edgetpu_compiler`` on a converted model and read its log.

The compiler cannot be installed everywhere (x86-64 Debian only, no ARM64
since 2.1). When it is not on PATH the report says so and gives the exact
command to run elsewhere; ``edgert fit``'s Edge TPU prediction still runs.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["COMPILER", "COMPILE_TIMEOUT_S", "compile_command", "compile_edgetpu", "parse_compiler_log"]

log = logging.getLogger("edgert.convert")

#: Executable name of the Edge TPU compiler.
COMPILER = "edgetpu_compiler"
#: The compiler's own default timeout is 180 s; give it that plus start-up.
COMPILE_TIMEOUT_S = 200.0

_SIZE = r"([\d.]+)\s*([KMG]i?B|B)"
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}
_FIELDS = {
    "version": (r"Edge TPU Compiler version\s+(\S+)", str),
    "compile_ms": (r"Model compiled successfully in\s+(\d+)\s*ms", int),
    "subgraphs": (r"Number of Edge TPU subgraphs:\s*(\d+)", int),
    "total_ops": (r"Total number of operations:\s*(\d+)", int),
    "ops_on_edgetpu": (r"Number of operations that will run on Edge TPU:\s*(\d+)", int),
    "ops_on_cpu": (r"Number of operations that will run on CPU:\s*(\d+)", int),
    "output_model": (r"Output model:\s*(\S+)", str),
}
_MEMORY = {
    "on_chip_cache_bytes": r"On-chip memory used for caching model parameters:\s*" + _SIZE,
    "on_chip_remaining_bytes": r"On-chip memory remaining for caching model parameters:\s*" + _SIZE,
    "off_chip_bytes": r"Off-chip memory used for streaming uncached model parameters:\s*" + _SIZE,
}
_OP_ROW = re.compile(r"^([A-Z][A-Z0-9_]*|[A-Za-z][\w-]*)\s{2,}(\d+)\s{2,}(.+?)\s*$")


def compile_command(model_path: str | Path, out_dir: str | Path) -> list[str]:
    """The command line that compiles ``model_path`` into ``out_dir`` (``-s``: print the op table)."""
    return [COMPILER, "-s", "-o", str(out_dir), str(model_path)]


def parse_compiler_log(text: str) -> dict[str, Any]:
    """Read ``edgetpu_compiler -s`` output.

    Returns:
        ``{"compiled": bool, "version", "subgraphs", "total_ops", "ops_on_edgetpu",
        "ops_on_cpu", "on_chip_cache_bytes", ..., "operators": [{op, count,
        status, mapped}], "cpu_ops": {op: count}, "errors": [...]}``; fields
        the log does not state are absent.
    """
    out: dict[str, Any] = {"compiled": "compiled successfully" in text}
    for key, (pattern, cast) in _FIELDS.items():
        m = re.search(pattern, text)
        if m:
            out[key] = cast(m.group(1))
    for key, pattern in _MEMORY.items():
        m = re.search(pattern, text)
        if m:
            out[key] = int(float(m.group(1)) * _UNITS[m.group(2)])
    operators: list[dict[str, Any]] = []
    cpu_ops: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        m = _OP_ROW.match(line.strip())
        if not m:
            in_table = False
            continue
        op, count, status = m.group(1), int(m.group(2)), m.group(3)
        mapped = status.startswith("Mapped to Edge TPU")
        operators.append({"op": op, "count": count, "status": status, "mapped": mapped})
        if not mapped:
            cpu_ops[op] = cpu_ops.get(op, 0) + count
    out["operators"] = operators
    out["cpu_ops"] = cpu_ops
    if "ops_on_cpu" not in out and operators:
        out["ops_on_cpu"] = sum(cpu_ops.values())
        out["ops_on_edgetpu"] = sum(o["count"] for o in operators if o["mapped"])
    errors = [ln.strip() for ln in text.splitlines() if ln.strip().upper().startswith(("ERROR", "INTERNAL ERROR"))]
    if errors:
        out["errors"] = errors
    return out


def compile_edgetpu(model_path: str | Path, out_dir: str | Path, *, timeout: float = COMPILE_TIMEOUT_S) -> dict[str, Any]:
    """Compile ``model_path`` with ``edgetpu_compiler`` when it is installed.

    Returns:
        ``{"available": False, "command", "note"}`` when the compiler is not on
        PATH; else ``{"available": True, "command", "returncode", "output_path"?,
        **parse_compiler_log(...)}``. A compiler failure is reported, not raised:
        the converted model itself is still valid for CPU use.
    """
    cmd = compile_command(model_path, out_dir)
    exe = shutil.which(COMPILER)
    if exe is None:
        return {
            "available": False,
            "command": shlex.join(cmd),
            "note": f"{COMPILER} not found on PATH (x86-64 Debian/Ubuntu only: apt-get install edgetpu-compiler); "
            "run the command on such a machine; the Edge TPU mapping above is edgert's prediction",
        }
    log.info("running %s", shlex.join(cmd))
    try:
        proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"available": True, "command": shlex.join(cmd), "compiled": False, "errors": [f"timed out after {timeout:.0f} s"]}
    result: dict[str, Any] = {"available": True, "command": shlex.join(cmd), "returncode": proc.returncode}
    result.update(parse_compiler_log(proc.stdout + "\n" + proc.stderr))
    compiled = Path(out_dir) / (Path(model_path).stem + "_edgetpu.tflite")
    if compiled.is_file():
        result["output_path"] = str(compiled)
    result["compiled"] = bool(result.get("compiled")) and proc.returncode == 0
    return result
