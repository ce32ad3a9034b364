"""The rearranged decoder gives SAM's decoder's logits and scores up to float rounding, and the same masks."""

import numpy as np
import pytest
import torch

from samprompt import Prompt, Segmenter
from samprompt.errors import ConfigError
from samprompt.fast_decoder import fast_decode
from samprompt.models import REGISTRY, build_sam, load_model
from samprompt.steps import run_decoder
from samprompt.synthetic import make_scene


@pytest.mark.parametrize("arch", ["tiny", "vit_b"])
def test_fast_decode_equals_the_reference_up_to_rounding(arch):
    torch.manual_seed(0)
    if arch == "tiny":
        model = load_model("tiny")
        emb = Segmenter(model).embed(make_scene(3).image).features
    else:  # ViT-B's decoder (random weights) on a random embedding
        model = build_sam(REGISTRY["vit_b"].arch)
        emb = torch.randn(1, 256, 64, 64)
    pe, md = model.prompt_encoder, model.mask_decoder
    rng = np.random.default_rng(1)
    size = 4 * emb.shape[-1] * (4 if arch == "vit_b" else 1)
    for b in (1, 7):
        pts = torch.as_tensor(rng.uniform(0, size, (b, 3, 2)), dtype=torch.float)
        labels = torch.as_tensor(rng.integers(0, 2, (b, 3)), dtype=torch.int)
        boxes = torch.as_tensor(np.sort(rng.uniform(0, size, (b, 2, 2)), 1).reshape(b, 4), dtype=torch.float)
        for kw in (dict(points=(pts, labels)), dict(boxes=boxes), dict(points=(pts, labels), boxes=boxes)):
            for multimask in (True, False, None):
                with torch.no_grad():
                    ref = run_decoder(pe, md, emb, multimask=multimask, **kw)
                got = fast_decode(pe, md, emb, multimask=multimask, **kw)
                assert got[0].shape == ref[0].shape and got[1].shape == ref[1].shape
                scale = float(ref[0].abs().max())
                assert scale > 0.1  # logits worth comparing
                assert torch.allclose(got[0], ref[0], atol=2e-5 * scale, rtol=0), (b, list(kw), multimask)
                assert torch.allclose(got[1], ref[1], atol=1e-5)
                same = ((got[0] > 0) == (ref[0] > 0)).float().mean()
                assert same > 0.9999, float(same)


def test_the_segmenter_runs_it_with_decoder_fast_and_precision_fast_and_its_masks_hold():
    scenes = [make_scene(s) for s in range(4)]
    ref, fast = Segmenter("tiny"), Segmenter("tiny", decoder="fast")
    assert not ref.fast_decoder and fast.fast_decoder and Segmenter("tiny", precision="fast").fast_decoder
    assert not Segmenter("tiny", precision="fast", decoder="reference").fast_decoder
    ious = []
    for sc in scenes:
        prompts = []
        for m in sc.masks():
            ys, xs = np.nonzero(m)
            prompts.append(Prompt(box=(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)))
            prompts.append(Prompt(points=[(xs[len(xs) // 2] + 0.5, ys[len(ys) // 2] + 0.5)]))
        for a, b in zip(ref.predict(sc.image, prompts), fast.predict(sc.image, prompts)):
            assert abs(a.score - b.score) < 1e-4
            ious.append((a.mask & b.mask).sum() / max((a.mask | b.mask).sum(), 1))
    assert len(ious) >= 8 and min(ious) > 0.999, min(ious)
    with pytest.raises(ConfigError, match="decoder must be"):
        Segmenter("tiny", decoder="quick")


def test_jobs_carry_the_decoder_and_geo_auto_asks_for_the_fast_one(monkeypatch, tmp_path):
    from samprompt.cli import common, geo
    from samprompt.jobs import SegmenterSpec

    assert SegmenterSpec("tiny", decoder="fast").build().fast_decoder
    assert not SegmenterSpec("tiny").build().fast_decoder
    seen = []
    class Stop(Exception):
        pass

    def record(args, *a, **k):
        seen.append(common.segmenter_spec(args))
        raise Stop

    monkeypatch.setattr(geo, "run_cli_job", record)
    from samprompt import cli

    cli.main(["synth", str(tmp_path / "geo"), "--raster", "--size", "512"])
    with pytest.raises(Stop):
        cli.main(["geo", str(tmp_path / "geo" / "scene.tif"), "--auto", "--out", str(tmp_path / "out")])
    assert seen and seen[0].decoder == "fast"
