"""The encoder seam: what turns a preprocessed image into SAM's image embedding.

The :class:`~samprompt.segmenter.Segmenter` holds one encoder object and asks it
for embeddings; everything that changes an embedding (the attention
implementation and the precision) is in its :attr:`Encoder.id`, which is part of
the embedding cache key and of a batch job's manifest.

* :class:`SamEncoder`: SAM's own ViT in fp32, exactly as ``SamPredictor`` runs
  it: the reference.
* :class:`TorchEncoder`: the same weights with ``precision="bf16"`` (autocast on
  the encoder; the decoder stays fp32) or ``"fp16"`` (GPU only), and/or
  ``attn_impl="sdpa"`` (fused attention with the relative-position bias, chunked
  over query rows: :mod:`samprompt.attention`), or ``"int8"`` (CPU: the
  encoder's linear layers dynamically quantised to int8, on a copy), or
  ``"int8+bf16"`` (CPU with native bf16, SDPA: int8 linear layers, attention in bf16).
* :class:`~samprompt.onnx_backend.OnnxEncoder`: an exported encoder run by onnxruntime.

:func:`samprompt.backends.make_encoder` picks one from the Segmenter's options.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from segment_anything.modeling import Sam

from .attention import ATTN_IMPLS, attention_impl
from .errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8+bf16")
#: precisions that run a dynamically quantised copy of the encoder
INT8 = ("int8", "int8+bf16")


class Encoder:
    """Base of the encoders: ``encode(model, x, learned)`` -> (B, C, h, w) fp32 embedding.

    ``kind`` names the implementation and ``precision`` its number format; both
    go into :attr:`id`.
    """

    kind: str = "abstract"
    precision: str = "fp32"
    #: whether a learned prompt (which acts inside the torch encoder) can run with it
    supports_learned: bool = True

    @property
    def id(self) -> str:
        """What makes this encoder's embeddings differ from another's: ``kind/precision``."""
        return f"{self.kind}/{self.precision}"

    def encode(self, model: Sam, x: torch.Tensor, learned: Any = None, forward: Any = None) -> Any:
        """The embedding of preprocessed input ``x`` (B, 3, S, S), with a learned prompt if given.

        ``forward`` (a model family's encoder step, ``x -> {"features": ..., ...}``)
        replaces ``model.image_encoder(x)``; the result is then that dict, in fp32.
        """
        raise NotImplementedError

    def bind(self, model: Sam) -> None:
        """Called once by the Segmenter with its model: check that this encoder fits it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"


class TorchEncoder(Encoder):
    """SAM's ViT in PyTorch, with a chosen precision and attention implementation.

    Args:
        precision: ``"fp32"``; ``"bf16"`` (autocast; on a device without native
            bf16 arithmetic, where it would be slower, a warning and fp32); ``"fp16"`` (CUDA only);
            ``"int8"`` (CPU only: dynamic int8 quantisation of the encoder's linear layers,
            on a copy made by :meth:`bind`; a ``full-ft`` prompt's own encoder stays fp32);
            ``"int8+bf16"`` (CPU: those int8 linear layers, with the attention between them in
            bf16; implies ``attn_impl="sdpa"``; without native bf16, a warning and ``"int8"``).
        device: where the model runs (decides whether bf16 pays).
        attn_impl: ``"sam"`` (the reference attention) or ``"sdpa"``.

    A learned prompt (anything with ``encode(model, x)``) runs inside the same
    precision and attention settings; prompt tokens use SDPA too.
    """

    def __init__(self, precision: str = "fp32", attn_impl: str = "sam", device: str | torch.device = "cpu") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if attn_impl not in ATTN_IMPLS:
            raise ConfigError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
        device = torch.device(device)
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError("precision='fp16' runs on a CUDA GPU only; on a CPU use 'bf16' or 'int8'")
        if precision in INT8 and device.type != "cpu":
            raise ConfigError(f"precision={precision!r} (dynamic quantisation) runs on a CPU only; "
                              "on a GPU use 'bf16'/'fp16'")
        if precision == "int8+bf16":
            attn_impl = "sdpa"  # its bf16 attention is the SDPA path's
        if precision in ("bf16", "int8+bf16") and not bf16_supported(device):
            fallback = {"bf16": "fp32", "int8+bf16": "int8"}[precision]
            warnings.warn(f"this {device.type.upper()} has no native bf16 arithmetic (avx512_bf16 or AMX on a CPU), "
                          f"where bf16 runs slower than fp32; the encoder runs in {fallback}", stacklevel=3)
            precision = fallback
        self.precision = precision
        self.attn_impl = attn_impl
        self.kind = attn_impl
        self._int8: torch.nn.Module | None = None

    def bind(self, model: Sam) -> None:
        if self.precision in INT8 and self._int8 is None:
            import copy
            import warnings as _w

            engine = torch.backends.quantized.engine
            try:
                with _w.catch_warnings():  # torch.ao's deprecation notice
                    _w.simplefilter("ignore")
                    # the packed weights keep the engine they were made with, and run with it
                    torch.backends.quantized.engine = quantized_engine()
                    self._int8 = torch.ao.quantization.quantize_dynamic(
                        copy.deepcopy(model.image_encoder).eval(), {torch.nn.Linear}, dtype=torch.qint8)
            finally:
                torch.backends.quantized.engine = engine

    def _autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @torch.no_grad()
    def encode(self, model: Sam, x: torch.Tensor, learned: Any = None, forward: Any = None) -> Any:
        dtype = self._autocast_dtype()
        encoders = [model.image_encoder]
        tuned = getattr(learned, "image_encoder", None)
        if tuned is not None:
            encoders.append(tuned)
        original = model.image_encoder
        if self.precision in INT8:
            self.bind(model)
            encoders[0] = model.image_encoder = self._int8  # the quantised copy runs in its place
        try:
            attn_dtype = torch.bfloat16 if self.precision == "int8+bf16" else None
            with attention_impl(self.attn_impl, encoders, attn_dtype), torch.autocast(
                x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                if forward is not None:
                    out = forward(x)
                else:
                    out = learned.encode(model, x) if learned is not None else model.image_encoder(x)
        finally:
            model.image_encoder = original
        return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` does bf16 arithmetic natively (CUDA: Ampere or newer; x86 CPU: avx512_bf16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def quantized_engine() -> str:
    """The int8 kernels for the quantised encoder: oneDNN on CPUs with AVX-512 and VNNI (its dynamic int8
    linear layers ran ViT-B's 17 % faster than fbgemm's on a Zen 4, same values to 1e-4; docs/fast-path.md),
    else torch's default."""
    cpu = torch.cpu
    has = (getattr(cpu, name, lambda: False)() for name in ("_is_avx512_supported", "_is_vnni_supported"))
    if all(has) and "onednn" in torch.backends.quantized.supported_engines:
        return "onednn"
    return torch.backends.quantized.engine


def amx_supported(device: torch.device) -> bool:
    """Whether ``device`` is a CPU with AMX tiles (Sapphire Rapids and later): bf16 matrix products fastest."""
    return device.type == "cpu" and getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


def fast_settings(device: torch.device, vit: bool = True) -> tuple[str, str]:
    """(precision, attn_impl) of ``precision="fast"``, by what ``device`` does natively.

    * CPUs with native bf16 but no AMX (avx512_bf16: Zen 4, Cooper Lake): int8 linear layers with the
      attention in bf16 (``"int8+bf16"``), 4.8x SamPredictor's ViT-B encoder on a 2-core Zen 4, where bf16
      alone gave 4.0x and int8 alone 3.8x (docs/fast-path.md);
    * AMX CPUs and Ampere+ GPUs: bf16 with fused attention;
    * other GPUs: fp16; other CPUs: int8 linear layers with fused attention (the fastest that held
      chosen-mask IoU >= 0.98 on AVX2).

    ``vit``: False for models without SAM's ViT (SAM 2), which keep their own attention.
    """
    attn = "sdpa" if vit else "sam"
    if bf16_supported(device):
        if vit and device.type == "cpu" and not amx_supported(device):
            return "int8+bf16", attn
        return "bf16", attn
    return ("fp16" if device.type == "cuda" else "int8"), attn


class SamEncoder(TorchEncoder):
    """SAM's image encoder as the ``segment_anything`` package runs it, in fp32: the reference."""

    def __init__(self) -> None:
        super().__init__("fp32", "sam")
