"""``samprompt defects``: anomaly maps -> generated prompts -> SAM masks on inspection images, with metrics."""

from __future__ import annotations

import json
import sys

from . import defects_model
from .common import add_job_options, add_model_options, positive_int
from .defects_model import add_fit_options

HELP = "find defects in inspection images (MVTec-AD layout or a plain folder), few-shot or zero-shot"
DESCRIPTION = """Judge each test image of each category of DATA and segment its defects:
anomaly map (SAM encoder patch features) -> point and box prompts from its regions -> SAM masks.

DATA: a category folder (train/good, test/good, test/DEFECT, ground_truth/DEFECT/NAME_mask.png),
a folder of such categories (the MVTec-AD download), or a plain folder of images (no labels).

--shots K (default 4): a memory bank of the first K train/good images by name; the threshold
is the highest map value on the other train/good images (--max-false-alarm RATE: the value
that flags at most RATE of them). Parts at any angle are turned onto the first shot's pose
first (--align auto). --shots 0: zero-shot, each test image scored against the other test
images of its category. See docs/defects.md.

Fit once and inspect new images later:
  samprompt defects fit DATA --category NAME --shots K --out MODEL_DIR
  samprompt defects inspect MODEL_DIR INPUT --out DIR [--watch]
(samprompt defects fit --help, samprompt defects inspect --help)

Writes OUT/CATEGORY/DEFECT_NAME_{map,labels,overlay}.png, OUT/CATEGORY/metrics.json,
OUT/CATEGORY/report.html (worst and best cases) and OUT/metrics.json (every category and the
mean); rerunning resumes. Metrics: image_auroc, pixel_auroc, pro (AUPRO to FPR 0.3, in [0, 1]),
pixel_f1_max (the map at its best threshold), pixel_f1 (at the chosen one), mask_f1 (SAM's masks).

Exit status: 0 all done; 1 some images or categories failed; 2 bad usage; 130 Ctrl-C."""


def add_parser(sub, formatter) -> None:
    d = sub.add_parser("defects", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    d.add_argument("data", help="MVTec-AD style folder, one category folder, or a folder of images")
    d.add_argument("--out", default="samprompt_defects", help="output folder")
    d.add_argument("--category", action="append", default=None, metavar="NAME", help="only this category (repeat)")
    d.add_argument("--shots", type=int, default=4, metavar="K", help="normal images for the memory bank; 0: zero-shot")
    d.add_argument("--json", action="store_true", help="print the metrics as JSON")
    d.add_argument("--min-region", type=positive_int, default=16, metavar="PX",
                   help="smallest map region that becomes a prompt")
    add_fit_options(d)
    d.add_argument("--maps", metavar="DIR", default=None,
                   help="use anomaly maps from another detector: DIR/CATEGORY/DEFECT_NAME.npy (or "
                        "DIR/DEFECT_NAME.npy), (H, W) float arrays; the threshold is then the zero-shot default")
    add_model_options(d)
    add_job_options(d, "image")
    d.set_defaults(func=run)
    defects_model.add_parsers(sub, formatter)


def _mean(rows: list[dict]) -> dict:
    from ..domains.defects.report import KEYS

    out = {}
    for k in (*KEYS, "seconds_per_image"):
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = round(sum(vals) / len(vals), 4) if vals else None
    return out


def run(args) -> int:
    from pathlib import Path

    from ..domains.defects import DefectSettings, category_items, category_job, find_categories
    from ..errors import ConfigError, SampromptError, require
    from ..io import atomic_write_text
    from .common import run_cli_job, segmenter_spec

    require("sklearn", "defects")
    if args.shots < 0:
        raise ConfigError(f"--shots must be 0 (zero-shot) or more, got {args.shots}")
    cats = find_categories(args.data, args.category)
    from ..outputs import check_out_folder, check_outputs

    out = check_out_folder(args.out)  # a file given as --out: refused now, not after the first category ran
    for cat in cats:  # before any category runs: no output inside any category's folder
        check_outputs([out / cat.name / "metrics.json", out / "metrics.json"], input_dirs=[cat.root],
                      overwrite=args.overwrite)
    spec = segmenter_spec(args)
    seg = spec if (args.workers or args.scheduler) else spec.build()
    results, code = {}, 0
    for cat in cats:
        try:
            if not cat.test:
                raise SampromptError("no test images (test/good, test/DEFECT)")
            shots = args.shots if cat.labelled or args.shots == 0 else 0
            if not cat.labelled and args.shots:
                print(f"samprompt: {cat.name}: a plain folder has no train/good; running zero-shot", file=sys.stderr)
            maps = None
            if args.maps:
                maps = str(Path(args.maps) / cat.name) if (Path(args.maps) / cat.name).is_dir() else args.maps
            job = category_job(cat, shots, defects=DefectSettings(min_region=args.min_region), maps_dir=maps,
                               align=args.align, max_false_alarm=args.max_false_alarm)
            summary = run_cli_job(args, category_items(cat), job, out=out / cat.name, segmenter=seg,
                                  input_dirs=[cat.root])
        except SampromptError as exc:
            print(f"samprompt: {cat.name}: {exc}", file=sys.stderr)
            results[cat.name] = {"error": str(exc)}
            code = 1
            continue
        for rec in summary.records:
            if rec["status"] == "failed":
                print(f"samprompt: {cat.name}/{rec['id']}: {rec['error']}", file=sys.stderr)
        if summary.interrupted:
            print("samprompt: interrupted; run the same command again to resume", file=sys.stderr)
            return 130
        code = max(code, summary.exit_code)
        results[cat.name] = json.loads((out / cat.name / "metrics.json").read_text())
        if not args.quiet and not args.json:
            m = results[cat.name]
            shown = ", ".join(f"{k} {m[k]:.3f}" for k in ("image_auroc", "pixel_auroc", "pro", "mask_f1")
                              if m.get(k) is not None)
            pose = "; parts aligned to one pose" if m.get("aligned") else ""
            print(f"{cat.name}: {m['images']} images, {shown or 'no metrics'}{pose}"
                  f"{'; ' + m['note'] if m.get('note') else ''}; report: {out / cat.name / 'report.html'}")
    doc = {"categories": results, "mean": _mean([r for r in results.values() if "error" not in r])}
    atomic_write_text(out / "metrics.json", json.dumps(doc, indent=1) + "\n")
    if args.json:
        print(json.dumps(doc, indent=1))
    elif not args.quiet and len(results) > 1:
        print("mean: " + ", ".join(f"{k} {v:.3f}" for k, v in doc["mean"].items() if v is not None))
    return code
