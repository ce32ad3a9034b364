"""Reading CT/MR volumes with MONAI, working in RAS, and writing label volumes back on the source's grid.

:func:`load_volume` reads a NIfTI file (``.nii``, ``.nii.gz``; MONAI's
``NibabelReader``) or a folder holding one DICOM series (``PydicomReader``,
which sorts the slices along the slice normal and gives the affine in RAS),
then reorients the array to RAS with MONAI's ``Orientation``. The
:class:`MedicalVolume` keeps both grids: the file's own (array order as the
reader gives it, its affine) and the RAS working copy, and maps voxel indices
and arrays between them. :func:`save_segmentation` writes a label volume on the
file's grid with the file's affine and its qform/sform codes.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ImageError, require

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def volume_name(path: str | Path) -> str:
    """NAME of ``NAME.nii.gz``, ``NAME.nii`` or a series folder ``NAME/``."""
    p = Path(path)
    name = p.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass
class MedicalVolume:
    """A volume in RAS for segmenting, and what is needed to write results back on its own grid.

    ``data``: (X, Y, Z) float32 in RAS+ order (x to the patient's right, y anterior,
    z superior); ``affine``: its 4x4 voxel-to-world (RAS mm) matrix; ``spacing``:
    its voxel size in mm. ``file_affine`` and ``file_shape``: the source's grid as
    the reader gives it (world in RAS mm too). ``modality``: ``"CT"``, ``"MR"``, ...
    from DICOM, else None. ``header``: a NIfTI source's header (its qform/sform codes).
    """

    name: str
    source: str
    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    file_affine: np.ndarray
    file_shape: tuple[int, int, int]
    modality: str | None = None
    header: object | None = field(default=None, repr=False)
    missing: list[int] = field(default_factory=list)  # file-order slice indices that a gap left empty (DICOM)
    notes: list[str] = field(default_factory=list)  # what loading noted (DICOM: duplicates dropped, gaps kept)
    series: object | None = field(default=None, repr=False)  # the DICOM series it was stacked from (for SEG)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def _index_map(self) -> np.ndarray:
        """4x4 map from file voxel indices to RAS-array voxel indices (a signed permutation)."""
        return np.linalg.inv(self.affine) @ self.file_affine

    def file_to_ras(self, ijk) -> np.ndarray:
        """File voxel indices (..., 3) -> RAS-array voxel indices (continuous, voxel centres at integers)."""
        p = np.asarray(ijk, np.float64)
        m = self._index_map
        return p @ m[:3, :3].T + m[:3, 3]

    def world_to_ras(self, xyz) -> np.ndarray:
        """World RAS millimetres (..., 3) -> RAS-array voxel indices (continuous)."""
        p = np.asarray(xyz, np.float64)
        inv = np.linalg.inv(self.affine)
        return p @ inv[:3, :3].T + inv[:3, 3]

    def ras_axis_of(self, file_axis: int) -> int:
        """The RAS-array axis that a file axis became."""
        return int(np.argmax(np.abs(self._index_map[:3, file_axis])))

    def _axes(self) -> tuple[list[int], tuple[int, ...]]:
        """For each file axis, the RAS axis it became; the file axes that run against their RAS axis."""
        m = self._index_map[:3, :3]
        ras_of_file = [int(np.argmax(np.abs(m[:, f]))) for f in range(3)]
        return ras_of_file, tuple(f for f in range(3) if m[ras_of_file[f], f] < 0)

    def to_file_order(self, array: np.ndarray) -> np.ndarray:
        """An (X, Y, Z) array on the RAS grid -> the same voxels in the file's array order."""
        ras_of_file, flips = self._axes()
        out = np.transpose(array, ras_of_file)
        return np.ascontiguousarray(np.flip(out, flips) if flips else out)

    def from_file_order(self, array: np.ndarray) -> np.ndarray:
        """An array on the file's grid (e.g. a coarse mask) -> the RAS grid; the inverse of :meth:`to_file_order`."""
        if tuple(array.shape) != self.file_shape:
            raise ImageError(f"an array of shape {tuple(array.shape)} is not on the grid of {self.name} "
                             f"{self.file_shape}")
        ras_of_file, flips = self._axes()
        out = np.flip(array, flips) if flips else array
        return np.ascontiguousarray(np.transpose(out, np.argsort(ras_of_file)))


def _check_affine(affine: np.ndarray, source: str) -> None:
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ImageError(f"{source} has no usable affine (singular or not finite): its voxels cannot be placed "
                         "in space, so results could not be aligned")


def load_volume(path: str | Path, series=None, unreadable=(), allow_gaps: bool = False) -> MedicalVolume:
    """Read a NIfTI file, or DICOM (a series folder, a file, a zip; ``series``: one found by
    :func:`~.dicom.discover` in ``path``) (see the module doc); bad input raises :class:`ImageError`.

    DICOM is stacked by :func:`~.dicom.build_volume`: a gap, uneven spacing or a tilt is refused with the
    reason; ``allow_gaps`` keeps a gap on the true grid (``MedicalVolume.missing`` lists the empty slices).
    """
    require("monai", "medical")
    # MONAI notes at import that a GPU DICOM decoder is missing: noise for everyone without one
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    from monai.data import MetaTensor, NibabelReader
    from monai.transforms import LoadImage, Orientation

    path = Path(path)
    header, modality, img, missing, notes = None, None, None, [], []
    not_dicom = (".json", ".png", ".jpg", ".txt")
    if series is None and not is_nifti(path) and (path.is_dir() or (path.is_file()
                                                                     and path.suffix.lower() not in not_dicom)):
        from .dicom import discover

        found = discover(path)
        if not found.series:
            raise ImageError(f"{path} holds no DICOM image series" + (
                f" ({len(found.unreadable)} file(s) are not DICOM)" if found.unreadable else ""))
        if len(found.series) > 1:
            listed = "; ".join(s.describe() for s in found.series[:4])
            raise ImageError(f"{path} holds {len(found.series)} DICOM series ({listed}); give one "
                             "(samprompt medical --list shows them)")
        series, unreadable = found.series[0], found.unreadable
    if series is not None:
        import torch

        from .dicom import build_volume

        sv = build_volume(series, list(unreadable), allow_gaps)
        img = MetaTensor(torch.from_numpy(sv.data)[None], affine=torch.from_numpy(sv.affine))
        modality, missing, notes = sv.modality, sv.missing, [*series.notes, *sv.notes]
        target = None
    elif is_nifti(path):
        nib = require("nibabel", "medical")
        if not path.is_file():
            raise ImageError(f"no such file: {path}")
        try:
            nimg = nib.load(str(path))
            header = nimg.header
        except Exception as exc:
            raise ImageError(f"cannot read {path}: {exc}") from None
        if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
            raise ImageError(f"{path} has no usable affine (qform_code and sform_code are both 0): its voxels "
                             "cannot be placed in space; set one, e.g. nibabel's img.set_sform(affine, code=1)")
        reader = NibabelReader()
        target = str(path)
    elif path.exists():
        raise ImageError(f"{path} is not a volume: give a .nii or .nii.gz file, DICOM files (a series folder, a "
                         "study tree, a zip)")
    else:
        raise ImageError(f"no such file or folder: {path}")
    if img is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(target)
        except Exception as exc:
            raise ImageError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if img.ndim == 5 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 4 or img.shape[0] != 1:
        dims = " x ".join(map(str, img.shape[1:]))
        raise ImageError(f"{path} has shape {dims}; a volume needs exactly three spatial axes"
                         + (" (this is a 2D image)" if img.ndim == 3 else " (one channel, one time point)"))
    if min(img.shape[1:]) < 2:
        raise ImageError(f"{path} has shape {' x '.join(map(str, img.shape[1:]))}: a single slice, not a volume")
    file_affine = np.asarray(img.affine, np.float64)
    _check_affine(file_affine, str(path))
    file_shape = tuple(int(n) for n in img.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ras = Orientation(axcodes="RAS")(img)
    data = np.asarray(ras[0], np.float32)
    if not np.isfinite(data).all():
        raise ImageError(f"{path} contains NaN or infinite values")
    affine = np.asarray(ras.affine, np.float64)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    name = series.name if series is not None and path.is_file() else volume_name(path)
    return MedicalVolume(name, str(path), data, affine, spacing, file_affine, file_shape,  # type: ignore[arg-type]
                         modality, header, missing=list(missing), notes=list(notes), series=series)


def label_dtype(max_label: int):
    return np.uint8 if max_label < 256 else np.uint16


def save_segmentation(path: str | Path, labels: np.ndarray, vol: MedicalVolume) -> Path:
    """Write an (X, Y, Z) label volume on ``vol``'s RAS grid as NIfTI on the source's own grid.

    uint8 (uint16 above 255 labels), the source's affine; a NIfTI source's qform and
    sform with their codes, a DICOM source's affine as both (code 1, scanner).
    """
    nib = require("nibabel", "medical")
    from ...io import atomic_write_bytes

    arr = vol.to_file_order(labels).astype(label_dtype(int(labels.max(initial=0))))
    img = nib.Nifti1Image(arr, None)
    if vol.header is not None:
        src = vol.header
        for kind in ("qform", "sform"):
            code = int(src[f"{kind}_code"])
            getattr(img, f"set_{kind}")(getattr(src, f"get_{kind}")() if code else None, code=code)
        img.header.set_xyzt_units(*src.get_xyzt_units())
    else:
        img.set_qform(vol.file_affine, code=1)
        img.set_sform(vol.file_affine, code=1)
        img.header.set_xyzt_units("mm")
    path = Path(path)
    data = img.to_bytes() if not str(path).endswith(".gz") else _gzip(img.to_bytes())
    return atomic_write_bytes(path, data)


def save_image(path: str | Path, vol: MedicalVolume) -> Path:
    """Write the volume's own intensities as NIfTI on its file grid (int16 when they are whole numbers in range,
    else float32), with its affine as qform and sform (code 1): what samprompt read, to check in a viewer."""
    nib = require("nibabel", "medical")
    from ...io import atomic_write_bytes

    data = vol.to_file_order(vol.data)
    whole = np.array_equal(data, np.round(data)) and data.min() >= -32768 and data.max() <= 32767
    img = nib.Nifti1Image(data.astype(np.int16 if whole else np.float32), None)
    img.set_qform(vol.file_affine, code=1)
    img.set_sform(vol.file_affine, code=1)
    img.header.set_xyzt_units("mm")
    path = Path(path)
    return atomic_write_bytes(path, _gzip(img.to_bytes()) if str(path).endswith(".gz") else img.to_bytes())


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)  # mtime 0: same content, same bytes


__all__ = ["MedicalVolume", "is_nifti", "load_volume", "save_image", "save_segmentation", "volume_name"]
