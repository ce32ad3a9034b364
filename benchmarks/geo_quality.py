"""Quality of ``samprompt geo`` on generated rasters with known truth: prompted and automatic, seams included.

    python benchmarks/geo_quality.py [--seeds 20,21,22] [--size 1024] [--threads 2] [--out docs/data/geo_quality.json]

Held-out rasters (``samprompt synth --raster``, seeds 20.., never used to pick
the defaults, which were chosen on seed 0). Reported per mode:

* ``box``: each truth footprint as a polygon prompt in lon/lat (its bounding box
  is the prompt); ``point``: one click at the footprint's centre, in lon/lat;
  mean IoU of each object's mask with its truth;
* ``auto`` (the defaults) and ``auto_no_join`` (the same tiles, pieces never
  joined across seams): for each truth object the best IoU of any output
  object, recall at IoU 0.5, the share of output objects that match a truth
  object at IoU 0.5 (precision), and for the truth objects that cross a
  seam of the tile grid, how many come out as one object (best IoU >= 0.5) and
  how many are split (two or more output objects each cover >= 20 % of it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

from samprompt import Segmenter, __version__
from samprompt.domains.geo import GeoJob, geo_items, parse_geo_prompts, raster_info, tile_grid
from samprompt.domains.geo.job import AUTO_DEFAULTS
from samprompt.jobs import run_job
from samprompt.models import load_model
from samprompt.synthetic.rasters import write_raster_dataset


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def _ious(labels, truth):
    """Per truth object: (best IoU of any output object, number of output objects covering >= 20 % of it)."""
    best, pieces = {}, {}
    for k in np.unique(truth)[1:]:
        t = truth == k
        ids, counts = np.unique(labels[t], return_counts=True)
        scores = [((labels == v) & t).sum() / ((labels == v) | t).sum() for v in ids if v]
        best[int(k)] = max(scores, default=0.0)
        pieces[int(k)] = int(sum(c >= 0.2 * t.sum() for v, c in zip(ids, counts) if v))
    return best, pieces


def _precision(labels, truth) -> float:
    ok = 0
    ids = np.unique(labels)[1:]
    for v in ids:
        p = labels == v
        tids = np.unique(truth[p])
        ok += any(((truth == t) & p).sum() / ((truth == t) | p).sum() >= 0.5 for t in tids if t)
    return ok / max(len(ids), 1)


def _seam_objects(truth, size: int, tile=256, overlap=64) -> set[int]:
    edges = sorted({w[0] + w[2] for _, _, w in tile_grid(size, size, tile, overlap)} - {size})
    out = set()
    for e in edges:
        for k in np.unique(truth[:, e - 1])[1:]:
            if k in np.unique(truth[:, e]):
                out.add(int(k))
        for k in np.unique(truth[e - 1, :])[1:]:
            if k in np.unique(truth[e, :]):
                out.add(int(k))
    return out


def _points_doc(doc: dict) -> dict:
    feats = []
    for f in doc["features"]:
        ring = np.array(f["geometry"]["coordinates"][0][:-1])
        feats.append({**f, "geometry": {"type": "Point", "coordinates": ring.mean(0).tolist()}})
    return {**doc, "features": feats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="20,21,22")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="docs/data/geo_quality.json")
    ap.add_argument("--points-per-side", type=int, default=AUTO_DEFAULTS["points_per_side"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    seg = Segmenter(load_model("tiny"))
    work = Path(tempfile.mkdtemp(prefix="geo_quality_"))
    acc: dict[str, dict[str, list]] = {}
    for seed in [int(s) for s in a.seeds.split(",")]:
        data = write_raster_dataset(work / f"s{seed}", a.size, seed=seed)
        info = raster_info(data / "scene.tif")
        truth = _read(data / "scene_truth.tif")
        seams = _seam_objects(truth, a.size)
        doc = json.loads((data / "prompts.geojson").read_text())
        for mode, prompt_doc in (("box", doc), ("point", _points_doc(doc))):
            t0 = time.perf_counter()
            out = work / f"{mode}{seed}"
            objs = parse_geo_prompts(prompt_doc, info)
            run_job(geo_items(info, objs, 256, 64), out, segmenter=seg, settings=GeoJob(info=info), progress=False)
            labels = _read(out / "scene.labels.tif")
            ious = [((labels == k) & (truth == k)).sum() / max(((labels == k) | (truth == k)).sum(), 1)
                    for k in np.unique(truth)[1:]]
            r = acc.setdefault(mode, {"iou": [], "seconds": [], "objects": []})
            r["iou"] += ious
            r["seconds"].append(time.perf_counter() - t0)
            r["objects"].append(len(ious))
        for mode, join, coarse in (("auto", 0.5, True), ("auto_no_coarse", 0.5, False),
                                   ("auto_no_join", 2.0, False)):
            t0 = time.perf_counter()
            out = work / f"{mode}{seed}"
            run_job(geo_items(info, None, 256, 64, coarse=coarse), out, segmenter=seg,
                    settings=GeoJob(info=info, mode="auto", join=join,
                                    auto={**AUTO_DEFAULTS, "points_per_side": a.points_per_side}), progress=False)
            labels = _read(out / "scene.labels.tif")
            best, pieces = _ious(labels, truth)
            r = acc.setdefault(mode, {"best_iou": [], "precision": [], "seam_whole": 0, "seam_split": 0,
                                      "seam_objects": 0, "seconds": [], "objects": []})
            r["best_iou"] += list(best.values())
            r["precision"].append(_precision(labels, truth))
            r["seam_objects"] += len(seams)
            r["seam_whole"] += sum(best[k] >= 0.5 for k in seams)
            r["seam_split"] += sum(pieces[k] >= 2 for k in seams)
            r["seconds"].append(time.perf_counter() - t0)
            r["objects"].append(len(np.unique(labels)) - 1)
        print(seed, {m: round(float(np.mean(v.get("iou", v.get("best_iou")))), 3) for m, v in acc.items()}, flush=True)
    result = {"version": __version__, "seeds": a.seeds, "size": a.size, "threads": a.threads,
              "points_per_side": a.points_per_side, "modes": {}}
    for mode, r in acc.items():
        row = {"seconds_per_raster": round(float(np.mean(r["seconds"])), 2), "truth_objects": len(r.get("iou", r.get("best_iou")))}
        if "iou" in r:
            row["mean_iou"] = round(float(np.mean(r["iou"])), 3)
        else:
            b = np.array(r["best_iou"])
            row.update(mean_best_iou=round(float(b.mean()), 3), recall_at_0_5=round(float((b >= 0.5).mean()), 3),
                       precision_at_0_5=round(float(np.mean(r["precision"])), 3), output_objects=int(sum(r["objects"])),
                       seam_objects=r["seam_objects"], seam_whole=int(r["seam_whole"]), seam_split=int(r["seam_split"]))
        result["modes"][mode] = row
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["modes"], indent=1))


if __name__ == "__main__":
    main()
