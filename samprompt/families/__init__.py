"""Model families: what differs between SAM, MedSAM, SAM-HQ and SAM 2 at inference time.

A :class:`Family` turns an image into the model's input, runs the encoder's
forward, maps prompts into the input frame, calls the prompt encoder and mask
decoder, and brings low-res logits back to the image, each exactly as the
family's reference predictor does (``SamPredictor``, MedSAM's inference script,
SAM-HQ's ``SamPredictor``, ``SAM2ImagePredictor``). The
:class:`~samprompt.segmenter.Segmenter` holds one and never looks inside the model.

    family = family_of(model)          # from the model's class (MedSAM: by name)
"""

from __future__ import annotations

from .base import Family
from .sam import MedSamFamily, SamFamily

FAMILY_NAMES = ("sam", "medsam", "sam-hq", "sam2")


def family_of(model, name: str | None = None) -> Family:
    """The :class:`Family` of ``model``; ``name`` picks MedSAM's preprocessing for a SAM ViT.

    A name that does not fit the model's class (``"sam2"`` for a SAM) is a
    :class:`~samprompt.errors.ConfigError`.
    """
    from ..errors import ConfigError

    name = name or getattr(model, "samprompt_family", None)
    found = _by_class(model)
    if found is None:
        raise ConfigError(f"{type(model).__module__}.{type(model).__name__} is not a model of a known family "
                          f"({', '.join(FAMILY_NAMES)}); build it with segment_anything, sam2 or segment_anything_hq")
    if name in (None, found.name):
        return found
    if name == "medsam" and found.name == "sam":
        return MedSamFamily()
    raise ConfigError(f"family {name!r} does not fit this model: it is a {found.name} model")


def _by_class(model) -> Family | None:
    from segment_anything.modeling import Sam

    if isinstance(model, Sam):
        return SamFamily()
    module = type(model).__module__
    if module.startswith("segment_anything_hq."):
        from .hq import HqFamily

        return HqFamily()
    if module.startswith("sam2."):
        from .sam2 import Sam2Family

        return Sam2Family()
    return None


__all__ = ["FAMILY_NAMES", "Family", "family_of"]
