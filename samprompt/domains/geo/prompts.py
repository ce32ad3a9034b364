"""Prompts for a raster from GeoJSON: points and boxes in any CRS, turned into raster pixels.

The file is a FeatureCollection, one Feature or one bare geometry. Each feature is one object:

* ``Point``: one positive click; ``MultiPoint``: several clicks, all positive
  unless ``properties.labels`` gives 1 (object) or 0 (background) per point;
* ``Polygon`` or ``MultiPolygon``: any shape; its bounding box (in the raster's
  pixels, after reprojection) is the box prompt.

The coordinates' CRS is ``--prompts-crs`` when given (a ``crs`` member of the
file that says otherwise is an error), else the file's ``crs`` member, else
WGS84 as RFC 7946 has it. x is always longitude or easting. ``pixel`` means raster
pixels, continuous as everywhere in samprompt: pixel (col i, row j) covers
[i, i+1) x [j, j+1), so the raster spans [0, width] x [0, height].

The object's output value is the feature's number in the file (1-based) unless
its ``properties.id`` is an integer >= 1; values must be unique. ``properties.class``
(or ``name``) is kept as its class name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, PromptError
from .raster import RasterInfo

PIXEL = "pixel"
WGS84 = "EPSG:4326"


@dataclass(frozen=True)
class GeoObject:
    """One object's prompt in raster pixels: ``number`` is its feature's place in the file (1-based)."""

    number: int
    label: int
    points: tuple[tuple[float, float], ...] = ()
    point_labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    name: str | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """XYXY pixel extent of the prompt (a point's is zero-sized)."""
        if self.box is not None:
            return self.box
        xs, ys = [p[0] for p in self.points], [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    def to_json(self) -> dict:
        return {"number": self.number, "label": self.label, "points": [list(p) for p in self.points],
                "point_labels": list(self.point_labels), "box": list(self.box) if self.box else None,
                "name": self.name}


def _crs_member(doc: dict) -> str | None:
    crs = doc.get("crs")
    if crs is None:
        return None
    if isinstance(crs, str):
        return crs
    if isinstance(crs, dict) and isinstance(crs.get("properties"), dict) and "name" in crs["properties"]:
        return str(crs["properties"]["name"])
    raise ConfigError(f"cannot read the GeoJSON's crs member {crs!r} (expected {{\"type\": \"name\", "
                      "\"properties\": {\"name\": \"EPSG:...\"}})")


def _parse_crs(text: str, where: str):
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if text.lower() == PIXEL:
        return PIXEL
    try:
        with rasterio.Env():  # PROJ's own complaint goes to logging, not stderr; ours says it
            return CRS.from_user_input(text)
    except CRSError:
        raise ConfigError(f"{where}: unknown CRS {text!r} (give e.g. EPSG:32633, a WKT or PROJ string, "
                          "or 'pixel')") from None


def prompts_crs(doc: dict, given: str | None):
    """The prompts' CRS: a rasterio CRS or ``"pixel"`` (see the module doc)."""
    member = _crs_member(doc)
    file_crs = _parse_crs(member, "the prompts file's crs member") if member else None
    if given is not None:
        crs = _parse_crs(given, "--prompts-crs")
        if file_crs is not None and file_crs != crs:
            raise ConfigError(f"--prompts-crs {given} conflicts with the prompts file's crs member {member!r}; "
                              "drop one")
        return crs
    if file_crs is not None:
        return file_crs
    from rasterio.crs import CRS

    return CRS.from_user_input(WGS84)


def _features(doc) -> list[dict]:
    if not isinstance(doc, dict) or "type" not in doc:
        raise ConfigError("the prompts file is not GeoJSON (expected a FeatureCollection, a Feature or a geometry)")
    if doc["type"] == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise ConfigError("the FeatureCollection has no 'features' list")
        return feats
    if doc["type"] == "Feature":
        return [doc]
    return [{"type": "Feature", "geometry": doc, "properties": {}}]


def _coords(geom: dict, k: int) -> tuple[str, np.ndarray]:
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind not in ("Point", "MultiPoint", "Polygon", "MultiPolygon"):
        raise PromptError(f"feature {k}: a {kind or 'missing'} geometry is not a prompt (use Point, MultiPoint, "
                          "Polygon or MultiPolygon)")
    try:
        if kind == "Point":
            arr = np.asarray([geom["coordinates"]], np.float64)
        elif kind == "MultiPoint":
            arr = np.asarray(geom["coordinates"], np.float64)
        elif kind == "Polygon":
            arr = np.concatenate([np.asarray(r, np.float64) for r in geom["coordinates"]])
        elif kind == "MultiPolygon":
            arr = np.concatenate([np.asarray(r, np.float64) for p in geom["coordinates"] for r in p])
    except (KeyError, TypeError, ValueError):
        raise PromptError(f"feature {k}: bad {kind} coordinates") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] < 2 or not np.isfinite(arr[:, :2]).all():
        raise PromptError(f"feature {k}: bad {kind} coordinates")
    return kind, arr[:, :2]


def _to_pixels(xy: np.ndarray, crs, info: RasterInfo) -> np.ndarray:
    if crs == PIXEL:
        return xy
    from rasterio.crs import CRS
    from rasterio.warp import transform

    dst = CRS.from_wkt(info.crs)
    if crs != dst:
        xs, ys = transform(crs, dst, xy[:, 0].tolist(), xy[:, 1].tolist())
        xy = np.column_stack([xs, ys])
    return apply_affine(~info.affine, xy)


def apply_affine(a, xy: np.ndarray) -> np.ndarray:
    """(N, 2) points through an affine transform (``Affine * (x, y)`` for arrays)."""
    x, y = xy[:, 0], xy[:, 1]
    return np.column_stack([a.a * x + a.b * y + a.c, a.d * x + a.e * y + a.f])


def _label(props: dict, k: int) -> int:
    if "id" not in props:
        return k
    v = props["id"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1:
        raise PromptError(f"feature {k}: properties.id must be an integer >= 1 (it is the output value), got {v!r}")
    return int(v)


def parse_geo_prompts(doc, info: RasterInfo, crs_text: str | None = None) -> list[GeoObject]:
    """The objects of a GeoJSON document on ``info``'s raster (see the module doc)."""
    crs = prompts_crs(doc, crs_text)
    if crs != PIXEL and info.crs is None:
        raise ConfigError(f"{Path(info.path).name} has no CRS, so prompts in map coordinates cannot be placed on "
                          "it; give the prompts in raster pixels with --prompts-crs pixel")
    objects, seen = [], {}
    for k, feat in enumerate(_features(doc), 1):
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise PromptError(f"feature {k} is not a GeoJSON Feature")
        props = feat.get("properties") or {}
        kind, xy = _coords(feat.get("geometry"), k)
        px = _to_pixels(xy, crs, info)
        px = np.round(px, 4)  # 1/10000 px: the same place given in two CRSs is the same prompt
        if not np.isfinite(px).all():
            raise PromptError(f"feature {k}: its coordinates cannot be reprojected onto the raster's CRS")
        label = _label(props, k)
        if label in seen:
            raise PromptError(f"features {seen[label]} and {k} both give the output value {label}; "
                              "properties.id must be unique")
        seen[label] = k
        name = props.get("class", props.get("name"))
        name = None if name is None else str(name)
        if kind in ("Point", "MultiPoint"):
            labs = props.get("labels", props.get("label", 1) if kind == "Point" else None)
            labs = [1] * len(px) if labs is None else list(np.atleast_1d(labs))
            if len(labs) != len(px) or any(v not in (0, 1) for v in labs):
                raise PromptError(f"feature {k}: properties.labels needs one 0 or 1 per point, got {labs}")
            if 1 not in labs:
                raise PromptError(f"feature {k}: no positive point (label 1)")
            objects.append(GeoObject(k, label, tuple((float(x), float(y)) for x, y in px),
                                     tuple(int(v) for v in labs), None, name))
        else:
            x0, y0 = px.min(0)
            x1, y1 = px.max(0)
            objects.append(GeoObject(k, label, box=(float(x0), float(y0), float(x1), float(y1)), name=name))
    if not objects:
        raise PromptError("the prompts file has no features")
    return objects


def read_geo_prompts(path: str | Path, info: RasterInfo, crs_text: str | None = None) -> list[GeoObject]:
    """:func:`parse_geo_prompts` of a GeoJSON file."""
    from ...prompts import read_json

    return parse_geo_prompts(read_json(path), info, crs_text)
