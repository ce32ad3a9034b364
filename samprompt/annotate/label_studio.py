"""Label Studio's formats: its brush RLE, and its task JSON in and out.

Label Studio stores a brush mask as a run-length code of the mask's RGBA pixels
(the ``rle-pack`` bit format of its front end: a 32-bit value count, the word size
and four run-length field sizes, then chunks that are either a run of one value or
a list of literal values). :func:`encode_rle` writes exactly the bytes of Label
Studio's own ``brush.mask2rle`` (checked in the tests against its converter);
:func:`decode_rle` reads any valid code, whichever field sizes made it.

A task JSON (Label Studio's "JSON" export, or a file to import into it) is a list of
tasks ``{"data": {"image": URL}, "annotations": [{"result": [...]}]}``; each result is a
region: ``brushlabels`` with an RLE, or ``polygonlabels`` with points in percent of
the image's width and height.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from ..errors import SampromptError

_HEADER_SIZES = (3, 4, 8, 16)  # the run-length field sizes Label Studio's encoder writes
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names so


def encode_rle(mask: np.ndarray) -> list[int]:
    """A (H, W) mask as Label Studio brush RLE bytes (its ``mask2rle(mask * 255)``, byte for byte).

    Every run of the RGBA values is one chunk ``1, size index (2 bits), length - 1, value (8 bits)``, its
    length field the smallest of 3, 4, 8 and 16 bits that holds it (runs over 65,536 values are split, as
    Label Studio splits them); the chunks are packed with numpy, not bit by bit.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise SampromptError(f"a brush mask is 2-D, got shape {mask.shape}")
    flat = (mask > 0).ravel().astype(np.uint8) * 255
    num = flat.size * 4  # R, G, B and alpha, each the mask value
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    runs = np.diff(np.concatenate([starts, [flat.size]])).astype(np.int64) * 4
    values = flat[starts].astype(np.int64)
    kind = np.searchsorted(np.array([8, 16, 256]), runs)  # 0: <= 8, 1: <= 16, 2: <= 256, 3: longer
    pieces = np.where(kind == 3, (runs - 1) // 2**16 + 1, 1)  # Label Studio's 65,536-value pieces
    idx = np.repeat(np.arange(len(runs)), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    k = np.arange(len(idx)) - first  # piece number within its run
    last = k == pieces[idx] - 1
    length = np.where(last, runs[idx] - k * 2**16, 2**16)
    size = np.array(_HEADER_SIZES)[kind[idx]]
    codes = ((((4 | kind[idx]) << size) | (length - 1)) << 8) | values[idx]
    nbits = 3 + size + 8
    header = f"{num:032b}{8 - 1:05b}" + "".join(f"{s - 1:04b}" for s in _HEADER_SIZES)
    owner = np.repeat(np.arange(len(codes)), nbits)
    shift = np.repeat(np.cumsum(nbits), nbits) - 1 - np.arange(int(nbits.sum()))
    body = ((codes[owner] >> shift) & 1).astype(np.uint8)
    bits = np.concatenate([np.frombuffer(header.encode(), np.uint8) - ord("0"), body])
    bits = np.concatenate([bits, np.zeros(8 - len(bits) % 8, np.uint8)])  # Label Studio pads a whole byte
    return np.packbits(bits).tolist()                                        # when already aligned


def decode_rle(rle, shape: tuple[int, int]) -> np.ndarray:
    """Label Studio brush RLE -> (H, W) bool mask (a pixel is in the mask when its alpha is non-zero)."""
    data = bytes(int(b) & 0xFF for b in rle)
    bits = "".join(f"{b:08b}" for b in data)
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise SampromptError("a brush RLE ends early: it is cut or not Label Studio's")
        value = int(bits[pos:pos + n], 2)
        pos += n
        return value

    num = read(32)
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    h, w = shape
    if num != h * w * 4:
        raise SampromptError(f"a brush RLE holds {num} values, an RGBA image of {w}x{h} has {h * w * 4}")
    out = np.zeros(num, np.uint32)
    i = 0
    while i < num:
        is_run = read(1)
        j = min(num, i + 1 + read(sizes[read(2)]))
        if is_run:
            out[i:j] = read(word)
        else:
            out[i:j] = [read(word) for _ in range(j - i)]
        i = j
    return out.reshape(h, w, 4)[:, :, 3] > 0


def _fill(points_px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise a polygon in continuous pixel coordinates: the pixels whose centre lies inside."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    fixed = np.round((np.asarray(points_px, float) - 0.5) * 16).astype(np.int32)  # 4 fractional bits
    cv2.fillPoly(mask, [fixed], 1, shift=4)
    return mask.astype(bool)


def result_to_mask(result: dict) -> tuple[str, np.ndarray] | None:
    """One Label Studio result -> (label, mask), or None for a kind that is not a region mask."""
    kind = str(result.get("type", "")).lower()
    value = result.get("value", {})
    try:
        w, h = int(result["original_width"]), int(result["original_height"])
    except (KeyError, TypeError, ValueError):
        raise SampromptError(f"a Label Studio {kind or 'result'} has no original_width/original_height") from None
    if kind == "brushlabels" and "rle" in value:
        label = (value.get("brushlabels") or ["object"])[0]
        return label, decode_rle(value["rle"], (h, w))
    if kind == "polygonlabels" and value.get("points"):
        label = (value.get("polygonlabels") or ["object"])[0]
        pts = np.asarray(value["points"], float) * [w / 100.0, h / 100.0]
        return label, _fill(pts, (h, w))
    return None


def mask_result(mask: np.ndarray, label: str, *, from_name: str = "tag", to_name: str = "image",
                score: float | None = None, who: dict | None = None) -> dict:
    """A ``brushlabels`` result for Label Studio (a prediction or an annotation's region)."""
    h, w = mask.shape
    out = {
        "id": uuid.uuid4().hex[:10],
        "from_name": from_name,
        "to_name": to_name,
        "type": "brushlabels",
        "original_width": int(w),
        "original_height": int(h),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": encode_rle(mask), "brushlabels": [label]},
    }
    if score is not None:
        out["score"] = float(score)
    if who:
        out["meta"] = {"text": [", ".join(f"{k} {v}" for k, v in who.items())]}
    return out


def polygon_result(ring: np.ndarray, size: tuple[int, int], label: str, *, from_name: str = "tag",
                   to_name: str = "image") -> dict:
    """A ``polygonlabels`` result from one ring of (x, y) pixel coordinates."""
    h, w = size
    pts = (np.asarray(ring, float) * [100.0 / w, 100.0 / h]).round(4).tolist()
    return {"id": uuid.uuid4().hex[:10], "from_name": from_name, "to_name": to_name, "type": "polygonlabels",
            "original_width": int(w), "original_height": int(h), "image_rotation": 0,
            "value": {"points": pts, "closed": True, "polygonlabels": [label]}}


def image_name(reference: str) -> str:
    """The file name behind a task's image reference: a URL, ``/data/local-files/?d=PATH``,
    ``/data/upload/N/PREFIX-NAME`` (the upload prefix dropped) or a plain path."""
    parsed = urlparse(reference)
    if "d" in parse_qs(parsed.query):
        path = parse_qs(parsed.query)["d"][0]
    else:
        path = unquote(parsed.path or reference)
    name = Path(path).name
    if "/data/upload/" in reference:
        name = _UPLOAD_PREFIX.sub("", name)
    return name


def write_tasks(path: str | Path, images, *, image_url: str = "/data/local-files/?d=",
                from_name: str = "tag", to_name: str = "image", value: str = "image") -> Path:
    """Write a Label Studio task file: ``images`` yields (relative path, (H, W), [(label, mask, who), ...]).

    Each image becomes a task whose ``data[value]`` is ``image_url`` + the relative path (Label
    Studio's local-files URL by default), with one annotation of brush regions.
    """
    from ..io import atomic_write_text

    tasks = []
    for rel, _size, objects in images:
        result = [mask_result(m, label, from_name=from_name, to_name=to_name, who=who)
                  for label, m, who in objects if m.any()]
        tasks.append({"data": {value: f"{image_url}{rel}"}, "annotations": [{"result": result}]})
    return atomic_write_text(path, json.dumps(tasks) + "\n")


class LabelStudioTasks:
    """Objects from a Label Studio task JSON, matched to images by file name (see :func:`image_name`).

    Each task's first annotation is taken (its latest, if several are dated); a task with no
    annotation falls back to its predictions.
    """

    def __init__(self, path: Path) -> None:
        try:
            tasks = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SampromptError(f"cannot read {path} as JSON: {exc}") from None
        if isinstance(tasks, dict):
            tasks = [tasks]
        if not isinstance(tasks, list) or not all(isinstance(t, dict) and "data" in t for t in tasks):
            raise SampromptError(f"{path} is not a Label Studio task list (tasks with 'data')")
        self.by_name: dict[str, dict] = {}
        for task in tasks:
            for ref in task["data"].values():
                if isinstance(ref, str) and ref:
                    self.by_name.setdefault(image_name(ref), task)
                    break

    def objects(self, file_name: str, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
        task = self.by_name.get(Path(file_name).name)
        if task is None:
            return []
        annotations = task.get("annotations") or []
        annotations = sorted(annotations, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
        chosen = annotations[-1] if annotations else (task.get("predictions") or [{}])[0]
        out = []
        for result in chosen.get("result", []):
            got = result_to_mask(result)
            if got is None:
                continue
            if got[1].shape != tuple(size):
                raise SampromptError(f"Label Studio has {file_name} as {got[1].shape[1]}x{got[1].shape[0]}, "
                                     f"the image is {size[1]}x{size[0]}")
            out.append(got)
        return out


__all__ = ["LabelStudioTasks", "decode_rle", "encode_rle", "image_name", "mask_result", "polygon_result",
           "result_to_mask", "write_tasks"]
