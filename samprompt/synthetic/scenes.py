"""Seeded generators of labelled scenes for training, tests and demos.

Every generator returns a :class:`Scene`: an RGB ``uint8`` image of shape
``(H, W, 3)`` and an ``int32`` instance label map of shape ``(H, W)`` where 0 is
background and ``k`` is the k-th object. The same ``(seed, style, size)`` always
gives the same scene, on any machine.

Styles:

``"default"``
    Several objects (ellipses, polygons, blobs, rectangles, thin bars and
    curves), each filled with its own colour or texture, on a textured
    background, with occlusion and both low and high contrast. The built-in
    model is trained on this style only.
``"ultrasound"``
    Low-contrast grayscale with multiplicative speckle.
``"rooftops"``
    Many small, dense, rotated rectangles on a ground texture.
``"scratches"``
    Thin curved defects on a periodic (woven/machined) texture.

The last three are domain shifts for learned prompts: the built-in model never
sees them in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from ..outputs import data_writer

STYLES = ("default", "ultrasound", "rooftops", "scratches")
Texture = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Scene:
    """A generated image with its instance labels.

    ``image``: (H, W, 3) uint8 RGB. ``labels``: (H, W) int32, 0 = background,
    k = object k (1..n, no gaps).
    """

    image: np.ndarray
    labels: np.ndarray

    @property
    def num_objects(self) -> int:
        return int(self.labels.max())

    def masks(self) -> np.ndarray:
        """(N, H, W) bool, one mask per object in label order."""
        ids = np.arange(1, self.num_objects + 1)
        return self.labels[None] == ids[:, None, None]


# --------------------------------------------------------------------- textures


def _smooth_field(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """A smooth random field in [0, 1], correlation length about ``scale`` px."""
    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    coarse = rng.random((gh, gw), dtype=np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray, amplitude: float) -> np.ndarray:
    """An (h, w, 3) float texture around colour ``base``."""
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # flat colour
        pattern = np.zeros((h, w), np.float32)
    elif kind == 1:  # pixel noise
        pattern = rng.standard_normal((h, w), dtype=np.float32) * 0.5
    elif kind == 2:  # stripes
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(4, 20)
        pattern = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
    elif kind == 3:  # linear gradient
        theta = rng.uniform(0, 2 * math.pi)
        ramp = xx * math.cos(theta) + yy * math.sin(theta)
        pattern = (ramp - ramp.mean()) / max(float(np.ptp(ramp)), 1.0) * 2
    else:  # smooth random field
        pattern = _smooth_field(rng, h, w, int(rng.integers(6, 40))) * 2 - 1
    tint = rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    return base[None, None] + amplitude * pattern[..., None] * tint[None, None]


# ----------------------------------------------------------------------- shapes


def _shape_mask(rng: np.random.Generator, h: int, w: int, kind: str, scale: float) -> np.ndarray:
    """A uint8 mask (0/1) of one random shape whose size is about ``scale`` px."""
    m = np.zeros((h, w), np.uint8)
    cx, cy = rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h
    if kind == "ellipse":
        axes = (max(2, int(scale * rng.uniform(0.4, 1.0))), max(2, int(scale * rng.uniform(0.25, 1.0))))
        cv2.ellipse(m, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    elif kind == "rectangle":
        rect = ((cx, cy), (scale * rng.uniform(0.6, 2.0), scale * rng.uniform(0.4, 1.5)), rng.uniform(0, 180))
        cv2.fillPoly(m, [cv2.boxPoints(rect).astype(np.int32)], 1)
    elif kind == "polygon":
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = scale * rng.uniform(0.5, 1.0, n)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(m, [pts.astype(np.int32)], 1)
    elif kind == "blob":
        size = int(2 * scale) + 4
        field = _smooth_field(rng, size, size, max(3, int(scale / 2)))
        yy, xx = np.mgrid[0:size, 0:size]
        r = np.hypot(xx - size / 2, yy - size / 2) / (size / 2)
        blob = ((field * 0.6 + (1 - r)) > 0.75).astype(np.uint8)
        x0, y0 = int(cx - size / 2), int(cy - size / 2)
        xs, ys = slice(max(x0, 0), min(x0 + size, w)), slice(max(y0, 0), min(y0 + size, h))
        m[ys, xs] = blob[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    elif kind == "bar":
        length = scale * rng.uniform(1.5, 3.0)
        theta = rng.uniform(0, math.pi)
        dx, dy = length / 2 * math.cos(theta), length / 2 * math.sin(theta)
        thickness = int(rng.integers(3, 8))
        cv2.line(m, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1, thickness)
    elif kind == "curve":
        t = np.linspace(0, 1, 24)
        length = scale * rng.uniform(1.5, 3.0)
        theta = rng.uniform(0, 2 * math.pi)
        bend = rng.uniform(-1.5, 1.5)
        ang = theta + bend * t
        steps = np.stack([np.cos(ang), np.sin(ang)], 1) * (length / len(t))
        pts = np.array([cx, cy]) + np.cumsum(steps, 0) - steps.sum(0) / 2
        thickness = int(rng.integers(3, 7))
        cv2.polylines(m, [pts.astype(np.int32)], False, 1, thickness)
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    return m


_KINDS = ("ellipse", "rectangle", "polygon", "blob", "bar", "curve")
_KIND_P = np.array([0.25, 0.2, 0.2, 0.2, 0.08, 0.07])


def _compose(
    size: tuple[int, int],
    background: np.ndarray,
    objects: Iterable[tuple[np.ndarray, Texture]],
    min_area: int,
) -> Scene:
    """Paint ``(mask, texture)`` pairs in order (later ones occlude) and relabel.

    A texture is a callable ``(h, w) -> (h, w, 3) float``, evaluated only on
    the bounding box of its mask.
    """
    h, w = size
    image = background.copy()
    labels = np.zeros((h, w), np.int32)
    k = 0
    for mask, texture in objects:
        x, y, bw, bh = cv2.boundingRect(mask)
        if bw == 0 or bh == 0:
            continue
        sel = mask[y : y + bh, x : x + bw].astype(bool)
        k += 1
        image[y : y + bh, x : x + bw][sel] = texture(bh, bw)[sel]
        labels[y : y + bh, x : x + bw][sel] = k
    # Drop objects that occlusion left too small, then renumber 1..n.
    counts = np.bincount(labels.ravel(), minlength=k + 1)
    keep = np.flatnonzero(counts[1:] >= min_area) + 1
    lut = np.zeros(k + 1, np.int32)
    lut[keep] = np.arange(1, len(keep) + 1)
    labels = lut[labels]
    return Scene(np.clip(image, 0, 255).astype(np.uint8), labels)


def _textured(rng: np.random.Generator, base: np.ndarray, amplitude: float) -> Texture:
    return lambda h, w: _texture(rng, h, w, base, amplitude)


def _flat(level) -> Texture:
    return lambda h, w: np.broadcast_to(np.asarray(level, np.float32), (h, w, 3))


def _default(rng: np.random.Generator, h: int, w: int) -> Scene:
    bg = _texture(rng, h, w, _colour(rng), rng.uniform(10, 60))
    n = int(rng.integers(2, 7))
    scale_max = min(h, w) * 0.35
    objects = []
    for _ in range(n):
        kind = str(rng.choice(_KINDS, p=_KIND_P))
        scale = math.exp(rng.uniform(math.log(6), math.log(scale_max)))
        mask = _shape_mask(rng, h, w, kind, scale)
        base = _colour(rng)
        if rng.random() < 0.25:  # low contrast: colour close to the local background
            ys, xs = np.nonzero(mask)
            if len(ys):
                local = bg[ys[len(ys) // 2], xs[len(xs) // 2]]
                base = local + rng.choice([-1, 1], 3) * rng.uniform(25, 45, 3)
        objects.append((mask, _textured(rng, base.astype(np.float32), rng.uniform(0, 40))))
    return _compose((h, w), bg, objects, min_area=24)


def _ultrasound(rng: np.random.Generator, h: int, w: int) -> Scene:
    gray = (70 + 40 * _smooth_field(rng, h, w, 30))[..., None].repeat(3, axis=2)
    n = int(rng.integers(1, 4))
    objects = []
    for _ in range(n):
        kind = str(rng.choice(["ellipse", "blob", "polygon"]))
        mask = _shape_mask(rng, h, w, kind, rng.uniform(15, min(h, w) * 0.3))
        level = gray.mean() + rng.choice([-1, 1]) * rng.uniform(15, 30)
        objects.append((mask, _flat(level)))
    scene = _compose((h, w), gray.astype(np.float32), objects, min_area=40)
    # Multiplicative speckle (Rayleigh, unit mean), then the blur of an imaging system.
    speckle = rng.rayleigh(1.0, (h, w)).astype(np.float32) / 1.2533
    canvas = cv2.GaussianBlur(scene.image[..., 0].astype(np.float32) * speckle, (3, 3), 0.8)
    image = np.repeat(np.clip(canvas, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return Scene(image, scene.labels)


def _rooftops(rng: np.random.Generator, h: int, w: int) -> Scene:
    bg = _texture(rng, h, w, np.array([90, 110, 80], np.float32) + rng.uniform(-20, 20, 3), 25)
    n = int(rng.integers(10, 30))
    objects = []
    for _ in range(n):
        mask = _shape_mask(rng, h, w, "rectangle", rng.uniform(6, 16))
        base = np.array([150, 80, 70], np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25, 3)
        objects.append((mask, _textured(rng, base, rng.uniform(0, 20))))
    return _compose((h, w), bg, objects, min_area=16)


def _scratches(rng: np.random.Generator, h: int, w: int) -> Scene:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(5, 12)
    weave = np.sin(xx * 2 * math.pi / period) * np.sin(yy * 2 * math.pi / (period * rng.uniform(0.8, 1.2)))
    base = rng.uniform(100, 170)
    bg = (base + 30 * weave + rng.normal(0, 4, (h, w)))[..., None].repeat(3, axis=2).astype(np.float32)
    n = int(rng.integers(1, 4))
    objects = []
    for _ in range(n):
        mask = _shape_mask(rng, h, w, "curve", rng.uniform(20, min(h, w) * 0.35))
        level = base + rng.choice([-1, 1]) * rng.uniform(35, 70)
        objects.append((mask, _flat(level)))
    return _compose((h, w), bg, objects, min_area=20)


_GENERATORS: dict[str, Callable[[np.random.Generator, int, int], Scene]] = {
    "default": _default,
    "ultrasound": _ultrasound,
    "rooftops": _rooftops,
    "scratches": _scratches,
}


def make_scene(seed: int, style: str = "default", size: int | tuple[int, int] = 256) -> Scene:
    """Generate one labelled scene.

    Args:
        seed: any non-negative int; the same seed gives the same scene.
        style: one of :data:`STYLES`.
        size: side length, or ``(height, width)`` in pixels (each >= 32).
    """
    if style not in _GENERATORS:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    h, w = (size, size) if isinstance(size, int) else size
    if h < 32 or w < 32:
        raise ValueError(f"size must be at least 32x32 pixels, got {h}x{w}")
    rng = np.random.default_rng([int(seed), STYLES.index(style)])
    scene = _GENERATORS[style](rng, h, w)
    if scene.num_objects == 0:  # vanishingly rare; keep the promise of >= 1 object
        return make_scene(seed + 1_000_003, style, size)
    return scene


@data_writer
def write_dataset(
    out_dir: str | Path,
    n: int,
    *,
    style: str = "default",
    size: int | tuple[int, int] = 256,
    seed: int = 0,
) -> Path:
    """Write ``n`` scenes as a labelled folder: ``images/NAME.png`` + ``masks/NAME.png``, and
    ``detections.json``: each object's true box as a COCO detection (what a detector would give).

    Seeds ``seed .. seed + n - 1`` are used, so disjoint seed ranges give
    disjoint data sets. Mask PNGs are 8-bit when there are < 256 objects, else 16-bit.
    """
    from ..io import write_image

    import json

    from ..io import atomic_write_text

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    images, boxes = [], []
    for image_id, i in enumerate(range(seed, seed + n), 1):
        scene = make_scene(i, style, size)
        name = f"{style}_{i:06d}.png"
        write_image(out / "images" / name, scene.image)
        dtype = np.uint8 if scene.num_objects < 256 else np.uint16
        write_image(out / "masks" / name, scene.labels.astype(dtype))
        h, w = scene.labels.shape
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        for k in range(1, scene.num_objects + 1):
            ys, xs = np.nonzero(scene.labels == k)
            if len(xs):
                box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
                boxes.append({"id": len(boxes) + 1, "image_id": image_id, "category_id": 1, "bbox": box,
                              "score": 1.0})
    detections = _add_to_earlier(out / "detections.json", images, boxes, OBJECT_NAMES.get(style, "object"))
    atomic_write_text(out / "detections.json", json.dumps(detections))  # as a detector gives them: COCO boxes
    return out


def _add_to_earlier(path: Path, images: list[dict], boxes: list[dict], name: str) -> dict:
    """This run's detections added to an earlier run's in the same folder (images of other names kept, ids
    renumbered), so that more scenes into one folder never lose the boxes of the first ones."""
    import json

    try:
        doc = json.loads(path.read_text())
        old_images, old_boxes, cats = doc["images"], doc["annotations"], doc["categories"]
    except (OSError, ValueError, KeyError, TypeError):
        old_images, old_boxes, cats = [], [], []
    names = {im["file_name"] for im in images}
    keep = {im["id"] for im in old_images if im.get("file_name") not in names}
    if not any(c.get("name") == name for c in cats):
        cats = [*cats, {"id": max((c["id"] for c in cats), default=0) + 1, "name": name}]
    cat_id = next(c["id"] for c in cats if c.get("name") == name)
    merged_images, merged_boxes, new_id = [], [], {}
    for im in [im for im in old_images if im["id"] in keep] + images:
        new_id[(im in images, im["id"])] = len(merged_images) + 1
        merged_images.append({**im, "id": len(merged_images) + 1})
    for b in [b for b in old_boxes if b.get("image_id") in keep]:
        merged_boxes.append({**b, "id": len(merged_boxes) + 1, "image_id": new_id[(False, b["image_id"])]})
    for b in boxes:
        merged_boxes.append({**b, "id": len(merged_boxes) + 1, "image_id": new_id[(True, b["image_id"])],
                             "category_id": cat_id})
    return {"images": merged_images, "annotations": merged_boxes, "categories": cats}


#: what the objects of each scene style are called in ``detections.json``
OBJECT_NAMES = {"default": "shape", "rooftops": "roof", "ultrasound": "lesion", "scratches": "scratch"}
