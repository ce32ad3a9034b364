"""The two steps every caller of SAM shares: image -> model input, prompts -> decoder outputs.

The Segmenter, the learned-prompt trainer and the built-in model's trainer all go
through these, so inference and training see images and prompts the same way
(``SamPredictor``'s resize, normalisation and padding).
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide
from torch import nn


def model_input(model: Sam, rgb: np.ndarray, device: torch.device | str | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """(H, W, 3) uint8 RGB -> ((1, 3, S, S) float input, (h, w) of the resized image inside it).

    The longest side is resized to the encoder's side ``S`` (as ``SamPredictor``
    does), then the pixels are normalised and the short side zero-padded
    (``Sam.preprocess``).
    """
    resized = ResizeLongestSide(model.image_encoder.img_size).apply_image(rgb)
    x = torch.as_tensor(resized, device=device or model.device).permute(2, 0, 1).contiguous()[None]
    return model.preprocess(x.float()), (int(resized.shape[0]), int(resized.shape[1]))


def run_decoder(
    prompt_encoder: nn.Module,
    mask_decoder: nn.Module,
    embedding: torch.Tensor,
    *,
    points: tuple[torch.Tensor, torch.Tensor] | None = None,
    boxes: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    multimask: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt encoder + mask decoder for B objects of one image.

    Args:
        embedding: (1, C, h, w) image embedding, or (B, C, h, w): one row per object, so
            objects of several images decode in one call (training batches them so).
        points: ((B, N, 2) coordinates in the model's input frame, (B, N) labels), or None.
        boxes: (B, 4) XYXY in the model's input frame, or None.
        masks: (B, 1, 4h, 4w) low-res mask logits, or None.
        multimask: ``True``: the three multimask outputs, ``False``: the single
            one (as ``MaskDecoder.forward``); ``None``: all four, for training losses.

    Returns (B, M, 4h, 4w) low-res logits and (B, M) predicted IoUs.
    """
    sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
    if embedding.shape[0] > 1:
        # SAM's decoder repeats one embedding per object and adds the dense prompt to it; with
        # an embedding per object, that sum is made here and the decoder repeats zeros.
        dense = dense + embedding
        embedding = embedding.new_zeros((1, *embedding.shape[1:]))
    inputs = dict(
        image_embeddings=embedding,
        image_pe=prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
    )
    if multimask is None:
        return mask_decoder.predict_masks(**inputs)
    return mask_decoder(**inputs, multimask_output=multimask)
