"""Reading and normalising images to what SAM takes: (H, W, 3) uint8 RGB.

Normalisation by input dtype:

* ``uint8``: unchanged.
* ``bool``: False -> 0, True -> 255.
* ``float`` with all values in [0, 1]: multiplied by 255 and rounded.
* other ``float``, ``uint16`` and other integer types: a linear stretch of the
  image's [0.5, 99.5] percentile range to [0, 255] (robust to hot pixels;
  a constant image maps to 0).

Channels: (H, W) and (H, W, 1) are repeated to RGB; (H, W, 4) drops alpha.
Files are read with OpenCV (PNG, JPEG, TIFF, BMP, ...; 16-bit kept) as RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from .errors import ImageError

ImageLike = Union[str, Path, np.ndarray]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB(A)/gray array of its own dtype (not yet normalised)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageError(f"cannot decode image file {path} (corrupt or unsupported format)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _stretch(arr: np.ndarray) -> np.ndarray:
    a = arr.astype(np.float64)
    lo, hi = np.percentile(a, [0.5, 99.5])
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


def to_rgb_uint8(image: ImageLike) -> np.ndarray:
    """Normalise an image (array or file path) to (H, W, 3) uint8 RGB; see module doc."""
    if isinstance(image, (str, Path)):
        image = read_image(image)
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)  # PIL images, torch CPU tensors, lists
        except Exception as exc:
            raise ImageError(f"expected an image array or file path, got {type(image).__name__}") from exc
    arr = image
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        pass
    elif arr.ndim == 2:
        arr = arr[..., None]
    else:
        raise ImageError(f"image must be HxW or HxWxC with C in (1, 3, 4), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"image is empty: shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == bool:
        out = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("image contains NaN or inf values")
        if arr.min() >= 0 and arr.max() <= 1:
            out = (arr.astype(np.float64) * 255).round().astype(np.uint8)
        else:
            out = _stretch(arr)
    elif np.issubdtype(arr.dtype, np.integer):
        out = _stretch(arr)
    else:
        raise ImageError(f"unsupported image dtype {arr.dtype}; use uint8, uint16, int or float")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)
