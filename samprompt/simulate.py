"""Prompts simulated from ground-truth masks, as in SAM's training and evaluation.

All coordinates are (x, y) pixels of the mask's image; boxes are XYXY with
``x1``/``y1`` the last column/row the object covers (SAM's convention).
"""

from __future__ import annotations

import cv2
import numpy as np


def box_from_mask(mask: np.ndarray, jitter: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """The tight XYXY box of a (H, W) bool mask, optionally jittered.

    ``jitter`` is the noise std as a fraction of the box side (SAM uses 0.1),
    capped at 20 px; the jittered box is clipped to the image and kept non-degenerate.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("cannot make a box from an empty mask")
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)
    if jitter > 0:
        rng = rng or np.random.default_rng()
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        std = np.minimum(np.array([w, h, w, h]) * jitter, 20.0)
        box = box + rng.normal(0, 1, 4) * std
        H, W = mask.shape
        box = np.clip(box, 0, [W - 1, H - 1, W - 1, H - 1])
        box[2] = max(box[2], box[0] + 1)
        box[3] = max(box[3], box[1] + 1)
        box = np.clip(box, 0, [W - 1, H - 1, W - 1, H - 1])
    return box


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    """Distance of each mask pixel to the nearest non-mask pixel (image border counts)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def center_point(mask: np.ndarray) -> np.ndarray:
    """The (x, y) pixel of ``mask`` farthest from its boundary (first one on ties)."""
    if not mask.any():
        raise ValueError("cannot place a point in an empty mask")
    dist = _distance_inside(mask)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return np.array([x, y], np.float64)


def random_point(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random (x, y) pixel inside ``mask``."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("cannot place a point in an empty mask")
    i = int(rng.integers(len(xs)))
    return np.array([xs[i], ys[i]], np.float64)


def next_click(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, int]:
    """The corrective click of SAM's interactive evaluation.

    Returns the (x, y) point farthest from the boundary of the largest error
    (false negatives or false positives) and its label: 1 to add a missed
    region, 0 to remove a false one. A perfect prediction gets a positive click
    at the object's centre (it changes nothing the model should undo).
    """
    fn = gt & ~pred
    fp = pred & ~gt
    d_fn = _distance_inside(fn) if fn.any() else None
    d_fp = _distance_inside(fp) if fp.any() else None
    best_fn = float(d_fn.max()) if d_fn is not None else -1.0
    best_fp = float(d_fp.max()) if d_fp is not None else -1.0
    if best_fn < 0 and best_fp < 0:
        return center_point(gt), 1
    dist, label = (d_fn, 1) if best_fn >= best_fp else (d_fp, 0)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return np.array([x, y], np.float64), label
