"""Draw the built-in model on held-out scenes: ``python tools/make_model_examples.py``.

Rows: the labels, the masks from one box per object, the masks from one point per
object (best of three by predicted IoU). Columns: held-out scenes (seeds 500000+,
which training never saw). Each panel's title gives its mIoU.
"""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from samprompt import Prompt, Segmenter
from samprompt.masks import iou, overlay
from samprompt.models import model_id
from samprompt.simulate import box_from_mask, center_point
from samprompt.synthetic import make_scene

DOCS = Path(__file__).parents[1] / "docs"
SEEDS = (500000, 500003, 500007, 500011)


def main() -> Path:
    seg = Segmenter()
    fig, axes = plt.subplots(3, len(SEEDS), figsize=(2.6 * len(SEEDS), 8.2))
    for col, seed in enumerate(SEEDS):
        scene = make_scene(seed)
        gts = scene.masks()
        boxes = [box_from_mask(g) for g in gts]
        points = [center_point(g)[None] for g in gts]
        by_box = [r.mask for r in seg.predict(scene.image, [Prompt(box=b) for b in boxes], multimask=False)]
        by_point = [r.mask for r in seg.predict(scene.image, [Prompt(points=p, labels=[1]) for p in points])]
        rows = [
            (overlay(scene.image, gts), f"labels ({len(gts)} objects)"),
            (overlay(scene.image, np.stack(by_box), boxes=boxes),
             f"box: mIoU {np.mean([iou(p, g) for p, g in zip(by_box, gts)]):.2f}"),
            (overlay(scene.image, np.stack(by_point), points=[(p, np.ones(1)) for p in points]),
             f"point: mIoU {np.mean([iou(p, g) for p, g in zip(by_point, gts)]):.2f}"),
        ]
        for row, (picture, title) in enumerate(rows):
            axes[row, col].imshow(picture)
            axes[row, col].set_title(title, fontsize=9)
            axes[row, col].axis("off")
    fig.suptitle(f"built-in model {model_id(seg.model)} on held-out scenes", fontsize=10)
    fig.tight_layout()
    path = DOCS / "tiny_examples.png"
    fig.savefig(path, dpi=90)
    print("wrote", path)
    return path


if __name__ == "__main__":
    main()
