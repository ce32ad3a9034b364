"""Propagation: objects followed from a key frame through the frames of a volume or a video.

One interface for every method, picked by name (``PropagationSettings.method``):

* ``box``: the next frame is prompted with a box around the previous mask's
  *core* (the part inside the object's intensity band on its key frame), and the
  object stops when its mask vanishes, its predicted IoU drops or its intensities
  leave the band; every object due on a frame is decoded in one batch on that
  frame's one embedding (the medical adapter's defaults and figures: docs/medical.md);
* ``memory``: SAM 2's video predictor and its memory of the masks it made
  (:mod:`samprompt.domains.memory`; a SAM 2 model);
* ``auto``: memory with a SAM 2 model, else box.

The frames come from a :class:`Frames` object: a volume's slices
(:class:`samprompt.domains.medical.propagate.SliceView`) or a video's frames
(:class:`FrameStack`). Each object to follow is a :class:`Track`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from ..errors import ConfigError, PromptError
from ..prompts import Prompt
from .memory import Start, propagate_memory


class Frames(Protocol):
    """What a propagator reads: ``n`` frames of one ``size`` (rows, cols) as RGB images, their raw
    values, and the mapping between the image's pixels and the frame's native grid."""

    n: int
    size: tuple[int, int]

    def image(self, k: int) -> np.ndarray: ...
    def values(self, k: int) -> np.ndarray: ...
    def to_native(self, mask: np.ndarray) -> np.ndarray: ...
    def to_scaled(self, mask: np.ndarray) -> np.ndarray: ...


class FrameStack:
    """Frames of a video (or any stack of RGB images of one size): values are their grey levels."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        if not len(frames):
            raise PromptError("no frames to propagate through")
        self.frames = [np.ascontiguousarray(f) for f in frames]
        self.size = self.frames[0].shape[:2]
        if any(f.shape[:2] != self.size for f in self.frames):
            raise PromptError("frames to propagate through must share one size")
        self.n = len(self.frames)

    def image(self, k: int) -> np.ndarray:
        f = self.frames[k]
        return np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f[..., :3]

    def values(self, k: int) -> np.ndarray:
        f = self.frames[k]
        return f if f.ndim == 2 else cv2.cvtColor(f[..., :3], cv2.COLOR_RGB2GRAY)

    def to_native(self, mask: np.ndarray) -> np.ndarray:
        return mask

    def to_scaled(self, mask: np.ndarray) -> np.ndarray:
        return mask


@dataclass(frozen=True)
class PropagationSettings:
    """How objects are followed from frame to frame (see the module doc; the box settings only apply to box)."""

    margin: float = 0.0
    margin_px: float = 0.0
    use_logits: bool = False
    stop_iou: float = 0.5
    min_area: int = 4
    min_agree: float = 0.5
    clip: bool = True
    core_box: bool = True
    fuse: bool = False
    method: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in ("auto", *PROPAGATORS):
            raise ConfigError(f"propagation method must be auto, box or memory, got {self.method!r}")

    @classmethod
    def video(cls, method: str = "auto") -> PropagationSettings:
        """Settings for moving objects: the next box grows by half the object's size and masks are not
        clipped to it (a volume's defaults assume an object that barely moves between slices)."""
        return cls(margin=0.5, clip=False, method=method)

    def method_for(self, seg) -> str:
        """``box`` or ``memory`` for this Segmenter (``auto``: memory with a SAM 2 model)."""
        if self.method == "auto":
            return "memory" if seg.family.name == "sam2" else "box"
        return self.method


def box_mask(box, shape) -> np.ndarray:
    """The pixels of a (rows, cols) image whose centres lie in a continuous box."""
    h, w = shape
    x0, y0, x1, y1 = box
    cols = (np.arange(w) + 0.5 >= x0) & (np.arange(w) + 0.5 <= x1)
    rows = (np.arange(h) + 0.5 >= y0) & (np.arange(h) + 0.5 <= y1)
    return rows[:, None] & cols[None, :]


def _band(values: np.ndarray) -> tuple[float, float]:
    """The object's intensity band: median +- 3 robust standard deviations (1.4826 MAD), at least +-1."""
    med = float(np.median(values))
    spread = max(3 * 1.4826 * float(np.median(np.abs(values - med))), 1.0)
    return med - spread, med + spread


def _core(mask: np.ndarray, values: np.ndarray, band: tuple[float, float] | None) -> np.ndarray:
    """The mask's pixels inside the band, largest connected piece: what the next slice's box is drawn around."""
    if band is None:
        return mask
    core = (mask & (values >= band[0]) & (values <= band[1])).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        return mask
    return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _agreement(values: np.ndarray, band: tuple[float, float] | None) -> float:
    """The fraction of a mask's intensities inside the key slice's band (1 when there is no band)."""
    if band is None or not len(values):
        return 1.0 if band is None else 0.0
    return float(np.mean((values >= band[0]) & (values <= band[1])))


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Continuous box (x0, y0, x1, y1) of a (rows, cols) mask's pixels, or None when empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


@dataclass
class Track:
    """One object followed along one axis (pixel coordinates are the view's scaled image pixels)."""

    label: int
    name: str | None
    key: int
    key_prompt: Prompt
    lo: int
    hi: int
    limit_box: dict[int, np.ndarray] = field(default_factory=dict)  # per-slice outer box (box3d, mask)
    guides: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # per-slice points
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> native (rows, cols) bool
    cores: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> the mask's in-band core
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    alive: dict[int, bool] = field(default_factory=lambda: {1: True, -1: True})
    band: tuple[float, float] | None = None  # the object's intensity range on its key slice (5th-95th percentile)

    def prompt_from(self, k: int, prev: int, view: Frames, settings: PropagationSettings) -> Prompt:
        box = mask_box(view.to_scaled(self.cores.get(prev, self.masks[prev])))
        assert box is not None
        grow = np.array([-1, -1, 1, 1]) * (settings.margin * max(box[2] - box[0], box[3] - box[1]) / 2
                                            + settings.margin_px)
        box = box + grow
        outer = self.limit_box.get(k)
        if outer is not None:
            box = np.array([max(box[0], outer[0]), max(box[1], outer[1]), min(box[2], outer[2]),
                            min(box[3], outer[3])])
            if box[2] <= box[0] or box[3] <= box[1]:
                box = outer
        h, w = view.size
        box = np.clip(box, 0, [w, h, w, h])
        pts, labs = self.guides.get(k, (None, None))
        mask = self.logits[prev] if settings.use_logits else None
        return Prompt(points=pts, labels=labs, box=box, mask=mask)


def propagate(seg, view: Frames, tracks: list[Track], settings: PropagationSettings | None = None,
              stats: dict | None = None, keep: Iterable[int] = ()) -> dict:
    """Follow every track through ``view`` by the method ``settings`` names (see the module doc).

    Fills each track's ``masks`` (frame -> native bool mask) and, for box propagation, its
    ``scores`` and ``logits``; returns ``stats`` (encoder passes, decoded frames) added to.
    ``keep``: frames whose embeddings box propagation keeps for its second direction.
    """
    settings = settings or PropagationSettings()
    stats = stats if stats is not None else {"encoder_passes": 0, "decoded_slices": 0}
    if tracks:
        PROPAGATORS[settings.method_for(seg)](seg, view, tracks, settings, stats, set(keep))
    return stats


def by_box(seg, view: Frames, tracks: list[Track], settings: PropagationSettings, stats: dict,
           keep: set[int]) -> None:
    """Follow every track up, then down, one shared embedding and one batched decode per frame."""
    embeddings: dict[int, object] = {}

    def embed(k: int):
        if k in embeddings:
            return embeddings[k]
        emb = seg.embed(view.image(k))
        stats["encoder_passes"] += 1
        if k in keep:
            embeddings[k] = emb
        return emb

    for direction in (1, -1):
        ks = sorted({t.key for t in tracks})
        z = ks[0] if direction == 1 else ks[-1]
        while 0 <= z < view.n:
            batch: list[tuple[Track, Prompt]] = []
            for t in tracks:
                if z == t.key and z not in t.masks:
                    batch.append((t, t.key_prompt))
                elif (z - t.key) * direction > 0 and t.alive[direction] and t.lo <= z <= t.hi \
                        and (z - direction) in t.masks:
                    batch.append((t, t.prompt_from(z, z - direction, view, settings)))
            pending = any((t.key - z) * direction > 0 or (t.alive[direction] and (z - direction) in t.masks
                                                          and t.lo <= z <= t.hi) for t in tracks)
            if batch:
                results = seg.decode(embed(z), [p for _, p in batch], multimask="auto")
                stats["decoded_slices"] += 1
                values = view.values(z)
                for (t, p), r in zip(batch, results):
                    mask = r.mask
                    if settings.clip and p.box is not None:
                        mask = mask & box_mask(p.box, mask.shape)
                    mask = view.to_native(mask)
                    if z == t.key:
                        t.band = _band(values[mask]) if mask.any() else None
                        if int(mask.sum()) < settings.min_area:  # nothing found on the key slice: nothing to follow
                            t.alive = {1: False, -1: False}
                    elif int(mask.sum()) < settings.min_area or r.score < settings.stop_iou \
                            or _agreement(values[mask], t.band) < settings.min_agree:
                        t.alive[direction] = False
                        continue
                    t.masks[z], t.logits[z], t.scores[z] = mask, r.best_logits, r.score
                    if settings.core_box:
                        t.cores[z] = _core(mask, values, t.band)
            elif not pending:
                break
            z += direction


def by_memory(seg, view: Frames, tracks: list[Track], settings: PropagationSettings, stats: dict,
              keep: set[int]) -> None:
    """Every track by SAM 2's memory over all the view's frames (see :mod:`samprompt.domains.memory`)."""
    starts = [Start(t.label, t.key, t.key_prompt, t.lo, t.hi,
                    tuple((k, Prompt(points=p, labels=lab)) for k, (p, lab) in sorted(t.guides.items()) if k != t.key))
              for t in tracks]
    masks = propagate_memory(seg, [view.image(k) for k in range(view.n)], starts)
    stats["encoder_passes"] += view.n
    stats["decoded_slices"] += view.n
    for t in tracks:
        for k, m in masks[t.label].items():
            t.masks[k] = view.to_native(m)


PROPAGATORS = {"box": by_box, "memory": by_memory}


def follow(seg, view: Frames, key: int, prompt: Prompt, settings: PropagationSettings | None = None,
           lo: int = 0, hi: int | None = None) -> dict[int, np.ndarray]:
    """One object from ``prompt`` (the view's pixels) on frame ``key``, up and down: its mask per frame reached,
    on the frames' native grid."""
    if not 0 <= key < view.n:
        raise PromptError(f"slice {key} is out of range (0 to {view.n - 1})")
    track = Track(1, None, key, prompt, lo, view.n - 1 if hi is None else hi)
    propagate(seg, view, [track], settings, keep={key})
    return track.masks


__all__ = [
    "PROPAGATORS",
    "FrameStack",
    "Frames",
    "PropagationSettings",
    "Track",
    "by_box",
    "by_memory",
    "follow",
    "propagate",
]
