"""SAM 2 and 2.1 (``sam2``): Hiera encoder with high-resolution features, run as ``SAM2ImagePredictor``."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .base import Family


@functools.lru_cache(maxsize=4)
def _transforms(side: int):
    """SAM2ImagePredictor's own image transform for a ``side``-px model (built once: it scripts a module)."""
    import warnings

    from sam2.utils.transforms import SAM2Transforms

    with warnings.catch_warnings():  # torch's notice that torch.jit.script is deprecated
        warnings.simplefilter("ignore")
        return SAM2Transforms(resolution=side, mask_threshold=0.0)


class Sam2Family(Family):
    """SAM 2: the image squashed to a 1024 x 1024 square, ImageNet mean and std on [0, 1] pixels.

    The embedding carries the two high-resolution feature maps the decoder
    upsamples with (``high_res_0``, ``high_res_1``); boxes enter the prompt
    encoder as two corner points (labels 2 and 3) before any clicks; returned
    low-res logits are clamped to [-32, 32] as the reference predictor returns them.
    """

    name = "sam2"
    squash = True

    def img_size(self, model) -> int:
        return int(model.image_size)

    def low_res_size(self, model) -> tuple[int, int]:
        h, w = model.sam_prompt_encoder.mask_input_size
        return (int(h), int(w))

    def model_input(self, model, rgb):
        s = self.img_size(model)
        x = _transforms(s)(np.ascontiguousarray(rgb))
        return x[None].to(model.device), (s, s)

    def forward(self, model, x):
        backbone = model.forward_image(x)
        _, feats, _, sizes = model._prepare_backbone_features(backbone)
        if model.directly_add_no_mem_embed:
            feats[-1] = feats[-1] + model.no_mem_embed
        maps = [f.permute(1, 2, 0).reshape(x.shape[0], -1, *hw) for f, hw in zip(feats, sizes)]
        return {"features": maps[-1], "high_res_0": maps[0], "high_res_1": maps[1]}

    def to_input_frame(self, xy, input_size, original_size, device):
        h, w = original_size
        coords = torch.as_tensor(np.asarray(xy), dtype=torch.float, device=device).clone()
        coords[..., 0] = coords[..., 0] / w
        coords[..., 1] = coords[..., 1] / h
        return coords * input_size[1]  # the square's side, as SAM2Transforms.transform_coords scales

    def decode(self, model, emb, points, boxes, masks, multimask, prompt_encoder=None, mask_decoder=None,
               fast=False):
        prompt_encoder = prompt_encoder or model.sam_prompt_encoder
        if boxes is not None:  # a box is its two corners, labels 2 and 3, ahead of the clicks
            corners = boxes.reshape(-1, 2, 2)
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device).repeat(len(boxes), 1)
            if points is not None:
                points = (torch.cat([corners, points[0]], 1), torch.cat([corner_labels, points[1]], 1))
            else:
                points = (corners, corner_labels)
        sparse, dense = prompt_encoder(points=points, boxes=None, masks=masks)
        low_res, iou, _, _ = (mask_decoder or model.sam_mask_decoder)(
            image_embeddings=emb.features,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=sparse.shape[0] > 1,
            high_res_features=[emb.extras["high_res_0"], emb.extras["high_res_1"]],
        )
        return low_res, iou

    def upscale(self, model, low_res, emb):
        return F.interpolate(low_res.float(), emb.original_size, mode="bilinear", align_corners=False)

    def returned_low_res(self, low_res):
        return torch.clamp(low_res, -32.0, 32.0)
