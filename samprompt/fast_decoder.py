"""SAM's mask decoder rearranged for a CPU click: the same sums in fewer, larger matrix products.

:func:`fast_decode` gives the masks and scores of
:func:`~samprompt.decoder_cache.cached_decode` (and so of ``MaskDecoder.forward``)
up to float rounding (about 3e-7 on ViT-B's logits; tested) and takes about two
thirds of its time on ViT-B (docs/fast-path.md). It is what ``decoder="fast"``
(and ``precision="fast"``) of :class:`~samprompt.Segmenter` run. Three changes:

* **Attention with the projections folded in.** Between the prompt tokens (a
  handful) and the image (4096 tokens), SAM projects all 4096 image tokens to
  keys, values or queries. Per head, ``(x Wq) (t Wk)^T = x (Wq (t Wk)^T)``: the
  token side is folded into the weight, so the image is multiplied once by a
  ``C x (heads * tokens)`` matrix (56 columns for one click) instead of by a
  ``C x C/2`` one, and likewise the values with the output projection. The
  image-side softmax runs over a contiguous axis of 4096 rather than 8 x 7 groups.
* **The upscaler as matrix products.** Its two transposed convolutions have
  kernel 2 and stride 2: each input pixel makes its own 2 x 2 block, which is a
  matrix product per pixel. The image tokens go through both products, the
  layer norm and the GELUs in token order, and only the wanted masks are put
  back in image order at the end.
* **Only the masks asked for.** The hypernetwork runs for the chosen outputs only.

The image's own share (the keys, positional encoding) comes from the
:mod:`~samprompt.decoder_cache`, which holds it for the embeddings used last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .decoder_cache import decoder_cache


def _shared(x: torch.Tensor) -> torch.Tensor:
    """(1, HW, C) image tokens shared by a batch as (HW, C), so that matmul folds the batch into one product."""
    return x[0] if x.shape[0] == 1 else x


def _t(x: torch.Tensor) -> torch.Tensor:
    return _shared(x).transpose(-1, -2)


def _tokens_to_image(attn, queries: torch.Tensor, xk: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
    """``attn(q=queries, k=xk, v=xv)``: (b, n, C) tokens attend to (b|1, HW, C) image tokens, key and value
    projections folded into the token side."""
    q = attn.q_proj(queries)
    b, n, inner = q.shape
    h, c, width = attn.num_heads, inner // attn.num_heads, xk.shape[-1]
    qh = q.view(b, n, h, c)
    qk = torch.einsum("bnhc,hcC->bhnC", qh, attn.k_proj.weight.view(h, c, width)).reshape(b, h * n, width)
    bias = torch.einsum("bnhc,hc->bhn", qh, attn.k_proj.bias.view(h, c)).reshape(b, h * n, 1)
    scores = torch.matmul(qk, _t(xk)).add_(bias)  # an image shared by the batch is multiplied once, as (b*h*n, C)
    p = torch.softmax(scores.mul_(1 / math.sqrt(c)), -1)
    pv = torch.matmul(p, _shared(xv)).view(b, h, n, width)  # rows of p sum to 1: the value bias adds as is
    out = torch.einsum("bhnC,hcC->bnhc", pv, attn.v_proj.weight.view(h, c, width)) + attn.v_proj.bias.view(h, c)
    return attn.out_proj(out.reshape(b, n, inner))


def _image_to_tokens(attn, residual: torch.Tensor, xq: torch.Tensor, keys: torch.Tensor,
                     values: torch.Tensor) -> torch.Tensor:
    """``residual + attn(q=xq, k=keys, v=values)``: (b|1, HW, C) image tokens attend to (b, n, C) tokens, query
    and output projections folded into the token side."""
    k, v = attn.k_proj(keys), attn.v_proj(values)
    b, n, inner = k.shape
    h, c, width = attn.num_heads, inner // attn.num_heads, xq.shape[-1]
    out_w = attn.out_proj.out_features
    kh, vh = k.view(b, n, h, c), v.view(b, n, h, c)
    qk = torch.einsum("hcC,bnhc->bhnC", attn.q_proj.weight.view(h, c, width), kh).reshape(b, h * n, width)
    bias = torch.einsum("hc,bnhc->bhn", attn.q_proj.bias.view(h, c), kh).reshape(b, h * n, 1)
    scores = torch.matmul(qk, _t(xq)).add_(bias).mul_(1 / math.sqrt(c))
    p = torch.softmax(scores.view(b, h, n, -1), 2).view(b, h * n, -1)  # (b, heads * tokens, HW)
    # each image token's weights sum to 1 per head, so the output bias, shared out over the heads, adds exactly
    vo = torch.einsum("bnhc,Dhc->bhnD", vh, attn.out_proj.weight.view(out_w, h, c)).reshape(b, h * n, out_w)
    out = torch.bmm(p.transpose(1, 2), vo + attn.out_proj.bias / h)
    return out.add_(residual)


def _block(layer, queries, keys, tokens, key_pe):
    """A ``TwoWayAttentionBlock`` after the first (it adds the positional encodings in its self-attention)."""
    q = queries + tokens
    queries = layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries))
    k = keys + key_pe
    queries = layer.norm2(queries + _tokens_to_image(layer.cross_attn_token_to_image, queries + tokens, k, keys))
    queries = layer.norm3(queries + layer.mlp(queries))
    keys = layer.norm4(_image_to_tokens(layer.cross_attn_image_to_token, keys, k, queries + tokens, queries))
    return queries, keys


def _masks(decoder, keys: torch.Tensor, hyper: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``hyper @ output_upscaling(keys as an image)``: (b, HW, C) tokens, (b, m, C') -> (b, m, 4h, 4w)."""
    up1, norm, act1, up2, act2 = decoder.output_upscaling
    b, m = keys.shape[0], hyper.shape[1]
    w1 = up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, -1)  # (C, 2 * 2 * C1): one 2 x 2 block per token
    w2 = up2.weight.permute(0, 2, 3, 1).reshape(up2.in_channels, -1)
    x = torch.addmm(up1.bias.repeat(4), keys.reshape(-1, keys.shape[-1]), w1).view(-1, up1.out_channels)
    x = act1(F.layer_norm(x, (up1.out_channels,), norm.weight, norm.bias, norm.eps))
    x = act2(torch.addmm(up2.bias.repeat(4), x, w2)).view(b, -1, up2.out_channels)
    out = torch.bmm(x, hyper.transpose(1, 2))  # (b, h * w * 16, m), in (y, x, dy1, dx1, dy2, dx2) order
    return out.view(b, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(b, m, 4 * h, 4 * w)


@torch.no_grad()
def fast_decode(prompt_encoder, mask_decoder, embedding: torch.Tensor, points=None, boxes=None,
                multimask: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~samprompt.decoder_cache.cached_decode`, rearranged (see the module doc); the same arguments and
    outputs, equal up to float rounding."""
    cache = decoder_cache(prompt_encoder, mask_decoder, embedding)
    sparse, _ = prompt_encoder(points=points, boxes=boxes, masks=None)
    d, b = mask_decoder, sparse.shape[0]
    tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight], 0).unsqueeze(0).expand(b, -1, -1)
    tokens = torch.cat((tokens, sparse), dim=1)
    tf = d.transformer
    first = tf.layers[0]  # it skips the positional encoding in its self-attention
    queries = first.norm1(first.self_attn(q=tokens, k=tokens, v=tokens))
    k = cache.keys_pe
    queries = first.norm2(queries + _tokens_to_image(first.cross_attn_token_to_image, queries + tokens, k,
                                                     cache.keys))
    queries = first.norm3(queries + first.mlp(queries))
    keys = first.norm4(_image_to_tokens(first.cross_attn_image_to_token, cache.keys, k, queries + tokens, queries))
    for layer in tf.layers[1:]:
        queries, keys = _block(layer, queries, keys, tokens, cache.key_pe)
    final = tf.final_attn_token_to_image
    hs = tf.norm_final_attn(queries + _tokens_to_image(final, queries + tokens, keys + cache.key_pe, keys))
    iou = d.iou_prediction_head(hs[:, 0, :])
    pick = (range(d.num_mask_tokens) if multimask is None
            else range(1, d.num_mask_tokens) if multimask else range(1))
    hyper = torch.stack([d.output_hypernetworks_mlps[i](hs[:, 1 + i, :]) for i in pick], 1)
    _, h, w = cache.size
    return _masks(d, keys, hyper, h, w), iou[:, list(pick)]
