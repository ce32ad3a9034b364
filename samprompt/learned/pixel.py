"""Pixel-space prompts (VP): added to the normalised, padded encoder input (B, 3, S, S)."""

from __future__ import annotations

import torch
from torch import nn

from .config import FourierConfig, PixelPadConfig


def _init(t: torch.Tensor, init: str, std: float) -> torch.Tensor:
    return nn.init.normal_(t, std=std) if init == "normal" else nn.init.zeros_(t)


class PadPrompt(nn.Module):
    """A learned frame of ``width`` pixels around the encoder input (VP padding prompt)."""

    def __init__(self, cfg: PixelPadConfig, img_size: int) -> None:
        super().__init__()
        self.prompt = nn.Parameter(_init(torch.empty(3, img_size, img_size), cfg.init, cfg.init_std))
        border = torch.ones(img_size, img_size)
        border[cfg.width : img_size - cfg.width, cfg.width : img_size - cfg.width] = 0
        self.register_buffer("border", border, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.prompt * self.border

    def num_trainable(self) -> int:
        return int(self.border.sum().item()) * 3  # only the frame is ever used


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
