"""DICOM as hospitals export it: discovery in trees, zips and DICOMDIR folders, series without UIDs, localizers
split off, corrupt or missing slices refused (or kept on the true grid with --allow-gaps), tilt refused, real
compressed files from pydicom decoded."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("monai")

from pydicom.data import get_testdata_file  # noqa: E402

from samprompt import cli  # noqa: E402
from samprompt.domains.medical.dicom import build_volume, discover  # noqa: E402
from samprompt.domains.medical.volume import load_volume  # noqa: E402
from samprompt.errors import ImageError  # noqa: E402
from samprompt.synthetic.volumes import make_volume, write_dicom_series  # noqa: E402

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent


@pytest.fixture(scope="module")
def vol():
    return make_volume(3, (40, 40, 12))


@pytest.fixture()
def series(tmp_path, vol):
    return write_dicom_series(tmp_path / "study" / "ser", vol.data, vol.affine, seed=3)


def _files(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))


def test_a_plain_series_matches_the_generated_volume(series, vol):
    v = load_volume(series)
    ref = load_volume_from_array(vol)
    np.testing.assert_allclose(v.affine, ref[1], atol=1e-4)
    np.testing.assert_allclose(v.data, ref[0], atol=1e-3)


def load_volume_from_array(vol):
    """The generated volume as a NIfTI file would load: (RAS data, RAS affine)."""
    import tempfile

    from samprompt.synthetic.volumes import save_nifti

    with tempfile.TemporaryDirectory() as d:
        v = load_volume(save_nifti(Path(d) / "v.nii.gz", vol.data, vol.affine))
        return v.data, v.affine


def test_anonymised_series_without_uids_nested_and_without_extensions_are_found(series, tmp_path, vol):
    tree = tmp_path / "export" / "PAT1" / "STUDY1" / "SER1"
    tree.mkdir(parents=True)
    for k, f in enumerate(_files(series)):
        ds = pydicom.dcmread(f)
        del ds.SeriesInstanceUID  # the anonymiser stripped it
        ds.save_as(tree / f"IM{k:04d}", enforce_file_format=True)  # files without an extension
    (tmp_path / "export" / "DICOMDIR").write_bytes(b"not parsed: the tree is walked")
    found = discover(tmp_path / "export")
    assert len(found.series) == 1 and found.series[0].size == 12
    assert "no SeriesInstanceUID" in found.series[0].notes[0]
    assert any("DICOMDIR" in what for what, _ in found.skipped)
    v = load_volume(tmp_path / "export")
    np.testing.assert_allclose(v.data, load_volume(series).data)
    # zipped: read member by member
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in _files(tmp_path / "export"):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    np.testing.assert_allclose(load_volume(z).data, v.data)


def test_a_localizer_inside_a_series_is_split_off(series, tmp_path):
    scout = pydicom.dcmread(_files(series)[0])
    scout.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.save_as(series / "scout.dcm", enforce_file_format=True)
    found = discover(series)
    assert [s.size for s in found.series] == [12, 1]
    assert "split off" in found.series[0].notes[-1] and "localizer" in found.series[1].notes[0]
    assert build_volume(found.series[0]).data.shape[2] == 12


def test_a_corrupt_slice_is_refused_with_the_file_named_and_kept_on_the_true_grid_on_request(series, tmp_path, vol):
    files = _files(series)
    files[5].write_text("this slice was replaced by text")
    with pytest.raises(ImageError, match=rf"1 slice\(s\) missing .*{files[5].name}"):
        load_volume(series)
    v = load_volume(series, allow_gaps=True)
    full = load_volume_from_array(vol)
    assert v.data.shape == full[0].shape and v.missing == [5]
    np.testing.assert_allclose(v.affine, full[1], atol=1e-4)  # the true spacing, not a stretched one
    # the command: refused by default, done with --allow-gaps, the manifest says which slice is missing
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [{"label": 1, "box": [10, 10, 30, 30], "slice": 8}]}))
    out = tmp_path / "out"
    assert cli.main(["medical", str(series), "--prompts", str(prompts), "--out", str(out), "--quiet"]) == 1
    assert "gap in the slice positions" in json.loads((out / "failures.json").read_text())["ser"]
    assert cli.main(["medical", str(series), "--prompts", str(prompts), "--out", str(out), "--quiet",
                     "--allow-gaps"]) == 0
    rec = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()][-1]
    assert rec["missing_slices"] == [5] and rec["shape"] == [40, 40, 12]
    prompts.write_text(json.dumps({"objects": [{"label": 1, "box": [10, 10, 30, 30], "slice": 5}]}))
    assert cli.main(["medical", str(series), "--prompts", str(prompts), "--out", str(tmp_path / "o2"), "--quiet",
                     "--allow-gaps"]) == 1
    assert "lie on slices missing" in json.loads((tmp_path / "o2" / "failures.json").read_text())["ser"]


def test_a_missing_file_uneven_spacing_and_tilt_are_refused(series, tmp_path):
    files = _files(series)
    files[6].unlink()
    with pytest.raises(ImageError, match="gap in the slice positions"):
        load_volume(series)
    uneven = tmp_path / "uneven"
    shutil.copytree(series, uneven)
    ds = pydicom.dcmread(_files(uneven)[3])
    ds.ImagePositionPatient = [float(v) + (0.7 if i == 2 else 0) for i, v in enumerate(ds.ImagePositionPatient)]
    ds.save_as(_files(uneven)[3], enforce_file_format=True)
    with pytest.raises(ImageError, match="uneven slice spacing|tilt"):
        load_volume(uneven)
    tilted = tmp_path / "tilted"
    tilted.mkdir()
    for k, f in enumerate(_files(series)):
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.3 * k * 2.5, z]  # positions drift along y: a gantry tilt
        ds.save_as(tilted / f.name, enforce_file_format=True)
    with pytest.raises(ImageError, match="gantry tilt"):
        load_volume(tilted)


def test_real_compressed_files_decode_to_the_same_pixels(tmp_path):
    """pydicom's MR_small in RLE, JPEG-LS lossless and JPEG 2000 lossless: two copies at two positions make a
    series; each decodes to the uncompressed file's values."""
    ref = None
    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"):
        folder = tmp_path / name
        folder.mkdir()
        for k in range(2):
            ds = pydicom.dcmread(get_testdata_file(name))
            ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k}"
            pos = [float(v) for v in ds.ImagePositionPatient]
            normal = np.cross(np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float))
            ds.ImagePositionPatient = list(np.array(pos) + k * 5 * normal)
            ds.save_as(folder / f"{k}.dcm")
        v = load_volume(folder)
        assert v.modality == "MR" and sorted(v.shape) == [2, 64, 64]
        if ref is None:
            ref = v.data
        np.testing.assert_array_equal(v.data, ref)


def test_the_dicomdir_test_tree_of_pydicom_is_listed(capsys):
    assert cli.main(["medical", str(TEST_FILES / "dicomdirtests"), "--list"]) == 0
    out = capsys.readouterr().out
    assert "CT5N: CT SmartScore" in out and "-> ok" in out
    assert "CT2: CT Routine Brain, 4 slice(s)" in out and "gap in the slice positions" in out
    assert "split off its series: localizer" in out and "skipped" in out and "DICOMDIR" in out
    v = load_volume(TEST_FILES / "dicomdirtests" / "98892001" / "CT5N")
    assert v.shape == (16, 16, 5) and v.modality == "CT"


def test_dicom_seg_reads_back_voxel_for_voxel_as_the_nifti(tmp_path, vol, series):
    hd = pytest.importorskip("highdicom")
    nib = pytest.importorskip("nibabel")
    from pydicom import config

    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [
        {"label": 1, "name": "liver", "box": [8, 8, 30, 30], "slice": 6},
        {"label": 5, "name": "aorta", "box3d": [18, 18, 2, 24, 24, 9]}]}))
    out = tmp_path / "out"
    assert cli.main(["medical", str(series.parent), "--prompts", str(prompts), "--out", str(out), "--format", "nifti",
                     "--format", "dicom-seg", "--quiet"]) == 0
    labels = np.asarray(nib.load(str(out / "ser_seg.nii.gz")).dataobj)
    file_order = labels  # written on the series' own grid: (columns, rows, slices)
    old = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE  # pydicom validates the file as it reads
    try:
        seg = hd.seg.segread(str(out / "ser" / "seg.dcm"))
    finally:
        config.settings.reading_validation_mode = old
    assert seg.Manufacturer == "samprompt" and seg.SegmentationType == "BINARY"
    names = {int(d.SegmentNumber): d.SegmentLabel for d in seg.SegmentSequence}
    assert sorted(names.values()) == ["aorta", "liver"]
    by_label = {"liver": 1, "aorta": 5}
    srcs = [pydicom.dcmread(f, stop_before_pixels=True) for f in _files(series)]
    normal = np.cross(np.array(srcs[0].ImageOrientationPatient[:3], float),
                      np.array(srcs[0].ImageOrientationPatient[3:], float))
    srcs.sort(key=lambda d: float(np.array(d.ImagePositionPatient, float) @ normal))
    uids = [d.SOPInstanceUID for d in srcs]
    got = seg.get_pixels_by_source_instance(uids, combine_segments=True, skip_overlap_checks=True)  # (slices, r, c)
    relabel = np.zeros(max(names) + 1, np.uint8)
    for number, name in names.items():
        relabel[number] = by_label[name]
    seg_labels = relabel[got].transpose(2, 1, 0)  # -> (columns, rows, slices), the NIfTI's file order
    assert seg_labels.shape == file_order.shape and (file_order > 0).sum() > 50
    np.testing.assert_array_equal(seg_labels, file_order)
    # a NIfTI input cannot give DICOM SEG: refused before any work
    nii = tmp_path / "nii"
    nii.mkdir()
    shutil.copy(out / "ser_seg.nii.gz", nii / "x.nii.gz")
    assert cli.main(["medical", str(nii / "x.nii.gz"), "--prompts", str(prompts), "--out", str(tmp_path / "o2"),
                     "--format", "dicom-seg"]) == 2


def test_an_enhanced_multiframe_file_loads_as_one_series(series, tmp_path):
    """One file, many frames, each with its own PlanePositionSequence: the same volume as the slices."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    slices = [pydicom.dcmread(f) for f in _files(series)]
    first = slices[0]
    mf = pydicom.dcmread(_files(series)[0])
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceLocation", "InstanceNumber"):
        if tag in mf:
            delattr(mf, tag)
    mf.SOPInstanceUID = generate_uid()
    mf.NumberOfFrames = len(slices)
    shared = Dataset()
    ori, px = Dataset(), Dataset()
    ori.ImageOrientationPatient = first.ImageOrientationPatient
    px.PixelSpacing = first.PixelSpacing
    px.SliceThickness = first.get("SliceThickness", 1)
    shared.PlaneOrientationSequence = Sequence([ori])
    shared.PixelMeasuresSequence = Sequence([px])
    mf.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for ds in slices:
        fg, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = ds.ImagePositionPatient
        fg.PlanePositionSequence = Sequence([pos])
        frames.append(fg)
    mf.PerFrameFunctionalGroupsSequence = Sequence(frames)
    mf.PixelData = b"".join(ds.PixelData for ds in slices)
    mf.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    folder = tmp_path / "mf"
    folder.mkdir()
    mf.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    found = discover(folder)
    assert len(found.series) == 1 and found.series[0].size == len(slices) and "multi-frame" in found.series[0].notes[0]
    np.testing.assert_allclose(load_volume(folder).data, load_volume(series).data)


def test_rtstruct_contours_rasterise_back_to_the_nifti(tmp_path, series):
    nib = pytest.importorskip("nibabel")
    from samprompt.domains.medical.rtstruct import rasterise_rtstruct

    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [{"label": 1, "name": "liver", "box": [8, 8, 30, 30], "slice": 6},
                                               {"label": 2, "box3d": [18, 18, 2, 24, 24, 9]}]}))
    out = tmp_path / "out"
    assert cli.main(["medical", str(series.parent), "--prompts", str(prompts), "--out", str(out), "--format", "nifti",
                     "--format", "rtstruct", "--quiet"]) == 0
    labels = np.asarray(nib.load(str(out / "ser_seg.nii.gz")).dataobj)
    from pydicom import config

    old = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE  # pydicom validates the file as it reads
    try:
        ds = pydicom.dcmread(out / "ser" / "rtstruct.dcm")
        for roi in ds.ROIContourSequence:
            for c in roi.ContourSequence:
                assert len(c.ContourData) == 3 * int(c.NumberOfContourPoints)
    finally:
        config.settings.reading_validation_mode = old
    assert ds.Modality == "RTSTRUCT" and [r.ROIName for r in ds.StructureSetROISequence] == ["liver", "label 2"]
    back = rasterise_rtstruct(out / "ser" / "rtstruct.dcm", discover(series).series[0])
    for name, value in (("liver", 1), ("label 2", 2)):
        truth = labels == value
        dice = 2 * (back[name] & truth).sum() / (back[name].sum() + truth.sum())
        assert truth.sum() > 20 and dice >= 0.95, (name, dice)


def test_a_labels_file_names_every_output(tmp_path, series, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [{"label": 1, "name": "blob", "box": [8, 8, 30, 30], "slice": 6}]}))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"1": {"name": "liver", "color": [10, 20, 30]}, "2": "spleen"}))
    out = tmp_path / "out"
    assert cli.main(["medical", str(series.parent), "--prompts", str(prompts), "--out", str(out), "--labels",
                     str(labels), "--format", "nifti", "--format", "rtstruct", "--quiet"]) == 0
    ds = pydicom.dcmread(out / "ser" / "rtstruct.dcm")
    assert ds.StructureSetROISequence[0].ROIName == "liver"
    assert list(ds.ROIContourSequence[0].ROIDisplayColor) == [10, 20, 30]
    assert json.loads((out / "labels.json").read_text()) == {"1": "liver", "2": "spleen"}
    labels.write_text(json.dumps({"one": "liver"}))
    assert cli.main(["medical", str(series.parent), "--prompts", str(prompts), "--out", str(tmp_path / "o2"),
                     "--labels", str(labels)]) == 2
    assert "label 'one' is not a whole number" in capsys.readouterr().err


def test_convert_writes_each_series_as_nifti_with_its_affine(tmp_path, series, vol, capsys):
    nib = pytest.importorskip("nibabel")
    shutil.copytree(series, tmp_path / "tree" / "a" / "ser")
    (tmp_path / "tree" / "notes.txt").write_text("hello")
    assert cli.main(["medical", "convert", str(tmp_path / "tree"), "--out", str(tmp_path / "nii")]) == 0
    assert "ser.nii.gz: 40 x 40 x 12" in capsys.readouterr().out
    img = nib.load(str(tmp_path / "nii" / "ser.nii.gz"))
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-4)  # the generator's own affine
    np.testing.assert_allclose(np.asarray(img.dataobj), np.round(vol.data), atol=1)
    # a second run into the same folder replaces its own file; a series with a gap is named
    _files(tmp_path / "tree")[4].unlink()
    assert cli.main(["medical", "convert", str(tmp_path / "tree"), "--out", str(tmp_path / "nii")]) == 1
    assert "ser: a gap in the slice positions" in capsys.readouterr().err


def test_jpeg_extended_pixels_decode_through_the_plugins():
    from samprompt.domains.medical.dicom import _pixels

    ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))  # JPEG Extended (processes 2 and 4)
    img = _pixels(ds, None)
    assert img.shape == (1024, 256) and img.std() > 0
    with pytest.raises(ImageError, match="cannot decode the pixels"):  # 12-bit lossy JPEG: needs GDCM
        _pixels(pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm")), None)


def test_dicom_outputs_of_the_same_result_get_the_same_uids(tmp_path, series):
    """A rerun (or a resumed run) writes the same SEG and RTSTRUCT instances, not new ones beside them."""
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"objects": [{"label": 1, "name": "liver", "box": [8, 8, 30, 30], "slice": 6}]}))
    uids = []
    for out in ("a", "b"):
        assert cli.main(["medical", str(series.parent), "--prompts", str(prompts), "--out", str(tmp_path / out),
                         "--format", "dicom-seg", "--format", "rtstruct", "--quiet"]) == 0
        uids.append([(d.SOPInstanceUID, d.SeriesInstanceUID) for d in
                     (pydicom.dcmread(tmp_path / out / "ser" / f) for f in ("seg.dcm", "rtstruct.dcm"))])
    assert uids[0] == uids[1] and uids[0][0] != uids[0][1]
