import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from samprompt import EmbeddingCache, ImageError, Prompt, PromptError, Segmenter
from samprompt.synthetic import make_scene


@pytest.fixture(scope="module")
def sam(random_sam):
    return random_sam


def _random_prompt(rng, h, w):
    kind = rng.integers(0, 4)
    n = int(rng.integers(1, 4))
    pts = np.stack([rng.uniform(0, w - 1, n), rng.uniform(0, h - 1, n)], 1)
    labels = rng.integers(0, 2, n)
    x0, x1 = np.sort(rng.uniform(0, w - 1, 2))
    y0, y1 = np.sort(rng.uniform(0, h - 1, 2))
    box = (x0, y0, x1 + 1e-3, y1 + 1e-3)
    if kind == 0:
        return Prompt(points=pts, labels=labels)
    if kind == 1:
        return Prompt(box=box)
    if kind == 2:
        return Prompt(points=pts, labels=labels, box=box)
    return Prompt(points=pts[:1], labels=[1], mask=rng.normal(0, 3, (64, 64)).astype(np.float32))


def _official(predictor, p, multimask):
    return predictor.predict(
        point_coords=p.points if len(p.points) else None,
        point_labels=p.labels if len(p.points) else None,
        box=p.box,
        mask_input=None if p.mask is None else p.mask[None],
        multimask_output=multimask,
    )


@pytest.mark.parametrize("seed", range(4))
def test_same_masks_as_official_predictor(sam, seed):
    rng = np.random.default_rng(seed)
    scene = make_scene(seed, size=(int(rng.integers(120, 300)), int(rng.integers(120, 300))))
    h, w = scene.image.shape[:2]
    predictor = SamPredictor(sam)
    predictor.set_image(scene.image)
    seg = Segmenter(sam)
    prompts = [_random_prompt(rng, h, w) for _ in range(12)]
    for multimask in (True, False):
        # one at a time
        for p in prompts:
            ref_m, ref_s, ref_l = _official(predictor, p, multimask)
            res = seg.predict(scene.image, p, multimask=multimask, best_only=False)
            assert res.masks.shape == ref_m.shape and res.masks.dtype == bool
            assert np.array_equal(res.masks, ref_m)
            np.testing.assert_allclose(res.scores, ref_s, atol=1e-5)
            np.testing.assert_allclose(res.logits, ref_l, atol=1e-4)
        # all at once (batched by signature)
        many = seg.predict(scene.image, prompts, multimask=multimask, best_only=False)
        for p, res in zip(prompts, many):
            ref_m, ref_s, _ = _official(predictor, p, multimask)
            mismatch = (res.masks != ref_m).mean()
            assert mismatch < 1e-4, mismatch  # batched matmuls may flip a rare pixel at logit ~0
            np.testing.assert_allclose(res.scores, ref_s, atol=1e-5)


def test_best_only_picks_highest_predicted_iou(sam, scene):
    seg = Segmenter(sam)
    p = Prompt(points=[(50, 60)])
    allm = seg.predict(scene.image, p, multimask=True, best_only=False)
    best = seg.predict(scene.image, p)  # auto: a single point is ambiguous -> best of three
    k = int(np.argmax(allm.scores))
    assert best.masks.shape[0] == 1 and np.array_equal(best.mask, allm.masks[k])
    assert best.score == pytest.approx(float(allm.scores[k]))
    boxed = seg.predict(scene.image, Prompt(box=(10, 10, 100, 100)))  # not ambiguous -> one mask
    assert boxed.masks.shape == (1, *scene.image.shape[:2])


def test_cache_avoids_re_encoding(sam, scene):
    seg = Segmenter(sam)
    calls = []
    handle = sam.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        seg.predict(scene.image, Prompt(points=[(10, 10)]))
        seg.predict(scene.image, [Prompt(box=(0, 0, 50, 50)), Prompt(points=[(20, 30)])])
        seg.predict(scene.image.copy(), Prompt(points=[(40, 40)]))  # same content, new array
        assert len(calls) == 1 and seg.encoder_calls == 1
        seg.predict(make_scene(99).image, Prompt(points=[(10, 10)]))
        assert len(calls) == 2
    finally:
        handle.remove()


def test_lru_evicts_and_disk_cache_survives(sam, tmp_path):
    images = [make_scene(i, size=64).image for i in range(3)]
    seg = Segmenter(sam, cache_size=2)
    for img in images:
        seg.embed(img)
    seg.embed(images[0])  # evicted by the third image
    assert seg.encoder_calls == 4
    seg1 = Segmenter(sam, cache_dir=str(tmp_path))
    e1 = seg1.embed(images[1])
    seg2 = Segmenter(sam, cache=EmbeddingCache(4, tmp_path))  # a "restarted" process
    e2 = seg2.embed(images[1])
    assert seg2.encoder_calls == 0 and torch.equal(e1.features, e2.features)
    assert e2.input_size == e1.input_size and e2.original_size == (64, 64)


def test_cache_key_depends_on_model_and_learned_prompt(sam, scene):
    cache = EmbeddingCache(8)
    a = Segmenter(sam, cache=cache)
    a.embed(scene.image)

    class FakeLearned:
        id = "learned:1"

        def encode(self, model, x):
            return model.image_encoder(x) + 1

    b = Segmenter(sam, cache=cache, learned=FakeLearned())
    eb = b.embed(scene.image)
    assert b.encoder_calls == 1  # not served from a's entry
    assert not torch.equal(eb.features, a.embed(scene.image).features)


def test_many_objects_use_batched_decoder_calls(sam, scene):
    seg = Segmenter(sam)
    calls = []
    handle = sam.prompt_encoder.register_forward_hook(lambda *a: calls.append(1))  # one per decoder pass
    try:
        boxes = [Prompt(box=(i, i, i + 40, i + 30)) for i in range(0, 100, 2)]
        res = seg.predict(scene.image, boxes, batch_size=64)
        assert len(res) == 50 and len(calls) == 1
        calls.clear()
        mixed = boxes[:10] + [Prompt(points=[(i + 5, 20)]) for i in range(10)]
        seg.predict(scene.image, mixed, batch_size=64)
        assert len(calls) == 2  # one call per prompt signature
        calls.clear()
        seg.predict(scene.image, boxes, batch_size=16)
        assert len(calls) == 4
    finally:
        handle.remove()


def test_binary_mask_prompt_and_refinement(sam, scene):
    seg = Segmenter(sam)
    gt = scene.labels == 1
    res = seg.predict(scene.image, Prompt(mask=gt))
    assert res.masks.shape == (1, *gt.shape)
    nxt = res.refine(30, 30, 0) if res.prompt is not None else None
    assert nxt.mask.shape == seg.low_res_size and nxt.labels.tolist() == [0]
    again = seg.predict(scene.image, nxt)
    assert again.masks.shape == (1, *gt.shape)
    with pytest.raises(PromptError, match="expects"):
        seg.predict(scene.image, Prompt(points=[(1, 1)], mask=np.zeros((10, 10), np.float32)))


def test_inputs_and_errors(sam, scene, tmp_path):
    import cv2

    seg = Segmenter(sam)
    path = tmp_path / "s.png"
    cv2.imwrite(str(path), scene.image[..., ::-1])
    r1 = seg.predict(path, Prompt(points=[(20, 20)]))
    r2 = seg.predict(scene.image, Prompt(points=[(20, 20)]))
    assert np.array_equal(r1.masks, r2.masks) and seg.encoder_calls == 1
    gray16 = (scene.image[..., 0].astype(np.uint16) * 200)
    assert seg.predict(gray16, Prompt(box=(0, 0, 50, 50))).masks.shape == (1, *gray16.shape)
    with pytest.raises(PromptError, match="outside"):
        seg.predict(scene.image, Prompt(points=[(5000, 1)]))
    with pytest.raises(PromptError, match="no prompts"):
        seg.predict(scene.image, [])
    with pytest.raises(ImageError):
        seg.predict(np.zeros((3, 3, 3, 3)), Prompt(points=[(1, 1)]))


def test_segment_everything_pipeline(sam, scene):
    seg = Segmenter(sam)
    res = seg.segment_everything(scene.image, points_per_side=4, pred_iou_thresh=-10, stability_score_thresh=-1,
                                 box_nms_thresh=1.0)
    n = len(res.masks)
    assert res.masks.shape[1:] == scene.image.shape[:2] and res.extra["points"].shape == (n, 2)
    assert np.all(np.diff(res.scores) <= 0)
    nms = seg.segment_everything(scene.image, points_per_side=4, pred_iou_thresh=-10, stability_score_thresh=-1,
                                 box_nms_thresh=0.3)
    assert len(nms.masks) <= n
    strict = seg.segment_everything(scene.image, points_per_side=4, pred_iou_thresh=10)
    assert len(strict.masks) == 0
    assert seg.encoder_calls == 1


def test_decode_on_a_kept_embedding_equals_predict(sam, scene):
    seg = Segmenter(sam)
    emb = seg.embed(scene.image)
    prompts = [Prompt(box=(10, 10, 90, 80)), Prompt(points=[(40, 50)])]
    direct = seg.predict(scene.image, prompts)
    again = seg.decode(emb, prompts)
    assert seg.encoder_calls == 1
    for a, b in zip(direct, again):
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)
    with pytest.raises(PromptError, match="outside"):
        seg.decode(emb, Prompt(points=[(scene.image.shape[1] + 1, 5)]))


def test_box_of_the_whole_image_is_valid(sam, scene):
    h, w = scene.image.shape[:2]
    res = Segmenter(sam).predict(scene.image, [Prompt(box=(0, 0, w, h)), Prompt(points=[(w, h)])])
    assert all(r.masks.shape == (1, h, w) for r in res)


def test_encoder_seam_is_part_of_the_cache_key(sam, scene):
    from samprompt import Encoder, SamEncoder

    class Shifted(Encoder):
        kind, precision = "shifted", "fp32"

        def encode(self, model, x, learned=None):
            return SamEncoder().encode(model, x, learned) + 1

    cache = EmbeddingCache(8)
    ref = Segmenter(sam, cache=cache)
    other = Segmenter(sam, cache=cache, encoder=Shifted())
    assert ref.encoder.id == "sam/fp32" and other.encoder.id == "shifted/fp32"
    a, b = ref.embed(scene.image), other.embed(scene.image)
    assert other.encoder_calls == 1 and torch.allclose(b.features, a.features + 1)
    assert Segmenter(sam, cache=cache, encoder=Shifted()).embed(scene.image).features.equal(b.features)


def test_normaliser_is_applied_once_and_keys_the_cache(sam):
    from samprompt import Window

    ct = np.linspace(-1000, 1000, 64 * 64).reshape(64, 64)
    soft = Segmenter(sam, normalize=Window.from_level(400, 40))
    lung = Segmenter(sam, cache=soft.cache, normalize=Window.from_level(1500, -600))
    p = Prompt(box=(5, 5, 60, 60))
    soft.predict(ct, p)
    lung.predict(ct, p)
    assert soft.encoder_calls == 1 and lung.encoder_calls == 1  # different windows, different inputs
    assert soft.predict(ct, p).masks.shape == (1, 64, 64) and soft.encoder_calls == 1


def test_shared_steps_match_the_official_predictor(sam, scene):
    from samprompt.steps import model_input, run_decoder

    predictor = SamPredictor(sam)
    predictor.set_image(scene.image)
    x, input_size = model_input(sam, scene.image)
    assert input_size == tuple(predictor.input_size)
    with torch.no_grad():
        assert torch.equal(sam.image_encoder(x), predictor.features)
        box = torch.tensor([[10.0, 10.0, 90.0, 80.0]])
        all4, iou4 = run_decoder(sam.prompt_encoder, sam.mask_decoder, predictor.features, boxes=box)
        one, iou1 = run_decoder(sam.prompt_encoder, sam.mask_decoder, predictor.features, boxes=box, multimask=False)
    assert all4.shape[1] == 4 and one.shape[1] == 1 and torch.equal(one[:, 0], all4[:, 0])
