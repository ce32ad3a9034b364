"""``samprompt defects fit`` and ``samprompt defects inspect``: fit a defect model once, inspect new images later."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from .common import add_job_options, add_model_options

FIT = """Fit a defect model on good images and save it: the memory bank of SAM patch features of
the first K good images by name, the threshold (from the other good images), the pose
reference of parts at any angle, the settings and the SAM model's id.

DATA: an MVTec-AD category folder (train/good), a dataset of such folders or a VisA
download (with --category), or a plain folder of good images.

Writes MODEL_DIR/defect_model.safetensors and MODEL_DIR/defect_model.json (never a pickle).
Then: samprompt defects inspect MODEL_DIR INPUT --out DIR."""

INSPECT = """Judge new images with a fitted defect model (samprompt defects fit): anomaly map, verdict
(ok or defect) and instance masks per image.

INPUT: an image, a folder of images, or a glob ("line/*.png", quoted). With --watch,
INPUT is a folder that is inspected again every --interval seconds: new files are
inspected once they have stopped growing; Ctrl-C or SIGTERM stops (exit 0).

Writes OUT/ID_{map,labels,overlay}.png per image and OUT/results.jsonl (one line per
image: image, score, verdict, threshold, instances with box, area, score, iou and source
sam or map). Rerunning resumes. The SAM model is the one the defect model was fitted with.

Exit status: 0 all done; 1 some images failed; 2 bad usage; 130 Ctrl-C (without --watch)."""


def add_fit_options(p) -> None:
    """--max-false-alarm and --align, shared by ``defects`` and ``defects fit``."""
    p.add_argument("--max-false-alarm", type=rate, default=0.0, metavar="RATE",
                   help="the threshold flags at most this share of the held-out good images (train/good beyond "
                        "the shots); 0: none of them")
    p.add_argument("--align", choices=["auto", "on", "off"], default="auto",
                   help="turn parts onto the first shot's pose before scoring (auto: when the shots show a part "
                        "at different angles)")


def rate(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate such as 0.01, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def add_parsers(sub, formatter) -> None:
    """``defects-fit`` and ``defects-inspect``, reached as ``samprompt defects fit|inspect`` (see cli.main)."""
    f = sub.add_parser("defects-fit", prog="samprompt defects fit", description=FIT, formatter_class=formatter)
    f.add_argument("data", help="a category folder, a dataset (with --category), or a folder of good images")
    f.add_argument("--category", metavar="NAME", default=None, help="the category of a dataset of several")
    f.add_argument("--shots", type=int, default=4, metavar="K", help="good images in the memory bank")
    f.add_argument("--out", required=True, metavar="MODEL_DIR", help="the folder to write the model into")
    f.add_argument("--overwrite", action="store_true", help="replace a model already in MODEL_DIR")
    add_fit_options(f)
    add_model_options(f)
    f.set_defaults(func=run_fit)

    i = sub.add_parser("defects-inspect", prog="samprompt defects inspect", description=INSPECT,
                       formatter_class=formatter)
    i.add_argument("model_dir", metavar="MODEL_DIR", help="a defect model (samprompt defects fit --out)")
    i.add_argument("input", metavar="INPUT", help="an image, a folder of images, or a quoted glob")
    i.add_argument("--out", default="samprompt_inspect", help="output folder")
    i.add_argument("--watch", action="store_true", help="keep inspecting files that appear in the INPUT folder")
    i.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between looks with --watch")
    add_job_options(i, "image")
    i.set_defaults(func=run_inspect)


def _good_images(args):
    """(category name, its good images sorted by name, its root) from DATA and --category."""
    from ..domains.defects import find_categories
    from ..errors import SampromptError
    from ..images import list_images

    data = Path(args.data)
    if not data.is_dir():
        raise SampromptError(f"no such folder: {data}")
    cats = find_categories(data, [args.category] if args.category else None)
    labelled = [c for c in cats if c.labelled]
    if not labelled:  # a plain folder: every image is a good one
        imgs = list_images(data)
        return data.name, imgs, data
    if len(labelled) > 1:
        raise SampromptError(f"{data} holds {len(labelled)} categories ({', '.join(c.name for c in labelled)}); "
                             "pick one with --category")
    cat = labelled[0]
    if not cat.train_good:
        raise SampromptError(f"{cat.name} has no good training images (train/good)")
    return cat.name, cat.train_good, cat.root


def run_fit(args) -> int:
    from ..domains.defects.generate import DefectSettings
    from ..domains.defects.model import CONFIG, DefectModel
    from ..errors import ConfigError, require
    from .common import load_segmenter

    require("sklearn", "defects")
    if args.shots < 1:
        raise ConfigError(f"--shots {args.shots}: a defect model is fitted on at least one good image; the "
                          "zero-shot mode needs no model: samprompt defects DATA --shots 0")
    name, good, root = _good_images(args)
    if not good:
        raise ConfigError(f"{args.data} holds no images")
    if len(good) < args.shots:
        raise ConfigError(f"--shots {args.shots} but {args.data} has {len(good)} good image(s)")
    from ..domains.defects.model import WEIGHTS
    from ..outputs import check_out_folder, check_outputs

    out = check_out_folder(args.out)
    check_outputs([out / CONFIG, out / WEIGHTS], inputs=good, input_dirs=[root], overwrite=args.overwrite)
    if (out / CONFIG).exists() and not args.overwrite:
        raise ConfigError(f"{out} already holds a defect model; --overwrite replaces it")
    seg = load_segmenter(args)
    from ..models import REGISTRY

    model_name = args.model if args.model in REGISTRY else str(Path(args.model).resolve())
    learned = str(Path(args.learned).resolve()) if args.learned else None
    t0 = time.perf_counter()
    model = DefectModel.fit(seg, [str(p) for p in good[: args.shots]], [str(p) for p in good[args.shots:]],
                            max_false_alarm=args.max_false_alarm, align=args.align, settings=DefectSettings(),
                            category=name, model_name=model_name, shot_names=[p.name for p in good[: args.shots]])
    if model.threshold is None:
        raise ConfigError(f"{name}: one shot and no other good image leaves no way to set a threshold; give more "
                          "good images than --shots, or at least two shots")
    model.config["learned"] = learned
    model.save(out)
    c = model.config
    print(f"{name}: fitted on {c['shots']} shot(s); threshold {model.threshold:.4g} ({c['threshold_rule']}); "
          f"pose alignment {'on' if c['align']['used'] else 'off'}; {time.perf_counter() - t0:.1f} s; model in {out}")
    return 0


def _inspect_paths(text: str) -> list[Path]:
    import glob

    from ..errors import SampromptError
    from ..images import IMAGE_SUFFIXES, list_images

    if any(ch in text for ch in "*?[") and not Path(text).exists():
        paths = sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SampromptError(f"no images match {text}")
        return paths
    return list_images(text)


def _settled(folder: Path, seen: dict[Path, tuple], min_age: float = 1.0) -> list[Path]:
    """The images of ``folder`` whose size and mtime did not change since the last look and that are at
    least ``min_age`` s old: a file still being copied in is left for a later look."""
    from ..images import list_images

    now, ready = time.time(), []
    current = {}
    for p in list_images(folder):
        try:
            st = p.stat()
        except OSError:
            continue
        current[p] = (st.st_size, st.st_mtime_ns)
        if seen.get(p) == current[p] and st.st_size > 0 and now - st.st_mtime >= min_age:
            ready.append(p)
    seen.clear()
    seen.update(current)
    return ready


def run_inspect(args) -> int:
    from ..domains.defects.inspect import InspectJob, inspect_items, model_digest
    from ..domains.defects.model import DefectModel
    from ..errors import SampromptError, require
    from ..jobs import SegmenterSpec, run_job

    require("sklearn", "defects")
    model = DefectModel.load(args.model_dir, attach=False)  # reads and checks the files before anything runs
    spec = SegmenterSpec(model.config.get("model") or "tiny", model.config.get("learned"),
                         threads=getattr(args, "threads", None))
    stamp = spec.stamp()
    model.check(stamp["model_id"], stamp["learned_id"], stamp["encoder"])
    job = InspectJob(model_dir=str(Path(args.model_dir).resolve()), model_digest=model_digest(args.model_dir))
    seg = spec if (args.workers or args.scheduler) else spec.build()
    out = Path(args.out)
    if not args.watch:
        items = inspect_items(_inspect_paths(args.input))
        if not items:
            nested = Path(args.input).is_dir() and any(p.is_dir() for p in Path(args.input).iterdir())
            raise SampromptError(f"{args.input} holds no images" + (
                f"; for its subfolders give a quoted glob, e.g. '{Path(args.input) / '*' / '*.png'}'" if nested else ""))
        summary = run_job(items, out, segmenter=seg, settings=job, overwrite=args.overwrite, workers=args.workers,
                          scheduler=args.scheduler, progress=not args.quiet)
        return _report(summary, len(items), out, args.quiet)
    folder = Path(args.input)
    if not folder.is_dir():
        raise SampromptError(f"--watch needs a folder to watch, not {args.input}")
    seen: dict[Path, tuple] = {}
    done: set[Path] = set()
    overwrite, code = args.overwrite, 0
    try:
        with _sigterm_as_ctrl_c():
            if not args.quiet:
                print(f"watching {folder} every {args.interval:g} s; Ctrl-C stops", file=sys.stderr)
            while True:
                ready = _settled(folder, seen)
                new = [p for p in ready if p not in done]
                if new:
                    items = inspect_items(sorted(done | set(ready)))
                    summary = run_job(items, out, segmenter=seg, settings=job, overwrite=overwrite,
                                      workers=args.workers, scheduler=args.scheduler, progress=False)
                    overwrite = False
                    if summary.interrupted:
                        raise KeyboardInterrupt
                    code = max(code, _report(summary, len(items), out, args.quiet, new=summary.records))
                    done |= set(ready)
                time.sleep(args.interval)
    except KeyboardInterrupt:
        if not args.quiet:
            print(f"stopped watching; {len(done)} image(s) inspected; results in {out / 'results.jsonl'}",
                  file=sys.stderr)
        return code  # 0, or 1 when some image failed


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """A watcher run as a service (systemd, ``docker stop``) is stopped with SIGTERM: inside the block it
    stops as Ctrl-C does (writes in flight finish; a restart skips what is done). The old handler is put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _report(summary, n: int, out: Path, quiet: bool, new=None) -> int:
    from .common import summary_line

    for rec in summary.records:
        if rec["status"] == "failed":
            print(f"samprompt: {rec['id']}: {rec['error']}", file=sys.stderr)
        elif new is not None and not quiet:
            print(f"{rec.get('image', rec['id'])}: {rec.get('verdict')} (score {rec.get('score')}, "
                  f"{rec.get('n_masks', 0)} instance(s))")
    if summary.interrupted:
        print("samprompt: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if not quiet and new is None:
        import json

        from ..domains.defects.inspect import RESULTS

        lines = (out / RESULTS).read_text().splitlines() if (out / RESULTS).is_file() else []
        flagged = sum(json.loads(line)["verdict"] == "defect" for line in lines)
        print(summary_line(summary, n, "image", out) + f"; {flagged} of {len(lines)} judged defect "
              f"({out / RESULTS})")
    return summary.exit_code
