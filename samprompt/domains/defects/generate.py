"""Generated prompts: an anomaly map -> regions and peaks -> point + box prompts -> SAM masks -> defect instances.

:func:`map_to_prompts` thresholds the map and takes each connected region
(at least ``min_region`` px) as one candidate: a box around the region, grown by
a quarter of its size on each side (at least 4 px) so SAM sees the defect's
edge, and a positive click at the region's peak. :func:`segment_defects` decodes
all of an image's candidates in one batch (one encoder pass), then decides per
region what its instance is, so the masks never lose what the map found:

Each region's **outline** follows the map's own shape, not the image threshold:
with ``base`` ``median``, it is the connected part holding the peak of
``map >= max(floor x threshold, b + rise x (peak - b))``, b the image's median map
value: the region's half-height contour, which may reach below the image
threshold (a faint defect's shoulders) or sit above it (a sharp one's core);
with ``base`` ``threshold``, the region cut at ``threshold + rise x (peak -
threshold)``. Then:

* ``sam``: SAM's mask, cut to the outline grown by ``grow`` px, when SAM agrees
  with the map and sharpens it: the cut mask has ``min_area`` px to
  ``max_fraction`` of the image, a predicted IoU of at least ``min_iou``, and a
  mean map value under it of at least the threshold and at least ``sharpen`` x
  the outline's own mean (SAM's mask lies on the hotter part of the region, not
  on a neighbouring normal structure);
* ``map``: otherwise, when SAM's mask spreads over at least ``leak`` x the
  outline's area (SAM saw something there but could not outline it, typically
  the whole part), the outline itself (already smooth: the map is smoothed
  before it is thresholded);
* dropped: otherwise (SAM's mask is small and off the map's hot part: SAM sees
  nothing distinct there, as on a texture's false alarm). Dropped regions are
  listed in the result with their area and peak, never silently lost.

With ``sam`` False every outline is its own instance: :class:`~.model.DefectModel`
sets it, with ``base`` ``threshold`` and ``rise`` 0.5, for parts it aligns to a
pose, where the built-in model's masks follow the part's own edges (holes,
notches, threads) and scored below the map, and the image threshold sits just
above the small normal variation left after alignment.

The rules and their numbers were chosen on generated data of seed 0 and checked
on the held-out seed 100, at 0, 1 and 4 shots (docs/defects.md).
Instances that overlap are merged; the source of a merged instance names its
parts (``sam+map``). The image score is the map's maximum (PatchCore's image
score), and the verdict is ``defect`` when it exceeds the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ...errors import ConfigError
from ...prompts import Prompt


@dataclass
class DefectSettings:
    """How a map becomes instances (see the module doc)."""

    min_region: int = 16
    keep: float = 1.0  # SAM's mask: mean map under it >= keep x threshold
    min_area: int = 9
    max_fraction: float = 0.5
    min_iou: float = 0.5
    sharpen: float = 1.05  # SAM's mask: mean map under it >= sharpen x the region's mean
    grow: int = 4  # SAM's mask is cut to the region grown by this many px
    leak: float = 0.5  # SAM's mask this share of the region's area or more: fall back to the region
    sam: bool = True  # False: every region is its own instance (parts aligned to a pose; see DefectModel.fit)
    base: str = "median"  # outlines rise from the image's median map value, or from the "threshold"
    rise: float = 0.4  # an outline is where the map has risen this share of the way from its base to the peak
    floor: float = 0.8  # ... and never below this x the image threshold


@dataclass
class DefectResult:
    """An image's verdict and instances.

    ``anomaly_map`` (H, W) float32; ``score`` the map's maximum; ``masks`` (N, H, W) bool, one per
    instance; ``scores`` (N,) SAM's predicted IoU (NaN for an instance from the map); ``sources`` (N,)
    ``sam``, ``map`` or ``sam+map``; ``prompts`` the prompts of the N instances' regions; ``dropped``
    the regions above the threshold that made no instance, with the reason; ``threshold`` the one used.
    """

    anomaly_map: np.ndarray
    score: float
    masks: np.ndarray
    scores: np.ndarray
    prompts: list[Prompt]
    sources: list[str] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    threshold: float | None = None

    @property
    def labels(self) -> np.ndarray:
        """(H, W) instance label map: 0 = normal, k = defect k."""
        out = np.zeros(self.anomaly_map.shape, np.uint16)
        for k, m in enumerate(self.masks, 1):
            out[m & (out == 0)] = k
        return out

    @property
    def verdict(self) -> str:
        """``defect`` when the score exceeds the threshold, else ``ok``."""
        return "defect" if self.threshold is not None and self.score > self.threshold else "ok"

    def instances(self) -> list[dict]:
        """One dict per instance: ``box`` (XYXY, continuous pixels), ``area`` (px), ``score`` (the map's peak
        under it), ``iou`` (SAM's predicted IoU, None for a map instance) and ``source``."""
        out = []
        for m, iou, src in zip(self.masks, self.scores, self.sources):
            ys, xs = np.nonzero(m)
            out.append({"box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                        "area": int(m.sum()), "score": round(float(self.anomaly_map[m].max()), 5),
                        "iou": None if np.isnan(iou) else round(float(iou), 4), "source": src})
        return out


def map_to_prompts(anomaly_map: np.ndarray, threshold: float, min_region: int = 16) -> list[Prompt]:
    """One point + box prompt per connected region of ``anomaly_map > threshold`` (see the module doc)."""
    return [p for p, _ in _regions(anomaly_map, threshold, min_region)[0]]


def _outline(anomaly_map: np.ndarray, region: np.ndarray, peak: tuple[int, int], threshold: float,
             st: DefectSettings) -> np.ndarray:
    """A region's outline: its half-height contour on the map (see the module doc)."""
    top = float(anomaly_map[peak])
    if st.base == "threshold":
        return region & (anomaly_map >= threshold + st.rise * (top - threshold))
    b = float(np.median(anomaly_map))
    level = max(st.floor * threshold, b + st.rise * (top - b))
    _, lab = cv2.connectedComponents((anomaly_map >= level).astype(np.uint8), connectivity=8)
    return lab == lab[peak]


def _regions(anomaly_map: np.ndarray, threshold: float, min_region: int, st: DefectSettings | None = None):
    """([(prompt, region outline)], [dropped small regions]) of ``anomaly_map > threshold``: outlines as
    :func:`_outline` draws them with ``st``, else the regions themselves."""
    h, w = anomaly_map.shape
    above = (anomaly_map > threshold).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    found, small = [], []
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        region = lab == k
        peak = np.unravel_index(np.argmax(np.where(region, anomaly_map, -np.inf)), anomaly_map.shape)
        if area < min_region:
            small.append({"area": int(area), "peak": round(float(anomaly_map[peak]), 5),
                          "reason": f"region of {area} px, under min_region {min_region}"})
            continue
        gx, gy = max(4.0, bw / 4), max(4.0, bh / 4)
        box = (max(0.0, x - gx), max(0.0, y - gy), min(float(w), x + bw + gx), min(float(h), y + bh + gy))
        found.append((Prompt(points=[(peak[1] + 0.5, peak[0] + 0.5)], labels=[1], box=box),
                      region if st is None else _outline(anomaly_map, region, peak, threshold, st)))
    return found, small


def _choose(sam_mask: np.ndarray, iou: float, region: np.ndarray, amap: np.ndarray, threshold: float,
            st: DefectSettings) -> tuple[np.ndarray | None, str]:
    """The instance of one region and its source, or (None, reason) when it is dropped (see the module doc)."""
    size = 2 * st.grow + 1
    grown = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))) > 0
    cut = sam_mask & grown
    area = int(cut.sum())
    if (st.min_area <= area <= st.max_fraction * amap.size and iou >= st.min_iou
            and float(amap[cut].mean()) >= max(st.keep * threshold, st.sharpen * float(amap[region].mean()))):
        return cut, "sam"
    if sam_mask.sum() >= st.leak * region.sum():
        return region, "map"
    return None, (f"SAM's mask ({int(sam_mask.sum())} px) is under {st.leak:g} x the region "
                  f"({int(region.sum())} px) and off its hot part")


def _merge(masks, scores, sources):
    """Union overlapping instances (transitively); a merged one keeps its parts' best IoU and names their sources."""
    merged: list[tuple[np.ndarray, float, set]] = []
    order = sorted(range(len(masks)), key=lambda i: -np.nan_to_num(scores[i], nan=-1.0))
    for i in order:
        m, s, src = masks[i], scores[i], {sources[i]}
        hits = [j for j, (g, _, _) in enumerate(merged) if (g & m).any()]
        for j in sorted(hits, reverse=True):
            g, gs, gsrc = merged.pop(j)
            m, s, src = m | g, np.nanmax([s, gs]) if not (np.isnan(s) and np.isnan(gs)) else np.nan, src | gsrc
        merged.append((m, s, src))
    return [m for m, _, _ in merged], [s for _, s, _ in merged], ["+".join(sorted(src)) for _, _, src in merged]


def segment_defects(seg, rgb: np.ndarray, anomaly_map: np.ndarray, threshold: float,
                    settings: DefectSettings | None = None) -> DefectResult:
    """Prompts from the map, SAM masks in one batch, each region's instance chosen (see the module doc)."""
    st = settings or DefectSettings()
    if st.base not in ("median", "threshold"):
        raise ConfigError(f"DefectSettings.base must be 'median' or 'threshold', got {st.base!r}")
    found, dropped = _regions(anomaly_map, threshold, st.min_region, st)
    masks, scores, sources, used = [], [], [], []
    if found and not st.sam:
        masks, scores, sources, used = ([r for _, r in found], [np.nan] * len(found), ["map"] * len(found),
                                        [p for p, _ in found])
    elif found:
        results = seg.predict(rgb, [p for p, _ in found], multimask=False)
        for r, (p, region) in zip(results, found):
            inst, how = _choose(r.mask, float(r.score), region, anomaly_map, threshold, st)
            if inst is None:
                dropped.append({"area": int(region.sum()), "peak": round(float(anomaly_map[region].max()), 5),
                                "reason": how})
                continue
            masks.append(inst)
            scores.append(float(r.score) if how == "sam" else np.nan)
            sources.append(how)
            used.append(p)
    masks, scores, sources = _merge(masks, scores, sources)
    h, w = anomaly_map.shape
    return DefectResult(anomaly_map, float(anomaly_map.max()),
                        np.stack(masks) if masks else np.zeros((0, h, w), bool), np.array(scores, float), used,
                        sources, dropped, threshold)
