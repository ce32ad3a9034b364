"""The ``samprompt`` command line, one module per command (as rasterio's ``rio``).

    samprompt [--threads N] COMMAND [options]      (--threads may also follow COMMAND)

Errors that come from bad input (:class:`~samprompt.errors.SampromptError`) end
in one ``samprompt: error: ...`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import SampromptError
from . import annotate, defects, demo, evaluate, export_onnx, geo, medical, segment, serve, synth, tune, weights
from .common import HelpFormatter, threads_option

COMMANDS = (segment, medical, geo, defects, evaluate, tune, export_onnx, weights, synth, demo, annotate, serve)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="samprompt", formatter_class=HelpFormatter,
                                description="Prompting Segment Anything: segment, evaluate, tune, annotate.")
    p.add_argument("--version", action="version", version=f"samprompt {__version__}")
    threads_option(p, None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub, HelpFormatter)
    for name, sp in sub.choices.items():
        if name != "annotate":  # --threads after the command too; SUPPRESS keeps a value given before it
            threads_option(sp, argparse.SUPPRESS)
    return p


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"samprompt: warning: {message}\n"


def _subcommand(argv: list[str], command: str, verbs: tuple[str, ...]) -> list[str]:
    """``COMMAND VERB ...`` -> ``COMMAND-VERB ...`` (a parser of its own, e.g. ``defects fit``)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--threads" else 1
    if i + 1 < len(argv) and argv[i] == command and argv[i + 1] in verbs:
        return [*argv[:i], f"{command}-{argv[i + 1]}", *argv[i + 2:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    warnings.formatwarning = _warning_line  # one plain line, not a source location
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    cmd_at = next((i for i, a in enumerate(argv) if a in ("annotate",)), None)
    if cmd_at is not None and all(a.startswith("-") or argv[i - 1] == "--threads" for i, a in enumerate(argv[:cmd_at])):
        argv = [*argv[: cmd_at + 1], "--", *argv[cmd_at + 1 :]]  # the app parses its own options
    argv = _subcommand(_subcommand(argv, "defects", ("fit", "inspect")), "medical", ("convert",))
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except SampromptError as exc:
        print(f"samprompt: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that is a file, a read-only disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"samprompt: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("samprompt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
