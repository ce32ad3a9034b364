"""Generated prompts: an anomaly map -> regions and peaks -> point + box prompts -> SAM masks -> defect instances.

:func:`map_to_prompts` thresholds the map and takes each connected region
(at least ``min_region`` px) as one candidate: a box around the region, grown by
a quarter of its size on each side (at least 4 px) so SAM sees the defect's
edge, and a positive click at the region's peak. :func:`segment_defects` decodes
all of an image's candidates in one batch (one encoder pass) and keeps a mask when

* the map's mean under it is at least ``keep`` x the threshold (the mask is on
  what the map found, not on a neighbouring normal structure),
* its area lies between ``min_area`` px and ``max_fraction`` of the image,
* its predicted IoU is at least ``min_iou``.

Kept masks that overlap are merged into one instance. The image score is the
map's maximum (PatchCore's image score), so an image can be judged even when
no instance survives.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...prompts import Prompt


@dataclass
class DefectSettings:
    """How a map becomes instances (see the module doc)."""

    min_region: int = 16
    keep: float = 1.0
    min_area: int = 9
    max_fraction: float = 0.5
    min_iou: float = 0.5


@dataclass
class DefectResult:
    """An image's verdict: its map, its score, the instances (bool masks) and the prompts that made them."""

    anomaly_map: np.ndarray
    score: float
    masks: np.ndarray  # (N, H, W) bool
    scores: np.ndarray  # (N,) predicted IoU
    prompts: list[Prompt]

    @property
    def labels(self) -> np.ndarray:
        """(H, W) instance label map: 0 = normal, k = defect k."""
        out = np.zeros(self.anomaly_map.shape, np.uint16)
        for k, m in enumerate(self.masks, 1):
            out[m & (out == 0)] = k
        return out


def map_to_prompts(anomaly_map: np.ndarray, threshold: float, min_region: int = 16) -> list[Prompt]:
    """One point + box prompt per connected region of ``anomaly_map > threshold`` (see the module doc)."""
    h, w = anomaly_map.shape
    above = (anomaly_map > threshold).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    prompts = []
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        if area < min_region:
            continue
        region = lab == k
        peak = np.unravel_index(np.argmax(np.where(region, anomaly_map, -np.inf)), anomaly_map.shape)
        gx, gy = max(4.0, bw / 4), max(4.0, bh / 4)
        box = (max(0.0, x - gx), max(0.0, y - gy), min(float(w), x + bw + gx), min(float(h), y + bh + gy))
        prompts.append(Prompt(points=[(peak[1] + 0.5, peak[0] + 0.5)], labels=[1], box=box))
    return prompts


def _merge(masks: list[np.ndarray], scores: list[float]) -> tuple[list[np.ndarray], list[float]]:
    """Union overlapping masks (transitively); the merged score is the best of its parts."""
    merged: list[tuple[np.ndarray, float]] = []
    for m, s in sorted(zip(masks, scores), key=lambda t: -t[1]):
        hits = [i for i, (g, _) in enumerate(merged) if (g & m).any()]
        for i in sorted(hits, reverse=True):
            g, gs = merged.pop(i)
            m, s = m | g, max(s, gs)
        merged.append((m, s))
    return [m for m, _ in merged], [s for _, s in merged]


def segment_defects(seg, rgb: np.ndarray, anomaly_map: np.ndarray, threshold: float,
                    settings: DefectSettings | None = None) -> DefectResult:
    """Prompts from the map, SAM masks in one batch, filtered and merged (see the module doc)."""
    st = settings or DefectSettings()
    prompts = map_to_prompts(anomaly_map, threshold, st.min_region)
    masks, scores, used = [], [], []
    if prompts:
        results = seg.predict(rgb, prompts, multimask=False)
        limit = st.max_fraction * anomaly_map.size
        for r, p in zip(results, prompts):
            m = r.mask
            area = int(m.sum())
            if not st.min_area <= area <= limit or float(r.score) < st.min_iou:
                continue
            if float(anomaly_map[m].mean()) < st.keep * threshold:
                continue
            masks.append(m)
            scores.append(float(r.score))
            used.append(p)
    masks, scores = _merge(masks, scores)
    h, w = anomaly_map.shape
    return DefectResult(anomaly_map, float(anomaly_map.max()),
                        np.stack(masks) if masks else np.zeros((0, h, w), bool), np.array(scores), used)
