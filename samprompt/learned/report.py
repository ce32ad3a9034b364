"""Tables, verdicts and pictures of the learned-prompt benchmark (``benchmarks/learned_prompts.py``).

Rows are dicts, one per task and method: ``task``, ``method`` (a spec such as
``"vpt-deep:kv=direct,tokens=16"``), ``mIoU`` (mean test mIoU over seeds),
``mIoU_runs``, ``mIoU_std``, ``val_mIoU``, ``params``, ``params_pct``, ``seconds``,
``bytes``, optionally ``by_size`` and ``epochs``, and the ``model`` id.
:func:`report` builds ``results.json``, ``results.md`` and ``results.png`` from
the per-task files a run leaves; :func:`compare` judges the bar across runs
of different schedules.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io import atomic_write_text, save_figure
from .config import BASELINES, METHODS

TASKS = ("ultrasound", "rooftops", "scratches")


def parse_method(spec: str) -> tuple[str, dict]:
    """``"vpt-deep:kv=direct,tokens=16"`` -> ``("vpt-deep", {"kv": "direct", "tokens": 16})``."""
    name, _, opts = spec.partition(":")
    config = {}
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"bad method option {item!r} in {spec!r}: expected KEY=VALUE")
        for cast in (int, float, str):
            try:
                config[key] = cast(value)
                break
            except ValueError:
                continue
    if name not in ("frozen", *METHODS, *BASELINES):
        raise ConfigError(f"unknown method {name!r} in {spec!r}")
    return name, config


def mean_by_size(reports) -> dict:
    """Per size bin: the object count and the mean over runs of the bin's mIoU."""
    out = {}
    for key, first in reports[0].by_size.items():
        vals = [r.by_size[key]["mIoU"] for r in reports]
        out[key] = {"n": first["n"], "mIoU": None if first["n"] == 0 else float(np.mean(vals))}
    return out


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
    atomic_write_text(out / "results.json", json.dumps(rows, indent=1))
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
    atomic_write_text(out / "results.md", text)
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
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
