"""``samprompt demo``: the main job end to end on the built-in model and generated scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import positive_int

HELP = "run the main job end to end on generated scenes"
DESCRIPTION = """Generate scenes, segment each object from its box, write overlays, COCO JSON and the
prompts, and report the mIoU against the known truth."""


def add_parser(sub, formatter) -> None:
    d = sub.add_parser("demo", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    d.add_argument("--out", default="samprompt_demo", help="output folder")
    d.add_argument("-n", type=positive_int, default=8, help="number of scenes")
    d.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    d.add_argument("--model", default="tiny", help="registry name or checkpoint path")
    d.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import evaluate_folder
    from ..export import CocoWriter, export_png
    from ..masks import from_label_map
    from ..prompts import Prompt, save_prompts
    from ..segmenter import Segmenter
    from ..simulate import box_from_mask
    from ..synthetic import make_scene, write_dataset

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
