"""Exports in the formats annotation and training tools read. All writes are atomic.

* PNG label map (0 = background, k = object k) and an overlay PNG for people.
* COCO instance JSON with RLE segmentations (pycocotools), boxes, areas, scores.
* YOLO-seg text: one line per object, ``class x1 y1 x2 y2 ...`` normalised to [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .io import atomic_write_text, write_image
from .masks import mask_to_polygons, mask_to_rle, overlay, to_label_map
from .outputs import check_outputs

FORMATS = ("png", "coco", "yolo")


def export_png(out_dir: str | Path, name: str, image: np.ndarray, masks: np.ndarray, *, overwrite: bool = False,
               **overlay_kw) -> list[Path]:
    """Write ``NAME.png`` (label map) and ``NAME_overlay.png`` under ``out_dir``.

    Existing files that samprompt did not write are refused unless ``overwrite`` (as every export here)."""
    out = Path(out_dir)
    check_outputs([out / f"{name}.png", out / f"{name}_overlay.png"], overwrite=overwrite)
    masks = np.asarray(masks, bool).reshape(-1, *image.shape[:2])
    labels = write_image(out / f"{name}.png", to_label_map(masks))
    over = write_image(out / f"{name}_overlay.png", overlay(image, masks, **overlay_kw))
    return [labels, over]


def yolo_lines(masks: np.ndarray, class_ids: Sequence[int], *, tolerance: float = 1.0) -> list[str]:
    """YOLO-seg lines for (N, H, W) masks: the largest outer polygon of each object."""
    masks = np.asarray(masks, bool)
    h, w = masks.shape[1:]
    lines = []
    for m, c in zip(masks, class_ids):
        polys = mask_to_polygons(m, tolerance=tolerance)
        if not polys:
            continue
        poly = max(polys, key=lambda p: abs(_area(p)))
        norm = poly / np.array([w, h], np.float64)
        lines.append(" ".join([str(int(c))] + [f"{v:.6f}" for v in norm.clip(0, 1).ravel()]))
    return lines


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def export_yolo(path: str | Path, masks: np.ndarray, class_ids: Sequence[int] | None = None, *,
                overwrite: bool = False) -> Path:
    """Write a YOLO-seg label file (class 0 for every object unless ``class_ids``)."""
    check_outputs([path], overwrite=overwrite)
    masks = np.asarray(masks, bool)
    ids = list(class_ids) if class_ids is not None else [0] * len(masks)
    return atomic_write_text(path, "\n".join(yolo_lines(masks, ids)) + ("\n" if len(masks) else ""))


def coco_mask_fields(mask: np.ndarray) -> dict:
    """A COCO annotation's ``segmentation`` (compressed RLE), ``area`` and ``bbox`` [x, y, w, h] of an (H, W) mask."""
    from pycocotools import mask as mask_utils

    rle = mask_to_rle(mask)
    enc = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return {"segmentation": rle, "area": float(mask_utils.area(enc)),
            "bbox": [float(v) for v in mask_utils.toBbox(enc)]}


class CocoWriter:
    """Collects images and instance masks, then writes one COCO JSON file.

    >>> coco = CocoWriter(categories=["object"])
    >>> coco.add_image("a.png", masks, scores=scores)   # doctest: +SKIP
    >>> coco.write("annotations.json")                  # doctest: +SKIP
    """

    def __init__(self, categories: Sequence[str] = ("object",)) -> None:
        self.categories = list(dict.fromkeys(categories))  # a name once, whatever the caller passed
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def category_id(self, name: str | None) -> int:
        name = name or self.categories[0]
        if name not in self.categories:
            self.categories.append(name)
        return self.categories.index(name) + 1

    def add_image(
        self,
        file_name: str,
        masks: np.ndarray,
        *,
        scores: Sequence[float] | None = None,
        labels: Sequence[str | None] | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> int:
        """Add one image with (N, H, W) bool masks; returns its image id."""
        masks = np.asarray(masks, bool)
        if masks.ndim == 2:
            masks = masks[None]
        h = height if height is not None else masks.shape[1]
        w = width if width is not None else masks.shape[2]
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for k, m in enumerate(masks):
            ann = {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": self.category_id(labels[k] if labels is not None else None),
                **coco_mask_fields(m),
                "iscrowd": 0,
            }
            if scores is not None:
                ann["score"] = float(scores[k])
            self.annotations.append(ann)
        return image_id

    def to_dict(self) -> dict:
        return {
            "info": {"description": "made with samprompt"},
            "images": self.images,
            "annotations": self.annotations,
            "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(self.categories)],
        }

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        check_outputs([path], overwrite=overwrite)
        return atomic_write_text(path, json.dumps(self.to_dict()))
