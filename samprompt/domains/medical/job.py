"""Batch segmentation of volumes on the jobs engine: inputs, work items and the volume job.

INPUT is a NIfTI file, DICOM in any form (a file, a series folder, a study tree of
any depth, a folder with a DICOMDIR, a zip: every series is found, see
:mod:`.dicom`), a folder of NIfTI files and DICOM, or a MONAI/MSD datalist JSON
(``{"training": [{"image": ...}, ...], "test": [...]}``, paths relative to the
JSON). Each volume is one :class:`~samprompt.jobs.WorkItem` whose id is its NAME:
a NIfTI file's stem; a DICOM series' folder name when the folder holds that
series alone, else a name from its tags. It writes ``OUT/NAME_seg.nii.gz``, and
its manifest line lists its objects, the window chosen and the counts of encoder
passes and decoded slices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2

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
    """The NIfTI volumes and DICOM inputs of INPUT (see the module doc), sorted; an error when there are none."""
    src = Path(source)
    if not src.exists():
        raise SampromptError(f"no such file or folder: {src}")
    if src.is_file():
        if src.suffix.lower() == ".json":
            return _datalist(src)
        return [src]
    nifti = [p for p in sorted(src.iterdir()) if p.is_file() and is_nifti(p)]
    if nifti and not any(_is_dicom_file(f) for f in src.rglob("*") if f.is_file() and not is_nifti(f)):
        return nifti
    return nifti + [src]  # the DICOM of the tree: discovered series by series


@dataclass
class FoundVolume:
    """One volume of INPUT: its name, the path it is read from and, for DICOM, its series."""

    name: str
    path: Path
    series: object | None = None
    unreadable: list[str] = field(default_factory=list)


def discover_volumes(source: str | Path) -> tuple[list[FoundVolume], list[tuple[str, str]]]:
    """(the volumes of INPUT, [(what, why)] for what was skipped); DICOM inputs are discovered (see the module
    doc). An error when nothing is found."""
    from .dicom import discover

    found: list[FoundVolume] = []
    skipped: list[tuple[str, str]] = []
    for path in find_volumes(source):
        if is_nifti(path):
            found.append(FoundVolume(volume_name(path), path))
            continue
        d = discover(path)
        skipped += d.skipped
        skipped += [(u, "not DICOM (unreadable)") for u in d.unreadable if not is_nifti(u)
                    and Path(u).suffix.lower() not in (".json", ".txt", ".md", ".png", ".jpg", ".csv")]
        per_folder: dict[str, int] = {}
        for s in d.series:
            per_folder[s.folder] = per_folder.get(s.folder, 0) + 1
        for s in d.series:
            name = s.name
            if per_folder[s.folder] == 1 and Path(s.folder).name and "|part" not in s.key:
                name = Path(s.folder).name  # a series alone in its folder keeps the folder's name
            folder = path if s.slices[0].source.member else Path(s.folder)  # a zip's series are read from the zip
            s.name = name  # messages about the series use the name the run gives it
            found.append(FoundVolume(name, folder, s, d.unreadable))
    if not found:
        from ...images import IMAGE_SUFFIXES

        if Path(source).is_file() and Path(source).suffix.lower() in IMAGE_SUFFIXES:
            raise SampromptError(f"{source} is a 2D image, not a volume (NIfTI or a DICOM series): "
                                 "samprompt segment takes images")
        raise SampromptError(f"no volumes in {source} (looked for .nii, .nii.gz and DICOM image series)")
    names = [f.name for f in found]
    for k, f in enumerate(found):  # unique names
        if names.count(f.name) > 1 and names[:k].count(f.name):
            f.name = f"{f.name}_{names[:k].count(f.name) + 1}"
            if f.series is not None:
                f.series.name = f.name
    return found, skipped


def volume_items(source: str | Path, prompts: str | Path | None) -> list[WorkItem]:
    """One work item per volume of ``source``, with its objects from the prompts file (``[]`` when none)."""
    found, _ = discover_volumes(source)
    names = [f.name for f in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SampromptError(f"two inputs are both named {dupes[0]!r} (e.g. a.nii and a.nii.gz); rename one")
    per_name = read_volume_prompts(prompts, names) if prompts is not None else {n: [] for n in names}
    return [WorkItem(f.name, str(f.path), per_name[f.name],
                     meta={"series": f.series, "unreadable": f.unreadable} if f.series is not None else {})
            for f in found]


@dataclass
class VolumeResult:
    labels: object
    volume: object
    preview: object = None  # the three-plane picture (preview.py), RGB


@dataclass
class VolumeJob(JobSettings):
    """A job over volumes: ``window`` (``auto``, ``mr``, a CT preset or ``W,L``) and the propagation settings."""

    unit = "volume"

    window: str = "auto"
    propagation: PropagationSettings = field(default_factory=PropagationSettings)
    allow_gaps: bool = False  # DICOM: keep a series with missing slices on its true grid
    formats: list[str] = field(default_factory=lambda: ["nifti"])  # nifti, dicom-seg, rtstruct (DICOM inputs only)
    labels: dict = field(default_factory=dict)  # a labels file's {"1": {"name", "color"}} (labels.py)

    def prompts_json(self, item: WorkItem):
        return [o.to_json() for o in item.prompts or []]

    def planned_outputs(self, item: WorkItem, out: Path) -> list[Path]:
        nifti = [out / f"{item.id}_seg.nii.gz"] if "nifti" in self.formats else []
        return [out / f"{item.id}_preview.png", *nifti] + (
            [out / item.id / "seg.dcm"] if "dicom-seg" in self.formats else []) + (
            [out / item.id / "rtstruct.dcm"] if "rtstruct" in self.formats else [])

    def job_outputs(self, out: Path) -> list[Path]:
        return [out / "labels.json"]

    def compute(self, seg, item: WorkItem):
        return compute_timed(seg, item, lambda rec: self._compute(seg, item, rec))

    def _compute(self, seg, item: WorkItem, rec: dict):
        vol = load_volume(item.input, item.meta.get("series"), item.meta.get("unreadable", ()), self.allow_gaps)
        window, why = choose_window(vol.data, self.window, vol.modality)
        objects: list[VolumeObject] = list(item.prompts or [])
        if vol.missing:
            rec["missing_slices"] = vol.missing
            on_gap = [o.label for o in objects if o.slice is not None and o.axis == 2 and o.slice in vol.missing]
            if on_gap:
                raise SampromptError(f"the prompts of label(s) {on_gap} lie on slices missing from the series "
                                     f"({vol.missing}); move them to a slice that exists")
        if vol.notes:
            rec["notes"] = vol.notes
        res = segment_volume(seg, vol, objects, window, self.propagation)
        rec.update(n_masks=len(objects), window=why, objects=res.objects, encoder_passes=res.encoder_passes,
                   decoded_slices=res.decoded_slices, shape=list(vol.file_shape),
                   spacing=[round(s, 4) for s in vol.spacing])
        empty = [o["label"] for o in res.objects if not o["voxels"]]
        if empty:
            rec["warning"] = f"objects with label {empty} came out empty"
        from .preview import three_plane_preview

        return VolumeResult(res.labels, vol, three_plane_preview(window(vol.data), res.labels, vol.spacing))

    def write(self, rec: dict, result, item: WorkItem, out: Path) -> dict:
        def files() -> list[Path]:
            from ...io import atomic_write_bytes

            ok, png = cv2.imencode(".png", result.preview[..., ::-1])
            written = [atomic_write_bytes(out / f"{item.id}_preview.png", png.tobytes())] if ok else []
            if "nifti" in self.formats:
                written.append(save_segmentation(out / f"{item.id}_seg.nii.gz", result.labels, result.volume))
            vol = result.volume
            names = self.label_names(item.prompts)
            sources = [None if k in vol.missing else "" for k in range(vol.file_shape[2])]
            if "dicom-seg" in self.formats:
                from .dicom_seg import write_dicom_seg

                written.append(write_dicom_seg(out / item.id / "seg.dcm", vol.to_file_order(result.labels),
                                               item.meta["series"], names, rec.get("model_id", ""), sources))
            if "rtstruct" in self.formats:
                from .rtstruct import write_rtstruct

                colors = {int(k): v["color"] for k, v in self.labels.items() if v.get("color")}
                written.append(write_rtstruct(out / item.id / "rtstruct.dcm", vol.to_file_order(result.labels),
                                              item.meta["series"], names, rec.get("model_id", ""), sources, colors))
            return written

        return write_timed(rec, result, out, files)

    def label_names(self, prompts) -> dict[int, str]:
        """Each label's name: the labels file's, else the prompts'."""
        names = {int(o.label): o.name for o in prompts or [] if o.name}
        names.update({int(k): v["name"] for k, v in self.labels.items()})
        return names

    def finalize(self, out: Path, items: list[WorkItem], done: dict[str, dict]) -> None:
        """``OUT/labels.json``: each output label's name (the labels file's, else the prompts')."""
        names = {}
        for item in items:
            for label, name in self.label_names(item.prompts).items():
                names.setdefault(str(label), name)
        if names:
            from ...io import atomic_write_text

            atomic_write_text(out / "labels.json", json.dumps(names, indent=1, sort_keys=True) + "\n")


__all__ = ["VolumeJob", "find_volumes", "volume_items"]
