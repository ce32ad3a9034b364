"""Choosing the encoder from the Segmenter's options: torch (precision, attention) or ONNX."""

from __future__ import annotations

import torch

from .encoders import Encoder, SamEncoder, TorchEncoder
from .errors import ConfigError
from .onnx_backend import OnnxEncoder


def make_encoder(precision: str = "fp32", attn_impl: str = "sam", backend: str = "torch",
                 onnx_dir: str | None = None, device: str | torch.device = "cpu") -> Encoder:
    """The encoder for these settings (``backend="onnx"`` needs ``onnx_dir``)."""
    if backend == "onnx":
        if onnx_dir is None:
            raise ConfigError("backend='onnx' needs onnx_dir, the folder written by samprompt export-onnx")
        return OnnxEncoder(onnx_dir)
    if backend != "torch":
        raise ConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if precision == "fp32" and attn_impl == "sam":
        return SamEncoder()
    return TorchEncoder(precision, attn_impl, device)
