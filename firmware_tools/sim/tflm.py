"""The simulated board's interpreter: INVOKE, TENSOR_WRITE and TENSOR_READ on the real TFLite Micro.

INVOKE runs ``edgert.runtime.micro.run_micro`` (the ``tflite-micro`` wheel,
reference kernels) under the board's RAM, on inline inputs or on inputs staged
with TENSOR_WRITE; outputs too large for one reply are read with TENSOR_READ
(PROTOCOL.md section 4).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from edgert.errors import EdgertError
from firmware_tools.protocol import (
    CMD_INVOKE,
    CMD_TENSOR_READ,
    ERR_BAD_INPUT,
    ERR_INVOKE_FAILED,
    ERR_NO_MODEL,
    GROUP_EDGERT,
    OP_READ_RSP,
    OP_WRITE_RSP,
    make_packet,
)
from firmware_tools.sim.smp import FRAME_OVERHEAD, fits_buffer, group_error
from firmware_tools.sim_store import Entry

__all__ = ["KERNELS", "LoadedModel", "TflmRunner"]

log = logging.getLogger("edgert.firmware.sim")

#: The interpreter INVOKE runs: the tflite-micro wheel, TFLM with its reference kernels (INFO "kernels").
KERNELS = "reference"


def _uint(value: Any) -> TypeGuard[int]:
    """A CBOR unsigned integer (cbor2 decodes true/false as bool, an int subclass)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class LoadedModel:
    """The active model as the simulated runner holds it, with its staged inputs and last outputs.

    RAM state: ACTIVATE, ROLLBACK and a reboot drop it, so a stale tensor is never reused.
    """

    sha: bytes
    data: bytes
    model: Any
    inputs: list[bytearray]
    held: list[int]
    outputs: list[bytes] | None = None
    _arena: int | None = None
    _measuring: bool = False

    @classmethod
    def load(cls, sha: bytes, data: bytes) -> LoadedModel:
        """Read the model's tensors (raises InvalidModelError for a file that is not a model)."""
        from edgert.model import read_model

        model = read_model(data)
        return cls(sha, data, model, [bytearray(t.nbytes) for t in model.inputs], [0] * len(model.inputs))

    def reset(self) -> None:
        """After any INVOKE the staged-byte counters start over and old outputs are gone."""
        self.held = [0] * len(self.inputs)
        self.outputs = None

    def measure_arena(self) -> None:
        """Measure in the background the arena TFLite Micro really allocates (0 when TFLM cannot load the model).

        Started at the model's first INVOKE: a child process per INFO would stall the line, and a model
        that is never run costs nothing. Until it is known, INFO leaves ``arena_used`` out.
        """
        if self._arena is not None or self._measuring:
            return
        self._measuring = True

        def measure() -> None:
            from edgert.runtime.micro import micro_arena_bytes

            try:
                self._arena = micro_arena_bytes(self.data)
            except EdgertError as e:
                log.info("sim: no arena figure for the active model: %s", e)
                self._arena = 0

        threading.Thread(target=measure, name="edgert-sim-arena", daemon=True).start()

    @property
    def arena_used(self) -> int | None:
        """The measured arena in bytes, None while unknown."""
        return self._arena


class TflmRunner:
    """The edgert group's INVOKE and tensor transfers. RAM state: a new runner per boot.

    Args:
        active: The model INVOKE runs (None: NO_MODEL).
        read_model_bytes: The bytes of a stored model.
        ram: Tensor arena bytes TFLite Micro may use.
        buf_size: The device's SMP buffer: outputs that do not fit an INVOKE reply are left to TENSOR_READ.
        tensor_io: Serve staged INVOKE and carry ``sizes`` (TENSOR_WRITE/READ are routed by the board).
        stats: Counters shared with the board (``invokes``).
    """

    def __init__(self, active: Callable[[], Entry | None], read_model_bytes: Callable[[Entry], bytes], ram: int,
                 buf_size: int, tensor_io: bool, stats: dict[str, Any]) -> None:
        self._active = active
        self._read = read_model_bytes
        self.ram = ram
        self.buf_size = buf_size
        self.tensor_io = tensor_io
        self.stats = stats
        #: The active model once loaded; dropped when the active model changes.
        self.cache: LoadedModel | None = None

    def forget(self) -> None:
        """Drop the loaded model with its staged inputs and outputs (ACTIVATE, ROLLBACK)."""
        self.cache = None

    def arena_used(self, active: Entry) -> int | None:
        """TFLM's measured arena for ``active``, None until it was invoked and measured."""
        loaded = self.cache
        if loaded is not None and loaded.sha == active.sha:
            return loaded.arena_used
        return None

    def _loaded(self) -> LoadedModel | dict:
        """The active model loaded for INVOKE, or the error reply (NO_MODEL, INVOKE_FAILED)."""
        active = self._active()
        if active is None:
            return group_error(GROUP_EDGERT, ERR_NO_MODEL)
        if self.cache is None or self.cache.sha != active.sha:
            try:
                self.cache = LoadedModel.load(active.sha, self._read(active))
            except EdgertError:
                return group_error(GROUP_EDGERT, ERR_INVOKE_FAILED)
        return self.cache

    def invoke(self, body: dict) -> dict:
        """INVOKE, inline (``inputs``) or on the staged inputs."""
        import numpy as np

        from edgert.runtime.micro import run_micro

        loaded = self._loaded()
        if isinstance(loaded, dict):
            return loaded
        raw = body.get("inputs")
        staged = raw is None and self.tensor_io
        held, inputs = loaded.held, [bytes(b) for b in loaded.inputs]
        loaded.reset()  # success or not, the next INVOKE starts from fresh inputs
        if staged:
            if held != [len(b) for b in inputs]:
                return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
            raw = inputs
        if not isinstance(raw, list) or len(raw) != len(loaded.model.inputs):
            return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
        arrays = []
        for spec, b in zip(loaded.model.inputs, raw, strict=True):
            if not isinstance(b, bytes) or len(b) != spec.nbytes:
                return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
            arrays.append(np.frombuffer(b, dtype=spec.dtype).reshape(spec.shape))
        t0 = time.perf_counter()
        try:
            outputs = run_micro(loaded.data, arrays, arena_size=self.ram)
        except EdgertError as e:
            log.info("sim: INVOKE failed: %s", e)
            return group_error(GROUP_EDGERT, ERR_INVOKE_FAILED)
        us = int((time.perf_counter() - t0) * 1e6)
        self.stats["invokes"] += 1
        loaded.measure_arena()
        loaded.outputs = [np.ascontiguousarray(o).tobytes() for o in outputs]
        if not self.tensor_io:
            return {"outputs": loaded.outputs, "us": us}
        # The simulator counts no instructions: "insns" is left out, as PROTOCOL.md allows.
        reply = {"us": us, "sizes": [len(o) for o in loaded.outputs], "outputs": loaded.outputs}
        if not fits_buffer(OP_WRITE_RSP, GROUP_EDGERT, CMD_INVOKE, reply, self.buf_size):
            del reply["outputs"]  # the host reads them with TENSOR_READ
        return reply

    def tensor_write(self, body: dict) -> dict:
        """TENSOR_WRITE: a chunk of one input, with the upload's offset rules."""
        loaded = self._loaded()
        if isinstance(loaded, dict):
            return loaded
        index, off, data = body.get("index"), body.get("off"), body.get("data")
        if not (_uint(index) and _uint(off) and isinstance(data, bytes)) or index >= len(loaded.inputs):
            return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
        if off == 0:
            loaded.held[index] = 0  # offset 0 restarts this input
        elif off != loaded.held[index]:
            return {"off": loaded.held[index]}  # store nothing: the host re-syncs from here
        tensor = loaded.inputs[index]
        if len(data) > len(tensor) - off:
            return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
        tensor[off:off + len(data)] = data
        loaded.held[index] = off + len(data)
        return {"off": loaded.held[index]}

    def tensor_read(self, body: dict) -> dict:
        """TENSOR_READ: as much of one output from ``off`` as fits one reply."""
        loaded = self._loaded()
        if isinstance(loaded, dict):
            return loaded
        index, off = body.get("index"), body.get("off", 0)
        if (not (_uint(index) and _uint(off)) or loaded.outputs is None or index >= len(loaded.outputs)
                or off > len(loaded.outputs[index])):
            return group_error(GROUP_EDGERT, ERR_BAD_INPUT)
        tensor = loaded.outputs[index]
        room = self.buf_size - FRAME_OVERHEAD - len(make_packet(OP_READ_RSP, GROUP_EDGERT, CMD_TENSOR_READ, 0,
                                                                {"off": off, "len": len(tensor), "data": b""}))
        room -= 4  # the data's CBOR length head grows from 1 byte to at most 5
        return {"off": off, "len": len(tensor), "data": tensor[off:off + max(0, room)]}
