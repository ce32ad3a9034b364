"""Inspecting new images with a fitted :class:`~.model.DefectModel`, on the jobs engine.

One work item per image. Each writes ``ID_map.png``, ``ID_labels.png`` and
``ID_overlay.png`` as the one-shot ``defects`` command does; the job writes
``results.jsonl``, one line per inspected image in input order: ``image``,
``score``, ``verdict`` (``ok`` or ``defect``), ``threshold`` and ``instances``
(box, area, score, iou, source). The manifest gives resume and ``--workers`` as
for every job; a refitted model (other file contents) redoes every image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...jobs.items import WorkItem, output_ids
from ...jobs.worker import JobSettings, compute_timed, write_timed
from .job import result_record, write_item_images
from .model import CONFIG, WEIGHTS, DefectModel

RESULTS = "results.jsonl"


def model_digest(folder: str | Path) -> str:
    """sha256 prefix of a defect model's two files: what makes a rerun with a refitted model redo its images."""
    import hashlib

    h = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        h.update((Path(folder) / name).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class InspectJob(JobSettings):
    """Inspect images with the defect model saved in ``model_dir`` (see the module doc)."""

    unit = "image"
    verb = "inspect"

    model_dir: str = ""
    model_digest: str = ""

    def prompts_json(self, item: WorkItem):
        return {"inspect": item.name}

    def planned_outputs(self, item: WorkItem, out: Path) -> list[Path]:
        return [out / f"{item.id}{s}" for s in ("_map.png", "_labels.png", "_overlay.png")]

    def job_outputs(self, out: Path) -> list[Path]:
        return [out / RESULTS]

    def prepare(self, seg, items: list[WorkItem]) -> None:
        model = DefectModel.load(self.model_dir, seg)
        model.seg = None  # the job travels to Dask workers; each brings its own Segmenter
        self._model = model

    def compute(self, seg, item: WorkItem):
        return compute_timed(seg, item, lambda rec: self._compute(seg, item, rec))

    def _compute(self, seg, item: WorkItem, rec: dict):
        from ...images import to_rgb_uint8

        if getattr(self, "_model", None) is None:
            self.prepare(seg, [item])
        rgb = to_rgb_uint8(item.input)
        self._model.check_size(rgb, item.name)
        res = self._model.inspect(rgb, seg=seg)
        rec.update(result_record(res, item), image=item.input)
        return rgb, res, None

    def write(self, rec: dict, result, item: WorkItem, out: Path) -> dict:
        return write_timed(rec, result, out,
                           lambda: write_item_images(result, item, out, result[1].threshold, parts=False))

    def finalize(self, out: Path, items: list[WorkItem], done: dict[str, dict]) -> None:
        from ...io import atomic_write_text

        keys = ("image", "score", "verdict", "threshold", "instances", "why_no_instance")
        lines = [json.dumps({"id": i.id, **{k: done[i.id][k] for k in keys if k in done[i.id]}}, sort_keys=True)
                 for i in items if i.id in done]
        atomic_write_text(out / RESULTS, "".join(line + "\n" for line in lines))


def inspect_items(paths: list[Path]) -> list[WorkItem]:
    """One work item per image path, ids unique as ``segment`` makes them; images from several folders (a
    glob) that share names are told apart by their folders: ``scratch_000``."""
    import os

    from ...errors import SampromptError

    try:
        ids = output_ids(paths)
    except SampromptError:
        base = Path(os.path.commonpath([p.resolve().parent for p in paths]))
        ids = output_ids([Path("_".join(p.resolve().relative_to(base).parts)) for p in paths])
    return [WorkItem(i, str(p), None) for i, p in zip(ids, paths)]
