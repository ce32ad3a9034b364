"""Anomaly maps from the SAM image encoder's patch features, behind one interface.

An anomaly map is an (H, W) float32 array, higher where the image looks less
normal. Every map source answers ``score(image) -> map``:

* :class:`PatchCore` (few-shot): a memory bank of patch features of k normal
  images (augmented with flips and small rotations when k is small, then
  greedily subsampled to a coreset), each test patch scored by its distance to
  the nearest bank patch, as PatchCore does;
* :class:`MutualScoring` (zero-shot): each image of a set is scored against the
  other images of the same set, patch by patch; since defects are rare and
  local, a normal patch finds close matches in most other images and a
  defective one in few (the idea of MuSc). A patch's score is the mean of its
  nearest-patch distances to the closest 30 % of the other images;
* :class:`GivenMap`: maps from elsewhere (an array per image name, or a
  callable), so a stronger detector plugs in.

Features (:class:`PatchFeatures`) are the outputs of intermediate blocks of the
image encoder (the frozen SAM ViT), concatenated and averaged over each patch's
3 x 3 neighbourhood. The image is encoded as 2 x 2 crops (``zoom``), so on the
built-in model one patch covers 8 x 8 pixels of a 256-px image. Patch scores are
upsampled to the image (bilinear) and smoothed (Gaussian, sigma 4 px).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError, ImageError


@dataclass
class PatchFeatures:
    """Patch features of images through a Segmenter's frozen encoder: (gh, gw, C) float32 per image.

    ``zoom`` z > 1 encodes the image as z x z crops, each at the model's full input size, so a
    patch covers z times fewer pixels (finer maps, z^2 encoder passes).
    """

    seg: object
    layers: tuple[int, ...] = (2, 4)  # 1-based encoder blocks
    pool: int = 3
    zoom: int = 2

    def __post_init__(self) -> None:
        family = getattr(getattr(self.seg, "family", None), "name", "sam")
        if family == "sam2":
            raise ConfigError("defect maps are built from the patch features of SAM's ViT; SAM 2's Hiera encoder "
                              "is not supported for them: use a SAM, SAM-HQ or MedSAM model with --model")
        depth = len(self.seg.model.image_encoder.blocks)
        bad = [b for b in self.layers if not 1 <= b <= depth]
        if bad:
            raise ConfigError(f"feature layers {list(self.layers)}: the encoder has blocks 1..{depth}")

    @property
    def grid(self) -> int:
        """Patches along the model input's side."""
        enc = self.seg.model.image_encoder
        return enc.img_size // enc.patch_embed.proj.kernel_size[0]

    def cell(self, shape: tuple[int, int]) -> float:
        """Image pixels along one patch's side."""
        return max(shape) / (self.zoom * self.grid)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from ...images import to_rgb_uint8

        rgb = to_rgb_uint8(rgb)
        if self.zoom == 1:
            return self._encode(rgb)
        h, w = rgb.shape[:2]
        ch, cw = h // self.zoom, w // self.zoom
        rows = [np.concatenate([self._encode(rgb[i * ch : (i + 1) * ch, j * cw : (j + 1) * cw])
                                for j in range(self.zoom)], 1) for i in range(self.zoom)]
        return np.concatenate(rows, 0)

    @torch.no_grad()
    def _encode(self, rgb: np.ndarray) -> np.ndarray:
        from ...steps import model_input

        model = self.seg.model
        x, input_size = model_input(model, np.ascontiguousarray(rgb))
        enc = model.image_encoder
        outs: list[torch.Tensor] = []
        hooks = [enc.blocks[b - 1].register_forward_hook(lambda m, i, o: outs.append(o)) for b in self.layers]
        try:
            h = enc.patch_embed(x)
            if enc.pos_embed is not None:
                h = h + enc.pos_embed
            for k, blk in enumerate(enc.blocks):
                h = blk(h)
                if k + 1 >= max(self.layers):
                    break
        finally:
            for hk in hooks:
                hk.remove()
        feats = torch.cat([o.permute(0, 3, 1, 2) for o in outs], 1)  # (1, C, gh, gw)
        if self.pool > 1:
            feats = F.avg_pool2d(feats, self.pool, stride=1, padding=self.pool // 2, count_include_pad=False)
        patch = enc.patch_embed.proj.kernel_size[0]
        gh, gw = -(-input_size[0] // patch), -(-input_size[1] // patch)  # the patches that cover the image
        return feats[0, :, :gh, :gw].permute(1, 2, 0).float().cpu().numpy()


def to_image_map(patch_scores: np.ndarray, shape: tuple[int, int], cell: float, sigma: float = 4.0) -> np.ndarray:
    """Patch scores (gh, gw), each covering ``cell`` image pixels, -> an (H, W) map: bilinear, smoothed."""
    h, w = shape
    gh, gw = patch_scores.shape
    full = cv2.resize(patch_scores.astype(np.float32), (max(1, round(gw * cell)), max(1, round(gh * cell))),
                      interpolation=cv2.INTER_LINEAR)[:h, :w]
    if full.shape != (h, w):
        full = cv2.resize(full, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(full, (0, 0), sigma) if sigma > 0 else full


def _nearest(queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance from each query row to its nearest bank row."""
    q, b = torch.from_numpy(queries), torch.from_numpy(bank)
    return torch.cat([torch.cdist(q[i : i + chunk], b).min(1).values for i in range(0, len(q), chunk)]).numpy()


def greedy_coreset(features: np.ndarray, fraction: float, seed: int = 0, project: int = 128) -> np.ndarray:
    """Indices of a k-center greedy coreset (PatchCore's subsampling), on a random projection for speed."""
    n = len(features)
    k = max(1, int(round(n * fraction)))
    if k >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    x = np.asarray(features, np.float32)
    if x.shape[1] > project:
        x = x @ rng.normal(0, 1 / np.sqrt(project), (x.shape[1], project)).astype(np.float32)
    sq = (x * x).sum(1)
    chosen = [int(rng.integers(n))]
    dist = sq - 2 * (x @ x[chosen[0]]) + sq[chosen[0]]  # squared distances to the chosen set
    for _ in range(k - 1):  # numpy: ten times faster than torch for these small steps on a CPU
        i = int(np.argmax(dist))
        chosen.append(i)
        np.minimum(dist, sq - 2 * (x @ x[i]) + sq[i], out=dist)
    return np.array(sorted(chosen))


def augment(rgb: np.ndarray, angles=(-5.0, 5.0), flips: bool = True) -> list[np.ndarray]:
    """The image, its two flips, and small rotations (reflected borders): more normal views from few shots.

    Without ``flips`` (parts aligned to a pose, where a mirrored part is not a normal one) only the rotations."""
    h, w = rgb.shape[:2]
    views = [rgb, rgb[:, ::-1].copy(), rgb[::-1].copy()] if flips else [rgb]
    for a in angles:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), a, 1.0)
        views.append(cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT_101))
    return views


@dataclass
class PatchCore:
    """Few-shot anomaly maps from a memory bank of normal patch features (see the module doc).

    With an ``aligner`` (:class:`~.pose.PoseAligner`), every image is turned onto the reference
    pose before its features are taken, and its map turned back; the shots are then augmented by
    small rotations only (a mirrored part is not a normal one). ``angles`` are the augmenting
    rotations in degrees (a bank over all rotations is ``range(0, 360, 30)``).
    """

    features: PatchFeatures
    coreset: float = 0.1
    augment_below: int = 8  # augment the shots when there are fewer than this
    sigma: float = 4.0
    bank: np.ndarray | None = field(default=None, repr=False)
    aligner: object | None = field(default=None, repr=False)
    angles: tuple[float, ...] = (-5.0, 5.0)

    def fit(self, normals: list[np.ndarray]) -> "PatchCore":
        if not normals:
            raise ImageError("few-shot scoring needs at least one normal image")
        if self.aligner is not None:
            normals = [self.aligner.align(im)[0] for im in normals]
        few = len(normals) < self.augment_below
        views = [v for im in normals
                 for v in (augment(im, self.angles, flips=self.aligner is None) if few else [im])]
        feats = np.concatenate([f.reshape(-1, f.shape[-1]) for f in map(self.features, views)])
        self.bank = feats[greedy_coreset(feats, self.coreset)] if self.coreset < 1 else feats
        return self

    def score(self, rgb: np.ndarray) -> np.ndarray:
        if self.bank is None:
            raise ConfigError("PatchCore.score before fit()")
        m = None
        if self.aligner is not None:
            rgb, m = self.aligner.align(rgb)
        f = self.features(rgb)
        gh, gw, c = f.shape
        d = _nearest(f.reshape(-1, c), self.bank).reshape(gh, gw)
        amap = to_image_map(d, rgb.shape[:2], self.features.cell(rgb.shape[:2]), self.sigma)
        return amap if m is None else self.aligner.unalign(amap, m)

    def score_named(self, name: str, rgb: np.ndarray) -> np.ndarray:
        return self.score(rgb)


@dataclass
class MutualScoring:
    """Zero-shot anomaly maps: each image against the other images of its set (see the module doc).

    With an ``aligner`` (:class:`~.pose.PoseAligner`, built on one image of the set), every image is
    turned onto that pose before its features are taken and its map is turned back, so parts at any
    angle are compared pose to pose.
    """

    features: PatchFeatures
    keep: float = 0.3
    sigma: float = 4.0
    feats: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    aligner: object | None = field(default=None, repr=False)

    def fit(self, images: dict[str, np.ndarray]) -> "MutualScoring":
        if len(images) < 2:
            raise ImageError("zero-shot scoring needs at least two images in a set (each is scored against the others)")
        self.feats = {name: self.features(self._aligned(im)[0]) for name, im in images.items()}
        return self

    def _aligned(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return (rgb, None) if self.aligner is None else self.aligner.align(rgb)

    def score_named(self, name: str, rgb: np.ndarray) -> np.ndarray:
        rgb, m = self._aligned(rgb)
        f = self.feats.get(name)
        if f is None:
            f = self.features(rgb)
        gh, gw, c = f.shape
        q = f.reshape(-1, c)
        per_other = np.stack([_nearest(q, g.reshape(-1, g.shape[-1])) for n, g in self.feats.items() if n != name], 1)
        k = max(1, int(round(per_other.shape[1] * self.keep)))
        d = np.sort(per_other, 1)[:, :k].mean(1).reshape(gh, gw)
        amap = to_image_map(d, rgb.shape[:2], self.features.cell(rgb.shape[:2]), self.sigma)
        return amap if m is None else self.aligner.unalign(amap, m)


@dataclass
class GivenMap:
    """Maps from elsewhere. ``source``: a dict of image name -> (H, W) array, a callable(rgb) -> map,
    or a folder of ``NAME.npy`` files (NAME: the image's id, ``DEFECT_NAME`` in a job)."""

    source: dict | Callable[[np.ndarray], np.ndarray] | str

    def score_named(self, name: str, rgb: np.ndarray) -> np.ndarray:
        from pathlib import Path

        if isinstance(self.source, (str, Path)):
            path = Path(self.source) / f"{name}.npy"
            if not path.exists():
                raise ImageError(f"no anomaly map {path}")
            m = np.load(path, allow_pickle=False)
        else:
            m = self.source(rgb) if callable(self.source) else self.source.get(name)
        if m is None:
            raise ImageError(f"no anomaly map given for {name}")
        m = np.asarray(m, np.float32)
        if m.shape != rgb.shape[:2]:
            raise ImageError(f"the anomaly map for {name} is {m.shape[1]}x{m.shape[0]}, the image "
                             f"{rgb.shape[1]}x{rgb.shape[0]} (W x H)")
        return m
