"""Fixtures for the model-layer tests: the conformance models as bytes, read once."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE, require_conformance


@pytest.fixture(scope="session")
def model_bytes():
    """``{file name: bytes}`` of every conformance model (skips / fails in CI when absent)."""
    root = require_conformance(CONFORMANCE)
    return {p.name: p.read_bytes() for p in sorted((root / "models").glob("*.tflite"))}


@pytest.fixture(scope="session")
def manifest():
    """``{file name: row}`` from the corpus's MANIFEST.tsv."""
    root = require_conformance(CONFORMANCE)
    with open(Path(root) / "MANIFEST.tsv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def edit_model(data: bytes, change) -> bytes:
    """Unpack with the maintained schema's object API, apply ``change(model_t, schema)``, repack."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    change(model, schema)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
