"""Mask post-processing and conversions: islands, holes, label maps, overlays, RLE, polygons.

Masks are (H, W) bool arrays at the image's size; stacks are (N, H, W).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def _drop_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_size) + 1
    if len(small) == 0:
        return mask.copy()
    return mask & ~np.isin(lab, small)


def clean_mask(mask: np.ndarray, *, min_island: int = 0, max_hole: int = 0) -> np.ndarray:
    """Remove connected islands smaller than ``min_island`` px and fill holes smaller than ``max_hole`` px.

    Holes are background components that do not touch the image border.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}")
    if min_island > 0:
        m = _drop_small_components(m, min_island)
    if max_hole > 0:
        inv = ~m
        n, lab, stats, _ = cv2.connectedComponentsWithStats(inv.astype(np.uint8), connectivity=4)
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        fill = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] < max_hole and i not in border]
        if fill:
            m = m | np.isin(lab, fill)
    return m


def drop_repeats(masks: np.ndarray, scores: np.ndarray, iou_thresh: float = 0.7,
                 min_area: int = 1) -> np.ndarray:
    """Indices of the (N, H, W) ``masks`` to keep, best score first: a mask smaller than ``min_area`` px, or one
    whose IoU with a kept mask exceeds ``iou_thresh``, is dropped (mask NMS, for after a cleanup that made
    masks equal)."""
    masks = np.asarray(masks, bool)
    flat = masks.reshape(len(masks), -1)
    areas = flat.sum(1)
    kept: list[int] = []
    for i in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        if areas[i] < max(min_area, 1):
            continue
        if any((flat[i] & flat[j]).sum() / max((flat[i] | flat[j]).sum(), 1) > iou_thresh for j in kept):
            continue
        kept.append(int(i))
    return np.array(sorted(kept), int)


def to_label_map(masks: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """(N, H, W) bool masks -> (H, W) label map (0 = background, k = mask k, later masks on top).

    uint8 when N < 256, else uint16.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    dtype = np.uint8 if len(masks) < 256 else np.uint16
    out = np.zeros(masks.shape[1:], dtype)
    for k, m in enumerate(masks, 1):
        out[m] = k
    return out


def from_label_map(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) label map -> ((N, H, W) bool masks, (N,) label ids), ids ascending, 0 skipped."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    return labels[None] == ids[:, None, None], ids


_PALETTE = (
    np.array(
        [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
         [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
         [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195], [128, 128, 0], [255, 215, 180]],
        np.uint8,
    )
)


def colour(k: int) -> tuple[int, int, int]:
    """A distinct RGB colour for object index ``k`` (0-based)."""
    return tuple(int(c) for c in _PALETTE[k % len(_PALETTE)])  # type: ignore[return-value]


def overlay(
    image: np.ndarray,
    masks: np.ndarray,
    *,
    alpha: float = 0.5,
    contour: bool = True,
    points: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    boxes: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """An RGB picture of masks over an (H, W, 3) uint8 image, for people to look at.

    Optional per-object ``points`` ((N, 2) xy, (N,) labels: green +, red -) and ``boxes`` are drawn too.
    """
    out = image.astype(np.float32).copy()
    masks = np.asarray(masks, dtype=bool)
    for k, m in enumerate(masks):
        out[m] = (1 - alpha) * out[m] + alpha * np.array(colour(k), np.float32)
    out = out.clip(0, 255).astype(np.uint8)
    if contour:
        for k, m in enumerate(masks):
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, cs, -1, colour(k), 1)
    r = max(2, min(image.shape[:2]) // 100)
    for k, b in enumerate(boxes or []):
        if b is not None:
            cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), colour(k), max(1, r // 2))
    for xy, lab in points or []:
        for (x, y), lb in zip(np.asarray(xy), np.asarray(lab)):
            c = (0, 220, 0) if lb == 1 else (230, 0, 0)
            cv2.circle(out, (int(round(x)), int(round(y))), r + 1, (255, 255, 255), -1)
            cv2.circle(out, (int(round(x)), int(round(y))), r, c, -1)
    return out


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO RLE (compressed, ``counts`` as str) of an (H, W) bool mask, via pycocotools."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """(H, W) bool mask from a COCO RLE (``counts`` str/bytes, or uncompressed list)."""
    from pycocotools import mask as mask_utils

    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def mask_to_polygons(mask: np.ndarray, *, tolerance: float = 0.0, min_points: int = 3,
                     holes: bool = False) -> list[np.ndarray]:
    """Outer contours of a mask (and with ``holes``, its holes' too) as (K, 2) float arrays of (x, y) pixel
    coordinates.

    ``tolerance`` > 0 simplifies with Douglas-Peucker (pixels). Without ``holes``, holes are not
    represented (COCO polygons cannot hold them; use RLE for exact masks).
    """
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    cs, _ = cv2.findContours(np.asarray(mask, np.uint8), mode, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c in cs:
        if tolerance > 0:
            c = cv2.approxPolyDP(c, tolerance, True)
        c = c.reshape(-1, 2).astype(np.float64)
        if len(c) >= min_points:
            polys.append(c)
    return polys


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)
