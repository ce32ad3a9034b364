"""SAM 2 / 2.1, SAM-HQ and MedSAM behind the Segmenter: the masks of each family's reference code.

Random weights (fixed seeds), models built by the reference packages' own builders.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samprompt import CheckpointError, ConfigError, Prompt, Segmenter, load_model
from samprompt.families import family_of
from samprompt.families.build import build_hq, detect_family, sam2_config
from samprompt.models import REGISTRY, TINY_ARCH, build_sam
from samprompt.synthetic import make_scene


@pytest.fixture(scope="module")
def sam2_model():
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    return build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval")


@pytest.fixture(scope="module")
def hq_model():
    torch.manual_seed(1)
    return build_hq(TINY_ARCH)


def _prompts(h, w):
    """Clicks, a box, box + clicks, and a negative click, in one image's pixels."""
    return [
        Prompt(points=[[w * 0.4, h * 0.5]], labels=[1]),
        Prompt(box=(w * 0.2, h * 0.25, w * 0.7, h * 0.8)),
        Prompt(points=[[w * 0.5, h * 0.5], [w * 0.1, h * 0.1]], labels=[1, 0], box=(w * 0.3, h * 0.3, w * 0.9, h * 0.9)),
        Prompt(points=[[w * 0.6, h * 0.3], [w * 0.2, h * 0.7], [w * 0.9, h * 0.2]], labels=[1, 1, 0]),
    ]


def _reference(predictor, p: Prompt, multimask: bool, **extra):
    return predictor.predict(
        point_coords=p.points if len(p.points) else None,
        point_labels=p.labels if len(p.points) else None,
        box=p.box,
        mask_input=None if p.mask is None else p.mask[None],
        multimask_output=multimask,
        **extra,
    )


def _same(res, ref, batched=False):
    ref_m, ref_s, ref_l = ref
    assert res.masks.shape == ref_m.shape
    if batched:  # batched matmuls may flip a rare pixel at logit ~0
        assert (res.masks != ref_m.astype(bool)).mean() < 1e-4
    else:
        assert np.array_equal(res.masks, ref_m.astype(bool))
        np.testing.assert_allclose(res.logits, ref_l, atol=1e-4)
    np.testing.assert_allclose(res.scores, ref_s, atol=1e-5)


def test_sam2_matches_sam2_image_predictor(sam2_model):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image = make_scene(3, size=(180, 260)).image  # not square: SAM 2 squashes, SAM pads
    h, w = image.shape[:2]
    predictor = SAM2ImagePredictor(sam2_model)
    predictor.set_image(image)
    seg = Segmenter(sam2_model)
    assert seg.family.name == "sam2" and seg.img_size == 1024 and seg.low_res_size == (256, 256)
    prompts = _prompts(h, w)
    for multimask in (True, False):
        for p in prompts:
            res = seg.predict(image, p, multimask=multimask, best_only=False)
            _same(res, _reference(predictor, p, multimask))
    # a mask input: the previous answer's low-res logits, as an interactive session passes them
    first = seg.predict(image, prompts[0], multimask=False)
    refine = Prompt(points=[[w * 0.4, h * 0.5], [w * 0.8, h * 0.8]], labels=[1, 0], mask=first.logits[0])
    _same(seg.predict(image, refine, multimask=False), _reference(predictor, refine, False))
    # many boxes in one decoder call, as SAM2ImagePredictor takes a (B, 4) array
    boxes = np.array([[10, 20, 120, 150], [60, 5, 250, 90], [0, 0, w, h]], dtype=np.float32)
    ref_m, ref_s, ref_l = predictor.predict(box=boxes, multimask_output=False)
    many = seg.predict(image, [Prompt(box=b) for b in boxes], multimask=False, batch_size=8)
    for i, res in enumerate(many):
        _same(res, (ref_m[i], ref_s[i], ref_l[i]), batched=True)
    assert seg.encoder_calls == 1  # one embedding served every prompt


def test_sam_hq_matches_its_predictor(hq_model):
    from segment_anything_hq import SamPredictor as HqPredictor

    image = make_scene(4, size=(200, 150)).image
    h, w = image.shape[:2]
    predictor = HqPredictor(hq_model)
    predictor.set_image(image)
    seg = Segmenter(hq_model)
    assert seg.family.name == "sam-hq"
    prompts = _prompts(h, w)
    for multimask in (True, False):
        for p in prompts:
            res = seg.predict(image, p, multimask=multimask, best_only=False)
            _same(res, _reference(predictor, p, multimask))
    boxes = torch.tensor([[10, 20, 120, 150], [60, 5, 140, 190.0]])
    ref_m, ref_s, ref_l = predictor.predict_torch(None, None, predictor.transform.apply_boxes_torch(boxes, (h, w)),
                                                  multimask_output=False, return_logits=False)
    many = seg.predict(image, [Prompt(box=b.numpy()) for b in boxes], multimask=False, batch_size=8)
    for i, res in enumerate(many):
        _same(res, (ref_m[i].numpy(), ref_s[i].numpy(), ref_l[i].numpy()), batched=True)


def _medsam_reference(model, image, box):
    """MedSAM's published inference script (MedSAM_Inference.py), on a model of any input side."""
    from skimage import transform

    s = model.image_encoder.img_size
    h, w = image.shape[:2]
    img = transform.resize(image, (s, s), order=3, preserve_range=True, anti_aliasing=True).astype(np.uint8)
    img = (img - img.min()) / np.clip(img.max() - img.min(), a_min=1e-8, a_max=None)
    x = torch.tensor(img).float().permute(2, 0, 1).unsqueeze(0)
    box_s = np.array([box]) / np.array([w, h, w, h]) * s
    with torch.no_grad():
        emb = model.image_encoder(x)
        sparse, dense = model.prompt_encoder(points=None, boxes=torch.as_tensor(box_s, dtype=torch.float)[:, None],
                                             masks=None)
        low, _ = model.mask_decoder(image_embeddings=emb, image_pe=model.prompt_encoder.get_dense_pe(),
                                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                    multimask_output=False)
        prob = F.interpolate(torch.sigmoid(low), size=(h, w), mode="bilinear", align_corners=False)
    return prob.squeeze().numpy() > 0.5, low[0].numpy()


def test_medsam_matches_its_inference_script(random_sam):
    scene = make_scene(5, size=(170, 230))
    image = (scene.image.astype(np.float32) * 0.5 + 40).astype(np.uint8)  # a narrow range, as scans have
    seg = Segmenter(random_sam, family="medsam")
    assert seg.family.name == "medsam"
    plain = Segmenter(random_sam)
    for box in [(20, 30, 150, 140), (0, 0, 230, 170), (100.5, 60.25, 200, 110)]:
        ref_mask, ref_low = _medsam_reference(random_sam, image, box)
        res = seg.predict(image, Prompt(box=box), multimask=False)
        assert np.array_equal(res.mask, ref_mask)
        np.testing.assert_allclose(res.logits, ref_low, atol=1e-4)
    # MedSAM's preprocessing really differs from SAM's: another embedding, kept apart in the cache
    assert not torch.equal(seg.embed(image).features, plain.embed(image).features)


def test_family_detection_for_every_size():
    from sam2.build_sam import build_sam2
    from segment_anything_hq import sam_model_registry as hq_registry

    for name, spec in REGISTRY.items():
        if spec.family == "sam2":
            model = build_sam2(spec.config, None, device="cpu", mode="eval")
            state = model.state_dict()
            assert detect_family(state) == "sam2" and sam2_config(state) == spec.config, name
        elif spec.family == "sam-hq":
            with torch.device("meta"):
                state = hq_registry[name.removeprefix("sam_hq_")]().state_dict()
            assert detect_family(state) == "sam-hq", name
    assert detect_family(build_sam(TINY_ARCH).state_dict()) == "sam"


def test_checkpoints_load_by_path_and_wrong_family_is_refused(tmp_path, sam2_model, hq_model, random_sam):
    ckpt = tmp_path / "sam2.1_random.pt"
    torch.save({"model": sam2_model.state_dict()}, ckpt)  # the official SAM 2 layout
    loaded = load_model(ckpt)
    assert family_of(loaded).name == "sam2" and loaded.samprompt_family == "sam2"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), sam2_model.state_dict().values()))
    hq = tmp_path / "hq.pth"
    torch.save(hq_model.state_dict(), hq)
    assert family_of(load_model(hq)).name == "sam-hq"
    sam = tmp_path / "sam.pth"
    torch.save(random_sam.state_dict(), sam)
    assert family_of(load_model(sam, family="medsam")).name == "medsam"
    with pytest.raises(CheckpointError, match="holds a SAM 2 checkpoint, not the SAM"):
        load_model(ckpt, expect="vit_b")
    with pytest.raises(CheckpointError, match="holds a SAM .ViT. checkpoint, not the SAM 2"):
        load_model(sam, expect="sam2.1_hiera_tiny")
    with pytest.raises(CheckpointError, match="SAM 2.1 Hiera tiny, not the SAM 2.1 Hiera large"):
        load_model(ckpt, expect="sam2.1_hiera_large")
    with pytest.raises(CheckpointError, match="MedSAM is a SAM ViT-B"):
        load_model(hq, family="medsam")
    with pytest.raises(ConfigError, match="does not fit this model"):
        Segmenter(hq_model, family="medsam")


def test_family_limits_are_clear(sam2_model, random_sam):
    with pytest.raises(ConfigError, match="written for SAM's ViT"):
        Segmenter(sam2_model, attn_impl="sdpa")
    with pytest.raises(ConfigError, match="only pixel prompts"):
        Segmenter(sam2_model, learned=object())
    from samprompt.domains.defects.anomaly import PatchFeatures
    from samprompt.onnx_backend import export_onnx

    with pytest.raises(ConfigError, match="SAM 2's Hiera encoder is not supported"):
        PatchFeatures(Segmenter(sam2_model))
    with pytest.raises(ConfigError, match="export-onnx writes SAM's ViT"):
        export_onnx(sam2_model, "never-written")


def test_jobs_and_cli_name_the_family(tmp_path, sam2_model):
    """A segment job with a SAM 2 checkpoint by path: outputs, and a manifest naming the model and its family."""
    import json
    import subprocess
    import sys

    from PIL import Image

    ckpt = tmp_path / "my_sam2.pt"
    torch.save({"model": sam2_model.state_dict()}, ckpt)
    Image.fromarray(make_scene(8, size=(64, 80)).image).save(tmp_path / "a.png")
    run = subprocess.run([sys.executable, "-m", "samprompt.cli", "segment", str(tmp_path / "a.png"), "--box",
                          "10,10,50,40", "--model", str(ckpt), "--out", str(tmp_path / "out"), "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "a.png").exists()
    rec = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    assert rec["family"] == "sam2" and rec["model_id"].startswith("my_sam2:")
    refused = subprocess.run([sys.executable, "-m", "samprompt.cli", "medical", str(tmp_path), "--prompts",
                              str(tmp_path / "p.json"), "--propagate", "memory", "--out", str(tmp_path / "m")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--propagate memory needs a SAM 2 model" in refused.stderr


def test_cache_keys_and_disk_cache_carry_the_family(tmp_path, sam2_model):
    from samprompt import EmbeddingCache

    image = make_scene(6, size=(96, 128)).image
    seg = Segmenter(sam2_model, cache=EmbeddingCache(0, tmp_path))  # disk only
    first = seg.predict(image, Prompt(points=[[40, 50]], labels=[1]))
    again = Segmenter(sam2_model, cache=EmbeddingCache(0, tmp_path))
    second = again.predict(image, Prompt(points=[[40, 50]], labels=[1]))
    assert again.encoder_calls == 0  # the high-resolution maps came back from disk with the embedding
    assert np.array_equal(first.masks, second.masks)


def test_segment_everything_matches_sam2_automatic_mask_generator(sam2_model):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    image = make_scene(7, size=(200, 240)).image
    # thresholds open and NMS off, so that every candidate of the 4 x 4 grid is compared
    kw = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0,
              stability_score_offset=0.7)
    ref = [r["segmentation"] for r in SAM2AutomaticMaskGenerator(sam2_model, points_per_batch=64, **kw).generate(image)]
    ours = Segmenter(sam2_model).segment_everything(image, **kw).masks
    assert len(ref) >= 10 and len(ours) == len(ref)

    def iou(a, b):
        return (a & b).sum() / max((a | b).sum(), 1)

    assert all(any(iou(r, o) >= 0.99 for o in ours) for r in ref)


def test_memory_propagation_matches_sam2_video_predictor(tmp_path, sam2_model):
    """The same frames (read back from JPEG, as the reference reads them) and prompts give the same masks."""
    from PIL import Image
    from sam2.build_sam import build_sam2_video_predictor

    from samprompt.domains.memory import Start, propagate_memory

    frames = []
    for k in range(3):  # a disc that drifts right, on a textured background
        img = make_scene(20, size=(96, 128)).image.copy()
        yy, xx = np.mgrid[:96, :128]
        img[(yy - 48) ** 2 + (xx - 40 - 8 * k) ** 2 < 18 ** 2] = (220, 60, 60)
        Image.fromarray(img).save(tmp_path / f"{k:05d}.jpg", quality=95)
        frames.append(np.array(Image.open(tmp_path / f"{k:05d}.jpg").convert("RGB")))
    starts = [Start(1, key=1, prompt=Prompt(box=(28, 28, 70, 68))),
              Start(2, key=2, prompt=Prompt(points=[[100, 20]], labels=[1]))]
    seg = Segmenter(sam2_model)
    ours = propagate_memory(seg, frames, starts)

    ref = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    ref.load_state_dict(sam2_model.state_dict())
    expected = {1: {}, 2: {}}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as SAM 2's README runs its video predictor
        state = ref.init_state(str(tmp_path))
        ref.add_new_points_or_box(state, frame_idx=1, obj_id=1, box=np.array([28, 28, 70, 68.0]))
        ref.add_new_points_or_box(state, frame_idx=2, obj_id=2, points=np.array([[100, 20.0]]), labels=np.array([1]))
        for reverse in (False, True):
            for k, ids, logits in ref.propagate_in_video(state, reverse=reverse):
                for label, lg in zip(ids, logits):
                    if (lg[0] > 0).any():
                        expected[label][k] = (lg[0] > 0).numpy()
    assert sorted(ours) == [1, 2]
    for label in (1, 2):
        assert sorted(ours[label]) == sorted(expected[label])
        for k in expected[label]:
            assert np.array_equal(ours[label][k], expected[label][k]), (label, k)
    assert len(ours[1]) >= 2  # it reached past its key frame


def test_fast_settings_run_on_other_families(hq_model):
    """bf16 (where native) and int8 wrap any family's encoder; the masks stay close to fp32's."""
    from samprompt.encoders import bf16_supported

    image = make_scene(9, size=(120, 160)).image
    prompt = Prompt(box=(20, 20, 120, 100))
    ref = Segmenter(hq_model).predict(image, prompt, multimask=False)
    for precision in ("int8", "bf16") if bf16_supported(torch.device("cpu")) else ("int8",):
        seg = Segmenter(hq_model, precision=precision)
        assert seg.encoder.id.endswith(precision)
        res = seg.predict(image, prompt, multimask=False)
        inter, union = (res.mask & ref.mask).sum(), (res.mask | ref.mask).sum()
        assert res.mask.shape == ref.mask.shape and inter / max(union, 1) > 0.8, (precision, inter / max(union, 1))


def test_medical_run_with_a_sam2_model_propagates_by_memory(tmp_path, sam2_model):
    import json
    import subprocess
    import sys

    pytest.importorskip("monai")
    from samprompt.synthetic.volumes import make_volume, save_nifti

    v = make_volume(3, shape=(48, 48, 4))
    (tmp_path / "in").mkdir()
    save_nifti(tmp_path / "in" / "ct.nii.gz", v.data, v.affine)
    m = v.labels == 5
    k = int(m.sum(axis=(0, 1)).argmax())
    ii, jj = np.nonzero(m[:, :, k])
    prompts = {"ct": {"objects": [{"label": 5, "box": [int(ii.min()), int(jj.min()), int(ii.max()), int(jj.max())],
                                   "slice": k}]}}
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    ckpt = tmp_path / "sam2_random.pt"
    torch.save({"model": sam2_model.state_dict()}, ckpt)
    run = subprocess.run([sys.executable, "-m", "samprompt.cli", "medical", str(tmp_path / "in"), "--prompts",
                          str(tmp_path / "prompts.json"), "--model", str(ckpt), "--out", str(tmp_path / "seg"),
                          "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "seg" / "ct_seg.nii.gz").exists()
    rec = json.loads((tmp_path / "seg" / "manifest.jsonl").read_text().splitlines()[-1])
    assert rec["family"] == "sam2" and rec["model_id"].startswith("sam2_random:")
    assert '"method": "auto"' in json.dumps(rec["config"]) or "auto" in json.dumps(rec)  # the settings say how


def test_pixel_prompts_train_and_run_on_every_family(tmp_path, hq_model, sam2_model):
    """A pixel prompt tunes on SAM-HQ and reloads; on SAM 2 it changes the embedding exactly as applied by hand;
    prompt tokens are refused where SAM's ViT is not."""
    from samprompt.learned import LearnedPrompt
    from samprompt.learned.train import tune
    from samprompt.synthetic import write_dataset

    write_dataset(tmp_path / "train", 2, size=96)
    res = tune(hq_model, tmp_path / "train", "pixel-pad", epochs=1, batch_size=2, out=tmp_path / "p", progress=False,
               val_dir=tmp_path / "train")
    assert res.history[0]["loss"] > 0 and res.best_val is not None
    loaded = LearnedPrompt.load(tmp_path / "p", hq_model)
    image = make_scene(2, size=(96, 96)).image
    with_prompt = Segmenter(hq_model, learned=loaded).embed(image)
    assert not torch.equal(with_prompt.features, Segmenter(hq_model).embed(image).features)

    pad = LearnedPrompt.create("pixel-fourier", sam2_model)
    with torch.no_grad():
        for p in pad.parameters():
            p.normal_(0, 0.5)
    seg = Segmenter(sam2_model, learned=pad)
    emb = seg.embed(image)
    x, _ = seg.family.model_input(sam2_model, image)
    with torch.no_grad():
        by_hand = seg.family.forward(sam2_model, pad.module(x))
    assert torch.allclose(emb.features, by_hand["features"], atol=1e-5)
    assert torch.allclose(emb.extras["high_res_0"], by_hand["high_res_0"], atol=1e-5)
    with pytest.raises(ConfigError, match="only the pixel prompts"):
        LearnedPrompt.create("vpt-deep", sam2_model)


def test_unpublished_sha256_is_recorded_at_first_download_and_checked_after(tmp_path, monkeypatch, sam2_model):
    import io

    from samprompt import DownloadError
    from samprompt.models import download, recorded_sha256

    class Response(io.BytesIO):
        headers = {"Content-Length": "0"}

    monkeypatch.setenv("SAMPROMPT_HOME", str(tmp_path))
    buf = io.BytesIO()
    torch.save({"model": sam2_model.state_dict()}, buf)
    first = buf.getvalue()
    path = download("sam2.1_hiera_tiny", progress=False, opener=lambda url: Response(first))
    assert recorded_sha256("sam2.1_hiera_tiny") is not None
    model = load_model("sam2.1_hiera_tiny")
    assert model.samprompt_family == "sam2" and model.samprompt_id.startswith("sam2.1_hiera_tiny:")
    # the file changes on disk: every later load refuses it
    path.write_bytes(first[:-8] + b"tampered")
    with pytest.raises(CheckpointError, match="has changed since it was downloaded"):
        load_model("sam2.1_hiera_tiny")
    # the server now serves other bytes: refused, and nothing replaces the recorded file's digest
    with pytest.raises(DownloadError, match="not the .* recorded at its first download"):
        download("sam2.1_hiera_tiny", progress=False, opener=lambda url: Response(b"other bytes"))
    # a registry entry of another family refuses this file
    (tmp_path / "sam_hq_vit_b.pth").write_bytes(first)
    with pytest.raises(CheckpointError, match="holds a SAM 2 checkpoint, not the SAM-HQ"):
        load_model("sam_hq_vit_b")
    # MedSAM has no plain download: the message says where to get it and where to put it
    with pytest.raises(DownloadError, match="Google Drive.*medsam_vit_b.pth"):
        download("medsam_vit_b", progress=False)
