"""Writers of a batch job: each item's outputs, written atomically by whichever process ran it,
and job-wide files assembled by the client at the end (``finalize``) from per-item parts.

* ``png``: ``STEM.png`` (label map: 0 = background, k = object k) and ``STEM_overlay.png``;
* ``yolo``: ``labels/STEM.txt`` (YOLO-seg) and ``classes.txt`` (one class name a line, id = line);
* ``coco``: a part ``parts/STEM.coco.json`` per item, assembled into ``coco.json`` with image and
  annotation ids that follow the job's item order, not which worker finished first;
* the prompts of every prompted item: ``STEM.prompts.json`` (replay with ``--prompts OUT``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..export import coco_mask_fields, export_png, export_yolo
from ..io import atomic_write_text
from ..prompts import Prompt, save_prompts

FORMATS = ("png", "coco", "yolo")
PARTS = "parts"


@dataclass
class ItemResult:
    """What segmenting one item gave: the normalised image, (N, H, W) bool masks, (N,) scores,
    each object's class name (or None) and the prompts used (empty for segment-everything)."""

    image: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    classes: list
    prompts: list[Prompt]


class Writer:
    """``write`` returns the files it wrote for one item; ``finalize`` writes job-wide files."""

    def write(self, out: Path, item, res: ItemResult) -> list[Path]:
        return []

    def finalize(self, out: Path, items: list, done: dict[str, dict]) -> list[Path]:
        return []


class LabelMapWriter(Writer):
    def write(self, out, item, res):
        pts = [(p.points, p.labels) for p in res.prompts]
        return export_png(out, item.id, res.image, res.masks, overwrite=True, points=pts, boxes=[p.box for p in res.prompts])


class PromptsWriter(Writer):
    def write(self, out, item, res):
        if not res.prompts:
            return []
        return [save_prompts(out / f"{item.id}.prompts.json", res.prompts, overwrite=True, image=item.name,
                             image_size=res.image.shape[:2])]


class YoloWriter(Writer):
    def __init__(self, classes: list[str]) -> None:
        self.classes = classes

    def write(self, out, item, res):
        ids = [self.classes.index(c or UNLABELLED) for c in res.classes]
        return [export_yolo(out / "labels" / f"{item.id}.txt", res.masks, ids, overwrite=True)]

    def finalize(self, out, items, done):
        return [atomic_write_text(out / "classes.txt", "\n".join(self.classes) + "\n")]


class CocoPartsWriter(Writer):
    """Per-item parts, assembled in item order into ``coco.json`` (pycocotools reads it)."""

    def __init__(self, classes: list[str], category_ids: dict[str, int] | None = None) -> None:
        self.classes = classes
        self.ids = category_ids_for(classes, category_ids or {})

    def write(self, out, item, res):
        anns = [{"category": c or UNLABELLED, "score": float(s), **coco_mask_fields(m)}
                for m, s, c in zip(res.masks, res.scores, res.classes)]
        h, w = res.image.shape[:2]
        part = {"file_name": item.name, "height": int(h), "width": int(w), "annotations": anns}
        return [atomic_write_text(out / PARTS / f"{item.id}.coco.json", json.dumps(part))]

    def finalize(self, out, items, done):
        images, annotations = [], []
        for image_id, item in enumerate(items, 1):
            if item.id not in done:
                continue
            part_file = out / PARTS / f"{item.id}.coco.json"
            part = json.loads(part_file.read_text(encoding="utf-8"))
            images.append({"id": image_id, "file_name": part["file_name"], "height": part["height"],
                           "width": part["width"]})
            for ann in part["annotations"]:
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id,
                    "category_id": self.ids[ann["category"]],
                    "segmentation": ann["segmentation"], "area": ann["area"], "bbox": ann["bbox"],
                    "iscrowd": 0, "score": ann["score"],
                })
        doc = {"info": {"description": "made with samprompt"}, "images": images, "annotations": annotations,
               "categories": [{"id": i, "name": n, "supercategory": ""}
                              for n, i in sorted(self.ids.items(), key=lambda kv: kv[1])]}
        return [atomic_write_text(out / "coco.json", json.dumps(doc))]


UNLABELLED = "object"  # the class of an object whose prompt names none


def category_ids_for(classes: list[str], given: dict[str, int]) -> dict[str, int]:
    """COCO ids: ``given`` ones (a detector's) kept, every other class numbered on from the largest."""
    ids = {n: int(i) for n, i in given.items()}
    free = max(ids.values(), default=0) + 1
    for name in classes:
        if name not in ids:
            ids[name], free = free, free + 1
    return ids


def make_writers(formats: list[str], classes: list[str], category_ids: dict[str, int] | None = None) -> list[Writer]:
    """The writers of ``formats`` (any of ``png``, ``coco``, ``yolo``), plus the prompts writer."""
    table = {"png": LabelMapWriter, "coco": lambda: CocoPartsWriter(classes, category_ids),
             "yolo": lambda: YoloWriter(classes)}
    return [table[f]() for f in formats] + [PromptsWriter()]
