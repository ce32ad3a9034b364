"""Volumes in the annotator: listing, slices, propagation, correction, export on the scan's grid, resume."""

import json

import numpy as np
import pytest

from samprompt import Segmenter
from samprompt.annotate.session import Annotator, SessionState

nib = pytest.importorskip("nibabel")
pytest.importorskip("monai")
pytest.importorskip("pydicom")


@pytest.fixture(scope="module")
def volume_folder(tmp_path_factory):
    import cv2

    from samprompt.synthetic import make_scene
    from samprompt.synthetic.volumes import make_volume, save_nifti, write_dicom_series

    d = tmp_path_factory.mktemp("mixed")
    v = make_volume(3, shape=(96, 96, 30), orientation="LPS")  # a flipped file grid: export must keep it
    save_nifti(d / "ct3.nii.gz", v.data, v.affine)
    truth = tmp_path_factory.mktemp("truth")
    save_nifti(truth / "ct3.nii.gz", v.labels, v.affine)
    small = make_volume(4, shape=(48, 48, 6))
    write_dicom_series(d / "series", small.data, small.affine, seed=4)
    cv2.imwrite(str(d / "photo.png"), make_scene(0, size=(64, 80)).image[..., ::-1])
    return d, truth / "ct3.nii.gz", v


def _truth_ras(path):
    from samprompt.domains.medical import load_volume

    return load_volume(path).data.round().astype(int)  # the label volume on the RAS grid the annotator shows


def test_a_volume_is_listed_opened_propagated_corrected_and_exported(volume_folder, tmp_path):
    from samprompt.domains.medical import dice_3d

    folder, truth_path, v = volume_folder
    out = tmp_path / "ann"
    app = Annotator(Segmenter("tiny"), folder, out)
    files = app.files()
    assert [(f["name"], f["volume"]) for f in files] == [("photo.png", False), ("ct3.nii.gz", True), ("series", True)]
    st = SessionState()
    assert "opened volume ct3.nii.gz (96 x 96 x 30" in app.open_index(st, 1)
    doc = app.view(st)
    assert doc["volume"]["n"] == 30 and doc["flip_y"] and doc["image"].startswith("data:image/png")
    truth = _truth_ras(truth_path) == 1  # the liver
    k = int(truth.sum(axis=(0, 1)).argmax())
    app.command(st, {"op": "slice", "k": k}, "liver")
    assert st.volume.k == k and app.view(st)["key"] == f"ct3-z{k}"
    app.prefetched.join()  # the next slice up was encoded in the background
    calls = app.seg.encoder_calls
    app.seg.embed(st.volume.view.image(k + 1))
    assert app.seg.encoder_calls == calls
    ii, jj = np.nonzero(truth[:, :, k])  # slice pixels: columns x, rows y of the RAS grid
    app.command(st, {"op": "box", "box": [ii.min(), jj.min(), ii.max() + 1, jj.max() + 1]}, "liver")
    app.autosave(st)
    said = app.command(st, {"op": "propagate"}, "liver")
    zs = np.nonzero(truth.any(axis=(0, 1)))[0]
    lo, hi = (int(s) for s in said.rsplit(" ", 1)[1].split("-"))
    assert abs(lo - zs.min()) <= 2 and abs(hi - zs.max()) <= 2, said  # it stops where the liver ends
    app.autosave(st)
    # check and correct another slice by hand: the correction lands in the 3D mask
    app.command(st, {"op": "slice", "k": k + 2}, "liver")
    assert st.ann.objects[0].mask is not None and st.ann.objects[0].mask.any()
    app.command(st, {"op": "brush", "points": [[2.5, 2.5]], "radius": 2}, "liver")
    app.autosave(st)
    assert st.volume.masks[st.ann.objects[0].uid][2, 2, k + 2]
    assert "slices" in app.view(st)["volume"]["covered"]
    paths = app.export(st)
    seg = nib.load(next(p for p in paths if p.endswith("_seg.nii.gz")))
    src = nib.load(folder / "ct3.nii.gz")
    np.testing.assert_allclose(seg.affine, src.affine)  # the scan's own grid, LPS flips and all
    assert seg.shape == src.shape and int(seg.header["sform_code"]) == 1
    labels = np.asarray(seg.dataobj)
    assert dice_3d(labels == 1, v.labels == 1) > 0.6  # v.labels is on the file's grid
    assert json.loads((out / "ct3_seg.json").read_text())["labels"] == {"1": "liver"}
    # a restart resumes the object, and a stale second tab cannot overwrite it
    again = Annotator(Segmenter("tiny"), folder, out)
    st2 = SessionState()
    assert "resumed 1 objects" in again.open_index(st2, 1)
    np.testing.assert_array_equal(st2.volume.label_volume(), st.volume.label_volume())
    assert [f["status"] for f in again.files()] == ["", "saved", ""]
    app.command(st, {"op": "key", "key": "new"}, "kidney")
    app.command(st, {"op": "point", "x": 30, "y": 40}, "kidney")
    app.autosave(st)
    again.command(st2, {"op": "point", "x": 60, "y": 60}, "liver")
    with pytest.raises(Exception, match="another tab"):
        again.autosave(st2)


def test_deleting_a_volume_object_on_a_slice_is_undone_whole(volume_folder, tmp_path):
    folder, truth_path, _ = volume_folder
    app = Annotator(Segmenter("tiny"), folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 2)  # the DICOM series
    assert st.volume.vol.shape == (48, 48, 6)
    app.command(st, {"op": "box", "box": [10, 10, 30, 30]}, "object")
    app.command(st, {"op": "propagate"}, "object")
    before = st.volume.label_volume().copy()
    assert before.any()
    app.command(st, {"op": "key", "key": "delete"}, "object")
    assert not st.volume.label_volume().any()
    app.command(st, {"op": "key", "key": "undo"}, "object")
    np.testing.assert_array_equal(st.volume.label_volume(), before)
    with pytest.raises(Exception, match="unknown window"):
        app.command(st, {"op": "window", "name": "sunset"}, "object")
    assert "lung" in app.command(st, {"op": "window", "name": "lung"}, "object")
    app.command(st, {"op": "slice", "k": 99}, "object")  # past the end: the last slice
    assert st.volume.k == 5
    photo = SessionState()
    app.open_index(photo, 0)
    with pytest.raises(Exception, match="for volumes"):
        app.command(photo, {"op": "propagate"}, "object")


def test_a_broken_volume_is_reported_and_the_tab_stays_where_it_was(volume_folder, tmp_path):
    import shutil

    folder, _, _ = volume_folder
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(folder / "photo.png", d)
    (d / "broken.nii.gz").write_bytes((folder / "ct3.nii.gz").read_bytes()[:3000])  # cut short
    app = Annotator(Segmenter("tiny"), d, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 0)
    with pytest.raises(Exception, match="cannot read .*broken.nii.gz"):
        app.command(st, {"op": "open", "index": 1}, "object")
    assert st.index == 0 and st.ann.file_name == "photo.png" and st.volume is None
    up = SessionState()  # a NIfTI upload opens as a volume, keyed by its content
    assert "opened volume ct3.nii.gz" in app.open_upload(up, str(folder / "ct3.nii.gz"))
    assert up.volume.name.startswith("ct3-")


def test_volume_state_packs_each_object_exactly():
    from samprompt.annotate.volume import _pack, _unpack

    rng = np.random.default_rng(0)
    m = np.zeros((20, 30, 12), bool)
    m[0:7, 25:30, 11] = True  # touches three faces
    m[5:15, 3:9, 2:6] = rng.random((10, 6, 4)) > 0.5  # ragged
    box, bits = _pack(m)
    assert box.tolist() == [0, 3, 2, 15, 30, 12]
    np.testing.assert_array_equal(_unpack(box, bits, m.shape), m)
    box, bits = _pack(np.zeros((4, 4, 4), bool))
    assert not _unpack(box, bits, (4, 4, 4)).any()


def test_coronal_and_sagittal_planes_show_and_edit_the_same_3d_objects(volume_folder, tmp_path):
    from samprompt.domains.medical import dice_3d

    folder, truth_path, _ = volume_folder
    app = Annotator(Segmenter("tiny"), folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 1)
    truth = _truth_ras(truth_path) == 1
    k = int(truth.sum(axis=(0, 1)).argmax())
    app.command(st, {"op": "slice", "k": k}, "liver")
    ii, jj = np.nonzero(truth[:, :, k])
    app.command(st, {"op": "box", "box": [ii.min(), jj.min(), ii.max() + 1, jj.max() + 1]}, "liver")
    app.command(st, {"op": "propagate"}, "liver")
    axial = st.volume.masks[st.ann.objects[0].uid].copy()
    assert "coronal slices (96)" in app.command(st, {"op": "plane", "name": "coronal"}, "liver")
    y = int(np.nonzero(axial.any(axis=(0, 2)))[0].mean())
    app.command(st, {"op": "slice", "k": y}, "liver")
    doc = app.view(st)
    assert doc["volume"]["plane"] == "coronal" and doc["key"] == f"ct3-y{y}"
    # the coronal slice shows the object as the axial work left it: columns x, rows z (scaled to square pixels)
    shown = st.ann.objects[0].mask
    expect = st.volume.view.to_scaled(axial[:, y, :].T)
    np.testing.assert_array_equal(shown, expect)
    st.ann.current = 0
    app.command(st, {"op": "key", "key": "delete"}, "liver")  # a whole 3D object, from any plane
    assert not st.volume.label_volume().any()
    # a box on a sagittal slice, propagated across: the liver again
    app.command(st, {"op": "plane", "name": "sagittal"}, "liver")
    x = int(np.nonzero(truth.any(axis=(1, 2)))[0].mean())
    app.command(st, {"op": "slice", "k": x}, "liver")
    rows, cols = np.nonzero(st.volume.view.to_scaled(truth[x, :, :].T))
    app.command(st, {"op": "box", "box": [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]}, "liver")
    from samprompt.masks import iou

    key_iou = iou(st.ann.objects[0].mask, st.volume.view.to_scaled(truth[x, :, :].T))
    app.command(st, {"op": "propagate"}, "liver")
    sag = st.volume.label_volume() == 1
    lo, hi = st.volume.covered(st.ann.objects[0].uid)
    # the key slice is right; across sagittal slices of this anisotropic CT the built-in model stops early
    # (Dice 0.31 here, 0.76 axially: docs/annotator.md), so this checks that it went beyond the key slice
    assert key_iou > 0.6 and hi - lo >= 2 and dice_3d(sag, truth) > 0.2
    with pytest.raises(Exception, match="unknown plane"):
        app.command(st, {"op": "plane", "name": "oblique"}, "liver")


def test_a_study_tree_lists_every_series_and_a_dicom_volume_exports_dicom_seg(tmp_path):
    hd = pytest.importorskip("highdicom")
    from samprompt.synthetic.volumes import make_volume, write_dicom_series

    tree = tmp_path / "export"
    for k, (patient, study, ser) in enumerate([("P1", "S1", "SE1"), ("P1", "S1", "SE2"), ("P2", "S7", "SE1")]):
        v = make_volume(10 + k, shape=(40, 40, 6))
        write_dicom_series(tree / patient / study / ser, v.data, v.affine, seed=10 + k)
    app = Annotator(Segmenter("tiny"), tree, tmp_path / "ann")
    names = [e.relative_to(tree).as_posix() for e in app.entries]
    assert names == ["P1/S1/SE1", "P1/S1/SE2", "P2/S7/SE1"]
    st = SessionState()
    app.open_index(st, 1)
    app.command(st, {"op": "box", "box": [8, 8, 30, 30]}, "liver")
    app.command(st, {"op": "propagate"}, "liver")
    paths = app.export(st)
    seg_path = next(p for p in paths if p.endswith("_seg.dcm"))
    seg = hd.seg.segread(seg_path)
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["liver"]
    assert int(seg.NumberOfFrames) == int((st.volume.label_volume() > 0).any(axis=(0, 1)).sum())


def test_a_labels_file_gives_the_volume_export_its_values(tmp_path):
    import json

    nib = pytest.importorskip("nibabel")
    from samprompt.synthetic.volumes import make_volume, save_nifti

    v = make_volume(5, shape=(48, 48, 8))
    save_nifti(tmp_path / "vols" / "ct.nii.gz", v.data, v.affine)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"7": "liver", "9": {"name": "spleen", "color": [1, 2, 3]}}))
    app = Annotator(Segmenter("tiny"), tmp_path / "vols", tmp_path / "ann", labels=labels)
    assert {"liver", "spleen"} <= set(app.classes)
    st = SessionState()
    app.open_index(st, 0)
    app.command(st, {"op": "box", "box": [10, 10, 30, 30]}, "liver")
    app.command(st, {"op": "key", "key": "new"}, "tumour")
    app.command(st, {"op": "box", "box": [32, 32, 44, 44]}, "tumour")  # not in the file: the next free value
    app.export(st)
    out = np.asarray(nib.load(str(tmp_path / "ann" / "ct_seg.nii.gz")).dataobj)
    assert set(np.unique(out)) <= {0, 7, 10} and (out == 7).any()
    assert json.loads((tmp_path / "ann" / "ct_seg.json").read_text())["labels"] == {"7": "liver", "10": "tumour"}


def test_hide_lock_and_who_made_an_object_hold_on_every_slice_and_after_a_restart(volume_folder, tmp_path):
    """A volume object's flags and its maker live with the object, not the slice: other slices, saves, reopen."""
    from samprompt.annotate.document import stamp_objects

    folder, _, _ = volume_folder
    app = Annotator(Segmenter("tiny"), folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 2)  # the DICOM series
    app.command(st, {"op": "box", "box": [10, 10, 30, 30]}, "object")
    stamp_objects(st.ann, "ana")
    app.command(st, {"op": "propagate"}, "object")
    app.command(st, {"op": "key", "key": "lock"}, "object")
    app.autosave(st)
    app.command(st, {"op": "slice", "k": st.volume.k + 1}, "object")
    obj = st.ann.objects[0]
    assert obj.locked and obj.created_by == "ana"
    with pytest.raises(Exception, match="locked"):
        app.command(st, {"op": "brush", "points": [[20, 20]], "radius": 3}, "object")
    app.autosave(st)
    again = Annotator(Segmenter("tiny"), folder, tmp_path / "ann")  # a restart
    st2 = SessionState()
    again.open_index(st2, 2)
    assert st2.ann.objects[0].locked and st2.ann.objects[0].created_by == "ana"
