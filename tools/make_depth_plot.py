"""Plot VPT's depth ablation: ``python tools/make_depth_plot.py runs/learned runs/depth``.

Test mIoU (mean ± std over the training seeds) against the number of prompted
encoder blocks, one panel per task: depth 1 is ``vpt-shallow`` and the full depth
``vpt-deep`` from the main run; the depths in between are ``vpt-deep:depth=N`` rows
of a second run (``benchmarks/learned_prompts.py --methods vpt-deep:depth=3 ...``).
The frozen model and full fine-tuning are drawn as lines, with the half-of-full bar.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from samprompt.learned.report import parse_method
from samprompt.models import TINY_ARCH

DOCS = Path(__file__).parents[1] / "docs"


def depth_of(method: str) -> int | None:
    """The prompted depth of a row's method, or None for rows that are not VPT tokens of the default kind."""
    name, config = parse_method(method)
    if name == "vpt-shallow" and not config:
        return 1
    if name == "vpt-deep" and set(config) <= {"depth"}:
        return config.get("depth", TINY_ARCH.encoder_depth)
    return None


def main(main_run: Path, depth_run: Path, out: Path = DOCS / "learned_depth.png") -> Path:
    rows = json.loads((main_run / "results.json").read_text()) + json.loads((depth_run / "results.json").read_text())
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.0 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        pts = sorted((depth_of(r["method"]), r["mIoU"], r.get("mIoU_std", 0.0)) for r in rows
                     if r["task"] == task and depth_of(r["method"]) is not None)
        by = {r["method"]: r["mIoU"] for r in rows if r["task"] == task}
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt="o-",
                    color="tab:red", capsize=3, label="prompt tokens")
        if "frozen" in by:
            ax.axhline(by["frozen"], color="k", ls="--", lw=1, label="frozen")
        if {"frozen", "full-ft"} <= set(by):
            ax.axhline(by["full-ft"], color="tab:grey", lw=1, label="full fine-tuning")
            ax.axhline(by["frozen"] + 0.5 * (by["full-ft"] - by["frozen"]), color="tab:red", ls=":", lw=1.2,
                       label="half of full's gain")
        ax.set_title(task)
        ax.set_xlabel(f"prompted blocks from the first (1: vpt-shallow, {TINY_ARCH.encoder_depth}: vpt-deep)")
        ax.set_xticks([p[0] for p in pts])
        ax.set_ylabel("test mIoU (box prompts)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("main_run", type=Path)
    p.add_argument("depth_run", type=Path)
    p.add_argument("--out", type=Path, default=DOCS / "learned_depth.png")
    a = p.parse_args()
    main(a.main_run, a.depth_run, a.out)
