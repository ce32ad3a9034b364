"""Medical volumes: loading in RAS, prompts in voxels and millimetres, propagation, NIfTI out, metrics, jobs."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("monai")
pydicom = pytest.importorskip("pydicom")

from samprompt import Segmenter, cli  # noqa: E402
from samprompt.domains.medical import (  # noqa: E402
    VolumeObject,
    choose_window,
    dice_3d,
    load_volume,
    parse_objects,
    save_segmentation,
    segment_volume,
    surface_dice,
)
from samprompt.errors import ConfigError, ImageError, PromptError  # noqa: E402
from samprompt.synthetic.volumes import make_volume, save_nifti, write_dicom_series  # noqa: E402

SHAPE = (64, 64, 20)
DICOMDIR_TESTS = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"


@pytest.fixture(scope="module")
def seg():
    return Segmenter("tiny")


@pytest.fixture(scope="module")
def vols(tmp_path_factory):
    """The same generated volume as RAS, LPS and oblique NIfTI files, plus a DICOM series of the RAS one."""
    d = tmp_path_factory.mktemp("vols")
    out = {}
    for o in ("RAS", "LPS", "oblique"):
        v = make_volume(3, SHAPE, orientation=o)
        out[o] = (save_nifti(d / f"ct_{o}.nii.gz", v.data, v.affine), v)
    ras = out["RAS"][1]
    out["dicom"] = (write_dicom_series(d / "series", ras.data, ras.affine, seed=3), ras)
    return out


def _key_box(truth: np.ndarray, label: int) -> VolumeObject:
    m = truth == label
    k = int(m.sum(axis=(0, 1)).argmax())
    ii, jj = np.nonzero(m[:, :, k])
    return VolumeObject(label, "box", box=(ii.min(), jj.min(), ii.max(), jj.max()), slice=k)


def _run(seg, path, objects):
    vol = load_volume(path)
    window, _ = choose_window(vol.data, "auto", vol.modality)
    return vol, segment_volume(seg, vol, objects, window)


# ---------------------------------------------------------------- loading and writing
@pytest.mark.parametrize("orientation", ["RAS", "LPS", "oblique"])
def test_output_is_on_the_input_grid_with_its_affine_and_codes(seg, vols, tmp_path, orientation):
    path, v = vols[orientation]
    vol, res = _run(seg, path, [_key_box(v.labels, 5)])
    out = save_segmentation(tmp_path / "seg.nii.gz", res.labels, vol)
    src, got = nib.load(str(path)), nib.load(str(out))
    assert got.shape == src.shape and got.get_data_dtype() == np.uint8
    np.testing.assert_allclose(got.affine, src.affine, atol=1e-6)
    np.testing.assert_allclose(got.get_sform(), src.get_sform(), atol=1e-6)
    assert int(got.header["qform_code"]) == int(src.header["qform_code"]) == 1
    assert int(got.header["sform_code"]) == int(src.header["sform_code"]) == 1
    pred = np.asarray(got.dataobj) == 5
    assert dice_3d(pred, v.labels == 5) > 0.8  # the aorta, on the file's own grid


def test_ras_working_copy_round_trips_to_the_file_order(vols):
    for o in ("RAS", "LPS", "oblique"):
        path, v = vols[o]
        vol = load_volume(path)
        assert np.array_equal(vol.to_file_order(vol.data), v.data.astype(np.float32))
        np.testing.assert_array_equal(vol.to_file_order(vol.from_file_order(v.labels)), v.labels)
    lps = load_volume(vols["LPS"][0])
    np.testing.assert_allclose(lps.affine, load_volume(vols["RAS"][0]).affine, atol=1e-5)  # both end in RAS


def test_lps_file_and_its_ras_copy_give_the_same_result_each_on_its_grid(seg, vols):
    p_ras, v_ras = vols["RAS"]
    p_lps, v_lps = vols["LPS"]
    vr, rr = _run(seg, p_ras, [_key_box(v_ras.labels, 1)])
    vl, rl = _run(seg, p_lps, [_key_box(v_lps.labels, 1)])  # the same box, in the LPS file's own voxels
    assert rr.labels.any()
    np.testing.assert_array_equal(rr.labels, rl.labels)  # identical in RAS
    np.testing.assert_array_equal(vl.to_file_order(rl.labels), vr.to_file_order(rr.labels)[::-1, ::-1])


def test_voxel_and_world_prompts_give_the_same_mask(seg, vols):
    path, v = vols["oblique"]
    aff = v.affine
    m = v.labels == 2
    idx = np.argwhere(m)
    centre = idx[np.argmin(np.abs(idx - idx.mean(0)).sum(1))].astype(float)
    lo, hi = idx.min(0).astype(float), idx.max(0).astype(float)
    world = lambda p: (aff[:3, :3] @ np.asarray(p) + aff[:3, 3]).tolist()  # noqa: E731
    voxel_objs = [VolumeObject(1, "points", points=(tuple(centre),), labels=(1,)),
                  VolumeObject(2, "box3d", box3d=(*lo, *hi))]
    # world-space box3d corners: the voxel box's corners mapped by an oblique affine, so take the extremes
    corners = np.array([world([lo[0] if c & 1 == 0 else hi[0], lo[1] if c & 2 == 0 else hi[1],
                               lo[2] if c & 4 == 0 else hi[2]]) for c in range(8)])
    world_objs = [VolumeObject(1, "points", points=(tuple(world(centre)),), labels=(1,), space="world"),
                  VolumeObject(2, "box3d", box3d=(*corners.min(0), *corners.max(0)), space="world")]
    _, a = _run(seg, path, voxel_objs[:1])
    _, b = _run(seg, path, world_objs[:1])
    assert a.labels.any()
    np.testing.assert_array_equal(a.labels, b.labels)
    ras_vol = make_volume(3, SHAPE, orientation="RAS")  # box3d: an axis-aligned affine, so corners are exact
    path_r = vols["RAS"][0]
    w = lambda p: (ras_vol.affine[:3, :3] @ np.asarray(p) + ras_vol.affine[:3, 3]).tolist()  # noqa: E731
    _, c = _run(seg, path_r, [voxel_objs[1]])
    _, d = _run(seg, path_r, [VolumeObject(2, "box3d", box3d=(*w(lo), *w(hi)), space="world")])
    assert c.labels.any()
    np.testing.assert_array_equal(c.labels, d.labels)


def test_dicom_series_and_the_nifti_of_the_same_data_give_the_same_mask(seg, vols, tmp_path):
    (p_nii, v), (p_dcm, _) = vols["RAS"], vols["dicom"]
    vn, vd = load_volume(p_nii), load_volume(p_dcm)
    assert vd.modality == "CT" and vn.modality is None
    np.testing.assert_allclose(vd.affine, vn.affine, atol=1e-4)
    np.testing.assert_array_equal(vd.data, vn.data)
    objs = [_key_box(v.labels, 1), _key_box(v.labels, 5)]
    rn, rd = segment_volume(seg, vn, objs, choose_window(vn.data)[0]), segment_volume(seg, vd, objs,
                                                                                       choose_window(vd.data)[0])
    np.testing.assert_array_equal(rn.labels, rd.labels)
    out = save_segmentation(tmp_path / "series_seg.nii.gz", rd.labels, vd)
    np.testing.assert_allclose(nib.load(str(out)).affine, v.affine, atol=1e-4)


def test_real_dicom_series_from_pydicom_load_with_their_modality():
    ct = load_volume(DICOMDIR_TESTS / "98892001" / "CT5N")
    assert ct.modality == "CT" and ct.shape == (16, 16, 5)
    assert choose_window(ct.data, "auto", ct.modality)[1].startswith("auto: CT (DICOM Modality CT)")
    # MR700 holds 7 projection images, each at another angle: not a volume (a stack of them would place
    # every slice wrongly), so each is a series of its own and the folder is refused with them listed
    with pytest.raises(ImageError, match="holds 7 DICOM series"):
        load_volume(DICOMDIR_TESTS / "98892003" / "MR700")


def test_real_mr_from_nibabel_segments_and_keeps_its_affine(seg, tmp_path):
    path = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    vol = load_volume(path)
    window, why = choose_window(vol.data, "auto")
    assert "MR-like" in why
    x, y, z = vol.file_shape
    res = segment_volume(seg, vol, [VolumeObject(1, "box3d", box3d=(x / 4, y / 4, z / 3, 3 * x / 4, 3 * y / 4,
                                                                     2 * z / 3))], window)
    out = save_segmentation(tmp_path / "anat_seg.nii.gz", res.labels, vol)
    got, src = nib.load(str(out)), nib.load(str(path))
    assert got.shape == src.shape
    np.testing.assert_allclose(got.affine, src.affine, atol=1e-5)
    assert int(got.header["qform_code"]) == int(src.header["qform_code"]) == 2  # aligned-anat codes kept


# ---------------------------------------------------------------- bad input
def test_bad_volumes_give_clear_errors(tmp_path):
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), str(flat))
    with pytest.raises(ImageError, match="2D image"):
        load_volume(flat)
    nocode = tmp_path / "nocode.nii.gz"
    img = nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, str(nocode))
    with pytest.raises(ImageError, match="no usable affine"):
        load_volume(nocode)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ImageError, match="cannot read"):
        load_volume(corrupt)
    with pytest.raises(ImageError, match="holds 3 DICOM series"):
        load_volume(DICOMDIR_TESTS / "98892003" / "MR1")
    with pytest.raises(ImageError, match="not a volume"):
        (tmp_path / "x.png").write_bytes(b"png")
        load_volume(tmp_path / "x.png")


def test_prompts_outside_the_volume_or_slice_out_of_range_are_named(seg, vols):
    path, _ = vols["RAS"]
    vol = load_volume(path)
    win = choose_window(vol.data)[0]
    with pytest.raises(PromptError, match=r"label 7.*slice 20 is out of range; axis 2 has 20 slices"):
        segment_volume(seg, vol, [VolumeObject(7, "box", box=(1, 1, 5, 5), slice=20)], win)
    with pytest.raises(PromptError, match=r"label 3.*point \[70.0, 5.0, 5.0\] \(voxel\) lies outside the volume"):
        segment_volume(seg, vol, [VolumeObject(3, "points", points=((70.0, 5.0, 5.0),), labels=(1,))], win)
    with pytest.raises(PromptError, match="box3d .* lies outside the volume"):
        segment_volume(seg, vol, [VolumeObject(3, "box3d", box3d=(100, 100, 100, 110, 110, 110))], win)
    # one rule with segment's 2D boxes (issue 32): a box3d running past the volume is refused, not clipped
    with pytest.raises(PromptError, match=r"box3d .* runs 2\d\.\d voxels past the volume \(64 x 64 x 20 voxels"):
        segment_volume(seg, vol, [VolumeObject(3, "box3d", box3d=(10, 10, 5, 30, 30, 40))], win)
    inside = segment_volume(seg, vol, [VolumeObject(3, "box3d", box3d=(10, 10, 0, 30, 30, 19.4))], win)
    assert inside.labels.any()  # the faces of the volume (and rounding) are fine


@pytest.mark.parametrize("doc, message", [
    ({"objects": [{"box": [1, 2, 3, 4], "slice": 1}]}, "label must be an integer"),
    ({"objects": [{"label": 1, "box": [1, 2, 3, 4]}]}, "a box needs 'slice'"),
    ({"objects": [{"label": 1, "box": [1, 2, 3, 4], "slice": 0, "space": "world"}]}, "voxel space"),
    ({"objects": [{"label": 1, "box3d": [1, 2, 3, 4, 5, 6], "points": [[1, 2, 3]]}]}, "exactly one of"),
    ({"objects": [{"label": 1, "points": [[1, 2, 3]], "labels": [0]}]}, "at least one positive"),
    ({"objects": [{"label": 1, "box3d": [5, 2, 3, 4, 5, 6]}]}, "x0 <= x1"),
    ({"objects": [{"label": 1, "box3d": [1, 2, 3, 4, 5, 6]}, {"label": 1, "mask": "m.nii.gz"}]}, "used by two"),
    ({"objects": [{"label": 1, "points": [[1, 2]]}]}, r"points\[0\] \[x, y, z\]"),
    ({"objects": [{"label": 1, "box3d": [1, 2, 3, 4, 5, 6], "spcae": "world"}]}, "unknown key"),
])
def test_prompt_schema_errors(doc, message):
    with pytest.raises(PromptError, match=message):
        parse_objects(doc, "prompts.json")


# ---------------------------------------------------------------- intensity, metrics
def test_windows_presets_and_auto():
    hu = make_volume(0, (32, 32, 8)).data.astype(np.float32)
    w, why = choose_window(hu, "auto")
    assert "CT" in why and (w.lo, w.hi) == (-160.0, 240.0)
    w, why = choose_window(hu, "1500,-600")
    assert (w.lo, w.hi) == (-1350.0, 150.0)
    assert choose_window(hu, "bone")[0].lo == -500.0
    with pytest.raises(ConfigError, match="unknown window 'soft-tissue'"):
        choose_window(hu, "soft-tissue")
    mr = np.random.default_rng(0).gamma(2.0, 100.0, (32, 32, 8)).astype(np.float32)
    mr[:, :, 4] *= 3  # one bright slice: a per-slice stretch would hide it, a volume window does not
    w, why = choose_window(mr, "auto")
    assert "MR-like" in why
    assert w(mr[:, :, 4]).mean() > 1.5 * w(mr[:, :, 3]).mean()


def test_dice_and_nsd_on_hand_built_masks():
    a = np.zeros((20, 20, 20), bool)
    a[5:15, 5:15, 5:15] = True
    b = np.zeros_like(a)
    b[5:15, 5:15, 6:16] = True  # shifted one voxel along z: 900 of 1000 voxels shared
    assert dice_3d(a, a) == 1.0
    assert dice_3d(a, b) == pytest.approx(0.9, abs=1e-6)
    # 488 surface voxels each; the 100 on the outer face and the 64 inside the far face are 1 voxel off
    assert surface_dice(a, b, (1, 1, 1), tolerance=0.5) == pytest.approx(324 / 488, abs=1e-4)
    assert surface_dice(a, b, (1, 1, 1), tolerance=1.0) == pytest.approx(1.0)
    c = np.zeros_like(a)
    c[6:16, 5:15, 5:15] = True  # shifted along x, where voxels are 0.5 mm: within 0.6 mm, not within 0.4 mm
    assert surface_dice(a, c, (0.5, 1, 1), tolerance=0.6) == pytest.approx(1.0)
    assert surface_dice(a, c, (0.5, 1, 1), tolerance=0.4) == pytest.approx(324 / 488, abs=1e-4)
    assert dice_3d(np.zeros_like(a), np.zeros_like(a)) == 1.0 and surface_dice(a, np.zeros_like(a), (1, 1, 1)) == 0


def test_propagation_follows_the_object_and_stops_where_it_ends(seg, vols):
    path, v = vols["RAS"]
    vol, res = _run(seg, path, [_key_box(v.labels, 5), _key_box(v.labels, 4)])
    spleen = v.labels == 4
    zs = np.nonzero(spleen.any(axis=(0, 1)))[0]
    got = np.nonzero((res.labels == 4).any(axis=(0, 1)))[0]
    assert dice_3d(res.labels == 5, v.labels == 5) > 0.85
    assert dice_3d(res.labels == 4, spleen) > 0.7
    assert zs.min() - 1 <= got.min() and got.max() <= zs.max() + 1  # stopped at the spleen's ends
    assert len(got) >= len(zs) - 2
    assert res.encoder_passes <= SHAPE[2]  # one encoder pass per slice for both objects together


def test_fusion_votes_three_planes_and_survives_an_object_found_nowhere(seg, vols):
    from samprompt.domains.medical import PropagationSettings

    path, v = vols["LPS"]
    vol = load_volume(path)
    window = choose_window(vol.data)[0]
    air = VolumeObject(9, "box", box=(0, 0, 2, 2), slice=0)  # a corner of air: SAM finds little or nothing there
    objs = [_key_box(v.labels, 4), air]
    one = segment_volume(seg, vol, objs, window)
    fused = segment_volume(seg, vol, objs, window, PropagationSettings(fuse=True))
    assert fused.encoder_passes > one.encoder_passes  # the coronal and sagittal passes ran
    truth = vol.from_file_order(v.labels == 4)
    assert dice_3d(fused.masks[4], truth) > max(0.75, dice_3d(one.masks[4], truth) - 0.02)  # a large organ
    assert fused.masks[9].sum() <= one.masks[9].sum() + 50


def test_a_coarse_mask_prompt_is_refined_inside_its_slices(seg, vols, tmp_path):
    import cv2

    path, v = vols["LPS"]
    spleen = v.labels == 4
    coarse = np.stack([cv2.dilate(spleen[:, :, k].astype(np.uint8), np.ones((5, 5), np.uint8))
                       for k in range(SHAPE[2])], axis=2)
    mask_file = save_nifti(tmp_path / "coarse.nii.gz", coarse, v.affine)
    doc = {"objects": [{"label": 4, "mask": "coarse.nii.gz"}]}
    (obj,) = parse_objects(doc, "p.json", base=tmp_path)
    assert obj.mask == str(mask_file)
    vol, res = _run(seg, path, [obj])
    got = vol.to_file_order(res.masks[4])
    assert dice_3d(got, spleen) > 0.7
    on = coarse.any(axis=(0, 1))
    assert not got[:, :, ~on].any()  # nothing on slices the coarse mask leaves empty
    ii, jj = np.nonzero(coarse.any(axis=2))
    assert not got[: ii.min()].any() and not got[ii.max() + 1 :].any()  # nor outside its extent
    assert not got[:, : jj.min()].any() and not got[:, jj.max() + 1 :].any()
    wrong = save_nifti(tmp_path / "wrong.nii.gz", coarse[:-1], v.affine)
    with pytest.raises(PromptError, match="must be on the volume's grid"):
        _run(seg, path, [VolumeObject(4, "mask", mask=str(wrong))])


def test_a_datalist_json_and_a_dask_cluster_run_like_a_folder(vols, tmp_path):
    pytest.importorskip("distributed")
    from samprompt.domains.medical import VolumeJob, volume_items
    from samprompt.jobs import SegmenterSpec, run_job

    (tmp_path / "imagesTr").mkdir()
    for o in ("RAS", "LPS"):
        shutil.copy(vols[o][0], tmp_path / "imagesTr" / f"ct_{o}.nii.gz")
    datalist = {"training": [{"image": f"./imagesTr/ct_{o}.nii.gz", "label": "unused"} for o in ("RAS", "LPS")],
                "test": []}
    (tmp_path / "dataset.json").write_text(json.dumps(datalist))
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({f"ct_{o}": {"objects": [{"label": 5, **_as_json(_key_box(vols[o][1].labels, 5))}]}
                                   for o in ("RAS", "LPS")}))
    items = volume_items(tmp_path / "dataset.json", prompts)
    assert [i.id for i in items] == ["ct_RAS", "ct_LPS"]
    local = run_job(items, tmp_path / "local", segmenter=SegmenterSpec(threads=1), settings=VolumeJob(),
                    progress=False)
    dask = run_job(items, tmp_path / "dask", segmenter=SegmenterSpec(), settings=VolumeJob(), workers=1,
                   progress=False)
    assert local.done == dask.done == 2
    for i in items:
        assert (tmp_path / "dask" / f"{i.id}_seg.nii.gz").read_bytes() == \
            (tmp_path / "local" / f"{i.id}_seg.nii.gz").read_bytes()


# ---------------------------------------------------------------- jobs and CLI
def _folder(tmp_path, vols):
    d = tmp_path / "in"
    d.mkdir()
    for o in ("RAS", "LPS"):
        shutil.copy(vols[o][0], d / f"ct_{o}.nii.gz")
    shutil.copytree(vols["dicom"][0], d / "series")
    (d / "flat.nii.gz").write_bytes((vols["RAS"][0]).read_bytes()[:200])  # a truncated file
    prompts = {n: {"objects": [{"label": 5, "name": "aorta", **_as_json(_key_box(vols[o][1].labels, 5))}]}
               for n, o in (("ct_RAS", "RAS"), ("ct_LPS", "LPS"), ("series", "RAS"), ("flat", "RAS"))}
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    return d, tmp_path / "prompts.json"


def _as_json(o: VolumeObject) -> dict:
    return {"box": [int(v) for v in o.box], "slice": int(o.slice)}


def test_medical_command_runs_a_folder_records_the_bad_volume_and_resumes(vols, tmp_path, capsys):
    d, prompts = _folder(tmp_path, vols)
    out = tmp_path / "out"
    args = ["medical", str(d), "--prompts", str(prompts), "--out", str(out), "--threads", "1"]
    assert cli.main(args) == 1  # the truncated file fails; the rest are done
    failures = json.loads((out / "failures.json").read_text())
    assert list(failures) == ["flat.nii.gz"] and "cannot read" in failures["flat.nii.gz"]
    for name in ("ct_RAS", "ct_LPS", "series"):
        img = nib.load(str(out / f"{name}_seg.nii.gz"))
        assert (np.asarray(img.dataobj) == 5).sum() > 100
    assert json.loads((out / "labels.json").read_text()) == {"5": "aorta"}
    _check_preview(out / "ct_RAS_preview.png")
    text = capsys.readouterr().out
    assert "series: auto: CT (DICOM Modality CT)" in text and "5/aorta" in text
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert cli.main(args) == 1
    assert len((out / "manifest.jsonl").read_text().splitlines()) == len(lines) + 1  # only the failed one reran
    assert "3 already done" in capsys.readouterr().out


def _check_preview(path: Path) -> None:
    import cv2

    pic = cv2.imread(str(path))
    assert pic is not None and pic.shape[0] == 256 and pic.shape[1] > 3 * 100


def test_the_three_plane_preview_is_at_square_millimetres_and_radiological():
    """Issue 32: a picture after `samprompt medical`; the patient's right (high x on the RAS grid) on its left."""
    from samprompt.domains.medical.preview import three_plane_preview
    from samprompt.masks import colour

    image = np.full((40, 30, 10), 100, np.uint8)
    labels = np.zeros(image.shape, np.uint8)
    labels[28:36, 4:12, 3:7] = 2  # on the patient's right, posterior
    pic = three_plane_preview(image, labels, (1.0, 1.0, 3.0))
    widths = [round(256 * 40 / 30), round(256 * 40 / 30), round(256 * 30 / 30)]  # axial, coronal, sagittal
    assert pic.shape == (256, sum(widths) + 8, 3)
    gaps = [widths[0], widths[0] + 4 + widths[1]]
    for g in gaps:
        assert (pic[:, g:g + 4] == 255).all()
    tinted = (np.abs(pic.astype(int) - 100).sum(axis=2) > 30)
    tinted[:20] = False  # the plane names
    axial = np.nonzero(tinted[:, : widths[0]])
    assert axial[1].mean() < widths[0] / 2  # the right on the left
    assert axial[0].mean() > 128  # posterior down (anterior up)
    coronal = np.nonzero(tinted[:, gaps[0] + 4: gaps[1]])
    assert coronal[1].mean() < widths[1] / 2
    assert np.allclose(pic[axial][0], np.round(0.55 * 100 + 0.45 * np.array(colour(1))), atol=2) or \
        tuple(pic[axial][0]) == colour(1)  # label 2 in its colour (filled, or the outline)
    assert three_plane_preview(image, np.zeros_like(labels), (1, 1, 3)).shape == pic.shape  # nothing labelled


def test_medical_command_usage_errors(vols, tmp_path, capsys):
    path = vols["RAS"][0]
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"objects": [{"label": 1, "box3d": [1, 1, 1, 9, 9, 9]}]}))
    assert cli.main(["medical", str(path), "--prompts", str(p), "--window", "lungs", "--out", str(tmp_path / "o")]) == 2
    assert "unknown window 'lungs'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    p.write_text(json.dumps({"other": {"objects": [{"label": 1, "box3d": [1, 1, 1, 9, 9, 9]}]}}))
    assert cli.main(["medical", str(path), "--prompts", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "none of its volume names (other)" in capsys.readouterr().err
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((8, 8), np.uint8))
    assert cli.main(["medical", str(tmp_path / "photo.png"), "--prompts", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "is a 2D image, not a volume" in capsys.readouterr().err


def test_kill_then_rerun_gives_the_uninterrupted_outputs(vols, tmp_path, kill_cli_after):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(8):
        shutil.copy(vols["RAS"][0], d / f"v{i}.nii.gz")
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"objects": [{"label": 5, **_as_json(_key_box(vols["RAS"][1].labels, 5))}]}))
    args = ["medical", str(d), "--prompts", str(p), "--quiet", "--threads", "1"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert cli.main([*args, "--out", str(ref)]) == 0
    done_at_kill = kill_cli_after([*args, "--out", str(out)], out / "manifest.jsonl", 2)
    assert 2 <= done_at_kill < 8, "the run should have been killed part-way"
    assert cli.main([*args, "--out", str(out)]) == 0
    for i in range(8):
        assert (out / f"v{i}_seg.nii.gz").read_bytes() == (ref / f"v{i}_seg.nii.gz").read_bytes()
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_eval_on_a_volume_folder_reports_dice_nsd_and_the_oracle(tmp_path, capsys):
    from samprompt.synthetic.volumes import write_volume_dataset

    data = write_volume_dataset(tmp_path / "v", 1, seed=7, shape=(48, 48, 12))
    assert cli.main(["eval", str(data), "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["modes"]) == {"key_box", "box3d", "points", "oracle_box"}
    assert report["dice"] == report["modes"]["key_box"]["dice"] and 0 < report["nsd"] <= 1
    assert report["modes"]["oracle_box"]["objects"] == report["modes"]["key_box"]["objects"] >= 5
    assert report["modes"]["oracle_box"]["dice"] > 0.5
    # one mode (issue 32: four modes ran, with no estimate); the bar counts volume x mode steps
    assert cli.main(["eval", str(data), "--prompt", "box3d", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "1 volume(s) x 1 prompt mode(s) (box3d)" in captured.err and "box3d" in captured.out
    assert "key_box" not in captured.out
    assert cli.main(["eval", str(data), "--prompt", "clicks"]) == 2
    assert "is for images" in capsys.readouterr().err
    from samprompt.cli.evaluate import VOLUME_MODES
    from samprompt.domains.medical.evaluate import MODES

    assert VOLUME_MODES == MODES


def test_synth_writes_volumes_and_a_dicom_series_that_load_alike(tmp_path, capsys):
    assert cli.main(["synth", str(tmp_path / "s"), "--volumes", "-n", "3", "--shape", "24,20,6", "--dicom"]) == 0
    for i in range(3):  # RAS, LPS, oblique: the series holds the same voxels in the same order
        a = load_volume(tmp_path / "s" / "images" / f"ct_{i:04d}.nii.gz")
        b = load_volume(tmp_path / "s" / "dicom" / f"ct_{i:04d}")
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
        np.testing.assert_allclose(a.file_affine, b.file_affine, atol=1e-4)
    assert nib.load(str(tmp_path / "s" / "masks" / "ct_0000.nii.gz")).get_data_dtype() == np.uint8
    prompts = json.loads((tmp_path / "s" / "prompts.json").read_text())
    assert sorted(prompts) == ["ct_0000", "ct_0001", "ct_0002"]
    assert {o["name"] for o in prompts["ct_0000"]["objects"]} <= {"liver", "kidney_right", "kidney_left", "spleen",
                                                                   "aorta", "lesion"}
