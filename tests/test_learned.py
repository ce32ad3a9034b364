import json

import numpy as np
import pytest
import torch

from samprompt import CheckpointError, ConfigError, Prompt, SampromptError, Segmenter, build_sam
from samprompt.learned import METHODS, LearnedPrompt, make_config
from samprompt.models import TINY_ARCH
from samprompt.synthetic import make_scene


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(1)
    return build_sam(TINY_ARCH)


@pytest.fixture(scope="module")
def x(sam):
    img = torch.from_numpy(make_scene(0, size=(256, 200)).image).permute(2, 0, 1).float()[None]
    return sam.preprocess(img)


@pytest.mark.parametrize("method", METHODS)
def test_zero_init_leaves_the_model_unchanged(sam, x, method):
    prompt = LearnedPrompt.create(method, sam)
    with torch.no_grad():
        ref = sam.image_encoder(x)
        out = prompt.encode(sam, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["vpt-deep", "vpt-generated"])
def test_default_tokens_differ_and_stay_different_under_training(sam, x, method):
    """Zero tokens would be identical and get identical gradients; the default random ones do not."""
    prompt = LearnedPrompt.create(method, sam, tokens=4)
    LearnedPrompt.freeze_model(sam)
    opt = torch.optim.Adam([p for p in prompt.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        prompt.encode(sam, x).square().mean().backward()
        opt.step()
    for toks in prompt.module.tokens:
        assert torch.cdist(toks, toks).fill_diagonal_(1.0).min() > 1e-3
    zero = LearnedPrompt.create(method, sam, tokens=4, init="zero")
    zero.module.gates[0].data.fill_(0.5)
    zero.encode(sam, x).square().mean().backward()
    g = zero.module.tokens[0].grad
    torch.testing.assert_close(g, g[:1].expand_as(g))  # the symmetry the default avoids


@pytest.mark.parametrize("method", METHODS)
def test_trained_parameters_change_the_embedding_and_get_gradients(sam, x, method):
    prompt = LearnedPrompt.create(method, sam)
    LearnedPrompt.freeze_model(sam)
    with torch.no_grad():
        for p in prompt.parameters():
            p.normal_(0, 0.5)
    out = prompt.encode(sam, x)
    assert not torch.allclose(out, sam.image_encoder(x), atol=1e-4)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompt.parameters())
    assert all(p.grad is None for p in sam.parameters())


def test_parameter_counts(sam):
    total = sum(p.numel() for p in sam.parameters())
    shallow = LearnedPrompt.create("vpt-shallow", sam, tokens=8).num_trainable()
    deep = LearnedPrompt.create("vpt-deep", sam, tokens=8).num_trainable()
    assert deep == TINY_ARCH.encoder_depth * shallow
    assert deep / total < 0.02
    pad = LearnedPrompt.create("pixel-pad", sam, width=4).num_trainable()
    assert pad == 3 * (256 * 256 - 248 * 248)


@pytest.mark.parametrize("method", ["vpt-deep", "vpt-generated"])
def test_depth_prompts_the_first_blocks_only(sam, x, method, tmp_path):
    prompt = LearnedPrompt.create(method, sam, tokens=4, depth=2)
    assert len(prompt.module.tokens) == 2
    if method == "vpt-deep":
        one = LearnedPrompt.create("vpt-shallow", sam, tokens=4).num_trainable()
        assert prompt.num_trainable() == 2 * one
    blocks = list(sam.image_encoder.blocks)
    feats = torch.zeros(1, blocks[0].attn.qkv.in_features)
    with prompt.module.injected(sam.image_encoder, feats):
        patched = ["forward" in vars(b.attn) for b in blocks]
    assert patched == [True, True] + [False] * (len(blocks) - 2)
    assert not any("forward" in vars(b.attn) for b in blocks)  # restored after the pass
    with torch.no_grad():
        for g in prompt.module.gates:
            g.fill_(1.0)
        assert not torch.allclose(prompt.encode(sam, x), sam.image_encoder(x), atol=1e-4)
    loaded = LearnedPrompt.load(prompt.save(tmp_path / "p"), sam)
    assert loaded.config.depth == 2 and len(loaded.module.tokens) == 2


def test_depth_is_checked(sam):
    with pytest.raises(ValueError, match="more than the encoder's"):
        LearnedPrompt.create("vpt-deep", sam, depth=TINY_ARCH.encoder_depth + 1)
    with pytest.raises(ValueError, match="first block only"):
        make_config("vpt-shallow", depth=3)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        make_config("vpt-deep", depth=0)
    assert LearnedPrompt.create("vpt-deep", sam, depth=TINY_ARCH.encoder_depth).num_trainable() == (
        LearnedPrompt.create("vpt-deep", sam).num_trainable())


def test_pad_prompt_is_a_frame_and_saves_only_the_frame(sam, tmp_path):
    prompt = LearnedPrompt.create("pixel-pad", sam, width=4, init="normal")
    frame = prompt.module.frame()
    assert frame.shape == (3, 256, 256)
    assert torch.all(frame[:, 4:-4, 4:-4] == 0)
    assert torch.all(frame[:, :4] != 0) and torch.all(frame[:, :, -4:] != 0)
    size = (prompt.save(tmp_path / "pad") / "prompt.safetensors").stat().st_size
    assert 4 * prompt.num_trainable() <= size < 4 * prompt.num_trainable() + 4096
    with pytest.raises(ValueError, match="leaves nothing"):
        LearnedPrompt.create("pixel-pad", sam, width=128)


def test_joint_attention_variant(sam, x):
    prompt = LearnedPrompt.create("vpt-deep", sam, attention="joint", init="normal")
    with torch.no_grad():
        out = prompt.encode(sam, x)
    assert out.shape == sam.image_encoder(x).shape and torch.isfinite(out).all()


def test_direct_keys_values_start_as_the_projected_tokens_and_train_on_their_own(sam, x):
    """kv='direct' (E2VPT) starts exactly where the projected prompt of the same tokens is."""
    torch.manual_seed(3)
    projected = LearnedPrompt.create("vpt-deep", sam, tokens=4)
    torch.manual_seed(3)
    direct = LearnedPrompt.create("vpt-deep", sam, tokens=4, kv="direct")
    C = TINY_ARCH.encoder_embed_dim
    assert direct.num_trainable() == 2 * 4 * C * TINY_ARCH.encoder_depth + sum(g.numel() for g in direct.module.gates)
    assert not hasattr(direct.module, "tokens")
    with torch.no_grad():
        ref = sam.image_encoder(x)
        torch.testing.assert_close(direct.encode(sam, x), ref, rtol=0, atol=1e-5)  # zero gates: no effect
        for a, b in zip(projected.module.gates, direct.module.gates):
            a.fill_(0.7), b.fill_(0.7)
        out = direct.encode(sam, x)
        torch.testing.assert_close(out, projected.encode(sam, x), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(out, ref, atol=1e-4)
        direct.module.values[0].mul_(10.0)  # values beyond what norm1 + qkv can produce
        assert not torch.allclose(direct.encode(sam, x), out, atol=1e-4)
    LearnedPrompt.freeze_model(sam)
    direct.encode(sam, x).square().mean().backward()
    assert direct.module.keys[2].grad.abs().sum() > 0 and direct.module.values[5].grad.abs().sum() > 0


def test_direct_keys_values_save_and_load(sam, x, tmp_path):
    prompt = LearnedPrompt.create("vpt-shallow", sam, tokens=3, kv="direct")
    with torch.no_grad():
        prompt.module.gates[0].fill_(0.4)
    back = LearnedPrompt.load(prompt.save(tmp_path / "kv"), sam)
    assert back.config.kv == "direct" and back.id == prompt.id
    with torch.no_grad():
        torch.testing.assert_close(back.encode(sam, x), prompt.encode(sam, x))


def test_generated_tokens_depend_on_the_image(sam, x):
    prompt = LearnedPrompt.create("vpt-generated", sam, tokens=4)
    with torch.no_grad():
        for p in prompt.parameters():
            p.normal_(0, 0.3)
        a = prompt.module.block_tokens(0, torch.randn(1, TINY_ARCH.encoder_embed_dim))
        b = prompt.module.block_tokens(0, torch.randn(1, TINY_ARCH.encoder_embed_dim))
    assert not torch.allclose(a, b)


def test_config_validation():
    with pytest.raises(ConfigError, match="method"):
        make_config("vpt-wide")
    with pytest.raises(ValueError, match="tokens"):
        make_config("vpt-deep", tokens=0)
    with pytest.raises(ValueError, match="attention"):
        make_config("vpt-deep", attention="both")
    with pytest.raises(ValueError, match="kv"):
        make_config("vpt-deep", kv="tied")
    with pytest.raises(ValueError, match="projected"):
        make_config("vpt-generated", kv="direct")
    with pytest.raises(ConfigError, match="pixel-pad has no option tokens; its options: init, init_std, width"):
        make_config("pixel-pad", tokens=3)


def test_save_load_and_wrong_model(sam, x, tmp_path):
    prompt = LearnedPrompt.create("vpt-deep", sam, tokens=4, init="normal")
    d = prompt.save(tmp_path / "p")
    meta = json.loads((d / "prompt_config.json").read_text())
    assert meta["config"]["method"] == "vpt-deep" and meta["model_id"] == prompt.model_id
    back = LearnedPrompt.load(d, sam)
    with torch.no_grad():
        torch.testing.assert_close(back.encode(sam, x), prompt.encode(sam, x))
    assert back.id == prompt.id
    other = build_sam(TINY_ARCH)
    with pytest.raises(CheckpointError, match="trained for model"):
        LearnedPrompt.load(d, other)
    with pytest.raises(CheckpointError, match="cannot read"):
        LearnedPrompt.load(tmp_path / "missing", sam)


def test_segmenter_uses_the_prompt_and_keys_the_cache(sam, tmp_path):
    image = make_scene(2, size=128).image
    plain = Segmenter(sam)
    prompt = LearnedPrompt.create("pixel-fourier", sam, init="normal", init_std=0.5)
    prompt.save(tmp_path / "f")
    with pytest.raises(SampromptError, match="is a path; load it first"):
        Segmenter(sam, learned=str(tmp_path / "f"))
    tuned = Segmenter(sam, cache=plain.cache, learned=LearnedPrompt.load(tmp_path / "f", sam))
    p = Prompt(box=(10, 10, 100, 100))
    a = plain.predict(image, p)
    b = tuned.predict(image, p)
    assert tuned.encoder_calls == 1  # not served from the plain embedding
    assert not np.allclose(a.scores, b.scores)
    tuned.predict(image, Prompt(points=[(50, 50)]))
    assert tuned.encoder_calls == 1


@pytest.mark.parametrize("method", ["decoder-ft", "full-ft"])
def test_finetune_baselines_use_their_own_copies(method, tmp_path):
    torch.manual_seed(3)
    sam = build_sam(TINY_ARCH)
    image = make_scene(6, size=128).image
    p = Prompt(box=(10, 10, 100, 100))
    before = Segmenter(sam).predict(image, p, best_only=False)
    LearnedPrompt.freeze_model(sam)
    ft = LearnedPrompt.create(method, sam)
    assert all(q.requires_grad for q in ft.parameters())
    same = Segmenter(sam, learned=ft).predict(image, p, best_only=False)
    np.testing.assert_allclose(same.scores, before.scores, atol=1e-5)  # an untouched copy changes nothing
    with torch.no_grad():
        ft.mask_decoder.iou_prediction_head.layers[-1].bias.add_(1.0)
    tuned = Segmenter(sam, learned=ft).predict(image, p, best_only=False)
    np.testing.assert_allclose(tuned.scores, before.scores + 1.0, atol=1e-4)
    assert (ft.num_trainable() > 10 * LearnedPrompt.create("vpt-deep", sam).num_trainable())
    back = LearnedPrompt.load(ft.save(tmp_path / method), sam)
    np.testing.assert_allclose(Segmenter(sam, learned=back).predict(image, p, best_only=False).scores, tuned.scores,
                               atol=1e-5)


def test_prompt_id_follows_parameter_updates(sam):
    prompt = LearnedPrompt.create("vpt-shallow", sam)
    a = prompt.id
    assert prompt.id == a
    with torch.no_grad():
        prompt.module.tokens[0].add_(1)
    assert prompt.id != a


def test_finetune_only_some_weights(sam, x):
    prompt = LearnedPrompt.create("full-ft", sam, only="image_encoder.neck+ mask_decoder.iou_token")
    neck = sum(p.numel() for p in sam.image_encoder.neck.parameters())
    assert prompt.num_trainable() == neck + sam.mask_decoder.iou_token.weight.numel()
    before = {k: v.clone() for k, v in prompt.module.state_dict().items()}
    opt = torch.optim.SGD([p for p in prompt.parameters() if p.requires_grad], lr=1.0)
    prompt.encode(sam, x).square().mean().backward()
    opt.step()
    after = prompt.module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("image_encoder.neck") for k in changed)
    with pytest.raises(ValueError, match="no parameter name starts with 'image_encoder.nek'"):
        LearnedPrompt.create("decoder-ft", sam, only="image_encoder.nek")
