"""Defects on a production line: instances never worse than the map, parts in any pose, a fitted model that
inspects new images (fit -> inspect equals the one-shot run), --watch, thresholds from a false-alarm rate, VisA."""

import json
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("sklearn")

from samprompt import cli  # noqa: E402
from samprompt.domains.defects import find_categories  # noqa: E402
from samprompt.domains.defects.generate import DefectSettings, segment_defects  # noqa: E402
from samprompt.domains.defects.model import DefectModel, calibrate  # noqa: E402
from samprompt.domains.defects.pose import PoseAligner, needs_alignment  # noqa: E402
from samprompt.errors import CheckpointError, ConfigError  # noqa: E402
from samprompt.segmenter import Segmenter  # noqa: E402
from samprompt.synthetic.defects import make_inspection_image, write_defect_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_defect_dataset(tmp_path_factory.mktemp("lines") / "data", ("grid", "flange"), train=10,
                                test_good=3, per_defect=1)


@pytest.fixture(scope="module")
def seg():
    return Segmenter()


class FixedSam:
    """Stands in for a Segmenter whose masks are known: ``predict`` returns the given mask for every prompt."""

    def __init__(self, mask, iou=0.9):
        self.mask, self.iou = mask, iou

    def predict(self, rgb, prompts, multimask=False):
        return [SimpleNamespace(mask=self.mask.copy(), score=self.iou) for _ in prompts]


def _blob_map(h=64, w=64):
    amap = np.zeros((h, w), np.float32)
    amap[20:36, 20:36] = 1.0
    amap[26:30, 26:30] = 1.5  # the hot core (its half-height contour is the whole plateau)
    return amap


# ------------------------------------------------------------------ instances from map and SAM
def test_a_region_sam_cannot_outline_comes_out_as_the_region():
    amap, img = _blob_map(), np.zeros((64, 64, 3), np.uint8)
    part = np.zeros((64, 64), bool)
    part[4:60, 4:60] = True  # SAM returns the whole part: too broad, not on the map's hot part
    res = segment_defects(FixedSam(part), img, amap, 0.5)
    assert res.sources == ["map"] and len(res.masks) == 1
    np.testing.assert_array_equal(res.masks[0], amap > 0.5)  # exactly the thresholded region
    inst = res.instances()[0]
    assert inst["source"] == "map" and inst["iou"] is None and inst["box"] == [20, 20, 36, 36] and inst["area"] == 256
    assert res.verdict == "defect"


def test_sam_is_kept_where_it_sharpens_the_region_and_cut_to_its_neighbourhood():
    amap, img = _blob_map(), np.zeros((64, 64, 3), np.uint8)
    core = np.zeros((64, 64), bool)
    core[25:31, 25:31] = True  # on the hot core
    core[0:3, 60:64] = True  # plus a speck far away, which the cut removes
    res = segment_defects(FixedSam(core), img, amap, 0.5)
    assert res.sources == ["sam"] and res.instances()[0]["iou"] == 0.9
    expect = core.copy()
    expect[0:3, 60:64] = False
    np.testing.assert_array_equal(res.masks[0], expect)


def test_a_region_sam_sees_nothing_in_is_dropped_with_its_reason():
    amap, img = _blob_map(), np.zeros((64, 64, 3), np.uint8)
    speck = np.zeros((64, 64), bool)
    speck[50:52, 50:52] = True  # small and off the region
    res = segment_defects(FixedSam(speck), img, amap, 0.5)
    assert len(res.masks) == 0 and res.verdict == "defect"
    assert len(res.dropped) == 1 and "off its hot part" in res.dropped[0]["reason"]
    small = np.zeros((64, 64), np.float32)
    small[5:8, 5:8] = 2.0  # 9 px: under min_region
    res = segment_defects(FixedSam(speck), img, small, 0.5, DefectSettings(min_region=16))
    assert "under min_region 16" in res.dropped[0]["reason"]


def test_a_region_the_real_sam_cannot_see_still_gives_an_instance(seg):
    """A map hot where the image shows nothing distinct on a part: SAM answers with the part (or a large
    piece); the instance is the map's region, not nothing."""
    img, _ = make_inspection_image("disc", 3)  # a good disc: nothing to see
    amap = np.zeros(img.shape[:2], np.float32)
    amap[100:130, 90:120] = 2.0
    amap = cv2.GaussianBlur(amap, (0, 0), 3)
    res = segment_defects(seg, img, amap, 0.5)
    assert len(res.masks) == 1
    region = amap > 0.5
    inter = (res.masks[0] & region).sum()
    assert inter / region.sum() > 0.5, res.sources  # the region is covered, whichever source made it


# ------------------------------------------------------------------ pose
def test_pose_alignment_recovers_the_angle_and_is_chosen_for_parts_only():
    ref = make_inspection_image("flange", 0)[0]
    al = PoseAligner.from_reference(ref)
    h, w = ref.shape[:2]
    turned = cv2.warpAffine(ref, cv2.getRotationMatrix2D(al.centre, 70, 1), (w, h), borderMode=cv2.BORDER_REPLICATE)
    deg, _ = al.angle(turned)
    assert abs(((deg + 70 + 180) % 360) - 180) < 2  # turning back by -70 (mod 360) within 2 degrees
    back, m = al.align(turned)
    inner = np.s_[40:216, 40:216]
    assert np.abs(back[inner].astype(int) - ref[inner].astype(int)).mean() < 6
    ramp = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    np.testing.assert_allclose(PoseAligner.unalign(cv2.warpAffine(ramp, m, (w, h)), m)[inner], ramp[inner], atol=0.02)
    assert needs_alignment([make_inspection_image("flange", s)[0] for s in range(4)])[0]
    assert not needs_alignment([make_inspection_image("grid", s)[0] for s in range(4)])[0]
    use, gain = needs_alignment([make_inspection_image("disc", s)[0] for s in range(12)])
    assert use and 0 < gain < 0.1  # a round part lit from a side that turns with it: a small gain, aligned
    # alignment that would make the images less alike is not used: a threshold above the gain says no
    assert not needs_alignment([make_inspection_image("disc", s)[0] for s in range(12)], min_gain=gain + 1e-6)[0]


def test_a_good_part_at_eight_angles_raises_no_false_alarm_when_aligned(seg):
    good = [make_inspection_image("flange", s)[0] for s in range(12)]
    fresh = make_inspection_image("flange", 500)[0]
    turns = [cv2.warpAffine(fresh, cv2.getRotationMatrix2D((128, 128), a, 1), (256, 256),
                            borderMode=cv2.BORDER_REPLICATE) for a in range(0, 360, 45)]
    aligned = DefectModel.fit(seg, good[:4], good[4:], align="auto")
    assert aligned.config["align"]["used"]
    assert [aligned.inspect(t).verdict for t in turns] == ["ok"] * 8
    assert aligned.inspect(make_inspection_image("flange", 600, "missing")[0]).verdict == "defect"
    plain = DefectModel.fit(seg, good[:4], good[4:], align="off")
    assert sum(plain.inspect(t).verdict == "defect" for t in turns) >= 3  # what alignment prevents


# ------------------------------------------------------------------ thresholds
def test_calibrate_flags_at_most_the_rate_of_good_images():
    scores = np.arange(1, 101, dtype=float)  # 100 good images scoring 1..100
    t, rule = calibrate(scores, 0.05)
    assert (scores > t).sum() == 5 and t == 95 and "at most 5 flagged" in rule
    assert calibrate(scores, 0.0)[0] == 100
    with pytest.warns(UserWarning, match="1/10 at best"):
        assert calibrate(scores[:10], 0.05)[0] == 10  # too few images for 5 %: the maximum
    with pytest.raises(Exception, match=r"\[0, 1\)"):
        calibrate(scores, 1.5)


def test_the_false_alarm_rate_holds_on_fresh_good_images(seg):
    good = [make_inspection_image("grid", s)[0] for s in range(24)]
    fresh = [make_inspection_image("grid", 3000 + s)[0] for s in range(20)]
    model = DefectModel.fit(seg, good[:4], good[4:], max_false_alarm=0.1)
    assert model.config["max_false_alarm"] == 0.1 and model.config["good_images"] == 20
    assert "3th highest score of 20" in model.config["threshold_rule"]
    measured = np.mean([model.inspect(f).verdict == "defect" for f in fresh])
    strict = DefectModel.fit(seg, good[:4], good[4:], max_false_alarm=0.0)
    assert strict.threshold > model.threshold
    assert measured <= 0.25  # asked 0.1; 20 fresh images (docs/defects.md reports the measured rates)


# ------------------------------------------------------------------ fit once, inspect forever
def test_fit_then_inspect_equals_the_one_shot_run(data, tmp_path, capsys):
    one = tmp_path / "one"
    assert cli.main(["defects", str(data), "--category", "flange", "--shots", "4", "--out", str(one), "--quiet"]) == 0
    model_dir = tmp_path / "model"
    assert cli.main(["defects", "fit", str(data), "--category", "flange", "--shots", "4", "--out",
                     str(model_dir)]) == 0
    assert "pose alignment on" in capsys.readouterr().out
    cfg = json.loads((model_dir / "defect_model.json").read_text())
    assert cfg["model_id"].startswith("tiny:") and cfg["encoder"] and cfg["shots"] == 4 and cfg["good_images"] == 6
    insp = tmp_path / "insp"
    test = data / "flange" / "test"
    assert cli.main(["defects", "inspect", str(model_dir), f"{test}/*/*.png", "--out", str(insp), "--quiet"]) == 0
    results = [json.loads(line) for line in (insp / "results.jsonl").read_text().splitlines()]
    manifest = {r["id"]: r for r in map(json.loads, (one / "flange" / "manifest.jsonl").read_text().splitlines())}
    assert len(results) == len(manifest) == 3 + 4
    for r in results:  # ids are DEFECT_NAME in both
        ref = manifest[r["id"]]
        assert r["score"] == ref["score"] and r["verdict"] == ref["verdict"] and r["instances"] == ref["instances"]
        for suffix in ("_map.png", "_labels.png"):
            assert (insp / f"{r['id']}{suffix}").read_bytes() == (one / "flange" / f"{r['id']}{suffix}").read_bytes()
    assert {i["source"] for r in results for i in r["instances"]} <= {"sam", "map", "map+sam"}
    # the rerun resumes, and a refitted model (other threshold) redoes every image
    assert cli.main(["defects", "inspect", str(model_dir), f"{test}/*/*.png", "--out", str(insp)]) == 0
    assert "7 already done" in capsys.readouterr().out
    assert cli.main(["defects", "fit", str(data), "--category", "flange", "--shots", "4", "--out", str(model_dir),
                     "--overwrite", "--max-false-alarm", "0.2"]) == 0
    assert cli.main(["defects", "inspect", str(model_dir), f"{test}/*/*.png", "--out", str(insp)]) == 0
    assert "7 done" in capsys.readouterr().out


def test_a_model_fitted_with_another_sam_is_refused(data, tmp_path, seg, capsys):
    from samprompt.models import load_model

    model = DefectModel.fit(seg, [make_inspection_image("grid", s)[0] for s in range(3)], align="off")
    model.save(tmp_path / "m")
    other = load_model("tiny")
    other.samprompt_id = "tiny-retrained:0123456789abcdef"
    with pytest.raises(CheckpointError, match="fitted with the SAM model tiny:.*not tiny-retrained"):
        DefectModel.load(tmp_path / "m", Segmenter(other))
    cfg = json.loads((tmp_path / "m" / "defect_model.json").read_text())
    cfg["model_id"] = "vit_b:00000000"
    (tmp_path / "m" / "defect_model.json").write_text(json.dumps(cfg))
    assert cli.main(["defects", "inspect", str(tmp_path / "m"), str(data / "grid" / "test" / "good"),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fitted with the SAM model vit_b:00000000" in err


def test_bad_inputs_to_fit_and_inspect_give_one_line_and_exit_2(data, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    model_dir = tmp_path / "model"
    cases = [
        (["defects", "fit", str(empty), "--out", str(model_dir)], "and no images"),
        (["defects", "fit", str(data), "--category", "grid", "--shots", "0", "--out", str(model_dir)],
         "samprompt defects DATA --shots 0"),
        (["defects", "fit", str(data), "--out", str(model_dir)], "pick one with --category"),
        (["defects", "fit", str(data), "--category", "grid", "--out", str(data / "grid" / "x")], "inside the input folder"),
        (["defects", "inspect", str(tmp_path / "nope"), str(data), "--out", str(tmp_path / "o")], "no defect model"),
    ]
    for args, expect in cases:
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert expect in err and err.count("\n") == 1, (args, err)
    assert cli.main(["defects", "fit", str(data), "--category", "grid", "--shots", "2", "--out", str(model_dir)]) == 0
    capsys.readouterr()
    assert cli.main(["defects", "fit", str(data), "--category", "grid", "--out", str(model_dir)]) == 2
    assert "already holds a defect model" in capsys.readouterr().err
    # an image of another size fails that image, named, and the rest goes on
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(data / "grid" / "test" / "good" / "000.png", mixed / "a.png")
    cv2.imwrite(str(mixed / "b.png"), np.zeros((100, 120, 3), np.uint8))
    assert cli.main(["defects", "inspect", str(model_dir), str(mixed), "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    assert "b.png is 120x100, the model was fitted on 256x256" in capsys.readouterr().err
    # a corrupt model file
    (model_dir / "defect_model.safetensors").write_bytes(b"\x00" * 40)
    assert cli.main(["defects", "inspect", str(model_dir), str(mixed), "--out", str(tmp_path / "o3")]) == 2
    assert "is corrupt" in capsys.readouterr().err


def test_watch_inspects_files_that_arrive_and_never_a_half_written_one(data, tmp_path):
    model_dir = tmp_path / "model"
    assert cli.main(["defects", "fit", str(data), "--category", "grid", "--shots", "2", "--out", str(model_dir),
                     "--align", "off"]) == 0
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    src = sorted((data / "grid" / "test").rglob("*.png"))
    once = [sys.executable, "-m", "samprompt.cli", "defects", "inspect", str(model_dir), str(inbox), "--out", str(out)]
    args = [*once, "--watch", "--interval", "0.3"]

    def results():
        f = out / "results.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []

    def wait_for(n, timeout=60):
        end = time.time() + timeout
        while time.time() < end and len(results()) < n:
            time.sleep(0.1)
        return results()

    def watcher():
        # a shell's background job (`pytest ... &`) ignores SIGINT, and so would the watcher: give it Ctrl-C back
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    proc = watcher()
    try:
        shutil.copy(src[0], inbox / "a.png")
        assert [r["id"] for r in wait_for(1)] == ["a"]
        data_b = src[1].read_bytes()
        with open(inbox / "b.png", "wb") as f:  # written slowly, in two halves
            f.write(data_b[: len(data_b) // 2])
            f.flush()
            time.sleep(0.8)
            f.write(data_b[len(data_b) // 2:])
        shutil.copy(src[2], inbox / "c.png")
        got = wait_for(3)
        assert sorted(r["id"] for r in got) == ["a", "b", "c"]
        assert not (out / "failures.json").exists()  # b was read whole, never half
    finally:
        proc.send_signal(signal.SIGINT)
        out_text, err_text = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped watching" in err_text and "Traceback" not in err_text
    # a service manager stops it with SIGTERM, as cleanly (the line is printed once the handler is in place)
    proc = watcher()
    try:
        assert proc.stderr.readline().startswith("watching")
    finally:
        proc.send_signal(signal.SIGTERM)
        out_text, err_text = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped watching" in err_text and "Traceback" not in err_text
    # a restart skips what is done
    again = subprocess.run(once, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "3 already done" in again.stdout


def test_the_visa_layout_is_read(tmp_path):
    root = tmp_path / "visa"
    rows = ["object,split,label,image,mask"]
    for i in range(3):
        img, _ = make_inspection_image("grid", i)
        p = root / "pcb9" / "Data" / "Images" / "Normal" / f"{i:04d}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), img)
        rows.append(f"pcb9,{'train' if i < 2 else 'test'},normal,pcb9/Data/Images/Normal/{i:04d}.JPG,")
    img, mask = make_inspection_image("grid", 9, "stain")
    (root / "pcb9" / "Data" / "Images" / "Anomaly").mkdir(parents=True)
    (root / "pcb9" / "Data" / "Masks" / "Anomaly").mkdir(parents=True)
    cv2.imwrite(str(root / "pcb9" / "Data" / "Images" / "Anomaly" / "000.JPG"), img)
    cv2.imwrite(str(root / "pcb9" / "Data" / "Masks" / "Anomaly" / "000.png"), mask.astype(np.uint8) * 3)
    rows.append("pcb9,test,anomaly,pcb9/Data/Images/Anomaly/000.JPG,pcb9/Data/Masks/Anomaly/000.png")
    (root / "split_csv").mkdir()
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    (cat,) = find_categories(root)
    assert cat.name == "pcb9" and [p.name for p in cat.train_good] == ["0000.JPG", "0001.JPG"]
    assert [(t.id, t.mask is not None) for t in cat.test] == [("anomaly_000", True), ("good_0002", False)]
    out = tmp_path / "out"
    assert cli.main(["defects", str(root), "--shots", "2", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "pcb9" / "metrics.json").read_text())
    assert m["images"] == 2 and m["defective"] == 1 and m["pixel_auroc"] is not None


def test_outlines_follow_the_map_half_way_to_each_peak(seg):
    """Each region's outline is its half-height contour: a faint blob's reaches below the image threshold, a sharp
    one's sits inside the thresholded region; on aligned parts the region cut half-way from the threshold."""
    yy, xx = np.mgrid[:96, :96]
    amap = (1.2 * np.exp(-((yy - 30) ** 2 + (xx - 30) ** 2) / 60.0)
            + 6.0 * np.exp(-((yy - 70) ** 2 + (xx - 70) ** 2) / 60.0)).astype(np.float32)
    img, nothing = np.zeros((96, 96, 3), np.uint8), FixedSam(np.zeros((96, 96), bool), iou=0.1)
    res = segment_defects(nothing, img, amap, 1.0, DefectSettings(sam=False))
    faint, sharp = sorted(res.masks, key=lambda m: np.argwhere(m).mean())
    np.testing.assert_array_equal(faint, (amap >= 0.8) & (yy < 50))  # the floor: 0.8 x t > 0.4 x the faint peak
    assert faint.sum() > ((amap > 1.0) & (yy < 50)).sum()  # reaches below the image threshold
    level = float(np.median(amap)) + 0.4 * (float(amap.max()) - float(np.median(amap)))
    np.testing.assert_array_equal(sharp, (amap >= level) & (yy > 50))
    assert sharp.sum() < ((amap > 1.0) & (yy > 50)).sum()  # tighter than the thresholded region
    st = DefectSettings(sam=False, base="threshold", rise=0.5)
    aligned = segment_defects(nothing, img, amap, 1.0, st)
    half = np.where(yy < 50, 1.0 + 0.5 * (float(amap[30, 30]) - 1.0), 1.0 + 0.5 * (float(amap[70, 70]) - 1.0))
    np.testing.assert_array_equal(aligned.labels > 0, (amap > 1.0) & (amap >= half))
    with pytest.raises(ConfigError, match="base must be"):
        segment_defects(nothing, img, amap, 1.0, DefectSettings(base="peak"))
    model = DefectModel.fit(seg, [make_inspection_image("flange", s)[0] for s in range(4)], align="auto")
    assert (model.settings.base, model.settings.rise, model.settings.sam) == ("threshold", 0.5, False)
    texture = DefectModel.fit(seg, [make_inspection_image("grid", s)[0] for s in range(3)], align="auto")
    assert (texture.settings.base, texture.settings.sam) == ("median", True)


def test_one_shot_and_zero_shot_parts_are_aligned_when_their_images_show_the_pose_varies(seg, tmp_path):
    """One shot cannot show that the pose varies, the held-out good images can; at zero shots the test set itself
    does, even with a broken part among them."""
    flanges = [make_inspection_image("flange", s)[0] for s in range(6)]
    assert not needs_alignment(flanges[:1])[0]
    model = DefectModel.fit(seg, flanges[:1], flanges[1:], align="auto")
    assert model.config["align"]["used"] and model.pose is not None
    blank = np.full_like(flanges[0], 128)  # no part in it
    assert needs_alignment(flanges + [blank])[0]  # 6 of 7 show a part
    assert not needs_alignment(flanges[:2] + [blank, blank])[0]
    assert not needs_alignment(flanges + [cv2.resize(flanges[1], (200, 200))])[0]  # sizes differ: no pose to share
    from samprompt.domains.defects.job import zero_shot_pose

    aligner, used, st = zero_shot_pose([blank] + flanges, "auto", DefectSettings())
    assert used and st.base == "threshold"
    np.testing.assert_array_equal(aligner.reference, PoseAligner.from_reference(flanges[0]).reference)
    assert zero_shot_pose(flanges, "off", DefectSettings())[:2] == (None, False)
    assert zero_shot_pose([make_inspection_image("grid", s)[0] for s in range(4)], "auto", DefectSettings())[1] is False


def test_a_model_from_an_older_samprompt_with_other_instance_settings_says_fit_again(data, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert cli.main(["defects", "fit", str(data), "--category", "grid", "--shots", "2", "--out", str(model_dir),
                     "--align", "off"]) == 0
    cfg = json.loads((model_dir / "defect_model.json").read_text())
    cfg["settings"]["region_factor"] = 2.0
    cfg["samprompt_version"] = "0.9.0"
    (model_dir / "defect_model.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    img = tmp_path / "one.png"
    from samprompt.io import write_image

    write_image(img, make_inspection_image("grid", 77)[0])
    assert cli.main(["defects", "inspect", str(model_dir), str(img), "--out", str(tmp_path / "o"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "samprompt 0.9.0" in err and "region_factor" in err and "fit it again" in err


def test_inspect_killed_mid_run_then_rerun_writes_the_uninterrupted_results(data, tmp_path, kill_cli_after):
    model_dir = tmp_path / "model"
    assert cli.main(["defects", "fit", str(data), "--category", "grid", "--shots", "2", "--out", str(model_dir),
                     "--align", "off"]) == 0
    images = tmp_path / "in"
    images.mkdir()
    for k, src in enumerate(sorted((data / "grid" / "test").rglob("*.png")) * 3):
        shutil.copy(src, images / f"{k:03d}.png")
    args = ["defects", "inspect", str(model_dir), str(images), "--quiet", "--threads", "1"]
    assert cli.main([*args, "--out", str(tmp_path / "ref")]) == 0
    killed = tmp_path / "killed"
    n = kill_cli_after([*args, "--out", str(killed)], killed / "manifest.jsonl", 4)
    assert 4 <= n < 24
    assert cli.main([*args, "--out", str(killed)]) == 0
    assert (killed / "results.jsonl").read_bytes() == (tmp_path / "ref" / "results.jsonl").read_bytes()


def test_a_rerun_with_nothing_left_reports_what_the_run_used(tmp_path):
    """Found by a kill -9 after the last image: the rerun ran no prepare() and reported the unaligned defaults."""
    data = write_defect_dataset(tmp_path / "d", ["flange"], train=2, test_good=2, per_defect=1, seed=5)
    out = tmp_path / "o"
    assert cli.main(["defects", str(data), "--shots", "0", "--out", str(out), "--quiet"]) == 0
    first = json.loads((out / "flange" / "metrics.json").read_text())
    assert first["aligned"] is True and first["settings"]["base"] == "threshold"
    (out / "flange" / "metrics.json").unlink()  # as if killed before the end
    assert cli.main(["defects", str(data), "--shots", "0", "--out", str(out), "--quiet"]) == 0
    again = json.loads((out / "flange" / "metrics.json").read_text())
    assert (again["aligned"], again["settings"]) == (first["aligned"], first["settings"])
