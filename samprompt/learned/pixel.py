"""Pixel-space prompts (VP): added to the normalised, padded encoder input (B, 3, S, S)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .config import FourierConfig, PixelPadConfig


def _init(t: torch.Tensor, init: str, std: float) -> torch.Tensor:
    return nn.init.normal_(t, std=std) if init == "normal" else nn.init.zeros_(t)


class PadPrompt(nn.Module):
    """A learned frame of ``width`` pixels around the encoder input (VP padding prompt).

    Stored as four strips (top, bottom, left, right), so the parameters and the
    saved file hold only the frame.
    """

    def __init__(self, cfg: PixelPadConfig, img_size: int) -> None:
        super().__init__()
        w, inner = cfg.width, img_size - 2 * cfg.width
        if inner < 1:
            raise ConfigError(f"a border of width {w} leaves nothing of a {img_size}-px input")
        self.top = nn.Parameter(_init(torch.empty(3, w, img_size), cfg.init, cfg.init_std))
        self.bottom = nn.Parameter(_init(torch.empty(3, w, img_size), cfg.init, cfg.init_std))
        self.left = nn.Parameter(_init(torch.empty(3, inner, w), cfg.init, cfg.init_std))
        self.right = nn.Parameter(_init(torch.empty(3, inner, w), cfg.init, cfg.init_std))
        self.inner = inner

    def frame(self) -> torch.Tensor:
        """The (3, S, S) additive prompt: the learned frame around zeros."""
        hole = self.left.new_zeros(3, self.inner, self.inner)
        middle = torch.cat([self.left, hole, self.right], dim=2)
        return torch.cat([self.top, middle, self.bottom], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.frame()

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters())


class FourierPrompt(nn.Module):
    """A learned perturbation of the input's 2-D spectrum (real FFT), per channel."""

    def __init__(self, cfg: FourierConfig, img_size: int) -> None:
        super().__init__()
        shape = (3, img_size, img_size // 2 + 1)
        self.real = nn.Parameter(_init(torch.empty(shape), cfg.init, cfg.init_std))
        self.imag = nn.Parameter(_init(torch.empty(shape), cfg.init, cfg.init_std))
        self.img_size = img_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft2(x, norm="ortho") + torch.complex(self.real, self.imag)
        return torch.fft.irfft2(spec, s=(self.img_size, self.img_size), norm="ortho")

    def num_trainable(self) -> int:
        return self.real.numel() + self.imag.numel()
