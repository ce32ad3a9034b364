"""Images per second of a folder job, in-process against a local Dask cluster, and the engine's overhead.

    python benchmarks/jobs.py [-n 48] [--size 256] [--json out.json]

One run, same folder, same built-in model, one torch thread per process:
in-process (1 thread), LocalCluster with 2 workers x 1 thread, and the bare
Segmenter loop (read, predict, nothing written) whose time the engine adds its
overhead to (writing label map, overlay, COCO part and prompts; hashing them;
the manifest line).
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

from samprompt import Prompt, Segmenter, to_rgb_uint8
from samprompt.jobs import JobSettings, SegmenterSpec, WorkItem, run_job
from samprompt.synthetic import write_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=48, help="images in the folder")
    p.add_argument("--size", type=int, default=256, help="image side")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(1)
    prompts = [Prompt(box=(10, 10, 120, 120)), Prompt(box=(100, 90, 230, 240)), Prompt(points=[(60, 180)])]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_dataset(tmp / "data", args.n, size=args.size)
        paths = sorted((data / "images").iterdir())
        items = [WorkItem(p.stem, str(p), prompts) for p in paths]
        settings = JobSettings(formats=["png", "coco"])
        seg = Segmenter("tiny", cache_size=0)
        t = time.perf_counter()
        for path in paths:
            seg.predict(to_rgb_uint8(path), prompts)
        bare = time.perf_counter() - t
        t = time.perf_counter()
        run_job(items, tmp / "local", segmenter=SegmenterSpec("tiny", threads=1), settings=settings, progress=False)
        local = time.perf_counter() - t
        t = time.perf_counter()
        run_job(items, tmp / "dask", segmenter=SegmenterSpec("tiny", threads=1), settings=settings, workers=2,
                progress=False)
        dask = time.perf_counter() - t
        t = time.perf_counter()
        run_job(items[:1], tmp / "dask1", segmenter=SegmenterSpec("tiny", threads=1), settings=settings, workers=2,
                progress=False)
        startup = time.perf_counter() - t
        t = time.perf_counter()
        resumed = run_job(items, tmp / "local", segmenter=SegmenterSpec("tiny", threads=1), settings=settings,
                          progress=False)
        resume = time.perf_counter() - t
        assert resumed.skipped == args.n
    rows = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s) per "
                   f"process, {__import__('os').cpu_count()} cores",
        "images": args.n, "size": args.size, "objects_per_image": len(prompts),
        "bare_loop_s": round(bare, 2), "in_process_s": round(local, 2), "local_cluster_2x1_s": round(dask, 2),
        "resume_all_done_s": round(resume, 2),
        "in_process_img_per_s": round(args.n / local, 2), "local_cluster_img_per_s": round(args.n / dask, 2),
        "cluster_vs_in_process": round(local / dask, 2),
        "cluster_start_and_one_image_s": round(startup, 2),
        "cluster_after_start_img_per_s": round((args.n - 1) / max(dask - startup, 1e-9), 2),
        "engine_overhead_ms_per_item": round(1000 * (local - bare) / args.n, 1),
    }
    print(json.dumps(rows, indent=1))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
