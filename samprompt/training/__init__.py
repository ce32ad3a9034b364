"""Training: the built-in tiny model's trainer (:mod:`.tiny`), SAM's losses and parameter freezing."""

from .losses import dice_loss, mask_iou, sam_loss, sigmoid_focal_loss
from .params import trainable

__all__ = ["dice_loss", "mask_iou", "sam_loss", "sigmoid_focal_loss", "trainable"]
