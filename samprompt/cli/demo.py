"""``samprompt demo``: the main job end to end on the built-in model and generated scenes."""

from __future__ import annotations

from pathlib import Path

from .common import positive_int

HELP = "run the main job end to end on generated scenes"
DESCRIPTION = """Generate scenes (OUT/data), segment each object from its box as a batch job (OUT/segmented:
label maps, overlays, COCO JSON, the prompts, a manifest; a rerun resumes), and report the
mIoU against the known truth."""


def add_parser(sub, formatter) -> None:
    d = sub.add_parser("demo", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    d.add_argument("--out", default="samprompt_demo", help="output folder")
    d.add_argument("-n", type=positive_int, default=8, help="number of scenes")
    d.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    d.add_argument("--model", default="tiny", help="registry name or checkpoint path")
    d.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import evaluate_folder
    from ..images import iter_labelled, read_label_map
    from ..jobs import JobSettings, WorkItem, run_job
    from ..masks import from_label_map
    from ..outputs import check_new_or_own_folder
    from ..prompts import Prompt
    from ..segmenter import Segmenter
    from ..simulate import box_from_mask
    from ..synthetic import write_dataset

    out = Path(args.out)
    check_new_or_own_folder(out / "data")
    seg = Segmenter(args.model, cache_size=max(16, args.n))
    data = write_dataset(out / "data", args.n, seed=args.seed)
    items = []
    for name, image, mask in iter_labelled(data):
        objects = from_label_map(read_label_map(mask))[0]
        items.append(WorkItem(name, str(image), [Prompt(box=box_from_mask(m)) for m in objects]))
    summary = run_job(items, out / "segmented", segmenter=seg, settings=JobSettings(formats=["png", "coco"]),
                      progress=False)
    report = evaluate_folder(seg, data, prompt="box", progress=False, model_name=str(args.model))
    print(f"segmented {args.n} scenes with box prompts: mIoU {report.mIoU:.3f} over {report.n_objects} objects")
    print(f"label maps, overlays, prompts and coco.json in {out / 'segmented'}")
    return summary.exit_code
