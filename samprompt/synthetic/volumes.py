"""Seeded CT-like volumes in Hounsfield units with label volumes, as NIfTI files or a DICOM series.

A :class:`Volume` is built in RAS+ (nibabel's convention): the array is indexed
``data[i, j, k]`` with i growing towards the patient's right, j towards anterior
and k towards superior. It is written with one of three affines:

* ``"RAS"``: the array as built, a diagonal affine;
* ``"LPS"``: the first two axes flipped (as DICOM-derived NIfTI files often are);
* ``"oblique"``: the RAS array with an affine rotated 12 degrees about the
  superior axis (a tilted acquisition).

Contents, as in a contrast-enhanced (portal venous) CT: air (-1000 HU) around an
elliptic body of fat (-100) and soft tissue (40), a spine (700), an aorta and a
vena cava as tubes (220, 160), a liver (120) with a round hypodense lesion (45),
two kidneys (190), a spleen (150), Gaussian noise (8 HU). The
label volume numbers each structure as :data:`LABELS` says. Spacing is
anisotropic by default (0.8 x 0.8 x 2.5 mm), as in clinical CT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..outputs import data_writer

LABELS = {1: "liver", 2: "kidney_right", 3: "kidney_left", 4: "spleen", 5: "aorta", 6: "lesion"}
ORIENTATIONS = ("RAS", "LPS", "oblique")


@dataclass(frozen=True)
class Volume:
    """A generated volume: ``data`` (X, Y, Z) int16 HU, ``labels`` (X, Y, Z) uint8, its 4x4 ``affine``."""

    data: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]

    def mask(self, label: int) -> np.ndarray:
        return self.labels == label


def _ellipsoid(grid, centre, radii) -> np.ndarray:
    x, y, z = grid
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1


def _tube(grid, centre_xy, radius) -> np.ndarray:
    x, y, _ = grid
    return (x - centre_xy[0]) ** 2 + (y - centre_xy[1]) ** 2 <= radius**2


def make_volume(
    seed: int,
    shape: tuple[int, int, int] = (96, 96, 40),
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5),
    orientation: str = "RAS",
    noise: float = 8.0,
) -> Volume:
    """A seeded CT-like volume (see the module doc). The same arguments give the same volume anywhere."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    rng = np.random.default_rng(seed)
    sx, sy, sz = shape
    # millimetres of each voxel centre from the volume's centre; +x is the patient's right, -y posterior
    ax = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    grid = np.meshgrid(*ax, indexing="ij")
    ext = [n * s / 2 for n, s in zip(shape, spacing)]  # half extents in mm
    j = lambda scale: 1 + rng.uniform(-scale, scale)  # noqa: E731 - a small random factor

    hu = np.full(shape, -1000.0)
    labels = np.zeros(shape, np.uint8)
    body_r = (ext[0] * 0.85 * j(0.05), ext[1] * 0.7 * j(0.05))
    x, y, _ = grid
    body = (x / body_r[0]) ** 2 + (y / body_r[1]) ** 2 <= 1
    inner = (x / (body_r[0] - 4)) ** 2 + (y / (body_r[1] - 4)) ** 2 <= 1
    hu[body] = -100
    hu[inner] = 40
    spine = _tube(grid, (0, -body_r[1] * 0.62), body_r[1] * 0.16)
    hu[spine] = 700
    zc = lambda f: f * ext[2]  # noqa: E731 - a height as a fraction of the half extent

    def organ(label: int, hu_value: float, centre, radii) -> np.ndarray:
        m = _ellipsoid(grid, centre, radii) & inner & ~spine
        hu[m] = hu_value
        labels[m] = label
        return m

    liver = organ(1, 120, (body_r[0] * 0.38 * j(0.1), body_r[1] * 0.12 * j(0.2), zc(0.25) * j(0.2)),
                  (body_r[0] * 0.42 * j(0.1), body_r[1] * 0.55 * j(0.1), ext[2] * 0.55 * j(0.1)))
    organ(2, 190, (body_r[0] * 0.38, -body_r[1] * 0.45, -zc(0.35) * j(0.2)),
          (body_r[0] * 0.13 * j(0.1), body_r[1] * 0.2 * j(0.1), ext[2] * 0.3 * j(0.1)))
    organ(3, 190, (-body_r[0] * 0.38, -body_r[1] * 0.45, -zc(0.3) * j(0.2)),
          (body_r[0] * 0.13 * j(0.1), body_r[1] * 0.2 * j(0.1), ext[2] * 0.3 * j(0.1)))
    organ(4, 150, (-body_r[0] * 0.55, -body_r[1] * 0.05, zc(0.3) * j(0.2)),
          (body_r[0] * 0.17 * j(0.1), body_r[1] * 0.3 * j(0.1), ext[2] * 0.3 * j(0.1)))
    aorta = _tube(grid, (-body_r[0] * 0.08, -body_r[1] * 0.3), 6.5 * j(0.15)) & inner
    hu[aorta] = 220
    labels[aorta] = 5
    cava = _tube(grid, (body_r[0] * 0.15, -body_r[1] * 0.28), 5.5 * j(0.15)) & inner & ~aorta
    hu[cava] = 160
    labels[cava] = 0
    cand = np.argwhere(liver)
    c = cand[rng.integers(len(cand))]  # one lesion, so that one prompt names it
    r = float(rng.uniform(5, 9))
    lesion = _ellipsoid(grid, [grid[d][tuple(c)] for d in range(3)], (r, r, r)) & liver
    hu[lesion] = 45
    labels[lesion] = 6
    hu += rng.normal(0, noise, shape)
    data = np.clip(np.round(hu), -1024, 3071).astype(np.int16)

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, spacing)]
    if orientation == "LPS":
        data, labels = data[::-1, ::-1].copy(), labels[::-1, ::-1].copy()
        affine = affine @ _flip(shape, (0, 1))
    elif orientation == "oblique":
        t = np.deg2rad(12.0)
        rot = np.eye(4)
        rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
        affine = rot @ affine
    return Volume(data, labels, affine, tuple(float(s) for s in spacing))


def _flip(shape, axes) -> np.ndarray:
    """The index map that reverses ``axes``: voxel i of the flipped array is voxel n - 1 - i of the original."""
    m = np.eye(4)
    for a in axes:
        m[a, a] = -1
        m[a, 3] = shape[a] - 1
    return m


def save_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` as NIfTI with ``affine`` as both qform and sform (code 1, scanner)."""
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    from ..io import atomic_write_bytes, gzip_bytes

    path = Path(path)
    data = img.to_bytes()
    return atomic_write_bytes(path, gzip_bytes(data) if path.suffix == ".gz" else data)


@data_writer
def write_volume_dataset(
    out_dir: str | Path,
    n: int,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] = (96, 96, 40),
    spacing: tuple[float, float, float] = (0.8, 0.8, 2.5),
    orientations: tuple[str, ...] = ORIENTATIONS,
) -> Path:
    """Write ``n`` volumes as ``images/ct_SEED.nii.gz`` + ``masks/ct_SEED.nii.gz`` (label volumes),
    cycling through ``orientations``; ``labels.json`` ({value: name}); and ``prompts.json``, an
    example for ``samprompt medical``: per volume, a key-slice box on each structure's largest slice
    (added to an earlier run's prompts in the same folder)."""
    out = Path(out_dir)
    prompts = {}
    for i in range(seed, seed + n):
        vol = make_volume(i, shape, spacing, orientations[(i - seed) % len(orientations)])
        save_nifti(out / "images" / f"ct_{i:04d}.nii.gz", vol.data, vol.affine)
        save_nifti(out / "masks" / f"ct_{i:04d}.nii.gz", vol.labels, vol.affine)
        objects = []
        for label, name in LABELS.items():
            m = vol.labels == label
            if m.any():
                k = int(m.sum(axis=(0, 1)).argmax())
                ii, jj = np.nonzero(m[:, :, k])
                objects.append({"label": label, "name": name,
                                "box": [int(ii.min()), int(jj.min()), int(ii.max()), int(jj.max())], "slice": k})
        prompts[f"ct_{i:04d}"] = {"objects": objects}
    from ..io import atomic_write_text

    atomic_write_text(out / "labels.json", json.dumps({str(k): v for k, v in LABELS.items()}, indent=1) + "\n")
    atomic_write_text(out / "prompts.json", json.dumps({**_earlier(out / "prompts.json"), **prompts}, indent=1) + "\n")
    return out


def _earlier(path: Path) -> dict:
    """What an earlier run wrote into a file this one adds to (more volumes into the same folder keep theirs)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


@data_writer
def write_dicom_series(
    folder: str | Path, data: np.ndarray, affine: np.ndarray, *, modality: str = "CT", seed: int = 0,
    series_description: str = "samprompt synthetic",
) -> Path:
    """Write an (X, Y, Z) volume (RAS affine, as nibabel's) as one DICOM file per slice, with pydicom.

    Pixel (column c, row r) of slice k is ``data[c, r, k]``; positions and
    orientation are the affine's, in DICOM's LPS; CT values are stored with
    RescaleIntercept -1024.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
    from pydicom.valuerep import DSfloat

    from ..io import atomic_path

    def ds_values(values):  # decimal strings that fit DICOM's 16 characters
        return [DSfloat(float(v), auto_format=True) for v in values]

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    col_step, row_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    dx, dy, dz = (float(np.linalg.norm(v)) for v in (col_step, row_step, slice_step))
    normal = np.cross(col_step / dx, row_step / dy)
    if float(np.dot(normal, slice_step)) < 0:
        raise ValueError("the slice axis points against the row x column normal; flip the volume's third axis")
    rng = np.random.default_rng(seed)
    uid_root = "1.2.826.0.1.3680043.8.498."
    study, series, frame = (generate_uid(uid_root, [f"{seed}-{t}-{rng.integers(1 << 30)}"]) for t in "abc")
    intercept = -1024.0 if modality == "CT" else 0.0
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    for k in range(data.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid(uid_root, [f"{series}-{k}"])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"slice_{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = modality
        ds.PatientName, ds.PatientID = "Synthetic^Volume", f"SYN{seed:04d}"
        ds.SeriesDescription = series_description
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImagePositionPatient = ds_values(lps[:3, :3] @ [0, 0, k] + lps[:3, 3])
        ds.ImageOrientationPatient = ds_values((*(col_step / dx), *(row_step / dy)))
        ds.PixelSpacing = ds_values([dy, dx])  # row spacing (between rows), column spacing
        ds.SliceThickness = ds_values([dz])[0]
        ds.Rows, ds.Columns = data.shape[1], data.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1.0
        stored = np.clip(np.round(data[:, :, k].T - intercept), 0, 65535).astype(np.uint16)
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        with atomic_path(folder / f"slice_{k:04d}.dcm") as tmp:
            pydicom.dcmwrite(str(tmp), ds, enforce_file_format=True)
    return folder


@data_writer
def write_slice_dataset(out_dir: str | Path, n: int, *, seed: int = 0, every: int = 2,
                        shape: tuple[int, int, int] = (96, 96, 40)) -> Path:
    """Axial slices of ``n`` generated volumes as a 2D labelled folder (``images/`` PNG in the soft-tissue
    window, ``masks/`` one instance per structure), every ``every``-th slice that holds a structure:
    training data for ``samprompt tune`` on CT."""
    from ..io import write_image
    from ..normalize import Window

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    window = Window.from_level(400, 40)
    for i in range(seed, seed + n):
        vol = make_volume(i, shape)
        for k in range(0, shape[2], every):
            lab = vol.labels[:, :, k].T
            if not lab.any():
                continue
            inst = np.zeros(lab.shape, np.uint8)
            for j, v in enumerate(np.unique(lab[lab > 0]), 1):
                inst[lab == v] = j
            write_image(out / "images" / f"ct_{i:04d}_{k:03d}.png", window(vol.data[:, :, k].T))
            write_image(out / "masks" / f"ct_{i:04d}_{k:03d}.png", inst)
    return out


__all__ = ["LABELS", "ORIENTATIONS", "Volume", "make_volume", "save_nifti", "write_dicom_series",
           "write_slice_dataset", "write_volume_dataset"]
