"""The cached decoder gives SAM's own decoder's masks and scores, bit for bit; the rearranged one, to rounding."""

import gc

import numpy as np
import pytest
import torch

from samprompt import Prompt, Segmenter
from samprompt import decoder_cache as dc
from samprompt.fast_decoder import fast_decode
from samprompt.models import REGISTRY, build_sam, load_model
from samprompt.steps import run_decoder
from samprompt.synthetic import make_scene


def _prompts(rng, b, size):
    pts = torch.as_tensor(rng.uniform(0, size, (b, 3, 2)), dtype=torch.float)
    labels = torch.as_tensor(rng.integers(0, 2, (b, 3)), dtype=torch.int)
    boxes = torch.as_tensor(np.sort(rng.uniform(0, size, (b, 2, 2)), 1).reshape(b, 4), dtype=torch.float)
    return [dict(points=(pts, labels)), dict(boxes=boxes), dict(points=(pts, labels), boxes=boxes)]


def _decoder(arch):
    """(prompt encoder, mask decoder, embedding, the input side in px) of the built-in model on a scene, or of
    ViT-B's decoder (random weights) on a random embedding: the decoder is what is tested."""
    torch.manual_seed(0)
    if arch == "tiny":
        model = load_model("tiny")
        emb = Segmenter(model).embed(make_scene(3).image).features
    else:
        model = build_sam(REGISTRY["vit_b"].arch)
        emb = torch.randn(1, 256, 64, 64)
    return model.prompt_encoder, model.mask_decoder, emb, 4 * emb.shape[-1] * (4 if arch == "vit_b" else 1)


def _against_the_reference(arch, seed, decode):
    """Each case (1 and 7 prompts; points, boxes, both; every multimask setting): (what ``decode`` gave,
    what SAM's decoder gave, the case's label)."""
    pe, md, emb, size = _decoder(arch)
    rng = np.random.default_rng(seed)
    for b in (1, 7):
        for kw in _prompts(rng, b, size):
            for multimask in (True, False, None):
                with torch.no_grad():
                    ref = run_decoder(pe, md, emb, multimask=multimask, **kw)
                got = decode(pe, md, emb, multimask=multimask, **kw)
                assert got[0].shape == ref[0].shape and got[1].shape == ref[1].shape
                yield got, ref, (b, list(kw), multimask)


@pytest.mark.parametrize("arch", ["tiny", "vit_b"])
def test_cached_decode_equals_the_reference_bit_for_bit(arch):
    for got, ref, case in _against_the_reference(arch, 0, dc.cached_decode):
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]), case


@pytest.mark.parametrize("arch", ["tiny", "vit_b"])
def test_fast_decode_equals_the_reference_up_to_rounding(arch):
    for got, ref, case in _against_the_reference(arch, 1, fast_decode):
        scale = float(ref[0].abs().max())
        assert scale > 0.1  # logits worth comparing
        assert torch.allclose(got[0], ref[0], atol=2e-5 * scale, rtol=0), case
        assert torch.allclose(got[1], ref[1], atol=1e-5)
        same = ((got[0] > 0) == (ref[0] > 0)).float().mean()
        assert same > 0.9999, float(same)


def test_the_segmenter_uses_it_only_where_it_holds_and_the_cache_goes_with_the_embedding():
    model = load_model("tiny")
    seg = Segmenter(model)
    scene = make_scene(4)
    emb = seg.embed(scene.image)
    before = len(dc._CACHES)
    r = seg.decode(emb, Prompt(points=[(60.0, 70.0)]))
    assert id(emb.features) in dc._CACHES and len(dc._CACHES) == before + 1
    with torch.no_grad():  # the reference path, by hand
        low, iou = run_decoder(model.prompt_encoder, model.mask_decoder, emb.features,
                               points=(seg.family.to_input_frame(np.array([[[60.0, 70.0]]]), emb.input_size,
                                                                 emb.original_size, seg.device),
                                       torch.ones(1, 1, dtype=torch.int)), multimask=True)
    best = int(iou[0].argmax())
    ref = (seg.upscale(low[:, best:best + 1], emb) > 0)[0, 0].numpy()
    assert np.array_equal(r.mask, ref)
    assert dc.supports(model.mask_decoder, None) and not dc.supports(model.mask_decoder, torch.zeros(1, 1, 64, 64))
    assert not dc.supports(type("Other", (torch.nn.Module,), {})(), None)  # SAM-HQ, learned decoders: the reference
    seg.cache = type(seg.cache)(0)  # the Segmenter's own LRU held the embedding too
    del emb, r
    gc.collect()
    assert len(dc._CACHES) == before  # dropped with its embedding
    embs = [seg.embed(make_scene(s).image) for s in range(dc.KEEP + 2)]
    for e in embs:
        seg.decode(e, Prompt(points=[(60.0, 70.0)]))
    assert list(dc._CACHES)[-dc.KEEP:] == [id(e.features) for e in embs[-dc.KEEP:]] and len(dc._CACHES) <= dc.KEEP


def test_upscaling_skips_sams_same_size_resize_and_gives_its_logits():
    from samprompt.cache import Embedding
    from samprompt.families.sam import SamFamily

    model, fam = load_model("tiny"), SamFamily()
    low = torch.randn(3, 1, 64, 64)
    for size in [(256, 256), (200, 256), (256, 180), (512, 512), (100, 60)]:
        scale = 256 / max(size)
        inp = (int(size[0] * scale + 0.5), int(size[1] * scale + 0.5))  # as SAM's ResizeLongestSide
        assert torch.equal(fam.upscale(model, low, Embedding(torch.zeros(1), inp, size)),
                           model.postprocess_masks(low, inp, size)), size
