"""From the items' parts to a raster's outputs, in bounded memory: a label COG and polygons.

* **Objects.** A prompted object is its one instance, with its label. In
  automatic mode, pieces of one object seen by two overlapping tiles are
  joined: two instances of neighbouring tiles whose masks agree on at least
  ``join`` (0.5) of the smaller one's pixels in the strip the tiles share become
  one object (union-find), so an object across a seam comes out once, whole.
  Objects are numbered 1..N by their top-left corner.
* **``NAME.labels.tif``**: a Cloud-Optimized GeoTIFF (512-px tiles, DEFLATE,
  nearest-neighbour overviews) on the source's CRS and transform; 0 is
  background. It is painted block by block, lower scores first, so where
  objects overlap the better-scored one wins; only the instances that touch a
  block are decoded.
* **``NAME.geojson``**: one feature per object, from ``rasterio.features.shapes``
  on the object's window of the label raster, simplified (``simplify`` pixels,
  topology kept), in WGS84 (RFC 7946); in raster pixels, said so in the file,
  when the raster has no CRS. Properties: ``id``, ``score``, ``prompt_id`` (the
  feature number of its prompt), ``class`` and ``area_m2``: pixel count times
  pixel area in a projected CRS, the polygon's area on the CRS's ellipsoid
  in a geographic one, None without a CRS.
* **``NAME.gpkg``** (``formats`` has ``gpkg``): the same polygons in the source
  CRS, written with pyogrio.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...io import atomic_path
from ...jobs.writers import PARTS

BLOCK = 512
GDAL_ENV = {"GDAL_CACHEMAX": 128, "GDAL_NUM_THREADS": 1}


@dataclass
class Pieces:
    """Every instance of a raster's parts, as arrays (no masks: those are decoded on demand)."""

    part: np.ndarray  # index into ``paths``
    index: np.ndarray  # index within its part
    bbox: np.ndarray  # (N, 4) XYXY raster pixels, exclusive end
    score: np.ndarray
    number: list  # prompt feature number or None
    label: list
    name: list
    paths: list[Path]
    windows: list[tuple[int, int, int, int]]
    tiles: list
    origin: np.ndarray  # (N, 2) raster x, y of each instance's mask (its part's window, or its own box)


class MaskCache:
    """Decoded instance masks on their windows, the most recent few kept."""

    def __init__(self, pieces: Pieces, size: int = 256) -> None:
        self.pieces, self.size = pieces, size
        self.parts: OrderedDict = OrderedDict()
        self.masks: OrderedDict = OrderedDict()

    def _rles(self, part: int) -> list[dict]:
        if part not in self.parts:
            doc = json.loads(self.pieces.paths[part].read_text())
            self.parts[part] = [i["rle"] for i in doc["instances"]]
            if len(self.parts) > 16:
                self.parts.popitem(last=False)
        return self.parts[part]

    def __call__(self, i: int) -> np.ndarray:
        from ...masks import rle_to_mask

        if i not in self.masks:
            self.masks[i] = rle_to_mask(self._rles(int(self.pieces.part[i]))[int(self.pieces.index[i])])
            if len(self.masks) > self.size:
                self.masks.popitem(last=False)
        else:
            self.masks.move_to_end(i)
        return self.masks[i]

    def crop(self, i: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Instance ``i``'s mask on the raster region [x0, x1) x [y0, y1) (inside its window)."""
        wx, wy = self.pieces.origin[i]
        return self(i)[y0 - wy : y1 - wy, x0 - wx : x1 - wx]


def load_pieces(paths: list[Path]) -> Pieces:
    part, index, bbox, score, number, label, name, windows, tiles, origin = [], [], [], [], [], [], [], [], [], []
    for p_i, path in enumerate(paths):
        doc = json.loads(path.read_text())
        wx, wy = doc["window"][:2]
        windows.append(tuple(doc["window"]))
        tiles.append(doc.get("tile"))
        for k, inst in enumerate(doc["instances"]):
            b = inst["bbox"]
            if b[2] <= b[0]:
                continue  # an empty mask (e.g. a prompt whose object is all nodata)
            ox, oy = inst.get("origin", (wx, wy))  # a coarse object's mask covers its own box
            part.append(p_i)
            index.append(k)
            origin.append((ox, oy))
            bbox.append([b[0] + ox, b[1] + oy, b[2] + ox, b[3] + oy])
            score.append(inst["score"])
            number.append(inst["number"])
            label.append(inst["label"])
            name.append(inst["name"])
    return Pieces(np.array(part, np.int64), np.array(index, np.int64), np.array(bbox, np.int64).reshape(-1, 4),
                  np.array(score, np.float64), number, label, name, paths, windows, tiles,
                  np.array(origin, np.int64).reshape(-1, 2))


def _overlap(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def join_across_tiles(pieces: Pieces, masks: MaskCache, join: float) -> np.ndarray:
    """Union-find over instances of neighbouring tiles (see the module doc); returns each instance's root."""
    n = len(pieces.score)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_tile: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        t = pieces.tiles[int(pieces.part[i])]
        if t is not None:  # the coarse pass's objects are joined by absorb_into_coarse
            by_tile.setdefault((t[0], t[1]), []).append(i)
    for (r, c), members in sorted(by_tile.items()):
        for nb in ((r, c + 1), (r + 1, c - 1), (r + 1, c), (r + 1, c + 1)):
            for i in members:
                wa = pieces.windows[int(pieces.part[i])]
                for j in by_tile.get(nb, []):
                    wb = pieces.windows[int(pieces.part[j])]
                    strip = _overlap((wa[0], wa[1], wa[0] + wa[2], wa[1] + wa[3]),
                                     (wb[0], wb[1], wb[0] + wb[2], wb[1] + wb[3]))
                    region = strip and _overlap(strip, pieces.bbox[i]) and _overlap(strip, pieces.bbox[j])
                    region = region and _overlap(_overlap(strip, pieces.bbox[i]), pieces.bbox[j])
                    if not region:
                        continue
                    a, b = masks.crop(i, *region), masks.crop(j, *region)
                    sa, sb = masks.crop(i, *strip).sum(), masks.crop(j, *strip).sum()
                    if min(sa, sb) > 0 and (a & b).sum() >= join * min(sa, sb):
                        parent[find(i)] = find(j)
    return np.array([find(i) for i in range(n)])


def absorb_into_coarse(pieces: Pieces, masks: MaskCache, roots: np.ndarray, share: float = 0.5) -> np.ndarray:
    """The tiles' objects that lie mostly (``share`` of their pixels) inside an object of the coarse pass are
    pieces of it: joined to it, so a field many tiles large is one object, its edges from both. The rest
    (a tree in a field) stay objects of their own."""
    coarse = [i for i in range(len(roots)) if pieces.tiles[int(pieces.part[i])] is None]
    if not coarse:
        return roots
    roots = roots.copy()
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        if i not in coarse:
            groups.setdefault(int(r), []).append(i)
    for members in groups.values():
        total = sum(int(masks(i).sum()) for i in members)
        best, best_in = None, 0
        for c in coarse:
            inside = 0
            for i in members:
                r = _overlap(pieces.bbox[i], pieces.bbox[c])
                if r is not None:
                    inside += int((masks.crop(i, *r) & masks.crop(c, *r)).sum())
            if inside > best_in:
                best, best_in = c, inside
        if best is not None and best_in >= share * total:
            for i in members:
                roots[i] = roots[best]
    return roots


@dataclass
class GeoObjectOut:
    id: int
    members: list[int]
    score: float
    bbox: list[int]
    prompt_id: int | None
    name: str | None
    pixels: int = 0
    under: bool = False  # an object of the coarse pass: painted first, so what the tiles found on it stays


def make_objects(pieces: Pieces, roots: np.ndarray | None) -> list[GeoObjectOut]:
    """Prompted (``roots`` None): one object per instance, id = its label. Automatic: one per root, ids by position."""
    if roots is None:
        return [GeoObjectOut(int(pieces.label[i]), [i], float(pieces.score[i]), pieces.bbox[i].tolist(),
                             pieces.number[i], pieces.name[i]) for i in range(len(pieces.score))]
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        groups.setdefault(int(r), []).append(i)
    objs = []
    for members in groups.values():
        b = pieces.bbox[members]
        bbox = [int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())]
        objs.append(GeoObjectOut(0, members, float(pieces.score[members].max()), bbox, None, None))
    objs.sort(key=lambda o: (o.bbox[1], o.bbox[0], o.bbox[3], o.bbox[2]))
    for k, o in enumerate(objs, 1):
        o.id = k
    return objs


def label_dtype(max_id: int) -> str:
    return "uint8" if max_id <= 255 else "uint16" if max_id <= 65535 else "uint32"


def paint_labels(path: Path, info, pieces: Pieces, objects: list[GeoObjectOut], masks: MaskCache) -> None:
    """Write the label raster as a tiled GeoTIFF, block by block (see the module doc); counts each object's pixels."""
    import rasterio
    from rasterio.windows import Window

    member_obj = np.zeros(len(pieces.score), np.int64)
    order_key = np.zeros(len(pieces.score))
    for k, o in enumerate(objects):
        member_obj[o.members] = k
        order_key[o.members] = o.score - (2.0 if o.under else 0.0)
    dtype = label_dtype(max((o.id for o in objects), default=0))
    profile = {"driver": "GTiff", "width": info.width, "height": info.height, "count": 1, "dtype": dtype,
               "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate",
               "crs": info.crs, "transform": info.affine if info.crs or info.transform != (1, 0, 0, 0, 1, 0) else None}
    counts = np.zeros(len(objects), np.int64)
    index = {o.id: k for k, o in enumerate(objects)}
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)  # no CRS: pixel coordinates, said so
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, info.height, BLOCK):
            for x in range(0, info.width, BLOCK):
                x1, y1 = min(x + BLOCK, info.width), min(y + BLOCK, info.height)
                block = np.zeros((y1 - y, x1 - x), dtype)
                b = pieces.bbox
                hit = np.nonzero((b[:, 0] < x1) & (b[:, 2] > x) & (b[:, 1] < y1) & (b[:, 3] > y))[0]
                for i in sorted(hit, key=lambda i: (order_key[i], -objects[member_obj[i]].id)):
                    r = _overlap((x, y, x1, y1), pieces.bbox[i])
                    if r is None:
                        continue
                    m = masks.crop(i, *r)
                    block[r[1] - y : r[3] - y, r[0] - x : r[2] - x][m] = objects[member_obj[i]].id
                if len(objects):
                    ids, n = np.unique(block, return_counts=True)
                    for v, c in zip(ids.tolist(), n.tolist()):
                        if v:
                            counts[index[v]] += c
                dst.write(block, 1, window=Window(x, y, x1 - x, y1 - y))
    for o, c in zip(objects, counts):
        o.pixels = int(c)


def write_cog(src_path: Path, path: Path) -> Path:
    """Copy a tiled GeoTIFF to a Cloud-Optimized GeoTIFF with GDAL's COG driver, atomically."""
    import rasterio
    import rasterio.shutil

    with rasterio.Env(**GDAL_ENV), atomic_path(path) as tmp:
        rasterio.shutil.copy(str(src_path), str(tmp), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=str(BLOCK),
                             OVERVIEW_RESAMPLING="NEAREST", NUM_THREADS="1")
    return path


def _pixel_area(info) -> float | None:
    from rasterio.crs import CRS

    if info.crs is None:
        return None
    crs = CRS.from_wkt(info.crs)
    if crs.is_geographic:
        return None
    a = info.affine
    factor = crs.linear_units_factor[1]
    return abs(a.a * a.e - a.b * a.d) * factor * factor


def object_polygons(label_path: Path, info, objects: list[GeoObjectOut], simplify: float):
    """Yield (object, shapely geometry in the raster's CRS or pixels) for each object with pixels left."""
    from affine import Affine
    from rasterio.features import shapes
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform
    from shapely.geometry import shape
    from shapely.ops import unary_union

    base = info.affine if info.crs else Affine.identity()
    tol = simplify * (abs(base.a) + abs(base.e)) / 2
    from .raster import open_raster

    with open_raster(label_path) as src:
        for o in objects:
            if not o.pixels:
                continue
            x0, y0, x1, y1 = o.bbox
            win = Window(x0, y0, x1 - x0, y1 - y0)
            arr = src.read(1, window=win)
            sel = arr == o.id
            polys = [shape(g) for g, _ in shapes(sel.astype(np.uint8), mask=sel, connectivity=4,
                                                  transform=window_transform(win, base))]
            geom = unary_union(polys)
            if tol > 0:
                geom = geom.simplify(tol, preserve_topology=True)
            if not geom.is_empty:
                yield o, geom


def _round(coords, nd: int):
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        return [round(float(v), nd) for v in coords]
    return [_round(c, nd) for c in coords]


def assemble(out: Path, settings, items) -> list[Path]:
    """Build ``NAME.labels.tif``, ``NAME.geojson`` (and ``NAME.gpkg``) in ``out`` from the items' parts."""
    import rasterio

    from ...io import atomic_write_text

    info = settings.info
    paths = [out / PARTS / f"{i.id}.json" for i in items if (out / PARTS / f"{i.id}.json").exists()]
    pieces = load_pieces(paths)
    masks = MaskCache(pieces)
    roots = None
    if settings.mode == "auto":
        roots = absorb_into_coarse(pieces, masks, join_across_tiles(pieces, masks, settings.join))
    objects = make_objects(pieces, roots)
    if roots is not None:
        for o in objects:
            o.under = any(pieces.tiles[int(pieces.part[i])] is None for i in o.members)
    written = []
    painted = out / f".{info.name}.paint.tmp.tif"  # swept by a rerun if a kill leaves it
    try:
        with rasterio.Env(**GDAL_ENV):
            paint_labels(painted, info, pieces, objects, masks)
            written.append(write_cog(painted, out / f"{info.name}.labels.tif"))
            features, geoms = _features(painted, info, objects, settings.simplify)
    finally:
        painted.unlink(missing_ok=True)
    doc = {"type": "FeatureCollection", "name": info.name, "features": features}
    if info.crs is None:
        doc["samprompt:coordinates"] = "raster pixels (x = column, y = row): the raster has no CRS"
    written.append(atomic_write_text(out / f"{info.name}.geojson", json.dumps(doc, separators=(",", ":")) + "\n"))
    if "gpkg" in settings.formats:
        written.append(write_gpkg(out / f"{info.name}.gpkg", geoms, info.crs))
    return written


def _features(label_path: Path, info, objects: list[GeoObjectOut], simplify: float):
    """GeoJSON features (WGS84, or pixels without a CRS) and (properties, geometry in the source CRS) pairs."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping

    crs = CRS.from_wkt(info.crs) if info.crs else None
    pixel_area = _pixel_area(info)
    geod = None
    if crs is not None and crs.is_geographic:
        from pyproj import CRS as ProjCRS

        geod = ProjCRS.from_wkt(info.crs).get_geod()
    features, geoms = [], []
    for o, geom in object_polygons(label_path, info, objects, simplify):
        gj = mapping(geom)
        if crs is not None:
            gj = transform_geom(crs, "EPSG:4326", gj)
        if pixel_area is not None:
            area = o.pixels * pixel_area
        elif geod is not None:
            area = abs(geod.geometry_area_perimeter(geom)[0])
        else:
            area = None
        props = {"id": o.id, "score": round(o.score, 4), "prompt_id": o.prompt_id, "class": o.name,
                 "area_m2": None if area is None else round(area, 2), "pixels": o.pixels}
        features.append({"type": "Feature", "properties": props,
                         "geometry": {"type": gj["type"], "coordinates": _round(gj["coordinates"], 7)}})
        geoms.append((props, geom))
    return features, geoms


def write_gpkg(path: Path, geoms: list[tuple[dict, object]], crs_wkt: str | None) -> Path:
    """The polygons in the source CRS as a GeoPackage layer ``objects`` (pyogrio), atomically."""
    import shapely
    from pyogrio.raw import write

    wkb = np.array([shapely.to_wkb(shapely.geometry.MultiPolygon([g]) if g.geom_type == "Polygon" else g)
                    for _, g in geoms], dtype=object)
    keys = ["id", "score", "prompt_id", "class", "area_m2", "pixels"]
    dtypes = {"id": np.int64, "score": np.float64, "prompt_id": np.float64, "area_m2": np.float64,
              "pixels": np.int64, "class": object}
    data = [np.array([p[k] if p[k] is not None else (np.nan if dtypes[k] is np.float64 else "") for p, _ in geoms],
                     dtype=dtypes[k]) for k in keys]
    with atomic_path(path) as tmp:
        tmp.unlink()
        write(str(tmp), geometry=wkb, field_data=data, fields=keys, driver="GPKG", layer="objects",
              geometry_type="MultiPolygon", crs=crs_wkt)
    return path
