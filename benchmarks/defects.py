"""Defect detection on generated inspection data: per category and mean, for 0, 1 and 4 shots, pose
alignment, false-alarm calibration, inspection speed, and a learned prompt.

    python benchmarks/defects.py [--seed 100] [--shots 0,1,4] [--threads 2] [--tune-epochs 20]
                                 [--test-good 6] [--per-defect 4] [--out docs/data/defects.json]

The seven generated categories (``samprompt synth --defects``: 12 train/good, 6
test/good and 4 images per defect kind, 256 px) with the seed given (held out:
the defaults were chosen on seed 0). For each shot count it runs
``samprompt defects`` and keeps its metrics: image AUROC, pixel AUROC, PRO,
pixel F1-max of the map and its F1 at the threshold against the F1 of the final
instances, the instances' sources (SAM or the map), seconds per image.

Then, on the three part categories (4 shots): pose alignment on, off, and a bank
built over twelve rotations instead (``pose``); the false-alarm rate asked
(``--max-false-alarm``) against the one measured on 40 fresh good images
(``false_alarm``); and ``samprompt defects inspect`` seconds per image in this
process and images per second with ``--workers 2`` (``inspect``).

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


def pose_study(data: Path, seed: int) -> dict:
    """Parts at 4 shots: alignment on / off / a bank over 12 rotations; metrics and seconds per test image."""
    from samprompt.domains.defects import metrics as M
    from samprompt.domains.defects import category_items, find_categories
    from samprompt.domains.defects.anomaly import PatchCore, PatchFeatures
    from samprompt.domains.defects.generate import segment_defects
    from samprompt.domains.defects.model import DefectModel
    from samprompt.images import read_label_map, to_rgb_uint8
    from samprompt.segmenter import Segmenter

    seg = Segmenter()
    out: dict = {}
    for cat in find_categories(data, ["bolt", "disc", "flange"]):
        shots = [to_rgb_uint8(p) for p in cat.train_good[:4]]
        held = [to_rgb_uint8(p) for p in cat.train_good[4:]]
        items = category_items(cat)
        tests = [to_rgb_uint8(i.input) for i in items]
        truths = [read_label_map(i.meta["mask"]) > 0 if i.meta.get("mask") else np.zeros((256, 256), bool)
                  for i in items]
        out[cat.name] = {}
        for variant in ("on", "off", "rotation_bank"):
            t0 = time.perf_counter()
            model = DefectModel.fit(seg, shots, held, align="off" if variant == "rotation_bank" else variant)
            if variant == "rotation_bank":  # 12 rotations of each shot (and flips) in the bank instead
                core = PatchCore(PatchFeatures(seg, (2, 4), zoom=2), 0.1, angles=tuple(range(30, 360, 30))).fit(shots)
                model.bank = core.bank
                model.threshold = max(float(model.source(seg).score(g).max()) for g in held)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = [model.inspect(im) for im in tests]
            per = (time.perf_counter() - t0) / len(tests)
            labels = [i.meta["defect"] != "good" for i in items]
            maps = [r.anomaly_map for r in res]
            out[cat.name][variant] = {
                "image_auroc": round(M.image_auroc(labels, [r.score for r in res]), 4),
                "pixel_auroc": round(M.pixel_auroc(truths, maps), 4), "pro": round(M.pro(truths, maps), 4),
                "mask_f1": round(M.f1(truths, [r.masks.any(0) if len(r.masks) else np.zeros((256, 256), bool)
                                               for r in res]), 4),
                "good_flagged": int(sum(r.verdict == "defect" for r, bad in zip(res, labels) if not bad)),
                "good_images": int(sum(not b for b in labels)), "fit_seconds": round(fit_s, 2),
                "seconds_per_image": round(per, 4), "bank": int(len(model.bank))}
    return out


def false_alarm_study(seed: int, fresh: int = 40) -> dict:
    """Fit on 4 shots + 40 held-out good images per rate; the share of fresh good images flagged."""
    from samprompt.domains.defects.model import DefectModel
    from samprompt.segmenter import Segmenter
    from samprompt.synthetic.defects import make_inspection_image

    seg = Segmenter()
    out: dict = {}
    for cat in ("grid", "disc", "flange"):
        good = [make_inspection_image(cat, seed + 5000 + i)[0] for i in range(44)]
        new = [make_inspection_image(cat, seed + 7000 + i)[0] for i in range(fresh)]
        out[cat] = {}
        for rate in (0.0, 0.05, 0.1, 0.2):
            model = DefectModel.fit(seg, good[:4], good[4:], max_false_alarm=rate)
            flagged = sum(model.inspect(im).verdict == "defect" for im in new)
            out[cat][str(rate)] = {"threshold": round(model.threshold, 4), "held_out_good": 40,
                                   "measured": round(flagged / fresh, 4), "fresh_good": fresh}
    return out


def inspect_speed(work: Path, seed: int, threads: int) -> dict:
    """``defects inspect`` on 48 images: seconds per image in process, images per second with 2 workers."""
    import shutil

    from samprompt import cli
    from samprompt.io import write_image
    from samprompt.synthetic.defects import make_inspection_image

    folder = work / "inspect_in"
    for i in range(48):
        write_image(folder / f"{i:03d}.png", make_inspection_image("flange", seed + 9000 + i,
                                                                  "scratch" if i % 4 == 0 else None)[0])
    cli.main(["defects", "fit", str(work / "data"), "--category", "flange", "--out", str(work / "model"),
              "--shots", "4"])
    res = {}
    for name, extra in (("in_process", ["--threads", str(threads)]), ("workers_2", ["--workers", "2"])):
        out = work / f"inspect_{name}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        cli.main(["defects", "inspect", str(work / "model"), str(folder), "--out", str(out), "--quiet", *extra])
        wall = time.perf_counter() - t0
        res[name] = {"images": 48, "wall_seconds": round(wall, 2), "images_per_second": round(48 / wall, 2),
                     "seconds_per_image": round(wall / 48, 4)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--shots", default="0,1,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tune-epochs", type=int, default=20, help="0 skips the learned-prompt question")
    ap.add_argument("--out", default="docs/data/defects.json")
    ap.add_argument("--test-good", type=int, default=6, help="good test images per category")
    ap.add_argument("--per-defect", type=int, default=4, help="test images per defect kind")
    ap.add_argument("--no-pose", dest="pose", action="store_false", help="skip the pose study")
    ap.add_argument("--no-false-alarm", dest="false_alarm", action="store_false", help="skip the calibration study")
    ap.add_argument("--no-inspect", dest="inspect", action="store_false", help="skip the inspect timing")
    a = ap.parse_args()
    from samprompt import __version__, cli
    from samprompt.synthetic.defects import write_defect_dataset

    work = Path(tempfile.mkdtemp(prefix="defects_bench_"))
    data = write_defect_dataset(work / "data", train=12, test_good=a.test_good, per_defect=a.per_defect, seed=a.seed)
    doc: dict = {"version": __version__, "seed": a.seed, "threads": a.threads, "test_good": a.test_good,
                 "per_defect": a.per_defect, "shots": {}}
    for k in [int(s) for s in a.shots.split(",")]:
        t0 = time.perf_counter()
        doc["shots"][str(k)] = run_defects(data, work / f"out{k}", k, a.threads)
        doc["shots"][str(k)]["wall_seconds"] = round(time.perf_counter() - t0, 1)
        print(k, json.dumps(doc["shots"][str(k)]["mean"]), flush=True)
    if a.pose:
        doc["pose"] = pose_study(work / "data", a.seed)
        print("pose", json.dumps(doc["pose"]), flush=True)
    if a.false_alarm:
        doc["false_alarm"] = false_alarm_study(a.seed)
        print("false_alarm", json.dumps(doc["false_alarm"]), flush=True)
    if a.inspect:
        doc["inspect"] = inspect_speed(work, a.seed, a.threads)
        print("inspect", json.dumps(doc["inspect"]), flush=True)
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
