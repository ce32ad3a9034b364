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
from samprompt.learned import BASELINES, DEFAULT_LR, METHODS
from samprompt.learned.train import tune
from samprompt.models import model_id
from samprompt.synthetic import write_dataset

TASKS = ("ultrasound", "rooftops", "scratches")
#: finer object-size bins than COCO's (rooftops are all COCO-"small"), in pixels of area
SIZES = {"<64": (0, 64), "64-256": (64, 256), "256-1024": (256, 1024), ">=1024": (1024, float("inf"))}
DEFAULT_METHODS = ["frozen", *METHODS, "vpt-deep:kv=direct,tokens=16", *BASELINES]


def parse_method(spec: str) -> tuple[str, dict]:
    """``"vpt-deep:kv=direct,tokens=16"`` -> ``("vpt-deep", {"kv": "direct", "tokens": 16})``."""
    name, _, opts = spec.partition(":")
    config = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"bad method option {item!r} in {spec!r}: expected KEY=VALUE")
        for cast in (int, float, str):
            try:
                config[key] = cast(value)
                break
            except ValueError:
                continue
    if name not in ("frozen", *METHODS, *BASELINES):
        raise SystemExit(f"unknown method {name!r} in {spec!r}")
    return name, config


def _mean_by_size(reports) -> dict:
    """Per size bin: the object count and the mean over runs of the bin's mIoU."""
    out = {}
    for key, first in reports[0].by_size.items():
        vals = [r.by_size[key]["mIoU"] for r in reports]
        out[key] = {"n": first["n"], "mIoU": None if first["n"] == 0 else float(np.mean(vals))}
    return out


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
    specs = [(spec, *parse_method(spec)) for spec in args.methods]
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
                       "bytes": (out / "prompt.safetensors").stat().st_size, "by_size": _mean_by_size(reps)}
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


def _order(row: dict) -> tuple[int, str]:
    """Table order: frozen, the prompt methods (each variant after its base), the baselines."""
    base = row["method"].partition(":")[0]
    names = ["frozen", *METHODS, *BASELINES]
    return (names.index(base) if base in names else len(names), row["method"])


def _score(row: dict) -> str:
    runs = row.get("mIoU_runs", [row["mIoU"]])
    return f"{row['mIoU']:.3f} ± {row['mIoU_std']:.3f}" if len(runs) > 1 else f"{row['mIoU']:.3f}"


def report(out: Path) -> str:
    """Build ``results.json`` and the Markdown table ``results.md`` from every ``results_TASK.json`` in ``out``."""
    rows = []
    for task in TASKS:
        f = out / f"results_{task}.json"
        if f.exists():
            rows += sorted(json.loads(f.read_text()), key=_order)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    seeds = max(len(r.get("mIoU_runs", [0])) for r in rows)
    lines = ["| task | method | test mIoU | val mIoU | trained params | % of model | train time | file |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        val = f"{r['val_mIoU']:.3f}" if r.get("val_mIoU") is not None else "-"
        lines.append(f"| {r['task']} | {r['method']} | {_score(r)} | {val} | {r['params']:,} | {r['params_pct']:.2f}% | "
                     f"{r['seconds']:.0f} s | {r['bytes'] / 1024:.0f} KiB |")
    models = sorted({r.get("model", "?") for r in rows})
    runs = f"mean ± std over {seeds} training seeds" if seeds > 1 else "one training run each"
    lines += ["", f"Model: {', '.join(models)}; box prompts on the held-out test images; {runs}; "
                  "val mIoU: the validation score of the kept epoch (mean)."]
    text = "\n".join(lines + [""] + verdicts(rows) + size_table(rows)) + "\n"
    (out / "results.md").write_text(text)
    plot(rows, out / "results.png")
    print(text)
    return text


def verdicts(rows: list[dict]) -> list[str]:
    """One line per task and vpt-deep variant: its gain over the frozen model against full fine-tuning's."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        by = {r["method"]: r for r in rows if r["task"] == task}
        if not {"frozen", "full-ft"} <= set(by):
            continue
        gain_full = by["full-ft"]["mIoU"] - by["frozen"]["mIoU"]
        for name in (m for m in by if m.partition(":")[0] == "vpt-deep"):
            gain_vpt = by[name]["mIoU"] - by["frozen"]["mIoU"]
            ok = gain_vpt >= 0.5 * gain_full and by[name]["params_pct"] < 2
            out.append(f"- {task}: {name} gains {gain_vpt:+.3f}, full fine-tuning {gain_full:+.3f} "
                       f"({'meets' if ok else 'misses'} the half-of-full bar)")
    return out


def compare(outs: list[Path]) -> str:
    """Judge the bar with every method at the run its validation score prefers.

    ``outs``: result folders of the same tasks under different schedules (e.g.
    ``--epochs 20`` and ``--epochs 60``). Per task and method, the run with the
    highest mean validation mIoU is kept, as a user choosing by validation would;
    the verdicts then compare each method at its own chosen schedule. The table
    lists the methods found in every folder.
    """
    loaded = [(out, json.loads((out / "results.json").read_text())) for out in outs]
    runs = {_run_label(out, rows): rows for out, rows in loaded}
    chosen: dict[tuple[str, str], tuple[str, dict]] = {}
    for label, rows in runs.items():
        for r in rows:
            key = (r["task"], r["method"])
            if key not in chosen or (r.get("val_mIoU") or 0.0) > (chosen[key][1].get("val_mIoU") or 0.0):
                chosen[key] = (label, r)
    labels = list(runs)
    lines = ["| task | method | " + " | ".join(f"{lb}: test / val" for lb in labels) + " | chosen by val |",
             "|---|---|" + "---|" * (len(labels) + 1)]
    for (task, method), (label, _) in chosen.items():
        found = [next((r for r in runs[lb] if r["task"] == task and r["method"] == method), None) for lb in labels]
        if None in found:  # the table shows the rows every run has
            continue
        cells = [f"{r['mIoU']:.3f} / {r['val_mIoU']:.3f}" for r in found]
        lines.append(f"| {task} | {method} | " + " | ".join(cells) + f" | {label} |")
    text = "\n".join(lines + [""] + verdicts([r for _, r in chosen.values()])) + "\n"
    print(text)
    return text


def _run_label(out: Path, rows: list[dict]) -> str:
    """``"20 epochs"`` when the rows record their schedule, else the folder's name."""
    epochs = {r.get("epochs") for r in rows}
    return f"{epochs.pop()} epochs" if len(epochs) == 1 and None not in epochs else out.name


def size_table(rows: list[dict], methods=("frozen", "vpt-deep", "decoder-ft", "full-ft")) -> list[str]:
    """Markdown lines: test mIoU by object area (pixels) for a few methods, where rows carry ``by_size``."""
    rows = [r for r in rows if r.get("by_size") and r["method"].partition(":")[0] in methods]
    if not rows:
        return []
    bins = list(rows[0]["by_size"])
    lines = ["", "| task | method | " + " | ".join(f"{b} px" for b in bins) + " |", "|---|---|" + "---|" * len(bins)]
    for r in rows:
        cells = [f"{v['mIoU']:.3f} ({v['n']})" if v["n"] else "-" for v in r["by_size"].values()]
        lines.append(f"| {r['task']} | {r['method']} | " + " | ".join(cells) + " |")
    return lines


def plot(rows: list[dict], path: Path) -> Path:
    """One panel per task: test mIoU per method, the frozen model and the vpt-deep bar as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4.2), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        by = {r["method"]: r for r in rows if r["task"] == task}
        names = [m for m in by if m != "frozen"]
        vals = [by[m]["mIoU"] for m in names]
        colours = ["tab:red" if m.startswith("vpt-deep") else "tab:grey" if m.endswith("-ft") else "tab:blue" for m in names]
        errs = [by[m].get("mIoU_std", 0.0) for m in names]
        ax.barh(names, vals, xerr=errs, color=colours)
        for y, (v, e) in enumerate(zip(vals, errs)):
            ax.text(v + e, y, f" {v:.3f}", va="center", fontsize=7)
        lo = min(vals + ([by["frozen"]["mIoU"]] if "frozen" in by else []))
        if "frozen" in by:
            f = by["frozen"]["mIoU"]
            ax.axvline(f, color="k", ls="--", lw=1, label=f"frozen {f:.3f}")
            if "full-ft" in by:
                half = f + 0.5 * (by["full-ft"]["mIoU"] - f)
                ax.axvline(half, color="tab:red", ls=":", lw=1.5, label=f"bar (half of full) {half:.3f}")
        ax.set_xlim(max(0.0, lo - 0.05), min(1.0, max(vals) + 0.06))
        ax.set_title(task)
        ax.set_xlabel("test mIoU (box prompts)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=7, frameon=False)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
