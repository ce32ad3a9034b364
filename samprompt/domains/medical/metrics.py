"""3D Dice and normalised surface Dice (NSD) with MONAI's metrics, spacing-aware.

NSD (Nikolov et al. 2021) is the fraction of both surfaces that lies within
``tolerance`` millimetres of the other surface; MONAI computes it with
``compute_surface_dice`` from distance transforms on the voxel grid with its
spacing. Both masks empty gives 1.0 for either metric (nothing to find, nothing
found); one empty gives 0.0.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import require


def _one_hot(pred: np.ndarray, truth: np.ndarray):
    import torch

    p = torch.as_tensor(np.asarray(pred, bool))
    t = torch.as_tensor(np.asarray(truth, bool))
    # (batch, class, X, Y, Z) with background and the object as the two classes
    return (torch.stack([~p, p])[None].float(), torch.stack([~t, t])[None].float())


def dice_3d(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean volumes (MONAI ``DiceMetric``)."""
    require("monai", "medical")
    from monai.metrics import DiceMetric

    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if not pred.any() and not truth.any():
        return 1.0
    p, t = _one_hot(pred, truth)
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=False)
    return float(metric(p, t)[0, 0])


def surface_dice(pred: np.ndarray, truth: np.ndarray, spacing, tolerance: float = 2.0) -> float:
    """Normalised surface Dice at ``tolerance`` mm (MONAI ``compute_surface_dice``), voxel ``spacing`` in mm."""
    require("monai", "medical")
    from monai.metrics import compute_surface_dice

    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if not pred.any() and not truth.any():
        return 1.0
    if not pred.any() or not truth.any():
        return 0.0
    p, t = _one_hot(pred, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = compute_surface_dice(p, t, class_thresholds=[float(tolerance)], include_background=False,
                                 spacing=[float(s) for s in spacing])
    return float(v[0, 0])


__all__ = ["dice_3d", "surface_dice"]
