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


def test_objects_of_several_images_decode_as_each_image_alone():
    from samprompt.steps import run_decoder

    torch.manual_seed(0)
    model = build_sam(TINY_ARCH).eval()
    emb = torch.randn(2, 128, 16, 16)
    boxes = torch.tensor([[10.0, 20, 90, 120], [50, 40, 200, 230], [0, 0, 255, 255]])
    owner = torch.tensor([0, 1, 1])
    with torch.no_grad():
        together = run_decoder(model.prompt_encoder, model.mask_decoder, emb[owner], boxes=boxes)
        alone = [run_decoder(model.prompt_encoder, model.mask_decoder, emb[i : i + 1], boxes=boxes[owner == i])
                 for i in (0, 1)]
    for k in (0, 1):
        assert torch.allclose(together[k], torch.cat([a[k] for a in alone]), atol=1e-5)


def test_scenes_made_by_workers_train_exactly_as_made_in_process(tmp_path):
    runs = {}
    for workers in ("0", "1"):
        out = tmp_path / workers
        main(["--out", str(out), "--max-steps", "2", "--workers", workers, *FAST])
        runs[workers] = read_state_dict(out / "final.safetensors")
    assert all(torch.equal(runs["0"][k], runs["1"][k]) for k in runs["0"])
