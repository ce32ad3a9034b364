"""Reading images, listing folders of them, and normalising to what SAM takes: (H, W, 3) uint8 RGB.

:func:`to_rgb_uint8` picks the channels, then normalises intensities with a
:mod:`samprompt.normalize` object (by default :class:`~samprompt.normalize.Auto`:
uint8 unchanged, [0, 1] floats times 255, anything else a [0.5, 99.5]
percentile stretch). Channels: (H, W) and (H, W, 1) are repeated to RGB and
(H, W, 4) drops alpha; other channel counts (multispectral bands) are the
caller's choice: select three bands first.

Files are read with OpenCV (PNG, JPEG, TIFF, BMP, WebP; 16-bit kept) as RGB(A), and
``.npy`` arrays with numpy (never unpickled).
A labelled folder holds ``images/NAME.ext`` and ``masks/NAME.png`` (a label
map: 0 = background, k = object k).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .errors import ImageError
from .normalize import Auto, Normalizer

ImageLike = Union[str, Path, np.ndarray]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: 'DICM' after the 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _without_png_chunks(data: np.ndarray, drop: tuple[bytes, ...]) -> np.ndarray:
    """A PNG's bytes without the named ancillary chunks. OpenCV ignores colour profiles anyway, and libpng
    prints a warning on the terminal for a malformed one (scikit-image's page.png): dropped, nothing is lost."""
    raw = data.tobytes()
    pos, keep, found = 8, [raw[:8]], False
    while pos + 12 <= len(raw):
        n = int.from_bytes(raw[pos:pos + 4], "big")
        kind, end = raw[pos + 4:pos + 8], pos + 12 + n
        if kind in drop:
            found = True
        else:
            keep.append(raw[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if not found:
        return data
    keep.append(raw[pos:])
    return np.frombuffer(b"".join(keep), np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB(A) or gray array of its own dtype (not yet normalised)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ImageError(f"cannot read {path} as a plain numpy array: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix in (".dcm", ".dicom") or suffix not in IMAGE_SUFFIXES and _is_dicom(path):  # not decoded: OpenCV
        # takes a DICOM preamble for a TIFF and prints its errors on the terminal
        raise ImageError(f"{path} is a DICOM file: samprompt medical reads DICOM series (a folder, a zip or a "
                         "DICOMDIR), and samprompt medical convert writes them as NIfTI")
    data = np.fromfile(str(path), np.uint8)
    if data[:8].tobytes() == PNG_SIGNATURE:
        data = _without_png_chunks(data, (b"iCCP",))
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        if suffix not in IMAGE_SUFFIXES:
            raise ImageError(f"{path}: unsupported file type {path.suffix!r}; "
                             f"use {', '.join(IMAGE_SUFFIXES)} or .npy")
        raise ImageError(f"cannot decode image file {path} (corrupt or unsupported format)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def read_label_map(path: str | Path) -> np.ndarray:
    """Read a label-map PNG (0 = background, k = object k) as an (H, W) integer array."""
    labels = read_image(path)
    if labels.ndim == 3:
        labels = labels[..., 0]
    if not np.issubdtype(labels.dtype, np.integer):
        raise ImageError(f"{path} is not a label map: dtype {labels.dtype}, expected uint8 or uint16")
    return labels


def list_images(path: str | Path) -> list[Path]:
    """The image files to work on: ``path`` itself if it is a file, else the images of the
    folder (or of its ``images/`` subfolder when it has one), sorted by name."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"no such file or folder: {path}")
    if not path.is_dir():
        return [path]
    sub = path / "images" if (path / "images").is_dir() else path
    return sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def iter_labelled(folder: str | Path) -> Iterator[tuple[str, Path, Path]]:
    """(name, image path, mask path) for each image of a labelled folder that has a mask, sorted by name."""
    folder = Path(folder)
    img_dir, mask_dir = folder / "images", folder / "masks"
    if not img_dir.is_dir() or not mask_dir.is_dir():
        raise ImageError(f"{folder} is not a labelled folder: it needs images/ and masks/ subfolders")
    for p in list_images(img_dir):
        m = mask_dir / f"{p.stem}.png"
        if m.exists():
            yield p.stem, p, m


def to_rgb_uint8(image: ImageLike, normalize: Normalizer | None = None) -> np.ndarray:
    """Normalise an image (array or file path) to (H, W, 3) uint8 RGB.

    Args:
        image: (H, W) or (H, W, C) array with C in (1, 3, 4), of any integer,
            float or bool dtype, or an image file path.
        normalize: the intensity normaliser (default :class:`~samprompt.normalize.Auto`).
    """
    if isinstance(image, (str, Path)):
        image = read_image(image)
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)  # PIL images, torch CPU tensors, lists
        except Exception as exc:
            raise ImageError(f"expected an image array or file path, got {type(image).__name__}") from exc
    arr = image
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[2] > 4:
        raise ImageError(
            f"image has {arr.shape[2]} channels; choose three bands for RGB first (e.g. image[..., [3, 2, 1]])"
        )
    elif not (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        raise ImageError(f"image must be HxW or HxWxC with C in (1, 3, 4), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"image is empty: shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    out = (normalize or Auto())(arr)
    if out.dtype != np.uint8 or out.shape != arr.shape:
        raise ImageError(f"normaliser {normalize!r} returned {out.dtype} {out.shape}, expected uint8 {arr.shape}")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)
