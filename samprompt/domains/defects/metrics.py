"""Anomaly-detection metrics: image and pixel AUROC and F1 from scikit-learn, PRO written here.

* ``image_auroc``: ROC AUC of the image scores against "has a defect";
* ``pixel_auroc``: ROC AUC of the map's pixels against the truth masks;
* ``pro``: the area under the per-region-overlap curve up to a false-positive
  rate of 0.3, divided by 0.3 (so 1.0 is perfect), as in MVTec-AD and anomalib.
  At each threshold the overlap of a truth region is the fraction of its pixels
  above the threshold, averaged over all regions (connected components of the
  truth masks, 8-connected); the false-positive rate is over the normal pixels.
  No light library has it (anomalib's pulls lightning, kornia and timm);
* ``pixel_f1_max``: the best pixel F1 of the map over all thresholds;
* ``pixel_f1``: the pixel F1 of the map at a given threshold;
* ``mask_f1``: the pixel F1 of the final masks.
"""

from __future__ import annotations

import cv2
import numpy as np


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return None  # undefined with one class only
    return float(roc_auc_score(labels, np.asarray(scores, np.float64).ravel()))


def image_auroc(has_defect, scores) -> float | None:
    """ROC AUC over images; None when all images are of one kind."""
    return _auroc(np.asarray(has_defect), np.asarray(scores))


def pixel_auroc(masks: list[np.ndarray], maps: list[np.ndarray]) -> float | None:
    """ROC AUC over every pixel of every image; None without defect (or without normal) pixels."""
    return _auroc(np.concatenate([m.ravel() for m in masks]), np.concatenate([a.ravel() for a in maps]))


def pixel_f1_max(masks: list[np.ndarray], maps: list[np.ndarray]) -> float | None:
    """The best F1 of ``map > t`` over all thresholds t; None without defect pixels."""
    from sklearn.metrics import precision_recall_curve

    y = np.concatenate([m.ravel() for m in masks]).astype(bool)
    if not y.any():
        return None
    p, r, _ = precision_recall_curve(y, np.concatenate([a.ravel() for a in maps]).astype(np.float64))
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return float(f1.max())


def f1(masks: list[np.ndarray], predicted: list[np.ndarray]) -> float | None:
    """Pixel F1 of bool predictions against the truth; None without defect pixels."""
    from sklearn.metrics import f1_score

    y = np.concatenate([m.ravel() for m in masks]).astype(bool)
    if not y.any():
        return None
    return float(f1_score(y, np.concatenate([p.ravel() for p in predicted]).astype(bool), zero_division=0))


def pro(masks: list[np.ndarray], maps: list[np.ndarray], fpr_limit: float = 0.3) -> float | None:
    """Normalised area under the PRO curve up to ``fpr_limit`` (see the module doc); None without regions."""
    regions = []
    normal = []
    for m, a in zip(masks, maps):
        m = np.asarray(m, bool)
        normal.append(a[~m].ravel())
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions += [np.sort(a[lab == k].ravel()) for k in range(1, n)]
    normal_scores = np.sort(np.concatenate(normal)) if normal else np.zeros(0)
    if not regions or not len(normal_scores):
        return None
    # every distinct score is a threshold where the curve can change: "above" means >= t
    thresholds = np.unique(np.concatenate([normal_scores, *regions]))[::-1]
    fpr = 1.0 - np.searchsorted(normal_scores, thresholds, side="left") / len(normal_scores)
    overlap = np.mean([1.0 - np.searchsorted(r, thresholds, side="left") / len(r) for r in regions], axis=0)
    fpr = np.concatenate([[0.0], fpr])
    overlap = np.concatenate([[0.0], overlap])
    keep = fpr <= fpr_limit
    xs, ys = fpr[keep], overlap[keep]
    if (~keep).any():  # close the curve exactly at the limit, interpolating on the segment that crosses it
        i = int(np.argmax(~keep))
        t = (fpr_limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        xs, ys = np.append(xs, fpr_limit), np.append(ys, overlap[i - 1] + t * (overlap[i] - overlap[i - 1]))
    return float(np.trapezoid(ys, xs)) / fpr_limit  # the trapezoid rule, as anomalib integrates it
