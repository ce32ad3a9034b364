"""Defect detection: metrics on hand-built cases, map -> prompts, the whole pipeline on generated categories."""

import json
import shutil

import cv2
import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.metrics import f1_score, roc_auc_score  # noqa: E402

from samprompt import cli  # noqa: E402
from samprompt.domains.defects import (  # noqa: E402
    GivenMap,
    f1,
    find_categories,
    greedy_coreset,
    image_auroc,
    map_to_prompts,
    pixel_auroc,
    pixel_f1_max,
    pro,
    segment_defects,
)
from samprompt.errors import SampromptError  # noqa: E402
from samprompt.segmenter import Segmenter  # noqa: E402
from samprompt.synthetic.defects import make_inspection_image, write_defect_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_defect_dataset(tmp_path_factory.mktemp("def") / "data", ("grid", "disc"), train=8, test_good=4,
                                per_defect=2)


# ------------------------------------------------------------------ metrics
def test_pro_on_a_hand_built_case_with_a_known_value():
    truth = np.zeros((10, 10), bool)
    truth[0, :2] = True  # one region of two pixels
    amap = np.zeros((10, 10))
    amap[0, 0], amap[0, 1] = 1.0, 0.5  # half the region at 1.0, half at 0.5
    normal = np.argwhere(~truth)[:10]
    amap[normal[:, 0], normal[:, 1]] = 0.75  # 10 of the 98 normal pixels at 0.75
    # curve (FPR, PRO): (0, .5) -> (10/98, .5) -> (10/98, 1) -> (1, 1); area to 0.3 = .5 * 10/98 + (0.3 - 10/98)
    expect = (0.5 * 10 / 98 + (0.3 - 10 / 98)) / 0.3
    assert pro([truth], [amap]) == pytest.approx(expect)
    assert pro([truth], [truth.astype(float)]) == pytest.approx(1.0)  # a perfect map
    assert pro([truth], [1.0 - truth]) == pytest.approx(0.0)  # an inverted one
    # two regions, an 8-px one found and a 1-px one missed: PRO averages per region, not per pixel.
    # Curve (0, .5) at t = 1, then (1, 1) at t = 0; trapezoid to 0.3: (0.5 + 0.65) / 2 * 0.3, / 0.3
    two = np.zeros((10, 10), bool)
    two[0, :8] = True
    two[9, 9] = True
    found = np.zeros((10, 10))
    found[0, :8] = 1.0
    assert pro([two], [found]) == pytest.approx((0.5 + 0.65) / 2)
    assert pro([np.zeros((4, 4), bool)], [np.zeros((4, 4))]) is None


def test_auroc_and_f1_agree_with_scikit_learn(rng):
    truth = [rng.random((16, 16)) > 0.8 for _ in range(3)]
    maps = [t * 0.5 + rng.random((16, 16)) for t in truth]
    y, s = np.concatenate([t.ravel() for t in truth]), np.concatenate([m.ravel() for m in maps])
    assert pixel_auroc(truth, maps) == pytest.approx(roc_auc_score(y, s))
    assert f1(truth, [m > 0.9 for m in maps]) == pytest.approx(f1_score(y, s > 0.9))
    best = max(f1_score(y, s >= t) for t in np.unique(s))
    assert pixel_f1_max(truth, maps) == pytest.approx(best)
    assert image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert image_auroc([1, 1], [0.1, 0.2]) is None  # one class only


# ------------------------------------------------------------------ map -> prompts -> masks
def test_map_to_prompts_finds_each_blob_with_its_peak_and_box():
    amap = np.zeros((64, 80), np.float32)
    amap[10:20, 10:30] = 1.0
    amap[14, 25] = 2.0  # the peak of the first blob
    amap[40:50, 60:70] = 1.5
    amap[60, 0] = 3.0  # a one-pixel speck: below min_region
    prompts = map_to_prompts(amap, 0.5, min_region=16)
    assert len(prompts) == 2
    first = min(prompts, key=lambda p: p.box[0])
    np.testing.assert_allclose(first.points, [[25.5, 14.5]])
    x0, y0, x1, y1 = first.box
    assert x0 < 10 and y0 < 10 and x1 > 30 and y1 > 20 and x0 >= 0  # grown around the region
    assert map_to_prompts(amap, 5.0) == []


def test_segment_defects_masks_a_known_defect_and_drops_what_the_map_does_not_support(tiny_sam):
    seg = Segmenter(tiny_sam)
    img, truth = make_inspection_image("grid", 7, "hole")
    amap = truth.astype(np.float32)
    import cv2

    amap = cv2.GaussianBlur(cv2.dilate(amap, None, iterations=3), (0, 0), 3)
    res = segment_defects(seg, img, amap, 0.2)
    assert len(res.masks) == 1 and res.score == pytest.approx(float(amap.max()))
    inter = (res.masks[0] & truth).sum()
    assert inter / (res.masks[0] | truth).sum() > 0.4
    none = segment_defects(seg, img, np.zeros_like(amap), 0.2)
    assert len(none.masks) == 0 and none.labels.max() == 0


def test_greedy_coreset_keeps_the_spread_points(rng):
    pts = np.concatenate([rng.normal(0, 0.01, (50, 4)), [[5, 5, 5, 5]], [[-5, -5, -5, -5]]]).astype(np.float32)
    idx = greedy_coreset(pts, 3 / 52)
    assert len(idx) == 3 and {50, 51} <= set(idx.tolist())


def test_a_user_supplied_map_plugs_in():
    img = np.zeros((8, 10, 3), np.uint8)
    given = GivenMap({"good_000": np.ones((8, 10))})
    assert given.score_named("good_000", img).shape == (8, 10)
    with pytest.raises(SampromptError, match="is 3x3"):
        GivenMap(lambda rgb: np.ones((3, 3))).score_named("x", img)


# ------------------------------------------------------------------ the pipeline
def test_few_shot_pipeline_on_generated_categories(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["defects", str(data), "--out", str(out), "--shots", "4", "--json", "--threads", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["categories"]) == {"grid", "disc"}
    for name, m in doc["categories"].items():
        assert set(m) >= {"image_auroc", "pixel_auroc", "pro", "pixel_f1_max", "pixel_f1", "mask_f1"}
        assert 0 <= m["pro"] <= 1 and m["images"] == 4 + 2 * (5 if name == "grid" else 4)
    assert doc["categories"]["grid"]["image_auroc"] >= 0.8, doc["categories"]["grid"]
    assert doc["mean"]["image_auroc"] == pytest.approx(
        np.mean([m["image_auroc"] for m in doc["categories"].values()]), abs=1e-4)
    files = {p.name for p in (out / "grid").iterdir()}
    assert {"hole_000_map.png", "hole_000_labels.png", "hole_000_overlay.png", "good_000_map.png",
            "report.html", "metrics.json"} <= files
    cat = json.loads((out / "grid" / "metrics.json").read_text())
    assert cat["shots"] == 4 and "4 held-out good images" in cat["threshold_rule"]
    assert "hole_000_overlay.png" in (out / "grid" / "report.html").read_text()
    # a rerun resumes: every image skipped, the same metrics
    assert cli.main(["defects", str(data), "--out", str(out), "--shots", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc


def test_zero_shot_runs_without_normal_images(data, tmp_path, capsys):
    assert cli.main(["defects", str(data), "--category", "grid", "--out", str(tmp_path / "z"), "--shots", "0",
                     "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["categories"]["grid"]
    assert m["image_auroc"] is not None and m["pixel_auroc"] > 0.5
    assert "mean + 3 std" in json.loads((tmp_path / "z" / "grid" / "metrics.json").read_text())["threshold_rule"]


def test_bad_categories_and_files_give_clear_errors_and_the_rest_goes_on(data, tmp_path, capsys):
    d = tmp_path / "d"
    shutil.copytree(data / "grid", d / "grid")
    (d / "empty" / "train" / "good").mkdir(parents=True)  # an empty category
    shutil.copytree(data / "disc", d / "nogt")
    shutil.rmtree(d / "nogt" / "ground_truth")  # a category without ground truth
    (d / "grid" / "test" / "hole" / "notes.txt").write_text("not an image")  # a non-image file
    import cv2

    cv2.imwrite(str(d / "grid" / "ground_truth" / "scratch" / "000_mask.png"), np.zeros((10, 12), np.uint8))
    with pytest.warns(UserWarning, match="notes.txt: not an image"):
        rc = cli.main(["defects", str(d), "--out", str(tmp_path / "o"), "--shots", "2", "--json"])
    assert rc == 1
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert "no test images" in doc["categories"]["empty"]["error"]
    assert "mask 000_mask.png is 12x10" in cap.err  # the wrong-size mask fails its image only
    assert doc["categories"]["grid"]["images"] == 4 + 2 * 5 - 1
    nogt = doc["categories"]["nogt"]
    assert nogt["image_auroc"] is not None and nogt["pixel_auroc"] is None and "no ground-truth" in nogt["note"]
    (d / "grid" / "test" / "hole" / "notes.txt").unlink()
    with pytest.raises(SampromptError, match="no category 'nope'"):
        find_categories(d, ["nope"])


def test_a_plain_folder_of_images_runs_zero_shot(data, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    for p in sorted((data / "grid" / "test").rglob("*.png"))[:6]:
        shutil.copy(p, plain / f"{p.parent.name}_{p.name}")
    assert cli.main(["defects", str(plain), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert "running zero-shot" in capsys.readouterr().err
    m = json.loads((tmp_path / "o" / "plain" / "metrics.json").read_text())
    assert m["images"] == 6 and m["image_auroc"] is None and "no defective images" in m["note"]


def test_maps_from_another_detector_plug_in_with_maps(data, tmp_path, capsys):
    import cv2

    from samprompt.domains.defects import read_category
    from samprompt.images import read_label_map

    maps = tmp_path / "maps" / "grid"
    maps.mkdir(parents=True)
    for t in read_category(data / "grid").test:  # a near-perfect detector: the truth, blurred
        truth = read_label_map(t.mask) > 0 if t.mask else np.zeros((256, 256), bool)
        np.save(maps / f"{t.id}.npy", cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 2))
    assert cli.main(["defects", str(data), "--category", "grid", "--maps", str(tmp_path / "maps"), "--out",
                     str(tmp_path / "o"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["categories"]["grid"]
    assert m["image_auroc"] == 1.0 and m["pixel_auroc"] > 0.95 and m["mask_f1"] > 0.5


@pytest.mark.slow
def test_a_dask_run_gives_the_in_process_metrics(data, tmp_path, capsys):
    pytest.importorskip("distributed")
    args = ["defects", str(data), "--category", "grid", "--shots", "2", "--json", "--quiet"]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert cli.main([*args, "--out", str(tmp_path / "b"), "--workers", "1"]) == 0
    dask = json.loads(capsys.readouterr().out)
    for d in (local, dask):
        d["categories"]["grid"].pop("seconds_per_image")
        d["mean"].pop("seconds_per_image")
    assert dask == local


def test_out_inside_the_dataset_is_refused(data, capsys):
    for out in (data, data / "grid", data / "grid" / "test"):
        assert cli.main(["defects", str(data), "--category", "grid", "--out", str(out)]) == 2
        assert "inside the input folder" in capsys.readouterr().err
    assert not (data / "grid" / "metrics.json").exists() and not (data / "metrics.json").exists()


def test_metrics_agree_with_anomalib(rng):
    """AUROC, AUPRO (to FPR 0.3) and F1-max against anomalib's own metric classes on the same maps."""
    pytest.importorskip("anomalib")
    import torch
    from anomalib.metrics.aupro import _AUPRO
    from anomalib.metrics.auroc import _AUROC
    from anomalib.metrics.f1_score import _F1Max

    truth = [rng.random((40, 48)) > 0.93 for _ in range(4)]
    truth = [cv2.dilate(t.astype(np.uint8), None).astype(bool) for t in truth]  # regions of several pixels
    maps = [t * 0.6 + rng.random(t.shape) for t in truth]
    tt = torch.tensor(np.stack(truth)).int()
    mm = torch.tensor(np.stack(maps), dtype=torch.float32)
    aupro = _AUPRO(fpr_limit=0.3)
    aupro.update(mm, tt)
    f1max, auroc = _F1Max(), _AUROC()
    f1max.update(mm.flatten(), tt.flatten())
    auroc.update(mm.flatten(), tt.flatten())
    maps32 = [m.astype(np.float32) for m in maps]
    assert pro(truth, maps32) == pytest.approx(float(aupro.compute()), abs=2e-3)
    assert pixel_f1_max(truth, maps32) == pytest.approx(float(f1max.compute()), abs=1e-4)
    assert pixel_auroc(truth, maps32) == pytest.approx(float(auroc.compute()), abs=1e-4)


def test_a_defect_verdict_without_an_outline_says_why():
    """Issue 32: an image scored 19.66 against 6.55 was listed with "0 instance(s)" and no reason."""
    from samprompt.domains.defects.generate import DefectSettings, segment_defects
    from samprompt.domains.defects.job import result_record
    from samprompt.jobs import WorkItem

    amap = np.zeros((64, 64), np.float32)
    amap[30:32, 30:32] = 20.0  # a 4-px hot spot: above the threshold, under min_region
    res = segment_defects(None, np.zeros((64, 64, 3), np.uint8), amap, 6.55, DefectSettings(min_region=16))
    rec = result_record(res, WorkItem("x", "x.png", None))
    assert rec["verdict"] == "defect" and rec["n_masks"] == 0
    assert "region of 4 px, under min_region 16" in rec["why_no_instance"]
