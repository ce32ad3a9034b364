"""``samprompt geo``: objects of a GeoTIFF of any size, from GeoJSON prompts or automatically, as a COG and polygons."""

from __future__ import annotations

import argparse

import sys

from .common import add_encoder_options, add_job_options, add_model_options, positive_int, run_cli_job, summary_line

HELP = "segment a GeoTIFF of any size from GeoJSON prompts (any CRS) or automatically, tile by tile"
DESCRIPTION = """Segment the objects of RASTER, reading it through windows only, and write
  OUT/NAME.labels.tif   Cloud-Optimized GeoTIFF on the raster's CRS and transform (0 = background)
  OUT/NAME.geojson      one polygon per object in WGS84 (id, score, prompt_id, class, area_m2)
  OUT/NAME.gpkg         with --format gpkg: the same polygons in the raster's CRS
and a manifest.jsonl; rerunning resumes.

--prompts FILE.geojson: each feature is one object. A Point or MultiPoint gives clicks
(properties.labels: 1 object, 0 background), a Polygon or MultiPolygon a box (its bounding box).
The output value is the feature's number (1-based) or its integer properties.id. Coordinates
are in --prompts-crs, else the file's crs member, else WGS84 lon/lat; --prompts-crs pixel
takes raster pixels (0..width, 0..height). A prompt off the raster or in nodata is
recorded as failed in OUT/failures.json and the rest go on.

--auto: segment everything, tile by tile (--tile, --overlap); pieces of an object on a seam
are joined across tiles. uint16 and float bands are stretched with one set of statistics for
the whole raster (from its overviews, or a sample): docs/geo.md.

Exit status: 0 all done; 1 some prompts failed; 2 bad usage; 130 Ctrl-C."""


def add_parser(sub, formatter) -> None:
    g = sub.add_parser("geo", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    g.add_argument("raster", help="GeoTIFF (or any raster GDAL reads)")
    what = g.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompts", metavar="GEOJSON", help="points and polygons, one object per feature")
    what.add_argument("--auto", action="store_true", help="segment everything, tile by tile")
    g.add_argument("--coarse", action=argparse.BooleanOptionalAction, default=True,
                   help="with --auto: first look for objects larger than a tile on the raster decimated to about "
                        "a tile, and join the tiles' pieces of them (default: on; docs/geo.md)")
    g.add_argument("--prompts-crs", metavar="CRS", default=None,
                   help="CRS of the prompts: EPSG:32633, a WKT or PROJ string, or 'pixel' (default: the file's "
                        "crs member, else WGS84)")
    g.add_argument("--out", default="samprompt_geo", help="output folder")
    g.add_argument("--bands", metavar="B,B,B", default=None,
                   help="bands that become R,G,B, 1-based, e.g. 4,3,2 (default: those tagged red/green/blue, "
                        "else 1,2,3); one band is used as grey")
    t = g.add_argument_group("tiles and outputs")
    t.add_argument("--tile", type=positive_int, default=None, metavar="PX",
                   help="tile side (default: the model's input size: 256 for tiny, 1024 for the ViTs); also "
                        "the smallest window read for a prompted object")
    t.add_argument("--overlap", type=int, default=None, metavar="PX", help="tile overlap (default: a quarter tile)")
    t.add_argument("--points-per-side", type=positive_int, default=12,
                   help="--auto: point grid per tile (default 12: docs/geo.md weighs 8, 12 and 16)")
    t.add_argument("--min-area", type=int, default=16, metavar="PX", help="--auto: drop objects smaller than this")
    t.add_argument("--simplify", type=float, default=1.0, metavar="PX", help="polygon tolerance in pixels (0: none)")
    t.add_argument("--format", dest="formats", action="append", choices=["geojson", "gpkg"], default=None,
                   help="extra vector output (GeoJSON is always written)")
    add_model_options(g)
    add_encoder_options(g)
    add_job_options(g, "window")
    g.set_defaults(func=run)


def model_input_size(model: str) -> int:
    """The encoder's input side for a registry name (without loading weights); 1024 for other checkpoints."""
    from ..models import REGISTRY

    return REGISTRY[model].img_size if model in REGISTRY else 1024


def run(args) -> int:
    from ..errors import ConfigError, require

    require("rasterio", "geo")
    from ..domains.geo import GeoJob, geo_items, parse_bands, raster_info, read_geo_prompts
    from ..domains.geo.job import AUTO_DEFAULTS

    tile = args.tile or model_input_size(args.model)
    overlap = tile // 4 if args.overlap is None else args.overlap
    if not 0 <= overlap < tile:
        raise ConfigError(f"--overlap must be at least 0 and less than --tile ({tile}), got {overlap}")
    if args.simplify < 0:
        raise ConfigError(f"--simplify must be >= 0, got {args.simplify}")
    if args.auto and args.prompts_crs:
        raise ConfigError("--prompts-crs goes with --prompts, not --auto")
    info = raster_info(args.raster, parse_bands(args.bands))
    objects = None if args.auto else read_geo_prompts(args.prompts, info, args.prompts_crs)
    items = geo_items(info, objects, tile, overlap, coarse=args.coarse and args.auto)
    if args.prompts:
        from pathlib import Path

        finals = {(Path(args.out) / f"{info.name}{ext}").resolve() for ext in (".labels.tif", ".geojson", ".gpkg")}
        if Path(args.prompts).resolve() in finals:
            raise ConfigError(f"the outputs would overwrite the prompts file {args.prompts}; choose another --out")
    auto = {**AUTO_DEFAULTS, "points_per_side": args.points_per_side}
    settings = GeoJob(info=info, mode="auto" if args.auto else "prompts", tile=tile, overlap=overlap,
                      simplify=args.simplify, formats=sorted({"geojson", *(args.formats or [])}), auto=auto,
                      min_area=args.min_area)
    if not args.quiet:
        tiles = sum(1 for i in items if "tile" in i.meta)
        what = f"{len(objects)} objects in {len(items)} windows" if objects else (
            f"{tiles} tiles of {tile} px, {args.points_per_side} points a side"
            + (", after a coarse pass for objects larger than a tile" if len(items) > tiles else "")
            + "; the bar's estimate follows the first tiles")
        print(f"{info.name}: {info.width}x{info.height} px, bands {','.join(map(str, info.bands))}, stretch "
              f"{info.stretch_text()}; {what}")
    if not info.crs:  # said even with --quiet: every output's coordinates depend on it
        print(f"samprompt: {info.name} has no CRS: the GeoJSON and GeoPackage are in pixel coordinates and areas "
              "are not computed", file=sys.stderr)
    if args.auto:  # segment-everything decodes a point grid per tile: the rearranged decoder takes 0.6x the time
        args.decoder = "fast"
    summary = run_cli_job(args, items, settings)
    for rec in summary.records:
        if rec["status"] == "failed":
            print(f"samprompt: {rec['id']}: {rec['error']}", file=sys.stderr)
    if summary.interrupted:
        print("samprompt: interrupted; run the same command again to resume", file=sys.stderr)
        return summary.exit_code
    if not args.quiet:
        print(summary_line(summary, len(items), "window", args.out))
        from pathlib import Path

        out = Path(args.out)
        made = [out / f"{info.name}{ext}" for ext in (".labels.tif", ".geojson", ".gpkg")]
        made = [p for p in made if p.exists() and (p.suffix != ".gpkg" or "gpkg" in settings.formats)]
        if made:
            import json

            n = len(json.loads(made[1].read_text())["features"]) if len(made) > 1 else 0
            print(f"{n} object(s): " + ", ".join(str(p) for p in made))
    return summary.exit_code
