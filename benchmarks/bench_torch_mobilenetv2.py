"""A real architecture through the PyTorch route: MobileNetV2 (random weights) for the Pi and Coral.

torchvision's wheel does not import beside the CPU torch 2.13 that edgert's
venv uses, so MobileNetV2 is written out here (inverted residual blocks with
depthwise convolutions and ReLU6, as in torchvision's ``mobilenet_v2``; width
1.0, 96x96 input). Weights are random but seeded, BatchNorm statistics are
set from one pass over the calibration images, and the model is converted
with ``edgert.convert.convert`` for ``raspberry-pi-5`` and ``coral-usb``.

Prints one JSON object: per target the conversion seconds, the ratio to the
float32 litert-torch conversion of the same model in the same run (the
baseline), size, agreement with the float model, and the checks.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np

SIDE = 96
N_CAL = 64
N_EVAL = 64
TARGETS = ("raspberry-pi-5", "coral-usb")


def _mobilenet_v2(num_classes: int = 10):
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, s, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        return layers

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [] if expand == 1 else conv_bn(cin, hidden, 1, 1)
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, cout, 1, 1, act=False)
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            # (expansion, channels, repeats, stride): torchvision's inverted_residual_setting.
            setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            layers = conv_bn(3, 32, 3, 2)
            cin = 32
            for t, c, n, s in setting:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers += conv_bn(cin, 1280, 1, 1)
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    return MobileNetV2()


def _images(n: int, seed: int) -> np.ndarray:
    """Smooth random images (NCHW, [0, 1]): blobs and gradients, not white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, SIDE), np.linspace(0, 1, SIDE), indexing="ij")
    out = np.empty((n, 3, SIDE, SIDE), np.float32)
    for i in range(n):
        for c in range(3):
            cx, cy, r = rng.uniform(0.2, 0.8, 3)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.2 * r))
            out[i, c] = blob * rng.uniform(0.5, 1) + 0.3 * xx * rng.uniform()
    return np.clip(out, 0, 1)


def main() -> int:
    import torch

    from edgert.convert import convert
    from edgert.convert.torch_route import load_torch_module

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = _mobilenet_v2()
    cal, ev = _images(N_CAL, 0), _images(N_EVAL, 1)
    model.train()
    with torch.no_grad():  # BatchNorm statistics from real-looking inputs, then frozen
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        model(torch.from_numpy(cal))
    model.eval()
    with torch.no_grad():
        labels = model(torch.from_numpy(ev)).argmax(1).numpy()  # the float model's own classes

    # Baseline: the float32 litert-torch conversion of the same model, same process.
    from edgert.convert.settings import settings_for
    from edgert.targets import load_target

    source = load_torch_module(model, example_inputs=(torch.from_numpy(cal[:1]),))
    t0 = time.perf_counter()
    float_bytes = source.convert_to_tflite(settings_for(load_target("raspberry-pi-5"), "float32"), np.moveaxis(cal, 1, -1))
    float_s = time.perf_counter() - t0

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in TARGETS:
            t0 = time.perf_counter()
            r = convert(
                model,
                target=target,
                calibration=cal,
                eval_data=(ev, labels),
                output_dir=f"{tmp}/{target}",
                example_inputs=(torch.from_numpy(cal[:1]),),
                measure_micro=False,
            )
            secs = time.perf_counter() - t0
            results[target] = {
                "convert_s": round(secs, 2),
                "convert_vs_float32_conversion": round(secs / float_s, 2),
                "size_bytes": r.report["model"]["size_bytes"],
                "size_vs_float32": round(r.report["model"]["size_bytes"] / len(float_bytes), 4),
                "agreement": r.accuracy["agreement"],
                "input": r.report["model"]["inputs"][0],
                "fits": r.fits,
                "failed_checks": [c["name"] for c in r.report["checks"] if not c["ok"]],
                "ops": r.report["model"]["ops"],
            }
    print(
        json.dumps(
            {
                "benchmark": "torch_mobilenetv2_96",
                "baseline": {"float32_litert_torch_s": round(float_s, 2), "float32_size_bytes": len(float_bytes)},
                "eval_samples": N_EVAL,
                "calibration_samples": N_CAL,
                "targets": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
