"""Turn images and camera frames into a model's input tensor.

The plan (:class:`ImagePreprocess`) is computed once per model from its edgert
metadata (``preprocessing``, see :mod:`edgert.model.metadata`) or, when there is
none, from the input tensor itself. Per frame the work is then a resize, an
optional channel reorder and one table lookup: for 8-bit pixels normalisation
and quantisation are fused into a ``pixel -> input value`` table of 256 entries
per channel, so no float arithmetic touches the frame.

Only numpy and Pillow are used; OpenCV frames (``numpy`` BGR arrays) are
accepted with ``color="bgr"``.

Defaults without metadata: pixels scaled to [0, 1] (mean 0, std 255). For a
quantized input whose representable float range is clearly [0, 255] (e.g.
scale 1, zero point -128) or [-1, 1], that range is used instead, because a
model quantized that way was calibrated on such pixels. An 8-bit input without
quantization takes the pixels themselves (uint8 0..255; int8 pixel - 128).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgert.errors import InputDataError
from edgert.model.reader import TensorSpec

if TYPE_CHECKING:  # Pillow is a hard dependency, but keep import-time cost off the hot path
    from PIL import Image

__all__ = ["ImagePreprocess", "image_preprocess_for", "prepare_image", "COLORS", "RESIZE_MODES"]

log = logging.getLogger("edgert.runtime.preprocess")

#: Colour orders a model (or a frame) can have.
COLORS = ("rgb", "bgr", "grayscale")
#: How a frame is brought to the model's size.
RESIZE_MODES = ("bilinear", "nearest", "center_crop")
#: Input dtypes an image can be written to.
_IMAGE_DTYPES = ("float32", "float16", "uint8", "int8", "int16")
#: Beyond this aspect ratio a 2-D input is a spectrogram/feature map, not a picture.
_MAX_ASPECT = 4.0
#: Pillow reducing_gap for bilinear downscaling (see ImagePreprocess._resize_pil).
_REDUCING_GAP = 3.0
#: ITU-R 601-2 luma in Pillow's 16-bit fixed point (so arrays and convert("L") agree to the bit).
_LUMA = np.array([19595, 38470, 7471], np.uint32)


@dataclass(frozen=True, eq=False)
class ImagePreprocess:
    """Everything needed to turn a frame into one model input, computed once.

    Attributes:
        height: Model input height in pixels.
        width: Model input width in pixels.
        channels: 1 (grayscale) or 3.
        color: Channel order the model expects: ``"rgb"``, ``"bgr"`` or ``"grayscale"``.
        resize: ``"bilinear"``, ``"nearest"`` or ``"center_crop"`` (crop to the
            model's aspect ratio, then bilinear).
        mean: Per-channel mean (float32, shape ``(channels,)``).
        std: Per-channel std; model float input = (pixel_0_255 - mean) / std.
        dtype: Input tensor dtype name.
        scale: Input quantization scale, None for float inputs.
        zero_point: Input quantization zero point, None for float inputs.
        shape: Input tensor shape (what :func:`prepare_image` returns).
        layout: ``"NHWC"`` or ``"NCHW"``.
        lut: ``(channels, 256)`` table: 8-bit pixel value -> input value (normalised
            and quantized) in ``dtype``; the per-frame path is a lookup.
        uniform: True when every channel shares one table row (one lookup per frame).
        shortcut: ``"identity"`` / ``"xor128"`` when the table is ``p`` / ``p - 128``
            (raw-pixel uint8 and the usual int8 models): one vector op, no lookup.
    """

    height: int
    width: int
    channels: int
    color: str
    resize: str
    mean: np.ndarray
    std: np.ndarray
    dtype: str
    scale: float | None
    zero_point: int | None
    shape: tuple[int, ...]
    layout: str = "NHWC"
    lut: np.ndarray | None = field(default=None, repr=False)
    uniform: bool = field(default=False, repr=False)
    shortcut: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (for reports and ``--verbose`` logs)."""
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "color": self.color,
            "resize": self.resize,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "shape": list(self.shape),
            "layout": self.layout,
        }

    # -- the per-frame path ----------------------------------------------------------
    def __call__(self, image: Image.Image | np.ndarray, color: str = "rgb") -> np.ndarray:
        """Prepare one image (see :func:`prepare_image`)."""
        pixels = self._resized_pixels(image, color)
        if pixels.dtype == np.uint8:
            out = self._lookup(pixels)
        else:
            out = self._arithmetic(pixels)
        if self.layout == "NCHW":
            out = np.moveaxis(out, -1, 0)
        return out.reshape(self.shape)

    def _lookup(self, pixels: np.ndarray) -> np.ndarray:
        lut = self.lut
        if self.shortcut == "identity":  # uint8 input of raw pixels
            return np.array(pixels, dtype=np.uint8, copy=True)
        if self.shortcut == "xor128":  # int8 input = pixel - 128 (the common int8 image models)
            return (pixels ^ np.uint8(0x80)).view(np.int8)
        assert lut is not None, "image_preprocess_for builds the table of every plan"
        if self.uniform:
            return np.take(lut[0], pixels)
        # One fancy-index over a flattened table: pixel + 256 * channel.
        idx = pixels.astype(np.intp)
        idx += np.arange(self.channels, dtype=np.intp) * 256
        return np.take(lut.reshape(-1), idx)

    def _arithmetic(self, pixels: np.ndarray) -> np.ndarray:
        # Float or 16-bit frames (e.g. from a .npy source) take the arithmetic path.
        values = (pixels.astype(np.float32) - self.mean) / self.std
        return _quantize(values, self.dtype, self.scale, self.zero_point)

    def _resized_pixels(self, image: Image.Image | np.ndarray, color: str) -> np.ndarray:
        """Resize in the frame's own channel order, then convert channels on the small image."""
        from PIL import Image

        if color not in COLORS:
            raise InputDataError(f"unknown colour order {color!r}", f"use one of: {', '.join(COLORS)}")
        if isinstance(image, Image.Image):
            img = image
            if self.channels == 1:
                if img.mode != "L":
                    img = img.convert("L")
                color = "grayscale"
            else:
                if img.mode != "RGB":
                    img = img.convert("RGB")
                color = "rgb"  # a Pillow image is RGB by definition
            arr = _pixels(self._resize_pil(img))
        else:
            arr = np.asarray(image)
            if arr.ndim == 4 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr = arr[..., 0]
            if arr.ndim == 3 and arr.shape[-1] == 4:  # RGBA/BGRA: drop alpha
                arr = arr[..., :3]
            if arr.ndim == 2:
                color = "grayscale"
            elif arr.ndim != 3 or arr.shape[-1] != 3:
                raise InputDataError(
                    f"cannot use an array of shape {list(arr.shape)} as an image",
                    "pass HxW (grayscale) or HxWx3 pixels",
                )
            if (color == "bgr" and self.color != "bgr" and arr.ndim == 3 and arr.dtype == np.uint8
                    and arr.shape[:2] != (self.height, self.width)):
                # Pillow swaps B and R while it copies the frame in (raw mode "BGR"), for free;
                # swapping on the resized array would be another pass over it.
                h, w = arr.shape[:2]
                img = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(arr), "raw", "BGR", 0, 1)
                arr, color = _pixels(self._resize_pil(img)), "rgb"
            else:
                arr = self._resize_array(arr)
        return self._convert_channels(arr, color)

    def _resize_pil(self, img: Image.Image) -> Image.Image:
        from PIL import Image

        if img.size == (self.width, self.height):
            return img
        if self.resize == "center_crop":
            img = img.crop(_center_box(img.size[0], img.size[1], self.width, self.height))
        if self.resize == "nearest":
            return img.resize((self.width, self.height), Image.Resampling.NEAREST)
        # Shrinking a camera frame more than 3x: box-reduce first (Pillow's reducing_gap),
        # ~30% faster at 640x480 -> 96x96; identical to plain bilinear below 3x.
        return img.resize((self.width, self.height), Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)

    def _resize_array(self, arr: np.ndarray) -> np.ndarray:
        if arr.shape[:2] == (self.height, self.width):
            return arr
        from PIL import Image

        if arr.dtype == np.uint8:
            return _pixels(self._resize_pil(Image.fromarray(np.ascontiguousarray(arr))))
        # Pillow resizes float images one 32-bit plane ("F" mode) at a time.
        planes = arr[..., None] if arr.ndim == 2 else arr
        out = [
            np.asarray(self._resize_pil(Image.fromarray(np.ascontiguousarray(planes[..., c], np.float32), "F")))
            for c in range(planes.shape[-1])
        ]
        stacked = np.stack(out, axis=-1)
        return stacked[..., 0] if arr.ndim == 2 else stacked

    def _convert_channels(self, arr: np.ndarray, color: str) -> np.ndarray:
        """Frame channel order -> model channel order; returns HxWxC."""
        if self.channels == 1:
            if arr.ndim == 2:
                return arr[..., None]
            rgb = arr if color == "rgb" else arr[..., ::-1]
            if arr.dtype == np.uint8:
                luma = (rgb.astype(np.uint32) @ _LUMA + 0x8000) >> 16
                return luma.astype(np.uint8)[..., None]
            return (rgb.astype(np.float32) @ (_LUMA.astype(np.float32) / 65536))[..., None]
        if arr.ndim == 2:
            return np.repeat(arr[..., None], 3, axis=-1)
        if color != self.color:  # rgb <-> bgr
            # Three plane copies into a contiguous array: ~3x faster than materialising the
            # reversed view, and the table lookup after it then runs on contiguous memory.
            out = np.empty_like(arr)
            out[..., 0], out[..., 1], out[..., 2] = arr[..., 2], arr[..., 1], arr[..., 0]
            return out
        return arr


def _pixels(img: Image.Image) -> np.ndarray:
    """A Pillow image's pixels as a read-only array, like ``np.asarray(img)``.

    For the 8-bit modes frames come in (RGB, L) one ``tobytes`` copy wrapped
    without a second one: about half the cost of ``np.asarray``'s
    array-interface route (~10 instead of ~20 us for 96x96 RGB), which is paid on every frame.
    """
    if img.mode == "RGB":
        return np.frombuffer(img.tobytes(), np.uint8).reshape(img.height, img.width, 3)
    if img.mode == "L":
        return np.frombuffer(img.tobytes(), np.uint8).reshape(img.height, img.width)
    return np.asarray(img)


def _center_box(w: int, h: int, tw: int, th: int) -> tuple[int, int, int, int]:
    """The largest centred box of the target aspect ratio inside a w x h image."""
    target = tw / th
    if w / h > target:
        cw, ch = max(1, round(h * target)), h
    else:
        cw, ch = w, max(1, round(w / target))
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def _quantize(values: np.ndarray, dtype: str, scale: float | None, zero_point: int | None) -> np.ndarray:
    """Float -> input dtype; same rounding as :func:`edgert.runtime.quantize` (half to even, clamp)."""
    dt = np.dtype(dtype)
    if scale is None:
        return values.astype(dt)
    info = np.iinfo(dt)
    q = np.rint(values.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dt)


def _per_channel(value: Any, channels: int, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, np.float32))
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.shape != (channels,):
        raise InputDataError(
            f"metadata preprocessing.{name} has {arr.size} values for a {channels}-channel input",
            "give one value or one per channel",
        )
    if name == "std" and np.any(arr == 0):
        raise InputDataError("metadata preprocessing.std contains 0", "std must be non-zero")
    return arr


def _geometry(spec: TensorSpec, layout: str | None) -> tuple[int, int, int, str]:
    """(height, width, channels, layout) of an image input, or InputDataError."""
    shape = tuple(spec.shape)
    dims: tuple[int, ...] = ()
    if len(shape) == 4 and shape[0] == 1:
        dims = shape[1:]
    elif len(shape) == 3:
        # HxWxC when the last axis is a channel count, else a batched 1xHxW grayscale image.
        dims = shape if shape[-1] in (1, 3) or layout == "NCHW" else (shape[1:] if shape[0] == 1 else ())
    elif len(shape) == 2 and min(shape) > 1:
        dims = shape
    if len(dims) == 2:
        h, w, c = dims[0], dims[1], 1
        layout = "NHWC"
    elif len(dims) == 3:
        if layout == "NCHW" or (layout is None and dims[0] in (1, 3) and dims[2] not in (1, 3)):
            c, h, w = dims
            layout = "NCHW"
        else:
            h, w, c = dims
            layout = "NHWC"
    else:
        raise InputDataError(
            f"input {spec.name!r} of shape {list(shape)} is not an image",
            "this model takes features or a signal; use an npy:, serial: or stdin source",
        )
    if c not in (1, 3) or h < 1 or w < 1:
        raise InputDataError(
            f"input {spec.name!r} of shape {list(shape)} is not an image ({c} channels)",
            "image models take 1 (grayscale) or 3 (colour) channels",
        )
    return h, w, c, layout


def _default_normalization(spec: TensorSpec) -> tuple[float, float]:
    """(mean, std) for a model without metadata, read from its input quantization.

    An 8-bit input without quantization takes pixel values as they are (uint8:
    0..255, int8: pixel - 128); a float input takes pixels scaled to [0, 1].
    """
    if not spec.quantized and spec.dtype == "uint8":
        return 0.0, 1.0
    if not spec.quantized and spec.dtype == "int8":
        return 128.0, 1.0
    if spec.quantized and spec.dtype in ("int8", "uint8"):
        info = np.iinfo(np.dtype(spec.dtype))
        assert spec.scale is not None and spec.zero_point is not None  # quantized: the reader sets both
        lo = (info.min - spec.zero_point) * spec.scale
        hi = (info.max - spec.zero_point) * spec.scale
        if abs(lo) < 2.0 and abs(hi - 255.0) < 0.1 * 255:
            return 0.0, 255.0 / hi if hi > 0 else 1.0  # calibrated on raw pixels
        if abs(lo + 1.0) < 0.1 and abs(hi - 1.0) < 0.1:
            return 127.5, 127.5  # calibrated on [-1, 1]
    return 0.0, 255.0


def _shortcut(lut: np.ndarray, dtype: str) -> str | None:
    """Name a table that is a plain bit operation on the pixel, else None."""
    pixels = np.arange(256)
    if dtype == "uint8" and np.array_equal(lut[0], pixels):
        return "identity"
    if dtype == "int8" and np.array_equal(lut[0], pixels - 128):
        return "xor128"
    return None


def image_preprocess_for(spec: TensorSpec, metadata: dict | None) -> ImagePreprocess:
    """Build the preprocessing plan for one model input.

    Args:
        spec: The input tensor.
        metadata: The model's edgert metadata (its ``preprocessing`` entry is
            used when present), or None.

    Raises:
        InputDataError: The input cannot take an image (a feature vector, an
            audio spectrogram, an unsupported dtype) or the metadata is malformed.
    """
    pre = (metadata or {}).get("preprocessing") or {}
    if not isinstance(pre, dict):
        raise InputDataError("metadata preprocessing is not an object", "re-embed the metadata with edgert")
    layout = pre.get("layout")
    if layout not in (None, "NHWC", "NCHW"):
        raise InputDataError(f"metadata preprocessing.layout {layout!r} is not NHWC or NCHW")
    if spec.dtype not in _IMAGE_DTYPES or (spec.dtype == "int16" and not spec.quantized):
        raise InputDataError(
            f"input {spec.name!r} has dtype {spec.dtype}, which an image cannot be written to",
            "image models take float32, uint8 or int8 inputs",
        )
    height, width, channels, layout = _geometry(spec, layout)
    if not pre and max(height, width) / min(height, width) > _MAX_ASPECT:
        # Keyword-spotting style 49x10 feature maps look like images only by rank.
        raise InputDataError(
            f"input {spec.name!r} of shape {list(spec.shape)} looks like a feature map, not an image",
            "feed it from an npy:, serial: or stdin source; if it is an image model, embed preprocessing metadata",
        )
    if pre.get("input_size") and list(pre["input_size"]) != [height, width]:
        log.warning(
            "metadata input_size %s differs from the input tensor (%dx%d); using the tensor",
            pre["input_size"], height, width,
        )
    color = pre.get("color") or ("grayscale" if channels == 1 else "rgb")
    if color not in COLORS:
        raise InputDataError(f"metadata preprocessing.color {color!r} is unknown", f"use one of: {', '.join(COLORS)}")
    if (color == "grayscale") != (channels == 1):
        color = "grayscale" if channels == 1 else "rgb"
    resize = pre.get("resize") or "bilinear"
    if resize not in RESIZE_MODES:
        raise InputDataError(f"metadata preprocessing.resize {resize!r} is unknown", f"use one of: {', '.join(RESIZE_MODES)}")
    if "mean" in pre or "std" in pre:
        mean_v, std_v = pre.get("mean", 0.0), pre.get("std", 1.0)
    else:
        mean_v, std_v = _default_normalization(spec)
    mean = _per_channel(mean_v, channels, "mean")
    std = _per_channel(std_v, channels, "std")
    pixels = np.arange(256, dtype=np.float32)
    lut = np.stack([_quantize((pixels - mean[c]) / std[c], spec.dtype, spec.scale, spec.zero_point) for c in range(channels)])
    lut.setflags(write=False)
    uniform = bool(all(np.array_equal(lut[0], row) for row in lut))
    return ImagePreprocess(
        height=height,
        width=width,
        channels=channels,
        color=color,
        resize=resize,
        mean=mean,
        std=std,
        dtype=spec.dtype,
        scale=spec.scale,
        zero_point=spec.zero_point,
        shape=tuple(spec.shape),
        layout=layout,
        lut=lut,
        uniform=uniform,
        shortcut=_shortcut(lut, spec.dtype) if uniform else None,
    )


def prepare_image(
    image: Image.Image | np.ndarray,
    spec: TensorSpec,
    metadata: dict | None = None,
    *,
    plan: ImagePreprocess | None = None,
    color: str = "rgb",
) -> np.ndarray:
    """Turn one image into the input tensor ``spec`` expects.

    Args:
        image: A Pillow image (any mode) or an ``HxW`` / ``HxWx3`` numpy array
            (uint8 pixels 0-255, or float pixels on the same scale).
        spec: The model input tensor.
        metadata: The model's edgert metadata, used when ``plan`` is None.
        plan: A plan from :func:`image_preprocess_for` (pass it in loops).
        color: Channel order of a numpy ``image``: ``"rgb"`` (Pillow) or ``"bgr"`` (OpenCV, and
            picamera2's ``RGB888``, which it stores B, G, R).

    Returns:
        An array of shape ``spec.shape`` and dtype ``spec.dtype``, quantized when the input is.

    Raises:
        InputDataError: The model input cannot take an image, or the image is not one.
    """
    if plan is None:
        plan = image_preprocess_for(spec, metadata)
    return plan(image, color=color)
