"""The learned-prompt experiment: adapt the frozen built-in SAM to three domain shifts.

    python benchmarks/learned_prompts.py [--epochs 20] [--train-n 16] [--test-n 24] [--out runs/learned]
    python benchmarks/learned_prompts.py --compare runs/learned runs/learned_60   # no training

Tasks can run in parallel processes (``--tasks rooftops --threads 1`` in one,
``--tasks scratches --threads 1`` in another, same ``--out``): each task's rows
are saved as ``OUT/results_TASK.json`` and the table is built from every task
found there. One torch thread per process is much faster than several processes
competing for the same cores with several threads each.

For each synthetic task the built-in model never saw in training (``ultrasound``:
speckled low contrast; ``rooftops``: small dense objects; ``scratches``: thin
defects on a periodic texture) it trains every method on ``--train-n`` images
and scores box prompts on a held-out test set (seeds the training never used):
the frozen model, pixel-pad, pixel-fourier, vpt-shallow, vpt-deep, vpt-generated,
and the decoder-only and full fine-tuning baselines. Reported per row: test
mIoU, trained parameters (and % of the model), train time and file size.
Writes ``OUT/results.json`` and ``OUT/results.md`` (the README's table).
``--compare`` reads such folders made with different schedules and judges the
bar with each method at the run its validation score prefers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from samprompt import Segmenter, evaluate_folder, load_model
from samprompt.errors import ConfigError
from samprompt.learned import BASELINES, DEFAULT_LR, METHODS
from samprompt.learned.report import TASKS, compare, mean_by_size, parse_method, report
from samprompt.learned.train import tune
from samprompt.models import model_id
from samprompt.synthetic import write_dataset

#: finer object-size bins than COCO's (rooftops are all COCO-"small"), in pixels of area
SIZES = {"<64": (0, 64), "64-256": (64, 256), "256-1024": (256, 1024), ">=1024": (1024, float("inf"))}
DEFAULT_METHODS = ["frozen", *METHODS, "vpt-deep:kv=direct,tokens=16", *BASELINES]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--train-n", type=int, default=16)
    p.add_argument("--val-n", type=int, default=8)
    p.add_argument("--test-n", type=int, default=24)
    p.add_argument("--tokens", type=int, default=32, help="prompt tokens per block (vpt methods)")
    p.add_argument("--lr", type=float, default=None, help="override every method's learning rate")
    p.add_argument("--seeds", type=int, default=1, help="training runs per method (seeds 0..N-1); mean and std")
    p.add_argument("--tasks", nargs="*", default=list(TASKS))
    p.add_argument("--methods", nargs="*", default=DEFAULT_METHODS,
                   help="methods, optionally with config: METHOD[:KEY=VALUE,...], e.g. vpt-deep:kv=direct,tokens=16")
    p.add_argument("--out", type=Path, default=Path("runs/learned"))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--compare", type=Path, nargs="+", metavar="OUT",
                   help="no training: judge the bar across earlier result folders, each method at its best-val run")
    args = p.parse_args()
    if args.compare:
        compare(args.compare)
        return
    try:
        specs = [(spec, *parse_method(spec)) for spec in args.methods]
    except ConfigError as exc:
        p.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        rows = []
        data = args.out / "data" / task
        train = write_dataset(data / "train", args.train_n, style=task, seed=0)
        val = write_dataset(data / "val", args.val_n, style=task, seed=500)
        test = write_dataset(data / "test", args.test_n, style=task, seed=10_000)
        for spec, method, config in specs:
            model = load_model(args.model)
            total = sum(q.numel() for q in model.parameters())
            if method == "frozen":
                rep = evaluate_folder(Segmenter(model), test, prompt="box", progress=False, size_ranges=SIZES)
                vrep = evaluate_folder(Segmenter(model), val, prompt="box", progress=False)
                row = {"task": task, "method": spec, "mIoU": rep.mIoU, "mIoU_runs": [rep.mIoU], "mIoU_std": 0.0,
                       "val_mIoU": vrep.mIoU, "params": 0, "seconds": 0.0, "bytes": 0, "by_size": rep.by_size}
            else:
                extra = {"tokens": args.tokens} if method.startswith("vpt") else {}
                extra.update(config)
                lr = extra.pop("lr", None) or args.lr or DEFAULT_LR[method]
                reps, vals, secs = [], [], []
                for seed in range(args.seeds):
                    out = args.out / "prompts" / task / spec.replace(":", "_") / f"seed{seed}"
                    t = time.perf_counter()
                    res = tune(model, train, method, val_dir=val, out=out, epochs=args.epochs, seed=seed,
                               lr=lr, progress=True, **extra)
                    secs.append(time.perf_counter() - t)
                    vals.append(res.best_val)
                    reps.append(evaluate_folder(Segmenter(model, learned=res.prompt, cache_size=0), test,
                                                prompt="box", progress=False, size_ranges=SIZES))
                runs = [r.mIoU for r in reps]
                row = {"task": task, "method": spec, "mIoU": float(np.mean(runs)), "mIoU_runs": runs,
                       "mIoU_std": float(np.std(runs)), "val_mIoU": float(np.mean(vals)),
                       "params": res.prompt.num_trainable(), "seconds": float(np.mean(secs)),
                       "bytes": (out / "prompt.safetensors").stat().st_size, "by_size": mean_by_size(reps)}
            row["params_pct"] = 100.0 * row["params"] / total
            row["epochs"] = args.epochs
            row["model"] = model_id(model)
            rows.append(row)
            print(json.dumps(row), flush=True)
        # merge with rows of other methods already saved for this task (e.g. by another process)
        f = args.out / f"results_{task}.json"
        old = json.loads(f.read_text()) if f.exists() else []
        mine = {r["method"] for r in rows}
        f.write_text(json.dumps([r for r in old if r["method"] not in mine] + rows, indent=1))
    report(args.out)


if __name__ == "__main__":
    main()
