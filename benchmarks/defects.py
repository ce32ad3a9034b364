"""Defect detection on generated inspection data: per category and mean, for 0, 1 and 4 shots, and a learned prompt.

    python benchmarks/defects.py [--seed 100] [--shots 0,1,4] [--threads 2] [--tune-epochs 20]
                                 [--out docs/data/defects.json]

The six generated categories (``samprompt synth --defects``: 12 train/good, 6
test/good and 4 images per defect kind, 256 px) with the seed given (held out:
the defaults were chosen on seed 0). For each shot count it runs
``samprompt defects`` and keeps its metrics: image AUROC, pixel AUROC, PRO,
pixel F1-max of the map against the F1 of the SAM masks, seconds per image.

Then it asks whether a learned prompt helps SAM turn the generated prompts into
defect masks: ``samprompt tune`` (vpt-deep) on a labelled folder of other
generated defect images (seeds 900.., image + defect mask), and the 4-shot run
again with ``--learned``. The anomaly maps do not change (they come from the
frozen encoder), only the masks do, so the comparison is ``mask_f1``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def run_defects(data: Path, out: Path, shots: int, threads: int, extra: list[str] = ()) -> dict:
    import contextlib
    import io

    from samprompt import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cli.main(["defects", str(data), "--out", str(out), "--shots", str(shots), "--json", "--quiet",
                  "--threads", str(threads), *extra])
    return json.loads(buf.getvalue())


def labelled_defects(folder: Path, n_per_category: int, seed: int) -> Path:
    """images/ + masks/ of generated defect images (label 1 = the defect), for samprompt tune."""
    from samprompt.io import write_image
    from samprompt.synthetic.defects import CATEGORIES, DEFECTS, make_inspection_image

    for c in CATEGORIES:
        for i in range(n_per_category):
            kind = DEFECTS[c][i % len(DEFECTS[c])]
            img, mask = make_inspection_image(c, seed + i, kind)
            write_image(folder / "images" / f"{c}_{i:03d}.png", img)
            write_image(folder / "masks" / f"{c}_{i:03d}.png", mask.astype(np.uint8))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--shots", default="0,1,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tune-epochs", type=int, default=20, help="0 skips the learned-prompt question")
    ap.add_argument("--out", default="docs/data/defects.json")
    a = ap.parse_args()
    from samprompt import __version__, cli
    from samprompt.synthetic.defects import write_defect_dataset

    work = Path(tempfile.mkdtemp(prefix="defects_bench_"))
    data = write_defect_dataset(work / "data", train=12, test_good=6, per_defect=4, seed=a.seed)
    doc: dict = {"version": __version__, "seed": a.seed, "threads": a.threads, "shots": {}}
    for k in [int(s) for s in a.shots.split(",")]:
        t0 = time.perf_counter()
        doc["shots"][str(k)] = run_defects(data, work / f"out{k}", k, a.threads)
        doc["shots"][str(k)]["wall_seconds"] = round(time.perf_counter() - t0, 1)
        print(k, json.dumps(doc["shots"][str(k)]["mean"]), flush=True)
    if a.tune_epochs:
        train = labelled_defects(work / "tune_train", 8, 900)
        val = labelled_defects(work / "tune_val", 3, 950)
        cli.main(["tune", str(train), "--val", str(val), "--method", "vpt-deep", "--epochs", str(a.tune_epochs),
                  "--out", str(work / "prompt"), "--threads", str(a.threads)])
        learned = run_defects(data, work / "out_learned", 4, a.threads, ["--learned", str(work / "prompt")])
        doc["learned"] = {"method": "vpt-deep", "epochs": a.tune_epochs, "train_images": 48,
                          "mean": learned["mean"],
                          "mask_f1_by_category": {c: m.get("mask_f1") for c, m in learned["categories"].items()}}
        print("learned", json.dumps(learned["mean"]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
