"""Atomic file writes: a reader never sees a half-written output."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success, and note it in the
    folder's ledger of files samprompt wrote (:mod:`samprompt.outputs`)."""
    from .outputs import record_written, sha256_of

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        record_written(path, sha256_of(tmp))  # before the move: a kill between the two leaves no file of ours unknown
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_image(path: str | Path, image) -> Path:
    """Write an RGB(A)/gray/label image with OpenCV, atomically (format from the suffix)."""
    import cv2
    import numpy as np

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(Path(path).suffix or ".png", arr)
    if not ok:  # pragma: no cover - OpenCV refuses only odd dtypes
        raise ValueError(f"cannot encode image of dtype {arr.dtype} as {Path(path).suffix}")
    return atomic_write_bytes(path, buf.tobytes())


def save_figure(fig, path: str | Path, **kw) -> Path:
    """``fig.savefig`` atomically (the format from the suffix), noted in the ledger as every write here."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", **kw)
    return path


def gzip_bytes(data: bytes) -> bytes:
    """gzip ``data`` without a time stamp, so the same data always gives the same bytes."""
    import gzip
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()
