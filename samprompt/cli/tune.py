"""``samprompt tune``: train a learned prompt for a frozen SAM on a labelled folder.

The method options (``--tokens``, ``--kv``, ``--width``, ...) are built from the
fields of the config dataclasses in :mod:`samprompt.learned.config`, with their
help text and defaults, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from ..errors import ConfigError
from .common import add_model_options, positive_int

HELP = "train a learned prompt on a labelled folder (SAM stays frozen)"
DESCRIPTION = """Train pixel prompts or prompt tokens (or a fine-tuning baseline) for a frozen SAM on
DATA_DIR (images/ + masks/); saves PROMPT_DIR/prompt.safetensors + prompt_config.json,
history.json and curve.png. Use it with --learned PROMPT_DIR in segment and eval."""
_TYPES = {"int": int, "float": float, "str": str}


def _config_options() -> dict[str, tuple]:
    """{field name: (field, [methods that have it])} over every method's config dataclass."""
    from ..learned.config import CONFIGS

    found: dict[str, tuple] = {}
    for method, cls in CONFIGS.items():
        for f in fields(cls):
            if f.name != "method":
                found.setdefault(f.name, (f, []))[1].append(method)
    return found


def _defaults(name: str, methods: list[str]) -> str:
    from ..learned.config import CONFIGS

    seen: dict[str, list[str]] = {}
    for m in methods:
        f = next(f for f in fields(CONFIGS[m]) if f.name == name)
        value = "-" if f.default is MISSING else "per method" if f.default is None else str(f.default) or "none"
        seen.setdefault(value, []).append(m)
    if len(seen) == 1:
        return f"default: {next(iter(seen))}"
    return "default: " + "; ".join(f"{v} for {', '.join(ms)}" for v, ms in seen.items())


def _methods(methods: list[str]) -> str:
    from ..learned.config import CONFIGS

    return "all methods" if len(methods) == len(CONFIGS) else ", ".join(methods)


def add_parser(sub, formatter) -> None:
    from ..learned.config import BASELINES, METHODS

    t = sub.add_parser("tune", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    t.add_argument("data_dir", help="labelled folder (images/ + masks/)")
    t.add_argument("--method", required=True, choices=[*METHODS, *BASELINES], help="what to learn")
    t.add_argument("--out", required=True, metavar="PROMPT_DIR", help="folder for the learned prompt")
    t.add_argument("--val", metavar="DIR", help="labelled folder for validation (the best epoch is kept)")
    t.add_argument("--overwrite", action="store_true", help="let --out replace files samprompt did not write")
    add_model_options(t, learned=False)
    t.add_argument("--epochs", type=positive_int, default=10, help="passes over the training images")
    t.add_argument("--batch-size", type=positive_int, default=2, help="images per step")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: per method, DEFAULT_LR)")
    t.add_argument("--prompts", choices=["mixed", "box", "point"], default="mixed",
                   help="simulated training prompts: boxes or points per image (mixed), or one kind only")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    g = t.add_argument_group("method options", "fields of the method's config (samprompt.learned.config)")
    for name, (f, methods) in _config_options().items():
        kind = _TYPES.get(str(f.type).replace(" | None", "").strip(), str)
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"cfg_{name}", type=kind, default=None,
                       choices=f.metadata.get("choices"), metavar=name.upper() if "choices" not in f.metadata else None,
                       help=f"{f.metadata.get('help', name)} [{_methods(methods)}; {_defaults(name, methods)}]")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..learned.config import CONFIGS, make_config
    from ..learned.train import tune
    from ..models import load_model

    config = {}
    for name, (_, methods) in _config_options().items():
        value = getattr(args, f"cfg_{name}")
        if value is None:
            continue
        if name not in {f.name for f in fields(CONFIGS[args.method])}:
            raise ConfigError(f"--{name.replace('_', '-')} is for {', '.join(methods)}, not {args.method}")
        config[name] = value
    make_config(args.method, **config)  # bad values fail here, before any data is read
    from ..learned.train import TUNE_OUTPUTS
    from ..outputs import check_out_folder, check_outputs

    out = check_out_folder(args.out)
    check_outputs([out / name for name in TUNE_OUTPUTS], input_dirs=[args.data_dir, *([args.val] if args.val else [])],
                  overwrite=args.overwrite)
    res = tune(load_model(args.model, family=args.family), args.data_dir, args.method, val_dir=args.val, out=args.out,
               epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, prompts=args.prompts, seed=args.seed,
               **config)
    best = f", best val mIoU {res.best_val:.4f}" if res.best_val is not None else ""
    print(f"trained {res.prompt.num_trainable()} parameters in {res.seconds:.0f}s{best}; saved to {res.out}")
    return 0
