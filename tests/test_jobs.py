"""The batch engine: manifest, resume after kill -9, Dask workers, per-image prompts, safe outputs."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import SampromptError, Segmenter, cli
from samprompt.jobs import JobSettings, Manifest, SegmenterSpec, WorkItem, prompts_for_images, run_job
from samprompt.models import save_safetensors
from samprompt.prompts import Prompt
from samprompt.synthetic import write_dataset

BOXES = ["--box", "5,5,100,100", "--box", "40,60,200,220"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, random_sam):
    return str(save_safetensors(random_sam, tmp_path_factory.mktemp("m") / "rand.safetensors"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("d") / "data", 6)


def _items(folder, prompts):
    paths = sorted((folder / "images").glob("*.png"))
    return [WorkItem(p.stem, str(p), prompts) for p in paths]


def _labels(out):
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(out.glob("*.png"))
            if not p.name.endswith("_overlay.png")}


def _same_outputs(a, b):
    la, lb = _labels(a), _labels(b)
    assert la.keys() == lb.keys() and la
    for k in la:
        assert np.array_equal(la[k], lb[k]), k


def test_manifest_records_what_made_each_output(folder, ckpt, tmp_path):
    out = tmp_path / "o"
    prompts = [Prompt(box=(5, 5, 100, 100), label="cat")]
    s = run_job(_items(folder, prompts), out, segmenter=SegmenterSpec(ckpt, threads=1),
                settings=JobSettings(formats=["png", "coco", "yolo"], classes=["object", "cat"]), progress=False)
    assert (s.done, s.failed, s.exit_code) == (6, 0, 0)
    man = Manifest(out)
    rec = man.last["default_000000"]
    assert rec["status"] == "done" and rec["model_id"] == Segmenter(ckpt).model_id and rec["encoder"] == "sam/fp32"
    assert set(rec["outputs"]) >= {"default_000000.png", "default_000000_overlay.png", "labels/default_000000.txt",
                                   "default_000000.prompts.json", "parts/default_000000.coco.json"}
    assert {"version", "seconds", "learned_id", "error"} <= set(rec)
    coco = COCO(str(out / "coco.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["object", "cat"]
    assert all(a["category_id"] == 2 and "score" in a for a in coco.loadAnns(coco.getAnnIds()))
    assert (out / "classes.txt").read_text() == "object\ncat\n"
    assert oct((out / "default_000000.png").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    # a rerun skips everything and leaves coco.json as it was; a damaged output is redone;
    # another model redoes everything
    coco_before = (out / "coco.json").read_bytes()
    assert run_job(_items(folder, prompts), out, segmenter=SegmenterSpec(ckpt, threads=1),
                   settings=JobSettings(formats=["png", "coco", "yolo"], classes=["object", "cat"]),
                   progress=False).skipped == 6
    assert (out / "coco.json").read_bytes() == coco_before
    (out / "default_000003.png").write_bytes(b"edited")  # by hand, or damaged: someone's data now
    with pytest.raises(SampromptError, match="default_000003.png was changed since samprompt wrote it"):
        run_job(_items(folder, prompts), out, segmenter=SegmenterSpec(ckpt, threads=1),
                settings=JobSettings(formats=["png", "coco", "yolo"], classes=["object", "cat"]), progress=False)
    assert (out / "default_000003.png").read_bytes() == b"edited"
    (out / "default_000003.png").unlink()  # gone: the rerun redoes that image only
    again = run_job(_items(folder, prompts), out, segmenter=SegmenterSpec(ckpt, threads=1),
                    settings=JobSettings(formats=["png", "coco", "yolo"], classes=["object", "cat"]), progress=False)
    assert (again.skipped, again.done) == (5, 1)
    other = run_job(_items(folder, prompts), out, segmenter=SegmenterSpec("tiny", threads=1),
                    settings=JobSettings(formats=["png", "coco", "yolo"], classes=["object", "cat"]), progress=False)
    assert (other.skipped, other.done, other.replaced) == (0, 6, 6)  # and says it replaced them


def test_one_run_at_a_time_per_output_folder(folder, ckpt, tmp_path):
    import fcntl

    from samprompt import SampromptError

    out = tmp_path / "o"
    out.mkdir()
    with open(out / ".samprompt.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SampromptError, match="another samprompt run is writing"):
            run_job(_items(folder, [Prompt(box=(5, 5, 50, 50))]), out, segmenter=Segmenter(ckpt), progress=False)
    s = run_job(_items(folder, [Prompt(box=(5, 5, 50, 50))]), out, segmenter=Segmenter(ckpt), progress=False)
    assert s.done == 6  # a ready Segmenter works in-process
    assert not (out / ".samprompt.lock").exists()  # a finished run leaves no lock file behind
    with pytest.raises(SampromptError, match="pass a SegmenterSpec"):
        run_job(_items(folder, []), out, segmenter=Segmenter(ckpt), workers=2, progress=False)


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_kill_9_then_rerun_gives_the_uninterrupted_outputs(tmp_path, ckpt, kill_cli_after):
    data = write_dataset(tmp_path / "d", 40, size=256)
    ref = tmp_path / "ref"
    args = ["segment", str(data), *BOXES, "--model", ckpt, "--format", "png", "--format", "coco", "--quiet",
            "--threads", "1"]
    assert cli.main([*args, "--out", str(ref)]) == 0
    out = tmp_path / "killed"
    assert 5 <= kill_cli_after([*args, "--out", str(out)], out / "manifest.jsonl", 5) < 40, \
        "the run should have been killed part-way"
    (out / "parts" / ".default_000039.coco.json.abcd1234.tmp.json").write_text("{")  # as a kill mid-write leaves
    assert cli.main([*args, "--out", str(out)]) == 0
    _same_outputs(ref, out)
    coco, want = COCO(str(out / "coco.json")), COCO(str(ref / "coco.json"))
    names = [im["file_name"] for im in coco.dataset["images"]]
    assert len(names) == len(set(names)) == 40
    assert [a["score"] for a in coco.dataset["annotations"]] == [a["score"] for a in want.dataset["annotations"]]
    assert coco.dataset["images"] == want.dataset["images"]  # ids follow the item order, not the run's history
    assert not list(out.glob(".*.tmp*")) and not list((out / "parts").glob(".*.tmp*"))


def test_local_cluster_gives_the_in_process_outputs(folder, ckpt, tmp_path):
    pytest.importorskip("distributed")
    items = _items(folder, [Prompt(box=(5, 5, 100, 100)), Prompt(points=[(120, 130)])])
    settings = JobSettings(formats=["png", "coco"])
    run_job(items, tmp_path / "local", segmenter=SegmenterSpec(ckpt, threads=1), settings=settings, progress=False)
    s = run_job(items, tmp_path / "dask", segmenter=SegmenterSpec(ckpt, threads=1), settings=settings, workers=2,
                progress=False)
    assert (s.done, s.failed) == (6, 0)
    _same_outputs(tmp_path / "local", tmp_path / "dask")
    a = json.loads((tmp_path / "local" / "coco.json").read_text())
    b = json.loads((tmp_path / "dask" / "coco.json").read_text())
    assert a == b


class KillOnce(Segmenter):
    """Kills its worker process in the middle of the first item any worker runs (a marker file says it did)."""

    marker = None

    def predict(self, image, prompts, **kw):
        if self.marker and not Path(self.marker).exists():
            Path(self.marker).write_text("killed")
            os._exit(1)
        return super().predict(image, prompts, **kw)


class KillingSpec(SegmenterSpec):
    def __init__(self, model, marker):
        super().__init__(model, threads=1)
        self.marker = marker

    def build(self):
        seg = super().build()
        seg.__class__ = KillOnce
        seg.marker = self.marker
        return seg


def test_a_worker_killed_mid_item_loses_nothing(folder, ckpt, tmp_path):
    pytest.importorskip("distributed")
    marker = tmp_path / "marker"
    s = run_job(_items(folder, [Prompt(box=(5, 5, 100, 100))]), tmp_path / "o", segmenter=KillingSpec(ckpt, str(marker)),
                settings=JobSettings(formats=["png", "coco"]), workers=2, progress=False)
    assert marker.exists(), "the test item never killed its worker"
    assert (s.done, s.failed) == (6, 0)
    ids = [json.loads(line)["id"] for line in (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6
    coco = COCO(str(tmp_path / "o" / "coco.json"))
    assert len(coco.getImgIds()) == 6


def test_prompts_from_a_coco_detections_file(folder, ckpt, tmp_path, capsys):
    dets = {"images": [{"id": 7, "file_name": "default_000000.png"}, {"id": 9, "file_name": "default_000001.png"}],
            "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "tree"}],
            "annotations": [
                {"image_id": 7, "category_id": 1, "bbox": [10, 20, 50, 40], "score": 0.9},
                {"image_id": 7, "category_id": 2, "bbox": [100, 100, 30, 30], "score": 0.2},
                {"image_id": 9, "category_id": 2, "bbox": [0, 0, 256, 256], "score": 0.8}]}
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "o"
    rc = cli.main(["segment", str(folder), "--prompts", str(tmp_path / "dets.json"), "--min-score", "0.5",
                   "--model", ckpt, "--format", "coco", "--out", str(out), "--quiet"])
    assert rc == 1  # four images have no prompts: recorded, not silent
    man = Manifest(out)
    assert [man.last[f"default_00000{i}"]["status"] for i in range(6)] == ["done", "done"] + ["no_prompts"] * 4
    first = json.loads((out / "default_000000.prompts.json").read_text())["objects"]
    assert [(o["box"], o["label"]) for o in first] == [([10, 20, 60, 60], "car")]  # [x, y, w, h] -> XYXY
    coco = COCO(str(out / "coco.json"))
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) == 2
    # the detector's categories and ids are kept (issue 32: they came out as object = 1, ... renumbered)
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [(1, "car"), (2, "tree")]
    assert sorted(a["category_id"] for a in coco.loadAnns(coco.getAnnIds())) == [1, 2]
    # the folder of STEM.prompts.json that a run writes is itself a prompt source
    again = tmp_path / "again"
    assert cli.main(["segment", str(folder), "--prompts", str(out), "--model", ckpt, "--out", str(again),
                     "--quiet"]) == 1
    assert json.loads((again / "default_000000.prompts.json").read_text())["objects"] == first
    assert Manifest(again).last["default_000005"]["status"] == "no_prompts"


def test_inputs_are_never_written_over(tmp_path, ckpt, capsys):
    data = write_dataset(tmp_path / "d", 2)
    img = data / "images" / "default_000000.png"
    before = img.read_bytes()
    assert cli.main(["segment", str(img), "--point", "5,5", "--model", ckpt, "--out", str(img.parent)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err and img.read_bytes() == before
    assert cli.main(["segment", str(data / "images"), "--point", "5,5", "--model", ckpt,
                     "--out", str(data / "images")]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert not (data / "images" / "manifest.jsonl").exists()
    (tmp_path / "afile").write_text("x")
    assert cli.main(["segment", str(img), "--point", "5,5", "--model", ckpt, "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_same_stem_inputs_get_distinct_outputs(tmp_path, ckpt):
    src = write_dataset(tmp_path / "d", 2, size=(96, 128))
    pics = tmp_path / "pics"
    pics.mkdir()
    a = cv2.imread(str(src / "images" / "default_000000.png"))
    cv2.imwrite(str(pics / "pic.png"), a)
    cv2.imwrite(str(pics / "pic.jpg"), cv2.resize(a, (64, 48)))
    out = tmp_path / "o"
    assert cli.main(["segment", str(pics), "--box", "2,2,40,40", "--model", ckpt, "--format", "coco",
                     "--format", "png", "--out", str(out), "--quiet"]) == 0
    assert (out / "pic_png.png").exists() and (out / "pic_jpg.png").exists()
    sizes = {im["file_name"]: (im["height"], im["width"]) for im in COCO(str(out / "coco.json")).dataset["images"]}
    assert sizes == {"pic.jpg": (48, 64), "pic.png": (96, 128)}


@pytest.mark.parametrize("doc, words", [
    ({"image_size": "big", "objects": [{"points": [[1, 1]]}]}, "image_size must be"),
    ({"image_size": [303], "objects": []}, "image_size must be"),
    ({"objects": None}, "'objects' list"),
    ({"objects": [{"points": [[1, 1]], "labels": ["a"]}]}, "labels must be 0"),
    ({"image": "other.png", "objects": [{"points": [[1, 1]]}]}, "not among the inputs"),
])
def test_bad_prompt_files_are_clear_errors(doc, words, tmp_path, image_file_and_ckpt, capsys):
    image, ckpt = image_file_and_ckpt
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    assert cli.main(["segment", str(image), "--prompts", str(f), "--model", ckpt, "--out", str(tmp_path / "o")]) == 2
    assert words in capsys.readouterr().err


def test_more_usage_errors(tmp_path, image_file_and_ckpt, capsys):
    image, ckpt = image_file_and_ckpt
    (tmp_path / "latin1.json").write_bytes('{"objects": [], "n": "caf\xe9"}'.encode("latin-1"))
    assert cli.main(["segment", str(image), "--prompts", str(tmp_path / "latin1.json"), "--model", ckpt]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert cli.main(["segment", str(image), "--auto", "--point", "5,5", "--model", ckpt]) == 2
    assert "does not take --point" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["segment", str(tmp_path / "empty"), "--point", "5,5", "--model", ckpt]) == 2
    assert "no images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["segment", str(image), "--point", "10,20,0.5"])
    assert "must be 1 (object) or 0" in capsys.readouterr().err
    sized = tmp_path / "sized.json"
    sized.write_text(json.dumps({"image_size": [10, 10], "objects": [{"points": [[1, 1]]}]}))
    assert cli.main(["segment", str(image), "--prompts", str(sized), "--model", ckpt,
                     "--out", str(tmp_path / "o")]) == 1
    assert "made for an image of 10x10" in capsys.readouterr().err


@pytest.fixture()
def image_file_and_ckpt(tmp_path, ckpt):
    data = write_dataset(tmp_path / "one", 1, size=(120, 160))
    return data / "images" / "default_000000.png", ckpt


def test_run_job_numbers_the_classes_its_prompts_name(folder, ckpt, tmp_path):
    """The README's Python example: prompts labelled "car" with the default class list (it used to fail
    every image with "'car' is not in list")."""
    settings = JobSettings(formats=["png", "coco", "yolo"])
    s = run_job(_items(folder, [Prompt(box=(5, 5, 60, 60), label="car")])[:2], tmp_path / "o",
                segmenter=SegmenterSpec(ckpt, threads=1), settings=settings, progress=False)
    assert (s.done, s.failed) == (2, 0) and settings.classes == ["object"]  # the caller's settings untouched
    assert (tmp_path / "o" / "classes.txt").read_text().splitlines() == ["object", "car"]
    coco = json.loads((tmp_path / "o" / "coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["object", "car"]
    assert {a["category_id"] for a in coco["annotations"]} == {2}


def test_a_rerun_with_other_settings_says_what_it_replaces(folder, ckpt, tmp_path, caplog, capsys):
    """Issue 32: two runs into one folder with different settings used to replace the first run's outputs
    without a word."""
    out = tmp_path / "o"
    first = run_job(_items(folder, [Prompt(box=(5, 5, 100, 100))])[:3], out, segmenter=SegmenterSpec(ckpt, threads=1),
                    progress=False)
    assert first.replaced == 0 and not caplog.records
    again = run_job(_items(folder, [Prompt(box=(5, 5, 100, 100))])[:4], out, segmenter=SegmenterSpec(ckpt, threads=1),
                    progress=False)
    assert (again.skipped, again.done, again.replaced) == (3, 1, 0) and not caplog.records  # same settings: quiet
    other = run_job(_items(folder, [Prompt(box=(40, 60, 200, 220))])[:4], out,
                    segmenter=SegmenterSpec(ckpt, threads=1), settings=JobSettings(formats=["png", "coco"]),
                    progress=False)
    assert (other.done, other.replaced) == (4, 4) and (out / "coco.json").exists()
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "4 finished image(s)" in msg and "set of prompts or settings" in msg and "another --out" in msg
    cli.main(["segment", str(folder / "images"), "--auto", "--model", ckpt, "--out", str(out)])
    err = capsys.readouterr()
    assert "6 image(s): 6 done, 4 made earlier with other settings redone" in err.out + err.err
    # the folder holds this run's outputs only: no prompts files or COCO parts left from the prompted runs
    assert not list(out.glob("*.prompts.json")) and not (out / "coco.json").exists()
    assert not list((out / "parts").glob("*.json")) and len(list(out.glob("*_overlay.png"))) == 6


def test_a_detectors_category_ids_and_order_are_kept_in_coco_and_yolo(folder, ckpt, tmp_path):
    """Issue 32: roof = 3, shed = 7 in, the same out; YOLO lists the input's classes in id order; no unused
    "object" class unless a prompt names no class."""
    dets = {"images": [{"id": 1, "file_name": "default_000000.png"}, {"id": 2, "file_name": "default_000001.png"}],
            "categories": [{"id": 7, "name": "shed"}, {"id": 3, "name": "roof"}, {"id": 9, "name": "pool"}],
            "annotations": [{"image_id": 1, "category_id": 7, "bbox": [10, 10, 60, 60]},
                            {"image_id": 2, "category_id": 3, "bbox": [30, 30, 80, 70]}]}
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "o"
    cli.main(["segment", str(folder / "images"), "--prompts", str(tmp_path / "dets.json"), "--model", ckpt,
              "--format", "coco", "--format", "yolo", "--out", str(out), "--quiet"])
    coco = COCO(str(out / "coco.json"))
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [(3, "roof"), (7, "shed"), (9, "pool")]
    by_image = {coco.loadImgs(a["image_id"])[0]["file_name"]: a["category_id"] for a in coco.loadAnns(coco.getAnnIds())}
    assert by_image == {"default_000000.png": 7, "default_000001.png": 3}
    assert (out / "classes.txt").read_text().split() == ["roof", "shed", "pool"]
    assert (out / "labels" / "default_000000.txt").read_text().split()[0] == "1"  # shed
    assert (out / "labels" / "default_000001.txt").read_text().split()[0] == "0"  # roof
    wrong = {**dets, "images": [{"id": 1, "file_name": "IMG_0001.jpg"}, {"id": 2, "file_name": "IMG_0002.jpg"}]}
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    with pytest.raises(SampromptError, match="none of the 2 images of wrong.json .*'IMG_0001.jpg'"):
        prompts_for_images(tmp_path / "wrong.json", sorted((folder / "images").glob("*.png")))
    plain = tmp_path / "plain"  # prompts without a class: "object", and only then
    cli.main(["segment", str(folder / "images" / "default_000000.png"), "--box", "5,5,50,50", "--model", ckpt,
              "--format", "yolo", "--out", str(plain), "--quiet"])
    assert (plain / "classes.txt").read_text().split() == ["object"]
