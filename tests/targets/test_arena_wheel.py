"""The planner against the real TFLite Micro wheel (64-bit host, reference kernels) on models the
test builds with TensorFlow: an LSTM (unrolled: FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD,
UNPACK), depthwise convolutions of several shapes, and the same network with int16 activations
(int16x8). The conformance models are compared in test_micro.py."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("tflite_micro")

from edgert.model import read_model  # noqa: E402
from edgert.model.memory import ARENA_CONFIGS, plan_arena  # noqa: E402
from edgert.runtime.micro import micro_arena_bytes  # noqa: E402
from tests.helpers import ARENA_TEST_MODELS, arena_test_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built():
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            cache[name] = arena_test_model(name)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(ARENA_TEST_MODELS))
def test_plan_within_2_percent_of_the_wheel(built, name):
    data = built(name)
    real = micro_arena_bytes(data)
    plan = plan_arena(data)
    assert plan.complete, plan.unknown_ops
    assert abs(plan.total_bytes - real) <= 0.02 * real, (plan.total_bytes, real, plan.breakdown)


@pytest.mark.parametrize("name", list(ARENA_TEST_MODELS))
def test_every_core_has_a_complete_plan(built, name):
    model = read_model(built(name))
    for config in ("cortex-m4", "cortex-m7", "cortex-m55"):
        plan = plan_arena(model, config)
        assert plan.complete, (config, plan.unknown_ops)
        assert plan.total_bytes < plan_arena(model).total_bytes or plan.breakdown["scratch"] > 0


def test_int16_activations_take_their_own_figures(built):
    i8, i16 = read_model(built("depthwise_int8")), read_model(built("depthwise_int16x8"))
    assert {t.dtype for t in i16.inputs} == {"int16"}
    # activations twice the size, and int16 softmax keeps two 513-entry LUTs in the tail
    assert plan_arena(i16).head_bytes > plan_arena(i8).head_bytes
    assert plan_arena(i16, "cortex-m4").breakdown["kernels"] >= plan_arena(i8, "cortex-m4").breakdown["kernels"] + 2 * 1026
    assert set(ARENA_CONFIGS) >= {"cortex-m4", "cortex-m55", "tflm-host-64bit"}
