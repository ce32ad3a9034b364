import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from samprompt import cli
from samprompt.models import save_safetensors
from samprompt.synthetic import make_scene, write_dataset


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, random_sam):
    return str(save_safetensors(random_sam, tmp_path_factory.mktemp("m") / "rand.safetensors"))


@pytest.fixture()
def image_file(tmp_path):
    s = make_scene(2, size=(120, 160))
    p = tmp_path / "img.png"
    cv2.imwrite(str(p), s.image[..., ::-1])
    return p


def test_help_on_every_command(capsys):
    for cmd in ([], ["segment"], ["eval"], ["weights"], ["synth"], ["demo"], ["tune"]):
        with pytest.raises(SystemExit) as e:
            cli.main(cmd + ["--help"])
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: samprompt" in out and "(default: 16)" in out  # segment's --points-per-side
    assert "--tokens TOKENS" in out and "default: 32" in out  # tune's options come from TokenConfig


def test_every_option_has_help_text():
    import argparse

    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in [("samprompt", parser), *subs.choices.items()]:
        for action in sp._actions:
            if action.option_strings and action.help is not argparse.SUPPRESS:
                assert action.help, f"{name} {action.option_strings} has no help"


def test_version_and_threads_after_the_command(tmp_path, capsys):
    import torch

    import samprompt

    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"samprompt {samprompt.__version__}"
    before = torch.get_num_threads()
    try:
        assert cli.main(["synth", str(tmp_path / "d"), "-n", "1", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_tune_config_errors_are_clear(tmp_path, capsys):
    write_dataset(tmp_path / "d", 1)
    assert cli.main(["tune", str(tmp_path / "d"), "--method", "vpt-deep", "--tokens", "0",
                     "--out", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err == "samprompt: error: tokens must be >= 1, got 0\n"
    assert not (tmp_path / "p").exists()


def test_segment_points_and_boxes_all_formats(tmp_path, image_file, ckpt):
    out = tmp_path / "out"
    rc = cli.main(["segment", str(image_file), "--point", "40,50", "--point", "60,60,0", "--box", "10,10,100,90",
                   "--model", ckpt, "--format", "png", "--format", "coco", "--format", "yolo", "--out", str(out),
                   "--quiet"])
    assert rc == 0
    lab = cv2.imread(str(out / "img.png"), cv2.IMREAD_UNCHANGED)
    assert lab.shape == (120, 160)
    assert (out / "img_overlay.png").exists() and (out / "labels" / "img.txt").exists()
    api = COCO(str(out / "coco.json"))
    assert len(api.getAnnIds()) == 1
    replay = json.loads((out / "img.prompts.json").read_text())
    assert replay["objects"][0]["labels"] == [1, 0] and replay["objects"][0]["box"] == [10, 10, 100, 90]
    # replaying the saved prompts gives the same label map
    out2 = tmp_path / "out2"
    assert cli.main(["segment", str(image_file), "--prompts", str(out / "img.prompts.json"), "--model", ckpt,
                     "--out", str(out2), "--quiet"]) == 0
    assert np.array_equal(cv2.imread(str(out2 / "img.png"), cv2.IMREAD_UNCHANGED), lab)


def test_segment_folder_resumes_and_records_failures(tmp_path, ckpt):
    data = write_dataset(tmp_path / "d", 3)
    (data / "images" / "zz_broken.png").write_bytes(b"broken")
    out = tmp_path / "o"
    args = ["segment", str(data), "--box", "5,5,100,100", "--box", "50,50,200,200", "--model", ckpt,
            "--out", str(out), "--quiet"]
    assert cli.main(args) == 1  # one image failed, the rest went on
    assert len(list(out.glob("default_*_overlay.png"))) == 3
    assert "zz_broken.png" in json.loads((out / "failures.json").read_text())
    stamp = (out / "default_000000.png").stat().st_mtime_ns
    assert cli.main(args) == 1  # resume: finished images are skipped, the broken one is tried again
    assert (out / "default_000000.png").stat().st_mtime_ns == stamp
    (data / "images" / "zz_broken.png").unlink()
    assert cli.main(args) == 0 and not (out / "failures.json").exists()  # stale failures are cleared


def test_segment_auto(tmp_path, image_file, ckpt):
    assert cli.main(["segment", str(image_file), "--auto", "--points-per-side", "4", "--model", ckpt,
                     "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert (tmp_path / "a" / "img.png").exists()


def test_bad_input_gives_clear_errors(tmp_path, image_file, ckpt, capsys):
    assert cli.main(["segment", str(image_file), "--model", ckpt, "--out", str(tmp_path)]) == 2
    assert "give prompts" in capsys.readouterr().err
    assert cli.main(["segment", str(image_file), "--point", "999,5", "--model", ckpt,
                     "--out", str(tmp_path / "o")]) == 1
    assert "outside" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["segment", str(image_file), "--box", "1,2,3"])
    assert "4 numbers" in capsys.readouterr().err
    assert cli.main(["segment", str(image_file), "--point", "5,5", "--model", str(tmp_path / "nope.pth")]) == 2
    assert "not found" in capsys.readouterr().err


def test_eval_json_and_synth(tmp_path, ckpt, capsys):
    assert cli.main(["synth", str(tmp_path / "d"), "-n", "2", "--style", "rooftops"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "d"), "--prompt", "clicks", "--clicks", "3", "--model", ckpt,
                     "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_images"] == 2 and len(rep["per_click_mIoU"]) == 3 and "per_image" not in rep
    assert sum(v["n"] for v in rep["by_size"].values()) == rep["n_objects"]
    assert 0 <= rep["oracle_mIoU"] <= 1
    assert cli.main(["eval", str(tmp_path / "d"), "--model", ckpt, "--plot", str(tmp_path / "box.png")]) == 0
    assert "by size (COCO areas): small" in capsys.readouterr().out
    assert cli.main(["eval", str(tmp_path / "d"), "--model", ckpt, "--prompt", "clicks", "--clicks", "2",
                     "--plot", str(tmp_path / "new" / "clicks.png")]) == 0
    assert f"wrote {tmp_path / 'new' / 'clicks.png'}" in capsys.readouterr().out
    with Image.open(tmp_path / "box.png") as one, Image.open(tmp_path / "new" / "clicks.png") as two:
        assert two.width > 1.5 * one.width  # the click curve gets its own panel
    # a mask of another size: the text report says which image and why (it used to, only with --json)
    import cv2

    mask = tmp_path / "d" / "masks" / "rooftops_000001.png"
    cv2.imwrite(str(mask), np.zeros((10, 10), np.uint8))
    assert cli.main(["eval", str(tmp_path / "d"), "--model", ckpt]) == 1
    err = capsys.readouterr().err
    assert "rooftops_000001" in err and "10" in err


def test_weights_list(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPROMPT_HOME", str(tmp_path))
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "vit_h" in out and "not downloaded" in out and "tiny" in out
    assert cli.main(["weights", "download"]) == 2
    # no network: a failed download is a runtime failure (exit 1, said in one line), not a usage error
    import urllib.error

    from samprompt import models

    def offline(url):
        raise urllib.error.URLError("no route to host")

    real = models.download
    monkeypatch.setattr(models, "download", lambda name, **kw: real(name, opener=offline, **kw))
    capsys.readouterr()
    assert cli.main(["weights", "download", "vit_b"]) == 1
    err = capsys.readouterr().err
    assert "could not download vit_b" in err and "no route to host" in err and "Traceback" not in err
    assert cli.main(["weights", "download", "no_such_model"]) == 2


def test_demo_runs_the_main_job(tmp_path, ckpt, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "-n", "2", "--model", ckpt]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out
    done = tmp_path / "demo" / "segmented"
    api = COCO(str(done / "coco.json"))
    assert len(api.getImgIds()) == 2 and len(api.getAnnIds()) > 0
    assert len(list(done.glob("*_overlay.png"))) == 2 and len(list(done.glob("*.prompts.json"))) == 2
    assert len((done / "manifest.jsonl").read_text().splitlines()) == 2
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "-n", "2", "--model", ckpt]) == 0  # a rerun resumes
    assert len((done / "manifest.jsonl").read_text().splitlines()) == 2


def test_threads_option_sets_torch_threads(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert cli.main(["--threads", "1", "synth", str(tmp_path / "d"), "-n", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        cli.main(["--threads", "0", "synth", str(tmp_path / "d"), "-n", "1"])
    assert "at least 1" in capsys.readouterr().err


def test_more_clear_errors(tmp_path, ckpt, capsys):
    import torch

    (tmp_path / "afile").write_text("x")
    assert cli.main(["synth", str(tmp_path / "afile"), "-n", "1"]) == 2
    assert "samprompt: error:" in capsys.readouterr().err
    write_dataset(tmp_path / "d", 1)
    assert cli.main(["eval", str(tmp_path / "d"), "--model", ckpt, "--plot", str(tmp_path / "plot.xyz")]) == 2
    assert "--plot" in capsys.readouterr().err
    (tmp_path / "e" / "images").mkdir(parents=True)
    (tmp_path / "e" / "masks").mkdir()
    assert cli.main(["eval", str(tmp_path / "e"), "--model", ckpt]) == 2
    assert "has a mask" in capsys.readouterr().err
    np.save(tmp_path / "f.npy", np.random.default_rng(0).random((40, 50), dtype=np.float32) * 1000)
    assert cli.main(["segment", str(tmp_path / "f.npy"), "--box", "0,0,50,40", "--model", ckpt,
                     "--out", str(tmp_path / "o"), "--quiet"]) == 0
    torch.save({"w": torch.zeros(1), "cfg": {"a": slice(1, 2)}}, tmp_path / "pickled.pth")
    assert cli.main(["segment", str(tmp_path / "f.npy"), "--box", "0,0,5,5", "--model", str(tmp_path / "pickled.pth"),
                     "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "refuses to unpickle" in err and "weights_only=False" not in err


def test_negative_min_area_and_eval_json_without_nan(tmp_path, image_file, capsys):
    with pytest.raises(SystemExit):
        cli.main(["segment", str(image_file), "--auto", "--min-area", "-5"])
    assert "must be 0 or more, got -5" in capsys.readouterr().err
    from samprompt.cli.evaluate import _finite

    doc = _finite({"mIoU": float("nan"), "per_click": [1.0, float("inf")], "n": 3})
    assert doc == {"mIoU": None, "per_click": [1.0, None], "n": 3}
    json.dumps(doc, allow_nan=False)  # strict JSON


def test_auto_with_min_area_keeps_no_repeated_masks(tmp_path):
    """segment --auto --min-area on a generated scene: the cleanup made 2 objects into 7 near-equal masks."""
    from pycocotools import mask as mask_utils

    from samprompt.synthetic import write_dataset

    data = write_dataset(tmp_path / "d", 1)
    out = tmp_path / "o"
    assert cli.main(["segment", str(next((data / "images").glob("*.png"))), "--auto", "--min-area", "50",
                     "--format", "coco", "--out", str(out), "--quiet"]) == 0
    masks = [mask_utils.decode(a["segmentation"]).astype(bool)
             for a in json.loads((out / "coco.json").read_text())["annotations"]]
    assert masks and min(m.sum() for m in masks) >= 50
    for i, a in enumerate(masks):
        for b in masks[i + 1:]:
            assert (a & b).sum() / (a | b).sum() <= 0.7
