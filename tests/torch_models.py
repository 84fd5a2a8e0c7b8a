"""Small PyTorch classifiers, their ONNX twins and their data: shared by the PyTorch/ONNX tests.

Three networks (a digits CNN, a digits CNN with a residual add, a 1-D sensor
model), the same networks written as ONNX graphs with ``onnx.helper`` from the
trained weights, scikit-learn's digits in NCHW and generated three-axis signals
in NCL, and a seeded training loop. Import it only after
``pytest.importorskip("torch")`` and ``("onnx")``: it imports both at the top.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

__all__ = ["DigitsCNN", "DigitsResidual", "Sensor1D", "onnx_graph", "digits_nchw", "sensor_ncl", "train", "MODELS"]


# --- models -------------------------------------------------------------------------------------


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(self.gap(x), 1))


class DigitsResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        x = a + torch.relu(self.conv2(a))  # the residual ADD a non-strict export leaves in float
        x = torch.relu(self.conv3(self.pool(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


class Sensor1D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(3, 8, 5, padding=2)
        self.conv2 = nn.Conv1d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(-1))


# --- the same networks as ONNX graphs ------------------------------------------------------------


def onnx_graph(model: nn.Module, kind: str, shape: tuple[int, ...]):
    from onnx import TensorProto, helper, numpy_helper

    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    inits = [numpy_helper.from_array(v, k) for k, v in sd.items()]
    n = helper.make_node
    k2 = {"pads": [1, 1, 1, 1]}
    if kind == "cnn":
        nodes = [
            n("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", **k2),
            n("Relu", ["c1"], ["r1"], name="relu1"),
            n("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
            n("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", **k2),
            n("Relu", ["c2"], ["r2"], name="relu2"),
            n("GlobalAveragePool", ["r2"], ["g"], name="gap"),
            n("Flatten", ["g"], ["f"], name="flatten"),
            n("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc"),
        ]
        out = [1, 10]
    elif kind == "residual":
        nodes = [
            n("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", **k2),
            n("Relu", ["c1"], ["a"], name="relu1"),
            n("Conv", ["a", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", **k2),
            n("Relu", ["c2"], ["r2"], name="relu2"),
            n("Add", ["a", "r2"], ["s"], name="residual_add"),
            n("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
            n("Conv", ["p", "conv3.weight", "conv3.bias"], ["c3"], name="conv3", **k2),
            n("Relu", ["c3"], ["r3"], name="relu3"),
            n("GlobalAveragePool", ["r3"], ["g"], name="gap"),
            n("Flatten", ["g"], ["f"], name="flatten"),
            n("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc"),
        ]
        out = [1, 10]
    else:
        nodes = [
            n("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], pads=[2, 2], name="conv1"),
            n("Relu", ["c1"], ["r1"], name="relu1"),
            n("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1], name="conv2"),
            n("Relu", ["c2"], ["r2"], name="relu2"),
            n("ReduceMean", ["r2"], ["m"], axes=[2], keepdims=0, name="mean"),
            n("Gemm", ["m", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc"),
        ]
        out = [1, 3]
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


# --- data and training ---------------------------------------------------------------------------


def digits_nchw():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.kron(d.images, np.ones((2, 2), np.float32)).astype(np.float32) / 16.0  # 16x16 in [0, 1]
    order = np.random.default_rng(0).permutation(len(x))  # the file is grouped by writer
    return x[order, None], d.target[order].astype(np.int64)  # NCHW, as a PyTorch user has it


def sensor_ncl(n: int = 900):
    rng = np.random.default_rng(0)
    t = np.arange(64, dtype=np.float32) / 64.0
    y = rng.integers(0, 3, n)
    freq = np.array([2.0, 5.0, 9.0], np.float32)[y]
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1)).astype(np.float32)
    x = np.sin(2 * np.pi * freq[:, None, None] * t[None, None, :] + phase) + 0.2 * rng.standard_normal((n, 3, 64))
    return x.astype(np.float32), y.astype(np.int64)  # NCL


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


#: Model kind -> its class (the names the ONNX graphs take too).
MODELS = {"cnn": DigitsCNN, "residual": DigitsResidual, "sensor": Sensor1D}
