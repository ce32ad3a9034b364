"""Fixed prompts for one object: points, a box, a mask; validation and JSON.

Coordinates are (x, y) pixels of the original image; the box is XYXY.

Pixel coordinates are continuous: pixel (column i, row j) covers
[i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5). Points and box
corners are valid anywhere in [0, W] x [0, H], so (0, 0, W, H) is the whole
image, and a COCO bbox [x, y, w, h] is the box (x, y, x + w, y + h). The
coordinates reach SAM unchanged (scaled to its input size), exactly as
``SamPredictor`` receives them.

JSON schema (``version`` 1), as written by :func:`prompts_to_json`::

    {
      "version": 1,
      "image": "name.png",            # optional
      "image_size": [H, W],           # optional, checked on load if given
      "objects": [
        {
          "points": [[x, y], ...],    # may be empty
          "labels": [1, 0, ...],      # 1 = positive, 0 = negative, one per point
          "box": [x0, y0, x1, y1],    # or null
          "mask": null | {"kind": "binary", "rle": {"size": [H, W], "counts": "..."}}
                       | {"kind": "logits", "shape": [h, w], "float16_base64": "..."},
          "label": "class name"       # or null
        }
      ]
    }

Binary masks are COCO RLE (pycocotools); low-res logits are float16, base64.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import PromptError

SCHEMA_VERSION = 1


def _as_points(points: Any) -> np.ndarray:
    if points is None:
        return np.zeros((0, 2), np.float64)
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"points must be (x, y) numbers, got {points!r}") from exc
    if arr.size == 0:
        return np.zeros((0, 2), np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise PromptError(f"points must have shape (N, 2) as (x, y), got shape {arr.shape}")
    return arr


@dataclass
class Prompt:
    """The prompt for one object.

    Args:
        points: (N, 2) float, (x, y) pixels of the original image.
        labels: (N,) int, 1 = positive (object), 0 = negative (background);
            defaults to all positive.
        box: (4,) XYXY pixels of the original image, or None.
        mask: optional mask prompt: either low-res logits of shape (h, w) or
            (1, h, w) as a previous prediction returned them (``Result.logits``),
            or a bool (H, W) mask of the image, turned into logits by the segmenter.
        label: optional class name (used by exports and the annotator).
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        self.points = _as_points(self.points)
        n = len(self.points)
        if self.labels is None:
            self.labels = np.ones(n, np.int64)
        else:
            lab = np.asarray(self.labels).reshape(-1)
            if lab.shape[0] != n:
                raise PromptError(f"got {n} points but {lab.shape[0]} labels")
            try:
                numeric = lab.astype(np.float64)
            except (TypeError, ValueError):
                numeric = np.full(lab.shape, np.nan)
            if n and not np.isin(numeric, (0, 1)).all():
                raise PromptError(f"point labels must be 0 (negative) or 1 (positive), got {lab.tolist()}")
            lab = numeric
            self.labels = lab.astype(np.int64)
        if not np.isfinite(self.points).all():
            raise PromptError(f"points must be finite, got {self.points.tolist()}")
        if self.box is not None:
            try:
                box = np.asarray(self.box, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise PromptError(f"box must be 4 numbers XYXY, got {self.box!r}") from exc
            if box.shape != (4,):
                raise PromptError(f"box must be 4 numbers (x0, y0, x1, y1), got {box.size}")
            if not np.isfinite(box).all():
                raise PromptError(f"box must be finite, got {box.tolist()}")
            if box[2] < box[0] or box[3] < box[1]:
                raise PromptError(f"box is inverted: (x0, y0, x1, y1) = {box.tolist()} needs x1 >= x0 and y1 >= y0")
            if box[2] == box[0] or box[3] == box[1]:
                raise PromptError(f"box is degenerate (zero width or height): {box.tolist()}")
            self.box = box
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim == 3 and m.shape[0] == 1:
                m = m[0]
            if m.ndim != 2:
                raise PromptError(f"mask prompt must be 2-D (h, w) logits or an (H, W) bool mask, got shape {m.shape}")
            if m.dtype != bool and not np.issubdtype(m.dtype, np.floating):
                raise PromptError(f"mask prompt must be float logits or a bool mask, got dtype {m.dtype}")
            if m.dtype != bool and not np.isfinite(m).all():
                raise PromptError("mask prompt logits contain NaN or inf")
            self.mask = m
        if n == 0 and self.box is None and self.mask is None:
            raise PromptError("empty prompt: give at least one point, a box or a mask")

    # ------------------------------------------------------------- helpers
    @property
    def signature(self) -> tuple[int, bool, bool]:
        """(number of points, has box, has mask): prompts with equal signatures batch together."""
        return (len(self.points), self.box is not None, self.mask is not None)

    @property
    def is_ambiguous(self) -> bool:
        """A single point and nothing else: SAM's multimask output helps here."""
        return len(self.points) == 1 and self.box is None and self.mask is None

    def validate(self, height: int, width: int) -> "Prompt":
        """Check that points and the box lie in [0, W] x [0, H] of an image of ``height`` x ``width``."""
        if len(self.points):
            x, y = self.points[:, 0], self.points[:, 1]
            bad = (x < 0) | (x > width) | (y < 0) | (y > height)
            if bad.any():
                raise PromptError(
                    f"points {self.points[bad].tolist()} lie outside the {width}x{height} (W x H) image, "
                    f"whose coordinates run over [0, {width}] x [0, {height}]"
                )
        if self.box is not None:
            b = self.box
            if b[0] < 0 or b[1] < 0 or b[2] > width or b[3] > height:
                raise PromptError(
                    f"box {b.tolist()} extends outside the {width}x{height} (W x H) image "
                    f"(valid: [0, {width}] x [0, {height}])"
                )
        if self.mask is not None and self.mask.dtype == bool and self.mask.shape != (height, width):
            raise PromptError(
                f"bool mask prompt has shape {self.mask.shape}, expected the image's ({height}, {width})"
            )
        return self

    def with_click(self, x: float, y: float, label: int = 1, logits: np.ndarray | None = None) -> "Prompt":
        """A new prompt with one more click and, optionally, the previous logits as mask prompt."""
        return Prompt(
            points=np.vstack([self.points, [[x, y]]]),
            labels=np.append(self.labels, label),
            box=self.box,
            mask=logits if logits is not None else self.mask,
            label=self.label,
        )

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "points": self.points.tolist(),
            "labels": [int(v) for v in self.labels],
            "box": None if self.box is None else self.box.tolist(),
            "mask": _mask_to_json(self.mask),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Prompt":
        if not isinstance(d, dict):
            raise PromptError(f"a prompt object must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"points", "labels", "box", "mask", "label"}
        if unknown:
            raise PromptError(f"unknown prompt keys {sorted(unknown)}")
        return cls(
            points=d.get("points") or [],
            labels=d.get("labels"),
            box=d.get("box"),
            mask=_mask_from_json(d.get("mask")),
            label=d.get("label"),
        )


def _mask_to_json(mask: np.ndarray | None) -> dict[str, Any] | None:
    if mask is None:
        return None
    if mask.dtype == bool:
        from pycocotools import mask as mask_utils

        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"kind": "binary", "rle": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}}
    data = base64.b64encode(mask.astype(np.float16).tobytes()).decode("ascii")
    return {"kind": "logits", "shape": list(mask.shape), "float16_base64": data}


def _mask_from_json(d: dict[str, Any] | None) -> np.ndarray | None:
    if d is None:
        return None
    try:
        if d["kind"] == "binary":
            from pycocotools import mask as mask_utils

            rle = {"size": d["rle"]["size"], "counts": d["rle"]["counts"].encode("ascii")}
            return mask_utils.decode(rle).astype(bool)
        if d["kind"] == "logits":
            raw = base64.b64decode(d["float16_base64"])
            return np.frombuffer(raw, np.float16).reshape(d["shape"]).astype(np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise PromptError(f"malformed mask prompt in JSON: {exc}") from exc
    raise PromptError(f"mask kind must be 'binary' or 'logits', got {d.get('kind')!r}")


def prompts_to_json(
    prompts: Iterable[Prompt], *, image: str | None = None, image_size: Sequence[int] | None = None
) -> dict[str, Any]:
    """The JSON document (a dict) for the prompts of one image."""
    doc: dict[str, Any] = {"version": SCHEMA_VERSION, "objects": [p.to_dict() for p in prompts]}
    if image is not None:
        doc["image"] = image
    if image_size is not None:
        doc["image_size"] = [int(image_size[0]), int(image_size[1])]
    return doc


def prompts_from_json(doc: dict[str, Any] | list) -> list[Prompt]:
    """Prompts from a JSON document; a bare list of objects is accepted too."""
    if isinstance(doc, list):
        doc = {"version": SCHEMA_VERSION, "objects": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
        raise PromptError("prompt JSON must be an object with an 'objects' list")
    version = doc.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise PromptError(f"unsupported prompt JSON version {version!r}; this samprompt reads {SCHEMA_VERSION}")
    prompts = [Prompt.from_dict(o) for o in doc["objects"]]
    size = image_size_of(doc)
    if size is not None:
        for p in prompts:
            p.validate(*size)
    return prompts


def image_size_of(doc: dict[str, Any]) -> tuple[int, int] | None:
    """The ``image_size`` [H, W] of a prompt document, checked, or None when it has none."""
    size = doc.get("image_size")
    if size is None:
        return None
    ok = isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
    if not ok:
        raise PromptError(f"image_size must be [height, width] in pixels, got {size!r}")
    return int(size[0]), int(size[1])


def save_prompts(path: str | Path, prompts: Iterable[Prompt], *, overwrite: bool = False, **meta: Any) -> Path:
    """Write prompts as JSON (atomically); an existing file samprompt did not write is refused unless ``overwrite``."""
    from .io import atomic_write_text
    from .outputs import check_outputs

    check_outputs([path], overwrite=overwrite)
    return atomic_write_text(path, json.dumps(prompts_to_json(prompts, **meta), indent=1))


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read prompts written by :func:`save_prompts` (or any document of the schema)."""
    return prompts_from_json(read_json(path))


def read_json(path: str | Path) -> Any:
    """A JSON file's document; an unreadable, non-UTF-8 or invalid file is a :class:`PromptError`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise PromptError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise PromptError(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise PromptError(f"cannot read prompt file {path}: {exc.strerror or exc}") from exc
