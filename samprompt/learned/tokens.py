"""Token-space prompts (VPT) in SAM's ViT: extra keys/values in every attention window.

SAM's encoder blocks attend within windows (or globally) over a 2-D grid, so the
prompt tokens are not appended to the sequence; instead each prompted block
projects its P tokens through its own frozen ``norm1`` and ``qkv`` into keys
and values that every window's queries attend to, with the relative-position
bias extended by zeros for them. With ``kv='direct'`` the keys and values are
the learned parameters themselves (E2VPT's key-value prompts).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, Block, add_decomposed_rel_pos
from torch import nn

from ..attention import current_attn_impl, sdpa_attention
from .config import GeneratedConfig, TokenConfig


def _prompted_attention(
    attn: Attention, x: torch.Tensor, pk: torch.Tensor, pv: torch.Tensor, gate: torch.Tensor | None
) -> torch.Tensor:
    """SAM's ``Attention.forward`` with prompt keys/values (through SDPA inside ``attention_impl("sdpa")``).

    ``x``: (B, H, W, C) windows. ``pk``/``pv``: (Bp, nh, P, hd) with Bp = 1 or the
    number of images (broadcast over the windows of each image). ``gate``: (nh,)
    for gated attention, None for joint attention.
    """
    if current_attn_impl() == "sdpa":
        return sdpa_attention(attn, x, prompt_kv=(pk, pv), gate=gate)
    B, H, W, _ = x.shape
    nh = attn.num_heads
    qkv = attn.qkv(x).reshape(B, H * W, 3, nh, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, B * nh, H * W, -1).unbind(0)
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    if attn.use_rel_pos:
        logits = add_decomposed_rel_pos(logits, q, attn.rel_pos_h, attn.rel_pos_w, (H, W), (H, W))
    reps = B // pk.shape[0]
    pk = pk.repeat_interleave(reps, 0).flatten(0, 1)  # (B*nh, P, hd)
    pv = pv.repeat_interleave(reps, 0).flatten(0, 1)
    p_logits = (q * attn.scale) @ pk.transpose(-2, -1)
    if gate is None:  # joint softmax; zero relative-position bias for the prompt columns
        a = torch.cat([logits, p_logits], -1).softmax(-1)
        out = a[..., : H * W] @ v + a[..., H * W :] @ pv
    else:
        g = torch.tanh(gate).repeat(B).view(B * nh, 1, 1)
        out = logits.softmax(-1) @ v + g * (p_logits.softmax(-1) @ pv)
    out = out.view(B, nh, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
    return attn.proj(out)


class TokenPrompt(nn.Module):
    """Learned prompt tokens for the first block (shallow) or every block (deep)."""

    def __init__(self, cfg: TokenConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        blocks: list[Block] = list(encoder.blocks)
        self.block_ids = cfg.prompted_blocks(len(blocks))
        dim = blocks[0].attn.qkv.in_features
        heads = blocks[0].attn.num_heads
        init = nn.init.normal_ if cfg.init == "normal" else nn.init.zeros_
        self.tokens = nn.ParameterList(
            [nn.Parameter(init(torch.empty(cfg.tokens, dim), **({"std": cfg.init_std} if cfg.init == "normal" else {})))
             for _ in self.block_ids]
        )
        self.gates = nn.ParameterList(
            [nn.Parameter(torch.zeros(heads)) for _ in self.block_ids] if cfg.attention == "gated" else []
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.direct = cfg.kv == "direct"
        if self.direct:  # learn keys and values themselves, starting from the projected random tokens
            with torch.no_grad():
                kv = [blocks[b].attn.qkv(blocks[b].norm1(t)) for b, t in zip(self.block_ids, self.tokens)]
            self.keys = nn.ParameterList([nn.Parameter(x[:, dim : 2 * dim].clone()) for x in kv])
            self.values = nn.ParameterList([nn.Parameter(x[:, 2 * dim :].clone()) for x in kv])
            del self.tokens

    def block_tokens(self, i: int, image_feats: torch.Tensor | None) -> torch.Tensor:
        """(Bp, P, C) tokens of the i-th prompted block (Bp = 1 unless generated)."""
        return self.dropout(self.tokens[i])[None]

    @contextlib.contextmanager
    def injected(self, encoder: nn.Module, image_feats: torch.Tensor | None = None) -> Iterator[None]:
        """Patch the encoder's attention blocks for one forward pass."""
        blocks = list(encoder.blocks)
        saved = {}
        try:
            for i, b in enumerate(self.block_ids):
                block = blocks[b]
                attn = block.attn
                nh = attn.num_heads
                if self.direct:
                    p = self.keys[i].shape[0]
                    pk, pv = (self.dropout(t[i]).view(1, p, nh, -1).transpose(1, 2) for t in (self.keys, self.values))
                else:
                    toks = self.block_tokens(i, image_feats)  # (Bp, P, C)
                    kv = attn.qkv(block.norm1(toks))  # (Bp, P, 3C)
                    bp, p, _ = kv.shape
                    kv = kv.reshape(bp, p, 3, nh, -1).permute(2, 0, 3, 1, 4)  # (3, Bp, nh, P, hd)
                    pk, pv = kv[1], kv[2]
                gate = self.gates[i] if len(self.gates) else None
                saved[b] = vars(attn).get("forward")  # None: the class's forward
                attn.forward = (lambda a, pk, pv, g: (lambda x: _prompted_attention(a, x, pk, pv, g)))(attn, pk, pv, gate)
            yield
        finally:
            for b, fwd in saved.items():
                if fwd is None:
                    del blocks[b].attn.forward
                else:
                    blocks[b].attn.forward = fwd

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class GeneratedTokenPrompt(TokenPrompt):
    """Tokens made per image: learned base tokens + an MLP of the pooled patch features."""

    def __init__(self, cfg: GeneratedConfig, encoder: nn.Module) -> None:
        super().__init__(cfg, encoder)
        dim = self.tokens[0].shape[1]
        self.generator = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.tokens * dim)
        )
        nn.init.zeros_(self.generator[-1].weight)
        nn.init.zeros_(self.generator[-1].bias)

    def block_tokens(self, i: int, image_feats: torch.Tensor | None) -> torch.Tensor:
        assert image_feats is not None, "generated tokens need the image's patch features"
        gen = self.generator(image_feats).view(len(image_feats), -1, self.tokens[i].shape[1])
        return self.dropout(self.tokens[i][None] + gen)


def pooled_patch_features(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, C) mean of the frozen patch embedding (+ position) of the input."""
    with torch.no_grad():
        feats = encoder.patch_embed(x)
        if encoder.pos_embed is not None:
            feats = feats + encoder.pos_embed
    return F.layer_norm(feats.mean((1, 2)), feats.shape[-1:])
