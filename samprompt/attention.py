"""SAM's ViT attention through ``torch.nn.functional.scaled_dot_product_attention`` (SDPA).

The reference (``segment_anything``'s ``Attention.forward``) forms the full
(B*heads, HW, HW) attention matrix, adds the decomposed relative-position bias
and applies softmax by hand. Here the bias is passed to SDPA as ``attn_mask``,
built for a chunk of query rows at a time, so the global-attention blocks of a
1024-px ViT-B (4096 tokens) never hold a 4096 x 4096 matrix per head at once.
Prompt keys and values (learned VPT tokens) go through the same path.

:func:`attention_impl` selects the implementation for the encoder passes run
inside it (``"sam"``: the reference, ``"sdpa"``: this module).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, get_rel_pos

ATTN_IMPLS = ("sam", "sdpa")
_IMPL: contextvars.ContextVar[str] = contextvars.ContextVar("samprompt_attn_impl", default="sam")
#: query rows per SDPA call: bounds the bias to (B*heads, CHUNK, HW) floats
CHUNK = 1024


def current_attn_impl() -> str:
    """The attention implementation of the encoder pass in progress (``"sam"`` outside any)."""
    return _IMPL.get()


def sdpa_attention(
    attn: Attention,
    x: torch.Tensor,
    prompt_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    gate: torch.Tensor | None = None,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """``attn``'s forward on (B, H, W, C) windows with SDPA; the same result as the reference up to rounding.

    ``prompt_kv``: optional prompt keys and values (Bp, heads, P, hd), Bp = 1 or the
    number of images, as :mod:`samprompt.learned.tokens` makes them: with ``gate``
    (heads,) they get their own softmax behind ``tanh(gate)``; without, they join
    the image keys' softmax with a zero relative-position bias.
    """
    B, H, W, _ = x.shape
    nh, n = attn.num_heads, H * W
    q, k, v = attn.qkv(x).reshape(B, n, 3, nh, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, n, hd)
    pk = pv = None
    if prompt_kv is not None:
        reps = B // prompt_kv[0].shape[0]
        pk, pv = (t.repeat_interleave(reps, 0).to(q.dtype) for t in prompt_kv)
    rel_h = rel_w = None
    if attn.use_rel_pos:
        hd = q.shape[-1]
        Rh = get_rel_pos(H, H, attn.rel_pos_h).to(q.dtype)
        Rw = get_rel_pos(W, W, attn.rel_pos_w).to(q.dtype)
        r_q = q.reshape(B, nh, H, W, hd)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, Rh).reshape(B, nh, n, H)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, Rw).reshape(B, nh, n, W)
    joint = pk is not None and gate is None
    if joint:
        k, v = torch.cat([k, pk], 2), torch.cat([v, pv], 2)
    out = torch.empty_like(q)
    # one buffer for every chunk's bias: a fresh 100 MB tensor per chunk cost ViT-B 0.4 s a pass in page faults
    bias = None if rel_h is None else torch.empty(B, nh, min(chunk, n), H, W, dtype=q.dtype, device=q.device)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        mask = None
        if rel_h is not None:
            m = bias[:, :, : rows.stop - rows.start]
            mask = torch.add(rel_h[:, :, rows, :, None], rel_w[:, :, rows, None, :], out=m).flatten(-2)  # (B, nh, rows, n)
            if joint:
                mask = F.pad(mask, (0, pk.shape[2]))
        out[:, :, rows] = F.scaled_dot_product_attention(q[:, :, rows], k, v, attn_mask=mask)
    if pk is not None and gate is not None:
        g = torch.tanh(gate).to(q.dtype).view(1, nh, 1, 1)
        out = out + g * F.scaled_dot_product_attention(q, pk, pv)
    out = out.permute(0, 2, 1, 3).reshape(B, H, W, -1)
    return attn.proj(out)


@contextlib.contextmanager
def attention_impl(impl: str, encoders: Iterable[torch.nn.Module] = ()) -> Iterator[None]:
    """Run the attention of ``encoders`` (their ``Attention`` modules) with ``impl`` inside the block.

    ``"sam"`` changes nothing. ``"sdpa"`` points each module's forward at
    :func:`sdpa_attention` and back afterwards; code that patches attention
    itself (learned prompt tokens) reads :func:`current_attn_impl` instead.
    """
    if impl not in ATTN_IMPLS:
        raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
    token = _IMPL.set(impl)
    patched: list[Attention] = []
    try:
        if impl == "sdpa":
            for enc in encoders:
                for m in enc.modules():
                    if isinstance(m, Attention) and "forward" not in vars(m):
                        m.forward = (lambda a: (lambda x: sdpa_attention(a, x)))(m)
                        patched.append(m)
        yield
    finally:
        for m in patched:
            vars(m).pop("forward", None)
        _IMPL.reset(token)
