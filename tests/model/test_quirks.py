"""Real-world quirks: sound files that edgert must accept, judged against the runtimes themselves.

Each case is a conformance model edited through the maintained schema's object API
the way real exports differ (a stale per-channel axis on a rank-1 bias as in TFLite
Micro's person-detection model, unused buffers, empty vectors, no signature, old
schema versions and missing fields). For each one the test loads the file in LiteRT
(ai-edge-litert, in an isolated child: it can crash) and in TFLite Micro (the
tflite-micro wheel, also in a child), and asserts that edgert's verdict matches:
``inspect`` and ``fit`` accept every case, a warning names exactly the runtime that
refuses it, and ``fit``'s ``loads`` check fails only on targets of that runtime.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgert.cli import main
from edgert.errors import EdgertError, InvalidModelError
from edgert.fit import check_fit
from edgert.model import read_model
from tests.model.conftest import edit_model

pytestmark = pytest.mark.runtime

KWS = "keyword_spotting__kws_ref_model.tflite"  # per-channel conv biases (rank 1), no signature def
HELLO = "tflm__hello_world_int8.tflite"  # has a signature def
CPU_TARGET, MCU_TARGET = "raspberry-pi-4", "cortex-m4-256k"


def _per_channel_rank1(model):
    return [t for t in model.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale is not None
            and len(t.quantization.scale) > 1 and len(t.shape) == 1]


def stale_axis_on_rank1(model, schema):
    # The person-detection export: the bias keeps the filter's channel axis (3).
    tensors = _per_channel_rank1(model)
    assert tensors
    for t in tensors:
        t.quantization.quantizedDimension = 3


def stale_axis_per_tensor(model, schema):
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) == 1 and len(t.shape) == 2:
            q.quantizedDimension = 3


def unused_buffers(model, schema):
    extra = schema.BufferT()
    extra.data = np.arange(64, dtype=np.uint8)
    model.buffers += [extra, schema.BufferT()]


def no_signature(model, schema):
    assert model.signatureDefs
    model.signatureDefs = None


def empty_signature_list(model, schema):
    model.signatureDefs = []


def empty_metadata_lists(model, schema):
    model.metadata, model.metadataBuffer = [], []


def empty_quantization_vectors(model, schema):
    for t in model.subgraphs[0].tensors:
        if t.quantization is None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [], []


def empty_intermediates(model, schema):
    for op in model.subgraphs[0].operators:
        op.intermediates = []


def empty_custom_options_on_builtins(model, schema):
    for op in model.subgraphs[0].operators:
        op.customOptions = []


def empty_activation_buffers(model, schema):
    # Converters give each activation its own buffer; here those hold a present, empty data vector.
    used = {t.buffer for t in model.subgraphs[0].tensors}
    for i, b in enumerate(model.buffers):
        if i in used and b.data is None:
            b.data = np.zeros(0, np.uint8)


def empty_sentinel_buffer(model, schema):
    # What the Edge TPU compiler writes: buffer 0 holds an empty data vector, and activations use it.
    model.buffers[0].data = np.zeros(0, np.uint8)
    for t in model.subgraphs[0].tensors:
        if t.buffer and model.buffers[t.buffer].data is None:
            t.buffer = 0


def schema_version(n):
    def change(model, schema):
        model.version = n
    change.__name__ = f"schema_version_{n}"
    return change


def pre_2_4_operator_codes(model, schema):
    # Files written before builtin_code existed carry only deprecated_builtin_code.
    for code in model.operatorCodes:
        assert code.builtinCode < 127
        code.builtinCode = 0


def missing_names_and_signatures(model, schema):
    for t in model.subgraphs[0].tensors:
        t.name, t.shapeSignature = None, None
    model.subgraphs[0].name = None
    model.description = None


def _per_channel_filters(model):
    return [t for t in model.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale is not None
            and len(t.quantization.scale) > 1 and len(t.shape) == 4]


def padded_weight_buffers(model, schema):
    for t in _per_channel_filters(model):
        b = model.buffers[t.buffer]
        b.data = np.concatenate([b.data, np.zeros(16, np.uint8)])


def shape_signature_of_other_rank(model, schema):
    sg = model.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    t.shapeSignature = [-1, *t.shape]
    _per_channel_filters(model)[0].shapeSignature = [1]


def shape_signature_below_minus_one(model, schema):
    sg = model.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    t.shapeSignature = [-5, *t.shape[1:]]


def one_zero_point_for_all_channels(model, schema):
    for t in _per_channel_filters(model):
        t.quantization.zeroPoint = [0]


#: (case, source model, edit, runtimes that really refuse the result)
CASES = [
    ("stale_axis_on_rank1", KWS, stale_axis_on_rank1, {"litert"}),
    ("stale_axis_per_tensor", HELLO, stale_axis_per_tensor, {"litert"}),
    ("unused_buffers", KWS, unused_buffers, set()),
    ("no_signature", HELLO, no_signature, set()),
    ("empty_signature_list", HELLO, empty_signature_list, set()),
    ("empty_metadata_lists", KWS, empty_metadata_lists, set()),
    ("empty_quantization_vectors", KWS, empty_quantization_vectors, set()),
    ("empty_intermediates", KWS, empty_intermediates, set()),
    ("empty_custom_options_on_builtins", HELLO, empty_custom_options_on_builtins, {"tflm"}),
    ("empty_activation_buffers", HELLO, empty_activation_buffers, {"litert"}),
    ("empty_sentinel_buffer", HELLO, empty_sentinel_buffer, set()),
    ("schema_version_1", HELLO, schema_version(1), {"litert"}),
    ("schema_version_2", KWS, schema_version(2), {"litert"}),
    ("pre_2_4_operator_codes", KWS, pre_2_4_operator_codes, set()),
    ("missing_names_and_shape_signatures", HELLO, missing_names_and_signatures, set()),
    ("padded_weight_buffers", KWS, padded_weight_buffers, set()),
    ("shape_signature_of_other_rank", KWS, shape_signature_of_other_rank, set()),
    ("shape_signature_below_minus_one", KWS, shape_signature_below_minus_one, set()),
    ("one_zero_point_for_all_channels", KWS, one_zero_point_for_all_channels, {"litert"}),
]


@pytest.fixture(scope="module")
def quirk_files(model_bytes):
    return {name: edit_model(model_bytes[src], change) for name, src, change, _ in CASES}


def _litert_refusal(data: bytes) -> str | None:
    from edgert.runtime.safe import check_model

    try:
        check_model(data, "ai_edge_litert", use_cache=False)
    except InvalidModelError as e:
        return str(e)
    return None


def _tflm_refusal(data: bytes) -> str | None:
    from edgert.runtime.micro import micro_available, run_micro

    if not micro_available():
        pytest.skip("tflite_micro is not installed")
    model = read_model(data)
    try:
        run_micro(data, [np.zeros(t.shape, t.dtype) for t in model.inputs])
    except EdgertError as e:
        return str(e)
    return None


@pytest.mark.parametrize("case, refused_by", [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_quirk_verdict_matches_the_runtimes(quirk_files, case, refused_by):
    pytest.importorskip("ai_edge_litert")
    data = quirk_files[case]
    model = read_model(data)  # never "corrupt"
    assert {w.runtime for w in model.warnings} == refused_by, model.warnings
    for t in model.tensors():  # a malformed shape_signature is ignored, as both runtimes do
        assert t.shape_signature is None or (len(t.shape_signature) == len(t.shape) and min(t.shape_signature) >= -1)
    for t in model.tensors():
        if t.is_constant and model.tensor_data(t) is not None:
            assert model.tensor_data(t).shape == t.shape  # padding is not data
    # what the runtimes really do
    really = {name for name, why in (("litert", _litert_refusal(data)), ("tflm", _tflm_refusal(data))) if why}
    assert really == refused_by
    # fit: the loads check fails on the targets of the refusing runtime only
    assert check_fit(data, CPU_TARGET).check("loads").ok == ("litert" not in refused_by)
    assert check_fit(data, MCU_TARGET, measure_micro=False).check("loads").ok == ("tflm" not in refused_by)


def test_stale_axis_is_named_with_the_runtime_and_why(quirk_files, tmp_path, capsys):
    path = tmp_path / "person_detect_like.tflite"
    path.write_bytes(quirk_files["stale_axis_on_rank1"])
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [w["runtime"] for w in info["warnings"]] == ["litert"]
    assert "quantized_dimension" in info["warnings"][0]["message"] and "LiteRT" in info["warnings"][0]["message"]
    assert {"size_bytes", "sha256", "inputs", "outputs", "ops", "parameters", "macs", "metadata"} <= set(info)
    assert main(["inspect", str(path)]) == 0
    assert "warning: quantized_dimension outside the rank" in capsys.readouterr().out

    assert main(["fit", str(path), "--target", MCU_TARGET, "--no-micro", "--json"]) == 0
    mcu = json.loads(capsys.readouterr().out)
    assert mcu["fits"] and mcu["warnings"] == info["warnings"]
    assert main(["fit", str(path), "--target", CPU_TARGET, "--json"]) == 1
    cpu = json.loads(capsys.readouterr().out)
    loads = next(c for c in cpu["checks"] if c["name"] == "loads")
    assert not loads["ok"] and loads["detail"].startswith("LiteRT refuses this file")
    assert [c["name"] for c in cpu["checks"] if not c["ok"]] == ["loads"]


def test_clean_models_have_no_warnings(model_bytes):
    """The conformance models, and the Edge TPU compiler's own output, are not quirky."""
    from tests.conftest import CONFORMANCE

    files = dict(model_bytes)
    files.update({p.name: p.read_bytes() for p in sorted((CONFORMANCE / "edgetpu").glob("*.tflite"))})
    for name, data in files.items():
        model = read_model(data)
        assert model.warnings == [], name
        assert check_fit(model, CPU_TARGET).check("loads").ok


def test_per_channel_axis_stays_strict_where_no_runtime_could_use_it(model_bytes):
    """Only the rank-1 case with a matching scale count is a quirk; the rest is still refused."""
    def rank1_wrong_count(model, schema):
        t = _per_channel_rank1(model)[0]
        t.quantization.quantizedDimension = 3
        t.quantization.scale = list(t.quantization.scale) + [1.0]
        t.quantization.zeroPoint = list(t.quantization.zeroPoint) + [0]

    def filter_axis_out_of_range(model, schema):
        t = next(t for t in model.subgraphs[0].tensors if t.quantization is not None
                 and t.quantization.scale is not None and len(t.quantization.scale) > 1 and len(t.shape) == 4)
        t.quantization.quantizedDimension = 7

    for change in (rank1_wrong_count, filter_axis_out_of_range):
        with pytest.raises(InvalidModelError, match="quantized per channel along axis"):
            read_model(edit_model(model_bytes[KWS], change))
