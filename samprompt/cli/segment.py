"""``samprompt segment``: an image or a folder, from prompts or segment-everything."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import SampromptError
from .common import add_model_options, load_segmenter, numbers

HELP = "segment an image or a folder from prompts (or --auto)"
DESCRIPTION = """Segment IMAGE (a file, a folder, or a labelled folder's images/) from point/box prompts
or a prompts JSON file, or everything in it with --auto.

Coordinates are pixels of the image, continuous: (0, 0) is the top-left corner of the
first pixel and (W, H) the bottom-right corner of the last. A negative coordinate needs
'=': --point=-5,10."""


def _point(text: str) -> list[float]:
    vals = numbers(text, (2, 3), "--point X,Y[,LABEL]")
    if len(vals) == 3 and vals[2] not in (0, 1):
        raise argparse.ArgumentTypeError(f"--point LABEL must be 1 (object) or 0 (background), got {text!r}")
    return vals


def _box(text: str) -> list[float]:
    return numbers(text, (4,), "--box X0,Y0,X1,Y1")


def add_parser(sub, formatter) -> None:
    s = sub.add_parser("segment", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    s.add_argument("image", help="image file or folder")
    s.add_argument("--point", action="append", type=_point, metavar="X,Y[,LABEL]",
                   help="a point in pixels; LABEL 1 = object (default), 0 = background; repeatable")
    s.add_argument("--box", action="append", type=_box, metavar="X0,Y0,X1,Y1",
                   help="a box in pixels (XYXY); several boxes = several objects")
    s.add_argument("--prompts", metavar="FILE.json", help="prompts JSON (schema: samprompt.prompts)")
    s.add_argument("--auto", action="store_true", help="segment everything (no prompts)")
    s.add_argument("--points-per-side", type=int, default=16, help="point grid of --auto, per side")
    s.add_argument("--min-area", type=int, default=0, help="remove islands and fill holes smaller than this (px)")
    add_model_options(s)
    s.add_argument("--format", action="append", choices=["png", "coco", "yolo"],
                   help="output format; repeatable (default: png)")
    s.add_argument("--out", default="samprompt_out", help="output folder")
    s.add_argument("--overwrite", action="store_true", help="redo images already written by an earlier run")
    s.add_argument("--quiet", action="store_true", help="print nothing but errors")
    s.set_defaults(func=run)


def _cli_prompts(args) -> list:
    """Prompts from --point/--box: each box is one object; points join a single box or form one object."""
    from ..prompts import Prompt, load_prompts

    if args.prompts:
        return load_prompts(args.prompts)
    pts = [(p[0], p[1]) for p in args.point or []]
    labels = [int(p[2]) if len(p) == 3 else 1 for p in args.point or []]
    boxes = args.box or []
    if len(boxes) > 1:
        if pts:
            raise SampromptError("with several --box objects, put points in a --prompts JSON file instead")
        return [Prompt(box=b) for b in boxes]
    if not pts and not boxes:
        return []
    return [Prompt(points=pts, labels=labels, box=boxes[0] if boxes else None)]


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..export import CocoWriter, export_png, export_yolo
    from ..images import list_images, read_label_map, to_rgb_uint8
    from ..io import atomic_write_text
    from ..masks import clean_mask, from_label_map
    from ..prompts import save_prompts

    formats = set(args.format or ["png"])
    prompts = _cli_prompts(args)
    if not prompts and not args.auto:
        raise SampromptError("give prompts (--point, --box, --prompts FILE) or --auto for segment-everything")
    images = list_images(args.image)
    out = Path(args.out)
    seg = load_segmenter(args)
    coco = CocoWriter()
    failures: dict[str, str] = {}
    done = skipped = 0
    for path in tqdm(images, desc="segment", disable=len(images) < 2 or args.quiet):
        name = path.stem
        if "png" in formats and (out / f"{name}.png").exists() and not args.overwrite and len(images) > 1:
            # Resume: an earlier run finished this image (outputs are written atomically).
            if "coco" in formats:
                coco.add_image(path.name, from_label_map(read_label_map(out / f"{name}.png"))[0])
            skipped += 1
            continue
        try:
            image = to_rgb_uint8(path)
            if args.auto:
                res = seg.segment_everything(image, points_per_side=args.points_per_side, min_mask_area=args.min_area)
                masks, scores, used = res.masks, res.scores, []
            else:
                results = seg.predict(image, prompts)
                masks = np.stack([r.mask for r in results])
                scores = np.array([r.score for r in results])
                used = prompts
            if args.min_area and len(masks):
                masks = np.stack([clean_mask(m, min_island=args.min_area, max_hole=args.min_area) for m in masks])
            if "png" in formats:
                pts = [(p.points, p.labels) for p in used]
                export_png(out, name, image, masks, points=pts, boxes=[p.box for p in used])
            if "yolo" in formats:
                export_yolo(out / "labels" / f"{name}.txt", masks)
            if "coco" in formats:
                coco.add_image(path.name, masks, scores=scores, labels=[p.label for p in used] if used else None)
            if used:
                save_prompts(out / f"{name}.prompts.json", used, image=path.name, image_size=image.shape[:2])
            done += 1
        except SampromptError as exc:
            failures[path.name] = str(exc)
            if len(images) == 1:
                raise
        if not args.quiet and len(images) == 1:
            print(f"{path.name}: {len(masks)} mask(s), scores {np.round(scores, 3).tolist()}")
    if "coco" in formats:
        coco.write(out / "coco.json")
    if failures:
        atomic_write_text(out / "failures.json", json.dumps(failures, indent=1))
        print(f"{len(failures)} image(s) failed; see {out / 'failures.json'}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {done} image(s) to {out}" + (f", {skipped} already done" if skipped else ""))
    return 1 if failures and not (done or skipped) else 0
