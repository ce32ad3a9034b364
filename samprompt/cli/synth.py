"""``samprompt synth``: a labelled folder of generated scenes with known truth."""

from __future__ import annotations

from .common import positive_int

HELP = "write a labelled folder of generated scenes"
DESCRIPTION = "Generate seeded scenes as OUT/images/ + OUT/masks/ (label maps), for tests, demos and tuning."
STYLES = ["default", "ultrasound", "rooftops", "scratches"]


def add_parser(sub, formatter) -> None:
    y = sub.add_parser("synth", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    y.add_argument("out", help="output folder")
    y.add_argument("-n", type=positive_int, default=16, help="number of scenes")
    y.add_argument("--style", default="default", choices=STYLES, help="kind of scene")
    y.add_argument("--size", type=positive_int, default=256, help="image side in pixels")
    y.add_argument("--seed", type=int, default=0, help="seed of the first scene (then +1 each)")
    y.set_defaults(func=run)


def run(args) -> int:
    from ..synthetic import write_dataset

    out = write_dataset(args.out, args.n, style=args.style, size=args.size, seed=args.seed)
    print(f"wrote {args.n} {args.style} scenes to {out}")
    return 0
