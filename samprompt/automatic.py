"""Promptless "segment everything": a point grid decoded in batches, filtered.

The recipe of SAM's automatic mask generator on one crop, on the Segmenter's
public API only (``embed``, ``decode_batch``, ``mask_threshold``), so the
embedding is cached and shared with prompted calls: each grid point gives three candidate masks;
candidates are kept when their predicted IoU and stability score clear the
thresholds, then de-duplicated by box NMS and, optionally, cleaned of small
islands and holes.
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box, build_point_grid, calculate_stability_score
from torchvision.ops import batched_nms

from .images import ImageLike
from .masks import clean_mask
from .prompts import Prompt
from .result import Result


def segment_everything(
    seg,
    image: ImageLike,
    *,
    points_per_side: int = 16,
    points_per_batch: int = 64,
    pred_iou_thresh: float = 0.8,
    stability_score_thresh: float = 0.9,
    stability_score_offset: float = 1.0,
    box_nms_thresh: float = 0.7,
    min_mask_area: int = 0,
) -> Result:
    """All objects of an image, without prompts.

    Args:
        seg: a :class:`~samprompt.segmenter.Segmenter`.
        points_per_side: the grid is ``points_per_side`` squared points.
        pred_iou_thresh: keep masks whose predicted IoU is at least this.
        stability_score_thresh: keep masks whose IoU between the masks thresholded
            at +/- ``stability_score_offset`` (logits) is at least this.
        box_nms_thresh: box IoU above which the lower-scored mask is dropped.
        min_mask_area: if > 0, remove islands and fill holes smaller than this
            (pixels), then drop masks left smaller than it.

    Returns a :class:`Result` with N masks sorted by score (highest first);
    ``extra["points"]`` holds the (N, 2) grid point behind each mask.
    """
    emb = seg.embed(image)
    h, w = emb.original_size
    grid = build_point_grid(points_per_side) * np.array([[w, h]])
    grid = np.clip(grid, 0, [w - 1, h - 1])
    thr = seg.mask_threshold
    keep_masks, keep_scores, keep_logits, keep_points = [], [], [], []
    for start in range(0, len(grid), points_per_batch):
        pts = grid[start : start + points_per_batch]
        prompts = [Prompt(points=p[None], labels=[1]) for p in pts]
        low, iou, _ = seg.decode_batch(emb, prompts, multimask=True, upscale=False)
        iou, low = iou.flatten(0, 1), low.flatten(0, 1)
        pts_rep = np.repeat(pts, len(low) // len(pts), axis=0)
        sel = iou >= pred_iou_thresh  # the cheap filter first: only survivors are upscaled
        if not sel.any():
            continue
        low, iou, pts_rep = low[sel], iou[sel], pts_rep[sel.cpu().numpy()]
        up = seg.upscale(low, emb)
        keep = calculate_stability_score(up, thr, stability_score_offset) >= stability_score_thresh
        keep_masks.append((up[keep] > thr).cpu())
        keep_scores.append(iou[keep].cpu())
        keep_logits.append(low[keep].cpu())
        keep_points.append(pts_rep[keep.cpu().numpy()])
    masks = torch.cat(keep_masks) if keep_masks else torch.zeros(0, h, w, dtype=torch.bool)
    scores = torch.cat(keep_scores) if keep_scores else torch.zeros(0)
    logits = torch.cat(keep_logits) if keep_logits else torch.zeros(0, *seg.low_res_size)
    points = np.concatenate(keep_points) if keep_points else np.zeros((0, 2))
    nonempty = masks.flatten(1).any(1)
    masks, scores, logits, points = masks[nonempty], scores[nonempty], logits[nonempty], points[nonempty.numpy()]
    if len(masks):
        boxes = batched_mask_to_box(masks).float()
        keep = batched_nms(boxes, scores, torch.zeros(len(boxes)), box_nms_thresh)
        masks, scores, logits, points = masks[keep], scores[keep], logits[keep], points[keep.numpy()]
    masks_np = masks.numpy()
    if min_mask_area > 0 and len(masks_np):
        masks_np = np.stack([clean_mask(m, min_island=min_mask_area, max_hole=min_mask_area) for m in masks_np])
        big = masks_np.reshape(len(masks_np), -1).sum(1) >= min_mask_area
        masks_np, scores, logits, points = masks_np[big], scores[big], logits[big], points[big]
    order = np.argsort(-scores.numpy(), kind="stable")
    return Result(
        masks_np[order].astype(bool),
        scores.numpy()[order],
        logits.numpy()[order],
        None,
        {"points": points[order]},
    )
