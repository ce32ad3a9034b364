"""SAM's mask decoder with the image's share of the work done once per image.

Every click runs SAM's mask decoder over all 4096 image tokens (ViT-B at 1024 px).
Part of that work depends on the image only: the image embedding plus the
"no mask" embedding, the positional encoding, and in the first two-way attention
block the keys and values the prompt tokens attend to and the queries with which
the image attends back. :func:`cached_decode` computes those once per image and
decoder (:class:`DecoderCache`, for the ``KEEP`` embeddings used last, dropped
with their embedding) and runs the rest as
``MaskDecoder.forward`` does, so a single prompt gives bitwise the masks and
scores of the reference, and a batch the same up to float rounding (the batch
shares one copy of the image instead of one per prompt).

It serves SAM's own :class:`~segment_anything.modeling.MaskDecoder` with the
model's own prompt encoder and no mask input; other decoders (SAM-HQ, learned
decoders, SAM 2) and mask prompts take the reference path.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import torch
from segment_anything.modeling import MaskDecoder

KEEP = 4  # embeddings whose caches are kept (ViT-B: 18 MB each), the most recently used
_CACHES: "OrderedDict[int, dict[int, DecoderCache]]" = OrderedDict()  # id(embedding) -> id(decoder) -> cache


@dataclass
class DecoderCache:
    """The image-only tensors of one embedding under one decoder (heads already separated)."""

    keys: torch.Tensor  # (1, HW, C): embedding + no-mask embedding, as tokens
    key_pe: torch.Tensor  # (1, HW, C)
    keys_pe: torch.Tensor  # keys + key_pe
    k0: torch.Tensor  # first block, tokens -> image: keys (1, heads, HW, c)
    v0: torch.Tensor  # ... and values
    q0: torch.Tensor  # first block, image -> tokens: the image's queries (1, heads, HW, c)
    size: tuple[int, int, int]  # (C, h, w)


def supports(mask_decoder, masks) -> bool:
    """Whether :func:`cached_decode` serves this decoder and mask input."""
    return type(mask_decoder) is MaskDecoder and masks is None


def _heads(attn, x: torch.Tensor) -> torch.Tensor:
    return attn._separate_heads(x, attn.num_heads)


def _attend(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Attention.forward`` from projected, head-separated q, k, v (k and v may broadcast over the batch)."""
    a = q @ k.permute(0, 1, 3, 2)
    a = torch.softmax(a / math.sqrt(q.shape[-1]), dim=-1)
    return attn.out_proj(attn._recombine_heads(a @ v))


@torch.no_grad()
def decoder_cache(prompt_encoder, mask_decoder, embedding: torch.Tensor) -> DecoderCache:
    """The cache of ``embedding`` (1, C, h, w) under this decoder, computed on first use."""
    per = _CACHES.get(id(embedding))
    if per is None:
        per = _CACHES[id(embedding)] = {}
        weakref.finalize(embedding, _CACHES.pop, id(embedding), None)  # an id is reused only after its tensor died
        while len(_CACHES) > KEEP:
            _CACHES.popitem(last=False)
    _CACHES.move_to_end(id(embedding))
    key = id(mask_decoder)
    if key not in per:
        _, c, h, w = embedding.shape
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, h, w)
        keys = (embedding + dense).flatten(2).permute(0, 2, 1)
        key_pe = prompt_encoder.get_dense_pe().flatten(2).permute(0, 2, 1)
        first = mask_decoder.transformer.layers[0]
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        k = keys + key_pe
        per[key] = DecoderCache(keys, key_pe, k, _heads(t2i, t2i.k_proj(k)), _heads(t2i, t2i.v_proj(keys)),
                                _heads(i2t, i2t.q_proj(k)), (c, h, w))
    return per[key]


@torch.no_grad()
def cached_decode(prompt_encoder, mask_decoder, embedding: torch.Tensor, points=None, boxes=None,
                  multimask: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~samprompt.steps.run_decoder` for SAM's own decoder without a mask input (see the module doc)."""
    cache = decoder_cache(prompt_encoder, mask_decoder, embedding)
    sparse, _ = prompt_encoder(points=points, boxes=boxes, masks=None)
    d = mask_decoder
    b = sparse.shape[0]
    tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight], 0).unsqueeze(0).expand(b, -1, -1)
    tokens = torch.cat((tokens, sparse), dim=1)
    tf = d.transformer
    first = tf.layers[0]
    # the first block (it skips the positional encoding in its self-attention), its image side cached
    queries = first.norm1(first.self_attn(q=tokens, k=tokens, v=tokens))
    t2i = first.cross_attn_token_to_image
    queries = first.norm2(queries + _attend(t2i, _heads(t2i, t2i.q_proj(queries + tokens)), cache.k0, cache.v0))
    queries = first.norm3(queries + first.mlp(queries))
    i2t = first.cross_attn_image_to_token
    q = queries + tokens
    keys = first.norm4(cache.keys + _attend(i2t, cache.q0, _heads(i2t, i2t.k_proj(q)), _heads(i2t, i2t.v_proj(queries))))
    for layer in tf.layers[1:]:
        queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=cache.key_pe)
    attn = tf.final_attn_token_to_image(q=queries + tokens, k=keys + cache.key_pe, v=keys)
    hs = tf.norm_final_attn(queries + attn)
    c, h, w = cache.size
    src = keys.transpose(1, 2).reshape(b, c, h, w)
    up = d.output_upscaling(src)
    mask_tokens = hs[:, 1:1 + d.num_mask_tokens, :]
    hyper = torch.stack([d.output_hypernetworks_mlps[i](mask_tokens[:, i, :]) for i in range(d.num_mask_tokens)], 1)
    _, uc, uh, uw = up.shape
    masks = (hyper @ up.view(b, uc, uh * uw)).view(b, -1, uh, uw)
    iou = d.iou_prediction_head(hs[:, 0, :])
    if multimask is None:
        return masks, iou
    pick = slice(1, None) if multimask else slice(0, 1)
    return masks[:, pick], iou[:, pick]
