"""``samprompt segment``: an image or a folder, from prompts or segment-everything, on the jobs engine."""

from __future__ import annotations

import argparse
import sys

from ..errors import SampromptError
from .common import (
    add_encoder_options,
    add_model_options,
    non_negative_int,
    numbers,
    positive_int,
    segmenter_spec,
    summary_line,
)

HELP = "segment an image or a folder from prompts (or --auto)"
DESCRIPTION = """Segment IMAGE (a file, a folder, or a labelled folder's images/) from point/box prompts,
a prompts file or folder, or everything in it with --auto. Outputs go to --out with a
manifest.jsonl; rerunning the same command resumes, skipping what is done.

--prompts takes a prompts JSON (with an "image" key it applies to that image only,
without one to every image), a folder of STEM.prompts.json files (what segment writes),
or a COCO file with images and bbox annotations (each box a prompt, its category the class).

Coordinates are pixels of the image, continuous: (0, 0) is the top-left corner of the
first pixel and (W, H) the bottom-right corner of the last. A negative coordinate needs
'=': --point=-5,10.

Exit status: 0 every image done; 1 some failed or had no prompts; 2 bad usage; 130 Ctrl-C."""


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
    p = s.add_argument_group("prompts")
    p.add_argument("--point", action="append", type=_point, metavar="X,Y[,LABEL]",
                   help="a point in pixels; LABEL 1 = object (default), 0 = background; repeatable")
    p.add_argument("--box", action="append", type=_box, metavar="X0,Y0,X1,Y1",
                   help="a box in pixels (XYXY); several boxes = several objects")
    p.add_argument("--prompts", metavar="PATH", help="prompts JSON, folder of STEM.prompts.json, or COCO file")
    p.add_argument("--min-score", type=float, default=0.0, help="drop COCO annotations scored below this")
    a = s.add_argument_group("segment everything")
    a.add_argument("--auto", action="store_true", help="segment everything (no prompts)")
    a.add_argument("--points-per-side", type=positive_int, default=16, help="point grid per side")
    a.add_argument("--pred-iou-thresh", type=float, default=0.8, help="keep masks of at least this predicted IoU")
    a.add_argument("--stability-thresh", type=float, default=0.9, help="keep masks at least this stable")
    a.add_argument("--box-nms-thresh", type=float, default=0.7, help="drop the lower of two masks whose boxes "
                                                                      "overlap more than this")
    s.add_argument("--min-area", type=non_negative_int, default=0,
                   help="remove islands and fill holes smaller than this (px)")
    add_model_options(s)
    add_encoder_options(s)
    s.add_argument("--format", action="append", choices=["png", "coco", "yolo"],
                   help="output format; repeatable (default: png)")
    s.add_argument("--out", default="samprompt_out", help="output folder")
    s.add_argument("--overwrite", action="store_true", help="start a new manifest and redo every image")
    c = s.add_argument_group("cluster")
    c.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="run on a local Dask cluster of N worker processes (one thread each)")
    c.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on a running Dask cluster, e.g. tcp://10.0.0.5:8786")
    s.add_argument("--quiet", action="store_true", help="print nothing but errors")
    s.set_defaults(func=run)


def _work_items(args) -> tuple[list, list[str]]:
    """The job's items and its class names (first 'object', then each prompt label once)."""
    from ..images import list_images
    from ..jobs import WorkItem, output_ids, prompts_for_images
    from ..jobs.items import coco_categories
    from ..prompts import Prompt

    given = [o for o, v in (("--point", args.point), ("--box", args.box), ("--prompts", args.prompts)) if v]
    if args.auto and given:
        raise SampromptError(f"--auto segments everything; it does not take {' or '.join(given)}")
    if args.prompts and (args.point or args.box):
        raise SampromptError("give prompts either as --point/--box or as --prompts, not both")
    if not args.auto and not given:
        raise SampromptError("give prompts (--point, --box, --prompts PATH) or --auto for segment-everything")
    images = list_images(args.image)
    if not images:
        raise SampromptError(f"no images in {args.image} (looked for .png, .jpg, .tif, .bmp, .webp)")
    per_image = {p: (None, None) for p in images}
    if args.prompts:
        per_image = prompts_for_images(args.prompts, images, min_score=args.min_score)
    elif not args.auto:
        pts = [(p[0], p[1]) for p in args.point or []]
        labels = [int(p[2]) if len(p) == 3 else 1 for p in args.point or []]
        boxes = args.box or []
        if len(boxes) > 1 and pts:
            raise SampromptError("with several --box objects, put points in a --prompts JSON file instead")
        if len(boxes) > 1:
            prompts = [Prompt(box=b) for b in boxes]
        else:
            prompts = [Prompt(points=pts, labels=labels, box=boxes[0] if boxes else None)]
        per_image = {p: (prompts, None) for p in images}
    items = [WorkItem(i, str(p), per_image[p][0], per_image[p][1]) for i, p in zip(output_ids(images), images)]
    return items, list(coco_categories(args.prompts)) if args.prompts else []


def run(args) -> int:
    from pathlib import Path

    from ..jobs import JobSettings, run_job

    from ..jobs.items import coco_categories

    items, classes = _work_items(args)
    auto = {"points_per_side": args.points_per_side, "pred_iou_thresh": args.pred_iou_thresh,
            "stability_score_thresh": args.stability_thresh, "box_nms_thresh": args.box_nms_thresh}
    # classes: a detector's categories in id order (their ids kept in COCO), then what the prompts name;
    # "object" only for objects whose prompt names no class (run_job adds those)
    settings = JobSettings(formats=list(dict.fromkeys(args.format or ["png"])), classes=classes,
                           category_ids=coco_categories(args.prompts) if args.prompts else {},
                           min_area=args.min_area, auto=auto if args.auto else {})
    spec = segmenter_spec(args)
    segmenter = spec if (args.workers or args.scheduler) else spec.build()  # a bad --model fails here, as usage
    summary = run_job(items, args.out, segmenter=segmenter, settings=settings, overwrite=args.overwrite,
                      workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    out = Path(args.out)
    for rec in summary.records:
        if rec["status"] == "failed":
            print(f"samprompt: {rec['id']}: {rec['error']}", file=sys.stderr)
    if not args.quiet:
        if len(items) == 1 and summary.records and summary.records[0]["status"] == "done":
            rec = summary.records[0]
            print(f"{Path(items[0].input).name}: {rec['n_masks']} mask(s), scores {rec.get('scores')}")
        print(summary_line(summary, len(items), "image", out))
    if args.auto and summary.empty_auto:
        print(f"samprompt: --auto found no mask in {summary.empty_auto} image(s). The built-in tiny model knows "
              "only generated shapes; for photos run 'samprompt weights download vit_b' and use --model vit_b, "
              "or lower --pred-iou-thresh / --stability-thresh.", file=sys.stderr)
    if summary.interrupted:
        print("samprompt: interrupted; run the same command again to resume", file=sys.stderr)
    return summary.exit_code
