"""``samprompt weights``: list the registry, download official checkpoints (sha256-checked)."""

from __future__ import annotations

import sys

from ..errors import SampromptError

HELP = "list or download model weights"
DESCRIPTION = """List the registry's models (SAM, SAM 2/2.1, SAM-HQ, MedSAM), or download official
checkpoints into $SAMPROMPT_HOME or the user cache folder, checked against their published sha256 (where
the authors publish none, the first download's sha256 is recorded and every later load is checked against
it). The only command that uses the network."""


def add_parser(sub, formatter) -> None:
    w = sub.add_parser("weights", help=HELP, description=DESCRIPTION, formatter_class=formatter)
    w.add_argument("action", choices=["list", "download"], help="list: what is known and where; download: fetch")
    w.add_argument("name", nargs="*", help="model name(s) to download, e.g. vit_b")
    w.add_argument("--force", action="store_true", help="download again even if present")
    w.set_defaults(func=run)


def run(args) -> int:
    from ..models import REGISTRY, download, weights_path

    if args.action == "list":
        for name, spec in REGISTRY.items():
            path = weights_path(name)
            state = "packaged" if spec.packaged else ("downloaded" if path.exists() else "not downloaded")
            size = f"{spec.size_bytes / 1e6:.0f} MB" if spec.size_bytes else ""
            print(f"{name:22s} {spec.family:7s} {state:15s} {size:>8s}  {spec.description}  [{path}]")
        return 0
    if not args.name:
        raise SampromptError("weights download needs a model name, e.g. samprompt weights download vit_b")
    from ..errors import DownloadError

    failed = 0
    for name in args.name:
        try:
            print(download(name, force=args.force))
        except DownloadError as exc:  # the network or the file, not the command line: exit status 1
            if "cannot be downloaded by samprompt" in str(exc) or name not in REGISTRY:
                raise
            print(f"samprompt: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
