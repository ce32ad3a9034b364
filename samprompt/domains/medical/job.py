"""Batch segmentation of volumes on the jobs engine: inputs, work items and the volume job.

INPUT is a NIfTI file, a DICOM series folder, a folder of both (``*.nii``,
``*.nii.gz`` and sub-folders that hold DICOM files), or a MONAI/MSD datalist
JSON (``{"training": [{"image": ...}, ...], "test": [...]}``, paths relative to
the JSON). Each volume is one :class:`~samprompt.jobs.WorkItem` whose id is its
NAME; it writes ``OUT/NAME_seg.nii.gz``, and its manifest line lists its
objects, the window chosen and the counts of encoder passes and decoded slices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import SampromptError
from ...jobs.items import WorkItem
from ...jobs.worker import JobSettings, compute_timed, write_timed
from .intensity import choose_window
from .prompts import VolumeObject, read_volume_prompts
from .propagate import PropagationSettings, segment_volume
from .volume import is_nifti, load_volume, save_segmentation, volume_name


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _is_series_folder(path: Path) -> bool:
    return path.is_dir() and any(_is_dicom_file(f) for f in sorted(path.iterdir())[:50] if f.is_file())


def _datalist(path: Path) -> list[Path]:
    from ...prompts import read_json

    doc = read_json(path)
    entries = []
    if isinstance(doc, list):
        sections = [doc]
    elif isinstance(doc, dict):
        sections = [v for v in doc.values() if isinstance(v, list)]  # "training", "validation", "test", ...
    else:
        sections = []
    for sec in sections:
        for e in sec:
            img = e.get("image") if isinstance(e, dict) else e
            if isinstance(img, str):
                entries.append((path.parent / img).resolve() if not Path(img).is_absolute() else Path(img))
    if not entries:
        raise SampromptError(f"{path} lists no images (a MONAI datalist has lists of {{\"image\": PATH}} entries)")
    return list(dict.fromkeys(entries))


def find_volumes(source: str | Path) -> list[Path]:
    """The volumes of INPUT (see the module doc), sorted; an error when there are none."""
    src = Path(source)
    if not src.exists():
        raise SampromptError(f"no such file or folder: {src}")
    if src.is_file():
        if src.suffix.lower() == ".json":
            return _datalist(src)
        return [src]
    if _is_series_folder(src):
        return [src]
    found = [p for p in sorted(src.iterdir()) if (p.is_file() and is_nifti(p)) or _is_series_folder(p)]
    if not found:
        raise SampromptError(f"no volumes in {src} (looked for .nii, .nii.gz and folders of DICOM files)")
    return found


def volume_items(source: str | Path, prompts: str | Path | None) -> list[WorkItem]:
    """One work item per volume of ``source``, with its objects from the prompts file (``[]`` when none)."""
    paths = find_volumes(source)
    names = [volume_name(p) for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SampromptError(f"two inputs are both named {dupes[0]!r} (e.g. a.nii and a.nii.gz); rename one")
    per_name = read_volume_prompts(prompts, names) if prompts is not None else {n: [] for n in names}
    return [WorkItem(n, str(p), per_name[n]) for n, p in zip(names, paths)]


@dataclass
class VolumeResult:
    labels: object
    volume: object


@dataclass
class VolumeJob(JobSettings):
    """A job over volumes: ``window`` (``auto``, ``mr``, a CT preset or ``W,L``) and the propagation settings."""

    unit = "volume"

    window: str = "auto"
    propagation: PropagationSettings = field(default_factory=PropagationSettings)

    def prompts_json(self, item: WorkItem):
        return [o.to_json() for o in item.prompts or []]

    def planned_outputs(self, item: WorkItem, out: Path) -> list[Path]:
        return [out / f"{item.id}_seg.nii.gz"]

    def job_outputs(self, out: Path) -> list[Path]:
        return [out / "labels.json"]

    def compute(self, seg, item: WorkItem):
        return compute_timed(seg, item, lambda rec: self._compute(seg, item, rec))

    def _compute(self, seg, item: WorkItem, rec: dict):
        vol = load_volume(item.input)
        window, why = choose_window(vol.data, self.window, vol.modality)
        objects: list[VolumeObject] = list(item.prompts or [])
        res = segment_volume(seg, vol, objects, window, self.propagation)
        rec.update(n_masks=len(objects), window=why, objects=res.objects, encoder_passes=res.encoder_passes,
                   decoded_slices=res.decoded_slices, shape=list(vol.file_shape),
                   spacing=[round(s, 4) for s in vol.spacing])
        empty = [o["label"] for o in res.objects if not o["voxels"]]
        if empty:
            rec["warning"] = f"objects with label {empty} came out empty"
        return VolumeResult(res.labels, vol)

    def write(self, rec: dict, result, item: WorkItem, out: Path) -> dict:
        return write_timed(rec, result, out, lambda: [
            save_segmentation(out / f"{item.id}_seg.nii.gz", result.labels, result.volume)])

    def finalize(self, out: Path, items: list[WorkItem], done: dict[str, dict]) -> None:
        """``OUT/labels.json``: each output label's name where the prompts gave one."""
        names = {}
        for item in items:
            for o in item.prompts or []:
                if o.name:
                    names.setdefault(str(o.label), o.name)
        if names:
            from ...io import atomic_write_text

            atomic_write_text(out / "labels.json", json.dumps(names, indent=1, sort_keys=True) + "\n")


__all__ = ["VolumeJob", "find_volumes", "volume_items"]
