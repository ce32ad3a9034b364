"""The built-in model's trainer (python -m samprompt.train_tiny): a few steps, resume, partial training."""

import json

import pytest
import torch

from samprompt.models import TINY_ARCH, build_sam, read_state_dict, save_safetensors
from samprompt.train_tiny import main
from samprompt.training import trainable

FAST = ["--batch", "1", "--objects", "2", "--loss-size", "64", "--val-every", "1000", "--val-scenes", "2",
        "--threads", "1", "--warmup", "1", "--device", "cpu"]


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_trains_saves_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    main(["--out", str(out), "--max-steps", "2", "--save-every", "1", *FAST])
    assert {"last.pt", "final.safetensors", "best.safetensors", "log.jsonl"} <= {p.name for p in out.iterdir()}
    final = _log(out)[-1]
    assert final["final"] and final["step"] == 2 and 0 <= final["val_box"] <= 1
    first = read_state_dict(out / "final.safetensors")
    main(["--out", str(out), "--max-steps", "3", *FAST])
    assert "resumed at step 2" in capsys.readouterr().out
    assert _log(out)[-1]["step"] == 3
    second = read_state_dict(out / "final.safetensors")
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the third step changed weights


def test_only_trains_the_named_parameters(tmp_path):
    init = tmp_path / "init.safetensors"
    save_safetensors(build_sam(TINY_ARCH), init)
    out = tmp_path / "head"
    head = "mask_decoder.iou_prediction_head"
    main(["--out", str(out), "--init", str(init), "--only", head, "--max-steps", "2", "--lr", "1e-2", *FAST])
    before, after = read_state_dict(init), read_state_dict(out / "final.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(head) for k in changed)
    with pytest.raises(ValueError, match="no parameter"):
        trainable(build_sam(TINY_ARCH), "nope.")


def test_a_bad_only_prefix_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "x"), "--only", "nope.", *FAST])
    assert exc.value.code == 2 and "no parameter name starts with 'nope.'" in capsys.readouterr().err
