"""The planner's struct tables are the TFLite Micro tree's: ``sizeof``/``alignof`` compiled from
``third_party/tflm`` with the Arm cross compiler (32-bit EABI, as the firmware) and the host g++
(64-bit, as the wheel's build). Skipped without a compiler or the tree (failed under CI=true)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from edgert.model.memory import _COMMON_EABI32, _COMMON_LP64
from tests.conftest import IN_CI, ROOT

TREE = Path(os.environ.get("EDGERT_TFLM_TREE", ROOT.parent / "shared" / "third_party" / "tflm"))
K = "tensorflow/lite/micro/kernels"
#: Translation units: (files to include, {table key: C++ type seen through ``using namespace tflite``}, Arm only).
#: Kernel structs live in anonymous namespaces, hence including the .cc that defines them.
UNITS = [
    (("tensorflow/lite/micro/micro_allocator.cc", "tensorflow/lite/core/c/builtin_op_data.h", f"{K}/conv.h",
      f"{K}/fully_connected.h", f"{K}/softmax.h", f"{K}/lstm_shared.h"), {
        "SingleArenaBufferAllocator": "SingleArenaBufferAllocator", "GreedyMemoryPlanner": "GreedyMemoryPlanner",
        "MicroAllocator": "MicroAllocator", "MicroBuiltinDataAllocator": "MicroBuiltinDataAllocator",
        "SubgraphAllocations": "SubgraphAllocations", "TfLiteEvalTensor": "TfLiteEvalTensor",
        "NodeAndRegistration": "NodeAndRegistration", "TfLiteTensor": "TfLiteTensor",
        "TfLiteAffineQuantization": "TfLiteAffineQuantization", "ScratchBufferHandle": "ScratchBufferHandle",
        "TfLiteConvParams": "TfLiteConvParams", "TfLiteDepthwiseConvParams": "TfLiteDepthwiseConvParams",
        "TfLiteFullyConnectedParams": "TfLiteFullyConnectedParams", "TfLitePoolParams": "TfLitePoolParams",
        "TfLiteReshapeParams": "TfLiteReshapeParams", "TfLiteAddParams": "TfLiteAddParams",
        "TfLiteMulParams": "TfLiteMulParams", "TfLiteUnidirectionalSequenceLSTMParams":
            "TfLiteUnidirectionalSequenceLSTMParams", "TfLiteSplitParams": "TfLiteSplitParams",
        "OpDataConv": "OpDataConv", "OpDataFullyConnected": "OpDataFullyConnected",
        "SoftmaxParams": "SoftmaxParams", "OpDataLSTM": "OpDataLSTM",
    }, False),
    ((f"{K}/concatenation.cc",), {"ConcatenationOpData": "OpData"}, False),
    ((f"{K}/cmsis_nn/conv.cc",), {"CmsisConvOpData": "OpData"}, True),
    ((f"{K}/cmsis_nn/fully_connected.cc",), {"CmsisFullyConnectedOpData": "OpData"}, True),
    ((f"{K}/cmsis_nn/unidirectional_sequence_lstm.cc",), {"CmsisLstmOpData": "OpData"}, True),
]
_MAGIC = 0xC0FFEE01


def _flags() -> list[str]:
    inc = ["", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy", "third_party/cmsis_nn",
           "third_party/cmsis_nn/Include", "third_party/cmsis/CMSIS/Core/Include"]
    return ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-w", "-DTF_LITE_STATIC_MEMORY",
            "-DTF_LITE_DISABLE_X86_NEON", "-DCMSIS_NN", *(f"-I{TREE / d}" for d in inc)]


def _probe(compiler: list[str], objcopy: str, includes: tuple[str, ...], types: dict[str, str], tmp: Path) -> dict:
    src = tmp / "probe.cc"
    body = ", ".join(f"sizeof({t}), alignof({t})" for t in types.values())
    src.write_text("".join(f'#include "{TREE / i}"\n' for i in includes) + "using namespace tflite;\n"
                   f'extern "C" const unsigned edgert_probe[] = {{{_MAGIC}u, {body}}};\n')
    obj, raw = tmp / "probe.o", tmp / "probe.bin"
    subprocess.run([*compiler, *_flags(), "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
    subprocess.run([objcopy, "-O", "binary", "-j", ".rodata", str(obj), str(raw)], check=True, capture_output=True)
    data = raw.read_bytes()
    at = data.index(struct.pack("<I", _MAGIC)) + 4
    values = struct.unpack_from(f"<{2 * len(types)}I", data, at)
    return {key: (values[2 * i], values[2 * i + 1]) for i, key in enumerate(types)}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None or not (TREE / "tensorflow").is_dir():
        reason = f"{tool} or the TFLM tree ({TREE}) is missing"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return path


@pytest.mark.parametrize("include,types,arm_only", UNITS, ids=[Path(u[0][0]).name for u in UNITS])
def test_eabi32_structs_match_the_tree(include, types, arm_only, tmp_path):
    gxx = _need("arm-none-eabi-g++")
    found = _probe([gxx, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
                   _need("arm-none-eabi-objcopy"), include, types, tmp_path)
    assert found == {k: _COMMON_EABI32[k] for k in types}


@pytest.mark.parametrize("include,types,arm_only", [u for u in UNITS if not u[2]],
                         ids=[Path(u[0][0]).name for u in UNITS if not u[2]])
def test_lp64_structs_match_the_tree(include, types, arm_only, tmp_path):
    found = _probe([_need("g++")], _need("objcopy"), include, types, tmp_path)
    assert found == {k: _COMMON_LP64[k] for k in types}
