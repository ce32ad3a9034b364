"""SAM (``segment_anything``) and MedSAM: the same ViT, two ways of feeding it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..decoder_cache import cached_decode, supports
from ..fast_decoder import fast_decode
from ..steps import model_input, run_decoder
from .base import Family


class SamFamily(Family):
    """The original SAM, run as ``segment_anything.SamPredictor`` runs it."""

    name = "sam"
    vit_tools = True

    def img_size(self, model) -> int:
        return int(model.image_encoder.img_size)

    def low_res_size(self, model) -> tuple[int, int]:
        h, w = model.prompt_encoder.mask_input_size
        return (int(h), int(w))

    def mask_threshold(self, model) -> float:
        return float(model.mask_threshold)

    def model_input(self, model, rgb):
        return model_input(model, rgb)

    def forward(self, model, x):
        return {"features": model.image_encoder(x)}

    def to_input_frame(self, xy, input_size, original_size, device):
        from segment_anything.utils.transforms import ResizeLongestSide

        xy = np.asarray(xy, dtype=np.float64)
        # The resized image's longest side is the encoder's side, as SamPredictor's transform makes it.
        coords = ResizeLongestSide(max(input_size)).apply_coords(xy.reshape(-1, 2), original_size)
        return torch.as_tensor(coords.reshape(xy.shape), dtype=torch.float, device=device)

    def decode(self, model, emb, points, boxes, masks, multimask, prompt_encoder=None, mask_decoder=None,
               fast=False):
        if prompt_encoder is None and mask_decoder is None and supports(model.mask_decoder, masks):
            return (fast_decode if fast else cached_decode)(model.prompt_encoder, model.mask_decoder, emb.features, points, boxes, multimask)
        return run_decoder(prompt_encoder or model.prompt_encoder, mask_decoder or model.mask_decoder,
                           emb.features, points=points, boxes=boxes, masks=masks, multimask=multimask)

    def upscale(self, model, low_res, emb):
        if tuple(emb.input_size) != tuple(emb.original_size):
            return model.postprocess_masks(low_res, emb.input_size, emb.original_size)
        # an image of the encoder's input size: SAM's second resize (to the same size) copies, so it is skipped
        s, (h, w) = model.image_encoder.img_size, emb.input_size
        return F.interpolate(low_res, (s, s), mode="bilinear", align_corners=False)[..., :h, :w]


class MedSamFamily(SamFamily):
    """MedSAM: SAM ViT-B weights fine-tuned on medical images, fed as MedSAM's own inference does.

    The image is resized to the full 1024 x 1024 square (bicubic, anti-aliased,
    as ``skimage.transform.resize(order=3)``), its intensities scaled to [0, 1] by
    its own minimum and maximum (no ImageNet mean and std), boxes are scaled into
    that square, and masks are the decoder's probabilities resized to the image
    and cut at 0.5.
    """

    name = "medsam"
    squash = True

    def model_input(self, model, rgb):
        from skimage.transform import resize

        s = self.img_size(model)
        img = resize(rgb, (s, s), order=3, preserve_range=True, anti_aliasing=True).astype(np.uint8)
        img = (img - img.min()) / np.clip(img.max() - img.min(), 1e-8, None)
        x = torch.tensor(img).float().permute(2, 0, 1)[None].to(model.device)
        return x, (s, s)

    def to_input_frame(self, xy, input_size, original_size, device):
        return Family.to_input_frame(self, xy, input_size, original_size, device)

    def upscale(self, model, low_res, emb):
        prob = F.interpolate(torch.sigmoid(low_res), emb.original_size, mode="bilinear", align_corners=False)
        return torch.logit(prob)  # a logit again, so that > 0 is MedSAM's > 0.5
