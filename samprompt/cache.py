"""Image-embedding cache: an in-memory LRU and an optional on-disk store.

Keys are content hashes: sha256 of the normalised image bytes and shape, the
model id, the id of any learned prompt and the encoder's id (kind and
precision). The same picture under another file name hits the cache; the same
file under another model, prompt or encoder does not.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Embedding:
    """An encoded image.

    ``features``: (1, C, h, w) float32 image embedding. ``input_size``: (h, w) of
    the resized image inside the encoder's square input. ``original_size``:
    (H, W) of the original image. ``extras``: the other encoder outputs a
    family's decoder reads (SAM 2's high-resolution maps, SAM-HQ's early ViT
    features); empty for SAM.
    """

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device) -> "Embedding":
        """This embedding with its tensors on ``device``."""
        return Embedding(self.features.to(device), self.input_size, self.original_size,
                         {k: v.to(device) for k, v in self.extras.items()})


def embedding_key(
    image: np.ndarray, model_id: str, learned_id: str | None = None, encoder_id: str = "sam/fp32",
    family: str = "sam",
) -> str:
    """Content key of a normalised (H, W, 3) uint8 image under a model family, model, learned prompt and encoder."""
    h = hashlib.sha256()
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    parts = (model_id, learned_id or "", encoder_id) + ((family,) if family != "sam" else ())  # SAM keys unchanged
    for part in parts:
        h.update(b"\0" + part.encode())
    return h.hexdigest()


class EmbeddingCache:
    """LRU of :class:`Embedding` by key, with an optional on-disk second level.

    Args:
        max_items: embeddings kept in memory (0 disables the memory level).
        directory: if given, embeddings are also stored there as safetensors
            and read back on a memory miss (survives restarts).
    """

    def __init__(self, max_items: int = 16, directory: str | Path | None = None) -> None:
        self.max_items = max_items
        self.directory = Path(directory) if directory is not None else None
        self._mem: OrderedDict[str, Embedding] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._mem)

    def get(self, key: str) -> Embedding | None:
        if key in self._mem:
            self._mem.move_to_end(key)
            self.hits += 1
            return self._mem[key]
        emb = self._load(key)
        if emb is not None:
            self.hits += 1
            self._remember(key, emb)
            return emb
        self.misses += 1
        return None

    def put(self, key: str, emb: Embedding) -> None:
        self._remember(key, emb)
        if self.directory is not None:
            self._store(key, emb)

    def clear(self) -> None:
        self._mem.clear()

    def _remember(self, key: str, emb: Embedding) -> None:
        if self.max_items <= 0:
            return
        self._mem[key] = emb
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_items:
            self._mem.popitem(last=False)

    def _file(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.safetensors"

    def _store(self, key: str, emb: Embedding) -> None:
        from safetensors.torch import save_file

        from .io import atomic_path

        meta = {"input_size": "%d,%d" % emb.input_size, "original_size": "%d,%d" % emb.original_size}
        self.directory.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        with atomic_path(self._file(key)) as tmp:
            tensors = {"features": emb.features, **{f"extra.{k}": v for k, v in emb.extras.items()}}
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)

    def _load(self, key: str) -> Embedding | None:
        if self.directory is None or not self._file(key).exists():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(self._file(key)), framework="pt") as f:
                meta = f.metadata()
                feats = f.get_tensor("features")
                extras = {k[len("extra."):]: f.get_tensor(k) for k in f.keys() if k.startswith("extra.")}
            ins = tuple(int(v) for v in meta["input_size"].split(","))
            orig = tuple(int(v) for v in meta["original_size"].split(","))
        except Exception:  # a corrupt cache file is a miss, never an error
            return None
        return Embedding(feats, ins, orig, extras)  # type: ignore[arg-type]
