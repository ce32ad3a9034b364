"""SAM's ViT attention through ``torch.nn.functional.scaled_dot_product_attention`` (SDPA).

The reference (``segment_anything``'s ``Attention.forward``) forms the full
(B*heads, HW, HW) attention matrix, adds the decomposed relative-position bias
and applies softmax by hand. Here the bias is passed to SDPA as ``attn_mask``,
built for a chunk of query rows at a time, so the global-attention blocks of a
1024-px ViT-B (4096 tokens) never hold a 4096 x 4096 matrix per head at once.
In bf16 on a CPU, where SDPA's kernel is the slower one, the same chunks run as
batched matrix products instead. Prompt keys and values (learned VPT tokens)
go through the same paths.

:func:`attention_impl` selects the implementation for the encoder passes run
inside it (``"sam"``: the reference, ``"sdpa"``: this module).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, get_rel_pos

ATTN_IMPLS = ("sam", "sdpa")
_IMPL: contextvars.ContextVar[str] = contextvars.ContextVar("samprompt_attn_impl", default="sam")
#: the dtype the SDPA path computes attention in, when it differs from its input's (int8+bf16)
_DTYPE: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar("samprompt_attn_dtype", default=None)
#: query rows per SDPA call: bounds the bias to (B*heads, CHUNK, HW) floats
CHUNK = 1024
#: query rows per step of :func:`_chunked_products` (bf16 on a CPU)
PRODUCT_CHUNK = 256


def current_attn_impl() -> str:
    """The attention implementation of the encoder pass in progress (``"sam"`` outside any)."""
    return _IMPL.get()


def sdpa_attention(
    attn: Attention,
    x: torch.Tensor,
    prompt_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    gate: torch.Tensor | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """``attn``'s forward on (B, H, W, C) windows with SDPA; the same result as the reference up to rounding.

    ``prompt_kv``: optional prompt keys and values (Bp, heads, P, hd), Bp = 1 or the
    number of images, as :mod:`samprompt.learned.tokens` makes them: with ``gate``
    (heads,) they get their own softmax behind ``tanh(gate)``; without, they join
    the image keys' softmax with a zero relative-position bias. ``chunk``: query
    rows per step (by default :data:`CHUNK`, or :data:`PRODUCT_CHUNK` in bf16 on a CPU).
    """
    B, H, W, _ = x.shape
    nh, n = attn.num_heads, H * W
    qkv = attn.qkv(x)
    if _DTYPE.get() is not None:
        qkv = qkv.to(_DTYPE.get())
    q, k, v = qkv.reshape(B, n, 3, nh, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, n, hd)
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
    prompt = (pk, pv) if joint else None
    if rel_h is not None and q.dtype == torch.bfloat16 and q.device.type == "cpu":
        out = _chunked_products(q, k, v, rel_h, rel_w, H, W, prompt, chunk or PRODUCT_CHUNK)
    else:
        out = _chunked_sdpa(q, k, v, rel_h, rel_w, H, W, prompt, chunk or CHUNK)
    if pk is not None and gate is not None:
        g = torch.tanh(gate).to(q.dtype).view(1, nh, 1, 1)
        out = out + g * F.scaled_dot_product_attention(q, pk, pv)
    out = out.permute(0, 2, 1, 3).reshape(B, H, W, -1)
    return attn.proj(out.to(x.dtype))


def _chunked_products(q, k, v, rel_h, rel_w, H: int, W: int, prompt, chunk: int) -> torch.Tensor:
    """bf16 on a CPU: attention as batched matrix products over ``chunk`` query rows, into reused buffers.

    oneDNN's bf16 GEMMs run these faster than SDPA's CPU kernel with a bias: ViT-B's
    global attention 0.26 s a block against 0.41 s, its 14 x 14 windows 36 ms
    against 47 ms (docs/fast-path.md). The bias enters the product through
    ``baddbmm``, and softmax writes back into the bias buffer; every chunk reuses both.
    """
    B, nh, n, hd = q.shape
    P = 0 if prompt is None else prompt[0].shape[2]
    qs = (q * hd**-0.5).reshape(B * nh, n, hd)
    kt = k.reshape(B * nh, n, hd)
    v = v.reshape(B * nh, n, hd)
    if prompt is not None:  # prompt keys join the softmax with a zero bias
        kt = torch.cat([kt, prompt[0].reshape(B * nh, P, hd)], 1)
        v = torch.cat([v, prompt[1].reshape(B * nh, P, hd)], 1)
    kt = kt.transpose(1, 2).contiguous()  # a transposed view is copied by every baddbmm
    rows = min(chunk, n)
    bias = torch.empty(B * nh * rows * (n + P), dtype=q.dtype, device=q.device)
    logits = torch.empty_like(bias)
    out = torch.empty(B * nh, n, hd, dtype=q.dtype, device=q.device)
    rel_h, rel_w = rel_h.reshape(B * nh, n, H, 1), rel_w.reshape(B * nh, n, 1, W)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        shape = (B * nh, stop - start, n + P)  # a contiguous front of the buffers (the last chunk is shorter)
        b, lg = (t[: math.prod(shape)].view(shape) for t in (bias, logits))
        torch.add(rel_h[:, start:stop], rel_w[:, start:stop], out=b[..., :n].unflatten(-1, (H, W)))
        b[..., n:] = 0
        torch.baddbmm(b, qs[:, start:stop], kt, out=lg)
        torch.ops.aten._softmax.out(lg, -1, False, out=b)
        out[:, start:stop] = torch.bmm(b, v)
    return out.view(B, nh, n, hd)


def _chunked_sdpa(q, k, v, rel_h, rel_w, H: int, W: int, prompt, chunk: int) -> torch.Tensor:
    """SDPA over ``chunk`` query rows at a time, each chunk's bias built into one reused buffer."""
    B, nh, n, _ = q.shape
    pk = None
    if prompt is not None:
        pk, pv = prompt
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
            if pk is not None:
                mask = F.pad(mask, (0, pk.shape[2]))
        out[:, :, rows] = F.scaled_dot_product_attention(q[:, :, rows], k, v, attn_mask=mask)
    return out


@contextlib.contextmanager
def attention_impl(impl: str, encoders: Iterable[torch.nn.Module] = (),
                   dtype: torch.dtype | None = None) -> Iterator[None]:
    """Run the attention of ``encoders`` (their ``Attention`` modules) with ``impl`` inside the block.

    ``"sam"`` changes nothing. ``"sdpa"`` points each module's forward at
    :func:`sdpa_attention` and back afterwards; code that patches attention
    itself (learned prompt tokens) reads :func:`current_attn_impl` instead.
    ``dtype`` (``"sdpa"`` only): compute queries, keys and values and their
    products in this type, whatever the linear layers around them give and take.
    """
    if impl not in ATTN_IMPLS:
        raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
    if dtype is not None and impl != "sdpa":
        raise ValueError("an attention dtype applies to attn_impl='sdpa' only")
    token, dtoken = _IMPL.set(impl), _DTYPE.set(dtype)
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
        _DTYPE.reset(dtoken)
