"""Evaluate a segmenter on a labelled folder with prompts simulated from the labels.

A labelled folder holds ``images/NAME.(png|jpg|tif|...)`` and ``masks/NAME.png``
(0 = background, k = object k). For every object:

* ``box``: its tight box (optionally jittered: noise std = ``jitter`` x side, max 20 px);
* ``point``: one positive point farthest from its boundary; the mask of highest
  predicted IoU among the three candidates is scored (the best of the three by
  true IoU is reported too, as ``oracle_mIoU``: mask quality apart from the IoU
  head's choice, as in the SAM paper);
* ``clicks``: the point above, then ``clicks - 1`` corrective clicks, each in the
  largest error region (positive on a miss, negative on a false region), with
  the previous low-res logits as mask prompt, as in SAM's interactive evaluation.

Reported: mIoU and mean Dice over all objects, per-click mIoU, mIoU by object
size (COCO's areas: small < 32², medium < 96², large, in image pixels), per-image
scores and any images that failed (the run goes on without them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImageError
from .images import iter_labelled, read_label_map, to_rgb_uint8
from .masks import dice, from_label_map, iou
from .prompts import Prompt
from .segmenter import Segmenter
from .simulate import box_from_mask, center_point, next_click

PROMPT_MODES = ("box", "point", "clicks")
#: COCO's object-size ranges, in pixels of area: [low, high).
SIZE_RANGES: dict[str, tuple[float, float]] = {
    "small": (0, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, float("inf")),
}


@dataclass
class EvalReport:
    prompt: str
    model: str
    n_images: int = 0
    n_objects: int = 0
    mIoU: float = float("nan")
    mDice: float = float("nan")
    per_click_mIoU: list[float] = field(default_factory=list)
    oracle_mIoU: float | None = None
    by_size: dict[str, dict] = field(default_factory=dict)
    per_image: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_image(
    seg: Segmenter,
    image: np.ndarray,
    labels: np.ndarray,
    *,
    prompt: str = "box",
    clicks: int = 3,
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict:
    """Scores of one image: {"iou", "dice", "area": [...] per object, "click_iou": [[...] per click]}.

    Point and click modes add "oracle_iou": per object, the best first-click
    candidate by true IoU.
    """
    if prompt not in PROMPT_MODES:
        raise ValueError(f"prompt must be one of {PROMPT_MODES}, got {prompt!r}")
    gts, _ = from_label_map(labels)
    if labels.shape != image.shape[:2]:
        raise ImageError(f"mask shape {labels.shape} differs from image shape {image.shape[:2]}")
    if len(gts) == 0:
        return {"iou": [], "dice": [], "area": [], "click_iou": []}
    rng = rng or np.random.default_rng(0)
    if prompt == "box":
        prompts = [Prompt(box=box_from_mask(g, jitter, rng)) for g in gts]
        preds = [r.mask for r in seg.predict(image, prompts, multimask=False)]
        click_iou = [[iou(p, g) for p, g in zip(preds, gts)]]
    else:
        n = 1 if prompt == "point" else max(1, clicks)
        prompts = [Prompt(points=center_point(g)[None], labels=[1]) for g in gts]
        results = seg.predict(image, prompts, multimask=True, best_only=False)
        preds = [r.mask for r in results]
        click_iou = [[iou(p, g) for p, g in zip(preds, gts)]]
        oracle = [max(iou(m, g) for m in r.masks) for r, g in zip(results, gts)]
        for _ in range(n - 1):
            nxt = []
            for r, p, g in zip(results, preds, gts):
                xy, lab = next_click(p, g)
                nxt.append(r.refine(float(xy[0]), float(xy[1]), lab))
            results = seg.predict(image, nxt, multimask=False)
            preds = [r.mask for r in results]
            click_iou.append([iou(p, g) for p, g in zip(preds, gts)])
    scores = {
        "iou": click_iou[-1],
        "dice": [dice(p, g) for p, g in zip(preds, gts)],
        "area": [int(g.sum()) for g in gts],
        "click_iou": click_iou,
    }
    if prompt != "box":
        scores["oracle_iou"] = oracle
    return scores


def evaluate_folder(
    seg: Segmenter,
    folder: str | Path,
    *,
    prompt: str = "box",
    clicks: int = 3,
    jitter: float = 0.0,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
    model_name: str = "",
    size_ranges: dict[str, tuple[float, float]] = SIZE_RANGES,
) -> EvalReport:
    """Evaluate on every labelled image of ``folder`` (see module doc).

    ``size_ranges``: the object-area bins of ``EvalReport.by_size`` (default COCO's).
    """
    from tqdm.auto import tqdm

    items = list(iter_labelled(folder))[:limit]
    report = EvalReport(prompt=prompt, model=model_name)
    all_iou, all_dice, all_area, all_oracle, per_click = [], [], [], [], []
    rng = np.random.default_rng(seed)
    for name, img_path, mask_path in tqdm(items, desc=f"eval {prompt}", disable=not progress):
        try:
            image = to_rgb_uint8(img_path)
            labels = read_label_map(mask_path)
            scores = evaluate_image(seg, image, labels, prompt=prompt, clicks=clicks, jitter=jitter, rng=rng)
        except Exception as exc:  # a broken image is recorded, the rest goes on
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        report.n_images += 1
        report.n_objects += len(scores["iou"])
        all_iou += scores["iou"]
        all_dice += scores["dice"]
        all_area += scores["area"]
        all_oracle += scores.get("oracle_iou", [])
        per_click.append(scores["click_iou"])
        report.per_image[name] = {
            "mIoU": float(np.mean(scores["iou"])) if scores["iou"] else None,
            "n_objects": len(scores["iou"]),
        }
    if all_iou:
        report.mIoU = float(np.mean(all_iou))
        report.mDice = float(np.mean(all_dice))
        n_clicks = max(len(c) for c in per_click)
        report.per_click_mIoU = [
            float(np.mean([v for c in per_click if len(c) > k for v in c[k]])) for k in range(n_clicks)
        ]
        report.by_size = by_size(all_iou, all_area, size_ranges)
        if all_oracle:
            report.oracle_mIoU = float(np.mean(all_oracle))
    return report


def by_size(ious: list[float], areas: list[int], ranges: dict[str, tuple[float, float]] = SIZE_RANGES) -> dict:
    """{range name: {"n": objects, "mIoU": mean IoU or None}} for objects binned by area."""
    iou_arr, area_arr = np.asarray(ious, float), np.asarray(areas, float)
    out = {}
    for name, (lo, hi) in ranges.items():
        sel = (area_arr >= lo) & (area_arr < hi)
        out[name] = {"n": int(sel.sum()), "mIoU": float(iou_arr[sel].mean()) if sel.any() else None}
    return out


def plot_report(report: EvalReport, path: str | Path) -> Path:
    """A PNG of a report: mIoU by object size, and the per-click curve when there are clicks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clicks = len(report.per_click_mIoU) > 1
    fig, axes = plt.subplots(1, 2 if clicks else 1, figsize=(8.4 if clicks else 4.4, 3.4), squeeze=False)
    ax = axes[0][0]
    sizes = {k: v for k, v in report.by_size.items() if v["n"]}
    bars = ax.bar(list(sizes), [v["mIoU"] for v in sizes.values()], color="tab:blue")
    for bar, v in zip(bars, sizes.values()):
        ax.annotate(f"{v['mIoU']:.3f}\n(n={v['n']})", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.axhline(report.mIoU, color="k", ls="--", lw=1, label=f"all {report.mIoU:.3f}")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("mIoU")
    what = f"after {len(report.per_click_mIoU)} clicks" if clicks else f"{report.prompt} prompts"
    ax.set_title(f"{what}, by object area", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if clicks:
        ax = axes[0][1]
        k = range(1, len(report.per_click_mIoU) + 1)
        ax.plot(k, report.per_click_mIoU, "o-")
        if report.oracle_mIoU is not None:
            ax.plot([1], [report.oracle_mIoU], "r*", label=f"first click, oracle {report.oracle_mIoU:.3f}")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xticks(list(k))
        ax.set_xlabel("click")
        ax.set_ylabel("mIoU")
        ax.set_title("mIoU per click", fontsize=9)
    fig.suptitle(f"{report.model or 'model'}: {report.n_objects} objects in {report.n_images} images", fontsize=9)
    fig.tight_layout()
    from .io import save_figure

    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)
