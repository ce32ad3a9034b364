"""The SAM family on this CPU, one run: encode time and cached click per model, memory vs box propagation.

    python benchmarks/families.py [--repeats 2] [--slices 12] [--json docs/data/families.json]

Random weights (speed does not depend on them), each model built by its reference
package. Per model: the encoder on a new 1024 x 768 image (``Segmenter.embed``,
median of ``--repeats``) and a click on the cached embedding (median of 20), with
ratios against SAM ViT-B. Then one object followed through ``--slices`` slices of a
generated CT (96 x 96) from a box on the middle slice, with SAM 2.1 tiny, by box
propagation and by memory (SAM 2's video predictor): seconds per slice.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import torch

from timing import median_time  # benchmarks/timing.py (scripts run from benchmarks/)
from samprompt import Prompt, Segmenter
from samprompt.families.build import build_hq, build_sam2_model
from samprompt.models import REGISTRY, build_sam
from samprompt.synthetic import make_scene


def models():
    yield "SAM ViT-B", lambda: build_sam(REGISTRY["vit_b"].arch)
    for size in ("tiny", "small", "base_plus"):
        yield f"SAM 2.1 {size}", lambda size=size: build_sam2_model(REGISTRY[f"sam2.1_hiera_{size}"].config)
    yield "SAM-HQ ViT-B", lambda: build_hq(REGISTRY["sam_hq_vit_b"].arch)


def encode_and_click(repeats: int) -> list[dict]:
    rows = []
    images = [make_scene(i, size=(768, 1024)).image for i in range(repeats)]
    for name, build in models():
        torch.manual_seed(0)
        seg = Segmenter(build(), cache_size=0)
        it = iter(images)
        encode = median_time(lambda: seg.embed(next(it)), repeats)
        emb = seg.embed(images[0])
        click = median_time(lambda: seg.decode(emb, Prompt(points=[[500, 400]], labels=[1])), 20)
        rows.append({"model": name, "family": seg.family.name, "encode_s": round(encode, 3),
                     "click_ms": round(1000 * click, 1)})
        print(rows[-1], flush=True)
    base = rows[0]
    for r in rows:
        r["encode_speedup_vs_vit_b"] = round(base["encode_s"] / r["encode_s"], 2)
        r["click_speedup_vs_vit_b"] = round(base["click_ms"] / r["click_ms"], 2)
    return rows


def propagation(n_slices: int) -> dict:
    from samprompt.domains.medical.propagate import PropagationSettings, SliceView, propagate_object
    from samprompt.normalize import Window
    from samprompt.synthetic.volumes import make_volume

    vol = make_volume(7)
    z0 = vol.data.shape[2] // 2 - n_slices // 2
    data = vol.data[:, :, z0:z0 + n_slices]
    truth = vol.labels[:, :, z0:z0 + n_slices] == 1
    view = SliceView(Window.from_level(400, 40)(data), vol.spacing, 2, data)
    key = n_slices // 2
    ys, xs = np.nonzero(np.take(truth, key, axis=2).T)
    box = view.to_pixels(np.array([xs.min(), ys.min()])).tolist() + view.to_pixels(np.array([xs.max() + 1,
                                                                                               ys.max() + 1])).tolist()
    torch.manual_seed(0)
    seg = Segmenter(build_sam2_model(REGISTRY["sam2.1_hiera_tiny"].config), cache_size=64)
    out = {"slices": n_slices, "model": "SAM 2.1 tiny (random weights)"}
    for method in ("box", "memory"):
        seg.cache.clear()
        t = time.perf_counter()
        masks = propagate_object(seg, view, key, Prompt(box=box), PropagationSettings(method=method))
        out[f"{method}_s_per_slice"] = round((time.perf_counter() - t) / n_slices, 2)
        out[f"{method}_slices_reached"] = len(masks)
        print(method, out, flush=True)
    out["memory_vs_box"] = round(out["memory_s_per_slice"] / out["box_s_per_slice"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--slices", type=int, default=12)
    p.add_argument("--json")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    cpu = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    res = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_tile" in flags,
           "models": encode_and_click(args.repeats), "propagation": propagation(args.slices)}
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
