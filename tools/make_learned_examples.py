"""Draw what learned prompts change: ``python tools/make_learned_examples.py runs/learned``.

Rows: the three domain-shifted tasks of ``benchmarks/learned_prompts.py``. Columns: the
labels, then the masks from one box per object on the frozen built-in model, with the
``vpt-deep`` prompt and with full fine-tuning (training seed 0 of that benchmark run). The
scene is the first test image of each task (test seeds start at 10,000). Titles give mIoU.
"""

import argparse
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from samprompt import Prompt, Segmenter, load_model
from samprompt.masks import iou, overlay
from samprompt.models import model_id
from samprompt.simulate import box_from_mask
from samprompt.synthetic import make_scene

DOCS = Path(__file__).parents[1] / "docs"
TASKS = ("ultrasound", "rooftops", "scratches")
METHODS = ("frozen", "vpt-deep", "full-ft")
TEST_SEED = 10_000


def main(run: Path, out: Path = DOCS / "learned_examples.png") -> Path:
    model = load_model("tiny")
    fig, axes = plt.subplots(len(TASKS), 1 + len(METHODS), figsize=(2.7 * (1 + len(METHODS)), 2.9 * len(TASKS)))
    for row, task in enumerate(TASKS):
        scene = make_scene(TEST_SEED, style=task)
        gts = scene.masks()
        boxes = [box_from_mask(g) for g in gts]
        axes[row, 0].imshow(overlay(scene.image, gts))
        axes[row, 0].set_title(f"{task}: labels ({len(gts)})", fontsize=9)
        for col, method in enumerate(METHODS, start=1):
            learned = None if method == "frozen" else run / "prompts" / task / method / "seed0"
            seg = Segmenter(model, learned=learned, cache_size=0)
            masks = [r.mask for r in seg.predict(scene.image, [Prompt(box=b) for b in boxes], multimask=False)]
            score = np.mean([iou(m, g) for m, g in zip(masks, gts)])
            axes[row, col].imshow(overlay(scene.image, np.stack(masks), boxes=boxes))
            axes[row, col].set_title(f"{method}: mIoU {score:.2f}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"box prompts on a test scene per task, model {model_id(model)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print("wrote", out)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the --out folder of benchmarks/learned_prompts.py")
    main(p.parse_args().run)
