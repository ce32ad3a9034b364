import json

import pytest

from samprompt import cli
from samprompt.learned.train import tune
from samprompt.models import save_safetensors
from samprompt.synthetic import write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    return write_dataset(root / "train", 4, style="scratches", size=96), write_dataset(root / "val", 2, style="scratches", size=96, seed=100)


def test_tune_lowers_the_loss_and_saves(random_sam, data, tmp_path):
    train, val = data
    res = tune(random_sam, train, "vpt-deep", val_dir=val, out=tmp_path / "p", epochs=4, batch_size=2, lr=5e-2,
               tokens=4, progress=False)
    assert len(res.history) == 4 and res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.best_val == max(h["val_mIoU"] for h in res.history)
    for name in ("prompt.safetensors", "prompt_config.json", "history.json", "curve.png"):
        assert (tmp_path / "p" / name).exists()
    assert all(not p.requires_grad for p in random_sam.parameters())


def test_default_learning_rate_is_the_method_s(random_sam, data):
    from samprompt.learned import DEFAULT_LR

    res = tune(random_sam, data[0], "pixel-pad", epochs=1, progress=False)
    assert res.lr == DEFAULT_LR["pixel-pad"] and res.prompt.config.method == "pixel-pad"
    assert tune(random_sam, data[0], "pixel-pad", epochs=1, lr=1e-4, progress=False).lr == 1e-4


@pytest.mark.parametrize("kind", ["box", "point", "mixed"])
def test_training_prompts_are_of_the_kind_asked(random_sam, data, monkeypatch, kind):
    seen = []
    encode = random_sam.prompt_encoder.forward

    def spy(points, boxes, masks):
        seen.append(("box" if boxes is not None else "") + ("point" if points is not None else ""))
        return encode(points, boxes, masks)

    monkeypatch.setattr(random_sam.prompt_encoder, "forward", spy)
    tune(random_sam, data[0], "pixel-pad", epochs=3, prompts=kind, progress=False)
    assert set(seen) == ({"box", "point"} if kind == "mixed" else {kind})
    with pytest.raises(ValueError, match="prompts must be"):
        tune(random_sam, data[0], "pixel-pad", epochs=1, prompts="clicks", progress=False)


def test_cli_tune_then_eval_with_learned(random_sam, data, tmp_path, capsys):
    train, val = data
    ckpt = save_safetensors(random_sam, tmp_path / "m.safetensors")
    assert cli.main(["tune", str(train), "--method", "pixel-pad", "--width", "8", "--epochs", "1", "--model", str(ckpt),
                     "--out", str(tmp_path / "pad")]) == 0
    assert "saved to" in capsys.readouterr().out
    assert cli.main(["eval", str(val), "--model", str(ckpt), "--learned", str(tmp_path / "pad"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 2
    other = tmp_path / "other.safetensors"
    import torch

    from samprompt import build_sam
    from samprompt.models import TINY_ARCH

    torch.manual_seed(5)
    save_safetensors(build_sam(TINY_ARCH), other)
    assert cli.main(["eval", str(val), "--model", str(other), "--learned", str(tmp_path / "pad")]) == 2
    assert "trained for model" in capsys.readouterr().err


def test_cli_tune_on_a_bad_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    assert cli.main(["tune", str(tmp_path / "d"), "--method", "vpt-deep", "--out", str(tmp_path / "p")]) == 2
    assert "no labelled images" in capsys.readouterr().err
    assert cli.main(["tune", str(tmp_path / "nope"), "--method", "vpt-deep", "--out", str(tmp_path / "p")]) == 2
    assert "not a labelled folder" in capsys.readouterr().err
    # a mask of another size, and a missing --val: said before any training (issue 32), in one line
    import cv2
    import numpy as np

    good = write_dataset(tmp_path / "good", 2, size=64)
    assert cli.main(["tune", str(good), "--val", str(tmp_path / "no_val"), "--method", "vpt-deep", "--epochs", "50",
                     "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "no_val is not a labelled folder" in err and "epoch" not in err.lower()
    cv2.imwrite(str(next((good / "masks").glob("*.png"))), np.zeros((10, 12), np.uint8))
    assert cli.main(["tune", str(good), "--method", "vpt-deep", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "is 12x10 but its image" in err and "Traceback" not in err


def test_cli_tune_direct_keys_values(random_sam, data, tmp_path, capsys):
    train, _ = data
    ckpt = save_safetensors(random_sam, tmp_path / "m.safetensors")
    out = tmp_path / "kv"
    assert cli.main(["tune", str(train), "--method", "vpt-shallow", "--tokens", "2", "--kv", "direct", "--epochs", "1",
                     "--model", str(ckpt), "--out", str(out)]) == 0
    assert json.loads((out / "prompt_config.json").read_text())["config"]["kv"] == "direct"
    capsys.readouterr()
    assert cli.main(["tune", str(train), "--method", "pixel-pad", "--kv", "direct", "--model", str(ckpt),
                     "--out", str(tmp_path / "x")]) == 2
    assert "--kv is for vpt-shallow, vpt-deep, vpt-generated, not pixel-pad" in capsys.readouterr().err
    assert cli.main(["tune", str(train), "--method", "vpt-generated", "--kv", "direct", "--model", str(ckpt),
                     "--out", str(tmp_path / "x")]) == 2
    assert "vpt-generated makes tokens, so it needs kv='projected'" in capsys.readouterr().err


def test_cli_tune_depth_and_dropout(random_sam, data, tmp_path, capsys):
    train, _ = data
    ckpt = save_safetensors(random_sam, tmp_path / "m.safetensors")
    out = tmp_path / "d"
    assert cli.main(["tune", str(train), "--method", "vpt-deep", "--tokens", "2", "--depth", "1", "--dropout", "0.1",
                     "--epochs", "1", "--model", str(ckpt), "--out", str(out)]) == 0
    config = json.loads((out / "prompt_config.json").read_text())["config"]
    assert config["depth"] == 1 and config["dropout"] == 0.1
    capsys.readouterr()
    assert cli.main(["tune", str(train), "--method", "pixel-pad", "--depth", "2", "--model", str(ckpt),
                     "--out", str(tmp_path / "x")]) == 2
    assert "--depth is for vpt-shallow, vpt-deep, vpt-generated, not pixel-pad" in capsys.readouterr().err
    assert cli.main(["tune", str(train), "--method", "decoder-ft", "--dropout", "0.2", "--model", str(ckpt),
                     "--out", str(tmp_path / "y")]) == 2
    assert "--dropout is for vpt-shallow, vpt-deep, vpt-generated, not decoder-ft" in capsys.readouterr().err
