"""What each export format keeps of the annotator's masks, on photos (scikit-image's) and generated scenes.

    python benchmarks/export_formats.py [--json docs/data/export_formats.json]

Masks: segment-everything with the built-in model (what the annotator's proposals give), so
they overlap and have holes and pieces as real masks do. Per image: objects, the PNG label
map's share of the objects' pixels and how many objects it shows only in part or not at all,
and YOLO-seg's IoU per object with its polygon filled back (mean and worst), beside what the
earlier export (the largest outer polygon, no holes) kept; COCO RLE keeps every pixel by construction.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import skimage.data

from samprompt import Segmenter, iou
from samprompt.export import _area, export_losses
from samprompt.masks import mask_to_polygons
from samprompt.synthetic import make_scene


def largest_polygon_only(mask: np.ndarray) -> float:
    """IoU kept by the earlier YOLO export: the largest outer polygon of the object, no holes."""
    polys = mask_to_polygons(mask, tolerance=1.0)
    back = np.zeros(mask.shape, np.uint8)
    if polys:
        cv2.fillPoly(back, [np.round(max(polys, key=lambda q: abs(_area(q)))).astype(np.int32)], 1)
    return iou(back.astype(bool), mask)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json")
    args = p.parse_args()
    seg = Segmenter()
    images = {"coffee": skimage.data.coffee(), "astronaut": skimage.data.astronaut(),
              "chelsea": skimage.data.chelsea(), "scene 21": make_scene(21, size=512).image}
    rows = []
    for name, image in images.items():
        masks = seg.segment_everything(image, points_per_side=24, pred_iou_thresh=0.3,
                                       stability_score_thresh=0.6, box_nms_thresh=0.9).masks
        before = [largest_polygon_only(m) for m in masks if m.any()]
        rows.append({"image": name, "size": list(image.shape[:2]), **export_losses(masks),
                     "yolo_largest_polygon_mean": round(float(np.mean(before)), 4) if before else 1.0,
                     "yolo_largest_polygon_worst": round(float(np.min(before)), 4) if before else 1.0})
        print(rows[-1], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
