"""Intensity normalisers: any image array -> uint8, as swappable objects (MONAI's array-transform style).

A normaliser is a callable ``(H, W) or (H, W, C) array -> uint8 array of the
same shape``; it works on any number of channels (choosing which bands become
RGB is the caller's business, see :func:`samprompt.images.to_rgb_uint8`).

* :class:`Auto` (the default): by dtype. uint8 unchanged; bool -> 0/255; float
  with every value in [0, 1] times 255; other floats and integers by
  :class:`Percentile`.
* :class:`Percentile`: a linear stretch of the image's own [lower, upper]
  percentile range to [0, 255] (robust to hot pixels; a constant image maps to 0).
* :class:`Window`: a fixed intensity window (lo, hi), e.g. a CT window in
  Hounsfield units; :meth:`Window.from_level` takes width and level as radiology gives them.
* :class:`FixedStretch`: per-channel fixed (lo, hi) statistics, e.g. computed
  once for a whole raster so that every tile is stretched alike.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import ImageError


def _linear(arr: np.ndarray, lo, hi) -> np.ndarray:
    """Map [lo, hi] linearly to [0, 255] (clipped, rounded); lo/hi broadcast over the last axis."""
    a = arr.astype(np.float64)
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    span = np.where(hi > lo, hi - lo, np.inf)  # an empty range maps everything to 0
    return np.clip((a - lo) * (255.0 / span), 0, 255).round().astype(np.uint8)


def _check_finite(arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ImageError("image contains NaN or inf values")


class Normalizer:
    """Base: ``normalizer(array) -> uint8 array of the same shape``."""

    def __call__(self, arr: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Percentile(Normalizer):
    """Stretch the image's [lower, upper] percentiles (over all channels together) to [0, 255]."""

    def __init__(self, lower: float = 0.5, upper: float = 99.5) -> None:
        if not 0 <= lower < upper <= 100:
            raise ImageError(f"percentiles need 0 <= lower < upper <= 100, got ({lower}, {upper})")
        self.lower, self.upper = float(lower), float(upper)

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        _check_finite(arr)
        lo, hi = np.percentile(arr.astype(np.float64), [self.lower, self.upper])
        return _linear(arr, lo, hi)


class Window(Normalizer):
    """A fixed window: ``lo`` -> 0, ``hi`` -> 255, linear between, clipped outside."""

    def __init__(self, lo: float, hi: float) -> None:
        if not hi > lo:
            raise ImageError(f"a window needs hi > lo, got ({lo}, {hi})")
        self.lo, self.hi = float(lo), float(hi)

    @classmethod
    def from_level(cls, width: float, level: float) -> "Window":
        """The window of ``width`` centred on ``level`` (CT's W/L: soft tissue is W400 L40)."""
        if width <= 0:
            raise ImageError(f"window width must be > 0, got {width}")
        return cls(level - width / 2, level + width / 2)

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        _check_finite(arr)
        return _linear(arr, self.lo, self.hi)


class FixedStretch(Normalizer):
    """Per-channel fixed statistics: channel c maps [lo[c], hi[c]] to [0, 255].

    ``lo``/``hi`` are numbers (every channel alike) or one value per channel.
    """

    def __init__(self, lo: float | Sequence[float], hi: float | Sequence[float]) -> None:
        lo_a, hi_a = np.atleast_1d(np.asarray(lo, np.float64)), np.atleast_1d(np.asarray(hi, np.float64))
        if lo_a.shape != hi_a.shape or lo_a.ndim != 1:
            raise ImageError(f"lo and hi need the same length, got {lo_a.tolist()} and {hi_a.tolist()}")
        if not np.all(hi_a > lo_a):
            raise ImageError(f"each channel needs hi > lo, got lo={lo_a.tolist()} hi={hi_a.tolist()}")
        self.lo, self.hi = lo_a.tolist(), hi_a.tolist()

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        _check_finite(arr)
        n = len(self.lo)
        channels = arr.shape[2] if arr.ndim == 3 else 1
        if n not in (1, channels):
            raise ImageError(f"FixedStretch has statistics for {n} channels, the image has {channels}")
        return _linear(arr, self.lo if n > 1 else self.lo[0], self.hi if n > 1 else self.hi[0])


class Auto(Normalizer):
    """The default: by dtype (see the module doc); ``stretch`` handles what is not uint8/bool/[0, 1] float."""

    def __init__(self, stretch: Normalizer | None = None) -> None:
        self.stretch = stretch or Percentile()

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype == np.uint8:
            return arr
        if arr.dtype == bool:
            return arr.astype(np.uint8) * 255
        if np.issubdtype(arr.dtype, np.floating):
            _check_finite(arr)
            if arr.size and arr.min() >= 0 and arr.max() <= 1:
                return (arr.astype(np.float64) * 255).round().astype(np.uint8)
            return self.stretch(arr)
        if np.issubdtype(arr.dtype, np.integer):
            return self.stretch(arr)
        raise ImageError(f"unsupported image dtype {arr.dtype}; use uint8, uint16, int or float")


__all__ = ["Auto", "FixedStretch", "Normalizer", "Percentile", "Window"]
