"""Pieces every ``samprompt`` command shares: argument types, model options, the formatter."""

from __future__ import annotations

import argparse

from ..errors import SampromptError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help (where it has one); keeps descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default == argparse.SUPPRESS
        if "%(default)" in text or hidden or not action.option_strings:
            return text
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"


def numbers(text: str, counts: tuple[int, ...], what: str) -> list[float]:
    """Comma-separated numbers, e.g. ``"10,20"``; an ``argparse`` type error names ``what``."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if len(vals) not in counts:
        raise argparse.ArgumentTypeError(f"{what} takes {' or '.join(map(str, counts))} numbers, got {text!r}")
    return vals


def _whole(text: str, least: int, says: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {says}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    return _whole(text, 0, "0 or more")


def add_model_options(p: argparse.ArgumentParser, learned: bool = True) -> None:
    p.add_argument("--model", default="tiny",
                   help="registry name (tiny, vit_b, sam2.1_hiera_tiny, sam_hq_vit_b, medsam_vit_b, ...: "
                        "samprompt weights list) or a checkpoint path of SAM, SAM 2/2.1 or SAM-HQ")
    p.add_argument("--family", choices=["medsam"], default=None,
                   help="medsam: run a checkpoint given by path with MedSAM's preprocessing (the family of "
                        "other checkpoints is read from their keys)")
    if learned:
        p.add_argument("--learned", metavar="PROMPT_DIR", default=None,
                       help="a learned prompt (made by samprompt tune) to apply")


def add_encoder_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("encoder speed")
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8", "int8+bf16", "fast"], default="fp32",
                   help="encoder precision: fp32 is the reference; bf16 where the CPU or GPU has native bf16 "
                        "(else a warning and fp32); fp16 on GPUs only; int8 on CPUs (quantised linear layers); "
                        "int8+bf16: int8 linear layers, attention in bf16 (CPUs with native bf16; implies "
                        "--attn-impl sdpa); fast: detected (int8+bf16 on avx512_bf16 CPUs without AMX, bf16 on "
                        "AMX CPUs and recent GPUs, else int8), sdpa attention, and the rearranged mask decoder "
                        "(samprompt.fast_decoder; equal to rounding)")
    g.add_argument("--attn-impl", choices=["sam", "sdpa"], default="sam",
                   help="encoder attention: sam (the reference) or sdpa (fused, same result to rounding)")
    g.add_argument("--onnx-dir", metavar="DIR", default=None,
                   help="run the encoder and decoder exported there by samprompt export-onnx (onnxruntime)")


def add_job_options(p: argparse.ArgumentParser, unit: str) -> None:
    """--overwrite, the cluster group (--workers, --scheduler) and --quiet of a batch command."""
    p.add_argument("--overwrite", action="store_true", help=f"start a new manifest and redo every {unit}")
    c = p.add_argument_group("cluster")
    c.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="run on a local Dask cluster of N worker processes (one thread each)")
    c.add_argument("--scheduler", metavar="ADDRESS", default=None, help="run on a running Dask cluster")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run_cli_job(args: argparse.Namespace, items, settings, out=None, segmenter=None, input_dirs=()):
    """``run_job`` with the command's model, --out, --overwrite, cluster and --quiet options; ``input_dirs``:
    dataset folders no output may land in."""
    from ..jobs import run_job

    if segmenter is None:
        spec = segmenter_spec(args)
        segmenter = spec if (args.workers or args.scheduler) else spec.build()
    return run_job(items, args.out if out is None else out, segmenter=segmenter, settings=settings,
                   overwrite=args.overwrite, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                   input_dirs=input_dirs)


def segmenter_spec(args: argparse.Namespace):
    """The :class:`~samprompt.jobs.SegmenterSpec` of the model, learned-prompt and encoder options."""
    from ..jobs import SegmenterSpec

    return SegmenterSpec(args.model, getattr(args, "learned", None), threads=getattr(args, "threads", None),
                         precision=getattr(args, "precision", "fp32"), attn_impl=getattr(args, "attn_impl", "sam"),
                         onnx_dir=getattr(args, "onnx_dir", None), family=getattr(args, "family", None),
                         decoder=getattr(args, "decoder", None))


def load_segmenter(args: argparse.Namespace):
    """The Segmenter of ``--model`` (and ``--learned``, loaded onto that model, and the encoder options)."""
    return segmenter_spec(args).build()


def summary_line(summary, n_items: int, noun: str, out) -> str:
    """``3 image(s): 2 done, 1 failed (see OUT/failures.json); outputs in OUT`` for a finished job."""
    from pathlib import Path

    out = Path(out)
    parts = [f"{summary.done} done", f"{summary.skipped} already done" if summary.skipped else "",
             f"{summary.replaced} made earlier with other settings redone (outputs replaced)"
             if getattr(summary, "replaced", 0) else "",
             f"{summary.failed} failed (see {out / 'failures.json'})" if summary.failed else "",
             f"{summary.no_prompts} without prompts" if summary.no_prompts else ""]
    return f"{n_items} {noun}(s): " + ", ".join(p for p in parts if p) + f"; outputs in {out}"


def threads_option(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--threads", type=positive_int, default=default, metavar="N",
                   help="torch CPU threads (default: torch's choice); use 1 per process when running "
                        "several jobs on the same cores")


__all__ = ["HelpFormatter", "SampromptError", "add_model_options", "load_segmenter", "numbers", "positive_int"]
