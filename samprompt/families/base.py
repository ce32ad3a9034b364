"""The interface every model family implements (see :mod:`samprompt.families`)."""

from __future__ import annotations

import numpy as np
import torch


class Family:
    """How one family of SAM models is run; stateless, one instance per Segmenter.

    Attributes:
        name: ``"sam"``, ``"medsam"``, ``"sam-hq"`` or ``"sam2"``; part of the embedding cache key.
        vit_tools: whether the tools written for SAM's ViT apply (fused SDPA attention,
            prompt tokens, ONNX export, the defects patch features).
        squash: whether the image is resized to the full square (no aspect ratio
            kept, no padding), as SAM 2 and MedSAM do, rather than SAM's longest side.
    """

    name = "abstract"
    vit_tools = False
    squash = False

    # ---------------------------------------------------------------- sizes
    def img_size(self, model) -> int:
        """Side of the encoder's square input in pixels."""
        raise NotImplementedError

    def low_res_size(self, model) -> tuple[int, int]:
        """(h, w) of the decoder's low-res logits and of mask prompts."""
        raise NotImplementedError

    def mask_threshold(self, model) -> float:
        """Logit above which a pixel belongs to a mask."""
        return 0.0

    # ---------------------------------------------------------------- image
    def model_input(self, model, rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(H, W, 3) uint8 RGB -> ((1, 3, S, S) input, (h, w) of the image inside it)."""
        raise NotImplementedError

    def forward(self, model, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder step: ``{"features": (1, C, h, w)}`` plus any other tensor the decoder needs."""
        raise NotImplementedError

    # ---------------------------------------------------------------- prompts
    def to_input_frame(self, xy: np.ndarray, input_size: tuple[int, int],
                       original_size: tuple[int, int], device) -> torch.Tensor:
        """(..., 2) (x, y) pixels of the original image -> float32 coordinates in the model's input frame."""
        h, w = original_size
        xy = np.asarray(xy, dtype=np.float64) / np.array([w, h]) * np.array([input_size[1], input_size[0]])
        return torch.as_tensor(xy, dtype=torch.float, device=device)

    def decode(self, model, emb, points, boxes, masks, multimask: bool,
               prompt_encoder=None, mask_decoder=None, fast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits (B, M, h, w) and predicted IoUs (B, M) for B objects of one image.

        ``fast``: a rearranged decoder, equal up to float rounding, where the family has one (SAM's).

        ``points``: ((B, N, 2) input-frame coordinates, (B, N) labels) or None;
        ``boxes``: (B, 4) input-frame XYXY or None; ``masks``: (B, 1, h, w) logits or None.
        """
        raise NotImplementedError

    def upscale(self, model, low_res: torch.Tensor, emb) -> torch.Tensor:
        """(N, 1, h, w) low-res logits -> (N, 1, H, W) logits at the original image size."""
        raise NotImplementedError

    def returned_low_res(self, low_res: torch.Tensor) -> torch.Tensor:
        """The low-res logits as the reference predictor returns them (after masks were taken)."""
        return low_res

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
