"""The ``samprompt`` command line: segment, eval, weights, synth, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import SampromptError


def _floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if len(vals) not in n:
        raise argparse.ArgumentTypeError(f"{what} takes {' or '.join(map(str, n))} numbers, got {text!r}")
    return vals


def _point(text: str) -> list[float]:
    return _floats(text, (2, 3), "--point X,Y[,LABEL]")


def _box(text: str) -> list[float]:
    return _floats(text, (4,), "--box X0,Y0,X1,Y1")


# ------------------------------------------------------------------ segment


def _cli_prompts(args) -> list:
    """Prompts from --point/--box: each box is one object; points join a single box or form one object."""
    from .prompts import Prompt, load_prompts

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


def _images_of(path: Path) -> list[Path]:
    from .images import IMAGE_SUFFIXES

    if path.is_dir():
        sub = path / "images" if (path / "images").is_dir() else path
        return sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def cmd_segment(args) -> int:
    from tqdm.auto import tqdm

    from .export import CocoWriter, export_png, export_yolo
    from .images import to_rgb_uint8
    from .io import atomic_write_text
    from .prompts import save_prompts
    from .segmenter import Segmenter

    prompts = _cli_prompts(args)
    if not prompts and not args.auto:
        raise SampromptError("give prompts (--point, --box, --prompts FILE) or --auto for segment-everything")
    images = _images_of(Path(args.image))
    out = Path(args.out)
    seg = Segmenter(args.model, learned=args.learned)
    formats = set(args.format)
    coco = CocoWriter()
    failures: dict[str, str] = {}
    done = skipped = 0
    for path in tqdm(images, desc="segment", disable=len(images) < 2 or args.quiet):
        name = path.stem
        if "png" in formats and (out / f"{name}.png").exists() and not args.overwrite and len(images) > 1:
            # Resume: an earlier run finished this image (outputs are written atomically).
            if "coco" in formats:
                from .images import read_image
                from .masks import from_label_map

                coco.add_image(path.name, from_label_map(read_image(out / f"{name}.png"))[0])
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
            if args.min_area:
                from .masks import clean_mask

                masks = np.stack([clean_mask(m, min_island=args.min_area, max_hole=args.min_area) for m in masks]) if len(masks) else masks
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


# --------------------------------------------------------------------- eval


def cmd_eval(args) -> int:
    from .evaluation import evaluate_folder
    from .segmenter import Segmenter

    seg = Segmenter(args.model, learned=args.learned)
    report = evaluate_folder(
        seg, args.dir, prompt=args.prompt, clicks=args.clicks, jitter=args.jitter,
        limit=args.limit, progress=not args.json, model_name=str(args.model),
    )
    d = report.to_dict()
    if not args.per_image:
        d.pop("per_image")
    if args.json:
        print(json.dumps(d, indent=1))
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
        if report.failed:
            print(f"{len(report.failed)} image(s) failed: {sorted(report.failed)[:5]}")
    if args.plot and report.n_objects:  # after the numbers are out, so a plotting problem loses nothing
        from .evaluation import plot_report

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_report(report, args.plot)
        if not args.json:
            print(f"wrote {args.plot}")
    return 0


# ------------------------------------------------------------------ weights


def cmd_weights(args) -> int:
    from .models import REGISTRY, download, weights_path

    if args.action == "list":
        for name, spec in REGISTRY.items():
            path = weights_path(name)
            state = "packaged" if spec.packaged else ("downloaded" if path.exists() else "not downloaded")
            size = f"{spec.size_bytes / 1e6:.0f} MB" if spec.size_bytes else ""
            print(f"{name:6s} {state:15s} {size:>8s}  {spec.description}  [{path}]")
        return 0
    if not args.name:
        raise SampromptError("weights download needs a model name, e.g. samprompt weights download vit_b")
    for name in args.name:
        print(download(name, force=args.force))
    return 0


# ------------------------------------------------------------- synth / demo


def cmd_synth(args) -> int:
    from .synthetic import write_dataset

    out = write_dataset(args.out, args.n, style=args.style, size=args.size, seed=args.seed)
    print(f"wrote {args.n} {args.style} scenes to {out}")
    return 0


def cmd_demo(args) -> int:
    """The main job end to end on the built-in model: segment generated scenes from box prompts."""
    from .evaluation import evaluate_folder
    from .export import CocoWriter, export_png
    from .masks import from_label_map
    from .prompts import Prompt, save_prompts
    from .segmenter import Segmenter
    from .simulate import box_from_mask
    from .synthetic import make_scene, write_dataset

    out = Path(args.out)
    seg = Segmenter(args.model)
    data = write_dataset(out / "data", args.n, seed=args.seed)
    coco = CocoWriter()
    for i in range(args.seed, args.seed + args.n):
        scene = make_scene(i)
        gts, _ = from_label_map(scene.labels)
        prompts = [Prompt(box=box_from_mask(g)) for g in gts]
        results = seg.predict(scene.image, prompts)
        masks = np.stack([r.mask for r in results])
        name = f"default_{i:06d}"
        export_png(out / "masks", name, scene.image, masks, boxes=[p.box for p in prompts])
        coco.add_image(f"{name}.png", masks, scores=[r.score for r in results])
        save_prompts(out / "prompts" / f"{name}.json", prompts, image=f"{name}.png", image_size=scene.image.shape[:2])
    coco.write(out / "coco.json")
    report = evaluate_folder(seg, data, prompt="box", progress=False, model_name=str(args.model))
    print(f"segmented {args.n} scenes with box prompts: mIoU {report.mIoU:.3f} over {report.n_objects} objects")
    print(f"overlays in {out / 'masks'}, COCO in {out / 'coco.json'}, prompts in {out / 'prompts'}")
    return 0


# --------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    from .learned.config import BASELINES, METHODS

    p = argparse.ArgumentParser(prog="samprompt", description="Prompting Segment Anything: segment, evaluate, tune.")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads; use 1 per process when running several jobs on the same cores")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("segment", help="segment an image or a folder from prompts (or --auto)",
                       description="Segment IMAGE (a file, a folder, or a labelled folder's images/) "
                                   "from point/box prompts or a prompts JSON file.")
    s.add_argument("image", help="image file or folder")
    s.add_argument("--point", action="append", type=_point, metavar="X,Y[,LABEL]",
                   help="a point in pixels; LABEL 1 = object (default), 0 = background; repeatable")
    s.add_argument("--box", action="append", type=_box, metavar="X0,Y0,X1,Y1",
                   help="a box in pixels (XYXY); several boxes = several objects")
    s.add_argument("--prompts", metavar="FILE.json", help="prompts JSON (see samprompt.prompts for the schema)")
    s.add_argument("--auto", action="store_true", help="segment everything (no prompts)")
    s.add_argument("--points-per-side", type=int, default=16, help="grid for --auto (default 16)")
    s.add_argument("--min-area", type=int, default=0, help="remove islands/holes smaller than this (px)")
    s.add_argument("--model", default="tiny", help="registry name or checkpoint path (default: tiny)")
    s.add_argument("--learned", metavar="PROMPT_DIR", help="a learned prompt (from samprompt tune) to apply")
    s.add_argument("--format", action="append", choices=["png", "coco", "yolo"],
                   help="output format(s); repeatable (default png)")
    s.add_argument("--out", default="samprompt_out", help="output folder")
    s.add_argument("--overwrite", action="store_true", help="redo images already written by an earlier run")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_segment)

    e = sub.add_parser("eval", help="evaluate on a labelled folder (images/ + masks/)",
                       description="Simulate prompts from each ground-truth object and report mIoU/Dice.")
    e.add_argument("dir", help="labelled folder with images/ and masks/")
    e.add_argument("--prompt", choices=["box", "point", "clicks"], default="box")
    e.add_argument("--clicks", type=int, default=5, help="clicks per object with --prompt clicks (default 5)")
    e.add_argument("--jitter", type=float, default=0.0, help="box noise std as a fraction of its side")
    e.add_argument("--model", default="tiny", help="registry name or checkpoint path (default: tiny)")
    e.add_argument("--learned", metavar="PROMPT_DIR", help="a learned prompt (from samprompt tune) to apply")
    e.add_argument("--limit", type=int, help="evaluate only the first N images")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("--per-image", action="store_true", help="include per-image scores in the JSON")
    e.add_argument("--plot", metavar="PNG", help="also draw mIoU by object size (and per click) into this PNG")
    e.set_defaults(func=cmd_eval)

    w = sub.add_parser("weights", help="list or download model weights",
                       description="List registry models or download official checkpoints (sha256-checked) "
                                   "into $SAMPROMPT_HOME or the user cache dir.")
    w.add_argument("action", choices=["list", "download"])
    w.add_argument("name", nargs="*", help="model name(s) for download")
    w.add_argument("--force", action="store_true", help="download again even if present")
    w.set_defaults(func=cmd_weights)

    y = sub.add_parser("synth", help="write a labelled folder of synthetic scenes",
                       description="Generate seeded synthetic scenes as images/ + masks/.")
    y.add_argument("out")
    y.add_argument("-n", type=int, default=16, help="number of scenes (default 16)")
    y.add_argument("--style", default="default", choices=["default", "ultrasound", "rooftops", "scratches"])
    y.add_argument("--size", type=int, default=256)
    y.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    y.set_defaults(func=cmd_synth)

    d = sub.add_parser("demo", help="run the main job end to end on generated scenes",
                       description="Generate scenes, segment them from box prompts, export PNG/COCO/prompts, "
                                   "report mIoU.")
    d.add_argument("--out", default="samprompt_demo")
    d.add_argument("-n", type=int, default=8)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--model", default="tiny")
    d.set_defaults(func=cmd_demo)
    t = sub.add_parser("tune", help="train a learned prompt on a labelled folder (SAM stays frozen)",
                       description="Train pixel prompts or prompt tokens for a frozen SAM; saves "
                                   "PROMPT_DIR/prompt.safetensors + prompt_config.json + curve.png.")
    t.add_argument("data_dir", help="labelled folder (images/ + masks/)")
    t.add_argument("--method", required=True, choices=[*METHODS, *BASELINES])
    t.add_argument("--out", required=True, metavar="PROMPT_DIR")
    t.add_argument("--val", metavar="DIR", help="labelled folder for validation (best epoch kept)")
    t.add_argument("--model", default="tiny", help="registry name or checkpoint path (default: tiny)")
    t.add_argument("--tokens", type=int, default=32, help="prompt tokens per block (vpt-*)")
    t.add_argument("--kv", choices=["projected", "direct"], default="projected",
                   help="vpt-shallow/deep: tokens projected to keys/values, or keys/values learned directly")
    t.add_argument("--depth", type=int, default=None,
                   help="vpt-deep/generated: prompt only the first N encoder blocks (default: all)")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout on the prompt tokens while training (vpt-*)")
    t.add_argument("--width", type=int, default=16, help="border width (pixel-pad)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=2)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: per method, see DEFAULT_LR)")
    t.add_argument("--prompts", choices=["mixed", "box", "point"], default="mixed",
                   help="simulated training prompts: boxes or points per image (mixed), or one kind only")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_tune)

    a = sub.add_parser("annotate", help="interactive annotation in the browser (Gradio)", add_help=False,
                       description="Launch the Gradio annotator; see samprompt annotate --help.")
    a.add_argument("rest", nargs=argparse.REMAINDER)
    a.set_defaults(func=cmd_annotate)
    return p


def cmd_tune(args) -> int:
    from .learned.train import tune
    from .models import load_model

    extra = {"tokens": args.tokens, "dropout": args.dropout} if args.method.startswith("vpt") else {}
    if args.dropout and not args.method.startswith("vpt"):
        raise SampromptError(f"--dropout is for the vpt-* methods, not {args.method}")
    if args.depth is not None:
        if args.method not in ("vpt-deep", "vpt-generated"):
            raise SampromptError(f"--depth is for vpt-deep and vpt-generated, not {args.method}")
        extra["depth"] = args.depth
    if args.method in ("vpt-shallow", "vpt-deep"):
        extra["kv"] = args.kv
    elif args.kv != "projected":
        raise SampromptError(f"--kv {args.kv} is for vpt-shallow and vpt-deep, not {args.method}")
    if args.method == "pixel-pad":
        extra = {"width": args.width}
    res = tune(load_model(args.model), args.data_dir, args.method, val_dir=args.val, out=args.out,
               epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, prompts=args.prompts, seed=args.seed,
               **extra)
    best = f", best val mIoU {res.best_val:.4f}" if res.best_val is not None else ""
    print(f"trained {res.prompt.num_trainable()} parameters in {res.seconds:.0f}s{best}; saved to {res.out}")
    return 0


def cmd_annotate(args) -> int:
    from .errors import require

    require("gradio", "app")
    from .annotator import main as annotate_main

    annotate_main([a for a in args.rest if a != "--"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["annotate"]:  # the app parses its own arguments
        argv = ["annotate", "--", *argv[1:]] if len(argv) > 1 else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "format", None) is None and args.command == "segment":
        args.format = ["png"]
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except SampromptError as exc:
        print(f"samprompt: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
