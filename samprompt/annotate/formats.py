"""Existing labels as starting objects for the annotator: label maps, a COCO file, or YOLO-seg labels.

:func:`open_labels` recognises the source:

* a folder of label maps (``masks/NAME.png``, as ``samprompt segment`` and
  ``samprompt synth`` write them; a labelled folder holding ``masks/`` works
  too): each non-zero value is one object, of class ``object``;
* a COCO JSON file (``images`` + ``annotations`` with RLE or polygon
  ``segmentation``, read with pycocotools): matched by ``file_name``, each
  annotation one object of its category;
* a folder of YOLO-seg ``NAME.txt`` files (``class x1 y1 x2 y2 ...``,
  coordinates in [0, 1]): each line one object, its class name from a
  ``classes.txt`` beside it or above it, else the class id;
* a CVAT for images 1.1 XML file (masks and polygons, :mod:`.cvat`);
* a Label Studio task JSON (a list of tasks; brush and polygon regions,
  :mod:`.label_studio`), matched by the image's file name.

Imported objects carry a mask but no prompt: they are edited like accepted
proposals and exported as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import SampromptError


class LabelSource:
    """Objects for an image: ``objects(file_name, (H, W)) -> [(class name, (H, W) bool mask), ...]``."""

    def objects(self, file_name: str, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
        raise NotImplementedError


class LabelMaps(LabelSource):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def objects(self, file_name, size):
        from ..images import read_label_map
        from ..masks import from_label_map

        path = self.folder / f"{Path(file_name).stem}.png"
        if not path.is_file():
            return []
        labels = read_label_map(path)
        if labels.shape != tuple(size):
            raise SampromptError(f"label map {path.name} is {labels.shape[1]}x{labels.shape[0]}, "
                                 f"the image {size[1]}x{size[0]}")
        masks, _ = from_label_map(labels)
        return [("object", m) for m in masks]


class CocoLabels(LabelSource):
    def __init__(self, path: Path) -> None:
        from pycocotools.coco import COCO

        try:
            self.coco = COCO(str(path)) if path.stat().st_size else None
        except (ValueError, KeyError, TypeError) as exc:
            raise SampromptError(f"{path} is not a COCO file: {exc}") from None
        self.by_name = {Path(im["file_name"]).name: im["id"] for im in self.coco.dataset.get("images", [])}

    def objects(self, file_name, size):
        image_id = self.by_name.get(Path(file_name).name)
        if image_id is None:
            return []
        info = self.coco.imgs[image_id]
        if (int(info["height"]), int(info["width"])) != tuple(size):
            raise SampromptError(f"the COCO file has {file_name} as {info['width']}x{info['height']}, "
                                 f"the image is {size[1]}x{size[0]}")
        out = []
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id])):
            name = self.coco.cats.get(ann.get("category_id"), {}).get("name", "object")
            out.append((name, self.coco.annToMask(ann).astype(bool)))
        return out


class YoloLabels(LabelSource):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        names = next((p for p in (folder / "classes.txt", folder.parent / "classes.txt") if p.is_file()), None)
        self.names = names.read_text().splitlines() if names else []

    def objects(self, file_name, size):
        import cv2

        path = self.folder / f"{Path(file_name).stem}.txt"
        if not path.is_file():
            return []
        h, w = size
        out = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            vals = line.split()
            if not vals:
                continue
            try:
                cls, coords = int(vals[0]), np.array([float(v) for v in vals[1:]])
            except ValueError:
                raise SampromptError(f"{path.name} line {n}: expected 'class x1 y1 x2 y2 ...'") from None
            if len(coords) < 6 or len(coords) % 2:
                raise SampromptError(f"{path.name} line {n}: a polygon needs at least 3 x,y pairs")
            pts = np.round(coords.reshape(-1, 2) * [w, h]).astype(np.int32)  # vertices on pixel centres
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [pts], 1)
            name = self.names[cls] if 0 <= cls < len(self.names) else str(cls)
            out.append((name, mask.astype(bool)))
        return out


def open_labels(source: str | Path) -> LabelSource:
    """The label source at ``source`` (see the module doc); an error names what was expected."""
    src = Path(source)
    if src.is_file() and src.suffix.lower() == ".xml":
        from .cvat import CvatXml

        return CvatXml(src)
    if src.is_file() and src.suffix.lower() == ".json":
        try:
            data = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SampromptError(f"cannot read {src} as JSON: {exc}") from None
        if isinstance(data, list) or (isinstance(data, dict) and "data" in data):
            from .label_studio import LabelStudioTasks

            return LabelStudioTasks(src)
        return CocoLabels(src)
    if src.is_dir():
        if (src / "masks").is_dir():
            return LabelMaps(src / "masks")
        if any(src.glob("*.txt")) and not any(src.glob("*.png")):
            return YoloLabels(src)
        if any(src.glob("*.png")):
            return LabelMaps(src)
    raise SampromptError(f"--import {src}: expected a folder of label-map PNGs (or one holding masks/), "
                         "a COCO JSON file, a folder of YOLO-seg .txt labels, a CVAT for images XML file "
                         "or a Label Studio task JSON")


__all__ = ["CocoLabels", "LabelMaps", "LabelSource", "YoloLabels", "open_labels"]
