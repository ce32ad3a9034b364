"""The batch engine: items in, outputs and a manifest out, in-process or on a Dask cluster.

:func:`run_job` plans the outputs (refusing to write over an input), skips what
the manifest shows as done by the same model, learned prompt, encoder and job
settings, runs the rest through an executor, appends one manifest line per
finished item, assembles the job-wide files (COCO, classes) and rewrites
``failures.json``. Each item is segmented and written on whichever process ran
it; only the client writes the manifest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import SampromptError
from ..io import atomic_write_text
from .items import WorkItem
from .manifest import Manifest
from .worker import JobSettings, SegmenterSpec, family_stamp, segment_item
from .writers import PARTS

FAILURES = "failures.json"
LOCK = ".samprompt.lock"


@dataclass
class JobSummary:
    """Counts of a run; ``records`` holds this run's manifest lines."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    no_prompts: int = 0
    empty_auto: int = 0
    replaced: int = 0  # finished items made with other settings, redone now (their outputs replaced)
    interrupted: bool = False
    records: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every item is done, 130 after Ctrl-C, else 1."""
        if self.interrupted:
            return 130
        return 0 if self.failed == 0 and self.no_prompts == 0 else 1


def _in_process(seg, items: list[WorkItem], settings: JobSettings, out: Path) -> Iterator[dict]:
    """Items in this process, in order; one thread writes each item's outputs while the next is segmented."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="samprompt-writer")
    pending: deque = deque()
    try:
        for item in items:
            rec, result = settings.compute(seg, item)
            pending.append(pool.submit(settings.write, rec, result, item, out))
            while pending and (pending[0].done() or len(pending) > 2):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True)  # writes in flight finish (atomically); their items rerun on resume


def _check_outputs(items: list[WorkItem], settings: JobSettings, out: Path, overwrite: bool,
                   input_dirs=()) -> None:
    """Refuse, before writing anything, a run whose outputs would land on an input, inside an input folder or
    on a file samprompt did not write (:func:`samprompt.outputs.check_outputs`)."""
    from ..outputs import check_out_folder, check_outputs

    check_out_folder(out)
    planned = [p for item in items for p in settings.planned_outputs(item, out)]
    check_outputs([*planned, *settings.job_outputs(out), out / FAILURES], inputs=[i.input for i in items],
                  input_dirs=input_dirs, overwrite=overwrite)


def run_job(
    items: list[WorkItem],
    out: str | Path,
    *,
    segmenter=None,
    settings: JobSettings | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    max_in_flight: int | None = None,
    progress: bool = True,
    input_dirs=(),
) -> JobSummary:
    """Run a batch job into ``out``; see the module doc. Returns a :class:`JobSummary`.

    ``segmenter``: a :class:`SegmenterSpec` (each process builds its own from it;
    default: the built-in model) or, for a run in this process, a ready
    :class:`~samprompt.segmenter.Segmenter`. ``workers``: start a local Dask
    cluster of that many worker processes (one thread each); ``scheduler``: the
    address of a running Dask scheduler. Neither: run in this process. Only one
    run at a time may write into ``out`` (a lock file says so). Ctrl-C stops
    cleanly (``summary.interrupted``). Nothing is written over an input, inside
    ``input_dirs`` (datasets the items come from) or over a file samprompt did
    not write (unless ``overwrite``): see :mod:`samprompt.outputs`.
    """
    settings = _with_prompt_classes(settings or JobSettings(), items)
    out = Path(out)
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise SampromptError("work items need unique ids")
    if segmenter is None:
        segmenter = SegmenterSpec()
    if isinstance(segmenter, SegmenterSpec):
        spec, seg = segmenter, None
        stamp = spec.stamp()
    elif workers or scheduler:
        raise SampromptError("a Dask run builds a Segmenter on each worker: pass a SegmenterSpec, not a Segmenter")
    else:
        spec, seg = None, segmenter
        stamp = family_stamp({"model_id": seg.model_id, "learned_id": seg.learned_id, "encoder": seg.encoder.id},
                             seg.family.name)
    _check_outputs(items, settings, out, overwrite, input_dirs)
    with _exclusive(out):
        return _run(items, out, spec, seg, stamp, settings, overwrite, workers, scheduler, max_in_flight, progress)


def _with_prompt_classes(settings: JobSettings, items: list[WorkItem]) -> JobSettings:
    """The settings with every class the items' prompts name appended to ``classes`` (in first-seen order), so
    COCO and YOLO can number them; the given settings are not changed."""
    import dataclasses

    names = list(settings.classes)
    for item in items:
        for prompt in item.prompts or []:
            label = getattr(prompt, "label", None)
            if isinstance(label, str) and label and label not in names:
                names.append(label)
            elif not label and "object" not in names:
                names.append("object")  # the class of objects whose prompt names none
        if item.prompts is None and "object" not in names:  # segment everything: unlabelled objects
            names.append("object")
    return settings if names == list(settings.classes) else dataclasses.replace(settings, classes=names)


@contextlib.contextmanager
def _exclusive(out: Path):
    """Hold ``OUT/.samprompt.lock`` for the run; a second run into the same folder is refused.

    Creating the lock file is also the check that ``out`` can be written to, before any work.
    """
    import fcntl

    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = open(out / LOCK, "a+")
    except OSError as exc:
        raise SampromptError(f"cannot write to {out}: {exc.strerror or exc}") from None
    busy = SampromptError(f"another samprompt run is writing to {out}; wait for it or choose another --out")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise busy from None
    try:  # the file may have been removed by a run that finished meanwhile: then ours is not the lock
        same = os.fstat(lock.fileno()).st_ino == os.stat(out / LOCK).st_ino
    except OSError:
        same = False
    if not same:
        lock.close()
        raise busy
    try:
        yield
    finally:
        (out / LOCK).unlink(missing_ok=True)  # removed while still held: a finished run leaves no lock file
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _sweep_temporaries(out: Path) -> None:
    """Remove temporary files that a killed run left behind (atomic writes not yet moved into place).

    Called while holding the folder's lock, so no other run is writing them.
    """
    for folder in (out, out / PARTS, out / "labels"):
        if folder.is_dir():
            for f in folder.glob(".*.tmp*"):
                if f.is_file():
                    f.unlink(missing_ok=True)


def _run(items, out, spec, seg, stamp, settings, overwrite, workers, scheduler, max_in_flight, progress):
    from tqdm.auto import tqdm

    from .. import __version__

    _sweep_temporaries(out)
    manifest = Manifest(out)
    if overwrite:
        manifest.reset()
    summary = JobSummary(total=len(items))
    todo: list[WorkItem] = []
    configs: dict[str, str] = {}
    changed: set[str] = set()
    earlier: dict[str, dict] = {}  # the last done record of each item redone with other settings
    for item in items:
        configs[item.id] = settings.config_id(item)
        item_stamp = {**stamp, "config": configs[item.id]}
        if manifest.is_done(item.id, item_stamp):
            summary.skipped += 1
            continue
        before = manifest.last.get(item.id, {})
        diff = {k for k, v in item_stamp.items() if before.get(k) != v}
        if before.get("status") == "done" and diff and any((out / r).is_file() for r in before.get("outputs", {})):
            summary.replaced += 1  # finished before, with other settings: redone, and its outputs replaced
            changed |= diff
            earlier[item.id] = before
        if item.prompts == []:
            rec = {"id": item.id, "status": "no_prompts", "outputs": {}, "error": "no prompts for this image",
                   "seconds": 0.0, **item_stamp, "version": __version__}
            manifest.append(rec)
            summary.records.append(rec)
            summary.no_prompts += 1
        else:
            todo.append(item)
    if summary.replaced:
        what = ", ".join(_STAMP_NAMES.get(k, k) for k in sorted(changed)) or "settings"
        logging.getLogger("samprompt.jobs").warning(
            f"samprompt: {summary.replaced} finished {settings.unit}(s) in {out} were made with another {what}: "
            f"they are redone and their outputs replaced, those of the earlier settings removed (choose another "
            f"--out to keep both)")
    local = None if workers or scheduler else (seg if seg is not None else spec.build())
    if todo:
        settings.prepare(local if local is not None else spec.build(), items)
    if workers or scheduler:
        from .dask import dask_records

        records = dask_records(spec, todo, settings, out, workers=workers, scheduler=scheduler,
                               max_in_flight=max_in_flight)
    else:
        records = _in_process(local, todo, settings, out)
    bar = tqdm(total=len(todo), desc=settings.verb, unit=settings.unit, disable=not progress or len(todo) < 2)
    try:
        for rec in records:
            rec.update(config=configs[rec["id"]], version=__version__)
            if rec["status"] == "done" and any(rec.get(k) != v for k, v in stamp.items()):
                rec.update(status="failed", error=f"a worker used another model or prompt: {rec.get('model_id')}")
            manifest.append(rec)
            summary.records.append(rec)
            if rec["status"] == "done" and rec["id"] in earlier:
                _drop_stale(out, earlier.pop(rec["id"]), rec)
            if rec["status"] == "done":
                summary.done += 1
                summary.empty_auto += int(rec.get("n_masks", 0) == 0)
            else:
                summary.failed += 1
            bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        close = getattr(records, "close", None)
        if close is not None:
            close()
    _finish(manifest, items, settings, out, replaced=summary.replaced > 0)
    return summary


_STAMP_NAMES = {"model_id": "model", "learned_id": "learned prompt", "encoder": "encoder",
                "family": "model family", "config": "set of prompts or settings"}


def _drop_stale(out: Path, before: dict, now: dict) -> None:
    """Remove the outputs an item's earlier run wrote and this one does not (a format no longer asked for,
    the prompts file of a prompted run redone in automatic mode), unless changed since: the folder then holds
    one run's outputs, not a mix."""
    from .manifest import sha256_of

    for rel, digest in before.get("outputs", {}).items():
        f = out / rel
        if rel not in now.get("outputs", {}) and f.is_file() and sha256_of(f) == digest:
            f.unlink()


def _stale_job_files(out: Path, settings: JobSettings) -> None:
    """Job-wide files of formats this run does not write (``coco.json`` after a run without ``--format coco``),
    removed when samprompt wrote them and nobody changed them since."""
    from ..outputs import written_by_samprompt

    keep = {p.name for p in settings.job_outputs(out)}
    for name in ("coco.json", "classes.txt"):
        f = out / name
        if name not in keep and written_by_samprompt(f):
            f.unlink()


def _finish(manifest: Manifest, items: list[WorkItem], settings: JobSettings, out: Path,
            replaced: bool = False) -> None:
    """Job-wide files from every item whose last line says done; failures.json rewritten or removed."""
    done = {i.id: manifest.last[i.id] for i in items if manifest.last.get(i.id, {}).get("status") == "done"}
    if replaced:
        _stale_job_files(out, settings)
    settings.finalize(out, items, done)
    by_name = len({i.name for i in items}) == len(items)  # else items share an input (tiles of a raster)
    failed = {(i.name if by_name else i.id): manifest.last[i.id]["error"] for i in items
              if manifest.last.get(i.id, {}).get("status") == "failed"}
    if failed:
        atomic_write_text(out / FAILURES, json.dumps(failed, indent=1))
    else:
        (out / FAILURES).unlink(missing_ok=True)


__all__ = ["JobSettings", "JobSummary", "SegmenterSpec", "run_job", "segment_item"]
