"""Model surgery on Keras 3 layer chains: rebuild a model with fewer channels per layer.

Structured pruning and width-multiplier students both need "the same network,
narrower". This module walks a model that is a single chain of layers
(Sequential, or a functional model without branches), tracks which channels of
the tensor flowing between layers survive, and rebuilds a genuinely smaller
dense model, slicing the kept weights into every layer that consumes those
channels (Conv2D, DepthwiseConv2D, Dense, BatchNormalization, and the
positions of a Flatten).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgert.errors import ConversionError
from edgert.optimize._keras import keras

__all__ = ["linear_chain", "prunable_layers", "narrow_model", "CHANNEL_AGNOSTIC"]

#: Layers that pass channels through unchanged (pruning upstream needs no change in them).
CHANNEL_AGNOSTIC = {
    "ReLU", "Activation", "LeakyReLU", "ELU", "PReLU_", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dropout", "SpatialDropout2D", "ZeroPadding2D",
    "Cropping2D", "UpSampling2D", "Rescaling", "GaussianNoise", "ActivityRegularization",
}
_WIDTH_KEY = {"Conv2D": "filters", "Dense": "units"}


def linear_chain(model: Any) -> list[Any]:
    """The model's layers in order, when the model is one chain (no branches, each layer used once).

    Raises:
        ConversionError: The model branches (e.g. residual adds), so channel surgery cannot follow it.
    """
    layers = [layer for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
    if model.__class__.__name__ == "Sequential":
        return layers
    prev = None
    for layer in layers:
        nodes = layer._inbound_nodes  # Keras 3: one node per call of the layer
        if len(nodes) != 1:
            raise ConversionError(f"layer {layer.name} is used {len(nodes)} times",
                                  "structured pruning needs a plain chain of layers")
        tensors = nodes[0].input_tensors
        if len(tensors) != 1:
            raise ConversionError(
                f"layer {layer.name} takes {len(tensors)} inputs (the model branches)",
                "structured pruning and width scaling need a plain chain of layers; use magnitude pruning or distillation",
            )
        producer = tensors[0]._keras_history.operation
        if prev is not None and producer is not prev:
            raise ConversionError(
                f"layer {layer.name} does not follow {prev.name} (the model branches)",
                "structured pruning and width scaling need a plain chain of layers; use magnitude pruning or distillation",
            )
        prev = layer
    return layers


def prunable_layers(model: Any) -> list[Any]:
    """Conv2D and Dense layers whose outputs can be narrowed (every one except the layer that produces the model output)."""
    chain = linear_chain(model)
    last_weighted = max((i for i, layer in enumerate(chain) if layer.__class__.__name__ in _WIDTH_KEY), default=-1)
    return [layer for i, layer in enumerate(chain) if layer.__class__.__name__ in _WIDTH_KEY and i != last_weighted]


def narrow_model(
    model: Any,
    choose: Callable[[Any, np.ndarray | None], np.ndarray | None],
    *,
    copy_weights: bool = True,
    name_suffix: str = "narrow",
) -> Any:
    """Rebuild ``model`` with fewer output channels in some layers.

    Args:
        model: A Keras model that is one chain of layers.
        choose: ``choose(layer, kernel)`` → sorted indices of the output channels to keep for a
            prunable Conv2D/Dense layer (``kernel`` is its weight already sliced to the surviving
            input channels, or None when ``copy_weights`` is False), or None to keep all.
        copy_weights: Copy the kept weights (pruning) or leave fresh initial weights (a student).
        name_suffix: Appended to the model name.

    Returns:
        A new, smaller Keras model with the same input shape.

    Raises:
        ConversionError: The model branches or has a layer that channel surgery cannot follow.
    """
    k = keras()
    chain = linear_chain(model)
    prunable = {layer.name for layer in prunable_layers(model)}
    keep_in: np.ndarray | None = None  # surviving channels of the tensor entering the current layer
    new_layers, new_weights = [], []
    for layer in chain:
        kind = layer.__class__.__name__
        config = layer.get_config()
        weights = [np.asarray(w) for w in layer.get_weights()]
        if kind in _WIDTH_KEY:
            kernel = weights[0] if weights else None
            if kernel is not None and keep_in is not None:
                kernel = kernel[..., keep_in, :]
            keep_out = choose(layer, kernel if copy_weights else None) if layer.name in prunable else None
            if keep_out is not None:
                keep_out = np.sort(np.asarray(keep_out, dtype=np.int64))
                if len(keep_out) == 0:
                    raise ConversionError(f"layer {layer.name} would lose all its channels", "prune a smaller fraction")
                config[_WIDTH_KEY[kind]] = int(len(keep_out))
            if copy_weights and kernel is not None:
                sel = slice(None) if keep_out is None else keep_out
                weights = [kernel[..., sel]] + [w[sel] for w in weights[1:]]
            keep_in = keep_out
        elif kind == "DepthwiseConv2D":
            mult = int(config.get("depth_multiplier", 1))
            if keep_in is not None:
                if copy_weights:
                    weights = [weights[0][:, :, keep_in, :]] + [
                        w.reshape(-1, mult)[keep_in].reshape(-1) for w in weights[1:]
                    ]
                keep_in = (keep_in[:, None] * mult + np.arange(mult)[None, :]).reshape(-1)
        elif kind in ("BatchNormalization", "LayerNormalization") and keep_in is not None:
            if kind == "LayerNormalization" and config.get("axis") not in (-1, [-1]):
                raise ConversionError(f"layer {layer.name}: cannot narrow a LayerNormalization over axis {config.get('axis')}")
            if copy_weights:
                weights = [w[keep_in] for w in weights]
        elif kind == "Flatten":
            if keep_in is not None:
                shape = tuple(int(d) for d in layer.input.shape[1:])
                channels = shape[-1]
                positions = int(np.prod(shape[:-1]))
                keep_in = (np.arange(positions)[:, None] * channels + keep_in[None, :]).reshape(-1)
        elif kind in CHANNEL_AGNOSTIC or kind == "BatchNormalization":
            pass
        elif keep_in is not None:
            raise ConversionError(
                f"layer {layer.name} ({kind}) cannot follow a narrowed layer",
                "structured pruning supports Conv2D, DepthwiseConv2D, Dense, BatchNormalization, Flatten, "
                "pooling and activations",
            )
        new_layers.append(layer.__class__.from_config(config))
        new_weights.append(weights)
    inp = k.Input(shape=tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype, name=model.inputs[0].name)
    out = inp
    for layer in new_layers:
        out = layer(out)
    narrowed = k.Model(inp, out, name=f"{model.name}_{name_suffix}")
    if copy_weights:
        for layer, weights in zip(new_layers, new_weights, strict=True):
            if weights:
                layer.set_weights(weights)
    return narrowed
