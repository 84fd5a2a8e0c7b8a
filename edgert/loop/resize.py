"""OpenCV resize for frames that came from OpenCV (cameras, video files).

:class:`~edgert.runtime.preprocess.ImagePreprocess` resizes with Pillow, which is
the reference (``edgert predict``, accuracy checks). For a BGR ``uint8`` frame
that OpenCV already decoded, going through Pillow costs a copy into a Pillow
image, Pillow's resampler and a copy back (~110 us for 160x120 -> 96x96 on a
desktop core). ``cv2.resize`` does the same job in ~10-60 us, so the loop's
capture thread resizes such frames with OpenCV wherever the result matches
Pillow's (to 1 pixel level), and hands the plan a frame of the model's size, so
the plan skips its own resize.

How close the two are (pixel levels 0-255, measured on the conformance
pictures and on noise; pinned by ``tests/loop/test_preprocess.py``):

=================  =======================  ===========================================
plan resize        OpenCV interpolation     difference from the Pillow path
=================  =======================  ===========================================
``nearest``        ``INTER_NEAREST_EXACT``  none (same pixel picked, bit-exact)
bilinear, growing  ``INTER_LINEAR``         at most 1 level (rounding)
bilinear, shrink   Pillow (default), or     ``INTER_AREA``: mean ~1 level on a photo, up
                   ``INTER_AREA`` (opt-in)  to ~40 on edges; VWW person score moves by
                                            up to 0.16 on the conformance pictures
=================  =======================  ===========================================

Shrinking is where they differ, so it stays on Pillow unless the caller opts in
(``Pipeline(..., opencv_shrink=True)``): Pillow's bilinear widens its triangle filter
by the scale factor (it anti-aliases), ``INTER_LINEAR`` does not (on a photo it
is twice as far from Pillow as ``INTER_AREA``: mean ~2 levels, up to ~60), and
``INTER_AREA`` averages the covered source area, which is the closest
anti-aliasing filter OpenCV has. ``center_crop`` crops the same box as the plan
and then resizes like bilinear.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgert.runtime.preprocess import ImagePreprocess, _center_box

__all__ = ["opencv_resizer"]


def opencv_resizer(plan: ImagePreprocess, shrink: bool = False) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function that brings an OpenCV frame to ``plan``'s size, or None without OpenCV.

    Args:
        plan: The model's preprocessing plan.
        shrink: Also shrink bilinear/center-crop frames (``INTER_AREA``). Off by
            default: such frames are returned unchanged and the plan shrinks them
            with Pillow, because the two filters give visibly different inputs
            (on the VWW conformance pictures the person score moves by up to 0.16).

    Returns:
        ``resize(frame) -> frame`` for ``HxW`` / ``HxWx3`` uint8 arrays in the
        frame's own channel order (other frames are returned unchanged, for the
        plan to handle), or None when OpenCV is not installed.
    """
    try:
        import cv2
    except ImportError:
        return None
    width, height, mode = plan.width, plan.height, plan.resize
    nearest = getattr(cv2, "INTER_NEAREST_EXACT", None)
    if mode == "nearest" and nearest is None:  # OpenCV < 4.5: its INTER_NEAREST picks other pixels than Pillow
        return None

    def resize(frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            return frame
        if frame.ndim == 3 and frame.shape[-1] != 3:
            return frame
        h, w = frame.shape[:2]
        if (h, w) == (height, width):
            return frame
        original = frame
        if mode == "center_crop":
            left, top, right, bottom = _center_box(w, h, width, height)
            frame = frame[top:bottom, left:right]
            h, w = frame.shape[:2]
        if mode == "nearest":
            assert nearest is not None  # without INTER_NEAREST_EXACT, opencv_resizer returned None
            interpolation = nearest
        elif w <= width and h <= height:
            interpolation = cv2.INTER_LINEAR  # enlarging: Pillow's filter is plain bilinear too
        elif shrink and w >= width and h >= height:
            interpolation = cv2.INTER_AREA
        else:  # shrinking (along at least one axis): Pillow's anti-aliased filter, the reference
            return original
        return cv2.resize(frame, (width, height), interpolation=interpolation)

    return resize
