"""docs/defects_examples.png: one defective image per generated category, its anomaly map and the result.

    python tools/make_defects_figure.py      # 4 shots, seed 100 (held out), the built-in model

Rows: the image, the anomaly map (threshold at mid-scale), and the overlay (SAM's masks in
white, the truth in green), as ``samprompt defects`` writes them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from samprompt import cli
from samprompt.synthetic.defects import CATEGORIES, DEFECTS, write_defect_dataset

ROOT = Path(__file__).resolve().parents[1]
PICK = {"woven": "stain", "grid": "scratch", "grain": "crack", "brushed": "hole", "disc": "contamination", "flange": "scratch",
        "bolt": "missing"}

work = Path(tempfile.mkdtemp())
data = write_defect_dataset(work / "data", train=12, test_good=6, per_defect=4, seed=100)
cli.main(["defects", str(data), "--out", str(work / "out"), "--shots", "4", "--quiet"])
cols = []
for cat in CATEGORIES:
    assert PICK[cat] in DEFECTS[cat]
    stem = f"{PICK[cat]}_000"
    img = cv2.imread(str(data / cat / "test" / PICK[cat] / "000.png"))
    tiles = [img] + [cv2.imread(str(work / "out" / cat / f"{stem}_{k}.png")) for k in ("map", "overlay")]
    col = np.vstack(tiles)
    cv2.putText(col, f"{cat}: {PICK[cat]}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    cols.append(col)
cv2.imwrite(str(ROOT / "docs" / "defects_examples.png"), cv2.resize(np.hstack(cols), None, fx=0.75, fy=0.75))
print("wrote docs/defects_examples.png")
