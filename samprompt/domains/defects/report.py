"""A category's metrics from its items' parts, and an HTML page to browse its worst and best cases."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ...jobs.items import WorkItem
from ...jobs.writers import PARTS
from . import metrics as M

KEYS = ("image_auroc", "pixel_auroc", "pro", "pixel_f1_max", "pixel_f1", "mask_f1")


def category_metrics(out: Path, items: list[WorkItem], done: dict[str, dict]) -> dict:
    """The six metrics (None where undefined, with a note saying why) and seconds per image."""
    labels, scores, maps, truths, preds = [], [], [], [], []
    threshold = None
    for item in items:
        rec = done.get(item.id)
        if rec is None:
            continue
        part = np.load(out / PARTS / f"{item.id}.npz")
        defect = item.meta.get("defect")
        scores.append(rec["score"])
        labels.append(defect not in ("good", "unknown"))
        threshold = rec.get("threshold", threshold)
        if part["truth"].size:
            maps.append(part["map"])
            truths.append(part["truth"])
            preds.append(part["masks"])
    res: dict = {"images": len(scores), "defective": int(sum(labels)), "with_masks": len(truths)}
    res["image_auroc"] = M.image_auroc(labels, scores) if scores else None
    if truths:
        res["pixel_auroc"] = M.pixel_auroc(truths, maps)
        res["pro"] = M.pro(truths, maps)
        res["pixel_f1_max"] = M.pixel_f1_max(truths, maps)
        res["pixel_f1"] = M.f1(truths, [m > threshold for m in maps])
        res["mask_f1"] = M.f1(truths, preds)
    else:
        res.update({k: None for k in KEYS[1:]})
    notes = []
    if not any(labels):
        notes.append("no defective images: image AUROC and pixel metrics are undefined")
    elif all(labels):
        notes.append("no good test images: image AUROC is undefined")
    if any(labels) and not any(t.any() for t in truths):
        notes.append("no ground-truth masks: pixel metrics are undefined")
    res["note"] = "; ".join(notes) or None
    sources = [inst["source"] for i in items if i.id in done for inst in done[i.id].get("instances", [])]
    res["instances"] = len(sources)
    res["instances_from_sam"] = sum(s == "sam" for s in sources)
    res["instances_from_map"] = sum(s == "map" for s in sources)
    res["instances_merged"] = len(sources) - res["instances_from_sam"] - res["instances_from_map"]
    secs = [done[i.id]["seconds"] for i in items if i.id in done]
    res["seconds_per_image"] = round(float(np.mean(secs)), 4) if secs else None
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}


def write_report(out: Path, category: str, items: list[WorkItem], done: dict[str, dict], metrics: dict) -> Path:
    """``report.html``: the metrics, then the worst cases (normal images scored highest, defective ones
    scored lowest) and the best, each as its overlay and map."""
    from ...io import atomic_write_text

    rows = [(done[i.id]["score"], i) for i in items if i.id in done]
    good = sorted((r for r in rows if r[1].meta.get("defect") == "good"), key=lambda r: -r[0])
    bad = sorted((r for r in rows if r[1].meta.get("defect") not in ("good",)), key=lambda r: r[0])

    def caption(s: float, i: WorkItem) -> str:
        rec = done[i.id]
        srcs = [inst["source"] for inst in rec.get("instances", [])]
        made = ", ".join(f"{srcs.count(k)} from {k}" for k in sorted(set(srcs)))
        text = f"{i.id}: score {s:.4g}, {rec.get('verdict', '')}, {rec['n_masks']} instance(s)" + (
            f" ({made})" if made else "")
        if rec.get("why_no_instance"):
            text += f"; none because: {rec['why_no_instance']}"
        return html.escape(text)

    def cards(title: str, sel) -> str:
        cells = "".join(
            f'<figure><img src="{html.escape(i.id)}_overlay.png" width="200"><img src="{html.escape(i.id)}_map.png" '
            f'width="200"><figcaption>{caption(s, i)}</figcaption></figure>' for s, i in sel)
        return f"<h2>{title}</h2><div class=row>{cells or '<p>none</p>'}</div>"

    table = "".join(f"<tr><td>{k}</td><td>{'' if metrics.get(k) is None else metrics[k]}</td></tr>"
                    for k in (*KEYS, "instances", "instances_from_sam", "instances_from_map", "instances_merged",
                              "seconds_per_image", "threshold", "threshold_rule", "note"))
    page = f"""<!doctype html><meta charset=utf-8><title>{html.escape(category)}: samprompt defects</title>
<style>body{{font-family:sans-serif;margin:1em}} figure{{display:inline-block;margin:4px}}
figcaption{{font-size:12px}} td{{padding:2px 8px}}</style>
<h1>{html.escape(category)}</h1><p>Overlay: the map blended in, found instances in white, the truth in green.
Each instance is SAM's mask where it sharpens the map's region, else the region itself (source "map").</p>
<table>{table}</table>
{cards("Normal images scored highest (false alarms first)", good[:6])}
{cards("Defective images scored lowest (misses first)", bad[:6])}
{cards("Defective images scored highest", bad[::-1][:6])}
"""
    return atomic_write_text(out / "report.html", page)
