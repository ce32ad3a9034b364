"""Segmenter vs the official SamPredictor, same model, same machine, one run.

    python benchmarks/segmenter_vs_predictor.py [--arch vit_b] [--repeats 3] [--json out.json]

Random weights of the chosen architecture (speed does not depend on them).
Reports median wall times and the ratio reference / samprompt (> 1: samprompt faster):

* encode: SamPredictor.set_image vs Segmenter.embed on a new image;
* decode_1: one point prompt on an encoded image;
* boxes_64: 64 box prompts: a Python loop of SamPredictor.predict vs one Segmenter.predict call;
* reprompt: a new prompt on an image seen before, after another image was used
  (SamPredictor must set_image again; the Segmenter hits its embedding cache).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from segment_anything import SamPredictor

from timing import median_time  # benchmarks/timing.py (scripts run from benchmarks/)
from samprompt import Prompt, Segmenter
from samprompt.models import REGISTRY, build_sam
from samprompt.synthetic import make_scene


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vit_b", choices=sorted(REGISTRY))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=512, help="test image side in pixels")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--batch-size", type=int, default=None, help="Segmenter objects per decoder call")
    args = p.parse_args()
    torch.manual_seed(0)
    model = build_sam(REGISTRY[args.arch].arch)
    imgs = [make_scene(i, size=args.size).image for i in range(args.repeats + 2)]
    rng = np.random.default_rng(0)
    s = args.size
    boxes = [np.sort(rng.uniform(0, s - 1, 2)).tolist() for _ in range(128)]
    boxes = [(a[0], b[0], a[1] + 1e-3, b[1] + 1e-3) for a, b in zip(boxes[:64], boxes[64:])]
    prompts = [Prompt(box=b) for b in boxes]
    res = {"arch": args.arch, "image_size": s, "threads": torch.get_num_threads()}

    with torch.inference_mode():
        pred = SamPredictor(model)
        seg = Segmenter(model, cache_size=64)
        it = iter(imgs)
        ref = median_time(lambda: pred.set_image(next(it)), args.repeats)
        it = iter(imgs)
        ours = median_time(lambda: seg.embed(next(it)), args.repeats)
        res["encode"] = (ref, ours)

        img = imgs[0]
        pred.set_image(img)
        seg.embed(img)
        pt = np.array([[s / 2, s / 2]])
        ref = median_time(lambda: pred.predict(point_coords=pt, point_labels=np.array([1])), args.repeats * 3)
        ours = median_time(lambda: seg.predict(img, Prompt(points=pt)), args.repeats * 3)
        res["decode_1"] = (ref, ours)

        ref = median_time(lambda: [pred.predict(box=np.array(b), multimask_output=False) for b in boxes], args.repeats)
        ours = median_time(lambda: seg.predict(img, prompts, batch_size=args.batch_size), args.repeats)
        res["boxes_64"] = (ref, ours)

        other = imgs[-1]
        seg.embed(other)

        def ref_reprompt():
            pred.set_image(other)
            pred.set_image(img)
            pred.predict(point_coords=pt, point_labels=np.array([1]))

        def our_reprompt():
            seg.predict(other, Prompt(points=pt))
            seg.predict(img, Prompt(points=pt))

        res["reprompt"] = (median_time(ref_reprompt, args.repeats), median_time(our_reprompt, args.repeats))

    print(f"{args.arch} at {s}px, {res['threads']} threads (median of {args.repeats}+ runs)")
    print(f"{'case':10s} {'SamPredictor':>13s} {'samprompt':>11s} {'ratio':>7s}")
    for k in ("encode", "decode_1", "boxes_64", "reprompt"):
        ref, ours = res[k]
        print(f"{k:10s} {ref * 1e3:11.1f}ms {ours * 1e3:9.1f}ms {ref / ours:6.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: (v if not isinstance(v, tuple) else {"reference_s": v[0], "samprompt_s": v[1],
                                                                 "ratio": v[0] / v[1]}) for k, v in res.items()}, f, indent=1)


if __name__ == "__main__":
    main()
