"""SAM's training losses: focal + dice on masks, MSE on the IoU head."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per-mask focal loss, mean over pixels. ``logits``/``target``: (..., H, W)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Per-mask soft dice loss. ``logits``/``target``: (..., H, W)."""
    p = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + eps) / (p.sum(-1) + t.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of thresholded logits with a binary target, per mask (no grad)."""
    with torch.no_grad():
        pred = logits > 0
        t = target > 0.5
        inter = (pred & t).flatten(-2).sum(-1).float()
        union = (pred | t).flatten(-2).sum(-1).float()
        return inter / union.clamp(min=1)


def sam_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    target: torch.Tensor,
    *,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
    iou_weight: float = 1.0,
    select: str = "min",
    focal_alpha: float = -1.0,
    focal_gamma: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's loss for one decoding round.

    Args:
        logits: (B, M, H, W) mask logits at the target's resolution.
        iou_pred: (B, M) predicted IoUs.
        target: (B, H, W) binary float targets.
        focal_alpha: class weight of the focal loss (< 0: none, so a small
            object is not drowned by its background).
        select: ``"min"`` backpropagates only the best of the M masks per object
            (for ambiguous prompts), ``"first"`` uses mask 0 (single-mask output).

    Returns the scalar loss and the index of the mask used per object (B,).
    """
    t = target[:, None].expand_as(logits)
    per_mask = focal_weight * sigmoid_focal_loss(logits, t, alpha=focal_alpha, gamma=focal_gamma) + dice_weight * dice_loss(logits, t)
    if select == "min":
        idx = per_mask.argmin(1)
    else:
        idx = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    mask_loss = per_mask.gather(1, idx[:, None]).mean()
    iou_loss = F.mse_loss(iou_pred, mask_iou(logits, t))
    return mask_loss + iou_weight * iou_loss, idx
