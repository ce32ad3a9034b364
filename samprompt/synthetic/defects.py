"""Generated industrial inspection data in the MVTec-AD layout, with known defect masks.

Categories: four textures (``woven``, ``grid``, ``grain``, ``brushed`` metal) and three
objects (``disc``, ``bolt``, and ``flange``: a keyed disc with four bolt holes whose key
notch sits at any angle, the case that needs pose alignment). Good images vary as real
parts do (shifts, rotations, lighting, sensor noise); defects are drawn on top with their
exact mask:

* ``scratch``: a thin bright or dark curved line;
* ``hole``: a dark pit with a lit rim;
* ``stain``: a soft blob of another tint;
* ``crack``: a dark branching random walk;
* ``contamination``: a cluster of odd-coloured particles;
* ``missing``: (objects) a piece of the part gone, background showing.

Sizes run from tiny (a few dozen pixels) to large (a tenth of the image). The
layout is MVTec-AD's: ``CATEGORY/train/good``, ``CATEGORY/test/good``,
``CATEGORY/test/DEFECT``, ``CATEGORY/ground_truth/DEFECT/NAME_mask.png`` (255 = defect).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..outputs import data_writer

TEXTURES = ("woven", "grid", "grain", "brushed")
OBJECTS = ("disc", "bolt", "flange")
CATEGORIES = TEXTURES + OBJECTS
DEFECTS = {c: ("scratch", "hole", "stain", "crack", "contamination") for c in TEXTURES}
DEFECTS.update({c: ("scratch", "hole", "contamination", "missing") for c in OBJECTS})


def _grid(h: int, w: int):
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def _texture(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    x, y = _grid(h, w)
    x, y = x + rng.uniform(0, 40), y + rng.uniform(0, 40)
    a = rng.uniform(-0.03, 0.03)
    x, y = x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    if kind == "woven":
        period = 12.0
        over = ((np.floor(x / period) + np.floor(y / period)) % 2).astype(np.float32)
        warp = np.abs(np.sin(np.pi * x / period))
        weft = np.abs(np.sin(np.pi * y / period))
        v = 0.45 + 0.35 * (over * warp + (1 - over) * weft)
        base = np.stack([v * 0.85, v * 0.75, v * 0.55], -1)
    elif kind == "grid":
        d = np.minimum(np.abs((x % 16) - 8), np.abs((y % 16) - 8))
        v = np.where(d > 6.0, 0.25, 0.62)
        base = np.stack([v, v, v * 1.03], -1)
    elif kind == "grain":
        g = cv2.GaussianBlur(noise, (0, 0), sigmaX=9, sigmaY=1.5)
        rings = np.sin(0.35 * y + 6 * g)
        v = 0.55 + 0.12 * rings
        base = np.stack([v * 0.95, v * 0.7, v * 0.45], -1)
    else:  # brushed metal
        streak = cv2.GaussianBlur(noise, (0, 0), sigmaX=25, sigmaY=0.6)
        v = 0.6 + 0.9 * streak
        base = np.stack([v, v, v * 1.02], -1)
    light = rng.uniform(0.9, 1.1)
    return np.clip(base * light + rng.normal(0, 0.015, (h, w, 1)), 0, 1)


def _object(kind: str, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float (h, w, 3), the part's mask) on a dark background."""
    x, y = _grid(h, w)
    img = np.zeros((h, w, 3), np.float32) + [0.12, 0.12, 0.13]
    cx, cy = w / 2 + rng.uniform(-6, 6), h / 2 + rng.uniform(-6, 6)
    ang = rng.uniform(0, 2 * np.pi)
    if kind == "disc":
        r = np.hypot(x - cx, y - cy)
        part = r < 0.38 * min(h, w)
        hole = r < 0.1 * min(h, w)
        shade = 0.62 + 0.08 * np.cos(np.arctan2(y - cy, x - cx) - ang) - 0.15 * (r / (0.38 * min(h, w))) ** 4
        grooves = 0.04 * np.sin(r * 1.2)
        v = shade + grooves
        part &= ~hole
        img[part] = np.stack([v, v * 0.98, v * 0.92], -1)[part]
    elif kind == "flange":  # the whole part turns by ang: the key notch and the bolt holes with it
        r = np.hypot(x - cx, y - cy)
        theta = np.arctan2(y - cy, x - cx) - ang
        rim = 0.4 * min(h, w)
        part = r < rim
        part &= ~(r < 0.12 * min(h, w))  # the bore
        notch = (np.abs(np.angle(np.exp(1j * theta))) < 0.16) & (r > 0.72 * rim)  # the key notch, open at the rim
        for k in range(4):  # bolt holes at 45 + 90 k degrees from the notch
            a = ang + np.pi / 4 + k * np.pi / 2
            hx, hy = cx + 0.6 * rim * np.cos(a), cy + 0.6 * rim * np.sin(a)
            part &= np.hypot(x - hx, y - hy) > 0.07 * min(h, w)
        part &= ~notch
        v = 0.6 - 0.1 * (r / rim) ** 2 + 0.03 * np.sin(r * 0.9)
        img[part] = np.stack([v * 0.95, v * 0.97, v], -1)[part]
    else:  # bolt: a hexagonal head and a threaded shaft
        c, s = np.cos(ang), np.sin(ang)
        u, t = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
        head = (np.abs(u + 0.22 * w) < 0.12 * w) & (np.abs(t) < 0.17 * w)
        shaft = (u > -0.12 * w) & (u < 0.36 * w) & (np.abs(t) < 0.07 * w)
        part = head | shaft
        thread = 0.08 * np.sign(np.sin(u * 1.3)) * shaft
        v = 0.58 + 0.1 * np.cos(t / (0.07 * w) * 1.4) * shaft + 0.05 * head + thread
        img[part] = np.stack([v, v * 0.97, v * 0.9], -1)[part]
    return img, part


def _defect(kind: str, rng: np.random.Generator, img: np.ndarray, part: np.ndarray | None,
            background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one defect; returns (image, its mask)."""
    h, w = img.shape[:2]
    where = np.argwhere(part) if part is not None else None
    scale = rng.choice([0.5, 1.0, 2.0], p=[0.3, 0.4, 0.3])  # tiny, medium, large
    if where is not None and len(where):
        cy, cx = where[rng.integers(len(where))]
    else:
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
    m = np.zeros((h, w), np.uint8)
    out = img.copy()
    if kind in ("scratch", "crack"):
        n = int(6 + 10 * scale)
        step = 3.5 if kind == "scratch" else 2.5
        ang = rng.uniform(0, 2 * np.pi)
        pts = [(cx, cy)]
        for _ in range(n):
            ang += rng.normal(0, 0.08 if kind == "scratch" else 0.6)
            pts.append((pts[-1][0] + step * np.cos(ang), pts[-1][1] + step * np.sin(ang)))
        width = 1 if kind == "crack" or scale < 1 else 2
        cv2.polylines(m, [np.round(np.array(pts)).astype(np.int32)], False, 1, width)
        if kind == "crack":
            b = len(pts) // 2
            ang2 = ang + rng.choice([-1, 1]) * 0.9
            br = [pts[b]]
            for _ in range(n // 2):
                ang2 += rng.normal(0, 0.5)
                br.append((br[-1][0] + step * np.cos(ang2), br[-1][1] + step * np.sin(ang2)))
            cv2.polylines(m, [np.round(np.array(br)).astype(np.int32)], False, 1, 1)
            colour = out[m > 0] * 0.25
        else:
            colour = np.full(3, 0.95 if rng.random() < 0.5 else 0.08)
        out[m > 0] = colour
    elif kind == "hole":
        r = max(2, int(4 * scale + rng.uniform(0, 3)))
        cv2.circle(m, (int(cx), int(cy)), r, 1, -1)
        ring = cv2.circle(np.zeros_like(m), (int(cx), int(cy)), r + 1, 1, 1).astype(bool)
        out[ring] = np.minimum(out[ring] * 1.5, 1)
        out[m > 0] = 0.04
        m |= ring.astype(np.uint8)
    elif kind == "stain":
        blob = np.zeros((h, w), np.float32)
        for _ in range(3):
            cv2.circle(blob, (int(cx + rng.normal(0, 4 * scale)), int(cy + rng.normal(0, 4 * scale))),
                       int(5 * scale + 3), 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), 2.0 * scale)
        tint = np.array(rng.choice([[0.45, 0.3, 0.15], [0.2, 0.25, 0.35], [0.35, 0.35, 0.1]]), np.float32)
        alpha = np.clip(blob * 1.2, 0, 0.8)[..., None]
        out = out * (1 - alpha) + tint * alpha
        m = (blob > 0.35).astype(np.uint8)
    elif kind == "contamination":
        colour = np.array(rng.choice([[0.9, 0.2, 0.2], [0.1, 0.6, 0.9], [0.95, 0.95, 0.3]]), np.float32)
        for _ in range(int(3 + 4 * scale)):
            px, py = int(cx + rng.normal(0, 3 * scale)), int(cy + rng.normal(0, 3 * scale))
            cv2.circle(m, (px, py), int(rng.integers(1, 3) * max(scale, 1)), 1, -1)
        out[m > 0] = colour
    else:  # missing: a wedge of the part removed
        assert part is not None and background is not None
        wedge = np.zeros((h, w), np.uint8)
        r = int(0.12 * min(h, w) * scale + 10)
        cv2.ellipse(wedge, (int(cx), int(cy)), (r, r), rng.uniform(0, 360), 0, rng.uniform(50, 110), 1, -1)
        gone = (wedge > 0) & part
        out[gone] = background[gone]
        m = gone.astype(np.uint8)
    mask = (m > 0) if part is None or kind == "missing" else (m > 0) & cv2.dilate(part.astype(np.uint8), None).astype(bool)
    return out, mask


def make_inspection_image(category: str, seed: int, defect: str | None = None,
                          size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, bool defect mask) of a good part (``defect`` None) or one with that defect."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; known: {CATEGORIES}")
    rng = np.random.default_rng([seed, CATEGORIES.index(category)])
    part = background = None
    if category in TEXTURES:
        img = _texture(category, rng, size, size)
    else:
        img, part = _object(category, rng, size, size)
        background = np.zeros_like(img) + [0.12, 0.12, 0.13]
    mask = np.zeros((size, size), bool)
    if defect is not None:
        if defect not in DEFECTS[category]:
            raise ValueError(f"{category} has no defect {defect!r}; it has {DEFECTS[category]}")
        img, mask = _defect(defect, rng, img, part, background)
    img = img + rng.normal(0, 0.012, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask


@data_writer
def write_defect_dataset(out: str | Path, categories=CATEGORIES, *, train: int = 12, test_good: int = 4,
                         per_defect: int = 3, size: int = 256, seed: int = 0) -> Path:
    """Write ``OUT/CATEGORY/{train/good, test/good, test/DEFECT, ground_truth/DEFECT}`` (see the module doc)."""
    from ..io import write_image

    out = Path(out)
    for cat in categories:
        root = out / cat
        for i in range(train):
            write_image(root / "train" / "good" / f"{i:03d}.png", make_inspection_image(cat, seed + i)[0])
        for i in range(test_good):
            img, _ = make_inspection_image(cat, seed + 1000 + i)
            write_image(root / "test" / "good" / f"{i:03d}.png", img)
        for d_i, defect in enumerate(DEFECTS[cat]):
            for i in range(per_defect):
                img, mask = make_inspection_image(cat, seed + 2000 + 100 * d_i + i, defect, size)
                write_image(root / "test" / defect / f"{i:03d}.png", img)
                write_image(root / "ground_truth" / defect / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
    return out
