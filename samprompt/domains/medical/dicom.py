"""DICOM studies as hospitals export them: discovery of every series in any input, and volumes built with
their true geometry or refused with the reason.

:func:`discover` takes a file, a series folder, a folder tree of any depth, a folder
with a ``DICOMDIR`` (the tree under it is walked; the DICOMDIR itself is an index) or a
``.zip`` (read member by member, never unpacked to disk). Every readable DICOM file is
sorted into series:

* by ``SeriesInstanceUID``; where an anonymiser removed it, by frame of reference,
  orientation, pixel spacing, size and folder (the series then says it was grouped so);
* objects that are not images (SEG, RTSTRUCT, SR, PR, KO, RT plans and doses, files
  without pixel data) are skipped with a note;
* inside a series, slices of another orientation or size (a localizer, a scout) are
  split off into a series of their own, never mixed in;
* an enhanced multi-frame file (one file, many frames with a per-frame position) is a
  series by itself.

:func:`build_volume` stacks a series along its slice normal and checks the geometry
before anything is segmented: duplicate positions of the same instance are dropped;
positions that repeat with other pixels, uneven spacing, gantry tilt and gaps are
refused with the reason. A file that failed to read beside the series is named in the
refusal, since it may be the missing slice. With ``allow_gaps`` a gap (spacing a whole
multiple of the usual one) is kept on the true grid: the missing slices are filled with
the volume's minimum and listed, so prompts on them can be refused.

Pixels are decoded by pydicom and its plugins (``pylibjpeg`` with libjpeg, OpenJPEG and
RLE: JPEG baseline and lossless, JPEG-LS, JPEG 2000, RLE); stored values are rescaled with
``RescaleSlope``/``RescaleIntercept``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ImageError, require

NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "SR", "PR", "KO", "RTPLAN", "RTDOSE", "RTRECORD", "REG", "DOC"}
ORIENTATION_TOL = 1e-3  # direction cosines that differ less are the same orientation
SPACING_TOL = 0.01  # a relative difference in slice spacing below this is even


@dataclass
class Source:
    """Where one DICOM file's bytes are: a path, or a member of a zip archive."""

    path: str
    member: str | None = None

    def read(self, stop_before_pixels: bool = False):
        pydicom = require("pydicom", "medical")
        if self.member is None:
            return pydicom.dcmread(self.path, stop_before_pixels=stop_before_pixels)
        with zipfile.ZipFile(self.path) as zf:
            return pydicom.dcmread(io.BytesIO(zf.read(self.member)), stop_before_pixels=stop_before_pixels)

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path


@dataclass
class Slice:
    source: Source
    sop_uid: str
    position: np.ndarray | None  # ImagePositionPatient (LPS mm)
    orientation: np.ndarray | None  # ImageOrientationPatient, 6 cosines
    spacing: tuple[float, float] | None  # PixelSpacing (row, column) mm
    size: tuple[int, int]  # (Rows, Columns)
    instance: int | None
    localizer: bool
    frame: int | None = None  # the frame of a multi-frame file


@dataclass
class Series:
    """One series found by :func:`discover`: its slices, its name and what discovery noted about it."""

    key: str
    slices: list[Slice]
    tags: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    name: str = ""
    folder: str = ""

    @property
    def size(self) -> int:
        return len(self.slices)

    def describe(self) -> str:
        t = self.tags
        what = " ".join(str(v) for v in (t.get("Modality"), t.get("SeriesDescription")) if v)
        return f"{self.name}: {what or 'series'}, {self.size} slice(s)" + (
            f" ({'; '.join(self.notes)})" if self.notes else "")


@dataclass
class Discovery:
    """Every series found in an input, the files skipped (with why) and the files that failed to read."""

    series: list[Series]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _sources(root: Path) -> list[Source]:
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as zf:
            return [Source(str(root), n) for n in sorted(zf.namelist()) if not n.endswith("/")
                    and not Path(n).name.startswith(".")]
    if root.is_file():
        return [Source(str(root))]
    if not root.is_dir():
        raise ImageError(f"no such file or folder: {root}")
    return [Source(str(p)) for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _frames(ds) -> list[tuple[np.ndarray | None, np.ndarray | None, tuple | None]]:
    """(position, orientation, spacing) per frame of an enhanced multi-frame image."""
    shared = getattr(ds, "SharedFunctionalGroupsSequence", [None])[0]
    out = []
    for fg in ds.PerFrameFunctionalGroupsSequence:
        def get(seq, attr, n):
            for holder in (fg, shared):
                if holder is not None and seq in holder and getattr(holder, seq):
                    item = getattr(holder, seq)[0]
                    if attr in item:
                        return _floats(getattr(item, attr), n)
            return None
        px = get("PixelMeasuresSequence", "PixelSpacing", 2)
        out.append((get("PlanePositionSequence", "ImagePositionPatient", 3),
                    get("PlaneOrientationSequence", "ImageOrientationPatient", 6),
                    tuple(px) if px is not None else None))
    return out


TAGS = ("PatientID", "PatientName", "StudyInstanceUID", "StudyDescription", "SeriesDescription", "SeriesNumber",
        "Modality", "FrameOfReferenceUID", "StudyDate", "SeriesInstanceUID")


def discover(input_path: str | Path) -> Discovery:
    """Every series in ``input_path`` (see the module doc)."""
    require("pydicom", "medical")
    from pydicom.errors import InvalidDicomError

    root = Path(input_path)
    found = Discovery([])
    groups: dict[tuple, Series] = {}
    for src in _sources(root):
        name = Path(src.member or src.path).name
        if name.upper().startswith("DICOMDIR"):
            found.skipped.append((str(src), "a DICOMDIR index (its folders are read instead)"))
            continue
        try:
            ds = src.read(stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError, TypeError):
            found.unreadable.append(str(src))
            continue
        modality = str(ds.get("Modality", "") or "")
        if modality in NON_IMAGE_MODALITIES or "PixelData" not in ds and "Rows" not in ds:
            found.skipped.append((str(src), f"not an image ({modality or ds.get('SOPClassUID', 'no pixel data')})"))
            continue
        if "Rows" not in ds or "Columns" not in ds:
            found.skipped.append((str(src), "no image size (Rows, Columns)"))
            continue
        tags = {k: str(ds.get(k, "") or "") for k in TAGS}
        size = (int(ds.Rows), int(ds.Columns))
        image_type = [str(v).upper() for v in ds.get("ImageType", [])]
        localizer = "LOCALIZER" in image_type or "SCOUT" in image_type
        folder = str(Path(src.member).parent) if src.member else str(Path(src.path).parent)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1 and "PerFrameFunctionalGroupsSequence" in ds:
            slices = [Slice(src, str(ds.get("SOPInstanceUID", "")), pos, ori, sp, size, k + 1, localizer, frame=k)
                      for k, (pos, ori, sp) in enumerate(_frames(ds))]
            key = ("multiframe", str(src))
        else:
            pos = _floats(ds.get("ImagePositionPatient"), 3)
            ori = _floats(ds.get("ImageOrientationPatient"), 6)
            sp = _floats(ds.get("PixelSpacing"), 2)
            inst = ds.get("InstanceNumber")
            slices = [Slice(src, str(ds.get("SOPInstanceUID", "")), pos, ori, tuple(sp) if sp is not None else None,
                            size, int(inst) if inst not in (None, "") else None, localizer)]
            uid = tags["SeriesInstanceUID"]
            if uid:
                key = ("uid", uid)
            else:  # anonymised: group by what a series shares
                key = ("nouid", tags["FrameOfReferenceUID"], tags["StudyInstanceUID"], tags["SeriesNumber"],
                       tags["Modality"], folder)
        series = groups.get(key)
        if series is None:
            series = groups[key] = Series("|".join(key), [], tags, folder=folder)
            if key[0] == "nouid":
                series.notes.append("no SeriesInstanceUID: grouped by frame of reference, study, series number, "
                                    "modality and folder")
            elif key[0] == "multiframe":
                series.notes.append(f"one multi-frame file of {frames} frames")
        series.slices.extend(slices)
    for series in groups.values():
        found.series.extend(_split(series))
    _name(found.series)
    return found


def _geometry_key(s: Slice) -> tuple:
    ori = tuple(np.round(s.orientation / ORIENTATION_TOL).astype(int)) if s.orientation is not None else None
    return (ori, s.size, None if s.spacing is None else tuple(np.round(np.array(s.spacing), 4)), s.localizer)


def _split(series: Series) -> list[Series]:
    """A series whose slices differ in orientation, size or pixel spacing (a localizer inside) -> one series per
    geometry, the largest keeping the name; each split-off one says so."""
    by: dict[tuple, list[Slice]] = defaultdict(list)
    for s in series.slices:
        by[_geometry_key(s)].append(s)
    if len(by) == 1:
        return [series]
    parts = sorted(by.values(), key=len, reverse=True)
    main = Series(series.key, parts[0], series.tags, list(series.notes), folder=series.folder)
    main.notes.append(f"{sum(map(len, parts[1:]))} slice(s) of another orientation, size or spacing split off")
    out = [main]
    for k, p in enumerate(parts[1:], 1):
        kind = "localizer" if p[0].localizer else "another geometry"
        out.append(Series(f"{series.key}|part{k}", p, series.tags, [f"split off its series: {kind}"],
                          folder=series.folder))
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60]


def _name(series: list[Series]) -> None:
    """Names from the tags (patient, study, series description or number), safe for file names and unique."""
    used: dict[str, int] = {}
    for s in series:
        t = s.tags
        parts = [t.get("PatientID") or "", t.get("StudyDescription") or t.get("StudyDate") or "",
                 t.get("SeriesDescription") or (f"series{t['SeriesNumber']}" if t.get("SeriesNumber") else "")]
        base = "_".join(p for p in (_safe(x) for x in parts) if p) or _safe(Path(s.folder).name) or "series"
        if s.key.endswith(tuple(f"|part{k}" for k in range(1, 10))):
            base += "_" + s.key.rsplit("|", 1)[1]
        n = used.get(base, 0)
        used[base] = n + 1
        s.name = base if n == 0 else f"{base}_{n + 1}"


# --------------------------------------------------------------------------- volumes
@dataclass
class SeriesVolume:
    """A series stacked on its true grid: ``data`` (columns, rows, slices) float32 in the file's order,
    ``affine`` voxel -> RAS mm, the slices each plane came from (None where a gap was filled) and notes."""

    data: np.ndarray
    affine: np.ndarray
    sources: list[str | None]
    missing: list[int]
    notes: list[str]
    modality: str | None


def _pixels(ds, frame: int | None) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as exc:  # a decoder missing or failing names itself
        raise ImageError(f"cannot decode the pixels ({ds.file_meta.TransferSyntaxUID.name}): {exc}") from None
    if frame is not None:
        arr = arr[frame]
    if arr.ndim != 2:
        raise ImageError(f"pixel data of shape {arr.shape}: a grey slice is (rows, columns)")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return arr.astype(np.float32) * slope + intercept


def ordered_slices(series: Series) -> list[Slice]:
    """The series' slices without repeated instances, sorted along the slice normal: the order in which
    :func:`build_volume` stacks them and the DICOM writers reference them."""
    uniq: dict[str, Slice] = {}
    for s in series.slices:
        uniq.setdefault(f"{s.sop_uid or s.source}#{s.frame}", s)  # a multi-frame file's frames share one instance
    ori = series.slices[0].orientation
    normal = np.cross(ori[:3], ori[3:])
    return sorted(uniq.values(), key=lambda s: float(s.position @ normal))


def content_uid(*parts) -> str:
    """A UID derived from ``parts``: the same result of the same series gets the same UID, so a rerun rewrites the
    same bytes and a viewer replaces, rather than duplicates, a re-exported object."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in parts])


def geometry_problem(series: Series, unreadable=(), allow_gaps: bool = False) -> str | None:
    """Why :func:`build_volume` would refuse ``series`` on its geometry alone (no pixels read), or None."""
    try:
        build_volume(series, list(unreadable), allow_gaps, pixels=False)
    except ImageError as exc:
        return str(exc)
    return None


def build_volume(series: Series, unreadable: list[str] = (), allow_gaps: bool = False,
                 pixels: bool = True) -> SeriesVolume | None:
    """Stack ``series`` along its normal with the checks of the module doc; ``unreadable``: files that failed to
    read in the same input (named when a gap may be one of them)."""
    sl = series.slices
    if any(s.position is None or s.orientation is None for s in sl):
        raise ImageError("slices without ImagePositionPatient or ImageOrientationPatient cannot be "
                         "placed in space")
    if len(sl) < 2:
        raise ImageError("one slice; a volume needs a series of at least two")
    spacing = sl[0].spacing
    if spacing is None:
        raise ImageError("no PixelSpacing")
    ori = sl[0].orientation
    row_dir, col_dir = ori[:3], ori[3:]
    normal = np.cross(row_dir, col_dir)
    notes: list[str] = []
    # duplicates: the same instance twice is dropped; the same position with another instance is refused below
    sl = ordered_slices(series)
    if len(sl) < len(series.slices):
        notes.append(f"{len(series.slices) - len(sl)} duplicate file(s) of the same instance dropped")
    if len(sl) < 2:
        raise ImageError(f"one slice (and {len(series.slices) - 1} duplicate(s)); a volume needs two")
    z = np.array([float(s.position @ normal) for s in sl])
    dz = np.diff(z)
    if (np.abs(dz) < 1e-3).any():
        k = int(np.argmax(np.abs(dz) < 1e-3))
        raise ImageError(f"two slices at the same position ({sl[k].source} and {sl[k + 1].source}); "
                         "a series with repeated positions (several phases or echoes?) needs splitting first")
    step = float(np.median(dz))
    # gantry tilt: the positions move off the normal
    along = sl[-1].position - sl[0].position
    tilt = np.degrees(np.arccos(min(1.0, abs(float(along @ normal)) / max(np.linalg.norm(along), 1e-9))))
    if tilt > 0.5:
        raise ImageError(f"the slices are sheared by a gantry tilt of {tilt:.1f} degrees; resample "
                         "it to an orthogonal grid first (dcm2niix does), samprompt does not")
    ratio = dz / step
    whole = np.round(ratio)
    if (np.abs(ratio - whole) > SPACING_TOL * np.maximum(whole, 1)).any() or (whole < 1).any():
        raise ImageError(f"uneven slice spacing ({dz.min():.3f} to {dz.max():.3f} mm); a volume "
                         "needs one spacing")
    gaps = [(k, int(w) - 1) for k, w in enumerate(whole) if w > 1]
    missing: list[int] = []
    sources: list[str | None] = []
    index = 0
    for k, s in enumerate(sl):
        sources.append(str(s.source))
        index += 1
        for g_at, n in gaps:
            if g_at == k:
                missing.extend(range(index, index + n))
                sources.extend([None] * n)
                index += n
    if gaps:
        where = "; ".join(f"{n} slice(s) missing after z = {z[k]:.2f} mm" for k, n in gaps)
        near = [u for u in unreadable if str(Path(u).parent) == series.folder]  # beside the series' files
        named = f"; unreadable file(s) beside it, perhaps the missing slice(s): {', '.join(near[:3])}" if near else ""
        if not allow_gaps:
            raise ImageError(f"a gap in the slice positions ({where}){named}; the volume would "
                             "have the wrong geometry. --allow-gaps keeps the true grid with those slices empty")
        notes.append(f"gap kept on the true grid: {where}")
    if not pixels:
        return None
    planes = []
    by_source: dict[str, object] = {}
    for s in sl:
        key = str(s.source)
        ds = by_source.get(key)
        if ds is None:
            try:
                ds = s.source.read()
            except Exception as exc:
                raise ImageError(f"cannot read {s.source}: {exc}") from None
            if s.frame is None:
                by_source.clear()
            by_source[key] = ds
        img = _pixels(ds, s.frame)
        if img.shape != sl[0].size:
            raise ImageError(f"{s.source} is {img.shape[1]}x{img.shape[0]}, the series "
                             f"{sl[0].size[1]}x{sl[0].size[0]}")
        planes.append(img.T)  # (columns, rows): i along a row, j down the columns
    fill = float(min(p.min() for p in planes))
    stack = []
    it = iter(planes)
    for src in sources:
        stack.append(next(it) if src is not None else np.full_like(planes[0], fill))
    data = np.stack(stack, axis=2).astype(np.float32)
    dr, dc = spacing  # PixelSpacing: (between rows, between columns)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = normal * step
    lps[:3, 3] = sl[0].position
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
    return SeriesVolume(data, affine, sources, missing, notes, series.tags.get("Modality") or None)
