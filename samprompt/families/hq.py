"""SAM-HQ (``segment_anything_hq``): SAM's ViT plus a high-quality output token.

Its encoder also returns the ViT's early-layer features, which the HQ decoder
fuses with the image embedding; they travel in the embedding as ``interm``.
With ``multimask`` the decoder itself keeps the best of SAM's three masks (and
adds the HQ mask to it), so every call returns one mask per object, as SAM-HQ's
``SamPredictor`` does.
"""

from __future__ import annotations

from .sam import SamFamily


class HqFamily(SamFamily):
    """SAM-HQ, run as ``segment_anything_hq.SamPredictor`` runs it (``hq_token_only=False``)."""

    name = "sam-hq"
    vit_tools = False  # its ViT is segment_anything_hq's own copy: SAM's SDPA patch and tokens do not reach it

    def __init__(self, hq_token_only: bool = False) -> None:
        self.hq_token_only = hq_token_only

    def forward(self, model, x):
        features, interm = model.image_encoder(x)
        return {"features": features, "interm": interm[0]}  # the decoder reads the first global block's output

    def decode(self, model, emb, points, boxes, masks, multimask, prompt_encoder=None, mask_decoder=None):
        prompt_encoder = prompt_encoder or model.prompt_encoder
        sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
        return (mask_decoder or model.mask_decoder)(
            image_embeddings=emb.features,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            hq_token_only=self.hq_token_only,
            interm_embeddings=[emb.extras["interm"]],
        )
