"""The fast encoder paths: SDPA attention, bf16, the seam's id in the cache key, learned prompts on them."""

import numpy as np
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention

from samprompt import ConfigError, EmbeddingCache, Prompt, Segmenter
from samprompt.attention import _chunked_products as products
from samprompt.attention import _chunked_sdpa as chunked_sdpa
from samprompt.attention import attention_impl, sdpa_attention
from samprompt.backends import make_encoder
from samprompt.encoders import SamEncoder, TorchEncoder
from samprompt.learned import LearnedPrompt
from samprompt.masks import iou
from samprompt.synthetic import make_scene


@pytest.mark.parametrize("window, chunk", [(0, 7), (0, 4096), (4, 5)])
def test_sdpa_attention_matches_the_reference(window, chunk):
    torch.manual_seed(0)
    attn = Attention(48, num_heads=4, use_rel_pos=True, input_size=(6, 5) if not window else (window, window))
    x = torch.randn(3, *((6, 5) if not window else (window, window)), 48)
    with torch.no_grad():
        torch.testing.assert_close(sdpa_attention(attn, x, chunk=chunk), attn(x), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("window, chunk", [(0, 7), (0, None), (4, 5)])
def test_bf16_attention_on_a_cpu_runs_as_chunked_products_and_matches_the_reference(window, chunk, monkeypatch):
    import samprompt.attention as A

    torch.manual_seed(0)
    size = (6, 5) if not window else (window, window)
    attn = Attention(48, num_heads=4, use_rel_pos=True, input_size=size)
    x = torch.randn(3, *size, 48)
    with torch.no_grad():
        ref = attn(x)
        calls = []
        monkeypatch.setattr(A, "_chunked_products", lambda *a: calls.append(a[-1]) or products(*a))
        got = sdpa_attention(attn.to(torch.bfloat16), x.to(torch.bfloat16), chunk=chunk)
    assert calls == [chunk or A.PRODUCT_CHUNK]
    torch.testing.assert_close(got.float(), ref, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("chunk", [4, 30, 256])
def test_chunked_products_equal_sdpa_with_and_without_prompt_keys(chunk):
    torch.manual_seed(1)
    B, nh, H, W, hd, P = 2, 3, 6, 5, 8, 4
    q, k, v = (torch.randn(B, nh, H * W, hd) for _ in range(3))
    rel_h, rel_w = torch.randn(B, nh, H * W, H), torch.randn(B, nh, H * W, W)
    for prompt in (None, (torch.randn(B, nh, P, hd), torch.randn(B, nh, P, hd))):
        want = chunked_sdpa(q, k, v, rel_h, rel_w, H, W, prompt, 1024)
        torch.testing.assert_close(products(q, k, v, rel_h, rel_w, H, W, prompt, chunk), want,
                                   atol=1e-5, rtol=1e-4)


def test_sdpa_encoder_equals_the_reference_and_restores_the_modules(random_sam):
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        ref = random_sam.image_encoder(x)
        fast = TorchEncoder("fp32", "sdpa").encode(random_sam, x)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    assert not any("forward" in vars(m) for m in random_sam.modules())
    with pytest.raises(ValueError, match="attn_impl"), attention_impl("flash"):
        pass


def test_bf16_and_sdpa_choose_the_same_masks(tiny_or_random_sam, monkeypatch):
    import samprompt.encoders

    monkeypatch.setattr(samprompt.encoders, "bf16_supported", lambda device: True)  # run bf16 even on this CPU
    scene = make_scene(7)
    gts = scene.masks()
    boxes = [Prompt(box=(*np.argwhere(g)[:, ::-1].min(0), *(np.argwhere(g)[:, ::-1].max(0) + 1))) for g in gts]
    ref = Segmenter(tiny_or_random_sam).predict(scene.image, boxes)
    for precision, impl in [("fp32", "sdpa"), ("bf16", "sam"), ("bf16", "sdpa")]:
        fast = Segmenter(tiny_or_random_sam, precision=precision, attn_impl=impl)
        assert fast.encoder.id == f"{impl}/{precision}"
        got = fast.predict(scene.image, boxes)
        agree = np.mean([iou(a.mask, b.mask) for a, b in zip(ref, got)])
        assert agree >= (0.999 if precision == "fp32" else 0.95), (precision, impl, agree)


def test_bf16_without_native_support_warns_and_runs_fp32(random_sam, monkeypatch):
    import samprompt.encoders

    monkeypatch.setattr(samprompt.encoders, "bf16_supported", lambda device: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        seg = Segmenter(random_sam, precision="bf16", attn_impl="sdpa")
    assert seg.encoder.id == "sdpa/fp32"


def test_encoder_settings_key_the_cache_and_bad_ones_are_clear(random_sam):
    image = make_scene(1, size=96).image
    cache = EmbeddingCache(8)
    a = Segmenter(random_sam, cache=cache)
    b = Segmenter(random_sam, cache=cache, attn_impl="sdpa")
    a.embed(image)
    b.embed(image)
    assert b.encoder_calls == 1 and isinstance(a.encoder, SamEncoder)
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        Segmenter(random_sam, precision="fp16")
    with pytest.raises(ConfigError, match="precision must be"):
        make_encoder("int4")
    with pytest.raises(ConfigError, match="onnx_dir"):
        make_encoder(backend="onnx")


@pytest.mark.parametrize("method, kw", [("vpt-deep", {"attention": "gated"}), ("vpt-deep", {"attention": "joint"}),
                                        ("vpt-generated", {}), ("pixel-pad", {"init": "normal"}),
                                        ("full-ft", {})])
def test_learned_prompts_run_on_the_fast_path(random_sam, method, kw):
    torch.manual_seed(1)
    prompt = LearnedPrompt.create(method, random_sam, **kw)
    with torch.no_grad():  # make the prompt matter
        for p in prompt.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(1, 3, 256, 256)
    ref = SamEncoder().encode(random_sam, x, prompt)
    fast = TorchEncoder("fp32", "sdpa").encode(random_sam, x, prompt)
    torch.testing.assert_close(fast, ref, atol=2e-4, rtol=1e-3)
    if method == "full-ft":
        assert not any("forward" in vars(m) for m in prompt.image_encoder.modules())


def test_prefetch_fills_the_cache(random_sam):
    seg = Segmenter(random_sam)
    images = [make_scene(i, size=64).image for i in range(2)]
    seg.prefetch(images[1]).join()
    seg.embed(images[1])
    assert seg.encoder_calls == 1


@pytest.fixture(scope="module")
def onnx_dir(random_sam, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from samprompt.onnx_backend import export_onnx

    return export_onnx(random_sam, tmp_path_factory.mktemp("onnx"))


def test_onnx_export_matches_torch(random_sam, onnx_dir):
    import json

    info = json.loads((onnx_dir / "onnx.json").read_text())
    assert info["decoder"]["outputs"]["low_res_logits"] == ["B", 4, 64, 64] and info["img_size"] == 256
    scene = make_scene(3, size=(200, 256))
    prompts = [Prompt(box=(10, 10, 120, 100)), Prompt(points=[(50, 60)]),
               Prompt(points=[(50, 60), (90, 20)], labels=[1, 0], box=(5, 5, 150, 150)),
               Prompt(points=[(30, 30), (60, 40), (70, 90)])]
    ref = Segmenter(random_sam).predict(scene.image, prompts, best_only=False)
    onnx = Segmenter(random_sam, backend="onnx", onnx_dir=onnx_dir)
    got = onnx.predict(scene.image, prompts, best_only=False)
    assert onnx.encoder.id == "onnx/fp32"
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b.logits, a.logits, atol=1e-4)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
        assert np.mean([iou(x, y) for x, y in zip(a.masks, b.masks)]) > 0.999
    refined = ref[1].refine(100, 100, 0)  # a mask input
    np.testing.assert_allclose(onnx.predict(scene.image, refined).logits,
                               Segmenter(random_sam).predict(scene.image, refined).logits, atol=1e-4)


def test_onnx_refuses_another_model_and_learned_prompts(random_sam, tiny_sam, onnx_dir):
    from samprompt import CheckpointError

    with pytest.raises(CheckpointError, match="were exported from"):
        Segmenter(tiny_sam, backend="onnx", onnx_dir=onnx_dir)
    prompt = LearnedPrompt.create("vpt-deep", random_sam, tokens=2)
    with pytest.raises(ConfigError, match="learned prompts act inside the torch encoder"):
        Segmenter(random_sam, backend="onnx", onnx_dir=onnx_dir, learned=prompt).embed(make_scene(0, size=64).image)


def test_cli_export_onnx_and_run_it(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from samprompt import cli
    from samprompt.synthetic import write_dataset

    assert cli.main(["export-onnx", "tiny", "--out", str(tmp_path / "x")]) == 0
    assert "encoder.onnx" in capsys.readouterr().out
    data = write_dataset(tmp_path / "d", 2)
    scores = []
    for extra in ([], ["--onnx-dir", str(tmp_path / "x")], ["--attn-impl", "sdpa"]):
        assert cli.main(["eval", str(data), "--json", *extra]) == 0
        scores.append(__import__("json").loads(capsys.readouterr().out)["mIoU"])
    assert max(scores) - min(scores) < 1e-3


@pytest.mark.parametrize("precision", ["int8", "int8+bf16"])
def test_int8_sdpa_agrees_with_fp32_and_leaves_the_model_alone(tiny_sam, precision, monkeypatch):
    import samprompt.encoders
    from samprompt.simulate import box_from_mask, center_point

    monkeypatch.setattr(samprompt.encoders, "bf16_supported", lambda device: True)  # bf16 even on this CPU
    engine = torch.backends.quantized.engine
    ref = Segmenter(tiny_sam, cache_size=0)
    fast = Segmenter(tiny_sam, cache_size=0, precision=precision, attn_impl="sdpa")
    assert fast.encoder.id == f"sdpa/{precision}"
    assert torch.backends.quantized.engine == engine  # the copy's engine is set only while it is made
    ious = []
    for seed in range(500_000, 500_004):
        scene = make_scene(seed)
        gts = scene.masks()
        prompts = [Prompt(box=box_from_mask(g)) for g in gts] + [Prompt(points=center_point(g)[None]) for g in gts]
        ious += [iou(a.mask, b.mask) for a, b in zip(ref.predict(scene.image, prompts),
                                                      fast.predict(scene.image, prompts))]
    assert np.mean(ious) >= 0.98, np.mean(ious)
    assert type(tiny_sam.image_encoder).__name__ == "ImageEncoderViT"
    assert not any("quantized" in type(m).__module__ for m in tiny_sam.modules())
    with pytest.raises(ConfigError, match="int8.*CPU only"):
        TorchEncoder(precision, "sdpa", device="cuda")


def test_int8_bf16_implies_sdpa_and_needs_native_bf16(monkeypatch):
    import samprompt.encoders

    monkeypatch.setattr(samprompt.encoders, "bf16_supported", lambda device: True)
    assert Segmenter("tiny", precision="int8+bf16").encoder.id == "sdpa/int8+bf16"  # attn_impl left at "sam"
    monkeypatch.setattr(samprompt.encoders, "bf16_supported", lambda device: False)
    with pytest.warns(UserWarning, match="runs in int8"):
        assert TorchEncoder("int8+bf16", "sdpa").id == "sdpa/int8"


def test_the_int8_kernels_are_onednn_only_where_avx512_and_vnni_are(monkeypatch):
    import samprompt.encoders as enc

    for avx512, vnni in [(True, True), (True, False), (False, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_supported", lambda: avx512, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni, raising=False)
        want = "onednn" if avx512 and vnni else torch.backends.quantized.engine
        assert enc.quantized_engine() == want


def test_learned_tokens_run_on_int8(random_sam):
    prompt = LearnedPrompt.create("vpt-deep", random_sam, tokens=2)
    with torch.no_grad():
        for p in prompt.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(1, 3, 256, 256)
    enc = TorchEncoder("int8", "sdpa")
    enc.bind(random_sam)
    out = enc.encode(random_sam, x, prompt)
    ref = SamEncoder().encode(random_sam, x, prompt)
    assert (out - ref).norm() / ref.norm() < 0.1
    assert type(random_sam.image_encoder).__name__ == "ImageEncoderViT"


def test_precision_fast_is_chosen_by_what_the_cpu_does_natively(monkeypatch):
    """int8+bf16 on native-bf16 CPUs without AMX, bf16 with AMX, int8 + SDPA elsewhere, never assumed;
    SAM 2 keeps its attention."""
    import samprompt.encoders as enc
    from samprompt import Segmenter
    from samprompt.jobs import SegmenterSpec

    cpu = torch.device("cpu")
    monkeypatch.setattr(enc, "bf16_supported", lambda device: True)
    for amx, want in [(True, "bf16"), (False, "int8+bf16")]:
        monkeypatch.setattr(enc, "amx_supported", lambda device: amx)
        assert enc.fast_settings(cpu) == (want, "sdpa") and enc.fast_settings(cpu, vit=False) == ("bf16", "sam")
        assert Segmenter("tiny", precision="fast").encoder.id == make_encoder(want, "sdpa").id
        assert SegmenterSpec("tiny", precision="fast").stamp()["encoder"] == make_encoder(want, "sdpa").id
    monkeypatch.setattr(enc, "bf16_supported", lambda device: False)
    assert enc.fast_settings(cpu) == ("int8", "sdpa")
    seg = Segmenter("tiny", precision="fast")
    assert seg.encoder.id == make_encoder("int8", "sdpa").id
    assert SegmenterSpec("tiny", precision="fast").stamp()["encoder"] == seg.encoder.id
