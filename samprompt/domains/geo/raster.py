"""Reading a raster through windows only: band choice, validity (nodata, masks), one stretch per raster.

A :class:`RasterInfo` is what a job needs to know about a raster, picklable so
Dask workers get it: its size, CRS and transform, the three bands that become
R, G and B, and the stretch that maps them to uint8. The stretch is computed
once per raster (:func:`band_stretch`), so every tile of it looks alike:

* uint8 bands are used as they are;
* other types map each band's 2nd..98th percentile of valid pixels to 0..255.
  The percentiles come from a decimated read of the whole raster (about 1024 px
  on the long side), which GDAL serves from the overviews when the raster has
  them; without overviews they come from a grid of 16 x 16 windows of 64 px
  spread over the raster, so a raster of any size costs the same.

Valid pixels are those whose GDAL mask is set in all three bands: a nodata
value, an internal or sidecar mask and an alpha band all count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, ImageError

STATS_SIDE = 1024  # long side of the decimated read for the stretch statistics
SAMPLE_GRID, SAMPLE_PX = 16, 64
PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class RasterInfo:
    """A raster's grid and how its pixels become RGB uint8 (see the module doc)."""

    path: str
    width: int
    height: int
    crs: str | None  # WKT, or None when the raster has no CRS
    transform: tuple[float, ...]  # the affine's six coefficients (a, b, c, d, e, f)
    bands: tuple[int, int, int]  # 1-based band numbers that become R, G, B
    dtype: str
    lo: tuple[float, ...] | None  # per-band stretch; None: uint8 used as it is
    hi: tuple[float, ...] | None
    band_names: str = ""

    @property
    def name(self) -> str:
        """The output stem: the file name without its extension(s)."""
        name = Path(self.path).name
        for ext in (".tiff", ".tif", ".vrt", ".img", ".jp2"):
            if name.lower().endswith(ext):
                return name[: -len(ext)]
        return Path(name).stem

    @property
    def affine(self):
        from affine import Affine

        return Affine(*self.transform)

    def stretch_text(self) -> str:
        if self.lo is None:
            return "none (uint8)"
        return ", ".join(f"band {b}: {lo:g}..{hi:g}" for b, lo, hi in zip(self.bands, self.lo, self.hi))


def open_raster(path: str | Path):
    """``rasterio.open`` with a clear error for a missing or unreadable file."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    p = Path(path)
    if not p.exists():
        raise ImageError(f"no such raster: {p}")
    if p.is_dir():
        raise ImageError(f"{p} is a folder, not a raster")
    try:
        with warnings.catch_warnings():  # a raster without a transform is handled (pixel coordinates)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise ImageError(f"cannot read {p} as a raster: {str(exc).split(': ', 1)[-1]}") from None


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"4,3,2"`` -> (4, 3, 2); one band (``"1"``) is used as grey; None keeps the default."""
    if text is None:
        return None
    try:
        bands = tuple(int(t) for t in str(text).split(","))
    except ValueError:
        raise ConfigError(f"--bands takes band numbers like 4,3,2, got {text!r}") from None
    if len(bands) not in (1, 3) or min(bands) < 1:
        raise ConfigError(f"--bands takes one or three band numbers from 1, got {text!r}")
    return bands


def choose_bands(src, bands: tuple[int, ...] | None) -> tuple[int, int, int]:
    """The bands that become R, G, B: ``bands`` if given, else those tagged red/green/blue, else the first three."""
    from rasterio.enums import ColorInterp

    n = src.count
    if bands is not None:
        bad = [b for b in bands if b > n]
        if bad:
            raise ConfigError(f"--bands {','.join(map(str, bands))}: the raster has {n} band(s), no band {bad[0]}")
        return tuple(bands) * 3 if len(bands) == 1 else tuple(bands)  # type: ignore[return-value]
    interp = list(src.colorinterp)
    tagged = [interp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) if c in interp]
    if len(tagged) == 3:
        return tuple(tagged)  # type: ignore[return-value]
    return (1, 2, 3) if n >= 3 else (1, 1, 1)


def _valid(masks: np.ndarray) -> np.ndarray:
    return np.all(masks > 0, axis=0)


def band_stretch(src, bands: tuple[int, int, int]) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Per-band (lo, hi) for the stretch (see the module doc); (None, None) for uint8."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    if all(src.dtypes[b - 1] == "uint8" for b in bands):
        return None, None
    uniq = sorted(set(bands))
    scale = max(src.width, src.height) / STATS_SIDE
    if src.overviews(uniq[0]) and scale > 1:
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(uniq, out_shape=(len(uniq), *shape), resampling=Resampling.nearest)
        valid = _valid(src.read_masks(uniq, out_shape=(len(uniq), *shape), resampling=Resampling.nearest))
        samples = data[:, valid]
    else:
        side = min(SAMPLE_PX, src.width, src.height)
        xs = np.linspace(0, src.width - side, SAMPLE_GRID).round().astype(int)
        ys = np.linspace(0, src.height - side, SAMPLE_GRID).round().astype(int)
        parts = []
        for y in sorted(set(ys.tolist())):
            for x in sorted(set(xs.tolist())):
                w = Window(x, y, side, side)
                d = src.read(uniq, window=w)
                parts.append(d[:, _valid(src.read_masks(uniq, window=w))])
        samples = np.concatenate(parts, axis=1)
    samples = samples.astype(np.float64)
    samples = samples[:, np.isfinite(samples).all(0)]
    if samples.shape[1] == 0:
        raise ImageError(f"{src.name}: found no valid pixels to compute the stretch from (all nodata?)")
    lo, hi = np.percentile(samples, PERCENTILES, axis=1)
    hi = np.maximum(hi, lo + 1e-6)
    per = {b: (float(lo[i]), float(hi[i])) for i, b in enumerate(uniq)}
    return tuple(per[b][0] for b in bands), tuple(per[b][1] for b in bands)


def raster_info(path: str | Path, bands: tuple[int, ...] | None = None) -> RasterInfo:
    """Open ``path``, choose its bands and compute its stretch (reads overviews or a sample, never the whole)."""
    with open_raster(path) as src:
        chosen = choose_bands(src, bands)
        lo, hi = band_stretch(src, chosen)
        names = ",".join(str(src.colorinterp[b - 1].name) for b in chosen)
        info = RasterInfo(str(Path(path).resolve()), src.width, src.height,
                          src.crs.to_wkt() if src.crs else None, tuple(src.transform)[:6], chosen,
                          str(src.dtypes[chosen[0] - 1]), lo, hi, names)
        check_readable(src, info)
        return info


def _window_text(window) -> str:
    try:
        return f"pixels x {int(window.col_off)}..{int(window.col_off + window.width)}, " \
               f"y {int(window.row_off)}..{int(window.row_off + window.height)}"
    except AttributeError:
        return f"window {window}"


def check_readable(src, info: RasterInfo) -> None:
    """Read the raster's last and first pixels (the blocks a cut-short file loses first): a damaged file is
    refused before any work, with its name."""
    from rasterio.windows import Window

    for x, y in ((info.width - 1, info.height - 1), (0, 0)):
        read_window(src, info, Window(x, y, 1, 1))


def read_decimated(src, info: RasterInfo, side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(RGB uint8, valid, factor): the whole raster at most ``side`` px a side (averaged, from the overviews
    where there are some), stretched as the windows are; ``factor`` full-resolution pixels per pixel."""
    from rasterio.enums import Resampling

    factor = max(1.0, max(info.width, info.height) / side)
    shape = (max(1, round(info.height / factor)), max(1, round(info.width / factor)))
    uniq = sorted(set(info.bands))
    try:
        data = src.read(uniq, out_shape=(len(uniq), *shape), resampling=Resampling.average)
        valid = _valid(src.read_masks(uniq, out_shape=(len(uniq), *shape), resampling=Resampling.nearest))
    except OSError as exc:
        raise ImageError(f"cannot read {Path(str(info.path)).name} decimated: the file is truncated or damaged "
                         f"({exc})") from None
    return _to_rgb(data, uniq, valid, info), valid, info.width / shape[1]


def read_window(src, info: RasterInfo, window) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (h, w, 3), valid bool (h, w)) of a window inside the raster; invalid pixels are black."""
    uniq = sorted(set(info.bands))
    try:
        data = src.read(uniq, window=window)
        valid = _valid(src.read_masks(uniq, window=window))
    except OSError as exc:  # rasterio's read errors are OSErrors; GDAL's own words come first in its log
        raise ImageError(f"cannot read {Path(str(info.path)).name} at {_window_text(window)}: the file is "
                         f"truncated or damaged ({exc})") from None
    return _to_rgb(data, uniq, valid, info), valid


def _to_rgb(data: np.ndarray, uniq: list[int], valid: np.ndarray, info: RasterInfo) -> np.ndarray:
    """(h, w, 3) uint8 of the chosen bands as read (``uniq``: the bands in ``data``), stretched; nodata black."""
    arr = np.moveaxis(data[[uniq.index(b) for b in info.bands]], 0, -1).astype(
        np.float32 if info.lo is not None else np.uint8)
    if info.lo is not None:
        lo, hi = np.asarray(info.lo, np.float32), np.asarray(info.hi, np.float32)
        with np.errstate(invalid="ignore"):
            arr = np.clip((arr - lo) / (hi - lo) * 255.0 + 0.5, 0, 255)
        arr = np.nan_to_num(arr, nan=0.0).astype(np.uint8)
    arr[~valid] = 0
    return np.ascontiguousarray(arr)
