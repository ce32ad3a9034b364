"""``samprompt synth``: a labelled folder of generated scenes or CT-like volumes with known truth."""

from __future__ import annotations

from pathlib import Path

from .common import positive_int

HELP = "write a labelled folder of generated scenes, volumes or a GeoTIFF"
DESCRIPTION = """Generate seeded scenes as OUT/images/ + OUT/masks/ (label maps), for tests, demos and tuning,
and OUT/detections.json: every object's box as a COCO detection (a stand-in for a detector's output).
With --volumes: CT-like volumes in HU as OUT/images/ct_SEED.nii.gz + OUT/masks/ct_SEED.nii.gz
(labels: OUT/labels.json), cycling through RAS, LPS and oblique affines, and OUT/prompts.json
(a key-slice box per structure, for samprompt medical); --dicom also writes each volume as a
DICOM series in OUT/dicom/ct_SEED/ (the same voxels and affine).
With --raster: OUT/scene.tif, an orthophoto-like GeoTIFF of --size px a side (default 2048;
tiled, overviews, UTM 33N at 0.5 m, a nodata border) with roofs, fields and trees, some on tile
seams; OUT/scene_truth.tif (labels), OUT/scene_truth.geojson and OUT/prompts.geojson (each
object's footprint in lon/lat, for samprompt geo).
With --defects: an MVTec-AD style inspection set in OUT/CATEGORY/ (train/good, test/good,
test/DEFECT, ground_truth/DEFECT) for textures (woven, grid, grain, brushed) and parts (disc,
bolt, flange: a keyed part at any angle) with scratches, holes, stains, cracks, contamination
and missing pieces.
OUT must be new, or hold only files samprompt wrote (a rerun); --overwrite writes anyway."""
STYLES = ["default", "ultrasound", "rooftops", "scratches"]


def _shape(text: str) -> tuple[int, int, int]:
    import argparse

    from .common import numbers

    vals = numbers(text, (3,), "--shape X,Y,Z")
    if any(v < 2 or v != int(v) for v in vals):
        raise argparse.ArgumentTypeError(f"--shape takes three whole numbers >= 2, got {text!r}")
    return tuple(int(v) for v in vals)  # type: ignore[return-value]


def add_parser(sub, formatter) -> None:
    y = sub.add_parser("synth", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    y.add_argument("out", help="output folder")
    y.add_argument("-n", type=positive_int, default=16, help="number of scenes or volumes")
    y.add_argument("--style", default="default", choices=STYLES, help="kind of scene")
    y.add_argument("--size", type=positive_int, default=None,
                   help="image side in pixels (default 256; 2048 with --raster)")
    y.add_argument("--seed", type=int, default=0, help="seed of the first scene (then +1 each)")
    y.add_argument("--overwrite", action="store_true",
                   help="write into OUT even when it holds files samprompt did not write (they may be replaced)")
    v = y.add_argument_group("volumes")
    v.add_argument("--volumes", action="store_true", help="write CT-like NIfTI volumes instead of scenes")
    v.add_argument("--shape", type=_shape, default=(96, 96, 40), metavar="X,Y,Z", help="voxels per volume")
    v.add_argument("--dicom", action="store_true", help="also write each volume as a DICOM series")
    r = y.add_argument_group("raster")
    r.add_argument("--raster", action="store_true", help="write one GeoTIFF with truth instead of scenes")
    r.add_argument("--dtype", choices=["uint8", "uint16"], default="uint8", help="raster sample type")
    r.add_argument("--bands", type=int, choices=[3, 4], default=3, help="3: R,G,B; 4: B,G,R,NIR")
    d = y.add_argument_group("defects")
    d.add_argument("--defects", action="store_true", help="write an MVTec-AD style inspection set instead")
    d.add_argument("--category", action="append", default=None, metavar="NAME",
                   help="only this category (repeat; default: all seven)")
    y.set_defaults(func=run)


def run(args) -> int:
    from ..outputs import check_new_or_own_folder

    check_new_or_own_folder(args.out, args.overwrite, hint="OUT")
    before = _files(args.out)
    code = _generate(args)
    replaced = sorted(str(p) for p, stamp in before.items() if p.exists() and _stamp(p) != stamp)
    merged = {"prompts.json", "detections.json", "labels.json"}  # added to, not replaced
    replaced = [r for r in replaced if Path(r).name not in merged and ".samprompt-outputs" not in r]
    if replaced:
        print(f"replaced {len(replaced)} file(s) an earlier synth wrote here: {', '.join(replaced[:5])}"
              + (" ..." if len(replaced) > 5 else ""))
    return code


def _stamp(p: Path) -> str:
    from ..outputs import sha256_of

    return sha256_of(p)  # the same bytes written again replace nothing


def _files(folder) -> dict[Path, str]:
    root = Path(folder)
    return {p: _stamp(p) for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}


def _generate(args) -> int:
    if args.defects:
        from ..errors import SampromptError
        from ..synthetic.defects import CATEGORIES, write_defect_dataset

        cats = args.category or list(CATEGORIES)
        bad = [c for c in cats if c not in CATEGORIES]
        if bad:
            raise SampromptError(f"unknown category {bad[0]!r}; known: {', '.join(CATEGORIES)}")
        out = write_defect_dataset(args.out, cats, size=args.size or 256, seed=args.seed)
        print(f"wrote {len(cats)} inspection categories to {out} (MVTec-AD layout)")
        return 0
    if args.raster:
        from ..errors import SampromptError, require

        if args.volumes:
            raise SampromptError("--raster and --volumes are separate datasets; give one")
        require("rasterio", "geo")
        from ..synthetic.rasters import write_raster_dataset

        size = args.size or 2048
        out = write_raster_dataset(args.out, size, seed=args.seed, dtype=args.dtype, bands=args.bands)
        print(f"wrote a {size}x{size} px {args.bands}-band {args.dtype} GeoTIFF to {out / 'scene.tif'} (truth: "
              f"scene_truth.tif, scene_truth.geojson; example prompts: prompts.geojson)")
        return 0
    if args.volumes or args.dicom:
        from ..errors import SampromptError, require

        if not args.volumes:
            raise SampromptError("--dicom goes with --volumes")
        require("nibabel", "medical")
        from ..synthetic.volumes import ORIENTATIONS, make_volume, write_dicom_series, write_volume_dataset

        out = write_volume_dataset(args.out, args.n, seed=args.seed, shape=args.shape)
        print(f"wrote {args.n} CT-like volumes to {out / 'images'} (labels in {out / 'masks'}, example prompts "
              f"in {out / 'prompts.json'})")
        if args.dicom:
            require("pydicom", "medical")
            for i in range(args.seed, args.seed + args.n):
                vol = make_volume(i, args.shape, orientation=ORIENTATIONS[(i - args.seed) % len(ORIENTATIONS)])
                write_dicom_series(out / "dicom" / f"ct_{i:04d}", vol.data, vol.affine, seed=i)
            print(f"wrote the same volumes as DICOM series to {out / 'dicom'}")
        return 0
    from ..synthetic import write_dataset

    out = write_dataset(args.out, args.n, style=args.style, size=args.size or 256, seed=args.seed)
    print(f"wrote {args.n} {args.style} scenes to {out / 'images'} (labels in {out / 'masks'}, every object's box "
          f"as a COCO detection in {out / 'detections.json'})")
    return 0
