"""Results back to the planning system: a label volume as a DICOM RT Structure Set (RTSTRUCT), written with pydicom.

One ROI per label present, named from the prompts (``name``) or ``label K``, each with
a colour, its generation algorithm (SEMIAUTOMATIC: prompted) and, per slice, one
CLOSED_PLANAR contour per outline found by OpenCV (outer boundaries and holes alike,
as viewers combine them by parity). Contour points are the centres of the boundary
pixels, in patient millimetres (LPS), on the plane of the source slice they reference.

rt-utils writes the same, but it requires the non-headless OpenCV wheel, which
conflicts with the headless one that samprompt uses; the structure set is small enough
to write here.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import cv2
import numpy as np

from ...errors import ConfigError, require

COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def _outlines(mask: np.ndarray) -> list[np.ndarray]:
    """(N, 2) pixel (column, row) outlines of a 2D mask: outer boundaries and holes."""
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return [c[:, 0, :] for c in cs if len(c) >= 1]


def write_rtstruct(path: str | Path, labels_file_order: np.ndarray, series, names: dict[int, str], model_id: str,
                   sources: list[str | None] | None = None, colors: dict[int, list[int]] | None = None) -> Path:
    """Write ``labels_file_order`` ((columns, rows, slices) as :func:`~.dicom.build_volume` stacks ``series``) as an
    RTSTRUCT referencing ``series``; ``sources``: the file behind each slice (None for a filled gap)."""
    pydicom = require("pydicom", "medical")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    from ... import __version__
    from ...io import atomic_path
    from .dicom import Source, content_uid, ordered_slices

    ordered = ordered_slices(series)
    if any(s.frame is not None for s in ordered):
        raise ConfigError("RTSTRUCT output of an enhanced multi-frame series is not supported; use nifti or dicom-seg")
    if sources is None:
        sources = [str(s.source) for s in ordered]
    present = [int(v) for v in np.unique(labels_file_order) if v > 0]
    if not present:
        raise ConfigError("the segmentation is empty: an RTSTRUCT needs at least one ROI")
    planes = []  # (slice index in the volume, the slice's header)
    it = iter(ordered)
    for k, src in enumerate(sources):
        if src is not None:
            s = next(it)
            planes.append((k, Source(s.source.path, s.source.member).read(stop_before_pixels=True)))
    ref = planes[0][1]
    import hashlib

    key = (series.key, hashlib.sha256(np.ascontiguousarray(labels_file_order).tobytes()).hexdigest(),
           sorted(names.items()), model_id, "rtstruct")
    now = datetime.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_CLASS
    meta.MediaStorageSOPInstanceUID = content_uid(*key, "instance")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_CLASS, meta.MediaStorageSOPInstanceUID
    for attr in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                 "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber", "FrameOfReferenceUID"):
        setattr(ds, attr, ref.get(attr, ""))
    if not ds.StudyInstanceUID:
        ds.StudyInstanceUID = content_uid(*key, "study")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = content_uid(*key, "series"), 901, 1
    ds.SeriesDescription = "samprompt structures"
    ds.Manufacturer, ds.ManufacturerModelName = "samprompt", f"samprompt {model_id}"[:64]
    ds.SoftwareVersions = __version__
    ds.StructureSetLabel = "samprompt"
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    contour_images = []
    for _, h in planes:
        ci = Dataset()
        ci.ReferencedSOPClassUID, ci.ReferencedSOPInstanceUID = h.SOPClassUID, h.SOPInstanceUID
        contour_images.append(ci)
    rt_series = Dataset()
    rt_series.SeriesInstanceUID = ref.SeriesInstanceUID if "SeriesInstanceUID" in ref else content_uid(series.key)
    rt_series.ContourImageSequence = Sequence(contour_images)
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (as in the standard)
    rt_study.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    rt_study.RTReferencedSeriesSequence = Sequence([rt_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ds.FrameOfReferenceUID
    frame.RTReferencedStudySequence = Sequence([rt_study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    rois, contours, observations = [], [], []
    for number, label in enumerate(present, 1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, ds.FrameOfReferenceUID
        roi.ROIName = names.get(label) or f"label {label}"
        roi.ROIGenerationAlgorithm = "SEMIAUTOMATIC"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = list((colors or {}).get(label) or COLOURS[(number - 1) % len(COLOURS)])
        seq = []
        for k, h in planes:
            mask = labels_file_order[:, :, k].T == label  # (rows, columns)
            if not mask.any():
                continue
            ipp = np.array(h.ImagePositionPatient, float)
            iop = np.array(h.ImageOrientationPatient, float)
            dr, dc = (float(v) for v in h.PixelSpacing)
            for pts in _outlines(mask):
                xyz = ipp + pts[:, :1] * dc * iop[:3] + pts[:, 1:2] * dr * iop[3:]
                c = Dataset()
                ci = Dataset()
                ci.ReferencedSOPClassUID, ci.ReferencedSOPInstanceUID = h.SOPClassUID, h.SOPInstanceUID
                c.ContourImageSequence = Sequence([ci])
                c.ContourGeometricType = "CLOSED_PLANAR" if len(pts) > 1 else "POINT"
                c.NumberOfContourPoints = len(pts)
                c.ContourData = [f"{v:.4f}" for v in xyz.ravel()]
                seq.append(c)
        rc.ContourSequence = Sequence(seq)
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        obs.RTROIInterpretedType, obs.ROIInterpreter = "ORGAN", ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    path = Path(path)
    with atomic_path(path) as tmp:
        pydicom.dcmwrite(str(tmp), ds, enforce_file_format=True)
    return path


def rasterise_rtstruct(path: str | Path, series) -> dict[str, np.ndarray]:
    """ROI name -> (columns, rows, slices) bool mask on ``series``' grid, filling each slice's contours by parity:
    the reading side of :func:`write_rtstruct`, for checking a structure set against a label volume."""
    pydicom = require("pydicom", "medical")
    from .dicom import Source, ordered_slices

    ds = pydicom.dcmread(str(path))
    ordered = ordered_slices(series)
    headers = [Source(s.source.path, s.source.member).read(stop_before_pixels=True) for s in ordered]
    index = {h.SOPInstanceUID: k for k, h in enumerate(headers)}
    rows, cols = int(headers[0].Rows), int(headers[0].Columns)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for rc in ds.ROIContourSequence:
        vol = np.zeros((cols, rows, len(headers)), bool)
        edges = np.zeros_like(vol)
        for c in getattr(rc, "ContourSequence", []):
            k = index[c.ContourImageSequence[0].ReferencedSOPInstanceUID]
            h = headers[k]
            ipp = np.array(h.ImagePositionPatient, float)
            iop = np.array(h.ImageOrientationPatient, float)
            dr, dc = (float(v) for v in h.PixelSpacing)
            xyz = np.array([float(v) for v in c.ContourData]).reshape(-1, 3) - ipp
            px = np.stack([xyz @ iop[:3] / dc, xyz @ iop[3:] / dr], 1)
            poly = np.round(px).astype(np.int32)
            fill, line = np.zeros((rows, cols), np.uint8), np.zeros((rows, cols), np.uint8)
            cv2.fillPoly(fill, [poly], 1)
            cv2.polylines(line, [poly], True, 1)
            vol[:, :, k] ^= (fill & ~line.astype(bool)).T.astype(bool)  # interiors by parity: holes cut out
            edges[:, :, k] |= line.T.astype(bool)  # outlines run through the region's own boundary pixels
        out[names[int(rc.ReferencedROINumber)]] = vol | edges
    return out
