"""The encoder seam: what turns a preprocessed image into SAM's image embedding.

The :class:`~samprompt.segmenter.Segmenter` holds one encoder object and asks it
for embeddings; everything that changes an embedding (the encoder's kind and
precision) is in its :attr:`Encoder.id`, which is part of the embedding cache key.
:class:`SamEncoder` runs SAM's own ViT in fp32 and is the reference: it gives
exactly the embedding ``SamPredictor`` computes. Faster encoders (reduced
precision, fused attention, ONNX) plug in as other subclasses.
"""

from __future__ import annotations

from typing import Any

import torch
from segment_anything.modeling import Sam


class Encoder:
    """Base of the encoders: ``encode(model, x, learned)`` -> (B, C, h, w) embedding.

    ``kind`` names the implementation and ``precision`` its number format; both
    go into :attr:`id`.
    """

    kind: str = "abstract"
    precision: str = "fp32"

    @property
    def id(self) -> str:
        """What makes this encoder's embeddings differ from another's: ``kind/precision``."""
        return f"{self.kind}/{self.precision}"

    def encode(self, model: Sam, x: torch.Tensor, learned: Any = None) -> torch.Tensor:
        """The embedding of preprocessed input ``x`` (B, 3, S, S), with a learned prompt if given."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"


class SamEncoder(Encoder):
    """SAM's image encoder as the ``segment_anything`` package runs it, in fp32: the reference.

    A learned prompt (anything with ``encode(model, x)``) runs in its place, since
    prompt tokens and pixel prompts act inside or before the encoder.
    """

    kind = "sam"
    precision = "fp32"

    @torch.no_grad()
    def encode(self, model: Sam, x: torch.Tensor, learned: Any = None) -> torch.Tensor:
        if learned is not None:
            return learned.encode(model, x)
        return model.image_encoder(x)
