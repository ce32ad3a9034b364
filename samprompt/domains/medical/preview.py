"""A picture to look at after ``samprompt medical``: three planes through the segmented structures.

:func:`three_plane_preview` cuts the windowed volume (RAS grid) through the centre of
the labelled voxels in the axial, coronal and sagittal planes and draws the labels
over them, each plane at square millimetres, anterior or superior up and the
patient's right on the left (the radiological convention, as docs/medical.md draws it).
"""

from __future__ import annotations

import cv2
import numpy as np

from ...masks import colour

ALPHA = 0.45
PLANE_NAMES = {2: "axial", 1: "coronal", 0: "sagittal"}


def _plane(image: np.ndarray, labels: np.ndarray, axis: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Slice ``k`` across ``axis`` as shown: rows turned so anterior/superior is up; the patient's left-right
    axis mirrored (radiological) where it is on screen (axial and coronal)."""
    img, lab = np.take(image, k, axis=axis).T[::-1], np.take(labels, k, axis=axis).T[::-1]
    if axis != 0:
        img, lab = img[:, ::-1], lab[:, ::-1]
    return img, lab


def three_plane_preview(image: np.ndarray, labels: np.ndarray, spacing, height: int = 256) -> np.ndarray:
    """(height, W, 3) uint8 RGB: axial | coronal | sagittal through the labels' centre (the volume's centre when
    nothing is labelled); ``image``: the windowed (X, Y, Z) uint8 volume, ``labels``: (X, Y, Z) label values."""
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    found = np.nonzero(labels)
    centre = [int(round(found[a].mean())) if len(found[0]) else n // 2 for a, n in enumerate(labels.shape)]
    panels = []
    for axis in (2, 1, 0):
        img, lab = _plane(image, labels, axis, centre[axis])
        sx, sy = (s for a, s in enumerate(spacing) if a != axis)  # mm per column, per row
        width = max(1, round(height * img.shape[1] * sx / (img.shape[0] * sy)))
        rgb = cv2.cvtColor(cv2.resize(np.ascontiguousarray(img, np.uint8), (width, height),
                                      interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2RGB).astype(np.float32)
        lab = cv2.resize(np.ascontiguousarray(lab, np.int32).astype(np.float32), (width, height),
                         interpolation=cv2.INTER_NEAREST).astype(np.int64)
        for value in np.unique(lab[lab > 0]):
            mask = lab == value
            c = np.array(colour(int(value) - 1), np.float32)
            rgb[mask] = (1 - ALPHA) * rgb[mask] + ALPHA * c
            edges, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            out = np.ascontiguousarray(rgb.astype(np.uint8))
            cv2.drawContours(out, edges, -1, tuple(int(v) for v in c), 1)
            rgb = out.astype(np.float32)
        panel = np.ascontiguousarray(rgb.astype(np.uint8))
        cv2.putText(panel, PLANE_NAMES[axis], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
        panels += [panel, np.full((height, 4, 3), 255, np.uint8)]
    return np.concatenate(panels[:-1], axis=1)
