"""Exports in the formats annotation and training tools read. All writes are atomic.

* PNG label map (0 = background, k = object k) and an overlay PNG for people.
* COCO instance JSON with RLE segmentations (pycocotools), boxes, areas, scores.
* YOLO-seg text: one line per object, ``class x1 y1 x2 y2 ...`` normalised to [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
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


def yolo_lines(masks: np.ndarray, class_ids: Sequence[int], *, tolerance: float = 1.0,
               kept: list[int] | None = None) -> list[str]:
    """YOLO-seg lines for (N, H, W) masks: one line (one instance) per object, every piece and hole in it.

    YOLO-seg holds one polygon per instance, which its loaders fill with ``cv2.fillPoly``.
    An object of several pieces, or with holes, becomes one polygon that visits every ring
    (outer contours and holes) through zero-width bridges, walked there and back, as
    Ultralytics' own COCO converter joins a multi-part segmentation: filled, the pieces
    come back and the holes stay empty (:func:`yolo_kept` measures it). ``kept``: a list that receives the
    index of each mask that made a line (an empty mask makes none).
    """
    masks = np.asarray(masks, bool)
    h, w = masks.shape[1:]
    lines = []
    for i, (m, c) in enumerate(zip(masks, class_ids)):
        poly = yolo_polygon(m, tolerance)
        if poly is None:
            continue
        if kept is not None:
            kept.append(i)
        norm = poly / np.array([w, h], np.float64)
        lines.append(" ".join([str(int(c))] + [f"{v:.6f}" for v in norm.clip(0, 1).ravel()]))
    return lines


def yolo_polygon(mask: np.ndarray, tolerance: float = 1.0) -> np.ndarray | None:
    """One (K, 2) polygon of pixel coordinates holding every ring of ``mask``, joined by bridges (None if empty)."""
    rings = mask_to_polygons(mask, tolerance=tolerance, min_points=1, holes=True)  # a 1-px piece is a piece too
    if sum(len(r) for r in rings) < 3:
        return None
    rings.sort(key=lambda r: -abs(_area(r)))  # from the largest outer contour
    flat = rings[0]
    for ring in rings[1:]:  # each ring hangs from its nearest point on the path so far: there and back
        from scipy.spatial import cKDTree

        dist, nearest = cKDTree(flat).query(ring)
        j = int(np.argmin(dist))
        i = int(nearest[j])
        detour = np.concatenate([np.roll(ring, -j, axis=0), ring[j : j + 1], flat[i : i + 1]])
        flat = np.concatenate([flat[: i + 1], detour, flat[i + 1 :]])
    return flat


def yolo_kept(mask: np.ndarray, tolerance: float = 1.0) -> float:
    """IoU of ``mask`` with its YOLO-seg polygon filled back as YOLO's loaders fill it (1.0 for an empty mask)."""
    from .masks import iou

    mask = np.asarray(mask, bool)
    poly = yolo_polygon(mask, tolerance)
    back = np.zeros(mask.shape, np.uint8)
    if poly is not None:
        cv2.fillPoly(back, [np.round(poly).astype(np.int32)], 1)
    return iou(back.astype(bool), mask)


def export_losses(masks: np.ndarray, tolerance: float = 1.0) -> dict:
    """What each format keeps of (N, H, W) masks: COCO RLE keeps every pixel; the PNG label map keeps one
    object per pixel (later on top); YOLO-seg keeps what its polygon fills back (:func:`yolo_kept`).

    Returns ``{"objects", "label_map_partial" (objects not whole in the label map), "label_map_hidden"
    (objects with no pixel left in it), "label_map_kept" (share of the objects' pixels it shows),
    "yolo_worst" and "yolo_mean" (IoU of each object with its polygon filled back)}``.
    """
    masks = np.asarray(masks, bool)
    out = {"objects": int(len(masks)), "label_map_partial": 0, "label_map_hidden": 0, "label_map_kept": 1.0,
           "yolo_worst": 1.0, "yolo_mean": 1.0}
    if not len(masks):
        return out
    from .masks import to_label_map

    lm = to_label_map(masks)
    shown = [int((lm == k + 1).sum()) for k in range(len(masks))]
    sizes = [int(m.sum()) for m in masks]
    out["label_map_partial"] = sum(1 for a, b in zip(shown, sizes) if 0 < a < b)
    out["label_map_hidden"] = sum(1 for a, b in zip(shown, sizes) if a == 0 and b > 0)
    out["label_map_kept"] = round(sum(shown) / max(sum(sizes), 1), 4)
    kept = [yolo_kept(m, tolerance) for m in masks if m.any()]
    if kept:
        out["yolo_worst"], out["yolo_mean"] = round(min(kept), 4), round(float(np.mean(kept)), 4)
    return out


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def export_yolo(path: str | Path, masks: np.ndarray, class_ids: Sequence[int] | None = None, *,
                overwrite: bool = False, who: Sequence[dict] | None = None) -> Path:
    """Write a YOLO-seg label file (class 0 for every object unless ``class_ids``). ``who``: per mask, who made
    and edited it and when; written beside the labels as ``STEM.who.json`` (``{"lines": [...]}``, one entry per
    line of the label file, in its order), as YOLO's format has no room for it."""
    path = Path(path)
    sidecar = path.with_suffix(".who.json")
    check_outputs([path, *([sidecar] if who is not None and any(who) else [])], overwrite=overwrite)
    masks = np.asarray(masks, bool)
    ids = list(class_ids) if class_ids is not None else [0] * len(masks)
    kept: list[int] = []
    written = atomic_write_text(path, "\n".join(yolo_lines(masks, ids, kept=kept)) + ("\n" if len(masks) else ""))
    if who is not None and any(who):
        atomic_write_text(sidecar, json.dumps({"labels": path.name, "lines": [who[i] for i in kept]}, indent=1) + "\n")
    return written


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
        self.extra: dict = {}  # further top-level keys (a video's ``videos``)

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
        attributes: Sequence[dict | None] | None = None,
    ) -> int:
        """Add one image with (N, H, W) bool masks; returns its image id. ``attributes``: per mask, a dict kept
        as the annotation's ``attributes`` (CVAT's name for them), e.g. who made it."""
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
            if attributes is not None and attributes[k]:
                ann["attributes"] = dict(attributes[k])
            self.annotations.append(ann)
        return image_id

    def to_dict(self) -> dict:
        return {
            "info": {"description": "made with samprompt"},
            "images": self.images,
            "annotations": self.annotations,
            "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(self.categories)],
            **self.extra,
        }

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        check_outputs([path], overwrite=overwrite)
        return atomic_write_text(path, json.dumps(self.to_dict()))
