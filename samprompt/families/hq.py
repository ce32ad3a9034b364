"""SAM-HQ (``segment_anything_hq``): SAM's ViT plus a high-quality output token.

Its encoder also returns the ViT's early-layer features, which the HQ decoder
fuses with the image embedding; that fusion depends on the image only, so it is
made once per image and travels in the embedding as ``hq``.
With ``multimask`` the decoder itself keeps the best of SAM's three masks (and
adds the HQ mask to it), so every call returns one mask per object, as SAM-HQ's
``SamPredictor`` does.
"""

from __future__ import annotations

import torch

from .sam import SamFamily


class HqFamily(SamFamily):
    """SAM-HQ, run as ``segment_anything_hq.SamPredictor`` runs it (``hq_token_only=False``)."""

    name = "sam-hq"
    vit_tools = False  # its ViT is segment_anything_hq's own copy: SAM's SDPA patch and tokens do not reach it

    def __init__(self, hq_token_only: bool = False) -> None:
        self.hq_token_only = hq_token_only

    def forward(self, model, x):
        features, interm = model.image_encoder(x)
        decoder = model.mask_decoder
        # The HQ decoder's fusion of the embedding with the first global block's output depends on the image
        # only: made here once, where SAM-HQ's decoder remakes it at every call (3x the cost of a click).
        vit = interm[0].permute(0, 3, 1, 2)
        return {"features": features, "hq": decoder.embedding_encoder(features) + decoder.compress_vit_feat(vit)}

    def decode(self, model, emb, points, boxes, masks, multimask, prompt_encoder=None, mask_decoder=None,
               fast=False):
        prompt_encoder = prompt_encoder or model.prompt_encoder
        decoder = mask_decoder or model.mask_decoder
        sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
        masks_all, iou = decoder.predict_masks(image_embeddings=emb.features, image_pe=prompt_encoder.get_dense_pe(),
                                               sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                               hq_features=emb.extras["hq"])
        # what MaskDecoderHQ.forward then does: SAM's best multimask output (or its single one) plus the HQ mask
        n = decoder.num_mask_tokens
        if multimask:
            iou, best = torch.max(iou[:, 1 : n - 1], dim=1)
            iou = iou[:, None]
            sam_mask = masks_all[:, 1 : n - 1][torch.arange(len(best)), best][:, None]
        else:
            iou = iou[:, :1]
            sam_mask = masks_all[:, :1]
        hq_mask = masks_all[:, n - 1 : n]
        return (hq_mask if self.hq_token_only else sam_mask + hq_mask), iou
