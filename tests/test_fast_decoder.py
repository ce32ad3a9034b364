"""The Segmenter and the jobs run the rearranged decoder where asked, with the same masks (its logits against
the reference: tests/test_decoder_cache.py)."""

import numpy as np
import pytest

from samprompt import Prompt, Segmenter
from samprompt.errors import ConfigError
from samprompt.synthetic import make_scene


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
