"""Medical volumes on generated CT: propagation quality against the per-slice oracle, and speed.

    python benchmarks/medical.py [--n 12] [--seed 300] [--threads 2] [--learned DIR] [--out docs/data/medical.json]

Held-out volumes (seeds 300.., never used to choose the propagation defaults,
which were picked on seeds 100-105: the core box, min_agree 0.5, margin 0) at the default size (96 x 96 x 40 voxels,
0.8 x 0.8 x 2.5 mm), cycling RAS, LPS and oblique affines. For each prompting
mode (key-slice box, 3D box, one point, the key-slice box with three-plane
fusion, and the oracle box on every slice) it reports 3D Dice and NSD at 2 mm,
per label and mean. Speed: slices segmented per second by key-slice
propagation, against the encoder-bound limit (1 / the encoder's time per
slice, measured on the same slices in the same run).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samprompt import Segmenter, __version__
from samprompt.domains.medical import PropagationSettings, evaluate_volumes, load_volume
from samprompt.domains.medical.intensity import choose_window
from samprompt.domains.medical.propagate import SliceView
from samprompt.synthetic.volumes import LABELS, write_volume_dataset


def encoder_seconds_per_slice(seg, path: Path) -> float:
    vol = load_volume(path)
    window, _ = choose_window(vol.data)
    view = SliceView(window(vol.data), vol.spacing, 2, vol.data)
    images = [view.image(k) for k in range(view.n)]
    seg.embed(images[0])  # warm-up
    t0 = time.perf_counter()
    for k in range(1, view.n):  # every slice differs, so none comes from the cache
        seg.embed(images[k])
    return (time.perf_counter() - t0) / (view.n - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--learned", default=None, help="also evaluate with this learned prompt")
    ap.add_argument("--out", default="docs/data/medical.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp())
    data = write_volume_dataset(work / "ct", args.n, seed=args.seed)
    seg = Segmenter("tiny", cache_size=64)
    rows: dict = {}
    t0 = time.perf_counter()
    plain = evaluate_volumes(seg, data, progress=True)
    rows["modes"] = {m: {k: v for k, v in r.items()} for m, r in plain["modes"].items()}
    rows["seconds_eval"] = time.perf_counter() - t0
    fused = evaluate_volumes(seg, data, settings=PropagationSettings(fuse=True), modes=("key_box",), progress=True)
    rows["modes"]["key_box_fused"] = fused["modes"]["key_box"]
    rows["key_box_vs_oracle"] = plain["key_box_vs_oracle"]
    if args.learned:
        from samprompt.learned import LearnedPrompt

        tuned = Segmenter(seg.model, learned=LearnedPrompt.load(args.learned, seg.model), cache_size=64)
        t = evaluate_volumes(tuned, data, modes=("key_box", "oracle_box"), progress=True)
        rows["learned"] = {"prompt": args.learned, "modes": t["modes"], "key_box_vs_oracle": t["key_box_vs_oracle"]}

    # speed: propagation against the encoder alone, on the first volume
    from samprompt.domains.medical import VolumeObject, segment_volume
    from samprompt.domains.medical.evaluate import labelled_volumes, simulate_objects

    name, img, mask = labelled_volumes(data)[0]
    import nibabel as nib

    truth = np.round(np.asarray(nib.load(str(mask)).dataobj)).astype(int)
    objs: list[VolumeObject] = simulate_objects(truth)["key_box"]
    vol = load_volume(img)
    window, _ = choose_window(vol.data)
    fresh = Segmenter(seg.model, cache_size=1)
    segment_volume(fresh, vol, objs[:1], window)  # warm-up
    times = []
    for _ in range(3):
        fresh = Segmenter(seg.model, cache_size=1)
        res = segment_volume(fresh, vol, objs, window)
        times.append((res.seconds, res.encoder_passes, res.decoded_slices))
    best = min(times)
    enc = encoder_seconds_per_slice(Segmenter(seg.model, cache_size=1), img)
    rows["speed"] = {
        "volume": name, "objects": len(objs), "seconds": best[0], "encoder_passes": best[1],
        "decoded_slices": best[2], "slices_per_second": best[1] / best[0],
        "encoder_seconds_per_slice": enc, "encoder_bound_slices_per_second": 1 / enc,
        "fraction_of_encoder_bound": (best[1] / best[0]) * enc,
    }
    rows["setup"] = {"volumes": args.n, "seeds": [args.seed, args.seed + args.n - 1], "shape": [96, 96, 40],
                     "spacing_mm": [0.8, 0.8, 2.5], "labels": LABELS, "threads": args.threads,
                     "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "samprompt": __version__, "nsd_tolerance_mm": 2.0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    for m, r in rows["modes"].items():
        print(f"{m:<14} Dice {r['dice']:.3f}  NSD {r['nsd']:.3f}")
    print(f"key box / oracle: {rows['key_box_vs_oracle']:.3f}")
    s = rows["speed"]
    print(f"{s['slices_per_second']:.1f} slices/s; encoder-bound {s['encoder_bound_slices_per_second']:.1f} slices/s "
          f"({100 * s['fraction_of_encoder_bound']:.0f}%)")
    if "learned" in rows:
        print(f"learned: key box Dice {rows['learned']['modes']['key_box']['dice']:.3f}")


if __name__ == "__main__":
    main()
