"""``samprompt eval``: score a model on a labelled folder with prompts simulated from the labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_encoder_options, add_model_options, load_segmenter, positive_int

VOLUME_MODES = ("key_box", "box3d", "points", "oracle_box")  # samprompt.domains.medical.evaluate.MODES

HELP = "evaluate on a labelled folder (images/ + masks/)"
DESCRIPTION = """Simulate prompts from each ground-truth object of DIR (images/NAME.ext + masks/NAME.png)
and report mIoU and Dice, overall, per click and by object size.

For volumes (images/NAME.nii.gz + masks/NAME.nii.gz label volumes), report 3D Dice and
normalised surface Dice (--tolerance mm) per label and mean, for a key-slice box on each
object's largest slice (propagated), its 3D box, one centre point, and the per-slice true
box (the oracle: the ceiling for propagation); the JSON's "dice" and "nsd" are the first mode's.
--prompt key_box, box3d, points or oracle_box runs one of them (all four by default).
--clicks, --jitter and --plot are for images; --per-image adds per-volume scores."""


def add_parser(sub, formatter) -> None:
    e = sub.add_parser("eval", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    e.add_argument("dir", help="labelled folder with images/ and masks/")
    e.add_argument("--prompt", choices=["box", "point", "clicks", *VOLUME_MODES], default=None,
                   help="images: box (default): tight box; point: one centre point; clicks: a point then "
                        "corrective clicks. Volumes: key_box, box3d, points or oracle_box (default: all four)")
    e.add_argument("--clicks", type=positive_int, default=5, help="clicks per object with --prompt clicks")
    e.add_argument("--jitter", type=float, default=0.0, help="box noise std as a fraction of its side")
    add_model_options(e)
    add_encoder_options(e)
    v = e.add_argument_group("volumes")
    v.add_argument("--tolerance", type=float, default=2.0, help="NSD tolerance in mm")
    v.add_argument("--window", default="auto", help="intensity window (see samprompt medical --help)")
    e.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N images")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("--per-image", action="store_true", help="include per-image scores in the JSON")
    e.add_argument("--plot", metavar="PNG", help="also draw mIoU by object size (and per click) into this PNG")
    e.add_argument("--overwrite", action="store_true", help="let --plot replace a file samprompt did not write")
    e.set_defaults(func=run)


def run(args) -> int:
    from ..domains.medical.evaluate import has_volumes
    from ..errors import SampromptError
    from ..evaluation import evaluate_folder, plot_report
    from ..images import iter_labelled, list_images

    if has_volumes(args.dir):
        return _run_volumes(args)
    if args.prompt in VOLUME_MODES:
        raise SampromptError(f"--prompt {args.prompt} is for volumes; for images choose box, point or clicks")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".pdf", ".svg", ".jpg"):
        raise SampromptError(f"--plot {args.plot}: use a .png, .pdf, .svg or .jpg file name")
    if args.plot:
        from ..outputs import check_outputs

        check_outputs([args.plot], input_dirs=[args.dir], overwrite=args.overwrite, hint="--plot")
    labelled = {name for name, _, _ in iter_labelled(args.dir)}
    unlabelled = [p.name for p in list_images(Path(args.dir) / "images") if p.stem not in labelled]
    if not labelled:
        raise SampromptError(f"no image in {args.dir}/images has a mask in {args.dir}/masks (same stem, .png)")
    seg = load_segmenter(args)
    report = evaluate_folder(
        seg, args.dir, prompt=args.prompt or "box", clicks=args.clicks, jitter=args.jitter,
        limit=args.limit, progress=not args.json, model_name=str(args.model),
    )
    d = report.to_dict()
    if not args.per_image:
        d.pop("per_image")
    if args.json:
        print(json.dumps(_finite(d), indent=1, allow_nan=False))
    else:
        print(f"{report.prompt}: mIoU {report.mIoU:.4f}  mDice {report.mDice:.4f}  "
              f"({report.n_objects} objects in {report.n_images} images)")
        if len(report.per_click_mIoU) > 1:
            print("per click mIoU: " + "  ".join(f"{k + 1}:{v:.4f}" for k, v in enumerate(report.per_click_mIoU)))
        if report.oracle_mIoU is not None:
            print(f"first click, best of 3 by true IoU (oracle): {report.oracle_mIoU:.4f}")
        sizes = [f"{k} {v['mIoU']:.4f} (n={v['n']})" for k, v in report.by_size.items() if v["n"]]
        if sizes:
            print("by size (COCO areas): " + "  ".join(sizes))
        for name, why in sorted(report.failed.items()):  # each with its reason, not only with --json
            print(f"samprompt: {name}: {why}", file=sys.stderr)
        if unlabelled:
            print(f"{len(unlabelled)} image(s) without a mask were left out: {unlabelled[:5]}")
    if args.plot and report.n_objects:  # after the numbers are out, so a plotting problem loses nothing
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_report(report, args.plot)
        if not args.json:
            print(f"wrote {args.plot}")
    return 1 if report.failed or not report.n_objects else 0


def _finite(doc):
    """NaN and infinities (an empty report's means) as null: strict JSON, which every parser reads."""
    import math

    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_finite(v) for v in doc]
    return doc


def _run_volumes(args) -> int:
    from ..domains.medical import evaluate_volumes, parse_window
    from ..errors import ConfigError, require

    require("monai", "medical")
    parse_window(args.window)
    if args.tolerance <= 0:
        raise ConfigError(f"--tolerance must be > 0 mm, got {args.tolerance}")
    modes = VOLUME_MODES if args.prompt is None else (args.prompt,)
    if args.prompt is not None and args.prompt not in VOLUME_MODES:
        raise ConfigError(f"--prompt {args.prompt} is for images; for volumes choose one of {', '.join(VOLUME_MODES)}")
    seg = load_segmenter(args)
    if not args.json:
        from ..domains.medical.evaluate import labelled_volumes

        n = len(labelled_volumes(args.dir)[:args.limit])
        print(f"{n} volume(s) x {len(modes)} prompt mode(s) ({', '.join(modes)})"
              + ("; --prompt MODE runs one" if len(modes) > 1 else ""), file=sys.stderr)
    report = evaluate_volumes(seg, args.dir, window=args.window, tolerance=args.tolerance, limit=args.limit,
                              modes=modes, progress=not args.json)
    if not args.per_image:
        report.pop("per_volume")
    if args.json:
        print(json.dumps(_finite(report), indent=1, allow_nan=False))
    else:
        print(f"{report['volumes']} volume(s), NSD at {args.tolerance:g} mm")
        for mode, r in report["modes"].items():
            if r["dice"] is not None:
                print(f"  {mode:<10} Dice {r['dice']:.4f}  NSD {r['nsd']:.4f}  ({r['objects']} objects)")
                print("             per label: " + "  ".join(f"{k}: {v['dice']:.3f}/{v['nsd']:.3f}"
                                                        for k, v in r["per_label"].items()))
        if "key_box_vs_oracle" in report:
            print(f"  key-slice box reaches {100 * report['key_box_vs_oracle']:.1f}% of the oracle's Dice")
        for name, err in report["failed"].items():
            print(f"samprompt: {name}: {err}", file=sys.stderr)
    return 1 if report["failed"] or not report["volumes"] else 0
