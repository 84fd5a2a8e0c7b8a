"""edgert.model.c_source: the C array + op resolver firmware compiles in (no TensorFlow needed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from edgert.errors import ConversionError, InputDataError
from edgert.model.c_source import TFLM_OP_METHODS, reserved_arena_bytes, resolver_methods, write_c_source

pytestmark = pytest.mark.runtime

#: Just enough of TFLite Micro's API for the generated files to be type-checked:
#: every Add* method the generator may emit exists, and nothing else does.
_STUB_TEMPLATE = """
#pragma once
typedef enum {{ kTfLiteOk = 0, kTfLiteError = 1 }} TfLiteStatus;
namespace tflite {{
template <unsigned int tOpCount>
class MicroMutableOpResolver {{
 public:
  static_assert(tOpCount > 0, "at least one op");
{methods}
}};
}}  // namespace tflite
"""


def _stub(root):
    methods = "\n".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}" for m in sorted(set(TFLM_OP_METHODS.values())))
    d = root / "tensorflow" / "lite" / "micro"
    d.mkdir(parents=True)
    (d / "micro_mutable_op_resolver.h").write_text(_STUB_TEMPLATE.format(methods=methods))


def _array_bytes(cc_text: str, name: str) -> bytes:
    body = re.search(rf"alignas\(\d+\) const unsigned char {name}\[\] = \{{(.*?)\}};", cc_text, re.S).group(1)
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def test_generated_source_compiles_and_holds_the_model(tmp_path):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not installed")
    _stub(tmp_path / "inc")
    data = bytes(range(256)) * 3 + b"\x01\x02\x03"  # a length that is not a multiple of a line
    ops = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 1, "SOFTMAX": 1, "RESHAPE": 1}
    h, cc = write_c_source(data, tmp_path / "out", name="kws_model", arena_bytes=10_000, ops=ops, alignment=16)
    assert (h.name, cc.name) == ("kws_model.h", "kws_model.cc")
    header, source = h.read_text(), cc.read_text()
    assert "kKwsModelOpCount = 5;" in header
    assert "kKwsModelArenaMeasuredBytes = 10000;" in header
    assert f"kKwsModelArenaBytes = {reserved_arena_bytes(10_000)};" in header
    assert reserved_arena_bytes(10_000) == 12_512  # +25 %, rounded up to 16
    assert "alignas(16) const unsigned char kws_model[]" in source
    assert _array_bytes(source, "kws_model") == data
    assert f"kws_model_len = {len(data)};" in source
    calls = re.findall(r"resolver\.(Add\w+)\(\)", source)
    assert calls == ["AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddReshape", "AddSoftmax"]
    main = tmp_path / "out" / "main.cc"
    main.write_text(
        '#include "kws_model.h"\n'
        "static_assert(kKwsModelArenaBytes % kKwsModelAlignment == 0, \"aligned arena\");\n"
        "int main() { kws_model_resolver_t r; "
        "return kws_model_register_ops(r) == kTfLiteOk && kws_model_len == kKwsModelLen ? 0 : 1; }\n"
    )
    for unit in (cc, main):
        _compile(gxx, unit, tmp_path)


def _compile(gxx, unit, tmp_path):
    proc = subprocess.run(
        [gxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", f"-I{tmp_path / 'inc'}", f"-I{unit.parent}", str(unit)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["keyword_spotting__kws_ref_model.tflite", "tflm__micro_speech_quantized.tflite"])
def test_real_models_ops_read_from_the_file(tmp_path, conformance_dir, name):
    from edgert.model import read_model

    path = conformance_dir / "models" / name
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not installed")
    _stub(tmp_path / "inc")
    data = path.read_bytes()
    h, cc = write_c_source(data, tmp_path / "out", arena_bytes=12_345)  # ops=None: read from the model
    calls = re.findall(r"resolver\.(Add\w+)\(\)", cc.read_text())
    assert calls == sorted(TFLM_OP_METHODS[op] for op in read_model(data).ops)
    assert f"kModelDataOpCount = {len(calls)};" in h.read_text()
    assert _array_bytes(cc.read_text(), "model_data") == data
    _compile(gxx, cc, tmp_path)


def test_every_mapped_method_is_named_like_tflm():
    for op, method in TFLM_OP_METHODS.items():
        assert re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", method), (op, method)


def test_unknown_op_is_refused_with_names():
    with pytest.raises(ConversionError) as e:
        resolver_methods({"CONV_2D": 1, "LSTM": 1, "MyCustomOp": 2})
    assert "LSTM" in str(e.value) and "MyCustomOp" in str(e.value)


def test_bad_name_or_alignment(tmp_path):
    with pytest.raises(InputDataError):
        write_c_source(b"\0" * 8, tmp_path, name="model-data", ops={"ADD": 1})
    with pytest.raises(InputDataError):
        write_c_source(b"\0" * 8, tmp_path, alignment=12, ops={"ADD": 1})


def test_rewrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    write_c_source(b"\x11" * 40, tmp_path, ops={"ADD": 1})
    h, cc = write_c_source(b"\x22" * 50, tmp_path, ops={"MUL": 1}, arena_bytes=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_data.cc", "model_data.h"]
    assert _array_bytes(cc.read_text(), "model_data") == b"\x22" * 50
    assert "ArenaBytes" not in h.read_text()
    assert "AddMul" in cc.read_text() and "AddAdd" not in cc.read_text()
