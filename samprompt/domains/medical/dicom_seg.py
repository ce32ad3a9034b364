"""Results back to the viewer: a label volume as a DICOM Segmentation (SEG) of its source series, via highdicom.

One segment per label present, named from the prompts (``name``) or ``label K``; the
segments are binary, reference the source series' SOP instances and frame of reference,
and carry the algorithm's identification (samprompt, its version, the SAM model id).
Slices a gap left empty (``--allow-gaps``) have no source image and are not encoded.
Common organs get their SNOMED CT codes (a short table below); any other name is coded
as a generic tissue of that name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ConfigError, require

# name -> (SNOMED CT code, meaning); category "Anatomical Structure" (SCT 123037004)
ORGANS = {
    "liver": ("10200004", "Liver"), "spleen": ("78961009", "Spleen"), "kidney": ("64033007", "Kidney"),
    "kidney_left": ("18639004", "Left kidney"), "kidney_right": ("9846003", "Right kidney"),
    "aorta": ("15825003", "Aorta"), "pancreas": ("15776009", "Pancreas"), "lung": ("39607008", "Lung"),
    "heart": ("80891009", "Heart"), "brain": ("12738006", "Brain"), "bladder": ("89837001", "Urinary bladder"),
    "prostate": ("41216001", "Prostate"), "stomach": ("69695003", "Stomach"), "gallbladder": ("28231008",
                                                                                               "Gallbladder"),
}


def _codes(name: str):
    from pydicom.sr.coding import Code

    key = name.lower().replace(" ", "_")
    if key in ORGANS:
        code, meaning = ORGANS[key]
        return Code("123037004", "SCT", "Anatomical Structure"), Code(code, "SCT", meaning)
    if "lesion" in key or "tumo" in key:
        return Code("49755003", "SCT", "Morphologically Altered Structure"), Code("52988006", "SCT", "Lesion")
    return Code("85756007", "SCT", "Tissue"), Code("85756007", "SCT", name or "Tissue")


def write_dicom_seg(path: str | Path, labels_file_order: np.ndarray, series, names: dict[int, str],
                    model_id: str, sources: list[str | None] | None = None) -> Path:
    """Write ``labels_file_order`` ((columns, rows, slices), as :func:`~.dicom.build_volume` stacks ``series``) as
    a DICOM SEG referencing ``series``' images; ``names``: label -> name; ``sources``: the file behind each slice
    (None for a filled gap). Returns ``path``."""
    hd = require("highdicom", "medical")
    from pydicom.sr.codedict import codes

    from ... import __version__
    from ...io import atomic_path
    from .dicom import Source, content_uid, ordered_slices

    datasets, planes = [], []
    by_position = ordered_slices(series)
    if sources is None:
        sources = [str(s.source) for s in by_position]
    it = iter(by_position)
    for k, src in enumerate(sources):
        if src is None:
            continue
        s = next(it)
        if s.frame is not None:
            raise ConfigError("DICOM SEG output of an enhanced multi-frame series is not supported yet; use nifti")
        datasets.append(_complete(Source(s.source.path, s.source.member).read()))
        planes.append(labels_file_order[:, :, k].T)  # (rows, columns)
    present = [int(v) for v in np.unique(labels_file_order) if v > 0]
    import hashlib

    key = (series.key, hashlib.sha256(np.ascontiguousarray(labels_file_order).tobytes()).hexdigest(),
           sorted(names.items()), model_id, "seg")
    if not present:
        raise ConfigError("the segmentation is empty: a DICOM SEG needs at least one segment")
    stack = np.stack(planes)  # (frames, rows, columns) of label values
    pixel = np.zeros(stack.shape, np.uint16)
    descriptions = []
    algo = hd.AlgorithmIdentificationSequence(name="samprompt", version=__version__,
                                              family=codes.cid7162.ArtificialIntelligence,
                                              parameters={"model": model_id})
    for k, label in enumerate(present, 1):
        pixel[stack == label] = k
        category, kind = _codes(names.get(label, f"label {label}"))
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=k, segment_label=names.get(label) or f"label {label}", segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algo, tracking_uid=content_uid(*key, label), tracking_id=f"label {label}"))
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=pixel, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=content_uid(*key, "series"), series_number=900,
        sop_instance_uid=content_uid(*key, "instance"), instance_number=1, manufacturer="samprompt",
        manufacturer_model_name=f"samprompt {model_id}"[:64], software_versions=__version__, device_serial_number="0",
        series_description="samprompt segmentation", omit_empty_frames=True)
    for item in [*seg.DimensionOrganizationSequence, *seg.DimensionIndexSequence]:  # highdicom draws these at random
        item.DimensionOrganizationUID = content_uid(*key, "dimensions")
    path = Path(path)
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path


# type 2 attributes (present, may be empty) that highdicom copies from the source; anonymisers often drop them
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "AccessionNumber")


def _complete(ds):
    """The source dataset (in memory) with missing type 2 patient and study attributes present but empty."""
    for attr in TYPE2:
        if attr not in ds:
            setattr(ds, attr, "")
    return ds
