"""Generated orthophoto-like GeoTIFFs of any size with known truth: roofs, fields and trees on grass and soil.

The raster is written block by block (memory does not grow with its size):
tiled and compressed, with overviews, in UTM zone 33N (EPSG:32633) at 0.5 m a
pixel. Bands: R, G, B (uint8), or with ``bands=4`` blue, green, red and
near-infrared in that order (colour interpretation tagged), where vegetation is
bright in the infrared; ``dtype="uint16"`` stores reflectance-like values
(about 100..10300). A border and one cut corner are nodata (0), as in a scene
footprint. Objects sit on a jittered grid, some centred on the seams of the
default 256-px tile grid, and fields are larger than a tile, so tiled processing
is put to the test. Beside the raster: the truth label raster (0 background,
k = object k) and the truth polygons as GeoJSON (WGS84), plus an example prompts
file (each object's footprint polygon, so its box is the prompt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import atomic_write_text
from ..outputs import data_writer

EPSG = 32633
ORIGIN = (500000.0, 5600000.0)  # UTM 33N easting, northing of the top-left corner (~15 E, 50.5 N)
PIXEL_M = 0.5
BLOCK = 512
CELL = 128
SEAM_STEP = 192  # the default tile grid: 256-px tiles overlapping by 64 start every 192 px

GRASS, SOIL = np.array([92, 118, 70]), np.array([128, 112, 84])
ROOF_COLOURS = [np.array([172, 74, 56]), np.array([150, 150, 156]), np.array([110, 72, 60])]
FIELD_COLOURS = [np.array([196, 176, 96]), np.array([104, 156, 62])]
TREE = np.array([42, 82, 38])
NIR = {"grass": 170, "soil": 90, "roof": 60, "field": 200, "tree": 210}


@dataclass
class RasterObject:
    """One generated object: ``id`` (its truth label), ``kind`` and its outline in raster pixels (N, 2) x, y."""

    id: int
    kind: str
    outline: np.ndarray

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.outline.min(0), self.outline.max(0)
        return float(x0), float(y0), float(x1), float(y1)


def _rect(cx, cy, w, h, angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _circle(cx, cy, r, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])


def border_width(size: int) -> int:
    return max(16, size // 32)


def is_valid(x, y, width: int, height: int):
    """Whether pixel centres (x, y) lie in the data footprint (not the border or the cut corner)."""
    b = border_width(min(width, height))
    cut = min(width, height) // 5
    return (x >= b) & (y >= b) & (x < width - b) & (y < height - b) & (x + y >= cut + 2 * b)


def make_objects(width: int, height: int, seed: int) -> list[RasterObject]:
    """Fields on a coarse grid, then roofs and trees in the free cells; some roofs centred on tile seams."""
    rng = np.random.default_rng(seed)
    objects: list[RasterObject] = []
    taken = np.zeros((height // CELL + 1, width // CELL + 1), bool)

    def fits(outline: np.ndarray) -> bool:
        inside = is_valid(outline[:, 0], outline[:, 1], width, height).all()
        return bool(inside) and outline.min() >= 0 and (outline[:, 0] < width).all() and (outline[:, 1] < height).all()

    for gy in range(0, height - 3 * CELL, 3 * CELL):
        for gx in range(0, width - 3 * CELL, 3 * CELL):
            if rng.random() < 0.3:
                w, h = rng.uniform(150, 300), rng.uniform(110, 240)
                outline = _rect(gx + 1.5 * CELL, gy + 1.5 * CELL, w, h, rng.uniform(-0.4, 0.4))
                if fits(outline):
                    objects.append(RasterObject(len(objects) + 1, "field", outline))
                    (x0, y0), (x1, y1) = outline.min(0), outline.max(0)
                    taken[int(y0) // CELL : int(y1) // CELL + 1, int(x0) // CELL : int(x1) // CELL + 1] = True
    for cy in range(height // CELL):
        for cx in range(width // CELL):
            if taken[cy, cx] or rng.random() < 0.35:
                continue
            x, y = (cx + 0.5) * CELL + rng.uniform(-24, 24), (cy + 0.5) * CELL + rng.uniform(-24, 24)
            seam = round(x / SEAM_STEP) * SEAM_STEP + 64
            if abs(seam - x) < 40 and rng.random() < 0.5:
                x = seam  # on the right edge of a default tile
            if rng.random() < 0.7:
                outline, kind = _rect(x, y, rng.uniform(18, 56), rng.uniform(14, 40), rng.uniform(0, np.pi)), "roof"
            else:
                outline, kind = _circle(x, y, rng.uniform(6, 14)), "tree"
            if fits(outline):
                objects.append(RasterObject(len(objects) + 1, kind, outline))
    return objects


def _smooth(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7919)
    return rng.random((height // 64 + 3, width // 64 + 3)).astype(np.float32)


def render_block(x0: int, y0: int, w: int, h: int, objects: list[RasterObject], width: int, height: int,
                 seed: int, coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8, nir uint8, labels uint16, valid bool) of one block; the same pixels whichever block draws them."""
    xs = (np.arange(x0, x0 + w, dtype=np.float32) + 0.5)
    ys = (np.arange(y0, y0 + h, dtype=np.float32) + 0.5)
    mx, my = np.meshgrid(xs / 64, ys / 64)
    t = cv2.remap(coarse, mx, my, cv2.INTER_LINEAR)[..., None]
    rgb = GRASS * (1 - t) + SOIL * t  # float64 (h, w, 3)
    nir = NIR["grass"] * (1 - t[..., 0]) + NIR["soil"] * t[..., 0]
    labels = np.zeros((h, w), np.uint16)
    px, py = mx * 64, my * 64  # pixel centres
    for o in objects:
        bx0, by0, bx1, by1 = o.bounds
        lx0, ly0 = max(int(bx0) - 1 - x0, 0), max(int(by0) - 1 - y0, 0)
        lx1, ly1 = min(int(bx1) + 2 - x0, w), min(int(by1) + 2 - y0, h)
        if lx1 <= lx0 or ly1 <= ly0:
            continue
        win = (slice(ly0, ly1), slice(lx0, lx1))
        m = np.zeros((ly1 - ly0, lx1 - lx0), np.uint8)
        cv2.fillPoly(m, [np.round((o.outline - [x0 + lx0, y0 + ly0]) * 16).astype(np.int32)], 1, shift=4)
        sel = m.astype(bool)
        local = np.random.default_rng([seed, o.id])
        if o.kind == "field":
            d = o.outline[1] - o.outline[0]
            phase = (px[win] * d[0] + py[win] * d[1]) / np.hypot(*d)
            colour = FIELD_COLOURS[o.id % 2] + (np.sin(phase * 2 * np.pi / 6.0) * 14)[..., None]
        elif o.kind == "roof":
            a, c = o.outline[0], o.outline[3]
            side = ((px[win] - a[0]) * (c[0] - a[0]) + (py[win] - a[1]) * (c[1] - a[1])) / max(np.sum((c - a) ** 2), 1e-6)
            colour = ROOF_COLOURS[int(local.integers(len(ROOF_COLOURS)))] * np.where(side < 0.5, 1.0, 0.78)[..., None]
        else:
            colour = np.broadcast_to(TREE, (*sel.shape, 3))
        rgb[win][sel] = colour[sel]
        nir[win][sel] = NIR[o.kind]
        labels[win][sel] = o.id
    noise = np.random.default_rng([seed, x0, y0]).normal(0, 5, (h, w, 3))
    rgb = np.clip(rgb + noise, 1, 255).astype(np.uint8)
    nir = np.clip(nir + noise[..., 0], 1, 255).astype(np.uint8)
    valid = is_valid(px, py, width, height)
    rgb[~valid], nir[~valid], labels[~valid] = 0, 0, 0
    return rgb, nir, labels, valid


def transform_of(crs: bool = True):
    from affine import Affine

    return Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1]) if crs else Affine.identity()


def write_raster(path: str | Path, size: int | tuple[int, int] = 2048, *, seed: int = 0, dtype: str = "uint8",
                 bands: int = 3, crs: bool = True, truth: str | Path | None = None,
                 overviews: bool = True, objects: list[RasterObject] | None = None) -> list[RasterObject]:
    """Write the raster (and, if ``truth`` is a path, its truth label raster); returns its objects
    (``objects``: these instead of the generated ones, e.g. fields of chosen sizes)."""
    import rasterio
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.windows import Window

    width, height = (size, size) if isinstance(size, int) else size
    if dtype not in ("uint8", "uint16") or bands not in (3, 4):
        raise ValueError("dtype is uint8 or uint16, bands 3 or 4")
    objects = make_objects(width, height, seed) if objects is None else objects
    coarse = _smooth(seed, width, height)
    common = {"driver": "GTiff", "width": width, "height": height, "tiled": True, "blockxsize": BLOCK,
              "blockysize": BLOCK, "compress": "deflate", "crs": f"EPSG:{EPSG}" if crs else None,
              "transform": transform_of(crs) if crs else None}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = [rasterio.open(path, "w", count=bands, dtype=dtype, nodata=0, **common)]
    files[0].colorinterp = ([ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]
                            if bands == 4 else [ColorInterp.red, ColorInterp.green, ColorInterp.blue])
    if truth is not None:
        files.append(rasterio.open(truth, "w", count=1, dtype="uint16", **common))
    try:
        for y in range(0, height, BLOCK):
            for x in range(0, width, BLOCK):
                w, h = min(BLOCK, width - x), min(BLOCK, height - y)
                rgb, nir, labels, valid = render_block(x, y, w, h, objects, width, height, seed, coarse)
                stack = [rgb[..., 2], rgb[..., 1], rgb[..., 0], nir] if bands == 4 else [rgb[..., i] for i in range(3)]
                data = np.stack(stack).astype(np.float32)
                if dtype == "uint16":
                    data = np.where(valid, data * 40 + 100, 0)
                files[0].write(data.astype(dtype), window=Window(x, y, w, h))
                if truth is not None:
                    files[1].write(labels, 1, window=Window(x, y, w, h))
    finally:
        for f in files:
            f.close()
    factors = [f for f in (2, 4, 8, 16, 32) if max(width, height) / f >= 256]
    if factors and overviews:
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews(factors, Resampling.average)
    from ..outputs import record_written

    for written in (path, truth) if truth is not None else (path,):
        record_written(written)
    return objects


def _lonlat(outline: np.ndarray) -> list[list[float]]:
    from rasterio.warp import transform

    a = transform_of(True)
    xs, ys = a.a * outline[:, 0] + a.c, a.e * outline[:, 1] + a.f
    lon, lat = transform(f"EPSG:{EPSG}", "EPSG:4326", list(xs), list(ys))
    ring = [[round(x, 8), round(y, 8)] for x, y in zip(lon, lat)]
    return ring + ring[:1]


@data_writer
def write_raster_dataset(out: str | Path, size: int = 2048, *, seed: int = 0, dtype: str = "uint8",
                         bands: int = 3) -> Path:
    """``OUT/scene.tif``, ``OUT/scene_truth.tif``, ``OUT/scene_truth.geojson`` and ``OUT/prompts.geojson``."""
    out = Path(out)
    objects = write_raster(out / "scene.tif", size, seed=seed, dtype=dtype, bands=bands,
                           truth=out / "scene_truth.tif")
    feats = [{"type": "Feature", "properties": {"id": o.id, "class": o.kind},
              "geometry": {"type": "Polygon", "coordinates": [_lonlat(o.outline)]}} for o in objects]
    doc = {"type": "FeatureCollection", "features": feats}
    atomic_write_text(out / "scene_truth.geojson", json.dumps(doc) + "\n")
    atomic_write_text(out / "prompts.geojson", json.dumps(doc) + "\n")
    return out
