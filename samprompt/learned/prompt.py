"""LearnedPrompt: a learned prompt bound to one frozen SAM, saved on its own.

Files (after PEFT's adapter layout): ``PROMPT_DIR/prompt.safetensors`` (the
prompt's parameters only) and ``PROMPT_DIR/prompt_config.json`` (method, config,
the id of the model it was trained for, format version). Loading onto another
model raises :class:`~samprompt.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from segment_anything.modeling import Sam
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io import atomic_path, atomic_write_text
from ..models import model_id
from ..training.params import trainable
from .config import PromptConfig, make_config
from .pixel import FourierPrompt, PadPrompt
from .tokens import GeneratedTokenPrompt, TokenPrompt, pooled_patch_features

FORMAT_VERSION = 1


class _Finetuned(nn.ModuleDict):
    """Tuned copies of SAM parts (the fine-tuning baselines)."""

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def restrict(self, only: str) -> None:
        """Train only the parameters whose name starts with one of the prefixes (separated by ``,`` or ``+``)."""
        try:
            trainable(self, only)
        except ValueError as exc:
            raise ConfigError(f"{exc} (the tuned weights' names start with {', '.join(self)})") from exc


def _content_id(method: str, state: dict) -> str:
    h = hashlib.sha256(method.encode())
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return f"{method}:{h.hexdigest()[:16]}"


WEIGHTS_NAME = "prompt.safetensors"
CONFIG_NAME = "prompt_config.json"


class LearnedPrompt(nn.Module):
    """A learned prompt for ``model``; use with ``Segmenter(model, learned=prompt)``.

    Only the prompt's parameters are trainable; :meth:`freeze_model` freezes SAM.
    """

    def __init__(self, config: PromptConfig, model: Sam) -> None:
        super().__init__()
        from ..families import family_of

        self.config = config
        self.model_id = model_id(model)
        family = family_of(model)
        if not family.vit_tools and not config.method.startswith("pixel"):
            raise ConfigError(f"{config.method} acts inside SAM's ViT or decoder; on a {family.name} model only the "
                              "pixel prompts (pixel-pad, pixel-fourier) run")
        enc = model.image_encoder
        side = family.img_size(model)
        if config.method == "pixel-pad":
            self.module: nn.Module = PadPrompt(config, side)  # type: ignore[arg-type]
        elif config.method == "pixel-fourier":
            self.module = FourierPrompt(config, side)  # type: ignore[arg-type]
        elif config.method in ("decoder-ft", "full-ft"):
            import copy

            parts = {"mask_decoder": copy.deepcopy(model.mask_decoder)}
            if config.method == "full-ft":
                parts["image_encoder"] = copy.deepcopy(enc)
                parts["prompt_encoder"] = copy.deepcopy(model.prompt_encoder)
            self.module = _Finetuned(parts)
            self.module.requires_grad_(True)  # the copies train even when the model is frozen
            if config.only:  # type: ignore[attr-defined]
                self.module.restrict(config.only)  # type: ignore[attr-defined]
        elif config.method == "vpt-generated":
            self.module = GeneratedTokenPrompt(config, enc)  # type: ignore[arg-type]
        else:
            self.module = TokenPrompt(config, enc)  # type: ignore[arg-type]

    @classmethod
    def create(cls, method: str, model: Sam, **kwargs) -> "LearnedPrompt":
        return cls(make_config(method, **kwargs), model)

    @property
    def image_encoder(self) -> nn.Module | None:
        """The tuned image encoder of ``full-ft``, else None (the model's runs)."""
        return getattr(self.module, "image_encoder", None) if isinstance(self.module, _Finetuned) else None

    @property
    def mask_decoder(self) -> nn.Module | None:
        """The tuned mask decoder of a fine-tuning baseline, else None (use the model's)."""
        return getattr(self.module, "mask_decoder", None) if isinstance(self.module, _Finetuned) else None

    @property
    def prompt_encoder(self) -> nn.Module | None:
        return getattr(self.module, "prompt_encoder", None) if isinstance(self.module, _Finetuned) else None

    @property
    def is_pixel(self) -> bool:
        return self.config.method.startswith("pixel")

    @property
    def id(self) -> str:
        """Content id of the prompt (method + parameter hash): part of the embedding cache key."""
        # Recomputed only when a parameter changed in place (optimiser steps bump _version).
        version = tuple(p._version for p in self.module.parameters())
        cached = self.__dict__.get("_id_cache")
        if cached is not None and cached[0] == version:
            return cached[1]
        ident = _content_id(self.config.method, self.module.state_dict())
        self.__dict__["_id_cache"] = (version, ident)
        return ident

    @staticmethod
    def id_of(directory: str | Path) -> str:
        """The :attr:`id` of the prompt saved in ``directory``, read from its files (no model needed)."""
        from safetensors.torch import load_file

        d = Path(directory)
        try:
            method = json.loads((d / CONFIG_NAME).read_text())["config"]["method"]
            state = load_file(str(d / WEIGHTS_NAME))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"cannot read learned prompt in {d}: {exc}") from exc
        return _content_id(method, state)

    def num_trainable(self) -> int:
        return self.module.num_trainable()  # type: ignore[operator]

    def embed(self, model, family, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder outputs (``{"features": ..., ...}``) of ``family`` for input ``x`` with this prompt applied.

        On SAM's ViT (SAM, MedSAM) every method runs (:meth:`encode`); on other
        families, a pixel prompt changes ``x`` before the family's own encoder step.
        """
        if family.vit_tools:
            return {"features": self.encode(model, x)}
        return family.forward(model, self.pixels(model, x))

    def pixels(self, model, x: torch.Tensor) -> torch.Tensor:
        """The model input ``x`` with this pixel prompt applied (any family)."""
        if model_id(model) != self.model_id:
            raise CheckpointError(f"this prompt was trained for model {self.model_id}, not {model_id(model)}")
        if not self.is_pixel:
            raise ConfigError(f"{self.config.method} is not a pixel prompt")
        return self.module(x)

    def encode(self, model: Sam, x: torch.Tensor) -> torch.Tensor:
        """The image embedding of preprocessed input ``x`` (B, 3, S, S) with this prompt applied."""
        if model_id(model) != self.model_id:
            raise CheckpointError(f"this prompt was trained for model {self.model_id}, not {model_id(model)}")
        enc = model.image_encoder
        if isinstance(self.module, _Finetuned):
            return getattr(self.module, "image_encoder", enc)(x)
        if self.is_pixel:
            return enc(self.module(x))
        feats = pooled_patch_features(enc, x) if self.config.method == "vpt-generated" else None
        with self.module.injected(enc, feats):  # type: ignore[operator]
            return enc(x)

    @staticmethod
    def freeze_model(model: Sam) -> None:
        for p in model.parameters():
            p.requires_grad_(False)

    # -------------------------------------------------------------------- I/O
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        with atomic_path(d / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp))
        from .. import __version__

        meta = {"format_version": FORMAT_VERSION, "samprompt_version": __version__, "model_id": self.model_id,
                "config": self.config.to_dict(), "trainable_parameters": self.num_trainable()}
        atomic_write_text(d / CONFIG_NAME, json.dumps(meta, indent=1))
        return d

    @classmethod
    def load(cls, directory: str | Path, model: Sam) -> "LearnedPrompt":
        """Load a prompt saved by :meth:`save`; refuses a prompt made for another model."""
        from safetensors.torch import load_file

        d = Path(directory)
        try:
            meta = json.loads((d / CONFIG_NAME).read_text())
            state = load_file(str(d / WEIGHTS_NAME))
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read learned prompt in {d}: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"unsupported learned-prompt format {meta.get('format_version')!r}")
        if meta["model_id"] != model_id(model):
            raise CheckpointError(
                f"the prompt in {d} was trained for model {meta['model_id']}, not {model_id(model)}; "
                "load it onto the model it was trained for"
            )
        prompt = cls(PromptConfig.from_dict(meta["config"]), model)
        try:
            prompt.module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{d / WEIGHTS_NAME} does not fit its config: {exc}") from exc
        return prompt
